// A router's address translations in the visualizer, through the replay model and the view
// model (no window): the trace's `nat` events build the router's connection-tracking table,
// shown as conntrack(8) prints its tuples (the original tuple, then the reply tuple: what an
// answer must carry), and the translation of the current event is drawn at the router, its
// 4-tuple before and after. The tuples below are worked out from RFC 3022's rewriting
// (the source rewritten by SNAT, the destination by DNAT), not read from the program.
#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "portlab/firewall_rule.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/world.hpp"
#include "portlab/trace.hpp"
#include "view/dump.hpp"
#include "view/model.hpp"
#include "view/nat_table.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

Endpoint at(const char* text) {
    const auto endpoint = Endpoint::parse(text);
    REQUIRE(endpoint.has_value());
    return *endpoint;
}

trace::Event nat_event(std::uint64_t t, trace::NatKind kind, std::uint32_t id, const char* from, const char* to, const char* new_from,
                       const char* new_to) {
    trace::NatTranslated nat;
    nat.kind = kind;
    nat.protocol = Protocol::tcp;
    nat.conntrack_id = id;
    nat.flows = Boxed<trace::NatFlows>(trace::NatFlows{trace::Flow{at(from), at(to)}, trace::Flow{at(new_from), at(new_to)}});
    return trace::Event{t, "router", nat};
}

trace::Trace nat_trace() {
    trace::Trace trace;
    trace.header.source = "test";
    trace.header.generator = "test_viz_nat";
    trace.events.push_back(trace::Event{0, "router", trace::Note{"a home router masquerades, and forwards port 8080 to a server"}});
    // Masquerade: the client's connection leaves with the router's outside address as its source.
    trace.events.push_back(nat_event(10, trace::NatKind::snat, 7, "192.0.2.1:45000", "198.51.100.2:8080", "198.51.100.1:45000",
                                     "198.51.100.2:8080"));
    trace.events.push_back(trace::Event{20, "router", trace::Note{"the answers come back to 198.51.100.1:45000"}});
    // Port forwarding: a connection to the router's 8080 goes on to the inside server's 80.
    trace.events.push_back(nat_event(30, trace::NatKind::dnat, 8, "203.0.113.5:50000", "198.51.100.1:8080", "203.0.113.5:50000",
                                     "10.0.0.2:80"));
    return trace;
}

const nlohmann::json& router_of(const nlohmann::json& state) {
    for (const auto& host : state.at("hosts"))
        if (host.at("name") == "router") return host;
    FAIL("no router in " << state.at("hosts").dump());
    return state;
}

}  // namespace

TEST_CASE("a router's nat events build its conntrack table, as conntrack -L prints the tuples", "[viz][nat]") {
    Model model;
    model.open_trace(nat_trace(), "nat");
    ViewState view;
    sync_with_model(model, view);

    seek_to(model, view, 1);
    CHECK(dump_state(model, view).at("hosts").empty());  // a note makes no host appear

    seek_to(model, view, 2);
    auto state = dump_state(model, view);
    auto table = router_of(state).at("nat");
    REQUIRE(table.size() == 1);
    // conntrack(8): original tuple, then the reply tuple: from the server to the router's outside address.
    CHECK(table[0].at("conntrack") ==
          "tcp src=192.0.2.1 dst=198.51.100.2 sport=45000 dport=8080 src=198.51.100.2 dst=198.51.100.1 sport=8080 dport=45000 id=7");
    CHECK(table[0].at("kind") == "snat");
    // The translation is drawn at the router while it is the current event.
    REQUIRE(state.contains("nat_translation"));
    CHECK(state.at("nat_translation").at("router") == "router");
    CHECK(state.at("nat_translation").at("before") == "192.0.2.1:45000 -> 198.51.100.2:8080");
    CHECK(state.at("nat_translation").at("after") == "198.51.100.1:45000 -> 198.51.100.2:8080");

    seek_to(model, view, 3);
    state = dump_state(model, view);
    CHECK_FALSE(state.contains("nat_translation"));  // a later event: the table keeps it, the callout is gone
    CHECK(router_of(state).at("nat").size() == 1);

    seek_to(model, view, 4);
    state = dump_state(model, view);
    table = router_of(state).at("nat");
    REQUIRE(table.size() == 2);
    // DNAT rewrites the destination: the reply comes from the inside server to the outside client.
    CHECK(table[1].at("conntrack") ==
          "tcp src=203.0.113.5 dst=198.51.100.1 sport=50000 dport=8080 src=10.0.0.2 dst=203.0.113.5 sport=80 dport=50000 id=8");
    CHECK(state.at("nat_translation").at("kind") == nat_kind_text(trace::NatKind::dnat));

    // Back before any translation: the table is empty again (the replay rebuilds it).
    seek_to(model, view, 1);
    CHECK(model.world().hosts().empty());
}

