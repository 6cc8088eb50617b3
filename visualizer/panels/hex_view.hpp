#pragma once
// A hex dump that does not own its bytes (imgui_club's memory editor style):
// each frame it draws the span it is given, tints each byte by the layer it
// belongs to, lights the highlighted ranges, and reports the byte under the pointer
// and whether it was clicked.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "portlab/packet.hpp"
#include "view/hexmap.hpp"
#include "view/layout.hpp"

namespace portlab::viz::hex_view {

struct Pointer {
    std::optional<std::size_t> hovered;  // the byte under the pointer
    bool clicked = false;                // and the left button was clicked on it this frame
    // Where it was drawn: the first row's top-left corner (screen pixels), the geometry of
    // its cells, and the part of the window on screen (view_state.hpp's DrawnPlaces).
    Vec2 origin;
    HexGeometry geometry;
    Rect visible;
};
// `reveal`: a byte to scroll into view this frame (a field clicked in the tree).
[[nodiscard]] Pointer draw(std::span<const std::uint8_t> bytes, std::span<const Layer> layers, const Highlight& lit,
                           std::optional<std::size_t> reveal = std::nullopt);

}  // namespace portlab::viz::hex_view
