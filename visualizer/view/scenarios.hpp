#pragma once
// The simulator's scenarios as sources: their names and one-line descriptions,
// and a run of one as a trace. The scenarios are the simulator's; this only asks
// for them (through portlab-sim, which sits next to portlab-viz in build/bin).

#include <string>
#include <vector>

#include "portlab/result.hpp"
#include "portlab/trace.hpp"

namespace portlab::viz {

struct ScenarioInfo {
    std::string name;
    std::string description;
};

// Empty (with the reason in the error) when the simulator is not available.
[[nodiscard]] Result<std::vector<ScenarioInfo>> list_scenarios();
[[nodiscard]] Result<trace::Trace> run_scenario(const std::string& name);

// A scenario file (docs/scenarios.md): named *.scenario, or its first line is the
// format's header ("portlab-scenario 1"). What else opens as a trace or a capture.
[[nodiscard]] bool is_scenario_file(const std::string& path);
// Runs a scenario file as portlab-sim --scenario-file does; a bad file's error names
// its line and field.
[[nodiscard]] Result<trace::Trace> run_scenario_file(const std::string& path);

// `portlab-sim --list` output: one scenario a line, its name, blanks, then its description.
[[nodiscard]] std::vector<ScenarioInfo> parse_scenario_list(const std::string& text);

}  // namespace portlab::viz
