#pragma once
// Ephemeral ports: which ports are free on a host, and how the next one is chosen.
//
// The strategies (RFC 6056 section 3.3 names its algorithms 1-5):
//   sequential    next_ephemeral++ from the last choice (the pre-RFC-6056 BSD way, 3.3 intro)
//   random        a port chosen uniformly among the free ones (the distribution of
//                 algorithm 2, 3.3.2, without its retries)
//   rfc6056-1     random start, then sequential probing (3.3.1)
//   rfc6056-3     offset = F(local IP, remote IP, remote port, secret) + a global
//                 counter, sequential probing (3.3.3)
//   rfc6056-4     offset F(...) plus a per-destination-bucket counter table[G(...)]
//                 (3.3.4, "double-hash")
//   linux         what Linux 6.x does (net/ipv4/inet_hashtables.c __inet_hash_connect,
//                 net/ipv4/inet_connection_sock.c inet_csk_find_open_port, net/ipv4/udp.c
//                 udp_lib_get_port): connect() takes ports of the range's low parity (even
//                 for 32768) from a per-destination hashed base that moves by 2..16 after
//                 each use; bind(0) takes a random port of the other parity; UDP takes a
//                 random port of either parity. Each falls back to the other parity.
//
// Every strategy finds "the next free port at or after X" with a two-level bitmap,
// so a nearly full pool costs a few word operations per allocation instead of a scan
// of the range, and a full pool is an answer (nullopt -> EADDRNOTAVAIL), never a loop.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/sim/random.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

// Which of the 65536 port numbers have no socket bound (per host and protocol).
// Even and odd ports live in separate bitmaps so "the next free even port" is one
// search; a summary word per 64 words says which words have any free bit.
class FreePorts {
public:
    FreePorts();

    [[nodiscard]] bool is_free(Port port) const noexcept;
    void take(Port port) noexcept;
    void release(Port port) noexcept;

    // The first free port p with from <= p <= to, of the given parity if any.
    [[nodiscard]] std::optional<Port> next_free(Port from, Port to, std::optional<trace::Parity> parity) const noexcept;
    // As next_free over the circular range: from `start` up to range.high, then from range.low.
    [[nodiscard]] std::optional<Port> next_free_wrapping(Port start, PortRange range,
                                                         std::optional<trace::Parity> parity) const noexcept;
    [[nodiscard]] std::size_t count_free(PortRange range, std::optional<trace::Parity> parity) const noexcept;
    // The n-th (from 0) free port of the range in increasing order.
    [[nodiscard]] std::optional<Port> nth_free(PortRange range, std::optional<trace::Parity> parity,
                                               std::size_t n) const noexcept;

    friend bool operator==(const FreePorts&, const FreePorts&) = default;

private:
    static constexpr std::size_t words = 512;  // 32768 ports of one parity / 64
    [[nodiscard]] std::optional<std::uint32_t> next_set(int lane, std::uint32_t from, std::uint32_t to) const noexcept;
    [[nodiscard]] std::size_t count_set(int lane, std::uint32_t from, std::uint32_t to) const noexcept;

    std::array<std::array<std::uint64_t, words>, 2> free_{};     // [parity][index / 64], bit = port is free
    std::array<std::array<std::uint64_t, words / 64>, 2> summary_{};  // bit w = free_[lane][w] != 0
};

enum class EphemeralStrategy : std::uint8_t { sequential, random, rfc6056_alg1, rfc6056_alg3, rfc6056_alg4, linux };

// "sequential", "random", "rfc6056-1", "rfc6056-3", "rfc6056-4", "linux"
[[nodiscard]] std::string_view to_string(EphemeralStrategy strategy) noexcept;
[[nodiscard]] std::optional<EphemeralStrategy> parse_ephemeral_strategy(std::string_view text) noexcept;

inline constexpr PortRange linux_ephemeral_range{32768, 60999};  // ip_local_port_range default
inline constexpr PortRange iana_ephemeral_range{49152, 65535};   // RFC 6335 section 6

struct EphemeralConfig {
    PortRange range = linux_ephemeral_range;
    EphemeralStrategy strategy = EphemeralStrategy::linux;
    friend bool operator==(const EphemeralConfig&, const EphemeralConfig&) = default;
};

// Why a port is wanted: Linux uses a different rule for each.
enum class PortPurpose : std::uint8_t { tcp_connect, tcp_bind_zero, udp };

struct PortRequest {
    PortPurpose purpose = PortPurpose::tcp_connect;
    IpAddress local;
    std::optional<Endpoint> remote;  // connect() only
};

struct PortChoice {
    Port port = 0;
    std::string_view algorithm;  // for the trace: "linux-hash-connect", "rfc6056-3", ...
    std::optional<trace::Parity> parity;
    std::uint32_t probes = 1;  // how many candidates the kernel's loop would have looked at
    friend bool operator==(const PortChoice&, const PortChoice&) = default;
};

// The counters the strategies keep between choices (per host and protocol).
struct EphemeralState {
    std::uint64_t next_ephemeral = 0;            // sequential and rfc6056-3
    std::array<std::uint32_t, 256> table{};      // rfc6056-4's table[] and Linux's table_perturb[]
    std::optional<PortChoice> last_choice;       // for the viewer's pool strip
    friend bool operator==(const EphemeralState&, const EphemeralState&) = default;
};

// Picks a free port, updating the strategy's counters; nullopt when none is free.
[[nodiscard]] std::optional<PortChoice> choose_ephemeral_port(const EphemeralConfig& config, EphemeralState& state,
                                                              const FreePorts& free, const PortRequest& request,
                                                              Rng& rng, std::uint64_t secret);

}  // namespace portlab::sim
