// Lab 13 run for real: at each of its pauses this test asks the kernel (sock_diag, as ss
// does; /proc/PID/fd; ss itself; getservbyport) who holds the ports the lab talks about,
// and holds the lab's replayed trace to the kernel. The lab's narration and --json play no part.
#include <catch2/catch.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernel_vs_replay.hpp"
#include "labkit/sock_diag.hpp"
#include "support.hpp"

namespace test = portlab::test;
namespace diag = portlab::diag;
using portlab::Protocol;
using portlab::TcpState;

namespace {

const test::LabBinary lab("lab13_myths");

using test::parent_of;

std::vector<diag::SocketInfo> kernel_sockets(bool udp) {
    diag::Query query;
    query.tcp = !udp;
    query.udp = udp;
    query.ipv6 = false;
    const auto sockets = diag::list_sockets(query);
    REQUIRE(sockets.has_value());
    return *sockets;
}

std::set<pid_t> owners(const diag::SocketInfo& socket) {
    std::set<pid_t> pids;
    for (const auto& owner : socket.owners) pids.insert(owner.pid);
    return pids;
}

// Sockets held by a child process of `lab_pid` (and not by the lab itself).
std::vector<diag::SocketInfo> held_by_children(const std::vector<diag::SocketInfo>& sockets, pid_t lab_pid) {
    std::vector<diag::SocketInfo> found;
    for (const auto& s : sockets) {
        const auto pids = owners(s);
        if (pids.size() == 1 && parent_of(*pids.begin()) == lab_pid) found.push_back(s);
    }
    return found;
}

// The socket inodes in /proc/PID/fd.
std::vector<std::uint32_t> socket_inodes_of(pid_t pid) {
    std::vector<std::uint32_t> inodes;
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ignored)) {
        const auto target = std::filesystem::read_symlink(entry.path(), ignored);
        if (const auto inode = diag::socket_inode_from_link(target.string())) inodes.push_back(*inode);
    }
    return inodes;
}

// After step 1: the lab holds one socket (socket() without connect()), which no kernel table lists.
void check_socket_without_port(pid_t lab_pid) {
    const auto inodes = socket_inodes_of(lab_pid);
    REQUIRE(inodes.size() == 1);
    for (const bool udp : {false, true})
        for (const auto& s : kernel_sockets(udp)) CHECK(s.inode != inodes.front());
}

// After step 3: a listener of the lab on a port /etc/services names (libc's getservbyport),
// at or above 1024: no privilege needed, and ss prints the name.
void check_service_port_held(pid_t lab_pid) {
    std::vector<std::string> names;
    for (const auto& s : kernel_sockets(false)) {
        if (s.tcp_state() != TcpState::listen || !owners(s).count(lab_pid)) continue;
        const servent* entry = getservbyport(htons(s.local.port), "tcp");
        if (entry == nullptr) continue;
        CHECK(s.local.port >= 1024);
        names.push_back(entry->s_name);
        if (test::tool_available("ss")) {
            const auto ss = test::run_command("ss -tlH 'sport = :" + std::to_string(s.local.port) + "'", 10);
            CHECK_THAT(ss.out, Catch::Contains(std::string(":") + entry->s_name));
        }
    }
    CHECK(names.size() == 1);
}

// After step 5: two TCP listeners on one port, each in its own child process, and both
// processes hold some of the clients' connections, all of them together.
portlab::Port check_two_processes_tcp(pid_t lab_pid, int clients) {
    const auto sockets = kernel_sockets(false);
    std::vector<diag::SocketInfo> listeners;
    for (const auto& s : held_by_children(sockets, lab_pid))
        if (s.tcp_state() == TcpState::listen) listeners.push_back(s);
    REQUIRE(listeners.size() == 2);
    CHECK(listeners[0].local == listeners[1].local);
    CHECK(listeners[0].inode != listeners[1].inode);
    const pid_t first = *owners(listeners[0]).begin(), second = *owners(listeners[1]).begin();
    CHECK(first != second);
    std::map<pid_t, int> connections;
    for (const auto& s : sockets)
        if (s.tcp_state() == TcpState::established && s.local == listeners[0].local)
            for (const auto pid : owners(s)) ++connections[pid];
    CAPTURE(first, second, connections[first], connections[second]);
    CHECK(connections[first] > 0);
    CHECK(connections[second] > 0);
    CHECK(connections[first] + connections[second] == clients);
    if (test::tool_available("ss")) {  // ss itself: two LISTEN lines on that port
        const auto ss = test::run_command("ss -tlnH 'sport = :" + std::to_string(listeners[0].local.port) + "'", 10);
        CHECK(test::lines_of(ss.out).size() == 2);
    }
    return listeners[0].local.port;
}