namespace {

std::string flow_of(const trace::Flow& flow) { return flow.source.to_string() + " -> " + flow.destination.to_string(); }

}  // namespace

// Issue 11: "the visualizer shows the translation at the router (the 4-tuple before and
// after) and conntrack entries", for the three network scenarios with a connection-tracking
// router, a stateful firewall that translates nothing included. The judge is the simulator's
// own router: its conntrack table at the end of the run, and each nat event it recorded.
TEST_CASE("nat, port-forward and stateful-firewall: the router's conntrack table and each translation, as the simulator's router holds them",
          "[viz][nat][scenario]") {
    for (const char* name : {"nat", "port-forward", "stateful-firewall"}) {
        CAPTURE(name);
        const auto sim = sim::run_scenario(name);
        REQUIRE(sim.has_value());
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        ViewState view;
        sync_with_model(model, view);
        REQUIRE(model.size() == sim->events().size());
        std::size_t callouts = 0;
        for (std::size_t n = 1; n <= model.size(); ++n) {
            seek_to(model, view, n);
            const auto state = dump_state(model, view);
            const auto& event = sim->events()[n - 1];
            const auto* nat = std::get_if<trace::NatTranslated>(&event.body);
            CAPTURE(n, state.value("caption", ""));
            CHECK(state.contains("nat_translation") == (nat != nullptr));
            if (!nat) continue;
            ++callouts;
            // At the router that translated, with the flow before and after it (for a stateful
            // firewall, the one flow and the reply tuple it lets back).
            const auto& shown = state.at("nat_translation");
            CHECK(shown.at("router") == event.host);
            CHECK(shown.at("before") == flow_of(nat->flows->before));
            CHECK(shown.at("after") == flow_of(nat->flows->after));
            CHECK(shown.at("reply") == flow_of(trace::Flow{nat->flows->after.destination, nat->flows->after.source}));
            CHECK(shown.at("translates") == (nat->kind != trace::NatKind::track));
        }
        CHECK(callouts > 0);
        // At the end: one row per conntrack entry of the simulator's router, the same reply tuple.
        const auto& world = sim->world();
        for (const auto& host : world.hosts) {
            if (host.routing.conntrack.empty()) continue;
            const auto state = dump_state(model, view);
            const nlohmann::json* table = nullptr;
            for (const auto& shown : state.at("hosts"))
                if (shown.at("name") == host.name) table = &shown.at("nat");
            REQUIRE(table);
            CHECK(table->size() == host.routing.conntrack.size());
            for (const auto& entry : host.routing.conntrack) {
                CAPTURE(entry.id);
                bool found = false;
                for (const auto& row : *table)
                    if (row.at("conntrack_id") == entry.id) {
                        found = true;
                        CHECK(row.at("reply").at("src") == entry.reply.source.to_string());
                        CHECK(row.at("reply").at("dst") == entry.reply.destination.to_string());
                        if (std::string_view(name) == "stateful-firewall") {
                            CHECK(row.at("kind") == "track");
                            CHECK(row.at("original").at("src") == entry.original.source.to_string());
                            CHECK(row.at("original").at("dst") == entry.original.destination.to_string());
                        }
                    }
                CHECK(found);
            }
        }
    }
}

