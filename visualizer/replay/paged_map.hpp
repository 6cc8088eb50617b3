#pragma once
// A host's sockets by id, for a world that is copied often: a timeline keeps a
// copy of the world every few thousand events (its checkpoints), and a viewer
// copies one on every seek. A std::map copies every socket each time: at 20,000
// live sockets, 77 checkpoints of a million-event trace were 1.5M socket copies,
// ~270 MB of the peak memory and a tenth of the load's CPU (issue 13, bench/RESULTS.md).
//
// Writers hand out socket ids from a counter per host (the simulator's
// next_socket_id, the lab kit's next_socket), so live ids fall into pages of 32
// consecutive ids. A copy of the map copies one handle per page and shares the
// pages; a page is copied only when a map that shares it changes one of its
// sockets (copy on write). A checkpoint of that world is ~600 handles a host, and
// what the checkpoints hold beyond one world is the pages that changed between them.
// Ids scattered far apart still work, a page each, only without the sharing's gain.
//
// Reads are a std::map's: ascending ids, entries std::pair<SocketId, Value>,
// find/end/size/empty, so the viewer's loops over `host.sockets` read as before.
// Changes go through the three calls State uses (find_to_change, insert_or_assign,
// erase). One map is used by one thread at a time, as a std::map; copies of it may
// live on other threads (a loader hands checkpoints to the window).

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#include "portlab/trace.hpp"

namespace portlab::replay {

template <class Value>
class PagedMap {
public:
    using key_type = trace::SocketId;
    using value_type = std::pair<trace::SocketId, Value>;

private:
    struct Page {
        std::vector<value_type> entries;  // ascending ids, never empty while a map holds the page
        std::atomic<std::uint32_t> owners{1};
    };

    // One map's hold on a page: copying it shares the page (counted, atomic because a
    // copy may be released on another thread), changing it copies the page first if
    // another map holds it too.
    class PageHandle {
    public:
        PageHandle() : page_(new Page{}) {}
        PageHandle(const PageHandle& other) noexcept : page_(other.page_) {
            if (page_ != nullptr) page_->owners.fetch_add(1, std::memory_order_relaxed);
        }
        PageHandle(PageHandle&& other) noexcept : page_(std::exchange(other.page_, nullptr)) {}
        PageHandle& operator=(PageHandle other) noexcept {
            std::swap(page_, other.page_);
            return *this;
        }
        ~PageHandle() {
            // acq_rel: the last owner sees every other owner's reads done before it frees.
            if (page_ != nullptr && page_->owners.fetch_sub(1, std::memory_order_acq_rel) == 1) delete page_;
        }
        [[nodiscard]] const std::vector<value_type>& entries() const noexcept { return page_->entries; }
        [[nodiscard]] std::vector<value_type>& entries_to_change() {
            // acquire: when the other owners have let go, their reads come before this write.
            if (page_->owners.load(std::memory_order_acquire) != 1) *this = PageHandle(page_->entries);
            return page_->entries;
        }

    private:
        explicit PageHandle(const std::vector<value_type>& entries) : page_(new Page{entries}) {}
        Page* page_;
    };

    struct Slot {
        std::uint32_t number;  // ids number * 32 to number * 32 + 31
        PageHandle page;
    };

public:
    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = PagedMap::value_type;
        using difference_type = std::ptrdiff_t;
        using pointer = const value_type*;
        using reference = const value_type&;

        const_iterator() = default;
        reference operator*() const { return (*slots_)[slot_].page.entries()[entry_]; }
        pointer operator->() const { return &**this; }
        const_iterator& operator++() {
            if (++entry_ == (*slots_)[slot_].page.entries().size()) {
                ++slot_;
                entry_ = 0;
            }
            return *this;
        }
        const_iterator operator++(int) {
            const_iterator before = *this;
            ++*this;
            return before;
        }
        friend bool operator==(const const_iterator& a, const const_iterator& b) noexcept {
            return a.slot_ == b.slot_ && a.entry_ == b.entry_;
        }

    private:
        friend class PagedMap;
        const_iterator(const std::vector<Slot>* slots, std::size_t slot, std::size_t entry) : slots_(slots), slot_(slot), entry_(entry) {}
        const std::vector<Slot>* slots_ = nullptr;
        std::size_t slot_ = 0;   // slots_->size() at the end
        std::size_t entry_ = 0;  // within the slot's page
    };
    using iterator = const_iterator;

