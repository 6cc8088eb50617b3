// Lab 06 run for real: for every bind() the lab reports, this test makes the same call on
// its own sockets, in the same situation, and the kernel must answer both the same way.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const test::LabBinary lab("lab06_bind_errors");
using test::sockets::Fd;
using test::sockets::errno_name;
using test::sockets::local_port;
using test::sockets::loopback;

std::string errno_text(int error) {
    if (error == 0) return "ok";
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : std::to_string(error);
}

sockaddr_in v4(const char* address, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, address, &a.sin_addr);
    return a;
}

// The errno of options + bind (+ listen), 0 on success. The socket stays open in `fd`.
int try_bind(Fd& fd, const char* address, std::uint16_t port, bool reuse_address = false, bool reuse_port = false,
             bool do_listen = false) {
    const int on = 1;
    if (reuse_address) setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (reuse_port) setsockopt(fd.fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    auto a = v4(address, port);
    if (bind(fd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return errno;
    if (do_listen && listen(fd.fd, 16) != 0) return errno;
    return 0;
}

Fd tcp() { return Fd(socket(AF_INET, SOCK_STREAM, 0)); }
Fd udp() { return Fd(socket(AF_INET, SOCK_DGRAM, 0)); }

// The test's own answers, case by case, from the same sequence of calls the lab makes.
std::map<std::string, std::string> own_answers() {
    std::map<std::string, std::string> answers;
    Fd first = tcp(), second = tcp(), udp_same = udp(), wildcard = tcp(), other = tcp(), holder = tcp(), specific = tcp();
    answers["first_listener"] = errno_text(try_bind(first, "127.0.0.1", 0, false, false, true));
    const auto held = local_port(first.fd);
    answers["second_listener"] = errno_text(try_bind(second, "127.0.0.1", held, false, false, true));
    answers["udp_same_number"] = errno_text(try_bind(udp_same, "127.0.0.1", held));
    answers["wildcard_over_specific"] = errno_text(try_bind(wildcard, "0.0.0.0", held));
    answers["other_loopback_address"] = errno_text(try_bind(other, "127.0.0.2", held, false, false, true));
    answers["wildcard_holder"] = errno_text(try_bind(holder, "0.0.0.0", 0));
    answers["specific_over_wildcard"] = errno_text(try_bind(specific, "127.0.0.1", local_port(holder.fd)));

    // TIME-WAIT: a SO_REUSEADDR server closes an accepted connection first.
    std::uint16_t restart = 0;
    {
        Fd server = tcp();
        answers["time_wait_original"] = errno_text(try_bind(server, "127.0.0.1", 0, true, false, true));
        restart = local_port(server.fd);
        Fd client = tcp();
        auto a = v4("127.0.0.1", restart);
        REQUIRE(connect(client.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        Fd served(accept(server.fd, nullptr, nullptr));
        close(served.fd);
        served.fd = -1;
        char byte = 0;
        REQUIRE(recv(client.fd, &byte, 1, 0) == 0);  // the server's FIN
    }  // client closes: the server side moves to TIME-WAIT
    Fd plain = tcp(), reusing = tcp();
    answers["time_wait_without_reuseaddr"] = errno_text(try_bind(plain, "127.0.0.1", restart, false, false, true));
    answers["time_wait_with_reuseaddr"] = errno_text(try_bind(reusing, "127.0.0.1", restart, true, false, true));

    Fd one = tcp(), two = tcp(), three = tcp();
    answers["reuseport_first"] = errno_text(try_bind(one, "127.0.0.1", 0, false, true, true));
    answers["reuseport_second"] = errno_text(try_bind(two, "127.0.0.1", local_port(one.fd), false, true, true));
    answers["reuseport_without"] = errno_text(try_bind(three, "127.0.0.1", local_port(one.fd), false, false, true));
    return answers;
}

bool write_file(const char* path, const std::string& text) {
    const int fd = open(path, O_WRONLY);
    if (fd < 0) return false;
    const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    return ok;
}

// In a forked child: a new user + network namespace with ip_unprivileged_port_start = boundary,
// every capability dropped, then bind(127.0.0.1:port). The child's exit code is the errno
// (0 = bound), 250+ when the namespace could not be made.
int bind_errno_in_namespace(std::uint16_t boundary, std::uint16_t port) {
    const uid_t uid = geteuid();
    const gid_t gid = getegid();
    const pid_t child = fork();
    if (child == 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) _exit(250);
        write_file("/proc/self/setgroups", "deny");
        if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            _exit(251);
        if (!write_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", std::to_string(boundary))) _exit(252);
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct none[2]{};
        if (syscall(SYS_capset, &header, none) != 0) _exit(253);
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        auto a = v4("127.0.0.1", port);  // lo is down, but bind() to 127.0.0.1 needs no route
        _exit(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 254;
}

// bind(127.0.0.1:port) on the host network as uid 65534 when root (else as ourselves).
int bind_errno_as_nobody(std::uint16_t port) {
    const pid_t child = fork();
    if (child == 0) {
        if (geteuid() == 0 &&
            (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0))
            _exit(255);
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        auto a = v4("127.0.0.1", port);
        _exit(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 254;
}

}  // namespace

TEST_CASE("lab06: every bind() answer agrees with the same call made by this test", "[lab06][kernel]") {
    const auto facts = lab.json("--port 0");
    const auto answers = own_answers();
    REQUIRE(facts["cases"].size() == answers.size());
    for (const auto& c : facts["cases"]) {
        const std::string id = c["id"];
        CAPTURE(id);
        REQUIRE(answers.count(id) == 1);
        const std::string lab_answer = c["ok"].get<bool>() ? "ok" : c["errno_name"].get<std::string>();
        CHECK(lab_answer == answers.at(id));
    }
    // And the answers are the rules the lab teaches (a sanity check on this test's own calls).
    CHECK(answers.at("second_listener") == "EADDRINUSE");
    CHECK(answers.at("udp_same_number") == "ok");
    CHECK(answers.at("wildcard_over_specific") == "EADDRINUSE");
    CHECK(answers.at("specific_over_wildcard") == "EADDRINUSE");
    CHECK(answers.at("time_wait_without_reuseaddr") == "EADDRINUSE");
    CHECK(answers.at("time_wait_with_reuseaddr") == "ok");
    CHECK(answers.at("reuseport_second") == "ok");
    CHECK(answers.at("reuseport_without") == "EADDRINUSE");
}

TEST_CASE("lab06: the TIME-WAIT socket it reports holds the port it restarts on", "[lab06][kernel]") {
    const auto facts = lab.json("--port 0");
    const auto& tw = facts["time_wait"];
    REQUIRE(tw["local"].is_object());
    CHECK(tw["local"]["port"] == tw["port"]);
    const auto& reuseport = facts["reuseport"];
    REQUIRE(reuseport["accept_queues"].size() == 2);
    CHECK(reuseport["accept_queues"][0].get<int>() + reuseport["accept_queues"][1].get<int>() == 8);
}

TEST_CASE("lab06: EACCES below the boundary, as this test's own unprivileged bind gets it", "[lab06][kernel]") {
    const auto facts = lab.json("--port 0");
    const auto& privileged = facts["privileged"];
    if (privileged["host"].is_object()) {
        for (const auto& attempt : privileged["host"]["attempts"]) {
            const int port = attempt["port"];
            CAPTURE(port);
            const int own = bind_errno_as_nobody(static_cast<std::uint16_t>(port));
            if (own == EADDRINUSE) continue;  // taken since; says nothing about privilege
            CHECK((attempt["ok"].get<bool>() ? "ok" : attempt["errno_name"].get<std::string>()) == errno_text(own));
        }
    }
    if (test::run_command("unshare -rn true", 10).exit_code != 0) {
        CHECK(privileged["namespace"].is_null());
        WARN("private namespaces unavailable: the lab skips that part too");
        return;
    }
    REQUIRE(privileged["namespace"].is_object());
    const int boundary = privileged["namespace"]["boundary"];
    REQUIRE(privileged["namespace"]["attempts"].size() == 3);
    for (const auto& attempt : privileged["namespace"]["attempts"]) {
        const int port = attempt["port"];
        CAPTURE(port);
        const int own = bind_errno_in_namespace(static_cast<std::uint16_t>(boundary), static_cast<std::uint16_t>(port));
        REQUIRE(own < 250);
        CHECK((attempt["ok"].get<bool>() ? "ok" : attempt["errno_name"].get<std::string>()) == errno_text(own));
        CHECK(own == (port < boundary ? EACCES : 0));
    }
}

TEST_CASE("lab06's replayed trace holds the sockets and states the kernel holds at every step, TIME-WAIT included",
          "[lab06][trace][replay]") {
    const test::TempDir dir;
    const auto path = dir.file("lab06.jsonl");
    test::PausedRun lab_run(test::bin_path("lab06_bind_errors"), {"--port", "0", "--trace", path});
    test::KernelWitness kernel(lab_run.pid(), /*udp=*/true);
    const std::set<std::string> elsewhere{"private-netns"};  // its sockets live in another namespace
    const auto compared = test::compare_at_each_pause(lab_run, kernel, path, elsewhere);
    // Pauses before steps 2-8: the first listener; + the UDP socket; + the listener on
    // 127.0.0.2; + a server, its client and the accepted socket; the server's side in
    // TIME-WAIT and the restarted listener instead of those three; + two SO_REUSEPORT
    // listeners, 8 clients and the listeners' 8 queued sides of those connections, twice.
    CHECK(compared == std::vector<std::size_t>{1, 2, 3, 6, 5, 23, 23});
    // After the lab only the TIME-WAIT entry of step 5 is left, in both accounts.
    const auto replayed = test::replayed_sockets(test::replay_of(path), elsewhere);
    test::check_same_sockets(replayed, kernel.now(), "the end");
    REQUIRE(replayed.size() == 1);
    CHECK(replayed[0].state == "TIME-WAIT");
}

TEST_CASE("lab06 usage errors exit 2 with one line on stderr", "[lab06][usage]") {
    const auto args = GENERATE(as<std::string>{}, "--port -1", "--port 99999", "--bind 8.8.8.8", "--bind 127.0.0", "--bogus");
    CAPTURE(args);
    test::check_usage_error(lab.run(args), "lab06_bind_errors");
}

TEST_CASE("lab06: a busy default port gives way to one the kernel chooses, and a busy --port is a clear error", "[lab06][usage]") {
    test::check_busy_default_port(lab, 7406, SOCK_STREAM);
}

TEST_CASE("lab06 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab06][conventions]") {
    test::check_lab_conventions({"lab06_bind_errors", true, "--port 0"});
}
