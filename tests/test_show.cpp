// --show (issue 15, item 14): each step's "see it yourself" command, run by the lab, its real
// output printed. The kit's reading of a command line, its bounds on a tool, and a lab's
// shown output held to what ss itself prints for the same socket.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_vs_replay.hpp"
#include "labkit/look.hpp"
#include "support.hpp"

namespace labkit = portlab::labkit;
namespace test = portlab::test;

namespace {

std::vector<std::string> tokens(const std::string& line) {
    std::istringstream in(line);
    return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

// A port nobody holds right now: bound to 0, read back, let go.
std::uint16_t free_port() {
    const auto fd = test::sockets::bound_socket(AF_INET, SOCK_STREAM);
    return test::sockets::local_port(fd.get());
}

std::string file_text(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a see-it-yourself line runs when it is one looking command, or several joined by 'and'", "[show][look]") {
    const auto [text, expected] = GENERATE(table<std::string, std::vector<std::vector<std::string>>>({
        {"ss -tlnp 'sport = :8080'", {{"ss", "-tlnp", "sport = :8080"}}},
        {"ss -tlnp 'sport = :8080'   (Recv-Q = connections waiting per listener)", {{"ss", "-tlnp", "sport = :8080"}}},
        {"ss -tlnp 'sport = :1'   and   ss -ulnp 'sport = :2'", {{"ss", "-tlnp", "sport = :1"}, {"ss", "-ulnp", "sport = :2"}}},
        {"ss -tlnp 'sport = :1'   (nothing listens)   and   ss -tan state time-wait",
         {{"ss", "-tlnp", "sport = :1"}, {"ss", "-tan", "state", "time-wait"}}},
        {"ss -tano '( sport = :1 or dport = :1 )'", {{"ss", "-tano", "( sport = :1 or dport = :1 )"}}},
        {"nstat -az UdpInCsumErrors", {{"nstat", "-az", "UdpInCsumErrors"}}},
        {"sysctl net.ipv4.ip_local_port_range", {{"sysctl", "net.ipv4.ip_local_port_range"}}},
    }));
    CAPTURE(text);
    const auto look = labkit::parse_look(text, 4242);
    CHECK(look.text == text);
    std::vector<std::vector<std::string>> argvs;
    for (const auto& command : look.commands) argvs.push_back(command.argv);
    CHECK(argvs == expected);
}

TEST_CASE("a see-it-yourself line that is prose is printed only", "[show][look]") {
    const auto text = GENERATE(as<std::string>{},
                               "ss -tlnp 'sport = :8080'   or   lsof -nP -iTCP:8080 -sTCP:LISTEN",  // a choice
                               "lab10_packet_headers --pcap lab10.pcap   then   tcpdump -r lab10.pcap -nn",  // do this first
                               "sudo tcpdump -ni lo -A 'tcp port 8080'   (then run the lab again)",  // privilege
                               "ss -tnip | grep -A1 lab12_tcp_vs_ud",                                  // a pipe
                               "unshare -rn sh -c 'ip link set lo up; ...'",                           // not a looking tool
                               "sudo -u nobody lab01_ports_and_services   (the same lab as an ordinary user)",
                               "ss -uan 'sport >= :1'   while paused with --step",                     // words after it
                               "nsenter --target 1 --user --net ss -tan",                              // another process's namespace
                               "nsenter --preserve-credentials --target 4242 --user --net bash",       // not a looking tool
                               "ss -tan 'sport = :1",                                                  // an unclosed quote
                               "ss -tan   and");
    CAPTURE(text);
    CHECK(labkit::parse_look(text, 4242).commands.empty());
}

TEST_CASE("nsenter into the lab's own namespace runs the command directly, without sudo", "[show][look]") {
    const auto look = labkit::parse_look("nsenter --target 4242 --user --net ss -tan state time-wait   (timer)", 4242);
    REQUIRE(look.commands.size() == 1);
    CHECK(look.commands[0].in_own_namespace);
    CHECK(look.commands[0].argv == std::vector<std::string>{"ss", "-tan", "state", "time-wait"});
    const auto kept = labkit::parse_look("nsenter --preserve-credentials --target 4242 --user --net nft list ruleset", 4242);
    REQUIRE(kept.commands.size() == 1);
    CHECK(kept.commands[0].argv == std::vector<std::string>{"nft", "list", "ruleset"});
    CHECK(labkit::shell_text({"ss", "-tan", "sport = :1"}) == "ss -tan 'sport = :1'");
}

TEST_CASE("a tool run for --show is bounded in time and in lines, and a missing one is said so", "[show][run]") {
    const auto start = std::chrono::steady_clock::now();
    const auto slow = labkit::run_tool({"sleep", "10"}, std::chrono::milliseconds(300));
    CHECK(slow.timed_out);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));

