// Beyond one link: routers (TTL, their own ICMP), NAT's translation table and port choice,
// port forwarding and the stateful forward chain, as the model holds them and as the
// packets' own bytes (decoded by the hub's decoder) show them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "portlab/checksum.hpp"
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
    REQUIRE(translations.size() == 4);  // three TCP connections, then a UDP datagram
    CHECK(translations[3].protocol == Protocol::udp);
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
    REQUIRE(router.conntrack.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(router.conntrack[i].id == translations[i].conntrack_id);
        CHECK(router.conntrack[i].original == translations[i].flows->before);
        CHECK(router.conntrack[i].reply == reversed(translations[i].flows->after));
        CHECK(router.conntrack[i].seen_reply == (i < 3));  // the datagram got no UDP answer, only an ICMP error
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

TEST_CASE("an ICMP error about a masqueraded datagram reaches the client, quoting the client's own datagram", "[sim][nat][icmp]") {
    const Simulator sim = story("nat");
    const auto udp = all<trace::NatTranslated>(sim, "router").back();
    REQUIRE(udp.protocol == Protocol::udp);
    // The server's error names the router's side of the translation...
    const auto from_server = packets(sim, trace::PacketKind::sent, "server");
    const auto error = std::find_if(from_server.begin(), from_server.end(), [](const SeenPacket& p) { return p.decoded.icmp.has_value(); });
    REQUIRE(error != from_server.end());
    REQUIRE(error->decoded.icmp->quoted_ip);
    CHECK(error->decoded.ip.destination == udp.flows->after.source.address);
    CHECK(error->decoded.icmp->quoted_source_port == udp.flows->after.source.port);
    // ... and the client receives it about its own address and port, every checksum good.
    const auto at_client = packets(sim, trace::PacketKind::delivered, "client");
    const auto translated = std::find_if(at_client.begin(), at_client.end(), [](const SeenPacket& p) { return p.decoded.icmp.has_value(); });
    REQUIRE(translated != at_client.end());
    const IcmpInfo& icmp = *translated->decoded.icmp;
    CHECK(icmp.type == 3);
    CHECK(icmp.code == 3);
    CHECK(translated->decoded.ip.source == address("198.51.100.2"));
    CHECK(translated->decoded.ip.destination == udp.flows->before.source.address);
    REQUIRE(icmp.quoted_ip);
    CHECK(icmp.quoted_ip->source == udp.flows->before.source.address);
    CHECK(icmp.quoted_source_port == udp.flows->before.source.port);
    CHECK(icmp.quoted_destination_port == Port{9999});
    CHECK(checksums_good(translated->decoded));
    // The quoted IPv4 header's own checksum is right again (RFC 1071 over its 20 bytes).
    const auto& bytes = translated->event.bytes;
    CHECK(internet_checksum(std::span(bytes).subspan(28, 20)) == 0);
    // The quoted UDP checksum, updated per RFC 1624, still verifies over the client's datagram.
    const Bytes datagram{'p', 'r', 'o', 'b', 'e'};
    const auto original = encode_udp(IpHeader{udp.flows->before.source.address, udp.flows->before.destination.address},
                                     UdpHeader{udp.flows->before.source.port, 9999}, datagram);
    REQUIRE(original);
    CHECK(Bytes(bytes.begin() + 48 + 6, bytes.begin() + 48 + 8) == Bytes(original->begin() + 26, original->begin() + 28));
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
        CHECK(p.decoded.destination() != std::optional(endpoint("198.51.100.2:8080")));
        CHECK(p.decoded.destination() != std::optional(endpoint("198.51.100.2:8081")));
    }
    const auto drops = packets(sim, trace::PacketKind::dropped, "router");
    REQUIRE_FALSE(drops.empty());
    for (const auto& p : drops) CHECK(p.event.cause == trace::DropCause::ct_state);
    CHECK(errors_of(sim, "client") == std::vector<std::string>{"connect ETIMEDOUT"});
    // nmap from outside: the open port 8080 and the closed 8081 alike, filtered (UDP: open|filtered).
    const auto results = all<trace::ScanResult>(sim, "client");
    REQUIRE(results.size() == 8);
    for (const auto& r : results) {
        CAPTURE(r.target.to_string(), scan::to_string(r.scan));
        CHECK(r.state == (r.scan == scan::ScanType::udp ? scan::PortState::open_filtered : scan::PortState::filtered));
        CHECK(r.reason == scan::Reason::no_response);
    }
}

