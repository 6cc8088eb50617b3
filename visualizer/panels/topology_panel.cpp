// The topology canvas: host boxes with their addresses and port slots, the
// ephemeral pool strip, connection lines labelled with 4-tuples, the current
// packet travelling its path (stopping at a firewall when dropped), the port an
// ephemeral assignment takes out of the pool. Pan with the mouse, zoom with the
// wheel, double-click to fit.
//
// [SECTION] geometry helpers
// [SECTION] hosts and slots
// [SECTION] lines
// [SECTION] animation: packets and ephemeral ports
// [SECTION] interaction and overlay

#include <imgui.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "view/nat_table.hpp"
#include "view/timers.hpp"

namespace portlab::viz::topology_panel {
namespace {

// ===========================================================================
// [SECTION] geometry helpers
// ===========================================================================

struct Canvas {
    ImDrawList* draw = nullptr;
    ImVec2 origin;  // top-left of the canvas on screen
    ImVec2 size;
    Camera camera;

    [[nodiscard]] ImVec2 screen(Vec2 p) const {
        const Vec2 s = camera.to_screen(p, Vec2{origin.x, origin.y});
        return {s.x, s.y};
    }
    [[nodiscard]] ImVec2 screen_min(const Rect& r) const { return screen(Vec2{r.x, r.y}); }
    [[nodiscard]] ImVec2 screen_max(const Rect& r) const { return screen(Vec2{r.right(), r.bottom()}); }
    [[nodiscard]] bool visible(const Rect& r) const {
        const ImVec2 a = screen_min(r);
        const ImVec2 b = screen_max(r);
        return b.x >= origin.x && a.x <= origin.x + size.x && b.y >= origin.y && a.y <= origin.y + size.y;
    }
    [[nodiscard]] float scale() const { return camera.zoom; }
    [[nodiscard]] ToScreen to_screen() const { return ToScreen{camera.pan, camera.zoom, Vec2{origin.x, origin.y}}; }
};

// Names come from the trace: drawn escaped, as style::text does.
void text_at(const Canvas& canvas, ImVec2 at, ImU32 colour, const std::string& s, float font_scale = 1.0f) {
    ImFont* font = ImGui::GetFont();
    const std::string shown = text::printable(s);
    canvas.draw->AddText(font, ImGui::GetFontSize() * font_scale, at, colour, shown.c_str(), shown.c_str() + shown.size());
}

float text_width(const std::string& s, float font_scale = 1.0f) {
    const std::string shown = text::printable(s);
    return ImGui::GetFont()->CalcTextSizeA(ImGui::GetFontSize() * font_scale, 1e9f, 0.0f, shown.c_str()).x;
}

// ===========================================================================
// [SECTION] hosts and slots
// ===========================================================================

std::string slot_title(const Slot& slot, const ServiceTable& services) {
    // A refused bind() holds no port: name the one it asked for, crossed out in words.
    if (!slot.local && slot.refused_bind)
        return std::string(to_string(slot.protocol)) + "/" + std::to_string(slot.refused_bind->port) + " refused";
    if (!slot.local) return std::string(to_string(slot.protocol)) + "/-";
    std::string title = std::string(to_string(slot.protocol)) + "/" + std::to_string(slot.local->port);
    if (const auto* service = services.find_by_port(slot.local->port, slot.protocol)) title += " " + service->name;
    return title;
}

std::string slot_subtitle(const Slot& slot, const replay::State& world) {
    if (slot.observed) return "seen in capture";
    const auto* socket = world.find_socket(slot.ref);
    if (!socket) return {};
    // A connection the kernel holds for a program that has not called accept() yet.
    const std::string queued = socket->awaiting_accept && socket->tcp_state == TcpState::established ? " (queued)" : "";
    const std::string error = slot.error ? "  " + *slot.error : "";
    return "sock " + std::to_string(slot.ref.socket.value) + "  " + std::string(socket->state_name()) + queued + error;
}

void draw_pool_strip(const Canvas& canvas, const Model& model, const HostBox& box) {
    const auto& pool = model.world().hosts()[box.host].pool;
    if (!pool.range || box.pool_strip.w <= 0) return;
    const ImVec2 a = canvas.screen_min(box.pool_strip);
    const ImVec2 b = canvas.screen_max(box.pool_strip);
    canvas.draw->AddRectFilled(a, b, IM_COL32(35, 38, 48, 255), 3.0f);
    // Ports in use, TCP and UDP, bucketed to the strip's pixels so 10,000 ports cost as much as 300.
    const int pixels = std::max(1, static_cast<int>(b.x - a.x));
    std::vector<unsigned char> used(static_cast<std::size_t>(pixels), 0);
    for (const Protocol protocol : {Protocol::tcp, Protocol::udp}) {
        for (const Port port : model.ports_in_use(box.host, protocol)) {
            if (!pool.range->contains(port)) continue;
            const float x = pool_x(box.pool_strip, *pool.range, port);
            const int pixel = std::clamp(static_cast<int>(canvas.screen(Vec2{x, 0}).x - a.x), 0, pixels - 1);
            used[static_cast<std::size_t>(pixel)] |= protocol == Protocol::tcp ? 1 : 2;
        }
    }
    for (int p = 0; p < pixels; ++p)
        if (const unsigned char mark = used[static_cast<std::size_t>(p)])
            canvas.draw->AddLine(ImVec2(a.x + static_cast<float>(p) + 0.5f, a.y + 2), ImVec2(a.x + static_cast<float>(p) + 0.5f, b.y - 2),
                                 mark & 1 ? IM_COL32(120, 200, 130, 255) : IM_COL32(110, 180, 230, 255));
    if (pool.last) {
        const float x = canvas.screen(Vec2{pool_x(box.pool_strip, *pool.range, *pool.last), 0}).x;
        canvas.draw->AddTriangleFilled(ImVec2(x, a.y), ImVec2(x - 5, a.y - 7), ImVec2(x + 5, a.y - 7), IM_COL32(255, 220, 80, 255));
    }
    const Model::PoolUse use = model.pool_use(box.host);
    canvas.draw->AddRect(a, b, use.full() ? IM_COL32(255, 70, 60, 255) : IM_COL32(120, 130, 150, 255), 3.0f, 0,
                         use.full() ? 3.0f : 1.0f);
    if (b.y - a.y >= 12) {
        const float font_scale = std::min(1.0f, (b.y - a.y - 2) / ImGui::GetFontSize());
        const std::string label = "ephemeral " + pool.range->to_string();
        text_at(canvas, ImVec2(a.x + 4, a.y + 1), IM_COL32(200, 205, 215, 255), label, font_scale * 0.85f);
        const std::string in_use = use.full() ? "FULL " + std::to_string(use.in_use()) + "/" + std::to_string(use.size)
                                              : std::to_string(use.in_use()) + " in use";
        const float needed = text_width(label, font_scale * 0.85f) + text_width(in_use, font_scale * 0.85f) + 16;
        if (needed < b.x - a.x)
            text_at(canvas, ImVec2(b.x - text_width(in_use, font_scale * 0.85f) - 4, a.y + 1), IM_COL32(200, 205, 215, 255), in_use,
                    font_scale * 0.85f);
    }
}

void draw_host(const Canvas& canvas, const Model& model, const HostBox& box) {
    const auto& host = model.world().hosts()[box.host];
    const ImVec2 a = canvas.screen_min(box.rect);
    const ImVec2 b = canvas.screen_max(box.rect);
    const float rounding = std::min(8.0f, 8.0f * canvas.scale());
    canvas.draw->AddRectFilled(a, b, IM_COL32(28, 31, 40, 255), rounding);
    // A host whose firewall dropped something gets a firewall border.
    const bool firewall = has_firewall(model.world(), box.host);
    canvas.draw->AddRect(a, b, firewall ? style::firewall_colour : IM_COL32(100, 110, 130, 255), rounding, 0,
                         firewall ? 4.0f : 1.5f);
    const HeaderText header = header_text(canvas.to_screen()(box.rect), canvas.to_screen()(box.header), canvas.scale(), ImGui::GetFontSize());
    if (header.shown) {
        text_at(canvas, ImVec2(header.name_at.x, header.name_at.y), IM_COL32(240, 240, 245, 255), host.name, header.name_scale);
        std::string addresses = host_addresses_text(host);
        if (firewall) addresses += addresses.empty() ? "firewall" : "   [firewall]";
        text_at(canvas, ImVec2(header.addresses_at.x, header.addresses_at.y), IM_COL32(170, 180, 195, 255), addresses,
                header.addresses_scale);
    }
}

// The socket's running timers along the slot's bottom edge: a bar for what is left of
// each (TIME-WAIT's 2*MSL, the retransmission timeout) and the time left beside it,
// read at the cursor's virtual time.
void draw_countdowns(const Canvas& canvas, const std::vector<Countdown>& running, ImVec2 a, ImVec2 b) {
    if (running.empty()) return;
    const float bar_h = std::max(2.0f, 4.0f * canvas.scale());
    float y = b.y - bar_h;
    for (const auto& countdown : running) {
        const float w = (b.x - a.x) * std::clamp(countdown.fraction_left(), 0.0f, 1.0f);
        canvas.draw->AddRectFilled(ImVec2(a.x, y), ImVec2(b.x, y + bar_h), IM_COL32(20, 20, 25, 200));
        canvas.draw->AddRectFilled(ImVec2(a.x, y), ImVec2(a.x + w, y + bar_h), style::timer_colour);
        y -= bar_h + 1;
    }
}

void draw_slot(const Canvas& canvas, const Model& model, const ViewState& view, const Slot& slot) {
    const ImVec2 a = canvas.screen_min(slot.rect);
    const ImVec2 b = canvas.screen_max(slot.rect);
    const ImU32 colour = slot.observed ? IM_COL32(80, 120, 150, 255) : style::slot_colour(slot.state);
    const bool selected = !slot.observed && view.selected_socket == slot.ref;
    if (b.x - a.x < 8 || b.y - a.y < 6) {
        // Too small for a label or a visible rounding: one square quad (4
        // vertices, no anti-aliased fringe), since 20,000 of these are a frame.
        canvas.draw->AddRectFilled(a, ImVec2(std::max(b.x, a.x + 1), std::max(b.y, a.y + 1)), colour);
        if (selected) canvas.draw->AddRect(ImVec2(a.x - 2, a.y - 2), ImVec2(b.x + 2, b.y + 2), style::selection_colour, 0, 0, 2.0f);
        return;
    }
    const float rounding = std::min(5.0f, 5.0f * canvas.scale());
    canvas.draw->AddRectFilled(a, b, colour, rounding);
    if (slot.error) canvas.draw->AddRect(a, b, IM_COL32(255, 70, 60, 255), rounding, 0, 3.0f);  // a call failed on it
    if (selected) canvas.draw->AddRect(a, b, style::selection_colour, rounding, 0, 3.0f);
    const float height = b.y - a.y;
    if (height < 12) return;
    const float font_scale = std::min(1.0f, height / (2.3f * ImGui::GetFontSize()));
    const auto& services = model.timeline().services();
    const float pad = 6 * canvas.scale();
    text_at(canvas, ImVec2(a.x + pad, a.y + 2 * canvas.scale()), IM_COL32(255, 255, 255, 255), slot_title(slot, services),
            std::max(font_scale, 0.5f));
    const auto running = slot.observed ? std::vector<Countdown>{} : countdowns_of(model.world(), slot.ref, cursor_time_us(model, view));
    if (height >= 26) {
        // The time left after the state: "sock 4  TIME-WAIT  59.9 s", "sock 3  ESTABLISHED  RTO 180.0 ms".
        std::string subtitle = slot_subtitle(slot, model.world());
        for (const auto& countdown : running)
            subtitle += "  " + (countdown.timer == trace::TimerKind::time_wait ? remaining_text(countdown.remaining_us) : countdown_text(countdown));
        text_at(canvas, ImVec2(a.x + pad, a.y + height / 2 + 1), IM_COL32(230, 235, 240, 220), subtitle, std::max(font_scale * 0.85f, 0.45f));
    }
    draw_countdowns(canvas, running, a, b);
}

// ===========================================================================
// [SECTION] lines
// ===========================================================================

// A packet chip's height in pixels (chip_rect around a line of text at 0.85 of the font).
float chip_height() { return chip_rect(Vec2{}, Vec2{0, ImGui::GetFontSize() * 0.85f}).h; }

// Whether any of a route's box (its corners' span) is on the canvas.
bool on_screen(const Canvas& canvas, const Route& route) {
    const Vec2 a = route.front();
    const Vec2 b = route.back();
    Vec2 low{std::min(a.x, b.x), std::min(a.y, b.y)};
    Vec2 high{std::max(a.x, b.x), std::max(a.y, b.y)};
    for (std::size_t i = 1; i + 1 < route.count; ++i) {  // the bends, if any
        low = Vec2{std::min(low.x, route.points[i].x), std::min(low.y, route.points[i].y)};
        high = Vec2{std::max(high.x, route.points[i].x), std::max(high.y, route.points[i].y)};
    }
    const ImVec2 s = canvas.screen(low);
    const ImVec2 e = canvas.screen(high);
    return !(e.x < canvas.origin.x || s.x > canvas.origin.x + canvas.size.x || e.y < canvas.origin.y || s.y > canvas.origin.y + canvas.size.y);
}

// A route as the canvas draws it: one line, or a polyline round the boxes it avoids.
void draw_route(const Canvas& canvas, const Route& route, ImU32 colour, float thickness) {
    if (route.count <= 2) {
        canvas.draw->AddLine(canvas.screen(route.front()), canvas.screen(route.back()), colour, thickness);
        return;
    }
    std::array<ImVec2, Route::most> points{};
    for (std::size_t i = 0; i < route.count; ++i) points[i] = canvas.screen(route.points[i]);
    canvas.draw->AddPolyline(points.data(), static_cast<int>(route.count), colour, ImDrawFlags_None, thickness);
}

// Past this many lines on screen, each pair of hosts gets one band labelled with
// its connection count instead (a level of detail, as maps do): thousands of
// one-pixel lines between the same two boxes show nothing but cost the
// rasteriser millions of pixels. Zoom in and the lines come back.
constexpr std::size_t max_lines_drawn = 1500;

void draw_bundles(const Canvas& canvas, const Model& model, const Layout& layout) {
    std::map<std::pair<replay::HostIndex, replay::HostIndex>, std::size_t> bundles;
    for (const auto& line : layout.lines) {
        const auto a = layout.slots[line.from_slot].host;
        const auto b = layout.slots[line.to_slot].host;
        ++bundles[{std::min(a, b), std::max(a, b)}];
    }
    for (const auto& [hosts, count] : bundles) {
        const HostBox* a = layout.box_of(hosts.first);
        const HostBox* b = layout.box_of(hosts.second);
        if (!a || !b) continue;
        const auto [p, q] = line_ends(a->rect, b->rect);
        const Route route = route_between(layout, p, q, hosts.first, hosts.second);
        const auto [label_s, label_e] = route.label_stretch();  // under the boxes it goes round
        const ImVec2 s = canvas.screen(label_s);
        const ImVec2 e = canvas.screen(label_e);
        const float width = std::clamp(2.0f * std::log2(static_cast<float>(count) + 1.0f), 2.0f, 28.0f);
        draw_route(canvas, route, IM_COL32(120, 200, 140, 150), width);
        const std::string label = std::to_string(count) + " connections " + model.world().hosts()[hosts.first].name + " <-> " +
                                  model.world().hosts()[hosts.second].name + " (zoom in for each 4-tuple)";
        const float w = text_width(label, 0.9f);
        const ImVec2 mid((s.x + e.x) / 2 - w / 2, (s.y + e.y) / 2 - width / 2 - ImGui::GetFontSize() - 4);
        canvas.draw->AddRectFilled(ImVec2(mid.x - 4, mid.y - 2), ImVec2(mid.x + w + 4, mid.y + ImGui::GetFontSize() + 2),
                                   IM_COL32(20, 22, 28, 230), 3.0f);
        text_at(canvas, mid, IM_COL32(220, 230, 220, 255), label, 0.9f);
    }
}

// The packets in flight the canvas shows resting on their links: where (screen) and what.
std::vector<std::pair<ImVec2, replay::PacketLabel>> resting_chips(const Canvas& canvas, const Model& model) {
    std::vector<std::pair<ImVec2, replay::PacketLabel>> chips;
    const auto current = model.current_event();
    for (const auto& pending : model.world().in_flight()) {
        if (current && pending.event == *current) continue;  // drawn as the current packet
        if (!model.timeline().fate_of(pending.event)) continue;  // the trace never says it arrived: not "in flight"
        const auto* info = model.timeline().packet_info(pending.event);
        const PacketPath path = packet_path(model.world(), model.layout(), model.timeline().event(pending.event), *info);
        if (path.valid) chips.emplace_back(canvas.screen(path.rest), path.label);
    }
    return chips;
}

Rect chip_screen_rect(ImVec2 at, replay::PacketLabel label) {
    return chip_rect(Vec2{at.x, at.y}, Vec2{text_width(std::string(to_string(label)), 0.85f), ImGui::GetFontSize() * 0.85f});
}

void draw_lines(const Canvas& canvas, const Model& model, const Layout& layout) {
    std::vector<const Line*> visible_lines;
    for (const auto& line : layout.lines) {
        if (!on_screen(canvas, line.route)) continue;
        if (visible_lines.size() > max_lines_drawn) break;
        visible_lines.push_back(&line);
    }
    if (visible_lines.size() > max_lines_drawn) {
        draw_bundles(canvas, model, layout);
        return;
    }
    const bool labels = visible_lines.size() <= 64 && canvas.scale() >= 0.45f;
    // The 4-tuple labels, placed clear of the packets resting on the links, of the hosts'
    // names and of each other (view/layout.hpp's connection_labels).
    std::vector<TupleLabel> placed;
    if (labels) {
        std::vector<Rect> chips;
        for (const auto& [at, label] : resting_chips(canvas, model)) chips.push_back(chip_screen_rect(at, label));
        std::vector<std::size_t> indices;
        for (const Line* line : visible_lines) indices.push_back(static_cast<std::size_t>(line - layout.lines.data()));
        placed = connection_labels(model.world(), layout, indices, canvas.to_screen(), ImGui::GetFontSize(),
                                   [](const std::string& text, float scale) { return text_width(text, scale); }, chips, chip_height(),
                                   Rect{canvas.origin.x, canvas.origin.y, canvas.size.x, canvas.size.y});
    }
    for (const Line* line : visible_lines) {
        const Rect& from = layout.slots[line->from_slot].rect;
        const Rect& to = layout.slots[line->to_slot].rect;
        const ImU32 colour = line->protocol == Protocol::tcp ? IM_COL32(120, 200, 140, 200) : IM_COL32(110, 180, 230, 200);
        if (std::abs(from.center().x - to.center().x) < 1) {
            const ImVec2 s = canvas.screen(line->route.front());
            const ImVec2 e = canvas.screen(line->route.back());
            const float bulge = loop_bulge(canvas.scale());
            canvas.draw->AddBezierCubic(s, ImVec2(s.x + bulge, s.y), ImVec2(e.x + bulge, e.y), e, colour, 2.0f);
        } else {
            draw_route(canvas, line->route, colour, 2.0f);
        }
        // A translated connection runs under its router; when a deeper box keeps it off the
        // router's border, a tick joins it to the router, so the way through the NAT shows.
        if (const HostBox* router = line->via ? layout.box_of(*line->via) : nullptr; router && line->route.count == 4) {
            const float x = router->rect.center().x;
            const float y = line->route.points[1].y;
            if (y > router->rect.bottom() + 1)
                canvas.draw->AddLine(canvas.screen(Vec2{x, router->rect.bottom()}), canvas.screen(Vec2{x, y}), colour, 1.5f);
            canvas.draw->AddCircleFilled(canvas.screen(Vec2{x, y}), 3.5f, colour);
        }
    }
    // Over every line, so no line crosses a label's text.
    for (const auto& label : placed) {
        const Rect& r = label.rect;
        canvas.draw->AddRectFilled(ImVec2(r.x, r.y), ImVec2(r.right(), r.bottom()), IM_COL32(20, 22, 28, 220), 3.0f);
        // A same-host or translated label has two lines; drawn one at a time, as text_at
        // escapes a newline. A translation's second line in the NAT table's colour.
        const auto split = label.text.find('\n');
        const bool translated = label.line < layout.lines.size() && layout.lines[label.line].far_tuple.has_value();
        text_at(canvas, ImVec2(r.x + 3, r.y + 1), IM_COL32(220, 230, 220, 255), label.text.substr(0, split), tuple_label_scale);
        if (split != std::string::npos)
            text_at(canvas, ImVec2(r.x + 3, r.y + 1 + ImGui::GetFontSize() * tuple_label_scale),
                    translated ? IM_COL32(200, 170, 240, 255) : IM_COL32(220, 230, 220, 255), label.text.substr(split + 1), tuple_label_scale);
    }
}

// ===========================================================================
// [SECTION] animation: packets and ephemeral ports
// ===========================================================================

void draw_packet_chip(const Canvas& canvas, ImVec2 at, replay::PacketLabel label, bool dim) {
    const std::string text = std::string(to_string(label));
    const Rect r = chip_rect(Vec2{at.x, at.y}, Vec2{text_width(text, 0.85f), ImGui::GetFontSize() * 0.85f});
    const float height = r.h;
    const ImVec2 a(r.x, r.y);
    const ImVec2 b(r.right(), r.bottom());
    ImU32 colour = style::packet_colour(label);
    if (dim) colour = (colour & 0x00FFFFFF) | 0x90000000;
    canvas.draw->AddRectFilled(a, b, colour, height / 2);
    canvas.draw->AddRect(a, b, IM_COL32(20, 20, 20, 255), height / 2);
    text_at(canvas, ImVec2(a.x + 5, a.y + 3), IM_COL32(15, 15, 20, 255), text, 0.85f);
}

// A red X where the packet stopped, labelled with what stopped it: a firewall's
// rule in the firewall's colour, or a loss no rule caused ("lost on the link").
void draw_drop_mark(const Canvas& canvas, const Layout& layout, Vec2 stop, const DropWords& words) {
    const ImVec2 at = canvas.screen(stop);
    const float r = 9;
    canvas.draw->AddCircleFilled(at, r + 3, IM_COL32(30, 10, 10, 230));
    canvas.draw->AddLine(ImVec2(at.x - r, at.y - r), ImVec2(at.x + r, at.y + r), IM_COL32(255, 70, 60, 255), 4.0f);
    canvas.draw->AddLine(ImVec2(at.x - r, at.y + r), ImVec2(at.x + r, at.y - r), IM_COL32(255, 70, 60, 255), 4.0f);
    const float zoom = std::max(canvas.scale(), 0.01f);  // the words keep their size on screen
    const Rect label = drop_label_rect(layout, stop, Vec2{text_width(words.text, 0.85f) / zoom, ImGui::GetFontSize() * 0.85f / zoom},
                                       r / zoom);
    text_at(canvas, canvas.screen_min(label), words.by_firewall ? style::firewall_colour : IM_COL32(235, 200, 200, 255),
            words.text, 0.85f);
}

void draw_current_packet(const Canvas& canvas, const Model& model, const ViewState& view) {
    const auto current = model.current_event();
    if (!current) return;
    const auto& event = model.timeline().event(*current);
    const auto* packet = std::get_if<trace::Packet>(&event.body);
    if (!packet) return;
    const auto* info = model.timeline().packet_info(*current);
    const PacketPath path = packet_path(model.world(), model.layout(), event, *info);
    if (!path.valid) return;
    const Vec2 at = packet_point(path, packet->kind, split_flight(model.timeline(), *current), static_cast<float>(view.playback.phase));
    // The path, faintly, so the eye knows where it goes.
    draw_route(canvas, path.stop_at ? path.route.until(*path.stop_at) : path.route, IM_COL32(255, 255, 255, 50), 1.5f);
    draw_packet_chip(canvas, canvas.screen(at), path.label, false);
    if (packet->kind == trace::PacketKind::dropped && view.playback.phase >= 0.95)
        draw_drop_mark(canvas, model.layout(), *path.stop, drop_words(*packet));
}

// At a router whose translation is the current event: the connection's 4-tuple as it came
// and as it leaves, under the router's box (view/nat_table.hpp).
void draw_nat_callout(const Canvas& canvas, const Model& model) {
    const auto callout = nat_callout(model);
    if (!callout) return;
    const HostBox* box = model.layout().box_of(callout->router);
    if (!box) return;
    const std::vector<std::string> lines = callout->lines();
    float width = 0;
    for (const auto& line : lines) width = std::max(width, text_width(line, 0.9f));
    const float line_h = ImGui::GetFontSize() * 0.9f + 3;
    // Under the router, below the boxes of its row, inside the canvas (view/layout.hpp).
    const Rect r = callout_rect(model.layout(), callout->router, Vec2{width + 12, static_cast<float>(lines.size()) * line_h + 8},
                                canvas.to_screen(), Rect{canvas.origin.x, canvas.origin.y, canvas.size.x, canvas.size.y},
                                ImGui::GetFontSize() + 12);
    const ImVec2 a(r.x, r.y);
    const ImVec2 b(r.right(), r.bottom());
    canvas.draw->AddRectFilled(a, b, IM_COL32(30, 28, 45, 235), 4.0f);
    canvas.draw->AddRect(a, b, style::nat_colour, 4.0f, 0, 2.0f);
    for (std::size_t i = 0; i < lines.size(); ++i)
        text_at(canvas, ImVec2(a.x + 6, a.y + 4 + static_cast<float>(i) * line_h), i == 0 ? style::nat_colour : IM_COL32(230, 230, 240, 255),
                lines[i], 0.9f);
}

void draw_in_flight(const Canvas& canvas, const Model& model) {
    for (const auto& [at, label] : resting_chips(canvas, model)) draw_packet_chip(canvas, at, label, true);
}

void draw_ephemeral_pick(const Canvas& canvas, const Model& model, const ViewState& view) {
    const auto current = model.current_event();
    if (!current) return;
    const auto& event = model.timeline().event(*current);
    const auto* assigned = std::get_if<trace::EphemeralAssigned>(&event.body);
    if (!assigned) return;
    const auto host = model.world().find_host(event.host);
    if (!host) return;
    const HostBox* box = model.layout().box_of(*host);
    const auto slot = model.layout().slot_of(replay::SocketRef{*host, assigned->socket});
    if (!box || !slot || box->pool_strip.w <= 0) return;
    const Vec2 from{pool_x(box->pool_strip, PortRange{assigned->range_low, assigned->range_high}, assigned->port),
                    box->pool_strip.center().y};
    const Vec2 to = model.layout().slots[*slot].rect.center();
    const auto t = static_cast<float>(view.playback.phase);
    const ImVec2 at = canvas.screen(Vec2{from.x + t * (to.x - from.x), from.y + t * (to.y - from.y)});
    canvas.draw->AddLine(canvas.screen(from), at, IM_COL32(255, 220, 80, 160), 2.0f);
    const std::string label = std::to_string(assigned->port);
    const float width = text_width(label) + 10;
    canvas.draw->AddRectFilled(ImVec2(at.x - width / 2, at.y - 10), ImVec2(at.x + width / 2, at.y + 10), IM_COL32(255, 220, 80, 255), 4.0f);
    text_at(canvas, ImVec2(at.x - width / 2 + 5, at.y - ImGui::GetFontSize() / 2), IM_COL32(20, 20, 20, 255), label);
}

// ===========================================================================
// [SECTION] interaction and overlay
// ===========================================================================

void socket_tooltip(const Model& model, const Slot& slot) {
    ImGui::BeginTooltip();
    const auto& host = model.world().hosts()[slot.host];
    if (slot.observed) {
        style::text(host.name + "  " + std::string(to_string(slot.protocol)) + " " + slot.local->to_string());
        ImGui::TextUnformatted("An endpoint seen in the capture's packets.");
    } else if (const auto* socket = model.world().find_socket(slot.ref)) {
        style::text(host.name + ", socket " + std::to_string(socket->id.value) + " (" + std::string(to_string(socket->protocol)) + ")");
        style::text("local:  " + (socket->local ? socket->local->to_string() : std::string("not bound")));
        style::text("remote: " + (socket->remote ? socket->remote->to_string() : std::string("none")));
        style::text("state:  " + std::string(socket->state_name()));
        if (socket->error) style::text_coloured(IM_COL32(255, 90, 80, 255), "last call failed with " + *socket->error);
        if (socket->refused_bind)
            style::text_coloured(IM_COL32(255, 90, 80, 255), "bind() to " + socket->refused_bind->to_string() + " was refused: no port held");
        if (socket->listener && socket->awaiting_accept)
            style::text("made by listening socket " + std::to_string(socket->listener->value) + "; accept() has not returned it yet");
        else if (socket->listener)
            style::text("accepted from listening socket " + std::to_string(socket->listener->value));
        if (socket->how)
            style::text(std::string("port chosen: ") + (*socket->how == trace::BindHow::explicit_port ? "explicitly"
                                                        : *socket->how == trace::BindHow::ephemeral     ? "by the OS (ephemeral)"
                                                                                                        : "by the OS (bind to port 0)"));
        style::text("since event " + std::to_string(socket->created_at));
        ImGui::TextDisabled("click to select (state diagram)");
    }
    ImGui::EndTooltip();
}

void draw_legend(const Canvas& canvas) {
    const replay::SlotState states[] = {replay::SlotState::bound,      replay::SlotState::listening, replay::SlotState::connecting,
                                       replay::SlotState::established, replay::SlotState::closing,   replay::SlotState::time_wait,
                                       replay::SlotState::closed};
    float x = canvas.origin.x + 8;
    const float y = canvas.origin.y + canvas.size.y - ImGui::GetFontSize() - 8;
    for (const auto state : states) {
        const std::string name(to_string(state));
        canvas.draw->AddRectFilled(ImVec2(x, y + 2), ImVec2(x + 12, y + 14), style::slot_colour(state), 2.0f);
        text_at(canvas, ImVec2(x + 16, y), IM_COL32(200, 200, 210, 255), name, 0.9f);
        x += 16 + text_width(name, 0.9f) + 12;
    }
}

void handle_input(const Model& model, ViewState& view, const Canvas& canvas) {
    ImGui::SetCursorScreenPos(canvas.origin);
    ImGui::InvisibleButton("canvas", ImVec2(std::max(canvas.size.x, 1.0f), std::max(canvas.size.y, 1.0f)),
                           ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight | ImGuiButtonFlags_MouseButtonMiddle);
    const bool hovered = ImGui::IsItemHovered();
    const ImGuiIO& io = ImGui::GetIO();
    const Vec2 origin{canvas.origin.x, canvas.origin.y};
    if (ImGui::IsItemActive() && (ImGui::IsMouseDragging(ImGuiMouseButton_Left) || ImGui::IsMouseDragging(ImGuiMouseButton_Right) ||
                                  ImGui::IsMouseDragging(ImGuiMouseButton_Middle))) {
        view.camera.pan.x -= io.MouseDelta.x / view.camera.zoom;
        view.camera.pan.y -= io.MouseDelta.y / view.camera.zoom;
        view.camera.follow_fit = false;
    }
    if (hovered && io.MouseWheel != 0)
        zoom_at(view.camera, std::pow(1.15f, io.MouseWheel), Vec2{io.MousePos.x, io.MousePos.y}, origin);
    if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) view.camera.follow_fit = true;

