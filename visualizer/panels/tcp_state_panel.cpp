// The TCP state diagram of RFC 9293 Figure 5 (RFC 793 Figure 6), drawn from the hub's
// transition table (portlab/tcp_machine.hpp), with the selected socket's current state
// filled in and the transitions it has taken so far numbered in order. The selected
// socket is the one clicked (canvas, socket table), else the socket of the current event.
// Hovering a state lists every edge out of it with its cause and where it is written.
#include <imgui.h>

#include <array>
#include <cmath>
#include <string>
#include <utility>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "portlab/tcp_machine.hpp"

namespace portlab::viz::tcp_state_panel {
namespace {

struct Place {
    TcpState state;
    float column;  // 0..2
    float row;     // 0..6
};

// Figure 5's arrangement.
constexpr std::array<Place, 11> places{{
    {TcpState::closed, 1, 0},      {TcpState::listen, 1, 1},       {TcpState::syn_received, 0, 2},
    {TcpState::syn_sent, 2, 2},    {TcpState::established, 1, 3},  {TcpState::fin_wait_1, 0, 4},
    {TcpState::close_wait, 2, 4},  {TcpState::fin_wait_2, 0, 5},   {TcpState::closing, 1, 5},
    {TcpState::last_ack, 2, 5},    {TcpState::time_wait, 1, 6},
}};

struct Diagram {
    ImVec2 origin;
    float cell_w;
    float cell_h;
    ImVec2 box;

