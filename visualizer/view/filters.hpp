#pragma once
// Which events the event list shows (by protocol, kind and host), and "jump to
// the next event of this kind".

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

struct EventFilter {
    bool tcp = true;
    bool udp = true;
    bool other = true;  // events with no transport protocol: notes, ICMP, sockets the trace never introduced
    std::array<bool, replay::event_kind_count> kinds = all_kinds();
    std::string host;  // empty: every host

    [[nodiscard]] static constexpr std::array<bool, replay::event_kind_count> all_kinds() {
        std::array<bool, replay::event_kind_count> all{};
        for (auto& on : all) on = true;
        return all;
    }
    [[nodiscard]] bool allows_everything() const noexcept;
    [[nodiscard]] bool allows(const replay::Timeline& timeline, std::size_t index) const;
    friend bool operator==(const EventFilter&, const EventFilter&) = default;
};

// Indices of the events the filter allows, ascending.
[[nodiscard]] std::vector<std::size_t> filter_events(const replay::Timeline& timeline, const EventFilter& filter);

// The first event of `kind` at index >= from, or the last at index <= from.
[[nodiscard]] std::optional<std::size_t> next_of_kind(const replay::Timeline& timeline, std::size_t from,
                                                      replay::EventKind kind);
[[nodiscard]] std::optional<std::size_t> previous_of_kind(const replay::Timeline& timeline, std::size_t from,
                                                          replay::EventKind kind);

// The event list's "event" column: the kind, and a packet's label ("packet_sent SYN-ACK").
[[nodiscard]] std::string event_column_text(const replay::Timeline& timeline, std::size_t index);
// Every text that column can show: it is sized for the widest of them once, so a row
// scrolled in later is never cut (ImGui sizes a column to the rows it has drawn).
[[nodiscard]] const std::vector<std::string>& event_column_texts();

}  // namespace portlab::viz
