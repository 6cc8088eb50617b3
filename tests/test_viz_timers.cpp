// Timers as countdowns and time-proportional play, through the view model (no window):
// the countdown on a TIME-WAIT socket is 2*MSL (Linux's TCP_TIMEWAIT_LEN, 60 s; the
// simulator's TcpConfig) less the time gone since the trace armed it; a retransmission
// timer counts down from the duration the trace armed it with; playing in proportion to
// the trace's time reaches an event when its time has passed, not before.
#include <catch2/catch.hpp>

#include <string>

#include "portlab/sim/world.hpp"
#include "portlab/trace.hpp"
#include "view/dump.hpp"
#include "view/model.hpp"
#include "view/timers.hpp"
#include "view/view_state.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

struct Opened {
    Model model;
    ViewState view;
};

void open(Opened& opened, const std::string& scenario) {
    REQUIRE(opened.model.open_scenario(scenario).has_value());
    sync_with_model(opened.model, opened.view);
}

// The first timer_armed event of this kind at or after `from`.
std::optional<std::size_t> armed(const replay::Timeline& timeline, trace::TimerKind kind, std::size_t from = 0) {
    for (std::size_t i = from; i < timeline.size(); ++i)
        if (const auto* timer = std::get_if<trace::TimerArmed>(&timeline.event(i).body); timer && timer->timer == kind) return i;
    return std::nullopt;
}

// The event that ends the timer armed at `at` (fired or stopped on the same host and socket).
std::optional<std::size_t> ended(const replay::Timeline& timeline, std::size_t at) {
    const auto& event = timeline.event(at);
    const auto& timer = std::get<trace::TimerArmed>(event.body);
    for (std::size_t i = at + 1; i < timeline.size(); ++i) {
        const auto& later = timeline.event(i);
        if (later.host != event.host) continue;
        if (const auto* fired = std::get_if<trace::TimerFired>(&later.body); fired && fired->socket == timer.socket && fired->timer == timer.timer)
            return i;
        if (const auto* stopped = std::get_if<trace::TimerStopped>(&later.body); stopped && stopped->socket == timer.socket && stopped->timer == timer.timer)
            return i;
        if (const auto* again = std::get_if<trace::TimerArmed>(&later.body); again && again->socket == timer.socket && again->timer == timer.timer)
            return i;
    }
    return std::nullopt;
}

// The dump's timer of this kind on this socket, by the event that armed it.
nlohmann::json dumped_timer(const nlohmann::json& state, std::size_t armed_event) {
    for (const auto& timer : state.at("timers"))
        if (timer.at("armed_event").get<std::size_t>() == armed_event) return timer;
    FAIL("no timer armed at event " << armed_event << " in " << state.at("timers").dump());
    return {};
}

}  // namespace

TEST_CASE("TIME-WAIT's countdown is 2*MSL less the time gone since it was armed, at every event it runs through",
          "[viz][timers][time-wait]") {
    Opened o;
    open(o, "time-wait");
    const auto& timeline = o.model.timeline();
    const auto at = armed(timeline, trace::TimerKind::time_wait);
    REQUIRE(at);
    const auto& armed_event = timeline.event(*at);
    const auto& timer = std::get<trace::TimerArmed>(armed_event.body);
    // Linux: TCP_TIMEWAIT_LEN (60*HZ, include/net/tcp.h); the simulator: 2 * TcpConfig::msl.
    CHECK(timer.duration_us == 60'000'000);
    CHECK(timer.duration_us == 2 * sim::TcpConfig{}.msl);

    const auto end = ended(timeline, *at);
    REQUIRE(end);
    REQUIRE(*end > *at + 1);
    std::size_t checked = 0;
    for (std::size_t n = *at + 1; n <= *end; ++n) {
        seek_to(o.model, o.view, n);
        const auto elapsed = timeline.event(n - 1).t_us - armed_event.t_us;
        const auto state = dump_state(o.model, o.view);
        CAPTURE(n, elapsed);
        const auto dumped = dumped_timer(state, *at);
        CHECK(dumped.at("timer") == "time-wait");
        CHECK(dumped.at("duration_us").get<std::uint64_t>() == timer.duration_us);
        CHECK(dumped.at("remaining_us").get<std::uint64_t>() == timer.duration_us - elapsed);
        ++checked;
        if (n == *end) break;
    }
    CHECK(checked > 0);

    SECTION("between events, at a chosen virtual time, the countdown reads that time") {
        const std::uint64_t half = armed_event.t_us + timer.duration_us / 2;
        REQUIRE(half < timeline.event(*end).t_us);
        seek_to_time(o.model, o.view, half);
        CHECK(cursor_time_us(o.model, o.view) == half);
        CHECK(o.model.position() == events_until(timeline, half));
        const auto dumped = dumped_timer(dump_state(o.model, o.view), *at);
        CHECK(dumped.at("remaining_us").get<std::uint64_t>() == timer.duration_us / 2);
        CHECK(dumped.at("text") == "TIME-WAIT 30.0 s");
    }
    SECTION("once fired, it is gone") {
        seek_to(o.model, o.view, *end + 1);
        const auto state = dump_state(o.model, o.view);  // kept: the loop reads into it
        for (const auto& t : state.at("timers")) CHECK(t.at("armed_event").get<std::size_t>() != *at);
    }
}

