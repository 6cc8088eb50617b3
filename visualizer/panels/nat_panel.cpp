// The NAT tab: each router's connection-tracking table as the trace's `nat` events built
// it (replay::Host::translations): the original tuple, the reply tuple, the kind of
// translation, as `conntrack -L` lists them. Click a row to go to the event that set it up.
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "view/nat_table.hpp"

namespace portlab::viz::nat_panel {

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    bool any = false;
    for (const auto& host : model.world().hosts()) {
        if (host.translations.empty()) continue;
        any = true;
        ImGui::Text("%s: %zu connection-tracking entr%s (conntrack -L)", host.name.c_str(), host.translations.size(),
                    host.translations.size() == 1 ? "y" : "ies");
        const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingFixedFit;
        if (!ImGui::BeginTable(("nat " + host.name).c_str(), 5, flags)) continue;
        ImGui::TableSetupColumn("id");
        ImGui::TableSetupColumn("proto");
        ImGui::TableSetupColumn("original (as it came)");
        ImGui::TableSetupColumn("reply (what answers carry)");
        ImGui::TableSetupColumn("kind", ImGuiTableColumnFlags_WidthStretch);
        ImGui::TableHeadersRow();
        for (const auto& translation : host.translations) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            const std::string id = std::to_string(translation.conntrack_id) + "##" + std::to_string(translation.event);
            if (ImGui::Selectable(id.c_str(), model.current_event() == translation.event, ImGuiSelectableFlags_SpanAllColumns))
                view.requests.emplace_back(SeekRequest{translation.event + 1});
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", conntrack_line(translation).c_str());
            ImGui::TableNextColumn();
            style::text(std::string(to_string(translation.protocol)));
            ImGui::TableNextColumn();
            style::text(flow_text(translation.original));
            ImGui::TableNextColumn();
            style::text(flow_text(translation.reply()));
            ImGui::TableNextColumn();
            style::text(nat_kind_text(translation.kind));
        }
        ImGui::EndTable();
    }
    if (!any) ImGui::TextDisabled("No address translation so far: a router's NAT events fill this table.");
}

}  // namespace portlab::viz::nat_panel
