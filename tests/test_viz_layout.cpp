// The layout model (view/layout.hpp), no window: the layout defects, each with a
// test that fails on the old layout. At 1280x720 the inspector keeps rows of its field
// tree and the state diagram its whole height; the Events list's "event" column holds
// every text it can show; a packet's chip never covers a connection's 4-tuple label;
// hosts and slots stay where they are as sockets come and go.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/sim/scenarios.hpp"
#include "support.hpp"
#include "view/filters.hpp"
#include "view/layout.hpp"
#include "view/model.hpp"
#include "view/nat_table.hpp"
#include "view/tcp_diagram.hpp"
#include "view/view_state.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

// Dear ImGui's sizes with the 15-pixel DejaVu font the app loads: a text line with its
// spacing (15 + 4), a framed widget with its spacing (15 + 2*3 + 4), the menu bar.
constexpr float line_h = 19;
constexpr float frame_h = 25;
constexpr float menu_h = 21;
constexpr float timeline_h = 2 * line_h + 2 * frame_h + 24;

const char* const scenarios[] = {"web", "two-tabs", "dns-udp", "closed-port", "firewall-reject", "bind-conflict",
                                 "ephemeral-exhaustion", "scan", "time-wait", "lossy-link"};

}  // namespace

TEST_CASE("at 1280x720, 1600x1000 and 1920x1080 the inspector and the state panel keep what they need", "[viz][layout][windows]") {
    for (const Vec2 display : {Vec2{1280, 720}, Vec2{1600, 1000}, Vec2{1920, 1080}}) {
        CAPTURE(display.x, display.y);
        const WindowNeeds needs{menu_h, timeline_h, inspector_min_height(line_h, frame_h), state_panel_min_height(line_h, frame_h)};
        const WindowRects w = window_layout(display, needs);
        CHECK(w.inspector.h >= needs.inspector_min_h);
        CHECK(w.states.h >= needs.states_min_h);
        // The state panel's diagram gets its whole least height with three lines of steps under it.
        const float content = w.states.h - 2 * frame_h - 16 - line_h;
        const auto split = split_state_panel(content, 3, line_h);
        CHECK(split.diagram_h >= diagram_min_height(line_h));
        CHECK_FALSE(split.list_scrolls);
        // The windows tile the display below the menu: no overlap, nothing off screen.
        const Rect all[] = {w.topology, w.tables, w.inspector, w.states, w.timeline};
        for (std::size_t i = 0; i < 5; ++i) {
            CHECK(all[i].x >= 0);
            CHECK(all[i].y >= menu_h);
            CHECK(all[i].right() <= display.x + 0.01f);
            CHECK(all[i].bottom() <= display.y + 0.01f);
            for (std::size_t j = 0; j < i; ++j) CHECK_FALSE(all[i].overlaps(all[j]));
        }
    }
}

TEST_CASE("the Events list's event column is sized for every text any scenario puts in it", "[viz][layout][events]") {
    const auto& possible = event_column_texts();
    for (const char* name : scenarios) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        for (std::size_t i = 0; i < model.size(); ++i) {
            const auto text = event_column_text(model.timeline(), i);
            CAPTURE(name, i, text);
            CHECK(std::find(possible.begin(), possible.end(), text) != possible.end());
        }
    }
}

