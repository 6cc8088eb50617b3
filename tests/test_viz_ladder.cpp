// The ladder diagram and the packet list's Info column, without a window, on the
// simulator's scenarios. Judges: the replay model's 4-tuples (from socket events,
// not packets) for the columns; the trace's own bytes and drop events for the
// marks; tshark's Info column and tcp.analysis flags for the words and the marks
// of the same packets, read from the pcap portlab-sim writes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "support.hpp"
#include "portlab/text_safety.hpp"
#include "view/ladder.hpp"
#include "view/ladder_svg.hpp"
#include "view/model.hpp"
#include "view/view_state.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

PacketLadder ladder_of(const Model& model) {
    PacketLadder ladder;
    ladder.extend(model.timeline());
    return ladder;
}

std::vector<std::size_t> tcp_rows(const PacketLadder& ladder) {
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < ladder.rows().size(); ++i)
        if (ladder.rows()[i].protocol == Protocol::tcp) rows.push_back(i);
    return rows;
}

// The TCP segment of a sent packet, from its TCP header on: what TCP sent, without
// the IP header's identification (which a resend may change).
Bytes segment_of(const trace::Packet& packet) {
    const auto decoded = decode_frame(packet.link, packet.bytes);
    REQUIRE(decoded.has_value());
    const auto* tcp = decoded->find_layer("TCP");
    REQUIRE(tcp != nullptr);
    return Bytes(packet.bytes.begin() + static_cast<std::ptrdiff_t>(tcp->offset), packet.bytes.end());
}

// portlab-sim's pcap of a scenario, and tshark's Info column and expert flags for it.
struct TsharkView {
    std::vector<std::string> info;
    std::vector<bool> retransmission;
    std::vector<bool> duplicate_ack;
};

TsharkView tshark_of(const std::string& pcap) {
    if (!test::tool_available("tshark")) FAIL("tshark is not installed: run tools/setup (this test is required, not optional)");
    // -o tcp.relative_sequence_numbers:TRUE is tshark's default, said here so the test does not depend on a profile;
    // the application dissectors are off, as the Info column portlab writes is the transport's.
    const auto run = test::run_command("tshark -n -o tcp.relative_sequence_numbers:TRUE --disable-protocol http --disable-protocol dns -r " +
                                           test::shell_quote(pcap) +
                                           " -T fields -E separator=/t -e _ws.col.Info -e tcp.analysis.retransmission"
                                           " -e tcp.analysis.fast_retransmission -e tcp.analysis.spurious_retransmission"
                                           " -e tcp.analysis.duplicate_ack",
                                       60);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    TsharkView view;
    for (const auto& line : test::lines_of(run.out)) {
        std::vector<std::string> fields;
        std::size_t start = 0;
        for (std::size_t tab = line.find('\t'); ; tab = line.find('\t', start)) {
            fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        fields.resize(5);
        view.info.push_back(fields[0]);
        view.retransmission.push_back(!fields[1].empty() || !fields[2].empty() || !fields[3].empty());
        view.duplicate_ack.push_back(!fields[4].empty());
    }
    return view;
}

// tshark writes "SACK_PERM=1" in 4.0 and "SACK_PERM" later; its Dup ACK mark names the
// ACK it repeats ("[TCP Dup ACK 5#1]"); and it adds expert words portlab does not
// (Spurious, Fast, Out-Of-Order...). What is compared: everything else, word for word.
std::string comparable(std::string info) {
    for (const std::string old : {"SACK_PERM=1"})
        if (const auto at = info.find(old); at != std::string::npos) info.replace(at, old.size(), "SACK_PERM");
    if (info.starts_with("[")) {
        const auto close = info.find("] ");
        if (close != std::string::npos && info.find(" → ") > close) info.erase(0, close + 2);
    }
    return info;
}

TsharkView tshark_of_scenario(const std::string& scenario, const test::TempDir& dir) {
    const std::string pcap = dir.file(scenario + ".pcap");
    const auto sim = test::run_command(test::shell_quote(test::bin_path("portlab-sim")) + " --scenario " + scenario +
                                           " --pcap " + test::shell_quote(pcap) + " >/dev/null",
                                       60);
    INFO(sim.err);
    REQUIRE(sim.exit_code == 0);
    return tshark_of(pcap);
}

}  // namespace

