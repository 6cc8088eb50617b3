// One story told twice: lab 18 puts a stateful forward chain into a real router and scans
// through it (its --json facts come from connect()'s errno, recv() and the rules' counters
// as nft lists them), and the simulator's `stateful-firewall` scenario tells it on the
// model, with the same services. Both must agree: the inside's connection out works, the
// outside's connect() gets no answer, and every scan type reports the same state for the
// open port and the closed one.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/firewall_rule.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"
#include "lab_vs_sim.hpp"

using nlohmann::json;
using namespace portlab;

TEST_CASE("lab 18 on the kernel and the simulator's stateful-firewall scenario agree on what passes and what scans report",
          "[lab18][sim][conntrack][netns]") {
    const test::TempDir dir;
    const auto facts = test::lab_facts("lab18_stateful_firewall", "--timeout 500 --trace " + test::shell_quote(dir.file("lab18.jsonl")), 110);

    const auto model = sim::run_scenario("stateful-firewall");
    REQUIRE(model);

    // Inside out: the kernel's TCP connection came up; so did the model's.
    CHECK(facts.at("inside_out").at("tcp_connected") == true);
    bool model_inside_out = false;
    for (const auto& event : model->events())
        if (const auto* change = std::get_if<trace::StateChanged>(&event.body); change && event.host == "server")
            model_inside_out = model_inside_out || (change->from == TcpState::syn_sent && change->to == TcpState::established);
    CHECK(model_inside_out);
    // Outside in: no answer on the kernel; the model's connect() never left SYN-SENT before giving up.
    CHECK(facts.at("outside_in").at("answered") == false);
    std::optional<trace::SocketId> inward;  // the client's socket that connected to the server's 8080
    bool model_answered = false;
    for (const auto& event : model->events()) {
        if (event.host != "client") continue;
        if (const auto* connect = std::get_if<trace::ConnectStarted>(&event.body);
            connect && connect->remote == Endpoint::parse("198.51.100.2:8080").value() && !inward)
            inward = connect->socket;
        if (const auto* change = std::get_if<trace::StateChanged>(&event.body); change && change->socket == inward)
            model_answered = model_answered || change->to == TcpState::established;
    }
    REQUIRE(inward);
    CHECK_FALSE(model_answered);

    // Every scan, every port: the same state and reason.
    const auto& scans = facts.at("scans").at("stateful");
    std::size_t compared = 0;
    for (const auto& event : model->events()) {
        const auto* result = std::get_if<trace::ScanResult>(&event.body);
        if (result == nullptr) continue;
        const auto& kernel = scans.at(std::string(scan::to_string(result->scan))).at("ports").at(std::to_string(result->target.port));
        CAPTURE(scan::to_string(result->scan), result->target.port);
        CHECK(kernel.at("state") == scan::to_string(result->state));
        CHECK(kernel.at("reason") == scan::to_string(result->reason));
        ++compared;
    }
    CHECK(compared == 8);  // connect, SYN, ACK and UDP scans of 8080 and 8081

    // Connection tracking (issue 11: "conntrack entries" shown for a stateful router that
    // translates nothing): the lab's trace tells the router's entries as conntrack's netlink
    // dump lists them (nat events of kind track), the model's router records its own. Both
    // hold the inside's TCP connection out to the client's port 9000, and in the lab's the
    // original tuple is the one the server's own socket reported (getsockname/getpeername).
    const auto lab_trace = trace::read_trace_file(dir.file("lab18.jsonl"));
    REQUIRE(lab_trace.has_value());
    replay::State lab_world;
    for (const auto& event : lab_trace->events) lab_world.apply(event);
    replay::State model_world;
    for (const auto& event : model->events()) model_world.apply(event);
    const auto tracked_tcp_out = [](const replay::State& world) -> std::optional<replay::Translation> {
        const auto router = world.find_host("router");
        if (!router) return std::nullopt;
        for (const auto& entry : world.hosts()[*router].translations)
            if (entry.kind == trace::NatKind::track && entry.protocol == Protocol::tcp && entry.original.destination.port == 9000) return entry;
        return std::nullopt;
    };
    const auto lab_entry = tracked_tcp_out(lab_world);
    const auto model_entry = tracked_tcp_out(model_world);
    REQUIRE(lab_entry);
    REQUIRE(model_entry);
    CHECK(lab_entry->original == lab_entry->after);  // nothing translated
    CHECK(lab_entry->original.source.address == Endpoint::parse("198.51.100.2:0").value().address);  // from the server, inside
    CHECK(model_entry->original.source.address == lab_entry->original.source.address);
    CHECK(model_entry->original.destination == lab_entry->original.destination);
    bool socket_agrees = false;
    for (const auto& event : lab_trace->events)
        if (const auto* bound = std::get_if<trace::Bound>(&event.body); bound && event.host == "server")
            socket_agrees = socket_agrees || bound->endpoint == lab_entry->original.source;
    CHECK(socket_agrees);

    // The forward chain itself: the rules the lab's trace added to the router first (read back
    // from the kernel with nft -j, before the lab replaced them) and the rules the model's
    // router put into force tell the same chain, rule by rule: the same ct states, the same
    // verdict, and an iifname in the same places, the outside's rules on one interface and
    // the inside's on another. The names differ (the lab's veths, the model's "ethN").
    const auto first_chain = [](const auto& events) {
        std::vector<std::pair<std::string, FirewallRule>> rules;
        for (const trace::Event& event : events) {
            if (event.host != "router") continue;
            if (std::holds_alternative<trace::RuleRemoved>(event.body)) break;
            if (const auto* added = std::get_if<trace::RuleAdded>(&event.body)) rules.emplace_back(added->rule_id, *added->rule);
        }
        return rules;
    };
    const auto lab_chain = first_chain(lab_trace->events);
    const auto model_chain = first_chain(model->events());
    REQUIRE(lab_chain.size() == model_chain.size());
    REQUIRE(lab_chain.size() >= 3);
    const auto interface_of = [](const auto& chain, const std::string& id) -> std::optional<std::string> {
        for (const auto& [rule_id, rule] : chain)
            if (rule_id == id) return rule.in_interface;
        return std::nullopt;
    };
    for (std::size_t i = 0; i < lab_chain.size(); ++i) {
        const auto& [lab_id, lab_rule] = lab_chain[i];
        const auto& [model_id, model_rule] = model_chain[i];
        CAPTURE(i, nft_text(lab_rule).value_or("?"), nft_text(model_rule).value_or("?"));
        CHECK(lab_id == model_id);
        CHECK(lab_rule.chain == FirewallChain::forward);
        CHECK(model_rule.chain == FirewallChain::forward);
        CHECK(lab_rule.ct_states == model_rule.ct_states);
        CHECK(lab_rule.action == model_rule.action);
        CHECK(lab_rule.reject_with == model_rule.reject_with);
        CHECK(lab_rule.in_interface.has_value() == model_rule.in_interface.has_value());
        CHECK(lab_rule.tcp_flags == model_rule.tcp_flags);
    }
    for (const auto* chain : {&lab_chain, &model_chain}) {
        const auto outside = interface_of(*chain, "new from outside");
        REQUIRE(outside);
        CHECK(interface_of(*chain, "invalid from outside") == outside);
        CHECK(interface_of(*chain, "new from inside") != outside);
    }
}
