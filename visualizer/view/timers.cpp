#include "view/timers.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace portlab::viz {

std::vector<Countdown> countdowns(const replay::State& world, std::uint64_t at_us) {
    std::vector<Countdown> all;
    for (replay::HostIndex h = 0; h < world.hosts().size(); ++h)
        for (const auto& [id, socket] : world.hosts()[h].sockets) {
            auto mine = countdowns_of(world, replay::SocketRef{h, id}, at_us);
            all.insert(all.end(), mine.begin(), mine.end());
        }
    return all;
}

std::vector<Countdown> countdowns_of(const replay::State& world, replay::SocketRef ref, std::uint64_t at_us) {
    std::vector<Countdown> mine;
    const auto* socket = world.find_socket(ref);
    if (!socket) return mine;
    // Never before the last event applied: the world holds what was true from then on.
    const std::uint64_t now = std::max(at_us, world.now_us());
    for (const auto& [kind, timer] : socket->timers)
        mine.push_back(Countdown{ref, kind, timer.expires_at_us - timer.armed_at_us, timer.remaining_us(now), timer.attempt,
                                 timer.armed_event});
    return mine;
}

std::string remaining_text(std::uint64_t us) {
    char text[32];
    if (us >= 1'000'000) std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(us) / 1e6);
    else if (us >= 1'000) std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(us) / 1e3);
    else std::snprintf(text, sizeof text, "%llu us", static_cast<unsigned long long>(us));
    return text;
}

std::string countdown_text(const Countdown& countdown) {
    std::string name;
    switch (countdown.timer) {
        case trace::TimerKind::retransmission:
            name = "RTO";
            if (countdown.attempt > 0) name += " #" + std::to_string(countdown.attempt);
            break;
        case trace::TimerKind::time_wait: name = "TIME-WAIT"; break;
        case trace::TimerKind::keepalive: name = "keepalive"; break;
        case trace::TimerKind::persist: name = "persist"; break;
        case trace::TimerKind::delayed_ack: name = "delayed ACK"; break;
    }
    return name + " " + remaining_text(countdown.remaining_us);
}

double faster_time(double scale) noexcept {
    for (const double step : time_scales)
        if (step > scale * (1 + 1e-9)) return step;
    return std::end(time_scales)[-1];
}

double slower_time(double scale) noexcept {
    for (auto it = std::rbegin(time_scales); it != std::rend(time_scales); ++it)
        if (*it < scale * (1 - 1e-9)) return *it;
    return time_scales[0];
}

std::string time_scale_text(double scale) {
    char text[32];
    std::snprintf(text, sizeof text, "x%g", scale);
    return text;
}

std::size_t events_until(const replay::Timeline& timeline, std::uint64_t t_us) {
    const auto& events = timeline.events();
    const auto after = std::upper_bound(events.begin(), events.end(), t_us,
                                        [](std::uint64_t t, const trace::Event& event) { return t < event.t_us; });
    return static_cast<std::size_t>(after - events.begin());
}

}  // namespace portlab::viz
