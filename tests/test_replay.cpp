// The world model rebuilt from trace events: what each event records, the
// timeline's checkpoints (seeking to n equals replaying n events), captions.
// Expected values come from the fixture's own lines and from the packet bytes
// documented in docs/trace-format.md (checked there against tshark).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "portlab/hex.hpp"
#include "portlab/pcap.hpp"
#include "replay/state.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::replay;

namespace {

trace::Trace fixture_trace() {
    auto read = trace::read_trace_file(std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl");
    REQUIRE(read.has_value());
    return std::move(read).value();
}

trace::Trace trace_of(const std::string& lines) {
    std::istringstream in(std::string(R"({"portlab_trace": 1, "source": "test", "generator": "test_world"})") + "\n" +
                          lines);
    auto read = trace::read_trace(in);
    INFO((read ? std::string() : read.error().message));
    REQUIRE(read.has_value());
    return std::move(read).value();
}

// The same, as a version-2 trace (host declarations, timers, drop causes).
trace::Trace trace_v2_of(const std::string& lines) {
    std::istringstream in(std::string(R"({"portlab_trace": 2, "source": "test", "generator": "test_replay"})") + "\n" + lines);
    auto read = trace::read_trace(in);
    INFO((read ? std::string() : read.error().message));
    REQUIRE(read.has_value());
    return std::move(read).value();
}

State replay_all(const trace::Trace& trace) {
    State world;
    for (const auto& event : trace.events) world.apply(event);
    return world;
}

State replay_events(const trace::Trace& trace, std::size_t n) {
    State world;
    for (std::size_t i = 0; i < n; ++i) world.apply(trace.events[i]);
    return world;
}

const Socket& socket_of(const State& world, const std::string& host, std::uint32_t id) {
    const auto index = world.find_host(host);
    REQUIRE(index.has_value());
    const Socket* socket = world.find_socket(SocketRef{*index, SocketId{id}});
    REQUIRE(socket != nullptr);
    return *socket;
}

// From docs/trace-format.md, "A whole trace": SYN, SYN-ACK, ACK between
// 127.0.0.1:40002 and 127.0.0.1:8080.
const char* const syn_hex = "450000280000400040063cce7f0000017f0000019c421f90000003e8000000005002ffd7f24d0000";
const char* const syn_ack_hex = "450000280000400040063cce7f0000017f0000011f909c4200001388000003e95012ffd7deb40000";
const char* const ack_hex = "450000280000400040063cce7f0000017f0000019c421f90000003e9000013895010ffd7deb50000";
// From the same document: UDP 10.0.0.1:51000 -> 10.0.0.2:9000 carrying "hi".
const char* const udp_hex = "4500001e00004000401126cd0a0000010a000002c7382328000a990d6869";

Bytes bytes_of(std::string_view hex) { return from_hex(hex).value(); }

}  // namespace

TEST_CASE("seeking to event n gives the state of replaying the first n events, for every n", "[world][timeline]") {
    const trace::Trace trace = fixture_trace();
    const std::size_t interval = GENERATE(1, 2, 3, 7, 256);
    CAPTURE(interval);
    const Timeline timeline = Timeline::of(trace, TimelineOptions{interval, false});
    REQUIRE(timeline.size() == trace.events.size());

    for (std::size_t n = 0; n <= trace.events.size(); ++n) {
        CAPTURE(n);
        const State expected = replay_events(trace, n);
        CHECK(timeline.state_at(n) == expected);
        CHECK(expected.applied() == n);
    }

    SECTION("from any position to any other, forwards and backwards") {
        for (std::size_t from = 0; from <= trace.events.size(); ++from) {
            for (std::size_t to = 0; to <= trace.events.size(); ++to) {
                CAPTURE(from, to);
                State world = timeline.state_at(from);
                timeline.seek(world, to);
                CHECK(world == replay_events(trace, to));
            }
        }
    }
}

TEST_CASE("checkpoints are taken every K events and seeking past the end clamps", "[world][timeline]") {
    const trace::Trace trace = fixture_trace();  // 20 events
    REQUIRE(trace.events.size() == 20);
    const Timeline timeline = Timeline::of(trace, TimelineOptions{5, false});
    CHECK(timeline.checkpoint_count() == 5);  // after 0, 5, 10, 15, 20 events
    CHECK(timeline.state_at(1000) == replay_events(trace, 20));
}

TEST_CASE("a timeline built in pieces equals one built at once", "[world][timeline]") {
    const trace::Trace trace = fixture_trace();
    Timeline pieces(trace.header, TimelineOptions{4, false});
    pieces.append({trace.events.begin(), trace.events.begin() + 7});
    pieces.append({trace.events.begin() + 7, trace.events.end()});
    const Timeline whole = Timeline::of(trace, TimelineOptions{4, false});
    for (std::size_t n = 0; n <= trace.events.size(); ++n) CHECK(pieces.state_at(n) == whole.state_at(n));
}

TEST_CASE("a timeline handed its checkpoints by a Checkpointer equals one that took them itself", "[world][timeline]") {
    // What the visualizer's loader does: it applies events on its own thread and
    // hands events and checkpoints over in pieces.
    const trace::Trace trace = fixture_trace();  // 20 events
    const TimelineOptions options{3, false};
    const Timeline whole = Timeline::of(trace, options);
    const auto piece = [&](std::size_t from, std::size_t to) {
        return std::vector<trace::Event>(trace.events.begin() + static_cast<std::ptrdiff_t>(from),
                                         trace.events.begin() + static_cast<std::ptrdiff_t>(to));
    };
    Checkpointer checkpointer(options);
    Timeline handed(trace.header, options);
    handed.append(piece(0, 7), checkpointer.add(piece(0, 7)));
    SECTION("every piece handed over with its checkpoints") {
        handed.append(piece(7, 12), checkpointer.add(piece(7, 12)));
        handed.append(piece(12, 20), checkpointer.add(piece(12, 20)));
    }
    SECTION("checkpoints ahead of the events, the events following") {
        auto ahead = checkpointer.add(piece(7, 20));
        handed.append(piece(7, 10), std::move(ahead));
        handed.append(piece(10, 20), {});
    }
    SECTION("then the rest appended alone: the timeline carries on from the last checkpoint") {
        handed.append(piece(7, 12), checkpointer.add(piece(7, 12)));
        handed.append(piece(12, 20));
    }
    REQUIRE(handed.size() == 20);
    CHECK(handed.checkpoint_count() == whole.checkpoint_count());
    for (std::size_t n = 0; n <= trace.events.size(); ++n) {
        CAPTURE(n);
        CHECK(handed.state_at(n) == whole.state_at(n));
        CHECK(handed.state_at(n) == replay_events(trace, n));
    }
}

TEST_CASE("the fixture's story: one listener, two accepted connections, a failed bind, a drop", "[world]") {
    const trace::Trace trace = fixture_trace();
    const State world = replay_events(trace, trace.events.size());

    REQUIRE(world.hosts().size() == 4);  // in order of first appearance
    CHECK(world.hosts()[0].name == "server");
    CHECK(world.hosts()[1].name == "client-a");
    CHECK(world.hosts()[2].name == "client-b");
    CHECK(world.hosts()[3].name == "router");

    SECTION("the server") {
        const Socket& listener = socket_of(world, "server", 1);
        CHECK(listener.slot_state() == SlotState::listening);
        CHECK(listener.local == Endpoint::parse("0.0.0.0:8080").value());
        CHECK(listener.backlog == 128);
        CHECK(listener.tcp_state == TcpState::listen);
        // Socket 2 failed to bind (EADDRINUSE) and was closed: it is gone.
        const auto server = world.find_host("server").value();
        CHECK(world.find_socket(SocketRef{server, SocketId{2}}) == nullptr);
        CHECK(world.hosts()[server].errors == 1);
        const Socket& first = socket_of(world, "server", 3);
        CHECK(first.listener == SocketId{1});
        CHECK(first.slot_state() == SlotState::established);
        CHECK(first.remote == Endpoint::parse("10.0.0.1:40010").value());
        // Two accepted sockets and the listener share port 8080.
        CHECK(world.ports_in_use(server, Protocol::tcp) == std::vector<Port>{8080});
        CHECK(world.hosts()[server].addresses == std::vector{IpAddress::parse("10.0.0.2").value()});
    }

    SECTION("the clients' ephemeral pools") {
        const auto& pool = world.hosts()[1].pool;
        REQUIRE(pool.range.has_value());
        CHECK(*pool.range == PortRange{32768, 60999});
        CHECK(pool.last == Port{40010});
        CHECK(pool.parity == trace::Parity::even);
        CHECK(pool.algorithm == "linux-hash-connect");
        CHECK(pool.assignments == 1);
        CHECK(socket_of(world, "client-a", 1).slot_state() == SlotState::connecting);
        // client-b never reported a state change: bound, with a remote, still CLOSED.
        CHECK(socket_of(world, "client-b", 1).slot_state() == SlotState::bound);
    }

    SECTION("connections pair the two ends of each 4-tuple") {
        const auto connections = world.connections();
        REQUIRE(connections.size() == 2);
        for (const auto& connection : connections) {
            CAPTURE(connection.tuple.to_string());
            REQUIRE(connection.a.has_value());
            REQUIRE(connection.b.has_value());
            CHECK(connection.protocol == Protocol::tcp);
        }
        // Sorted by tuple: 10.0.0.1:40010 -> 10.0.0.2:8080 (client-a's view) first.
        CHECK(connections[0].tuple.to_string() == "10.0.0.1:40010 -> 10.0.0.2:8080");
        CHECK(connections[0].a->host == 1);
        CHECK(connections[0].b->host == 0);
        CHECK(connections[0].b->socket == SocketId{3});
        // Each tuple is seen from the connecting side, not from the accepted socket.
        CHECK(connections[1].tuple.to_string() == "10.0.0.3:40010 -> 10.0.0.2:8080");
        CHECK(connections[1].a->host == 2);
    }

    SECTION("the firewall drop") {
        REQUIRE(world.drops().size() == 1);
        CHECK(world.drops()[0].event == 19);
        CHECK(world.hosts()[world.drops()[0].host].name == "router");
        CHECK(world.drops()[0].rule == "DROP udp dport 9000");
        const auto hits = world.rule_hits().at({3, "DROP udp dport 9000"});
        CHECK(hits.count == 1);
        CHECK(world.in_flight().empty());  // a drop of a packet never seen sent
    }
}

TEST_CASE("a listener is shown listening from its listening event, before the state change", "[world]") {
    const trace::Trace trace = fixture_trace();
    // Events 0-3: note, socket_created, bound, listening.
    CHECK(socket_of(replay_events(trace, 2), "server", 1).slot_state() == SlotState::created);
    CHECK(socket_of(replay_events(trace, 3), "server", 1).slot_state() == SlotState::bound);
    CHECK(socket_of(replay_events(trace, 4), "server", 1).slot_state() == SlotState::listening);
    CHECK(socket_of(replay_events(trace, 5), "server", 1).slot_state() == SlotState::listening);
}

TEST_CASE("a closed TCP socket keeps its port until its TIME-WAIT ends", "[world]") {
    const trace::Trace trace = trace_of(
        R"({"t_us": 0, "host": "c", "type": "socket_created", "socket": 1, "protocol": "tcp", "family": "ipv4"}
{"t_us": 1, "host": "c", "type": "bound", "socket": 1, "endpoint": {"address": "10.0.0.1", "port": 40000}, "how": "ephemeral"}
{"t_us": 2, "host": "c", "type": "state_changed", "socket": 1, "from": "SYN-SENT", "to": "ESTABLISHED", "cause": ""}
{"t_us": 3, "host": "c", "type": "closed", "socket": 1}
{"t_us": 4, "host": "c", "type": "state_changed", "socket": 1, "from": "ESTABLISHED", "to": "FIN-WAIT-1", "cause": "close() called"}
{"t_us": 5, "host": "c", "type": "state_changed", "socket": 1, "from": "FIN-WAIT-2", "to": "TIME-WAIT", "cause": "FIN received"}
{"t_us": 6, "host": "c", "type": "state_changed", "socket": 1, "from": "TIME-WAIT", "to": "CLOSED", "cause": "2MSL timer expired"}
{"t_us": 7, "host": "c", "type": "socket_created", "socket": 2, "protocol": "udp", "family": "ipv4"}
{"t_us": 8, "host": "c", "type": "closed", "socket": 2}
)");
    CHECK(socket_of(replay_events(trace, 4), "c", 1).closed_by_app);
    CHECK(socket_of(replay_events(trace, 5), "c", 1).slot_state() == SlotState::closing);
    CHECK(socket_of(replay_events(trace, 6), "c", 1).slot_state() == SlotState::time_wait);
    CHECK(replay_events(trace, 6).ports_in_use(0, Protocol::tcp) == std::vector<Port>{40000});
    const State done = replay_events(trace, 7);
    CHECK(done.find_socket(SocketRef{0, SocketId{1}}) == nullptr);
    CHECK(done.socket_count() == 0);
    CHECK(replay_events(trace, 8).socket_count() == 1);
    CHECK(replay_events(trace, 9).socket_count() == 0);  // a UDP socket goes at close()
}

TEST_CASE("a sent packet is in flight until the same bytes are delivered or dropped", "[world]") {
    const std::string sent = std::string(R"({"t_us": 1, "host": "client", "type": "packet", "kind": "sent", "bytes": ")") +
                             syn_hex + R"(", "from_host": "client", "to_host": "server"})" + "\n";
    const std::string delivered = std::string(R"({"t_us": 2, "host": "server", "type": "packet", "kind": "delivered", "bytes": ")") +
                                  syn_hex + R"("})" + "\n";
    const trace::Trace trace = trace_of(sent + delivered);
    const State after_send = replay_events(trace, 1);
    REQUIRE(after_send.in_flight().size() == 1);
    CHECK(after_send.in_flight()[0].event == 0);
    CHECK(after_send.hosts().size() == 2);  // from_host and to_host are hosts too
    CHECK(replay_events(trace, 2).in_flight().empty());
    CHECK(Timeline::of(trace).reports_deliveries());
}