// After step 6: two UDP sockets on that same port number, in two other child processes,
// each with datagrams waiting in its receive queue.
void check_two_processes_udp(pid_t lab_pid, portlab::Port port) {
    std::vector<diag::SocketInfo> bound;
    for (const auto& s : held_by_children(kernel_sockets(true), lab_pid))
        if (s.local.port == port) bound.push_back(s);
    REQUIRE(bound.size() == 2);
    CHECK(bound[0].inode != bound[1].inode);
    CHECK(owners(bound[0]) != owners(bound[1]));
    CHECK(bound[0].recv_q > 0);
    CHECK(bound[1].recv_q > 0);
}

// After step 8: one listening socket held by the lab and by one child, as ss -tlpn shows it.
void check_shared_listener(pid_t lab_pid) {
    std::vector<diag::SocketInfo> shared;
    for (const auto& s : kernel_sockets(false))
        if (s.tcp_state() == TcpState::listen && owners(s).count(lab_pid) && owners(s).size() > 1) shared.push_back(s);
    REQUIRE(shared.size() == 1);
    const auto pids = owners(shared[0]);
    REQUIRE(pids.size() == 2);
    const pid_t child = *pids.begin() == lab_pid ? *pids.rbegin() : *pids.begin();
    CHECK(parent_of(child) == lab_pid);
    if (test::tool_available("ss")) {
        const auto ss = test::run_command("ss -tlpnH 'sport = :" + std::to_string(shared[0].local.port) + "'", 10);
        CHECK(test::lines_of(ss.out).size() == 1);
        CHECK_THAT(ss.out, Catch::Contains("pid=" + std::to_string(lab_pid) + ","));
        CHECK_THAT(ss.out, Catch::Contains("pid=" + std::to_string(child) + ","));
    }
}

}  // namespace

TEST_CASE("lab13: at each pause the kernel shows what the lab says, and the replayed trace holds the same sockets",
          "[lab13][kernel][replay]") {
    const test::TempDir dir;
    const auto path = dir.file("lab13.jsonl");
    constexpr int clients = 20;
    test::PausedRun run(test::bin_path("lab13_myths"), {"--port", "0", "--clients", std::to_string(clients), "--trace", path});
    test::KernelWitness kernel(run.pid(), /*udp=*/true, {}, /*children=*/true);
    portlab::Port shared_port = 0;
    std::vector<std::size_t> compared;
    const int status = run.run([&](int pause) {
        const auto replayed = test::replayed_sockets(test::replay_of(path));
        test::check_same_sockets(replayed, kernel.now(), "the pause after step " + std::to_string(pause));
        compared.push_back(replayed.size());
        switch (pause) {  // pause N comes after step N
            case 1: check_socket_without_port(run.pid()); break;
            case 3: check_service_port_held(run.pid()); break;
            case 5: shared_port = check_two_processes_tcp(run.pid(), clients); break;
            case 6: check_two_processes_udp(run.pid(), shared_port); break;
            case 8: check_shared_listener(run.pid()); break;
            default: break;
        }
    });
    INFO(run.stderr_text());
    REQUIRE(status == 0);
    // Pauses after steps 1-8: nothing with a port; three listeners and a UDP socket; + the
    // service's listener; + three clients and their accepted sides; + two listeners in two
    // processes, 20 clients and 20 accepted sides; + two UDP sockets and 20 UDP clients;
    // the same; + the shared listener, two clients and two accepted sides.
    CHECK(compared == std::vector<std::size_t>{0, 4, 5, 11, 53, 75, 75, 80});
    // After the lab: only the clients' TIME-WAIT entries are left, in both accounts.
    const auto replayed = test::replayed_sockets(test::replay_of(path));
    test::check_same_sockets(replayed, kernel.now(), "the end");
    for (const auto& view : replayed) CHECK(view.state == "TIME-WAIT");
}

TEST_CASE("lab13 usage errors exit 2 with one line on stderr", "[lab13][usage]") {
    const auto args = GENERATE(as<std::string>{}, "--clients 1", "--clients 201", "--clients x", "--bind ::1", "--port 70000", "--bogus");
    CAPTURE(args);
    test::check_usage_error(lab.run(args), "lab13_myths");
}

TEST_CASE("lab13: a busy default port is a clear error that suggests --port 0", "[lab13][usage]") {
    test::check_busy_default_port(lab, 7413, SOCK_STREAM);
}

TEST_CASE("lab13 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab13][conventions]") {
    test::check_lab_conventions({"lab13_myths", true, "--port 0"});
}

TEST_CASE("lab13: a usage error found after the options are read stays one line while the default port is busy",
          "[lab13][usage]") {
    // The busy-port note is for a run that goes ahead; a run refused for --clients says only why.
    const test::sockets::Fd holder(::socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(holder.get() >= 0);
    auto address = test::sockets::loopback(7413);
    const bool held = ::bind(holder.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                      ::listen(holder.get(), 1) == 0;
    if (!held) REQUIRE(errno == EADDRINUSE);  // someone else holds it: busy all the same
    const auto run = lab.run("--clients 201");
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 2);
    CHECK(test::lines_of(run.err).size() == 1);
    CHECK_THAT(run.err, Catch::Contains("--clients"));
}
