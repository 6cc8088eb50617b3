// Firewall rules as the trace reports them: each rule that dropped a packet,
// on which host, how many times, the last packet it hit; and, for the current
// event, the rule this packet hit. A trace names rules only when they drop.
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::firewall_panel {

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const auto& world = model.world();
    if (const auto current = model.current_event()) {
        if (const auto* packet = std::get_if<trace::Packet>(&model.timeline().event(*current).body)) {
            const DropWords words = drop_words(*packet);
            if (packet->kind == trace::PacketKind::dropped && words.by_firewall)
                style::text_coloured(style::firewall_colour, "This packet hit: " + words.text + " on " + model.timeline().event(*current).host);
            else if (packet->kind == trace::PacketKind::dropped)
                ImGui::TextDisabled("This packet was %s: no firewall rule stopped it.", words.text.c_str());
            else
                ImGui::TextDisabled("This packet passed (no rule dropped it).");
        }
    }
    if (world.rule_hits().empty()) {
        ImGui::TextWrapped("No firewall rule has dropped a packet so far. Rules appear here with the packets they drop.");
        return;
    }
    const style::MonoScope mono;
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_BordersInnerV;
    if (ImGui::BeginTable("rules", 4, flags)) {
        for (const char* name : {"host", "rule", "hits", "last packet"}) ImGui::TableSetupColumn(name);
        ImGui::TableHeadersRow();
        int id = 0;
        for (const auto& [key, hits] : world.rule_hits()) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::PushID(id++);
            if (ImGui::Selectable(world.hosts()[key.first].name.c_str(), model.current_event() == hits.last_event,
                                  ImGuiSelectableFlags_SpanAllColumns))
                view.requests.emplace_back(SeekRequest{hits.last_event + 1});
            ImGui::PopID();
            ImGui::TableNextColumn();
            style::text_coloured(style::firewall_colour, key.second);
            ImGui::TableNextColumn();
            ImGui::Text("%zu", hits.count);
            ImGui::TableNextColumn();
            ImGui::Text("event %zu", hits.last_event);
        }
        ImGui::EndTable();
    }
    ImGui::TextDisabled("recent drops:");
    for (auto it = world.drops().rbegin(); it != world.drops().rend(); ++it) {
        if (!it->by_firewall()) continue;  // a link loss is no rule's doing
        const auto* info = model.timeline().packet_info(it->event);
        ImGui::BulletText("event %zu  %s  %s", it->event, it->rule.c_str(), info ? info->summary.c_str() : "");
    }
}

}  // namespace portlab::viz::firewall_panel
