// The ladder diagram's and the packet list's rows: each packet decoded once by
// the hub's decoder, its TCP numbers made relative to each side's ISN, and the two
// expert marks of Wireshark's tcp.analysis that a student meets first, simplified
// from packet-tcp.c's tcp_analyze_sequence_number():
//   retransmission  a segment that occupies sequence space (data, SYN or FIN) and
//                   starts before the highest sequence number its side already sent;
//   duplicate ACK   no data, no SYN/FIN/RST, and the same ack number and window as
//                   the previous segment of its side, at the same sequence number.
#include "view/ladder.hpp"

#include <algorithm>
#include <fmt/format.h>

#include "portlab/caption.hpp"
#include "portlab/packet.hpp"

namespace portlab::viz {
namespace {

// Sequence-number comparison modulo 2^32 (RFC 9293 3.4).
bool seq_before(std::uint32_t a, std::uint32_t b) noexcept { return static_cast<std::int32_t>(a - b) < 0; }

std::uint32_t sequence_length(const PacketRow& row) noexcept {
    return static_cast<std::uint32_t>(row.payload) + ((row.flags & tcp_flag::syn) ? 1u : 0u) +
           ((row.flags & tcp_flag::fin) ? 1u : 0u);
}

std::string endpoint_label(const Endpoint& endpoint) {
    return endpoint.port == 0 ? endpoint.address.to_string() : endpoint.to_string();
}

// "SYN, ACK": the hub's flag names, spaced as Wireshark's Info column spaces them.
std::string flag_words(std::uint8_t flags) {
    std::string words = tcp_flags_to_string(flags);
    for (std::size_t at = words.find(','); at != std::string::npos; at = words.find(',', at + 2)) words.insert(at + 1, " ");
    return words;
}

// Linux lays out a SYN's options in this order, and Wireshark lists them as they come.
std::string option_words(const TcpOptions& options) {
    std::string words;
    if (options.mss) words += fmt::format(" MSS={}", *options.mss);
    if (options.sack_permitted) words += " SACK_PERM";
    if (options.timestamps) words += fmt::format(" TSval={} TSecr={}", options.timestamps->first, options.timestamps->second);
    if (options.window_scale) words += fmt::format(" WS={}", 1u << std::min<unsigned>(*options.window_scale, 14));
    return words;
}

void note_drop(PacketRow& row, const trace::Packet& packet) {
    row.drop = drop_words(packet);
    row.lost_on_link = packet.cause == trace::DropCause::link;
}

}  // namespace

// ---- building ------------------------------------------------------------------

void PacketLadder::extend(const replay::Timeline& timeline, std::size_t budget) {
    const std::size_t end = timeline.size() - events_seen_ > budget ? events_seen_ + budget : timeline.size();
    for (; events_seen_ < end; ++events_seen_)
        if (const auto* packet = std::get_if<trace::Packet>(&timeline.event(events_seen_).body))
            add(timeline, events_seen_, *packet);
}

std::size_t PacketLadder::column(std::vector<LadderColumn>& columns, std::map<std::string, std::size_t>& index,
                                 std::string label, const std::optional<std::string>& host) {
    auto [found, added] = index.try_emplace(label, columns.size());
    if (added) columns.push_back({host.value_or(""), std::move(label)});
    else if (host && columns[found->second].host.empty()) columns[found->second].host = *host;
    return found->second;
}

void PacketLadder::add(const replay::Timeline& timeline, std::size_t index, const trace::Packet& packet) {
    // A fate of a packet already listed completes its row.
    if (packet.kind != trace::PacketKind::sent) {
        if (const auto sent = timeline.sent_of(index)) {
            if (const auto row = row_of_event(timeline, *sent)) {
                rows_[*row].fate = index;
                if (packet.kind == trace::PacketKind::dropped) note_drop(rows_[*row], packet);
                return;
            }
        }
    }
    const auto decoded = decode_frame(packet.link, packet.bytes);
    if (!decoded) return;  // nothing to draw an arrow between; the event list and inspector say why
    PacketRow row;
    row.event = index;
    row.label = label_of(*decoded);
    row.protocol = decoded->protocol();
    row.payload = decoded->payload_length;
    if (const auto source = decoded->source(), destination = decoded->destination(); source && destination) {
        row.source = *source;
        row.destination = *destination;
    } else {
        // ICMP (an error about a packet it quotes) goes back to that packet's sender:
        // from the quoted destination's port to the quoted source's.
        row.source = {decoded->ip.source, 0};
        row.destination = {decoded->ip.destination, 0};
        if (decoded->icmp) {
            row.source.port = decoded->icmp->quoted_destination_port.value_or(0);
            row.destination.port = decoded->icmp->quoted_source_port.value_or(0);
            row.other = decoded->icmp->description;
        } else {
            row.other = decoded->summary();
        }
    }
    if (packet.kind != trace::PacketKind::sent) row.fate = index;
    if (packet.kind == trace::PacketKind::dropped) note_drop(row, packet);

    const auto& event = timeline.event(index);
    const auto sender = packet.from_host ? packet.from_host.optional()
                                         : (packet.kind == trace::PacketKind::sent ? std::optional(event.host) : std::nullopt);
    const auto receiver = packet.to_host ? packet.to_host.optional()
                                         : (packet.kind == trace::PacketKind::delivered ? std::optional(event.host) : std::nullopt);
    row.from_endpoint = column(endpoints_, endpoint_index_, endpoint_label(row.source), sender);
    row.to_endpoint = column(endpoints_, endpoint_index_, endpoint_label(row.destination), receiver);
    row.from_address = column(addresses_, address_index_, row.source.address.to_string(), sender);
    row.to_address = column(addresses_, address_index_, row.destination.address.to_string(), receiver);

    if (decoded->tcp) {
        row.flags = decoded->tcp->flags;
        row.seq = decoded->tcp->sequence;
        row.ack = decoded->tcp->acknowledgment;
        row.window = decoded->tcp->window;
        row.options = decoded->tcp->options;
        analyse_tcp(row);
    }
    rows_.push_back(std::move(row));
}

void PacketLadder::analyse_tcp(PacketRow& row) {
    const FourTuple tuple{row.source, row.destination};
    Flow& flow = flows_[tuple];
    Flow& peer = flows_[tuple.reversed()];
    const bool syn = (row.flags & tcp_flag::syn) != 0;
    const bool has_ack = (row.flags & tcp_flag::ack) != 0;
    // A first segment, or a new SYN on a 4-tuple used before (a new connection after TIME-WAIT).
    if (!flow.sent || (syn && row.seq != flow.base_seq)) {
        flow = Flow{};
        flow.sent = true;
        flow.base_seq = syn ? row.seq : row.seq - 1;
        flow.next_seq = row.seq;
    }
    if (syn) flow.window_scale = row.options.window_scale;
    // An ACK before the peer's first segment was seen: Wireshark takes ack - 1 as its ISN.
    if (has_ack && !peer.sent && peer.base_seq == 0 && peer.next_seq == 0) {
        peer.base_seq = row.ack - 1;
        peer.next_seq = row.ack;
    }
    row.relative_seq = row.seq - flow.base_seq;
    row.relative_ack = has_ack ? row.ack - peer.base_seq : 0;
    // RFC 7323 2.2: a SYN's window is never scaled; the rest are, once both SYNs offered a shift.
    const bool scaled = !syn && flow.window_scale && peer.window_scale;
    row.scaled_window = scaled ? static_cast<std::uint32_t>(row.window) << std::min<unsigned>(*flow.window_scale, 14)
                               : row.window;

    const std::uint32_t length = sequence_length(row);
    row.retransmission = length > 0 && seq_before(row.seq, flow.next_seq);
    row.duplicate_ack = length == 0 && has_ack && row.window != 0 && !(row.flags & (tcp_flag::syn | tcp_flag::fin | tcp_flag::rst)) &&
                        row.seq == flow.next_seq && flow.last_ack == row.ack && row.window == flow.last_window;
    if (seq_before(flow.next_seq, row.seq + length)) flow.next_seq = row.seq + length;
    if (has_ack) flow.last_ack = row.ack;
    flow.last_window = row.window;
}

// ---- reading -------------------------------------------------------------------

std::size_t PacketLadder::visible_rows(std::size_t position) const {
    return static_cast<std::size_t>(
        std::partition_point(rows_.begin(), rows_.end(), [&](const PacketRow& row) { return row.event < position; }) -
        rows_.begin());
}

std::optional<std::size_t> PacketLadder::row_of_event(const replay::Timeline& timeline, std::size_t index) const {
    const auto* packet = index < timeline.size() ? std::get_if<trace::Packet>(&timeline.event(index).body) : nullptr;
    if (!packet) return std::nullopt;
    if (packet->kind != trace::PacketKind::sent)
        if (const auto sent = timeline.sent_of(index)) index = *sent;
    const auto row = std::partition_point(rows_.begin(), rows_.end(), [&](const PacketRow& r) { return r.event < index; });
    if (row != rows_.end() && row->event == index) return static_cast<std::size_t>(row - rows_.begin());
    return std::nullopt;
}

ArrowEnd arrow_end(const PacketRow& row, std::size_t position) noexcept {
    if (row.fate && *row.fate >= position) return {ArrowEnd::Kind::in_flight, 0.5f};
    if (row.drop) return {ArrowEnd::Kind::dropped, row.lost_on_link ? 0.5f : 0.85f};
    return {ArrowEnd::Kind::arrived, 1.0f};
}

// ---- words ---------------------------------------------------------------------

std::string expert_mark(const PacketRow& row) {
    if (row.retransmission) return "[TCP Retransmission]";
    if (row.duplicate_ack) return "[TCP Dup ACK]";
    return {};
}

std::string info_text(const PacketRow& row, bool relative) {
    const std::string ports = fmt::format("{} → {}", row.source.port, row.destination.port);
    if (row.protocol == Protocol::udp) return fmt::format("{} Len={}", ports, row.payload);
    if (row.protocol != Protocol::tcp) return row.other;
    std::string text = expert_mark(row);
    if (!text.empty()) text += ' ';
    text += fmt::format("{} [{}] Seq={}", ports, flag_words(row.flags), relative ? row.relative_seq : row.seq);
    if (row.flags & tcp_flag::ack) text += fmt::format(" Ack={}", relative ? row.relative_ack : row.ack);
    text += fmt::format(" Win={} Len={}", row.scaled_window, row.payload);
    return text + option_words(row.options);
}

std::string arrow_label(const PacketRow& row, bool relative) {
    if (row.protocol == Protocol::udp) return fmt::format("UDP Len={}", row.payload);
    if (row.protocol != Protocol::tcp) return row.other;
    std::string text = fmt::format("{} Seq={}", flag_words(row.flags), relative ? row.relative_seq : row.seq);
    if (row.flags & tcp_flag::ack) text += fmt::format(" Ack={}", relative ? row.relative_ack : row.ack);
    return text + fmt::format(" Len={}", row.payload);
}

std::string marked_arrow_label(const PacketRow& row, bool relative) {
    const std::string mark = expert_mark(row);
    return mark.empty() ? arrow_label(row, relative) : mark + " " + arrow_label(row, relative);
}

std::string drop_label(const PacketRow& row) {
    if (!row.drop) return {};
    return "✗ " + std::string(row.drop->by_firewall ? "firewall: " : "") + row.drop->text;
}

// ---- filters and the view --------------------------------------------------------

FourTuple tuple_of(const PacketRow& row) noexcept { return {row.source, row.destination}; }

bool PacketFilter::allows(const PacketRow& row) const noexcept {
    if (port && row.source.port != *port && row.destination.port != *port) return false;
    if ((row.flags & flags) != flags) return false;
    if (connection && tuple_of(row) != *connection && tuple_of(row) != connection->reversed()) return false;
    if (marked_only && !row.retransmission && !row.duplicate_ack && !row.drop) return false;
    return true;
}

LadderView make_ladder_view(const PacketLadder& ladder, const PacketFilter& filter, ColumnMode mode) {
    LadderView view;
    std::vector<std::size_t> chosen;
    std::vector<bool> endpoint_used(ladder.endpoints().size());
    std::size_t endpoints_used = 0;
    for (std::size_t i = 0; i < ladder.rows().size(); ++i) {
        const auto& row = ladder.rows()[i];
        if (!filter.allows(row)) continue;
        chosen.push_back(i);
        for (const std::size_t e : {row.from_endpoint, row.to_endpoint})
            if (!endpoint_used[e]) endpoint_used[e] = true, ++endpoints_used;
    }
    view.by_host = mode == ColumnMode::hosts || (mode == ColumnMode::automatic && endpoints_used > automatic_endpoint_limit);
    const auto& source = view.by_host ? ladder.addresses() : ladder.endpoints();
    std::map<std::size_t, std::size_t> column_of;  // ladder column -> view column
    const auto use = [&](std::size_t c) {
        auto [found, added] = column_of.try_emplace(c, view.columns.size());
        if (added) view.columns.push_back(source[c]);
        return found->second;
    };
    view.rows.reserve(chosen.size());
    for (const std::size_t i : chosen) {
        const auto& row = ladder.rows()[i];
        const std::size_t from = use(view.by_host ? row.from_address : row.from_endpoint);
        const std::size_t to = use(view.by_host ? row.to_address : row.to_endpoint);
        view.rows.push_back({i, from, to});
    }
    return view;
}

std::size_t LadderView::visible(const PacketLadder& ladder, std::size_t position) const {
    return static_cast<std::size_t>(
        std::partition_point(rows.begin(), rows.end(), [&](const Row& r) { return ladder.rows()[r.row].event < position; }) -
        rows.begin());
}

const LadderView& refresh(PacketViews& views, const replay::Timeline& timeline, std::size_t generation, std::size_t budget) {
    if (views.generation != generation) {
        views.ladder = PacketLadder{};
        views.generation = generation;
        views.view_rows = static_cast<std::size_t>(-1);
        views.filter.connection.reset();  // a 4-tuple of the previous source
    }
    views.ladder.extend(timeline, budget);
    const bool first = views.view_rows == static_cast<std::size_t>(-1);
    const bool changed = views.view_rows != views.ladder.rows().size() || views.view_filter != views.filter || views.view_mode != views.mode;
    if (first || (changed && !views.catching_up(timeline.size()))) {
        views.view = make_ladder_view(views.ladder, views.filter, views.mode);
        views.view_rows = views.ladder.rows().size();
        views.view_filter = views.filter;
        views.view_mode = views.mode;
    }
    return views.view;
}

}  // namespace portlab::viz
