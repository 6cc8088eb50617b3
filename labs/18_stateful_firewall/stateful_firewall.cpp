// Lab 18: a stateful firewall. Replies pass, new connections from outside do not, and what
// four kinds of scan report through it.
//
// Three hosts in private network namespaces (labkit/network.hpp), documentation addresses:
//
//   client 192.0.2.1 --- 192.0.2.2 router 198.51.100.1 --- 198.51.100.2 server
//   (outside)                                                   (inside)
//
// The router's forward chain decides from connection tracking (nf_conntrack), not from the
// packet alone:
//
//   ct state established,related accept              a packet of a connection already seen
//   iifname "router-server" ct state new accept        inside may start connections out
//   iifname "router-client" ct state new drop          outside may not start any
//   iifname "router-client" ct state invalid drop      nor send what fits no connection
//   policy drop                                        everything else
//
// Each answer is read from the kernel (connect()'s errno, recv(), the rules' counters as nft
// lists them back):
//
//   1. the network
//   2. services: the server listens on TCP 8080 and has UDP 8080 bound, 8081 has nothing;
//      the client listens on TCP 9000 and has UDP 9000 bound
//   3. the stateful firewall, into the router's kernel
//   4. inside out: the server connects to the client and sends a datagram; the replies pass
//   5. outside in: the client's connect() to the server gets no answer at all
//   6. connect, SYN, ACK and UDP scans from the client, through the stateful firewall
//   7. the same scans through a stateless firewall that drops only SYNs from outside
//   8. the two side by side
//
//   lab18_stateful_firewall
//   lab18_stateful_firewall --timeout 500 --json

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "labkit/labkit.hpp"
#include "labkit/nat_trace.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/network.hpp"
#include "labkit/nftables.hpp"
#include "labkit/node_look.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "labkit/raw_scan.hpp"
#include "labkit/scan_engine.hpp"
#include "portlab/scan.hpp"
#include "portlab/text.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port open_port = 8080;    // the server listens (TCP) and has a socket bound (UDP)
constexpr Port closed_port = 8081;  // nothing there
constexpr Port client_port = 9000;  // the client's own service, for connections from inside

struct Settings {
    std::chrono::milliseconds timeout{1000};  // a probe's (and a connect()'s) wait for its answer
    std::uint64_t outer_netns = 0;            // firewall::network_namespace_id() before the namespaces
};

struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Network& net;
    Settings settings;
    std::optional<firewall::Nftables> nft{};
    Host client{}, router{}, server{};
    std::set<std::uint32_t> entries_told{};  // conntrack ids whose nat (track) events are in the trace
    std::vector<std::string> rules_told{};   // the router's rules in force in the trace, by id (their comments)
    json& facts() { return see.document(); }
    [[nodiscard]] IpAddress server_address() const { return *net.address("server"); }
    [[nodiscard]] IpAddress client_address() const { return *net.address("client"); }
};

[[noreturn]] void failed(const std::string& what, const Error& error) {
    throw std::runtime_error(what + ": " + error.message);
}

void in_node(const Run& run, const std::string& node, const std::function<void()>& fn) {
    if (auto entered = run.net.in_node(node, fn); !entered) failed("entering " + node, entered.error());
}

void show_in(Run& run, const std::string& node, const std::vector<std::string>& argv) {
    show_in_node(run.say, run.net, run.lab.options().show, node, argv);
}

// ---- the router's firewall ---------------------------------------------------------------------

// A whole forward chain, replacing the last one: the rules, each with a counter and a comment
// that names it, so the kernel can say which rule took how many packets.
struct ChainRule {
    std::string comment, match, verdict;
};
struct Chain {
    std::string policy;
    std::vector<ChainRule> rules;
};

Chain stateful_chain(const Run& run) {
    const auto outside = *run.net.interface("router", "client");
    const auto inside = *run.net.interface("router", "server");
    return {"drop",
            {{"replies", "ct state established,related", "accept"},
             {"new from inside", fmt::format("iifname \"{}\" ct state new", inside), "accept"},
             {"new from outside", fmt::format("iifname \"{}\" ct state new", outside), "drop"},
             {"invalid from outside", fmt::format("iifname \"{}\" ct state invalid", outside), "drop"}}};
}

// The classic packet filter without state: drop a segment from outside whose flags say "open a
// connection" (SYN without ACK), let everything else through.
Chain stateless_chain(const Run& run) {
    const auto outside = *run.net.interface("router", "client");
    return {"accept", {{"syn from outside", fmt::format("iifname \"{}\" tcp flags & (syn | ack) == syn", outside), "drop"}}};
}

