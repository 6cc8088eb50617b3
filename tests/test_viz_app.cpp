// portlab-viz run headless under Xvfb (xvfb-run -a, Mesa's llvmpipe): screenshots
// of two events are real pictures and differ; bad input is reported with its
// reason and line and exits 2, never a crash.
#include <catch2/catch.hpp>

#include <stb_image.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

#include "portlab/packet.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"
#include "view/ladder.hpp"
#include "view/ladder_svg.hpp"

using portlab::test::run_command;
using portlab::test::shell_quote;

namespace {

const std::string fixture = std::string(PORTLAB_FIXTURES) + "/trace_two_clients.jsonl";

std::string viz(const std::string& arguments) { return portlab::test::viz_command(arguments); }

struct Image {
    int width = 0;
    int height = 0;
    std::vector<unsigned char> rgb;
};

Image load_png(const std::string& path) {
    Image image;
    int channels = 0;
    std::unique_ptr<unsigned char, void (*)(void*)> pixels(stbi_load(path.c_str(), &image.width, &image.height, &channels, 3),
                                                           stbi_image_free);
    REQUIRE(pixels != nullptr);
    image.rgb.assign(pixels.get(), pixels.get() + static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 3);
    return image;
}

// A blank frame (one clear colour, or nothing drawn) has a handful of colours at most.
std::size_t distinct_colours(const Image& image) {
    std::set<std::uint32_t> colours;
    for (std::size_t i = 0; i + 2 < image.rgb.size() && colours.size() < 10000; i += 3)
        colours.insert(static_cast<std::uint32_t>(image.rgb[i]) << 16 | image.rgb[i + 1] << 8 | image.rgb[i + 2]);
    return colours.size();
}

std::size_t differing_pixels(const Image& a, const Image& b) {
    std::size_t count = 0;
    for (std::size_t i = 0; i + 2 < a.rgb.size() && i + 2 < b.rgb.size(); i += 3)
        if (a.rgb[i] != b.rgb[i] || a.rgb[i + 1] != b.rgb[i + 1] || a.rgb[i + 2] != b.rgb[i + 2]) ++count;
    return count;
}

void check_two_events_differ(const std::string& source, int first, int second) {
    const portlab::test::TempDir dir;
    const auto a = run_command(viz(source + " --at " + std::to_string(first) + " --size 1024x700 --screenshot " + dir.file("a.png")), 90);
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
    const auto b = run_command(viz(source + " --at " + std::to_string(second) + " --size 1024x700 --screenshot " + dir.file("b.png")), 90);
    INFO(b.err);
    REQUIRE(b.exit_code == 0);
    const Image image_a = load_png(dir.file("a.png"));
    const Image image_b = load_png(dir.file("b.png"));
    CHECK(image_a.width == 1024);
    CHECK(image_a.height == 700);
    CHECK(distinct_colours(image_a) > 50);
    CHECK(distinct_colours(image_b) > 50);
    CHECK(differing_pixels(image_a, image_b) > 1000);
}

}  // namespace

TEST_CASE("screenshots of two events of a scenario are pictures, and they differ", "[viz][app][xvfb]") {
    check_two_events_differ("--scenario web", 5, 12);
}

TEST_CASE("screenshots of two events of a lab-style trace file differ", "[viz][app][xvfb]") {
    check_two_events_differ(shell_quote(fixture), 4, 20);
}

TEST_CASE("the Ladder and Packets tabs render: pictures unlike the Events tab, and the ladder grows with the cursor", "[viz][app][xvfb][ladder]") {
    const portlab::test::TempDir dir;
    const auto shot = [&](const std::string& name, const std::string& arguments) {
        const auto run = run_command(viz("--scenario web " + arguments + " --size 1024x700 --screenshot " + dir.file(name)), 90);
        INFO(run.err);
        REQUIRE(run.exit_code == 0);
        return load_png(dir.file(name));
    };
    const Image events = shot("events.png", "--at 12 --left-tab events");
    const Image ladder = shot("ladder.png", "--at 12 --left-tab ladder");
    const Image ladder_early = shot("ladder-early.png", "--at 4 --left-tab ladder");
    const Image packets = shot("packets.png", "--at 12 --left-tab packets");
    CHECK(distinct_colours(ladder) > 50);
    CHECK(distinct_colours(packets) > 50);
    CHECK(differing_pixels(events, ladder) > 1000);
    CHECK(differing_pixels(events, packets) > 1000);
    CHECK(differing_pixels(ladder, packets) > 1000);
    CHECK(differing_pixels(ladder_early, ladder) > 500);  // more arrows at event 12 than at 4
}

