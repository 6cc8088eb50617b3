#include "view/hexmap.hpp"

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

std::vector<HexRow> hex_rows(std::size_t size, std::size_t per_row) {
    std::vector<HexRow> rows;
    if (per_row == 0) return rows;
    for (std::size_t offset = 0; offset < size; offset += per_row)
        rows.push_back(HexRow{offset, std::min(per_row, size - offset)});
    return rows;
}

std::string hex_offset(std::size_t offset) { return fmt::format("{:04x}", offset); }

}  // namespace portlab::viz