TEST_CASE("the web scenario's ladder: one column per endpoint of the handshake, SYN / SYN,ACK / ACK with relative seq 0/0/1",
          "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("web").has_value());
    const PacketLadder ladder = ladder_of(model);
    const auto tcp = tcp_rows(ladder);
    REQUIRE(tcp.size() >= 3);
    const auto& syn = ladder.rows()[tcp[0]];
    const auto& syn_ack = ladder.rows()[tcp[1]];
    const auto& ack = ladder.rows()[tcp[2]];

    // The columns are the connection's two ends as the replay model knows them from
    // socket events (connect, accept), after the handshake.
    model.seek(ack.event + 1);
    REQUIRE(model.connections().size() == 1);
    const FourTuple tuple = model.connections().front().tuple;
    const LadderView view = make_ladder_view(ladder, {}, ColumnMode::automatic);
    CHECK_FALSE(view.by_host);
    std::set<std::string> labels;
    for (const auto& column : view.columns) labels.insert(column.label);
    CHECK(labels == std::set<std::string>{tuple.local.to_string(), tuple.remote.to_string()});

    // The handshake goes across and back, SYN from the client's end.
    CHECK(syn.from_endpoint == ack.from_endpoint);
    CHECK(syn.to_endpoint == syn_ack.from_endpoint);
    CHECK(syn_ack.to_endpoint == syn.from_endpoint);
    CHECK(syn.from_endpoint != syn.to_endpoint);
    CHECK(arrow_label(syn).starts_with("SYN Seq=0 Len=0"));
    CHECK(arrow_label(syn_ack).starts_with("SYN, ACK Seq=0 Ack=1 Len=0"));
    CHECK(arrow_label(ack).starts_with("ACK Seq=1 Ack=1 Len=0"));
    // Absolute numbers on demand: the SYN's seq is its ISN, the SYN-ACK acknowledges ISN + 1.
    CHECK(arrow_label(syn, false) == "SYN Seq=" + std::to_string(syn.seq) + " Len=0");
    CHECK(syn_ack.ack == syn.seq + 1);
    CHECK_FALSE(syn.retransmission);

    // Rows are the packets in event order, each at its `sent` event, delivered later.
    for (std::size_t i = 0; i < ladder.rows().size(); ++i) {
        const auto& row = ladder.rows()[i];
        CAPTURE(i, row.event);
        const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(row.event).body);
        REQUIRE(packet != nullptr);
        CHECK(packet->kind == trace::PacketKind::sent);
        if (i > 0) CHECK(ladder.rows()[i - 1].event < row.event);
        REQUIRE(row.fate.has_value());
        CHECK(*row.fate > row.event);
        CHECK_FALSE(row.drop.has_value());
        CHECK(arrow_end(row, row.event + 1).kind == ArrowEnd::Kind::in_flight);
        CHECK(arrow_end(row, *row.fate + 1).kind == ArrowEnd::Kind::arrived);
    }
    // Synchronised with the cursor: the arrows drawn are those sent so far.
    CHECK(view.visible(ladder, 0) == 0);
    CHECK(view.visible(ladder, syn_ack.event) == 1);
    CHECK(view.visible(ladder, syn_ack.event + 1) == 2);
    CHECK(view.visible(ladder, model.size()) == view.rows.size());
    CHECK(ladder.row_of_event(model.timeline(), *syn_ack.fate) == tcp[1]);
}

TEST_CASE("lossy-link: a retransmission mark exactly where the simulator sent the same segment again", "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("lossy-link").has_value());
    const PacketLadder ladder = ladder_of(model);
    std::size_t marked = 0;
    std::size_t lost = 0;
    std::vector<Bytes> sent_before;
    for (const auto& row : ladder.rows()) {
        if (row.protocol != Protocol::tcp) continue;
        CAPTURE(row.event, arrow_label(row));
        const auto& packet = std::get<trace::Packet>(model.timeline().event(row.event).body);
        const Bytes segment = segment_of(packet);
        const bool resent = std::find(sent_before.begin(), sent_before.end(), segment) != sent_before.end();
        // An ACK repeated as it was is a duplicate ACK, not a retransmission (it occupies no sequence space).
        const bool occupies_sequence_space = row.payload > 0 || (row.flags & (tcp_flag::syn | tcp_flag::fin)) != 0;
        CHECK(row.retransmission == (resent && occupies_sequence_space));
        sent_before.push_back(segment);
        if (row.retransmission) ++marked;
        if (row.drop) {
            ++lost;
            CHECK(row.lost_on_link);
            CHECK_FALSE(row.drop->by_firewall);
            CHECK(arrow_end(row, *row.fate + 1).kind == ArrowEnd::Kind::dropped);
            CHECK(arrow_end(row, *row.fate + 1).fraction == 0.5f);  // on the link, between the two columns
        }
    }
    CHECK(marked > 0);
    CHECK(lost > 0);
}