// Lab 18's forward chain in the simulator: the router's rules enter the trace when the chain
// goes into force, so the picture has the firewall from then on, before any packet is
// dropped; and the rules the replay holds are the ones the simulator's router evaluates (its
// model, not the trace: sim::Routing::stateful). Its drops name the rule that took them.
TEST_CASE("stateful-firewall: the router's firewall is drawn from its first rule, before any drop, with the simulator's rules",
          "[viz][firewall][scenario]") {
    const auto sim = sim::run_scenario("stateful-firewall");
    REQUIRE(sim.has_value());
    const auto& world = sim->world();
    const sim::Host* router = world.host(*world.find_host("router"));
    REQUIRE(router->routing.stateful);
    const auto& chain = router->routing.stateful->chain;
    REQUIRE_FALSE(chain.empty());
    nlohmann::json expected = nlohmann::json::array();
    for (const auto& rule : chain)
        expected.push_back({{"id", rule.id}, {"chain", "forward"}, {"nft", *nft_text(rule.rule)}});

    std::optional<std::size_t> first_rule, last_rule, first_drop;
    for (std::size_t n = 1; n <= sim->events().size(); ++n) {
        const auto& event = sim->events()[n - 1];
        if (event.host != "router") continue;
        if (std::holds_alternative<trace::RuleAdded>(event.body)) {
            if (!first_rule) first_rule = n;
            last_rule = n;
        }
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet && packet->kind == trace::PacketKind::dropped && !first_drop) {
            first_drop = n;
            CHECK(packet->cause == trace::DropCause::ct_state);
            CHECK(packet->rule_id == std::optional<std::string>("new from outside"));
        }
    }
    REQUIRE(first_rule);
    REQUIRE(first_drop);
    CHECK(*last_rule < *first_drop);

    Model model;
    REQUIRE(model.open_scenario("stateful-firewall").has_value());
    ViewState view;
    sync_with_model(model, view);
    REQUIRE(model.size() == sim->events().size());
    const auto router_at = [&](std::size_t n) {
        seek_to(model, view, n);
        return router_of(dump_state(model, view));
    };
    CHECK(router_at(*first_rule - 1).at("firewall") == false);
    CHECK(router_at(*first_rule).at("firewall") == true);
    const auto set_up = router_at(*last_rule);
    CHECK(set_up.at("firewall") == true);
    CHECK(set_up.at("rules") == expected);
    CHECK(router_at(*first_drop).at("rules") == expected);
    CHECK(router_at(model.size()).at("rules") == expected);
}

// Before, a connection through a NAT had no line at all (its two ends hold different
// 4-tuples, so none mirrored the other), and nat's second client stood beyond the server.
TEST_CASE("nat and port-forward: each connection through the router is one line, via the router, with the 4-tuple on each side",
          "[viz][nat][layout]") {
    for (const char* name : {"nat", "port-forward"}) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        std::size_t translated_lines = 0;
        for (std::size_t n = 1; n <= model.size(); ++n) {
            model.seek(n);
            const Layout& layout = model.layout();
            const auto& world = model.world();
            for (const Line& line : layout.lines) {
                if (!line.via) continue;
                CAPTURE(name, n, line.tuple.local.to_string(), line.tuple.remote.to_string());
                REQUIRE(line.far_tuple);
                CHECK(world.hosts()[*line.via].role == "router");
                // The two ends are the sockets holding the near tuple and the far one turned round.
                const auto* near = world.find_socket(layout.slots[line.from_slot].ref);
                const auto* far = world.find_socket(layout.slots[line.to_slot].ref);
                REQUIRE(near);
                REQUIRE(far);
                CHECK(near->local == line.tuple.local);
                CHECK(near->remote == line.tuple.remote);
                CHECK(far->local == line.far_tuple->remote);
                CHECK(far->remote == line.far_tuple->local);
                CHECK(line.tuple != *line.far_tuple);  // a translation changed something
                // The line runs under the router, along its bottom border or below it.
                const Rect& router = layout.box_of(*line.via)->rect;
                REQUIRE(line.route.count == 4);
                CHECK(line.route.points[1].y >= router.bottom());
                CHECK(std::min(line.route.points[1].x, line.route.points[2].x) <= router.x);
                CHECK(std::max(line.route.points[1].x, line.route.points[2].x) >= router.right());
                ++translated_lines;
            }
            // Every host that reaches the others only through a router stands on the far side
            // of it from the server.
            for (const auto& box : layout.hosts) {
                if (world.hosts()[box.host].name != "client2") continue;
                for (const auto& other : layout.hosts)
                    if (world.hosts()[other.host].role == "router") CHECK(box.rect.x < other.rect.x);
            }
        }
        CAPTURE(name);
        CHECK(translated_lines > 0);
    }
}
