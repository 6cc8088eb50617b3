#include "portlab/sim/firewall.hpp"

namespace portlab::sim {

Result<void> input_chain_models(const FirewallRule& rule) {
    if (rule.chain != FirewallChain::input)
        return fail("the simulator's firewall rules go into the input chain; its forward chain is the stateful directive's");
    if (rule.in_interface) return fail("the simulator's input chain does not match iifname (its hosts know addresses, not interfaces)");
    if (rule.ct_states) return fail("the simulator's input chain does not track connections (no ct state); see the stateful directive");
    if (rule.tcp_flags) return fail("the simulator's input chain does not match tcp flags");
    return {};
}

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
