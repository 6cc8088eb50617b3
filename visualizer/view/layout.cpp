#include "view/layout.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <string>

namespace portlab::viz {

std::optional<std::size_t> Layout::slot_of(replay::SocketRef ref) const {
    const auto found = by_socket.find(ref);
    if (found == by_socket.end()) return std::nullopt;
    return found->second;
}

std::optional<std::size_t> Layout::observed_slot(replay::HostIndex host, Protocol protocol,
                                                 const Endpoint& endpoint) const {
    const auto found = by_endpoint.find({host, protocol, endpoint});
    if (found == by_endpoint.end()) return std::nullopt;
    return found->second;
}

const HostBox* Layout::box_of(replay::HostIndex host) const {
    for (const auto& box : hosts)
        if (box.host == host) return &box;
    return nullptr;
}

std::optional<std::size_t> Layout::slot_at(Vec2 point) const {
    for (const auto& box : hosts) {
        if (!box.rect.contains(point)) continue;
        for (const std::size_t s : box.slots)
            if (slots[s].rect.contains(point)) return s;
    }
    return std::nullopt;
}

namespace {

// Columns so a host's slots form a block a few times taller than wide.
std::size_t columns_for(std::size_t count) {
    return std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(count) / 4.0))));
}

void add_observed(Layout& layout, const replay::State& world, Protocol protocol, const Endpoint& endpoint) {
    // Captures name hosts by address (replay::trace_from_capture).
    const auto host = world.find_host(endpoint.address.to_string());
    if (!host || layout.by_endpoint.count({*host, protocol, endpoint})) return;
    Slot slot;
    slot.observed = true;
    slot.host = *host;
    slot.protocol = protocol;
    slot.local = endpoint;
    slot.state = replay::SlotState::established;
    layout.by_endpoint.emplace(std::tuple{*host, protocol, endpoint}, layout.slots.size());
    layout.slots.push_back(slot);
}

}  // namespace

namespace {

// One host's cells while the plan is made: the live sockets' cells by socket id, the
// cells freed since (lowest first), and how many cells were ever handed out.
struct HostCells {
    struct Held {
        std::size_t created_at = 0;
        std::size_t cell = 0;
    };
    std::map<trace::SocketId, Held> live;
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> free;
    std::size_t next = 0;

    [[nodiscard]] std::size_t take() {
        if (free.empty()) return next++;
        const std::size_t cell = free.top();
        free.pop();
        return cell;
    }
};

// Brings one socket's cell in line with the world: a socket gone (or replaced under its
// id) gives its cell back, a socket new to the plan takes the lowest cell free.
void settle(SlotPlan& plan, replay::HostIndex h, HostCells& cells, trace::SocketId id, const replay::Host& host) {
    const auto now = host.sockets.find(id);
    auto held = cells.live.find(id);
    if (held != cells.live.end() && (now == host.sockets.end() || now->second.created_at != held->second.created_at)) {
        cells.free.push(held->second.cell);
        cells.live.erase(held);
        held = cells.live.end();
    }
    if (now == host.sockets.end() || held != cells.live.end()) return;
    const std::size_t cell = cells.take();
    cells.live.emplace(id, HostCells::Held{now->second.created_at, cell});
    plan.cells.emplace(std::pair{h, now->second.created_at}, cell);
    plan.hosts[h].capacity = std::max(plan.hosts[h].capacity, cell + 1);
}

}  // namespace

