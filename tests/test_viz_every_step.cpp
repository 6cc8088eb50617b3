// Every built-in scenario, at every step, drawn as the simulator holds it (issue 10: "each
// scenario shows its lesson correctly at every step"). The scenario runs with an observer
// (RunLimits::observe) that reads the simulator's World after every line of the file and
// after every event the run executes, and notes how many trace events were recorded by then.
// The same trace is then opened in the view model, moved to that event, and read back as
// `portlab-viz --dump-state` writes it. What is drawn must be what the model holds:
//   slots        one per live socket: host, protocol, local endpoint, remote, TCP state (the
//                RFC's name and ss's), listening, waiting in the accept queue, pending error;
//   connections  one line per pair of sockets whose 4-tuples mirror each other, and one per
//                pair a router's conntrack entry joins (its original tuple on one, its reply
//                tuple on the other), drawn through that router with both 4-tuples;
//   pool         per host, the ephemeral range and how many of its ports each protocol holds;
//   rules        each host's input chain, rule ids and nft text in order;
//   nat          each router's conntrack entries (original and reply tuples);
//   timers       each TCP timer running (retransmission, TIME-WAIT), per socket;
//   in flight    how many packets are on a link;
//   scans        what the scanner knows of each port it probed (the replay model the
//                panels read; the dump has no scan table).
// The expectation is read from sim::World only (the hub's nft_text and ss_name spell it),
// never from the visualizer's text.
#include <catch2/catch.hpp>

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "portlab/firewall_rule.hpp"
#include "portlab/sim/scenario_file.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/trace.hpp"
#include "view/dump.hpp"
#include "view/model.hpp"

using namespace portlab;
using nlohmann::json;

