#pragma once
// Did what the program printed reach its standard output? A program run as `lab01 > /dev/full`
// (ENOSPC) or with stdout closed (EBADF) prints into the void, and iostreams and stdio only
// remember the failure in a flag. Every program asks here before it exits 0, and reports
// a failure in one line on stderr with a non-zero exit (issue 12, item 3).

#include "portlab/result.hpp"

namespace portlab {

// Flushes std::cout and C's stdout; an error when either met a write error, then or before.
// The message: "cannot write to standard output: No space left on device".
[[nodiscard]] Result<void> flush_standard_output();

}  // namespace portlab
