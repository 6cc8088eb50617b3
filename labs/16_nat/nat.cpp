// Lab 16: NAT (masquerade), real, in private network namespaces.
//
// Why does a server see another address, and sometimes another port, than the client has?
// Four hosts, each a network namespace of its own, joined by veth links (labkit/network.hpp)
// with documentation addresses (RFC 5737):
//
//   client  192.0.2.1   --- 192.0.2.2   router 198.51.100.1 --- 198.51.100.2 server
//   client2 203.0.113.1 --- 203.0.113.2 /
//
// The router masquerades (nftables: `oifname "router-server" masquerade`): whatever leaves
// toward the server leaves from the router's own address. Each answer below is read from
// the kernel: accept() and getsockname(), the router's connection-tracking table through
// netlink (labkit/conntrack.hpp, what conntrack -L shows), captures on both of the
// router's links, TCP_INFO, and conntrack's counters.
//
//   1. the network and the router's NAT rule
//   2. a connection: the server's accept() names the router as the peer
//   3. the router's conntrack entry: the original tuple and the reply tuple
//   4. captures on both sides of the router: one connection under two 4-tuples
//   5. client and client2 connect from the same source port: two different outside ports
//   6. only N outside ports toward one destination: connection N+1 gets no SYN through
//
//   lab16_nat
//   lab16_nat --source-port 45000 --nat-ports 3 --json

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "labkit/capture.hpp"
#include "labkit/conntrack.hpp"
#include "labkit/labkit.hpp"
#include "labkit/nat_trace.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/network.hpp"
#include "labkit/nftables.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "portlab/net.hpp"
#include "portlab/packet.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using labkit::fact::Accepted;
using labkit::fact::Bound;
using labkit::fact::Closed;
using labkit::fact::Connecting;
using labkit::fact::Listening;
using labkit::fact::PacketSeen;

constexpr Port server_port = 8080;    // steps 2 to 5
constexpr Port crowded_port = 8081;   // step 6: the one destination the NAT runs out of ports for
constexpr Port first_nat_port = 40000;

struct Settings {
    Port source_port = 50000;  // step 5: both clients bind it
    int nat_ports = 2;         // step 6: the router's outside ports toward 8081
    int syn_wait_s = 3;        // step 6: how long the last connect() is watched
};

// client, router, server on two links, and client2 on the router's third link.
NetworkSpec nat_network() {
    return {{"client", "router", "server", "client2"},
            {"router"},
            {{"client", "router"}, {"router", "server"}, {"client2", "router"}}};
}

// What the run shares: the lab's voice, the network, the hosts of the story, the router's
// nftables context and its two captures.
// A packet one of the router's captures handed over, decoded.
struct Seen {
    DecodedPacket packet;
    pcap::Record record;
    LinkType link = LinkType::raw;
    std::string from, to;  // the hosts at the two ends of the link it crossed
};

struct Run {
    Narrator& say;
    Observer& see;
    Network& net;
    Settings settings;
    std::uint64_t outer_netns;
    Host client, router, server, client2;
    std::optional<firewall::Nftables> nft{};
    std::optional<capture::LiveCapture> client_side{}, server_side{};
    std::vector<Seen> client_seen{}, server_seen{};  // captured and in the trace, not yet told
    std::set<std::uint32_t> translations_told{};  // conntrack ids whose nat events are in the trace
    json& facts() { return see.document(); }
    const Host& host(const std::string& name) const { return name == "client2" ? client2 : client; }
};

// A TCP connection as both ends see it: the client's socket and the server's accepted one.
struct Connection {
    Fd client, server;
    SocketRef client_ref, server_ref;
    Endpoint client_local, server_peer;
};

// ---- sockets and what the kernel says about them ------------------------------------------

[[noreturn]] void kernel_error(const std::string& call) {
    throw std::runtime_error(call + ": " + std::strerror(errno));
}

