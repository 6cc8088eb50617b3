// The simulator's engine: the event queue (ns-3's Schedule/Cancel/Run semantics),
// determinism from the seed, and earlier states rebuilt from the trace by the replay
// model (the simulator itself only goes forwards).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "portlab/sim/event_queue.hpp"
#include "portlab/sim/flat_map.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/simulator.hpp"
#include "replay/state.hpp"

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
    REQUIRE(sim.events().size() == 2);  // the host's declaration at 0, then the first mark
    CHECK(std::holds_alternative<trace::HostAdded>(sim.events()[0].body));
    CHECK(std::get<trace::Note>(sim.events()[1].body).text == "first");
    CHECK(sim.events()[1].t_us == 2000);
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

TEST_CASE("the replay model, fed a scenario's trace, ends with the simulator's sockets", "[sim][replay]") {
    // One way back in time: the simulator only goes forwards, and any earlier state is
    // rebuilt from its events by the replay model (as the visualizer does). So the
    // replay of the whole trace must hold what the simulator holds at the end.
    for (const auto& info : scenarios()) {
        CAPTURE(info.name);
        const auto sim = run_scenario(info.name, 3);
        REQUIRE(sim);
        const replay::State replayed = replay::Timeline::of(trace::Trace{{}, sim->events()}).state_at(sim->events().size());
        for (const Host& host : sim->world().hosts) {
            CAPTURE(host.name);
            const auto replay_host = replayed.find_host(host.name);
            REQUIRE(replay_host);
            const auto& replay_sockets = replayed.hosts()[*replay_host].sockets;
            for (const Socket* socket : host.sockets()) {
                CAPTURE(socket->id.value, to_string(socket->state));
                const auto found = replay_sockets.find(socket->id);
                REQUIRE(found != replay_sockets.end());
                const replay::Socket& seen = found->second;
                CHECK(seen.protocol == socket->protocol);
                // A connection still in its listener's accept queue too: child_created carries
                // its 4-tuple (tests/test_viz_every_step.cpp holds this at every step).
                CAPTURE(seen.local ? seen.local->to_string() : "-", socket->local ? socket->local->to_string() : "-");
                CHECK(seen.local == socket->local);
                CHECK(seen.listening == socket->listening);
                if (socket->protocol == Protocol::tcp && !socket->listening) CHECK(seen.tcp_state == socket->state);
            }
        }
    }
}

TEST_CASE("every state change the trace reports is the state the model holds right after that step", "[sim][replay]") {
    // Step a connection's whole life one queued event at a time and read sim.world()
    // after each call or step: the last change each event names for a socket must be
    // the socket's state then (or the socket is gone, for CLOSED).
    Simulator sim{5};
    const HostId client = sim.add_host("client", {client_address});
    const HostId server = sim.add_host("server", {server_address});
    std::size_t seen = 0;
    std::size_t changes = 0;
    const auto check_new_events = [&] {
        std::map<std::pair<std::string, trace::SocketId>, TcpState> last;
        for (; seen < sim.events().size(); ++seen)
            if (const auto* change = std::get_if<trace::StateChanged>(&sim.events()[seen].body)) {
                last[{sim.events()[seen].host, change->socket}] = change->to;
                ++changes;
            }
        for (const auto& [where, state] : last) {
            CAPTURE(where.first, where.second.value, to_string(state));
            const auto host = sim.world().find_host(where.first);
            REQUIRE(host);
            const Socket* socket = sim.world().hosts[host->value].find(where.second);
            if (state == TcpState::closed) CHECK((socket == nullptr || socket->state == TcpState::closed));
            else {
                REQUIRE(socket != nullptr);
                CHECK(socket->state == state);
            }
        }
    };
    const auto step_until_idle = [&] {
        while (sim.step()) check_new_events();
    };
    const SocketRef listener = sim.socket(server, Protocol::tcp).value();
    REQUIRE(sim.bind(listener, {IpAddress::any_v4(), 8080}));
    REQUIRE(sim.listen(listener, 16));
    const SocketRef browser = sim.socket(client, Protocol::tcp).value();
    REQUIRE(sim.connect(browser, {server_address, 8080}));
    check_new_events();
    step_until_idle();
    const auto accepted = sim.accept(listener);
    REQUIRE(accepted);
    REQUIRE(sim.close(*accepted));  // the server closes first: FIN-WAIT-1 ... TIME-WAIT
    check_new_events();
    step_until_idle();
    REQUIRE(sim.close(browser));
    check_new_events();
    step_until_idle();
    CHECK(changes >= 8);  // both handshake sides and both closing sides, TIME-WAIT and its end
}