#pragma once
// A small open-addressing hash map for the model's hot tables (4-tuples, bind
// buckets, socket ids). Why not std::unordered_map: that allocates a node per
// entry and chases a pointer per lookup; with 28,000 live connections each connect
// and close paid for several of those (bench/RESULTS.md, "Simulator").
//
// Linear probing in one array, at most half full, with backward-shift deletion
// (Knuth 6.4 algorithm R), so there are no tombstones and a lookup never walks far.
// The slot comes from the top bits of hash * 2^64/phi (Fibonacci hashing), so even
// a weak hash spreads. A value type: copying it copies the table (a checkpoint), and
// == compares contents, not layout. Every operation is deterministic.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "portlab/net.hpp"

namespace portlab::sim {

// A 64-bit finaliser (SplitMix64's): every input bit affects every output bit.
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct IntegerHash {
    [[nodiscard]] std::uint64_t operator()(std::uint64_t value) const noexcept { return value; }
};

// Both endpoints, read as machine words (an IPv4 address is 4 bytes, IPv6 16).
struct FourTupleHash {
    [[nodiscard]] std::uint64_t operator()(const FourTuple& tuple) const noexcept {
        const auto words = [](const IpAddress& address) {
            std::uint64_t w[2] = {0, 0};
            const auto bytes = address.bytes();
            std::memcpy(w, bytes.data(), bytes.size());
            return mix64(w[0] ^ mix64(w[1] + bytes.size()));
        };
        const std::uint64_t ports = (std::uint64_t{tuple.local.port} << 16) | tuple.remote.port;
        return mix64(words(tuple.local.address) ^ (words(tuple.remote.address) * 0x9e3779b97f4a7c15ULL) ^ ports);
    }
};

template <class Key, class Value, class Hash>
class FlatMap {
public:
    struct Entry {
        Key key{};
        Value value{};
        std::uint32_t tag = 0;  // the top 32 bits of the key's scrambled hash: its home, and a cheap "not equal"
        bool used = false;      // beside the key, so a probe touches one cache line
    };

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

    [[nodiscard]] Value* find(const Key& key) noexcept {
        const std::size_t at = locate(key);
        return at == npos ? nullptr : &entries_[at].value;
    }
    [[nodiscard]] const Value* find(const Key& key) const noexcept {
        const std::size_t at = locate(key);
        return at == npos ? nullptr : &entries_[at].value;
    }
    [[nodiscard]] bool contains(const Key& key) const noexcept { return locate(key) != npos; }

    // The value for key, default-constructed (and inserted) if absent.
    Value& operator[](const Key& key) { return *try_emplace(key, Value{}).first; }

    // Inserts (key, value) unless key is there; says where the key's value is and
    // whether it was inserted (one probe for "check, then add").
    std::pair<Value*, bool> try_emplace(const Key& key, Value value) {
        if ((size_ + 1) * 2 > entries_.size()) grow();
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        while (entries_[at].used) {
            if (entries_[at].tag == tag && entries_[at].key == key) return {&entries_[at].value, false};
            at = (at + 1) & mask();
        }
        entries_[at] = Entry{key, std::move(value), tag, true};
        ++size_;
        return {&entries_[at].value, true};
    }

    // Removes key; false when it was absent.
    bool erase(const Key& key) {
        const std::size_t at = locate(key);
        if (at == npos) return false;
        erase_at(at);
        return true;
    }
    // Removes key only if its value is `expected` (one probe for "find, compare, erase").
    bool erase(const Key& key, const Value& expected) {
        const std::size_t at = locate(key);
        if (at == npos || !(entries_[at].value == expected)) return false;
        erase_at(at);
        return true;
    }

    void clear() {
        entries_.clear();
        size_ = 0;
        shift_ = 64;
    }

    // Visits every (key, value) in table order (deterministic, but not sorted).
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (const Entry& entry : entries_)
            if (entry.used) visit(entry.key, entry.value);
    }

    friend bool operator==(const FlatMap& a, const FlatMap& b) {
        if (a.size_ != b.size_) return false;
        for (std::size_t i = 0; i < a.entries_.size(); ++i) {
            if (!a.entries_[i].used) continue;
            const Value* other = b.find(a.entries_[i].key);
            if (other == nullptr || !(*other == a.entries_[i].value)) return false;
        }
        return true;
    }

private:
    static constexpr std::size_t npos = ~std::size_t{0};

    [[nodiscard]] std::size_t mask() const noexcept { return entries_.size() - 1; }
    [[nodiscard]] static std::uint32_t tag_of(const Key& key) noexcept {
        return static_cast<std::uint32_t>((Hash{}(key) * 0x9e3779b97f4a7c15ULL) >> 32);
    }
    // The top log2(capacity) bits of the tag (capacity is at most 2^32).
    [[nodiscard]] std::size_t home(std::uint32_t tag) const noexcept {
        return static_cast<std::size_t>((std::uint64_t{tag} << 32) >> shift_);
    }
    [[nodiscard]] std::size_t locate(const Key& key) const noexcept {
        if (size_ == 0) return npos;
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        while (entries_[at].used) {
            if (entries_[at].tag == tag && entries_[at].key == key) return at;
            at = (at + 1) & mask();
        }
        return npos;
    }
    // Backward shift (no tombstones): pull later entries of the same probe run into the hole.
    void erase_at(std::size_t hole) {
        std::size_t next = (hole + 1) & mask();
        while (entries_[next].used) {
            const std::size_t wanted = home(entries_[next].tag);
            // The entry at `next` may move to `hole` when its home is not in (hole, next].
            if (((next - wanted) & mask()) >= ((next - hole) & mask())) {
                entries_[hole] = std::move(entries_[next]);
                hole = next;
            }
            next = (next + 1) & mask();
        }
        entries_[hole] = Entry{};
        --size_;
    }
    void grow() {
        const std::size_t capacity = entries_.empty() ? 16 : entries_.size() * 2;
        std::vector<Entry> old_entries(capacity);
        old_entries.swap(entries_);
        shift_ = 64 - static_cast<unsigned>(std::countr_zero(capacity));
        for (Entry& entry : old_entries) {
            if (!entry.used) continue;
            std::size_t at = home(entry.tag);
            while (entries_[at].used) at = (at + 1) & mask();
            entries_[at] = std::move(entry);
        }
    }

    std::vector<Entry> entries_;  // capacity a power of two (or empty); at most half used
    std::size_t size_ = 0;
    unsigned shift_ = 64;             // 64 - log2(capacity)
};

}  // namespace portlab::sim
