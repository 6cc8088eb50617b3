// libFuzzer harness: whole trace files (issue 12, deliverable 4). Oracles:
// - reading never crashes; a refusal is one line without control bytes;
// - a trace read, written back line by line (to_json_line) and read again is the same trace;
// - the replay model's checkpoints agree with replaying from the start: the world at every
//   position the timeline seeks to is the world applied event by event.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "portlab/trace.hpp"
#include "replay/state.hpp"

using namespace portlab;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    auto trace = trace::read_trace(in);
    if (!trace) {
        for (const char c : trace.error().message)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
        return 0;
    }
    std::string text = trace::to_json_line(trace->header) + "\n";
    for (const auto& event : trace->events) text += trace::to_json_line(event) + "\n";
    std::istringstream written(text);
    const auto again = trace::read_trace(written);
    if (!again || again->events != trace->events) std::abort();

    replay::TimelineOptions options;
    options.min_interval = 3;  // many checkpoints, so seeks start from them
    options.adaptive = false;
    const auto timeline = replay::Timeline::of(std::move(trace).value(), options);
    replay::State world;
    for (std::size_t n = 0; n <= timeline.size(); ++n) {
        if (!(timeline.state_at(n) == world)) std::abort();
        if (n < timeline.size()) world.apply(timeline.event(n));
    }
    return 0;
}
