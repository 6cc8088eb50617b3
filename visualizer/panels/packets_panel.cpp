// The packet list, as Wireshark's: No., time, source, destination, protocol,
// length and the Info column (view/ladder.hpp's info_text), retransmissions and
// duplicate ACKs marked. Filters by port, flag and 4-tuple; "follow" keeps one
// connection. The filter is the ladder's too. Click a row to go to that packet.
// In challenge mode the list ends at the cursor, and a drop shows once it happened.
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::packets_panel {
namespace {

constexpr ImU32 expert_background = IM_COL32(160, 40, 40, 255);  // Wireshark's "Bad TCP" row: red on black

struct FlagChoice {
    const char* name;
    std::uint8_t bit;
};
constexpr FlagChoice flag_choices[] = {{"SYN", tcp_flag::syn}, {"ACK", tcp_flag::ack}, {"FIN", tcp_flag::fin},
                                       {"RST", tcp_flag::rst}, {"PSH", tcp_flag::psh}};

}  // namespace

void draw_filter(PacketViews& packets, const PacketRow* current) {
    auto& filter = packets.filter;
    int port = filter.port.value_or(0);
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 5);
    if (ImGui::InputInt("port", &port, 0, 0)) {
        if (port > 0 && port <= 65535) filter.port = static_cast<Port>(port);
        else filter.port.reset();
    }
    for (const auto& choice : flag_choices) {
        ImGui::SameLine();
        bool on = (filter.flags & choice.bit) != 0;
        if (ImGui::Checkbox(choice.name, &on)) filter.flags = static_cast<std::uint8_t>(on ? filter.flags | choice.bit : filter.flags & ~choice.bit);
    }
    ImGui::SameLine();
    ImGui::Checkbox("marked", &filter.marked_only);
    ImGui::SameLine();
    ImGui::Checkbox("relative seq", &packets.relative);
    if (!filter.connection && current && current->protocol) {
        ImGui::SameLine();
        if (ImGui::SmallButton("follow")) filter.connection = tuple_of(*current);
        if (ImGui::IsItemHovered()) ImGui::SetTooltip("Show only the current packet's connection (its 4-tuple, both ways)");
    }
    if (filter.connection) {
        ImGui::SameLine();
        if (ImGui::SmallButton("unfollow")) filter.connection.reset();
        else {
            ImGui::SameLine();
            ImGui::TextDisabled("following %s", filter.connection->to_string().c_str());
        }
    }
}

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    auto& packets = view.packets;
    const auto& ladder_view = refresh(packets, model.timeline(), model.generation());
    const auto& rows = packets.ladder.rows();
    if (packets.catching_up(model.size())) {
        ImGui::TextDisabled("Reading packets: %zu of %zu events...", packets.ladder.events_seen(), model.size());
        return;
    }
    const std::size_t position = model.position();
    const auto current = model.current_event();
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    const std::size_t current_row = current ? packets.ladder.row_of_event(model.timeline(), *current).value_or(none) : none;
    draw_filter(packets, current_row == none ? nullptr : &rows[current_row]);

    const ImGuiTableFlags flags = ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("packets", 6, flags)) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("No.");
    ImGui::TableSetupColumn("time");
    ImGui::TableSetupColumn("source");
    ImGui::TableSetupColumn("destination");
    ImGui::TableSetupColumn("proto");
    ImGui::TableSetupColumn("Info", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();

    const bool hide_future = view.challenge.enabled;
    const std::size_t shown = hide_future ? ladder_view.visible(packets.ladder, position) : ladder_view.rows.size();
    if (packets.list_scrolled_for != position && current_row != none) {
        packets.list_scrolled_for = position;
        const auto at = std::partition_point(ladder_view.rows.begin(), ladder_view.rows.end(),
                                             [&](const LadderView::Row& r) { return r.row < current_row; });
        const float row_height = ImGui::GetTextLineHeightWithSpacing();
        const float y = static_cast<float>(at - ladder_view.rows.begin()) * row_height;
        const float visible = ImGui::GetWindowHeight() - 2 * row_height;
        if (y < ImGui::GetScrollY() || y > ImGui::GetScrollY() + visible) ImGui::SetScrollY(std::max(0.0f, y - visible / 2));
    }

    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(shown));
    while (clipper.Step()) {
        for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
            const std::size_t index = ladder_view.rows[static_cast<std::size_t>(r)].row;
            const PacketRow& row = rows[index];
            const bool future = row.event >= position;
            ImGui::TableNextRow();
            if (!expert_mark(row).empty() && !future) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg0, expert_background);
            ImGui::TableNextColumn();
            if (future) ImGui::PushStyleVar(ImGuiStyleVar_Alpha, 0.45f);  // not sent yet at the cursor
            ImGui::PushID(static_cast<int>(index));
            const std::string number = std::to_string(row.event);
            if (ImGui::Selectable(number.c_str(), current_row == index, ImGuiSelectableFlags_SpanAllColumns))
                view.requests.emplace_back(SeekRequest{row.event + 1});
            if (ImGui::BeginPopupContextItem("row")) {
                if (row.protocol && ImGui::MenuItem("follow this connection")) packets.filter.connection = tuple_of(row);
                if (ImGui::MenuItem("filter on the destination port")) packets.filter.port = row.destination.port;
                ImGui::EndPopup();
            }
            ImGui::PopID();
            ImGui::TableNextColumn();
            style::text(style::time_text(model.timeline().event(row.event).t_us));
            ImGui::TableNextColumn();
            style::text(packets.ladder.endpoints()[row.from_endpoint].label);
            ImGui::TableNextColumn();
            style::text(packets.ladder.endpoints()[row.to_endpoint].label);
            ImGui::TableNextColumn();
            style::text_coloured(style::packet_colour(row.label), row.protocol ? std::string(to_string(*row.protocol)) : "ICMP");
            ImGui::TableNextColumn();
            std::string info = info_text(row, packets.relative);
            if (row.drop && (!hide_future || (row.fate && *row.fate < position))) info += "  ✗ " + row.drop->text;
            style::text(info);
            if (future) ImGui::PopStyleVar();
        }
    }
    ImGui::EndTable();
}

}  // namespace portlab::viz::packets_panel
