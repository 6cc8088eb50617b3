// The built-in scenarios became files (sim/scenarios/*.scenario). This checks each
// file tells the story its C++ function told, event for event: the functions below are
// the last C++ versions (git show 7326603:sim/src/scenarios.cpp), kept here only until
// the files are proven equal, then deleted.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "portlab/sim/scenario_file.hpp"
#include "portlab/sim/scenarios.hpp"

using namespace portlab;
using namespace portlab::sim;

namespace reference {
namespace {

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

// A DNS query for example.com (A) and its answer, byte for byte (RFC 1035 4.1).
Bytes dns_query() {
    return {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // id, RD, 1 question
            7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,              // QNAME
            0x00, 0x01, 0x00, 0x01};                                                // QTYPE A, QCLASS IN
}
Bytes dns_answer() {
    Bytes answer = dns_query();
    answer[2] = 0x81;  // QR, RD
    answer[3] = 0x80;  // RA
    answer[7] = 0x01;  // 1 answer
    const Bytes record{0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c,  // name -> offset 12, A, IN, TTL 300
                       0x00, 0x04, 93, 184, 216, 34};                               // 4 bytes: 93.184.216.34
    answer.insert(answer.end(), record.begin(), record.end());
    return answer;
}

const std::string_view http_request = "GET / HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n";
const std::string_view http_response =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";

struct Pair {
    HostId client;
    HostId server;
};

HostOptions with_role(std::string role, HostOptions options = {}) {
    options.role = std::move(role);
    return options;
}

Pair client_and_server(Simulator& sim, HostOptions client_options = {}) {
    const HostId client = sim.add_host("client", {client_address}, with_role("client", std::move(client_options)));
    const HostId server = sim.add_host("server", {server_address}, with_role("server"));
    sim.set_link(client, server, LinkConfig{5 * milliseconds, 0.0, {}});
    return {client, server};
}

// Runs events until `done()` holds or `limit` of virtual time has passed.
template <class Done>
bool run_until_true(Simulator& sim, Done done, Time limit = 600 * seconds) {
    const Time deadline = sim.now() + limit;
    while (!done()) {
        if (sim.now() > deadline || !sim.step()) return done();
    }
    return true;
}

TcpState state_of(const Simulator& sim, SocketRef s) {
    const Socket* socket = sim.find_socket(s);
    return socket == nullptr ? TcpState::closed : socket->state;
}

SocketRef tcp_server(Simulator& sim, HostId server, Port port, std::uint32_t backlog = 128) {
    const SocketRef listener = sim.socket(server, Protocol::tcp).value();
    (void)sim.set_privileged(listener);  // a server started as root may take ports below 1024
    (void)sim.set_reuse_address(listener);
    (void)sim.bind(listener, Endpoint{IpAddress::any_v4(), port});
    (void)sim.listen(listener, backlog);
    return listener;
}

// Reads until the peer's FIN (or an error); returns what arrived.
Bytes read_to_end(Simulator& sim, SocketRef s) {
    Bytes all;
    run_until_true(sim, [&] {
        const auto got = sim.recv(s);
        if (!got) return got.error() != Errno::eagain;
        if (got->empty()) return true;
        all.insert(all.end(), got->begin(), got->end());
        return false;
    });
    return all;
}

// ---- the stories ----------------------------------------------------------------

void web(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    sim.note(server, "A web server listens on TCP port 80 of every address (0.0.0.0).");
    const SocketRef listener = tcp_server(sim, server, 80);
    sim.run_for(1 * milliseconds);
    const SocketRef browser = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(browser, Endpoint{server_address, 80});
    run_until_true(sim, [&] { return state_of(sim, browser) == TcpState::established; });
    run_until_true(sim, [&] { return !sim.world().socket(listener)->accept_queue.empty(); });
    const SocketRef conn = sim.accept(listener).value();
    sim.note(server, "The accepted socket shares port 80 with the listener; the 4-tuple tells them apart.");
    (void)sim.send(browser, bytes_of(http_request));
    run_until_true(sim, [&] { return !sim.world().socket(conn)->tcb.receive_buffer.empty(); });
    (void)sim.recv(conn);
    (void)sim.send(conn, bytes_of(http_response));
    (void)sim.close(conn);  // "Connection: close": the server closes first and keeps TIME-WAIT
    read_to_end(sim, browser);
    (void)sim.close(browser);
    sim.run_until_idle();
    sim.note(server, "The server's side spent 60 s (2*MSL) in TIME-WAIT before port 80's connection was forgotten.");
}

void two_tabs(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef listener = tcp_server(sim, server, 80);
    sim.run_for(1 * milliseconds);
    sim.note(client, "Two browser tabs open two connections to the same server port.");
    const SocketRef tab1 = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(tab1, Endpoint{server_address, 80});
    const SocketRef tab2 = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(tab2, Endpoint{server_address, 80});
    run_until_true(sim, [&] { return sim.world().socket(listener)->accept_queue.size() == 2; });
    const SocketRef first = sim.accept(listener).value();
    const SocketRef second = sim.accept(listener).value();
    sim.note(server, "Three sockets on server port 80: the listener and two connections; two 4-tuples differ only in the client's ephemeral port.");
    for (const auto& [tab, conn] : {std::pair{tab1, first}, std::pair{tab2, second}}) {
        (void)sim.send(tab, bytes_of(http_request));
        run_until_true(sim, [&] { return !sim.world().socket(conn)->tcb.receive_buffer.empty(); });
        (void)sim.recv(conn);
        (void)sim.send(conn, bytes_of(http_response));
    }
    sim.run_for(20 * milliseconds);
    for (const SocketRef s : {tab1, tab2}) {
        (void)sim.recv(s);
        (void)sim.close(s);
    }
    run_until_true(sim, [&] { return state_of(sim, first) == TcpState::close_wait && state_of(sim, second) == TcpState::close_wait; });
    (void)sim.close(first);
    (void)sim.close(second);
    (void)sim.close(listener);
    sim.run_until_idle();
}

void dns_udp(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef dns = sim.socket(server, Protocol::udp).value();
    (void)sim.set_privileged(dns);
    (void)sim.bind(dns, Endpoint{IpAddress::any_v4(), 53});
    sim.run_for(1 * milliseconds);
    const SocketRef resolver = sim.socket(client, Protocol::udp).value();
    sim.note(client, "No connect, no handshake: sendto() on an unbound UDP socket picks an ephemeral port and sends.");
    (void)sim.sendto(resolver, dns_query(), Endpoint{server_address, 53});
    run_until_true(sim, [&] { return !sim.world().socket(dns)->inbox.empty(); });
    const auto query = sim.recvfrom(dns).value();
    (void)sim.sendto(dns, dns_answer(), query.from);
    run_until_true(sim, [&] { return !sim.world().socket(resolver)->inbox.empty(); });
    (void)sim.recvfrom(resolver);
    sim.note(client, "The answer came back to the same ephemeral port; the datagram's boundaries were kept.");
    (void)sim.close(resolver);
    (void)sim.close(dns);
    sim.run_until_idle();
}

void closed_port(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    sim.note(server, "Nothing listens on TCP port 81 of the server.");
    const SocketRef s = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(s, Endpoint{server_address, 81});
    sim.run_until_idle();
    sim.note(client, "The server's kernel answered the SYN with RST: connect() fails with ECONNREFUSED; nmap would call the port closed.");
    (void)sim.close(s);
    sim.run_until_idle();
}

void udp_closed_port(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef s = sim.socket(client, Protocol::udp).value();
    (void)sim.connect(s, Endpoint{server_address, 9999});
    (void)sim.send(s, bytes_of("ping"));
    sim.run_until_idle();
    sim.note(client, "The server had no socket on UDP 9999, so it sent ICMP port unreachable; a connected UDP socket reports it on its next call.");
    (void)sim.recv(s);
    (void)sim.close(s);
    sim.run_until_idle();
}

void firewall_story(Simulator& sim, FirewallAction action) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef listener = tcp_server(sim, server, 22);
    const FirewallRule rule = action == FirewallAction::drop ? drop_port(Protocol::tcp, 22)
                                                             : reject_port(Protocol::tcp, 22, RejectWith::tcp_reset);
    sim.add_firewall_rule(server, rule);
    sim.note(server, "sshd listens on port 22, but the firewall rule '" + nft_text(rule).value() + "' comes first.");
    const SocketRef s = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(s, Endpoint{server_address, 22});
    run_until_true(sim, [&] { return state_of(sim, s) == TcpState::closed; }, 200 * seconds);
    if (action == FirewallAction::drop)
        sim.note(client, "No answer ever came: the SYN was sent again, 1 s apart at first, then at doubling intervals, until connect() "
                         "gave up with ETIMEDOUT after " + std::to_string(sim.world().tcp.syn.give_up_at_us() / seconds) +
                         " s. nmap calls this port filtered.");
    else
        sim.note(client, "The firewall answered for the host with RST: connect() fails at once with ECONNREFUSED, so the port looks closed.");
    (void)sim.close(s);
    (void)sim.close(listener);
    sim.run_until_idle();
}

void bind_conflict(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef first = sim.socket(server, Protocol::tcp).value();
    (void)sim.set_reuse_address(first);
    (void)sim.bind(first, Endpoint{IpAddress::any_v4(), 8080});
    (void)sim.listen(first, 16);
    sim.note(server, "A second program tries the same TCP port.");
    const SocketRef second = sim.socket(server, Protocol::tcp).value();
    (void)sim.bind(second, Endpoint{IpAddress::any_v4(), 8080});
    sim.note(server, "127.0.0.1:8080 overlaps 0.0.0.0:8080 (the wildcard covers every address), so it conflicts too.");
    (void)sim.bind(second, Endpoint{IpAddress::loopback_v4(), 8080});
    sim.note(server, "Port 80 is below ip_unprivileged_port_start (1024): an unprivileged program gets EACCES.");
    (void)sim.bind(second, Endpoint{IpAddress::any_v4(), 80});
    (void)sim.close(second);
    sim.note(server, "UDP has its own table: UDP 8080 is free although TCP 8080 is taken.");
    const SocketRef udp = sim.socket(server, Protocol::udp).value();
    (void)sim.bind(udp, Endpoint{IpAddress::any_v4(), 8080});
    (void)sim.close(udp);

    const SocketRef c = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(c, Endpoint{server_address, 8080});
    run_until_true(sim, [&] { return !sim.world().socket(first)->accept_queue.empty(); });
    const SocketRef conn = sim.accept(first).value();
    sim.note(server, "The server closes its end first (an active close), so its side will wait in TIME-WAIT; then it stops listening.");
    (void)sim.close(conn);
    run_until_true(sim, [&] { return state_of(sim, c) == TcpState::close_wait; });
    (void)sim.close(c);
    run_until_true(sim, [&] {
        const Socket* s = sim.world().hosts[server.value].find(conn.id);
        return s != nullptr && s->state == TcpState::time_wait;
    });
    (void)sim.close(first);
    sim.run_for(1 * seconds);
    sim.note(server, "Restarting the server without SO_REUSEADDR: the TIME-WAIT connection still holds port 8080.");
    const SocketRef restart = sim.socket(server, Protocol::tcp).value();
    (void)sim.bind(restart, Endpoint{IpAddress::any_v4(), 8080});
    (void)sim.close(restart);
    sim.note(server, "With SO_REUSEADDR (on both the old and the new socket) the bind succeeds while TIME-WAIT lasts.");
    const SocketRef reuse = sim.socket(server, Protocol::tcp).value();
    (void)sim.set_reuse_address(reuse);
    (void)sim.bind(reuse, Endpoint{IpAddress::any_v4(), 8080});
    (void)sim.listen(reuse, 16);
    sim.run_until_idle();
    (void)sim.close(reuse);
}

void ephemeral_exhaustion(Simulator& sim) {
    HostOptions small;
    small.ephemeral.range = PortRange{40000, 40007};
    const auto [client, server] = client_and_server(sim, small);
    tcp_server(sim, server, 80, 64);
    tcp_server(sim, server, 8080, 64);
    sim.run_for(1 * milliseconds);
    sim.note(client, "The client's ephemeral range is only 40000-40007: eight ports, so at most eight connections to one "
                     "destination (10.0.0.2:80). Linux's limit is per destination: each connection needs only a unique 4-tuple.");
    for (int i = 0; i < 9; ++i) {
        const SocketRef s = sim.socket(client, Protocol::tcp).value();
        (void)sim.connect(s, Endpoint{server_address, 80});
    }
    sim.note(client, "The ninth connect() to 10.0.0.2:80 found no port that makes a new 4-tuple: EADDRNOTAVAIL, at once, "
                     "without trying the network.");
    sim.run_for(50 * milliseconds);
    const SocketRef other = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(other, Endpoint{server_address, 8080});
    sim.note(client, "A connect() to another destination, 10.0.0.2:8080, still succeeds: it shares a port of the full range, "
                     "because (10.0.0.1, port, 10.0.0.2, 8080) is a new 4-tuple (Linux __inet_hash_connect).");
    sim.run_for(50 * milliseconds);
}

void scan(Simulator& sim) {
    const HostId scanner = sim.add_host("scanner", {scanner_address}, with_role("scanner"));
    const HostId target = sim.add_host("server", {server_address}, with_role("server"));
    sim.set_link(scanner, target, LinkConfig{5 * milliseconds, 0.0, {}});
    tcp_server(sim, target, 22);  // open
    tcp_server(sim, target, 25);  // behind a DROP rule: filtered
    const SocketRef dns = sim.socket(target, Protocol::udp).value();
    (void)sim.set_privileged(dns);
    (void)sim.bind(dns, Endpoint{IpAddress::any_v4(), 53});
    (void)sim.set_auto_reply(dns, dns_answer());
    sim.add_firewall_rule(target, drop_port(Protocol::tcp, 25));
    sim.add_firewall_rule(target, drop_port(Protocol::udp, 123));
    sim.note(target, "Open: tcp/22 and udp/53. Closed: tcp/23, udp/161. Firewall DROP: tcp/25, udp/123.");
    sim.start_scan(scanner, scan::ScanType::syn, server_address, {22, 23, 25});
    sim.run_until_idle();
    sim.start_scan(scanner, scan::ScanType::connect, server_address, {22, 23});
    sim.run_until_idle();
    sim.start_scan(scanner, scan::ScanType::ack, server_address, {22, 25});
    sim.run_until_idle();
    sim.start_scan(scanner, scan::ScanType::udp, server_address, {53, 123, 161});
    sim.run_until_idle();
}

void time_wait(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    const SocketRef listener = tcp_server(sim, server, 7);
    const SocketRef s = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(s, Endpoint{server_address, 7});
    run_until_true(sim, [&] { return !sim.world().socket(listener)->accept_queue.empty(); });
    const SocketRef conn = sim.accept(listener).value();
    sim.note(client, "The client closes first: it sends FIN and will be the side that waits in TIME-WAIT.");
    (void)sim.close(s);
    run_until_true(sim, [&] { return state_of(sim, conn) == TcpState::close_wait; });
    (void)sim.recv(conn);
    (void)sim.close(conn);
    run_until_true(sim, [&] {
        const Socket* c = sim.world().hosts[client.value].find(s.id);
        return c != nullptr && c->state == TcpState::time_wait;
    });
    sim.note(client, "TIME-WAIT lasts 2*MSL (60 s on Linux) so that late duplicates of this connection die out, and the last ACK can be resent if lost.");
    sim.run_until_idle();
    (void)sim.close(listener);
}

void lossy_link(Simulator& sim) {
    const auto [client, server] = client_and_server(sim);
    // 20% random loss, and the first data segment (the 4th packet, after the
    // handshake's three) lost for certain, so every seed shows a retransmission.
    sim.set_link(client, server, LinkConfig{5 * milliseconds, 0.2, {4}});
    sim.note(client, "This link loses a fifth of all packets (and surely the first data segment); TCP's retransmission timer makes up for it.");
    const SocketRef listener = tcp_server(sim, server, 9000);
    const SocketRef s = sim.socket(client, Protocol::tcp).value();
    (void)sim.connect(s, Endpoint{server_address, 9000});
    run_until_true(sim, [&] { return !sim.world().socket(listener)->accept_queue.empty(); });
    const SocketRef conn = sim.accept(listener).value();
    (void)sim.send(s, Bytes(6000, static_cast<std::uint8_t>('x')));
    (void)sim.close(s);
    read_to_end(sim, conn);
    (void)sim.close(conn);
    sim.run_until_idle();
    (void)sim.close(listener);
}

}  // namespace

