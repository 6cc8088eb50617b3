#pragma once
// A host's input firewall: ordered rules of the hub's type (portlab/firewall_rule.hpp),
// first match wins, else the policy. It evaluates them the way an nftables input chain of
// stateless rules does; what each action makes a scanner see is in portlab/scan.hpp.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

// A rule with the id the trace names it by ("r1"): a dropped packet's `rule_id`.
struct NamedRule {
    std::string id;
    FirewallRule rule;
    friend bool operator==(const NamedRule&, const NamedRule&) = default;
};

struct Firewall {
    std::vector<NamedRule> input;  // in order; first match wins
    FirewallAction policy = FirewallAction::accept;
    std::uint32_t next_rule_number = 1;  // ids "r1", "r2", ... per host, never reused
    friend bool operator==(const Firewall&, const Firewall&) = default;
};

// The id a dropped packet names when the chain's policy, not a rule, decided.
inline constexpr std::string_view policy_rule_id = "policy";

// Why this input chain cannot evaluate `rule`, if it cannot: it models stateless input-chain
// rules (protocol, addresses, ports) and nothing else, so a rule for the forward chain, or one
// with iifname, ct state or tcp flags, is refused rather than evaluated without that field.
// (Lab 18's forward chain is modelled as a whole: Simulator::set_stateful_firewall.)
[[nodiscard]] Result<void> input_chain_models(const FirewallRule& rule);

[[nodiscard]] bool matches(const FirewallRule& rule, const PacketMatch& packet) noexcept;

struct FirewallVerdict {
    FirewallAction action = FirewallAction::accept;
    std::optional<std::size_t> rule_index;  // nullopt: the policy decided
    RejectWith reject_with = RejectWith::nft_default;
};

[[nodiscard]] FirewallVerdict evaluate(const Firewall& firewall, const PacketMatch& packet) noexcept;

}  // namespace portlab::sim
