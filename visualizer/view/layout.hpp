#pragma once
// Where things go on the topology canvas, in canvas units (the canvas pans and
// zooms over them): a box per host, a slot per socket inside it (in creation
// order, so a slot stays put while others come and go), the host's ephemeral
// pool as a strip along its bottom, a line per connection, and the path a packet
// takes between two slots.

#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

struct Vec2 {
    float x = 0;
    float y = 0;
    friend bool operator==(const Vec2&, const Vec2&) = default;
};

struct Rect {
    float x = 0;
    float y = 0;
    float w = 0;
    float h = 0;
    [[nodiscard]] bool contains(Vec2 p) const noexcept { return p.x >= x && p.x < x + w && p.y >= y && p.y < y + h; }
    [[nodiscard]] Vec2 center() const noexcept { return {x + w / 2, y + h / 2}; }
    [[nodiscard]] float right() const noexcept { return x + w; }
    [[nodiscard]] float bottom() const noexcept { return y + h; }
    [[nodiscard]] bool overlaps(const Rect& o) const noexcept {
        return x < o.right() && o.x < right() && y < o.bottom() && o.y < bottom();
    }
    friend bool operator==(const Rect&, const Rect&) = default;
};

struct Slot {
    bool observed = false;  // an endpoint seen only in packets (captures), not a socket
    replay::HostIndex host = 0;
    replay::SocketRef ref;   // for sockets
    Protocol protocol = Protocol::tcp;
    std::optional<Endpoint> local;
    replay::SlotState state = replay::SlotState::created;
    std::optional<std::string> error;  // the errno of the socket's last failed call, marked on the slot
    std::optional<Endpoint> refused_bind;  // the endpoint a failed bind() wanted (the slot holds no port)
    Rect rect;
};

struct HostBox {
    replay::HostIndex host = 0;
    Rect rect;
    Rect header;
    Rect pool_strip;  // zero-sized when the host has reported no ephemeral range
    std::vector<std::size_t> slots;
};

// A way across the canvas, from its first point to its last: straight, or bent round
// the boxes of hosts between its ends (route_between).
struct Route {
    static constexpr std::size_t most = 4;
    std::array<Vec2, most> points{};
    std::size_t count = 0;
    [[nodiscard]] std::span<const Vec2> corners() const noexcept { return {points.data(), count}; }
    [[nodiscard]] Vec2 front() const noexcept { return points[0]; }
    [[nodiscard]] Vec2 back() const noexcept { return points[count == 0 ? 0 : count - 1]; }
    [[nodiscard]] float length() const noexcept;
    // The point `distance` along from its start: its first point at 0 or less, its last at
    // its length or more.
    [[nodiscard]] Vec2 at(float distance) const noexcept;
    // Its first `distance`: the way a dropped packet goes before its stop.
    [[nodiscard]] Route until(float distance) const noexcept;
    // The stretch its label goes over: the one under the boxes it goes round, else all of it.
    [[nodiscard]] std::pair<Vec2, Vec2> label_stretch() const noexcept {
        return count == 4 ? std::pair{points[1], points[2]} : std::pair{front(), back()};
    }
};

struct Line {
    std::size_t from_slot = 0;
    std::size_t to_slot = 0;
    Protocol protocol = Protocol::tcp;
    FourTuple tuple;
    Route route;  // from line_ends' first point to its second, round the boxes of other hosts
    // A connection a router translated (replay::Connection::via): the router, and the
    // 4-tuple on the far side of it, in the same direction as `tuple`.
    std::optional<replay::HostIndex> via{};
    std::optional<FourTuple> far_tuple{};
};

struct LayoutMetrics {
    float slot_w = 176;
    float slot_h = 40;
    float gap = 8;
    float padding = 12;
    float header_h = 46;
    float pool_h = 22;
    float host_gap_x = 300;  // room for the connection lines and their 4-tuple labels
    float host_gap_y = 90;
};