TEST_CASE("a malformed trace exits 2 with the file, the line and the reason", "[viz][app][xvfb]") {
    const portlab::test::TempDir dir;
    std::ofstream(dir.file("bad.jsonl")) << R"({"portlab_trace": 1, "source": "test", "generator": "t"})" << "\n"
                                         << R"({"t_us": 0, "host": "a", "type": "socket_created", "socket": 1, "protocol": "sctp", "family": "ipv4"})"
                                         << "\n";
    const auto result = run_command(viz(shell_quote(dir.file("bad.jsonl")) + " --screenshot " + dir.file("x.png")), 60);
    CHECK(result.exit_code == 2);
    CHECK_THAT(result.err, Catch::Contains("bad.jsonl") && Catch::Contains("line 2"));
}

TEST_CASE("bad input from the command line: missing file, broken capture, unknown scenario, event out of range", "[viz][app][xvfb]") {
    const portlab::test::TempDir dir;
    SECTION("a missing file") {
        const auto result = run_command(viz(shell_quote(dir.file("absent.pcap"))), 60);
        CHECK(result.exit_code == 2);
        CHECK_THAT(result.err, Catch::Contains("absent.pcap"));
    }
    SECTION("a capture cut off inside its file header") {
        // The classic pcap magic, then nothing: libpcap refuses it.
        std::ofstream(dir.file("cut.pcap"), std::ios::binary) << std::string("\xd4\xc3\xb2\xa1\x02\x00", 6);
        const auto result = run_command(viz(shell_quote(dir.file("cut.pcap"))), 60);
        CHECK(result.exit_code == 2);
        CHECK_THAT(result.err, Catch::Contains("cut.pcap"));
    }
    SECTION("an unknown scenario") {
        const auto result = run_command(viz("--scenario no-such-scenario"), 60);
        CHECK(result.exit_code == 2);
        CHECK_THAT(result.err, Catch::Contains("no-such-scenario"));
    }
    SECTION("an event past the end") {
        const auto result = run_command(viz(shell_quote(fixture) + " --at 21"), 60);
        CHECK(result.exit_code == 2);
        CHECK_THAT(result.err, Catch::Contains("20 events"));
    }
}

// Issue 10: one bad line threw away the good events before it unless --keep-going was given.
TEST_CASE("a trace with a bad line opens with the events before it, and says which line and how many", "[viz][app][tolerant]") {
    const portlab::test::TempDir dir;
    {
        std::ofstream out(dir.file("cut.jsonl"));
        out << R"({"portlab_trace": 2, "source": "test", "generator": "t"})" << "\n";
        for (int i = 1; i <= 40; ++i)
            out << R"({"t_us": )" << i << R"(, "host": "a", "type": "socket_created", "socket": )" << i
                << R"(, "protocol": "udp", "family": "ipv4"})" << "\n";
        out << "{\"t_us\": 41, \"host\": \"a\", \"type\": \"no_such_event\"}\n";  // line 42
        for (int i = 42; i <= 45; ++i)
            out << R"({"t_us": )" << i << R"(, "host": "a", "type": "socket_created", "socket": )" << i
                << R"(, "protocol": "udp", "family": "ipv4"})" << "\n";
    }
    const auto run = run_command(viz(shell_quote(dir.file("cut.jsonl")) + " --at 40 --dump-state " + dir.file("state.json")), 60);
    INFO(run.err);
    CHECK(run.exit_code == 0);
    CHECK(portlab::test::lines_of(run.err).size() == 1);
    CHECK_THAT(run.err, Catch::Contains("warning") && Catch::Contains("cut.jsonl: line 42") && Catch::Contains("40 events"));
    std::ifstream in(dir.file("state.json"));
    const auto state = nlohmann::json::parse(in);
    CHECK(state.at("events") == 40);  // the good lines before it, none after
    CHECK(state.at("slots").size() == 40);
}

