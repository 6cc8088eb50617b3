#pragma once
// The model's only source of chance: a seeded generator whose whole state is one
// number, so a snapshot copies it and a seed replays a run exactly.

#include <cstdint>
#include <span>

namespace portlab::sim {

// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014): tiny state, good enough statistics for a teaching model.
struct Rng {
    std::uint64_t state = 0;

    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, bound); bound 0 gives 0. Lemire's multiply-shift (bias < 2^-32).
    std::uint32_t below(std::uint32_t bound) noexcept {
        return static_cast<std::uint32_t>(((next() >> 32) * bound) >> 32);
    }
    // Uniform in [0, 1).
    double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    friend bool operator==(const Rng&, const Rng&) = default;
};

// A keyed hash standing in for the kernel's siphash (secure_ipv4_port_ephemeral) and
// RFC 6056's F(): FNV-1a over the bytes, finished with SplitMix64's mixer.
[[nodiscard]] inline std::uint64_t keyed_hash(std::uint64_t key, std::span<const std::uint8_t> bytes) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL ^ key;
    for (const std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
    Rng mix{h};
    return mix.next();
}

}  // namespace portlab::sim