template <class T>
T or_throw(Result<T> result) {
    if (!result) throw std::runtime_error(result.error().message);
    return std::move(*result);
}

void or_throw(Result<void> result) {
    if (!result) throw std::runtime_error(result.error().message);
}

// Runs fn inside a node; a socket made there stays in that node's namespace.
void inside(Run& run, const std::string& node, const std::function<void()>& fn) {
    or_throw(run.net.in_node(node, fn));
}

// A listener on the server: 0.0.0.0:port.
Fd listen_on_server(Run& run, Port port, SocketRef& ref) {
    Fd fd;
    inside(run, "server", [&] { fd = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); });
    const int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const auto any = socket_address({IpAddress::any_v4(), port});
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0) kernel_error("bind");
    if (listen(fd.get(), 16) != 0) kernel_error("listen");
    ref = run.see.open(run.server, Protocol::tcp, IpFamily::v4);
    run.see.record(Bound{ref, {IpAddress::any_v4(), port}, trace::BindHow::explicit_port}, quietly);
    run.see.record(Listening{ref, 16}, quietly);
    // LISTEN read back now, as the lab kit's listener does: read first at close(), it
    // would be told as a late "CLOSED to LISTEN" at the end of the story.
    (void)run.see.read_state(ref, fd.get());
    return fd;
}

// connect() from `node`, bound to `port` (0: the kernel chooses), watched for at most `wait`.
// Returns 0 when connected, the errno when it failed, nothing when it is still trying.
void drain_captures(Run& run);

std::optional<int> connect_from(Run& run, const std::string& node, Port port, const Endpoint& to,
                                std::chrono::milliseconds wait, Fd& fd, SocketRef& ref) {
    inside(run, node, [&] { fd = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)); });
    ref = run.see.open(run.host(node), Protocol::tcp, IpFamily::v4);
    const auto own = *run.net.address(node);
    if (port != 0) {
        const auto at = socket_address({own, port});
        if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) kernel_error("bind");
        run.see.record(Bound{ref, {own, port}, trace::BindHow::explicit_port}, quietly);
    }
    const auto address = socket_address(to);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS)
        kernel_error("connect");
    if (port == 0) run.see.record(Bound{ref, or_throw(local_endpoint(fd.get())), trace::BindHow::ephemeral}, quietly);
    run.see.record(Connecting{ref, to}, quietly);
    pollfd writable{fd.get(), POLLOUT, 0};
    if (poll(&writable, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    drain_captures(run);  // the handshake's packets enter the trace before the state they made
    (void)run.see.read_state(ref, fd.get());  // TCP_INFO: ESTABLISHED when it worked
    return error;
}

// The server's accept(): the connection as the server sees it.
Fd accept_on_server(Run& run, int listener, const SocketRef& listener_ref, SocketRef& ref, Endpoint& peer) {
    pollfd readable{listener, POLLIN, 0};
    if (poll(&readable, 1, 2000) <= 0) throw std::runtime_error("the server accepted nothing within 2 s");
    Fd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.ok()) kernel_error("accept");
    peer = or_throw(peer_endpoint(fd.get()));
    ref = run.see.record(Accepted{listener_ref, {or_throw(local_endpoint(fd.get())), peer}}, quietly);
    return fd;
}

Connection connect_and_accept(Run& run, const std::string& node, Port port, int listener, const SocketRef& listener_ref) {
    Connection c;
    const Endpoint to{*run.net.address("server"), server_port};
    const auto done = connect_from(run, node, port, to, 2s, c.client, c.client_ref);
    if (!done || *done != 0) throw std::runtime_error("connect from " + node + " failed: " + (done ? std::strerror(*done) : "no answer in 2 s"));
    c.client_local = or_throw(local_endpoint(c.client.get()));
    c.server = accept_on_server(run, listener, listener_ref, c.server_ref, c.server_peer);
    return c;
}

