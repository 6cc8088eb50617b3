// Lab 02 run for real. The lab's --json tells us which ports it used; the facts about
// them come from the kernel: /proc for the ephemeral range, and ss(8), a peer tool, for
// who sits in TIME-WAIT after the lab has exited (TIME-WAIT outlives the process).
#include <chrono>
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/trace.hpp"
#include "kernel_vs_replay.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab02_tcp_listen_connect");

json run_json(const std::string& args) {
    const auto run = test::run_command(test::shell_quote(lab) + " --json " + args, 30);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
}

int port_of(const json& endpoint) { return endpoint.at("port").get<int>(); }

struct SsRow {
    std::string state;
    Endpoint local, peer;
};

// `ss -Htan`: State Recv-Q Send-Q Local:Port Peer:Port, one socket a line.
std::vector<SsRow> ss_tcp_sockets() {
    REQUIRE(test::tool_available("ss"));
    const auto run = test::run_command("ss -Htan", 20);
    REQUIRE(run.exit_code == 0);
    std::vector<SsRow> rows;
    for (const auto& line : test::lines_of(run.out)) {
        std::istringstream words(line);
        std::string state, recv_q, send_q, local, peer;
        if (!(words >> state >> recv_q >> send_q >> local >> peer)) continue;
        const auto l = Endpoint::parse(local);
        const auto p = Endpoint::parse(peer);
        if (l && p) rows.push_back({state, *l, *p});
    }
    return rows;
}

std::vector<SsRow> time_wait_between(Port a, Port b) {
    std::vector<SsRow> found;
    for (const auto& row : ss_tcp_sockets())
        if (row.state == "TIME-WAIT" && ((row.local.port == a && row.peer.port == b) || (row.local.port == b && row.peer.port == a)))
            found.push_back(row);
    return found;
}

// A port that was free a moment ago (bound with port 0, then closed).
Port free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("the accepted socket shares the listener's port, and the client's port is ephemeral", "[lab02]") {
    const auto facts = run_json("--port 0");
    const auto range = read_ephemeral_range();
    REQUIRE(range.has_value());

    const int listening = port_of(facts.at("listener").at("local"));
    const int client = port_of(facts.at("client").at("local"));
    CHECK(listening != 0);
    CHECK(port_of(facts.at("accepted").at("local")) == listening);
    CHECK(port_of(facts.at("accepted").at("remote")) == client);
    CHECK(port_of(facts.at("client").at("remote")) == listening);
    CHECK(range->contains(static_cast<Port>(client)));

    // Both messages travelled over the same pair of ports, in opposite directions.
    const auto& messages = facts.at("messages");
    REQUIRE(messages.size() == 2);
    CHECK(port_of(messages[0].at("receiver_local")) == listening);
    CHECK(port_of(messages[0].at("receiver_remote")) == client);
    CHECK(port_of(messages[1].at("receiver_local")) == client);
    CHECK(port_of(messages[1].at("receiver_remote")) == listening);
}

TEST_CASE("the side that closes first is the one ss shows in TIME-WAIT", "[lab02]") {
    SECTION("the client closes first") {
        const auto facts = run_json("--port 0 --closer client");
        const auto client = static_cast<Port>(port_of(facts.at("client").at("local")));
        const auto listening = static_cast<Port>(port_of(facts.at("listener").at("local")));
        const auto waiting = time_wait_between(client, listening);
        REQUIRE(waiting.size() == 1);
        CHECK(waiting[0].local.port == client);  // the client's end of the connection
        CHECK(waiting[0].peer.port == listening);
    }
    SECTION("the server closes first") {
        const auto facts = run_json("--port 0 --closer server");
        const auto client = static_cast<Port>(port_of(facts.at("client").at("local")));
        const auto listening = static_cast<Port>(port_of(facts.at("listener").at("local")));
        const auto waiting = time_wait_between(client, listening);
        REQUIRE(waiting.size() == 1);
        CHECK(waiting[0].local.port == listening);  // the server's accepted socket's end
        CHECK(waiting[0].peer.port == client);
    }
}

