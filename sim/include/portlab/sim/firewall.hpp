#pragma once
// A host's input firewall: ordered rules of the hub's type (portlab/firewall_rule.hpp),
// first match wins, else the policy. It evaluates them the way an nftables input chain of
// stateless rules does; what each action makes a scanner see is in portlab/scan.hpp.

#include <cstddef>
#include <optional>
#include <vector>

#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"

namespace portlab::sim {

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

struct FirewallVerdict {
    FirewallAction action = FirewallAction::accept;
    std::optional<std::size_t> rule_index;  // nullopt: the policy decided
    RejectWith reject_with = RejectWith::nft_default;
};

[[nodiscard]] FirewallVerdict evaluate(const Firewall& firewall, const PacketMatch& packet) noexcept;

}  // namespace portlab::sim