// close(), told once; TCP's state just before it read first (TCP_INFO).
void close_and_record(Run& run, Fd& fd, const SocketRef& ref) {
    if (!fd.ok()) return;
    if (ref.protocol == Protocol::tcp) (void)run.see.read_state(ref, fd.get());
    fd = Fd();  // the swapped-out descriptor closes with the temporary
    run.see.record(Closed{ref}, quietly);
}

void close_connection(Run& run, Connection& c) {
    close_and_record(run, c.client, c.client_ref);
    close_and_record(run, c.server, c.server_ref);
}

// ---- the router: its NAT rule, its table, its captures ----------------------------------

// The router's NAT, as one nft transaction run inside it (replacing what was there).
std::string set_nat_rule(Run& run, const std::string& rule) {
    const auto text = "add table ip portlab_nat\n"
                      "flush table ip portlab_nat\n"
                      "add chain ip portlab_nat postrouting { type nat hook postrouting priority srcnat; }\n"
                      "add rule ip portlab_nat postrouting " + rule + "\n";
    std::string listing;
    inside(run, "router", [&] {
        if (!run.nft) run.nft.emplace(or_throw(firewall::Nftables::open(or_throw(run.net.firewall_token("router", run.outer_netns)))));
        or_throw(run.nft->run(text));
        listing = or_throw(run.nft->list_ruleset());
    });
    return listing;
}

std::vector<conntrack::Entry> router_table(Run& run) {
    Result<std::vector<conntrack::Entry>> table = fail("not read");
    inside(run, "router", [&] { table = conntrack::dump(); });
    return or_throw(std::move(table));
}

conntrack::Statistics router_counters(Run& run) {
    Result<conntrack::Statistics> counters = fail("not read");
    inside(run, "router", [&] { counters = conntrack::statistics(); });
    return or_throw(std::move(counters));
}

// The entry whose original tuple starts at `client`.
std::optional<conntrack::Entry> entry_from(const std::vector<conntrack::Entry>& table, const Endpoint& client) {
    for (const auto& entry : table)
        if (entry.protocol_number == IPPROTO_TCP && entry.original.source == client) return entry;
    return std::nullopt;
}

json tuple_json(const conntrack::Tuple& tuple) {
    return {{"source", json_of(tuple.source)}, {"destination", json_of(tuple.destination)}};
}

json entry_json(const conntrack::Entry& entry) {
    return {{"protocol", entry.protocol}, {"tcp_state", entry.tcp_state}, {"original", tuple_json(entry.original)},
            {"reply", tuple_json(entry.reply)}, {"source_nat", entry.source_nat},
            {"destination_nat", entry.destination_nat}, {"assured", entry.assured}, {"id", entry.id}};
}

// conntrack -L's way of writing a tuple.
std::string conntrack_text(const conntrack::Tuple& tuple) {
    return fmt::format("src={} dst={} sport={} dport={}", tuple.source.address.to_string(),
                       tuple.destination.address.to_string(), tuple.source.port, tuple.destination.port);
}

// A capture on one of the router's interfaces, opened inside the router.
capture::LiveCapture capture_on(Run& run, const std::string& interface) {
    Result<capture::LiveCapture> opened = fail("not opened");
    inside(run, "router", [&] { opened = capture::LiveCapture::open({.interface = interface, .filter = "tcp"}); });
    return or_throw(std::move(opened));
}

// What a capture holds now: `near` is the router's neighbour on that link ("client" or
// "server"), so each packet went from one of the two to the other.
std::vector<Seen> read_capture(Run& run, capture::LiveCapture& capture, const std::string& near) {
    capture::ReadLimits limits;
    limits.limit = 500ms;
    limits.idle = 50ms;  // veth hands a packet over in microseconds: 50 ms of silence means none is coming
    auto records = or_throw(capture.read(limits));
    const auto near_address = *run.net.address(near);
    std::vector<Seen> seen;
    for (auto& record : records) {
        auto packet = decode_frame(capture.link_type(), record.bytes, record.original_length);
        if (!packet || !packet->tcp) continue;
        const bool to_near = packet->ip.destination == near_address;
        seen.push_back({std::move(*packet), std::move(record), capture.link_type(), to_near ? "router" : near,
                        to_near ? near : "router"});
    }
    return seen;
}

