// portlab-sim: runs one of the simulator's scenarios, or a scenario file
// (docs/scenarios.md), and tells its story, step by step (time, host, event, 4-tuple,
// state, caption); writes the trace (JSON Lines) and the packets (pcap) on request.
//
// Exit codes: 0 done, 1 an output file could not be written, 2 usage error or a bad
// scenario file (one line on stderr: "FILE:LINE: field 'delay': ...").
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>
#include <tuple>

#include "portlab/input_file.hpp"
#include "portlab/pcap.hpp"
#include "portlab/sim/narration.hpp"
#include "portlab/sim/scenario_file.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/standard_output.hpp"
#include "portlab/trace.hpp"

namespace {

using namespace portlab;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

struct Options {
    bool list = false;
    std::string scenario;
    std::string scenario_file;
    std::uint64_t seed = 1;
    std::string trace_path;
    std::string pcap_path;
    bool force = false;
    bool json = false;
};

int usage_error(const std::string& reason) {
    std::cerr << "portlab-sim: " << reason << " (try --help)\n";
    return exit_usage;
}

void print_list() {
    for (const auto& info : sim::scenarios()) std::printf("%-22s %s\n", std::string(info.name).c_str(), std::string(info.description).c_str());
}

// Each output may not be the other one (and --force lets either replace a symbolic link).
OutputRules rules_for(const std::string& other, const Options& options) { return {{other}, options.force}; }

Result<void> write_trace(const std::string& path, const sim::ScenarioInfo& info, const sim::Simulator& simulator,
                         const OutputRules& rules) {
    trace::TraceHeader header;
    header.source = "sim";
    header.generator = std::string("portlab-sim ") + PORTLAB_VERSION;
    header.scenario = std::string(info.name);
    header.title = std::string(info.title);
    auto writer = trace::TraceWriter::to_file(path, header, rules);
    if (!writer) return writer.error();
    for (const auto& event : simulator.events())
        if (auto written = writer->write(event); !written) return written.error();
    return writer->close();
}

// Every packet as it left its host (a capture at the sender), raw IP.
Result<void> write_pcap(const std::string& path, const sim::Simulator& simulator, const OutputRules& rules) {
    auto writer = pcap::Writer::create(path, LinkType::raw, 262144, rules);
    if (!writer) return writer.error();
    for (const auto& event : simulator.events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || packet->kind != trace::PacketKind::sent) continue;
        if (auto written = writer->write(pcap::Record::whole(event.t_us, packet->bytes)); !written) return written.error();
    }
    return writer->close();
}

void print_listing(const sim::ScenarioInfo& info, const Options& options, const sim::Simulator& simulator) {
    std::printf("portlab-sim: %s: %s (seed %llu)\n%s\n\n", std::string(info.name).c_str(), std::string(info.title).c_str(),
                static_cast<unsigned long long>(options.seed), std::string(info.description).c_str());
    std::printf("%12s  %-8s %-18s %-44s %-12s %s\n", "time (ms)", "host", "event", "4-tuple", "state", "what happened");
    sim::Narrator narrator;
    for (const auto& event : simulator.events()) {
        const auto row = narrator.narrate(event);
        std::printf("%12.3f  %-8s %-18s %-44s %-12s %s\n", static_cast<double>(row.t_us) / 1000.0, row.host.c_str(),
                    row.type.c_str(), row.four_tuple.c_str(), row.state.c_str(), row.caption.c_str());
    }
}

void print_json(const sim::ScenarioInfo& info, const Options& options, const sim::Simulator& simulator) {
    nlohmann::json events = nlohmann::json::array();
    sim::Narrator narrator;
    for (const auto& event : simulator.events()) {
        const auto row = narrator.narrate(event);
        events.push_back({{"t_us", row.t_us}, {"host", row.host}, {"type", row.type}, {"four_tuple", row.four_tuple},
                          {"state", row.state}, {"caption", row.caption}});
    }
    const nlohmann::json document{{"scenario", info.name},   {"title", info.title},     {"description", info.description},
                                  {"seed", options.seed},     {"events", std::move(events)}};
    std::cout << document.dump(2) << "\n";
}

// A story that ran: its names and the Simulator that holds its trace.
struct Story {
    std::string name;
    std::string title;
    std::string description;
    sim::Simulator simulator;
};

Result<Story> built_in(const Options& options) {
    const auto info = sim::find_scenario(options.scenario);
    auto simulator = sim::run_scenario(options.scenario, options.seed);
    if (!simulator) return simulator.error();
    if (!info) return fail("unknown scenario '" + options.scenario + "'");
    return Story{std::string(info->name), std::string(info->title), std::string(info->description), std::move(simulator).value()};
}