struct Layout {
    std::vector<HostBox> hosts;
    std::vector<Slot> slots;
    std::vector<Line> lines;
    Rect bounds;

    [[nodiscard]] std::optional<std::size_t> slot_of(replay::SocketRef ref) const;
    [[nodiscard]] std::optional<std::size_t> observed_slot(replay::HostIndex host, Protocol protocol,
                                                           const Endpoint& endpoint) const;
    [[nodiscard]] const HostBox* box_of(replay::HostIndex host) const;
    // The slot under a canvas point, if any.
    [[nodiscard]] std::optional<std::size_t> slot_at(Vec2 point) const;

    std::map<replay::SocketRef, std::size_t> by_socket;
    std::map<std::tuple<replay::HostIndex, Protocol, Endpoint>, std::size_t> by_endpoint;
    // Which hosts exchange packets directly (SlotPlan::links), and which forward
    // (a router's role): what route_between needs to tell a router on the way.
    std::vector<std::pair<replay::HostIndex, replay::HostIndex>> links;
    std::vector<bool> routers;
};

// Where every socket of a whole trace goes, so nothing jumps as sockets come and go:
// each host's box is sized for the most sockets it ever holds at once, and each socket
// keeps one cell from its first event to its last (the lowest cell free when it came).
// Made by one replay of the trace (make_slot_plan).
struct SlotPlan {
    struct HostPlan {
        std::size_t capacity = 0;  // the most sockets live at once
        bool has_pool = false;     // it reports an ephemeral range at some point
    };
    std::vector<HostPlan> hosts;  // by replay::HostIndex, every host of the trace
    // The cell of a socket, by (host, the event that introduced it: replay::Socket::created_at).
    std::map<std::pair<replay::HostIndex, std::size_t>, std::size_t> cells;
    // The pairs of hosts a packet went between, one hop (its from_host and to_host), lower
    // index first, sorted: a host between two others on the canvas is on their way when
    // both reach it and neither reaches the other.
    std::vector<std::pair<replay::HostIndex, replay::HostIndex>> links;
    // Each host's place in the row, by replay::HostIndex (host_positions): a router stands
    // between the hosts behind it and the rest.
    std::vector<std::size_t> position;
};

// Where each host goes in the row: the trace's order, except that a host (not a server) whose
// every link leads to a router goes before the routers, and the routers before the rest. So
// nat's second client sits beside the first, not beyond the server: its line then passes
// the router it goes through, as its packets do.
// Two hosts count as linked when a packet went between them, or when they hold addresses
// in one subnet (/24, /64): a lab's capture may see only some links (lab 16 none of client2's).
[[nodiscard]] std::vector<std::size_t> host_positions(std::span<const std::string> roles,
                                                      std::span<const std::vector<IpAddress>> addresses,
                                                      std::span<const std::pair<replay::HostIndex, replay::HostIndex>> links);

// One pass over the trace, whatever its length: a replay::State applied once per event
// and a look at the one socket each event names; memory: one cell per socket ever seen.
[[nodiscard]] SlotPlan make_slot_plan(const replay::Timeline& timeline);

// Hosts in a row (a grid past four; a capture's, two to a row past two), each box sized to hold its slots in columns
// of about a quarter as many rows as slots. `observed`: conversations of a capture
// that have begun before event `position` (their endpoints become slots). With a
// `plan`, boxes are sized and placed for the whole trace and each socket sits in its
// planned cell, so the picture only changes where something happened.
[[nodiscard]] Layout compute_layout(const replay::State& world, std::span<const Conversation> observed = {},
                                    std::size_t position = 0, const LayoutMetrics& metrics = {}, const SlotPlan* plan = nullptr);

// ---- the app's windows ----------------------------------------------------------

