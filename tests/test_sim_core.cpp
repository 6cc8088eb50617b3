// The simulator's engine: the event queue (ns-3's Schedule/Cancel/Run semantics),
// determinism from the seed, and rebuilding any earlier state from checkpoints.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "portlab/sim/event_queue.hpp"
#include "portlab/sim/flat_map.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/simulator.hpp"

using namespace portlab;
using namespace portlab::sim;

TEST_CASE("events at the same virtual time run in the order they were scheduled", "[sim][queue]") {
    EventQueue<int> queue;
    queue.schedule_at(5, 1);
    queue.schedule_at(3, 2);
    queue.schedule_at(5, 3);
    queue.schedule_at(3, 4);
    queue.schedule_at(5, 5);
    std::vector<int> order;
    while (auto entry = queue.pop()) order.push_back(entry->payload);
    CHECK(order == std::vector<int>{2, 4, 1, 3, 5});
}

TEST_CASE("a cancelled event never runs, and cancelling twice or late is harmless", "[sim][queue]") {
    EventQueue<int> queue;
    const EventId first = queue.schedule_at(1, 1);
    const EventId second = queue.schedule_at(2, 2);
    queue.schedule_at(3, 3);
    queue.cancel(second);
    queue.cancel(second);
    CHECK(queue.size() == 2);
    REQUIRE(queue.pop()->payload == 1);
    queue.cancel(first);  // already ran
    CHECK(queue.size() == 1);
    CHECK(queue.pop()->payload == 3);
    CHECK(queue.empty());
    CHECK_FALSE(queue.pop().has_value());
}

TEST_CASE("cancelling most of many timers keeps the rest in (time, FIFO) order", "[sim][queue]") {
    // Enough cancels to make the queue sweep its stale keys several times.
    EventQueue<int> queue;
    std::vector<EventId> ids;
    for (int i = 0; i < 2000; ++i) ids.push_back(queue.schedule_at(static_cast<Time>(i % 7), i));
    std::vector<int> expected;
    for (int i = 0; i < 2000; ++i) {
        if (i % 5 == 0) expected.push_back(i);
        else queue.cancel(ids[static_cast<std::size_t>(i)]);
    }
    std::stable_sort(expected.begin(), expected.end(), [](int a, int b) { return a % 7 < b % 7; });
    CHECK(queue.size() == expected.size());
    const EventQueue<int> copy = queue;  // a snapshot compares equal to what it copied
    CHECK(copy == queue);
    std::vector<int> order;
    while (auto entry = queue.pop()) order.push_back(entry->payload);
    CHECK(order == expected);
    CHECK_FALSE(copy == queue);
}

TEST_CASE("the flat maps agree with std::map through inserts and erases", "[sim][tables]") {
    // Keys in sequence (the layout the tables are built for) and scattered ones,
    // with erases in between: every lookup must match a std::map doing the same.
    FlatMap<std::uint32_t, std::uint32_t, IntegerHash> flat;
    std::map<std::uint32_t, std::uint32_t> reference;
    Rng rng{11};
    for (std::uint32_t round = 0; round < 20000; ++round) {
        const std::uint32_t key = round % 3 == 0 ? rng.below(5000) : round;
        if (rng.below(3) == 0) {
            CHECK(flat.erase(key) == (reference.erase(key) == 1));
        } else {
            const bool inserted = flat.try_emplace(key, round).second;
            CHECK(inserted == reference.emplace(key, round).second);
        }
        if (round % 997 == 0) {
            CAPTURE(round);
            REQUIRE(flat.size() == reference.size());
            for (const auto& [k, v] : reference) {
                const std::uint32_t* found = flat.find(k);
                REQUIRE(found != nullptr);
                CHECK(*found == v);
            }
            CHECK_FALSE(flat.contains(1u << 30));
        }
    }
    FlatMap<std::uint32_t, std::uint32_t, IntegerHash> rebuilt;
    for (const auto& [k, v] : reference) rebuilt[k] = v;
    CHECK(rebuilt == flat);  // same contents, different insertion history
    rebuilt[1u << 30] = 1;
    CHECK_FALSE(rebuilt == flat);
}

