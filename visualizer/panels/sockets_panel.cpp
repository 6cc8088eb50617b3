// Each host's sockets shaped like `ss -tuanp`: state, queues, local and peer
// address:port, and which socket it is. Click a row to select the socket.
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "view/ss_table.hpp"

namespace portlab::viz::sockets_panel {

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const auto& world = model.world();
    ImGui::TextDisabled("As `ss -tuanp` would print it on each host (queues are not in the trace; a listener's Send-Q is its backlog).");
    const style::MonoScope mono;
    for (replay::HostIndex h = 0; h < world.hosts().size(); ++h) {
        const auto& host = world.hosts()[h];
        const auto& rows = model.ss_table(h);
        const std::string title = "$ ss -tuanp   # on " + host.name + "   (" + std::to_string(rows.size()) + " sockets)###host" +
                                  std::to_string(h);
        ImGui::SetNextItemOpen(true, ImGuiCond_Appearing);
        if (!ImGui::CollapsingHeader(title.c_str())) continue;
        if (rows.empty()) {
            ImGui::TextDisabled("  (no bound sockets)");
            continue;
        }
        const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_ScrollY;
        const float height = std::min(static_cast<float>(rows.size() + 1), 12.0f) * ImGui::GetTextLineHeightWithSpacing() + 6;
        if (!ImGui::BeginTable(("ss" + std::to_string(h)).c_str(), 7, flags, ImVec2(0, height))) continue;
        ImGui::TableSetupScrollFreeze(0, 1);
        for (const char* name : {"Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"})
            ImGui::TableSetupColumn(name);
        ImGui::TableHeadersRow();
        ImGuiListClipper clipper;
        clipper.Begin(static_cast<int>(rows.size()));
        while (clipper.Step()) {
            for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
                const SsRow& row = rows[static_cast<std::size_t>(r)];
                const auto* socket = world.find_socket(row.ref);
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                ImGui::PushID(r);
                if (ImGui::Selectable(row.netid.c_str(), view.selected_socket == row.ref, ImGuiSelectableFlags_SpanAllColumns))
                    view.selected_socket = row.ref;
                ImGui::PopID();
                ImGui::TableNextColumn();
                style::text_coloured(socket ? style::slot_colour(socket->slot_state()) : IM_COL32(200, 200, 200, 255), row.state);
                ImGui::TableNextColumn();
                style::text(row.recv_q);
                ImGui::TableNextColumn();
                style::text(row.send_q);
                ImGui::TableNextColumn();
                style::text(row.local);
                ImGui::TableNextColumn();
                style::text(row.peer);
                ImGui::TableNextColumn();
                style::text(row.process);
            }
        }
        ImGui::EndTable();
    }
}

}  // namespace portlab::viz::sockets_panel
