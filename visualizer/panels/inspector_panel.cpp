// The packet inspector: the event under the cursor (or the one picked in the
// event list); for a packet, its header tree by layer with every field's value
// and meaning, and the hex dump linked both ways: hover a field to light its
// bytes, hover a byte to light its field; a click selects (view/hexmap.hpp's
// FieldSelection) and the selection stays lit in both: a click in the dump opens
// the field's layer in the tree and scrolls to it, a click in the tree scrolls the
// dump to the field's bytes.
#include <imgui.h>

#include <algorithm>
#include <string>

#include "panels/hex_view.hpp"
#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::inspector_panel {
namespace {

void draw_field_tree(const DecodedPacket& packet, std::size_t event, const Highlight& lit, ViewState& view) {
    const auto& selected = view.selected_field;
    const bool reveal = view.reveal_selected_field && selected && selected->event == event;
    view.reveal_selected_field = false;
    for (std::size_t l = 0; l < packet.layers.size(); ++l) {
        const Layer& layer = packet.layers[l];
        const std::string title = layer.name + "   bytes " + std::to_string(layer.offset) + "-" +
                                  std::to_string(layer.offset + (layer.length ? layer.length - 1 : 0));
        if (reveal && selected->field.layer == l) ImGui::SetNextItemOpen(true, ImGuiCond_Always);
        else ImGui::SetNextItemOpen(true, ImGuiCond_Appearing);
        if (!ImGui::TreeNode(title.c_str())) continue;
        if (ImGui::BeginTable(("fields" + std::to_string(l)).c_str(), 3,
                              ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_BordersInnerV)) {
            ImGui::TableSetupColumn("field");
            ImGui::TableSetupColumn("value");
            ImGui::TableSetupColumn("meaning", ImGuiTableColumnFlags_WidthStretch);
            for (std::size_t f = 0; f < layer.fields.size(); ++f) {
                const Field& field = layer.fields[f];
                const FieldRef ref{l, f};
                const bool is_lit = std::find(lit.fields.begin(), lit.fields.end(), ref) != lit.fields.end();
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                ImGui::PushID(static_cast<int>(l * 1000 + f));
                if (ImGui::Selectable(field.name.c_str(), is_lit, ImGuiSelectableFlags_SpanAllColumns)) {
                    view.selected_field = select_field(packet.layers, event, ref);
                    view.reveal_selected_bytes = true;
                }
                if (ImGui::IsItemHovered()) view.hovered_field = ref;
                if (ImGui::IsItemVisible()) {
                    const ImVec2 min = ImGui::GetItemRectMin();
                    const ImVec2 max = ImGui::GetItemRectMax();
                    view.drawn.tree.push_back({event, ref, layer.name + "/" + field.name, Rect{min.x, min.y, max.x - min.x, max.y - min.y}});
                }
                if (reveal && selected->field == ref) ImGui::SetScrollHereY(0.4f);
                ImGui::PopID();
                ImGui::TableNextColumn();
                style::text(field.value);
                ImGui::TableNextColumn();
                // One line a field, so a small window still shows many rows; the whole meaning on hover.
                ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(170, 175, 185, 255));
                ImGui::TextUnformatted(field.meaning.c_str());
                ImGui::PopStyleColor();
                if (ImGui::IsItemHovered() && !field.meaning.empty()) {
                    ImGui::BeginTooltip();
                    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30);
                    ImGui::TextUnformatted(field.meaning.c_str());
                    ImGui::PopTextWrapPos();
                    ImGui::EndTooltip();
                }
            }
            ImGui::EndTable();
        }
        ImGui::TreePop();
    }
}