TEST_CASE("the stateful chain's rules go into force as the trace's rule_added, and a drop names the rule that took it",
          "[sim][firewall][conntrack]") {
    const Simulator sim = story("stateful-firewall");
    const auto added = all<trace::RuleAdded>(sim, "router");
    const auto& chain = routing_of(sim, "router").stateful->chain;
    REQUIRE(added.size() == chain.size());
    std::set<std::string> ids;
    for (std::size_t i = 0; i < chain.size(); ++i) {
        CHECK(added[i].rule_id == chain[i].id);
        CHECK(*added[i].rule == chain[i].rule);
        CHECK(chain[i].rule.chain == FirewallChain::forward);
        ids.insert(chain[i].id);
    }
    CHECK(ids.size() == chain.size());
    // The router's first address (192.0.2.2, toward the client) is eth0: the outside.
    CHECK(nft_text(chain.front().rule).value() == "ct state established,related accept");
    CHECK(nft_text(chain[2].rule).value() == "iifname \"eth0\" ct state new drop");
    for (const auto& p : packets(sim, trace::PacketKind::dropped, "router")) {
        CHECK(p.event.cause == trace::DropCause::ct_state);
        CHECK(p.event.rule_id == std::optional<std::string>("new from outside"));
    }
}

TEST_CASE("the simulator's input chain refuses what it does not model: ct state, iifname, tcp flags, the forward chain",
          "[sim][firewall]") {
    Simulator sim;
    const HostId server = sim.add_host("server", {address("192.0.2.1")});
    FirewallRule stateful = drop_all();
    stateful.ct_states = CtStates{}.with(CtState::new_connection);
    FirewallRule interface = drop_all();
    interface.in_interface = "eth0";
    FirewallRule flags = drop_port(Protocol::tcp, 22);
    flags.tcp_flags = TcpFlagsMatch{tcp_flag::syn, tcp_flag::syn};
    FirewallRule forward = drop_port(Protocol::tcp, 22);
    forward.chain = FirewallChain::forward;
    for (const auto& rule : {stateful, interface, flags, forward}) {
        CAPTURE(nft_text(rule).value_or("?"));
        const auto id = sim.add_firewall_rule(server, rule);
        REQUIRE_FALSE(id);
        CHECK(id.error().message.find("the simulator's") != std::string::npos);
    }
    CHECK(all<trace::RuleAdded>(sim, "server").empty());
    CHECK(sim.world().host(server)->firewall.input.empty());
}

TEST_CASE("a port forward bound to the outside interface leaves the inside's connections to the router itself",
          "[sim][nat][dnat]") {
    // Lab 17's step 4: `iifname "router-client" tcp dport 8080 dnat ...`; from inside, the
    // router's outside address and port 8080 are just the router's own, where nothing listens.
    Simulator sim;
    const HostId router = sim.add_router("router", {{address("192.0.2.2"), 24}, {address("198.51.100.1"), 24}});
    const HostId server = sim.add_host("server", {address("198.51.100.2")}, HostOptions{"server", {}, 1024});
    sim.set_network(server, 24, address("198.51.100.1"));
    sim.add_port_forward(router, Protocol::tcp, 8080, endpoint("198.51.100.2:80"), address("192.0.2.2"));
    const SocketRef s = sim.socket(server, Protocol::tcp).value();
    REQUIRE(sim.connect(s, endpoint("192.0.2.2:8080")));
    sim.run_for(1 * seconds);
    CHECK(sim.take_error(s) == Errno::econnrefused);  // the router's own RST
    CHECK(all<trace::NatTranslated>(sim, "router").empty());
    CHECK(routing_of(sim, "router").conntrack.empty());
}

