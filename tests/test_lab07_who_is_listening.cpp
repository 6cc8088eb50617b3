// lab07_who_is_listening against ss(8), the peer tool, on the same machine at nearly
// the same moment. The test holds sockets of its own open (plain POSIX, close-on-exec so
// no child inherits them) and requires those in both listings with this process's pid;
// the sets of listening sockets must be equal (sockets of other programs may come and
// go between two runs, so a comparison is retried a few times until ss agrees with
// itself before and after the lab ran).

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "kernel_vs_replay.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::test;
using nlohmann::json;

namespace {

const std::string lab = bin_path("lab07_who_is_listening");

using portlab::test::sockets::Fd;

// A socket bound to loopback by the kernel's choice of port; a TCP one listens.
Fd bound(int family, int type) {
    Fd fd = portlab::test::sockets::bound_socket(family, type);
    if (type == SOCK_STREAM) REQUIRE(::listen(fd.get(), 8) == 0);
    return fd;
}

Port port_of(int fd) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    return ntohs(address.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
}

void connect_to(int fd, int target) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    REQUIRE(getsockname(target, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
}

bool ipv6_loopback_available() {
    const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

// One socket, as either tool names it. Addresses are normalised through
// IpAddress::parse, and an unspecified address or ss's "*" becomes "*".
struct Row {
    std::string protocol, state, local_address, remote_address;
    Port local_port = 0, remote_port = 0;
    friend auto operator<=>(const Row&, const Row&) = default;
};

std::string describe(const Row& row) {
    return row.protocol + " " + row.state + " " + row.local_address + ":" + std::to_string(row.local_port) + " " +
           row.remote_address + ":" + std::to_string(row.remote_port);
}

std::string normal_address(const std::string& text) {
    if (text == "*") return "*";
    const auto address = IpAddress::parse(text);
    if (!address) return "?" + text;
    return address->is_unspecified() ? "*" : address->to_string();
}

// ss's "ADDR:PORT", "[V6]:PORT", "ADDR%if:PORT", "[V6]%if:PORT", "*:*", "0.0.0.0:*".
std::pair<std::string, Port> split_ss_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    REQUIRE(colon != std::string::npos);
    std::string host = text.substr(0, colon);
    const std::string port = text.substr(colon + 1);
    if (const auto percent = host.find('%'); percent != std::string::npos) host.erase(percent);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    Port number = 0;
    if (port != "*") {
        const auto parsed = parse_port_number(port);
        REQUIRE(parsed.has_value());
        number = *parsed;
    }
    return {normal_address(host), number};
}

// Socket -> sorted owner pids.
using Listing = std::map<Row, std::set<int>>;

// ss -tulpn / -tuapn output:
// Netid State Recv-Q Send-Q Local-Address:Port Peer-Address:Port Process
Listing parse_ss(const std::string& output) {
    Listing listing;
    const std::regex pid_pattern("pid=([0-9]+)");
    for (const auto& line : lines_of(output)) {
        if (line.rfind("Netid", 0) == 0 || line.empty()) continue;
        std::istringstream fields(line);
        std::string netid, state, recv_q, send_q, local, remote;
        fields >> netid >> state >> recv_q >> send_q >> local >> remote;
        if (netid != "tcp" && netid != "udp") continue;
        std::string rest;
        std::getline(fields, rest);
        Row row;
        row.protocol = netid;
        row.state = state;
        std::tie(row.local_address, row.local_port) = split_ss_endpoint(local);
        std::tie(row.remote_address, row.remote_port) = split_ss_endpoint(remote);
        std::set<int> pids;
        for (auto it = std::sregex_iterator(rest.begin(), rest.end(), pid_pattern); it != std::sregex_iterator(); ++it)
            pids.insert(std::stoi((*it)[1].str()));
        listing[row].insert(pids.begin(), pids.end());
    }
    return listing;
}

Listing parse_lab(const json& document, int exclude_pid) {
    Listing listing;
    for (const auto& s : document.at("sockets")) {
        std::set<int> pids;
        for (const auto& p : s.at("processes")) pids.insert(p.at("pid").get<int>());
        if (pids.count(exclude_pid) != 0) continue;  // the lab's own sockets were gone when ss ran
        Row row{s.at("protocol").get<std::string>(), s.at("state").get<std::string>(),
                normal_address(s.at("local").at("address").get<std::string>()),
                normal_address(s.at("remote").at("address").get<std::string>()),
                s.at("local").at("port").get<Port>(), s.at("remote").at("port").get<Port>()};
        listing[row].insert(pids.begin(), pids.end());
    }
    return listing;
}

json run_lab_json(const std::string& arguments) {
    const auto result = run_command(shell_quote(lab) + " --json " + arguments, 60);
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    return json::parse(result.out);
}

std::string run_ss(const std::string& flags) {
    REQUIRE(tool_available("ss"));
    const auto result = run_command("ss " + flags, 60);
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    return result.out;
}

std::string listing_text(const Listing& listing) {
    std::string text;
    for (const auto& [row, pids] : listing) {
        text += describe(row) + " pids:";
        for (const int pid : pids) text += " " + std::to_string(pid);
        text += "\n";
    }
    return text;
}

bool listening_row(const Row& row) { return row.state == "LISTEN" || row.state == "UNCONN"; }

Listing listening_part(Listing listing) {
    std::erase_if(listing, [](const auto& entry) { return !listening_row(entry.first); });
    return listing;
}

// Runs ss, the lab, ss again, until ss's listening sockets were the same before and after
// and the lab agreed with them (bounded: another program may be starting or stopping
// servers while the test runs; on a quiet machine the first attempt settles).
struct Comparison {
    Listing ss, lab;
    json document;
};

Comparison compare_with_ss(const std::string& ss_flags, const std::string& lab_arguments) {
    Comparison comparison;
    for (int attempt = 0; attempt < 5; ++attempt) {
        const Listing before = parse_ss(run_ss(ss_flags));
        comparison.document = run_lab_json(lab_arguments);
        comparison.ss = parse_ss(run_ss(ss_flags));
        comparison.lab = parse_lab(comparison.document, comparison.document.at("pid").get<int>());
        const auto settled = listening_part(comparison.ss);
        if (listening_part(before) == settled && listening_part(comparison.lab) == settled) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return comparison;
}


Row row_of(const std::string& protocol, const std::string& state, const std::string& local_address, Port local_port,
           const std::string& remote_address = "*", Port remote_port = 0) {
    return {protocol, state, normal_address(local_address), normal_address(remote_address), local_port, remote_port};
}

}  // namespace

TEST_CASE("lab07's listening sockets are exactly ss -tulpn's, with the same owners", "[lab07][ss]") {
    const Fd tcp4 = bound(AF_INET, SOCK_STREAM);
    const Fd udp4 = bound(AF_INET, SOCK_DGRAM);
    const bool with_v6 = ipv6_loopback_available();
    std::optional<Fd> tcp6;
    if (with_v6) tcp6.emplace(bound(AF_INET6, SOCK_STREAM));

    const auto comparison = compare_with_ss("-tulpn", "");
    INFO("ss:\n" << listing_text(comparison.ss) << "lab:\n" << listing_text(comparison.lab));
    CHECK(comparison.lab == comparison.ss);

    const std::set<int> us{getpid()};
    std::vector<Row> ours{row_of("tcp", "LISTEN", "127.0.0.1", port_of(tcp4.get())),
                          row_of("udp", "UNCONN", "127.0.0.1", port_of(udp4.get()))};
    if (tcp6) ours.push_back(row_of("tcp", "LISTEN", "::1", port_of(tcp6->get())));
    for (const auto& row : ours) {
        CAPTURE(describe(row));
        REQUIRE(comparison.ss.count(row) == 1);
        REQUIRE(comparison.lab.count(row) == 1);
        CHECK(comparison.ss.at(row) == us);
        CHECK(comparison.lab.at(row) == us);
    }
}

TEST_CASE("lab07 --all shows the test's connections and TIME-WAIT as ss -tuapn does", "[lab07][ss]") {
    const Fd server = bound(AF_INET, SOCK_STREAM);
    const Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    connect_to(client.get(), server.get());
    const Fd accepted(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const Fd udp_server = bound(AF_INET, SOCK_DGRAM);
    const Fd udp_client = bound(AF_INET, SOCK_DGRAM);
    connect_to(udp_client.get(), udp_server.get());
    // A closed connection: the active closer keeps its 4-tuple in TIME-WAIT (RFC 793 3.5).
    Fd closer(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    connect_to(closer.get(), server.get());
    Fd closed_peer(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const Port closer_port = port_of(closer.get());
    closer.reset();
    closed_peer.reset();

    const Port server_port = port_of(server.get());
    const Port client_port = port_of(client.get());
    const auto comparison = compare_with_ss("-tuapn", "--all");
    INFO("ss:\n" << listing_text(comparison.ss) << "lab:\n" << listing_text(comparison.lab));

    const std::set<int> us{getpid()};
    const std::vector<std::pair<Row, std::set<int>>> ours{
        {row_of("tcp", "LISTEN", "127.0.0.1", server_port), us},
        {row_of("tcp", "ESTAB", "127.0.0.1", client_port, "127.0.0.1", server_port), us},
        {row_of("tcp", "ESTAB", "127.0.0.1", server_port, "127.0.0.1", client_port), us},
        {row_of("udp", "UNCONN", "127.0.0.1", port_of(udp_server.get())), us},
        {row_of("udp", "ESTAB", "127.0.0.1", port_of(udp_client.get()), "127.0.0.1", port_of(udp_server.get())), us},
        {row_of("tcp", "TIME-WAIT", "127.0.0.1", closer_port, "127.0.0.1", server_port), {}},
    };
    for (const auto& [row, pids] : ours) {
        CAPTURE(describe(row));
        REQUIRE(comparison.ss.count(row) == 1);
        REQUIRE(comparison.lab.count(row) == 1);
        CHECK(comparison.ss.at(row) == pids);
        CHECK(comparison.lab.at(row) == pids);
    }

    // Listening sockets are long-lived: those sets must be equal. Connections of other
    // programs may open or close between the runs; the test created none of those.
    CHECK(listening_part(comparison.lab) == listening_part(comparison.ss));
}

TEST_CASE("lab07 --port names the test process as the owner of its listener", "[lab07]") {
    const Fd tcp = bound(AF_INET, SOCK_STREAM);
    const Fd udp = bound(AF_INET, SOCK_DGRAM);

    SECTION("a TCP port") {
        const Port port = port_of(tcp.get());
        const auto document = run_lab_json("--port " + std::to_string(port));
        CHECK(document.at("query").at("port") == port);
        bool found = false;
        for (const auto& s : document.at("sockets")) {
            CHECK(s.at("local").at("port") == port);  // nothing else is listed
            if (s.at("protocol") != "tcp") continue;
            found = true;
            CHECK(s.at("state") == "LISTEN");
            CHECK(s.at("kernel_state") == 10);  // TCP_LISTEN, include/net/tcp_states.h
            CHECK(s.at("local").at("address") == "127.0.0.1");
            REQUIRE(s.at("processes").size() == 1);
            CHECK(s.at("processes")[0].at("pid") == getpid());
            CHECK(s.at("processes")[0].at("fd") == tcp.get());
        }
        CHECK(found);
    }
    SECTION("a UDP port given with its protocol") {
        const Port port = port_of(udp.get());
        const auto document = run_lab_json("--port " + std::to_string(port) + "/udp");
        CHECK(document.at("query").at("tcp") == false);
        REQUIRE(document.at("sockets").size() == 1);
        const auto& s = document.at("sockets")[0];
        CHECK(s.at("protocol") == "udp");
        CHECK(s.at("state") == "UNCONN");
        CHECK(s.at("kernel_state") == 7);  // TCP_CLOSE: UDP with no peer
        CHECK(s.at("processes")[0].at("pid") == getpid());
    }
    SECTION("a service name is resolved as getservbyname does") {
        const servent* ssh = getservbyname("ssh", "tcp");
        if (ssh == nullptr) {
            WARN("no 'ssh' in this system's services database: the name case is not checked");
            return;
        }
        const auto document = run_lab_json("--port ssh");
        CHECK(document.at("query").at("port") == ntohs(static_cast<std::uint16_t>(ssh->s_port)));
        CHECK(document.at("query").at("service") == "ssh");
    }
}

TEST_CASE("lab07 finds its own listener, on a port the kernel chose from the ephemeral range", "[lab07]") {
    const auto document = run_lab_json("");
    const auto& self = document.at("self");
    CHECK(self.at("found_tcp") == true);
    CHECK(self.at("found_udp") == true);
    const auto range = read_ephemeral_range();
    REQUIRE(range.has_value());
    CHECK(range->contains(self.at("tcp_listener").at("port").get<Port>()));
    CHECK(range->contains(self.at("udp_socket").at("port").get<Port>()));

    SECTION("the narration says so, with the pid and ss/lsof commands") {
        const auto result = run_command(shell_quote(lab) + " --no-color", 60);
        REQUIRE(result.exit_code == 0);
        CHECK(result.out.find("that's us: pid") != std::string::npos);
        CHECK(result.out.find("ss -tulpn") != std::string::npos);
        CHECK(result.out.find("lsof -nP") != std::string::npos);
    }
}

TEST_CASE("lab07's replayed trace holds the two sockets the kernel lists for it at every step", "[lab07][trace][replay]") {
    const test::TempDir dir;
    const auto path = dir.file("lab07.jsonl");
    test::PausedRun lab_run(test::bin_path("lab07_who_is_listening"), {"--trace", path});
    test::KernelWitness kernel(lab_run.pid(), /*udp=*/true);
    const auto compared = test::compare_at_each_pause(lab_run, kernel, path);
    // Pauses before steps 2-6: the TCP listener and the UDP socket, each time.
    CHECK(compared == std::vector<std::size_t>{2, 2, 2, 2, 2});
    const auto world = test::replay_of(path);
    test::check_same_sockets(test::replayed_sockets(world), kernel.now(), "the end");
    CHECK(test::replayed_sockets(world).empty());
    // One host, declared, holding the lab's sockets.
    REQUIRE(world.hosts().size() == 1);
    CHECK(world.hosts()[0].name == "localhost");
}

TEST_CASE("lab07 rejects bad arguments with one line and exit code 2", "[lab07][usage]") {
    const auto arguments = GENERATE(as<std::string>{}, "--port 70000", "--port nosuchservice", "--port 0",
                                    "--port -1", "--port 80/sctp", "--port 53/udp --tcp", "--bogus", "--port",
                                    "extra-word");
    CAPTURE(arguments);
    const auto result = run_command(shell_quote(lab) + " " + arguments, 30);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK(lines_of(result.err).size() == 1);
}

TEST_CASE("lab07 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab07][conventions]") {
    check_lab_conventions({"lab07_who_is_listening", false, ""});
}

// Issue 15, item 3: --port P must not say "nobody" while a socket holds P. A connected UDP
// socket is no listener, yet it holds its port: the kernel refuses another bind() to it
// (EADDRINUSE) and ss -a lists it. And -4 must not hide a [::] listener without
// IPV6_V6ONLY, which the kernel connects IPv4 peers to.
TEST_CASE("lab07 --port names a connected UDP socket that holds the port, and -4 a dual-stack listener", "[lab07][port]") {
    SECTION("a connected UDP socket") {
        const Fd holder = sockets::bound_socket(AF_INET, SOCK_DGRAM);
        const Port port = port_of(holder.get());
        auto peer = sockets::loopback(9);
        REQUIRE(::connect(holder.get(), reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0);
        // The kernel's word: the port is taken, and ss -a lists the socket.
        const Fd second(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        auto same = sockets::loopback(port);
        CHECK(::bind(second.get(), reinterpret_cast<sockaddr*>(&same), sizeof same) != 0);
        CHECK(errno == EADDRINUSE);
        CHECK_FALSE(run_ss("-uanH 'sport = :" + std::to_string(port) + "'").empty());

        const auto facts = run_lab_json("--port " + std::to_string(port));
        CHECK(facts.at("sockets").empty());  // nothing listens there
        REQUIRE(facts.at("holders").size() == 1);
        const auto& row = facts.at("holders").at(0);
        CHECK(row.at("protocol") == "udp");
        CHECK(row.at("state") == "ESTAB");
        CHECK(row.at("local").at("port") == port);
        const auto text = run_command(shell_quote(lab) + " --port " + std::to_string(port), 60);
        CHECK(text.out.find("nobody") == std::string::npos);
    }
    SECTION("a dual-stack listener under -4") {
        if (!ipv6_loopback_available()) {
            WARN("no IPv6 loopback here; skipped");
            return;
        }
        const Fd listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const int off = 0;
        REQUIRE(::setsockopt(listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0);
        sockaddr_in6 any{};
        any.sin6_family = AF_INET6;
        any.sin6_addr = in6addr_any;
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) == 0);
        REQUIRE(::listen(listener.get(), 4) == 0);
        const Port port = port_of(listener.get());
        // The kernel's word: an IPv4 client reaches it.
        const Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        auto target = sockets::loopback(port);
        REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr*>(&target), sizeof target) == 0);

        const auto facts = run_lab_json("-4 --port " + std::to_string(port));
        bool listed = false;
        for (const auto& row : facts.at("sockets"))
            if (row.at("local").at("port") == port && row.at("state") == "LISTEN") listed = true;
        CHECK(listed);
    }
}

namespace {

// A process of the test's own, renamed with prctl(PR_SET_NAME) as any local user may, holding
// a TCP listener: its pid and port. Killed and reaped when the test ends.
struct RenamedListener {
    explicit RenamedListener(const std::string& name) {
        int ready[2];
        REQUIRE(pipe(ready) == 0);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
            const int fd = socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            socklen_t length = sizeof address;
            if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(fd, 1) != 0 ||
                getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
                _exit(1);
            const std::uint16_t bound_port = ntohs(address.sin_port);
            if (write(ready[1], &bound_port, sizeof bound_port) != sizeof bound_port) _exit(1);
            sleep(60);  // killed by the test long before
            _exit(0);
        }
        close(ready[1]);
        REQUIRE(read(ready[0], &port, sizeof port) == sizeof port);
        close(ready[0]);
    }
    ~RenamedListener() {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
    RenamedListener(const RenamedListener&) = delete;
    RenamedListener& operator=(const RenamedListener&) = delete;
    pid_t pid = -1;
    std::uint16_t port = 0;
};

}  // namespace

// Issue 12, items 4 and 5: any local user can give a process a name that retitles a terminal
// and is not UTF-8; a TA running lab07 (or root running --json) must get a table and a
// document, not escape sequences or "exit 1".
TEST_CASE("lab07 lists a process named with an escape sequence and a non-UTF-8 byte safely", "[lab07][safety]") {
    const RenamedListener renamed("\x1b]0;x\x07\xff");
    std::ifstream comm("/proc/" + std::to_string(renamed.pid) + "/comm");
    std::string kernel_name;
    std::getline(comm, kernel_name);
    REQUIRE(kernel_name == "\x1b]0;x\x07\xff");  // the kernel keeps the bytes as given

    const auto lab = shell_quote(bin_path("lab07_who_is_listening"));
    const auto text = run_command(lab + " --port " + std::to_string(renamed.port), 30);
    INFO("stderr: " << text.err);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find('\x1b') == std::string::npos);
    CHECK(text.out.find('\x07') == std::string::npos);
    CHECK(text.out.find('\xff') == std::string::npos);
    CHECK_THAT(text.out, Catch::Contains("pid=" + std::to_string(renamed.pid)));

    const auto run = run_command(lab + " --json --port " + std::to_string(renamed.port), 30);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out.find('\x1b') == std::string::npos);
    const auto document = json::parse(run.out);  // a strict parser: throws on invalid UTF-8
    bool found = false;
    for (const auto& socket : document.at("sockets"))
        for (const auto& process : socket.at("processes"))
            if (process.at("pid") == renamed.pid) {
                found = true;
                CHECK_THAT(process.at("name").get<std::string>(), Catch::StartsWith("\x1b]0;x\x07"));
            }
    CHECK(found);
}