TEST_CASE("a packet's chip resting on a link never covers a 4-tuple label, nor one flying its own connection's", "[viz][layout][chips]") {
    // Text sizes as the canvas draws them at zoom 1: 0.85 of the 15-pixel font, about 7 pixels a character.
    const auto text_size = [](const std::string& text) { return Vec2{7.0f * static_cast<float>(text.size()), 13}; };
    const float chip_h = chip_rect(Vec2{}, Vec2{0, 13}).h;
    std::size_t compared = 0;
    for (const char* name : {"web", "two-tabs", "lossy-link", "time-wait", "dns-udp"}) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        for (std::size_t n = 1; n <= model.size(); ++n) {
            model.seek(n);
            const Layout& layout = model.layout();
            const std::size_t current = n - 1;
            const auto chip_of = [&](std::size_t event, Vec2 at) {
                return chip_rect(at, text_size(std::string(to_string(model.timeline().packet_info(event)->label))));
            };
            // The chips resting on the links: packets in flight, as the canvas draws them.
            std::vector<Rect> resting;
            for (const auto& pending : model.world().in_flight()) {
                if (pending.event == current || !model.timeline().fate_of(pending.event)) continue;
                const auto path = packet_path(model.world(), layout, model.timeline().event(pending.event), *model.timeline().packet_info(pending.event));
                if (path.valid) resting.push_back(chip_of(pending.event, path.rest));
            }
            std::vector<LabelledLine> lines;
            std::vector<FourTuple> tuples;
            for (const auto& line : layout.lines) {
                const auto [s, e] = line_ends(layout.slots[line.from_slot].rect, layout.slots[line.to_slot].rect);
                if (std::abs(s.x - e.x) < 1) continue;  // a loopback curve, labelled beside it
                lines.push_back({s, e, text_size(line.tuple.local.to_string() + " -> " + line.tuple.remote.to_string())});
                tuples.push_back(line.tuple);
            }
            const auto labels = place_tuple_labels(lines, resting, chip_h);
            for (const Rect& chip : resting)
                for (const Rect& label : labels) {
                    CAPTURE(name, n, chip.x, chip.y, label.x, label.y);
                    CHECK_FALSE(chip.overlaps(label));
                    ++compared;
                }
            for (std::size_t i = 0; i < labels.size(); ++i)
                for (std::size_t j = 0; j < i; ++j) CHECK_FALSE(labels[i].overlaps(labels[j]));
            // The current packet, all along its flight, never covers its own connection's label.
            if (const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(current).body)) {
                const auto path = packet_path(model.world(), layout, model.timeline().event(current), *model.timeline().packet_info(current));
                const auto* info = model.timeline().packet_info(current);
                for (std::size_t i = 0; path.valid && info->source && i < tuples.size(); ++i) {
                    const bool own = (tuples[i].local == *info->source && tuples[i].remote == *info->destination) ||
                                     (tuples[i].remote == *info->source && tuples[i].local == *info->destination);
                    if (!own) continue;
                    for (float phase = 0; phase <= 1.0f; phase += 0.05f) {
                        const Rect chip = chip_of(current, packet_point(path, packet->kind, split_flight(model.timeline(), current), phase));
                        CAPTURE(name, n, phase);
                        CHECK_FALSE(chip.overlaps(labels[i]));
                        ++compared;
                    }
                }
            }
        }
    }
    CHECK(compared > 0);
}

TEST_CASE("hosts and slots stay where they are as sockets come and go, and the camera's bounds never change",
          "[viz][layout][stable]") {
    for (const char* name : scenarios) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        std::map<std::pair<replay::HostIndex, std::size_t>, Rect> slot_at;  // by (host, created_at)
        std::map<replay::HostIndex, Rect> box_at;
        std::optional<Rect> bounds;
        std::size_t slots_seen = 0;
        for (std::size_t n = 0; n <= model.size(); ++n) {
            model.seek(n);
            const Layout& layout = model.layout();
            CAPTURE(name, n);
            if (bounds) CHECK(layout.bounds == *bounds);
            bounds = layout.bounds;
            for (const auto& box : layout.hosts) {
                const auto [it, first] = box_at.emplace(box.host, box.rect);
                if (!first) CHECK(it->second == box.rect);
            }
            for (const auto& slot : layout.slots) {
                if (slot.observed) continue;
                const auto* socket = model.world().find_socket(slot.ref);
                REQUIRE(socket);
                const auto [it, first] = slot_at.emplace(std::pair{slot.host, socket->created_at}, slot.rect);
                if (!first) CHECK(it->second == slot.rect);
                ++slots_seen;
                // Inside its box, on no other slot.
                const Rect& box = layout.box_of(slot.host)->rect;
                CHECK((slot.rect.x >= box.x && slot.rect.right() <= box.right() && slot.rect.y >= box.y && slot.rect.bottom() <= box.bottom()));
                for (const auto& other : layout.slots)
                    if (&other != &slot) CHECK_FALSE(other.rect.overlaps(slot.rect));
            }
        }
        CHECK(slots_seen > 0);
    }
}

