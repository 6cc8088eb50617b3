// The simulator's engine: the event queue (ns-3's Schedule/Cancel/Run semantics),
// determinism from the seed, and rebuilding any earlier state from checkpoints.
#include <catch2/catch.hpp>

#include "portlab/sim/event_queue.hpp"
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