TEST_CASE("firewall-drop: the SYNs the firewall drops are marked dropped by rule r1, the resent ones as retransmissions",
          "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("firewall-drop").has_value());
    const PacketLadder ladder = ladder_of(model);
    std::size_t dropped_events = 0;
    for (std::size_t i = 0; i < model.size(); ++i) {
        const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(i).body);
        if (!packet || packet->kind != trace::PacketKind::dropped) continue;
        ++dropped_events;
        CAPTURE(i);
        CHECK(packet->rule_id == std::optional<std::string>("r1"));
        const auto row = ladder.row_of_event(model.timeline(), i);
        REQUIRE(row.has_value());
        const auto& dropped = ladder.rows()[*row];
        CHECK(dropped.fate == i);
        REQUIRE(dropped.drop.has_value());
        CHECK(dropped.drop->by_firewall);
        CHECK_THAT(dropped.drop->text, Catch::Contains("rule r1"));
        CHECK(dropped.flags == tcp_flag::syn);
        CHECK(dropped.relative_seq == 0);
        // On the link until the drop, then stopped at the server's door, short of it.
        CHECK(arrow_end(dropped, i).kind == ArrowEnd::Kind::in_flight);
        CHECK(arrow_end(dropped, i + 1).kind == ArrowEnd::Kind::dropped);
        CHECK(arrow_end(dropped, i + 1).fraction > 0.5f);
        CHECK(arrow_end(dropped, i + 1).fraction < 1.0f);
    }
    std::size_t marked_drops = 0;
    std::size_t retransmitted = 0;
    for (const auto& row : ladder.rows()) {
        if (row.drop) ++marked_drops;
        if (row.flags == tcp_flag::syn) {
            // The first SYN is new; each later one repeats it (the same ISN).
            CHECK(row.retransmission == (retransmitted++ > 0));
        }
    }
    CHECK(dropped_events >= 2);
    CHECK(marked_drops == dropped_events);
}

TEST_CASE("the filter: a port, flags, and following one connection", "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("two-tabs").has_value());
    const PacketLadder ladder = ladder_of(model);
    const auto tcp = tcp_rows(ladder);
    REQUIRE(!tcp.empty());
    const auto& first = ladder.rows()[tcp.front()];

    PacketFilter syns;
    syns.flags = tcp_flag::syn;
    const auto syn_view = make_ladder_view(ladder, syns, ColumnMode::automatic);
    CHECK(syn_view.rows.size() == 4);  // two handshakes: SYN and SYN-ACK each
    for (const auto& row : syn_view.rows) CHECK((ladder.rows()[row.row].flags & tcp_flag::syn) != 0);

    PacketFilter follow;
    follow.connection = tuple_of(first);
    const auto followed = make_ladder_view(ladder, follow, ColumnMode::automatic);
    CHECK(followed.columns.size() == 2);
    std::size_t both_ways = 0;
    for (const auto& row : ladder.rows())
        if (row.protocol == Protocol::tcp && (tuple_of(row) == tuple_of(first) || tuple_of(row) == tuple_of(first).reversed())) ++both_ways;
    CHECK(followed.rows.size() == both_ways);
    CHECK(followed.rows.size() < tcp.size());  // the other tab's connection is gone

    PacketFilter by_port;
    by_port.port = first.source.port;  // the first client's ephemeral port: that connection only
    CHECK(make_ladder_view(ladder, by_port, ColumnMode::automatic).rows.size() == both_ways);
    CHECK(make_ladder_view(ladder, {}, ColumnMode::hosts).columns.size() == 2);
    CHECK(make_ladder_view(ladder, {}, ColumnMode::endpoints).columns.size() == 3);
}

TEST_CASE("a scan's ladder has a column per host, since a column per probed port would not fit", "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("scan").has_value());
    const PacketLadder ladder = ladder_of(model);
    CHECK(ladder.endpoints().size() > automatic_endpoint_limit);
    const auto view = make_ladder_view(ladder, {}, ColumnMode::automatic);
    CHECK(view.by_host);
    CHECK(view.columns.size() == ladder.addresses().size());
    CHECK(view.columns.size() >= 2);
}