SlotPlan make_slot_plan(const replay::Timeline& timeline) {
    SlotPlan plan;
    replay::State world;
    std::vector<HostCells> per_host;
    for (std::size_t i = 0; i < timeline.size(); ++i) {
        const trace::Event& event = timeline.event(i);
        world.apply(event);
        const auto& hosts = world.hosts();
        if (plan.hosts.size() < hosts.size()) {
            plan.hosts.resize(hosts.size());
            per_host.resize(hosts.size());
        }
        const auto h = world.find_host(event.host);
        if (!h) continue;
        const replay::Host& host = hosts[*h];
        plan.hosts[*h].has_pool = plan.hosts[*h].has_pool || host.pool.range.has_value();
        // An event changes the sockets of its own host only, and of those only the one it
        // names (socket_created, child_created, accepted bring it; closed, a state change or
        // a timer's end take it away): one look per event, so the plan is one linear pass.
        HostCells& cells = per_host[*h];
        if (const auto named = trace::socket_of(event.body)) settle(plan, *h, cells, *named, host);
        if (host.sockets.size() == cells.live.size()) continue;
        // Something else came or went (no event does this today): look at every socket.
        std::vector<trace::SocketId> ids;
        for (const auto& [id, held] : cells.live) ids.push_back(id);
        for (const auto& [id, socket] : host.sockets) ids.push_back(id);
        for (const trace::SocketId id : ids) settle(plan, *h, cells, id, host);
    }
    return plan;
}

