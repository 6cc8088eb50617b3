// Seeking, as the visualizer does it (the nearest sparse checkpoint, then the events
// after it), gives the very world that replaying the trace from its first event gives:
// at every event of every scenario, and at sampled events of a generated run of
// 100,000 connections (issue 13: "seeking to any event gives the same state as
// replaying from the start"). Checkpoints are worlds taken sparsely (TimelineOptions:
// at least 256 events apart, and as many as the world holds sockets) that share the
// sockets they have in common (replay::PagedMap, copy on write), so their memory stays
// linear in the events; a change to one world must never show in another.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/simulator.hpp"
#include "portlab/trace.hpp"
#include "replay/paged_map.hpp"
#include "replay/state.hpp"

using namespace portlab;

namespace {

// Under ASan + UBSan (CI's Debug build, some 30x slower: 10,000 connections took 14 s,
// so 100,000 would take over two minutes) the generated runs are a 25th as long (4,000
// connections), so the suite stays within seconds; the unsanitized build runs them
// whole. The sanitizers look for memory errors, which the shorter run reaches as well:
// every code path runs thousands of times.
#if defined(__SANITIZE_ADDRESS__)
constexpr int run_divisor = 25;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int run_divisor = 25;
#else
constexpr int run_divisor = 1;
#endif
#else
constexpr int run_divisor = 1;
#endif

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

// Short connections one after another from kernel-chosen ports, after `kept` connections
// that stay open: handshake, accept, the client resets (SO_LINGER 0), the server closes
// its end. The trace is handed to the timeline a thousand connections at a time, as a
// loader hands blocks over, and dropped from the simulator, so the test holds one copy.
replay::Timeline run_connections(int kept, int connections) {
    sim::Simulator simulator;
    const auto client = simulator.add_host("client", {sim::client_address});
    const auto server = simulator.add_host("server", {sim::server_address});
    const auto listener = simulator.socket(server, Protocol::tcp).value();
    REQUIRE(simulator.bind(listener, Endpoint{IpAddress::any_v4(), 8080}));
    REQUIRE(simulator.listen(listener, 16));
    replay::Timeline timeline(trace::TraceHeader{});
    std::size_t established = 0;
    for (int i = 0; i < kept + connections; ++i) {
        const auto c = simulator.socket(client, Protocol::tcp).value();
        REQUIRE(simulator.connect(c, Endpoint{sim::server_address, 8080}));
        simulator.run_until_idle();
        const auto s = simulator.accept(listener);
        REQUIRE(s);
        if (const auto* socket = simulator.find_socket(*s); socket != nullptr && socket->state == TcpState::established) ++established;
        if (i >= kept) {
            REQUIRE(simulator.set_linger_zero(c));
            REQUIRE(simulator.close(c));
            simulator.run_until_idle();
            REQUIRE(simulator.close(*s));
            simulator.run_until_idle();
        }
        if ((i + 1) % 1000 == 0 || i + 1 == kept + connections) {
            timeline.append(simulator.events().to_vector());
            simulator.clear_events();
        }
    }
    CHECK(established == static_cast<std::size_t>(kept + connections));
    return timeline;
}

}  // namespace