std::string chain_text(const Chain& chain) {
    std::string text =
        "add table inet portlab_fw\n"
        "delete table inet portlab_fw\n"
        "add table inet portlab_fw\n";
    text += fmt::format("add chain inet portlab_fw forward {{ type filter hook forward priority filter; policy {}; }}\n",
                        chain.policy);
    for (const auto& rule : chain.rules)
        text += fmt::format("add rule inet portlab_fw forward {} counter {} comment \"{}\"\n", rule.match, rule.verdict,
                            rule.comment);
    return text;
}

// The router's rules into the trace as the kernel holds them now, read back with nft -j
// (never the text the lab sent): the old chain's rules removed, the new ones added, each
// named by its comment (unique in a chain the lab writes), in chain order.
void trace_rules_in_force(Run& run) {
    Result<json> listed = fail("not run");
    in_node(run, "router", [&] { listed = run.nft->list_ruleset_json(); });
    if (!listed) failed("nft -j list ruleset", listed.error());
    const auto rules = firewall::listed_rules(*listed);
    if (!rules) failed("the router's rules", rules.error());
    for (const auto& id : run.rules_told) run.see.record(fact::RuleRemoved{run.router.name, id}, quietly);
    run.rules_told.clear();
    for (const auto& rule : *rules) {
        if (rule.table != "portlab_fw") continue;
        run.see.record(fact::RuleAdded{run.router.name, rule.comment, rule.rule}, quietly);
        run.rules_told.push_back(rule.comment);
    }
}

void install(Run& run, const Chain& chain) {
    Result<std::string> done = fail("not run");
    in_node(run, "router", [&] {
        if (!run.nft) {
            auto token = run.net.firewall_token("router", run.settings.outer_netns);
            if (!token) failed("the router's firewall", token.error());
            auto nft = firewall::Nftables::open(*token);
            if (!nft) failed("nftables in the router", nft.error());
            run.nft.emplace(std::move(*nft));
        }
        done = run.nft->run(chain_text(chain));
    });
    if (!done) failed("nft", done.error());
    trace_rules_in_force(run);
    for (const auto& rule : chain.rules)
        run.say.kernel(fmt::format("rule {:<23} {} counter {}", "\"" + rule.comment + "\":", rule.match, rule.verdict));
    run.say.kernel("policy " + chain.policy);
}

// Each rule's packet counter, as the kernel holds it (nft -j list ruleset), by comment.
std::map<std::string, std::uint64_t> counters(Run& run) {
    Result<json> listed = fail("not run");
    in_node(run, "router", [&] { listed = run.nft->list_ruleset_json(); });
    if (!listed) failed("nft list ruleset", listed.error());
    std::map<std::string, std::uint64_t> found;
    for (const auto& item : listed->value("nftables", json::array())) {
        if (!item.contains("rule")) continue;
        const auto& rule = item["rule"];
        for (const auto& expression : rule.value("expr", json::array()))
            if (expression.contains("counter"))
                found[rule.value("comment", "")] = expression["counter"].value("packets", std::uint64_t{0});
    }
    return found;
}

// What changed between two readings of the counters: the rules that took packets.
std::map<std::string, std::uint64_t> taken_since(const std::map<std::string, std::uint64_t>& before,
                                                 const std::map<std::string, std::uint64_t>& after) {
    std::map<std::string, std::uint64_t> taken;
    for (const auto& [comment, packets] : after) {
        const auto was = before.contains(comment) ? before.at(comment) : 0;
        if (packets > was) taken[comment] = packets - was;
    }
    return taken;
}

std::string taken_text(const std::map<std::string, std::uint64_t>& taken) {
    if (taken.empty()) return "no rule counted a packet";
    std::vector<std::string> parts;
    for (const auto& [comment, packets] : taken) parts.push_back(fmt::format("\"{}\" {}", comment, text::counted(packets, "packet")));
    return fmt::format("{}", fmt::join(parts, ", "));
}

json taken_json(const std::map<std::string, std::uint64_t>& taken) {
    json object = json::object();
    for (const auto& [comment, packets] : taken) object[comment] = packets;
    return object;
}

// ---- sockets ------------------------------------------------------------------------------------

