// portlab-viz --dump-state: what the visualizer draws, as JSON, held to the kernel. At every
// pause of a lab run, the picture of the trace so far (slots with their ports, peers and
// states) must list the sockets sock_diag lists for the lab, no more and no fewer.

#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

namespace test = portlab::test;
using nlohmann::json;
using portlab::Endpoint;
using portlab::Protocol;

namespace {

// What portlab-viz draws after every event of the trace file so far.
json drawn_state(const std::string& trace_path, const std::string& out) {
    const auto so_far = test::trace_so_far(trace_path);
    const auto trace = portlab::trace::read_trace_file(so_far);
    REQUIRE(trace.has_value());
    const auto run = test::run_command(test::shell_quote(test::bin_path("portlab-viz")) + " " + test::shell_quote(so_far) +
                                           " --at " + std::to_string(trace->events.size()) + " --dump-state " +
                                           test::shell_quote(out),
                                       60);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    std::ifstream in(out);
    return json::parse(in);
}

// The slots a viewer sees, in ss's words: a TCP slot in any state but CLOSED (a socket only
// created or bound is not listed by sock_diag), every UDP slot still bound.
std::vector<test::SocketView> drawn_sockets(const json& state) {
    std::vector<test::SocketView> views;
    for (const auto& slot : state.at("slots")) {
        if (slot.at("observed").get<bool>() || slot.at("local").is_null()) continue;
        const auto local = Endpoint::parse(slot.at("local").get<std::string>());
        REQUIRE(local.has_value());
        const auto protocol = slot.at("protocol") == "udp" ? Protocol::udp : Protocol::tcp;
        test::SocketView view{protocol, *local, std::nullopt, {}};
        if (!slot.at("remote").is_null()) view.remote = *Endpoint::parse(slot.at("remote").get<std::string>());
        const auto drawn = slot.at("state").get<std::string>();
        if (protocol == Protocol::udp) {
            if (drawn == "closed") continue;
            view.state = view.remote ? "ESTAB" : "UNCONN";
        } else {
            if (drawn == "created" || drawn == "bound" || drawn == "closed") continue;
            view.state = slot.at("tcp_state").get<std::string>();
            if (drawn == "listening") view.state = "LISTEN";  // listen() named it, no state_changed yet
            if (view.state == "CLOSED") continue;
            if (view.state == "LISTEN") view.remote.reset();
        }
        views.push_back(view);
    }
    return views;
}

}  // namespace

TEST_CASE("portlab-viz --dump-state draws, at every pause of lab04, the sockets the kernel holds", "[viz][dump][lab04]") {
    const test::TempDir dir;
    const auto path = dir.file("lab04.jsonl");
    const auto out = dir.file("drawn.json");
    test::PausedRun lab_run(test::bin_path("lab04_four_tuple"), {"--port", "0", "--trace", path});
    test::KernelWitness kernel(lab_run.pid());
    std::vector<std::size_t> compared;
    const int status = lab_run.run([&](int pause) {
        const auto drawn = drawn_sockets(drawn_state(path, out));
        test::check_same_sockets(drawn, kernel.now(), "the pause before step " + std::to_string(pause + 1));
        compared.push_back(drawn.size());
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    test::check_same_sockets(drawn_sockets(drawn_state(path, out)), kernel.now(), "the end");
    CHECK(compared == std::vector<std::size_t>{1, 17, 17, 22, 22});  // as test_lab04 counts them from the kernel
}

TEST_CASE("portlab-viz --dump-state refuses what it must not write, and bad positions", "[viz][dump]") {
    const test::TempDir dir;
    const auto viz = test::shell_quote(test::bin_path("portlab-viz"));
    const auto fixture = test::shell_quote(std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl");
    // an output equal to the input: refused before any work, the input untouched
    const auto same = test::run_command(viz + " " + fixture + " --dump-state " + fixture, 30);
    CHECK(same.exit_code == 2);
    CHECK(test::lines_of(same.err).size() == 1);
    const auto beyond = test::run_command(viz + " " + fixture + " --at 100000 --dump-state " +
                                              test::shell_quote(dir.file("x.json")), 30);
    CHECK(beyond.exit_code == 2);
    CHECK_FALSE(std::filesystem::exists(dir.file("x.json")));
}

// Issue 11, scenario files: portlab-viz FILE.scenario runs the file and draws its story,
// the same picture as --scenario NAME draws for the built-in story the file holds.
TEST_CASE("portlab-viz opens a scenario file: the same drawn state as the built-in scenario, bad files exit 2 naming line and field",
          "[viz][dump][scenario-file]") {
    const test::TempDir dir;
    const auto viz = test::shell_quote(test::bin_path("portlab-viz"));
    const std::string source = std::string(PORTLAB_FIXTURES) + "/../../sim/scenarios/";
    const auto dump = [&](const std::string& what, const std::string& at, const std::string& out) {
        const auto run = test::run_command(viz + " " + what + " --at " + at + " --dump-state " + test::shell_quote(dir.file(out)), 60);
        INFO(run.err);
        REQUIRE(run.exit_code == 0);
        std::ifstream in(dir.file(out));
        return json::parse(in);
    };
    for (const std::string name : {"web", "firewall-reject"}) {
        CAPTURE(name);
        const auto whole = dump("--scenario " + name, "1", name + "-size.json");
        const auto events = whole.at("events").get<std::size_t>();
        REQUIRE(events > 10);
        for (const std::size_t at : {events / 3, events / 2, events}) {
            const auto by_name = dump("--scenario " + name, std::to_string(at), name + "-a.json");
            const auto by_file = dump(test::shell_quote(source + name + ".scenario"), std::to_string(at), name + "-b.json");
            CHECK(by_file == by_name);
            CHECK(by_file.at("hosts").size() == 2);  // a picture, not an empty window
            CHECK(by_file.at("position") == at);
        }
    }
    // Told by its header line, whatever the file is called.
    std::filesystem::copy_file(source + "closed-port.scenario", dir.file("story.txt"));
    CHECK(dump(test::shell_quote(dir.file("story.txt")), "3", "txt.json").at("events").get<std::size_t>() > 3);

    std::ofstream(dir.file("bad.scenario")) << "portlab-scenario 1\nhost client 10.0.0.1\nhost server 10.0.0.2\n"
                                               "link client server delay soon\n";
    const auto bad = test::run_command(viz + " " + test::shell_quote(dir.file("bad.scenario")) + " --dump-state " +
                                           test::shell_quote(dir.file("bad.json")), 60);
    CHECK(bad.exit_code == 2);
    CHECK(test::lines_of(bad.err).size() == 1);
    CHECK_THAT(bad.err, Catch::Contains("bad.scenario:4: field 'delay'"));
    CHECK_FALSE(std::filesystem::exists(dir.file("bad.json")));
}
