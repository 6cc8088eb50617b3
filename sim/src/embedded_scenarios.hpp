#pragma once
// The built-in scenario files (sim/scenarios/*.scenario), compiled in: CMake writes
// embedded_scenarios.cpp from them at build time (sim/embed_scenarios.cmake), so
// portlab-sim runs them from build/bin without an install. Internal to portlab_sim.

#include <span>
#include <string_view>

namespace portlab::sim::detail {

struct EmbeddedScenario {
    std::string_view file;  // "web.scenario"
    std::string_view text;  // the whole file
};

// In teaching order (the order sim/CMakeLists.txt lists them).
[[nodiscard]] std::span<const EmbeddedScenario> embedded_scenarios() noexcept;

}  // namespace portlab::sim::detail