    if (!hovered) return;
    const Vec2 point = view.camera.to_canvas(Vec2{io.MousePos.x, io.MousePos.y}, origin);
    const auto slot = model.layout().slot_at(point);
    if (!slot) return;
    const Slot& s = model.layout().slots[*slot];
    socket_tooltip(model, s);
    const bool clicked = ImGui::IsMouseReleased(ImGuiMouseButton_Left) &&
                         io.MouseDragMaxDistanceSqr[ImGuiMouseButton_Left] < io.MouseDragThreshold * io.MouseDragThreshold;
    if (clicked && !s.observed)
        view.selected_socket = s.ref;
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) {
        ImGui::TextWrapped("Open a trace (.jsonl), a capture (.pcap) or a simulator scenario from the File menu, "
                           "or drop a file on the window.");
        return;
    }
    Canvas canvas;
    canvas.draw = ImGui::GetWindowDrawList();
    canvas.origin = ImGui::GetCursorScreenPos();
    canvas.size = ImGui::GetContentRegionAvail();
    if (canvas.size.x < 10 || canvas.size.y < 10) return;

    const Layout& layout = model.layout();
    if (view.camera.follow_fit) {
        Camera fitted = fit(layout.bounds, Vec2{canvas.size.x, canvas.size.y - ImGui::GetFontSize() - 12});
        fitted.follow_fit = true;
        view.camera = fitted;
    }
    canvas.camera = view.camera;

    canvas.draw->PushClipRect(canvas.origin, ImVec2(canvas.origin.x + canvas.size.x, canvas.origin.y + canvas.size.y), true);
    canvas.draw->AddRectFilled(canvas.origin, ImVec2(canvas.origin.x + canvas.size.x, canvas.origin.y + canvas.size.y),
                               IM_COL32(18, 20, 26, 255));
    for (const auto& box : layout.hosts)
        if (canvas.visible(box.rect)) draw_host(canvas, model, box);
    draw_lines(canvas, model, layout);
    for (const auto& box : layout.hosts) {
        if (!canvas.visible(box.rect)) continue;
        for (const std::size_t s : box.slots)
            if (canvas.visible(layout.slots[s].rect)) draw_slot(canvas, model, view, layout.slots[s]);
        draw_pool_strip(canvas, model, box);
    }
    draw_in_flight(canvas, model);
    draw_ephemeral_pick(canvas, model, view);
    draw_nat_callout(canvas, model);
    draw_current_packet(canvas, model, view);
    draw_legend(canvas);
    canvas.draw->PopClipRect();

    handle_input(model, view, canvas);
}

}  // namespace portlab::viz::topology_panel