TEST_CASE("the Info column reads as tshark's for the same packets, and the expert marks agree with tcp.analysis",
          "[viz][ladder][tshark]") {
    const test::TempDir dir;
    for (const std::string scenario : {"web", "lossy-link", "firewall-drop", "closed-port", "dns-udp"}) {
        CAPTURE(scenario);
        const auto tshark = tshark_of_scenario(scenario, dir);
        Model model;
        REQUIRE(model.open_file(dir.file(scenario + ".pcap")).has_value());
        const PacketLadder ladder = ladder_of(model);
        REQUIRE(ladder.rows().size() == tshark.info.size());
        std::size_t compared = 0;
        for (std::size_t i = 0; i < ladder.rows().size(); ++i) {
            const auto& row = ladder.rows()[i];
            if (!row.protocol) continue;  // ICMP: tshark's words are its dissector's own
            CAPTURE(i, tshark.info[i]);
            CHECK(comparable(info_text(row)) == comparable(tshark.info[i]));
            if (row.protocol == Protocol::tcp) {
                CHECK(row.retransmission == tshark.retransmission[i]);
                CHECK(row.duplicate_ack == tshark.duplicate_ack[i]);
            }
            ++compared;
        }
        CHECK(compared > 0);
    }
}

TEST_CASE("the ladder grows with a loading timeline and matches one built at once", "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("web").has_value());
    const auto& events = model.timeline().events();
    replay::Timeline growing(model.timeline().header());
    PacketLadder incremental;
    for (std::size_t at = 0; at < events.size(); at += 7) {
        growing.append(std::vector<trace::Event>(events.begin() + static_cast<std::ptrdiff_t>(at),
                                                 events.begin() + static_cast<std::ptrdiff_t>(std::min(at + 7, events.size()))));
        incremental.extend(growing);
    }
    const PacketLadder whole = ladder_of(model);
    REQUIRE(incremental.rows().size() == whole.rows().size());
    for (std::size_t i = 0; i < whole.rows().size(); ++i) {
        CHECK(incremental.rows()[i].event == whole.rows()[i].event);
        CHECK(incremental.rows()[i].fate == whole.rows()[i].fate);
        CHECK(info_text(incremental.rows()[i]) == info_text(whole.rows()[i]));
    }
}

TEST_CASE("a big trace fills the ladder over several frames, and the app keeps drawing until it has", "[viz][ladder]") {
    Model model;
    REQUIRE(model.open_scenario("lossy-link").has_value());
    ViewState view;
    const std::size_t budget = 10;  // events a frame, so this trace takes many
    std::size_t frames = 0;
    do {
        (void)refresh(view.packets, model.timeline(), model.generation(), budget);
        ++frames;
        CHECK(moves_by_itself(model, view) == view.packets.catching_up(model.size()));
    } while (view.packets.catching_up(model.size()) && frames < 10'000);
    CHECK(frames == (model.size() + budget - 1) / budget);
    const PacketLadder whole = ladder_of(model);
    const LadderView expected = make_ladder_view(whole, {}, ColumnMode::automatic);
    REQUIRE(view.packets.view.rows.size() == expected.rows.size());
    CHECK(view.packets.view.columns.size() == expected.columns.size());
    CHECK_FALSE(moves_by_itself(model, view));
    // A filter change remakes the view at once.
    view.packets.filter.flags = tcp_flag::fin;
    const auto& fins = refresh(view.packets, model.timeline(), model.generation(), budget);
    CHECK(!fins.rows.empty());
    for (const auto& row : fins.rows) CHECK((whole.rows()[row.row].flags & tcp_flag::fin) != 0);
}

// ---- the ladder as SVG (File > Export ladder as SVG..., --export-ladder-svg) ----------------

namespace {

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t count = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++count;
    return count;
}

// The text of every <text class="label"> element, in document order, entities undone.
std::vector<std::string> svg_labels(const std::string& svg) {
    std::vector<std::string> labels;
    const std::string open = "<text class=\"label\"";
    for (auto at = svg.find(open); at != std::string::npos; at = svg.find(open, at + 1)) {
        const auto start = svg.find('>', at) + 1;
        std::string text = svg.substr(start, svg.find("</text>", start) - start);
        for (const auto& [entity, c] : std::vector<std::pair<std::string, std::string>>{
                 {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}})
            for (auto e = text.find(entity); e != std::string::npos; e = text.find(entity, e + 1)) text.replace(e, entity.size(), c);
        labels.push_back(text);
    }
    return labels;
}

// xmllint (libxml2) is the judge of well-formedness.
void require_well_formed(const std::string& svg, const test::TempDir& dir) {
    if (!test::tool_available("xmllint")) FAIL("xmllint is not installed: run tools/setup (libxml2-utils)");
    const std::string path = dir.file("ladder.svg");
    std::ofstream(path, std::ios::binary) << svg;
    const auto lint = test::run_command("xmllint --noout " + test::shell_quote(path), 30);
    INFO(lint.err);
    REQUIRE(lint.exit_code == 0);
}

std::size_t packets_with_kind(const Model& model, trace::PacketKind kind) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < model.size(); ++i)
        if (const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(i).body); packet && packet->kind == kind) ++count;
    return count;
}

}  // namespace

