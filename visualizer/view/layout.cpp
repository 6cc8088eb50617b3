#include "view/layout.hpp"

#include <algorithm>
#include <cmath>
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

Layout compute_layout(const replay::State& world, std::span<const Conversation> observed, std::size_t position,
                      const LayoutMetrics& m) {
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

    // Box sizes.
    layout.hosts.resize(hosts.size());
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        auto& box = layout.hosts[h];
        box.host = h;
        box.slots = slots_of_host[h];
        const std::size_t count = box.slots.size();
        const std::size_t columns = columns_for(count);
        const std::size_t rows = count == 0 ? 0 : (count + columns - 1) / columns;
        const bool has_pool = hosts[h].pool.range.has_value();
        box.rect.w = std::max(2 * m.padding + static_cast<float>(columns) * (m.slot_w + m.gap) - m.gap, m.slot_w + 2 * m.padding);
        box.rect.h = m.header_h + static_cast<float>(rows) * (m.slot_h + m.gap) + m.padding +
                     (has_pool ? m.pool_h + m.gap : 0.0f);
        box.rect.h = std::max(box.rect.h, m.header_h + m.slot_h);
    }

    // Placement: a row of up to four hosts, else a square-ish grid.
    const std::size_t per_row = hosts.size() <= 4 ? std::max<std::size_t>(1, hosts.size())
                                                  : static_cast<std::size_t>(std::ceil(std::sqrt(hosts.size())));
    std::vector<float> column_width(per_row, 0.0f);
    std::vector<float> row_height((hosts.size() + per_row - 1) / std::max<std::size_t>(1, per_row) + 1, 0.0f);
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        column_width[h % per_row] = std::max(column_width[h % per_row], layout.hosts[h].rect.w);
        row_height[h / per_row] = std::max(row_height[h / per_row], layout.hosts[h].rect.h);
    }
    // The gap grows with the boxes, so lines between big hosts stay visible when zoomed out.
    const float widest = column_width.empty() ? 0.0f : *std::max_element(column_width.begin(), column_width.end());
    const float gap_x = std::max(m.host_gap_x, 0.4f * widest);
    for (replay::HostIndex h = 0; h < hosts.size(); ++h) {
        float x = 0;
        for (std::size_t c = 0; c < h % per_row; ++c) x += column_width[c] + gap_x;
        float y = 0;
        for (std::size_t r = 0; r < h / per_row; ++r) y += row_height[r] + m.host_gap_y;
        auto& box = layout.hosts[h];
        box.rect.x = x;
        box.rect.y = y;
        box.header = Rect{x, y, box.rect.w, m.header_h};
        const std::size_t columns = columns_for(box.slots.size());
        for (std::size_t i = 0; i < box.slots.size(); ++i) {
            const float sx = x + m.padding + static_cast<float>(i % columns) * (m.slot_w + m.gap);
            const float sy = y + m.header_h + static_cast<float>(i / columns) * (m.slot_h + m.gap);
            layout.slots[box.slots[i]].rect = Rect{sx, sy, m.slot_w, m.slot_h};
        }
        if (hosts[h].pool.range)
            box.pool_strip = Rect{x + m.padding, box.rect.bottom() - m.padding - m.pool_h, box.rect.w - 2 * m.padding, m.pool_h};
        layout.bounds.w = std::max(layout.bounds.w, box.rect.right());
        layout.bounds.h = std::max(layout.bounds.h, box.rect.bottom());
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
