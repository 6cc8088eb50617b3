// Beyond one link: routers (TTL, their own ICMP), NAT's translation table and port choice,
// port forwarding and the stateful forward chain, as the model holds them and as the
// packets' own bytes (decoded by the hub's decoder) show them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "portlab/sim/router.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/trace.hpp"

using namespace portlab;
using namespace portlab::sim;

namespace {

IpAddress address(const char* text) { return IpAddress::parse(text).value(); }
Endpoint endpoint(const char* text) { return Endpoint::parse(text).value(); }

Simulator story(std::string_view name, std::uint64_t seed = 1) {
    auto sim = run_scenario(name, seed);
    REQUIRE(sim);
    return std::move(sim.value());
}

struct SeenPacket {
    std::string host;
    trace::Packet event;
    DecodedPacket decoded;
};

std::vector<SeenPacket> packets(const Simulator& sim, trace::PacketKind kind, const std::string& host) {
    std::vector<SeenPacket> found;
    for (const auto& event : sim.events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || packet->kind != kind || event.host != host) continue;
        auto decoded = decode_ip(packet->bytes);
        REQUIRE(decoded);
        found.push_back({event.host, *packet, *decoded});
    }
    return found;
}

template <class Body>
std::vector<Body> all(const Simulator& sim, const std::string& host) {
    std::vector<Body> found;
    for (const auto& event : sim.events())
        if (const auto* body = std::get_if<Body>(&event.body); body != nullptr && event.host == host) found.push_back(*body);
    return found;
}

std::vector<std::string> errors_of(const Simulator& sim, const std::string& host) {
    std::vector<std::string> errors;
    for (const auto& failure : all<trace::CallFailed>(sim, host)) errors.push_back(failure.call + " " + failure.errno_name);
    return errors;
}

bool checksums_good(const DecodedPacket& p) {
    return (!p.ip_checksum || p.ip_checksum->status == ChecksumStatus::good) &&
           (!p.transport_checksum || p.transport_checksum->status == ChecksumStatus::good);
}

const Routing& routing_of(const Simulator& sim, const char* host) { return sim.world().host(*sim.world().find_host(host))->routing; }

}  // namespace

// ---- routes ---------------------------------------------------------------------------

TEST_CASE("a route matches by prefix and the longest prefix wins, as ip route does", "[sim][router]") {
    CHECK(in_network(address("192.0.2.77"), address("192.0.2.0"), 24));
    CHECK_FALSE(in_network(address("192.0.3.1"), address("192.0.2.0"), 24));
    CHECK(in_network(address("10.200.1.1"), address("10.192.0.0"), 10));
    CHECK_FALSE(in_network(address("10.128.0.1"), address("10.192.0.0"), 10));
    CHECK(in_network(address("203.0.113.9"), IpAddress::any_v4(), 0));
    CHECK_FALSE(in_network(address("2001:db8::1"), IpAddress::any_v4(), 0));  // a v4 route never takes v6
    const std::vector<Route> routes{{IpAddress::any_v4(), 0, address("192.0.2.2"), address("192.0.2.1")},
                                    {address("192.0.2.0"), 24, std::nullopt, address("192.0.2.1")}};
    CHECK(longest_match(routes, address("192.0.2.9")) == &routes[1]);
    CHECK(longest_match(routes, address("198.51.100.2")) == &routes[0]);
    CHECK(longest_match(routes, address("2001:db8::1")) == nullptr);
}

TEST_CASE("the router takes one off the TTL, with every checksum computed anew", "[sim][router]") {
    const Simulator sim = story("router");
    const auto sent = packets(sim, trace::PacketKind::sent, "client");
    const auto forwarded = packets(sim, trace::PacketKind::sent, "router");
    const auto at_server = packets(sim, trace::PacketKind::delivered, "server");
    REQUIRE_FALSE(sent.empty());
    REQUIRE_FALSE(at_server.empty());
    const auto& first = sent.front().decoded;
    CHECK(first.ip.ttl == 64);
    const auto arrived = std::find_if(at_server.begin(), at_server.end(), [&](const SeenPacket& p) {
        return p.decoded.source() == first.source() && p.decoded.destination() == first.destination();
    });
    REQUIRE(arrived != at_server.end());
    CHECK(arrived->decoded.ip.ttl == 63);  // RFC 1812 5.3.1
    CHECK(arrived->event.from_host == "router");
    for (const auto& p : forwarded) {
        CAPTURE(p.decoded.summary());
        CHECK(checksums_good(p.decoded));
    }
}

