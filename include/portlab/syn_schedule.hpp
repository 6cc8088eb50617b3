#pragma once
// Linux's schedule for retransmitting the SYN of a connect() nobody answers
// (net/ipv4/tcp_timer.c), as data: when each retransmission goes out and when
// connect() gives up with ETIMEDOUT.
//
// The first SYN's timer runs TCP_TIMEOUT_INIT = 1 s (RFC 6298 2.1). When it fires,
// tcp_retransmit_timer() resends the SYN and counts the retransmission; the next wait
// doubles (RFC 6298 5.5, up to TCP_RTO_MAX = 120 s), except that since Linux 6.5
// (commit ccce324dabfe, "tcp: make the first N SYN RTO backoffs linear") a socket in
// SYN-SENT keeps the same wait while it has retransmitted at most
// tcp_syn_linear_timeouts times. tcp_write_timeout() gives up when a timer fires after
// tcp_syn_retries + tcp_syn_linear_timeouts retransmissions (the linear ones come on
// top of tcp_syn_retries).
//
//   Linux 6.5+ (tcp_syn_retries 6, tcp_syn_linear_timeouts 4): retransmissions at
//     1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, ETIMEDOUT at 131 s;
//   before 6.5 (no linear timeouts): 1, 3, 7, 15, 31, 63 s, ETIMEDOUT at 127 s.

#include <cstdint>
#include <vector>

namespace portlab {

inline constexpr std::uint64_t tcp_timeout_init_us = 1'000'000;  // Linux TCP_TIMEOUT_INIT (RFC 6298 2.1)
inline constexpr std::uint64_t tcp_rto_max_us = 120'000'000;     // Linux TCP_RTO_MAX

struct SynSchedule {
    std::uint32_t syn_retries = 6;      // net.ipv4.tcp_syn_retries (TCP_SYN_RETRIES)
    std::uint32_t linear_timeouts = 4;  // net.ipv4.tcp_syn_linear_timeouts (Linux 6.5+; none before)
    std::uint64_t initial_rto_us = tcp_timeout_init_us;
    std::uint64_t max_rto_us = tcp_rto_max_us;
    friend bool operator==(const SynSchedule&, const SynSchedule&) = default;

    // What the current kernel does by default (6.5 and later).
    [[nodiscard]] static SynSchedule linux_default() noexcept { return {}; }
    // Before Linux 6.5: every wait doubles.
    [[nodiscard]] static SynSchedule before_linux_6_5() noexcept { return {6, 0}; }

    // How many times the SYN is sent again before connect() gives up.
    [[nodiscard]] std::uint32_t retransmissions() const noexcept { return syn_retries + linear_timeouts; }

    // How long the SYN timer runs after `sent_again` retransmissions (0: after the
    // first SYN). For sent_again == retransmissions() it is the wait before giving up.
    [[nodiscard]] std::uint64_t timeout_us(std::uint32_t sent_again) const noexcept;

    // When each retransmission goes out, in microseconds after the first SYN.
    [[nodiscard]] std::vector<std::uint64_t> retransmit_at_us() const;

    // When connect() fails with ETIMEDOUT, in microseconds after the first SYN.
    [[nodiscard]] std::uint64_t give_up_at_us() const noexcept;
};

}  // namespace portlab
