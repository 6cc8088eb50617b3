// The TCP state panel, through the view model (view/tcp_diagram.hpp), no window: the
// issue's defects each get a test that fails on the old panel. A connection's socket on
// the server shows the handshake it went through (the trace's child_created, or accept()
// returning it, and RFC 9293 Figure 5's edges); a packet event shows the packet's own
// socket, not an empty panel; a UDP socket gets no TCP diagram; every badge sits on its
// own arrow, clear of the others; the list of steps is never cut off.
#include <catch2/catch.hpp>

#include <string>

#include "portlab/tcp_machine.hpp"
#include "portlab/trace.hpp"
#include "view/model.hpp"
#include "view/tcp_diagram.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

const std::string fixture = std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl";

// Every step is an edge of TCP's state machine (the hub's table of RFC 9293's edges), and
// the steps chain: each starts where the one before ended, the last where the socket is.
void check_path(const std::vector<StateStep>& steps, const replay::Socket& socket) {
    REQUIRE_FALSE(steps.empty());
    for (std::size_t i = 0; i < steps.size(); ++i) {
        CAPTURE(i, to_string(steps[i].from), to_string(steps[i].to));
        CHECK_FALSE(tcp_transitions_between(steps[i].from, steps[i].to).empty());
        if (i > 0) CHECK(steps[i].from == steps[i - 1].to);
    }
    CHECK(steps.back().to == socket.tcp_state);
}

}  // namespace

TEST_CASE("a connection's socket on the server shows its handshake: LISTEN, SYN-RECEIVED, ESTABLISHED", "[viz][tcp-state]") {
    SECTION("the simulator's child_created, then its own state_changed") {
        Model model;
        REQUIRE(model.open_scenario("web").has_value());
        const auto& timeline = model.timeline();
        std::optional<std::size_t> child_at;
        for (std::size_t i = 0; i < timeline.size() && !child_at; ++i)
            if (std::holds_alternative<trace::ChildCreated>(timeline.event(i).body)) child_at = i;
        REQUIRE(child_at);
        const auto& child = std::get<trace::ChildCreated>(timeline.event(*child_at).body);
        // Just made: one step, the listener's "rcv SYN" edge taken by the new socket.
        model.seek(*child_at + 1);
        const auto host = model.world().find_host(timeline.event(*child_at).host);
        REQUIRE(host);
        const replay::SocketRef ref{*host, child.socket};
        auto content = state_panel_content(model, ref);
        REQUIRE(content.socket == ref);
        REQUIRE(content.steps.size() == 1);
        CHECK(content.steps[0].from == TcpState::listen);
        CHECK(content.steps[0].to == TcpState::syn_received);
        CHECK(content.steps[0].event == *child_at);
        check_path(content.steps, *model.world().find_socket(ref));
        // Once the handshake's ACK came, ESTABLISHED follows it (the trace's own state_changed).
        std::optional<std::size_t> established;
        for (std::size_t i = *child_at; i < timeline.size() && !established; ++i)
            if (const auto* change = std::get_if<trace::StateChanged>(&timeline.event(i).body);
                change && change->socket == child.socket && timeline.event(i).host == timeline.event(*child_at).host)
                established = i;
        REQUIRE(established);
        model.seek(*established + 1);
        content = state_panel_content(model, ref);
        REQUIRE(content.steps.size() == 2);
        CHECK(content.steps[1].to == TcpState::established);
        CHECK_FALSE(content.steps[1].implied);
        check_path(content.steps, *model.world().find_socket(ref));
    }
    SECTION("a lab's trace: accept() returned it, no state_changed for it") {
        Model model;
        REQUIRE(model.open_file(fixture).has_value());
        const auto& timeline = model.timeline();
        std::optional<std::size_t> accepted_at;
        for (std::size_t i = 0; i < timeline.size() && !accepted_at; ++i)
            if (std::holds_alternative<trace::Accepted>(timeline.event(i).body)) accepted_at = i;
        REQUIRE(accepted_at);
        model.seek(*accepted_at + 1);
        const auto& accepted = std::get<trace::Accepted>(timeline.event(*accepted_at).body);
        const replay::SocketRef ref{*model.world().find_host(timeline.event(*accepted_at).host), accepted.socket};
        const auto* socket = model.world().find_socket(ref);
        REQUIRE(socket);
        // The current event is the accept: the panel shows the new socket, handshake and all.
        const auto content = state_panel_content(model, std::nullopt);
        REQUIRE(content.socket == ref);
        REQUIRE(content.steps.size() == 2);
        CHECK(content.steps[0].from == TcpState::listen);
        CHECK(content.steps[1].to == TcpState::established);
        check_path(content.steps, *socket);
    }
}

