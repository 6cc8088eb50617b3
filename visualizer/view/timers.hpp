#pragma once
// Timers as countdowns, and playback in proportion to the trace's time.
//
// A TCP timer runs from its timer_armed event until timer_fired or timer_stopped
// (replay::Socket::timers); a viewer shows it as what is left at the cursor's
// virtual time: the retransmission timeout of RFC 6298 counting down, TIME-WAIT's
// 2*MSL (RFC 9293 3.6.1) counting down from 60 s on Linux. In time-proportional
// play the cursor's time moves between events, so a 60 s TIME-WAIT takes as long
// as 12,000 round trips of 5 ms: the time scale says how many virtual seconds pass
// per second of wall time.

#include <cstdint>
#include <string>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

// One timer running on one socket, seen at a virtual time.
struct Countdown {
    replay::SocketRef socket;
    trace::TimerKind timer = trace::TimerKind::retransmission;
    std::uint64_t duration_us = 0;   // as armed: expires_at - armed_at
    std::uint64_t remaining_us = 0;  // at the time asked for; 0 once due
    std::uint32_t attempt = 0;
    std::size_t armed_event = 0;
    // What is left of the whole, 0..1 (a bar on the slot).
    [[nodiscard]] float fraction_left() const noexcept {
        return duration_us == 0 ? 0.0f : static_cast<float>(static_cast<double>(remaining_us) / static_cast<double>(duration_us));
    }
};

// Every timer running in `world` (armed and neither fired nor stopped), at virtual
// time `at_us` (at or after world.now_us()), by host, socket and kind.
[[nodiscard]] std::vector<Countdown> countdowns(const replay::State& world, std::uint64_t at_us);
// The countdowns of one socket.
[[nodiscard]] std::vector<Countdown> countdowns_of(const replay::State& world, replay::SocketRef socket, std::uint64_t at_us);
// "TIME-WAIT 42.1 s", "RTO #2 180 ms": the timer's short name and what is left.
[[nodiscard]] std::string countdown_text(const Countdown& countdown);
// What is left, to a tenth of the unit it is best read in: "59.9 s", "180 ms", "850 us".
[[nodiscard]] std::string remaining_text(std::uint64_t us);

// Time scales a press of +/- steps through in time-proportional play: virtual
// seconds per wall second, from a thousandth (a 5 ms RTT lasts 5 s) to a thousand
// (a 60 s TIME-WAIT lasts 60 ms).
inline constexpr double time_scales[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
[[nodiscard]] double faster_time(double scale) noexcept;
[[nodiscard]] double slower_time(double scale) noexcept;
// "x0.01", "x100": how the time scale is shown.
[[nodiscard]] std::string time_scale_text(double scale);

// How many of the timeline's events happen at or before virtual time `t_us` (the
// events' times never decrease, trace.hpp).
[[nodiscard]] std::size_t events_until(const replay::Timeline& timeline, std::uint64_t t_us);

}  // namespace portlab::viz