// What both captures hold now, recorded into the trace at once, in the order the kernel
// stamped them on either link (so a packet comes before the state change it caused, e.g.
// connect() seeing ESTABLISHED), and kept until a step tells it (take_captured).
void drain_captures(Run& run) {
    std::vector<std::pair<Seen, std::vector<Seen>*>> arrived;
    for (auto [capture, kept, near] : {std::tuple{&run.client_side, &run.client_seen, "client"},
                                       std::tuple{&run.server_side, &run.server_seen, "server"}}) {
        if (!*capture) continue;
        for (auto& packet : read_capture(run, **capture, near)) arrived.emplace_back(std::move(packet), kept);
    }
    std::stable_sort(arrived.begin(), arrived.end(), [](const auto& a, const auto& b) {
        return a.first.record.timestamp_us < b.first.record.timestamp_us;
    });
    for (auto& [seen, kept] : arrived) {
        run.see.record(PacketSeen{seen.to, {trace::PacketKind::delivered, seen.record.bytes, seen.link, std::nullopt, seen.from, seen.to}});
        kept->push_back(std::move(seen));
    }
}

// The packets one side's capture has handed over since the last take, the newest included.
std::vector<Seen> take_captured(Run& run, const std::string& near) {
    drain_captures(run);
    return std::exchange(near == "client" ? run.client_seen : run.server_seen, {});
}

bool is_syn(const DecodedPacket& packet) {
    return packet.tcp && (packet.tcp->flags & 0x02) != 0 && (packet.tcp->flags & 0x10) == 0;
}