TEST_CASE("a retransmission timer counts down from the duration the trace armed it with", "[viz][timers][rto]") {
    Opened o;
    open(o, "lossy-link");
    const auto& timeline = o.model.timeline();
    std::size_t checked = 0;
    for (auto at = armed(timeline, trace::TimerKind::retransmission); at; at = armed(timeline, trace::TimerKind::retransmission, *at + 1)) {
        const auto& armed_event = timeline.event(*at);
        const auto& timer = std::get<trace::TimerArmed>(armed_event.body);
        seek_to(o.model, o.view, *at + 1);
        auto dumped = dumped_timer(dump_state(o.model, o.view), *at);
        CHECK(dumped.at("duration_us").get<std::uint64_t>() == timer.duration_us);
        CHECK(dumped.at("attempt").get<std::uint32_t>() == timer.attempt);
        // The event right after it is as late as the countdown is short.
        const auto end = ended(timeline, *at);
        if (end && *end > *at + 1) {
            seek_to(o.model, o.view, *at + 2);
            const auto elapsed = timeline.event(*at + 1).t_us - armed_event.t_us;
            dumped = dumped_timer(dump_state(o.model, o.view), *at);
            CHECK(dumped.at("remaining_us").get<std::uint64_t>() == timer.duration_us - std::min(elapsed, timer.duration_us));
        }
        ++checked;
    }
    CHECK(checked > 0);
    // A retransmission the story tells: some timer fired and was armed again with a later attempt.
    bool backed_off = false;
    for (std::size_t i = 0; i < timeline.size(); ++i)
        if (const auto* timer = std::get_if<trace::TimerArmed>(&timeline.event(i).body); timer && timer->attempt > 0) backed_off = true;
    CHECK(backed_off);
}

