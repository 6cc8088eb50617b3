#pragma once
// What lies between hosts: routes, IP forwarding, connection tracking, NAT and a stateful
// forward chain, as plain data a host carries (Host::routing) and small pure functions the
// kernel calls (kernel_router.cpp does the forwarding itself). The shapes are Linux's:
//   routes          `ip route`: an on-link network, or a network via a gateway; the longest
//                   prefix wins (fib_table_lookup);
//   forwarding      net.ipv4.ip_forward = 1: a packet for another host is sent on, its TTL
//                   one less (RFC 1812 5.3.1);
//   conntrack       one entry per connection with two tuples, original and reply
//                   (nf_conntrack_tuple); a packet matching either belongs to it;
//   masquerade      `oifname OUT masquerade`: the source of a connection leaving through OUT
//                   becomes OUT's address, its port kept when free (nf_nat_core.c);
//   port forward    `tcp dport P dnat to A:Q` in prerouting;
//   stateful chain  lab 18's forward chain: established,related accept; new from inside
//                   accept; new (and invalid) from outside drop. Its rules are hub rules
//                   (FirewallChain::forward) the trace adds like any other; an interface is
//                   named "ethN" by its address's place among the router's (interface_name).
// A host without routes keeps the simulator's first model: every address is one hop away.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/sim/firewall.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

// One line of `ip route`: `NETWORK/PREFIX dev IF src SOURCE` (on-link: the destination is a
// neighbour) or `NETWORK/PREFIX via GATEWAY` (the packet goes to the gateway). A default
// route is 0.0.0.0/0. `source` is this host's address on the interface the route uses.
struct Route {
    IpAddress network;
    std::uint8_t prefix_length = 0;
    std::optional<IpAddress> gateway;  // none: on-link
    IpAddress source;                  // the interface's own address
    friend bool operator==(const Route&, const Route&) = default;
};

// An interface's address and the length of its network's prefix: 192.0.2.2/24.
struct Interface {
    IpAddress address;
    std::uint8_t prefix_length = 24;
    friend bool operator==(const Interface&, const Interface&) = default;
};

[[nodiscard]] bool in_network(const IpAddress& address, const IpAddress& network, std::uint8_t prefix_length) noexcept;
// The route for `destination`: the longest matching prefix, the first of equals.
[[nodiscard]] const Route* longest_match(const std::vector<Route>& routes, const IpAddress& destination) noexcept;

// `[iifname IF] tcp dport 8080 dnat to 192.0.2.80:80`: a packet to this port (for any
// address, as the rule has no `ip daddr`) goes to `to` instead; with `arriving_on`, only a
// packet that came in on the interface with that address (lab 17's `iifname`).
struct PortForward {
    Protocol protocol = Protocol::tcp;
    Port port = 0;
    Endpoint to;
    std::optional<IpAddress> arriving_on;
    friend bool operator==(const PortForward&, const PortForward&) = default;
};

// What the new-connection rules of lab 18's forward chain do to a connection started from
// outside: drop it (silence), or reject it (ICMP admin-prohibited, RFC 1812 5.2.7.1).
struct StatefulFirewall {
    IpAddress outside;  // the router's address on the outside interface
    FirewallAction new_from_outside = FirewallAction::drop;  // drop or reject
    std::vector<NamedRule> chain{};  // the rules in force (stateful_chain), as the trace named them
    friend bool operator==(const StatefulFirewall&, const StatefulFirewall&) = default;
};

// The name a router's interface has in the simulator's rules (`iifname "eth1"`): "eth" and the
// place of its address among the router's addresses, as `router` lists them, from 0. The
// simulator knows an interface by its address only, so an address is an interface.
[[nodiscard]] std::string interface_name(const std::vector<IpAddress>& addresses, const IpAddress& address);

// Lab 18's forward chain for a router with these addresses, `outside` one of them, in order:
//   "replies"               ct state established,related accept
//   "new from inside"       iifname "ethI" ct state new accept   (one per other address;
//                           named "new from ethI" when there are several)
//   "new from outside"      iifname "ethO" ct state new drop     (or reject with icmpx admin-prohibited)
//   "invalid from outside"  iifname "ethO" ct state invalid drop
// and policy drop. The ids are lab 18's rule comments.
[[nodiscard]] std::vector<NamedRule> stateful_chain(const std::vector<IpAddress>& addresses, const IpAddress& outside,
                                                    FirewallAction new_from_outside);

