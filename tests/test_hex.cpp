// Bytes as hex text, held to od(1) and hexdump(1): what they print for the same bytes
// is what portlab's hex functions must print.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "portlab/hex.hpp"
#include "support.hpp"

using namespace portlab;

namespace {

// Every byte value once, then a tail that leaves the last dump line short.
std::vector<std::uint8_t> sample_bytes() {
    std::vector<std::uint8_t> bytes;
    for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<std::uint8_t>(b));
    for (const char c : std::string("portlab!")) bytes.push_back(static_cast<std::uint8_t>(c));
    return bytes;
}

std::string written(const test::TempDir& dir, const std::vector<std::uint8_t>& bytes) {
    const std::string path = dir.file("bytes.bin");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
    return path;
}

}  // namespace

TEST_CASE("to_hex prints the digits od -t x1 prints", "[hex]") {
    const test::TempDir dir;
    const auto bytes = sample_bytes();
    // " 00 01 02 ..." in lines of 16 (-v: repeated lines too); keep only the digits.
    const auto od = test::run_command("od -A n -v -t x1 " + test::shell_quote(written(dir, bytes)), 10);
    REQUIRE(od.exit_code == 0);
    std::string expected;
    for (const char c : od.out)
        if (c != ' ' && c != '\n') expected += c;
    CHECK(to_hex(bytes) == expected);
    CHECK(to_hex({}).empty());
    CHECK(hex_byte(0x4f) == "4f");
}

TEST_CASE("hex_dump lines are hexdump -C's, with a 4-digit offset and no bars", "[hex]") {
    REQUIRE(test::tool_available("hexdump"));  // bsdextrautils
    const test::TempDir dir;
    const auto bytes = sample_bytes();
    // hexdump -C: "00000010  10 11 ... 17  18 ... 1f  |................|", a final offset line,
    // and "*" for repeated lines (-v keeps them).
    const auto dumped = test::run_command("hexdump -C -v " + test::shell_quote(written(dir, bytes)), 10);
    REQUIRE(dumped.exit_code == 0);
    auto expected = test::lines_of(dumped.out);
    REQUIRE(expected.size() == bytes.size() / 16 + 2);
    expected.pop_back();  // the length line
    const auto lines = hex_dump(bytes);
    REQUIRE(lines.size() == expected.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(i, expected[i], lines[i]);
        // Theirs: 8-digit offset, hex columns padded to the same width, ASCII between bars.
        std::string theirs = expected[i].substr(4);
        const auto bar = theirs.find('|');
        REQUIRE(bar != std::string::npos);
        theirs = theirs.substr(0, bar) + theirs.substr(bar + 1, theirs.size() - bar - 2);
        CHECK(lines[i] == theirs);
    }
}

TEST_CASE("from_hex undoes to_hex and names the first bad digit", "[hex]") {
    std::mt19937 random(9);
    for (int round = 0; round < 50; ++round) {
        std::vector<std::uint8_t> bytes(random() % 64);
        for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
        const auto back = from_hex(to_hex(bytes));
        REQUIRE(back.has_value());
        CHECK(*back == bytes);
    }
    CHECK(*from_hex("4F0a") == std::vector<std::uint8_t>{0x4f, 0x0a});
    CHECK(from_hex("abc").error().message == "odd number of digits (3)");
    CHECK(from_hex("00g1").error().message == "'g' at position 2 is not a hex digit");
    CHECK(from_hex("0 ").error().message == "' ' at position 1 is not a hex digit");
    for (int c = 0; c < 256; ++c) {
        const bool digit = std::string_view("0123456789abcdefABCDEF").find(static_cast<char>(c)) != std::string_view::npos;
        CHECK((hex_digit_value(static_cast<char>(c)) >= 0) == digit);
    }
}
