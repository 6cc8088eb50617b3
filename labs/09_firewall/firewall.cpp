// Lab 09: a firewall decides what a scan sees. Open, closed, filtered, and why filtered is slow.
//
// Inside a private user + network namespace that the lab makes itself (so the machine's
// own firewall is never touched), it starts TCP and UDP listeners, installs nftables
// rules through libnftables (drop one port, reject another with a TCP reset, answer a
// UDP port with ICMP port unreachable, accept the rest), and scans:
//   - a connect scan: a SYN answered by SYN-ACK is open, by RST closed, by nothing filtered;
//   - a UDP scan: a reply is open, ICMP port unreachable closed, silence open|filtered;
//   - an ACK scan with a raw socket: any RST back means "unfiltered", silence "filtered".
// Each answer comes with its time: a reject answers in microseconds, a drop makes the
// prober wait for its own timeout.
//
//   lab09_firewall                 ports 8080-8083, probe timeout 1000 ms
//   lab09_firewall --timeout 300 --port 9000
//   lab09_firewall --json

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "labkit/nftables.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/posix.hpp"
#include "portlab/packet.hpp"
#include "portlab/syn_schedule.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Port default_port = 8080;

// ---- the plan: which port gets which listener and which rule ---------------------------

// One (protocol, port) of the lab, what listens there and what the firewall does to it.
struct Target {
    Protocol protocol;
    Port port;
    bool listener;                                 // a socket is bound (and listening, for TCP)
    std::optional<firewall::Action> rule;          // nullopt: no rule, the policy accepts
};

// Four ports, each with a TCP and a UDP socket where `listener` says so:
//   P    accept (no rule)          TCP listener, UDP echo server        -> open, open
//   P+1  drop                      TCP listener, UDP socket              -> filtered, open|filtered
//   P+2  reject (tcp reset / icmp) TCP listener, UDP socket              -> closed, closed
//   P+3  no rule, nothing bound                                          -> closed, closed
// Ports P+1 and P+2 have listeners on purpose: what the scan reports there is the
// firewall's doing, not the service's.
std::vector<Target> plan_for(Port base) {
    using firewall::Action;
    std::vector<Target> targets;
    for (const auto protocol : {Protocol::tcp, Protocol::udp}) {
        const auto reject = protocol == Protocol::tcp ? Action::reject_tcp_reset : Action::reject_icmp_port_unreachable;
        targets.push_back({protocol, base, true, std::nullopt});
        targets.push_back({protocol, static_cast<Port>(base + 1), true, Action::drop});
        targets.push_back({protocol, static_cast<Port>(base + 2), true, reject});
        targets.push_back({protocol, static_cast<Port>(base + 3), false, std::nullopt});
    }
    return targets;
}

std::string rule_name(const Target& target) {
    return target.rule ? std::string(firewall::to_string(*target.rule)) : "none (policy accept)";
}

// ---- small POSIX helpers (labkit/posix.hpp): a scan needs the exact answer and time of each probe

std::int64_t microseconds_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

Result<Fd> open_listener(Protocol protocol, const Endpoint& endpoint) {
    Fd fd(socket(AF_INET, (protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0));
    const auto address = socket_address(endpoint);
    if (!fd.ok() || bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        (protocol == Protocol::tcp && listen(fd.get(), 16) != 0))
        return fail("bind " + endpoint.to_string() + ": " + errno_text(errno), {errno, std::generic_category()});
    return fd;
}

// ---- the three probes ----------------------------------------------------------------------

struct Verdict {
    std::string state;   // open, closed, filtered, open|filtered, unfiltered
    std::string reason;  // as nmap says it: syn-ack, reset, no-response, udp-response, port-unreach
    std::string errno_name;
    std::int64_t elapsed_us = 0;
};

// A TCP connect scan probe: non-blocking connect() and poll() for at most `timeout`.
Verdict connect_probe(const Endpoint& target, std::chrono::milliseconds timeout) {
    const auto start = Clock::now();
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const auto address = socket_address(target);
    int error = 0;
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        error = errno;
        if (error == EINPROGRESS) {
            pollfd waiting{fd.get(), POLLOUT, 0};
            if (poll(&waiting, 1, static_cast<int>(timeout.count())) == 0)
                return {"filtered", "no-response", "", microseconds_since(start)};
            socklen_t length = sizeof error;
            getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
        }
    }
    const auto elapsed = microseconds_since(start);
    if (error == 0) return {"open", "syn-ack", "", elapsed};
    if (error == ECONNREFUSED) return {"closed", "reset", "ECONNREFUSED", elapsed};
    return {"filtered", "error", errno_text(error), elapsed};
}