TEST_CASE("random bytes named .pcap: one line saying what the file is not, no binary garbage", "[viz][app][tolerant]") {
    const portlab::test::TempDir dir;
    portlab::test::write_noise(dir.file("noise.pcap"), 2463534242u, 4096);
    const auto run = run_command(viz(shell_quote(dir.file("noise.pcap")) + " --dump-state " + dir.file("state.json")), 60);
    CHECK(run.exit_code == 2);
    INFO(run.err);
    REQUIRE(portlab::test::lines_of(run.err).size() == 1);
    CHECK_THAT(run.err, Catch::Contains("noise.pcap"));
    CHECK_THAT(run.err, Catch::Contains("capture") || Catch::Contains("pcap"));
    for (const char c : run.err) CHECK((c == '\n' || (c >= 0x20 && c < 0x7f)));  // nothing of the file's bytes
}

TEST_CASE("with --keep-going a bad file is shown in the window and the app carries on", "[viz][app][xvfb]") {
    const portlab::test::TempDir dir;
    std::ofstream(dir.file("bad.jsonl")) << "this is not a trace\n";
    const auto result =
        run_command(viz(shell_quote(dir.file("bad.jsonl")) + " --keep-going --size 800x600 --screenshot " + dir.file("error.png")), 60);
    CHECK(result.exit_code == 0);
    CHECK_THAT(result.err, Catch::Contains("line 1"));
    const Image image = load_png(dir.file("error.png"));
    CHECK(distinct_colours(image) > 10);
}

namespace {

// What a challenge question about event `event` of `trace` must be answered with, read
// off the simulator's own trace: the state it went to, the port it assigned (range and
// parity from the number), the verdict, the packet's header, the scanner's report.
std::string expected_answer(const portlab::trace::Trace& trace, const nlohmann::json& question) {
    using namespace portlab;
    const auto& event = trace.events.at(question.at("event").get<std::size_t>());
    const auto kind = question.at("kind").get<std::string>();
    if (const auto* changed = std::get_if<trace::StateChanged>(&event.body); changed && kind == "tcp-state")
        return std::string(to_string(changed->to));
    if (const auto* assigned = std::get_if<trace::EphemeralAssigned>(&event.body); assigned && kind == "ephemeral-port")
        return std::to_string(assigned->range_low) + "-" + std::to_string(assigned->range_high) +
               (assigned->parity ? (assigned->port % 2 == 0 ? ", even" : ", odd") : "");
    if (const auto* result = std::get_if<trace::ScanResult>(&event.body); result && kind == "scan-result")
        return std::string(scan::to_string(result->state));
    if (const auto* packet = std::get_if<trace::Packet>(&event.body)) {
        if (kind == "firewall") return packet->kind == trace::PacketKind::delivered ? "it gets through" : "rule " + packet->rule_id.value_or("?") + " ";
        const auto decoded = decode_frame(packet->link, packet->bytes);
        REQUIRE(decoded.has_value());
        return decoded->source()->to_string() + " → " + decoded->destination()->to_string();
    }
    FAIL("question " << question.dump() << " about an event of another kind");
    return {};
}

}  // namespace

