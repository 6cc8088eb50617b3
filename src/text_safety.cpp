#include "portlab/text_safety.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace portlab::text {
namespace {

// What the sequence at the start of `text` is (RFC 3629 section 4's grammar: its second-byte
// ranges exclude overlong forms, surrogates and code points above U+10FFFF): valid and
// `length` bytes long, or invalid, `length` being its "maximal subpart" (Unicode 15.0 section
// 3.9, U+FFFD substitution): a lead byte with the continuation bytes that still fit it, or
// one byte that cannot start a sequence. Decoders that follow that practice (Python's
// errors="replace", WHATWG's TextDecoder) give one U+FFFD for each such subpart.
struct Sequence {
    std::size_t length;
    bool valid;
};

Sequence sequence_at(std::string_view text) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
    const auto in = [](std::uint8_t b, std::uint8_t low, std::uint8_t high) { return b >= low && b <= high; };
    const std::uint8_t first = byte(0);
    if (first < 0x80) return {1, true};
    std::size_t length = 0;
    std::uint8_t low = 0x80, high = 0xBF;  // the range of the second byte
    if (in(first, 0xC2, 0xDF)) length = 2;
    else if (first == 0xE0) length = 3, low = 0xA0;
    else if (first == 0xED) length = 3, high = 0x9F;
    else if (in(first, 0xE1, 0xEF)) length = 3;
    else if (first == 0xF0) length = 4, low = 0x90;
    else if (first == 0xF4) length = 4, high = 0x8F;
    else if (in(first, 0xF1, 0xF3)) length = 4;
    else return {1, false};
    std::size_t fitting = 1;
    while (fitting < length && fitting < text.size() &&
           (fitting == 1 ? in(byte(1), low, high) : in(byte(fitting), 0x80, 0xBF)))
        ++fitting;
    return {fitting, fitting == length};
}

void append_escaped_ascii(std::string& out, char c) {
    switch (c) {
        case '\n': out += "\\n"; return;
        case '\r': out += "\\r"; return;
        case '\t': out += "\\t"; return;
        case '\\': out += "\\\\"; return;
        default: break;
    }
    const auto b = static_cast<std::uint8_t>(c);
    if (b < 0x20 || b == 0x7F) out += fmt::format("\\x{:02x}", b);
    else out += c;
}

}  // namespace

std::string printable(std::string_view untrusted) {
    std::string out;
    out.reserve(untrusted.size());
    while (!untrusted.empty()) {
        const auto [length, valid] = sequence_at(untrusted);
        if (!valid) {  // not UTF-8: the bytes themselves, visibly
            for (const char c : untrusted.substr(0, length)) out += fmt::format("\\x{:02x}", static_cast<std::uint8_t>(c));
            untrusted.remove_prefix(length);
            continue;
        }
        if (length == 1) {
            append_escaped_ascii(out, untrusted.front());
        } else if (length == 2 && static_cast<std::uint8_t>(untrusted[0]) == 0xC2 &&
                   static_cast<std::uint8_t>(untrusted[1]) < 0xA0) {  // U+0080-U+009F: a C1 control
            out += fmt::format("\\u{:04x}", static_cast<std::uint8_t>(untrusted[1]));
        } else {
            out.append(untrusted.substr(0, length));
        }
        untrusted.remove_prefix(length);
    }
    return out;
}

std::string valid_utf8(std::string_view untrusted) {
    if (is_valid_utf8(untrusted)) return std::string(untrusted);
    std::string out;
    out.reserve(untrusted.size() + 8);
    while (!untrusted.empty()) {
        const auto [length, valid] = sequence_at(untrusted);
        if (valid) out.append(untrusted.substr(0, length));
        else out += "\xEF\xBF\xBD";  // U+FFFD, one for each maximal subpart
        untrusted.remove_prefix(length);
    }
    return out;
}

bool is_valid_utf8(std::string_view text) noexcept {
    while (!text.empty()) {
        const auto [length, valid] = sequence_at(text);
        if (!valid) return false;
        text.remove_prefix(length);
    }
    return true;
}

}  // namespace portlab::text