    [[nodiscard]] ImVec2 centre(TcpState state) const {
        for (const auto& place : places)
            if (place.state == state)
                return {origin.x + (place.column + 0.5f) * cell_w, origin.y + (place.row + 0.5f) * cell_h};
        return origin;
    }
};

// The point where the segment from the centre of a box towards `towards` leaves the box.
ImVec2 box_edge(const Diagram& d, ImVec2 centre, ImVec2 towards) {
    const float dx = towards.x - centre.x;
    const float dy = towards.y - centre.y;
    const float sx = dx == 0 ? 1e9f : (d.box.x / 2) / std::abs(dx);
    const float sy = dy == 0 ? 1e9f : (d.box.y / 2) / std::abs(dy);
    const float s = std::min(sx, sy);
    return {centre.x + dx * s, centre.y + dy * s};
}

void arrow(ImDrawList* draw, const Diagram& d, TcpState from, TcpState to, ImU32 colour, float thickness) {
    const ImVec2 a0 = d.centre(from);
    const ImVec2 b0 = d.centre(to);
    // Edges to CLOSED from below run up the side so they do not cross the boxes.
    if (to == TcpState::closed && (from == TcpState::time_wait || from == TcpState::last_ack || from == TcpState::syn_sent)) {
        const float side = from == TcpState::syn_sent ? d.origin.x + 3 * d.cell_w - 6 : d.origin.x + 3 * d.cell_w - 6;
        const ImVec2 start = box_edge(d, a0, ImVec2(side, a0.y));
        const ImVec2 end = box_edge(d, b0, ImVec2(side, b0.y));
        draw->AddBezierCubic(start, ImVec2(side, a0.y), ImVec2(side, b0.y), end, colour, thickness);
        draw->AddTriangleFilled(end, ImVec2(end.x + 8, end.y - 4), ImVec2(end.x + 8, end.y + 4), colour);
        return;
    }
    // Two states joined both ways (CLOSED-LISTEN, LISTEN-SYN-SENT ...) get two
    // parallel arrows, each shifted to its own right.
    const float len0 = std::max(1.0f, std::hypot(b0.x - a0.x, b0.y - a0.y));
    const ImVec2 shift(-(b0.y - a0.y) / len0 * 4, (b0.x - a0.x) / len0 * 4);
    const ImVec2 a1 = box_edge(d, a0, b0);
    const ImVec2 b1 = box_edge(d, b0, a0);
    const ImVec2 a(a1.x + shift.x, a1.y + shift.y);
    const ImVec2 b(b1.x + shift.x, b1.y + shift.y);
    draw->AddLine(a, b, colour, thickness);
    const float len = std::max(1.0f, std::hypot(b.x - a.x, b.y - a.y));
    const ImVec2 u((b.x - a.x) / len, (b.y - a.y) / len);
    const ImVec2 n(-u.y, u.x);
    draw->AddTriangleFilled(b, ImVec2(b.x - u.x * 9 + n.x * 4.5f, b.y - u.y * 9 + n.y * 4.5f),
                            ImVec2(b.x - u.x * 9 - n.x * 4.5f, b.y - u.y * 9 - n.y * 4.5f), colour);
}

// Every edge out of `state`, as the table gives it: cause, then where it is written.
void edges_tooltip(TcpState state) {
    ImGui::BeginTooltip();
    ImGui::Text("Out of %s:", std::string(to_string(state)).c_str());
    for (const auto& edge : tcp_transitions()) {
        if (edge.from != state) continue;
        ImGui::BulletText("-> %s: %s", std::string(to_string(edge.to)).c_str(), edge.cause().c_str());
        ImGui::SameLine();
        ImGui::TextDisabled("[%s]", std::string(edge.reference).c_str());
    }
    ImGui::EndTooltip();
}

// One step of the socket's path: what the trace says caused it, and the edges of the
// table it can be (hover for their references); a step that is no edge of TCP's state
// machine is shown as such.
void path_line(std::size_t number, const trace::StateChanged& change, std::size_t event) {
    const std::string from(to_string(change.from));
    const std::string to(to_string(change.to));
    const auto edges = tcp_transitions_between(change.from, change.to);
    if (edges.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "%zu. %s -> %s  (%s, event %zu): not an edge of TCP's state machine",
                           number, from.c_str(), to.c_str(), change.cause.c_str(), event);
        return;
    }
    const std::string table = edges.size() == 1 ? edges[0].cause() : "one of " + std::to_string(edges.size()) + " edges";
    ImGui::TextDisabled("%zu. %s -> %s  (%s, event %zu)  table: %s", number, from.c_str(), to.c_str(), change.cause.c_str(), event,
                        table.c_str());
    if (!ImGui::IsItemHovered()) return;
    ImGui::BeginTooltip();
    for (const auto& edge : edges) ImGui::BulletText("%s  [%s]", edge.cause().c_str(), std::string(edge.reference).c_str());
    ImGui::EndTooltip();
}

std::optional<replay::SocketRef> socket_to_show(const Model& model, const ViewState& view) {
    if (view.selected_socket && model.world().find_socket(*view.selected_socket)) return view.selected_socket;
    const auto current = model.current_event();
    if (!current) return std::nullopt;
    const auto& event = model.timeline().event(*current);
    const auto host = model.world().find_host(event.host);
    const auto socket = trace::socket_of(event.body);
    if (!host || !socket) return std::nullopt;
    return replay::SocketRef{*host, *socket};
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const auto ref = socket_to_show(model, view);
    const replay::Socket* socket = ref ? model.world().find_socket(*ref) : nullptr;
    std::vector<std::size_t> path;
    if (socket && ref) {
        const auto& host = model.world().hosts()[ref->host].name;
        ImGui::Text("%s, socket %u (%s)%s", host.c_str(), socket->id.value, std::string(to_string(socket->protocol)).c_str(),
                    view.selected_socket ? "  [selected]" : "  [current event]");
        if (socket->local) {
            ImGui::SameLine();
            ImGui::TextDisabled("%s%s", socket->local->to_string().c_str(),
                                socket->remote ? (" -> " + socket->remote->to_string()).c_str() : "");
        }
        if (view.selected_socket) {
            ImGui::SameLine();
            if (ImGui::SmallButton("follow events")) view.selected_socket.reset();
        }
        path = model.state_path(*ref);
    } else {
        ImGui::TextDisabled("Select a socket (click a slot or a socket-table row) to see its state and path.");
    }

    ImDrawList* draw = ImGui::GetWindowDrawList();
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    Diagram d;
    d.origin = ImGui::GetCursorScreenPos();
    d.cell_w = std::max(avail.x, 240.0f) / 3;
    d.cell_h = std::max(avail.y - 4, 210.0f) / 7;
    d.box = ImVec2(std::min(d.cell_w - 14, 130.0f), std::min(d.cell_h - 10, 26.0f));

    for (const auto& edge : tcp_transitions())
        if (edge.source == TcpEdgeSource::figure) arrow(draw, d, edge.from, edge.to, IM_COL32(110, 115, 130, 160), 1.0f);

    // The socket's path, numbered in order.
    for (std::size_t i = 0; i < path.size(); ++i) {
        const auto& change = std::get<trace::StateChanged>(model.timeline().event(path[i]).body);
        arrow(draw, d, change.from, change.to, IM_COL32(255, 210, 80, 255), 3.0f);
        const ImVec2 a = d.centre(change.from);
        const ImVec2 b = d.centre(change.to);
        const ImVec2 mid((a.x + b.x) / 2 + 6, (a.y + b.y) / 2 - 6);
        const std::string number = std::to_string(i + 1);
        draw->AddCircleFilled(ImVec2(mid.x + 4, mid.y + 7), 9, IM_COL32(255, 210, 80, 255));
        draw->AddText(ImVec2(mid.x, mid.y), IM_COL32(20, 20, 20, 255), number.c_str());
    }

    const bool tcp = socket && socket->protocol == Protocol::tcp;
    for (const auto& place : places) {
        const ImVec2 c = d.centre(place.state);
        const ImVec2 a(c.x - d.box.x / 2, c.y - d.box.y / 2);
        const ImVec2 b(c.x + d.box.x / 2, c.y + d.box.y / 2);
        const bool here = tcp && socket->tcp_state == place.state && (socket->state_reported || place.state != TcpState::closed ||
                                                                       socket->slot_state() == replay::SlotState::created);
        const ImU32 fill = here ? style::slot_colour(socket->slot_state()) : IM_COL32(35, 38, 48, 255);
        draw->AddRectFilled(a, b, fill, 4);
        draw->AddRect(a, b, here ? style::selection_colour : IM_COL32(120, 130, 150, 255), 4, 0, here ? 2.5f : 1.0f);
        const std::string name(to_string(place.state));
        const ImVec2 size = ImGui::CalcTextSize(name.c_str());
        draw->AddText(ImVec2(c.x - size.x / 2, c.y - size.y / 2), IM_COL32(240, 240, 245, 255), name.c_str());
        if (ImGui::IsWindowHovered() && ImGui::IsMouseHoveringRect(a, b)) edges_tooltip(place.state);
    }
    ImGui::Dummy(ImVec2(d.cell_w * 3, d.cell_h * 7));
    if (!path.empty()) {
        for (std::size_t i = 0; i < path.size(); ++i) {
            const auto& change = std::get<trace::StateChanged>(model.timeline().event(path[i]).body);
            path_line(i + 1, change, path[i]);
        }
    }
}

}  // namespace portlab::viz::tcp_state_panel