Result<Story> from_file(const std::string& path, const Options& options) {
    auto text = read_input_file(path, sim::max_scenario_file_bytes);
    if (!text) return text.error();
    auto spec = sim::parse_scenario(*text, path);
    if (!spec) return spec.error();
    sim::SimOptions sim_options;
    sim_options.seed = options.seed;
    auto simulator = sim::run_scenario_spec(*spec, sim_options);
    if (!simulator) return simulator.error();
    return Story{spec->name, spec->title, spec->description, std::move(simulator).value()};
}

int run(const Options& options) {
    if (options.list) {
        print_list();
        return exit_ok;
    }
    if (options.scenario.empty() == options.scenario_file.empty())
        return usage_error(options.scenario.empty() ? "--scenario NAME, --scenario-file FILE or --list is required"
                                                    : "give --scenario or --scenario-file, not both");
    // Before any work: an output that would clobber the other one or a link is a usage error.
    for (const auto& [option, path, other] : {std::tuple{"--trace", options.trace_path, options.pcap_path},
                                               std::tuple{"--pcap", options.pcap_path, options.trace_path}}) {
        if (path.empty()) continue;
        if (auto allowed = check_output_path(path, rules_for(other, options)); !allowed)
            return usage_error(std::string(option) + ": " + allowed.error().message);
    }
    auto story = options.scenario_file.empty() ? built_in(options) : from_file(options.scenario_file, options);
    if (!story) {
        // A bad file's message names its line and field already: one line, no hint.
        if (options.scenario_file.empty()) return usage_error(story.error().message);
        std::cerr << "portlab-sim: " << story.error().message << "\n";
        return exit_usage;
    }
    const sim::ScenarioInfo info{story->name, story->title, story->description};
    const auto& simulator = story->simulator;
    if (!options.trace_path.empty()) {
        if (auto written = write_trace(options.trace_path, info, simulator, rules_for(options.pcap_path, options)); !written) {
            std::cerr << "portlab-sim: cannot write the trace: " << written.error().message << "\n";
            return exit_failure;
        }
    }
    if (!options.pcap_path.empty()) {
        if (auto written = write_pcap(options.pcap_path, simulator, rules_for(options.trace_path, options)); !written) {
            std::cerr << "portlab-sim: cannot write the pcap: " << written.error().message << "\n";
            return exit_failure;
        }
    }
    if (options.json) print_json(info, options, simulator);
    else print_listing(info, options, simulator);
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"portlab-sim: watch ports, sockets and packets in a deterministic simulation"};
    app.add_flag("--list", options.list, "list the scenarios, one per line");
    app.add_option("--scenario", options.scenario, "the scenario to run (see --list)");
    app.add_option("--scenario-file", options.scenario_file,
                   "run a scenario file (the format: docs/scenarios.md; the built-in ones are in share/portlab/scenarios/)");
    // CLI11 would read "-1" into an unsigned seed as 2^64-1, and a seed too big for
    // 64 bits as 2^64-1: only digits that fit.
    const CLI::Validator digits(
        [](std::string& text) {
            std::uint64_t value = 0;
            const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
            const bool whole = !text.empty() && text.front() != '-' && error == std::errc{} && end == text.data() + text.size();
            return whole ? std::string() : "a seed is a whole number from 0 to 18446744073709551615, not '" + text + "'";
        },
        "N");
    app.add_option("--seed", options.seed, "seed for every random choice (same seed, same run)")->check(digits);
    app.add_option("--trace", options.trace_path, "write the trace as JSON Lines (docs/trace-format.md)");
    app.add_option("--pcap", options.pcap_path, "write every packet sent to a pcap file (raw IP)");
    app.add_flag("--force", options.force, "replace a symbolic link given as --trace or --pcap (the link, not its target)");
    app.add_flag("--json", options.json, "print the step-by-step listing as one JSON document");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& help) {
        return app.exit(help);
    } catch (const CLI::ParseError& error) {
        return usage_error(error.what());
    }
    try {
        const int code = run(options);
        // Whatever was printed must have reached stdout (not /dev/full, not a closed stdout).
        if (auto printed = flush_standard_output(); !printed) {
            std::cerr << "portlab-sim: " << printed.error().message << "\n";
            return exit_failure;
        }
        return code;
    } catch (const std::exception& error) {
        std::cerr << "portlab-sim: " << error.what() << "\n";
        return exit_failure;
    }
}
