// Lab 17: port forwarding. outside:8080 reaches inside:80, real, in private network namespaces.
//
// Four hosts, each a network namespace of its own (labkit/network.hpp), with documentation
// addresses (RFC 5737):
//
//   client 192.0.2.1 --- 192.0.2.2 router 198.51.100.1 --- 198.51.100.2 server 203.0.113.1 --- 203.0.113.2 inside
//         (outside)                                               (port 80)                   (the server's LAN neighbour)
//
// The router forwards port 8080 of its outside address to the server's port 80 with one
// nftables rule, a DNAT in the prerouting hook ("tcp dport 8080 dnat to 198.51.100.2:80").
// Connection tracking (nf_conntrack) remembers the rewrite and undoes it on every reply, so
// each end sees its own 4-tuple. Each answer below is read from the kernel:
//
//   1. the network
//   2. the forwarding rule, put into the router's kernel and listed back
//   3. the client connects to 192.0.2.2:8080: the server sees the client's real address
//      (only the destination was rewritten); the client's socket has 192.0.2.2:8080 as peer
//   4. hairpin: "inside" connects to the router's OUTSIDE address. The rule matches only
//      the outside interface: the router answers itself (RST, connection refused)
//   5. the rule matches the address instead: the SYN is forwarded, but the server answers
//      "inside" directly, from 198.51.100.2:80, which "inside" never called: it sends RST
//   6. a hairpin masquerade rule: the server answers the router, the router undoes both
//      rewrites, and the connection works; the server sees the router's address as peer
//   7. the router's ruleset, listed back
//
//   lab17_port_forwarding
//   lab17_port_forwarding --public-port 8443 --wait 1000 --json

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "labkit/capture.hpp"
#include "labkit/labkit.hpp"
#include "labkit/nat_trace.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/network.hpp"
#include "labkit/node_look.hpp"
#include "labkit/nftables.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "labkit/snmp.hpp"
#include "portlab/packet.hpp"
#include "portlab/text.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port server_port = 80;

struct Settings {
    Port public_port = 8080;
    std::chrono::milliseconds wait{2000};  // how long a connect() may wait for its answer
    std::uint64_t outer_netns = 0;         // firewall::network_namespace_id() before the namespaces
};

// client - router - server - inside. The server forwards for "inside", its neighbour on a
// LAN of their own: a real LAN has a switch between them; here the server's second link
// plays that part. What matters for hairpin is the same: the server reaches "inside"
// without passing the router.
NetworkSpec forwarding_network() {
    return {{"client", "router", "server", "inside"},
            {"router", "server"},
            {{"client", "router"}, {"router", "server"}, {"server", "inside"}}};
}

// What the run shares: the lab's voice, the network, the hosts, the router's nftables.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Network& net;
    Settings settings;
    std::optional<firewall::Nftables> nft{};
    Host client{}, router{}, server{}, inside{};
    std::set<std::uint32_t> translations_told{};  // conntrack ids whose nat events are in the trace
    json& facts() { return see.document(); }
    [[nodiscard]] IpAddress outside_address() const { return *net.address("router", "client"); }
    [[nodiscard]] Endpoint public_endpoint() const { return {outside_address(), settings.public_port}; }
};

[[noreturn]] void failed(const std::string& what, const Error& error) {
    throw std::runtime_error(what + ": " + error.message);
}

void in_node(const Run& run, const std::string& node, const std::function<void()>& fn) {
    if (auto entered = run.net.in_node(node, fn); !entered) failed("entering " + node, entered.error());
}

// nft commands run as one transaction in the router's kernel (libnftables, nftables.hpp).
std::string nft_in_router(Run& run, const std::string& commands) {
    Result<std::string> done = fail("not run");
    in_node(run, "router", [&] { done = run.nft->run(commands); });
    if (!done) failed("nft", done.error());
    return *done;
}

// "See it yourself" in a node, run there too with --show (node_look.hpp).
void show_in(Run& run, const std::string& node, const std::vector<std::string>& argv) {
    show_in_node(run.say, run.net, run.lab.options().show, node, argv);
}

