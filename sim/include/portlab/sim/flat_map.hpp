#pragma once
// A small open-addressing hash map for the model's hot tables (4-tuples, bind
// buckets, socket ids). Why not std::unordered_map: that allocates a node per
// entry and chases a pointer per lookup; with 28,000 live connections each connect
// and close paid for several of those (bench/RESULTS.md, "Simulator").
//
// Linear probing in one array, at most half full, in Robin Hood order (Celis 1986:
// along a run, entries sit in order of their home slot) with backward-shift
// deletion, so there are no tombstones, a miss stops early, and an erase stops at
// the first entry already at home: a run of keys that each sit at home (ids in
// sequence) costs O(1) per erase, not a walk to the end of the run.
// The slot is the hash's low bits as they are: the hashes below keep keys that come
// in sequence (socket ids, ports picked nearly in order, a client's successive
// 4-tuples) in neighbouring slots, so walking through thousands of connections in
// order touches memory in order instead of one cache miss per lookup. A value type:
// copying it copies the table, and == compares contents, not layout.
// Every operation is deterministic.

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

// Ids handed out in sequence: consecutive ids, consecutive slots.
struct IntegerHash {
    [[nodiscard]] std::uint64_t operator()(std::uint64_t value) const noexcept { return value; }
};

// An address scrambled: every byte, and the family (0.0.0.0 and :: differ).
[[nodiscard]] inline std::uint64_t address_hash(const IpAddress& address) noexcept {
    std::uint64_t w[2] = {0, 0};
    const auto bytes = address.bytes();
    std::memcpy(w, bytes.data(), bytes.size());
    return mix64(w[0] ^ mix64(w[1] + bytes.size()));
}

// The two addresses scrambled (a random base per pair of hosts), plus the ports as
// they are: a client's connections to one server differ in the local port, a
// server's in the remote port, and both then sit side by side in the table.
struct FourTupleHash {
    [[nodiscard]] std::uint64_t operator()(const FourTuple& tuple) const noexcept {
        const std::uint64_t base =
            mix64(address_hash(tuple.local.address) ^ (address_hash(tuple.remote.address) * 0x9e3779b97f4a7c15ULL));
        return base + tuple.local.port + 3 * std::uint64_t{tuple.remote.port};
    }
};

// A bound address and port, the listening table's key (Linux's lhash2 is keyed by
// the same pair: ipv4_portaddr_hash / ipv6_portaddr_hash).
struct EndpointHash {
    [[nodiscard]] std::uint64_t operator()(const Endpoint& endpoint) const noexcept {
        return address_hash(endpoint.address) ^ endpoint.port;
    }
};

template <class Key, class Value, class Hash>
class FlatMap {
public:
    struct Entry {
        Key key{};
        Value value{};
        std::uint32_t tag = 0;  // the low 32 bits of the key's hash: its home, and a cheap "not equal"
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
        std::size_t distance = 0;
        while (entries_[at].used) {
            if (entries_[at].tag == tag && entries_[at].key == key) return {&entries_[at].value, false};
            if (distance_at(at) < distance) break;  // the key would have been here: it is absent
            at = (at + 1) & mask();
            ++distance;
        }
        const std::size_t placed = at;
        place(Entry{key, std::move(value), tag, true}, at, distance);
        ++size_;
        return {&entries_[placed].value, true};
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
    [[nodiscard]] static std::uint32_t tag_of(const Key& key) noexcept { return static_cast<std::uint32_t>(Hash{}(key)); }
    // The low log2(capacity) bits of the tag (capacity is at most 2^32).
    [[nodiscard]] std::size_t home(std::uint32_t tag) const noexcept { return tag & mask(); }
    [[nodiscard]] std::size_t locate(const Key& key) const noexcept {
        if (size_ == 0) return npos;
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        std::size_t distance = 0;
        while (entries_[at].used) {
            if (entries_[at].tag == tag && entries_[at].key == key) return at;
            if (distance_at(at) < distance) return npos;
            at = (at + 1) & mask();
            ++distance;
        }
        return npos;
    }
    // How far the entry at `at` sits from its home slot.
    [[nodiscard]] std::size_t distance_at(std::size_t at) const noexcept {
        return (at - home(entries_[at].tag)) & mask();
    }
    // Robin Hood insertion from `at`, where `carry` is `distance` from home: an entry
    // nearer its home than the one carried gives up its slot and is carried on.
    void place(Entry carry, std::size_t at, std::size_t distance) {
        while (entries_[at].used) {
            const std::size_t here = distance_at(at);
            if (here < distance) {
                std::swap(carry, entries_[at]);
                distance = here;
            }
            at = (at + 1) & mask();
            ++distance;
        }
        entries_[at] = std::move(carry);
    }
    // Backward shift (no tombstones): pull the rest of the run back by one, up to an
    // empty slot or an entry already at home.
    void erase_at(std::size_t hole) {
        std::size_t next = (hole + 1) & mask();
        while (entries_[next].used && distance_at(next) != 0) {
            entries_[hole] = std::move(entries_[next]);
            hole = next;
            next = (next + 1) & mask();
        }
        entries_[hole] = Entry{};
        --size_;
    }
    void grow() {
        const std::size_t capacity = entries_.empty() ? 16 : entries_.size() * 2;
        std::vector<Entry> old_entries(capacity);
        old_entries.swap(entries_);
        for (Entry& entry : old_entries) {
            if (!entry.used) continue;
            const std::size_t at = home(entry.tag);
            place(std::move(entry), at, 0);
        }
    }

