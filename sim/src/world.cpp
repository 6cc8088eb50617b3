#include "portlab/sim/world.hpp"

#include <algorithm>

namespace portlab::sim {

std::vector<const Socket*> Host::sockets() const {
    std::vector<const Socket*> live;
    live.reserve(slot_of.size());
    slot_of.for_each([&](std::uint32_t, std::uint32_t slot) { live.push_back(&slots[slot]); });
    std::sort(live.begin(), live.end(), [](const Socket* a, const Socket* b) { return a->id < b->id; });
    return live;
}

const Socket* World::socket(SocketRef ref) const {
    const Host* h = host(ref.host);
    return h == nullptr ? nullptr : h->find(ref.id);
}

std::optional<HostId> World::find_host(std::string_view name) const {
    for (std::size_t i = 0; i < hosts.size(); ++i)
        if (hosts[i].name == name) return HostId{static_cast<std::uint32_t>(i)};
    return std::nullopt;
}

const LinkConfig& World::link(HostId a, HostId b) const {
    if (a == b) return loopback;
    const auto key = std::minmax(a.value, b.value);
    const auto found = links.find({key.first, key.second});
    return found == links.end() ? default_link : found->second;
}

}  // namespace portlab::sim