Layout compute_layout(const replay::State& world, std::span<const Conversation> observed, std::size_t position,
                      const LayoutMetrics& m, const SlotPlan* plan) {
    Layout layout;
    const auto& hosts = world.hosts();

    // Slots: sockets in id order per host, then endpoints seen in a capture.
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        for (const auto& [id, socket] : hosts[h].sockets) {
            Slot slot;
            slot.host = h;
            slot.ref = replay::SocketRef{h, id};
            slot.protocol = socket.protocol;
            slot.local = socket.local;
            slot.state = socket.slot_state();
            slot.error = socket.error;
            slot.refused_bind = socket.refused_bind;
            layout.by_socket.emplace(slot.ref, layout.slots.size());
            layout.slots.push_back(slot);
        }
    }
    for (const auto& conversation : observed) {
        if (conversation.first_index >= position) continue;
        add_observed(layout, world, conversation.protocol, conversation.a);
        add_observed(layout, world, conversation.protocol, conversation.b);
    }

    std::vector<std::vector<std::size_t>> slots_of_host(hosts.size());
    for (std::size_t s = 0; s < layout.slots.size(); ++s) slots_of_host[layout.slots[s].host].push_back(s);

    // Each slot's cell in its box: the plan's, or its place in id order.
    std::vector<std::size_t> cell_of(layout.slots.size(), 0);
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        const std::size_t planned = plan && h < plan->hosts.size() ? plan->hosts[h].capacity : 0;
        std::size_t unplanned = 0;
        for (std::size_t i = 0; i < slots_of_host[h].size(); ++i) {
            const std::size_t s = slots_of_host[h][i];
            cell_of[s] = i;
            if (!plan) continue;
            const auto* socket = layout.slots[s].observed ? nullptr : world.find_socket(layout.slots[s].ref);
            const auto cell = socket ? plan->cells.find({h, socket->created_at}) : plan->cells.end();
            cell_of[s] = cell != plan->cells.end() ? cell->second : planned + unplanned++;
        }
    }

    // Box sizes: for the most sockets the host will hold when there is a plan (every host
    // of the trace, so the row does not move as hosts appear), else for those it holds.
    const std::size_t host_count = plan ? std::max(plan->hosts.size(), hosts.size()) : hosts.size();
    std::vector<Vec2> sizes(host_count);
    std::vector<std::size_t> cells_of_host(host_count, 0);
    for (replay::HostIndex h = 0; h < host_count; ++h) {
        std::size_t count = h < hosts.size() ? slots_of_host[h].size() : 0;
        bool has_pool = h < hosts.size() && hosts[h].pool.range.has_value();
        if (plan && h < plan->hosts.size()) {
            std::size_t highest = 0;
            if (h < hosts.size())
                for (const std::size_t s : slots_of_host[h]) highest = std::max(highest, cell_of[s] + 1);
            count = std::max({count, plan->hosts[h].capacity, highest});
            has_pool = has_pool || plan->hosts[h].has_pool;
        }
        cells_of_host[h] = count;
        const std::size_t columns = columns_for(count);
        const std::size_t rows = count == 0 ? 0 : (count + columns - 1) / columns;
        const float w = std::max(2 * m.padding + static_cast<float>(columns) * (m.slot_w + m.gap) - m.gap, m.slot_w + 2 * m.padding);
        const float h_box = m.header_h + static_cast<float>(rows) * (m.slot_h + m.gap) + m.padding + (has_pool ? m.pool_h + m.gap : 0.0f);
        sizes[h] = Vec2{w, std::max(h_box, m.header_h + m.slot_h)};
    }
    layout.hosts.resize(hosts.size());
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        layout.hosts[h].host = h;
        layout.hosts[h].slots = slots_of_host[h];
        layout.hosts[h].rect.w = sizes[h].x;
        layout.hosts[h].rect.h = sizes[h].y;
    }

    // Placement: a row of up to four hosts, else a square-ish grid. A capture's hosts are
    // its addresses, with no path between them to follow: past two they go two to a row, so
    // a line between two of them crosses no third box and the canvas is not zoomed out of
    // reading (four in a row need 1,700 units: 0.42 in the topology at 1280x720).
    const bool capture = !observed.empty();
    const std::size_t per_row = capture && host_count > 2 ? 2
                                : host_count <= 4       ? std::max<std::size_t>(1, host_count)
                                                        : static_cast<std::size_t>(std::ceil(std::sqrt(host_count)));
    std::vector<float> column_width(per_row, 0.0f);
    std::vector<float> row_height((host_count + per_row - 1) / std::max<std::size_t>(1, per_row) + 1, 0.0f);
    for (replay::HostIndex h = 0; h < host_count; ++h) {
        column_width[h % per_row] = std::max(column_width[h % per_row], sizes[h].x);
        row_height[h / per_row] = std::max(row_height[h / per_row], sizes[h].y);
    }
    // The gap grows with the boxes, so lines between big hosts stay visible when zoomed out.
    const float widest = column_width.empty() ? 0.0f : *std::max_element(column_width.begin(), column_width.end());
    const float gap_x = std::max(m.host_gap_x, 0.4f * widest);
    for (replay::HostIndex h = 0; h < host_count; ++h) {
        float x = 0;
        for (std::size_t c = 0; c < h % per_row; ++c) x += column_width[c] + gap_x;
        float y = 0;
        for (std::size_t r = 0; r < h / per_row; ++r) y += row_height[r] + m.host_gap_y;
        // The bounds hold the hosts still to come too: the camera fits once.
        layout.bounds.w = std::max(layout.bounds.w, x + sizes[h].x);
        layout.bounds.h = std::max(layout.bounds.h, y + sizes[h].y);
        if (h >= hosts.size()) continue;
        auto& box = layout.hosts[h];
        box.rect.x = x;
        box.rect.y = y;
        box.header = Rect{x, y, box.rect.w, m.header_h};
        const std::size_t columns = columns_for(cells_of_host[h]);
        for (const std::size_t s : box.slots) {
            const std::size_t cell = cell_of[s];
            const float sx = x + m.padding + static_cast<float>(cell % columns) * (m.slot_w + m.gap);
            const float sy = y + m.header_h + static_cast<float>(cell / columns) * (m.slot_h + m.gap);
            layout.slots[s].rect = Rect{sx, sy, m.slot_w, m.slot_h};
        }
        // (A plan keeps room for a pool still to come; the strip is drawn once a range is reported.)
        if (hosts[h].pool.range)
            box.pool_strip = Rect{x + m.padding, box.rect.bottom() - m.padding - m.pool_h, box.rect.w - 2 * m.padding, m.pool_h};
    }

    // Lines: a connection's two sockets, or a capture's two endpoints.
    for (const auto& connection : world.connections()) {
        if (!connection.a || !connection.b) continue;
        const auto a = layout.slot_of(*connection.a);
        const auto b = layout.slot_of(*connection.b);
        if (a && b) layout.lines.push_back(Line{*a, *b, connection.protocol, connection.tuple});
    }
    for (const auto& conversation : observed) {
        if (conversation.first_index >= position) continue;
        const auto host_a = world.find_host(conversation.a.address.to_string());
        const auto host_b = world.find_host(conversation.b.address.to_string());
        if (!host_a || !host_b) continue;
        const auto a = layout.observed_slot(*host_a, conversation.protocol, conversation.a);
        const auto b = layout.observed_slot(*host_b, conversation.protocol, conversation.b);
        if (a && b) layout.lines.push_back(Line{*a, *b, conversation.protocol, FourTuple{conversation.a, conversation.b}});
    }
    return layout;
}

