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
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "labkit/capture.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/nftables.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "labkit/raw_scan.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/packet.hpp"
#include "portlab/scan.hpp"
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
    std::optional<FirewallRule> rule;              // nullopt: no rule, the policy accepts
};

// Four ports, each with a TCP and a UDP socket where `listener` says so:
//   P    accept (no rule)          TCP listener, UDP echo server        -> open, open
//   P+1  drop                      TCP listener, UDP socket              -> filtered, open|filtered
//   P+2  reject (tcp reset / icmp) TCP listener, UDP socket              -> closed, closed
//   P+3  no rule, nothing bound                                          -> closed, closed
// Ports P+1 and P+2 have listeners on purpose: what the scan reports there is the
// firewall's doing, not the service's.
std::vector<Target> plan_for(Port base) {
    std::vector<Target> targets;
    for (const auto protocol : {Protocol::tcp, Protocol::udp}) {
        const auto reject_with = protocol == Protocol::tcp ? RejectWith::tcp_reset : RejectWith::icmp_port_unreachable;
        const auto drop_at = static_cast<Port>(base + 1), reject_at = static_cast<Port>(base + 2);
        targets.push_back({protocol, base, true, std::nullopt});
        targets.push_back({protocol, drop_at, true, drop_port(protocol, drop_at)});
        targets.push_back({protocol, reject_at, true, reject_port(protocol, reject_at, reject_with)});
        targets.push_back({protocol, static_cast<Port>(base + 3), false, std::nullopt});
    }
    return targets;
}

std::string rule_name(const Target& target) {
    if (!target.rule) return "none (policy accept)";
    const auto text = nft_text(*target.rule);
    return text ? *text : text.error().message;
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

// What one probe found: nmap's state and reason for the answer (portlab/scan.hpp), the
// errno the socket gave, and how long the answer took.
struct ProbeResult {
    scan::Verdict verdict;
    int error = 0;  // the socket's errno, 0 when none
    std::int64_t elapsed_us = 0;
};

ProbeResult result_of(scan::ScanType type, const scan::Answer& answer, Clock::time_point start) {
    const auto verdict = scan::classify(type, answer);
    const int error = answer.kind == scan::AnswerKind::socket_error || answer.kind == scan::AnswerKind::local_error ? answer.error : 0;
    return {verdict.value_or(scan::Verdict{scan::PortState::filtered, scan::Reason::local_error}), error,
            microseconds_since(start)};
}

// Called with a probe's socket as soon as connect() returned, so the lab can record the
// call and the port the kernel chose for it before the answer comes (or does not).
using Connected = std::function<void(int fd)>;

// A TCP connect scan probe: non-blocking connect() and poll() for at most `timeout`; the
// answer is connect()'s errno (0: connected), or nothing.
ProbeResult connect_probe(const Endpoint& target, std::chrono::milliseconds timeout, const Connected& connected) {
    using scan::Answer;
    const auto start = Clock::now();
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.ok()) return result_of(scan::ScanType::connect, Answer::local_error(errno), start);
    const auto address = socket_address(target);
    int error = connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
    connected(fd.get());
    if (error != 0) {
        if (error == EINPROGRESS) {
            pollfd waiting{fd.get(), POLLOUT, 0};
            if (poll(&waiting, 1, static_cast<int>(timeout.count())) == 0)
                return result_of(scan::ScanType::connect, Answer::nothing(), start);
            socklen_t length = sizeof error;
            getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
        }
    }
    return result_of(scan::ScanType::connect, Answer::socket_error(error), start);
}

