// The simulator's TCP timers in the trace (timer_armed, timer_fired, timer_stopped): a SYN
// nobody answers arms the retransmission timer for the waits Linux's SYN schedule has
// (net/ipv4/tcp_timer.c), TIME-WAIT arms 2*MSL = 60 s (TCP_TIMEWAIT_LEN), an answer
// stops the timer, and in every scenario each armed timer fires or is stopped, once.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "portlab/sim/scenarios.hpp"
#include "portlab/trace.hpp"
#include "test_sim_script.hpp"

using namespace portlab;
using namespace portlab::sim;
using portlab::sim::test::Script;

namespace {

const IpAddress a_client = IpAddress::v4(10, 0, 0, 1);
const IpAddress a_server = IpAddress::v4(10, 0, 0, 2);

// "duration_s/attempt" of each retransmission timer armed on `host`.
std::vector<std::string> armed_retransmission_timers(const Simulator& sim, const std::string& host) {
    std::vector<std::string> armed;
    for (const auto& event : sim.events())
        if (const auto* timer = std::get_if<trace::TimerArmed>(&event.body);
            timer && event.host == host && timer->timer == trace::TimerKind::retransmission)
            armed.push_back(std::to_string(timer->duration_us / seconds) + "/" + std::to_string(timer->attempt));
    return armed;
}

template <class Body>
std::size_t count_of(const Simulator& sim, const std::string& host, trace::TimerKind kind) {
    std::size_t n = 0;
    for (const auto& event : sim.events())
        if (const auto* body = std::get_if<Body>(&event.body); body && event.host == host && body->timer == kind) ++n;
    return n;
}

}  // namespace

TEST_CASE("a SYN to a dropping firewall arms the retransmission timer for the waits of Linux's SYN schedule", "[sim][timer]") {
    Script s;
    const HostId client = s.step("add host client 10.0.0.1").add_host("client", {a_client});
    const HostId server = s.step("add host server 10.0.0.2").add_host("server", {a_server});
    (void)s.step("server firewall: DROP tcp dport 22").add_firewall_rule(server, drop_port(Protocol::tcp, 22)).value();
    const SocketRef c = s.step("client: socket(TCP)").socket(client, Protocol::tcp).value();
    (void)s.step("connect 10.0.0.2:22").connect(c, {a_server, 22});
    s.step("run until idle").run_until_idle();
    // Linux 6.5+ (tcp_retransmit_timer, tcp_write_timeout): 1 s after the SYN and after each of
    // the first tcp_syn_linear_timeouts = 4 retransmissions, then doubling, for tcp_syn_retries
    // + tcp_syn_linear_timeouts = 10 retransmissions; the timer after the 10th ends connect().
    const std::vector<std::string> expected{"1/0", "1/1", "1/2", "1/3", "1/4", "2/5", "4/6", "8/7", "16/8", "32/9", "64/10"};
    s.expect("retransmission timers armed (s/attempt)", fmt::format("{}", fmt::join(armed_retransmission_timers(s.sim, "client"), " ")),
             fmt::format("{}", fmt::join(expected, " ")));
    s.expect("timers fired", count_of<trace::TimerFired>(s.sim, "client", trace::TimerKind::retransmission), expected.size());
    s.expect("timers stopped", count_of<trace::TimerStopped>(s.sim, "client", trace::TimerKind::retransmission), std::size_t{0});
    s.expect("connect() gave up at (s)", s.sim.now() / seconds, std::uint64_t{131});
}

TEST_CASE("an answered SYN stops its timer, and TIME-WAIT arms 2*MSL = 60 s", "[sim][timer]") {
    const auto sim = run_scenario("web");
    REQUIRE(sim);
    // The client's SYN: armed for 1 s (TCP_TIMEOUT_INIT), stopped by the SYN,ACK before the
    // client enters ESTABLISHED.
    std::optional<std::size_t> armed, stopped, established;
    for (std::size_t n = 0; n < sim->events().size(); ++n) {
        const auto& event = sim->events()[n];
        if (event.host != "client") continue;
        if (const auto* t = std::get_if<trace::TimerArmed>(&event.body); t && !armed) {
            armed = n;
            CHECK(t->duration_us == 1 * seconds);
            CHECK(t->attempt == 0);
        }
        if (std::holds_alternative<trace::TimerStopped>(event.body) && !stopped) stopped = n;
        if (const auto* c = std::get_if<trace::StateChanged>(&event.body); c && c->to == TcpState::established) established = n;
    }
    REQUIRE(armed);
    REQUIRE(stopped);
    REQUIRE(established);
    CHECK(*armed < *stopped);
    CHECK(*stopped < *established);
    // The server closed first: its connection waits in TIME-WAIT for TCP_TIMEWAIT_LEN (60 s).
    bool time_wait_armed = false;
    for (const auto& event : sim->events())
        if (const auto* t = std::get_if<trace::TimerArmed>(&event.body); t && t->timer == trace::TimerKind::time_wait) {
            CHECK(event.host == "server");
            CHECK(t->duration_us == 60 * seconds);
            time_wait_armed = true;
        }
    CHECK(time_wait_armed);
    CHECK(count_of<trace::TimerFired>(*sim, "server", trace::TimerKind::time_wait) == 1);
}

TEST_CASE("in every scenario each armed timer fires at its time or is stopped before, exactly once", "[sim][timer]") {
    for (const auto& info : scenarios()) {
        CAPTURE(info.name);
        const auto sim = run_scenario(info.name);
        REQUIRE(sim);
        // (host, socket, kind) -> when the armed timer is due
        std::map<std::tuple<std::string, std::uint32_t, trace::TimerKind>, std::uint64_t> running;
        for (const auto& event : sim->events()) {
            if (const auto* t = std::get_if<trace::TimerArmed>(&event.body)) {
                CAPTURE(event.host, t->socket.value, trace::to_string(t->timer), event.t_us);
                CHECK(running.emplace(std::tuple{event.host, t->socket.value, t->timer}, event.t_us + t->duration_us).second);
            } else if (const auto* f = std::get_if<trace::TimerFired>(&event.body)) {
                CAPTURE(event.host, f->socket.value, trace::to_string(f->timer), event.t_us);
                const auto due = running.find({event.host, f->socket.value, f->timer});
                REQUIRE(due != running.end());
                CHECK(due->second == event.t_us);
                running.erase(due);
            } else if (const auto* s = std::get_if<trace::TimerStopped>(&event.body)) {
                CAPTURE(event.host, s->socket.value, trace::to_string(s->timer), event.t_us);
                const auto due = running.find({event.host, s->socket.value, s->timer});
                REQUIRE(due != running.end());
                CHECK(event.t_us <= due->second);
                running.erase(due);
            }
        }
    }
}