// Issue 10: a loopback capture between four addresses was four boxes in a row, the canvas
// zoomed to 0.42 (slot text unreadable, 4-tuple labels hidden) and lines crossing the boxes
// between their ends.
TEST_CASE("a capture among four loopback addresses: every line clear of the other boxes, the canvas readable", "[viz][layout][capture]") {
    const test::TempDir dir;
    {
        auto writer = pcap::Writer::create(dir.file("lo4.pcap"), LinkType::raw);
        REQUIRE(writer.has_value());
        std::uint64_t t = 1'700'000'000'000'000;
        const auto connection = [&](const char* client, Port client_port, const char* server, Port server_port) {
            const auto a = IpAddress::parse(client).value();
            const auto b = IpAddress::parse(server).value();
            for (const auto& [from, to, from_port, to_port, flags] :
                 {std::tuple{a, b, client_port, server_port, tcp_flag::syn}, std::tuple{b, a, server_port, client_port, static_cast<std::uint8_t>(tcp_flag::syn | tcp_flag::ack)},
                  std::tuple{a, b, client_port, server_port, tcp_flag::ack}}) {
                TcpHeader tcp;
                tcp.source_port = from_port;
                tcp.destination_port = to_port;
                tcp.flags = flags;
                const auto bytes = encode_tcp(IpHeader{from, to}, tcp);
                REQUIRE(bytes.has_value());
                REQUIRE(writer->write(pcap::Record::whole(t += 1000, *bytes)).has_value());
            }
        };
        connection("127.0.0.1", 40000, "127.0.0.1", 8080);
        connection("127.0.0.2", 40001, "127.0.0.1", 8080);
        connection("127.0.0.3", 40002, "127.0.0.4", 9090);
        connection("127.0.0.1", 40003, "127.0.0.4", 9090);
        REQUIRE(writer->close().has_value());
    }
    Model model;
    REQUIRE(model.open_file(dir.file("lo4.pcap")).has_value());
    model.seek(model.size());
    const Layout& layout = model.layout();
    REQUIRE(layout.hosts.size() == 4);
    REQUIRE(layout.lines.size() == 4);
    // The topology at 1280x720 (60% of the width, 60% of the body under the menu, less the legend).
    const Camera camera = fit(layout.bounds, Vec2{768, 300});
    CHECK(camera.zoom >= 0.45f);  // the canvas draws 4-tuple labels from 0.45 on
    for (const auto& line : layout.lines) {
        const auto& from = layout.slots[line.from_slot];
        const auto& to = layout.slots[line.to_slot];
        const auto [s, e] = line_ends(from.rect, to.rect);
        if (std::abs(s.x - e.x) < 1) continue;  // one box (or one column): the line goes round the side
        for (const auto& box : layout.hosts) {
            if (box.host == from.host || box.host == to.host) continue;
            CAPTURE(line.tuple.local.to_string(), line.tuple.remote.to_string(), model.world().hosts()[box.host].name);
            CHECK_FALSE(entry_point(s, e, box.rect).has_value());
        }
    }
}

