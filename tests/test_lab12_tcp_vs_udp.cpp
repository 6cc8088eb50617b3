// lab12_tcp_vs_udp run with --json: the counts must obey what TCP and UDP promise (or do
// not), whatever the machine's speed. No timing thresholds: only relations between counts.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "portlab/ports.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab::test;

namespace {

// A port P such that TCP and UDP can bind P and P+1 on 127.0.0.1 right now (the lab takes
// both), below the ephemeral range: the test counts every connection with an end on P or
// P+1 as the lab's, and a port the kernel hands out for connect() could be an end of
// another test's connection (a TIME-WAIT one, say) running beside this one.
portlab::Port free_port_pair() {
    int ephemeral_low = 32768;
    std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
    REQUIRE(ephemeral_low > 10002);
    std::mt19937 pick(std::random_device{}());
    std::uniform_int_distribution<int> below_ephemeral(10000, ephemeral_low - 2);
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto can_bind = [](int type, portlab::Port port) {
            const int fd = socket(AF_INET, type, 0);
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            address.sin_port = htons(port);
            const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
            close(fd);
            return bound;
        };
        const auto port = static_cast<portlab::Port>(below_ephemeral(pick));
        const auto next = static_cast<portlab::Port>(port + 1);
        if (can_bind(SOCK_STREAM, port) && can_bind(SOCK_DGRAM, port) && can_bind(SOCK_STREAM, next) &&
            can_bind(SOCK_DGRAM, next))
            return port;
    }
    FAIL("no free port pair on 127.0.0.1 below the ephemeral range");
    return 0;
}

const CommandResult& lab_run() {
    // --port 0: the kernel picks free ports, so the test never meets a busy one.
    static const CommandResult run =
        run_command(bin_path("lab12_tcp_vs_udp") + " --json --seconds 0.4 --port 0 --rate 500", 60);
    return run;
}

}  // namespace

TEST_CASE("lab12 measures TCP and UDP on loopback and its counts obey each protocol's promises", "[lab12]") {
    const auto& run = lab_run();
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const auto facts = json::parse(run.out);

    SECTION("TCP: a reliable byte stream; every byte sent arrived") {
        const auto& tcp = facts["tcp"];
        const auto sent = tcp["bytes_sent"].get<std::uint64_t>();
        const auto received = tcp["bytes_received"].get<std::uint64_t>();
        CHECK(sent > 0);
        CHECK(received <= sent);
        // The receiver read until the sender's FIN: TCP delivered everything send() accepted.
        CHECK(received == sent);
    }

    SECTION("UDP: received never exceeds sent, and the loss is exactly the difference") {
        const auto& udp = facts["udp"];
        const auto sent = udp["datagrams_sent"].get<std::uint64_t>();
        const auto received = udp["datagrams_received"].get<std::uint64_t>();
        CHECK(sent > 0);
        CHECK(received <= sent);
        CHECK(udp["lost"].get<std::uint64_t>() == sent - received);
        CHECK(udp["bytes_received"].get<std::uint64_t>() <= udp["bytes_sent"].get<std::uint64_t>());
        // Every datagram keeps its size (a datagram is delivered whole or not at all).
        CHECK(udp["bytes_received"].get<std::uint64_t>() == received * facts["udp_size"].get<std::uint64_t>());
        CHECK(udp["bytes_sent"].get<std::uint64_t>() == sent * facts["udp_size"].get<std::uint64_t>());
    }

    SECTION("each client's port is an ephemeral port from /proc's range, the server's one the kernel gave to --port 0") {
        const auto range = portlab::read_ephemeral_range();
        REQUIRE(range.has_value());
        const std::vector<std::pair<std::string, json>> parts = {
            {"tcp", facts["tcp"]["sockets"]}, {"udp", facts["udp"]["sockets"]},
            {"latency tcp", facts["latency"]["tcp"]["sockets"]}, {"latency udp", facts["latency"]["udp"]["sockets"]}};
        for (const auto& [part, sockets] : parts) {
            CAPTURE(part);
            const auto client = sockets["client"]["port"].get<int>();
            const auto server = sockets["server"]["port"].get<int>();
            CHECK(sockets["server"]["address"] == "127.0.0.1");
            CHECK(server != 0);
            CHECK(client >= range->low);
            CHECK(client <= range->high);
            CHECK(client != server);
        }
    }

    SECTION("latency: min <= median <= p99 for both protocols") {
        for (const auto* protocol : {"tcp", "udp"}) {
            CAPTURE(protocol);
            const auto& latency = facts["latency"][protocol];
            CHECK(latency["samples"].get<std::uint64_t>() > 0);
            CHECK(latency["min_us"].get<double>() > 0);
            CHECK(latency["min_us"].get<double>() <= latency["median_us"].get<double>());
            CHECK(latency["median_us"].get<double>() <= latency["p99_us"].get<double>());
        }
    }
}

