// libFuzzer harness: port text (issue 12, deliverable 4). Oracle: a port the parser accepts
// prints as decimal text that parses back to the same port; parsing never throws.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portlab/ports.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto port = portlab::parse_port_number(text);
    if (!port) return 0;
    const auto again = portlab::parse_port_number(std::to_string(*port));
    if (!again || *again != *port) std::abort();
    return 0;
}
