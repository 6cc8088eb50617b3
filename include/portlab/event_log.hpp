#pragma once
// A trace's events kept in chunks of a fixed size: growing adds a chunk and never
// moves, copies or frees the events already kept. A std::vector doubles instead:
// at 4.2 M events it held the old buffer and the new one, twice the trace, while it
// moved every event over (issue 13, bench/RESULTS.md "Simulator at scale"). Events are
// appended and read, never removed one by one: index, size, back, iteration.

#include <algorithm>
#include <compare>
#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "portlab/trace.hpp"

namespace portlab::trace {

class EventLog {
public:
    // 4,096 events of 112 bytes: 448 KiB a chunk, big enough that a chunk's bookkeeping
    // is nothing, small enough that a short run does not hold megabytes it never fills.
    static constexpr std::size_t chunk_shift = 12;
    static constexpr std::size_t chunk_events = std::size_t{1} << chunk_shift;

    class const_iterator {
    public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = Event;
        using difference_type = std::ptrdiff_t;
        using pointer = const Event*;
        using reference = const Event&;

        const_iterator() = default;
        const_iterator(const EventLog* log, std::size_t index) : log_(log), index_(index) {}
        reference operator*() const { return (*log_)[index_]; }
        pointer operator->() const { return &(*log_)[index_]; }
        reference operator[](difference_type n) const { return (*log_)[index_ + static_cast<std::size_t>(n)]; }
        const_iterator& operator++() { ++index_; return *this; }
        const_iterator operator++(int) { auto was = *this; ++index_; return was; }
        const_iterator& operator--() { --index_; return *this; }
        const_iterator operator--(int) { auto was = *this; --index_; return was; }
        const_iterator& operator+=(difference_type n) { index_ += static_cast<std::size_t>(n); return *this; }
        const_iterator& operator-=(difference_type n) { index_ -= static_cast<std::size_t>(n); return *this; }
        friend const_iterator operator+(const_iterator i, difference_type n) { return i += n; }
        friend const_iterator operator+(difference_type n, const_iterator i) { return i += n; }
        friend const_iterator operator-(const_iterator i, difference_type n) { return i -= n; }
        friend difference_type operator-(const const_iterator& a, const const_iterator& b) {
            return static_cast<difference_type>(a.index_) - static_cast<difference_type>(b.index_);
        }
        friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.index_ == b.index_; }
        friend auto operator<=>(const const_iterator& a, const const_iterator& b) { return a.index_ <=> b.index_; }

    private:
        const EventLog* log_ = nullptr;
        std::size_t index_ = 0;
    };

    EventLog() = default;
    EventLog(const EventLog& other) { append_all(other); }
    EventLog(EventLog&& other) noexcept : chunks_(std::move(other.chunks_)), size_(std::exchange(other.size_, 0)) {}
    EventLog& operator=(const EventLog& other) {
        if (this != &other) {
            clear();
            append_all(other);
        }
        return *this;
    }
    EventLog& operator=(EventLog&& other) noexcept {
        if (this != &other) {
            clear();
            chunks_ = std::move(other.chunks_);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    ~EventLog() { clear(); }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    // Only for index < size().
    [[nodiscard]] const Event& operator[](std::size_t index) const noexcept {
        return chunks_[index >> chunk_shift]->events[index & (chunk_events - 1)];
    }
    [[nodiscard]] const Event& front() const noexcept { return (*this)[0]; }
    [[nodiscard]] const Event& back() const noexcept { return (*this)[size_ - 1]; }
    [[nodiscard]] const_iterator begin() const noexcept { return {this, 0}; }
    [[nodiscard]] const_iterator end() const noexcept { return {this, size_}; }

    // Builds the event in its place at the end.
    template <class... Args>
    Event& emplace_back(Args&&... args) {
        const std::size_t slot = size_ & (chunk_events - 1);
        if (slot == 0 && (size_ >> chunk_shift) == chunks_.size()) chunks_.push_back(std::make_unique<Chunk>());
        Event* event = new (&chunks_[size_ >> chunk_shift]->events[slot]) Event{std::forward<Args>(args)...};
        ++size_;
        return *event;
    }
    void push_back(Event event) { emplace_back(std::move(event)); }
    // Forgets every event; keeps the first chunk for the events to come.
    void clear() noexcept {
        for (std::size_t i = 0; i < size_; ++i) std::destroy_at(&mutable_at(i));
        size_ = 0;
        if (chunks_.size() > 1) chunks_.resize(1);
    }

    [[nodiscard]] std::vector<Event> to_vector() const { return {begin(), end()}; }
    // For code that holds a trace as a vector (trace::Trace): a copy.
    operator std::vector<Event>() const { return to_vector(); }  // NOLINT

    friend bool operator==(const EventLog& a, const EventLog& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }
    friend bool operator==(const EventLog& a, const std::vector<Event>& b) {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

private:
    // Raw room for chunk_events events: an event is constructed only when appended.
    struct Chunk {
        union {
            Event events[chunk_events];
        };
        Chunk() {}   // NOLINT: leaves the events unconstructed
        ~Chunk() {}  // NOLINT: EventLog destroys the constructed ones
    };
    Event& mutable_at(std::size_t index) noexcept { return chunks_[index >> chunk_shift]->events[index & (chunk_events - 1)]; }
    void append_all(const EventLog& other) {
        for (const Event& event : other) emplace_back(event);
    }

    std::vector<std::unique_ptr<Chunk>> chunks_;
    std::size_t size_ = 0;
};

}  // namespace portlab::trace