TEST_CASE("on a packet event the state panel shows the packet's socket, never nothing", "[viz][tcp-state]") {
    for (const char* scenario : {"web", "time-wait", "firewall-reject"}) {
        Model model;
        REQUIRE(model.open_scenario(scenario).has_value());
        const auto& timeline = model.timeline();
        std::size_t packets = 0;
        for (std::size_t i = 0; i < timeline.size(); ++i) {
            const auto* packet = std::get_if<trace::Packet>(&timeline.event(i).body);
            if (!packet) continue;
            model.seek(i + 1);
            const auto* info = timeline.packet_info(i);
            REQUIRE(info);
            if (!info->protocol || *info->protocol != Protocol::tcp) continue;
            CAPTURE(scenario, i, info->summary);
            const auto content = state_panel_content(model, std::nullopt);
            // A socket on either end holds the packet's endpoints (a SYN to a port that nobody
            // listens on may have none there, but its sender has one).
            REQUIRE(content.socket);
            CHECK(content.because == ShownBecause::packet);
            const auto* socket = model.world().find_socket(*content.socket);
            REQUIRE(socket);
            REQUIRE(socket->local);
            CHECK((socket->local->port == info->source->port || socket->local->port == info->destination->port));
            ++packets;
        }
        CHECK(packets > 0);
    }
}

TEST_CASE("a UDP socket gets no TCP state diagram", "[viz][tcp-state][udp]") {
    Model model;
    REQUIRE(model.open_scenario("dns-udp").has_value());
    const auto& timeline = model.timeline();
    std::size_t udp = 0;
    for (std::size_t i = 0; i < timeline.size(); ++i) {
        model.seek(i + 1);
        const auto content = state_panel_content(model, std::nullopt);
        if (!content.socket) continue;
        const auto* socket = model.world().find_socket(*content.socket);
        REQUIRE(socket);
        CHECK(content.tcp == (socket->protocol == Protocol::tcp));
        if (socket->protocol == Protocol::udp) {
            CHECK(content.steps.empty());
            ++udp;
        }
    }
    CHECK(udp > 0);
}

TEST_CASE("each numbered badge sits on its own step's arrow, and no badge hides another", "[viz][tcp-state][badges]") {
    // The two pictures: firewall-reject at event 16 and time-wait at event 40,
    // and every socket's whole path at the end of every scenario with one.
    struct Case {
        const char* scenario;
        std::optional<std::size_t> at;
    };
    for (const Case c : {Case{"firewall-reject", 16}, Case{"time-wait", 40}, Case{"time-wait", std::nullopt}, Case{"web", std::nullopt},
                         Case{"closed-port", std::nullopt}, Case{"two-tabs", std::nullopt}}) {
        Model model;
        REQUIRE(model.open_scenario(c.scenario).has_value());
        model.seek(c.at.value_or(model.size()));
        std::vector<std::vector<StateStep>> paths;
        if (c.at) {
            const auto content = state_panel_content(model, std::nullopt);
            REQUIRE(content.socket);
            paths.push_back(content.steps);
        } else {
            for (replay::HostIndex h = 0; h < model.world().hosts().size(); ++h)
                for (const auto& [id, socket] : model.world().hosts()[h].sockets)
                    paths.push_back(state_panel_content(model, replay::SocketRef{h, id}).steps);
        }
        for (const auto& steps : paths) {
            if (steps.size() < 2) continue;
            // The right panel at 1280x720, 1600x1000 and 1920x1080.
            for (const Vec2 size : {Vec2{500, 190}, Vec2{620, 300}, Vec2{750, 360}}) {
                const auto d = diagram_geometry(Vec2{10, 20}, size);
                const float radius = 8;
                const auto badges = badge_centres(d, steps, radius);
                REQUIRE(badges.size() == steps.size());
                for (std::size_t i = 0; i < steps.size(); ++i) {
                    CAPTURE(c.scenario, c.at.value_or(0), size.x, size.y, i, to_string(steps[i].from), to_string(steps[i].to));
                    const float own = distance_to(arrow_path(d, steps[i].from, steps[i].to), badges[i]);
                    CHECK(own < 0.5f);
                    for (std::size_t j = 0; j < steps.size(); ++j) {
                        if (steps[j].from == steps[i].from && steps[j].to == steps[i].to) continue;
                        CHECK(distance_to(arrow_path(d, steps[j].from, steps[j].to), badges[i]) > own);
                    }
                    for (std::size_t j = 0; j < i; ++j)
                        CHECK(std::hypot(badges[i].x - badges[j].x, badges[i].y - badges[j].y) >= 2 * radius);
                }
            }
        }
    }
}

TEST_CASE("the list of a socket's steps is never cut off: whole, or scrolling with three lines at least", "[viz][tcp-state][layout]") {
    const float line_h = 19;
    for (float height : {140.0f, 190.0f, 260.0f, 400.0f, 700.0f}) {
        for (std::size_t steps = 0; steps <= 24; ++steps) {
            CAPTURE(height, steps);
            const auto split = split_state_panel(height, steps, line_h);
            CHECK(split.diagram_h + split.list_h <= height + 0.01f);
            const float all = static_cast<float>(steps) * line_h;
            if (!split.list_scrolls) CHECK(split.list_h >= all - 0.01f);
            CHECK(split.list_h >= static_cast<float>(std::min<std::size_t>(steps, 3)) * line_h - 0.01f);
            if (height >= diagram_min_height(line_h) + 3 * line_h) CHECK(split.diagram_h >= diagram_min_height(line_h) - 0.01f);
        }
    }
}