float inspector_min_height(float line_h, float frame_h) noexcept {
    const float text = frame_h + 4 * line_h + 8;  // title bar, event line, summary (two lines), checksum
    const float tree_rows = 5 * line_h + 8;
    const float hex_rows = 3 * line_h + 8;
    // The tree gets inspector_tree_share of what is left under the text: room for both.
    return text + std::max(tree_rows / inspector_tree_share, hex_rows / (1 - inspector_tree_share));
}

WindowRects window_layout(Vec2 display, const WindowNeeds& needs) noexcept {
    WindowRects r;
    const float y0 = needs.top;
    const float body_h = std::max(100.0f, display.y - y0 - needs.timeline_h);
    const float left_w = std::floor(display.x * 0.60f);
    const float right_w = display.x - left_w;
    const float canvas_h = std::floor(body_h * 0.60f);
    // The right column: 55:45, then each panel's least readable height, the state panel's first.
    float inspector_h = std::floor(body_h * 0.55f);
    if (body_h - inspector_h < needs.states_min_h) inspector_h = std::max(body_h - needs.states_min_h, 0.0f);
    if (inspector_h < needs.inspector_min_h) inspector_h = std::min(needs.inspector_min_h, std::max(body_h - needs.states_min_h, body_h * 0.45f));
    r.topology = Rect{0, y0, left_w, canvas_h};
    r.tables = Rect{0, y0 + canvas_h, left_w, body_h - canvas_h};
    r.inspector = Rect{left_w, y0, right_w, inspector_h};
    r.states = Rect{left_w, y0 + inspector_h, right_w, body_h - inspector_h};
    r.timeline = Rect{0, y0 + body_h, display.x, std::max(display.y - y0 - body_h, 0.0f)};
    return r;
}

std::pair<Vec2, Vec2> line_ends(const Rect& a, const Rect& b) noexcept {
    const bool a_left = a.center().x <= b.center().x;
    if (std::abs(a.center().x - b.center().x) < 1) {  // same column (loopback): go round the right side
        return {Vec2{a.right(), a.center().y}, Vec2{b.right(), b.center().y}};
    }
    return {Vec2{a_left ? a.right() : a.x, a.center().y}, Vec2{a_left ? b.x : b.right(), b.center().y}};
}

Rect chip_rect(Vec2 at, Vec2 text_size) noexcept {
    const float w = text_size.x + 10;
    const float h = text_size.y + 6;
    return Rect{at.x - w / 2, at.y - h / 2, w, h};
}

Rect tuple_label_rect(Vec2 s, Vec2 e, Vec2 text_size, float chip_h, bool below) noexcept {
    const float w = text_size.x + 6;
    const float h = text_size.y + 3;
    const Vec2 mid{(s.x + e.x) / 2, (s.y + e.y) / 2};
    const float x0 = mid.x - w / 2;
    const float x1 = mid.x + w / 2;
    // The line's highest point under the label: at one of the label's ends (or the line's).
    const auto y_at = [&](float x) {
        if (std::abs(e.x - s.x) < 1e-3f) return std::min(s.y, e.y);
        const float t = std::clamp((x - s.x) / (e.x - s.x), 0.0f, 1.0f);
        return s.y + t * (e.y - s.y);
    };
    if (below) {
        const float bottom_of_line = std::max(y_at(x0), y_at(x1));
        return Rect{x0, bottom_of_line + chip_h / 2 + 3, w, h};
    }
    const float top_of_line = std::min(y_at(x0), y_at(x1));
    const float bottom = top_of_line - chip_h / 2 - 3;
    return Rect{x0, bottom - h, w, h};
}

