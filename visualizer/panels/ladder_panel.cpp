// The ladder (sequence) diagram, as textbooks and Wireshark's Flow Graph draw it:
// one column per endpoint (or per host), time going down, one arrow per packet
// labelled with its flags, seq/ack and length (view/ladder.hpp). Packets sent up
// to the cursor are drawn, the current one highlighted; a drop ends in an X with
// who took it; a retransmission says so. Click an arrow to go to that packet.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::ladder_panel {
namespace {

constexpr ImU32 lifeline_colour = IM_COL32(110, 110, 120, 255);
constexpr ImU32 drop_colour = IM_COL32(240, 60, 60, 255);
constexpr ImU32 retransmission_colour = IM_COL32(255, 120, 120, 255);
constexpr ImU32 current_background = IM_COL32(255, 200, 40, 45);
constexpr float gutter = 90.0f;  // the event number and time, left of the first column

void draw_mode(PacketViews& packets) {
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7);
    const char* names[] = {"auto", "endpoints", "hosts"};
    int mode = static_cast<int>(packets.mode);
    if (ImGui::Combo("columns", &mode, names, 3)) packets.mode = static_cast<ColumnMode>(mode);
}

float column_x(std::size_t column, std::size_t count, float left, float width) {
    const float step = width / static_cast<float>(std::max<std::size_t>(count, 1));
    return std::floor(left + step * (static_cast<float>(column) + 0.5f));
}

void draw_arrow_head(ImDrawList* draw, ImVec2 tip, float direction, ImU32 colour) {
    const float size = 7.0f;
    draw->AddTriangleFilled(tip, ImVec2(tip.x - direction * size, tip.y - size * 0.8f),
                            ImVec2(tip.x - direction * size, tip.y + size * 0.4f), colour);
}