struct Story {
    std::string_view name;
    void (*run)(Simulator&);
};
const Story stories[] = {
    {"web", web}, {"two-tabs", two_tabs}, {"dns-udp", dns_udp}, {"closed-port", closed_port},
    {"udp-closed-port", udp_closed_port},
    {"firewall-drop", [](Simulator& sim) { firewall_story(sim, FirewallAction::drop); }},
    {"firewall-reject", [](Simulator& sim) { firewall_story(sim, FirewallAction::reject); }},
    {"bind-conflict", bind_conflict}, {"ephemeral-exhaustion", ephemeral_exhaustion}, {"scan", scan},
    {"time-wait", time_wait}, {"lossy-link", lossy_link},
};

}  // namespace reference

TEST_CASE("every built-in scenario file tells its C++ story event for event, with the same final world", "[sim][scenario-file]") {
    CHECK(scenarios().size() == std::size(reference::stories));
    for (const auto& story : reference::stories) {
        for (const std::uint64_t seed : {1ULL, 2ULL, 7ULL}) {
            CAPTURE(story.name, seed);
            Simulator expected{seed};
            story.run(expected);
            auto from_file = run_scenario(story.name, seed);
            REQUIRE(from_file);
            const auto& got = from_file->events();
            const auto& want = expected.events();
            const auto differ = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
            if (differ.first != got.end() || differ.second != want.end()) {
                const auto at = static_cast<std::size_t>(differ.first - got.begin());
                FAIL("event " << at << " of " << want.size() << " differs (the file made " << got.size() << ")");
            }
            CHECK(from_file->world() == expected.world());
        }
    }
}