// Issue 10: "hosts and slots jump as sockets appear". The plan that keeps each socket in
// one cell gave up past 100,000 events, so on a big trace the slots went back to id order
// and moved up each time a socket with a lower id closed.
TEST_CASE("on a trace of more than 100,000 events every socket keeps its cell from its first event to its last", "[viz][layout][stable][big]") {
    // One host: a UDP socket held the whole run and, beside it, short-lived sockets two at a
    // time: socket k opens, k+1 opens, k closes (UDP close() frees the port at once), so
    // k+1 is the third socket in id order while k lives and the second after.
    trace::Trace big;
    big.header.source = "test";
    std::uint64_t t = 0;
    const auto add = [&](trace::EventBody body) { big.events.push_back(trace::Event{t++, "h", std::move(body)}); };
    const auto udp_socket = [&](std::uint32_t id) {
        add(trace::SocketCreated{trace::SocketId{id}, Protocol::udp, IpFamily::v4});
        add(trace::Bound{trace::SocketId{id}, Endpoint{IpAddress::parse("127.0.0.1").value(), static_cast<Port>(10000 + id % 50000)}, trace::BindHow::explicit_port, {}});
    };
    udp_socket(1);
    std::uint32_t id = 2;
    udp_socket(id);
    while (big.events.size() < 120'000) {
        udp_socket(id + 1);
        add(trace::Closed{trace::SocketId{id}});
        ++id;
    }
    const std::size_t sockets_made = id;
    Model model;
    model.open_trace(std::move(big), "big");
    REQUIRE(model.size() > 100'000);
    std::map<std::size_t, Rect> first_rect;  // by created_at
    std::optional<Rect> box;
    std::size_t compared = 0;
    for (std::size_t n = 1; n <= model.size(); n += 97) {
        model.seek(n);
        const Layout& layout = model.layout();
        for (const auto& slot : layout.slots) {
            const auto* socket = model.world().find_socket(slot.ref);
            REQUIRE(socket);
            const auto [it, first] = first_rect.emplace(socket->created_at, slot.rect);
            CAPTURE(n, socket->id.value);
            if (!first) {
                CHECK(it->second == slot.rect);
                ++compared;
            }
        }
        // The box is sized once, for the three sockets the host holds at most.
        REQUIRE(layout.hosts.size() == 1);
        if (!box) box = layout.hosts[0].rect;
        CHECK(layout.hosts[0].rect == *box);
    }
    CHECK(compared > 1000);
    CHECK(first_rect.size() > sockets_made / 100);
    // The plan itself: three cells, each socket in one, none shared by two living at once.
    const SlotPlan plan = make_slot_plan(model.timeline());
    REQUIRE(plan.hosts.size() == 1);
    CHECK(plan.hosts[0].capacity == 3);
    CHECK(plan.cells.size() == sockets_made);
}

namespace {

// A lab's story on 127.0.0.1, one host: a listener, then `connections` clients each
// connecting to it and accepted, as labs 02 and 04 trace them.
trace::Trace loopback_trace(std::uint32_t connections) {
    trace::Trace story;
    story.header.source = "test";
    std::uint64_t t = 0;
    const auto add = [&](trace::EventBody body) { story.events.push_back(trace::Event{t += 10, "lab", std::move(body)}); };
    const IpAddress lo = IpAddress::parse("127.0.0.1").value();
    const Endpoint server{lo, 8080};
    add(trace::SocketCreated{trace::SocketId{1}, Protocol::tcp, IpFamily::v4});
    add(trace::Bound{trace::SocketId{1}, server, trace::BindHow::explicit_port, {}});
    add(trace::Listening{trace::SocketId{1}, 128});
    for (std::uint32_t i = 0; i < connections; ++i) {
        const trace::SocketId client{2 + 2 * i};
        const trace::SocketId accepted{3 + 2 * i};
        const Endpoint client_end{lo, static_cast<Port>(40000 + i)};
        add(trace::SocketCreated{client, Protocol::tcp, IpFamily::v4});
        add(trace::ConnectStarted{client, server});
        add(trace::EphemeralAssigned{client, client_end.port, 32768, 60999, "linux-hash-connect", std::nullopt});
        add(trace::Bound{client, client_end, trace::BindHow::ephemeral, {}});  // getsockname() after connect()
        add(trace::Accepted{trace::SocketId{1}, accepted, FourTuple{server, client_end}});
        add(trace::StateChanged{client, TcpState::syn_sent, TcpState::established, "SYN-ACK received", trace::Evidence::observed});
    }
    return story;
}

}  // namespace

// Issue 10: a connection from a host to itself (a lab on 127.0.0.1) had its 4-tuple label
// above the line's top end, the first slot's right side: on the host's name at small zoom.
TEST_CASE("a loopback connection's label covers neither the host's name nor its slots, at 1280x720, 1600x1000 and 1920x1080", "[viz][layout][loopback]") {
    // Text as the canvas draws it: the 15-pixel DejaVu font, digits 0.64 of it wide (the widest).
    constexpr float font_px = 15;
    const TextWidth width = [](const std::string& text, float scale) { return 0.64f * font_px * scale * static_cast<float>(text.size()); };
    for (const std::uint32_t connections : {1u, 2u, 3u}) {
        Model model;
        model.open_trace(loopback_trace(connections), "loopback");
        model.seek(model.size());
        const Layout& layout = model.layout();
        REQUIRE(layout.hosts.size() == 1);
        REQUIRE(layout.lines.size() == connections);
        std::vector<std::size_t> all(layout.lines.size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        for (const Vec2 display : {Vec2{1280, 720}, Vec2{1600, 1000}, Vec2{1920, 1080}}) {
            // The canvas: the topology window less its title bar and padding, the fit less the legend's line.
            const WindowNeeds needs{menu_h, timeline_h, inspector_min_height(line_h, frame_h), state_panel_min_height(line_h, frame_h)};
            const Rect window = window_layout(display, needs).topology;
            const Rect canvas{window.x + 8, window.y + frame_h, window.w - 16, window.h - frame_h - 8};
            const Camera camera = fit(layout.bounds, Vec2{canvas.w, canvas.h - font_px - 12});
            CAPTURE(connections, display.x, display.y, camera.zoom);
            REQUIRE(camera.zoom >= 0.45f);  // the canvas draws labels from 0.45 on
            const ToScreen to_screen{camera.pan, camera.zoom, Vec2{canvas.x, canvas.y}};
            const auto labels = connection_labels(model.world(), layout, all, to_screen, font_px, width, {}, 19, canvas);
            const HostBox& box = layout.hosts[0];
            const HeaderText header = header_text(to_screen(box.rect), to_screen(box.header), camera.zoom, font_px);
            REQUIRE(header.shown);
            const Rect name = host_name_rect(header, width("lab", 1.0f), font_px);
            for (std::size_t i = 0; i < labels.size(); ++i) {
                const Rect& r = labels[i].rect;
                CAPTURE(labels[i].text, r.x, r.y, r.w, r.h, name.x, name.y, name.w, name.h);
                CHECK_FALSE(r.overlaps(name));
                for (const std::size_t s : box.slots) CHECK_FALSE(r.overlaps(to_screen(layout.slots[s].rect)));
                for (std::size_t j = 0; j < i; ++j) CHECK_FALSE(r.overlaps(labels[j].rect));
                CHECK((r.x >= canvas.x && r.right() <= canvas.right() && r.y >= canvas.y && r.bottom() <= canvas.bottom()));
                // It names the connection's two ends.
                CHECK(labels[i].text.find(layout.lines[labels[i].line].tuple.remote.to_string()) != std::string::npos);
            }
        }
    }
}

// Issue 11's translation under the router: it was drawn from the router's bottom-left
// corner, over the slots of the server's box beside it (lab 16, the nat scenario).
TEST_CASE("a router's translation is written below its row of boxes, on no host, at 1280x720, 1600x1000 and 1920x1080", "[viz][layout][nat]") {
    constexpr float font_px = 15;
    const auto width = [](const std::string& text) { return 0.64f * font_px * 0.9f * static_cast<float>(text.size()); };
    std::size_t checked = 0;
    for (const char* name : {"nat", "port-forward", "stateful-firewall"}) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        for (std::size_t n = 1; n <= model.size(); ++n) {
            model.seek(n);
            const auto callout = nat_callout(model);
            if (!callout) continue;
            const Layout& layout = model.layout();
            float w = 0;
            for (const auto& line : callout->lines()) w = std::max(w, width(line));
            const Vec2 size{w + 12, 3 * (font_px * 0.9f + 3) + 8};
            for (const Vec2 display : {Vec2{1280, 720}, Vec2{1600, 1000}, Vec2{1920, 1080}}) {
                const WindowNeeds needs{menu_h, timeline_h, inspector_min_height(line_h, frame_h), state_panel_min_height(line_h, frame_h)};
                const Rect window = window_layout(display, needs).topology;
                const Rect canvas{window.x + 8, window.y + frame_h, window.w - 16, window.h - frame_h - 8};
                const Camera camera = fit(layout.bounds, Vec2{canvas.w, canvas.h - font_px - 12});
                const ToScreen to_screen{camera.pan, camera.zoom, Vec2{canvas.x, canvas.y}};
                const Rect r = callout_rect(layout, callout->router, size, to_screen, canvas, font_px + 12);
                CAPTURE(name, n, display.x, display.y, r.x, r.y, r.w, r.h);
                for (const auto& box : layout.hosts) CHECK_FALSE(r.overlaps(to_screen(box.rect)));
                CHECK((r.x >= canvas.x && r.right() <= canvas.right() && r.y >= canvas.y && r.bottom() <= canvas.bottom() - font_px - 12));
                ++checked;
            }
        }
    }
    CHECK(checked > 0);
}

namespace {

// Each packet `model`'s timeline drops, with the model moved to it (seek): fn(n, event, packet,
// path), the path as the canvas draws it at event n.
template <class Fn>
void for_each_drop(Model& model, Fn&& fn) {
    for (std::size_t n = 1; n <= model.size(); ++n) {
        const auto& event = model.timeline().event(n - 1);
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (!packet || packet->kind != trace::PacketKind::dropped) continue;
        model.seek(n);
        fn(n, event, *packet, packet_path(model.world(), model.layout(), event, *model.timeline().packet_info(n - 1)));
    }
}

}  // namespace

// Issue 10's network scenarios: a packet a router dropped stops at that router, and all its
// flight, as the canvas animates it, stays out of the box of the host it never reached.
TEST_CASE("router, nat, port-forward and stateful-firewall: a packet a router drops stops at the router, never reaching its receiver",
          "[viz][layout][router]") {
    std::size_t drops = 0;
    for (const char* name : {"router", "nat", "port-forward", "stateful-firewall"}) {
        Model model;
        REQUIRE(model.open_scenario(name).has_value());
        for_each_drop(model, [&](std::size_t n, const trace::Event& event, const trace::Packet& packet, const PacketPath& path) {
            const Layout& layout = model.layout();
            const auto router = model.world().find_host(event.host);
            REQUIRE(router);
            REQUIRE(path.valid);
            // The host the packet was for, by its destination address (the trace names the hop it was on).
            const auto* info = model.timeline().packet_info(n - 1);
            const auto receiver_host = info->destination ? model.world().host_with_address(info->destination->address) : std::nullopt;
            if (!receiver_host || *receiver_host == *router || packet.cause == trace::DropCause::link) return;  // dropped at its receiver
            CAPTURE(name, n, model.timeline().caption(n - 1));
            REQUIRE(path.stop);
            const Rect& at = layout.box_of(*router)->rect;
            // On the router's box (its border counts).
            CHECK((path.stop->x >= at.x - 1 && path.stop->x <= at.right() + 1 && path.stop->y >= at.y - 1 && path.stop->y <= at.bottom() + 1));
            const Rect& receiver = layout.box_of(*receiver_host)->rect;
            for (float phase = 0; phase <= 1.0f; phase += 0.05f)
                CHECK_FALSE(receiver.contains(packet_point(path, packet.kind, split_flight(model.timeline(), n - 1), phase)));
            ++drops;
        });
    }
    CHECK(drops > 0);
}

namespace {

// Whether any stretch of `route` enters `rect` (its border counts).
bool enters(const Route& route, const Rect& rect) {
    for (std::size_t i = 1; i < route.count; ++i)
        if (entry_point(route.points[i - 1], route.points[i], rect)) return true;
    return false;
}

Rect grown(const Rect& r, float by) { return Rect{r.x - by, r.y - by, r.w + 2 * by, r.h + 2 * by}; }

// The pairs of hosts the trace shows a packet going between, one hop (from_host, to_host).
std::set<std::pair<replay::HostIndex, replay::HostIndex>> hops_of(const Model& model) {
    std::set<std::pair<replay::HostIndex, replay::HostIndex>> hops;
    for (std::size_t i = 0; i < model.size(); ++i) {
        const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(i).body);
        if (!packet || !packet->from_host || !packet->to_host) continue;
        const auto a = model.world().find_host(*packet->from_host);
        const auto b = model.world().find_host(*packet->to_host);
        if (a && b) hops.insert(std::minmax(*a, *b));
    }
    return hops;
}

// Every line and every packet's way in `model` at every step, against every box of a host
// that is not one of its ends: never through its inside (its name, addresses and slots);
// a host that does not carry the two ends' packets (a direct hop between them, or none
// through it, and no router) kept at a distance, and a packet's chip resting on the way
// clear of it on screen at each of the three window sizes.
struct RoutesChecked {
    std::size_t compared = 0;  // a way against a box
    std::size_t bent = 0;      // lines that went round a box
};
RoutesChecked check_routes_clear(Model& model, const std::string& name) {
    model.seek(model.size());
    const auto hops = hops_of(model);
    const auto hop = [&](replay::HostIndex a, replay::HostIndex b) { return hops.count(std::minmax(a, b)) > 0; };
    const auto carries = [&](replay::HostIndex via, replay::HostIndex a, replay::HostIndex b) {
        const bool router = via < model.world().hosts().size() && model.world().hosts()[via].role == "router";
        return !hop(a, b) && ((hop(a, via) && hop(via, b)) || router);
    };
    std::size_t compared = 0;
    std::size_t bent = 0;
    const auto check = [&](const Route& route, std::initializer_list<replay::HostIndex> ends, const char* what) {
        REQUIRE(route.count >= 2);
        const replay::HostIndex a = *ends.begin();
        const replay::HostIndex b = *(ends.end() - 1);
        for (const auto& box : model.layout().hosts) {
            if (std::find(ends.begin(), ends.end(), box.host) != ends.end()) continue;
            CAPTURE(name, model.position(), what, model.world().hosts()[box.host].name, route.count, route.front().x, route.front().y,
                    route.back().x, route.back().y);
            CHECK_FALSE(enters(route, grown(box.rect, -1)));
            if (!carries(box.host, a, b)) CHECK_FALSE(enters(route, grown(box.rect, route_clearance / 2)));
            ++compared;
        }
    };
    for (std::size_t n = 0; n <= model.size(); ++n) {
        model.seek(n);
        const Layout& layout = model.layout();
        for (const auto& line : layout.lines) {
            const Slot& from = layout.slots[line.from_slot];
            const Slot& to = layout.slots[line.to_slot];
            // From one slot to the other, as line_ends has it.
            const auto [s, e] = line_ends(from.rect, to.rect);
            CHECK(line.route.front() == s);
            CHECK(line.route.back() == e);
            check(line.route, {from.host, to.host}, "line");
            bent += line.route.count > 2 ? 1 : 0;
        }
        const auto current = model.current_event();
        const auto packet_way = [&](std::size_t event) -> std::optional<PacketPath> {
            const auto* info = model.timeline().packet_info(event);
            if (!info) return std::nullopt;
            const auto path = packet_path(model.world(), layout, model.timeline().event(event), *info);
            if (!path.valid || !path.from_host || !path.to_host) return std::nullopt;
            return path;
        };
        for (const auto& pending : model.world().in_flight()) {
            const auto path = packet_way(pending.event);
            if (!path) continue;
            check(path->route, {*path->from_host, *path->to_host}, "in flight");
            // Its chip resting on the way, on screen.
            for (const Vec2 display : {Vec2{1280, 720}, Vec2{1600, 1000}, Vec2{1920, 1080}}) {
                const WindowNeeds needs{menu_h, timeline_h, inspector_min_height(line_h, frame_h), state_panel_min_height(line_h, frame_h)};
                const Rect window = window_layout(display, needs).topology;
                const Rect canvas{window.x + 8, window.y + frame_h, window.w - 16, window.h - frame_h - 8};
                const Camera camera = fit(layout.bounds, Vec2{canvas.w, canvas.h - 15 - 12});
                const ToScreen to_screen{camera.pan, camera.zoom, Vec2{canvas.x, canvas.y}};
                const Rect chip = chip_rect(to_screen(path->rest), Vec2{7.0f * 7, 13});  // "SYN-ACK" at 0.85 of the font
                for (const auto& box : layout.hosts) {
                    if (box.host == *path->from_host || box.host == *path->to_host || carries(box.host, *path->from_host, *path->to_host)) continue;
                    CAPTURE(name, n, display.x, model.world().hosts()[box.host].name);
                    CHECK_FALSE(chip.overlaps(to_screen(box.rect)));
                }
            }
        }
        if (current) {
            if (const auto path = packet_way(*current)) {
                // A drop at a host between the two ends flies to that host instead.
                const auto at = model.world().find_host(model.timeline().event(*current).host).value_or(*path->from_host);
                check(path->route, {*path->from_host, at, *path->to_host}, "current");
            }
        }
    }
    return {compared, bent};
}

}  // namespace