void draw_cross(ImDrawList* draw, ImVec2 at, ImU32 colour) {
    const float r = 6.0f;
    draw->AddLine(ImVec2(at.x - r, at.y - r), ImVec2(at.x + r, at.y + r), colour, 3.0f);
    draw->AddLine(ImVec2(at.x - r, at.y + r), ImVec2(at.x + r, at.y - r), colour, 3.0f);
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    auto& packets = view.packets;
    const auto& ladder_view = refresh(packets, model.timeline(), model.generation());
    const auto& ladder = packets.ladder;
    if (packets.catching_up(model.size())) {
        ImGui::TextDisabled("Reading packets: %zu of %zu events...", packets.ladder.events_seen(), model.size());
        return;
    }
    const auto current = model.current_event();
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    const std::size_t current_row = current ? ladder.row_of_event(model.timeline(), *current).value_or(none) : none;
    packets_panel::draw_filter(packets, current_row == none ? nullptr : &ladder.rows()[current_row]);
    draw_mode(packets);
    if (ladder_view.columns.empty()) {
        ImGui::TextDisabled("No packets%s.", packets.filter.allows_everything() ? " in this trace" : " pass the filter");
        return;
    }
    const std::size_t position = model.position();
    const std::size_t shown = ladder_view.visible(ladder, position);
    std::optional<FourTuple> selected;
    if (view.selected_socket)
        if (const auto* socket = model.world().find_socket(*view.selected_socket); socket && socket->local && socket->remote)
            selected = FourTuple{*socket->local, *socket->remote};

    // Column heads: host name over endpoint, fixed above the scrolling rows.
    const float line = ImGui::GetTextLineHeight();
    const ImVec2 head = ImGui::GetCursorScreenPos();
    const float width = std::max(100.0f, ImGui::GetContentRegionAvail().x - gutter);
    const std::size_t count = ladder_view.columns.size();
    ImDrawList* head_draw = ImGui::GetWindowDrawList();
    for (std::size_t c = 0; c < count; ++c) {
        const auto& column = ladder_view.columns[c];
        const float x = column_x(c, count, head.x + gutter, width);
        for (int l = 0; l < 2; ++l) {
            const std::string& text = l == 0 ? column.host : column.label;
            const float w = ImGui::CalcTextSize(text.c_str()).x;
            head_draw->AddText(ImVec2(x - w / 2, head.y + static_cast<float>(l) * line),
                               l == 0 ? IM_COL32(200, 200, 210, 255) : IM_COL32(240, 240, 240, 255), text.c_str());
        }
    }
    ImGui::Dummy(ImVec2(width + gutter, line * 2 + 4));

    const float row_h = std::floor(line * 2.2f);
    if (!ImGui::BeginChild("ladder rows", ImVec2(0, 0), false, ImGuiWindowFlags_HorizontalScrollbar)) {
        ImGui::EndChild();
        return;
    }
    // Keep the newest arrow in view as the cursor moves.
    if (packets.scrolled_for != position) {
        packets.scrolled_for = position;
        const float bottom = static_cast<float>(shown) * row_h;
        const float visible = ImGui::GetWindowHeight();
        if (bottom > ImGui::GetScrollY() + visible || bottom < ImGui::GetScrollY())
            ImGui::SetScrollY(std::max(0.0f, bottom - visible + row_h));
    }
    ImDrawList* draw = ImGui::GetWindowDrawList();
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const float total_h = static_cast<float>(shown) * row_h + row_h;
    // Lifelines for the whole scrolled height.
    const float clip_top = ImGui::GetWindowPos().y;
    const float clip_bottom = clip_top + ImGui::GetWindowHeight();
    for (std::size_t c = 0; c < count; ++c) {
        const float x = column_x(c, count, origin.x + gutter, width);
        draw->AddLine(ImVec2(x, std::max(origin.y, clip_top)), ImVec2(x, std::min(origin.y + total_h, clip_bottom)), lifeline_colour, 1.0f);
    }

    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(shown), row_h);
    while (clipper.Step()) {
        for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
            const auto& arrow = ladder_view.rows[static_cast<std::size_t>(r)];
            const PacketRow& row = ladder.rows()[arrow.row];
            const float y = origin.y + static_cast<float>(r) * row_h;
            ImGui::SetCursorScreenPos(ImVec2(origin.x, y));
            ImGui::PushID(r);
            if (ImGui::InvisibleButton("arrow", ImVec2(width + gutter, row_h))) view.requests.emplace_back(SeekRequest{row.event + 1});
            const bool hovered = ImGui::IsItemHovered();
            ImGui::PopID();
            if (current_row == arrow.row) draw->AddRectFilled(ImVec2(origin.x, y), ImVec2(origin.x + width + gutter, y + row_h), current_background);
            else if (hovered) draw->AddRectFilled(ImVec2(origin.x, y), ImVec2(origin.x + width + gutter, y + row_h), IM_COL32(255, 255, 255, 20));

            const std::string when = "#" + std::to_string(row.event) + "  " + style::time_text(model.timeline().event(row.event).t_us);
            draw->AddText(ImVec2(origin.x + 2, y + line * 0.6f), IM_COL32(150, 150, 160, 255), when.c_str());

            // The arrow slopes down a little: the packet arrives after it leaves.
            const float x0 = column_x(arrow.from, count, origin.x + gutter, width);
            const float x1 = column_x(arrow.to, count, origin.x + gutter, width);
            const float y0 = y + line * 1.2f;
            const float y1 = y0 + line * 0.6f;
            const float direction = x1 >= x0 ? 1.0f : -1.0f;
            const ImU32 colour = style::packet_colour(row.label);
            // The selected socket's connection stands out.
            const float thickness = selected && (tuple_of(row) == *selected || tuple_of(row) == selected->reversed()) ? 4.0f : 2.0f;
            const ArrowEnd end = arrow_end(row, position);
            const bool dropped_now = end.kind == ArrowEnd::Kind::dropped;
            const ImVec2 stop(x0 + (x1 - x0) * end.fraction, y0 + (y1 - y0) * end.fraction);
            if (x0 == x1) {
                draw->AddCircleFilled(ImVec2(x0, y0), 4.0f, colour);  // to itself (a capture of one address)
            } else if (end.kind == ArrowEnd::Kind::arrived) {
                draw->AddLine(ImVec2(x0, y0), ImVec2(x1, y1), colour, thickness);
                draw_arrow_head(draw, ImVec2(x1, y1), direction, colour);
            } else {
                draw->AddLine(ImVec2(x0, y0), stop, colour, thickness);
                if (dropped_now) draw_cross(draw, stop, drop_colour);
                else draw->AddCircleFilled(stop, 5.0f, colour);  // still on the link
            }
            // The label sits above the arrow, centred between the two columns, and
            // after it who took a dropped packet ("firewall: ... (rule r1)", "lost on the link").
            const std::string label = marked_arrow_label(row, packets.relative);
            const bool marked = !expert_mark(row).empty();
            const std::string who = dropped_now ? "  " + drop_label(row) : "";
            const float label_w = ImGui::CalcTextSize(label.c_str()).x;
            const float who_w = ImGui::CalcTextSize(who.c_str()).x;
            const float right = origin.x + gutter + width;
            const float left = std::max(origin.x + gutter, std::min((x0 + x1 - label_w - who_w) / 2, right - label_w - who_w));
            draw->AddText(ImVec2(left, y + line * 0.05f), !marked ? IM_COL32(235, 235, 235, 255) : retransmission_colour, label.c_str());
            if (!who.empty()) draw->AddText(ImVec2(left + label_w, y + line * 0.05f), drop_colour, who.c_str());
        }
    }
    ImGui::SetCursorScreenPos(ImVec2(origin.x, origin.y + total_h));
    ImGui::Dummy(ImVec2(1, 1));
    ImGui::EndChild();
}

}  // namespace portlab::viz::ladder_panel
