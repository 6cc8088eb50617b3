#include "view/tcp_diagram.hpp"

#include <algorithm>
#include <cmath>

#include "view/model.hpp"

namespace portlab::viz {

// ===========================================================================
// [SECTION] the socket and its path
// ===========================================================================

std::vector<StateStep> state_steps(const replay::Timeline& timeline, const std::string& host, trace::SocketId socket,
                                   std::span<const std::size_t> state_changes, std::size_t n) {
    std::vector<StateStep> steps;
    const auto introduced = timeline.introduced_at(host, socket);
    if (introduced && *introduced < n) {
        const auto& body = timeline.event(*introduced).body;
        if (const auto* child = std::get_if<trace::ChildCreated>(&body)) {
            // tcp_conn_request: the SYN made a socket that took LISTEN's "rcv SYN, snd SYN,ACK" edge.
            steps.push_back({TcpState::listen, TcpState::syn_received,
                             "SYN received at listener socket " + std::to_string(child->listener.value), *introduced, true});
        } else if (const auto* accepted = std::get_if<trace::Accepted>(&body)) {
            // accept() returns only a connection whose handshake is complete (RFC 9293 3.5;
            // Linux queues it after the ACK of the SYN,ACK).
            const std::string at = " at listener socket " + std::to_string(accepted->listener.value);
            steps.push_back({TcpState::listen, TcpState::syn_received, "SYN received" + at + ", before accept()", *introduced, true});
            steps.push_back({TcpState::syn_received, TcpState::established, "ACK of SYN,ACK received, before accept()", *introduced, true});
        }
    }
    for (const std::size_t index : state_changes) {
        const auto& change = std::get<trace::StateChanged>(timeline.event(index).body);
        // A trace that names the handshake itself after all: its own step replaces the implied one.
        std::erase_if(steps, [&](const StateStep& step) { return step.implied && step.from == change.from && step.to == change.to; });
        steps.push_back({change.from, change.to, change.cause, index, false});
    }
    return steps;
}

namespace {

// The socket a packet event's packet belongs to: the sender's, else the receiver's.
std::optional<replay::SocketRef> packet_socket(const Model& model, std::size_t index) {
    const auto& event = model.timeline().event(index);
    const auto* packet = std::get_if<trace::Packet>(&event.body);
    const auto* info = model.timeline().packet_info(index);
    if (!packet || !info || !info->protocol || !info->source || !info->destination) return std::nullopt;
    const auto& world = model.world();
    const auto host_of = [&](const std::optional<std::string>& name, const Endpoint& endpoint) -> std::optional<replay::HostIndex> {
        if (name)
            if (const auto host = world.find_host(*name)) return host;
        return world.host_with_address(endpoint.address);
    };
    auto sender = host_of(packet->from_host, *info->source);
    auto receiver = host_of(packet->to_host, *info->destination);
    if (!sender && packet->kind == trace::PacketKind::sent) sender = world.find_host(event.host);
    if (!receiver && packet->kind == trace::PacketKind::delivered) receiver = world.find_host(event.host);
    // The side the event happened on first: a delivery is the receiver's news.
    const bool receiver_first = packet->kind == trace::PacketKind::delivered;
    for (int side = 0; side < 2; ++side) {
        const bool receiving = (side == 0) == receiver_first;
        const auto host = receiving ? receiver : sender;
        if (!host) continue;
        const auto ref = receiving ? world.socket_for(*host, *info->protocol, *info->destination, *info->source)
                                   : world.socket_for(*host, *info->protocol, *info->source, *info->destination);
        if (ref && world.find_socket(*ref)) return ref;
    }
    return std::nullopt;
}

}  // namespace

StatePanelContent state_panel_content(const Model& model, const std::optional<replay::SocketRef>& selected) {
    StatePanelContent content;
    if (!model.loaded()) return content;
    const auto& world = model.world();
    if (selected && world.find_socket(*selected)) {
        content.socket = selected;
        content.because = ShownBecause::selected;
    } else if (const auto current = model.current_event()) {
        const auto& event = model.timeline().event(*current);
        const auto host = world.find_host(event.host);
        const auto socket = trace::socket_of(event.body);
        if (host && socket && world.find_socket(replay::SocketRef{*host, *socket})) {
            content.socket = replay::SocketRef{*host, *socket};
            content.because = ShownBecause::current_event;
        } else if (const auto ref = packet_socket(model, *current)) {
            content.socket = ref;
            content.because = ShownBecause::packet;
        }
    }
    if (!content.socket) return content;
    const auto* socket = world.find_socket(*content.socket);
    content.tcp = socket->protocol == Protocol::tcp;
    if (content.tcp)
        content.steps = state_steps(model.timeline(), world.hosts()[content.socket->host].name, content.socket->socket,
                                    model.state_path(*content.socket), model.position());
    return content;
}

// ===========================================================================
// [SECTION] geometry
// ===========================================================================

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

// The point where the segment from the centre of a box towards `towards` leaves the box.
Vec2 box_edge(const DiagramGeometry& d, Vec2 centre, Vec2 towards) {
    const float dx = towards.x - centre.x;
    const float dy = towards.y - centre.y;
    const float sx = dx == 0 ? 1e9f : (d.box.x / 2) / std::abs(dx);
    const float sy = dy == 0 ? 1e9f : (d.box.y / 2) / std::abs(dy);
    const float s = std::min(sx, sy);
    return {centre.x + dx * s, centre.y + dy * s};
}

float distance(Vec2 a, Vec2 b) { return std::hypot(a.x - b.x, a.y - b.y); }

}  // namespace