namespace {

// Where a same-host line's label may go, in order of preference.
std::vector<Rect> same_host_places(const LabelledLine& line) {
    const float w = line.text_size.x + 6;
    const float h = line.text_size.y + 3;
    const float mid_y = (line.s.y + line.e.y) / 2;
    std::vector<Rect> places;
    if (std::abs(line.s.x - line.e.x) < 1) places.push_back(Rect{line.s.x + 0.75f * line.bulge + 4, mid_y - h / 2, w, h});
    for (int k = 0; k < 8; ++k) places.push_back(Rect{line.box_right + 6, mid_y - h / 2 + static_cast<float>(k) * (h + 2), w, h});
    for (int k = 0; k < 8; ++k) places.push_back(Rect{line.box_left - 6 - w, mid_y - h / 2 + static_cast<float>(k) * (h + 2), w, h});
    return places;
}

}  // namespace

std::vector<Rect> place_tuple_labels(std::span<const LabelledLine> lines, std::span<const Rect> chips, float chip_h,
                                     std::span<const Rect> keep_clear, std::optional<Rect> within) {
    std::vector<Rect> placed;
    placed.reserve(lines.size());
    for (const auto& line : lines) {
        const auto clear = [&](const Rect& r) {
            const auto over = [&](const Rect& c) { return c.overlaps(r); };
            const bool inside = !within || (r.x >= within->x && r.y >= within->y && r.right() <= within->right() && r.bottom() <= within->bottom());
            return inside && std::none_of(chips.begin(), chips.end(), over) && std::none_of(keep_clear.begin(), keep_clear.end(), over) &&
                   std::none_of(placed.begin(), placed.end(), over);
        };
        const Vec2 mid{(line.s.x + line.e.x) / 2, (line.s.y + line.e.y) / 2};
        const std::vector<Rect> places =
            line.same_host ? same_host_places(line)
                           : std::vector<Rect>{tuple_label_rect(line.s, line.e, line.text_size, chip_h),
                                               tuple_label_rect(line.s, line.e, line.text_size, chip_h, true),
                                               tuple_label_rect(line.s, mid, line.text_size, chip_h),
                                               tuple_label_rect(line.s, mid, line.text_size, chip_h, true),
                                               tuple_label_rect(mid, line.e, line.text_size, chip_h),
                                               tuple_label_rect(mid, line.e, line.text_size, chip_h, true)};
        const auto clear_of_avoided = [&](const Rect& r) {
            return clear(r) && std::none_of(line.avoid.begin(), line.avoid.end(), [&](const Rect& c) { return c.overlaps(r); });
        };
        const auto found = std::find_if(places.begin(), places.end(), clear_of_avoided);
        placed.push_back(found != places.end() ? *found : places.front());
    }
    return placed;
}

Rect callout_rect(const Layout& layout, replay::HostIndex host, Vec2 size, const ToScreen& to_screen, const Rect& canvas,
                  float reserved) noexcept {
    const HostBox* box = layout.box_of(host);
    if (!box) return Rect{canvas.x, canvas.y, size.x, size.y};
    float row_bottom = box->rect.bottom();
    for (const auto& other : layout.hosts)
        if (other.rect.y < box->rect.bottom() && other.rect.bottom() > box->rect.y) row_bottom = std::max(row_bottom, other.rect.bottom());
    const Vec2 under = to_screen(Vec2{box->rect.center().x, row_bottom});
    const float lowest = canvas.bottom() - reserved - size.y;
    const float left = std::clamp(under.x - size.x / 2, canvas.x, std::max(canvas.x, canvas.right() - size.x));
    return Rect{left, std::max(canvas.y, std::min(under.y + 6, lowest)), size.x, size.y};
}