void draw_packet(const trace::Packet& packet, std::size_t event, ViewState& view) {
    const auto decoded = decode_frame(packet.link, packet.bytes);
    // Last frame's hover decides this frame's highlight (the tree is drawn before the dump),
    // and the selection stays lit beside it.
    Highlight lit;
    if (decoded && view.hovered_field) lit = highlight_for_field(decoded->layers, *view.hovered_field);
    else if (decoded && view.hovered_byte) lit = highlight_for_byte(decoded->layers, *view.hovered_byte);
    if (decoded) lit = highlight_with_selection(view.selected_field, event, std::move(lit));
    view.hovered_field.reset();
    view.hovered_byte.reset();

    if (packet.kind == trace::PacketKind::dropped) {
        const DropWords words = drop_words(packet);
        style::text_coloured(words.by_firewall ? style::firewall_colour : IM_COL32(235, 200, 200, 255),
                             (words.by_firewall ? "Dropped by the firewall: " : "Dropped, not by a firewall: ") + words.text);
    }
    if (!decoded) {
        style::text_coloured(IM_COL32(255, 110, 110, 255), "Does not decode: " + decoded.error().message);
        (void)hex_view::draw(packet.bytes, {}, lit);
        return;
    }
    {
        const style::MonoScope mono;
        ImGui::TextWrapped("%s", decoded->summary().c_str());
    }
    if (decoded->transport_checksum)
        ImGui::TextDisabled("transport checksum: %s", std::string(to_string(decoded->transport_checksum->status)).c_str());
    for (const auto& note : decoded->notes) ImGui::TextDisabled("%s", note.c_str());

    const float tree_height = ImGui::GetContentRegionAvail().y * inspector_tree_share;
    ImGui::BeginChild("tree", ImVec2(0, tree_height), true);
    draw_field_tree(*decoded, event, lit, view);
    ImGui::EndChild();
    ImGui::BeginChild("hex", ImVec2(0, 0), true, ImGuiWindowFlags_HorizontalScrollbar);
    std::optional<std::size_t> reveal;
    if (view.reveal_selected_bytes && view.selected_field && view.selected_field->event == event) reveal = view.selected_field->bytes.begin;
    view.reveal_selected_bytes = false;
    const auto pointer = hex_view::draw(packet.bytes, decoded->layers, lit, reveal);
    view.drawn.hex = DrawnPlaces::HexDump{event, pointer.origin, pointer.geometry, pointer.visible, packet.bytes.size()};
    view.hovered_byte = pointer.hovered;
    if (pointer.clicked) {
        view.selected_field = select_byte(decoded->layers, event, *pointer.hovered);
        view.reveal_selected_field = view.selected_field.has_value();
    }
    ImGui::EndChild();
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const auto index = view.inspected_event ? view.inspected_event : model.current_event();
    if (!index || *index >= model.size()) {
        ImGui::TextDisabled("No event yet: step forward to see one.");
        return;
    }
    const auto& event = model.timeline().event(*index);
    ImGui::Text("event %zu   %s   on %s   (%s)", *index, style::time_text(event.t_us).c_str(), text::printable(event.host).c_str(),
                std::string(trace::type_name(event.body)).c_str());
    // The current event's narration is the timeline's caption already: only another
    // event's (picked in the list) is told here, so the tree keeps its rows on a small screen.
    if (view.inspected_event && view.inspected_event != model.current_event()) {
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(250, 240, 200, 255));
    // The narration's own lines (a caption, then the note beside it), each escaped: the note's
    // text is the trace's, and may hold control bytes or line breaks of its own.
    const std::string narration = model.timeline().narration(*index);
    for (std::size_t start = 0; start <= narration.size();) {
        const auto end = std::min(narration.find('\n', start), narration.size());
        ImGui::TextWrapped("%s", text::printable(std::string_view(narration).substr(start, end - start)).c_str());
        start = end + 1;
    }
    ImGui::PopStyleColor();
    }
    ImGui::Separator();
    if (const auto* packet = std::get_if<trace::Packet>(&event.body)) {
        draw_packet(*packet, *index, view);
        return;
    }
    ImGui::TextDisabled("The event as the trace file has it:");
    const style::MonoScope mono;
    ImGui::TextWrapped("%s", trace::to_json_line(event).c_str());
}

}  // namespace portlab::viz::inspector_panel