// ---- sockets ---------------------------------------------------------------------------------

// A TCP connection attempt and what the kernel said about it within the wait.
struct Attempt {
    Fd fd{};
    SocketRef ref{};
    std::optional<Endpoint> local{}, peer{};
    int error = 0;        // connect()'s errno; 0 when connected
    bool answered = true;  // false: no answer within the wait (still SYN-SENT)
};

// connect() from the node the caller's thread is in, waiting at most `wait`.
Attempt connect_from(Run& run, const Host& host, const Endpoint& to) {
    Attempt attempt;
    attempt.fd = Fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    attempt.ref = run.see.open(host, Protocol::tcp, IpFamily::v4);
    const auto answer = connect_within(attempt.fd.get(), to, run.settings.wait, [&] {
        if (auto local = local_endpoint(attempt.fd.get()); local) {
            attempt.local = *local;
            run.see.record(fact::Bound{attempt.ref, *local, trace::BindHow::ephemeral}, quietly);
        }
        run.see.record(fact::Connecting{attempt.ref, to}, quietly);
    });
    if (!answer) {
        attempt.answered = false;
        return attempt;
    }
    const int error = *answer;
    attempt.error = error;
    if (error != 0) {
        run.see.record(fact::Failed{attempt.ref, "connect", std::error_code(error, std::generic_category())}, quietly);
        return attempt;
    }
    if (auto peer = peer_endpoint(attempt.fd.get()); peer) attempt.peer = *peer;
    run.see.record(fact::State{attempt.ref, TcpState::established, Evidence::inferred, "connect() returned 0"}, quietly);
    return attempt;
}

void close_attempt(Run& run, Attempt& attempt) {
    if (!attempt.fd.ok()) return;
    attempt.fd = Fd();
    run.see.record(fact::Closed{attempt.ref}, quietly);
}

std::string outcome_text(const Attempt& attempt, std::chrono::milliseconds wait) {
    if (!attempt.answered) return fmt::format("no answer within {} ms: the socket is still in SYN-SENT", wait.count());
    if (attempt.error != 0) return fmt::format("connect() failed: {} ({})", errno_text(attempt.error), std::strerror(attempt.error));
    return fmt::format("connected; getpeername() = {}", attempt.peer ? attempt.peer->to_string() : std::string("?"));
}

json attempt_json(const Attempt& attempt) {
    return {{"local", attempt.local ? json(attempt.local->to_string()) : json(nullptr)},
            {"peer", attempt.peer ? json(attempt.peer->to_string()) : json(nullptr)},
            {"answered", attempt.answered},
            {"errno", attempt.answered && attempt.error != 0 ? json(errno_text(attempt.error)) : json(nullptr)}};
}

// The server: a listener on 0.0.0.0:80 in the server's namespace. Non-blocking, so a
// connection that never completes leaves accept() with nothing instead of hanging.
struct Server {
    Fd listener;
    SocketRef ref;
};

