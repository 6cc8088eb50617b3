// The built-in scenarios are scenario files (sim/scenarios/NAME.scenario), compiled in
// (embedded_scenarios.hpp) and parsed once, on first use; a file in the build is run
// exactly as `portlab-sim --scenario-file` runs one a teacher wrote. The stories beyond
// one link (router, nat, port-forward, stateful-firewall, dual-stack) are files too: their
// captions name what the run chose with a version 2 note's fields ({peer NAME}, {error NAME}).
#include "portlab/sim/scenarios.hpp"

#include <vector>

#include "embedded_scenarios.hpp"
#include "portlab/sim/scenario_file.hpp"

namespace portlab::sim {

namespace {

struct Builtin {
    std::string_view text;
    Result<ScenarioSpec> spec;
};

// Parsed once; the ScenarioInfo views point into these specs, which live as long as
// the program. A file that does not parse (a broken build) keeps its error for
// run_scenario to report; the tests parse every one.
const std::vector<Builtin>& builtins() {
    static const std::vector<Builtin> list = [] {
        std::vector<Builtin> parsed;
        for (const auto& file : detail::embedded_scenarios())
            parsed.push_back(Builtin{file.text, parse_scenario(file.text, file.file)});
        return parsed;
    }();
    return list;
}

const std::vector<ScenarioInfo>& infos() {
    static const std::vector<ScenarioInfo> list = [] {
        std::vector<ScenarioInfo> found;
        for (const Builtin& builtin : builtins())
            if (builtin.spec) found.push_back(ScenarioInfo{builtin.spec->name, builtin.spec->title, builtin.spec->description});
        return found;
    }();
    return list;
}

const Builtin* find_builtin(std::string_view name) {
    for (const Builtin& builtin : builtins())
        if (builtin.spec && builtin.spec->name == name) return &builtin;
    return nullptr;
}

}  // namespace

std::span<const ScenarioInfo> scenarios() noexcept { return infos(); }

std::optional<ScenarioInfo> find_scenario(std::string_view name) noexcept {
    for (const ScenarioInfo& info : infos())
        if (info.name == name) return info;
    return std::nullopt;
}

std::optional<std::string_view> scenario_text(std::string_view name) noexcept {
    const Builtin* builtin = find_builtin(name);
    return builtin == nullptr ? std::nullopt : std::optional(builtin->text);
}

Result<Simulator> run_scenario(std::string_view name, std::uint64_t seed, SimOptions options) {
    for (const Builtin& builtin : builtins())
        if (!builtin.spec) return fail("a built-in scenario file does not parse: " + builtin.spec.error().message);
    options.seed = seed;
    if (const Builtin* builtin = find_builtin(name)) return run_scenario_spec(*builtin->spec, options);
    std::string known;
    for (const ScenarioInfo& info : infos()) known += (known.empty() ? "" : ", ") + std::string(info.name);
    return fail("unknown scenario '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace portlab::sim