TEST_CASE("packets are labelled from their decoded headers", "[world][packet]") {
    using Case = std::tuple<const char*, PacketLabel, std::string>;
    const auto [hex, label, source] = GENERATE(table<const char*, PacketLabel, std::string>({
        Case{syn_hex, PacketLabel::syn, "127.0.0.1:40002"},
        Case{syn_ack_hex, PacketLabel::syn_ack, "127.0.0.1:8080"},
        Case{ack_hex, PacketLabel::ack, "127.0.0.1:40002"},
        Case{udp_hex, PacketLabel::udp, "10.0.0.1:51000"},
    }));
    CAPTURE(hex);
    const PacketInfo info = describe_packet(trace::Packet{trace::PacketKind::sent, bytes_of(hex), LinkType::raw, {}, {}, {}});
    REQUIRE(info.decoded);
    CHECK(info.label == label);
    CHECK(info.source->to_string() == source);
}

TEST_CASE("a packet that does not decode is described, not fatal", "[world][packet]") {
    const PacketInfo info = describe_packet(trace::Packet{trace::PacketKind::sent, Bytes{0x45, 0x00}, LinkType::raw, {}, {}, {}});
    CHECK_FALSE(info.decoded);
    CHECK_FALSE(info.error.empty());
}

TEST_CASE("captions say what each event means in one sentence", "[world][caption]") {
    const Timeline timeline = Timeline::of(fixture_trace());
    CHECK(timeline.caption(0) == "One listening socket, two connections: the 4-tuples differ in the client's address.");
    CHECK(timeline.caption(2) == "The server bound socket 1 to 0.0.0.0:8080, the port it asked for.");
    CHECK(timeline.caption(3) == "The server's socket 1 is listening (backlog 128): connections to its port can now be "
                                 "accepted.");
    CHECK(timeline.caption(6) == "The server's bind() on socket 2 failed with EADDRINUSE: Address already in use.");
    CHECK(timeline.caption(10) ==
          "The client-a's OS assigned ephemeral port 40010 to socket 1, from 32768-60999 (linux-hash-connect, even).");
    CHECK(timeline.caption(12) == "The client-a's socket 1 went from CLOSED to SYN-SENT: connect() called.");
    CHECK(timeline.caption(17) == "The server accepted a connection on socket 1: new socket 3 for 10.0.0.2:8080 -> "
                                  "10.0.0.1:40010, sharing port 8080 with the listener.");
    CHECK(timeline.caption(19) ==
          "The router dropped a UDP datagram from 10.0.0.1:51000 to 10.0.0.2:9000 carrying 2 bytes (DROP udp dport 9000).");
}

