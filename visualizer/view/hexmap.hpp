#pragma once
// Which bytes a header field covers and which fields cover a byte: the link
// between the inspector's field tree and its hex dump. Offsets come from the
// foundation's decoder (packet.hpp's Layer/Field), counted from the frame's start.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "portlab/hex.hpp"
#include "portlab/packet.hpp"

namespace portlab::viz {

struct FieldRef {
    std::size_t layer = 0;
    std::size_t field = 0;
    friend bool operator==(const FieldRef&, const FieldRef&) = default;
};

// [begin, end) in bytes.
struct ByteRange {
    std::size_t begin = 0;
    std::size_t end = 0;
    [[nodiscard]] bool contains(std::size_t byte) const noexcept { return begin <= byte && byte < end; }
    friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

[[nodiscard]] ByteRange bytes_of(const Field& field) noexcept;
[[nodiscard]] const Field* field_of(std::span<const Layer> layers, FieldRef ref) noexcept;

// Every field touching the byte, in layer then field order (several when bit
// fields share a byte, such as IPv4's version and IHL).
[[nodiscard]] std::vector<FieldRef> fields_at_byte(std::span<const Layer> layers, std::size_t byte);
// The one field hovering the byte should name: the narrowest of fields_at_byte
// (a field of a quoted header rather than the ICMP payload around it), first on ties.
[[nodiscard]] std::optional<FieldRef> field_at_byte(std::span<const Layer> layers, std::size_t byte);
// The layer a byte belongs to: the last (innermost) layer whose range holds it.
[[nodiscard]] std::optional<std::size_t> layer_at_byte(std::span<const Layer> layers, std::size_t byte);

// What to highlight when the pointer is over a field or a byte.
struct Highlight {
    std::vector<ByteRange> bytes;   // bytes to light up in the hex dump
    std::vector<FieldRef> fields;   // fields to light up in the tree
};
[[nodiscard]] Highlight highlight_for_field(std::span<const Layer> layers, FieldRef field);
[[nodiscard]] Highlight highlight_for_byte(std::span<const Layer> layers, std::size_t byte);

// What a click picks, in the tree or in the hex dump, kept until the next click: one field
// and the bytes it covers, for one packet event (inspecting another packet shows nothing
// of it). Clicking a byte picks the field field_at_byte names, the innermost one: a byte of
// an ICMP error's quoted header picks the quoted field, not the ICMP payload around it.
struct FieldSelection {
    std::size_t event = 0;  // the packet event whose fields these are
    FieldRef field;
    ByteRange bytes;        // bytes_of(the field)
    friend bool operator==(const FieldSelection&, const FieldSelection&) = default;
};
[[nodiscard]] std::optional<FieldSelection> select_field(std::span<const Layer> layers, std::size_t event, FieldRef field);
[[nodiscard]] std::optional<FieldSelection> select_byte(std::span<const Layer> layers, std::size_t event, std::size_t byte);
// What the selection lights while `event` is inspected, with `hover` (the pointer's) added.
[[nodiscard]] Highlight highlight_with_selection(const std::optional<FieldSelection>& selection, std::size_t event, Highlight hover);

// The hex dump's lines: offset, then up to `per_row` bytes. A row is computed when it is
// drawn, never all of them: a 10 MiB packet has 655,360 rows, a window shows a few dozen.
struct HexRow {
    std::size_t offset = 0;
    std::size_t count = 0;
    friend bool operator==(const HexRow&, const HexRow&) = default;
};
[[nodiscard]] std::size_t hex_row_count(std::size_t size, std::size_t per_row = 16) noexcept;
// Row `row` of a dump of `size` bytes (row < hex_row_count(size, per_row)).
[[nodiscard]] HexRow hex_row(std::size_t size, std::size_t row, std::size_t per_row = 16) noexcept;

// [begin, end) of the rows to draw: rows of `row_height` pixels, the first with its top at
// `top`, that meet the visible band [clip_top, clip_bottom) (the window's clip rectangle).
// What ImGuiListClipper computes, as a value a test can check without a window.
struct RowRange {
    std::size_t begin = 0;
    std::size_t end = 0;
    friend bool operator==(const RowRange&, const RowRange&) = default;
};
[[nodiscard]] RowRange visible_rows(std::size_t count, float top, float row_height, float clip_top, float clip_bottom) noexcept;
// Where the dump draws each byte, relative to its top-left corner, in a monospace font whose
// characters are `char_width` wide on lines `line_height` apart:
//   "0000  45 00 00 28 00 00 40 00  40 06 3c ce 7f 00 00 01   E..(..@.@.<....."
// (an offset, 16 bytes with a gap after 8 as hexdump -C, the printable column). The panel
// draws with it and asks it which byte a click is on, so what is hit is what is drawn.
struct HexCell {
    float x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
    [[nodiscard]] bool contains(float x, float y) const noexcept { return x0 <= x && x < x1 && y0 <= y && y < y1; }
};
struct HexGeometry {
    float char_width = 7.0f;
    float line_height = 16.0f;
    std::size_t per_row = 16;
    [[nodiscard]] HexCell hex_cell(std::size_t byte) const noexcept;    // the two hex digits
    [[nodiscard]] HexCell ascii_cell(std::size_t byte) const noexcept;  // its character in the printable column
    [[nodiscard]] float width() const noexcept;                         // of a whole row
    // The byte whose hex digits or character hold (x, y), of a dump of `size` bytes; none
    // between cells, in the offset column or past the end.
    [[nodiscard]] std::optional<std::size_t> byte_at(float x, float y, std::size_t size) const noexcept;
};

// "0010" (4 hex digits, more when needed). The bytes and the ASCII column are portlab's
// hex_byte and ascii_of (portlab/hex.hpp), as in a lab's hex dump.
[[nodiscard]] std::string hex_offset(std::size_t offset);

}  // namespace portlab::viz