    PagedMap() = default;
    PagedMap(const PagedMap&) = default;  // shares every page
    PagedMap& operator=(const PagedMap&) = default;
    // A map moved from is empty, as a std::map moved from is in practice.
    PagedMap(PagedMap&& other) noexcept : slots_(std::exchange(other.slots_, {})), size_(std::exchange(other.size_, 0)) {}
    PagedMap& operator=(PagedMap&& other) noexcept {
        slots_ = std::exchange(other.slots_, {});
        size_ = std::exchange(other.size_, 0);
        return *this;
    }
    ~PagedMap() = default;

    [[nodiscard]] const_iterator begin() const noexcept { return {&slots_, 0, 0}; }
    [[nodiscard]] const_iterator end() const noexcept { return {&slots_, slots_.size(), 0}; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] bool contains(key_type id) const { return find(id) != end(); }
    [[nodiscard]] std::size_t count(key_type id) const { return contains(id) ? 1 : 0; }

    [[nodiscard]] const_iterator find(key_type id) const {
        const std::size_t slot = slot_of(id);
        if (slot == slots_.size()) return end();
        const auto& entries = slots_[slot].page.entries();
        const auto found = entry_in(entries, id);
        if (found == entries.end()) return end();
        return {&slots_, slot, static_cast<std::size_t>(found - entries.begin())};
    }

    // The value for `id`, this map's own (its page copied first if shared); nullptr when absent.
    [[nodiscard]] Value* find_to_change(key_type id) {
        const std::size_t slot = slot_of(id);
        if (slot == slots_.size() || entry_in(slots_[slot].page.entries(), id) == slots_[slot].page.entries().end()) return nullptr;
        auto& entries = slots_[slot].page.entries_to_change();
        return &entry_in(entries, id)->second;
    }

    // Sets the value for `id`; true when it is new.
    std::pair<Value*, bool> insert_or_assign(key_type id, Value value) {
        const std::uint32_t number = page_number(id);
        auto slot = std::lower_bound(slots_.begin(), slots_.end(), number, [](const Slot& s, std::uint32_t n) { return s.number < n; });
        if (slot == slots_.end() || slot->number != number) slot = slots_.insert(slot, Slot{number, PageHandle{}});
        auto& entries = slot->page.entries_to_change();
        auto at = std::lower_bound(entries.begin(), entries.end(), id, [](const value_type& e, key_type k) { return e.first < k; });
        if (at != entries.end() && at->first == id) {
            at->second = std::move(value);
            return {&at->second, false};
        }
        at = entries.insert(at, value_type{id, std::move(value)});
        ++size_;
        return {&at->second, true};
    }

    // Removes `id`; false when it was absent.
    bool erase(key_type id) {
        const std::size_t slot = slot_of(id);
        if (slot == slots_.size()) return false;
        const auto& shared = slots_[slot].page.entries();
        if (entry_in(shared, id) == shared.end()) return false;
        --size_;
        if (shared.size() == 1) {  // the page's last socket: drop the page, copying nothing
            slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(slot));
            return true;
        }
        auto& entries = slots_[slot].page.entries_to_change();
        entries.erase(entry_in(entries, id));
        return true;
    }

    friend bool operator==(const PagedMap& a, const PagedMap& b) {
        return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

private:
    static constexpr unsigned page_bits = 5;  // 32 ids a page
    static std::uint32_t page_number(key_type id) noexcept { return id.value >> page_bits; }

    // The index of the slot holding id's page, or slots_.size().
    [[nodiscard]] std::size_t slot_of(key_type id) const {
        const std::uint32_t number = page_number(id);
        const auto slot = std::lower_bound(slots_.begin(), slots_.end(), number, [](const Slot& s, std::uint32_t n) { return s.number < n; });
        return slot != slots_.end() && slot->number == number ? static_cast<std::size_t>(slot - slots_.begin()) : slots_.size();
    }

    template <class Entries>
    static auto entry_in(Entries& entries, key_type id) {
        const auto at = std::lower_bound(entries.begin(), entries.end(), id, [](const value_type& e, key_type k) { return e.first < k; });
        return at != entries.end() && at->first == id ? at : entries.end();
    }

    std::vector<Slot> slots_;  // ascending page numbers; no page empty
    std::size_t size_ = 0;
};

}  // namespace portlab::replay
