#pragma once
// Bytes as hex text, both ways: the trace format's "bytes" field, a lab's --json dump,
// and the hex dumps a student reads next to a header's fields.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/result.hpp"

namespace portlab {

// "4500001e": two lower-case digits a byte, no separators.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
// "4f": one byte, two lower-case digits.
[[nodiscard]] std::string hex_byte(std::uint8_t byte);

// 0-15 for a hex digit (either case), -1 for anything else.
[[nodiscard]] constexpr int hex_digit_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The inverse of to_hex (either case). The error names the first fault:
// "odd number of digits (7)" or "'g' at position 4 is not a hex digit".
[[nodiscard]] Result<std::vector<std::uint8_t>> from_hex(std::string_view text);

// The character a hex dump shows beside a byte: printable ASCII as itself, '.' otherwise.
[[nodiscard]] constexpr char ascii_of(std::uint8_t byte) noexcept {
    return byte >= 0x20 && byte < 0x7f ? static_cast<char>(byte) : '.';
}

// A hex dump in lines of 16 bytes, as `hexdump -C` lays them out but with a 4-digit offset:
//   "0010  45 00 00 3c 8a 4e 40 00  40 06 b2 6b 7f 00 00 01  E..<.N@.@..k...."
// The last line is padded so its ASCII column lines up.
[[nodiscard]] std::vector<std::string> hex_dump(std::span<const std::uint8_t> bytes);

}  // namespace portlab