// A socket bound to `port` on any address (and listening, for TCP), in the caller's namespace.
Fd bound_socket(Protocol protocol, Port port) {
    Fd fd(socket(AF_INET, (protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0));
    const auto any = socket_address({IpAddress::any_v4(), port});
    if (!fd.ok() || bind(fd.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
        (protocol == Protocol::tcp && listen(fd.get(), 16) != 0))
        throw std::runtime_error(fmt::format("bind {}/{}: {}", port, to_string(protocol), errno_text(errno)));
    return fd;
}

struct Service {
    Fd fd;
    SocketRef ref;
};

Service open_service(Run& run, const Host& host, Protocol protocol, Port port) {
    Service service{Fd(), run.see.open(host, protocol, IpFamily::v4)};
    if (host.name == run.client.name) service.fd = bound_socket(protocol, port);
    else in_node(run, host.name, [&] { service.fd = bound_socket(protocol, port); });
    run.see.record(fact::Bound{service.ref, {IpAddress::any_v4(), port}, trace::BindHow::explicit_port}, quietly);
    if (protocol == Protocol::tcp) run.see.record(fact::Listening{service.ref, 16}, quietly);
    return service;
}

void close_service(Run& run, Service& service) {
    if (!service.fd.ok()) return;
    service.fd = Fd();
    run.see.record(fact::Closed{service.ref}, quietly);
}

bool readable(int fd, std::chrono::milliseconds wait) {
    pollfd waiting{fd, POLLIN, 0};
    return poll(&waiting, 1, static_cast<int>(wait.count())) == 1;
}

// A TCP connect() from `host`'s namespace with its answer (connect_within), recorded.
struct Connection {
    Service socket;
    std::optional<int> answer;  // 0 connected, an errno, or nullopt: no answer in time
};

Connection connect_from(Run& run, const Host& host, const Endpoint& to) {
    Connection connection{{Fd(), run.see.open(host, Protocol::tcp, IpFamily::v4)}, std::nullopt};
    auto& fd = connection.socket.fd;
    const auto attempt = [&] {
        fd = Fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        connection.answer = connect_within(fd.get(), to, run.settings.timeout, [&] {
            if (auto local = local_endpoint(fd.get()))
                run.see.record(fact::Bound{connection.socket.ref, *local, trace::BindHow::ephemeral}, quietly);
            run.see.record(fact::Connecting{connection.socket.ref, to}, quietly);
        });
    };
    if (host.name == run.client.name) attempt();
    else in_node(run, host.name, attempt);
    if (connection.answer && *connection.answer == 0)
        run.see.record(fact::State{connection.socket.ref, TcpState::established, Evidence::inferred, "connect() returned 0"},
                       quietly);
    else if (connection.answer)
        run.see.record(fact::Failed{connection.socket.ref, "connect", std::error_code(*connection.answer, std::generic_category())},
                       quietly);
    return connection;
}

std::string answer_text(const std::optional<int>& answer, std::chrono::milliseconds wait) {
    if (!answer) return fmt::format("no answer within {} ms: the socket is still in SYN-SENT", wait.count());
    return *answer == 0 ? std::string("connected") : "failed: " + errno_text(*answer);
}

// ---- the steps ------------------------------------------------------------------------------------

void show_network(Run& run) {
    run.see.step("three hosts, three network namespaces: the client outside, the server inside");
    tell_addresses(run.say, run.net, {"client", "router", "server"});
    run.say.note("Every packet between client and server crosses the router's forward hook: its firewall sees them all.");
}

struct Services {
    Service server_tcp, server_udp, client_tcp, client_udp;
};

Services open_services(Run& run) {
    run.see.step(fmt::format("the server listens on TCP {0} and has UDP {0} bound; {1} has nothing. The client has {2}.",
                             open_port, closed_port, client_port));
    Services services{open_service(run, run.server, Protocol::tcp, open_port),
                      open_service(run, run.server, Protocol::udp, open_port),
                      open_service(run, run.client, Protocol::tcp, client_port),
                      open_service(run, run.client, Protocol::udp, client_port)};
    run.say.kernel("four sockets bound");
    show_in(run, "server", {"ss", "-tuln"});
    return services;
}

void install_stateful(Run& run) {
    run.see.step("the router's forward chain becomes stateful (nf_conntrack decides)");
    install(run, stateful_chain(run));
    run.say.note("ct state is conntrack's verdict on the packet: new (the first of a connection), established (a");
    run.say.note("connection that has seen traffic both ways, or its reply), related (an ICMP error about one),");
    run.say.note("invalid (fits no connection conntrack could start or follow).");
    show_in(run, "router", {"nft", "list", "ruleset"});
    run.facts()["stateful_rules"] = chain_text(stateful_chain(run));
}

// Step 4: the server starts a TCP connection and a UDP exchange with the client.
struct InsideOut {
    Connection tcp;
    std::optional<Service> accepted;
};

InsideOut inside_out(Run& run, Services& services) {
    run.see.step(fmt::format("inside out: the server connects to {}:{} and sends it a datagram",
                             run.client_address().to_string(), client_port));
    const auto before = counters(run);
    InsideOut out{connect_from(run, run.server, {run.client_address(), client_port}), std::nullopt};
    run.say.kernel("server: connect() " + answer_text(out.tcp.answer, run.settings.timeout));
    if (readable(services.client_tcp.fd.get(), run.settings.timeout)) {
        Fd fd(accept4(services.client_tcp.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        const auto local = local_endpoint(fd.get());
        const auto peer = peer_endpoint(fd.get());
        if (local && peer) {
            const auto ref = run.see.record(fact::Accepted{services.client_tcp.ref, {*local, *peer}}, quietly);
            run.say.kernel(fmt::format("client: accept() returned a connection from {}", peer->to_string()));
            out.accepted = Service{std::move(fd), ref};
        }
    }
    // The client's answer over the accepted connection is a reply: it must pass back.
    std::string heard = "nothing";
    if (out.accepted && send(out.accepted->fd.get(), "welcome", 7, 0) == 7 && readable(out.tcp.socket.fd.get(), run.settings.timeout)) {
        char buffer[16] = {};
        if (recv(out.tcp.socket.fd.get(), buffer, sizeof buffer - 1, 0) > 0) heard = buffer;
    }
    run.say.kernel(fmt::format("server: recv() on that connection: \"{}\" (the client's data, a reply, passed)", heard));

    // UDP has no connection, but conntrack keeps one for the address and port pair all the same.
    std::string udp_heard = "nothing";
    Service udp_socket{Fd(), run.see.open(run.server, Protocol::udp, IpFamily::v4)};
    const int udp = [&] {
        in_node(run, "server", [&] { udp_socket.fd = Fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)); });
        return udp_socket.fd.get();
    }();
    const Endpoint client_end{run.client_address(), client_port};
    const auto to = socket_address(client_end);
    if (connect(udp, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) {
        if (auto local = local_endpoint(udp))
            run.see.record(fact::Bound{udp_socket.ref, *local, trace::BindHow::ephemeral}, quietly);
        run.see.record(fact::Connecting{udp_socket.ref, client_end}, quietly);
    }
    (void)!send(udp, "ping", 4, 0);
    if (readable(services.client_udp.fd.get(), run.settings.timeout)) {
        char buffer[16];
        sockaddr_in from{};
        socklen_t length = sizeof from;
        const auto got = recvfrom(services.client_udp.fd.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
        if (got > 0) sendto(services.client_udp.fd.get(), "pong", 4, 0, reinterpret_cast<const sockaddr*>(&from), length);
        if (readable(udp, run.settings.timeout)) {
            char reply[16] = {};
            if (recv(udp, reply, sizeof reply - 1, 0) > 0) udp_heard = reply;
        }
    }
    close_service(run, udp_socket);
    run.say.kernel(fmt::format("server: a datagram to {}:{}, and the reply it got back: \"{}\"",
                               run.client_address().to_string(), client_port, udp_heard));
    const auto taken = taken_since(before, counters(run));
    run.say.kernel("the router's counters: " + taken_text(taken));
    run.say.note("The first packet of each went out under \"new from inside\"; everything after, both ways, matched");
    run.say.note("\"replies\" (established): the firewall never had a rule for traffic from the client to the server.");
    // The entries conntrack -L lists, into the trace as `nat` events of kind track (the viewer's NAT tab).
    (void)record_router_translations(run.see, run.net, "router", run.entries_told, Untranslated::track);
    show_in(run, "router", {"conntrack", "-L"});
    run.facts()["inside_out"] = {{"tcp_connected", out.tcp.answer == 0},
                                 {"tcp_reply", heard},
                                 {"udp_reply", udp_heard},
                                 {"counted", taken_json(taken)}};
    return out;
}

void close_inside_out(Run& run, InsideOut& out) {
    if (out.accepted) close_service(run, *out.accepted);
    close_service(run, out.tcp.socket);
}

// Step 5: the client tries the server's open port.
Connection outside_in(Run& run) {
    const Endpoint target{run.server_address(), open_port};
    run.see.step(fmt::format("outside in: the client connects to {}, where the server listens", target.to_string()));
    const auto before = counters(run);
    auto connection = connect_from(run, run.client, target);
    const auto taken = taken_since(before, counters(run));
    run.say.kernel("client: connect() " + answer_text(connection.answer, run.settings.timeout));
    run.say.kernel("the router's counters: " + taken_text(taken));
    run.say.note("The SYN (and its retransmissions) opened nothing: conntrack calls the first packet of a connection");
    run.say.note("new, and a new packet from outside is dropped. No RST, no ICMP: the client cannot tell a firewall");
    run.say.note("from a host that is down. A dropped packet's conntrack entry is never confirmed: conntrack -L has none.");
    show_in(run, "router", {"conntrack", "-L"});
    run.facts()["outside_in"] = {{"answered", connection.answer.has_value()},
                                 {"errno", connection.answer && *connection.answer != 0 ? json(errno_text(*connection.answer)) : json(nullptr)},
                                 {"counted", taken_json(taken)}};
    return connection;
}

// ---- the scans ---------------------------------------------------------------------------------------

// One scan of both ports from the client: connect and UDP with lab 08's engine, SYN and ACK with
// raw sockets; each probe and verdict recorded for the trace.
std::map<Port, scan::Verdict> scan_ports(Run& run, scan::ScanType type) {
    const std::vector<Port> ports{open_port, closed_port};
    const auto target = run.server_address();
    const auto probed = [&](Port port) { run.see.record(fact::Probed{run.client.name, type, {target, port}, 0, std::nullopt}); };
    std::map<Port, scan::Verdict> verdicts;
    if (type == scan::ScanType::syn || type == scan::ScanType::ack) {
        RawScanOptions options;
        options.type = type;
        options.source = run.client_address();
        options.target = target;
        options.timeout = run.settings.timeout;
        options.on_sent = probed;
        const auto found = raw_tcp_scan(ports, options);
        if (!found) failed(std::string(scan::nmap_option(type)) + " scan", found.error());
        for (const auto& [port, result] : *found) verdicts[port] = result.verdict;
    } else {
        scanner::ScanOptions options;
        options.target = target;
        options.protocol = scan::protocol_of(type);
        options.timeout = run.settings.timeout;
        options.target_in_private_namespace = true;  // a host of the lab's own network
        options.on_probe = [&](Port port, std::uint32_t) { probed(port); };
        const auto report = scanner::run_scan(ports, options);
        if (!report) failed(std::string(scan::nmap_option(type)) + " scan", report.error());
        for (const auto& result : report->results) verdicts[result.port] = {result.state, result.reason};
    }
    for (const auto& [port, verdict] : verdicts)
        run.see.record(fact::ScanConcluded{run.client.name, type, {target, port}, verdict});
    return verdicts;
}

constexpr scan::ScanType all_scans[] = {scan::ScanType::connect, scan::ScanType::syn, scan::ScanType::ack, scan::ScanType::udp};

// All four scans through the firewall in force: per scan, each port's verdict and the rules
// that took its probes.
json scan_through(Run& run, const std::string& firewall) {
    json results = json::object();
    for (const auto type : all_scans) {
        const auto before = counters(run);
        const auto verdicts = scan_ports(run, type);
        const auto taken = taken_since(before, counters(run));
        const auto protocol = to_string(scan::protocol_of(type));
        json ports = json::object();
        std::vector<std::string> said;
        for (const auto& [port, verdict] : verdicts) {
            ports[std::to_string(port)] = {{"state", scan::to_string(verdict.state)}, {"reason", scan::to_string(verdict.reason)}};
            said.push_back(fmt::format("{}/{} {} ({})", port, protocol, scan::to_string(verdict.state), scan::to_string(verdict.reason)));
        }
        run.say.kernel(fmt::format("{:<3} {:<8} {}   counters: {}", scan::nmap_option(type), scan::to_string(type),
                                   fmt::join(said, ", "), taken_text(taken)));
        results[std::string(scan::to_string(type))] = {{"ports", ports}, {"counted", taken_json(taken)}};
    }
    run.say.see_it_yourself(run.net.see_inside("client", fmt::format("nmap -Pn -n --reason -sS -sA -sU -p {},{} {}", open_port,
                                                                       closed_port, run.server_address().to_string())));
    run.facts()["scans"][firewall] = results;
    return results;
}

void scans_through_stateful(Run& run, Connection& refused) {
    run.see.step("connect, SYN, ACK and UDP scans from the client, through the stateful firewall");
    close_service(run, refused.socket);  // its SYN retransmissions would count with the probes
    std::string loose = "?";
    if (auto read = run.net.run_in_node("router", {"cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_loose"}); read)
        loose = text::split_lines(*read).empty() ? "?" : text::split_lines(*read).front();
    scan_through(run, "stateful");
    run.say.kernel("the router's net.netfilter.nf_conntrack_tcp_loose = " + loose);
    run.say.note("Every probe is the first packet of something from outside: dropped, so every port is filtered, the");
    run.say.note("open one too. A bare ACK fits no connection conntrack knows. With tcp_loose = 1 conntrack picks up");
    run.say.note("a connection in mid-stream from it and calls it new; with 0 it calls it invalid (nf_conntrack_proto_tcp.c,");
    run.say.note("tcp_new). Either way it is dropped, no RST comes back: the ACK scan says filtered.");
    run.facts()["nf_conntrack_tcp_loose"] = loose;
}

void scans_through_stateless(Run& run) {
    run.see.step("the same scans through a stateless firewall that drops only SYNs from outside");
    install(run, stateless_chain(run));
    scan_through(run, "stateless");
    run.say.note("A stateless rule judges each packet alone. The bare ACK is not a SYN, so it passes, and the server's");
    run.say.note("kernel answers it with RST: \"unfiltered\". The UDP datagrams pass too: the closed port answers ICMP");
    run.say.note("port unreachable (closed), the bound one says nothing (open|filtered).");
    show_in(run, "router", {"nft", "list", "ruleset"});
}

void side_by_side(Run& run) {
    run.see.step("side by side: what each scan reported through each firewall");
    const auto& scans = run.facts()["scans"];
    run.say.kernel(fmt::format("{:<12} {:<34} {}", "scan", "stateful", "stateless"));
    for (const auto type : all_scans) {
        const std::string name(scan::to_string(type));
        const auto cell = [&](const std::string& firewall) {
            const auto& ports = scans[firewall][name]["ports"];
            return fmt::format("{}: {}, {}: {}", open_port, ports[std::to_string(open_port)]["state"].get<std::string>(),
                               closed_port, ports[std::to_string(closed_port)]["state"].get<std::string>());
        };
        run.say.kernel(fmt::format("{:<12} {:<34} {}", fmt::format("{} {}", scan::nmap_option(type), name),
                                   cell("stateful"), cell("stateless")));
    }
    run.say.note("Only the ACK scan tells the two firewalls apart: it is how nmap maps a firewall's rules.");
}

json tell_the_story(Lab& lab, const Settings& settings) {
    auto net = Network::build(client_router_server());
    if (!net) throw std::runtime_error(net.error().message);
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, *net, settings};
    run.client = see.declare({"client", {*net->address("client")}, "scanner"});
    run.router = see.declare({"router", {*net->address("router", "client"), *net->address("router", "server")}, "router", false, net->entering("router")});
    run.server = see.declare({"server", {*net->address("server")}, "server", false, net->entering("server")});
    see.document()["lab"] = lab.name();
    see.document()["timeout_ms"] = settings.timeout.count();

    show_network(run);
    auto services = open_services(run);
    install_stateful(run);
    auto out = inside_out(run, services);
    auto in = outside_in(run);
    close_inside_out(run, out);
    scans_through_stateful(run, in);
    scans_through_stateless(run);
    side_by_side(run);
    for (auto* service : {&services.server_tcp, &services.server_udp, &services.client_tcp, &services.client_udp})
        close_service(run, *service);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv,
                   {"lab18_stateful_firewall",
                    "Lab 18: a stateful firewall: replies pass, new connections from outside do not, and what scans see"},
                   [](Lab& lab) {
        Settings settings;
        int timeout_ms = 1000;
        lab.cli().add_option("--timeout", timeout_ms, "how long a probe or connect() waits for its answer, in ms (200-5000)")
            ->check(CLI::Range(200, 5000))->default_str("1000");
        lab.cli().footer("Runs in private network namespaces (client, router, server) of its own; needs no root.");
        lab.parse();
        settings.timeout = std::chrono::milliseconds(timeout_ms);
        const auto outer = firewall::network_namespace_id();
        if (!outer) return lab.failure(outer.error().message);
        settings.outer_netns = *outer;
        lab.narrate().title("Lab 18: a stateful firewall");
        return tell_in_private_netns(lab, std::chrono::milliseconds(30s) + 20 * settings.timeout, [&] { return tell_the_story(lab, settings); });
    });
}