TEST_CASE("TTL 1 ends at the router: dropped as ttl-exceeded, ICMP time exceeded from the router's near address", "[sim][router][icmp]") {
    const Simulator sim = story("router");
    const auto drops = packets(sim, trace::PacketKind::dropped, "router");
    const auto expired = std::find_if(drops.begin(), drops.end(), [](const SeenPacket& p) {
        return p.event.cause == trace::DropCause::ttl_exceeded;
    });
    REQUIRE(expired != drops.end());
    CHECK(expired->decoded.ip.ttl == 1);
    std::vector<IcmpInfo> at_client;
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "client"))
        if (p.decoded.icmp && p.decoded.ip.source == address("192.0.2.2")) at_client.push_back(*p.decoded.icmp);
    const auto time_exceeded = std::find_if(at_client.begin(), at_client.end(), [](const IcmpInfo& i) { return i.type == 11; });
    REQUIRE(time_exceeded != at_client.end());
    CHECK(time_exceeded->code == 0);
    // it quotes the datagram it is about, as the client sent it
    CHECK(time_exceeded->quoted_ip->source == address("192.0.2.1"));
    CHECK(time_exceeded->quoted_destination_port == Port{9000});
    // host unreachable (code 1) for an address nobody has, admin-prohibited (13) from the reject
    const auto has_code = [&](std::uint8_t code) {
        return std::any_of(at_client.begin(), at_client.end(), [&](const IcmpInfo& i) { return i.type == 3 && i.code == code; });
    };
    CHECK(has_code(1));
    CHECK(has_code(13));
    // The port unreachable came from the server itself, through the router.
    const auto from_server = packets(sim, trace::PacketKind::delivered, "client");
    CHECK(std::any_of(from_server.begin(), from_server.end(), [](const SeenPacket& p) {
        return p.decoded.icmp && p.decoded.icmp->code == 3 && p.decoded.ip.source == IpAddress::parse("198.51.100.2").value() &&
               p.decoded.ip.ttl == 63;
    }));
    // admin-prohibited is a hard error for TCP in SYN-SENT: connect() fails (tcp_v4_err)
    CHECK(errors_of(sim, "client") == std::vector<std::string>{"connect EHOSTUNREACH"});
}

// ---- NAT ------------------------------------------------------------------------------

TEST_CASE("masquerade keeps a free source port and picks another as nf_nat_l4proto_unique_tuple does", "[sim][nat]") {
    Routing routing;
    const IpAddress outside = address("198.51.100.1");
    const trace::Flow flow{endpoint("192.0.2.1:50000"), endpoint("198.51.100.2:8080")};
    std::uint32_t draws = 0;
    const auto random16 = [&] { return static_cast<std::uint32_t>(12345 + 1000 * draws++); };
    CHECK(masquerade_port(routing, Protocol::tcp, flow, outside, random16) == Port{50000});
    CHECK(draws == 0);  // a free port needs no random offset

    routing.conntrack.push_back({1, Protocol::tcp, flow, {endpoint("198.51.100.2:8080"), endpoint("198.51.100.1:50000")}});
    const trace::Flow second{endpoint("203.0.113.1:50000"), endpoint("198.51.100.2:8080")};
    // 1024 + 12345 % 64512: the first try of the offset
    CHECK(masquerade_port(routing, Protocol::tcp, second, outside, random16) == Port{1024 + 12345});
    // the same port toward another destination port, or over UDP, is another tuple: kept
    CHECK(masquerade_port(routing, Protocol::tcp, {endpoint("203.0.113.1:50000"), endpoint("198.51.100.2:8081")}, outside,
                          random16) == Port{50000});
    CHECK(masquerade_port(routing, Protocol::udp, second, outside, random16) == Port{50000});
}

TEST_CASE("masquerade stays in the port's class and gives up when every try is taken", "[sim][nat]") {
    Routing routing;
    const IpAddress outside = address("198.51.100.1");
    const auto server = endpoint("198.51.100.2:22");
    std::uint32_t seed = 7;
    const auto random16 = [&] { return seed = (seed * 1103515245u + 12345u) & 0xFFFF; };
    // Ports below 512 map into 1-511 (credentials passing on 512-1023 is kept apart).
    for (Port port = 1; port <= 511; ++port)
        routing.conntrack.push_back({port, Protocol::tcp, {}, {server, Endpoint{outside, port}}});
    const trace::Flow low{endpoint("192.0.2.1:700"), server};
    const auto moved = masquerade_port(routing, Protocol::tcp, {endpoint("192.0.2.1:100"), server}, outside, random16);
    CHECK_FALSE(moved);  // 1-511 all taken: 128 + 64 + 32 + 16 tries, then the kernel gives up
    const auto middle = masquerade_port(routing, Protocol::tcp, low, outside, random16);
    REQUIRE(middle);
    CHECK(*middle == 700);  // free, kept
    routing.conntrack.push_back({600, Protocol::tcp, {}, {server, Endpoint{outside, 700}}});
    const auto other = masquerade_port(routing, Protocol::tcp, low, outside, random16);
    REQUIRE(other);
    CHECK(*other >= 600);
    CHECK(*other <= 1023);
}