// A UDP probe from a connected socket: the kernel turns an ICMP port unreachable for it
// into ECONNREFUSED on the next receive (udp(7)); an unconnected socket would never hear it.
ProbeResult udp_probe(const Endpoint& target, std::chrono::milliseconds timeout, const Connected& connected) {
    using scan::Answer;
    const auto start = Clock::now();
    Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const auto address = socket_address(target);
    if (!fd.ok() || connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        return result_of(scan::ScanType::udp, Answer::local_error(errno), start);
    connected(fd.get());
    if (send(fd.get(), "probe", 5, 0) < 0) return result_of(scan::ScanType::udp, Answer::local_error(errno), start);
    pollfd waiting{fd.get(), POLLIN, 0};
    if (poll(&waiting, 1, static_cast<int>(timeout.count())) == 0)
        return result_of(scan::ScanType::udp, Answer::nothing(), start);
    char reply[64];
    if (recv(fd.get(), reply, sizeof reply, MSG_DONTWAIT) >= 0)
        return result_of(scan::ScanType::udp, Answer::udp_reply(), start);
    return result_of(scan::ScanType::udp, Answer::socket_error(errno), start);
}

// The ACK scan (nmap -sA, labkit/raw_scan.hpp): a bare ACK belongs to no connection, so
// whatever receives it answers with a RST (RFC 793 3.4, "reset generation"). A RST back
// proves the packet got through: "unfiltered", open or closed alike. Silence means
// something dropped it: "filtered". Here the scanner and the target share one address.
struct AckScan {
    std::map<Port, ProbeResult> verdicts;
};

// `on_sent(port)` is called as each probe leaves. Its packets, and the answers, are for a
// capture to see.
Result<AckScan> ack_scan(const IpAddress& address, const std::vector<Port>& ports, std::chrono::milliseconds timeout,
                         const std::function<void(Port)>& on_sent) {
    RawScanOptions options;
    options.type = scan::ScanType::ack;
    options.source = options.target = address;
    options.timeout = timeout;
    options.on_sent = on_sent;
    const auto answers = raw_tcp_scan(ports, options);
    if (!answers) return answers.error();
    AckScan found;
    for (const auto& [port, answer] : *answers) found.verdicts[port] = {answer.verdict, 0, answer.elapsed_us};
    return found;
}

// ---- output ---------------------------------------------------------------------------------

std::string time_text(std::int64_t microseconds) {
    if (microseconds < 10'000) return fmt::format("{} us", microseconds);
    return fmt::format("{:.0f} ms", static_cast<double>(microseconds) / 1000.0);
}

json verdict_json(const Target& target, const ProbeResult& result) {
    return {{"protocol", to_string(target.protocol)}, {"port", target.port}, {"listener", target.listener},
            {"rule", target.rule ? json(rule_name(target)) : json(nullptr)},
            {"state", scan::to_string(result.verdict.state)}, {"reason", scan::to_string(result.verdict.reason)},
            {"errno", result.error == 0 ? json(nullptr) : json(errno_text(result.error))},
            {"elapsed_us", result.elapsed_us}};
}

// "   9001/tcp  filtered       no-response  after   300 ms   rule: tcp dport 9001 drop"
std::string result_line(const Target& target, const ProbeResult& result) {
    return fmt::format("{:>5}/{}  {:<14} {:<12} after {:>8}   rule: {}", target.port, to_string(target.protocol),
                       scan::to_string(result.verdict.state), scan::to_string(result.verdict.reason),
                       time_text(result.elapsed_us), rule_name(target));
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

// A rule the lab put into the kernel, with the id the trace gives it ("r1").
struct InstalledRule {
    std::string id;
    FirewallRule rule;
};

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each), the two hosts of the story (one kernel: the namespace's), the
// rules in force and the capture on lo that shows each packet and the rule that took it.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Settings settings;
    Host server{}, scanner{};
    std::vector<InstalledRule> rules{};
    std::optional<capture::LiveCapture> capture{};
    json& facts() { return see.document(); }
};

std::string nsenter(std::string_view command) {
    return fmt::format("nsenter --preserve-credentials --target {} --user --net {}", getpid(), command);
}

std::string nmap_command(const Run& run, std::string_view scan) {
    return nsenter(fmt::format("nmap {} -Pn --reason -p {}-{} {}", scan, run.settings.base_port, run.settings.base_port + 3,
                               run.settings.address.to_string()));
}

// 1. Where we are.
firewall::PrivateNetnsToken where_we_are(Run& run) {
    run.see.step("make a private user + network namespace (the machine's own firewall is not touched)");
    const auto interfaces = firewall::interface_names();
    const auto token = firewall::PrivateNetnsToken::confirm(run.settings.host_netns);
    if (!token) throw std::runtime_error(token.error().message);
    run.say.kernel(fmt::format("network namespace {} (the lab started in {}); interfaces: {}", token->netns_id(),
                               run.settings.host_netns, fmt::join(interfaces.value_or({}), ", ")));
    run.say.note(fmt::format("this process is PID {} on the host; its sockets and rules live only in here", getpid()));
    run.facts()["namespace"] = {{"private", true}, {"netns_id", token->netns_id()}, {"host_netns_id", run.settings.host_netns},
                                {"interfaces", interfaces.value_or({})}, {"pid", getpid()}};
    return *token;
}

// 2. Listeners: a TCP listener and a UDP socket on each port the plan gives one, on the server.
struct Listeners {
    std::vector<Fd> fds;
    std::vector<SocketRef> refs;
    int udp_echo_fd = -1;
};

Listeners open_listeners(Run& run, const std::vector<Target>& targets) {
    const auto& settings = run.settings;
    run.see.step(fmt::format("open listeners on {} ports {}-{} (TCP and UDP); port {} stays empty",
                             settings.address.to_string(), settings.base_port, settings.base_port + 2, settings.base_port + 3));
    Listeners listeners;
    json listed = json::array();
    for (const auto& target : targets) {
        if (!target.listener) continue;
        const Endpoint endpoint{settings.address, target.port};
        const auto ref = run.see.open(run.server, target.protocol, IpFamily::v4);
        auto fd = open_listener(target.protocol, endpoint);
        if (!fd) {
            run.see.record(fact::Failed{ref, "bind", fd.error().code}, quietly);
            throw std::runtime_error(fd.error().message);
        }
        run.see.record(fact::Bound{ref, endpoint, trace::BindHow::explicit_port}, quietly);
        if (target.protocol == Protocol::tcp) {
            run.see.record(fact::Listening{ref, 16}, quietly);
            (void)run.see.read_state(ref, fd->get());  // LISTEN, from TCP_INFO
        }
        if (target.protocol == Protocol::udp && target.port == settings.base_port) listeners.udp_echo_fd = fd->get();
        listeners.fds.push_back(std::move(*fd));
        listeners.refs.push_back(ref);
        listed.push_back({{"protocol", to_string(target.protocol)}, {"port", target.port}});
    }
    run.say.kernel(fmt::format("{} sockets bound; UDP {} echoes what it receives", listed.size(), settings.base_port));
    run.say.see_it_yourself(nsenter("ss -tuan"));
    run.facts()["listeners"] = listed;
    return listeners;
}

// 3. Rules, in one transaction; each one the kernel took is recorded as the server's
// (they guard its ports), r1, r2, ... in chain order. Then a capture on lo, to show what
// each rule takes.
void install_rules(Run& run, firewall::Nftables& nft, const std::vector<Target>& targets) {
    run.see.step("install nftables rules through libnftables (one transaction)");
    std::vector<FirewallRule> rules;
    json rules_json = json::array();
    for (const auto& target : targets) {
        if (!target.rule) continue;
        rules.push_back(*target.rule);
        run.rules.push_back({fmt::format("r{}", rules.size()), *target.rule});
        rules_json.push_back({{"protocol", to_string(target.protocol)}, {"port", target.port},
                              {"action", to_string(target.rule->action)},
                              {"reject_with", target.rule->action == FirewallAction::reject
                                                  ? json(to_string(target.rule->reject_with)) : json(nullptr)},
                              {"nft", rule_name(target)}});
    }
    run.facts()["rules"] = rules_json;
    if (auto applied = nft.apply(rules); !applied) throw std::runtime_error(applied.error().message);
    // nft took the whole transaction: every rule is in the kernel now. Each --json entry of
    // "rules" gains the id and host the trace names it by.
    for (std::size_t i = 0; i < run.rules.size(); ++i)
        run.see.record(fact::RuleAdded{run.server.name, run.rules[i].id, run.rules[i].rule},
                       {.say = std::nullopt, .json_at = fmt::format("/rules/{}", i)});
    run.say.kernel("ruleset accepted; everything else passes (policy accept)");
    run.say.see_it_yourself(nsenter("nft list ruleset"));
    auto capture = capture::LiveCapture::open({.interface = "lo", .filter = "tcp or udp or icmp"});
    if (capture) run.capture.emplace(std::move(*capture));
    else run.say.note("no capture on lo (" + capture.error().message + "): the trace will show no packets");
}

// The first rule that matches a packet to `destination`, as nft walks the input chain: in
// order. Only the lab's own kind of rule (protocol and destination port) is looked at.
const InstalledRule* rule_for(const Run& run, Protocol protocol, Port destination) {
    for (const auto& installed : run.rules)
        if (installed.rule.protocol == protocol && installed.rule.destination_ports &&
            installed.rule.destination_ports->contains(destination))
            return &installed;
    return nullptr;
}

// The packets the capture saw since the last call, each recorded once on the host it
// reached: dropped (naming the rule) when a drop or reject rule matched it at the input
// hook, delivered otherwise. Packets to the plan's ports go to the server; the rest (its
// answers, RSTs and ICMP errors included) to the scanner.
void record_captured(Run& run, std::chrono::milliseconds idle = std::chrono::milliseconds(50)) {
    if (!run.capture) return;
    capture::ReadLimits limits;
    limits.limit = std::chrono::milliseconds(500);
    limits.idle = idle;
    const auto records = run.capture->read(limits);
    if (!records) return;
    const auto link = run.capture->link_type();
    const auto first = run.settings.base_port, last = static_cast<Port>(run.settings.base_port + 3);
    for (const auto& record : *records) {
        const auto packet = decode_frame(link, record.bytes, record.original_length);
        if (!packet || (!packet->tcp && !packet->udp && !packet->icmp)) continue;
        const auto protocol = packet->protocol();
        const auto destination = packet->destination();
        const bool to_server = protocol && destination && first <= destination->port && destination->port <= last;
        const auto* rule = to_server ? rule_for(run, *protocol, destination->port) : nullptr;
        const bool taken = rule != nullptr && rule->rule.action != FirewallAction::accept;
        const std::string& to = to_server ? run.server.name : run.scanner.name;
        const std::string& from = to_server ? run.scanner.name : run.server.name;
        trace::Packet seen{taken ? trace::PacketKind::dropped : trace::PacketKind::delivered, record.bytes, link,
                           std::nullopt, from, to};
        if (taken) {
            seen.rule = nft_text(rule->rule).value_or(rule->id);
            seen.cause = trace::DropCause::firewall;
            seen.rule_id = rule->id;
        }
        run.see.record(fact::PacketSeen{to, std::move(seen)});
    }
}

scan::ScanType scan_type_for(Protocol protocol) {
    return protocol == Protocol::tcp ? scan::ScanType::connect : scan::ScanType::udp;
}

// One probe of a scan, from the scanner's own socket: socket(), connect() and the
// ephemeral port it chose, the error it met, close(), each recorded once, with the probe
// and the verdict for the trace's scan table, and then the packets it made.
ProbeResult probe(Run& run, const Target& target) {
    const Endpoint endpoint{run.settings.address, target.port};
    const auto type = scan_type_for(target.protocol);
    const auto ref = run.see.open(run.scanner, target.protocol, IpFamily::v4);
    run.see.record(fact::Probed{run.scanner.name, type, endpoint, 0, ref});
    const auto connected = [&run, &ref, &endpoint](int fd) {
        run.see.record(fact::Connecting{ref, endpoint}, quietly);
        if (const auto local = local_endpoint(fd); local && local->port != 0)
            run.see.record(fact::Bound{ref, *local, trace::BindHow::ephemeral}, quietly);
    };
    const auto result = target.protocol == Protocol::tcp ? connect_probe(endpoint, run.settings.timeout, connected)
                                                         : udp_probe(endpoint, run.settings.timeout, connected);
    if (result.error != 0)
        run.see.record(fact::Failed{ref, target.protocol == Protocol::tcp ? "connect" : "recv",
                                    std::error_code(result.error, std::generic_category())},
                       quietly);
    if (target.protocol == Protocol::tcp && result.verdict.state == scan::PortState::open)
        run.see.record(fact::State{ref, TcpState::established, Evidence::inferred, "connect() returned 0"}, quietly);
    run.see.record(fact::Closed{ref}, quietly);
    run.see.record(fact::ScanConcluded{run.scanner.name, type, endpoint, result.verdict});
    record_captured(run, std::chrono::milliseconds(10));
    return result;
}

// 4. and 5. A scan of one protocol: a probe to each port, the verdict narrated.
json scan_ports(Run& run, const std::vector<Target>& targets, Protocol protocol) {
    json results = json::array();
    for (const auto& target : targets) {
        if (target.protocol != protocol) continue;
        const auto result = probe(run, target);
        const char* empty = protocol == Protocol::tcp ? ", nothing listening" : ", nothing bound";
        run.say.kernel(result_line(target, result) + (target.listener ? "" : empty));
        results.push_back(verdict_json(target, result));
    }
    record_captured(run);
    return results;
}

void connect_scan(Run& run, const std::vector<Target>& targets) {
    run.see.step(fmt::format("TCP connect scan: connect() to each port, waiting at most {} ms", run.settings.timeout.count()));
    run.facts()["tcp_scan"] = scan_ports(run, targets, Protocol::tcp);
    run.say.see_it_yourself(nmap_command(run, "-sT"));
}

void udp_scan(Run& run, const std::vector<Target>& targets) {
    run.see.step(fmt::format("UDP scan: one datagram to each port from a connected socket, waiting at most {} ms",
                             run.settings.timeout.count()));
    run.facts()["udp_scan"] = scan_ports(run, targets, Protocol::udp);
    run.say.note(fmt::format("UDP {} is silent because of the drop; a bound socket that never replies is silent too: "
                             "a UDP scanner cannot tell them apart (open|filtered)", run.settings.base_port + 1));
    run.say.see_it_yourself(nmap_command(run, "-sU"));
}

// 6. Why filtered is slow.
void why_filtered_is_slow(Run& run) {
    const int retries = read_ipv4_sysctl("tcp_syn_retries", 6);
    const int linear = read_ipv4_sysctl("tcp_syn_linear_timeouts", 0);  // absent before Linux 6.5
    run.see.step("why filtered is slow");
    run.say.note("a reject (or a closed port) answers at once: the RST or ICMP error is the answer");
    run.say.note(fmt::format("a drop answers nothing, so the prober waits for its own timeout ({} ms here)",
                             run.settings.timeout.count()));
    const auto schedule = kernel_syn_schedule(retries, linear);
    run.say.kernel(fmt::format("net.ipv4.tcp_syn_retries = {}{}: left alone, connect() would retransmit the SYN {} times, "
                               "at {} s, and give up after about {} s",
                               retries, linear > 0 ? fmt::format(" plus tcp_syn_linear_timeouts = {} (Linux 6.5+)", linear) : "",
                               schedule.retransmit_at_s.size(), fmt::join(schedule.retransmit_at_s, ", "), schedule.give_up_s));
    run.facts().update({{"tcp_syn_retries", retries}, {"tcp_syn_linear_timeouts", linear},
                        {"kernel_syn_retransmit_at_s", schedule.retransmit_at_s},
                        {"kernel_connect_give_up_s", schedule.give_up_s}});
    run.say.see_it_yourself("sysctl net.ipv4.tcp_syn_retries net.ipv4.tcp_syn_linear_timeouts");
}

// The installed rule that answers TCP to this target with a reset, if any.
const InstalledRule* resetting_rule(const Run& run, const Target& target) {
    if (!target.rule || target.rule->action != FirewallAction::reject || target.rule->reject_with != RejectWith::tcp_reset)
        return nullptr;
    for (const auto& rule : run.rules)
        if (rule.rule == *target.rule) return &rule;
    return nullptr;
}

// 7. ACK scan. A raw socket is no socket of the trace's: its probes and verdicts are
// recorded as the scanner's, its packets come from the capture like every other scan's.
void ack_scan_step(Run& run, const std::vector<Target>& targets) {
    run.see.step("ACK scan with a raw socket (nmap -sA): a bare ACK to each TCP port");
    std::vector<Port> tcp_ports;
    for (const auto& target : targets)
        if (target.protocol == Protocol::tcp) tcp_ports.push_back(target.port);
    const auto& address = run.settings.address;
    const auto acks = ack_scan(address, tcp_ports, run.settings.timeout, [&run, &address](Port port) {
        run.see.record(fact::Probed{run.scanner.name, scan::ScanType::ack, {address, port}, 0, std::nullopt});
    });
    json ack_json = json::array();
    if (!acks) {
        run.say.kernel("raw sockets unavailable: " + acks.error().message);
        run.facts()["ack_scan_error"] = acks.error().message;
    } else {
        for (const auto& target : targets) {
            if (target.protocol != Protocol::tcp) continue;
            const auto& result = acks->verdicts.at(target.port);
            run.see.record(fact::ScanConcluded{run.scanner.name, scan::ScanType::ack, {address, target.port}, result.verdict});
            run.say.kernel(result_line(target, result));
            ack_json.push_back(verdict_json(target, result));
            if (const auto* rule = resetting_rule(run, target); rule && result.verdict.state == scan::PortState::unfiltered) {
                // The RST that made it "unfiltered" is the firewall's own answer (nft_reject_tcp):
                // a rejecting firewall and no firewall look the same to an ACK scan.
                run.say.note(fmt::format("{}/tcp: that RST came from firewall rule {} (reject with tcp reset), not from "
                                         "the port: an ACK scan cannot see a firewall that answers for the port",
                                         target.port, rule->id));
                ack_json.back()["rst_from"] = {{"firewall_rule", rule->id}};
            }
        }
        run.say.note("an ACK scan maps the firewall, not the services: open and closed ports both answer RST");
        run.say.see_it_yourself(nmap_command(run, "-sA"));
    }
    record_captured(run);
    run.facts()["ack_scan"] = ack_json;
}

// 8. The ruleset as the kernel holds it.
void list_ruleset(Run& run, firewall::Nftables& nft) {
    run.see.step("the ruleset, listed back from the kernel (nft list ruleset)");
    const auto listing = nft.list_ruleset();
    const auto listing_json = nft.list_ruleset_json();
    if (listing) {
        std::string_view rest = *listing;
        while (!rest.empty()) {
            const auto end = rest.find('\n');
            run.say.note(std::string(rest.substr(0, end)));
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
    }
    run.facts()["ruleset_text"] = listing ? json(*listing) : json(nullptr);
    run.facts()["ruleset_json"] = listing_json ? *listing_json : json(nullptr);
    run.say.see_it_yourself(nsenter("nft list ruleset   (and on the host: sudo nft list ruleset, which has no table portlab)"));
}

// 9. Clean up. Closing a listener resets the connections still queued for it (the connect
// scan's to the open port), so their peers go too: settle() waits for that, so the trace
// says what stays before the last look.
void clean_up(Run& run, Listeners& listeners) {
    run.see.step("clean up: close every socket; the namespace and its rules vanish with the lab's child process");
    listeners.fds.clear();
    for (const auto& ref : listeners.refs) run.see.record(fact::Closed{ref}, quietly);
    run.say.kernel("closed");
    run.see.settle();
    record_captured(run);
    run.lab.trace().flush();
    run.say.pause();
}

// The UDP echo server on the open port: one thread, polling so it can stop.
class Echo {
public:
    explicit Echo(int fd) : thread_([this, fd] { serve(fd); }) {}
    ~Echo() {
        stop_ = true;
        thread_.join();
    }
    Echo(const Echo&) = delete;
    Echo& operator=(const Echo&) = delete;

private:
    void serve(int fd) {
        while (!stop_.load()) {
            pollfd waiting{fd, POLLIN, 0};
            if (poll(&waiting, 1, 50) <= 0) continue;
            char buffer[512];
            sockaddr_in from{};
            socklen_t length = sizeof from;
            const auto count = recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (count >= 0) sendto(fd, buffer, static_cast<std::size_t>(count), 0, reinterpret_cast<sockaddr*>(&from), length);
        }
    }
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

json run_inside(Lab& lab, const Settings& settings) {
    Run run{lab, lab.narrate(), lab.observer(), settings};
    // The listeners and the scanner share the namespace's one kernel and address.
    run.server = run.see.declare({"server", {settings.address}, "server"});
    run.scanner = run.see.declare({"scanner", {settings.address}, "scanner"});
    run.facts().update({{"lab", lab.name()}, {"timeout_ms", settings.timeout.count()}});

    const auto token = where_we_are(run);
    const auto targets = plan_for(settings.base_port);
    auto listeners = open_listeners(run, targets);
    auto echo = std::make_unique<Echo>(listeners.udp_echo_fd);
    auto nft = firewall::Nftables::open(token);
    if (!nft) throw std::runtime_error(nft.error().message);
    install_rules(run, *nft, targets);
    connect_scan(run, targets);
    udp_scan(run, targets);
    why_filtered_is_slow(run);
    ack_scan_step(run, targets);
    list_ruleset(run, *nft);
    echo.reset();  // the echo server stops before its socket is closed
    clean_up(run, listeners);
    run.see.refresh();
    lab.trace().flush();  // this child's events; the parent writes no more
    return run.facts();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab09_firewall", "Lab 09: firewall rules in a private namespace: open, closed, filtered"},
                   [](Lab& lab) {
        int timeout_ms = 1000;
        lab.add_server_options(default_port, {});  // its own namespace: nothing here holds the port
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

        const Settings settings{server.bind, base, std::chrono::milliseconds(timeout_ms), *host_netns};
        return tell_in_private_netns(lab, std::chrono::milliseconds(20 * timeout_ms + 10000),
                                     [&] { return run_inside(lab, settings); },
                                     "this lab needs them to install firewall rules without touching the machine's own. "
                                     "The simulator tells the same story: portlab-sim --scenario firewall-drop "
                                     "(and --scenario firewall-reject)");
    });
}