// ---- IPv6 through a router (issue 11 item 3) -------------------------------------------------

TEST_CASE("an IPv6 route matches by prefix and the longest prefix wins, as ip -6 route does", "[sim][router][ipv6]") {
    const std::vector<Route> routes{{IpAddress::any_v6(), 0, address("2001:db8:1::2"), address("2001:db8:1::1")},
                                    {address("2001:db8::"), 32, address("2001:db8:1::3"), address("2001:db8:1::1")},
                                    {address("2001:db8:1::"), 64, std::nullopt, address("2001:db8:1::1")},
                                    {address("2001:db8:1:0:8000::"), 65, std::nullopt, address("2001:db8:1::1")}};
    CHECK(longest_match(routes, address("2001:db8:1::9")) == &routes[2]);
    CHECK(longest_match(routes, address("2001:db8:1:0:8000::9")) == &routes[3]);
    CHECK(longest_match(routes, address("2001:db8:2::2")) == &routes[1]);
    CHECK(longest_match(routes, address("2001:db9::1")) == &routes[0]);
    CHECK(longest_match(routes, address("192.0.2.1")) == nullptr);  // a v6 default never takes v4
    CHECK_FALSE(in_network(address("2001:db8:1::1"), address("2001:db8:1::"), 128));
    CHECK(in_network(address("2001:db8:1::"), address("2001:db8:1::"), 128));
}

TEST_CASE("IPv6 through the router: the hop limit goes down by one, every checksum computed anew", "[sim][router][ipv6]") {
    const Simulator sim = story("dual-stack");
    const auto is_v6_udp = [](const SeenPacket& p) { return p.decoded.ip.family() == IpFamily::v6 && p.decoded.udp; };
    const auto sent = packets(sim, trace::PacketKind::sent, "client");
    const auto first = std::find_if(sent.begin(), sent.end(), is_v6_udp);
    REQUIRE(first != sent.end());
    CHECK(first->decoded.ip.ttl == 64);  // Linux's default hop limit (net.ipv6.conf.*.hop_limit)
    const auto at_server = packets(sim, trace::PacketKind::delivered, "server");
    const auto arrived = std::find_if(at_server.begin(), at_server.end(), [&](const SeenPacket& p) {
        return is_v6_udp(p) && p.decoded.source() == first->decoded.source();
    });
    REQUIRE(arrived != at_server.end());
    CHECK(arrived->decoded.ip.ttl == 63);  // RFC 8200 3
    CHECK(arrived->event.from_host == "router");
    std::size_t v6_forwarded = 0;
    for (const auto& p : packets(sim, trace::PacketKind::sent, "router")) {
        CAPTURE(p.decoded.summary());
        REQUIRE(p.decoded.transport_checksum);  // TCP, UDP and ICMPv6 all carry one over the pseudo-header
        CHECK(checksums_good(p.decoded));
        if (p.decoded.ip.family() == IpFamily::v6) ++v6_forwarded;
    }
    CHECK(v6_forwarded > 0);
}

