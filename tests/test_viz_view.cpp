// The visualizer's view logic, without a window: field <-> byte mapping for the
// hex view, the ss-shaped socket table, event filters, playback commands, the
// canvas layout and camera. Byte offsets are RFC 791 / RFC 793 header layouts;
// the socket table is ss(8)'s column format; the story is the fixture's lines.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <thread>

#include "portlab/hex.hpp"
#include "replay/state.hpp"
#include "support.hpp"
#include "view/filters.hpp"
#include "view/hexmap.hpp"
#include "view/layout.hpp"
#include "view/model.hpp"
#include "view/scenarios.hpp"
#include "view/ss_table.hpp"
#include "view/view_state.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

const std::string fixture = std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl";

replay::Timeline fixture_timeline() {
    auto read = trace::read_trace_file(fixture);
    REQUIRE(read.has_value());
    return replay::Timeline::of(std::move(read).value());
}

// docs/trace-format.md's SYN 127.0.0.1:40002 -> 127.0.0.1:8080 (IPv4, IHL 5, no options).
Bytes syn_bytes() {
    return from_hex("450000280000400040063cce7f0000017f0000019c421f90000003e8000000005002ffd7f24d0000").value();
}

}  // namespace

TEST_CASE("hovering a byte names the header field that holds it, and a field lights its bytes", "[viz][hex]") {
    const Bytes bytes = syn_bytes();
    const auto decoded = decode_frame(LinkType::raw, bytes);
    REQUIRE(decoded.has_value());
    const std::span<const Layer> layers = decoded->layers;

    SECTION("IPv4 protocol is byte 9 (RFC 791 3.1)") {
        const auto field = field_at_byte(layers, 9);
        REQUIRE(field.has_value());
        const Field* f = field_of(layers, *field);
        CHECK(f->offset == 9);
        CHECK(f->length == 1);
        CHECK(layers[field->layer].name == "IPv4");
    }
    SECTION("byte 0 holds two 4-bit fields, version and IHL") {
        const auto fields = fields_at_byte(layers, 0);
        REQUIRE(fields.size() == 2);
        CHECK(field_of(layers, fields[0])->bit_count == 4);
        CHECK(field_of(layers, fields[1])->bit_count == 4);
        CHECK(field_of(layers, fields[1])->bit_offset == 4);
    }
    SECTION("the TCP source port is bytes 20-21, after a 20-byte IPv4 header (RFC 793 3.1)") {
        const auto at20 = field_at_byte(layers, 20);
        const auto at21 = field_at_byte(layers, 21);
        REQUIRE(at20.has_value());
        CHECK(at20 == at21);
        CHECK(layers[at20->layer].name == "TCP");
        CHECK(bytes_of(*field_of(layers, *at20)) == ByteRange{20, 22});
        CHECK(layer_at_byte(layers, 20) == at20->layer);
    }
    SECTION("any byte of the sequence number lights all four (bytes 24-27)") {
        const Highlight from_byte = highlight_for_byte(layers, 26);
        REQUIRE(from_byte.bytes.size() == 1);
        CHECK(from_byte.bytes[0] == ByteRange{24, 28});
        REQUIRE(from_byte.fields.size() == 1);
        const Highlight from_field = highlight_for_field(layers, from_byte.fields[0]);
        CHECK(from_field.bytes == from_byte.bytes);
    }
    SECTION("past the end: nothing") {
        CHECK_FALSE(field_at_byte(layers, bytes.size()).has_value());
        CHECK(highlight_for_byte(layers, 1000).bytes.empty());
        CHECK(field_of(layers, FieldRef{99, 0}) == nullptr);
    }
    SECTION("rows of 16 bytes with a printable column") {
        const auto rows = hex_rows(bytes.size());
        REQUIRE(rows.size() == 3);  // 40 bytes
        CHECK(rows[2].offset == 32);
        CHECK(rows[2].count == 8);
        CHECK(hex_offset(32) == "0020");
        CHECK(hex_byte(0x4f) == "4f");
        CHECK(ascii_of(0x41) == 'A');
        CHECK(ascii_of(0x00) == '.');
        CHECK(hex_rows(0).empty());
    }
}

