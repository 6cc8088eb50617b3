#pragma once
// A discrete-event queue in the shape of ns-3's scheduler (Schedule / Cancel / Now),
// without its global singleton: the queue is a value, and so is every scheduled
// payload, so a snapshot of the simulator is a plain copy.
//
// Invariant: events come out in (time, insertion order), so two events scheduled
// for the same virtual time run first-in first-out (ns-3 gives the same guarantee).

#include <algorithm>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

namespace portlab::sim {

// Virtual time in microseconds since the start of a run; no clock is ever read.
using Time = std::uint64_t;

inline constexpr Time microseconds = 1;
inline constexpr Time milliseconds = 1000;
inline constexpr Time seconds = 1000 * 1000;

// Names one scheduled event, so it can be cancelled. Never reused within a queue.
struct EventId {
    std::uint64_t value = 0;
    friend auto operator<=>(const EventId&, const EventId&) = default;
};

template <class Payload>
class EventQueue {
public:
    struct Entry {
        Time at = 0;
        EventId id;  // ids increase with insertion, so they also break ties FIFO
        Payload payload;
        friend bool operator==(const Entry&, const Entry&) = default;
    };

    // Schedules `payload` at absolute time `at`.
    EventId schedule_at(Time at, Payload payload) {
        const EventId id{next_id_++};
        heap_.push_back(Entry{at, id, std::move(payload)});
        pending_.insert(id.value);
        std::push_heap(heap_.begin(), heap_.end(), later);
        return id;
    }

    // Cancels a pending event; cancelling one that already ran (or twice) is harmless.
    // The entry stays in the heap and is skipped when it reaches the top.
    void cancel(EventId id) {
        if (pending_.erase(id.value) == 1) cancelled_.insert(id.value);
        if (cancelled_.size() > 64 && cancelled_.size() * 2 > heap_.size()) compact();
    }

    [[nodiscard]] bool empty() const noexcept { return heap_.size() == cancelled_.size(); }
    [[nodiscard]] std::size_t size() const noexcept { return heap_.size() - cancelled_.size(); }

    // When the next live event is due.
    [[nodiscard]] std::optional<Time> next_time() {
        drop_cancelled_top();
        if (heap_.empty()) return std::nullopt;
        return heap_.front().at;
    }

    // Removes and returns the next live event.
    [[nodiscard]] std::optional<Entry> pop() {
        drop_cancelled_top();
        if (heap_.empty()) return std::nullopt;
        std::pop_heap(heap_.begin(), heap_.end(), later);
        Entry entry = std::move(heap_.back());
        heap_.pop_back();
        pending_.erase(entry.id.value);
        return entry;
    }

    // Every live event, in no particular order (a viewer sorts what it shows).
    template <class Visit>
    void for_each_pending(Visit&& visit) const {
        for (const Entry& entry : heap_)
            if (!cancelled_.contains(entry.id.value)) visit(entry);
    }

    friend bool operator==(const EventQueue& a, const EventQueue& b) {
        return a.next_id_ == b.next_id_ && a.live_sorted() == b.live_sorted();
    }

private:
    static bool later(const Entry& a, const Entry& b) noexcept {
        return a.at != b.at ? a.at > b.at : a.id.value > b.id.value;
    }
    void drop_cancelled_top() {
        while (!heap_.empty() && !cancelled_.empty()) {
            const auto found = cancelled_.find(heap_.front().id.value);
            if (found == cancelled_.end()) return;
            cancelled_.erase(found);
            std::pop_heap(heap_.begin(), heap_.end(), later);
            heap_.pop_back();
        }
    }
    // Drops every cancelled entry at once, so timers that are set and cancelled again
    // and again (a retransmission timer per segment) cost amortised O(log n), not memory.
    void compact() {
        std::erase_if(heap_, [this](const Entry& e) { return cancelled_.contains(e.id.value); });
        std::make_heap(heap_.begin(), heap_.end(), later);
        cancelled_.clear();
    }
    [[nodiscard]] std::vector<Entry> live_sorted() const {
        std::vector<Entry> live;
        for_each_pending([&](const Entry& e) { live.push_back(e); });
        std::sort(live.begin(), live.end(), [](const Entry& a, const Entry& b) { return later(b, a); });
        return live;
    }

    std::vector<Entry> heap_;                    // a binary min-heap on (at, id)
    std::unordered_set<std::uint64_t> pending_;    // ids in heap_ not cancelled
    std::unordered_set<std::uint64_t> cancelled_;  // ids still in heap_ but cancelled
    std::uint64_t next_id_ = 1;                  // 0 is "no event"
};

}  // namespace portlab::sim
