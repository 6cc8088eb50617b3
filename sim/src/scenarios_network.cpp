// The scenarios beyond one link, told as labs 14, 16, 17 and 18 tell them on the kernel, with
// the labs' addresses (RFC 5737 documentation ranges):
//
//   client  192.0.2.1   --- 192.0.2.2   router 198.51.100.1 --- 198.51.100.2 server
//   client2 203.0.113.1 --- 203.0.113.2 /                       (nat only)
//
// Every host but the router knows only its own /24 and, where the story needs it, the
// router as its default gateway: the NAT story's server has no route back to the clients,
// which is why the router must masquerade.
#include <string>
#include <vector>

#include "portlab/sim/scenarios.hpp"
#include "scenario_kit.hpp"

namespace portlab::sim::kit {

namespace {

IpAddress address(const char* text) { return IpAddress::parse(text).value(); }

struct Network {
    HostId client;
    HostId router;
    HostId server;
};

constexpr LinkConfig one_ms{1 * milliseconds, 0.0, {}};

// Client, router and server on two /24s (a third, 203.0.113.0/24, on the router when
// `third_network`). The client's default route goes via the router; the server's only when
// `server_has_gateway`.
Network client_router_server(Simulator& sim, bool server_has_gateway, bool third_network = false) {
    const HostId client = sim.add_host("client", {address("192.0.2.1")}, HostOptions{"client", {}, 1024});
    std::vector<Interface> interfaces{{address("192.0.2.2"), 24}, {address("198.51.100.1"), 24}};
    if (third_network) interfaces.push_back({address("203.0.113.2"), 24});
    const HostId router = sim.add_router("router", interfaces);
    const HostId server = sim.add_host("server", {address("198.51.100.2")}, HostOptions{"server", {}, 1024});
    sim.set_network(client, 24, address("192.0.2.2"));
    sim.set_network(server, 24, server_has_gateway ? std::optional(address("198.51.100.1")) : std::nullopt);
    sim.set_link(client, router, one_ms);
    sim.set_link(router, server, one_ms);
    return {client, router, server};
}

// A UDP socket connected to `to`, one datagram sent; the run goes on until it settles.
SocketRef udp_probe(Simulator& sim, HostId from, Endpoint to, std::uint8_t ttl = 64) {
    const SocketRef s = sim.socket(from, Protocol::udp).value();
    (void)sim.set_ttl(s, ttl);
    (void)sim.connect(s, to);
    (void)sim.send(s, bytes_of("probe"));
    sim.run_for(20 * milliseconds);
    return s;
}

std::string errno_after(Simulator& sim, SocketRef s) {
    const auto error = sim.take_error(s);
    return error ? std::string(errno_name(*error)) : "no error";
}

// Connects, waits for the handshake, accepts: the server's socket for the connection (the
// listener itself when nothing arrived, so a broken model shows as "nobody", not a crash).
SocketRef connect_and_accept(Simulator& sim, SocketRef client_socket, SocketRef listener, Endpoint to) {
    (void)sim.connect(client_socket, to);
    run_until_true(sim, [&] { return state_of(sim, client_socket) == TcpState::established; }, 10 * seconds);
    run_until_true(sim, [&] { return !sim.world().socket(listener)->accept_queue.empty(); }, 10 * seconds);
    const auto accepted = sim.accept(listener);
    return accepted ? *accepted : listener;
}

std::string peer_of(const Simulator& sim, SocketRef s) {
    const Socket* socket = sim.find_socket(s);
    return socket != nullptr && socket->remote ? socket->remote->to_string() : "nobody";
}

}  // namespace

// Lab 14's story: the TTL, the router's own ICMP.
void router_story(Simulator& sim) {
    const auto [client, router, server] = client_router_server(sim, true);
    const SocketRef echo = sim.socket(server, Protocol::udp).value();
    (void)sim.bind(echo, Endpoint{IpAddress::any_v4(), 9000});
    sim.note(router, "The router forwards between 192.0.2.0/24 and 198.51.100.0/24 (net.ipv4.ip_forward = 1).");

    (void)udp_probe(sim, client, {address("198.51.100.2"), 9000});
    sim.note(server, "The datagram left the client with TTL 64 and arrived with TTL 63: the router took one off "
                     "(RFC 1812 5.3.1), and with it the IP header checksum changed.");

    const SocketRef ttl1 = udp_probe(sim, client, {address("198.51.100.2"), 9000}, 1);
    sim.note(client, "Sent with TTL 1 (IP_TTL): the router may not forward it with TTL 0, so it dropped it and sent ICMP "
                     "time exceeded from 192.0.2.2, its address toward the client. traceroute is built on this. A soft error "
                     "(EHOSTUNREACH, not fatal): without IP_RECVERR the socket is not told, so it reports " +
                         errno_after(sim, ttl1) + "; lab 14 reads it from the error queue.");

    const SocketRef nobody = udp_probe(sim, client, {address("198.51.100.99"), 9000});
    sim.note(client, "Nobody has 198.51.100.99 on the server's network: no neighbour answers the router's ARP, so the router "
                     "sent ICMP host unreachable (code 1). Also a soft error for UDP (icmp_err_convert: fatal 0), so the "
                     "socket reports " + errno_after(sim, nobody) + "; a TCP connect() would fail with EHOSTUNREACH.");

    const SocketRef closed = udp_probe(sim, client, {address("198.51.100.2"), 9999});
    sim.note(client, "UDP 9999 on the server is closed: the server's own port unreachable came back through the router; "
                     "the socket reports " + errno_after(sim, closed) + ".");

    sim.add_firewall_rule(router, reject_port(Protocol::tcp, 23, RejectWith::icmp_admin_prohibited));
    const SocketRef telnet = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(telnet, Endpoint{address("192.0.2.2"), 23});
    run_until_true(sim, [&] { return state_of(sim, telnet) == TcpState::closed; }, 10 * seconds);
    sim.note(client, "The router's own input chain rejects telnet with admin-prohibited (ICMP type 3 code 13): connect() "
                     "fails with " + errno_after(sim, telnet) + ".");
    for (const SocketRef s : {ttl1, nobody, closed, telnet}) (void)sim.close(s);
    sim.run_until_idle();
}

// Lab 16's story: masquerade, the peer the server sees, the same source port from two clients.
void nat_story(Simulator& sim) {
    const auto [client, router, server] = client_router_server(sim, false, true);
    const HostId client2 = sim.add_host("client2", {address("203.0.113.1")}, HostOptions{"client2", {}, 1024});
    sim.set_network(client2, 24, address("203.0.113.2"));
    sim.set_link(client2, router, one_ms);
    sim.add_nat(router, address("198.51.100.1"));
    sim.note(router, "oifname \"router-server\" masquerade: what leaves toward the server leaves from 198.51.100.1, "
                     "and the server knows no route to 192.0.2.0/24 or 203.0.113.0/24.");
    const SocketRef listener = tcp_server(sim, server, 8080);

    const SocketRef first = sim.socket(client, Protocol::tcp).value();
    const SocketRef first_seen = connect_and_accept(sim, first, listener, {address("198.51.100.2"), 8080});
    sim.note(server, "The client is " + sim.find_socket(first)->local->to_string() + ", but accept() names " +
                         peer_of(sim, first_seen) + ": the router's address, the client's port kept because no other "
                         "connection to 198.51.100.2:8080 used it (nf_nat_core.c, get_unique_tuple).");

    const SocketRef a = sim.socket(client, Protocol::tcp).value();
    const SocketRef b = sim.socket(client2, Protocol::tcp).value();
    (void)sim.bind(a, Endpoint{address("192.0.2.1"), 50000});
    (void)sim.bind(b, Endpoint{address("203.0.113.1"), 50000});
    const SocketRef a_seen = connect_and_accept(sim, a, listener, {address("198.51.100.2"), 8080});
    const SocketRef b_seen = connect_and_accept(sim, b, listener, {address("198.51.100.2"), 8080});
    sim.note(server, "Both clients used source port 50000. The first leaves as " + peer_of(sim, a_seen) +
                         "; the second would leave under the same 4-tuple, so the router gave it another port: " +
                         peer_of(sim, b_seen) + " (nf_nat_l4proto_unique_tuple: a random offset into 1024-65535).");
    for (const SocketRef s : {first, first_seen, a, a_seen, b, b_seen}) (void)sim.close(s);
    sim.run_until_idle();
}

// Lab 17's story: the router's 8080 forwarded to the inside server's 80.
void port_forward_story(Simulator& sim) {
    const auto [client, router, server] = client_router_server(sim, true);
    sim.add_port_forward(router, Protocol::tcp, 8080, {address("198.51.100.2"), 80});
    sim.note(router, "tcp dport 8080 dnat to 198.51.100.2:80: the router's port 8080 leads to the inside web server.");
    const SocketRef listener = tcp_server(sim, server, 80);
    const SocketRef browser = sim.socket(client, Protocol::tcp).value();
    const SocketRef seen = connect_and_accept(sim, browser, listener, {address("192.0.2.2"), 8080});
    sim.note(server, "accept() names " + peer_of(sim, seen) + ": the real client, since only the destination was "
                     "rewritten. The client's socket still names " + peer_of(sim, browser) + " as its peer: the router "
                     "turns the server's answers back into 192.0.2.2:8080.");
    (void)sim.close(browser);
    (void)sim.close(seen);
    sim.run_until_idle();
}

// Lab 18's story: the forward chain lets replies in and keeps new connections out.
void stateful_firewall_story(Simulator& sim) {
    const auto [client, router, server] = client_router_server(sim, true);
    sim.set_stateful_firewall(router, address("192.0.2.2"));
    sim.note(router, "forward chain: ct state established,related accept; new from inside (198.51.100.0/24) accept; "
                     "new from outside (192.0.2.0/24) drop.");
    const SocketRef outside_listener = tcp_server(sim, client, 8080);
    const SocketRef web = tcp_server(sim, server, 80);

    const SocketRef out = sim.socket(server, Protocol::tcp).value();
    const SocketRef out_seen = connect_and_accept(sim, out, outside_listener, {address("192.0.2.1"), 8080});
    sim.note(server, "The inside server connected out: its SYN was new from inside, and the SYN-ACK coming back belonged "
                     "to a connection the router had seen, so it passed. State: " +
                         std::string(to_string(state_of(sim, out))) + ".");

    const SocketRef in = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(in, Endpoint{address("198.51.100.2"), 80});
    run_until_true(sim, [&] { return state_of(sim, in) == TcpState::closed; }, 200 * seconds);
    sim.note(client, "From outside, the SYN to the web server is new, and dropped: nothing comes back, the SYN is sent "
                     "again and again, and connect() fails with " + errno_after(sim, in) + ".");

    sim.start_scan(client, scan::ScanType::syn, address("198.51.100.2"), {80, 22});
    sim.run_for(10 * seconds);
    sim.start_scan(client, scan::ScanType::connect, address("198.51.100.2"), {80});
    sim.run_for(10 * seconds);
    sim.note(client, "Scans from outside see port 80 (open) and 22 (closed) alike: filtered, as no answer passes the router.");
    for (const SocketRef s : {out, out_seen, in, web, outside_listener}) (void)sim.close(s);
    sim.run_until_idle();
}

}  // namespace portlab::sim::kit