json packet_json(const DecodedPacket& packet) {
    return {{"source", json_of(*packet.source())}, {"destination", json_of(*packet.destination())},
            {"flags", tcp_flags_to_string(packet.tcp->flags)}};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    for (std::size_t start = 0; start < text.size();) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

// ---- the steps ------------------------------------------------------------------------------

// Every translation the router's kernel made so far, read from its conntrack table, into the
// trace as nat events; then the next step (which may pause: the trace shows them all).
void next_step(Run& run, std::string_view what) {
    (void)record_router_translations(run.see, run.net, "router", run.translations_told);
    run.see.step(what);
}

void show_network(Run& run) {
    next_step(run, "four hosts, four network namespaces, three veth links; the router masquerades");
    for (const auto* node : {"client", "client2", "router", "server"}) {
        std::vector<std::string> addresses;
        for (const auto* other : {"client", "router", "server", "client2"})
            if (auto address = run.net.address(node, other)) addresses.push_back(address->to_string());
        run.say.kernel(fmt::format("{:<7} {}", node, fmt::join(addresses, ", ")));
    }
    const auto listing = set_nat_rule(run, "oifname \"router-server\" masquerade");
    for (const auto& line : lines_of(listing)) run.say.kernel("router's nft: " + line);
    run.say.note("masquerade: a packet that leaves through router-server gets that interface's address,");
    run.say.note("198.51.100.1, as its source, and the router remembers the connection to turn the answers back.");
    run.say.note("A home router does this so that every host behind it shares its one public address.");
    run.say.see_it_yourself(run.net.see_inside("router", "nft list ruleset"));
    run.facts()["nat_rule"] = listing;
    // Both of the router's links, from now on: the same connection on each side.
    run.client_side.emplace(capture_on(run, *run.net.interface("router", "client")));
    run.server_side.emplace(capture_on(run, *run.net.interface("router", "server")));
}

// (a) Who the server thinks it talks to.
Connection server_sees_the_router(Run& run, int listener, const SocketRef& listener_ref) {
    next_step(run, fmt::format("client connects to 198.51.100.2:{}; who does the server's accept() name?", server_port));
    auto c = connect_and_accept(run, "client", 0, listener, listener_ref);
    const auto server_local = or_throw(local_endpoint(c.server.get()));
    run.say.kernel(fmt::format("client: getsockname() = {}, getpeername() = {}", c.client_local.to_string(),
                               or_throw(peer_endpoint(c.client.get())).to_string()));
    run.say.kernel(fmt::format("server: accept() returned a socket {} <- peer {}", server_local.to_string(),
                               c.server_peer.to_string()));
    run.say.note("The server's peer is the router's address, not the client's.");
    run.say.note(c.server_peer.port == c.client_local.port
                     ? "The port stayed: Linux keeps the client's port when that tuple is still free on the outside"
                     : "The port changed: the client's port was taken on the outside, so the router picked another");
    run.say.note("(get_unique_tuple, net/netfilter/nf_nat_core.c).");
    run.say.see_it_yourself(run.net.see_inside("server", fmt::format("ss -tn 'sport = :{}'", server_port)));
    run.facts()["first_connection"] = {{"client_local", json_of(c.client_local)},
                                       {"client_remote", json_of(or_throw(peer_endpoint(c.client.get())))},
                                       {"server_local", json_of(server_local)},
                                       {"server_peer", json_of(c.server_peer)}};
    return c;
}

// (b) The router's memory of that connection.
void conntrack_entry(Run& run, const Connection& c) {
    next_step(run, "the router's connection-tracking table (netlink, as conntrack -L reads it)");
    const auto entry = entry_from(router_table(run), c.client_local);
    if (!entry) {
        run.say.kernel("no conntrack entry starts at " + c.client_local.to_string());
        run.facts()["conntrack"] = nullptr;
        return;
    }
    run.say.kernel(fmt::format("{} {} id={}", entry->protocol, entry->tcp_state, entry->id));
    run.say.kernel("original: " + conntrack_text(entry->original));
    run.say.kernel("reply:    " + conntrack_text(entry->reply));
    run.say.kernel(fmt::format("status: {}{}", entry->source_nat ? "SRC NAT " : "", entry->assured ? "ASSURED" : ""));
    run.say.note("The original tuple is the packet as the client sent it. The reply tuple is what an answer must");
    run.say.note("carry to belong here: from the server to the router's address. Not a mirror of the original:");
    run.say.note("the difference is the translation (nf_nat_setup_info alters the reply tuple, sets IPS_SRC_NAT).");
    run.say.note("An answer to 198.51.100.1 matching the reply tuple is rewritten back to the client's address.");
    run.say.see_it_yourself(run.net.see_inside("router", "conntrack -L"));
    run.facts()["conntrack"] = entry_json(*entry);
}

// (c) The wire on both sides of the router.
void one_connection_two_tuples(Run& run) {
    next_step(run, "captures on the router's two links: the handshake on each side");
    json sides = json::object();
    for (const auto& [name, capture, near] : {std::tuple{"client_side", &*run.client_side, "client"},
                                              std::tuple{"server_side", &*run.server_side, "server"}}) {
        json packets = json::array();
        for (const auto& seen : take_captured(run, near)) {
            run.say.kernel(fmt::format("{:<15} {}", capture->interface(), seen.packet.summary()));
            packets.push_back(packet_json(seen.packet));
        }
        sides[name] = packets;
    }
    run.say.note("The same SYN, SYN-ACK, ACK on both links, under two 4-tuples: on router-client the client's");
    run.say.note("address, on router-server the router's. Neither end sees the other's tuple.");
    run.say.see_it_yourself(run.net.see_inside("router", "tshark -n -i router-server -f tcp"));
    run.facts()["captures"] = sides;
}

// (d) Two clients, one source port.
void same_source_port(Run& run, int listener, const SocketRef& listener_ref) {
    const auto port = run.settings.source_port;
    next_step(run, fmt::format("client and client2 both connect from source port {}", port));
    json connections = json::array();
    std::vector<Connection> open;
    for (const auto* node : {"client", "client2"}) {
        open.push_back(connect_and_accept(run, node, port, listener, listener_ref));
        run.say.kernel(fmt::format("{:<7} {} -> server; the server's accept() names {}", node,
                                   open.back().client_local.to_string(), open.back().server_peer.to_string()));
    }
    const auto table = router_table(run);
    for (std::size_t i = 0; i < open.size(); ++i) {
        const auto entry = entry_from(table, open[i].client_local);
        if (entry) run.say.kernel(fmt::format("conntrack: original {}   reply {}", conntrack_text(entry->original), conntrack_text(entry->reply)));
        connections.push_back({{"client", i == 0 ? "client" : "client2"},
                               {"client_local", json_of(open[i].client_local)},
                               {"server_peer", json_of(open[i].server_peer)},
                               {"conntrack", entry ? entry_json(*entry) : json(nullptr)}});
    }
    run.say.note("Both would leave as 198.51.100.1:" + std::to_string(port) + " -> server: one 4-tuple for two connections, and");
    run.say.note("the server could not tell their packets apart. The first kept its port; for the second the router");
    run.say.note("picked another from a random start in 1024-65535 (nf_nat_l4proto_unique_tuple, nf_nat_core.c).");
    run.say.see_it_yourself(run.net.see_inside("router", fmt::format("conntrack -L -p tcp --orig-port-src {}", port)));
    run.facts()["same_source_port"] = {{"source_port", port}, {"connections", connections}};
    for (auto& c : open) close_connection(run, c);
    (void)take_captured(run, "client");
    (void)take_captured(run, "server");
}

// How many SYNs TCP has sent on a socket: the first one and its retransmissions (TCP_INFO).
int syns_sent(int fd) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return 0;
    return 1 + static_cast<int>(info.tcpi_total_retrans);
}