TEST_CASE("time-proportional play reaches an event when the trace's time has passed, and a TIME-WAIT takes 2*MSL of it",
          "[viz][timers][playback]") {
    Opened o;
    open(o, "time-wait");
    const auto& timeline = o.model.timeline();
    const auto at = armed(timeline, trace::TimerKind::time_wait);
    REQUIRE(at);
    const auto end = ended(timeline, *at);
    REQUIRE(end);
    const std::uint64_t armed_t = timeline.event(*at).t_us;
    const std::uint64_t fired_t = timeline.event(*end).t_us;
    REQUIRE(fired_t - armed_t == 60'000'000);

    set_proportional(o.view, true);
    o.view.playback.time_scale = 1.0;
    seek_to(o.model, o.view, *at + 1);
    REQUIRE(timeline.event(*at + 1).t_us < fired_t);  // nothing else ends the wait: play through the quiet
    seek_to_time(o.model, o.view, timeline.event(*end - 1).t_us);
    const std::size_t before_end = o.model.position();
    REQUIRE(before_end == *end);
    apply(Command::toggle_play, o.model, o.view);
    REQUIRE(o.view.playback.playing);
    // 59 seconds of wall time at x1: still in TIME-WAIT, the countdown about a second.
    const std::uint64_t gap = fired_t - cursor_time_us(o.model, o.view);
    REQUIRE(gap > 1'000'000);
    const double short_of_it = static_cast<double>(gap - 1'000'000) / 1e6;
    CHECK_FALSE(advance(o.model, o.view, short_of_it));
    CHECK(o.model.position() == before_end);
    CHECK(cursor_time_us(o.model, o.view) == fired_t - 1'000'000);
    CHECK(dumped_timer(dump_state(o.model, o.view), *at).at("remaining_us").get<std::uint64_t>() == 1'000'000);
    // One more second: the timer fires.
    CHECK(advance(o.model, o.view, 1.0));
    CHECK(o.model.position() >= *end + 1);

    SECTION("the time scale compresses it: x1000 makes the 60 s wait 60 ms") {
        seek_to(o.model, o.view, *at + 1);
        o.view.playback.time_scale = 1000;
        o.view.playback.playing = true;
        advance(o.model, o.view, 0.059);
        CHECK(o.model.position() <= *end);
        advance(o.model, o.view, 0.002);
        CHECK(o.model.position() >= *end + 1);
    }
    SECTION("+ and - change the time scale, not the beat, in time-proportional play") {
        const double beat = o.view.playback.speed;
        apply(Command::faster, o.model, o.view);
        CHECK(o.view.playback.time_scale == 2.0);
        apply(Command::slower, o.model, o.view);
        apply(Command::slower, o.model, o.view);
        CHECK(o.view.playback.time_scale == 0.5);
        CHECK(o.view.playback.speed == beat);
    }
    SECTION("paused, nothing moves by itself (the app sleeps) and the countdown holds") {
        seek_to(o.model, o.view, *at + 1);
        o.view.playback.playing = true;
        advance(o.model, o.view, 2.0);
        apply(Command::toggle_play, o.model, o.view);
        CHECK_FALSE(o.view.playback.playing);
        CHECK(cursor_time_us(o.model, o.view) == armed_t + 2'000'000);
        const auto held = cursor_time_us(o.model, o.view);
        CHECK_FALSE(moves_by_itself(o.model, o.view));
        CHECK_FALSE(advance(o.model, o.view, 5.0));
        CHECK(cursor_time_us(o.model, o.view) == held);
    }
}

TEST_CASE("a 5 ms round trip and a 60 s TIME-WAIT take times in proportion, one beat each in event play",
          "[viz][timers][playback]") {
    Opened o;
    open(o, "time-wait");
    const auto& timeline = o.model.timeline();
    // Event play: every event one beat, whatever the time between.
    apply(Command::toggle_play, o.model, o.view);
    o.view.playback.phase = 0.0;
    advance(o.model, o.view, seconds_per_event * 2.5);
    CHECK(o.model.position() == 2);
    // Time-proportional play from the start: after a tenth of a second at x1, every event
    // of the first 100 ms is applied, and none later.
    seek_to(o.model, o.view, 0);
    set_proportional(o.view, true);
    o.view.playback.playing = true;
    advance(o.model, o.view, 0.1);
    CHECK(o.model.position() == events_until(timeline, cursor_time_us(o.model, o.view)));
    CHECK(cursor_time_us(o.model, o.view) == 100'000);
    if (o.model.position() < o.model.size()) CHECK(timeline.event(o.model.position()).t_us > 100'000);
}

TEST_CASE("countdown words and time scales", "[viz][timers]") {
    CHECK(remaining_text(60'000'000) == "60.0 s");
    CHECK(remaining_text(180'000) == "180.0 ms");
    CHECK(remaining_text(850) == "850 us");
    CHECK(faster_time(1000) == 1000);
    CHECK(slower_time(0.001) == 0.001);
    CHECK(faster_time(1) == 2);
    CHECK(time_scale_text(0.01) == "x0.01");
}