TEST_CASE("the ladder as SVG is well-formed XML with one arrow per packet the trace sent, labelled as the ladder's rows",
          "[viz][ladder][svg]") {
    Model model;
    REQUIRE(model.open_scenario("web").has_value());
    const PacketLadder ladder = ladder_of(model);
    const LadderView view = make_ladder_view(ladder, {}, ColumnMode::automatic);
    const std::string svg = ladder_svg(ladder, view, model.timeline(), {.position = model.size(), .relative = true, .title = "web"});
    const test::TempDir dir;
    require_well_formed(svg, dir);
    // The judge for the count: the trace's own `sent` packet events (the simulator reports each once).
    const std::size_t sent = packets_with_kind(model, trace::PacketKind::sent);
    REQUIRE(sent > 0);
    CHECK(count_of(svg, "<line class=\"arrow\"") == sent);
    CHECK(count_of(svg, "<g class=\"packet\"") == sent);
    CHECK(count_of(svg, "<line class=\"lifeline\"") == view.columns.size());
    CHECK(count_of(svg, "<path class=\"drop\"") == 0);  // nothing is dropped in this story
    const auto labels = svg_labels(svg);
    REQUIRE(labels.size() == view.rows.size());
    for (std::size_t r = 0; r < view.rows.size(); ++r) {
        CAPTURE(r);
        CHECK(labels[r] == text::printable(marked_arrow_label(ladder.rows()[view.rows[r].row])));
    }
    // Every column's endpoint is written over its lifeline.
    for (const auto& column : view.columns) CHECK(svg.find(">" + column.label + "</text>") != std::string::npos);

    SECTION("at a cursor: only the packets sent before it") {
        const auto first_rows = ladder_svg(ladder, view, model.timeline(), {.position = ladder.rows()[2].event + 1, .relative = true, .title = ""});
        require_well_formed(first_rows, dir);
        CHECK(count_of(first_rows, "<line class=\"arrow\"") == 3);
    }
}

TEST_CASE("the ladder's SVG marks each drop the trace reports with a cross, and stays XML with hostile text", "[viz][ladder][svg]") {
    Model model;
    REQUIRE(model.open_scenario("firewall-drop").has_value());
    const PacketLadder ladder = ladder_of(model);
    const LadderView view = make_ladder_view(ladder, {}, ColumnMode::automatic);
    // A title as a file name might be: markup, an ampersand, a terminal escape, a byte that is not UTF-8.
    const std::string svg = ladder_svg(ladder, view, model.timeline(),
                                       {.position = model.size(), .relative = false, .title = "a<b>&c \"d\" \x1b]0;x\x07 \xff"});
    const test::TempDir dir;
    require_well_formed(svg, dir);
    const std::size_t dropped = packets_with_kind(model, trace::PacketKind::dropped);
    REQUIRE(dropped > 0);
    CHECK(count_of(svg, "<path class=\"drop\"") == dropped);
    CHECK(count_of(svg, "<line class=\"arrow\"") == packets_with_kind(model, trace::PacketKind::sent));
    // Absolute numbers on demand: the SYN's label carries its ISN.
    const auto labels = svg_labels(svg);
    REQUIRE_FALSE(labels.empty());
    CHECK(labels[0].find("Seq=" + std::to_string(ladder.rows()[view.rows[0].row].seq)) != std::string::npos);
}

TEST_CASE("an export is suggested next to the file shown, or in the current folder for a scenario", "[viz][svg]") {
    CHECK(suggested_export_path("captures/web.pcap", "web.pcap", 12, "event", ".png") == "captures/web-event-12.png");
    CHECK(suggested_export_path("/tmp/run.jsonl", "run.jsonl", 0, "ladder", ".svg") == "/tmp/run-ladder-0.svg");
    CHECK(suggested_export_path("", "scenario web", 7, "ladder", ".svg") == "portlab-web-ladder-7.svg");
    CHECK(suggested_export_path("", "scenario ../x y", 1, "event", ".png") == "portlab-___x_y-event-1.png");
}
