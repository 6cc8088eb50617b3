// Lab 05: UDP sends datagrams: no handshake, no connection, boundaries kept, a checksum.
//
// A UDP server binds a port and simply receives; a client sends datagrams of different
// sizes and each arrives whole, one per receive. There is nothing to accept and no state
// in `ss` but "UNCONN". A connected UDP socket is only a filter with a default peer, yet
// it is the one that hears the kernel's ECONNREFUSED when ICMP "port unreachable" comes
// back. A datagram has a size limit (65,507 payload bytes over IPv4) and a checksum the
// receiving kernel really checks.
//
//   lab05_udp_datagrams                  server on 127.0.0.1:7405
//   lab05_udp_datagrams --sizes 1,2,3 --port 0
//   lab05_udp_datagrams --json

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>  // Asio 1.22 keeps as_tuple here; newer Asio has asio::as_tuple
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "labkit/snmp.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/net.hpp"
#include "portlab/packet.hpp"

using namespace portlab;
using namespace portlab::labkit;
using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using asio::ip::udp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port default_port = 7405;
constexpr auto run_limit = 2s;  // every asynchronous part of the lab ends within this

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)

// The largest UDP payload: the 16-bit IPv4 total length (65535) minus 20 bytes of IPv4
// header and 8 of UDP header (RFC 791, RFC 768). IPv6's 16-bit payload length does not
// count its own 40-byte header, so there the limit is 65535 - 8 (RFC 8200 section 3).
std::size_t max_payload(IpFamily family) { return family == IpFamily::v4 ? 65535 - 20 - 8 : 65535 - 8; }

json error_json(const std::error_code& error) { return error ? json(errno_name(error)) : json(nullptr); }

std::string outcome(const std::error_code& error) { return error ? describe_error(error) : "ok"; }

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each) and the hosts of the story. "server" and "client" share this
// process's kernel; "private-netns" is the namespace a child process makes in step 8.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    asio::io_context io{};
    Host server_host{}, client_host{}, netns_host{};
    json& facts() { return see.document(); }
};

// A UDP socket the lab holds, with the name the trace gives it.
struct Held {
    udp::socket socket;
    SocketRef ref;
};

// socket() on `host`, as the trace names it.
Held open_udp(Run& run, const Host& host, IpFamily family) {
    return {udp::socket(run.io, family == IpFamily::v4 ? udp::v4() : udp::v6()), run.see.open(host, Protocol::udp, family)};
}

// connect() on a UDP socket: no packet, only a default peer; the kernel binds the socket
// to an ephemeral port and a source address if it had none (ip4_datagram_connect).
std::error_code connect_udp(Run& run, Held& held, const Endpoint& peer, const std::string& json_at = {}) {
    run.see.record(Connecting{held.ref, peer}, {std::string(), json_at});
    std::error_code error;
    held.socket.connect(to_udp_endpoint(peer), error);
    if (error) {
        run.see.record(Failed{held.ref, "connect", error}, quietly);
        return error;
    }
    run.see.record(Bound{held.ref, to_endpoint(held.socket.local_endpoint()), trace::BindHow::ephemeral, {}, {},
                         "bound by connect()"},
                   {std::string(), json_at});
    return error;
}

void close_held(Run& run, Held& held) { close_and_tell(run.see, held.socket, held.ref); }

// One receive, bounded: the error the kernel has for us (ECONNREFUSED), or the datagram's size.
std::pair<std::error_code, std::size_t> receive_one(asio::io_context& io, udp::socket& socket) {
    std::error_code result = asio::error::timed_out;
    std::size_t size = 0;
    std::vector<char> buffer(65536);
    socket.async_receive(asio::buffer(buffer), [&](std::error_code error, std::size_t n) {
        result = error;
        size = n;
    });
    io.restart();
    io.run_for(1s);
    if (result == asio::error::timed_out) socket.cancel();
    io.restart();
    io.poll();
    return {result, size};
}

