#pragma once
// The named stories the simulator tells, shared by portlab-sim, the visualizer, the
// docs and the labs. Each is a scenario file (sim/scenarios/NAME.scenario, the format
// of scenario_file.hpp and docs/scenarios.md) compiled into the library: it builds its
// hosts, makes its socket calls at chosen virtual times, and runs until nothing is
// left to happen; the Simulator it returns holds the trace and the final World.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "portlab/result.hpp"
#include "portlab/sim/simulator.hpp"

namespace portlab::sim {

struct ScenarioInfo {
    std::string_view name;         // "web"
    std::string_view title;        // "A web page fetch"
    std::string_view description;  // one line
};

// Every scenario, in teaching order.
[[nodiscard]] std::span<const ScenarioInfo> scenarios() noexcept;
[[nodiscard]] std::optional<ScenarioInfo> find_scenario(std::string_view name) noexcept;

// The text of a built-in scenario's file, as installed in share/portlab/scenarios/.
[[nodiscard]] std::optional<std::string_view> scenario_text(std::string_view name) noexcept;

// Runs a scenario to the end. An unknown name is an error naming the known ones.
[[nodiscard]] Result<Simulator> run_scenario(std::string_view name, std::uint64_t seed = 1,
                                             SimOptions options = {});

// The addresses every scenario uses.
inline const IpAddress client_address = IpAddress::v4(10, 0, 0, 1);
inline const IpAddress server_address = IpAddress::v4(10, 0, 0, 2);
inline const IpAddress scanner_address = IpAddress::v4(10, 0, 0, 66);

}  // namespace portlab::sim