TEST_CASE("the socket table reads like ss -tuan", "[viz][ss]") {
    const auto timeline = fixture_timeline();
    const replay::State world = timeline.state_at(timeline.size());
    const auto server = ss_rows(world, 0);
    REQUIRE(server.size() == 3);  // socket 2 never bound
    CHECK(server[0].netid == "tcp");
    CHECK(server[0].state == "LISTEN");
    CHECK(server[0].send_q == "128");  // ss shows a listener's backlog as Send-Q
    CHECK(server[0].local == "0.0.0.0:8080");
    CHECK(server[0].peer == "0.0.0.0:*");
    CHECK(server[1].state == "ESTAB");
    CHECK(server[1].local == "10.0.0.2:8080");
    CHECK(server[1].peer == "10.0.0.1:40010");
    CHECK(ss_rows(world, 1).at(0).state == "SYN-SENT");
    CHECK(ss_rows(world, 2).at(0).state == "UNCONN");  // bound, never a reported state: TCP_CLOSE
    const std::string text = ss_text(server);
    CHECK(text.rfind("Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n", 0) == 0);
    CHECK_THAT(text, Catch::Contains("tcp   LISTEN      0    128 0.0.0.0:8080       0.0.0.0:*         socket 1\n"));
}

TEST_CASE("the event list filters by protocol, kind and host", "[viz][filter]") {
    const auto timeline = fixture_timeline();
    EventFilter filter;
    CHECK(filter_events(timeline, filter).size() == 20);

    SECTION("UDP only: the dropped datagram") {
        filter.tcp = false;
        filter.other = false;
        CHECK(filter_events(timeline, filter) == std::vector<std::size_t>{19});
    }
    SECTION("TCP only: every event of a TCP socket, not the note, not the datagram") {
        filter.udp = false;
        filter.other = false;
        std::vector<std::size_t> expected;
        for (std::size_t i = 1; i <= 18; ++i) expected.push_back(i);
        CHECK(filter_events(timeline, filter) == expected);
    }
    SECTION("one kind") {
        filter.kinds = {};
        filter.kinds[static_cast<std::size_t>(replay::EventKind::accepted)] = true;
        CHECK(filter_events(timeline, filter) == std::vector<std::size_t>{17, 18});
    }
    SECTION("one host") {
        filter.host = "client-b";
        CHECK(filter_events(timeline, filter) == std::vector<std::size_t>{13, 14, 15, 16});
    }
    SECTION("jumping to the next and previous event of a kind") {
        CHECK(next_of_kind(timeline, 0, replay::EventKind::accepted) == 17u);
        CHECK(next_of_kind(timeline, 18, replay::EventKind::accepted) == 18u);
        CHECK_FALSE(next_of_kind(timeline, 19, replay::EventKind::accepted).has_value());
        CHECK(previous_of_kind(timeline, 16, replay::EventKind::ephemeral_assigned) == 15u);
        CHECK(previous_of_kind(timeline, 1000, replay::EventKind::packet_dropped) == 19u);
        CHECK_FALSE(previous_of_kind(timeline, 5, replay::EventKind::accepted).has_value());
    }
}

TEST_CASE("playback: step, play, speed, ends", "[viz][playback]") {
    Model model;
    REQUIRE(model.open_file(fixture).has_value());
    ViewState view;
    sync_with_model(model, view);
    CHECK(model.position() == 0);

    apply(Command::step_forward, model, view);
    CHECK(model.position() == 1);
    CHECK(view.playback.phase == 0.0);  // the step animates
    CHECK_FALSE(advance(model, view, 10.0));
    CHECK(view.playback.phase == 1.0);
    CHECK(model.position() == 1);

    apply(Command::step_back, model, view);
    apply(Command::step_back, model, view);  // already at the start
    CHECK(model.position() == 0);

    apply(Command::toggle_play, model, view);
    CHECK(view.playback.playing);
    view.playback.phase = 0.0;
    CHECK(advance(model, view, seconds_per_event * 3.5));
    CHECK(model.position() == 3);

    apply(Command::faster, model, view);
    CHECK(view.playback.speed == 1.5);
    for (int i = 0; i < 20; ++i) apply(Command::faster, model, view);
    CHECK(view.playback.speed == 10.0);
    for (int i = 0; i < 20; ++i) apply(Command::slower, model, view);
    CHECK(view.playback.speed == 0.1);

    apply(Command::last, model, view);
    CHECK(model.position() == 20);
    CHECK_FALSE(view.playback.playing);
    apply(Command::toggle_play, model, view);  // play from the end starts over
    CHECK(model.position() == 0);
    CHECK(view.playback.playing);
    view.playback.speed = 10.0;
    for (int i = 0; i < 100 && view.playback.playing; ++i) advance(model, view, 1.0);
    CHECK(model.position() == 20);
    CHECK_FALSE(view.playback.playing);

    apply(Command::first, model, view);
    CHECK(model.position() == 0);
}