TEST_CASE("challenge mode under Xvfb: answers clicked from a script are scored as the simulator's trace says",
          "[viz][app][xvfb][challenge]") {
    const portlab::test::TempDir dir;
    const auto name = GENERATE(as<std::string>{}, "web", "firewall-reject", "scan");
    CAPTURE(name);
    const auto sim = run_command(shell_quote(portlab::test::bin_path("portlab-sim")) + " --scenario " + name + " --trace " +
                                     shell_quote(dir.file("run.jsonl")) + " >/dev/null", 60);
    REQUIRE(sim.exit_code == 0);
    const auto trace = portlab::trace::read_trace_file(dir.file("run.jsonl"));
    REQUIRE(trace.has_value());
    const auto challenge_run = [&](const std::string& answers, const std::string& out) {
        const auto run = run_command(viz(shell_quote(dir.file("run.jsonl")) + " --challenge-answers " + answers +
                                         " --size 1024x700 --dump-state " + dir.file(out + ".json") + " --screenshot " +
                                         dir.file(out + ".png")), 120);
        INFO(run.err);
        REQUIRE(run.exit_code == 0);
        std::ifstream in(dir.file(out + ".json"));
        return nlohmann::json::parse(in);
    };
    // Whether a choice says what the trace says; a firewall's choices go on after the
    // verdict ("rule r1 (tcp dport 22 drop) drops it").
    const auto says = [&](const nlohmann::json& question, const std::string& choice) {
        const auto expected = expected_answer(*trace, question);
        return question.at("kind") == "firewall" ? choice.rfind(expected, 0) == 0 : choice == expected;
    };

    // Four answers, alternating a and b: the run stops at the fifth question, open.
    const auto state = challenge_run("a,b,a,b", "guessed");
    const auto& challenge = state.at("challenge");
    const auto& questions = challenge.at("questions");
    REQUIRE(questions.size() >= 5);
    std::size_t right = 0;
    std::string right_letters;
    const std::string letters = "abab";
    for (std::size_t q = 0; q < letters.size(); ++q) {
        const auto& question = questions[q];
        CAPTURE(question.dump());
        const auto& choices = question.at("choices");
        const auto chosen = choices.at(static_cast<std::size_t>(letters[q] - 'a')).get<std::string>();
        CHECK(question.at("chosen") == chosen);
        // The answer the trace gives is among the choices, once.
        std::size_t matching = 0;
        for (std::size_t c = 0; c < choices.size(); ++c) {
            if (!says(question, choices[c].get<std::string>())) continue;
            ++matching;
            right_letters += (right_letters.empty() ? "" : ",") + std::string(1, static_cast<char>('a' + c));
        }
        CHECK(matching == 1);
        if (says(question, chosen)) ++right;
    }
    CHECK(challenge.at("asked") == letters.size());
    CHECK(challenge.at("correct") == right);
    CHECK(questions[4].at("chosen").is_null());
    CHECK(challenge.at("open") == 4);
    CHECK(state.at("position") == questions[4].at("event"));  // stopped before the fifth question's event
    CHECK(distinct_colours(load_png(dir.file("guessed.png"))) > 50);

    // The answers the trace gives, picked by the test: every one scored right.
    const auto knowing = challenge_run(right_letters, "knowing").at("challenge");
    CHECK(knowing.at("asked") == letters.size());
    CHECK(knowing.at("correct") == letters.size());
}

TEST_CASE("the challenge answers given on the command line: what is not a letter, and a letter past a question's choices, exit 2", "[viz][app][xvfb][challenge]") {
    const auto not_letters = run_command(viz("--scenario web --challenge-answers a,7"), 60);
    CHECK(not_letters.exit_code == 2);
    CHECK_THAT(not_letters.err, Catch::Contains("--challenge-answers"));
    const auto too_far = run_command(viz("--scenario web --challenge-answers z"), 60);
    CHECK(too_far.exit_code == 2);
    CHECK_THAT(too_far.err, Catch::Contains("question 1"));
}