TEST_CASE("the serve and connect halves run the two halves in two processes", "[lab02]") {
    const Port port = free_port();
    const std::string target = "127.0.0.1:" + std::to_string(port);
    // The client retries (bounded) until the server has started listening.
    const std::string script =
        test::shell_quote(lab) + " --serve --json --port " + std::to_string(port) + " --wait 20 > serve.json & " +
        "for i in $(seq 100); do " + test::shell_quote(lab) + " --connect " + target +
        " --json > connect.json 2>/dev/null && break; sleep 0.1; done; wait";
    const test::TempDir dir;
    const auto run = test::run_command("cd " + test::shell_quote(dir.path().string()) + " || exit 1; " + script, 40);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    std::ifstream serve_file(dir.file("serve.json")), connect_file(dir.file("connect.json"));
    const auto serve = json::parse(serve_file);
    const auto client = json::parse(connect_file);
    CHECK(port_of(serve.at("accepted").at("local")) == port);
    CHECK(port_of(serve.at("accepted").at("remote")) == port_of(client.at("client").at("local")));
    const auto waiting = time_wait_between(static_cast<Port>(port_of(client.at("client").at("local"))), port);
    REQUIRE(waiting.size() == 1);
    CHECK(waiting[0].local.port == port_of(client.at("client").at("local")));
}

TEST_CASE("a trace written with --trace the reader accepts, with the accepted 4-tuple", "[lab02][trace]") {
    const test::TempFile file("lab02.jsonl");
    const auto facts = run_json("--port 0 --trace " + test::shell_quote(file.path));
    const auto read = trace::read_trace_file(file.path);
    REQUIRE(read.has_value());
    CHECK(read->header.source == "lab");
    bool saw_accepted = false;
    for (const auto& event : read->events)
        if (const auto* accepted = std::get_if<trace::Accepted>(&event.body)) {
            saw_accepted = true;
            CHECK(accepted->four_tuple.local.port == port_of(facts.at("listener").at("local")));
            CHECK(accepted->four_tuple.remote.port == port_of(facts.at("client").at("local")));
        }
    CHECK(saw_accepted);
}