// What ss -uan shows for a port: the kernel's UDP table over netlink sock_diag.
json kernel_udp_table(Port local_port, Narrator& say) {
    const auto sockets = diag::list_sockets({.tcp = false, .port = local_port, .with_processes = false});
    if (!sockets) {
        say.note("(sock_diag unavailable: " + sockets.error().message + ")");
        return nullptr;
    }
    json rows = json::array();
    for (const auto& s : *sockets) {
        say.kernel(fmt::format("udp {:<7} {:<22} {}", s.state_name(), s.local.to_string(), s.peer_text()));
        rows.push_back({{"local", json_of(s.local)}, {"remote", json_of(s.remote)}, {"state", s.state_name()}});
    }
    return rows;
}

// ---- The checksum, checked by a kernel ---------------------------------------------------

// A Udp counter from /proc/net/snmp (per network namespace, so ours alone here).
std::int64_t udp_counter(const std::string& name) {
    return labkit::SnmpCounters::read().value().get("Udp", name).value();
}

// The namespace's datagram: 127.0.0.1:5000 -> 127.0.0.1:9, "checked", built by portlab's
// encoder; and the same with one bit of its UDP checksum field flipped.
constexpr Port checksum_port = 9;
struct TwoCopies {
    Bytes good, spoiled;
};
TwoCopies checksum_datagrams() {
    const std::string text = "checked";
    const auto packet = encode_udp({IpAddress::loopback_v4(), IpAddress::loopback_v4()}, {5000, checksum_port},
                                   std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    if (!packet) throw std::runtime_error(packet.error().message);
    auto spoiled = *packet;
    spoiled[20 + 6] ^= 0x01;  // one bit of the UDP checksum field (IPv4 header 20 bytes + offset 6)
    return {*packet, spoiled};
}

// Runs in a private network namespace (we are "root" there, so a raw socket is allowed and
// the counters are ours alone): hand the kernel both copies and see which one a socket receives.
json kernel_checks_checksum() {
    const Fd receiver(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    const auto address = socket_address({IpAddress::loopback_v4(), checksum_port});
    if (!receiver.ok() || bind(receiver.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("bind 127.0.0.1:9 in the namespace failed");
    // IPPROTO_RAW: we write the whole IPv4 packet ourselves (IP_HDRINCL is implied).
    const Fd raw(socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
    if (!raw.ok()) throw std::runtime_error("raw socket refused in the namespace");

    const auto copies = checksum_datagrams();
    const auto payload_size = copies.good.size() - 28;
    auto deliver = [&](const Bytes& bytes) {
        sendto(raw.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        char buffer[64];
        return recv(receiver.get(), buffer, sizeof buffer, 0) == static_cast<ssize_t>(payload_size);
    };
    const auto errors_before = udp_counter("InCsumErrors");
    const bool spoiled_arrived = deliver(copies.spoiled);
    const auto errors_after_spoiled = udp_counter("InCsumErrors");
    const bool good_arrived = deliver(copies.good);
    return {{"spoiled_delivered", spoiled_arrived}, {"good_delivered", good_arrived},
            {"in_csum_errors_before", errors_before}, {"in_csum_errors_after", errors_after_spoiled}};
}

// The namespace's story, from the child's report: its receiving socket and what became of
// the two datagrams it was handed.
void record_namespace_story(Run& run, const json& report) {
    auto receiver = run.see.open(run.netns_host, Protocol::udp, IpFamily::v4);
    run.see.record(Bound{receiver, {IpAddress::loopback_v4(), checksum_port}, trace::BindHow::explicit_port}, quietly);
    const auto copies = checksum_datagrams();
    const auto tell = [&](const Bytes& bytes, bool delivered, const char* why) {
        trace::Packet packet{trace::PacketKind::sent, bytes, LinkType::raw, std::nullopt, run.netns_host.name, run.netns_host.name};
        run.see.record(fact::PacketSeen{run.netns_host.name, packet});
        packet.kind = delivered ? trace::PacketKind::delivered : trace::PacketKind::dropped;
        if (!delivered) packet.rule = why;
        run.see.record(fact::PacketSeen{run.netns_host.name, packet});
    };
    tell(copies.spoiled, report["spoiled_delivered"].get<bool>(), "UDP checksum wrong (the kernel counts it in InCsumErrors)");
    tell(copies.good, report["good_delivered"].get<bool>(), "not delivered");
    run.see.record(Closed{receiver}, quietly);
}

// ---- the steps ----------------------------------------------------------------------------

// Step 1: the server binds; nothing listens, nothing accepts.
std::optional<Held> open_server(Run& run, int& exit_code) {
    const Endpoint wanted = run.lab.server().endpoint();
    run.see.step(fmt::format("the server opens a UDP socket and binds {} (no listen(), no accept())", wanted.to_string()));
    auto server = open_udp(run, run.server_host, wanted.address.family());
    std::error_code error;
    server.socket.bind(to_udp_endpoint(wanted), error);
    if (error) {
        run.see.record(Failed{server.ref, "bind", error, {}, wanted}, quietly);
        run.see.record(Closed{server.ref}, quietly);
        exit_code = run.lab.bind_failed(wanted, error, Protocol::udp);
        return std::nullopt;
    }
    // Room for every datagram of step 2 at once (the kernel caps this at rmem_max).
    server.socket.set_option(asio::socket_base::receive_buffer_size(1 << 20), error);
    const Endpoint bound = to_endpoint(server.socket.local_endpoint());
    const auto how = wanted.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port;
    run.see.record(Bound{server.ref, bound, how},
                   {"bound " + bound.to_string() + "; a UDP socket is ready to receive as soon as it is bound", "/server"});
    run.facts()["server"].update(json_of(bound));
    run.say.see_it_yourself(fmt::format("ss -uanp 'sport = :{}'", bound.port));
    return server;
}

// The client: one send_to() per datagram, to the server's address; the first one makes
// the kernel bind the socket to an ephemeral port (there was no bind()).
awaitable<void> send_datagrams(Run& run, Held& client, udp::endpoint server, std::vector<std::size_t> sizes, int& accepted) {
    for (const auto size : sizes) {
        const std::vector<char> payload(size, 'x');
        auto [error, sent] = co_await client.socket.async_send_to(asio::buffer(payload), server, as_tuple(use_awaitable));
        if (error) run.see.record(Failed{client.ref, "sendto", error}, quietly);
        else ++accepted;
    }
}

// Step 2: an unconnected client sends datagrams of different sizes.
Held send_unconnected(Run& run, const Endpoint& server, const std::vector<std::size_t>& sizes) {
    run.see.step(fmt::format("an unconnected client sends {} datagrams with sendto() and no bind(): sizes {}", sizes.size(),
                             fmt::join(sizes, ", ")));
    auto client = open_udp(run, run.client_host, server.address.family());
    int accepted = 0;
    asio::co_spawn(run.io, send_datagrams(run, client, to_udp_endpoint(server), sizes, accepted), asio::detached);
    run.io.run_for(run_limit);
    const Endpoint local = to_endpoint(client.socket.local_endpoint());
    run.see.record(Bound{client.ref, local, trace::BindHow::ephemeral, {}, {}, "bound implicitly by the first sendto()"},
                   {fmt::format("the first sendto() bound the client to {} (an ephemeral port; the wildcard address lets the "
                                "kernel choose the source address per datagram); {} of {} sends accepted",
                                local.to_string(), accepted, sizes.size()),
                    "/client"});
    run.say.note("No handshake happened: sendto() only handed each datagram to the kernel.");
    run.say.see_it_yourself(fmt::format("ss -uanm 'sport = :{}'   (Recv-Q: the bytes waiting in the server's queue)", server.port));
    run.facts()["client"]["sent_sizes"] = sizes;
    return client;
}

// The server: receive `count` datagrams, one receive_from() each, with a buffer large
// enough for any datagram; each goes to the --json "received" list.
awaitable<void> receive_datagrams(Run& run, udp::socket& socket, std::size_t count) {
    std::vector<char> buffer(65536);
    udp::endpoint sender;
    auto& received = run.facts()["received"];
    while (received.size() < count) {
        auto [error, size] = co_await socket.async_receive_from(asio::buffer(buffer), sender, as_tuple(use_awaitable));
        if (error) co_return;
        received.push_back({{"size", size}, {"from", json_of(to_endpoint(sender))}});
    }
}

// Step 3: the server receives: one datagram per receive.
void receive_all(Run& run, Held& server, std::size_t count) {
    run.see.step("the server calls recvfrom() with a 65536-byte buffer until it has them all");
    run.facts()["received"] = json::array();
    asio::co_spawn(run.io, receive_datagrams(run, server.socket, count), asio::detached);
    run.io.restart();
    run.io.run_for(run_limit);
    std::error_code ignored;
    server.socket.cancel(ignored);  // if a datagram never came, stop waiting so later steps own the socket
    run.io.restart();
    run.io.poll();
    for (const auto& r : run.facts()["received"])
        run.say.kernel(fmt::format("recvfrom() -> {:>5} bytes from {}:{}", r["size"].get<std::size_t>(),
                                   r["from"]["address"].get<std::string>(), r["from"]["port"].get<int>()));
    run.say.note("Each receive returned exactly one datagram, at the size it was sent, even 0 bytes:");
    run.say.note("UDP keeps message boundaries. TCP is a byte stream and would have run them together.");
    run.say.see_it_yourself(fmt::format("sudo tcpdump -ni lo 'udp port {}'   (then run the lab again: one line, one length per datagram)",
                                        to_endpoint(server.socket.local_endpoint()).port));
}

// Step 4: what the kernel's table shows.
void show_kernel_table(Run& run, Port server_port, Port client_port) {
    run.see.step("ask the kernel's socket table (netlink sock_diag, as ss reads it) for both sockets");
    json table = kernel_udp_table(server_port, run.say);
    json client_rows = kernel_udp_table(client_port, run.say);
    if (table.is_array() && client_rows.is_array()) table.insert(table.end(), client_rows.begin(), client_rows.end());
    run.facts()["kernel_table"] = table;
    run.say.note("UNCONN, with no remote end: the kernel keeps no connection state for UDP, no LISTEN,");
    run.say.note("no ESTABLISHED, no TIME-WAIT. Each datagram is delivered on its own.");
    run.say.see_it_yourself(fmt::format("ss -uanp '( sport = :{} or sport = :{} )'", server_port, client_port));
}

// Step 5: a connected UDP socket: a default peer and a filter. A stranger, itself
// connected to the client's address, finds the port closed.
struct Connected {
    Held client, stranger;
};
Connected connect_a_client(Run& run, Held& server) {
    run.see.step("a second client calls connect() on its UDP socket, then uses send() and recv() without addresses");
    const Endpoint bound = to_endpoint(server.socket.local_endpoint());
    Connected ends{open_udp(run, run.client_host, bound.address.family()), open_udp(run, run.client_host, bound.address.family())};
    connect_udp(run, ends.client, bound, "/connected_client");
    const Endpoint local = to_endpoint(ends.client.socket.local_endpoint());
    run.say.kernel(fmt::format("connect() returned at once: {} -> {}; no packet was sent", local.to_string(), bound.to_string()));
    ends.client.socket.send(asio::buffer(std::string("ping")));
    udp::endpoint sender;
    std::vector<char> buffer(65536);
    const auto ping_size = server.socket.receive_from(asio::buffer(buffer), sender);
    server.socket.send_to(asio::buffer(std::string("pong!")), sender);
    connect_udp(run, ends.stranger, local);
    ends.stranger.socket.send(asio::buffer(std::string("from a stranger")));
    const auto [reply_error, reply_size] = receive_one(run.io, ends.client.socket);
    if (reply_error) run.see.record(Failed{ends.client.ref, "recv", reply_error}, quietly);
    const auto [stranger_error, stranger_size] = receive_one(run.io, ends.stranger.socket);
    if (stranger_error) run.see.record(Failed{ends.stranger.ref, "recv", stranger_error}, quietly);
    run.say.kernel(fmt::format("the server got {} bytes from {} and answered; the client's recv() -> {}", ping_size,
                               to_endpoint(sender).to_string(), reply_error ? describe_error(reply_error) : fmt::format("{} bytes", reply_size)));
    run.say.kernel("the stranger's datagram to the connected socket: its own next recv() -> " + outcome(stranger_error));
    run.say.note("A connected UDP socket accepts datagrams only from its peer. For anyone else the port looks");
    run.say.note("closed: the kernel found no socket for the stranger's datagram and answered ICMP port unreachable.");
    auto& facts = run.facts()["connected_client"];
    facts.update({{"reply_size", reply_error ? json(nullptr) : json(reply_size)}, {"stranger_errno", error_json(stranger_error)}});
    facts["kernel_table"] = kernel_udp_table(local.port, run.say);
    run.say.note("ss says ESTAB for a connected UDP socket: that is only the remembered peer, not a connection.");
    run.say.see_it_yourself(fmt::format("ss -uanp 'sport = :{}'", local.port));
    return ends;
}

// A UDP port nobody holds right now: bind port 0, read the port, close.
Port closed_udp_port(Run& run, const IpAddress& address) {
    auto probe = open_udp(run, run.server_host, address.family());
    probe.socket.bind(to_udp_endpoint({address, 0}));
    const auto port = to_endpoint(probe.socket.local_endpoint());
    run.see.record(Bound{probe.ref, port, trace::BindHow::bind_zero, {}, {}, "a probe: closed at once, to find a free port"},
                   quietly);
    close_held(run, probe);
    return port.port;
}

// Step 6: a closed port: ECONNREFUSED, but only for a connected socket.
Held send_to_closed_port(Run& run, Held& client, const Endpoint& server) {
    const Endpoint nobody{server.address, closed_udp_port(run, server.address)};
    run.see.step(fmt::format("send a datagram to {}, where no socket is bound: once connected, once unconnected", nobody.to_string()));
    auto to_closed = open_udp(run, run.client_host, nobody.address.family());
    const auto connect_error = connect_udp(run, to_closed, nobody);
    std::error_code send_error;
    if (!connect_error) to_closed.socket.send(asio::buffer(std::string("anyone there?")), 0, send_error);
    if (send_error) run.see.record(Failed{to_closed.ref, "send", send_error}, quietly);
    const auto [refused, ignored_size] = receive_one(run.io, to_closed.socket);
    if (refused) run.see.record(Failed{to_closed.ref, "recv", refused}, quietly);
    run.say.kernel("connected socket: connect() -> " + outcome(connect_error) + ", send() -> " + outcome(send_error) +
                   ", next recv() -> " + outcome(refused));
    std::error_code unconnected_send;
    client.socket.send_to(asio::buffer(std::string("anyone there?")), to_udp_endpoint(nobody), 0, unconnected_send);
    if (unconnected_send) run.see.record(Failed{client.ref, "sendto", unconnected_send}, quietly);
    client.socket.non_blocking(true);
    std::error_code unconnected_error;
    std::vector<char> buffer(65536);
    (void)client.socket.receive(asio::buffer(buffer), 0, unconnected_error);
    client.socket.non_blocking(false);
    run.say.kernel("unconnected socket: sendto() -> " + outcome(unconnected_send) + ", next recv() -> " + outcome(unconnected_error));
    run.say.note("The kernel answered with ICMP port unreachable (RFC 1122 4.1.3.1) and reports it as ECONNREFUSED,");
    run.say.note("but Linux passes it only to a connected socket: an unconnected one could not tell which of its");
    run.say.note("destinations refused (unless it asks with IP_RECVERR). connect() itself sent nothing and succeeded.");
    run.say.see_it_yourself("sudo tcpdump -ni lo icmp   (then run the lab again)");
    run.facts()["closed_port"] = {{"port", nobody.port},
                                  {"connect_errno", error_json(connect_error)},
                                  {"send_errno", error_json(send_error)},
                                  {"receive_errno", error_json(refused)},
                                  {"unconnected_send_errno", error_json(unconnected_send)},
                                  {"unconnected_receive_errno", error_json(unconnected_error)}};
    return to_closed;
}

// Step 7: how big can a datagram be?
void find_the_size_limit(Run& run, Held& client, Held& server) {
    const Endpoint bound = to_endpoint(server.socket.local_endpoint());
    const std::size_t limit = max_payload(bound.address.family());
    run.see.step(fmt::format("send a {}-byte and a {}-byte datagram to the server", limit, limit + 1));
    json facts = {{"max_payload", limit}, {"attempts", json::array()}};
    for (const std::size_t size : {limit, limit + 1}) {
        const std::vector<char> payload(size, 'x');
        std::error_code error;
        client.socket.send_to(asio::buffer(payload), to_udp_endpoint(bound), 0, error);
        json attempt = {{"size", size}, {"errno_name", error_json(error)}, {"received_size", nullptr}};
        if (!error) {
            const auto [receive_error, got] = receive_one(run.io, server.socket);
            if (!receive_error) attempt["received_size"] = got;
        } else {
            run.see.record(Failed{client.ref, "sendto", error}, quietly);
        }
        run.say.kernel(fmt::format("sendto() of {} bytes -> {}{}", size, outcome(error),
                                   attempt["received_size"].is_null() ? "" : fmt::format(", the server received {} bytes",
                                                                                         attempt["received_size"].get<std::size_t>())));
        facts["attempts"].push_back(attempt);
    }
    run.say.note(bound.address.is_v4() ? "65,535 (IPv4's 16-bit total length) - 20 (IPv4 header) - 8 (UDP header) = 65,507."
                                        : "65,535 (IPv6's 16-bit payload length) - 8 (UDP header) = 65,527.");
    run.say.note("The sender's kernel refuses a larger one with EMSGSIZE: it cannot be put into one IP packet.");
    run.say.see_it_yourself("ip link show lo   (loopback's MTU is 65536: the limit here is IP's 16-bit length, not the link)");
    run.facts()["size_limit"] = facts;
}

std::string checksum_status(const Result<DecodedPacket>& decoded) {
    return decoded && decoded->transport_checksum ? std::string(to_string(decoded->transport_checksum->status)) : "unknown";
}

// Step 8: where UDP's checksum is, and a kernel that checks it.
void show_the_checksum(Run& run, const Endpoint& client_seen, const Endpoint& server, const Result<json>& checksum_run) {
    run.see.step("where UDP's checksum is: build the client's datagram with portlab's encoder and decode it");
    const std::string text = "ping";
    const auto packet = encode_udp({client_seen.address, server.address}, {client_seen.port, server.port},
                                   std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    json facts;
    if (packet) {
        const auto decoded = decode_ip(*packet);
        const Layer* udp_layer = decoded ? decoded->find_layer("UDP") : nullptr;
        run.say.note(fmt::format("the UDP header; byte offsets count from the start of the IP packet, whose header is {} bytes:",
                                 udp_layer ? udp_layer->offset : 0));
        for (const Field& field : udp_layer ? udp_layer->fields : std::vector<Field>{})
            run.say.fact(fmt::format("byte {:>2}", field.offset), fmt::format("{:<16} {:<8} {}", field.name, field.value, field.meaning));
        auto spoiled = *packet;
        spoiled[spoiled.size() - 1] ^= 0x20;  // one bit of the payload
        const auto decoded_spoiled = decode_ip(spoiled);
        run.say.kernel(fmt::format("checksum over pseudo-header + UDP header + data: {}; with one payload bit flipped: {}",
                                   checksum_status(decoded), checksum_status(decoded_spoiled)));
        facts = {{"udp_header_offset", udp_layer ? json(udp_layer->offset) : json(nullptr)},
                 {"checksum_field_offset", 6},
                 {"status", checksum_status(decoded)},
                 {"status_one_bit_flipped", checksum_status(decoded_spoiled)}};
    }
    run.say.note("A capture on lo shows this field 'partial' (not finished): Linux leaves it to checksum offload,");
    run.say.note("and loopback needs none. Wireshark's 'bad checksum' there is not an error.");
    if (checksum_run) {
        const auto& k = *checksum_run;
        record_namespace_story(run, k);
        run.say.kernel(fmt::format("in a private namespace, the same datagram with its checksum spoiled: {}; InCsumErrors {} -> {}",
                                   k["spoiled_delivered"].get<bool>() ? "delivered" : "dropped by the kernel",
                                   k["in_csum_errors_before"].get<std::uint64_t>(), k["in_csum_errors_after"].get<std::uint64_t>()));
        run.say.kernel(std::string("the intact copy: ") + (k["good_delivered"].get<bool>() ? "delivered" : "not delivered"));
        facts["kernel_check"] = k;
    } else {
        run.say.note("(the kernel part needs a private network namespace: " + checksum_run.error().message + ")");
        facts["kernel_check"] = nullptr;
    }
    run.say.see_it_yourself("nstat -az UdpInCsumErrors");
    run.facts()["checksum"] = facts;
}

// Step 9: close every socket; UDP leaves nothing behind.
void close_everything(Run& run, std::vector<Held*> sockets, Port server_port) {
    run.see.step("close every socket");
    for (auto* held : sockets) close_held(run, *held);
    run.say.kernel("closed; UDP leaves nothing behind (no TIME-WAIT)");
    run.say.see_it_yourself(fmt::format("ss -uan 'sport = :{}'   (empty)", server_port));
}

int udp_story(Run& run, const std::vector<std::size_t>& sizes, const Result<json>& checksum_run) {
    int exit_code = exit_ok;
    auto server = open_server(run, exit_code);
    if (!server) return exit_code;
    const Endpoint bound = to_endpoint(server->socket.local_endpoint());
    auto client = send_unconnected(run, bound, sizes);
    const Endpoint client_local = to_endpoint(client.socket.local_endpoint());
    receive_all(run, *server, sizes.size());
    show_kernel_table(run, bound.port, client_local.port);
    auto connected = connect_a_client(run, *server);
    auto to_closed = send_to_closed_port(run, client, bound);
    find_the_size_limit(run, client, *server);
    // The client as the server saw it: its wildcard bind was filled in with a real source address.
    const auto& received = run.facts()["received"];
    const Endpoint client_seen =
        received.empty() ? Endpoint{bound.address, client_local.port}
                         : Endpoint{*IpAddress::parse(received[0]["from"]["address"].get<std::string>()),
                                    received[0]["from"]["port"].get<Port>()};
    show_the_checksum(run, client_seen, bound, checksum_run);
    close_everything(run, {&*server, &client, &connected.client, &connected.stranger, &to_closed}, bound.port);
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab05_udp_datagrams", "Lab 05: UDP datagrams, boundaries, ICMP errors and the checksum"},
                   [](Lab& lab) {
        // --- Arguments ------------------------------------------------------------------------
        std::vector<int> sizes_arg = {1, 100, 0, 1400, 9000, 20000};
        lab.add_server_options(default_port, {{Protocol::udp}});
        lab.cli()
            .add_option("--sizes", sizes_arg, "datagram payload sizes in bytes, 0-65507, at most 16, 100000 in all")
            ->delimiter(',')
            ->capture_default_str();
        lab.parse();
        std::vector<std::size_t> sizes;
        for (const int size : sizes_arg) {
            if (size < 0 || static_cast<std::size_t>(size) > max_payload(lab.server().bind.family()))
                return lab.usage_error(fmt::format("--sizes: {} is not a datagram size (0-{})", size,
                                                   max_payload(lab.server().bind.family())));
            sizes.push_back(static_cast<std::size_t>(size));
        }
        if (sizes.empty() || sizes.size() > 16 || std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) > 100000)
            return lab.usage_error("--sizes: give 1-16 sizes adding up to at most 100000 bytes");

        // Namespaces must be made before Asio might start threads: run the checksum part first.
        const auto checksum_run = run_in_private_netns(kernel_checks_checksum);

        Run run{lab, lab.narrate(), lab.observer()};
        // One kernel, two hosts of the story, both on the server's loopback address; and the
        // private namespace of step 8, whose sockets this process cannot read back.
        const auto address = lab.server().bind;
        run.server_host = run.see.declare({"server", {address}, "server"});
        run.client_host = run.see.declare({"client", {address.is_v4() ? IpAddress::loopback_v4() : IpAddress::loopback_v6()}, "client"});
        if (checksum_run)
            run.netns_host = run.see.declare({"private-netns", {IpAddress::loopback_v4()}, "a raw socket and a receiver in a private network namespace", false});
        run.facts()["lab"] = lab.name();
        run.say.title("Lab 05: UDP datagrams");
        const int result = udp_story(run, sizes, checksum_run);
        if (result != exit_ok) return result;
        if (lab.json()) lab.print_json(run.facts());
        return exit_ok;
    });
}
