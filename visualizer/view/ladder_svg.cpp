#include "view/ladder_svg.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "portlab/caption.hpp"
#include "portlab/text_safety.hpp"

namespace portlab::viz {
namespace {

// Sizes in SVG user units (pixels at 100%); a column is wide enough for a SYN's label
// with its options ("SYN Seq=0 Len=0 MSS=65495 SACK_PERM WS=128" in 11 px type).
constexpr double gutter = 120.0;   // the event number and time, left of the first column
constexpr double column_width = 300.0;
constexpr double head_height = 56.0;
constexpr double title_height = 28.0;
constexpr double row_height = 40.0;
constexpr double arrow_drop = 10.0;  // the arrow slopes down: the packet arrives after it leaves
constexpr double cross = 6.0;

// Black on white prints; red says what went wrong (a drop, a retransmission), as the tab does.
constexpr const char* ink = "#222";
constexpr const char* faint = "#888";
constexpr const char* alarm = "#c00";

double column_x(std::size_t column) { return gutter + column_width * (static_cast<double>(column) + 0.5); }

void add_row(std::string& svg, const PacketRow& row, const LadderView::Row& arrow, double top, const replay::Timeline& timeline,
             const LadderSvgOptions& options) {
    const double x0 = column_x(arrow.from);
    const double x1 = column_x(arrow.to);
    const double y0 = top + row_height * 0.55;
    const double y1 = y0 + arrow_drop;
    const ArrowEnd end = arrow_end(row, options.position);
    const bool dropped = end.kind == ArrowEnd::Kind::dropped;
    const bool marked = !expert_mark(row).empty();
    // A packet from an address to itself (a capture of one address) is a short stub to the right.
    const double reach = x0 == x1 ? 24.0 : (x1 - x0) * end.fraction;
    const double stop_x = x0 + reach;
    const double stop_y = y0 + (y1 - y0) * (x0 == x1 ? 1.0 : end.fraction);
    svg += fmt::format("<g class=\"packet\" data-event=\"{}\">\n", row.event);
    svg += fmt::format("  <text class=\"when\" x=\"4\" y=\"{:.1f}\" fill=\"{}\">#{}  {}</text>\n", y0, faint, row.event,
                       xml_text(duration_text(timeline.event(row.event).t_us)));
    const double middle = (x0 + x1) / 2 + (x0 == x1 ? 12.0 : 0.0);
    svg += fmt::format("  <text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n", middle,
                       y0 - 6, marked ? alarm : ink, xml_text(marked_arrow_label(row, options.relative)));
    const char* head = end.kind == ArrowEnd::Kind::arrived ? " marker-end=\"url(#head)\"" : "";
    svg += fmt::format("  <line class=\"arrow\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"1.5\"{}/>\n",
                       x0, y0, stop_x, stop_y, marked ? alarm : ink, head);
    if (dropped) {
        svg += fmt::format("  <path class=\"drop\" d=\"M{:.1f},{:.1f} L{:.1f},{:.1f} M{:.1f},{:.1f} L{:.1f},{:.1f}\" stroke=\"{}\" stroke-width=\"3\"/>\n",
                           stop_x - cross, stop_y - cross, stop_x + cross, stop_y + cross, stop_x - cross, stop_y + cross,
                           stop_x + cross, stop_y - cross, alarm);
        const double side = x1 >= x0 ? 1.0 : -1.0;
        svg += fmt::format("  <text class=\"dropped\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" fill=\"{}\">{}</text>\n",
                           stop_x + side * (cross + 4), stop_y + 4, side > 0 ? "start" : "end", alarm, xml_text(drop_label(row)));
    }
    svg += "</g>\n";
}

}  // namespace

std::string suggested_export_path(const std::string& source_path, const std::string& label, std::size_t position,
                                  std::string_view what, std::string_view extension) {
    const std::string tail = fmt::format("-{}-{}{}", what, position, extension);
    if (!source_path.empty()) {
        const std::filesystem::path source(source_path);
        return (source.parent_path() / (source.stem().string() + tail)).string();
    }
    // A scenario's label is "scenario NAME"; keep only what is safe in a file name.
    std::string name = label.starts_with("scenario ") ? label.substr(9) : label;
    std::replace_if(name.begin(), name.end(), [](char c) { return !(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'); }, '_');
    return "portlab-" + (name.empty() ? std::string("view") : name) + tail;
}

std::string xml_text(std::string_view text) {
    const std::string safe = text::printable(text);
    std::string out;
    out.reserve(safe.size());
    for (const char c : safe) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string ladder_svg(const PacketLadder& ladder, const LadderView& view, const replay::Timeline& timeline,
                       const LadderSvgOptions& options) {
    const std::size_t shown = view.visible(ladder, options.position);
    const std::size_t columns = std::max<std::size_t>(view.columns.size(), 1);
    const double top = options.title.empty() ? 0.0 : title_height;
    const double width = gutter + column_width * static_cast<double>(columns) + 20;
    const double rows_top = top + head_height;
    const double height = rows_top + row_height * static_cast<double>(shown) + row_height;
    std::string svg;
    svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    svg += fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
                       "font-family=\"DejaVu Sans, sans-serif\" font-size=\"11\">\n",
                       width, height);
    svg += "<title>" + xml_text(options.title.empty() ? "portlab ladder diagram" : options.title) + "</title>\n";
    svg += fmt::format("<defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" "
                       "orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#222\"/></marker></defs>\n");
    svg += fmt::format("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    if (!options.title.empty())
        svg += fmt::format("<text class=\"title\" x=\"4\" y=\"18\" font-size=\"14\" fill=\"{}\">{}</text>\n", ink, xml_text(options.title));
    // Column heads (host name over endpoint) and lifelines.
    for (std::size_t c = 0; c < view.columns.size(); ++c) {
        const auto& column = view.columns[c];
        const double x = column_x(c);
        svg += fmt::format("<text class=\"host\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n", x, top + 18,
                           faint, xml_text(column.host));
        svg += fmt::format("<text class=\"column\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-weight=\"bold\" fill=\"{}\">{}</text>\n",
                           x, top + 36, ink, xml_text(column.label));
        svg += fmt::format("<line class=\"lifeline\" x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" stroke-dasharray=\"4 3\"/>\n",
                           x, rows_top - 8, height - 8, faint);
    }
    for (std::size_t r = 0; r < shown; ++r) {
        const auto& arrow = view.rows[r];
        add_row(svg, ladder.rows()[arrow.row], arrow, rows_top + row_height * static_cast<double>(r), timeline, options);
    }
    svg += "</svg>\n";
    return svg;
}

}  // namespace portlab::viz
