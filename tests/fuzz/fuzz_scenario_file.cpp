// libFuzzer harness: a scenario file (docs/scenarios.md; issue 11, deliverable 4).
// Oracles: parsing never throws or crashes; a refusal is one line that starts with the
// file's name and a line number ("f.scenario:12: ..."); a file that parses runs to its
// end or to the event limit without crashing, and its run-time error is one line too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portlab/sim/scenario_file.hpp"

namespace {

void check_one_line(const std::string& message) {
    if (message.rfind("f.scenario:", 0) != 0) std::abort();
    if (message.find('\n') != std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto spec = portlab::sim::parse_scenario(text, "f.scenario");
    if (!spec) {
        check_one_line(spec.error().message);
        return 0;
    }
    // A small limit keeps each input fast under the sanitizers (a scan of thousands of ports
    // runs 37,000 events in 1 s unsanitized, 6 s here); the run must stop there, not hang.
    const auto run = portlab::sim::run_scenario_spec(*spec, {}, portlab::sim::RunLimits{5000});
    if (!run) check_one_line(run.error().message);
    return 0;
}