// Where the app's fixed windows go on a display: the topology canvas top-left with the
// tables under it, the packet inspector top-right with the state panel under it, the
// timeline along the bottom. The right column is split so each panel keeps what it
// needs to be readable (the state diagram whole, the inspector's tree several rows),
// the rest shared 55:45.
struct WindowRects {
    Rect topology;
    Rect tables;
    Rect inspector;
    Rect states;
    Rect timeline;
};
struct WindowNeeds {
    float top = 0;          // the menu bar and any banner above the windows
    float timeline_h = 0;   // the timeline's height (caption lines and controls)
    float inspector_min_h = 0;
    float states_min_h = 0;
};
[[nodiscard]] WindowRects window_layout(Vec2 display, const WindowNeeds& needs) noexcept;
// The inspector's least readable height: its title bar, the event line, a two-line
// summary and the checksum, five rows of the field tree and three of the hex dump.
[[nodiscard]] float inspector_min_height(float line_h, float frame_h) noexcept;
// The share of the inspector's room below its text lines that the field tree gets.
inline constexpr float inspector_tree_share = 0.6f;

// From the edge of one slot to the edge of the other, on the sides facing each other
// (the right sides when one is above the other: a loopback connection).
[[nodiscard]] std::pair<Vec2, Vec2> line_ends(const Rect& a, const Rect& b) noexcept;
// How far a route that goes round a host's box keeps from it, in canvas units.
inline constexpr float route_clearance = 30;
// The way from `s` (on host `from`) to `e` (on host `to`): straight when it enters no other
// host's box; else, for boxes between them (a row: client, router, server), under them:
// - along the bottom border of the boxes when each is a router on the way between the two
//   hosts (it carries their packets), so the line visibly goes via the router, over
//   neither its name nor its slots;
// - route_clearance under them, and as far from their sides, when one is not, so the
//   picture never suggests a packet visits a host it does not.
[[nodiscard]] Route route_between(const Layout& layout, Vec2 s, Vec2 e, replay::HostIndex from, replay::HostIndex to);
// A translated connection's way (Line::via): as route_between, but always under the router
// that translated it, along its bottom border unless a box it must clear reaches lower.
[[nodiscard]] Route route_via(const Layout& layout, Vec2 s, Vec2 e, replay::HostIndex from, replay::HostIndex to,
                              replay::HostIndex via);
// Whether host `via` is on the way between `a` and `b`: no packet went between `a` and
// `b` directly and packets went between each of them and `via`, or, with no packet
// between them, `via` is a router (the trace's role).
[[nodiscard]] bool on_the_way(const Layout& layout, replay::HostIndex via, replay::HostIndex a, replay::HostIndex b);
// Where along `route` (a distance from its start) it first enters `rect`, and last leaves it.
[[nodiscard]] std::optional<float> first_entry(const Route& route, const Rect& rect) noexcept;
[[nodiscard]] std::optional<float> last_exit(const Route& route, const Rect& rect) noexcept;
// A packet's chip (its label in a rounded box) centred at `at`, in screen pixels.
[[nodiscard]] Rect chip_rect(Vec2 at, Vec2 text_size) noexcept;
// Where a drop's words go (canvas units, as `text_size`), centred over the red X of radius
// `mark_radius` at `stop`. A firewall or router stops a packet on or in a host's box, where
// words beside the X lay over the box's name and slots: they go above the box's top edge.
// A loss on the link is marked mid-link: its words go just above the X.
[[nodiscard]] Rect drop_label_rect(const Layout& layout, Vec2 stop, Vec2 text_size, float mark_radius) noexcept;
// Where a connection line's 4-tuple label goes, in screen pixels: centred over the line
// between `s` and `e`, above every point of the line under it by half a chip and a
// margin, so a chip resting or flying on the line never covers it.
// `below`: under the line instead, below its lowest point by as much.
[[nodiscard]] Rect tuple_label_rect(Vec2 s, Vec2 e, Vec2 text_size, float chip_h, bool below = false) noexcept;
// How far right a loopback connection's curve bulges from its slots' right sides, in
// screen pixels at zoom `zoom` (the canvas draws a cubic Bezier whose controls sit this
// far out; the curve itself reaches three quarters of it).
[[nodiscard]] inline float loop_bulge(float zoom) noexcept { return 30 * zoom; }
// Every line's label, placed clear of the chips resting on the links (packets in
// flight), of `keep_clear` (the hosts' names, and the slots of a host with a connection
// to itself) and of the labels placed before it, at the first place that is clear:
// - a line between two hosts: above its middle, else below it, else above or below the
//   middle of its first half, then of its second half;
// - a connection between two sockets of one host (loopback, as labs on 127.0.0.1 make):
//   beside its curve round the slots' right side when both slots are in one column, else
//   to the right of the host's box (`box_right`), level with the line's middle, else
//   stacked under that, else the same on the box's left.
// When no place is clear, the first (above the line, beside the curve).
struct LabelledLine {
    Vec2 s;
    Vec2 e;
    Vec2 text_size;
    bool same_host = false;
    float bulge = 0;      // loop_bulge at the canvas's zoom, for a same-host line
    float box_right = 0;  // the host's box's edges, for a same-host line
    float box_left = 0;
    std::vector<Rect> avoid{};  // for a line between two hosts: the other hosts' boxes (a router between them)
};
// `within`: a place must also lie inside it (the canvas) to count as clear.
[[nodiscard]] std::vector<Rect> place_tuple_labels(std::span<const LabelledLine> lines, std::span<const Rect> chips, float chip_h,
                                                   std::span<const Rect> keep_clear = {}, std::optional<Rect> within = std::nullopt);

