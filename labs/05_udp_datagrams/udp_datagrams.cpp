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
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>  // Asio 1.22 keeps as_tuple here; newer Asio has asio::as_tuple
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "portlab/net.hpp"
#include "labkit/netns.hpp"
#include "labkit/posix.hpp"
#include "labkit/snmp.hpp"
#include "portlab/packet.hpp"
#include "labkit/sock_diag.hpp"

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

// The largest UDP payload: the 16-bit IPv4 total length (65535) minus 20 bytes of IPv4
// header and 8 of UDP header (RFC 791, RFC 768). IPv6's 16-bit payload length does not
// count its own 40-byte header, so there the limit is 65535 - 8 (RFC 8200 section 3).
std::size_t max_payload(IpFamily family) { return family == IpFamily::v4 ? 65535 - 20 - 8 : 65535 - 8; }

json endpoint_json(const Endpoint& endpoint) {
    return {{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

json error_json(const std::error_code& error) { return error ? json(errno_name(error)) : json(nullptr); }

std::string outcome(const std::error_code& error) { return error ? describe_error(error) : "ok"; }

// The server: receive `count` datagrams, one receive_from() each, with a buffer large
// enough for any datagram, and keep the size and sender of each.
struct Received {
    std::size_t size = 0;
    Endpoint from;
};

awaitable<void> receive_datagrams(udp::socket& socket, std::size_t count, std::vector<Received>& received) {
    std::vector<char> buffer(65536);
    udp::endpoint sender;
    while (received.size() < count) {
        auto [error, size] = co_await socket.async_receive_from(asio::buffer(buffer), sender, as_tuple(use_awaitable));
        if (error) co_return;
        received.push_back({size, to_endpoint(sender)});
    }
}

// The client: one send_to() per datagram, to the server's address; the first one makes
// the kernel bind the socket to an ephemeral port (there was no bind()).
awaitable<void> send_datagrams(udp::socket& socket, udp::endpoint server, std::vector<std::size_t> sizes,
                               std::vector<std::error_code>& results) {
    for (const auto size : sizes) {
        const std::vector<char> payload(size, 'x');
        auto [error, sent] = co_await socket.async_send_to(asio::buffer(payload), server, as_tuple(use_awaitable));
        results.push_back(error);
    }
}

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
        say.kernel(fmt::format("udp {:<7} {:<22} {}", s.state_name(), s.local.to_string(), s.remote.to_string()));
        rows.push_back({{"local", endpoint_json(s.local)}, {"remote", endpoint_json(s.remote)}, {"state", s.state_name()}});
    }
    return rows;
}

// A UDP port nobody holds right now: bind port 0, read the port, close.
Port closed_udp_port(asio::io_context& io, const IpAddress& address) {
    udp::socket probe(io, to_udp_endpoint({address, 0}));
    return probe.local_endpoint().port();
}

// ---- The checksum, checked by a kernel ---------------------------------------------------

// A Udp counter from /proc/net/snmp (per network namespace, so ours alone here).
std::int64_t udp_counter(const std::string& name) {
    return labkit::SnmpCounters::read().value().get("Udp", name).value();
}

// Runs in a private network namespace (we are "root" there, so a raw socket is allowed and
// the counters are ours alone): hand the kernel two copies of one UDP datagram built by
// portlab's encoder, one with its checksum spoiled, and see which one a socket receives.
json kernel_checks_checksum() {
    const Fd receiver(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    const auto address = socket_address({IpAddress::loopback_v4(), 9});
    if (!receiver.ok() || bind(receiver.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("bind 127.0.0.1:9 in the namespace failed");
    // IPPROTO_RAW: we write the whole IPv4 packet ourselves (IP_HDRINCL is implied).
    const Fd raw(socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
    if (!raw.ok()) throw std::runtime_error("raw socket refused in the namespace");

    const std::string text = "checked";
    const auto packet = encode_udp({IpAddress::loopback_v4(), IpAddress::loopback_v4()}, {5000, 9},
                                   std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    if (!packet) throw std::runtime_error(packet.error().message);
    auto spoiled = *packet;
    spoiled[20 + 6] ^= 0x01;  // one bit of the UDP checksum field (IPv4 header 20 bytes + offset 6)

    auto deliver = [&](const Bytes& bytes) {
        sendto(raw.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        char buffer[64];
        return recv(receiver.get(), buffer, sizeof buffer, 0) == static_cast<ssize_t>(text.size());
    };
    const auto errors_before = udp_counter("InCsumErrors");
    const bool spoiled_arrived = deliver(spoiled);
    const auto errors_after_spoiled = udp_counter("InCsumErrors");
    const bool good_arrived = deliver(*packet);
    return {{"spoiled_delivered", spoiled_arrived}, {"good_delivered", good_arrived},
            {"in_csum_errors_before", errors_before}, {"in_csum_errors_after", errors_after_spoiled}};
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab05_udp_datagrams", "Lab 05: UDP datagrams, boundaries, ICMP errors and the checksum"},
                   [](Lab& lab) {
        // --- Arguments ------------------------------------------------------------------------
        std::vector<int> sizes_arg = {1, 100, 0, 1400, 9000, 20000};
        lab.add_server_options(default_port);
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

        auto& say = lab.narrate();
        auto& trace = lab.trace();
        json facts = {{"lab", lab.name()}};
        say.title("Lab 05: UDP datagrams");
        asio::io_context io;
        std::error_code error, ignored;

        // --- 1. The server binds; nothing listens, nothing accepts ----------------------------------
        const Endpoint wanted = lab.server().endpoint();
        say.step(fmt::format("the server opens a UDP socket and binds {} (no listen(), no accept())", wanted.to_string()));
        udp::socket server(io, to_udp_endpoint(wanted).protocol());
        const auto server_id = trace.socket_created("server", Protocol::udp, wanted.address.family());
        server.bind(to_udp_endpoint(wanted), error);
        if (error) return lab.bind_failed(wanted, error, Protocol::udp);
        // Room for every datagram of step 2 at once (the kernel caps this at rmem_max).
        server.set_option(asio::socket_base::receive_buffer_size(1 << 20), ignored);
        const Endpoint bound = to_endpoint(server.local_endpoint());
        trace.bound("server", server_id, bound, wanted.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port);
        say.kernel("bound " + bound.to_string() + "; a UDP socket is ready to receive as soon as it is bound");
        say.see_it_yourself(fmt::format("ss -uanp 'sport = :{}'", bound.port));
        facts["server"] = endpoint_json(bound);

        // --- 2. An unconnected client sends datagrams of different sizes ---------------------------
        say.step(fmt::format("an unconnected client sends {} datagrams with sendto() and no bind(): sizes {}", sizes.size(),
                             fmt::join(sizes, ", ")));
        udp::socket client(io, to_udp_endpoint(bound).protocol());
        const auto client_id = trace.socket_created("client", Protocol::udp, bound.address.family());
        std::vector<std::error_code> send_results;
        std::vector<Received> received;
        asio::co_spawn(io, send_datagrams(client, to_udp_endpoint(bound), sizes, send_results), asio::detached);
        io.run_for(run_limit);
        const Endpoint client_local = to_endpoint(client.local_endpoint());
        trace.bound("client", client_id, client_local, trace::BindHow::ephemeral, "bound implicitly by the first sendto()");
        say.kernel(fmt::format("the first sendto() bound the client to {} (an ephemeral port; the wildcard address lets the "
                               "kernel choose the source address per datagram); {} of {} sends accepted",
                               client_local.to_string(),
                               std::count_if(send_results.begin(), send_results.end(), [](auto& e) { return !e; }), sizes.size()));
        say.note("No handshake happened: sendto() only handed each datagram to the kernel.");
        say.see_it_yourself(fmt::format("ss -uanm 'sport = :{}'   (Recv-Q: the bytes waiting in the server's queue)", bound.port));
        facts["client"] = {{"local", endpoint_json(client_local)}, {"sent_sizes", sizes}};

        // --- 3. The server receives: one datagram per receive ---------------------------------------
        say.step("the server calls recvfrom() with a 65536-byte buffer until it has them all");
        asio::co_spawn(io, receive_datagrams(server, sizes.size(), received), asio::detached);
        io.restart();
        io.run_for(run_limit);
        server.cancel(ignored);  // if a datagram never came, stop waiting so later steps own the socket
        io.restart();
        io.poll();
        facts["received"] = json::array();
        for (const auto& r : received) {
            say.kernel(fmt::format("recvfrom() -> {:>5} bytes from {}", r.size, r.from.to_string()));
            facts["received"].push_back({{"size", r.size}, {"from", endpoint_json(r.from)}});
        }
        say.note("Each receive returned exactly one datagram, at the size it was sent, even 0 bytes:");
        say.note("UDP keeps message boundaries. TCP is a byte stream and would have run them together.");
        say.see_it_yourself(fmt::format("sudo tcpdump -ni lo 'udp port {}'   (then run the lab again: one line, one length per datagram)",
                                        bound.port));

        // --- 4. What the kernel's table shows -----------------------------------------------------------
        say.step("ask the kernel's socket table (netlink sock_diag, as ss reads it) for both sockets");
        json table = kernel_udp_table(bound.port, say);
        json client_rows = kernel_udp_table(client_local.port, say);
        if (table.is_array() && client_rows.is_array()) table.insert(table.end(), client_rows.begin(), client_rows.end());
        facts["kernel_table"] = table;
        say.note("UNCONN, with no remote end: the kernel keeps no connection state for UDP, no LISTEN,");
        say.note("no ESTABLISHED, no TIME-WAIT. Each datagram is delivered on its own.");
        say.see_it_yourself(fmt::format("ss -uanp '( sport = :{} or sport = :{} )'", bound.port, client_local.port));

        // --- 5. A connected UDP socket: a default peer and a filter -------------------------------------
        say.step("a second client calls connect() on its UDP socket, then uses send() and recv() without addresses");
        udp::socket connected(io, to_udp_endpoint(bound).protocol());
        const auto connected_id = trace.socket_created("client", Protocol::udp, bound.address.family());
        trace.connect_started("client", connected_id, bound);
        connected.connect(to_udp_endpoint(bound));
        const Endpoint connected_local = to_endpoint(connected.local_endpoint());
        trace.bound("client", connected_id, connected_local, trace::BindHow::ephemeral, "bound by connect()");
        say.kernel(fmt::format("connect() returned at once: {} -> {}; no packet was sent", connected_local.to_string(), bound.to_string()));
        connected.send(asio::buffer(std::string("ping")));
        udp::endpoint sender;
        std::vector<char> buffer(65536);
        const auto ping_size = server.receive_from(asio::buffer(buffer), sender);
        server.send_to(asio::buffer(std::string("pong!")), sender);
        // A third socket, itself connected to the client's address, sends it a datagram too.
        udp::socket stranger(io, to_udp_endpoint(bound).protocol());
        stranger.connect(to_udp_endpoint(connected_local));
        stranger.send(asio::buffer(std::string("from a stranger")));
        const auto [reply_error, reply_size] = receive_one(io, connected);
        const auto [stranger_error, stranger_size] = receive_one(io, stranger);
        say.kernel(fmt::format("the server got {} bytes from {} and answered; the client's recv() -> {}", ping_size,
                               to_endpoint(sender).to_string(), reply_error ? describe_error(reply_error) : fmt::format("{} bytes", reply_size)));
        say.kernel("the stranger's datagram to the connected socket: its own next recv() -> " + outcome(stranger_error));
        say.note("A connected UDP socket accepts datagrams only from its peer. For anyone else the port looks");
        say.note("closed: the kernel found no socket for the stranger's datagram and answered ICMP port unreachable.");
        facts["connected_client"] = {{"local", endpoint_json(connected_local)},
                                     {"remote", endpoint_json(to_endpoint(connected.remote_endpoint()))},
                                     {"reply_size", reply_error ? json(nullptr) : json(reply_size)},
                                     {"stranger_errno", error_json(stranger_error)}};
        facts["connected_client"]["kernel_table"] = kernel_udp_table(connected_local.port, say);
        say.note("ss says ESTAB for a connected UDP socket: that is only the remembered peer, not a connection.");
        say.see_it_yourself(fmt::format("ss -uanp 'sport = :{}'", connected_local.port));

        // --- 6. A closed port: ECONNREFUSED, but only for a connected socket ------------------------------
        const Port closed = closed_udp_port(io, bound.address);
        const Endpoint nobody{bound.address, closed};
        say.step(fmt::format("send a datagram to {}, where no socket is bound: once connected, once unconnected", nobody.to_string()));
        udp::socket to_closed(io, to_udp_endpoint(nobody).protocol());
        std::error_code connect_error, send_error;
        to_closed.connect(to_udp_endpoint(nobody), connect_error);
        if (!connect_error) to_closed.send(asio::buffer(std::string("anyone there?")), 0, send_error);
        const auto [refused, ignored_size] = receive_one(io, to_closed);
        const auto refused_id = trace.socket_created("client", Protocol::udp, nobody.address.family());
        trace.connect_started("client", refused_id, nobody);
        if (refused) trace.call_failed("client", refused_id, "recv", refused);
        say.kernel("connected socket: connect() -> " + outcome(connect_error) + ", send() -> " + outcome(send_error) +
                   ", next recv() -> " + outcome(refused));
        std::error_code unconnected_send;
        client.send_to(asio::buffer(std::string("anyone there?")), to_udp_endpoint(nobody), 0, unconnected_send);
        client.non_blocking(true);
        std::error_code unconnected_error;
        (void)client.receive(asio::buffer(buffer), 0, unconnected_error);
        say.kernel("unconnected socket: sendto() -> " + outcome(unconnected_send) + ", next recv() -> " + outcome(unconnected_error));
        say.note("The kernel answered with ICMP port unreachable (RFC 1122 4.1.3.1) and reports it as ECONNREFUSED,");
        say.note("but Linux passes it only to a connected socket: an unconnected one could not tell which of its");
        say.note("destinations refused (unless it asks with IP_RECVERR). connect() itself sent nothing and succeeded.");
        say.see_it_yourself("sudo tcpdump -ni lo icmp   (then run the lab again)");
        facts["closed_port"] = {{"port", closed},
                                {"connect_errno", error_json(connect_error)},
                                {"send_errno", error_json(send_error)},
                                {"receive_errno", error_json(refused)},
                                {"unconnected_send_errno", error_json(unconnected_send)},
                                {"unconnected_receive_errno", error_json(unconnected_error)}};

        // --- 7. How big can a datagram be? ------------------------------------------------------------------
        const std::size_t limit = max_payload(bound.address.family());
        say.step(fmt::format("send a {}-byte and a {}-byte datagram to the server", limit, limit + 1));
        json size_facts = {{"max_payload", limit}, {"attempts", json::array()}};
        client.non_blocking(false);
        for (const std::size_t size : {limit, limit + 1}) {
            const std::vector<char> payload(size, 'x');
            std::error_code big_error;
            client.send_to(asio::buffer(payload), to_udp_endpoint(bound), 0, big_error);
            json attempt = {{"size", size}, {"errno_name", error_json(big_error)}, {"received_size", nullptr}};
            if (!big_error) {
                const auto [receive_error, got] = receive_one(io, server);
                if (!receive_error) attempt["received_size"] = got;
            } else {
                trace.call_failed("client", client_id, "sendto", big_error);
            }
            say.kernel(fmt::format("sendto() of {} bytes -> {}{}", size, outcome(big_error),
                                   attempt["received_size"].is_null() ? "" : fmt::format(", the server received {} bytes",
                                                                                         attempt["received_size"].get<std::size_t>())));
            size_facts["attempts"].push_back(attempt);
        }
        say.note(bound.address.is_v4() ? "65,535 (IPv4's 16-bit total length) - 20 (IPv4 header) - 8 (UDP header) = 65,507."
                                        : "65,535 (IPv6's 16-bit payload length) - 8 (UDP header) = 65,527.");
        say.note("The sender's kernel refuses a larger one with EMSGSIZE: it cannot be put into one IP packet.");
        say.see_it_yourself("ip link show lo   (loopback's MTU is 65536: the limit here is IP's 16-bit length, not the link)");
        facts["size_limit"] = size_facts;

        // --- 8. The checksum --------------------------------------------------------------------------------
        say.step("where UDP's checksum is: build the client's datagram with portlab's encoder and decode it");
        const std::string text = "ping";
        // The client as the server saw it: its wildcard bind was filled in with a real source address.
        const Endpoint client_seen = received.empty() ? Endpoint{bound.address, client_local.port} : received.front().from;
        const auto packet = encode_udp({client_seen.address, bound.address}, {client_seen.port, bound.port},
                                       std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
        json checksum_facts;
        if (packet) {
            const auto decoded = decode_ip(*packet);
            const Layer* udp_layer = decoded ? decoded->find_layer("UDP") : nullptr;
            say.note(fmt::format("the UDP header; byte offsets count from the start of the IP packet, whose header is {} bytes:",
                                 udp_layer ? udp_layer->offset : 0));
            for (const Field& field : udp_layer ? udp_layer->fields : std::vector<Field>{})
                say.fact(fmt::format("byte {:>2}", field.offset), fmt::format("{:<16} {:<8} {}", field.name, field.value, field.meaning));
            auto spoiled = *packet;
            spoiled[spoiled.size() - 1] ^= 0x20;  // one bit of the payload
            const auto decoded_spoiled = decode_ip(spoiled);
            const auto status = [](const Result<DecodedPacket>& d) {
                return d && d->transport_checksum ? std::string(to_string(d->transport_checksum->status)) : "unknown";
            };
            say.kernel(fmt::format("checksum over pseudo-header + UDP header + data: {}; with one payload bit flipped: {}",
                                   status(decoded), status(decoded_spoiled)));
            checksum_facts = {{"udp_header_offset", udp_layer ? json(udp_layer->offset) : json(nullptr)},
                              {"checksum_field_offset", 6},
                              {"status", status(decoded)},
                              {"status_one_bit_flipped", status(decoded_spoiled)}};
        }
        say.note("A capture on lo shows this field 'partial' (not finished): Linux leaves it to checksum offload,");
        say.note("and loopback needs none. Wireshark's 'bad checksum' there is not an error.");
        if (checksum_run) {
            const auto& k = *checksum_run;
            say.kernel(fmt::format("in a private namespace, the same datagram with its checksum spoiled: {}; InCsumErrors {} -> {}",
                                   k["spoiled_delivered"].get<bool>() ? "delivered" : "dropped by the kernel",
                                   k["in_csum_errors_before"].get<std::uint64_t>(), k["in_csum_errors_after"].get<std::uint64_t>()));
            say.kernel(std::string("the intact copy: ") + (k["good_delivered"].get<bool>() ? "delivered" : "not delivered"));
            checksum_facts["kernel_check"] = k;
        } else {
            say.note("(the kernel part needs a private network namespace: " + checksum_run.error().message + ")");
            checksum_facts["kernel_check"] = nullptr;
        }
        say.see_it_yourself("nstat -az UdpInCsumErrors");
        facts["checksum"] = checksum_facts;

        // --- 9. Clean up -------------------------------------------------------------------------------------
        say.step("close every socket");
        say.pause();
        for (auto* socket : {&server, &client, &connected, &stranger, &to_closed}) socket->close(ignored);
        for (const auto& [host, id] : {std::pair{"server", server_id}, {"client", client_id}, {"client", connected_id},
                                       {"client", refused_id}})
            trace.closed(host, id);
        say.kernel("closed; UDP leaves nothing behind (no TIME-WAIT)");
        say.see_it_yourself(fmt::format("ss -uan 'sport = :{}'   (empty)", bound.port));

        if (lab.json()) lab.print_json(facts);
        return exit_ok;
    });
}