TEST_CASE("a file that does not open leaves the previous one shown, with the reason", "[viz][model]") {
    Model model;
    CHECK_FALSE(model.open_file("/nonexistent/trace.jsonl").has_value());
    CHECK_FALSE(model.loaded());
    CHECK_THAT(model.error(), Catch::Contains("/nonexistent/trace.jsonl"));

    REQUIRE(model.open_file(fixture).has_value());
    CHECK(model.error().empty());
    model.seek(7);
    const test::TempDir dir;
    std::ofstream(dir.file("bad.jsonl")) << R"({"portlab_trace": 1, "source": "test", "generator": "t"})" << "\n"
                                         << "not json\n";
    CHECK_FALSE(model.open_file(dir.file("bad.jsonl")).has_value());
    CHECK_THAT(model.error(), Catch::Contains("line 2"));
    CHECK(model.size() == 20);
    CHECK(model.position() == 7);
}

TEST_CASE("the canvas layout: boxes apart, slots inside their host, one line per connection", "[viz][layout]") {
    const auto timeline = fixture_timeline();
    const replay::State world = timeline.state_at(timeline.size());
    const Layout layout = compute_layout(world);

    REQUIRE(layout.hosts.size() == 4);
    for (std::size_t i = 0; i < layout.hosts.size(); ++i)
        for (std::size_t j = i + 1; j < layout.hosts.size(); ++j) CHECK_FALSE(layout.hosts[i].rect.overlaps(layout.hosts[j].rect));
    REQUIRE(layout.slots.size() == 5);  // server 1, 3, 4; client-a 1; client-b 1
    for (const auto& slot : layout.slots) {
        const HostBox* box = layout.box_of(slot.host);
        REQUIRE(box != nullptr);
        CHECK(box->rect.contains(slot.rect.center()));
        CHECK(layout.slot_at(slot.rect.center()).has_value());
    }
    for (std::size_t i = 0; i < layout.slots.size(); ++i)
        for (std::size_t j = i + 1; j < layout.slots.size(); ++j) CHECK_FALSE(layout.slots[i].rect.overlaps(layout.slots[j].rect));

    REQUIRE(layout.lines.size() == 2);
    const auto client_a = layout.slot_of(replay::SocketRef{1, replay::SocketId{1}});
    const auto server_3 = layout.slot_of(replay::SocketRef{0, replay::SocketId{3}});
    REQUIRE(client_a.has_value());
    CHECK(layout.lines[0].from_slot == *client_a);
    CHECK(layout.lines[0].to_slot == *server_3);
    CHECK(layout.slots[*server_3].state == replay::SlotState::established);

    SECTION("the pool strip: only on hosts that reported a range, ports placed by their share of it") {
        CHECK(layout.box_of(0)->pool_strip.w == 0);
        const Rect strip = layout.box_of(1)->pool_strip;
        REQUIRE(strip.w > 0);
        const PortRange range{32768, 60999};
        CHECK(pool_x(strip, range, 32768) == strip.x);
        CHECK(pool_x(strip, range, 60999) < strip.right());
        CHECK(pool_x(strip, range, 46384) == Approx(strip.x + strip.w * (46384 - 32768) / 28232.0f));
    }
    SECTION("the dropped datagram stops at the router between the client and the server") {
        const auto* info = timeline.packet_info(19);
        REQUIRE(info != nullptr);
        const PacketPath path = packet_path(world, layout, timeline.event(19), *info);
        REQUIRE(path.valid);
        CHECK(path.from_host == 1u);
        CHECK(path.to_host == 0u);
        REQUIRE(path.stop.has_value());
        CHECK(*path.stop == layout.box_of(3)->rect.center());
        CHECK(point_along(path, 1.0f) == *path.stop);
        CHECK(point_along(path, 0.0f) == path.from);
    }
    SECTION("where a segment enters a box") {
        const auto hit = entry_point(Vec2{0, 5}, Vec2{20, 5}, Rect{10, 0, 5, 10});
        REQUIRE(hit.has_value());
        CHECK(hit->x == 10);
        CHECK(hit->y == 5);
        CHECK_FALSE(entry_point(Vec2{0, 50}, Vec2{20, 50}, Rect{10, 0, 5, 10}).has_value());
    }
}

TEST_CASE("the camera fits the layout and zooms about the pointer", "[viz][camera]") {
    Camera camera = fit(Rect{0, 0, 100, 50}, Vec2{300, 200}, 0);
    CHECK(camera.zoom == Approx(1.5f));  // capped: min(300/100, 200/50) = 3 would be too big for a few hosts
    const Vec2 centre = camera.to_screen(Vec2{50, 25}, Vec2{0, 0});
    CHECK(centre.x == Approx(150));
    CHECK(centre.y == Approx(100));

    const Vec2 anchor{40, 70};
    const Vec2 before = camera.to_canvas(anchor, Vec2{0, 0});
    zoom_at(camera, 2.0f, anchor, Vec2{0, 0});
    const Vec2 after = camera.to_canvas(anchor, Vec2{0, 0});
    CHECK(camera.zoom == Approx(3.0f));
    CHECK(after.x == Approx(before.x));
    CHECK(after.y == Approx(before.y));
    CHECK_FALSE(camera.follow_fit);
}