// Canvas units to screen pixels: viz::Camera's pan and zoom, and the canvas's top-left.
struct ToScreen {
    Vec2 pan;
    float zoom = 1;
    Vec2 origin;
    [[nodiscard]] Vec2 operator()(Vec2 p) const noexcept { return {origin.x + (p.x - pan.x) * zoom, origin.y + (p.y - pan.y) * zoom}; }
    [[nodiscard]] Rect operator()(const Rect& r) const noexcept {
        const Vec2 a = (*this)(Vec2{r.x, r.y});
        return Rect{a.x, a.y, r.w * zoom, r.h * zoom};
    }
};
// The pixel width of a text drawn at `scale` of the font (ImGui's CalcTextSize in the app).
using TextWidth = std::function<float(const std::string& text, float scale)>;
// Connection labels are drawn at this share of the font.
inline constexpr float tuple_label_scale = 0.85f;
// What a translated connection's label writes before its far-side 4-tuple.
inline constexpr char translated_prefix[] = "after NAT ";
struct TupleLabel {
    std::size_t line = 0;  // into Layout::lines
    std::string text;      // "127.0.0.1:40000 -> 127.0.0.1:8080"
    Rect rect;             // on screen
};
// The 4-tuple labels of `lines` (indices into layout.lines) as the canvas draws them:
// place_tuple_labels keeping clear of `chips`, of every host's header (its name and
// addresses), of the boxes of the hosts a line passes between, and of the slots of each
// host that has a connection to itself among them, inside `canvas` (screen pixels).
// A same-host connection's label takes two lines ("127.0.0.1:40000 ->", "127.0.0.1:8080"),
// narrow enough to sit beside its host's box. A translated connection's takes two: its
// 4-tuple before the router and after it ("after NAT 198.51.100.1:49899 -> ...").
[[nodiscard]] std::vector<TupleLabel> connection_labels(const replay::State& world, const Layout& layout, std::span<const std::size_t> lines,
                                                        const ToScreen& to_screen, float font_px, const TextWidth& text_width,
                                                        std::span<const Rect> chips, float chip_h, std::optional<Rect> canvas = std::nullopt);

// Where a note about a host (a router's translation) of `size` pixels goes on screen:
// centred under the host, below every box of its row so it covers no host's slots, inside
// `canvas` above its bottom `reserved` pixels (the legend).
[[nodiscard]] Rect callout_rect(const Layout& layout, replay::HostIndex host, Vec2 size, const ToScreen& to_screen, const Rect& canvas,
                                float reserved) noexcept;