TEST_CASE("the 4-tuple index finds each connection by its tuple and only that one", "[sim][tables]") {
    // Ids stand for sockets; the tuples live outside the index, as they do in Socket.
    std::map<std::uint32_t, FourTuple> sockets;
    const auto tuple_of = [&](std::uint32_t id) { return sockets.at(id); };
    IdIndex<FourTuple, FourTupleHash> index;
    const Endpoint server{IpAddress::v4(10, 0, 0, 2), 80};
    for (std::uint32_t id = 1; id <= 3000; ++id) {
        const FourTuple tuple{Endpoint{IpAddress::v4(10, 0, 0, static_cast<std::uint8_t>(1 + id % 3)),
                                       static_cast<Port>(32768 + id / 3 * 2)},
                              server};
        sockets[id] = tuple;
        REQUIRE(index.insert(tuple, id, tuple_of));
        CHECK_FALSE(index.insert(tuple, 99999, tuple_of));  // a taken tuple is refused
    }
    for (std::uint32_t id = 1; id <= 3000; id += 2) {
        CHECK(index.erase(sockets.at(id), id));
        CHECK_FALSE(index.erase(sockets.at(id), id));
    }
    for (const auto& [id, tuple] : sockets) {
        CAPTURE(id, tuple.to_string());
        CHECK(index.find(tuple, tuple_of) == (id % 2 == 0 ? id : 0));
        CHECK(index.find(tuple.reversed(), tuple_of) == 0);  // the other side's tuple is another connection
    }
    CHECK(index.size() == 1500);
}

TEST_CASE("the simulator's clock moves only by its events and run_until", "[sim][time]") {
    Simulator sim{7};
    const HostId host = sim.add_host("a", {IpAddress::v4(10, 0, 0, 1)});
    sim.schedule(5 * milliseconds, Mark{host, "second"});
    sim.schedule(2 * milliseconds, Mark{host, "first"});
    const EventId cancelled = sim.schedule(3 * milliseconds, Mark{host, "never"});
    sim.cancel(cancelled);
    CHECK(sim.now() == 0);
    sim.run_until(4 * milliseconds);
    CHECK(sim.now() == 4 * milliseconds);
    REQUIRE(sim.events().size() == 1);
    CHECK(std::get<trace::Note>(sim.events()[0].body).text == "first");
    CHECK(sim.events()[0].t_us == 2000);
    CHECK(sim.run_until_idle() == 1);
    CHECK(sim.now() == 5 * milliseconds);
    CHECK(std::get<trace::Note>(sim.events().back().body).text == "second");
    CHECK_FALSE(sim.step());
}

TEST_CASE("the same seed gives the same trace, and another seed changes the random choices", "[sim][determinism]") {
    for (const auto& info : scenarios()) {
        CAPTURE(info.name);
        const auto a = run_scenario(info.name, 42);
        const auto b = run_scenario(info.name, 42);
        REQUIRE(a);
        REQUIRE(b);
        CHECK(a->events() == b->events());
        CHECK(a->world() == b->world());
    }
    const auto one = run_scenario("web", 1);
    const auto two = run_scenario("web", 2);
    CHECK(one->events() != two->events());  // ISNs and the ephemeral port come from the seed
}

TEST_CASE("the state at event N from a checkpoint equals replaying from the start to N", "[sim][snapshot]") {
    for (const auto& info : scenarios()) {
        CAPTURE(info.name);
        SimOptions checkpointed;
        checkpointed.checkpoint_every = 16;
        SimOptions replay_only;
        replay_only.checkpoint_every = 0;  // one checkpoint: the empty world; everything is replayed
        const auto fast = run_scenario(info.name, 3, checkpointed);
        const auto slow = run_scenario(info.name, 3, replay_only);
        REQUIRE(fast);
        REQUIRE(slow);
        CHECK(fast->checkpoint_count() == 1 + fast->units() / 16);
        CHECK(slow->checkpoint_count() == 1);
        const std::size_t count = fast->events().size();
        for (std::size_t n = 0; n < count; n += std::max<std::size_t>(1, count / 13)) {
            CAPTURE(n);
            CHECK(fast->world_at_event(n) == slow->world_at_event(n));
        }
        CHECK(fast->world_after_units(fast->units()) == fast->world());
    }
}

TEST_CASE("stepping backwards: the state at an event shows what the trace says happened by then", "[sim][snapshot]") {
    const auto web = run_scenario("web", 1);
    REQUIRE(web);
    const auto& events = web->events();
    // Find the client's state change to ESTABLISHED; the rebuilt world must agree.
    for (std::size_t n = 0; n < events.size(); ++n) {
        const auto* change = std::get_if<trace::StateChanged>(&events[n].body);
        if (change == nullptr) continue;
        const World world = web->world_at_event(n);
        const auto host = world.find_host(events[n].host);
        REQUIRE(host);
        const Socket* socket = world.hosts[host->value].find(change->socket);
        CAPTURE(n, events[n].host, change->socket.value, to_string(change->to));
        if (change->to == TcpState::closed) {
            CHECK((socket == nullptr || socket->state == TcpState::closed));
        } else {
            REQUIRE(socket != nullptr);
            CHECK(socket->state == change->to);
        }
    }
}