// A line between the outer two of three hosts in a row (client, router, server) was drawn
// straight across the middle one's box, over its name and slots, and the packets flying it
// too: through a router it goes along the router's border, past any other host round it.
TEST_CASE("every scenario at every step: no line and no packet's way crosses the box of a host that is not one of its ends",
          "[viz][layout][routes]") {
    std::size_t compared = 0;
    std::size_t bent = 0;
    for (const auto& scenario : sim::scenarios()) {
        Model model;
        REQUIRE(model.open_scenario(std::string(scenario.name)).has_value());
        const auto checked = check_routes_clear(model, std::string(scenario.name));
        compared += checked.compared;
        bent += checked.bent;
    }
    CHECK(compared > 0);
    CHECK(bent > 0);  // some scenario has a line that must go round (router, nat, port-forward)
}

// The words beside a drop's red X ("tcp dport 22 drop (rule r1)") were written after the X,
// and a firewall's X sits on the receiver's border: the words lay over its listener's slot
// (docs/images/firewall-drop.png). They go above the X, on the side the packet came from.
TEST_CASE("every scenario and the two-clients trace: the words beside a dropped packet's X lie over no host's box", "[viz][layout][drop]") {
    std::size_t drops = 0;
    std::vector<std::string> sources;
    for (const auto& info : sim::scenarios()) sources.emplace_back(info.name);
    sources.push_back(std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl");
    for (const auto& source : sources) {
        Model model;
        if (source.ends_with(".jsonl")) REQUIRE(model.open_file(source).has_value());
        else REQUIRE(model.open_scenario(source).has_value());
        for_each_drop(model, [&](std::size_t n, const trace::Event&, const trace::Packet&, const PacketPath& path) {
            if (!path.valid || !path.stop || !path.stop_at) return;
            CAPTURE(source, n, model.timeline().caption(n - 1));
            // Canvas units at zoom 1: a rule's words run to about 30 characters.
            const Layout& layout = model.layout();
            const Rect words = drop_label_rect(layout, *path.stop, Vec2{180, 12}, 9);
            for (const auto& box : layout.hosts) CHECK_FALSE(words.overlaps(box.rect));
            ++drops;
        });
    }
    CHECK(drops > 10);
}
