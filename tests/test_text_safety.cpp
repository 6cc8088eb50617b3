// Text from outside shown safely (issue 12, items 4 and 5): for a terminal nothing it could
// act on survives printable(), and reading the escapes back gives the bytes that came in;
// for JSON valid_utf8() gives what glibc's iconv(1) accepts as UTF-8, and leaves valid text alone.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "portlab/text_safety.hpp"
#include "support.hpp"

using namespace portlab;

namespace {

// The reader of printable()'s escapes: \n \r \t \\ \xNN \uNNNN (U+0080-U+009F only).
std::string unescaped(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        const char kind = text.at(++i);
        if (kind == 'n') out += '\n';
        else if (kind == 'r') out += '\r';
        else if (kind == 't') out += '\t';
        else if (kind == '\\') out += '\\';
        else if (kind == 'x') {
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else if (kind == 'u') {
            const int code = std::stoi(text.substr(i + 1, 4), nullptr, 16);
            REQUIRE((code >= 0x80 && code <= 0x9F));
            out += '\xC2';
            out += static_cast<char>(code);
            i += 4;
        } else {
            FAIL("unknown escape \\" << kind << " in " << text);
        }
    }
    return out;
}

// Whether iconv(1) reads `bytes` as UTF-8 without complaint.
bool iconv_accepts(const std::string& bytes) {
    const test::TempFile file("text");
    std::ofstream(file.path, std::ios::binary) << bytes;
    return test::run_command("iconv -f UTF-8 -t UTF-8 " + test::shell_quote(file.path) + " >/dev/null", 10).exit_code == 0;
}

// A byte a terminal acts on: C0, DEL, ESC, and the C1 controls, raw or in UTF-8 (C2 80-C2 9F).
bool has_control(const std::string& text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto b = static_cast<std::uint8_t>(text[i]);
        if (b < 0x20 || b == 0x7F) return true;
        if (b == 0xC2 && i + 1 < text.size() && static_cast<std::uint8_t>(text[i + 1]) < 0xA0) return true;
    }
    return false;
}

std::string random_bytes(std::mt19937& random, std::size_t size) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::string bytes;
    for (std::size_t i = 0; i < size; ++i) bytes += static_cast<char>(byte(random));
    return bytes;
}

}  // namespace

TEST_CASE("an escape sequence that retitles the terminal is printed as visible text on one line", "[text_safety]") {
    const std::string hostile = "\x1b]0;owned\x07\x1b[2J\xff\xc2\x9b" "1m\nnext line\x7f";
    const auto shown = text::printable(hostile);
    CAPTURE(shown);
    CHECK_FALSE(has_control(shown));
    CHECK(shown.find('\n') == std::string::npos);
    CHECK(iconv_accepts(shown));
    CHECK(unescaped(shown) == hostile);
}

TEST_CASE("printable leaves printable ASCII and valid UTF-8 text as it is", "[text_safety]") {
    const std::string kind = "http-alt caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ~";
    REQUIRE(iconv_accepts(kind));
    CHECK(text::printable(kind) == kind);
    CHECK(text::valid_utf8(kind) == kind);
}

TEST_CASE("random bytes: printable has no control byte, is UTF-8, and reads back to the bytes", "[text_safety]") {
    std::mt19937 random(12);
    for (int round = 0; round < 200; ++round) {
        const auto bytes = random_bytes(random, 1 + static_cast<std::size_t>(round % 40));
        const auto shown = text::printable(bytes);
        CAPTURE(round, shown);
        CHECK_FALSE(has_control(shown));
        CHECK(unescaped(shown) == bytes);
        if (round % 20 == 0) CHECK(iconv_accepts(shown));
    }
}

TEST_CASE("valid_utf8 gives what iconv accepts, and is_valid_utf8 agrees with iconv", "[text_safety]") {
    std::mt19937 random(5);
    // Overlong forms, surrogates, code points above U+10FFFF, truncated sequences.
    // (Above U+10FFFF, F4 90 80 80, is left out here: glibc's iconv still reads the old
    // 31-bit UTF-8 there; RFC 3629 section 3 does not, and neither does is_valid_utf8.)
    CHECK_FALSE(text::is_valid_utf8("\xf4\x90\x80\x80"));
    const std::string cases[] = {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf0\x9f\x98", "a\xff" "b", "\xe2\x82"};
    for (const auto& bad : cases) {
        CAPTURE(bad);
        CHECK_FALSE(iconv_accepts(bad));
        CHECK_FALSE(text::is_valid_utf8(bad));
        CHECK(iconv_accepts(text::valid_utf8(bad)));
        CHECK(text::valid_utf8(bad).find("\xEF\xBF\xBD") != std::string::npos);
    }
    for (int round = 0; round < 30; ++round) {
        const auto bytes = random_bytes(random, 12);
        CAPTURE(round);
        CHECK(text::is_valid_utf8(bytes) == iconv_accepts(bytes));
        CHECK(iconv_accepts(text::valid_utf8(bytes)));
    }
}

TEST_CASE("a JSON document of valid_utf8 text dumps without an exception", "[text_safety]") {
    const std::string name = "\x1b]0;x\x07\xff";
    nlohmann::json document{{"name", name}};
    CHECK_THROWS(document.dump());  // what lab07 --json met (issue 12, item 5)
    document["name"] = text::valid_utf8(name);
    const auto dumped = document.dump();
    CHECK(dumped.find('\x1b') == std::string::npos);
    CHECK(nlohmann::json::parse(dumped)["name"] == text::valid_utf8(name));
}
