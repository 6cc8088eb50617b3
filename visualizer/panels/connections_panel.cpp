// Connections by 4-tuple: the two sockets that share it, one per end, and their
// states; for a capture, its conversations (endpoints, packets, bytes).
#include <imgui.h>

#include <algorithm>
#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::connections_panel {
namespace {

std::string end_text(const replay::State& world, const std::optional<replay::SocketRef>& ref) {
    if (!ref) return "(other end not in the trace)";
    const auto* socket = world.find_socket(*ref);
    if (!socket) return "?";
    return world.hosts()[ref->host].name + " socket " + std::to_string(ref->socket.value) + "  " + std::string(socket->state_name());
}

void draw_conversations(const Model& model, ViewState& view) {
    if (view.challenge.enabled) {  // the table counts the whole capture: it would tell what comes next
        ImGui::TextDisabled("The capture's conversations are hidden in challenge mode: they count packets yet to come.");
        return;
    }
    const auto& conversations = model.conversations();
    ImGui::Text("%zu conversations in the capture (%zu begun by this event)", conversations.size(),
                static_cast<std::size_t>(std::count_if(conversations.begin(), conversations.end(),
                                                       [&](const auto& c) { return c.first_index < model.position(); })));
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_ScrollX | ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerV;
    if (!ImGui::BeginTable("conversations", 6, flags)) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char* name : {"proto", "A", "B", "packets", "bytes", "events"}) ImGui::TableSetupColumn(name);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(conversations.size()));
    while (clipper.Step()) {
        for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
            const auto& c = conversations[static_cast<std::size_t>(r)];
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::PushID(r);
            if (ImGui::Selectable(std::string(to_string(c.protocol)).c_str(), false, ImGuiSelectableFlags_SpanAllColumns))
                view.requests.emplace_back(SeekRequest{c.first_index + 1});
            ImGui::PopID();
            ImGui::TableNextColumn();
            style::text(c.a.to_string());
            ImGui::TableNextColumn();
            style::text(c.b.to_string());
            ImGui::TableNextColumn();
            ImGui::Text("%zu", c.packets());
            ImGui::TableNextColumn();
            ImGui::Text("%zu", c.bytes());
            ImGui::TableNextColumn();
            ImGui::Text("%zu-%zu", c.first_index, c.last_index);
        }
    }
    ImGui::EndTable();
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const style::MonoScope mono;
    if (model.is_capture()) {
        draw_conversations(model, view);
        return;
    }
    const auto& connections = model.connections();
    ImGui::Text("%zu connections: each is one 4-tuple (two across a NAT, one each side); ends on the same port differ in the other three numbers.",
                connections.size());
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_ScrollX | ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerV;
    if (!ImGui::BeginTable("connections", 6, flags)) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char* name : {"proto", "local (connecting side)", "remote", "after NAT (the other end's 4-tuple)", "this end", "other end"})
        ImGui::TableSetupColumn(name);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(connections.size()));
    while (clipper.Step()) {
        for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
            const auto& c = connections[static_cast<std::size_t>(r)];
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::PushID(r);
            const bool selected = view.selected_socket && (c.a == view.selected_socket || c.b == view.selected_socket);
            if (ImGui::Selectable(std::string(to_string(c.protocol)).c_str(), selected, ImGuiSelectableFlags_SpanAllColumns) && c.a)
                view.selected_socket = c.a;
            ImGui::PopID();
            ImGui::TableNextColumn();
            style::text(c.tuple.local.to_string());
            ImGui::TableNextColumn();
            style::text(c.tuple.remote.to_string());
            ImGui::TableNextColumn();
            // Across a NAT the other end holds another 4-tuple: the one the router sent on.
            if (c.via && c.far_tuple && *c.via < model.world().hosts().size())
                style::text(c.far_tuple->to_string() + "  (" +
                            model.world().hosts()[*c.via].name + ")");
            ImGui::TableNextColumn();
            style::text(end_text(model.world(), c.a));
            ImGui::TableNextColumn();
            style::text(end_text(model.world(), c.b));
        }
    }
    ImGui::EndTable();
}

}  // namespace portlab::viz::connections_panel