TEST_CASE("the app under Xvfb: --export-ladder-svg writes the ladder of portlab-sim's trace: XML, one arrow per packet sent, the ladder's labels",
          "[viz][app][xvfb][svg]") {
    if (!portlab::test::tool_available("xmllint")) FAIL("xmllint is not installed: run tools/setup (libxml2-utils)");
    const portlab::test::TempDir dir;
    const std::string trace_path = dir.file("web.jsonl");
    const auto sim = run_command(shell_quote(portlab::test::bin_path("portlab-sim")) + " --scenario web --trace " + shell_quote(trace_path) +
                                     " >/dev/null", 60);
    INFO(sim.err);
    REQUIRE(sim.exit_code == 0);
    auto trace = portlab::trace::read_trace_file(trace_path);
    REQUIRE(trace.has_value());
    std::size_t sent = 0;
    for (const auto& event : trace->events)
        if (const auto* packet = std::get_if<portlab::trace::Packet>(&event.body); packet && packet->kind == portlab::trace::PacketKind::sent)
            ++sent;
    REQUIRE(sent > 0);

    const std::string svg_path = dir.file("ladder.svg");
    const auto run = run_command(viz(shell_quote(trace_path) + " --export-ladder-svg " + shell_quote(svg_path)), 90);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const auto lint = run_command("xmllint --noout " + shell_quote(svg_path), 30);
    INFO(lint.err);
    CHECK(lint.exit_code == 0);
    std::ifstream in(svg_path);
    const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> labels;
    std::size_t arrows = 0;
    for (auto at = svg.find("<line class=\"arrow\""); at != std::string::npos; at = svg.find("<line class=\"arrow\"", at + 1)) ++arrows;
    for (auto at = svg.find("<text class=\"label\""); at != std::string::npos; at = svg.find("<text class=\"label\"", at + 1)) {
        const auto start = svg.find('>', at) + 1;
        labels.push_back(svg.substr(start, svg.find("</text>", start) - start));
    }
    CHECK(arrows == sent);
    // The labels are the ladder model's rows, in order, for the same trace read here.
    const auto timeline = portlab::replay::Timeline::of(std::move(trace).value());
    portlab::viz::PacketLadder ladder;
    ladder.extend(timeline);
    const auto view = portlab::viz::make_ladder_view(ladder, {}, portlab::viz::ColumnMode::automatic);
    REQUIRE(labels.size() == view.rows.size());
    for (std::size_t r = 0; r < labels.size(); ++r) {
        CAPTURE(r);
        CHECK(labels[r] == portlab::viz::xml_text(portlab::viz::marked_arrow_label(ladder.rows()[view.rows[r].row])));
    }

    SECTION("with --at, only the packets sent before the cursor") {
        const auto early = run_command(viz(shell_quote(trace_path) + " --at " + std::to_string(ladder.rows()[1].event + 1) +
                                           " --export-ladder-svg " + shell_quote(dir.file("early.svg"))), 90);
        INFO(early.err);
        REQUIRE(early.exit_code == 0);
        std::ifstream early_in(dir.file("early.svg"));
        const std::string early_svg((std::istreambuf_iterator<char>(early_in)), std::istreambuf_iterator<char>());
        std::size_t early_arrows = 0;
        for (auto at = early_svg.find("<line class=\"arrow\""); at != std::string::npos; at = early_svg.find("<line class=\"arrow\"", at + 1))
            ++early_arrows;
        CHECK(early_arrows == 2);
    }
    SECTION("a symbolic link is refused with exit 2 and its target left as it was") {
        const std::string target = dir.file("target.txt");
        std::ofstream(target) << "keep me\n";
        REQUIRE(run_command("ln -s " + shell_quote(target) + " " + shell_quote(dir.file("link.svg")), 10).exit_code == 0);
        const auto refused = run_command(viz(shell_quote(trace_path) + " --export-ladder-svg " + shell_quote(dir.file("link.svg"))), 90);
        CHECK(refused.exit_code == 2);
        CHECK(refused.err.find("--export-ladder-svg") != std::string::npos);
        std::ifstream kept(target);
        std::string line;
        std::getline(kept, line);
        CHECK(line == "keep me");
    }
}

namespace {

// portlab-viz with a --script of clicks and keys; the dump it writes after them.
nlohmann::json scripted(const portlab::test::TempDir& dir, const std::string& source, const std::string& name, const std::string& steps,
                        const std::string& extra = "") {
    std::ofstream(dir.file(name + ".txt")) << steps;
    const auto run = run_command(viz(source + " --size 1280x900 --script " + dir.file(name + ".txt") + " --dump-state " +
                                     dir.file(name + ".json") + " " + extra),
                                 90);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    std::ifstream in(dir.file(name + ".json"));
    return nlohmann::json::parse(in);
}

std::string click_at(double x, double y) { return "click " + std::to_string(static_cast<int>(x)) + " " + std::to_string(static_cast<int>(y)) + "\n"; }

// The first SYN the web scenario's client sends, by the simulator's own trace.
std::size_t first_syn() {
    const auto sim = portlab::sim::run_scenario("web");
    REQUIRE(sim.has_value());
    const auto& events = sim->events();
    for (std::size_t i = 0; i < events.size(); ++i)
        if (const auto* packet = std::get_if<portlab::trace::Packet>(&events[i].body);
            packet && packet->kind == portlab::trace::PacketKind::sent && portlab::replay::describe_packet(*packet).label == portlab::PacketLabel::syn)
            return i;
    FAIL("the web scenario sends no SYN");
    return 0;
}

}  // namespace