namespace {

// ---- what the simulator holds at one point, as plain text to compare ----------------

struct SocketFacts {
    std::string protocol;
    std::string local;   // "" when unbound
    std::string remote;  // "" when unconnected
    std::string tcp_state;  // RFC 9293's name; "" for UDP
    std::string ss_state;   // as ss(8) prints it
    bool listening = false;
    bool awaiting_accept = false;
    std::string pending_error;  // SO_ERROR, "" when none
    friend bool operator==(const SocketFacts&, const SocketFacts&) = default;
};

struct PoolFacts {
    std::string range;
    std::size_t tcp = 0;
    std::size_t udp = 0;
    bool any_assigned = false;  // a socket holds a port the kernel chose from the range
    friend bool operator==(const PoolFacts&, const PoolFacts&) = default;
};

struct NatFacts {
    std::string original;  // "src -> dst"
    std::string reply;
    friend bool operator==(const NatFacts&, const NatFacts&) = default;
};

// (scanner host, scan type, target) -> port state ("" while no answer is known).
using ScanKey = std::tuple<std::string, std::string, std::string>;

struct Point {
    std::size_t events = 0;  // trace events recorded when the World was read
    std::map<std::pair<std::string, std::uint32_t>, SocketFacts> sockets;  // (host, socket id)
    std::set<std::tuple<std::string, std::string, std::string>> connections;  // (protocol, one end, other end), ends sorted
    // Across a translating router: (protocol, local, remote, router, far local, far remote),
    // from the connecting side.
    std::set<std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>> translated;
    std::map<std::string, PoolFacts> pools;
    std::map<std::string, std::vector<std::string>> rules;  // host -> "id: nft text", chain order
    std::set<std::string> stateful_routers;
    std::map<std::string, std::map<std::uint32_t, NatFacts>> nat;  // router -> conntrack id -> tuples
    std::map<ScanKey, std::string> scans;
    std::set<std::tuple<std::string, std::uint32_t, std::string>> timers;  // (host, socket id, timer) running
    std::size_t in_flight = 0;  // packets on a link, not yet arrived
};

std::string text_of(const std::optional<Endpoint>& endpoint) { return endpoint ? endpoint->to_string() : std::string(); }
std::string flow_text(const trace::Flow& flow) { return flow.source.to_string() + " -> " + flow.destination.to_string(); }

// How ss(8) names a socket's state (iproute2 misc/ss.c): UDP sockets carry TCP's numbers,
// ESTAB once connected, else TCP_CLOSE, printed UNCONN.
std::string ss_of(const sim::Socket& socket) {
    if (socket.protocol == Protocol::udp) return std::string(ss_name(socket.remote ? TcpState::established : TcpState::closed));
    return std::string(ss_name(socket.listening ? TcpState::listen : socket.state));
}

Point read_world(const sim::Simulator& sim) {
    const sim::World& world = sim.world();
    Point point;
    point.events = sim.events().size();
    // Connected sockets by (protocol, local, remote), to pair each with its mirror.
    std::set<std::tuple<std::string, std::string, std::string>> connected;
    for (const sim::Host& host : world.hosts) {
        PoolFacts pool;
        const PortRange range = host.options.ephemeral.range;
        pool.range = range.to_string();
        pool.tcp = range.size() - host.table(Protocol::tcp).free.count_free(range, std::nullopt);
        pool.udp = range.size() - host.table(Protocol::udp).free.count_free(range, std::nullopt);
        for (const sim::Socket* socket : host.sockets()) {
            SocketFacts facts;
            facts.protocol = std::string(to_string(socket->protocol));
            facts.local = text_of(socket->local);
            facts.remote = text_of(socket->remote);
            facts.tcp_state = socket->protocol == Protocol::tcp ? std::string(to_string(socket->state)) : std::string();
            facts.ss_state = ss_of(*socket);
            facts.listening = socket->listening;
            facts.awaiting_accept = socket->listener.has_value();
            facts.pending_error = socket->error ? std::string(sim::errno_name(*socket->error)) : std::string();
            point.sockets.emplace(std::pair{host.name, socket->id.value}, facts);
            if (socket->tcb.retransmit_timer.value != 0)
                point.timers.emplace(host.name, socket->id.value, std::string(trace::to_string(trace::TimerKind::retransmission)));
            if (socket->tcb.time_wait_timer.value != 0)
                point.timers.emplace(host.name, socket->id.value, std::string(trace::to_string(trace::TimerKind::time_wait)));
            if (socket->local && socket->remote && !socket->listening)
                connected.emplace(facts.protocol, facts.local, facts.remote);
            pool.any_assigned = pool.any_assigned || (socket->port_auto_bound && socket->local && range.contains(socket->local->port));
        }
        point.pools.emplace(host.name, pool);
        std::vector<std::string> rules;
        for (const sim::NamedRule& rule : host.firewall.input) {
            const auto text = nft_text(rule.rule);
            rules.push_back(rule.id + ": " + (text ? *text : std::string("?")));
        }
        point.rules.emplace(host.name, std::move(rules));
        if (host.routing.stateful) point.stateful_routers.insert(host.name);
        auto& table = point.nat[host.name];
        for (const sim::ConntrackEntry& entry : host.routing.conntrack)
            table.emplace(entry.id, NatFacts{flow_text(entry.original), flow_text(entry.reply)});
    }
    for (const auto& [protocol, local, remote] : connected)
        if (connected.contains({protocol, remote, local})) point.connections.emplace(protocol, std::min(local, remote), std::max(local, remote));
    // A conntrack entry whose reply is not its original turned round translated the flow
    // (RFC 3022): the socket holding the original tuple and the one holding the reply tuple
    // are the two ends of one connection, when neither has a mirror of its own.
    const auto mirrored = [&](const std::string& protocol, const std::string& local, const std::string& remote) {
        return connected.contains({protocol, remote, local});
    };
    for (const sim::Host& host : world.hosts)
        for (const sim::ConntrackEntry& entry : host.routing.conntrack) {
            if (entry.reply == sim::reversed(entry.original)) continue;
            const std::string protocol(to_string(entry.protocol));
            const std::string near_local = entry.original.source.to_string(), near_remote = entry.original.destination.to_string();
            const std::string far_local = entry.reply.source.to_string(), far_remote = entry.reply.destination.to_string();
            if (!connected.contains({protocol, near_local, near_remote}) || !connected.contains({protocol, far_local, far_remote})) continue;
            if (mirrored(protocol, near_local, near_remote) || mirrored(protocol, far_local, far_remote)) continue;
            point.translated.emplace(protocol, near_local, near_remote, host.name, far_remote, far_local);
        }
    world.queue.for_each_pending([&](const auto& entry) {
        if (std::holds_alternative<sim::Arrival>(entry.payload)) ++point.in_flight;
    });
    for (const sim::Probe& probe : world.probes) {
        const sim::Host* scanner = world.host(probe.scanner);
        if (scanner == nullptr) continue;
        const ScanKey key{scanner->name, std::string(scan::to_string(probe.type)), probe.target.to_string()};
        // A port probed twice keeps what its latest probe learned.
        std::string& state = point.scans[key];
        if (probe.result) state = std::string(scan::to_string(probe.result->state));
    }
    return point;
}

// ---- what the picture shows at the same point ----------------------------------------

std::string text_of(const json& value) { return value.is_null() ? std::string() : value.get<std::string>(); }

struct Judge {
    std::string scenario;
    std::vector<std::string> mismatches;