HeaderText header_text(const Rect& box_px, const Rect& header_px, float zoom, float font_px) noexcept {
    HeaderText text;
    text.shown = header_px.bottom() - box_px.y >= 14;
    const float scale = std::min(1.3f, (header_px.bottom() - box_px.y) / (2.6f * font_px));
    text.name_at = Vec2{box_px.x + 8 * zoom, box_px.y + 4 * zoom};
    text.name_scale = scale * 1.15f;
    text.addresses_at = Vec2{text.name_at.x, text.name_at.y + font_px * scale * 1.2f};
    text.addresses_scale = scale * 0.9f;
    return text;
}

Rect host_name_rect(const HeaderText& header, float name_width_at_font, float font_px) noexcept {
    return Rect{header.name_at.x, header.name_at.y, name_width_at_font * header.name_scale, font_px * header.name_scale};
}

std::vector<TupleLabel> connection_labels(const replay::State& world, const Layout& layout, std::span<const std::size_t> lines,
                                          const ToScreen& to_screen, float font_px, const TextWidth& text_width,
                                          std::span<const Rect> chips, float chip_h, std::optional<Rect> canvas) {
    std::vector<TupleLabel> labels;
    std::vector<LabelledLine> labelled;
    std::vector<Rect> keep_clear;
    std::vector<bool> loops_on(layout.hosts.size(), false);
    for (const std::size_t i : lines) {
        const Line& line = layout.lines[i];
        const Slot& from = layout.slots[line.from_slot];
        const Slot& to = layout.slots[line.to_slot];
        const auto [p, q] = line_ends(from.rect, to.rect);
        const bool same_host = from.host == to.host;
        const std::string first = line.tuple.local.to_string() + " ->";
        const std::string second = line.tuple.remote.to_string();
        std::string text = first + (same_host ? "\n" : " ") + second;
        LabelledLine entry{to_screen(p), to_screen(q), Vec2{text_width(text, tuple_label_scale), font_px * tuple_label_scale}};
        if (same_host) {
            entry.text_size = Vec2{std::max(text_width(first, tuple_label_scale), text_width(second, tuple_label_scale)),
                                   2 * font_px * tuple_label_scale};
            entry.same_host = true;
            entry.bulge = loop_bulge(to_screen.zoom);
            if (const HostBox* box = layout.box_of(from.host)) {
                entry.box_right = to_screen(box->rect).right();
                entry.box_left = to_screen(box->rect).x;
            }
            if (from.host < loops_on.size()) loops_on[from.host] = true;
        } else {
            for (const auto& box : layout.hosts)
                if (box.host != from.host && box.host != to.host) entry.avoid.push_back(to_screen(box.rect));
        }
        labelled.push_back(entry);
        labels.push_back(TupleLabel{i, std::move(text), {}});
    }
    for (const auto& box : layout.hosts) {
        const HeaderText header = header_text(to_screen(box.rect), to_screen(box.header), to_screen.zoom, font_px);
        if (header.shown && box.host < world.hosts().size()) {
            keep_clear.push_back(host_name_rect(header, text_width(world.hosts()[box.host].name, 1.0f), font_px));
            keep_clear.push_back(to_screen(box.header));  // the addresses under the name too
        }
        if (box.host < loops_on.size() && loops_on[box.host])
            for (const std::size_t s : box.slots) keep_clear.push_back(to_screen(layout.slots[s].rect));
    }
    const auto rects = place_tuple_labels(labelled, chips, chip_h, keep_clear, canvas);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i].rect = rects[i];
    return labels;
}

std::string host_addresses_text(const replay::Host& host) {
    std::string text;
    for (const auto& address : host.addresses) text += (text.empty() ? "" : "  ") + address.to_string();
    if (!text.empty()) return text;
    std::string wildcards;
    for (const IpAddress& any : {IpAddress::any_v4(), IpAddress::any_v6()}) {
        const bool bound = std::any_of(host.sockets.begin(), host.sockets.end(), [&](const auto& entry) {
            return entry.second.local && entry.second.local->address == any;
        });
        if (bound) wildcards += (wildcards.empty() ? "" : " and ") + any.to_string();
    }
    return wildcards.empty() ? "" : "(only the wildcard " + wildcards + " bound so far)";
}

