#include "view/filters.hpp"

#include <algorithm>

namespace portlab::viz {

bool EventFilter::allows_everything() const noexcept {
    return tcp && udp && other && host.empty() && std::all_of(kinds.begin(), kinds.end(), [](bool on) { return on; });
}

bool EventFilter::allows(const replay::Timeline& timeline, std::size_t index) const {
    if (index >= timeline.size()) return false;
    const auto& event = timeline.event(index);
    if (!kinds[static_cast<std::size_t>(replay::kind_of(event.body))]) return false;
    if (!host.empty() && event.host != host) return false;
    if (tcp && udp && other) return true;  // no need to decode packets
    const auto protocol = timeline.protocol_of(index);
    if (!protocol) return other;
    return *protocol == Protocol::tcp ? tcp : udp;
}

std::vector<std::size_t> filter_events(const replay::Timeline& timeline, const EventFilter& filter) {
    std::vector<std::size_t> indices;
    const bool all = filter.allows_everything();
    indices.reserve(all ? timeline.size() : 0);
    for (std::size_t i = 0; i < timeline.size(); ++i)
        if (all || filter.allows(timeline, i)) indices.push_back(i);
    return indices;
}

std::optional<std::size_t> next_of_kind(const replay::Timeline& timeline, std::size_t from, replay::EventKind kind) {
    for (std::size_t i = from; i < timeline.size(); ++i)
        if (replay::kind_of(timeline.event(i).body) == kind) return i;
    return std::nullopt;
}

std::optional<std::size_t> previous_of_kind(const replay::Timeline& timeline, std::size_t from,
                                            replay::EventKind kind) {
    if (timeline.size() == 0) return std::nullopt;
    for (std::size_t i = std::min(from, timeline.size() - 1) + 1; i-- > 0;)
        if (replay::kind_of(timeline.event(i).body) == kind) return i;
    return std::nullopt;
}

std::string event_column_text(const replay::Timeline& timeline, std::size_t index) {
    const std::string kind(to_string(replay::kind_of(timeline.event(index).body)));
    if (const auto* info = timeline.packet_info(index); info && info->decoded) return kind + " " + std::string(to_string(info->label));
    return kind;
}

const std::vector<std::string>& event_column_texts() {
    static const std::vector<std::string> texts = [] {
        std::vector<std::string> all;
        for (std::size_t k = 0; k < replay::event_kind_count; ++k) {
            const std::string kind(to_string(static_cast<replay::EventKind>(k)));
            all.push_back(kind);
            for (auto label = static_cast<std::uint8_t>(PacketLabel::syn); label <= static_cast<std::uint8_t>(PacketLabel::other); ++label)
                all.push_back(kind + " " + std::string(to_string(static_cast<PacketLabel>(label))));
        }
        return all;
    }();
    return texts;
}

}  // namespace portlab::viz