    void expect(const Point& point, const std::string& caption, const std::string& what, const std::string& expected,
                const std::string& drawn) {
        if (expected == drawn) return;
        std::ostringstream out;
        out << scenario << " after event " << point.events << " (" << caption << "): " << what << " should have been '" << expected
            << "', but the picture shows '" << drawn << "'";
        mismatches.push_back(out.str());
    }

    void compare(const Point& point, const viz::Model& model) {
        const json state = viz::dump_state(model);
        const std::string caption = state.contains("caption") && state.at("caption").is_string() ? state.at("caption").get<std::string>() : "";
        compare_slots(point, state, caption);
        compare_connections(point, state, caption);
        compare_hosts(point, state, caption);
        compare_scans(point, model, caption);
        compare_timers(point, state, caption);
        expect(point, caption, "packets in flight", std::to_string(point.in_flight), std::to_string(state.at("in_flight").size()));
    }

    // Each countdown drawn is a timer the model has armed, and each armed timer is drawn.
    void compare_timers(const Point& point, const json& state, const std::string& caption) {
        std::set<std::tuple<std::string, std::uint32_t, std::string>> drawn;
        for (const json& timer : state.at("timers"))
            drawn.emplace(timer.at("host").get<std::string>(), timer.at("socket").get<std::uint32_t>(), timer.at("timer").get<std::string>());
        const auto text = [](const auto& t) { return std::get<0>(t) + " socket " + std::to_string(std::get<1>(t)) + " " + std::get<2>(t) + " timer"; };
        for (const auto& t : point.timers)
            if (!drawn.contains(t)) expect(point, caption, text(t), "running", "not drawn");
        for (const auto& t : drawn)
            if (!point.timers.contains(t)) expect(point, caption, text(t), "not running", "a countdown");
    }

    void compare_slots(const Point& point, const json& state, const std::string& caption) {
        std::map<std::pair<std::string, std::uint32_t>, const json*> drawn;
        for (const json& slot : state.at("slots"))
            if (!slot.at("observed").get<bool>() && slot.contains("socket"))
                drawn.emplace(std::pair{slot.at("host").get<std::string>(), slot.at("socket").get<std::uint32_t>()}, &slot);
        for (const auto& [key, facts] : point.sockets) {
            const std::string who = key.first + " socket " + std::to_string(key.second);
            const auto found = drawn.find(key);
            // Every socket the kernel keeps has a slot, including two that ss(8) does not list
            // (sock_diag dumps only hashed sockets): one made but not yet bound, and one whose
            // connection failed (CLOSED, unhashed by tcp_done) while its program still holds the
            // descriptor; the slot shows it created or closed, with no port and no peer, which is
            // what the program has. Sockets the model has freed (closed by their program and done
            // with TCP, or a connection that ended before accept()) are in no World, and drawn nowhere.
            if (found == drawn.end()) {
                expect(point, caption, who, "a slot", "none");
                continue;
            }
            const json& slot = *found->second;
            expect(point, caption, who + " protocol", facts.protocol, slot.at("protocol").get<std::string>());
            expect(point, caption, who + " local", facts.local, text_of(slot.at("local")));
            expect(point, caption, who + " remote", facts.remote, text_of(slot.at("remote")));
            expect(point, caption, who + " TCP state", facts.tcp_state, text_of(slot.at("tcp_state")));
            expect(point, caption, who + " ss state", facts.ss_state, slot.at("ss_state").get<std::string>());
            expect(point, caption, who + " listening", facts.listening ? "yes" : "no", slot.at("state") == "listening" ? "yes" : "no");
            expect(point, caption, who + " in the accept queue", facts.awaiting_accept ? "yes" : "no",
                   slot.at("awaiting_accept").get<bool>() ? "yes" : "no");
            // The slot's mark is the errno of the last call that failed on the socket. A TCP
            // connection that fails holds its error as SO_ERROR and the blocking connect() returns
            // it at that moment (the trace's call_failed), so a pending TCP error is on the slot.
            // The converse does not hold: an EADDRINUSE bind() leaves no pending error, and
            // reading SO_ERROR clears the kernel's but not the call that failed. A connected UDP
            // socket's error from an ICMP message is pending until its next call, which fails
            // with it; no trace event says so before that call (the ICMP packet's delivery is
            // drawn), so UDP's pending errors are not compared here.
            if (!facts.pending_error.empty() && facts.protocol == "tcp")
                expect(point, caption, who + " pending error", facts.pending_error, text_of(slot.at("error")));
            drawn.erase(found);
        }
        for (const auto& [key, slot] : drawn)
            expect(point, caption, key.first + " socket " + std::to_string(key.second), "no slot (the model has no such socket)",
                   "a slot in state " + slot->at("state").get<std::string>());
    }

