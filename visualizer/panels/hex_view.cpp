#include "panels/hex_view.hpp"

#include <imgui.h>

#include <algorithm>
#include <string>

#include "panels/style.hpp"

namespace portlab::viz::hex_view {
namespace {

constexpr std::size_t per_row = 16;

ImU32 layer_tint(std::size_t layer) {
    constexpr ImU32 tints[] = {IM_COL32(70, 90, 140, 70), IM_COL32(70, 140, 90, 70), IM_COL32(140, 110, 60, 70),
                               IM_COL32(130, 70, 130, 70), IM_COL32(60, 130, 140, 70)};
    return tints[layer % (sizeof tints / sizeof tints[0])];
}

bool lit_byte(const Highlight& lit, std::size_t byte) {
    return std::any_of(lit.bytes.begin(), lit.bytes.end(), [&](const ByteRange& r) { return r.contains(byte); });
}

}  // namespace

Pointer draw(std::span<const std::uint8_t> bytes, std::span<const Layer> layers, const Highlight& lit,
             std::optional<std::size_t> reveal) {
    const style::MonoScope mono;
    const HexGeometry geometry{ImGui::CalcTextSize("0").x, ImGui::GetTextLineHeightWithSpacing(), per_row};
    const float line_h = geometry.line_height;
    ImDrawList* draw_list = ImGui::GetWindowDrawList();
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const std::size_t row_count = hex_row_count(bytes.size(), per_row);
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    // What the pointer is on, asked of the same geometry the cells are drawn with.
    const std::optional<std::size_t> hovered =
        ImGui::IsWindowHovered() ? geometry.byte_at(mouse.x - origin.x, mouse.y - origin.y, bytes.size()) : std::nullopt;
    if (reveal && *reveal < bytes.size()) {
        // The row holding the byte, a third of the way down, unless it is in view already.
        const float row_top = static_cast<float>(*reveal / per_row) * line_h;
        const float seen = ImGui::GetWindowHeight();
        if (row_top < ImGui::GetScrollY() || row_top + line_h > ImGui::GetScrollY() + seen)
            ImGui::SetScrollY(std::max(0.0f, row_top - seen / 3));
    }
    const auto at = [&](float x, float y) { return ImVec2(origin.x + x, origin.y + y); };

    // Only the rows inside the window's clip rectangle are drawn (as ImGuiListClipper would);
    // the Dummy below still reserves the whole height, so the scroll bar is right.
    const auto shown = visible_rows(row_count, origin.y, line_h, draw_list->GetClipRectMin().y, draw_list->GetClipRectMax().y);
    for (std::size_t r = shown.begin; r < shown.end; ++r) {
        const HexRow row = hex_row(bytes.size(), r, per_row);
        const float y = static_cast<float>(r) * line_h;
        const std::string offset = hex_offset(row.offset);
        draw_list->AddText(at(0, y), IM_COL32(140, 140, 150, 255), offset.c_str());
        for (std::size_t c = 0; c < row.count; ++c) {
            const std::size_t byte = row.offset + c;
            const HexCell cell = geometry.hex_cell(byte);
            const HexCell ascii = geometry.ascii_cell(byte);
            if (const auto layer = layer_at_byte(layers, byte))
                draw_list->AddRectFilled(at(cell.x0, cell.y0), at(cell.x1, cell.y1), layer_tint(*layer));
            if (lit_byte(lit, byte)) {
                draw_list->AddRectFilled(at(cell.x0, cell.y0), at(cell.x1, cell.y1), style::highlight_colour);
                draw_list->AddRectFilled(at(ascii.x0, ascii.y0), at(ascii.x1, ascii.y1), style::highlight_colour);
            }
            const std::string hex = hex_byte(bytes[byte]);
            draw_list->AddText(at(cell.x0 + 1, y), IM_COL32(230, 230, 235, 255), hex.c_str());
            const char a[2] = {ascii_of(bytes[byte]), 0};
            draw_list->AddText(at(ascii.x0, y), IM_COL32(170, 200, 170, 255), a);
        }
    }
    ImGui::Dummy(ImVec2(geometry.width(), static_cast<float>(row_count) * line_h));
    if (hovered) {
        if (const auto field = field_at_byte(layers, *hovered)) {
            const Field* f = field_of(layers, *field);
            ImGui::BeginTooltip();
            style::text(layers[field->layer].name + " / " + f->name + " = " + f->value);
            ImGui::TextDisabled("byte %zu of %zu-%zu", *hovered, f->offset, f->offset + f->length - 1);
            ImGui::EndTooltip();
        }
    }
    const ImVec2 clip_min = draw_list->GetClipRectMin();
    const ImVec2 clip_max = draw_list->GetClipRectMax();
    return Pointer{hovered, hovered && ImGui::IsMouseClicked(ImGuiMouseButton_Left), Vec2{origin.x, origin.y}, geometry,
                   Rect{clip_min.x, clip_min.y, clip_max.x - clip_min.x, clip_max.y - clip_min.y}};
}

}  // namespace portlab::viz::hex_view
