// Routes and connection tracking as data (router.hpp).
#include "portlab/sim/router.hpp"

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