Vec2 DiagramGeometry::centre(TcpState state) const noexcept {
    for (const auto& place : places)
        if (place.state == state) return {origin.x + (place.column + 0.5f) * cell_w, origin.y + (place.row + 0.5f) * cell_h};
    return origin;
}

Rect DiagramGeometry::box_of(TcpState state) const noexcept {
    const Vec2 c = centre(state);
    return Rect{c.x - box.x / 2, c.y - box.y / 2, box.x, box.y};
}

float diagram_min_height(float line_h) noexcept { return 7 * (line_h + 2); }

float state_panel_min_height(float line_h, float frame_h) noexcept {
    return 2 * frame_h + 16 + line_h + diagram_min_height(line_h) + 3 * line_h;
}

DiagramGeometry diagram_geometry(Vec2 origin, Vec2 size) noexcept {
    DiagramGeometry d;
    d.origin = origin;
    d.cell_w = std::max(size.x, 240.0f) / 3;
    d.cell_h = std::max(size.y, 7 * 21.0f) / 7;
    d.box = Vec2{std::min(d.cell_w - 14, 130.0f), std::min(d.cell_h - 4, 26.0f)};
    return d;
}

ArrowPath arrow_path(const DiagramGeometry& d, TcpState from, TcpState to) noexcept {
    const Vec2 a0 = d.centre(from);
    const Vec2 b0 = d.centre(to);
    ArrowPath arrow;
    // Edges to CLOSED from below run up the right side so they do not cross the boxes.
    if (to == TcpState::closed && (from == TcpState::time_wait || from == TcpState::last_ack || from == TcpState::syn_sent)) {
        const float side = d.origin.x + 3 * d.cell_w - 6;
        arrow.curved = true;
        arrow.points = {box_edge(d, a0, Vec2{side, a0.y}), Vec2{side, a0.y}, Vec2{side, b0.y}, box_edge(d, b0, Vec2{side, b0.y})};
        return arrow;
    }
    // Two states joined both ways (CLOSED-LISTEN, LISTEN-SYN-SENT ...) get two parallel
    // arrows, each shifted to its own right.
    const float len = std::max(1.0f, distance(a0, b0));
    const Vec2 shift{-(b0.y - a0.y) / len * 4, (b0.x - a0.x) / len * 4};
    const Vec2 a = box_edge(d, a0, b0);
    const Vec2 b = box_edge(d, b0, a0);
    const Vec2 start{a.x + shift.x, a.y + shift.y};
    const Vec2 end{b.x + shift.x, b.y + shift.y};
    arrow.points = {start, start, end, end};
    return arrow;
}

Vec2 point_on(const ArrowPath& arrow, float t) noexcept {
    t = std::clamp(t, 0.0f, 1.0f);
    const auto& p = arrow.points;
    if (!arrow.curved) return Vec2{p[0].x + t * (p[3].x - p[0].x), p[0].y + t * (p[3].y - p[0].y)};
    const float u = 1 - t;
    const float w0 = u * u * u;
    const float w1 = 3 * u * u * t;
    const float w2 = 3 * u * t * t;
    const float w3 = t * t * t;
    return Vec2{w0 * p[0].x + w1 * p[1].x + w2 * p[2].x + w3 * p[3].x, w0 * p[0].y + w1 * p[1].y + w2 * p[2].y + w3 * p[3].y};
}

float distance_to(const ArrowPath& arrow, Vec2 p) noexcept {
    float best = 1e30f;
    constexpr int samples = 200;
    for (int i = 0; i <= samples; ++i) best = std::min(best, distance(point_on(arrow, static_cast<float>(i) / samples), p));
    return best;
}

std::vector<Vec2> badge_centres(const DiagramGeometry& d, std::span<const StateStep> steps, float radius) {
    // Along the arrow from its middle outwards, the first place clear of the badges placed so far.
    constexpr std::array<float, 9> along{0.5f, 0.35f, 0.65f, 0.2f, 0.8f, 0.27f, 0.73f, 0.12f, 0.88f};
    std::vector<Vec2> centres;
    for (const auto& step : steps) {
        const ArrowPath arrow = arrow_path(d, step.from, step.to);
        const auto clear = [&](Vec2 p) {
            return std::all_of(centres.begin(), centres.end(), [&](Vec2 q) { return distance(p, q) >= 2 * radius + 1; });
        };
        std::optional<Vec2> chosen;
        for (const float t : along)
            if (const Vec2 p = point_on(arrow, t); clear(p)) {
                chosen = p;
                break;
            }
        // An arrow too short for another badge (the same edge taken again): the one least covered.
        if (!chosen) {
            float best = -1;
            for (int i = 0; i <= 20; ++i) {
                const Vec2 p = point_on(arrow, static_cast<float>(i) / 20);
                float nearest = 1e30f;
                for (const Vec2 q : centres) nearest = std::min(nearest, distance(p, q));
                if (nearest > best) {
                    best = nearest;
                    chosen = p;
                }
            }
        }
        centres.push_back(*chosen);
    }
    return centres;
}

StatePanelSplit split_state_panel(float available_h, std::size_t steps, float line_h) noexcept {
    StatePanelSplit split;
    const float wanted = static_cast<float>(steps) * line_h;
    const float at_least = static_cast<float>(std::min<std::size_t>(steps, 3)) * line_h;
    split.list_h = std::min(wanted, std::max(available_h - diagram_min_height(line_h), at_least));
    split.list_h = std::max(split.list_h, 0.0f);
    split.list_scrolls = split.list_h + 0.5f < wanted;
    split.diagram_h = std::max(available_h - split.list_h, 0.0f);
    return split;
}

}  // namespace portlab::viz