    void compare_connections(const Point& point, const json& state, const std::string& caption) {
        std::set<std::tuple<std::string, std::string, std::string>> drawn;
        std::set<std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>> drawn_translated;
        for (const json& line : state.at("connections")) {
            const std::string local = line.at("local").get<std::string>();
            const std::string remote = line.at("remote").get<std::string>();
            if (line.contains("via"))
                drawn_translated.emplace(line.at("protocol").get<std::string>(), local, remote, line.at("via").get<std::string>(),
                                         line.value("far_local", std::string()), line.value("far_remote", std::string()));
            else
                drawn.emplace(line.at("protocol").get<std::string>(), std::min(local, remote), std::max(local, remote));
        }
        const auto text_of_translated = [](const auto& c) {
            return std::get<0>(c) + " " + std::get<1>(c) + " -> " + std::get<2>(c) + " through " + std::get<3>(c) + " as " +
                   std::get<4>(c) + " -> " + std::get<5>(c);
        };
        for (const auto& c : point.translated)
            if (!drawn_translated.contains(c)) expect(point, caption, "translated connection " + text_of_translated(c), "a line", "none");
        for (const auto& c : drawn_translated)
            if (!point.translated.contains(c)) expect(point, caption, "translated connection " + text_of_translated(c), "no line", "a line");
        const auto text = [](const auto& c) { return std::get<0>(c) + " " + std::get<1>(c) + " <-> " + std::get<2>(c); };
        for (const auto& c : point.connections)
            if (!drawn.contains(c)) expect(point, caption, "connection " + text(c), "a line", "none");
        for (const auto& c : drawn)
            if (!point.connections.contains(c)) expect(point, caption, "connection " + text(c), "no line", "a line");
    }

    void compare_hosts(const Point& point, const json& state, const std::string& caption) {
        std::map<std::string, const json*> drawn;
        for (const json& host : state.at("hosts")) drawn.emplace(host.at("name").get<std::string>(), &host);
        for (const auto& [name, pool] : point.pools) {
            const auto found = drawn.find(name);
            // A host appears with its `host` event, the first thing the simulator records for it.
            if (found == drawn.end()) {
                expect(point, caption, "host " + name, "a box", "none");
                continue;
            }
            const json& host = *found->second;
            // The strip appears with the first port the kernel picks from the range (the event
            // that reports the range); before that no port of the range is the kernel's choice.
            const json& strip = host.at("pool");
            if (strip.is_null()) {
                if (pool.any_assigned) expect(point, caption, name + " pool", "a strip for " + pool.range, "none");
            } else {
                expect(point, caption, name + " pool range", pool.range, strip.at("range").get<std::string>());
                expect(point, caption, name + " pool TCP ports in use", std::to_string(pool.tcp),
                       std::to_string(strip.at("in_use").at("tcp").get<std::size_t>()));
                expect(point, caption, name + " pool UDP ports in use", std::to_string(pool.udp),
                       std::to_string(strip.at("in_use").at("udp").get<std::size_t>()));
            }
            // A router's stateful forward chain is recorded by another change (rule_added for
            // the forward chain, in progress); its input chain alone is not what it enforces, so
            // such routers are left out here.
            if (!point.stateful_routers.contains(name)) {
                std::vector<std::string> rules;
                for (const json& rule : host.at("rules"))
                    rules.push_back(rule.at("id").get<std::string>() + ": " + text_of(rule.at("nft")));
                expect(point, caption, name + " rules", join(point.rules.at(name)), join(rules));
            }
            std::map<std::uint32_t, NatFacts> nat;
            const auto flow = [](const json& f) { return f.at("src").get<std::string>() + " -> " + f.at("dst").get<std::string>(); };
            for (const json& row : host.at("nat"))
                nat.emplace(row.at("conntrack_id").get<std::uint32_t>(), NatFacts{flow(row.at("original")), flow(row.at("reply"))});
            expect(point, caption, name + " conntrack", nat_text(point.nat.at(name)), nat_text(nat));
        }
    }

