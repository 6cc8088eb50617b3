// Seeking, as the visualizer does it (the nearest sparse checkpoint, then the events
// after it), gives the very world that replaying the trace from its first event gives:
// at every event of every scenario, and at sampled events of a generated run of
// 100,000 connections (issue 13: "seeking to any event gives the same state as
// replaying from the start"). Checkpoints are whole worlds taken sparsely
// (TimelineOptions: at least 256 events apart, and as many as the world holds
// sockets), so their memory stays linear in the events.
#include <catch2/catch.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/simulator.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"

using namespace portlab;

namespace {

// The first n where seeking and replaying disagree, checking every `stride`-th event
// and the last; replaying applies each event once, in order, from an empty world.
std::optional<std::size_t> first_disagreement(const replay::Timeline& timeline, std::size_t stride) {
    replay::State replayed;
    replay::State cursor;  // moved by seek(), as the window's cursor is
    for (std::size_t n = 0;; ++n) {
        if (n % stride == 0 || n == timeline.size()) {
            if (!(timeline.state_at(n) == replayed)) return n;
            timeline.seek(cursor, n);
            if (!(cursor == replayed)) return n;
        }
        if (n == timeline.size()) return std::nullopt;
        replayed.apply(timeline.event(n));
    }
}

}  // namespace

TEST_CASE("seeking to any event of any scenario gives the world replayed from the start", "[replay][timeline][scenario]") {
    // The viewer's options, and checkpoints far denser than its, so that every
    // scenario's seeks start from a checkpoint other than the empty world.
    const auto options = GENERATE(replay::TimelineOptions{}, replay::TimelineOptions{8, true}, replay::TimelineOptions{5, false});
    CAPTURE(options.min_interval, options.adaptive);
    for (const sim::ScenarioInfo& info : sim::scenarios()) {
        CAPTURE(info.name);
        const auto run = sim::run_scenario(info.name);
        REQUIRE(run);
        const replay::Timeline timeline = replay::Timeline::of(trace::Trace{{}, run->events()}, options);
        REQUIRE(timeline.size() == run->events().size());
        CHECK(first_disagreement(timeline, 1) == std::nullopt);

        // Backwards too: from the end to every event, one step at a time.
        replay::State cursor = timeline.state_at(timeline.size());
        for (std::size_t n = timeline.size(); n-- > 0;) {
            timeline.seek(cursor, n);
            if (!(cursor == timeline.state_at(n))) {
                FAIL_CHECK("stepping back to event " << n << " should have given the world after " << n
                                                     << " events, but instead it differed");
                break;
            }
        }
    }
}

TEST_CASE("seeking in a generated run of 100,000 connections gives the world replayed from the start",
          "[replay][timeline][sim]") {
    // Short connections one after another from kernel-chosen ports: handshake, accept,
    // the client resets (SO_LINGER 0), the server closes its end. The trace is handed to
    // the timeline a thousand connections at a time, as a loader hands blocks over, and
    // dropped from the simulator, so the test holds one copy of it.
    constexpr int connections = 100'000;
    sim::Simulator simulator;
    const auto client = simulator.add_host("client", {sim::client_address});
    const auto server = simulator.add_host("server", {sim::server_address});
    const auto listener = simulator.socket(server, Protocol::tcp).value();
    REQUIRE(simulator.bind(listener, Endpoint{IpAddress::any_v4(), 8080}));
    REQUIRE(simulator.listen(listener, 16));
    replay::Timeline timeline(trace::TraceHeader{});
    std::size_t established = 0;
    for (int i = 0; i < connections; ++i) {
        const auto c = simulator.socket(client, Protocol::tcp).value();
        REQUIRE(simulator.connect(c, Endpoint{sim::server_address, 8080}));
        simulator.run_until_idle();
        const auto s = simulator.accept(listener);
        REQUIRE(s);
        if (const auto* socket = simulator.find_socket(*s); socket != nullptr && socket->state == TcpState::established) ++established;
        REQUIRE(simulator.set_linger_zero(c));
        REQUIRE(simulator.close(c));
        simulator.run_until_idle();
        REQUIRE(simulator.close(*s));
        simulator.run_until_idle();
        if ((i + 1) % 1000 == 0) {
            timeline.append(simulator.events().to_vector());
            simulator.clear_events();
        }
    }
    CHECK(established == static_cast<std::size_t>(connections));
    CAPTURE(timeline.size(), timeline.checkpoint_count());
    REQUIRE(timeline.size() > static_cast<std::size_t>(connections) * 10);
    // Every 97th event: 97 is prime to the events per connection and to the checkpoints'
    // spacing, so the samples fall at every phase of a connection and of a checkpoint.
    CHECK(first_disagreement(timeline, 97) == std::nullopt);
}
