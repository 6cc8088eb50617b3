#include "portlab/sim/ephemeral.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <span>

namespace portlab::sim {

namespace {

int lane_of(trace::Parity parity) noexcept { return parity == trace::Parity::even ? 0 : 1; }
trace::Parity parity_of(Port port) noexcept { return (port & 1U) == 0 ? trace::Parity::even : trace::Parity::odd; }
trace::Parity other(trace::Parity parity) noexcept {
    return parity == trace::Parity::even ? trace::Parity::odd : trace::Parity::even;
}

// The bitmap indexes of the ports of one lane (parity) within [from, to]; empty when none.
struct LaneSpan {
    std::uint32_t first = 1;
    std::uint32_t last = 0;
    [[nodiscard]] bool empty() const noexcept { return first > last; }
};
LaneSpan lane_span(int lane, Port from, Port to) noexcept {
    std::uint32_t low = from;
    std::uint32_t high = to;
    if ((low & 1U) != static_cast<std::uint32_t>(lane)) ++low;
    if (high > 0 && (high & 1U) != static_cast<std::uint32_t>(lane)) --high;
    else if (high == 0 && lane == 1) return {};
    if (low > high || low > to) return {};
    return {low >> 1, high >> 1};
}
Port port_of(int lane, std::uint32_t index) noexcept { return static_cast<Port>(index * 2 + static_cast<std::uint32_t>(lane)); }

// What RFC 6056's F() and G() hash: local address, remote address and remote port.
std::uint64_t destination_hash(std::uint64_t secret, const PortRequest& request) {
    std::array<std::uint8_t, 16 + 16 + 2> bytes{};  // at most two IPv6 addresses and a port
    std::size_t size = 0;
    const auto append = [&](std::span<const std::uint8_t> part) {
        std::copy(part.begin(), part.end(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
        size += part.size();
    };
    append(request.local.bytes());
    if (request.remote) {
        append(request.remote->address.bytes());
        bytes[size++] = static_cast<std::uint8_t>(request.remote->port >> 8);
        bytes[size++] = static_cast<std::uint8_t>(request.remote->port & 0xff);
    }
    return keyed_hash(secret, std::span<const std::uint8_t>(bytes.data(), size));
}

std::uint32_t circular_distance(Port from, Port to, PortRange range) noexcept {
    const auto size = static_cast<std::uint32_t>(range.size());
    return (static_cast<std::uint32_t>(to) + size - from) % size;
}

// Linux __inet_hash_connect (6.x): base from table_perturb[index] + hash, first the
// ports with the range's low parity, stepping by 2 and wrapping; after a success
// the table entry moves on by max(probes, 2*random(0..7)) + 2, i.e. 2..16 when free.
std::optional<PortChoice> linux_connect(EphemeralState& state, const FreePorts& free, PortRange range,
                                        const PortRequest& request, Rng& rng, std::uint64_t secret) {
    std::uint32_t remaining = static_cast<std::uint32_t>(range.size());
    if (remaining > 1) remaining &= ~1U;  // the kernel scans an even number of ports
    const PortRange scanned{range.low, static_cast<Port>(range.low + remaining - 1)};
    const std::uint64_t port_offset = destination_hash(secret, request);
    const std::size_t index = port_offset & (state.table.size() - 1);
    std::uint32_t offset = static_cast<std::uint32_t>((state.table[index] + (port_offset >> 32)) % remaining);
    offset &= ~1U;
    const trace::Parity first = parity_of(range.low);
    for (const trace::Parity parity : {first, other(first)}) {
        const Port start = static_cast<Port>(range.low + offset + (parity == first ? 0 : 1));
        const Port clamped = scanned.contains(start) ? start : scanned.low;
        const auto found = free.next_free_wrapping(clamped, scanned, parity);
        if (!found) continue;
        const std::uint32_t distance = circular_distance(clamped, *found, scanned);
        const std::uint32_t step = std::max(distance, rng.below(8) * 2) + 2;
        state.table[index] += step;
        return PortChoice{*found, "linux-hash-connect", parity, distance / 2 + 1};
    }
    return std::nullopt;
}

// Linux inet_csk_find_open_port: a random odd offset (the parity connect() leaves
// alone), stepping by 2, then the other parity.
std::optional<PortChoice> linux_bind_zero(const FreePorts& free, PortRange range, Rng& rng) {
    std::uint32_t remaining = static_cast<std::uint32_t>(range.size());
    if (remaining > 1) remaining &= ~1U;
    const PortRange scanned{range.low, static_cast<Port>(range.low + remaining - 1)};
    const std::uint32_t offset = rng.below(remaining) | 1U;
    const trace::Parity first = other(parity_of(range.low));
    for (const trace::Parity parity : {first, other(first)}) {
        const Port start = static_cast<Port>(range.low + (parity == first ? offset : offset - 1));
        const Port clamped = scanned.contains(start) ? start : scanned.low;
        if (const auto found = free.next_free_wrapping(clamped, scanned, parity))
            return PortChoice{*found, "linux-bind-zero", parity, circular_distance(clamped, *found, scanned) / 2 + 1};
    }
    return std::nullopt;
}

std::optional<PortChoice> uniform_random(const FreePorts& free, PortRange range, Rng& rng, std::string_view name) {
    const std::size_t count = free.count_free(range, std::nullopt);
    if (count == 0) return std::nullopt;
    const auto port = free.nth_free(range, std::nullopt, rng.below(static_cast<std::uint32_t>(count)));
    if (!port) return std::nullopt;
    return PortChoice{*port, name, std::nullopt, 1};
}

// Sequential probing from `start`: what algorithms 1, 3 and 4 do after choosing it.
std::optional<PortChoice> probe_from(const FreePorts& free, PortRange range, std::uint32_t offset,
                                     std::string_view name) {
    const Port start = static_cast<Port>(range.low + offset % range.size());
    const auto found = free.next_free_wrapping(start, range, std::nullopt);
    if (!found) return std::nullopt;
    return PortChoice{*found, name, std::nullopt, circular_distance(start, *found, range) + 1};
}

}  // namespace

// ---- FreePorts ----------------------------------------------------------------------

FreePorts::FreePorts() {
    for (auto& lane : free_) lane.fill(~std::uint64_t{0});
    for (auto& lane : summary_) lane.fill(~std::uint64_t{0});
}

bool FreePorts::is_free(Port port) const noexcept {
    const std::uint32_t index = port >> 1;
    return ((free_[port & 1U][index >> 6] >> (index & 63)) & 1U) != 0;
}

void FreePorts::take(Port port) noexcept {
    const int lane = port & 1;
    const std::uint32_t index = port >> 1;
    auto& word = free_[lane][index >> 6];
    word &= ~(std::uint64_t{1} << (index & 63));
    if (word == 0) summary_[lane][index >> 12] &= ~(std::uint64_t{1} << ((index >> 6) & 63));
}

void FreePorts::release(Port port) noexcept {
    const int lane = port & 1;
    const std::uint32_t index = port >> 1;
    free_[lane][index >> 6] |= std::uint64_t{1} << (index & 63);
    summary_[lane][index >> 12] |= std::uint64_t{1} << ((index >> 6) & 63);
}

std::optional<std::uint32_t> FreePorts::next_set(int lane, std::uint32_t from, std::uint32_t to) const noexcept {
    if (from > to) return std::nullopt;
    std::uint32_t word = from >> 6;
    std::uint64_t bits = free_[lane][word] & (~std::uint64_t{0} << (from & 63));
    if (bits == 0) {
        // Find the next word with any free bit through the summary.
        std::uint32_t next_word = word + 1;
        bits = 0;
        while (next_word < words && (next_word >> 6) <= (to >> 12)) {
            const std::uint64_t summary = summary_[lane][next_word >> 6] & (~std::uint64_t{0} << (next_word & 63));
            if (summary != 0) {
                word = ((next_word >> 6) << 6) + static_cast<std::uint32_t>(std::countr_zero(summary));
                bits = free_[lane][word];
                break;
            }
            next_word = ((next_word >> 6) + 1) << 6;
        }
        if (bits == 0) return std::nullopt;
    }
    const std::uint32_t index = (word << 6) + static_cast<std::uint32_t>(std::countr_zero(bits));
    if (index > to) return std::nullopt;
    return index;
}

std::size_t FreePorts::count_set(int lane, std::uint32_t from, std::uint32_t to) const noexcept {
    std::size_t count = 0;
    for (std::uint32_t word = from >> 6; word <= (to >> 6); ++word) {
        std::uint64_t bits = free_[lane][word];
        if (word == (from >> 6)) bits &= ~std::uint64_t{0} << (from & 63);
        if (word == (to >> 6) && (to & 63) != 63) bits &= (std::uint64_t{1} << ((to & 63) + 1)) - 1;
        count += static_cast<std::size_t>(std::popcount(bits));
    }
    return count;
}

std::optional<Port> FreePorts::next_free(Port from, Port to, std::optional<trace::Parity> parity) const noexcept {
    if (parity) {  // one lane: the common case (Linux's connect and bind(0))
        const int lane = lane_of(*parity);
        const LaneSpan span = lane_span(lane, from, to);
        if (span.empty()) return std::nullopt;
        const auto index = next_set(lane, span.first, span.last);
        if (!index) return std::nullopt;
        return port_of(lane, *index);
    }
    std::optional<Port> best;
    for (int lane = 0; lane < 2; ++lane) {
        if (parity && lane != lane_of(*parity)) continue;
        const LaneSpan span = lane_span(lane, from, to);
        if (span.empty()) continue;
        if (const auto index = next_set(lane, span.first, span.last)) {
            const Port port = port_of(lane, *index);
            if (!best || port < *best) best = port;
        }
    }
    return best;
}

std::optional<Port> FreePorts::next_free_wrapping(Port start, PortRange range,
                                                  std::optional<trace::Parity> parity) const noexcept {
    if (range.size() == 0) return std::nullopt;
    if (!range.contains(start)) start = range.low;
    if (const auto after = next_free(start, range.high, parity)) return after;
    if (start == range.low) return std::nullopt;
    return next_free(range.low, static_cast<Port>(start - 1), parity);
}

std::size_t FreePorts::count_free(PortRange range, std::optional<trace::Parity> parity) const noexcept {
    std::size_t count = 0;
    for (int lane = 0; lane < 2; ++lane) {
        if (parity && lane != lane_of(*parity)) continue;
        const LaneSpan span = lane_span(lane, range.low, range.high);
        if (!span.empty()) count += count_set(lane, span.first, span.last);
    }
    return count;
}

std::optional<Port> FreePorts::nth_free(PortRange range, std::optional<trace::Parity> parity, std::size_t n) const noexcept {
    // Walk the range in blocks of 128 ports (one word of each lane), counting.
    std::uint32_t block_low = range.low;
    while (block_low <= range.high) {
        const std::uint32_t block_high = std::min<std::uint32_t>(range.high, (block_low | 127U));
        const PortRange block{static_cast<Port>(block_low), static_cast<Port>(block_high)};
        const std::size_t here = count_free(block, parity);
        if (n < here) {
            Port from = block.low;
            while (true) {
                const auto port = next_free(from, block.high, parity);
                if (!port) return std::nullopt;
                if (n == 0) return port;
                --n;
                from = static_cast<Port>(*port + 1);
            }
        }
        n -= here;
        block_low = block_high + 1;
    }
    return std::nullopt;
}

// ---- strategies ---------------------------------------------------------------------

std::string_view to_string(EphemeralStrategy strategy) noexcept {
    switch (strategy) {
        case EphemeralStrategy::sequential: return "sequential";
        case EphemeralStrategy::random: return "random";
        case EphemeralStrategy::rfc6056_alg1: return "rfc6056-1";
        case EphemeralStrategy::rfc6056_alg3: return "rfc6056-3";
        case EphemeralStrategy::rfc6056_alg4: return "rfc6056-4";
        case EphemeralStrategy::linux: return "linux";
    }
    return "linux";
}

std::optional<EphemeralStrategy> parse_ephemeral_strategy(std::string_view text) noexcept {
    for (const auto strategy : {EphemeralStrategy::sequential, EphemeralStrategy::random, EphemeralStrategy::rfc6056_alg1,
                                EphemeralStrategy::rfc6056_alg3, EphemeralStrategy::rfc6056_alg4, EphemeralStrategy::linux})
        if (to_string(strategy) == text) return strategy;
    return std::nullopt;
}

std::optional<PortChoice> choose_ephemeral_port(const EphemeralConfig& config, EphemeralState& state,
                                                const FreePorts& free, const PortRequest& request, Rng& rng,
                                                std::uint64_t secret) {
    const PortRange range = config.range;
    if (range.size() == 0) return std::nullopt;
    std::optional<PortChoice> choice;
    switch (config.strategy) {
        case EphemeralStrategy::sequential: {
            choice = probe_from(free, range, static_cast<std::uint32_t>(state.next_ephemeral % range.size()), "sequential");
            if (choice) state.next_ephemeral = static_cast<std::uint64_t>(choice->port - range.low) + 1;
            break;
        }
        case EphemeralStrategy::random: choice = uniform_random(free, range, rng, "random"); break;
        case EphemeralStrategy::rfc6056_alg1:
            choice = probe_from(free, range, rng.below(static_cast<std::uint32_t>(range.size())), "rfc6056-1");
            break;
        case EphemeralStrategy::rfc6056_alg3: {
            const std::uint64_t offset = destination_hash(secret, request);
            choice = probe_from(free, range, static_cast<std::uint32_t>((state.next_ephemeral + offset) % range.size()),
                                "rfc6056-3");
            if (choice) state.next_ephemeral += choice->probes;
            break;
        }
        case EphemeralStrategy::rfc6056_alg4: {
            const std::uint64_t offset = destination_hash(secret, request);
            const std::uint64_t index = destination_hash(secret ^ 0x5bd1e995ULL, request) % state.table.size();
            choice = probe_from(free, range, static_cast<std::uint32_t>((offset + state.table[index]) % range.size()),
                                "rfc6056-4");
            if (choice) state.table[index] += choice->probes;
            break;
        }
        case EphemeralStrategy::linux:
            switch (request.purpose) {
                case PortPurpose::tcp_connect: choice = linux_connect(state, free, range, request, rng, secret); break;
                case PortPurpose::tcp_bind_zero: choice = linux_bind_zero(free, range, rng); break;
                case PortPurpose::udp: choice = uniform_random(free, range, rng, "linux-udp-random"); break;
            }
            break;
    }
    if (choice) state.last_choice = choice;
    return choice;
}

}  // namespace portlab::sim
