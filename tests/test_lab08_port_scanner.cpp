// Lab 08 against facts the test arranges itself: it opens listeners, binds ports without
// listening (the kernel answers RST there), runs UDP sockets that answer or stay silent,
// and checks what lab08_port_scanner --json reports for each. nmap, run on the same
// ports at the same moment, is the independent judge of the states; it is a required
// peer tool (tools/setup installs it), so without it the test fails.
#include <catch2/catch.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/net.hpp"
#include "portlab/scan.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"

using nlohmann::json;
using portlab::Port;
using namespace portlab::test;

namespace {

// A socket of ours on 127.0.0.1, closed when the test ends.
class Socket {
public:
    Socket(int type, bool listen_on_it) : fd_(::socket(AF_INET, type, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
        if (listen_on_it) REQUIRE(::listen(fd_, 16) == 0);
        socklen_t length = sizeof(address);
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
    }
    ~Socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    [[nodiscard]] Port port() const { return port_; }
    [[nodiscard]] int fd() const { return fd_; }
    void close() {
        ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
    Port port_ = 0;
};

// A UDP socket whose thread answers every datagram, for a bounded time.
class UdpEcho {
public:
    UdpEcho() : socket_(SOCK_DGRAM, false), thread_([this] { serve(); }) {}
    ~UdpEcho() {
        stop_ = true;
        thread_.join();
    }
    [[nodiscard]] Port port() const { return socket_.port(); }

private:
    void serve() {
        for (int rounds = 0; !stop_ && rounds < 600; ++rounds) {  // 600 x 100 ms at most
            pollfd poll_fd{socket_.fd(), POLLIN, 0};
            if (::poll(&poll_fd, 1, 100) != 1) continue;
            char buffer[512];
            sockaddr_storage sender{};
            socklen_t length = sizeof(sender);
            const auto n = ::recvfrom(socket_.fd(), buffer, sizeof(buffer), MSG_DONTWAIT,
                                      reinterpret_cast<sockaddr*>(&sender), &length);
            if (n >= 0) ::sendto(socket_.fd(), "pong", 4, 0, reinterpret_cast<sockaddr*>(&sender), length);
        }
    }
    Socket socket_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// A UDP port nobody holds: bound by the kernel's choice, then released.
Port free_udp_port() {
    Socket socket(SOCK_DGRAM, false);
    return socket.port();
}

std::set<Port> parse_ranges(const std::string& text) {
    std::set<Port> ports;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto item = text.substr(start, comma - start);
        const auto dash = item.find('-');
        const int low = std::stoi(item.substr(0, dash));
        const int high = dash == std::string::npos ? low : std::stoi(item.substr(dash + 1));
        for (int port = low; port <= high; ++port) ports.insert(static_cast<Port>(port));
        start = comma + 1;
    }
    return ports;
}

struct Seen {
    std::string state;
    std::string reason;
};

// port -> state and reason from one scan of lab08's JSON, closed ports included.
std::map<Port, Seen> states_of(const json& scan) {
    std::map<Port, Seen> seen;
    for (const auto& entry : scan.at("ports")) seen[entry.at("port").get<Port>()] = {entry.at("state"), entry.at("reason")};
    if (!scan.at("extraports").is_null())
        for (const Port port : parse_ranges(scan.at("extraports").at("ranges")))
            seen[port] = {scan.at("extraports").at("state"), scan.at("extraports").at("reason")};
    return seen;
}

json run_lab08(const std::string& arguments, int timeout_seconds = 60) {
    const auto result = run_command(shell_quote(bin_path("lab08_port_scanner")) + " --json --no-demo " + arguments,
                                    timeout_seconds);
    INFO("stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    return json::parse(result.out);
}

std::string port_list(const std::vector<Port>& ports) {
    std::string text;
    for (const Port port : ports) text += (text.empty() ? "" : ",") + std::to_string(port);
    return text;
}

// nmap's XML, reduced to port -> (state, reason) for the ports it lists one by one.
std::map<Port, Seen> nmap_verdicts(const std::string& xml) {
    std::map<Port, Seen> verdicts;
    const std::regex port_line(R"re(<port protocol="tcp" portid="(\d+)"><state state="([a-z|]+)" reason="([a-z-]+)")re");
    for (std::sregex_iterator it(xml.begin(), xml.end(), port_line), end; it != end; ++it)
        verdicts[static_cast<Port>(std::stoi((*it)[1]))] = {(*it)[2], (*it)[3]};
    return verdicts;
}

// Lines "PORT strerror-text" from blocking connect() calls, read as nmap's connect scan
// reads an errno (scan_engine_connect.cc): refused is closed, unreachable and
// permission denied (ICMPv6 administratively prohibited) are filtered.
std::map<Port, Seen> connect_verdicts(const std::string& lines) {
    static const std::map<std::string, Seen> by_error{
        {"Connection refused", {"closed", "conn-refused"}},
        {"No route to host", {"filtered", "host-unreach"}},
        {"Network is unreachable", {"filtered", "net-unreach"}},
        {"Permission denied", {"filtered", "admin-prohibited"}},
    };
    std::map<Port, Seen> verdicts;
    std::istringstream in(lines);
    for (std::string line; std::getline(in, line);) {
        const auto space = line.find(' ');
        if (space == std::string::npos) continue;
        const auto found = by_error.find(line.substr(space + 1));
        verdicts[static_cast<Port>(std::stoi(line.substr(0, space)))] =
            found != by_error.end() ? found->second : Seen{"(connect said: " + line.substr(space + 1) + ")", ""};
    }
    return verdicts;
}

// nmap's XML, reduced to port -> state; ports nmap folds into <extraports> get its state.
std::map<Port, std::string> nmap_states(const std::string& xml, const std::vector<Port>& asked) {
    std::map<Port, std::string> states;
    for (const auto& [port, verdict] : nmap_verdicts(xml)) states[port] = verdict.state;
    std::smatch extra;
    if (std::regex_search(xml, extra, std::regex(R"re(<extraports state="([a-z|]+)")re")))
        for (const Port port : asked)
            if (!states.count(port)) states[port] = extra[1];
    return states;
}

}  // namespace

TEST_CASE("a TCP connect scan finds listeners open and bound, non-listening ports closed", "[lab08][tcp]") {
    const Socket listener_a(SOCK_STREAM, true);
    const Socket listener_b(SOCK_STREAM, true);
    // Bound but not listening: the kernel owns the port for us and answers a SYN with RST.
    const Socket not_listening_a(SOCK_STREAM, false);
    const Socket not_listening_b(SOCK_STREAM, false);
    const std::vector<Port> ports{listener_a.port(), not_listening_a.port(), listener_b.port(), not_listening_b.port()};

    const auto facts = run_lab08("--scan tcp -p " + port_list(ports));
    REQUIRE(facts.at("scans").size() == 1);
    const auto& scan = facts.at("scans").at(0);
    CHECK(scan.at("protocol") == "tcp");
    CHECK(scan.at("ports_scanned") == ports.size());
    const auto seen = states_of(scan);
    for (const Port port : {listener_a.port(), listener_b.port()}) {
        CAPTURE(port);
        REQUIRE(seen.count(port) == 1);
        CHECK(seen.at(port).state == "open");
        CHECK(seen.at(port).reason == "syn-ack");
    }
    for (const Port port : {not_listening_a.port(), not_listening_b.port()}) {
        CAPTURE(port);
        REQUIRE(seen.count(port) == 1);
        CHECK(seen.at(port).state == "closed");
        CHECK(seen.at(port).reason == "conn-refused");
    }

    SECTION("the scanner closes open ports with RST, so no TIME-WAIT is left towards them") {
        const auto time_wait = run_command("ss -tanH state time-wait '( dport = :" + std::to_string(listener_a.port()) +
                                           " or dport = :" + std::to_string(listener_b.port()) + " )'");
        REQUIRE(time_wait.exit_code == 0);
        CHECK(time_wait.out.empty());
    }
}

TEST_CASE("a UDP scan: an answer means open, ICMP port unreachable closed, silence open|filtered", "[lab08][udp]") {
    const UdpEcho answering;
    const Socket silent(SOCK_DGRAM, false);
    const Port unbound = free_udp_port();

    const auto facts = run_lab08("--scan udp --timeout 300 -p " + port_list({answering.port(), silent.port(), unbound}));
    const auto seen = states_of(facts.at("scans").at(0));
    REQUIRE(seen.size() == 3);
    CHECK(seen.at(answering.port()).state == "open");
    CHECK(seen.at(answering.port()).reason == "udp-response");
    CHECK(seen.at(silent.port()).state == "open|filtered");
    CHECK(seen.at(silent.port()).reason == "no-response");
    CHECK(seen.at(unbound).state == "closed");
    CHECK(seen.at(unbound).reason == "port-unreach");
}

TEST_CASE("nmap -sT reports the same states for the same ports", "[lab08][nmap]") {
    REQUIRE(tool_available("nmap"));
    const Socket listener_a(SOCK_STREAM, true);
    const Socket listener_b(SOCK_STREAM, true);
    const Socket not_listening(SOCK_STREAM, false);
    // A small range around the listeners too, plus some well-known ports.
    std::vector<Port> ports{listener_a.port(), listener_b.port(), not_listening.port(), 1, 7, 9, 13, 37, 79};
    for (Port port = 1020; port <= 1030; ++port) ports.push_back(port);

    const auto nmap = run_command("nmap -n -Pn -sT -p " + port_list(ports) + " 127.0.0.1 -oX -", 120);
    INFO("nmap stderr: " << nmap.err);
    REQUIRE(nmap.exit_code == 0);
    const auto theirs = nmap_states(nmap.out, ports);
    const auto ours = states_of(run_lab08("--scan tcp -p " + port_list(ports)).at("scans").at(0));
    REQUIRE(theirs.size() == ports.size());
    for (const Port port : ports) {
        CAPTURE(port);
        REQUIRE(ours.count(port) == 1);
        CHECK(ours.at(port).state == theirs.at(port));
    }
    CHECK(theirs.at(listener_a.port()) == "open");
    CHECK(theirs.at(not_listening.port()) == "closed");
}

TEST_CASE("top N (--top) scans the same ports as nmap --top-ports N", "[lab08][nmap]") {
    REQUIRE(tool_available("nmap"));
    const auto nmap = run_command("nmap -n -Pn -sT --top-ports 100 127.0.0.1 -oX -", 120);
    REQUIRE(nmap.exit_code == 0);
    std::smatch services;
    REQUIRE(std::regex_search(nmap.out, services, std::regex(R"re(<scaninfo type="connect" protocol="tcp" numservices="100" services="([0-9,-]+)")re")));
    const auto facts = run_lab08("--scan tcp --top 100");
    CHECK(parse_ranges(facts.at("scans").at(0).at("port_list")) == parse_ranges(services[1]));
}

TEST_CASE("a connect that meets itself is not reported open", "[lab08][self-connect]") {
    // In a private namespace whose ephemeral range is the single port 40000, every
    // connect() to 127.0.0.1:40000 gets source port 40000 too: a self-connect.
    REQUIRE(tool_available("unshare"));
    const auto result = run_command(
        "unshare -rn sh -c 'ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range=\"40000 40000\" && " +
            shell_quote(bin_path("lab08_port_scanner")) + " --json --no-demo -p 40000,40001'",
        60);
    INFO("stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    const auto facts = json::parse(result.out);
    for (const auto& scan : facts.at("scans")) {
        CAPTURE(scan.at("protocol"));
        const auto seen = states_of(scan);
        CHECK(seen.at(40000).state == "closed");
        CHECK(seen.at(40000).reason == "self-connect");
        CHECK(scan.at("self_connects").get<int>() >= 1);
        CHECK(seen.at(40001).state == "closed");
    }
}

TEST_CASE("bad targets and port lists are refused with exit status 2 and one line", "[lab08][usage]") {
    const auto [arguments, why] = GENERATE(table<std::string, std::string>({
        {"8.8.8.8", "not loopback"},
        {"192.168.1.1", "not loopback"},
        {"::2", "not loopback"},
        {"example.com", "not an address"},
        {"-p 70000", "port out of range"},
        {"-p 0", "port 0"},
        {"-p 20-10", "backwards range"},
        {"-p 80,,81", "empty item"},
        {"-p nosuchservice", "unknown name"},
        {"--top 10 -p 80", "both --top and --ports"},
    }));
    CAPTURE(arguments, why);
    const auto result = run_command(shell_quote(bin_path("lab08_port_scanner")) + " " + arguments, 30);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK(lines_of(result.err).size() == 1);
}

TEST_CASE("lab08 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab08][conventions]") {
    check_lab_conventions({"lab08_port_scanner", false, "--scan tcp --ports 1-64"});
}

// The trace tells the scan port by port: replayed as portlab-viz replays it, the
// scanner's table holds, for each port the test arranged, the state the kernel's own
// sockets make it (a listener: open; bound, not listening: closed; a silent UDP socket:
// open|filtered; nobody: closed), and nmap -sT agrees on the TCP ports.
TEST_CASE("lab08's trace replays the scan: a probe before each verdict, each port as the kernel has it",
          "[lab08][trace]") {
    const Socket listener(SOCK_STREAM, true);
    const Socket not_listening(SOCK_STREAM, false);
    const Socket silent(SOCK_DGRAM, false);
    const Port unbound = free_udp_port();
    const TempDir dir;
    const std::string trace_path = dir.file("scan.jsonl");
    const auto result = run_command(shell_quote(bin_path("lab08_port_scanner")) + " --no-demo --timeout 300 --retries 0 -p " +
                                        port_list({listener.port(), not_listening.port(), silent.port(), unbound}) +
                                        " --trace " + shell_quote(trace_path),
                                    60);
    INFO("stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    const auto trace = portlab::trace::read_trace_file(trace_path);
    REQUIRE(trace);

    // Every verdict follows at least one probe to the same port of the same scan.
    std::set<std::pair<int, Port>> probed;
    std::size_t verdicts = 0;
    for (const auto& event : trace->events) {
        if (const auto* probe = std::get_if<portlab::trace::ScanProbe>(&event.body)) {
            CHECK(event.host == "scanner");
            probed.insert({static_cast<int>(probe->scan), probe->target.port});
        }
        if (const auto* verdict = std::get_if<portlab::trace::ScanResult>(&event.body)) {
            CAPTURE(verdict->target.to_string());
            CHECK(probed.contains({static_cast<int>(verdict->scan), verdict->target.port}));
            ++verdicts;
        }
    }
    CHECK(verdicts == 8);  // four ports, TCP and UDP

    portlab::replay::State world;
    for (const auto& event : trace->events) world.apply(event);
    const auto scanner = world.find_host("scanner");
    REQUIRE(scanner);
    const auto& scanned = world.hosts()[*scanner].scanned;
    const auto state_of = [&](portlab::scan::ScanType type, Port port) -> std::string {
        const auto found = scanned.find({type, portlab::Endpoint{portlab::IpAddress::loopback_v4(), port}});
        if (found == scanned.end() || !found->second.state) return "(not scanned)";
        return std::string(portlab::scan::to_string(*found->second.state));
    };
    using portlab::scan::ScanType;
    CHECK(state_of(ScanType::connect, listener.port()) == "open");
    CHECK(state_of(ScanType::connect, not_listening.port()) == "closed");
    CHECK(state_of(ScanType::udp, silent.port()) == "open|filtered");
    CHECK(state_of(ScanType::udp, unbound) == "closed");

    const std::vector<Port> tcp_ports{listener.port(), not_listening.port()};
    const auto nmap = run_command("nmap -n -Pn -sT -oX - -p " + port_list(tcp_ports) + " 127.0.0.1", 60);
    REQUIRE(nmap.exit_code == 0);
    const auto judged = nmap_states(nmap.out, tcp_ports);
    for (const Port port : tcp_ports) {
        CAPTURE(port);
        REQUIRE(judged.count(port) == 1);
        CHECK(state_of(ScanType::connect, port) == judged.at(port));
    }
}

// Issue 15, item 1: a port whose firewall rule rejects answers at once, and lab08 must say
// so at once, as nmap -sT does: an ICMP error that comes back while connect() holds the
// socket is a soft error (tcp_v4_err/tcp_v6_err), connect() says EALREADY until the SYN is
// retransmitted, and only SO_ERROR has the answer. Every reject nft offers, IPv4 and IPv6,
// in a private network namespace (unshare -rn) with nft's rules, and the scan must take
// milliseconds, not the 3-second timeout.
//
// The judges. Over IPv4, nmap -sT in the same namespace, state and reason. Over IPv6 nmap
// is no steady judge: the ICMPv6 answer lands while connect() still holds the socket
// (nstat's TcpExtLockDroppedIcmps counts it), tcp_v6_err keeps it as a soft error that
// wakes nobody, and nmap, which only reads SO_ERROR once poll() says so, gives the probe up
// before the kernel's own SYN retransmission (1 s) turns the answer into a hard error; so
// it says "filtered no-response" on some runs and on all of them with two ports. There the
// kernel judges: a blocking connect() per port (bash's /dev/tcp) waits for that hard
// error, and its errno is read as nmap's connect scan reads one (ECONNREFUSED closed
// conn-refused; EHOSTUNREACH, ENETUNREACH, EACCES filtered host-unreach, net-unreach,
// admin-prohibited). Where nmap did hear the answer, it must still agree.
TEST_CASE("lab08: ports a firewall rejects, with every ICMP type nft offers or a TCP reset, answer as nmap -sT says and at once",
          "[lab08][tcp][firewall]") {
    const auto family = GENERATE(as<std::string>{}, "127.0.0.1", "::1");
    CAPTURE(family);
    const std::vector<std::pair<Port, std::string>> rules{
        {5001, "reject"},
        {5002, "reject with icmpx type port-unreachable"},
        {5003, "reject with icmpx type admin-prohibited"},
        {5004, "reject with icmpx type host-unreachable"},
        {5005, "reject with icmpx type no-route"},
        {5006, "reject with tcp reset"},
    };
    std::string script = "set -e; ip link set lo up; nft add table inet t; "
                         "nft add chain inet t input '{ type filter hook input priority 0; policy accept; }'; ";
    for (const auto& [port, action] : rules)
        script += "nft add rule inet t input tcp dport " + std::to_string(port) + " " + action + "; ";
    const std::string ports = "5001-5006";
    script += shell_quote(bin_path("lab08_port_scanner")) + " --json --no-demo --scan tcp --timeout 3000 -p " + ports +
              " " + family + "; echo '@@@'; nmap -n -Pn -sT --reason -oX - -p " + ports +
              (family == "::1" ? " -6 " : " ") + family + "; echo '@@@'; ";
    // One blocking connect() per port, side by side; "PORT errno text" per line.
    for (const auto& [port, action] : rules)
        script += "(m=$(timeout 10 bash -c 'exec 3<>/dev/tcp/" + family + "/" + std::to_string(port) +
                  "' 2>&1 || true); echo \"" + std::to_string(port) + " ${m##*: }\") & ";
    script += "wait";
    const auto result = run_command("unshare -rn bash -c " + shell_quote(script), 120);
    INFO("stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    const auto first_split = result.out.find("@@@");
    REQUIRE(first_split != std::string::npos);
    const auto second_split = result.out.find("@@@", first_split + 3);
    REQUIRE(second_split != std::string::npos);
    const auto facts = json::parse(result.out.substr(0, first_split));
    const auto nmap_said = nmap_verdicts(result.out.substr(first_split, second_split - first_split));
    const auto kernel_said = connect_verdicts(result.out.substr(second_split + 3));
    const auto& judged = family == "::1" ? kernel_said : nmap_said;
    const auto& scan = facts.at("scans").at(0);
    const auto seen = states_of(scan);
    for (const auto& [port, action] : rules) {
        CAPTURE(port, action);
        REQUIRE(seen.count(port) == 1);
        REQUIRE(judged.count(port) == 1);
        CHECK(seen.at(port).state == judged.at(port).state);
        CHECK(seen.at(port).reason == judged.at(port).reason);
        if (nmap_said.count(port) == 1 && nmap_said.at(port).reason != "no-response") {
            CHECK(seen.at(port).state == nmap_said.at(port).state);
            CHECK(seen.at(port).reason == nmap_said.at(port).reason);
        }
    }
    // Six answers that come back within the connect() calls: milliseconds, where waiting
    // for the retransmitted SYN would take a second and the timeout three.
    CHECK(scan.at("elapsed_ms").get<double>() < 500.0);
}

TEST_CASE("lab08 -p takes service names with a dash (ftp-data, http-alt) as names, not ranges", "[lab08][usage]") {
    // libc's getservbyname is the judge of what the names mean on this machine.
    const servent* ftp_data = getservbyname("ftp-data", "tcp");
    const servent* http_alt = getservbyname("http-alt", "tcp");
    INFO("netbase's /etc/services lists both names");
    REQUIRE(ftp_data != nullptr);
    REQUIRE(http_alt != nullptr);
    const auto ftp_data_port = ntohs(static_cast<std::uint16_t>(ftp_data->s_port));
    const auto http_alt_port = ntohs(static_cast<std::uint16_t>(http_alt->s_port));
    const auto facts = portlab::test::LabBinary("lab08_port_scanner").json("-p ftp-data,http-alt");
    const auto list = facts["scans"][0]["port_list"].get<std::string>();
    CAPTURE(list);
    std::set<std::string> ports;
    std::istringstream in(list);
    for (std::string port; std::getline(in, port, ',');) ports.insert(port);
    CHECK(ports.count(std::to_string(ftp_data_port)) == 1);
    CHECK(ports.count(std::to_string(http_alt_port)) == 1);
}

// Issue 15 item 12: the SERVICE column reads /etc/services, nmap reads nmap-services. The lab
// says so, and gives nmap's name beside its own: it must be the name nmap itself reports.
TEST_CASE("lab08 gives, beside /etc/services' name, the name nmap reports for the same port", "[lab08][nmap]") {
    REQUIRE(tool_available("nmap"));
    std::vector<sockets::Fd> listeners;
    std::vector<Port> ports;
    for (const Port port : {Port{8000}, Port{8080}, Port{1080}, Port{3128}}) {
        sockets::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const auto address = sockets::loopback(port);
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) continue;  // busy here
        REQUIRE(::listen(fd.get(), 4) == 0);
        listeners.push_back(std::move(fd));
        ports.push_back(port);
    }
    REQUIRE_FALSE(ports.empty());
    const auto nmap = run_command("nmap -n -Pn -sT -p " + port_list(ports) + " 127.0.0.1 -oX -", 60);
    REQUIRE(nmap.exit_code == 0);
    std::map<Port, std::string> nmap_names;
    const std::regex named(R"re(<port protocol="tcp" portid="(\d+)">.*?<service name="([^"]+)")re");
    for (std::sregex_iterator it(nmap.out.begin(), nmap.out.end(), named), end; it != end; ++it)
        nmap_names[static_cast<Port>(std::stoi((*it)[1]))] = (*it)[2];
    const auto scan = run_lab08("--scan tcp -p " + port_list(ports)).at("scans").at(0);
    std::size_t compared = 0;
    for (const auto& entry : scan.at("ports")) {
        const auto port = entry.at("port").get<Port>();
        CAPTURE(port);
        REQUIRE(nmap_names.count(port) == 1);
        CHECK(entry.at("nmap_service") == nmap_names.at(port));
        // and the lab's own column is libc's name for it (unknown when /etc/services has none)
        const servent* libc = getservbyport(htons(port), "tcp");
        CHECK(entry.at("service") == (libc != nullptr ? std::string(libc->s_name) : std::string("unknown")));
        ++compared;
    }
    CHECK(compared == ports.size());
}

// Issue 15 item 8: lab08's fast UDP scan is a loopback artefact. With --veth the lab scans
// the same closed ports over a private namespace's lo and across a veth link; the kernel
// answers every one on lo and rate-limits its ICMP across the link (test_netns counts the
// same thing with bare sockets).
TEST_CASE("lab08 --veth: every closed UDP port answers over lo, few across a veth link", "[lab08][netns][veth]") {
    REQUIRE(run_command("unshare -rn true", 10).exit_code == 0);
    const auto facts = run_lab08("--veth --scan udp -p 20000-20099", 60);
    const auto& compared = facts.at("veth_comparison");
    REQUIRE(compared.at("available") == true);
    CHECK(compared.at("lo").at("counts").at("closed") == 100);
    const auto& veth = compared.at("veth").at("counts");
    const auto closed = veth.value("closed", 0);
    CHECK(closed >= 1);    // the neighbour answers...
    CHECK(closed <= 20);   // ...at the rate limit: a burst of 6, then 1 per second
    CHECK(closed + veth.value("open|filtered", 0) == 100);
}
