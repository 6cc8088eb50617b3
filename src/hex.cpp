#include "portlab/hex.hpp"

#include <array>

#include <fmt/format.h>

namespace portlab {
namespace {

constexpr char digits[] = "0123456789abcdef";

// hex_digit_value for every byte, looked up once per digit while parsing long traces.
constexpr std::array<std::int8_t, 256> digit_values = [] {
    std::array<std::int8_t, 256> values{};
    for (int c = 0; c < 256; ++c)
        values[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(hex_digit_value(static_cast<char>(c)));
    return values;
}();

}  // namespace

std::string to_hex(std::span<const std::uint8_t> bytes) {
    std::string text;
    text.reserve(bytes.size() * 2);
    for (const auto byte : bytes) {
        text += digits[byte >> 4];
        text += digits[byte & 0x0f];
    }
    return text;
}

std::string hex_byte(std::uint8_t byte) { return to_hex(std::span(&byte, 1)); }

Result<std::vector<std::uint8_t>> from_hex(std::string_view text) {
    if (text.size() % 2 != 0) return fail("odd number of digits (" + std::to_string(text.size()) + ")");
    std::vector<std::uint8_t> bytes(text.size() / 2);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const int high = digit_values[static_cast<unsigned char>(text[2 * i])];
        const int low = digit_values[static_cast<unsigned char>(text[2 * i + 1])];
        if (high < 0 || low < 0) {
            const std::size_t at = high < 0 ? 2 * i : 2 * i + 1;
            return fail("'" + std::string(1, text[at]) + "' at position " + std::to_string(at) + " is not a hex digit");
        }
        bytes[i] = static_cast<std::uint8_t>(high << 4 | low);
    }
    return bytes;
}

std::vector<std::string> hex_dump(std::span<const std::uint8_t> bytes) {
    constexpr std::size_t per_line = 16;
    std::vector<std::string> lines;
    for (std::size_t row = 0; row < bytes.size(); row += per_line) {
        std::string hex;
        std::string ascii;
        for (std::size_t i = row; i < row + per_line; ++i) {
            if (i == row + per_line / 2) hex += ' ';
            if (i < bytes.size()) {
                hex += hex_byte(bytes[i]) + ' ';
                ascii += ascii_of(bytes[i]);
            } else {
                hex += "   ";
            }
        }
        lines.push_back(fmt::format("{:04x}  {} {}", row, hex, ascii));
    }
    return lines;
}

}  // namespace portlab
