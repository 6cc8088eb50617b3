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
#include <utility>
#include <vector>

namespace portlab::sim {

// Virtual time in microseconds since the start of a run; no clock is ever read.
using Time = std::uint64_t;

inline constexpr Time microseconds = 1;
inline constexpr Time milliseconds = 1000;
inline constexpr Time seconds = 1000 * 1000;

// Names one scheduled event, so it can be cancelled. `value` is never reused within a
// queue (it also orders same-time events FIFO); `slot` says where the payload waits,
// so cancel() is a lookup, not a search.
struct EventId {
    std::uint64_t value = 0;  // 0 = no event
    std::uint32_t slot = 0;
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
        std::uint32_t slot = 0;
        if (!free_slots_.empty()) {
            slot = free_slots_.back();
            free_slots_.pop_back();
        } else {
            slot = static_cast<std::uint32_t>(slots_.size());
            slots_.emplace_back();
        }
        const EventId id{next_id_++, slot};
        slots_[slot].id = id.value;
        slots_[slot].payload = std::move(payload);
        heap_.push_back(Key{at, id.value, slot});
        std::push_heap(heap_.begin(), heap_.end(), later);
        ++live_;
        return id;
    }

    // Cancels a pending event; cancelling one that already ran (or twice) is harmless.
    // The payload goes at once; its key stays in the heap, is skipped when it reaches
    // the top, and is swept out when stale keys outnumber live ones, so timers that
    // are set and cancelled again and again (one per segment) cost amortised
    // O(log n) and no memory.
    void cancel(EventId id) {
        if (id.value == 0 || id.slot >= slots_.size() || slots_[id.slot].id != id.value) return;
        release(id.slot);
        if (heap_.size() > 64 && (heap_.size() - live_) * 2 > heap_.size()) compact();
    }

    [[nodiscard]] bool empty() const noexcept { return live_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return live_; }

    // When the next live event is due.
    [[nodiscard]] std::optional<Time> next_time() {
        drop_stale_top();
        if (heap_.empty()) return std::nullopt;
        return heap_.front().at;
    }

    // Removes and returns the next live event.
    [[nodiscard]] std::optional<Entry> pop() {
        drop_stale_top();
        if (heap_.empty()) return std::nullopt;
        std::pop_heap(heap_.begin(), heap_.end(), later);
        const Key key = heap_.back();
        heap_.pop_back();
        Entry entry{key.at, EventId{key.id, key.slot}, std::move(slots_[key.slot].payload)};
        release(key.slot);
        return entry;
    }

    // Every live event, in no particular order (a viewer sorts what it shows).
    template <class Visit>
    void for_each_pending(Visit&& visit) const {
        for (const Key& key : heap_) {
            if (!is_live(key)) continue;
            const Entry entry{key.at, EventId{key.id, key.slot}, slots_[key.slot].payload};
            visit(entry);
        }
    }

    friend bool operator==(const EventQueue& a, const EventQueue& b) {
        return a.next_id_ == b.next_id_ && a.live_sorted() == b.live_sorted();
    }

private:
    // What the heap orders: small, so sifting moves 24 bytes, not a packet.
    struct Key {
        Time at = 0;
        std::uint64_t id = 0;
        std::uint32_t slot = 0;
    };
    struct Slot {
        std::uint64_t id = 0;  // the event waiting here; 0 = free
        Payload payload{};
    };

    static bool later(const Key& a, const Key& b) noexcept { return a.at != b.at ? a.at > b.at : a.id > b.id; }
    [[nodiscard]] bool is_live(const Key& key) const noexcept { return slots_[key.slot].id == key.id; }
    void release(std::uint32_t slot) {
        slots_[slot].id = 0;
        slots_[slot].payload = Payload{};
        free_slots_.push_back(slot);
        --live_;
    }
    void drop_stale_top() {
        while (!heap_.empty() && !is_live(heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), later);
            heap_.pop_back();
        }
    }
    void compact() {
        std::erase_if(heap_, [this](const Key& key) { return !is_live(key); });
        std::make_heap(heap_.begin(), heap_.end(), later);
    }
    [[nodiscard]] std::vector<Entry> live_sorted() const {
        std::vector<Entry> live;
        for_each_pending([&](const Entry& e) { live.push_back(e); });
        std::sort(live.begin(), live.end(),
                  [](const Entry& a, const Entry& b) { return a.at != b.at ? a.at < b.at : a.id.value < b.id.value; });
        return live;
    }

    std::vector<Key> heap_;                   // a binary min-heap on (at, id); may hold stale keys
    std::vector<Slot> slots_;                 // payloads, by EventId::slot
    std::vector<std::uint32_t> free_slots_;   // slots to reuse, last freed first
    std::size_t live_ = 0;                    // keys in heap_ whose slot still holds their event
    std::uint64_t next_id_ = 1;               // 0 is "no event"
};

}  // namespace portlab::sim
