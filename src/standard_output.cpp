#include "portlab/standard_output.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace portlab {

Result<void> flush_standard_output() {
    errno = 0;
    std::cout.flush();
    const bool stream_failed = std::cout.fail();
    int error = errno;
    // fflush reports what stdio still holds; ferror what failed earlier, already dropped.
    if (std::fflush(stdout) != 0 && error == 0) error = errno;
    if (!stream_failed && std::ferror(stdout) == 0) return {};
    return fail(std::string("cannot write to standard output") + (error != 0 ? std::string(": ") + std::strerror(error) : ""),
                std::error_code(error, std::generic_category()));
}

}  // namespace portlab