int read_sysctl(const std::string& path) {
    std::ifstream file(path);
    int value = -1;
    file >> value;
    return value;
}

// When connect() gives up on SYNs nobody answers. In SYN-SENT, tcp_write_timeout
// (net/ipv4/tcp_timer.c) allows tcp_syn_retries + tcp_syn_linear_timeouts retransmissions;
// tcp_retransmit_timer keeps the initial RTO (1 s, TCP_TIMEOUT_INIT) for the first
// linear + 1 waits and doubles it after (2, 4, ...; TCP_RTO_MAX is 120 s). After the last
// retransmission it waits once more. 6 and 4: 1+1+1+1+1+2+4+8+16+32+64 = 131 s.
int seconds_until_connect_gives_up(int syn_retries, int linear) {
    int total = 0, rto = 1;
    for (int wait = 0; wait <= syn_retries + linear; ++wait) {
        if (wait > linear) rto = std::min(rto * 2, 120);
        total += rto;
    }
    return total;
}

// (e) More connections toward one destination than the router has outside ports for.
void out_of_nat_ports(Run& run, int listener, const SocketRef& listener_ref) {
    const int count = run.settings.nat_ports;
    const auto last_port = static_cast<Port>(first_nat_port + count - 1);
    next_step(run, fmt::format("the router may use only ports {}-{} toward the server; {} connections to :{}", first_nat_port,
                             last_port, count + 1, crowded_port));
    const auto rule = fmt::format("oifname \"router-server\" ip protocol tcp masquerade to :{}-{}", first_nat_port, last_port);
    (void)set_nat_rule(run, rule);
    run.say.kernel("router's nft: " + rule);
    const auto before = router_counters(run);
    const Endpoint to{*run.net.address("server"), crowded_port};
    std::vector<Connection> open;
    json outside = json::array();
    for (int i = 0; i < count; ++i) {
        Connection c;
        const auto done = connect_from(run, "client", 0, to, 2s, c.client, c.client_ref);
        if (!done || *done != 0) throw std::runtime_error("connection " + std::to_string(i + 1) + " got no port");
        c.client_local = or_throw(local_endpoint(c.client.get()));
        c.server = accept_on_server(run, listener, listener_ref, c.server_ref, c.server_peer);
        run.say.kernel(fmt::format("connection {}: {} -> server; the server sees {}", i + 1, c.client_local.to_string(),
                                   c.server_peer.to_string()));
        outside.push_back(c.server_peer.port);
        open.push_back(std::move(c));
    }
    // One more: the router has no outside port left toward 198.51.100.2:8081.
    Fd fd;
    SocketRef ref;
    const auto wait = std::chrono::seconds(run.settings.syn_wait_s);
    const auto done = connect_from(run, "client", 0, to, wait, fd, ref);
    const auto local = or_throw(local_endpoint(fd.get()));
    const auto state = run.see.read_state(ref, fd.get());
    const int syns = syns_sent(fd.get());
    const auto state_text = state ? std::string(to_string(*state)) : std::string("?");
    run.say.kernel(fmt::format("connection {}: {} -> server: {} after {} s; TCP_INFO: {}, {} SYNs sent", count + 1,
                               local.to_string(), done ? (*done == 0 ? "connected" : std::strerror(*done)) : "no answer",
                               run.settings.syn_wait_s, state_text, syns));
    close_and_record(run, fd, ref);
    std::this_thread::sleep_for(100ms);  // the last SYN reaches the router, the capture hands it over
    const auto after = router_counters(run);
    int client_side_syns = 0, server_side_syns = 0;
    for (const auto& seen : take_captured(run, "client"))
        client_side_syns += is_syn(seen.packet) && *seen.packet.source() == local;
    for (const auto& seen : take_captured(run, "server"))
        server_side_syns += is_syn(seen.packet) && seen.packet.destination()->port == crowded_port;
    int entries = 0;
    for (const auto& entry : router_table(run)) entries += entry.original.destination == to;
    const auto insert_failed = after.insert_failed - before.insert_failed;
    const auto dropped = after.drop - before.drop;
    run.say.kernel(fmt::format("capture: {} SYNs from {} on router-client, {} SYNs to :{} on router-server (one per connection that got a port)",
                               client_side_syns, local.to_string(), server_side_syns, crowded_port));
    run.say.kernel(fmt::format("router's conntrack counters: insert_failed +{}, drop +{}; entries toward :{}: {}", insert_failed,
                               dropped, crowded_port, entries));
    const int syn_retries = read_sysctl("/proc/sys/net/ipv4/tcp_syn_retries");
    const int linear = std::max(0, read_sysctl("/proc/sys/net/ipv4/tcp_syn_linear_timeouts"));  // -1 where the sysctl does not exist
    const int give_up_s = seconds_until_connect_gives_up(syn_retries, linear);
    run.say.note("Every outside port toward 198.51.100.2:" + std::to_string(crowded_port) + " is taken. The router does not refuse");
    run.say.note("anything: it tries each port in the range, finds none free, keeps a used one (\"it might not be");
    run.say.note("possible to get a unique tuple, but we try\", get_unique_tuple in nf_nat_core.c), and the clash is");
    run.say.note("found when the entry is confirmed (__nf_conntrack_confirm): the SYN is dropped, insert_failed counts it.");
    run.say.note("No RST, no ICMP: the client only sees silence and retransmits its SYN. Left alone, connect() fails");
    run.say.note(fmt::format("with ETIMEDOUT after tcp_syn_retries + tcp_syn_linear_timeouts = {} + {} retransmissions, the first",
                             syn_retries, linear));
    run.say.note(fmt::format("ones 1 s apart, then doubling: about {} s after the first SYN (tcp_write_timeout, tcp_timer.c).", give_up_s));
    run.say.see_it_yourself(run.net.see_inside("router", "conntrack -S"));
    run.facts()["out_of_ports"] = {
        {"destination", json_of(to)},
        {"nat_ports", {first_nat_port, last_port}},
        {"connected", open.size()},
        {"outside_ports", outside},
        {"failed", {{"client_local", json_of(local)},
                    {"connect_result", done ? json(*done) : json(nullptr)},
                    {"tcp_state", state_text},
                    {"syns_sent", syns},
                    {"waited_s", run.settings.syn_wait_s}}},
        {"client_side_syns", client_side_syns},
        {"server_side_syns", server_side_syns},
        {"insert_failed", insert_failed},
        {"drop", dropped},
        {"conntrack_entries", entries},
        {"tcp_syn_retries", syn_retries},
        {"tcp_syn_linear_timeouts", linear},
        {"connect_gives_up_after_s", give_up_s}};
    for (auto& c : open) close_connection(run, c);
}