TEST_CASE("the nat scenario: the server sees the router, the first port kept, the second client's same port moved", "[sim][nat]") {
    const Simulator sim = story("nat");
    const auto translations = all<trace::NatTranslated>(sim, "router");
    REQUIRE(translations.size() == 3);
    for (const auto& t : translations) {
        CHECK(t.kind == trace::NatKind::snat);
        CHECK(t.flows->after.source.address == address("198.51.100.1"));
        CHECK(t.flows->after.destination == t.flows->before.destination);
    }
    CHECK(translations[0].flows->after.source.port == translations[0].flows->before.source.port);
    CHECK(translations[1].flows->before.source.port == 50000);
    CHECK(translations[2].flows->before.source.port == 50000);
    CHECK(translations[1].flows->after.source.port == 50000);
    CHECK(translations[2].flows->after.source.port != 50000);

    // The router's table holds both tuples of each, as conntrack -L shows them.
    const Routing& router = routing_of(sim, "router");
    REQUIRE(router.conntrack.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(router.conntrack[i].id == translations[i].conntrack_id);
        CHECK(router.conntrack[i].original == translations[i].flows->before);
        CHECK(router.conntrack[i].reply == reversed(translations[i].flows->after));
        CHECK(router.conntrack[i].seen_reply);
    }

    // The server's accept() names the router each time, never a client; no packet reaching
    // it carries a client's address.
    std::set<Endpoint> peers;
    for (const auto& accepted : all<trace::Accepted>(sim, "server")) {
        CHECK(accepted.four_tuple.remote.address == address("198.51.100.1"));
        peers.insert(accepted.four_tuple.remote);
    }
    CHECK(peers.size() == 3);
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "server")) {
        CAPTURE(p.decoded.summary());
        CHECK(p.decoded.ip.source == address("198.51.100.1"));
        CHECK(checksums_good(p.decoded));
    }
}

TEST_CASE("port forwarding: the inside server sees the real client, the client sees the router's port", "[sim][nat][dnat]") {
    const Simulator sim = story("port-forward");
    const auto translations = all<trace::NatTranslated>(sim, "router");
    REQUIRE(translations.size() == 1);
    CHECK(translations[0].kind == trace::NatKind::dnat);
    CHECK(translations[0].flows->before.destination == endpoint("192.0.2.2:8080"));
    CHECK(translations[0].flows->after.destination == endpoint("198.51.100.2:80"));
    const auto accepted = all<trace::Accepted>(sim, "server");
    REQUIRE(accepted.size() == 1);
    CHECK(accepted[0].four_tuple.remote == translations[0].flows->before.source);
    CHECK(accepted[0].four_tuple.remote.address == address("192.0.2.1"));
    CHECK(accepted[0].four_tuple.local == endpoint("198.51.100.2:80"));
    // Every answer reaching the client comes from the address and port it called.
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "client")) {
        CAPTURE(p.decoded.summary());
        CHECK(p.decoded.source() == endpoint("192.0.2.2:8080"));
    }
}

// ---- the stateful forward chain --------------------------------------------------------

TEST_CASE("the stateful firewall lets replies in and keeps new connections from outside out", "[sim][firewall][conntrack]") {
    const Simulator sim = story("stateful-firewall");
    // The inside server's connection out came up: its replies passed.
    const auto server_states = all<trace::StateChanged>(sim, "server");
    CHECK(std::any_of(server_states.begin(), server_states.end(), [](const trace::StateChanged& c) {
        return c.from == TcpState::syn_sent && c.to == TcpState::established;
    }));
    // From outside: nothing reached the server but the inside connection's packets, and
    // the client's connect() timed out.
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "server")) {
        CAPTURE(p.decoded.summary());
        CHECK(p.decoded.destination() != std::optional(endpoint("198.51.100.2:80")));
        CHECK(p.decoded.destination() != std::optional(endpoint("198.51.100.2:22")));
    }
    const auto drops = packets(sim, trace::PacketKind::dropped, "router");
    REQUIRE_FALSE(drops.empty());
    for (const auto& p : drops) CHECK(p.event.cause == trace::DropCause::ct_state);
    CHECK(errors_of(sim, "client") == std::vector<std::string>{"connect ETIMEDOUT"});
    // nmap from outside: filtered, the open port 80 and the closed port 22 alike.
    const auto results = all<trace::ScanResult>(sim, "client");
    REQUIRE(results.size() == 3);
    for (const auto& r : results) {
        CAPTURE(r.target.to_string(), scan::to_string(r.scan));
        CHECK(r.state == scan::PortState::filtered);
        CHECK(r.reason == scan::Reason::no_response);
    }
}
