#include "view/layout.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <set>
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
    std::set<std::pair<replay::HostIndex, replay::HostIndex>> links;
    for (std::size_t i = 0; i < timeline.size(); ++i) {
        const trace::Event& event = timeline.event(i);
        world.apply(event);
        const auto& hosts = world.hosts();
        if (plan.hosts.size() < hosts.size()) {
            plan.hosts.resize(hosts.size());
            per_host.resize(hosts.size());
        }
        if (const auto* packet = std::get_if<trace::Packet>(&event.body); packet && packet->from_host && packet->to_host) {
            const auto a = world.find_host(*packet->from_host);
            const auto b = world.find_host(*packet->to_host);
            if (a && b && *a != *b) links.insert(std::minmax(*a, *b));
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
    plan.links.assign(links.begin(), links.end());
    std::vector<std::string> roles;
    std::vector<std::vector<IpAddress>> addresses;
    for (const auto& host : world.hosts()) {
        roles.push_back(host.role);
        addresses.push_back(host.addresses);
    }
    plan.position = host_positions(roles, addresses, plan.links);
    return plan;
}

namespace {

// Whether two addresses share a /24 (IPv4) or a /64 (IPv6): one link of a lab's network.
bool same_subnet(const IpAddress& a, const IpAddress& b) {
    if (a.is_v4() != b.is_v4() || a == b) return false;
    const std::size_t prefix = a.is_v4() ? 3 : 8;
    return std::equal(a.bytes().begin(), a.bytes().begin() + static_cast<std::ptrdiff_t>(prefix), b.bytes().begin());
}

}  // namespace

std::vector<std::size_t> host_positions(std::span<const std::string> roles, std::span<const std::vector<IpAddress>> addresses,
                                        std::span<const std::pair<replay::HostIndex, replay::HostIndex>> packet_links) {
    const std::size_t count = roles.size();
    std::vector<std::size_t> position(count);
    for (std::size_t h = 0; h < count; ++h) position[h] = h;
    const auto is_router = [&](std::size_t h) { return roles[h] == "router"; };
    if (std::none_of(position.begin(), position.end(), is_router)) return position;
    std::set<std::pair<std::size_t, std::size_t>> links(packet_links.begin(), packet_links.end());
    for (std::size_t x = 0; x < count && x < addresses.size(); ++x)
        for (std::size_t y = x + 1; y < count && y < addresses.size(); ++y)
            for (const auto& p : addresses[x])
                for (const auto& q : addresses[y])
                    if (same_subnet(p, q)) links.emplace(x, y);
    // 0: behind a router (every link to one), 1: routers, 2: the rest; the trace's order within.
    std::vector<int> group(count, 2);
    for (std::size_t h = 0; h < count; ++h) {
        if (is_router(h)) {
            group[h] = 1;
            continue;
        }
        bool linked = false;
        bool only_routers = true;
        for (const auto& [a, b] : links) {
            if (a != h && b != h) continue;
            const std::size_t other = a == h ? b : a;
            linked = true;
            only_routers = only_routers && other < count && is_router(other);
        }
        if (linked && only_routers && roles[h] != "server") group[h] = 0;
    }
    std::vector<std::size_t> order(count);
    for (std::size_t h = 0; h < count; ++h) order[h] = h;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return group[x] < group[y]; });
    for (std::size_t place = 0; place < count; ++place) position[order[place]] = place;
    return position;
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
    // Each host's place: the plan's (host_positions), else the trace's order.
    const auto place_of = [&](replay::HostIndex h) {
        return plan && plan->position.size() == host_count ? plan->position[h] : static_cast<std::size_t>(h);
    };
    std::vector<float> column_width(per_row, 0.0f);
    std::vector<float> row_height((host_count + per_row - 1) / std::max<std::size_t>(1, per_row) + 1, 0.0f);
    for (replay::HostIndex h = 0; h < host_count; ++h) {
        column_width[place_of(h) % per_row] = std::max(column_width[place_of(h) % per_row], sizes[h].x);
        row_height[place_of(h) / per_row] = std::max(row_height[place_of(h) / per_row], sizes[h].y);
    }
    // The gap grows with the boxes, so lines between big hosts stay visible when zoomed out.
    const float widest = column_width.empty() ? 0.0f : *std::max_element(column_width.begin(), column_width.end());
    const float gap_x = std::max(m.host_gap_x, 0.4f * widest);
    for (replay::HostIndex h = 0; h < host_count; ++h) {
        float x = 0;
        for (std::size_t c = 0; c < place_of(h) % per_row; ++c) x += column_width[c] + gap_x;
        float y = 0;
        for (std::size_t r = 0; r < place_of(h) / per_row; ++r) y += row_height[r] + m.host_gap_y;
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
    // Three or more in a row: a line between two of them may go under the ones between
    // (route_between), and its label under that; the bottom row keeps room for both.
    if (per_row >= 3 && !row_height.empty()) {
        const std::size_t rows = (host_count + per_row - 1) / per_row;
        float y = 0;
        for (std::size_t r = 0; r + 1 < rows; ++r) y += row_height[r] + m.host_gap_y;
        layout.bounds.h = std::max(layout.bounds.h, y + row_height[rows - 1] + route_clearance + m.host_gap_y / 2);
    }
    if (plan) layout.links = plan->links;
    layout.routers.resize(hosts.size());
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) layout.routers[h] = hosts[h].role == "router";

    // Lines: a connection's two sockets, or a capture's two endpoints.
    for (const auto& connection : world.connections()) {
        if (!connection.a || !connection.b) continue;
        const auto a = layout.slot_of(*connection.a);
        const auto b = layout.slot_of(*connection.b);
        if (a && b) layout.lines.push_back(Line{*a, *b, connection.protocol, connection.tuple, {}, connection.via, connection.far_tuple});
    }
    for (const auto& conversation : observed) {
        if (conversation.first_index >= position) continue;
        const auto host_a = world.find_host(conversation.a.address.to_string());
        const auto host_b = world.find_host(conversation.b.address.to_string());
        if (!host_a || !host_b) continue;
        const auto a = layout.observed_slot(*host_a, conversation.protocol, conversation.a);
        const auto b = layout.observed_slot(*host_b, conversation.protocol, conversation.b);
        if (a && b) layout.lines.push_back(Line{*a, *b, conversation.protocol, FourTuple{conversation.a, conversation.b}, {}, std::nullopt, std::nullopt});
    }
    for (auto& line : layout.lines) {
        const Slot& from = layout.slots[line.from_slot];
        const Slot& to = layout.slots[line.to_slot];
        const auto [s, e] = line_ends(from.rect, to.rect);
        line.route = line.via ? route_via(layout, s, e, from.host, to.host, *line.via) : route_between(layout, s, e, from.host, to.host);
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

Rect drop_label_rect(const Layout& layout, Vec2 stop, Vec2 text_size, float mark_radius) noexcept {
    float top = stop.y - mark_radius - 3;
    for (const auto& box : layout.hosts) {
        const Rect& r = box.rect;
        const bool on_box = stop.x >= r.x - 1 && stop.x <= r.right() + 1 && stop.y >= r.y - 1 && stop.y <= r.bottom() + 1;
        if (on_box) top = std::min(top, r.y - 4);
    }
    return Rect{stop.x - text_size.x / 2, top - text_size.y, text_size.x, text_size.y};
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
        std::vector<Rect> places =
            line.same_host ? same_host_places(line)
                           : std::vector<Rect>{tuple_label_rect(line.s, line.e, line.text_size, chip_h),
                                               tuple_label_rect(line.s, line.e, line.text_size, chip_h, true),
                                               tuple_label_rect(line.s, mid, line.text_size, chip_h),
                                               tuple_label_rect(line.s, mid, line.text_size, chip_h, true),
                                               tuple_label_rect(mid, line.e, line.text_size, chip_h),
                                               tuple_label_rect(mid, line.e, line.text_size, chip_h, true)};
        // Lines that share a stretch (several connections under one router): their labels
        // stack below the first place, one under the other, rather than over each other.
        if (!line.same_host)
            for (int k = 1; k <= 6; ++k) {
                Rect below = places[1];
                below.y += static_cast<float>(k) * (line.text_size.y + 3);
                places.push_back(below);
            }
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
        const auto [p, q] = line.route.label_stretch();  // under the boxes it goes round
        const bool same_host = from.host == to.host;
        const std::string first = line.tuple.local.to_string() + " ->";
        const std::string second = line.tuple.remote.to_string();
        std::string text = first + (same_host ? "\n" : " ") + second;
        LabelledLine entry{to_screen(p), to_screen(q), Vec2{text_width(text, tuple_label_scale), font_px * tuple_label_scale}};
        if (line.far_tuple && !same_host) {
            const std::string far = translated_prefix + line.far_tuple->to_string();
            entry.text_size = Vec2{std::max(text_width(text, tuple_label_scale), text_width(far, tuple_label_scale)),
                                   2 * font_px * tuple_label_scale};
            text += "\n" + far;
        }
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

namespace {

// Liang-Barsky clipping: the part [t0, t1] of a + t(b - a), t in [0, 1], inside the rectangle
// (its border counts).
std::optional<std::pair<float, float>> clip(Vec2 a, Vec2 b, const Rect& r) noexcept {
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
    return std::pair{t0, t1};
}

float distance(Vec2 a, Vec2 b) noexcept { return std::hypot(b.x - a.x, b.y - a.y); }

// (1 - t) a + t b: a itself at 0, b itself at 1.
Vec2 lerp(Vec2 a, Vec2 b, float t) noexcept { return Vec2{(1 - t) * a.x + t * b.x, (1 - t) * a.y + t * b.y}; }

Route straight(Vec2 s, Vec2 e) noexcept {
    Route route;
    route.points[0] = s;
    route.points[1] = e;
    route.count = 2;
    return route;
}

}  // namespace

std::optional<Vec2> entry_point(Vec2 a, Vec2 b, const Rect& r) noexcept {
    const auto inside = clip(a, b, r);
    if (!inside) return std::nullopt;
    const float t = inside->first;
    return Vec2{a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)};
}

float Route::length() const noexcept {
    float total = 0;
    for (std::size_t i = 1; i < count; ++i) total += distance(points[i - 1], points[i]);
    return total;
}

Vec2 Route::at(float along) const noexcept {
    if (count == 0) return {};
    if (along <= 0) return points[0];
    if (along >= length()) return back();
    for (std::size_t i = 1; i < count; ++i) {
        const float step = distance(points[i - 1], points[i]);
        if (along < step) return lerp(points[i - 1], points[i], along / step);
        along -= step;
    }
    return back();
}

Route Route::until(float along) const noexcept {
    Route part;
    if (count == 0) return part;
    part.points[part.count++] = points[0];
    for (std::size_t i = 1; i < count && along > 0; ++i) {
        const float step = distance(points[i - 1], points[i]);
        if (along >= step) {
            part.points[part.count++] = points[i];
        } else {
            part.points[part.count++] = lerp(points[i - 1], points[i], along / step);
        }
        along -= step;
    }
    if (part.count == 1) part.points[part.count++] = points[0];
    return part;
}

std::optional<float> first_entry(const Route& route, const Rect& rect) noexcept {
    float before = 0;
    for (std::size_t i = 1; i < route.count; ++i) {
        const float step = distance(route.points[i - 1], route.points[i]);
        if (const auto inside = clip(route.points[i - 1], route.points[i], rect)) return before + inside->first * step;
        before += step;
    }
    return std::nullopt;
}

std::optional<float> last_exit(const Route& route, const Rect& rect) noexcept {
    float before = 0;
    std::optional<float> exit;
    for (std::size_t i = 1; i < route.count; ++i) {
        const float step = distance(route.points[i - 1], route.points[i]);
        if (const auto inside = clip(route.points[i - 1], route.points[i], rect)) exit = before + inside->second * step;
        before += step;
    }
    return exit;
}

bool on_the_way(const Layout& layout, replay::HostIndex via, replay::HostIndex a, replay::HostIndex b) {
    const auto linked = [&](replay::HostIndex x, replay::HostIndex y) {
        return std::binary_search(layout.links.begin(), layout.links.end(), std::pair{std::min(x, y), std::max(x, y)});
    };
    if (linked(a, b)) return false;
    if (linked(a, via) && linked(via, b)) return true;
    return via < layout.routers.size() && layout.routers[via];
}

namespace {

// From `s` down to `bottom`, along it across [left, right] in the way's direction, up to `e`.
Route route_under(Vec2 s, Vec2 e, float left, float right, float bottom) {
    if (s.x > e.x) std::swap(left, right);
    Route route;
    route.points = {s, Vec2{left, bottom}, Vec2{right, bottom}, e};
    route.count = 4;
    return route;
}

}  // namespace

Route route_between(const Layout& layout, Vec2 s, Vec2 e, replay::HostIndex from, replay::HostIndex to) {
    // The span of the boxes the straight way enters (or touches), and whether each carries
    // the two hosts' packets.
    bool crossed = false;
    bool all_on_the_way = true;
    float left = 0;
    float right = 0;
    float bottom = 0;
    for (const auto& box : layout.hosts) {
        if (box.host == from || box.host == to || !clip(s, e, box.rect)) continue;
        all_on_the_way = all_on_the_way && on_the_way(layout, box.host, from, to);
        left = crossed ? std::min(left, box.rect.x) : box.rect.x;
        right = crossed ? std::max(right, box.rect.right()) : box.rect.right();
        bottom = crossed ? std::max(bottom, box.rect.bottom()) : box.rect.bottom();
        crossed = true;
    }
    if (!crossed) return straight(s, e);
    const float margin = all_on_the_way ? 0.0f : route_clearance;
    return route_under(s, e, left - margin, right + margin, bottom + margin);
}

Route route_via(const Layout& layout, Vec2 s, Vec2 e, replay::HostIndex from, replay::HostIndex to, replay::HostIndex via) {
    const HostBox* router = layout.box_of(via);
    if (!router || via == from || via == to) return route_between(layout, s, e, from, to);
    float left = router->rect.x;
    float right = router->rect.right();
    float bottom = router->rect.bottom();
    const auto make = [&] { return route_under(s, e, left, right, bottom); };
    // Grow the stretch under the router until the way enters no other box: each box it would
    // cross joins it, cleared by route_clearance unless it too carries the two hosts' packets.
    std::vector<bool> under(layout.hosts.size(), false);
    Route route = make();
    for (std::size_t pass = 0; pass <= layout.hosts.size(); ++pass) {
        bool grew = false;
        for (std::size_t i = 0; i < layout.hosts.size(); ++i) {
            const HostBox& box = layout.hosts[i];
            if (under[i] || box.host == from || box.host == to || box.host == via) continue;
            bool crossed = false;
            for (std::size_t k = 1; k < route.count && !crossed; ++k) crossed = clip(route.points[k - 1], route.points[k], box.rect).has_value();
            if (!crossed) continue;
            const float margin = on_the_way(layout, box.host, from, to) ? 0.0f : route_clearance;
            left = std::min(left, box.rect.x - margin);
            right = std::max(right, box.rect.right() + margin);
            bottom = std::max(bottom, box.rect.bottom() + margin);
            under[i] = grew = true;
        }
        if (!grew) break;
        route = make();
    }
    return route;
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

// Halfway along the stretch of the route between the two hosts' boxes (the whole
// route's middle when both ends are on one host or a box is unknown).
float link_middle(const Layout& layout, const PacketPath& path) {
    const float middle = path.route.length() / 2;
    if (!path.from_host || !path.to_host || *path.from_host == *path.to_host) return middle;
    const HostBox* sender = layout.box_of(*path.from_host);
    const HostBox* receiver = layout.box_of(*path.to_host);
    if (!sender || !receiver) return middle;
    const auto leaves = last_exit(path.route, sender->rect);
    const auto arrives = first_entry(path.route, receiver->rect);
    if (!leaves || !arrives || *leaves > *arrives) return middle;
    return (*leaves + *arrives) / 2;
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
    path.route = route_between(layout, path.from, path.to, *path.from_host, *path.to_host);

    path.rest_at = link_middle(layout, path);
    path.rest = path.route.at(path.rest_at);
    if (packet->kind == trace::PacketKind::dropped) {
        // Lost on the link: where it rested in flight, touching no box. Else it
        // stops where it meets the dropping host's box: on the way in at the
        // receiver, on the way out at the sender, or at a router in between (off
        // the way: it flies to the router's middle instead).
        const HostBox* box = event_host ? layout.box_of(*event_host) : nullptr;
        path.left_sender = packet->cause == trace::DropCause::link || event_host != path.from_host;
        if (packet->cause == trace::DropCause::link) {
            path.stop_at = path.rest_at;
        } else if (box && event_host == path.to_host && event_host != path.from_host) {
            path.stop_at = first_entry(path.route, box->rect);
        } else if (box && event_host == path.from_host && event_host != path.to_host) {
            path.stop_at = last_exit(path.route, box->rect);
        } else if (box) {
            path.route = route_between(layout, path.from, box->rect.center(), *path.from_host, *event_host);
            path.stop_at = path.route.length();
        }
        if (!path.stop_at) path.stop_at = path.route.length() / 2;
        path.stop = path.route.at(*path.stop_at);
    }
    return path;
}

bool split_flight(const replay::Timeline& timeline, std::size_t index) {
    return timeline.fate_of(index).has_value() || timeline.sent_of(index).has_value();
}

Vec2 packet_point(const PacketPath& path, trace::PacketKind kind, bool split, float phase) noexcept {
    // Between two distances along the route; (1 - t) a + t b lands on each end exactly.
    const auto between = [&, t = std::clamp(phase, 0.0f, 1.0f)](float a, float b) { return path.route.at((1 - t) * a + t * b); };
    if (!split) return point_along(path, phase);
    switch (kind) {
        case trace::PacketKind::sent: return between(0, path.rest_at);
        case trace::PacketKind::delivered: return between(path.rest_at, path.route.length());
        case trace::PacketKind::dropped: return between(path.left_sender ? path.rest_at : 0, path.stop_at.value_or(path.route.length()));
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
    return path.route.at(t * path.stop_at.value_or(path.route.length()));  // a drop goes no further than its stop
}

}  // namespace portlab::viz