Server open_server(Run& run) {
    Server server{Fd(), run.see.open(run.server, Protocol::tcp, IpFamily::v4)};
    in_node(run, "server", [&] {
        server.listener = Fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        const auto any = socket_address({IpAddress::any_v4(), server_port});
        if (!server.listener.ok() || bind(server.listener.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
            listen(server.listener.get(), 16) != 0)
            throw std::runtime_error("the server's listener on port 80: " + errno_text(errno));
    });
    run.see.record(fact::Bound{server.ref, {IpAddress::any_v4(), server_port}, trace::BindHow::explicit_port}, quietly);
    run.see.record(fact::Listening{server.ref, 16}, quietly);
    return server;
}

// A connection the server accepted, with the 4-tuple its kernel gave it.
struct Accepted {
    Fd fd{};
    SocketRef ref{};
    Endpoint local{}, peer{};
};

std::optional<Accepted> accept_one(Run& run, Server& server, std::chrono::milliseconds wait) {
    pollfd readable{server.listener.get(), POLLIN, 0};
    if (poll(&readable, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
    Fd fd(accept4(server.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.ok()) return std::nullopt;
    const auto local = local_endpoint(fd.get());
    const auto peer = peer_endpoint(fd.get());
    if (!local || !peer) return std::nullopt;
    const auto ref = run.see.record(fact::Accepted{server.ref, {*local, *peer}}, quietly);
    return Accepted{std::move(fd), ref, *local, *peer};
}

void close_accepted(Run& run, std::optional<Accepted>& accepted) {
    if (!accepted) return;
    accepted->fd = Fd();
    run.see.record(fact::Closed{accepted->ref}, quietly);
    accepted.reset();
}

// ---- the steps --------------------------------------------------------------------------------

// Every translation the router's kernel made so far, read from its conntrack table, into the
// trace as nat events; then the next step (which may pause: the trace shows them all).
void next_step(Run& run, std::string_view what) {
    (void)record_router_translations(run.see, run.net, "router", run.translations_told);
    run.see.step(what);
}

void show_network(Run& run) {
    next_step(run, "four hosts, four network namespaces, three veth links");
    tell_addresses(run.say, run.net, {"client", "router", "server", "inside"});
    run.say.note("The client is outside: it knows only the router's outside address, 192.0.2.2.");
    run.say.note("The server (port 80) and its LAN neighbour \"inside\" sit behind the router.");
    run.say.see_it_yourself(run.net.see_inside("router", "ip -4 addr"));
}

// The routes the spec leaves out: the server forwards for "inside", so it needs a default
// route (the network gives one only to hosts that do not forward), and the router must know
// where 203.0.113.0/24 is, for the replies it sends there after undoing a rewrite.
void add_inside_routes(Run& run) {
    const auto router_inside = run.net.address("router", "server")->to_string();
    const auto server_outside = run.net.address("server", "router")->to_string();
    Result<void> routed;
    in_node(run, "server", [&] { routed = run_ip({"route", "add", "default", "via", router_inside}); });
    if (routed) in_node(run, "router", [&] { routed = run_ip({"route", "add", "203.0.113.0/24", "via", server_outside}); });
    if (!routed) failed("routes", routed.error());
}

// The forwarding rule, replaced as a whole each time: nat table, prerouting hook (before
// the routing decision, so the new destination is the one routed: nf_nat_ipv4_pre_routing).
std::string forward_rule(const Run& run, const std::string& match) {
    const auto server = run.net.address("server", "router")->to_string();
    return fmt::format("{} tcp dport {} dnat to {}:{}", match, run.settings.public_port, server, server_port);
}

std::string nat_table_text(const std::string& prerouting_rule, const std::string& postrouting_rule = {}) {
    std::string text =
        "add table ip portlab_nat\n"
        "delete table ip portlab_nat\n"
        "add table ip portlab_nat\n"
        "add chain ip portlab_nat prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
        "add chain ip portlab_nat postrouting { type nat hook postrouting priority srcnat; policy accept; }\n";
    text += "add rule ip portlab_nat prerouting " + prerouting_rule + "\n";
    if (!postrouting_rule.empty()) text += "add rule ip portlab_nat postrouting " + postrouting_rule + "\n";
    return text;
}

void install_forwarding(Run& run) {
    const auto outside = *run.net.interface("router", "client");
    const auto rule = forward_rule(run, fmt::format("iifname \"{}\"", outside));
    next_step(run, fmt::format("the router forwards {}:{} to the server's port {} (DNAT)",
                             run.outside_address().to_string(), run.settings.public_port, server_port));
    auto token = run.net.firewall_token("router", run.settings.outer_netns);
    if (!token) failed("the router's firewall", token.error());
    in_node(run, "router", [&] {
        auto nft = firewall::Nftables::open(*token);
        if (!nft) failed("nftables in the router", nft.error());
        run.nft.emplace(std::move(*nft));
    });
    nft_in_router(run, nat_table_text(rule));
    run.say.kernel("nft took the rule: " + rule);
    run.say.note("Only the destination is rewritten. nf_conntrack remembers it and rewrites every reply back.");
    run.facts()["forward_rule"] = rule;
    run.say.see_it_yourself(run.net.see_inside("router", "nft list table ip portlab_nat"));
}

// Step 3: outside -> router:8080 -> server:80, and what each end's kernel says.
struct Forwarded {
    Attempt client;
    std::optional<Accepted> server;
};

Forwarded connect_from_outside(Run& run, Server& server) {
    next_step(run, fmt::format("the client connects to {} (the router's outside address)", run.public_endpoint().to_string()));
    Forwarded forwarded{connect_from(run, run.client, run.public_endpoint()), std::nullopt};
    run.say.kernel("client: " + outcome_text(forwarded.client, run.settings.wait));
    forwarded.server = accept_one(run, server, run.settings.wait);
    json fact = {{"client", attempt_json(forwarded.client)}, {"server_local", nullptr}, {"server_peer", nullptr}};
    if (forwarded.server) {
        run.say.kernel(fmt::format("server: accept() returned a connection on {} from {} (getsockname, getpeername)",
                                   forwarded.server->local.to_string(), forwarded.server->peer.to_string()));
        fact["server_local"] = forwarded.server->local.to_string();
        fact["server_peer"] = forwarded.server->peer.to_string();
    } else {
        run.say.kernel("server: accept() returned nothing");
    }
    run.say.note("The server sees the client's own address and port: DNAT rewrote only where the packets go.");
    run.say.note("The client's socket has 192.0.2.2:" + std::to_string(run.settings.public_port) +
                 " as its peer: it never learns that port 80 on 198.51.100.2 answered.");
    show_in(run, "client", {"ss", "-tn"});
    show_in(run, "server", {"ss", "-tn"});
    show_in(run, "router", {"conntrack", "-L"});
    run.say.note("conntrack -L: one connection, two tuples: the original (client -> 192.0.2.2:8080) and the");
    run.say.note("reply (198.51.100.2:80 -> client); the router maps one onto the other.");
    run.facts()["from_outside"] = fact;
    return forwarded;
}

void close_forwarded(Run& run, Forwarded& forwarded) {
    close_attempt(run, forwarded.client);
    close_accepted(run, forwarded.server);
}

// A hairpin attempt: "inside" connects to the router's outside address, a capture on its
// interface records what came back, and its kernel counts the resets it sent (Tcp OutRsts).
struct Hairpin {
    Attempt attempt;
    std::optional<Accepted> server;
    std::vector<std::string> packets;  // what the capture on inside's interface saw
    std::optional<Endpoint> synack_from;
    int resets_sent = 0;              // RSTs "inside" sent, in the capture
    std::optional<std::int64_t> out_rsts;  // Tcp OutRsts in inside's namespace, before and after
};

std::optional<std::int64_t> out_rsts() {
    // /proc/thread-self: /proc/net follows the process's first thread, not this one.
    const auto counters = SnmpCounters::read("/proc/thread-self/net/snmp");
    if (!counters) return std::nullopt;
    return counters->get("Tcp", "OutRsts");
}

Hairpin hairpin_attempt(Run& run, Server& server) {
    Hairpin hairpin;
    const auto interface = *run.net.interface("inside", "server");
    const auto filter = fmt::format("tcp port {} or tcp port {}", server_port, run.settings.public_port);
    std::optional<capture::LiveCapture> capture;
    std::optional<std::int64_t> before;
    in_node(run, "inside", [&] {
        auto opened = capture::LiveCapture::open({.interface = interface, .filter = filter});
        if (opened) capture.emplace(std::move(*opened));
        before = out_rsts();
        hairpin.attempt = connect_from(run, run.inside, run.public_endpoint());
    });
    hairpin.server = accept_one(run, server, 200ms);
    if (capture) {
        const auto records = capture->read({.limit = 500ms, .idle = 200ms, .max_packets = 64, .enough = {}});
        for (const auto& record : records ? *records : std::vector<pcap::Record>{}) {
            const auto packet = decode_frame(capture->link_type(), record.bytes, record.original_length);
            if (!packet || !packet->tcp) continue;
            hairpin.packets.push_back(packet->summary());
            const auto flags = packet->tcp->flags;
            if ((flags & tcp_flag::syn) && (flags & tcp_flag::ack) && !hairpin.synack_from) hairpin.synack_from = packet->source();
            if ((flags & tcp_flag::rst) && packet->source() && packet->source()->address == *run.net.address("inside"))
                ++hairpin.resets_sent;
        }
    }
    in_node(run, "inside", [&] {
        const auto after = out_rsts();
        if (before && after) hairpin.out_rsts = *after - *before;
    });
    run.say.kernel("inside: " + outcome_text(hairpin.attempt, run.settings.wait));
    for (const auto& line : hairpin.packets) run.say.kernel("capture on " + interface + ": " + line);
    if (hairpin.out_rsts) run.say.kernel(fmt::format("inside's Tcp OutRsts (/proc/net/snmp) went up by {}", *hairpin.out_rsts));
    if (hairpin.server)
        run.say.kernel(fmt::format("server: accept() returned a connection from {}", hairpin.server->peer.to_string()));
    return hairpin;
}

json hairpin_json(const Hairpin& hairpin) {
    return {{"inside", attempt_json(hairpin.attempt)},
            {"server_peer", hairpin.server ? json(hairpin.server->peer.to_string()) : json(nullptr)},
            {"synack_from", hairpin.synack_from ? json(hairpin.synack_from->to_string()) : json(nullptr)},
            {"resets_sent", hairpin.resets_sent},
            {"out_rsts", hairpin.out_rsts ? json(*hairpin.out_rsts) : json(nullptr)},
            {"packets", hairpin.packets}};
}

void close_hairpin(Run& run, Hairpin& hairpin) {
    close_attempt(run, hairpin.attempt);
    close_accepted(run, hairpin.server);
}

// Step 4: the rule as written for the outside interface does not see inside traffic.
Hairpin hairpin_outside_only(Run& run, Server& server) {
    next_step(run, fmt::format("hairpin: \"inside\" connects to {} too (the address a DNS name would give it)",
                             run.public_endpoint().to_string()));
    auto hairpin = hairpin_attempt(run, server);
    run.say.note("The rule matches only packets that came in on the outside interface. This SYN came from inside, so");
    run.say.note("nothing rewrote it: it was for the router itself, which has no socket on that port and answered RST.");
    run.facts()["hairpin_outside_only"] = hairpin_json(hairpin);
    return hairpin;
}

// Step 5: forwarding by address: the SYN reaches the server, the reply skips the router.
Hairpin hairpin_without_masquerade(Run& run, Server& server) {
    const auto rule = forward_rule(run, "ip daddr " + run.outside_address().to_string());
    next_step(run, "the rule now matches the router's outside address from any side: " + rule);
    nft_in_router(run, nat_table_text(rule));
    auto hairpin = hairpin_attempt(run, server);
    run.say.note("The router rewrote the destination and sent the SYN to the server. The server answered the source it");
    run.say.note("saw, 203.0.113.2, straight over its LAN: the reply never passed the router, so nothing undid the");
    run.say.note("rewrite. \"inside\" got a SYN-ACK from 198.51.100.2:80, a 4-tuple it never connected to, and answered");
    run.say.note("it with RST (RFC 9293 3.10.7.1: a segment for no connection). Its own SYN to 192.0.2.2 stays unanswered.");
    show_in(run, "router", {"conntrack", "-L"});
    run.say.note("conntrack -L on the router: the entry stays [UNREPLIED] SYN_SENT: it never saw the reply.");
    run.facts()["forward_rule_by_address"] = rule;
    run.facts()["hairpin_without_masquerade"] = hairpin_json(hairpin);
    return hairpin;
}

// Step 6: hairpin masquerade: traffic that comes in and goes out the inside interface after
// a DNAT also gets the router's source address, so the reply must come back through it.
Hairpin hairpin_with_masquerade(Run& run, Server& server) {
    const auto inward = *run.net.interface("router", "server");
    const auto dnat = forward_rule(run, "ip daddr " + run.outside_address().to_string());
    const auto masquerade = fmt::format("iifname \"{0}\" oifname \"{0}\" ct status dnat masquerade", inward);
    next_step(run, "a hairpin masquerade rule: " + masquerade);
    nft_in_router(run, nat_table_text(dnat, masquerade));
    auto hairpin = hairpin_attempt(run, server);
    run.say.note("The server now sees the router (198.51.100.1) as the peer, so it answers the router, which undoes");
    run.say.note("both rewrites: \"inside\" sees 192.0.2.2:" + std::to_string(run.settings.public_port) +
                 " answer, the 4-tuple it called. The price: the server no longer sees who called.");
    show_in(run, "router", {"conntrack", "-L"});
    show_in(run, "server", {"ss", "-tn"});
    run.facts()["hairpin_masquerade_rule"] = masquerade;
    run.facts()["hairpin_with_masquerade"] = hairpin_json(hairpin);
    return hairpin;
}

void list_ruleset(Run& run) {
    next_step(run, "the router's NAT rules, listed back from its kernel (nft list ruleset)");
    Result<std::string> listing = fail("not run");
    in_node(run, "router", [&] { listing = run.nft->list_ruleset(); });
    for (const auto& line : text::split_lines(listing ? *listing : listing.error().message)) run.say.note(line);
    run.facts()["ruleset_text"] = listing ? json(*listing) : json(nullptr);
    run.say.see_it_yourself(run.net.see_inside("router", "nft list ruleset"));
}

// The whole story, inside the private namespaces. Returns the --json document.
json tell_the_story(Lab& lab, const Settings& settings) {
    auto net = Network::build(forwarding_network());
    if (!net) throw std::runtime_error(net.error().message);
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, *net, settings};
    run.client = see.declare({"client", {*net->address("client")}, "client"});
    run.router = see.declare({"router", {*net->address("router", "client"), *net->address("router", "server")}, "router", false, net->entering("router")});
    run.server = see.declare({"server", {*net->address("server", "router"), *net->address("server", "inside")}, "server", false, net->entering("server")});
    run.inside = see.declare({"inside", {*net->address("inside")}, "client", false, net->entering("inside")});
    see.document()["lab"] = lab.name();
    see.document()["public_port"] = settings.public_port;

    show_network(run);
    add_inside_routes(run);
    install_forwarding(run);
    auto server = open_server(run);
    auto forwarded = connect_from_outside(run, server);
    auto outside_only = hairpin_outside_only(run, server);
    close_forwarded(run, forwarded);
    auto direct = hairpin_without_masquerade(run, server);
    close_hairpin(run, outside_only);
    auto masqueraded = hairpin_with_masquerade(run, server);
    close_hairpin(run, direct);
    list_ruleset(run);
    (void)record_router_translations(run.see, run.net, "router", run.translations_told);
    close_hairpin(run, masqueraded);
    server.listener = Fd();
    see.record(fact::Closed{server.ref}, quietly);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv,
                   {"lab17_port_forwarding", "Lab 17: port forwarding (DNAT): outside:8080 reaches inside:80, and hairpin"},
                   [](Lab& lab) {
        Settings settings;
        int wait_ms = 2000;
        lab.cli().add_option("--public-port", settings.public_port, "the router's forwarded port (1-65535, not 80)")
            ->check(CLI::Range(1, 65535))->default_str("8080");
        lab.cli().add_option("--wait", wait_ms, "how long a connect() waits for its answer, in ms (200-10000)")
            ->check(CLI::Range(200, 10000))->default_str("2000");
        lab.cli().footer("Runs in private network namespaces (client, router, server, inside) of its own; needs no root.");
        lab.parse();
        if (settings.public_port == server_port)
            return lab.usage_error("--public-port: 80 is the server's own port; forward another one (8080)");
        settings.wait = std::chrono::milliseconds(wait_ms);
        const auto outer = firewall::network_namespace_id();
        if (!outer) return lab.failure(outer.error().message);
        settings.outer_netns = *outer;
        lab.narrate().title("Lab 17: port forwarding");
        return tell_in_private_netns(lab, std::chrono::milliseconds(40s) + 4 * settings.wait, [&] { return tell_the_story(lab, settings); });
    });
}