TEST_CASE("a PagedMap reads as a std::map of the same entries, and its copies never see each other's changes",
          "[replay][timeline]") {
    // Random changes to one map, a copy of it taken every 64 changes (as checkpoints
    // are), and the same changes to a std::map beside it; at the end every copy must
    // still hold what the std::map held when it was taken. Ids mostly count up, as
    // writers hand them out, with some scattered far apart (a page each).
    std::mt19937 random(13);
    replay::PagedMap<int> map;
    std::map<std::uint32_t, int> model;
    std::vector<std::pair<replay::PagedMap<int>, std::map<std::uint32_t, int>>> copies;
    std::uint32_t next_id = 1;
    const auto pick_id = [&]() -> std::uint32_t {
        switch (random() % 4) {
            case 0: return next_id++;
            case 1: return 4'000'000'000u + random() % 100;
            default: return 1 + random() % next_id;
        }
    };
    for (int step = 0; step < 10'000; ++step) {
        const trace::SocketId id{pick_id()};
        const int value = static_cast<int>(random() % 1000);
        switch (random() % 3) {
            case 0: {
                const bool added = map.insert_or_assign(id, value).second;
                CHECK(added == model.insert_or_assign(id.value, value).second);
                break;
            }
            case 1: CHECK(map.erase(id) == (model.erase(id.value) == 1)); break;
            default: {
                int* found = map.find_to_change(id);
                const auto in_model = model.find(id.value);
                REQUIRE((found != nullptr) == (in_model != model.end()));
                if (found != nullptr) *found = in_model->second = value;
            }
        }
        if (step % 64 == 0) copies.emplace_back(map, model);
    }
    copies.emplace_back(map, model);
    replay::PagedMap<int> moved = std::move(map);
    CHECK(moved == copies.back().first);
    CHECK(map.empty());  // NOLINT(bugprone-use-after-move): a map moved from is empty, as PagedMap says
    CHECK(map.begin() == map.end());
    for (std::size_t i = 0; i < copies.size(); ++i) {
        const auto& [paged, expected] = copies[i];
        CAPTURE(i);
        REQUIRE(paged.size() == expected.size());
        std::vector<std::pair<std::uint32_t, int>> read;
        for (const auto& [id, value] : paged) read.emplace_back(id.value, value);
        CHECK(read == std::vector<std::pair<std::uint32_t, int>>(expected.begin(), expected.end()));
        for (const auto& [id, value] : expected) {
            const auto found = paged.find(trace::SocketId{id});
            REQUIRE(found != paged.end());
            CHECK(found->second == value);
        }
        CHECK(paged.find(trace::SocketId{next_id + 1}) == paged.end());
    }
}

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
    constexpr int connections = 100'000 / run_divisor;
    const replay::Timeline timeline = run_connections(0, connections);
    CAPTURE(timeline.size(), timeline.checkpoint_count());
    REQUIRE(timeline.size() > std::size_t{connections} * 10);
    // Every 97th event: 97 is prime to the events per connection and to the checkpoints'
    // spacing, so the samples fall at every phase of a connection and of a checkpoint.
    CHECK(first_disagreement(timeline, 97) == std::nullopt);
}

TEST_CASE("seeking in a run that keeps 3,000 connections open gives the world replayed from the start, both ways",
          "[replay][timeline][sim]") {
    // 6,001 sockets live while 20,000 more connections come and go: the checkpoints
    // share most of their sockets' pages with each other and with the world a seek
    // changes, so a change that reached a shared page would show here.
    constexpr int kept = 3000 / run_divisor;
    const replay::Timeline timeline = run_connections(kept, 20'000 / run_divisor);
    CAPTURE(timeline.size(), timeline.checkpoint_count());
    REQUIRE(timeline.state_at(timeline.size()).socket_count() == 2 * kept + 1);
    CHECK(first_disagreement(timeline, 401) == std::nullopt);
    // Backwards from the end, a step of 1,009 events at a time (from the nearest
    // checkpoint each time), against copies of one world replayed from the start.
    constexpr std::size_t step = 1009;
    std::vector<replay::State> replayed_at;  // replayed_at[k]: after size() - k * step events
    replay::State replayed;
    for (std::size_t i = 0; i <= timeline.size(); ++i) {
        if ((timeline.size() - i) % step == 0) replayed_at.push_back(replayed);
        if (i < timeline.size()) replayed.apply(timeline.event(i));
    }
    replay::State cursor = timeline.state_at(timeline.size());
    for (std::size_t k = 0; k < replayed_at.size(); ++k) {
        const replay::State& expected = replayed_at[replayed_at.size() - 1 - k];
        timeline.seek(cursor, expected.applied());
        if (!(cursor == expected)) {
            FAIL_CHECK("seeking back to event " << expected.applied()
                                                << " should have given the world replayed to it, but instead it differed");
            break;
        }
    }
}
