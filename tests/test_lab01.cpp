// Lab 01 run for real: its --json facts must agree with what this test asks the
// kernel and libc itself, never with text copied from the lab's own output.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <grp.h>
#include <linux/capability.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = portlab::test::bin_path("lab01_ports_and_services");

// Runs the lab, bounded by timeout(1). `prefix` runs it as another user (setpriv ...).
test::CommandResult run_lab(const std::string& args, const std::string& prefix = "") {
    return test::run_command(prefix + " " + portlab::test::shell_quote(lab) + " " + args, 30);
}

json run_json(const std::string& args, const std::string& prefix = "") {
    const auto run = run_lab("--json " + args, prefix);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
}

// The errno a bind() of 127.0.0.1:port/tcp gets from the kernel, 0 for success.
int bind_errno(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int result = bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int error = result == 0 ? 0 : errno;
    close(fd);
    return error;
}

// The same bind from a child process that has become uid/gid 65534 (nobody).
int bind_errno_as_nobody(std::uint16_t port) {
    const pid_t child = fork();
    if (child == 0) {
        if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
            _exit(255);
        _exit(bind_errno(port));
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 254;
}

bool has_cap_net_bind_service() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &header, data) != 0) return false;
    return (data[CAP_NET_BIND_SERVICE / 32].effective >> (CAP_NET_BIND_SERVICE % 32)) & 1U;
}

int read_proc_int(const char* path, int index) {
    std::ifstream file(path);
    int value = -1;
    for (int i = 0; i <= index; ++i) file >> value;
    return file ? value : -1;
}

std::string errno_name(int error) {
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : std::to_string(error);
}

}  // namespace

TEST_CASE("lab01 reports the ephemeral range and privileged boundary the kernel has", "[lab01][kernel]") {
    const auto facts = run_json("22");
    const int low = read_proc_int("/proc/sys/net/ipv4/ip_local_port_range", 0);
    const int high = read_proc_int("/proc/sys/net/ipv4/ip_local_port_range", 1);
    const int start = read_proc_int("/proc/sys/net/ipv4/ip_unprivileged_port_start", 0);
    if (low < 0 || start < 0) {
        WARN("no /proc/sys/net/ipv4 port settings to compare with");
        return;
    }
    CHECK(facts["ephemeral_range"]["low"] == low);
    CHECK(facts["ephemeral_range"]["high"] == high);
    CHECK(facts["ephemeral_range"]["source"] == "/proc/sys/net/ipv4/ip_local_port_range");
    CHECK(facts["unprivileged_port_start"] == start);
    CHECK(facts["euid"] == geteuid());
}

TEST_CASE("lab01's lookups agree with libc's getservbyname and getservbyport", "[lab01][libc]") {
    if (!std::ifstream("/etc/services")) {
        WARN("no /etc/services here: the lab uses its built-in table, libc has nothing to compare");
        return;
    }
    const auto facts = run_json("22 http www 53/udp domain/udp ftp 443 8080/udp 0 65535");
    REQUIRE(facts["lookups"].size() == 10);
    for (const auto& lookup : facts["lookups"]) {
        const std::string query = lookup["query"];
        CAPTURE(query);
        const int port = lookup["port"];
        const std::string before_slash = query.substr(0, query.find('/'));
        const bool by_name = before_slash.find_first_not_of("0123456789") != std::string::npos;
        if (by_name) {
            const char* protocol = lookup["protocol"].is_null() ? nullptr : lookup["protocol"].get_ref<const std::string&>().c_str();
            const servent* entry = getservbyname(before_slash.c_str(), protocol);
            REQUIRE(entry != nullptr);
            CHECK(ntohs(static_cast<std::uint16_t>(entry->s_port)) == port);
        } else {
            CHECK(std::stoi(before_slash) == port);
        }
        for (const auto& service : lookup["services"]) {
            const std::string protocol = service["protocol"];
            CAPTURE(protocol);
            const servent* entry = getservbyport(htons(static_cast<std::uint16_t>(port)), protocol.c_str());
            if (entry == nullptr) {
                CHECK(service["name"].is_null());
            } else {
                CHECK(service["name"] == entry->s_name);
            }
        }
    }
}

