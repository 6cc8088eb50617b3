// Routes and connection tracking as data (router.hpp).
#include "portlab/sim/router.hpp"

#include <algorithm>

namespace portlab::sim {

bool in_network(const IpAddress& address, const IpAddress& network, std::uint8_t prefix_length) noexcept {
    if (address.family() != network.family()) return false;
    const auto a = address.bytes();
    const auto n = network.bytes();
    std::size_t bits = prefix_length;
    for (std::size_t i = 0; i < a.size() && bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8u : static_cast<unsigned>(bits);
        const auto mask = static_cast<std::uint8_t>(0xFF << (8 - take));
        if ((a[i] & mask) != (n[i] & mask)) return false;
        bits -= take;
    }
    return true;
}

const Route* longest_match(const std::vector<Route>& routes, const IpAddress& destination) noexcept {
    const Route* best = nullptr;
    for (const Route& route : routes)
        if (in_network(destination, route.network, route.prefix_length) &&
            (best == nullptr || route.prefix_length > best->prefix_length))
            best = &route;
    return best;
}

std::string interface_name(const std::vector<IpAddress>& addresses, const IpAddress& address) {
    const auto found = std::find(addresses.begin(), addresses.end(), address);
    return "eth" + std::to_string(found - addresses.begin());
}

std::vector<NamedRule> stateful_chain(const std::vector<IpAddress>& addresses, const IpAddress& outside,
                                      FirewallAction new_from_outside) {
    const auto rule = [](std::optional<std::string> interface, CtState state, FirewallAction action) {
        FirewallRule r;
        r.chain = FirewallChain::forward;
        r.in_interface = std::move(interface);
        r.ct_states = CtStates{}.with(state);
        r.action = action;
        return r;
    };
    std::vector<NamedRule> chain;
    FirewallRule replies = rule(std::nullopt, CtState::established, FirewallAction::accept);
    replies.ct_states = replies.ct_states->with(CtState::related);
    chain.push_back({"replies", replies});
    const std::string out = interface_name(addresses, outside);
    std::vector<std::string> inside;
    for (const IpAddress& address : addresses)
        if (address != outside) inside.push_back(interface_name(addresses, address));
    for (const std::string& name : inside)
        chain.push_back({inside.size() == 1 ? "new from inside" : "new from " + name,
                         rule(name, CtState::new_connection, FirewallAction::accept)});
    FirewallRule keep_out = rule(out, CtState::new_connection, new_from_outside);
    // nft's reject in a forward chain: ICMP destination unreachable, "communication
    // administratively prohibited" (RFC 1812 5.2.7.1), for IPv4 and IPv6 alike (icmpx).
    if (new_from_outside == FirewallAction::reject) keep_out.reject_with = RejectWith::icmp_admin_prohibited;
    chain.push_back({"new from outside", keep_out});
    chain.push_back({"invalid from outside", rule(out, CtState::invalid, FirewallAction::drop)});
    return chain;
}

std::optional<std::size_t> first_match(const std::vector<NamedRule>& chain, CtState state, std::string_view interface) {
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const FirewallRule& rule = chain[i].rule;
        if (rule.ct_states && !rule.ct_states->contains(state)) continue;
        if (rule.in_interface && *rule.in_interface != interface) continue;
        return i;
    }
    return std::nullopt;
}

Routing::Match Routing::find(Protocol protocol, const trace::Flow& flow) {
    for (ConntrackEntry& entry : conntrack) {
        if (entry.protocol != protocol) continue;
        if (entry.original == flow) return {&entry, false};
        if (entry.reply == flow) return {&entry, true};
    }
    return {};
}

bool Routing::reply_taken(Protocol protocol, const trace::Flow& reply) const {
    for (const ConntrackEntry& entry : conntrack)
        if (entry.protocol == protocol && entry.reply == reply) return true;
    return false;
}

}  // namespace portlab::sim
