#include "view/hexmap.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace portlab::viz {

ByteRange bytes_of(const Field& field) noexcept { return ByteRange{field.offset, field.offset + field.length}; }

const Field* field_of(std::span<const Layer> layers, FieldRef ref) noexcept {
    if (ref.layer >= layers.size() || ref.field >= layers[ref.layer].fields.size()) return nullptr;
    return &layers[ref.layer].fields[ref.field];
}

std::vector<FieldRef> fields_at_byte(std::span<const Layer> layers, std::size_t byte) {
    std::vector<FieldRef> found;
    for (std::size_t l = 0; l < layers.size(); ++l)
        for (std::size_t f = 0; f < layers[l].fields.size(); ++f)
            if (bytes_of(layers[l].fields[f]).contains(byte)) found.push_back(FieldRef{l, f});
    return found;
}

std::optional<FieldRef> field_at_byte(std::span<const Layer> layers, std::size_t byte) {
    std::optional<FieldRef> best;
    std::size_t best_length = 0;
    for (const FieldRef ref : fields_at_byte(layers, byte)) {
        const std::size_t length = layers[ref.layer].fields[ref.field].length;
        if (!best || length < best_length) {
            best = ref;
            best_length = length;
        }
    }
    return best;
}

std::optional<std::size_t> layer_at_byte(std::span<const Layer> layers, std::size_t byte) {
    std::optional<std::size_t> found;
    for (std::size_t l = 0; l < layers.size(); ++l)
        if (layers[l].offset <= byte && byte < layers[l].offset + layers[l].length) found = l;
    return found;
}

Highlight highlight_for_field(std::span<const Layer> layers, FieldRef field) {
    Highlight highlight;
    if (const Field* f = field_of(layers, field)) {
        highlight.bytes.push_back(bytes_of(*f));
        highlight.fields.push_back(field);
    }
    return highlight;
}

Highlight highlight_for_byte(std::span<const Layer> layers, std::size_t byte) {
    Highlight highlight;
    // The byte names one field; light up exactly that field's bytes, so a byte of a
    // 4-byte sequence number lights up all four.
    if (const auto field = field_at_byte(layers, byte)) return highlight_for_field(layers, *field);
    return highlight;
}

std::optional<FieldSelection> select_field(std::span<const Layer> layers, std::size_t event, FieldRef field) {
    const Field* f = field_of(layers, field);
    if (f == nullptr) return std::nullopt;
    return FieldSelection{event, field, bytes_of(*f)};
}

std::optional<FieldSelection> select_byte(std::span<const Layer> layers, std::size_t event, std::size_t byte) {
    const auto field = field_at_byte(layers, byte);
    if (!field) return std::nullopt;  // a byte no field covers (trailing padding): nothing picked
    return select_field(layers, event, *field);
}

Highlight highlight_with_selection(const std::optional<FieldSelection>& selection, std::size_t event, Highlight hover) {
    if (!selection || selection->event != event) return hover;
    if (std::find(hover.fields.begin(), hover.fields.end(), selection->field) == hover.fields.end()) {
        hover.fields.push_back(selection->field);
        hover.bytes.push_back(selection->bytes);
    }
    return hover;
}

std::size_t hex_row_count(std::size_t size, std::size_t per_row) noexcept {
    return per_row == 0 ? 0 : (size + per_row - 1) / per_row;
}

HexRow hex_row(std::size_t size, std::size_t row, std::size_t per_row) noexcept {
    const std::size_t offset = row * per_row;
    if (per_row == 0 || offset >= size) return {offset, 0};
    return {offset, std::min(per_row, size - offset)};
}

RowRange visible_rows(std::size_t count, float top, float row_height, float clip_top, float clip_bottom) noexcept {
    if (count == 0 || !(row_height > 0.0f) || !(clip_bottom > clip_top)) return {};
    // Rows are whole: a row partly in the band is drawn (floor of the first, ceiling of the last).
    const double first = std::floor((static_cast<double>(clip_top) - top) / row_height);
    const double last = std::ceil((static_cast<double>(clip_bottom) - top) / row_height);
    const auto clamp_row = [count](double row) {
        if (!(row > 0.0)) return std::size_t{0};
        return row >= static_cast<double>(count) ? count : static_cast<std::size_t>(row);
    };
    const std::size_t begin = clamp_row(first);
    return {begin, std::max(begin, clamp_row(last))};
}

namespace {
// Columns, in characters from the row's left edge: "0000  " then 3 per byte ("4f "), a space
// after the 8th byte, then two spaces and the printable column.
constexpr float hex_column = 6.0f;
constexpr float cell_columns = 3.0f;
}  // namespace

HexCell HexGeometry::hex_cell(std::size_t byte) const noexcept {
    const std::size_t column = per_row == 0 ? 0 : byte % per_row;
    const std::size_t row = per_row == 0 ? 0 : byte / per_row;
    const float gap = column >= 8 ? char_width : 0.0f;
    const float x = char_width * (hex_column + cell_columns * static_cast<float>(column)) + gap;
    const float y = line_height * static_cast<float>(row);
    return {x, y, x + char_width * 2 + 2, y + line_height - 1};
}

HexCell HexGeometry::ascii_cell(std::size_t byte) const noexcept {
    const std::size_t column = per_row == 0 ? 0 : byte % per_row;
    const std::size_t row = per_row == 0 ? 0 : byte / per_row;
    const float x = char_width * (hex_column + cell_columns * static_cast<float>(per_row) + 3 + static_cast<float>(column));
    const float y = line_height * static_cast<float>(row);
    return {x, y, x + char_width, y + line_height - 1};
}

float HexGeometry::width() const noexcept { return char_width * (hex_column + cell_columns * static_cast<float>(per_row) + 4 + static_cast<float>(per_row)); }

std::optional<std::size_t> HexGeometry::byte_at(float x, float y, std::size_t size) const noexcept {
    if (!(y >= 0.0f) || !(line_height > 0.0f) || per_row == 0) return std::nullopt;
    const auto row = static_cast<std::size_t>(y / line_height);
    for (std::size_t column = 0; column < per_row; ++column) {
        const std::size_t byte = row * per_row + column;
        if (byte >= size) break;
        if (hex_cell(byte).contains(x, y) || ascii_cell(byte).contains(x, y)) return byte;
    }
    return std::nullopt;
}

std::string hex_offset(std::size_t offset) { return fmt::format("{:04x}", offset); }

}  // namespace portlab::viz