    void compare_scans(const Point& point, const viz::Model& model, const std::string& caption) {
        std::map<ScanKey, std::string> shown;
        const auto& hosts = model.world().hosts();
        for (const auto& host : hosts)
            for (const auto& [key, port] : host.scanned)
                shown[ScanKey{host.name, std::string(scan::to_string(port.scan)), port.target.to_string()}] =
                    port.state ? std::string(scan::to_string(*port.state)) : std::string();
        for (const auto& [key, state] : point.scans) {
            const auto found = shown.find(key);
            const std::string what = "scan " + std::get<1>(key) + " of " + std::get<2>(key) + " by " + std::get<0>(key);
            expect(point, caption, what, state.empty() ? "(waiting)" : state,
                   found == shown.end() ? "not probed" : found->second.empty() ? "(waiting)" : found->second);
        }
    }

    static std::string join(const std::vector<std::string>& items) {
        std::string text;
        for (const auto& item : items) text += (text.empty() ? "" : " | ") + item;
        return text;
    }
    static std::string nat_text(const std::map<std::uint32_t, NatFacts>& table) {
        std::string text;
        for (const auto& [id, facts] : table)
            text += (text.empty() ? "" : " | ") + std::to_string(id) + ": " + facts.original + " / reply " + facts.reply;
        return text;
    }
};

// Runs a built-in scenario from its file's text, reading the World at every observation point.
struct Run {
    std::vector<Point> points;
    trace::Trace trace;
};

Run run_observed(std::string_view name, std::uint64_t seed) {
    const auto text = sim::scenario_text(name);
    REQUIRE(text);
    const auto spec = sim::parse_scenario(*text, std::string(name) + ".scenario");
    REQUIRE(spec);
    Run run;
    sim::RunLimits limits;
    limits.observe = [&](const sim::Simulator& sim) {
        run.points.push_back(read_world(sim));
    };
    auto sim = sim::run_scenario_spec(*spec, sim::SimOptions{seed}, limits);
    REQUIRE(sim);
    // Watching changes nothing: the trace is the one portlab-sim and portlab-viz make.
    const auto unobserved = sim::run_scenario(name, seed);
    REQUIRE(unobserved);
    REQUIRE(sim->events() == unobserved->events());
    // A point after every line, and more after the lines that ran events.
    CHECK(run.points.size() > spec->steps.size());
    run.trace.header.source = "sim";
    run.trace.header.scenario = std::string(name);
    run.trace.events = sim->events();
    return run;
}

void check_every_step(std::string_view name, std::uint64_t seed) {
    Run run = run_observed(name, seed);
    REQUIRE_FALSE(run.points.empty());
    viz::Model model;
    model.open_trace(std::move(run.trace), std::string(name));
    Judge judge{std::string(name) + " (seed " + std::to_string(seed) + ")", {}};
    // Every point (a scenario is a few hundred events, all of them well under a second, so
    // the sanitizer build checks every point too); seeks go forwards, one event at a time.
    for (const Point& point : run.points) {
        model.seek(point.events);
        judge.compare(point, model);
    }
    CHECK(model.position() == model.size());  // the last point is the end of the trace
    std::string report;
    for (std::size_t i = 0; i < judge.mismatches.size() && i < 40; ++i) report += judge.mismatches[i] + "\n";
    INFO(judge.mismatches.size() << " mismatches in " << run.points.size() << " points; the first:\n" << report);
    CHECK(judge.mismatches.empty());
}

}  // namespace

TEST_CASE("every built-in scenario is drawn as the simulator holds it after every step, seed 1", "[viz][sim][scenario]") {
    for (const auto& info : sim::scenarios()) {
        CAPTURE(info.name);
        check_every_step(info.name, 1);
    }
}

TEST_CASE("scenarios whose story hangs on chance are drawn as the simulator holds them with another seed", "[viz][sim][scenario]") {
    // Loss, ephemeral choices and masquerade ports depend on the seed's generator.
    for (const char* name : {"lossy-link", "two-tabs", "nat", "ephemeral-exhaustion"}) {
        CAPTURE(name);
        check_every_step(name, 7);
    }
}
