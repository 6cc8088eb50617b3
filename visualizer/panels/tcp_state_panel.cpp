// The TCP state diagram of RFC 9293 Figure 5 (RFC 793 Figure 6), drawn from the hub's
// transition table (portlab/tcp_machine.hpp), with the shown socket's current state
// filled in and the transitions it has taken so far numbered in order. What is shown and
// where it goes is view/tcp_diagram.hpp's (the socket clicked, else the current event's,
// a packet's own socket included; a UDP socket gets no diagram, it has no states).
// Hovering a state lists every edge out of it with its cause and where it is written.
#include <imgui.h>

#include <array>
#include <cmath>
#include <string>
#include <utility>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "portlab/tcp_machine.hpp"
#include "view/tcp_diagram.hpp"
#include "view/timers.hpp"

namespace portlab::viz::tcp_state_panel {
namespace {

ImVec2 im(Vec2 v) { return ImVec2(v.x, v.y); }

void arrow(ImDrawList* draw, const DiagramGeometry& d, TcpState from, TcpState to, ImU32 colour, float thickness) {
    const ArrowPath path = arrow_path(d, from, to);
    const auto& p = path.points;
    Vec2 towards = p[2];  // the head points along the last stretch
    if (path.curved) draw->AddBezierCubic(im(p[0]), im(p[1]), im(p[2]), im(p[3]), colour, thickness);
    else {
        draw->AddLine(im(p[0]), im(p[3]), colour, thickness);
        towards = p[0];
    }
    const Vec2 b = p[3];
    const float len = std::max(1.0f, std::hypot(b.x - towards.x, b.y - towards.y));
    const ImVec2 u((b.x - towards.x) / len, (b.y - towards.y) / len);
    const ImVec2 n(-u.y, u.x);
    draw->AddTriangleFilled(im(b), ImVec2(b.x - u.x * 9 + n.x * 4.5f, b.y - u.y * 9 + n.y * 4.5f),
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
void path_line(std::size_t number, const StateStep& step) {
    const std::string from(to_string(step.from));
    const std::string to(to_string(step.to));
    const auto edges = tcp_transitions_between(step.from, step.to);
    if (edges.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "%zu. %s -> %s  (%s, event %zu): not an edge of TCP's state machine",
                           number, from.c_str(), to.c_str(), step.cause.c_str(), step.event);
        return;
    }
    const std::string table = edges.size() == 1 ? edges[0].cause() : "one of " + std::to_string(edges.size()) + " edges";
    ImGui::TextDisabled("%zu. %s -> %s  (%s, event %zu%s)  table: %s", number, from.c_str(), to.c_str(), step.cause.c_str(), step.event,
                        step.implied ? ", implied" : "", table.c_str());
    if (!ImGui::IsItemHovered()) return;
    ImGui::BeginTooltip();
    for (const auto& edge : edges) ImGui::BulletText("%s  [%s]", edge.cause().c_str(), std::string(edge.reference).c_str());
    ImGui::EndTooltip();
}

const char* because_text(ShownBecause because) {
    switch (because) {
        case ShownBecause::selected: return "  [selected]";
        case ShownBecause::current_event: return "  [current event]";
        case ShownBecause::packet: return "  [current packet's socket]";
        case ShownBecause::nothing: break;
    }
    return "";
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    const StatePanelContent content = state_panel_content(model, view.selected_socket);
    const replay::Socket* socket = content.socket ? model.world().find_socket(*content.socket) : nullptr;
    if (socket) {
        const auto& host = model.world().hosts()[content.socket->host].name;
        ImGui::Text("%s, socket %u (%s)%s", host.c_str(), socket->id.value, std::string(to_string(socket->protocol)).c_str(),
                    because_text(content.because));
        if (socket->local) {
            ImGui::SameLine();
            ImGui::TextDisabled("%s%s", socket->local->to_string().c_str(),
                                socket->remote ? (" -> " + socket->remote->to_string()).c_str() : "");
        }
        if (view.selected_socket) {
            ImGui::SameLine();
            if (ImGui::SmallButton("follow events")) view.selected_socket.reset();
        }
        for (const auto& countdown : countdowns_of(model.world(), *content.socket, cursor_time_us(model, view))) {
            ImGui::SameLine();
            style::text_coloured(style::timer_colour, countdown_text(countdown));
        }
    } else {
        ImGui::TextDisabled("Select a socket (click a slot or a socket-table row) to see its state and path.");
    }
    if (socket && !content.tcp) {
        ImGui::TextWrapped("UDP has no connection and no states: a UDP socket is bound (ss: UNCONN), or connected to one "
                           "peer (ss: ESTAB, though no handshake happened), until it is closed. Each datagram stands alone "
                           "(RFC 768).");
        return;
    }

    const float line_h = ImGui::GetTextLineHeightWithSpacing();
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const StatePanelSplit split = split_state_panel(avail.y, content.steps.size(), line_h);
    ImDrawList* draw = ImGui::GetWindowDrawList();
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const DiagramGeometry d = diagram_geometry(Vec2{origin.x, origin.y}, Vec2{avail.x, split.diagram_h - 4});

    for (const auto& edge : tcp_transitions())
        if (edge.source == TcpEdgeSource::figure) arrow(draw, d, edge.from, edge.to, IM_COL32(110, 115, 130, 160), 1.0f);

    // The socket's path, numbered in order, each badge on its own arrow.
    const float radius = 8.0f;
    const auto badges = badge_centres(d, content.steps, radius);
    for (std::size_t i = 0; i < content.steps.size(); ++i) {
        const auto& step = content.steps[i];
        arrow(draw, d, step.from, step.to, step.implied ? IM_COL32(255, 210, 80, 170) : IM_COL32(255, 210, 80, 255), 3.0f);
    }
    const bool tcp = socket && socket->protocol == Protocol::tcp;
    for (TcpState state : {TcpState::closed, TcpState::listen, TcpState::syn_received, TcpState::syn_sent, TcpState::established,
                           TcpState::fin_wait_1, TcpState::close_wait, TcpState::fin_wait_2, TcpState::closing, TcpState::last_ack,
                           TcpState::time_wait}) {
        const Rect r = d.box_of(state);
        const ImVec2 a(r.x, r.y);
        const ImVec2 b(r.right(), r.bottom());
        const bool here = tcp && socket->tcp_state == state && (socket->state_reported || state != TcpState::closed ||
                                                                 socket->slot_state() == replay::SlotState::created);
        const ImU32 fill = here ? style::slot_colour(socket->slot_state()) : IM_COL32(35, 38, 48, 255);
        draw->AddRectFilled(a, b, fill, 4);
        draw->AddRect(a, b, here ? style::selection_colour : IM_COL32(120, 130, 150, 255), 4, 0, here ? 2.5f : 1.0f);
        const std::string name(to_string(state));
        const ImVec2 size = ImGui::CalcTextSize(name.c_str());
        const Vec2 c = r.center();
        draw->AddText(ImVec2(c.x - size.x / 2, c.y - size.y / 2), IM_COL32(240, 240, 245, 255), name.c_str());
        if (ImGui::IsWindowHovered() && ImGui::IsMouseHoveringRect(a, b)) edges_tooltip(state);
    }
    // Badges last, over the boxes an arrow may be short between.
    for (std::size_t i = 0; i < badges.size(); ++i) {
        const std::string number = std::to_string(i + 1);
        const ImVec2 size = ImGui::CalcTextSize(number.c_str());
        draw->AddCircleFilled(im(badges[i]), radius, IM_COL32(255, 210, 80, 255));
        draw->AddText(ImVec2(badges[i].x - size.x / 2, badges[i].y - size.y / 2), IM_COL32(20, 20, 20, 255), number.c_str());
    }
    ImGui::Dummy(ImVec2(d.cell_w * 3, split.diagram_h));
    if (content.steps.empty()) return;
    // The list under it, whole or scrolling: never cut off.
    if (ImGui::BeginChild("path", ImVec2(0, split.list_h), false, split.list_scrolls ? 0 : ImGuiWindowFlags_NoScrollbar)) {
        for (std::size_t i = 0; i < content.steps.size(); ++i) path_line(i + 1, content.steps[i]);
    }
    ImGui::EndChild();
}

}  // namespace portlab::viz::tcp_state_panel
