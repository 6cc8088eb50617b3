#include "view/scenarios.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "portlab/input_file.hpp"
#include "portlab/text.hpp"

#if defined(PORTLAB_HAVE_SIM)
#include "portlab/sim/scenario_file.hpp"
#include "portlab/sim/scenarios.hpp"
#endif

namespace portlab::viz {
#if !defined(PORTLAB_HAVE_SIM)
namespace {

std::string quoted(const std::string& text) {
    std::string out = "'";
    for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// portlab-sim beside this program (build/bin), else on PATH.
std::string simulator_path() {
    std::error_code error;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error) {
        const auto beside = self.parent_path() / "portlab-sim";
        if (std::filesystem::exists(beside, error)) return beside.string();
    }
    return "portlab-sim";
}

struct Output {
    int status = -1;
    std::string text;
};

// Runs a command with a time limit (timeout(1)), capturing what it writes to the
// pipe (the command says which streams go there); keeps the first MiB and
// drains the rest so the child never blocks on a full pipe.
Output run(const std::string& command) {
    Output output;
    std::FILE* pipe = popen(("timeout 30 " + command + " </dev/null").c_str(), "r");
    if (!pipe) return output;
    std::array<char, 4096> buffer{};
    std::size_t count = 0;
    while ((count = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        if (output.text.size() < (1u << 20)) output.text.append(buffer.data(), count);
    output.status = pclose(pipe);
    return output;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace
#endif

std::vector<ScenarioInfo> parse_scenario_list(const std::string& text) {
    std::vector<ScenarioInfo> scenarios;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        const auto words = text::split_words(line);
        if (words.empty()) continue;
        ScenarioInfo info;
        info.name = std::string(words.front());
        const auto rest = line.find_first_not_of(" \t", line.find(words.front()) + words.front().size());
        if (rest != std::string::npos) info.description = line.substr(rest);
        scenarios.push_back(std::move(info));
    }
    return scenarios;
}

#if defined(PORTLAB_HAVE_SIM)

// In-process: the simulator library is linked in.
Result<std::vector<ScenarioInfo>> list_scenarios() {
    std::vector<ScenarioInfo> list;
    for (const auto& scenario : sim::scenarios())
        list.push_back(ScenarioInfo{std::string(scenario.name), std::string(scenario.description)});
    return list;
}

Result<trace::Trace> run_scenario(const std::string& name) {
    auto run = sim::run_scenario(name);
    if (!run) return fail("scenario '" + name + "': " + run.error().message);
    trace::Trace trace;
    trace.header.source = "sim";
    trace.header.generator = std::string("portlab-sim ") + PORTLAB_VERSION;
    trace.header.scenario = name;
    if (const auto info = sim::find_scenario(name)) trace.header.title = std::string(info->title);
    trace.events = run->events();
    return trace;
}

Result<trace::Trace> run_scenario_file(const std::string& path) {
    auto text = read_input_file(path, sim::max_scenario_file_bytes);
    if (!text) return text.error();
    auto spec = sim::parse_scenario(*text, path);
    if (!spec) return spec.error();
    auto run = sim::run_scenario_spec(*spec);
    if (!run) return run.error();
    trace::Trace trace;
    trace.header.source = "sim";
    trace.header.generator = std::string("portlab-sim ") + PORTLAB_VERSION;
    trace.header.scenario = spec->name;
    trace.header.title = spec->title;
    trace.events = run->events();
    return trace;
}

#else

// Through the command line: portlab-sim --list, portlab-sim --scenario NAME --trace FILE.
Result<std::vector<ScenarioInfo>> list_scenarios() {
    const Output output = run(quoted(simulator_path()) + " --list 2>&1");
    if (output.status != 0) return fail("portlab-sim --list failed: " + first_line(output.text));
    return parse_scenario_list(output.text);
}

// portlab-sim SOURCE --trace TEMPORARY, read back; on failure the first line it wrote,
// after `context`.
Result<trace::Trace> trace_from_simulator(const std::string& source, const std::string& context) {
    char pattern[] = "/tmp/portlab-viz-XXXXXX";
    const int fd = mkstemp(pattern);
    if (fd < 0) return fail("cannot create a temporary file for the scenario's trace");
    close(fd);
    const std::string path = pattern;
    const Output output = run(quoted(simulator_path()) + " " + source + " --trace " + quoted(path) + " 2>&1 >/dev/null");
    std::string why = first_line(output.text);
    if (why.rfind("portlab-sim: ", 0) == 0) why.erase(0, std::string_view("portlab-sim: ").size());
    Result<trace::Trace> result = fail(context + why);
    if (output.status == 0) result = trace::read_trace_file(path);
    std::filesystem::remove(path);
    return result;
}

Result<trace::Trace> run_scenario(const std::string& name) {
    return trace_from_simulator("--scenario " + quoted(name), "scenario '" + name + "': portlab-sim failed: ");
}

// portlab-sim's one line already names the file, its line and field.
Result<trace::Trace> run_scenario_file(const std::string& file) { return trace_from_simulator("--scenario-file " + quoted(file), ""); }

#endif

bool is_scenario_file(const std::string& path) {
    if (path.size() > 9 && path.ends_with(".scenario")) return true;
    // The first line only: a FIFO, a device or a huge file is the loader's to refuse.
    auto file = open_input_file(path, std::uint64_t{1} << 40);
    if (!file) return false;
    std::array<char, 32> start{};
    const ssize_t got = ::pread(file->fd(), start.data(), start.size(), 0);
    const std::string_view head(start.data(), got > 0 ? static_cast<std::size_t>(got) : 0);
    // The header's first word, docs/scenarios.md: "portlab-scenario 1".
    constexpr std::string_view magic = "portlab-scenario";
    return head.starts_with(magic) && (head.size() == magic.size() || text::is_blank(head[magic.size()]));
}

}  // namespace portlab::viz
