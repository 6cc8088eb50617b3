// The event list: time, host, kind and caption of every event the filter lets
// through; click a row to go to that event. Long traces are drawn with a clipper,
// so only the visible rows cost anything. In challenge mode the list ends at the
// cursor: the events after it are what the student is asked to predict.
#include <imgui.h>

#include <algorithm>
#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::events_panel {
namespace {

void draw_filter(const Model& model, ViewState& view) {
    auto& filter = view.filter;
    ImGui::Checkbox("TCP", &filter.tcp);
    ImGui::SameLine();
    ImGui::Checkbox("UDP", &filter.udp);
    ImGui::SameLine();
    ImGui::Checkbox("other", &filter.other);
    ImGui::SameLine();
    if (ImGui::Button("kinds...")) ImGui::OpenPopup("kinds");
    if (ImGui::BeginPopup("kinds")) {
        if (ImGui::SmallButton("all")) filter.kinds = EventFilter::all_kinds();
        ImGui::SameLine();
        if (ImGui::SmallButton("none")) filter.kinds = {};
        for (std::size_t k = 0; k < replay::event_kind_count; ++k) {
            bool on = filter.kinds[k];
            if (ImGui::Checkbox(std::string(to_string(static_cast<replay::EventKind>(k))).c_str(), &on)) filter.kinds[k] = on;
        }
        ImGui::EndPopup();
    }
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    if (ImGui::BeginCombo("host", filter.host.empty() ? "all" : filter.host.c_str())) {
        if (ImGui::Selectable("all", filter.host.empty())) filter.host.clear();
        for (const auto& host : model.world().hosts())
            if (ImGui::Selectable(host.name.c_str(), filter.host == host.name)) filter.host = host.name;
        ImGui::EndCombo();
    }
    ImGui::SameLine();
    ImGui::Checkbox("follow", &view.follow_current);
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    draw_filter(model, view);
    const auto& rows = event_rows(model, view);
    const auto current = model.current_event();

    const ImGuiTableFlags flags = ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("events", 5, flags)) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("#");
    ImGui::TableSetupColumn("time");
    ImGui::TableSetupColumn("host");
    // As wide as the widest text the column can hold, measured once (the rows drawn so far would cut the rest).
    auto& width = view.event_list.event_column_width;
    if (width <= 0)
        for (const auto& text : event_column_texts()) width = std::max(width, ImGui::CalcTextSize(text.c_str()).x);
    ImGui::TableSetupColumn("event", ImGuiTableColumnFlags_WidthFixed, width);
    ImGui::TableSetupColumn("caption", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();

    // Keep the current event in view while playing or stepping.
    if (view.follow_current && current && view.event_list.scrolled_for != *current) {
        view.event_list.scrolled_for = *current;
        const auto row = std::lower_bound(rows.begin(), rows.end(), *current);
        if (row != rows.end()) {
            const float row_height = ImGui::GetTextLineHeightWithSpacing();
            const float y = static_cast<float>(row - rows.begin()) * row_height;
            const float scroll = ImGui::GetScrollY();
            const float visible = ImGui::GetWindowHeight() - 2 * row_height;
            if (y < scroll || y > scroll + visible) ImGui::SetScrollY(std::max(0.0f, y - visible / 2));
        }
    }

    const auto shown = static_cast<std::size_t>(std::lower_bound(rows.begin(), rows.end(), shown_events(model, view)) - rows.begin());
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(shown));
    while (clipper.Step()) {
        for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
            const std::size_t index = rows[static_cast<std::size_t>(r)];
            const auto& event = model.timeline().event(index);
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            const bool is_current = current == index;
            const std::string label = std::to_string(index);
            if (ImGui::Selectable(label.c_str(), is_current, ImGuiSelectableFlags_SpanAllColumns)) {
                view.requests.emplace_back(SeekRequest{index + 1});
            }
            ImGui::TableNextColumn();
            style::text(style::time_text(event.t_us));
            ImGui::TableNextColumn();
            style::text(event.host);
            ImGui::TableNextColumn();
            if (const auto* info = model.timeline().packet_info(index); info && info->decoded)
                style::text_coloured(style::packet_colour(info->label), event_column_text(model.timeline(), index));
            else
                style::text(event_column_text(model.timeline(), index));
            ImGui::TableNextColumn();
            style::text(model.timeline().caption(index));
        }
    }
    ImGui::EndTable();
}

}  // namespace portlab::viz::events_panel