TEST_CASE("lab12's trace, replayed, holds the sockets the kernel lists at every pause and after the run", "[lab12][replay]") {
    const auto port = free_port_pair();
    const std::set<portlab::Port> ports{port, static_cast<portlab::Port>(port + 1)};
    const TempFile trace_file("lab12.jsonl");
    PausedRun run(bin_path("lab12_tcp_vs_udp"),
                  {"--port", std::to_string(port), "--seconds", "0.4", "--rate", "500", "--trace", trace_file.path});
    // The kernel's side: every TCP and UDP socket the lab's process holds, and the TCP
    // connections the kernel keeps on the lab's two ports after the process closed them.
    KernelWitness kernel(run.pid(), true, ports);
    int pauses = 0;
    const int status = run.run([&](int pause) {
        pauses = pause;
        const auto listed = kernel.now();
        CHECK(!listed.empty());  // at least the TCP stream's TIME-WAIT: never a comparison of two empty lists
        check_same_sockets(replayed_sockets(replay_of(trace_file.path)), listed, "pause " + std::to_string(pause));
    });
    INFO(run.stderr_text());
    REQUIRE(status == 0);
    CHECK(pauses == 3);  // after the TCP stream, the UDP test and the latency tests (before the next step)
    // After the run: the connections TCP still keeps (TIME-WAIT), and nothing else.
    const auto after = replay_of(trace_file.path);
    check_same_sockets(replayed_sockets(after), kernel.now(), "the end");
    std::set<std::string> hosts;
    for (const auto& host : after.hosts()) hosts.insert(host.name);
    CHECK(hosts == std::set<std::string>{"client", "server"});
}

TEST_CASE("lab12 rejects bad arguments with exit status 2", "[lab12]") {
    const auto bad = GENERATE(as<std::string>{}, "--seconds 0", "--seconds 1000", "--size 1", "--rate -5",
                              "--only everything", "--port 65535", "--nonsense", "--seconds nan", "--rate nan",
                              "--seconds NaN", "--rate -nan");
    CAPTURE(bad);
    CHECK(run_command(bin_path("lab12_tcp_vs_udp") + " " + bad, 20).exit_code == 2);
}

TEST_CASE("lab12 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab12][conventions]") {
    check_lab_conventions({"lab12_tcp_vs_udp", true, "--port 0 --seconds 0.2"});
}

// Issue 15 item 12: the myth compares speeds, so by default neither protocol is held back;
// a paced UDP run says its throughput does not compare with TCP's.
TEST_CASE("lab12's default run sends UDP unpaced like TCP, and a paced run says the speeds do not compare", "[lab12]") {
    const auto unpaced = run_command(bin_path("lab12_tcp_vs_udp") + " --json --seconds 0.2 --port 0 --only udp", 60);
    INFO(unpaced.err);
    REQUIRE(unpaced.exit_code == 0);
    CHECK(json::parse(unpaced.out).at("udp_rate_mbps") == 0);
    const auto paced = run_command(bin_path("lab12_tcp_vs_udp") + " --no-color --seconds 0.2 --port 0 --rate 100", 60);
    REQUIRE(paced.exit_code == 0);
    CHECK(paced.out.find("paced at 100 Mbit/s") != std::string::npos);
}

TEST_CASE("lab12: a busy default port gives way to one the kernel chooses, and a busy --port is a clear error",
          "[lab12][usage][safety]") {
    // TCP at P = 8012, UDP at P + 1: either one busy is the lab's default being busy.
    SECTION("TCP 8012 busy") { check_busy_default_port(LabBinary("lab12_tcp_vs_udp"), 8012, SOCK_STREAM, "--seconds 0.2 --only tcp"); }
    SECTION("UDP 8013 busy") { check_busy_default_port(LabBinary("lab12_tcp_vs_udp"), 8013, SOCK_DGRAM, "--seconds 0.2 --only udp", 1); }
}