TEST_CASE("a note at the same time on the same host is shown beside the event before it, never instead", "[world][caption]") {
    const Timeline timeline = Timeline::of(trace_of(
        R"({"t_us": 5, "host": "lo", "type": "socket_created", "socket": 1, "protocol": "udp", "family": "ipv6"}
{"t_us": 5, "host": "lo", "type": "note", "text": "A UDP socket for DNS."}
{"t_us": 6, "host": "lo", "type": "closed", "socket": 1}
{"t_us": 7, "host": "lo", "type": "note", "text": "Later."}
{"t_us": 8, "host": "lo", "type": "connect_started", "socket": 9, "remote": {"address": "127.0.0.1", "port": 80}}
)"));
    CHECK(timeline.caption(0) == "The host created a UDP socket, socket 1 (IPv6); it has no port yet.");
    CHECK(timeline.note_for(0) == 1u);
    CHECK(timeline.narration(0) == "The host created a UDP socket, socket 1 (IPv6); it has no port yet.\nA UDP socket for DNS.");
    CHECK(timeline.caption(1) == "A UDP socket for DNS.");
    CHECK_FALSE(timeline.note_for(1).has_value());  // a note has no note
    CHECK(timeline.caption(2) == "The host closed socket 1.");  // the note is a microsecond later
    CHECK_FALSE(timeline.note_for(2).has_value());
    CHECK(timeline.narration(2) == "The host closed socket 1.");
    CHECK(timeline.caption(4) == "The host called connect() on socket 9 to 127.0.0.1:80 (http).");
    CHECK(timeline.protocol_of(0) == Protocol::udp);
    CHECK(timeline.protocol_of(1) == std::nullopt);
    CHECK(timeline.protocol_of(4) == std::nullopt);  // socket 9 was never introduced
}

TEST_CASE("a socket's TCP state path lists its state changes up to the cursor", "[world][timeline]") {
    const Timeline timeline = Timeline::of(fixture_trace());
    CHECK(timeline.state_path("client-a", SocketId{1}, 20) == std::vector<std::size_t>{12});
    CHECK(timeline.state_path("client-a", SocketId{1}, 12).empty());
    CHECK(timeline.state_path("server", SocketId{1}, 20) == std::vector<std::size_t>{4});
}

TEST_CASE("a capture becomes one sent packet event per record, hosts named by address", "[world][pcap]") {
    pcap::Capture capture;
    capture.link_type = LinkType::raw;
    capture.records.push_back(pcap::Record::whole(1'000'000, bytes_of(udp_hex)));
    capture.records.push_back(pcap::Record::whole(1'000'500, bytes_of(syn_hex)));
    capture.records.push_back(pcap::Record::whole(1'000'400, bytes_of(syn_ack_hex)));  // earlier: merged capture
    capture.records.push_back(pcap::Record::whole(1'000'600, bytes_of(ack_hex)));
    capture.records.push_back(pcap::Record::whole(1'000'700, Bytes{0x60}));  // not a packet
    const trace::Trace trace = trace_from_capture(capture, "x.pcap");
    REQUIRE(trace.events.size() == 5);
    CHECK(trace.header.source == "pcap");
    CHECK(trace.events[0].t_us == 0);
    CHECK(trace.events[1].t_us == 500);
    CHECK(trace.events[2].t_us == 500);  // held, never backwards
    CHECK(trace.events[0].host == "10.0.0.1");
    const auto& packet = std::get<trace::Packet>(trace.events[0].body);
    CHECK(packet.to_host == "10.0.0.2");
    CHECK(trace.events[4].host == "capture");

    const auto conversations = find_conversations(Timeline::of(trace));
    REQUIRE(conversations.size() == 2);
    CHECK(conversations[0].protocol == Protocol::udp);
    CHECK(conversations[0].packets() == 1);
    CHECK(conversations[1].protocol == Protocol::tcp);
    CHECK(conversations[1].a.to_string() == "127.0.0.1:40002");
    CHECK(conversations[1].packets() == 3);
    CHECK(conversations[1].packets_a_to_b == 2);  // SYN, ACK; the SYN-ACK came back
    CHECK(conversations[1].first_index == 1);
    CHECK(conversations[1].last_index == 3);
}

TEST_CASE("files open by their first bytes, and bad ones give the reason and the line", "[world][files]") {
    const test::TempDir dir;
    SECTION("a missing file") {
        const auto read = read_any_file(dir.file("nope.jsonl"));
        REQUIRE_FALSE(read.has_value());
        CHECK_THAT(read.error().message, Catch::Contains("nope.jsonl"));
    }
    SECTION("a trace with a bad third line") {
        std::ofstream(dir.file("bad.jsonl"))
            << R"({"portlab_trace": 1, "source": "test", "generator": "t"})" << "\n"
            << R"({"t_us": 0, "host": "a", "type": "closed", "socket": 1})" << "\n"
            << R"({"t_us": 1, "host": "a", "type": "closed"})" << "\n";
        const auto read = read_any_file(dir.file("bad.jsonl"));
        REQUIRE_FALSE(read.has_value());
        CHECK_THAT(read.error().message, Catch::Contains("line 3"));
    }
    SECTION("an empty file") {
        std::ofstream(dir.file("empty.jsonl")).flush();
        const auto read = read_any_file(dir.file("empty.jsonl"));
        REQUIRE_FALSE(read.has_value());
        CHECK_THAT(read.error().message, Catch::Contains("line 1"));
    }
    SECTION("a capture") {
        {
            auto writer = pcap::Writer::create(dir.file("c.pcap"), LinkType::raw);
            REQUIRE(writer.has_value());
            REQUIRE(writer->write(pcap::Record::whole(5, bytes_of(syn_hex))).has_value());
            REQUIRE(writer->close().has_value());
        }
        const auto read = read_any_file(dir.file("c.pcap"));
        REQUIRE(read.has_value());
        REQUIRE(read->events.size() == 1);
        CHECK(read->events[0].host == "127.0.0.1");
    }
}

TEST_CASE("the threaded reader reads what trace::read_trace reads and fails on the same line", "[world][files]") {
    // 30,000 lines, enough for the reader to split them between threads.
    const auto note = [](std::uint64_t t) {
        return R"({"t_us": )" + std::to_string(t) + R"(, "host": "h", "type": "note", "text": "n"})";
    };
    std::vector<std::string> lines{R"({"portlab_trace": 1, "source": "test", "generator": "t"})"};
    for (std::uint64_t t = 0; t < 30000; ++t) lines.push_back(note(t));
    const auto text_of = [](const std::vector<std::string>& all) {
        std::string text;
        for (const auto& line : all) text += line + "\n";
        return text;
    };
    const auto same = [&](const std::vector<std::string>& all) {
        const std::string text = text_of(all);
        std::istringstream in(text);
        const auto expected = trace::read_trace(in);
        for (const unsigned threads : {1u, 2u, 3u}) {
            CAPTURE(threads);
            const auto got = read_trace_text(text, threads);
            REQUIRE(got.has_value() == expected.has_value());
            if (expected) {
                CHECK(got->header == expected->header);
                CHECK(got->events == expected->events);
            } else {
                CHECK(got.error().message == expected.error().message);
            }
        }
    };
    SECTION("a good trace") { same(lines); }
    SECTION("a line that is not JSON, late in the file") {
        lines[25000] = "{oops";
        same(lines);
    }
    SECTION("time going backwards early, and a bad line later: the earlier one is reported") {
        lines[100] = note(5);
        lines[29000] = "{oops";
        same(lines);
    }
    SECTION("a bad line early, and time going backwards later") {
        lines[50] = R"({"t_us": 50, "host": "h", "type": "nope"})";
        lines[28000] = note(1);
        same(lines);
    }
    SECTION("a socket introduced twice") {
        lines[10] = R"({"t_us": 9, "host": "h", "type": "socket_created", "socket": 4, "protocol": "udp", "family": "ipv4"})";
        lines[20000] = R"({"t_us": 19999, "host": "h", "type": "socket_created", "socket": 4, "protocol": "udp", "family": "ipv4"})";
        same(lines);
    }
    SECTION("a version-2 event in this version-1 file") {
        lines[700] = R"({"t_us": 699, "host": "h", "type": "timer_fired", "socket": 1, "timer": "retransmission"})";
        same(lines);
    }
    SECTION("a version-2 file: a host declared after its first event") {
        lines[0] = R"({"portlab_trace": 2, "source": "test", "generator": "t"})";
        lines[21000] = R"({"t_us": 20999, "host": "h", "type": "host", "addresses": [], "role": ""})";
        same(lines);
    }
    SECTION("an empty line, and no final newline") {
        lines[3] = "";
        same(lines);
        lines[3] = note(2);
        const std::string text = text_of(lines);
        const auto got = read_trace_text(text.substr(0, text.size() - 1), 2);
        REQUIRE(got.has_value());
        CHECK(got->events.size() == 30000);
    }
    SECTION("nothing at all") { CHECK(read_trace_text("", 2).error().message == "line 1: empty trace, expected a header line"); }
}

// ---- version 2: hosts, evidence, timers, drop causes, ports from ephemeral_assigned ----

TEST_CASE("a host appears when declared or named by an event, never for a note", "[world][v2]") {
    const State world = replay_all(trace_v2_of(
        R"({"t_us": 0, "host": "localhost", "type": "note", "text": "A lab's first words, on no declared host."}
{"t_us": 0, "host": "client", "type": "host", "addresses": ["10.0.0.1", "2001:db8::1"], "role": "client"}
{"t_us": 0, "host": "server", "type": "host", "addresses": ["10.0.0.2"], "role": "server"}
{"t_us": 1, "host": "client", "type": "socket_created", "socket": 1, "protocol": "tcp", "family": "ipv4"}
{"t_us": 2, "host": "client", "type": "bound", "socket": 1, "endpoint": {"address": "10.0.0.1", "port": 4000}, "how": "explicit"}
{"t_us": 3, "host": "elsewhere", "type": "note", "text": "Still no host."}
)"));
    REQUIRE(world.hosts().size() == 2);
    CHECK_FALSE(world.find_host("localhost"));
    CHECK_FALSE(world.find_host("elsewhere"));
    const auto& client = world.hosts()[*world.find_host("client")];
    CHECK(client.declared);
    CHECK(client.role == "client");
    CHECK(client.addresses == std::vector<IpAddress>{IpAddress::parse("10.0.0.1").value(), IpAddress::parse("2001:db8::1").value()});
    const auto& server = world.hosts()[*world.find_host("server")];
    CHECK(server.declared);
    CHECK(server.sockets.empty());  // declared, with nothing on it yet: drawn all the same
    CHECK(world.host_with_address(IpAddress::parse("10.0.0.2").value()) == world.find_host("server"));
    CHECK(world.last_note() == 5u);
}

TEST_CASE("a socket keeps the evidence of its last state change", "[world][v2]") {
    const trace::Trace trace = trace_v2_of(
        R"({"t_us": 1, "host": "a", "type": "state_changed", "socket": 1, "from": "CLOSED", "to": "SYN-SENT", "cause": "connect() returned", "evidence": "inferred"}
{"t_us": 2, "host": "a", "type": "state_changed", "socket": 1, "from": "SYN-SENT", "to": "ESTABLISHED", "cause": "sock_diag", "evidence": "observed"}
)");
    CHECK(socket_of(replay_events(trace, 1), "a", 1).evidence == trace::Evidence::inferred);
    const State world = replay_events(trace, 2);  // kept: socket_of returns a reference into it
    const Socket& socket = socket_of(world, "a", 1);
    CHECK(socket.evidence == trace::Evidence::observed);
    CHECK(socket.tcp_state == TcpState::established);
    // A version-1 trace's states are the model's.
    const State v1 = replay_all(trace_of(
        R"({"t_us": 1, "host": "a", "type": "state_changed", "socket": 1, "from": "CLOSED", "to": "LISTEN", "cause": ""})" "\n"));
    CHECK(socket_of(v1, "a", 1).evidence == trace::Evidence::model);
}

TEST_CASE("a timer counts down from timer_armed until it fires or is stopped", "[world][v2][timer]") {
    const trace::Trace trace = trace_v2_of(
        R"({"t_us": 100, "host": "c", "type": "socket_created", "socket": 7, "protocol": "tcp", "family": "ipv4"}
{"t_us": 100, "host": "c", "type": "timer_armed", "socket": 7, "timer": "retransmission", "duration_us": 1000000, "attempt": 0}
{"t_us": 400100, "host": "c", "type": "note", "text": "waiting"}
{"t_us": 1000100, "host": "c", "type": "timer_fired", "socket": 7, "timer": "retransmission"}
{"t_us": 1000100, "host": "c", "type": "timer_armed", "socket": 7, "timer": "retransmission", "duration_us": 2000000, "attempt": 1}
{"t_us": 1500000, "host": "c", "type": "timer_stopped", "socket": 7, "timer": "retransmission"}
{"t_us": 1600000, "host": "c", "type": "state_changed", "socket": 7, "from": "FIN-WAIT-2", "to": "TIME-WAIT", "cause": "FIN received"}
{"t_us": 1600000, "host": "c", "type": "timer_armed", "socket": 7, "timer": "time-wait", "duration_us": 60000000, "attempt": 0}
{"t_us": 1600000, "host": "c", "type": "closed", "socket": 7}
{"t_us": 61600000, "host": "c", "type": "timer_fired", "socket": 7, "timer": "time-wait"}
{"t_us": 61600000, "host": "c", "type": "state_changed", "socket": 7, "from": "TIME-WAIT", "to": "CLOSED", "cause": "2MSL timer expired"}
{"t_us": 61600001, "host": "c", "type": "timer_stopped", "socket": 7, "timer": "time-wait"}
)");
    const auto timer_of = [&](std::size_t n, trace::TimerKind kind) -> std::optional<RunningTimer> {
        const State world = replay_events(trace, n);
        const Socket& socket = socket_of(world, "c", 7);
        const auto found = socket.timers.find(kind);
        if (found == socket.timers.end()) return std::nullopt;
        return found->second;
    };
    const auto first = timer_of(2, trace::TimerKind::retransmission);
    REQUIRE(first);
    CHECK(first->armed_at_us == 100);
    CHECK(first->expires_at_us == 1000100);
    CHECK(first->attempt == 0);
    CHECK(first->remaining_us(400100) == 600000);  // a viewer's countdown at the note
    CHECK(first->remaining_us(2000000) == 0);
    CHECK_FALSE(timer_of(4, trace::TimerKind::retransmission));  // fired
    const auto second = timer_of(5, trace::TimerKind::retransmission);
    REQUIRE(second);
    CHECK(second->attempt == 1);
    CHECK(second->expires_at_us == 3000100);
    CHECK_FALSE(timer_of(6, trace::TimerKind::retransmission));  // stopped: the ACK came
    const auto time_wait = timer_of(8, trace::TimerKind::time_wait);
    REQUIRE(time_wait);
    CHECK(time_wait->expires_at_us == 61600000);
    CHECK(timer_of(9, trace::TimerKind::time_wait));  // close() leaves TIME-WAIT running
    CHECK_FALSE(timer_of(10, trace::TimerKind::time_wait));
    // Gone at CLOSED, and a late timer event brings no socket back.
    const State end = replay_all(trace);
    CHECK(end.find_socket(SocketRef{*end.find_host("c"), SocketId{7}}) == nullptr);
    CHECK(end.socket_count() == 0);
}

TEST_CASE("drops keep their cause: a link loss is not a firewall drop, hits count per rule id", "[world][v2][firewall]") {
    const std::string udp = udp_hex;
    const State world = replay_all(trace_v2_of(
        R"({"t_us": 1, "host": "router", "type": "packet", "kind": "dropped", "bytes": ")" + udp + R"(", "rule": "udp dport 9000 drop", "cause": "firewall", "rule_id": "r1"}
{"t_us": 2, "host": "router", "type": "packet", "kind": "dropped", "bytes": ")" + udp + R"(", "rule": "udp dport 9000 drop", "cause": "firewall", "rule_id": "r1"}
{"t_us": 3, "host": "router", "type": "packet", "kind": "dropped", "bytes": ")" + udp + R"(", "cause": "link"}
{"t_us": 4, "host": "server", "type": "packet", "kind": "dropped", "bytes": ")" + udp + R"(", "rule": "no socket on port 9000", "cause": "no-socket"}
)"));
    REQUIRE(world.drops().size() == 4);
    CHECK(world.drops()[0].by_firewall());
    CHECK(world.drops()[0].rule_id == "r1");
    CHECK_FALSE(world.drops()[2].by_firewall());
    CHECK(world.drops()[2].cause == trace::DropCause::link);
    CHECK_FALSE(world.drops()[3].by_firewall());
    REQUIRE(world.rule_hits().size() == 1);
    const auto& [key, hits] = *world.rule_hits().begin();
    CHECK(key == std::pair<HostIndex, std::string>{*world.find_host("router"), "r1"});
    CHECK(hits.count == 2);
    CHECK(hits.last_event == 1);
    CHECK(hits.text == "udp dport 9000 drop");
    // Version 1: a drop that names a rule is the firewall's, keyed by the rule's text.
    const State v1 = replay_all(fixture_trace());
    REQUIRE(v1.rule_hits().size() == 1);
    CHECK(v1.rule_hits().begin()->first.second == "DROP udp dport 9000");
}

TEST_CASE("ephemeral_assigned without bound gives the socket its port, and the pool counts it", "[world][v2][pool]") {
    // What lab03 writes: the port comes from getsockname() after connect(); no `bound`.
    const State world = replay_all(trace_v2_of(
        R"({"t_us": 1, "host": "client", "type": "socket_created", "socket": 1, "protocol": "tcp", "family": "ipv4"}
{"t_us": 2, "host": "client", "type": "connect_started", "socket": 1, "remote": {"address": "127.0.0.1", "port": 8080}}
{"t_us": 2, "host": "client", "type": "ephemeral_assigned", "socket": 1, "port": 40002, "range_low": 32768, "range_high": 60999, "algorithm": "linux-hash-connect"}
{"t_us": 3, "host": "client", "type": "socket_created", "socket": 2, "protocol": "tcp", "family": "ipv6"}
{"t_us": 4, "host": "client", "type": "ephemeral_assigned", "socket": 2, "port": 40004, "range_low": 32768, "range_high": 60999, "algorithm": "linux-hash-connect"}
{"t_us": 5, "host": "client", "type": "bound", "socket": 2, "endpoint": {"address": "::1", "port": 40004}, "how": "ephemeral"}
)"));
    const HostIndex client = *world.find_host("client");
    CHECK(world.ports_in_use(client, Protocol::tcp) == std::vector<Port>{40002, 40004});
    const Socket& first = socket_of(world, "client", 1);
    REQUIRE(first.local);
    CHECK(first.local->port == 40002);
    CHECK(first.local->address.is_unspecified());
    CHECK(first.slot_state() != SlotState::created);
    const Socket& second = socket_of(world, "client", 2);
    CHECK(second.local == Endpoint::parse("[::1]:40004").value());  // `bound` names the address when it comes
}

TEST_CASE("a packet's two ends are paired oldest first, as in_flight pairs them", "[world][timeline]") {
    const Timeline timeline = Timeline::of(trace_of(
        R"({"t_us": 1, "host": "a", "type": "packet", "kind": "sent", "bytes": "450000280000400040063cce7f0000017f0000019c421f90000003e8000000005002ffd7f24d0000"}
{"t_us": 2, "host": "a", "type": "packet", "kind": "sent", "bytes": "450000280000400040063cce7f0000017f0000019c421f90000003e8000000005002ffd7f24d0000"}
{"t_us": 3, "host": "b", "type": "packet", "kind": "delivered", "bytes": "450000280000400040063cce7f0000017f0000019c421f90000003e8000000005002ffd7f24d0000"}
{"t_us": 4, "host": "b", "type": "note", "text": "one of two arrived"}
)"));
    CHECK(timeline.fate_of(0) == 2u);
    CHECK(timeline.sent_of(2) == 0u);
    CHECK_FALSE(timeline.fate_of(1).has_value());  // the trace never says what became of the second
    CHECK_FALSE(timeline.sent_of(0).has_value());
    CHECK_FALSE(timeline.fate_of(3).has_value());
    CHECK(timeline.state_at(3).in_flight().size() == 1);
    CHECK(timeline.state_at(3).in_flight()[0].event == 1u);
}
