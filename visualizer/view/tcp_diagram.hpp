#pragma once
// The TCP state panel without a window: which socket it shows (the one clicked, else
// the current event's, a packet's own socket included), the steps of that socket's
// path (the state_changed events, and the handshake a connection's socket went
// through before the trace could name it), and the geometry of RFC 9293 Figure 5 as
// the panel draws it: boxes, arrows, the numbered badges on the path's arrows, and the
// split between the diagram and the list of steps below it.

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "portlab/tcp_state.hpp"
#include "replay/state.hpp"
#include "view/layout.hpp"

namespace portlab::viz {

class Model;

// One step of a socket's path through the diagram.
struct StateStep {
    TcpState from = TcpState::closed;
    TcpState to = TcpState::closed;
    std::string cause;
    std::size_t event = 0;  // the state_changed event, or the event that implies the step
    bool implied = false;   // no state_changed: a connection's socket, SYN-RECEIVED or ESTABLISHED by definition
    friend bool operator==(const StateStep&, const StateStep&) = default;
};

// The path of `socket` on `host` up to (not including) event n: the steps the way it
// came into being implies (a socket made for a connection at a listener took LISTEN's
// "rcv SYN" edge; one accept() returned without a child_created had also completed the
// handshake, RFC 9293 3.5), then its state_changed events.
[[nodiscard]] std::vector<StateStep> state_steps(const replay::Timeline& timeline, const std::string& host, trace::SocketId socket,
                                                 std::span<const std::size_t> state_changes, std::size_t n);

enum class ShownBecause : std::uint8_t { nothing, selected, current_event, packet };

struct StatePanelContent {
    std::optional<replay::SocketRef> socket;
    ShownBecause because = ShownBecause::nothing;
    bool tcp = false;  // a TCP socket: the diagram; a UDP socket has no connection states to draw
    std::vector<StateStep> steps;
};
// What the panel shows at the model's position with `selected` clicked (or not).
[[nodiscard]] StatePanelContent state_panel_content(const Model& model, const std::optional<replay::SocketRef>& selected);

// ---- geometry ---------------------------------------------------------------------

struct DiagramGeometry {
    Vec2 origin;
    float cell_w = 0;
    float cell_h = 0;
    Vec2 box;  // a state's box, width and height
    [[nodiscard]] Vec2 centre(TcpState state) const noexcept;
    [[nodiscard]] Rect box_of(TcpState state) const noexcept;
};
// Figure 5's three columns and seven rows in a `size` area at `origin`.
[[nodiscard]] DiagramGeometry diagram_geometry(Vec2 origin, Vec2 size) noexcept;

// An arrow: a straight line from points[0] to points[3], or (edges up to CLOSED from
// below, which run along the right side so they cross no box) a cubic Bezier curve.
struct ArrowPath {
    std::array<Vec2, 4> points;
    bool curved = false;
};
[[nodiscard]] ArrowPath arrow_path(const DiagramGeometry& d, TcpState from, TcpState to) noexcept;
[[nodiscard]] Vec2 point_on(const ArrowPath& arrow, float t) noexcept;
// How far `p` is from the arrow (sampled along it).
[[nodiscard]] float distance_to(const ArrowPath& arrow, Vec2 p) noexcept;

// Where each step's numbered badge goes: on its own arrow, clear of the badges before it.
[[nodiscard]] std::vector<Vec2> badge_centres(const DiagramGeometry& d, std::span<const StateStep> steps, float radius);

// The panel's height split between the diagram and the list of steps under it: the
// list gets every line it has, else as many as leave the diagram room (at least three,
// scrolling).
struct StatePanelSplit {
    float diagram_h = 0;
    float list_h = 0;
    bool list_scrolls = false;
};
[[nodiscard]] StatePanelSplit split_state_panel(float available_h, std::size_t steps, float line_h) noexcept;
// The diagram's smallest height: seven rows of boxes a line of text tall.
[[nodiscard]] float diagram_min_height(float line_h) noexcept;
// The state panel's window, at its smallest readable: title bar and tabs, the socket's
// line, the whole diagram and three lines of its steps (view/layout.hpp's WindowNeeds).
[[nodiscard]] float state_panel_min_height(float line_h, float frame_h) noexcept;

}  // namespace portlab::viz
