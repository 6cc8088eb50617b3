// Firewall rules as the trace reports them: the rules in force on each host, in chain order,
// with their chain (input, or a router's forward chain) and the drops that name them; each
// rule that dropped a packet, on which host, how many times, the last packet it hit; and, for
// the current event, the rule this packet hit. A trace that adds no rules (version 1, or a
// drop by a rule it never added) shows its rules by their drops only.
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::firewall_panel {

namespace {

// Every host's rules in force, as its chains hold them: chain, id, rule, hits so far.
void draw_rules_in_force(const replay::State& world) {
    bool any = false;
    for (const auto& host : world.hosts()) any = any || !host.rules.empty();
    if (!any) return;
    const style::MonoScope mono;
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_BordersInnerV;
    if (!ImGui::BeginTable("in_force", 5, flags)) return;
    for (const char* name : {"host", "chain", "id", "rule", "hits"}) ImGui::TableSetupColumn(name);
    ImGui::TableHeadersRow();
    for (replay::HostIndex h = 0; h < world.hosts().size(); ++h) {
        for (const auto& rule : world.hosts()[h].rules) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(world.hosts()[h].name.c_str());
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(std::string(to_string(rule.rule.chain)).c_str());
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(rule.id.c_str());
            ImGui::TableNextColumn();
            style::text_coloured(style::firewall_colour, nft_text(rule.rule).value_or("?"));
            ImGui::TableNextColumn();
            const auto hits = world.rule_hits().find({h, rule.id});
            ImGui::Text("%zu", hits == world.rule_hits().end() ? std::size_t{0} : hits->second.count);
        }
    }
    ImGui::EndTable();
}

}  // namespace

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
    draw_rules_in_force(world);
    if (world.rule_hits().empty()) {
        ImGui::TextWrapped("No firewall rule has dropped a packet so far.");
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
