// portlab-viz run headless under Xvfb (xvfb-run -a, Mesa's llvmpipe): screenshots
// of two events are real pictures and differ; bad input is reported with its
// reason and line and exits 2, never a crash.
#include <catch2/catch.hpp>

#include <stb_image.h>

#include <fstream>
#include <memory>
#include <set>

#include "support.hpp"

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