    std::vector<Entry> entries_;  // capacity a power of two (or empty); at most half used
    std::size_t size_ = 0;
};

// An index from keys kept elsewhere to the 32-bit ids that hold them: each slot is
// 8 bytes (the key's hash tag and the id), and a lookup confirms a tag match by
// reading the key back through `key_of(id)`. Used for 4-tuples: the socket already
// stores its local and remote endpoints, so the index need not copy 40 bytes of
// them per connection. Same Robin Hood probing and backward shift as FlatMap;
// id 0 marks an empty slot.
template <class Key, class Hash>
class IdIndex {
public:
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

    // The id stored under key; 0 when none. key_of(id) must give the key of an indexed id.
    template <class KeyOf>
    [[nodiscard]] std::uint32_t find(const Key& key, KeyOf&& key_of) const {
        if (size_ == 0) return 0;
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        for (std::size_t distance = 0; slots_[at].id != 0; ++distance, at = (at + 1) & mask()) {
            if (slots_[at].tag == tag && key_of(slots_[at].id) == key) return slots_[at].id;
            if (distance_at(at) < distance) return 0;
        }
        return 0;
    }

    // Adds key -> id unless key is there already (then false, nothing changes).
    template <class KeyOf>
    bool insert(const Key& key, std::uint32_t id, KeyOf&& key_of) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        std::size_t distance = 0;
        for (; slots_[at].id != 0; ++distance, at = (at + 1) & mask()) {
            if (slots_[at].tag == tag && key_of(slots_[at].id) == key) return false;
            if (distance_at(at) < distance) break;
        }
        place(Slot{tag, id}, at, distance);
        ++size_;
        return true;
    }

    // Removes the entry (key, id); false when there is none.
    bool erase(const Key& key, std::uint32_t id) {
        if (size_ == 0) return false;
        const std::uint32_t tag = tag_of(key);
        std::size_t at = home(tag);
        for (std::size_t distance = 0; slots_[at].id != 0; ++distance, at = (at + 1) & mask()) {
            if (slots_[at].tag == tag && slots_[at].id == id) {
                erase_at(at);
                return true;
            }
            if (distance_at(at) < distance) return false;
        }
        return false;
    }

    // Visits every id in table order.
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (const Slot& slot : slots_)
            if (slot.id != 0) visit(slot.id);
    }

    friend bool operator==(const IdIndex& a, const IdIndex& b) {
        if (a.size_ != b.size_) return false;
        for (const Slot& slot : a.slots_)
            if (slot.id != 0 && !b.holds(slot)) return false;
        return true;
    }

private:
    struct Slot {
        std::uint32_t tag = 0;
        std::uint32_t id = 0;
    };

    [[nodiscard]] static std::uint32_t tag_of(const Key& key) noexcept { return static_cast<std::uint32_t>(Hash{}(key)); }
    [[nodiscard]] std::size_t mask() const noexcept { return slots_.size() - 1; }
    [[nodiscard]] std::size_t home(std::uint32_t tag) const noexcept { return tag & mask(); }
    [[nodiscard]] std::size_t distance_at(std::size_t at) const noexcept { return (at - home(slots_[at].tag)) & mask(); }
    [[nodiscard]] bool holds(const Slot& wanted) const noexcept {
        if (size_ == 0) return false;
        std::size_t at = home(wanted.tag);
        for (std::size_t distance = 0; slots_[at].id != 0; ++distance, at = (at + 1) & mask()) {
            if (slots_[at].tag == wanted.tag && slots_[at].id == wanted.id) return true;
            if (distance_at(at) < distance) return false;
        }
        return false;
    }
    void place(Slot carry, std::size_t at, std::size_t distance) {
        while (slots_[at].id != 0) {
            const std::size_t here = distance_at(at);
            if (here < distance) {
                std::swap(carry, slots_[at]);
                distance = here;
            }
            at = (at + 1) & mask();
            ++distance;
        }
        slots_[at] = carry;
    }
    void erase_at(std::size_t hole) {
        std::size_t next = (hole + 1) & mask();
        while (slots_[next].id != 0 && distance_at(next) != 0) {
            slots_[hole] = slots_[next];
            hole = next;
            next = (next + 1) & mask();
        }
        slots_[hole] = Slot{};
        --size_;
    }
    void grow() {
        const std::size_t capacity = slots_.empty() ? 16 : slots_.size() * 2;
        std::vector<Slot> old(capacity);
        old.swap(slots_);
        for (const Slot& slot : old)
            if (slot.id != 0) place(slot, home(slot.tag), 0);
    }

    std::vector<Slot> slots_;  // capacity a power of two (or empty); at most half used
    std::size_t size_ = 0;
};

}  // namespace portlab::sim