    const auto many = labkit::run_tool({"seq", "1", "100"});
    CHECK(many.lines.size() == 40);
    CHECK(many.lines.front() == "1");
    CHECK(many.lines_left_out == 60);
    CHECK(many.exit_status == 0);

    const auto missing = labkit::run_tool({"portlab-no-such-tool"});
    CHECK(missing.exit_status == 127);
    REQUIRE(missing.lines.size() == 1);
    CHECK_THAT(missing.lines[0], Catch::Contains("cannot run portlab-no-such-tool"));

    const auto painted = labkit::run_tool({"printf", "a\\033[2Jb\\n"});
    REQUIRE(painted.lines.size() == 1);
    CHECK(painted.lines[0] == "a?[2Jb");  // an escape sequence cannot reach the terminal
}

TEST_CASE("a tool run for --show holds none of the lab's descriptors", "[show][run]") {
    // ss -p names every process holding a socket: the tool must not be one of them.
    const auto held = test::sockets::bound_socket(AF_INET, SOCK_STREAM);
    const auto listing = labkit::run_tool({"ls", "-l", "/proc/self/fd"});
    REQUIRE_FALSE(listing.lines.empty());
    for (const auto& line : listing.lines) CHECK(line.find("socket:") == std::string::npos);
}

TEST_CASE("lab04 --show prints the line ss itself prints for its listener", "[show][lab04]") {
    REQUIRE(test::tool_available("ss"));
    const test::TempDir dir;
    const auto out = dir.file("stdout");
    const auto port = std::to_string(free_port());
    test::PausedRun run(test::bin_path("lab04_four_tuple"), {"--port", port, "--show"}, std::chrono::seconds(60), out);
    std::string from_ss;
    const int status = run.run([&](int pause) {
        // After step 1 the listener is all there is on the port: ss's own line for it.
        if (pause == 1) from_ss = test::run_command("ss -tlnpH 'sport = :" + port + "'", 10).out;
    });
    INFO(run.stderr_text());
    REQUIRE(status == 0);
    const auto expected = tokens(from_ss);
    REQUIRE(expected.size() >= 6);
    CHECK(expected[0] == "LISTEN");
    CHECK_THAT(from_ss, Catch::Contains("pid=" + std::to_string(run.pid()) + ","));
    bool found = false;
    for (const auto& line : test::lines_of(file_text(out))) {
        auto shown = tokens(line);
        if (shown.empty() || shown.front() != "|") continue;
        shown.erase(shown.begin());
        found = found || shown == expected;
    }
    INFO("ss printed: " << from_ss << "the lab printed:\n" << file_text(out));
    CHECK(found);
}

TEST_CASE("lab13 --json runs no tool, and --show without a terminal ends by itself", "[show][lab13]") {
    const auto quiet = test::run_command(test::shell_quote(test::bin_path("lab13_myths")) + " --port 0 --json --show", 60);
    REQUIRE(quiet.exit_code == 0);
    CHECK(quiet.out.find("| ") == std::string::npos);
    CHECK_NOTHROW(nlohmann::json::parse(quiet.out));
}

TEST_CASE("lab11 --show runs its ss inside the lab's namespace: the listener it shows is not on the host", "[show][lab11]") {
    REQUIRE(test::tool_available("ss"));
    if (test::run_command("unshare -rn true", 10).exit_code != 0) {
        WARN("private namespaces unavailable: lab11 cannot run");
        return;
    }
    const test::TempDir dir;
    const auto out = dir.file("stdout");
    const auto port = std::to_string(free_port());
    test::PausedRun run(test::bin_path("lab11_tcp_states"), {"--port", port, "--show"}, std::chrono::seconds(60), out);
    std::string on_host = "not asked";
    const int status = run.run([&](int pause) {
        if (pause == 1) on_host = test::run_command("ss -tlnH 'sport = :" + port + "'", 10).out;
    });
    INFO(run.stderr_text());
    REQUIRE(status == 0);
    CHECK(on_host.empty());  // the host's own ss: nothing listens on the port here
    bool shown = false;
    for (const auto& line : test::lines_of(file_text(out))) {
        const auto words = tokens(line);
        shown = shown || (words.size() >= 5 && words[0] == "|" && words[1] == "LISTEN" && words[4] == "127.0.0.1:" + port);
    }
    INFO(file_text(out));
    CHECK(shown);
}