TEST_CASE("lab01's bind results agree with the kernel's answer to the same bind", "[lab01][kernel]") {
    const auto facts = run_json("");
    const int boundary = facts["unprivileged_port_start"].is_null() ? 1024 : facts["unprivileged_port_start"].get<int>();
    const bool privileged = has_cap_net_bind_service();
    REQUIRE_FALSE(facts["bind_attempts"].empty());
    for (const auto& attempt : facts["bind_attempts"]) {
        const int port = attempt["port"];
        CAPTURE(port);
        CHECK(attempt["below_boundary"] == (port < boundary));
        if (attempt["errno_name"] == "EADDRINUSE") continue;  // busy then; says nothing about privilege
        // The kernel's own rule (inet_bind): below the boundary only with the capability.
        CHECK(attempt["ok"] == (port >= boundary || privileged));
        const int error = bind_errno(static_cast<std::uint16_t>(port));
        if (error == EADDRINUSE) continue;  // someone took it since
        CHECK(attempt["ok"] == (error == 0));
        if (error != 0) CHECK(attempt["errno_name"] == errno_name(error));
    }
}

TEST_CASE("lab01 run as an ordinary user gets EACCES below the boundary, as the kernel says", "[lab01][kernel]") {
    if (geteuid() != 0 || std::system("command -v setpriv >/dev/null 2>&1") != 0) {
        WARN("needs root and setpriv to become uid 65534; skipped");
        return;
    }
    const auto facts = run_json("", "setpriv --reuid=65534 --regid=65534 --clear-groups");
    CHECK(facts["euid"] == 65534);
    CHECK(facts["cap_net_bind_service"] == false);
    bool saw_privileged_attempt = false;
    for (const auto& attempt : facts["bind_attempts"]) {
        const int port = attempt["port"];
        CAPTURE(port);
        if (!attempt["below_boundary"].get<bool>()) continue;
        saw_privileged_attempt = true;
        const int error = bind_errno_as_nobody(static_cast<std::uint16_t>(port));
        CHECK(error == EACCES);
        CHECK(attempt["errno_name"] == errno_name(error));
    }
    if (facts["unprivileged_port_start"] != 0 && facts["unprivileged_port_start"] != 1) CHECK(saw_privileged_attempt);
}

TEST_CASE("lab01 usage errors exit 2 with one line on stderr and nothing on stdout", "[lab01][usage]") {
    const auto args = GENERATE(as<std::string>{}, "70000", "nosuchservice", "--bogus-flag", "22 70000", "http/sctp",
                               "--services /nonexistent/services 22");
    CAPTURE(args);
    const auto run = run_lab(args);
    CHECK(run.exit_code == 2);
    CHECK(run.out.empty());
    REQUIRE_FALSE(run.err.empty());
    CHECK(run.err.back() == '\n');
    CHECK(run.err.find('\n') == run.err.size() - 1);
    CHECK_THAT(run.err, Catch::StartsWith("lab01_ports_and_services: "));
    CHECK_THAT(run.err, Catch::EndsWith("(try --help)\n"));
}

TEST_CASE("lab01 --help exits 0", "[lab01][usage]") {
    const auto run = run_lab("--help");
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK_THAT(run.out, Catch::Contains("--json"));
}

TEST_CASE("lab01 --services reads names from the given file", "[lab01]") {
    const std::string fixture = std::string(PORTLAB_FIXTURES) + "/services_sample";
    const auto facts = run_json("--services '" + fixture + "' www-http 9/udp");
    CHECK(facts["services_source"] == fixture);
    CHECK(facts["services_fallback"] == false);
    // tests/fixtures/services_sample line 7: "http 80/tcp www www-http"; line 10: "sink 9/udp discard null".
    CHECK(facts["lookups"][0]["port"] == 80);
    CHECK(facts["lookups"][0]["services"][0]["name"] == "http");
    CHECK(facts["lookups"][1]["services"][0]["name"] == "sink");
}