// The whole story, inside the private namespaces. Returns the --json document.
json tell_the_story(Lab& lab, Settings settings, std::uint64_t outer_netns) {
    auto net = Network::build(nat_network());
    if (!net) throw std::runtime_error(net.error().message);
    auto& see = lab.observer();
    Run run{lab.narrate(), see, *net, settings, outer_netns, {}, {}, {}, {}, {}, {}, {}, {}};
    run.client = see.declare({"client", {*net->address("client")}, "client"});
    run.router = see.declare({"router", {*net->address("router", "client"), *net->address("router", "server"),
                                         *net->address("router", "client2")}, "router", false, net->entering("router")});
    run.server = see.declare({"server", {*net->address("server")}, "server", false, net->entering("server")});
    run.client2 = see.declare({"client2", {*net->address("client2")}, "client", false, net->entering("client2")});
    see.document()["lab"] = lab.name();

    show_network(run);
    SocketRef listener_ref, crowded_ref;
    Fd listener = listen_on_server(run, server_port, listener_ref);
    Fd crowded = listen_on_server(run, crowded_port, crowded_ref);
    auto first = server_sees_the_router(run, listener.get(), listener_ref);
    conntrack_entry(run, first);
    one_connection_two_tuples(run);
    close_connection(run, first);
    same_source_port(run, listener.get(), listener_ref);
    out_of_nat_ports(run, crowded.get(), crowded_ref);
    (void)record_router_translations(run.see, run.net, "router", run.translations_told);
    (void)see.settle(std::chrono::milliseconds(1000));  // step 6's connections, closed: TIME-WAIT, or gone
    run.say.pause();  // under --step: a last look at the router's table before everything closes
    close_and_record(run, listener, listener_ref);
    close_and_record(run, crowded, crowded_ref);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab16_nat", "Lab 16: NAT (masquerade): the peer the server sees, conntrack's two tuples, running out of ports"},
                   [](Lab& lab) {
        Settings settings;
        lab.cli().add_option("--source-port", settings.source_port, "the source port both clients bind in step 5 (1024-65535, not 40000-40007)")
            ->check(CLI::Range(1024, 65535))->default_str("50000");
        lab.cli().add_option("--nat-ports", settings.nat_ports, "outside ports the router may use in step 6 (1-8)")
            ->check(CLI::Range(1, 8))->default_str("2");
        lab.cli().add_option("--syn-wait", settings.syn_wait_s, "seconds step 6 watches the connection that gets no port (1-20)")
            ->check(CLI::Range(1, 20))->default_str("3");
        lab.cli().footer("Runs in private network namespaces (client, client2, router, server) of its own; needs no root.");
        lab.parse();
        if (settings.source_port >= first_nat_port && settings.source_port < first_nat_port + 8)
            return lab.usage_error("--source-port: 40000-40007 are the router's ports of step 6");
        const auto outer = firewall::network_namespace_id();
        if (!outer) return lab.failure(outer.error().message);
        lab.narrate().title("Lab 16: NAT, one connection under two 4-tuples");
        return tell_in_private_netns(lab, 60s, [&] { return tell_the_story(lab, settings, *outer); });
    });
}
