// libFuzzer harness: one trace line (issue 12, deliverable 4). Oracles:
// - the fast path never accepts a line the full parser refuses, and reads the same event;
// - an event read back from its own to_json_line is the same event (writer and reader agree);
// - a refusal is one line without control bytes (text_safety.hpp), whatever the line held.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portlab/trace.hpp"

using namespace portlab;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const auto full = trace::parse_event_line_full(line, 2);
    if (const auto fast = trace::parse_event_line_fast(line)) {
        if (!full || !(*fast == *full)) std::abort();
    }
    if (!full) {
        for (const char c : full.error().message)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
        return 0;
    }
    const auto again = trace::parse_event_line_full(trace::to_json_line(*full), 2);
    if (!again || !(*again == *full)) std::abort();
    return 0;
}