// A UDP probe from a connected socket: the kernel turns an ICMP port unreachable for it
// into ECONNREFUSED on the next receive (udp(7)); an unconnected socket would never hear it.
Verdict udp_probe(const Endpoint& target, std::chrono::milliseconds timeout) {
    const auto start = Clock::now();
    Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const auto address = socket_address(target);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        send(fd.get(), "probe", 5, 0) < 0)
        return {"error", "send failed", errno_text(errno), microseconds_since(start)};
    pollfd waiting{fd.get(), POLLIN, 0};
    if (poll(&waiting, 1, static_cast<int>(timeout.count())) == 0)
        return {"open|filtered", "no-response", "", microseconds_since(start)};
    char reply[64];
    const auto received = recv(fd.get(), reply, sizeof reply, MSG_DONTWAIT);
    const int error = received < 0 ? errno : 0;
    const auto elapsed = microseconds_since(start);
    if (received >= 0) return {"open", "udp-response", "", elapsed};
    if (error == ECONNREFUSED) return {"closed", "port-unreach", "ECONNREFUSED", elapsed};
    return {"error", "recv failed", errno_text(error), elapsed};
}

// The ACK scan (nmap -sA): a bare ACK belongs to no connection, so whatever receives it
// answers with a RST (RFC 793 3.4, "reset generation": a segment for no connection, or an
// ACK to a LISTEN socket). A RST back proves the packet got through: "unfiltered", open
// or closed alike. Silence means something dropped it: "filtered". Raw sockets need
// CAP_NET_RAW, which root of the private namespace holds over the namespace's network.
struct AckScan {
    std::map<Port, Verdict> verdicts;
    std::vector<trace::Packet> packets;  // probes sent, answers received, for the trace
};

Result<AckScan> ack_scan(const IpAddress& address, const std::vector<Port>& ports, std::chrono::milliseconds timeout) {
    Fd sender(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));  // we write the IP header
    Fd listener(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP)); // a copy of every TCP packet in
    if (!sender.ok() || !listener.ok()) return fail("raw socket: " + errno_text(errno), {errno, std::generic_category()});

    constexpr Port probe_source_port = 61234;  // above the namespace's ephemeral range: no socket owns it
    AckScan scan;
    std::map<Port, Clock::time_point> sent_at;
    for (const Port port : ports) {
        IpHeader ip;
        ip.source = address;
        ip.destination = address;
        TcpHeader tcp;
        tcp.source_port = probe_source_port;
        tcp.destination_port = port;
        tcp.sequence = 0x1000u + port;
        tcp.acknowledgment = 0x50000000u + port;  // acknowledges data nobody sent
        tcp.flags = tcp_flag::ack;
        tcp.window = 1024;
        auto bytes = encode_tcp(ip, tcp);
        if (!bytes) return bytes.error();
        const auto destination = socket_address({address, port});
        sent_at[port] = Clock::now();
        if (sendto(sender.get(), bytes->data(), bytes->size(), 0, reinterpret_cast<const sockaddr*>(&destination),
                   sizeof destination) < 0)
            return fail("sendto (raw): " + errno_text(errno), {errno, std::generic_category()});
        scan.packets.push_back({trace::PacketKind::sent, *bytes, LinkType::raw, std::nullopt, "localhost", "localhost"});
    }

    const auto deadline = Clock::now() + timeout;
    while (scan.verdicts.size() < ports.size() && Clock::now() < deadline) {
        pollfd waiting{listener.get(), POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (poll(&waiting, 1, static_cast<int>(std::max<std::int64_t>(left, 1))) <= 0) continue;
        std::uint8_t buffer[2048];
        const auto received = recv(listener.get(), buffer, sizeof buffer, 0);
        if (received <= 0) continue;
        const auto packet = decode_ip(std::span<const std::uint8_t>(buffer, static_cast<std::size_t>(received)));
        // Our own probes loop back into this socket too; only a RST to the probe's port counts.
        if (!packet || !packet->tcp || packet->tcp->destination_port != probe_source_port ||
            (packet->tcp->flags & tcp_flag::rst) == 0 || !sent_at.contains(packet->tcp->source_port))
            continue;
        const Port port = packet->tcp->source_port;
        scan.verdicts[port] = {"unfiltered", "reset", "", microseconds_since(sent_at[port])};
        scan.packets.push_back({trace::PacketKind::delivered,
                                Bytes(buffer, buffer + received), LinkType::raw, std::nullopt, "localhost", "localhost"});
    }
    for (const Port port : ports) {
        if (!scan.verdicts.contains(port)) scan.verdicts[port] = {"filtered", "no-response", "", microseconds_since(sent_at[port])};
    }
    return scan;
}