TEST_CASE("hop limit 1 ends at the router: ICMPv6 time exceeded from the router's near address", "[sim][router][ipv6][icmp]") {
    const Simulator sim = story("dual-stack");
    const auto drops = packets(sim, trace::PacketKind::dropped, "router");
    const auto expired = std::find_if(drops.begin(), drops.end(), [](const SeenPacket& p) {
        return p.event.cause == trace::DropCause::ttl_exceeded;
    });
    REQUIRE(expired != drops.end());
    CHECK(expired->decoded.ip.family() == IpFamily::v6);
    CHECK(expired->decoded.ip.ttl == 1);
    std::vector<SeenPacket> from_router;
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "client"))
        if (p.decoded.icmp && p.decoded.ip.source == address("2001:db8:1::2")) from_router.push_back(p);
    REQUIRE(from_router.size() == 1);
    const DecodedPacket& icmp = from_router.front().decoded;
    CHECK(icmp.ip_protocol == 58);  // ICMPv6, not ICMP
    CHECK(icmp.icmp->type == 3);    // time exceeded (RFC 4443 3.3)
    CHECK(icmp.icmp->code == 0);    // hop limit exceeded in transit
    CHECK(checksums_good(icmp));
    CHECK(icmp.icmp->quoted_ip->source == address("2001:db8:1::1"));
    CHECK(icmp.icmp->quoted_destination_port == Port{9});
}

TEST_CASE("a closed UDP port behind the router: ICMPv6 port unreachable from the server, and ECONNREFUSED", "[sim][router][ipv6][icmp]") {
    const Simulator sim = story("dual-stack");
    std::vector<DecodedPacket> unreachable;
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "client"))
        if (p.decoded.icmp && p.decoded.ip.source == address("2001:db8:2::2")) unreachable.push_back(p.decoded);
    REQUIRE(unreachable.size() == 1);
    CHECK(unreachable[0].icmp->type == 1);  // destination unreachable (RFC 4443 3.1)
    CHECK(unreachable[0].icmp->code == 4);  // port unreachable
    CHECK(unreachable[0].ip.ttl == 63);     // it crossed the router too
    CHECK(checksums_good(unreachable[0]));
    // icmpv6_err_convert: port unreachable is fatal, ECONNREFUSED, as ICMPv4's type 3 code 3.
    const auto errors = errors_of(sim, "client");
    CHECK(std::count(errors.begin(), errors.end(), "recv ECONNREFUSED") == 1);
}

TEST_CASE("an IPv6 address nobody has, and a network the router has no route to, bring ICMPv6 unreachable from the router",
          "[sim][router][ipv6][icmp]") {
    Simulator sim;
    const HostId client = sim.add_host("client", {address("2001:db8:1::1")}, HostOptions{"client", {}, 1024});
    const HostId router = sim.add_router("router", {{address("2001:db8:1::2"), 64}, {address("2001:db8:2::1"), 64}});
    const HostId server = sim.add_host("server", {address("2001:db8:2::2")}, HostOptions{"server", {}, 1024});
    sim.set_network(client, 64, address("2001:db8:1::2"));
    sim.set_network(server, 64, address("2001:db8:2::1"));
    sim.set_link(client, router, LinkConfig{1 * milliseconds, 0.0, {}});
    sim.set_link(router, server, LinkConfig{1 * milliseconds, 0.0, {}});
    // The address nobody has waits for neighbour discovery to fail (3 solicitations, 1 s apart).
    for (const char* to : {"[2001:db8:2::99]:9000", "[2001:db8:3::1]:9000"}) {
        const SocketRef s = sim.socket(client, Protocol::udp, IpFamily::v6).value();
        REQUIRE(sim.connect(s, endpoint(to)));
        REQUIRE(sim.send(s, Bytes{'?'}));
        sim.run_for(3100 * milliseconds);
    }
    std::vector<std::uint8_t> codes;
    for (const auto& p : packets(sim, trace::PacketKind::delivered, "client")) {
        REQUIRE(p.decoded.icmp);
        CHECK(p.decoded.ip.source == address("2001:db8:1::2"));
        CHECK(p.decoded.icmp->type == 1);
        CHECK(checksums_good(p.decoded));
        codes.push_back(p.decoded.icmp->code);
    }
    // RFC 4443 3.1: 3 address unreachable (no neighbour answered), 0 no route to destination.
    CHECK(codes == std::vector<std::uint8_t>{3, 0});
}