// Exercise 6: a services file naming a port changes the lookups, never what the kernel lets
// a program bind: the same binds succeed, and the named port is free for anyone.
TEST_CASE("a name in the services file reserves nothing: the kernel binds the named port for any program", "[lab01][kernel]") {
    using namespace test::sockets;
    const test::TempDir dir;
    Fd probe = bound_socket(AF_INET, SOCK_STREAM);  // a port nobody holds, named below
    const auto port = local_port(probe.get());
    probe.reset();
    const auto named = dir.file("services");
    std::ofstream(named) << "web " << port << "/tcp\n";
    const auto facts = run_json("--services '" + named + "' " + std::to_string(port));
    CHECK(facts["lookups"][0]["services"][0]["name"] == "web");
    CHECK(facts["bind_attempts"] == run_json(std::to_string(port))["bind_attempts"]);
    // The kernel's own answer: this test program, no web server, binds the "web" port.
    Fd mine(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in address = loopback(port);
    CHECK(::bind(mine.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
}

// Issue 15, item 4: root without CAP_NET_BIND_SERVICE (dropped from the bounding set before
// exec, as setpriv does; a container does the same) is refused below the boundary: the
// kernel checks the capability, not the uid. The kernel's own words: CapEff in
// /proc/PID/status of a process started the same way, and bind()'s EACCES.
TEST_CASE("lab01 as root without CAP_NET_BIND_SERVICE says it lacks the capability, as the kernel shows", "[lab01][kernel]") {
    if (geteuid() != 0 || std::system("command -v setpriv >/dev/null 2>&1") != 0) {
        WARN("needs root and setpriv to drop CAP_NET_BIND_SERVICE; skipped");
        return;
    }
    const std::string drop = "setpriv --bounding-set=-net_bind_service";
    const auto status = test::run_command(drop + " grep CapEff /proc/self/status", 10);
    REQUIRE(status.exit_code == 0);
    const auto effective = std::stoull(status.out.substr(status.out.find(':') + 1), nullptr, 16);
    REQUIRE((effective & (1ULL << 10)) == 0);  // CAP_NET_BIND_SERVICE is capability 10
    const auto facts = run_json("", drop);
    CHECK(facts["euid"] == 0);
    CHECK(facts["cap_net_bind_service"] == false);
    const auto text = run_lab("", drop);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find("lack CAP_NET_BIND_SERVICE") != std::string::npos);
    CHECK(text.out.find("which holds CAP_NET_BIND_SERVICE") == std::string::npos);
    bool refused_below = false;
    for (const auto& attempt : facts["bind_attempts"])
        if (attempt["below_boundary"].get<bool>() && attempt["errno_name"] == "EACCES") refused_below = true;
    if (facts["unprivileged_port_start"] != 0 && facts["unprivileged_port_start"] != 1) CHECK(refused_below);
}

// Issue 15 item 12 ("(1 ports)"): a range of one port, as the kernel holds it inside a
// private namespace, is counted in the right number.
TEST_CASE("lab01 counts the ephemeral range the kernel has, in words that fit its size", "[lab01][kernel]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto run = test::run_command(
        "unshare -rn sh -c 'echo \"40000 40000\" > /proc/sys/net/ipv4/ip_local_port_range && "
        "cat /proc/sys/net/ipv4/ip_local_port_range >&2 && " + test::shell_quote(lab) + " --no-color'", 30);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    // What /proc said inside, tabs and all: one port.
    CHECK(run.err.find("40000\t40000") != std::string::npos);
    CHECK(run.out.find("40000-40000 (1 port)") != std::string::npos);
    CHECK(run.out.find("1 ports") == std::string::npos);
}

// Issue 12, items 4 and 5: a services file is anyone's text. Names and aliases holding an
// escape sequence that retitles the terminal, a bell and a byte that is not UTF-8 reach the
// terminal escaped, and --json stays valid JSON (a strict parser reads it) without ESC.
TEST_CASE("lab01 shows a services file's hostile names escaped, and --json stays valid", "[lab01][safety]") {
    const portlab::test::TempFile services("services");
    std::ofstream(services.path) << "evil\x1b]0;owned\x07\xff 4321/tcp al\x1b[2Jias \x9b" "31m\n";
    const std::string args = "--services " + portlab::test::shell_quote(services.path) + " 4321";

    const auto text = portlab::test::run_command(portlab::test::shell_quote(lab) + " " + args, 30);
    INFO("stderr: " << text.err);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find('\x1b') == std::string::npos);
    CHECK(text.out.find('\x07') == std::string::npos);
    CHECK(text.out.find('\x9b') == std::string::npos);
    CHECK(text.out.find('\xff') == std::string::npos);

    const auto run = portlab::test::run_command(portlab::test::shell_quote(lab) + " --json " + args, 30);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out.find('\x1b') == std::string::npos);
    const auto facts = json::parse(run.out);  // throws on invalid UTF-8
    const auto& entry = facts.at("lookups").at(0).at("services").at(0);
    // The name's printable part is kept; the ESC is in it as a character, not a byte on stdout.
    CHECK_THAT(entry.at("name").get<std::string>(), Catch::StartsWith("evil\x1b]0;owned"));
    CHECK(entry.at("aliases").size() == 2);
}

