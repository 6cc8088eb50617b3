#pragma once
// The ladder diagram as an SVG document, for handouts (File > Export ladder as SVG...,
// portlab-viz --export-ladder-svg FILE). The same picture as the Ladder tab, drawn for
// paper: one column per endpoint (or host) with its lifeline, time going down, one arrow
// per packet labelled as the tab labels it (view/ladder.hpp's marked_arrow_label), a drop
// ending in a red cross with who took it. Pure: no window, no file; the caller writes it.
//
// Every packet row is one <g class="packet" data-event="N"> holding exactly one
// <line class="arrow"> and one <text class="label">, so a reader (or a test) can count
// and read the arrows; a drop adds a <path class="drop">.

#include <cstddef>
#include <string>
#include <string_view>

#include "replay/state.hpp"
#include "view/ladder.hpp"

namespace portlab::viz {

struct LadderSvgOptions {
    std::size_t position = static_cast<std::size_t>(-1);  // events applied: rows sent before it are drawn
    bool relative = true;                                 // seq/ack relative to each side's ISN
    std::string title;                                    // a heading over the columns; none when empty
};

[[nodiscard]] std::string ladder_svg(const PacketLadder& ladder, const LadderView& view, const replay::Timeline& timeline,
                                     const LadderSvgOptions& options);

// Where File > Export writes unless the user types another path: next to the file shown,
// named after it and the cursor ("captures/web.pcap", 12, ".png" -> "captures/web-event-12.png");
// for a scenario (no file), in the current folder ("scenario web" -> "portlab-web-event-12.png").
[[nodiscard]] std::string suggested_export_path(const std::string& source_path, const std::string& label, std::size_t position,
                                                std::string_view what, std::string_view extension);

// `text` made safe inside an XML element or a quoted attribute: control bytes and invalid
// UTF-8 as visible escapes (text::printable), then & < > " ' as entities.
[[nodiscard]] std::string xml_text(std::string_view text);

}  // namespace portlab::viz