// ---- output ---------------------------------------------------------------------------------

std::string time_text(std::int64_t microseconds) {
    if (microseconds < 10'000) return fmt::format("{} us", microseconds);
    return fmt::format("{:.0f} ms", static_cast<double>(microseconds) / 1000.0);
}

json verdict_json(const Target& target, const Verdict& verdict) {
    return {{"protocol", to_string(target.protocol)}, {"port", target.port}, {"listener", target.listener},
            {"rule", target.rule ? json(firewall::to_string(*target.rule)) : json(nullptr)},
            {"state", verdict.state}, {"reason", verdict.reason},
            {"errno", verdict.errno_name.empty() ? json(nullptr) : json(verdict.errno_name)},
            {"elapsed_us", verdict.elapsed_us}};
}

// A sysctl of this namespace's net.ipv4, or `fallback` where the kernel has none.
int read_ipv4_sysctl(const std::string& name, int fallback) {
    std::ifstream file("/proc/sys/net/ipv4/" + name);
    int value = fallback;
    if (!(file >> value)) return fallback;
    return value;
}

// Linux's SYN schedule with this namespace's sysctls (portlab/syn_schedule.hpp: since 6.5
// the first tcp_syn_linear_timeouts retransmissions keep the 1 s wait and come on top of
// tcp_syn_retries, later waits double), in whole seconds after the first SYN.
struct SynScheduleSeconds {
    std::vector<std::uint64_t> retransmit_at_s;
    std::uint64_t give_up_s = 0;
};

SynScheduleSeconds kernel_syn_schedule(int retries, int linear) {
    SynSchedule schedule;
    schedule.syn_retries = static_cast<std::uint32_t>(std::clamp(retries, 0, 255));
    schedule.linear_timeouts = static_cast<std::uint32_t>(std::clamp(linear, 0, 255));
    SynScheduleSeconds seconds;
    for (const auto at_us : schedule.retransmit_at_us()) seconds.retransmit_at_s.push_back(at_us / 1'000'000);
    seconds.give_up_s = schedule.give_up_at_us() / 1'000'000;
    return seconds;
}

// ---- the lab, run inside the namespace ---------------------------------------------------

struct Settings {
    IpAddress address;
    Port base_port;
    std::chrono::milliseconds timeout;
    std::uint64_t host_netns;
};

json run_inside(Lab& lab, const Settings& settings) {
    auto& say = lab.narrate();
    auto& trace = lab.trace();
    json facts = {{"lab", lab.name()}, {"timeout_ms", settings.timeout.count()}};

    // 1. Where we are.
    say.step("make a private user + network namespace (the machine's own firewall is not touched)");
    const auto interfaces = firewall::interface_names();
    const auto token = firewall::PrivateNetnsToken::confirm(settings.host_netns);
    if (!token) throw std::runtime_error(token.error().message);
    say.kernel(fmt::format("network namespace {} (the lab started in {}); interfaces: {}", token->netns_id(),
                           settings.host_netns, fmt::join(interfaces.value_or({}), ", ")));
    say.note(fmt::format("this process is PID {} on the host; its sockets and rules live only in here", getpid()));
    facts["namespace"] = {{"private", true}, {"netns_id", token->netns_id()}, {"host_netns_id", settings.host_netns},
                          {"interfaces", interfaces.value_or({})}, {"pid", getpid()}};

    // 2. Listeners.
    const auto targets = plan_for(settings.base_port);
    say.step(fmt::format("open listeners on {} ports {}-{} (TCP and UDP); port {} stays empty", settings.address.to_string(),
                         settings.base_port, settings.base_port + 2, settings.base_port + 3));
    std::vector<Fd> sockets;
    int udp_echo_fd = -1;
    json listeners = json::array();
    for (const auto& target : targets) {
        if (!target.listener) continue;
        const Endpoint endpoint{settings.address, target.port};
        auto fd = open_listener(target.protocol, endpoint);
        if (!fd) throw std::runtime_error(fd.error().message);
        const auto id = trace.socket_created("localhost", target.protocol, IpFamily::v4);
        trace.bound("localhost", id, endpoint, trace::BindHow::explicit_port);
        if (target.protocol == Protocol::tcp) trace.listening("localhost", id, 16);
        if (target.protocol == Protocol::udp && target.port == settings.base_port) udp_echo_fd = fd->get();
        sockets.push_back(std::move(*fd));
        listeners.push_back({{"protocol", to_string(target.protocol)}, {"port", target.port}});
    }
    say.kernel(fmt::format("{} sockets bound; UDP {} echoes what it receives", listeners.size(), settings.base_port));
    say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tuan", getpid()));
    facts["listeners"] = listeners;

    // The UDP echo server: one thread, polling so it can stop.
    std::atomic<bool> stop{false};
    std::thread echo([&stop, udp_echo_fd] {
        while (!stop.load()) {
            pollfd waiting{udp_echo_fd, POLLIN, 0};
            if (poll(&waiting, 1, 50) <= 0) continue;
            char buffer[512];
            sockaddr_in from{};
            socklen_t length = sizeof from;
            const auto count = recvfrom(udp_echo_fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (count >= 0) sendto(udp_echo_fd, buffer, static_cast<std::size_t>(count), 0, reinterpret_cast<sockaddr*>(&from), length);
        }
    });
    struct Joiner {
        std::atomic<bool>& stop;
        std::thread& thread;
        ~Joiner() { stop = true; if (thread.joinable()) thread.join(); }
    } joiner{stop, echo};

    // 3. Rules.
    say.step("install nftables rules through libnftables (one transaction)");
    auto nft = firewall::Nftables::open(*token);
    if (!nft) throw std::runtime_error(nft.error().message);
    std::vector<firewall::Rule> rules;
    json rules_json = json::array();
    for (const auto& target : targets) {
        if (!target.rule) continue;
        rules.push_back({target.protocol, target.port, *target.rule});
        rules_json.push_back({{"protocol", to_string(target.protocol)}, {"port", target.port},
                              {"action", firewall::to_string(*target.rule)},
                              {"nft", *firewall::rule_text(rules.back())}});
        say.fact("rule", *firewall::rule_text(rules.back()));
    }
    if (auto applied = nft->apply(rules); !applied) throw std::runtime_error(applied.error().message);
    say.kernel("ruleset accepted; everything else passes (policy accept)");
    say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net nft list ruleset", getpid()));
    facts["rules"] = rules_json;
    trace.note("nftables rules installed: " + rules_json.dump());

    // 4. Connect scan.
    say.step(fmt::format("TCP connect scan: connect() to each port, waiting at most {} ms", settings.timeout.count()));
    json tcp_scan = json::array();
    for (const auto& target : targets) {
        if (target.protocol != Protocol::tcp) continue;
        const Endpoint endpoint{settings.address, target.port};
        const auto probe = trace.socket_created("localhost", Protocol::tcp, IpFamily::v4);
        trace.connect_started("localhost", probe, endpoint);
        const auto verdict = connect_probe(endpoint, settings.timeout);
        if (!verdict.errno_name.empty())
            trace.call_failed("localhost", probe, "connect", std::error_code(ECONNREFUSED, std::generic_category()));
        if (verdict.reason == "no-response") trace.note(fmt::format("no answer from TCP {} within {} ms", target.port, settings.timeout.count()));
        trace.closed("localhost", probe);
        say.kernel(fmt::format("{:>5}/tcp  {:<14} {:<12} after {:>8}   rule: {}{}", target.port, verdict.state, verdict.reason,
                               time_text(verdict.elapsed_us), rule_name(target), target.listener ? "" : ", nothing listening"));
        tcp_scan.push_back(verdict_json(target, verdict));
    }
    facts["tcp_scan"] = tcp_scan;
    const auto first_port = settings.base_port, last_port = static_cast<Port>(settings.base_port + 3);
    say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net nmap -sT -Pn --reason -p {}-{} {}", getpid(),
                                    first_port, last_port, settings.address.to_string()));

    // 5. UDP scan.
    say.step(fmt::format("UDP scan: one datagram to each port from a connected socket, waiting at most {} ms",
                         settings.timeout.count()));
    json udp_scan = json::array();
    for (const auto& target : targets) {
        if (target.protocol != Protocol::udp) continue;
        const auto verdict = udp_probe({settings.address, target.port}, settings.timeout);
        say.kernel(fmt::format("{:>5}/udp  {:<14} {:<12} after {:>8}   rule: {}{}", target.port, verdict.state, verdict.reason,
                               time_text(verdict.elapsed_us), rule_name(target), target.listener ? "" : ", nothing bound"));
        udp_scan.push_back(verdict_json(target, verdict));
    }
    facts["udp_scan"] = udp_scan;
    say.note(fmt::format("UDP {} is silent because of the drop; a bound socket that never replies is silent too: "
                         "a UDP scanner cannot tell them apart (open|filtered)", settings.base_port + 1));
    say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net nmap -sU -Pn --reason -p {}-{} {}", getpid(),
                                    first_port, last_port, settings.address.to_string()));

    // 6. Why filtered is slow.
    const int retries = read_ipv4_sysctl("tcp_syn_retries", 6);
    const int linear = read_ipv4_sysctl("tcp_syn_linear_timeouts", 0);  // absent before Linux 6.5
    say.step("why filtered is slow");
    say.note("a reject (or a closed port) answers at once: the RST or ICMP error is the answer");
    say.note(fmt::format("a drop answers nothing, so the prober waits for its own timeout ({} ms here)", settings.timeout.count()));
    const auto schedule = kernel_syn_schedule(retries, linear);
    say.kernel(fmt::format("net.ipv4.tcp_syn_retries = {}{}: left alone, connect() would retransmit the SYN {} times, "
                           "at {} s, and give up after about {} s",
                           retries, linear > 0 ? fmt::format(" plus tcp_syn_linear_timeouts = {} (Linux 6.5+)", linear) : "",
                           schedule.retransmit_at_s.size(), fmt::join(schedule.retransmit_at_s, ", "), schedule.give_up_s));
    facts["tcp_syn_retries"] = retries;
    facts["tcp_syn_linear_timeouts"] = linear;
    facts["kernel_syn_retransmit_at_s"] = schedule.retransmit_at_s;
    facts["kernel_connect_give_up_s"] = schedule.give_up_s;
    say.see_it_yourself("sysctl net.ipv4.tcp_syn_retries net.ipv4.tcp_syn_linear_timeouts");

    // 7. ACK scan.
    say.step("ACK scan with a raw socket (nmap -sA): a bare ACK to each TCP port");
    std::vector<Port> tcp_ports;
    for (const auto& target : targets)
        if (target.protocol == Protocol::tcp) tcp_ports.push_back(target.port);
    const auto acks = ack_scan(settings.address, tcp_ports, settings.timeout);
    json ack_json = json::array();
    if (!acks) {
        say.kernel("raw sockets unavailable: " + acks.error().message);
        facts["ack_scan_error"] = acks.error().message;
    } else {
        for (const auto& packet : acks->packets) trace.record("localhost", packet);
        for (const auto& target : targets) {
            if (target.protocol != Protocol::tcp) continue;
            const auto& verdict = acks->verdicts.at(target.port);
            say.kernel(fmt::format("{:>5}/tcp  {:<14} {:<12} after {:>8}   rule: {}", target.port, verdict.state,
                                   verdict.reason, time_text(verdict.elapsed_us), rule_name(target)));
            ack_json.push_back(verdict_json(target, verdict));
        }
        say.note("an ACK scan maps the firewall, not the services: open and closed ports both answer RST");
        say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net nmap -sA -Pn --reason -p {}-{} {}", getpid(),
                                        first_port, last_port, settings.address.to_string()));
    }
    facts["ack_scan"] = ack_json;

    // 8. The ruleset as the kernel holds it.
    say.step("the ruleset, listed back from the kernel (nft list ruleset)");
    const auto listing = nft->list_ruleset();
    const auto listing_json = nft->list_ruleset_json();
    if (listing) {
        std::string_view rest = *listing;
        while (!rest.empty()) {
            const auto end = rest.find('\n');
            say.note(std::string(rest.substr(0, end)));
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
    }
    facts["ruleset_text"] = listing ? json(*listing) : json(nullptr);
    facts["ruleset_json"] = listing_json ? *listing_json : json(nullptr);
    say.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net nft list ruleset   (and on the host: sudo nft list ruleset, "
                                    "which has no table portlab)", getpid()));

    say.step("clean up: close every socket; the namespace and its rules vanish with the lab's child process");
    sockets.clear();
    say.kernel("closed");
    say.pause();
    (void)trace.finish();  // this child's events; the parent writes no more
    return facts;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab09_firewall", "Lab 09: firewall rules in a private namespace: open, closed, filtered"},
                   [](Lab& lab) {
        int timeout_ms = 1000;
        lab.add_server_options(default_port);
        lab.cli()
            .add_option("--timeout", timeout_ms, "how long a probe waits for an answer, in ms (50-5000)")
            ->check(CLI::Range(50, 5000))
            ->default_str("1000");
        lab.cli().footer("The listeners use ports P to P+3 (--port P, default 8080) inside the lab's own namespace; "
                         "--port 0 means 8080 there, since nothing else can hold a port in a fresh namespace.");
        lab.parse();
        const auto& server = lab.server();
        if (!server.bind.is_v4() || !server.bind.is_loopback())
            return lab.usage_error("--bind: the lab's namespace has only lo, so use an IPv4 loopback address (127.x.y.z)");
        const Port base = server.port == 0 ? default_port : server.port;
        if (base > 65532) return lab.usage_error("--port: the lab needs four ports, P to P+3, so P must be at most 65532");

        auto& say = lab.narrate();
        say.title("Lab 09: a firewall decides what a scan sees");
        const auto host_netns = firewall::network_namespace_id();
        if (!host_netns) return lab.failure(host_netns.error().message);

        // Events recorded before the child is forked are flushed now, so the child's
        // copy of the trace writer starts empty and nothing is written twice.
        (void)lab.trace().finish();
        const Settings settings{server.bind, base, std::chrono::milliseconds(timeout_ms), *host_netns};
        const auto limit = lab.options().step ? std::chrono::milliseconds(std::chrono::minutes(30))
                                              : std::chrono::milliseconds(20 * timeout_ms + 10000);
        const auto facts = run_in_private_netns([&] { return run_inside(lab, settings); }, {}, limit);
        if (!facts) {
            const bool unavailable = facts.error().message.find("unavailable") != std::string::npos;
            if (!unavailable) return lab.failure(facts.error().message);
            return lab.failure(facts.error().message +
                               "; this lab needs them to install firewall rules without touching the machine's own. "
                               "The simulator tells the same story: portlab-sim --scenario firewall-drop "
                               "(and --scenario firewall-reject)");
        }
        if (lab.json()) lab.print_json(*facts);
        return exit_ok;
    });
}