// Issue 10: the trace lets portlab-viz show what the kernel answered to each bind(). Run as
// nobody (no CAP_NET_BIND_SERVICE), each bind the trace records is replayed as portlab-viz
// replays it: a port taken is held by its socket, a port refused is named on the socket
// with the errno. The judge is the kernel's answer to the same bind, as nobody.
TEST_CASE("lab01's trace replays each bind as the kernel answered it: the port held, or the port refused and its errno",
          "[lab01][kernel][replay]") {
    if (geteuid() != 0 || std::system("command -v setpriv >/dev/null 2>&1") != 0) {
        WARN("needs root and setpriv to become uid 65534; skipped");
        return;
    }
    const test::TempDir dir;
    REQUIRE(chmod(dir.path().c_str(), 0777) == 0);  // nobody writes the trace here
    const std::string trace_path = dir.file("lab01.jsonl");
    const auto run = run_lab("--trace " + test::shell_quote(trace_path), "setpriv --reuid=65534 --regid=65534 --clear-groups");
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    auto read = portlab::trace::read_trace_file(trace_path);
    REQUIRE(read.has_value());
    const auto timeline = portlab::replay::Timeline::of(*read);
    int held = 0, refused = 0;
    for (std::size_t i = 0; i < read->events.size(); ++i) {
        const auto& event = read->events[i];
        const auto state = [&] { return timeline.state_at(i + 1); };
        if (const auto* bound = std::get_if<portlab::trace::Bound>(&event.body)) {
            CAPTURE(bound->endpoint.port);
            if (bind_errno_as_nobody(bound->endpoint.port) == EADDRINUSE) continue;  // taken since
            CHECK(bind_errno_as_nobody(bound->endpoint.port) == 0);
            const auto world = state();
            const auto* socket = world.find_socket({*world.find_host(event.host), bound->socket});
            REQUIRE(socket != nullptr);
            CHECK(socket->local == bound->endpoint);
            ++held;
        } else if (const auto* failed = std::get_if<portlab::trace::CallFailed>(&event.body); failed && failed->socket) {
            const auto world = state();
            const auto* socket = world.find_socket({*world.find_host(event.host), *failed->socket});
            REQUIRE(socket != nullptr);
            REQUIRE(socket->refused_bind.has_value());
            CHECK_FALSE(socket->local.has_value());
            const auto port = socket->refused_bind->port;
            CAPTURE(port);
            const int error = bind_errno_as_nobody(port);
            if (error == EADDRINUSE) continue;
            CHECK(error != 0);
            CHECK(socket->error == errno_name(error));
            ++refused;
        }
    }
    CHECK(held >= 1);  // at or above the boundary
    const int boundary = read_proc_int("/proc/sys/net/ipv4/ip_unprivileged_port_start", 0);
    if (boundary > 1) CHECK(refused >= 1);  // below it: EACCES
}
