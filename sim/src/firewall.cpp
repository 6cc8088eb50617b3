#include "portlab/sim/firewall.hpp"

namespace portlab::sim {

namespace {
std::string action_name(FirewallAction action) {
    switch (action) {
        case FirewallAction::accept: return "ACCEPT";
        case FirewallAction::drop: return "DROP";
        case FirewallAction::reject: return "REJECT";
    }
    return "ACCEPT";
}
std::string ports_text(PortRange range) {
    return range.low == range.high ? std::to_string(range.low) : range.to_string();
}
}  // namespace

std::string FirewallRule::label() const {
    std::string text = action_name(action);
    if (protocol) text += " " + std::string(to_string(*protocol));
    if (source) text += " saddr " + source->to_string();
    if (destination) text += " daddr " + destination->to_string();
    if (source_ports) text += " sport " + ports_text(*source_ports);
    if (destination_ports) text += " dport " + ports_text(*destination_ports);
    if (!protocol && !source && !destination && !source_ports && !destination_ports) text += " all";
    if (action == FirewallAction::reject) {
        switch (reject_with) {
            case RejectWith::automatic: break;
            case RejectWith::tcp_reset: text += " with tcp reset"; break;
            case RejectWith::icmp_port_unreachable: text += " with icmp port-unreachable"; break;
            case RejectWith::icmp_admin_prohibited: text += " with icmp admin-prohibited"; break;
        }
    }
    return text;
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

Verdict evaluate(const Firewall& firewall, const PacketMatch& packet) noexcept {
    for (std::size_t i = 0; i < firewall.input.size(); ++i) {
        const FirewallRule& rule = firewall.input[i];
        if (matches(rule, packet)) return Verdict{rule.action, i, rule.reject_with};
    }
    return Verdict{firewall.policy, std::nullopt, RejectWith::automatic};
}

FirewallRule drop_port(Protocol protocol, Port port) {
    FirewallRule rule;
    rule.action = FirewallAction::drop;
    rule.protocol = protocol;
    rule.destination_ports = PortRange{port, port};
    return rule;
}

FirewallRule reject_port(Protocol protocol, Port port, RejectWith with) {
    FirewallRule rule = drop_port(protocol, port);
    rule.action = FirewallAction::reject;
    rule.reject_with = with;
    return rule;
}

FirewallRule accept_port(Protocol protocol, Port port) {
    FirewallRule rule = drop_port(protocol, port);
    rule.action = FirewallAction::accept;
    return rule;
}

FirewallRule drop_all() {
    FirewallRule rule;
    rule.action = FirewallAction::drop;
    return rule;
}

}  // namespace portlab::sim
