// Linux's SYN retransmission schedule (net/ipv4/tcp_timer.c); see syn_schedule.hpp.
#include "portlab/syn_schedule.hpp"

#include <algorithm>

namespace portlab {

// tcp_retransmit_timer() counts the retransmission (tcp_update_rto_stats) before it
// decides the next wait, and backs off only once that count exceeds
// tcp_syn_linear_timeouts: so the waits after retransmissions 1..linear stay at the
// initial RTO, and each later one doubles (icsk_rto << 1, at most TCP_RTO_MAX).
std::uint64_t SynSchedule::timeout_us(std::uint32_t sent_again) const noexcept {
    if (sent_again <= linear_timeouts) return std::min(initial_rto_us, max_rto_us);
    std::uint64_t rto = initial_rto_us;
    for (std::uint32_t backoff = 0; backoff < sent_again - linear_timeouts && rto < max_rto_us; ++backoff) rto *= 2;
    return std::min(rto, max_rto_us);
}

std::vector<std::uint64_t> SynSchedule::retransmit_at_us() const {
    std::vector<std::uint64_t> times;
    std::uint64_t elapsed = 0;
    for (std::uint32_t sent_again = 0; sent_again < retransmissions(); ++sent_again) {
        elapsed += timeout_us(sent_again);
        times.push_back(elapsed);
    }
    return times;
}

// tcp_write_timeout(): the timer that fires after the last retransmission ends it.
std::uint64_t SynSchedule::give_up_at_us() const noexcept {
    std::uint64_t elapsed = 0;
    for (std::uint32_t sent_again = 0; sent_again <= retransmissions(); ++sent_again) elapsed += timeout_us(sent_again);
    return elapsed;
}

}  // namespace portlab