TEST_CASE("the simulator's scenario list is a name and a description per line", "[viz][scenarios]") {
    const auto list = parse_scenario_list("web           a client fetches a page from port 80\n\ntwo-tabs  two connections\n");
    REQUIRE(list.size() == 2);
    CHECK(list[0].name == "web");
    CHECK(list[0].description == "a client fetches a page from port 80");
    CHECK(list[1].name == "two-tabs");
    CHECK(list[1].description == "two connections");
}

TEST_CASE("a file opened in the background ends up as the same timeline", "[viz][model][loader]") {
    Model model;
    model.start_open(fixture);
    model.wait_for_load();
    CHECK_FALSE(model.loading());
    CHECK(model.error().empty());
    REQUIRE(model.size() == 20);
    const auto timeline = fixture_timeline();
    for (std::size_t i = 0; i < 20; ++i) CHECK(model.timeline().event(i) == timeline.event(i));
    CHECK(model.label() == "trace_two_clients.jsonl");

    SECTION("a bad line late in the file keeps the events before it, with the reason") {
        const test::TempDir dir;
        {
            std::ofstream out(dir.file("late.jsonl"));
            std::ifstream in(fixture);
            out << in.rdbuf() << "not json\n";
        }
        model.start_open(dir.file("late.jsonl"));
        model.wait_for_load();
        CHECK(model.size() == 20);
        CHECK_THAT(model.error(), Catch::Contains("late.jsonl: line 22"));
    }
    SECTION("a file that cannot be read leaves the previous one shown") {
        model.seek(5);
        model.start_open("/nonexistent/x.jsonl");
        model.wait_for_load();
        CHECK(model.label() == "trace_two_clients.jsonl");
        CHECK(model.position() == 5);
        CHECK_THAT(model.error(), Catch::Contains("/nonexistent/x.jsonl"));
    }
    SECTION("a bad second line leaves the previous one shown") {
        const test::TempDir dir;
        std::ofstream(dir.file("bad.jsonl")) << R"({"portlab_trace": 1, "source": "test", "generator": "t"})" << "\n{\n";
        const std::size_t generation = model.generation();
        model.start_open(dir.file("bad.jsonl"));
        model.wait_for_load();
        CHECK(model.generation() == generation);
        CHECK_THAT(model.error(), Catch::Contains("line 2"));
    }
}

TEST_CASE("a big file loaded in small budgets gets the events and checkpoints of a timeline built at once", "[viz][model][loader]") {
    // Enough events for several of the loader's blocks and for adaptive
    // checkpoints (many sockets open at once); the model takes them a few
    // hundred at a time, so blocks are split between checkpoints.
    const test::TempDir dir;
    const std::string path = dir.file("big.jsonl");
    {
        trace::TraceHeader header;
        header.source = "test";
        header.generator = "test_viz_view";
        auto writer = trace::TraceWriter::to_file(path, header);
        REQUIRE(writer);
        std::uint64_t t = 0;
        for (std::uint32_t i = 1; i <= 1500; ++i) {
            const trace::SocketId id{i};
            REQUIRE(writer->write({t++, "h", trace::SocketCreated{id, Protocol::udp, IpFamily::v4}}));
            REQUIRE(writer->write({t++, "h", trace::Bound{id, Endpoint{IpAddress::v4(10, 0, 0, 1), static_cast<Port>(1000 + i)},
                                                          trace::BindHow::explicit_port, std::nullopt}}));
            if (i % 3 == 0) REQUIRE(writer->write({t++, "h", trace::Closed{trace::SocketId{i - 1}}}));
        }
        REQUIRE(writer->close());
    }
    auto read = trace::read_trace_file(path);
    REQUIRE(read);
    const replay::Timeline whole = replay::Timeline::of(std::move(read).value());
    REQUIRE(whole.size() == 3500);

    Model model;
    model.start_open(path);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (model.loading() && std::chrono::steady_clock::now() < deadline)
        if (!model.poll(333)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE_FALSE(model.loading());
    CHECK(model.error().empty());
    const auto& loaded = model.timeline();
    REQUIRE(loaded.size() == whole.size());
    CHECK(loaded.checkpoint_count() == whole.checkpoint_count());
    CHECK(loaded.checkpoint_count() > 3);
    for (std::size_t n = 0; n <= whole.size(); n += 97) {
        CAPTURE(n);
        CHECK(loaded.state_at(n) == whole.state_at(n));
    }
    CHECK(loaded.state_at(whole.size()) == whole.state_at(whole.size()));
}