TEST_CASE("scripted clicks under Xvfb: a hex byte selects its header field, a tree row selects its bytes", "[viz][app][xvfb][script]") {
    const portlab::test::TempDir dir;
    const std::size_t syn = first_syn();
    const std::string source = "--scenario web --at " + std::to_string(syn + 1);
    // Where the inspector drew the SYN's bytes and fields.
    const auto places = scripted(dir, source, "look", "wait 3\n");
    REQUIRE(places.contains("drawn"));
    const auto& hex = places.at("drawn").at("hex");
    CHECK(hex.at("event") == syn);
    // RFC 791 / RFC 793: with a 20-byte IPv4 header (IHL 5), the TCP destination port is bytes 22-23.
    std::optional<std::pair<double, double>> port_byte;
    for (const auto& cell : hex.at("cells"))
        if (cell.at("byte") == 22) port_byte = {cell.at("x").get<double>(), cell.at("y").get<double>()};
    REQUIRE(port_byte);
    const auto byte_click = scripted(dir, source, "byte", click_at(port_byte->first, port_byte->second) + "wait 2\n");
    const auto& byte_field = byte_click.at("selection").at("field");
    REQUIRE_FALSE(byte_field.is_null());
    CHECK(byte_click.at("selection").at("event") == syn);
    CHECK(byte_field.at("layer_name") == "TCP");
    CHECK(byte_field.at("offset") == 22);
    CHECK(byte_field.at("length") == 2);

    // The IPv4 Total Length row: RFC 791's bytes 2-3.
    std::optional<std::pair<double, double>> ttl_row;
    for (const auto& row : places.at("drawn").at("tree"))
        if (row.at("name") == "IPv4/Total length") {
            const auto& r = row.at("rect");
            ttl_row = {r.at("x").get<double>() + 10, r.at("y").get<double>() + r.at("h").get<double>() / 2};
        }
    REQUIRE(ttl_row);
    const auto row_click = scripted(dir, source, "row", click_at(ttl_row->first, ttl_row->second) + "wait 2\n");
    const auto& row_field = row_click.at("selection").at("field");
    REQUIRE_FALSE(row_field.is_null());
    CHECK(row_field.at("layer_name") == "IPv4");
    CHECK(row_field.at("offset") == 2);
    CHECK(row_field.at("length") == 2);
}

TEST_CASE("scripted under Xvfb: File > Export view as PNG... writes the picture where the dialog was told", "[viz][app][xvfb][script][export]") {
    const portlab::test::TempDir dir;
    const std::string source = "--scenario web --at 12";
    const auto before = scripted(dir, source, "menu", "wait 2\n");
    const auto& file = before.at("drawn").at("items").at("File");
    const std::string open_menu = click_at(file.at("x").get<double>() + file.at("w").get<double>() / 2,
                                           file.at("y").get<double>() + file.at("h").get<double>() / 2) + "wait 2\n";
    const auto opened = scripted(dir, source, "opened", open_menu);
    REQUIRE(opened.at("drawn").at("items").contains("File/Export view as PNG..."));
    const auto& item = opened.at("drawn").at("items").at("File/Export view as PNG...");
    const std::string png = dir.file("exported.png");
    scripted(dir, source, "export",
             open_menu + click_at(item.at("x").get<double>() + 20, item.at("y").get<double>() + item.at("h").get<double>() / 2) +
                 "wait 2\nkey ctrl+a\ntype " + png + "\nkey enter\nwait 4\n");
    REQUIRE(std::filesystem::exists(png));
    const Image image = load_png(png);
    CHECK(image.width == 1280);
    CHECK(image.height == 900);
    CHECK(distinct_colours(image) > 50);
}

TEST_CASE("scripted under Xvfb: files dropped on the window together open the first that can be opened, and the status line says so", "[viz][app][xvfb][script][drop]") {
    const portlab::test::TempDir dir;
    {
        std::ofstream noise(dir.file("noise.pcap"), std::ios::binary);
        noise << std::string("\x5a\x1f\x00\xc3\x99\x01\x02\x03", 8);
    }
    const auto dropped = scripted(dir, "--scenario web --at 3", "drop",
                                  "wait 1\ndrop " + dir.file("noise.pcap") + " " + fixture + " " + dir.file("missing.jsonl") + "\nwait 3\n");
    const auto expected = portlab::trace::read_trace_file(fixture);
    REQUIRE(expected.has_value());
    CHECK(dropped.at("source") == fixture);
    CHECK(dropped.at("events") == expected->events.size());
    const std::string status = dropped.at("status");
    CAPTURE(status);
    CHECK(status.rfind("opened trace_two_clients.jsonl; not opened: noise.pcap (neither a trace nor a capture", 0) == 0);
    CHECK(status.find("missing.jsonl (") != std::string::npos);
}