// Where a host's header texts go on screen, given its box and header in screen pixels:
// the name, then the addresses under it, each at a scale of the font (shown: whether
// the header is tall enough for text at all).
struct HeaderText {
    bool shown = false;
    Vec2 name_at;
    float name_scale = 1;
    Vec2 addresses_at;
    float addresses_scale = 1;
};
[[nodiscard]] HeaderText header_text(const Rect& box_px, const Rect& header_px, float zoom, float font_px) noexcept;
// The rectangle the host's name covers, given its width at the font's size.
[[nodiscard]] Rect host_name_rect(const HeaderText& header, float name_width_at_font, float font_px) noexcept;

// The line under a host's name: its addresses; with none known, the wildcard
// when one of its sockets is bound to it ("(only the wildcard 0.0.0.0 bound so
// far)"), else nothing.
[[nodiscard]] std::string host_addresses_text(const replay::Host& host);
// Whether a host's box is marked as having a firewall: rules in force, or a
// firewall drop on it (version-1 traces name rules only when they drop). A link
// loss is no firewall's.
[[nodiscard]] bool has_firewall(const replay::State& world, replay::HostIndex host);

// Where a port sits along a pool strip: its share of the range.
[[nodiscard]] float pool_x(const Rect& strip, PortRange range, Port port) noexcept;

// What a drop says, for the X on the canvas and the panels: a firewall's rule,
// or a loss that no rule caused (the link, no socket, a bad checksum, no route).
struct DropWords {
    bool by_firewall = false;  // replay::Drop::by_firewall()
    std::string text;          // "tcp dport 22 drop (rule r1)", "lost on the link", ...
};
[[nodiscard]] DropWords drop_words(const trace::Packet& packet);

// The path a packet event draws: from the sending slot (or host) to the receiving
// slot (or host). A packet in flight rests on the link, halfway between the two
// boxes, outside both (a firewall sits on a box's border); a dropped packet stops
// where the line meets the dropping host, or on the link when the link lost it.
struct PacketPath {
    bool valid = false;
    Vec2 from;
    Vec2 to;
    Vec2 rest;                 // on the link: between the sender's box and the receiver's
    std::optional<Vec2> stop;  // where a drop happens
    // The way it flies: from `from` to `to` (to `stop` when that is off it), round the
    // boxes of other hosts as its connection's line goes (route_between); `rest` and
    // `stop` are on it, at these distances along.
    Route route;
    float rest_at = 0;
    std::optional<float> stop_at;
    bool left_sender = false;  // a drop after the packet left its sender (so after its `sent` event)
    replay::PacketLabel label = replay::PacketLabel::other;
    std::optional<replay::HostIndex> from_host;
    std::optional<replay::HostIndex> to_host;
};
[[nodiscard]] PacketPath packet_path(const replay::State& world, const Layout& layout, const trace::Event& event,
                                     const replay::PacketInfo& info);
// The point at fraction t in [0, 1] of the way; a dropped packet goes no further than its stop.
[[nodiscard]] Vec2 point_along(const PacketPath& path, float t) noexcept;
// Where a packet event's packet is drawn at animation phase p in [0, 1]. When the
// trace reports both ends of the packet (split_flight), `sent` carries it from
// its slot to the link's rest point and `delivered` or `dropped` takes it on from
// there, so one packet's flight is one continuous line; otherwise the event
// animates the whole way.
[[nodiscard]] Vec2 packet_point(const PacketPath& path, trace::PacketKind kind, bool split, float phase) noexcept;
// Whether packet event `index` is one end of a packet whose other end the trace reports too.
[[nodiscard]] bool split_flight(const replay::Timeline& timeline, std::size_t index);
// Where the segment a->b first enters the rectangle (a itself when it starts inside).
[[nodiscard]] std::optional<Vec2> entry_point(Vec2 a, Vec2 b, const Rect& rect) noexcept;

}  // namespace portlab::viz