bool has_firewall(const replay::State& world, replay::HostIndex host) {
    if (host < world.hosts().size() && !world.hosts()[host].rules.empty()) return true;
    return std::any_of(world.rule_hits().begin(), world.rule_hits().end(),
                       [&](const auto& hit) { return hit.first.first == host; });
}

float pool_x(const Rect& strip, PortRange range, Port port) noexcept {
    if (range.size() == 0) return strip.x;
    const float share = static_cast<float>(std::clamp<int>(port - range.low, 0, static_cast<int>(range.size()) - 1)) /
                        static_cast<float>(range.size());
    return strip.x + share * strip.w;
}

std::optional<Vec2> entry_point(Vec2 a, Vec2 b, const Rect& r) noexcept {
    // Liang-Barsky clipping: the smallest t in [0, 1] where a + t(b - a) is inside.
    float t0 = 0;
    float t1 = 1;
    const float dx = b.x - a.x;
    const float dy = b.y - a.y;
    const float p[4] = {-dx, dx, -dy, dy};
    const float q[4] = {a.x - r.x, r.right() - a.x, a.y - r.y, r.bottom() - a.y};
    for (int i = 0; i < 4; ++i) {
        if (p[i] == 0) {
            if (q[i] < 0) return std::nullopt;
            continue;
        }
        const float t = q[i] / p[i];
        if (p[i] < 0) t0 = std::max(t0, t);
        else t1 = std::min(t1, t);
    }
    if (t0 > t1) return std::nullopt;
    return Vec2{a.x + t0 * dx, a.y + t0 * dy};
}

namespace {

std::optional<replay::HostIndex> resolve_host(const replay::State& world, const std::optional<std::string>& name,
                                             const std::optional<Endpoint>& endpoint) {
    if (name)
        if (auto host = world.find_host(*name)) return host;
    if (endpoint) return world.host_with_address(endpoint->address);
    return std::nullopt;
}

std::optional<Vec2> slot_point(const replay::State& world, const Layout& layout, std::optional<replay::HostIndex> host,
                               const replay::PacketInfo& info, const std::optional<Endpoint>& local,
                               const std::optional<Endpoint>& remote) {
    if (!host) return std::nullopt;
    if (info.protocol && local && remote) {
        if (const auto ref = world.socket_for(*host, *info.protocol, *local, *remote))
            if (const auto slot = layout.slot_of(*ref)) return layout.slots[*slot].rect.center();
        if (const auto slot = layout.observed_slot(*host, *info.protocol, *local))
            return layout.slots[*slot].rect.center();
    }
    if (const HostBox* box = layout.box_of(*host)) return box->header.center();
    return std::nullopt;
}

// Halfway along the stretch of the straight line between the two hosts' boxes
// (the whole line's middle when both ends are on one host or a box is unknown).
Vec2 link_middle(const Layout& layout, const PacketPath& path) {
    const Vec2 middle{(path.from.x + path.to.x) / 2, (path.from.y + path.to.y) / 2};
    if (!path.from_host || !path.to_host || *path.from_host == *path.to_host) return middle;
    const HostBox* sender = layout.box_of(*path.from_host);
    const HostBox* receiver = layout.box_of(*path.to_host);
    if (!sender || !receiver) return middle;
    const auto leaves = entry_point(path.to, path.from, sender->rect);
    const auto arrives = entry_point(path.from, path.to, receiver->rect);
    if (!leaves || !arrives) return middle;
    return Vec2{(leaves->x + arrives->x) / 2, (leaves->y + arrives->y) / 2};
}

}  // namespace

