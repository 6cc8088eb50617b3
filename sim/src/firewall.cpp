#include "portlab/sim/firewall.hpp"

namespace portlab::sim {

bool matches(const FirewallRule& rule, const PacketMatch& packet) noexcept {
    if (rule.protocol && rule.protocol != packet.protocol) return false;
    if (rule.source && *rule.source != packet.source) return false;
    if (rule.destination && *rule.destination != packet.destination) return false;
    const bool has_ports = packet.protocol.has_value();
    if (rule.source_ports && (!has_ports || !rule.source_ports->contains(packet.source_port))) return false;
    if (rule.destination_ports && (!has_ports || !rule.destination_ports->contains(packet.destination_port)))
        return false;
    return true;
}

FirewallVerdict evaluate(const Firewall& firewall, const PacketMatch& packet) noexcept {
    for (std::size_t i = 0; i < firewall.input.size(); ++i) {
        const FirewallRule& rule = firewall.input[i].rule;
        if (matches(rule, packet)) return FirewallVerdict{rule.action, i, rule.reject_with};
    }
    return FirewallVerdict{firewall.policy, std::nullopt, RejectWith::nft_default};
}

}  // namespace portlab::sim
