#pragma once
// A hex dump that does not own its bytes (imgui_club's memory editor style):
// each frame it draws the span it is given, tints each byte by the layer it
// belongs to, lights the highlighted ranges, and reports the byte under the pointer.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "portlab/packet.hpp"
#include "view/hexmap.hpp"

namespace portlab::viz::hex_view {

[[nodiscard]] std::optional<std::size_t> draw(std::span<const std::uint8_t> bytes, std::span<const Layer> layers,
                                              const Highlight& lit);

}  // namespace portlab::viz::hex_view
