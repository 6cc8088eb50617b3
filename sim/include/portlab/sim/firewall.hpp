#pragma once
// A host's input firewall: ordered rules, first match wins, else the policy.
// Matches what an nftables/iptables INPUT chain of stateless rules does; the
// actions are what nmap's port states are defined against:
//   accept  the packet goes on to the host's stack;
//   drop    silence (nmap: filtered / open|filtered);
//   reject  an answer: TCP RST ("reject with tcp reset") or ICMP destination
//           unreachable (port unreachable, or administratively prohibited,
//           RFC 1812 5.2.7.1 code 13).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/ports.hpp"

namespace portlab::sim {

enum class FirewallAction : std::uint8_t { accept, drop, reject };

enum class RejectWith : std::uint8_t {
    automatic,              // TCP reset for TCP, ICMP port unreachable for UDP (nftables' plain "reject" for TCP is ICMP; see docs/sim.md)
    tcp_reset,              // nft: reject with tcp reset
    icmp_port_unreachable,  // nft: reject with icmp type port-unreachable (iptables REJECT's default)
    icmp_admin_prohibited,  // nft: reject with icmp type admin-prohibited
};

struct FirewallRule {
    FirewallAction action = FirewallAction::accept;
    RejectWith reject_with = RejectWith::automatic;
    std::optional<Protocol> protocol;
    std::optional<IpAddress> source;
    std::optional<IpAddress> destination;
    std::optional<PortRange> source_ports;
    std::optional<PortRange> destination_ports;

    // nft-like text: "DROP tcp dport 22", "REJECT udp dport 9000 with icmp port-unreachable"
    [[nodiscard]] std::string label() const;
    friend bool operator==(const FirewallRule&, const FirewallRule&) = default;
};

// What the firewall sees of a packet. ICMP errors are matched by protocol only:
// a rule with a protocol never matches them (they are "related" traffic).
struct PacketMatch {
    std::optional<Protocol> protocol;
    IpAddress source;
    IpAddress destination;
    Port source_port = 0;
    Port destination_port = 0;
};

struct Firewall {
    std::vector<FirewallRule> input;  // in order; first match wins
    FirewallAction policy = FirewallAction::accept;
    friend bool operator==(const Firewall&, const Firewall&) = default;
};

[[nodiscard]] bool matches(const FirewallRule& rule, const PacketMatch& packet) noexcept;

struct Verdict {
    FirewallAction action = FirewallAction::accept;
    std::optional<std::size_t> rule_index;  // nullopt: the policy decided
    RejectWith reject_with = RejectWith::automatic;
};

[[nodiscard]] Verdict evaluate(const Firewall& firewall, const PacketMatch& packet) noexcept;

// Shorthands for scenarios and tests.
[[nodiscard]] FirewallRule drop_port(Protocol protocol, Port port);
[[nodiscard]] FirewallRule reject_port(Protocol protocol, Port port, RejectWith with = RejectWith::automatic);
[[nodiscard]] FirewallRule accept_port(Protocol protocol, Port port);
[[nodiscard]] FirewallRule drop_all();

}  // namespace portlab::sim