// The first rule of a forward chain that takes a packet in ct state `state` that came in on
// `interface` (rules of ct state and iifname only: what stateful_chain writes); none: the policy.
[[nodiscard]] std::optional<std::size_t> first_match(const std::vector<NamedRule>& chain, CtState state,
                                                     std::string_view interface);

// A connection-tracking entry. Every packet of the connection matches `original` (sent by
// the side that started it) or `reply` (sent by the other side); a translated packet takes
// the other tuple, reversed: that is the whole of NAT once the entry exists.
struct ConntrackEntry {
    std::uint32_t id = 0;
    Protocol protocol = Protocol::tcp;
    trace::Flow original;
    trace::Flow reply;
    bool seen_reply = false;  // IPS_SEEN_REPLY: ct state "established" from then on
    friend bool operator==(const ConntrackEntry&, const ConntrackEntry&) = default;
};

[[nodiscard]] inline trace::Flow reversed(const trace::Flow& flow) { return {flow.destination, flow.source}; }

struct Routing {
    std::vector<Route> routes;  // empty: the flat model, every address one hop away
    bool forwarding = false;    // net.ipv4.ip_forward
    std::optional<IpAddress> masquerade;          // masquerade connections that leave from this address
    std::vector<PortForward> port_forwards;
    std::optional<StatefulFirewall> stateful;
    std::vector<ConntrackEntry> conntrack;  // in creation order
    std::uint32_t next_conntrack_id = 1;
    friend bool operator==(const Routing&, const Routing&) = default;

    // The entry a packet of this protocol and flow belongs to, and whether it travels in
    // the reply direction.
    struct Match {
        ConntrackEntry* entry = nullptr;
        bool reply = false;
    };
    [[nodiscard]] Match find(Protocol protocol, const trace::Flow& flow);
    // Whether an entry's reply tuple is `reply` already (nf_nat_used_tuple).
    [[nodiscard]] bool reply_taken(Protocol protocol, const trace::Flow& reply) const;
};

// The source port masquerade gives a new connection, as Linux's nf_nat_l4proto_unique_tuple
// (net/netfilter/nf_nat_proto.c, 5.x and later) picks it: the client's own port when no
// entry's reply tuple uses it already (get_unique_tuple tries the original first); else,
// from a random 16-bit offset, min + offset % range, then the next ports, at most 128 tries
// a round, halving the tries with a new random offset each round. The range is the port's
// class: 1-511, 600-1023 or 1024-65535. nullopt: every try was taken (the kernel then fails
// the connection's first packet, and it is dropped).
// `random16` gives the random offsets (the model's seeded generator).
template <class Random16>
[[nodiscard]] std::optional<Port> masquerade_port(const Routing& routing, Protocol protocol, const trace::Flow& original,
                                                  const IpAddress& outside, Random16&& random16) {
    const auto reply_for = [&](Port port) {
        return trace::Flow{original.destination, Endpoint{outside, port}};
    };
    const Port wanted = original.source.port;
    if (!routing.reply_taken(protocol, reply_for(wanted))) return wanted;
    std::uint32_t min = 1024, range_size = 65535 - 1024 + 1;
    if (wanted < 512) {
        min = 1;
        range_size = 511;
    } else if (wanted < 1024) {
        min = 600;
        range_size = 1023 - 600 + 1;
    }
    std::uint32_t attempts = std::min<std::uint32_t>(range_size, 128);
    std::uint32_t offset = random16();
    for (;;) {
        for (std::uint32_t i = 0; i < attempts; ++i, ++offset) {
            const auto port = static_cast<Port>(min + offset % range_size);
            if (!routing.reply_taken(protocol, reply_for(port))) return port;
        }
        if (attempts >= range_size || attempts < 16) return std::nullopt;
        attempts /= 2;
        offset = random16();
    }
}

}  // namespace portlab::sim