TEST_CASE("at every step, the replayed trace holds the sockets, 4-tuples and states the kernel holds", "[lab02][trace][replay]") {
    const auto closer = GENERATE(as<std::string>{}, "client", "server");
    CAPTURE(closer);
    const test::TempFile file("lab02.jsonl");
    test::PausedRun lab_run(lab, {"--port", "0", "--closer", closer, "--trace", file.path});
    test::KernelWitness kernel(lab_run.pid());
    std::vector<std::size_t> compared;  // how many sockets each pause compared
    const int status = lab_run.run([&](int pause) {
        const auto replayed = test::replayed_sockets(test::replay_of(file.path));
        test::check_same_sockets(replayed, kernel.now(), "the pause before step " + std::to_string(pause + 1));
        compared.push_back(replayed.size());
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    // After the lab: only the active closer's TIME-WAIT entry is left, in both accounts.
    const auto replayed = test::replayed_sockets(test::replay_of(file.path));
    test::check_same_sockets(replayed, kernel.now(), "the end");
    REQUIRE(replayed.size() == 1);
    CHECK(replayed[0].state == "TIME-WAIT");
    // Pauses before steps 2-7: the listener; + the client and, already, the server's side
    // of the connection, waiting in the accept queue (the handshake needs no accept());
    // the same three sockets after accept(), twice; the closer in FIN-WAIT-2 and the passive side in CLOSE-WAIT, with the
    // listener; the listener and the TIME-WAIT entry.
    CHECK(compared == std::vector<std::size_t>{1, 3, 3, 3, 3, 2});
}

TEST_CASE("bad arguments: one line on stderr, exit 2", "[lab02][args]") {
    const auto args = GENERATE(as<std::string>{}, "--port 70000", "--port abc", "--bind 10.0.0.1", "--bind nope",
                               "--connect 192.0.2.1:80", "--connect nohost", "--connect 127.0.0.1:0",
                               "--closer nobody", "--serve --connect 127.0.0.1:9", "--wait 0");
    CAPTURE(args);
    const auto run = test::run_command(test::shell_quote(lab) + " " + args, 20);
    CHECK(run.exit_code == 2);
    CHECK(test::lines_of(run.err).size() == 1);
}

TEST_CASE("lab02 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab02][conventions]") {
    test::check_lab_conventions({"lab02_tcp_listen_connect", true, "--port 0"});
}

TEST_CASE("lab02 --serve --wait N waits N seconds for a client, not N + 10", "[lab02]") {
    const Port port = free_port();
    const auto started = std::chrono::steady_clock::now();
    const auto run = test::run_command(test::shell_quote(lab) + " --serve --port " + std::to_string(port) + " --wait 1", 30);
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(run.err);
    CHECK(run.exit_code != 0);
    CHECK(test::lines_of(run.err).size() == 1);  // one line: no client came
    CHECK(took >= std::chrono::seconds(1));
    CHECK(took < std::chrono::seconds(6));  // --wait 1 used to give up after 11 s
}

namespace {

// A client of lab02 --serve on `port`, run beside the lab: connects (retrying while the lab
// starts, at most 10 s), sends `message`, reads the server's answer when `read_answer`, and
// closes. Its own port, as getsockname(2) gives it, or 0 when it never connected.
Port client_of_serve(Port port, const std::string& message, bool read_answer) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        const test::sockets::Fd fd(socket(AF_INET, SOCK_STREAM, 0));
        auto address = test::sockets::loopback(port);
        if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            usleep(50'000);
            continue;
        }
        const Port mine = test::sockets::local_port(fd.get());
        if (!message.empty() && write(fd.get(), message.data(), message.size()) != static_cast<ssize_t>(message.size()))
            return 0;
        if (read_answer) {
            char answer[64];
            timeval limit{10, 0};
            setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            while (read(fd.get(), answer, sizeof answer) > 0) {
                shutdown(fd.get(), SHUT_WR);  // our FIN after the answer, as the lab's own client does
            }
        }
        return mine;
    }
    return 0;
}

}  // namespace

TEST_CASE("lab02 --serve: a client that closes without a word ends the run with one sentence naming it", "[lab02][safety]") {
    const Port port = free_port();
    Port client_port = 0;
    std::thread client([&] { client_port = client_of_serve(port, "", false); });
    const auto run = test::run_command(test::shell_quote(lab) + " --serve --port " + std::to_string(port) + " --wait 10", 30);
    client.join();
    REQUIRE(client_port != 0);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    REQUIRE_FALSE(run.err.empty());
    CHECK(run.err.find('\n') == run.err.size() - 1);
    // The sentence names the client the kernel gave the test (its port), not a bare errno text.
    CHECK_THAT(run.err, Catch::Contains(":" + std::to_string(client_port)));
}

TEST_CASE("lab02 --serve: bytes a client sends reach the terminal with their control bytes escaped", "[lab02][safety]") {
    const Port port = free_port();
    // As long as the lab's own client message (21 bytes): retitle the window, clear the screen.
    std::string hostile = std::string("\x1b]0;owned\x07\x1b[2J\x9b") + "1m\r\n";
    hostile.resize(std::string_view("hello from the client").size(), 'x');
    Port client_port = 0;
    std::thread client([&] { client_port = client_of_serve(port, hostile, true); });
    const auto run = test::run_command(test::shell_quote(lab) + " --serve --port " + std::to_string(port) + " --wait 10", 30);
    client.join();
    REQUIRE(client_port != 0);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out.find('\x1b') == std::string::npos);
    CHECK(run.out.find('\x07') == std::string::npos);
    CHECK(run.out.find('\x9b') == std::string::npos);
    CHECK(run.out.find('\r') == std::string::npos);
}

TEST_CASE("lab02: a busy default port gives way to one the kernel chooses, and a busy --port is a clear error",
          "[lab02][usage][safety]") {
    test::check_busy_default_port(test::LabBinary("lab02_tcp_listen_connect"), 8080, SOCK_STREAM);
}