PacketPath packet_path(const replay::State& world, const Layout& layout, const trace::Event& event,
                       const replay::PacketInfo& info) {
    PacketPath path;
    const auto* packet = std::get_if<trace::Packet>(&event.body);
    if (!packet) return path;
    path.label = info.label;
    const auto event_host = world.find_host(event.host);
    path.from_host = resolve_host(world, packet->from_host, info.source);
    path.to_host = resolve_host(world, packet->to_host, info.destination);
    if (!path.from_host) path.from_host = packet->kind == trace::PacketKind::sent ? event_host : std::nullopt;
    if (!path.to_host) path.to_host = packet->kind == trace::PacketKind::delivered ? event_host : path.from_host;
    if (!path.from_host) path.from_host = path.to_host;

    const auto from = slot_point(world, layout, path.from_host, info, info.source, info.destination);
    const auto to = slot_point(world, layout, path.to_host, info, info.destination, info.source);
    if (!from || !to) return path;
    path.from = *from;
    path.to = *to;
    path.valid = true;

    path.rest = link_middle(layout, path);
    if (packet->kind == trace::PacketKind::dropped) {
        // Lost on the link: where it rested in flight, touching no box. Else it
        // stops where it meets the dropping host's box: on the way in at the
        // receiver, on the way out at the sender, or at a router in between.
        const HostBox* box = event_host ? layout.box_of(*event_host) : nullptr;
        path.left_sender = packet->cause == trace::DropCause::link || event_host != path.from_host;
        if (packet->cause == trace::DropCause::link)
            path.stop = path.rest;
        else if (box && event_host == path.to_host && event_host != path.from_host)
            path.stop = entry_point(path.from, path.to, box->rect);
        else if (box && event_host == path.from_host && event_host != path.to_host)
            path.stop = entry_point(path.to, path.from, box->rect);
        else if (box)
            path.stop = box->rect.center();
        if (!path.stop) path.stop = Vec2{(path.from.x + path.to.x) / 2, (path.from.y + path.to.y) / 2};
    }
    return path;
}

bool split_flight(const replay::Timeline& timeline, std::size_t index) {
    return timeline.fate_of(index).has_value() || timeline.sent_of(index).has_value();
}

Vec2 packet_point(const PacketPath& path, trace::PacketKind kind, bool split, float phase) noexcept {
    const auto between = [t = std::clamp(phase, 0.0f, 1.0f)](Vec2 a, Vec2 b) {
        return Vec2{a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)};
    };
    if (!split) return point_along(path, phase);
    switch (kind) {
        case trace::PacketKind::sent: return between(path.from, path.rest);
        case trace::PacketKind::delivered: return between(path.rest, path.to);
        case trace::PacketKind::dropped: return between(path.left_sender ? path.rest : path.from, path.stop.value_or(path.to));
    }
    return point_along(path, phase);
}

DropWords drop_words(const trace::Packet& packet) {
    const replay::Drop drop{0, 0, packet.rule.value_or(std::string(replay::Drop::no_rule)), packet.cause, packet.rule_id};
    if (drop.by_firewall())
        return {true, packet.rule.value_or("a firewall rule") + (packet.rule_id ? " (rule " + *packet.rule_id + ")" : "")};
    const auto or_rule = [&](std::string words) { return packet.rule ? words + " (" + *packet.rule + ")" : words; };
    switch (packet.cause.value_or(trace::DropCause::other)) {
        case trace::DropCause::link: return {false, "lost on the link"};
        case trace::DropCause::no_socket: return {false, or_rule("no socket on that port")};
        case trace::DropCause::checksum: return {false, or_rule("bad checksum")};
        case trace::DropCause::no_route: return {false, or_rule("no route")};
        case trace::DropCause::ttl_exceeded: return {false, or_rule("TTL exceeded")};
        case trace::DropCause::ct_state: return {true, or_rule("stateful firewall: ct state new")};
        case trace::DropCause::firewall:
        case trace::DropCause::other: break;
    }
    return {false, or_rule("dropped")};
}

Vec2 point_along(const PacketPath& path, float t) noexcept {
    t = std::clamp(t, 0.0f, 1.0f);
    const Vec2 end = path.stop.value_or(path.to);  // a router in between may be off the straight line
    return Vec2{path.from.x + t * (end.x - path.from.x), path.from.y + t * (end.y - path.from.y)};
}

}  // namespace portlab::viz
