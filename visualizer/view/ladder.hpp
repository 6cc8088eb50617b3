#pragma once
// The packets of a trace as textbooks and Wireshark draw them: a ladder (sequence)
// diagram, one column per endpoint, one arrow per packet with time going down, and
// a packet list with an Info column like Wireshark's. No window here.
//
// PacketLadder   every packet of the timeline, once: its two endpoints, TCP numbers
//                (absolute and relative to each side's ISN), what became of it (a
//                drop, and who took it), and the expert marks Wireshark's
//                tcp.analysis gives (retransmission, duplicate ACK), simplified.
//                Built once per source and extended as a loading file grows; the
//                cursor never rebuilds it (the panels ask visible_rows()).
// LadderView     the columns and rows a filter lets through (port, flags, one
//                connection): recomputed when the filter or the packets change.
//
// A packet the trace reports twice (sent, then delivered or dropped, as the
// simulator does) is one row: its `sent` event, and its fate. Packets are decoded
// by the hub's decoder (portlab/packet.hpp), never re-parsed here.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "portlab/net.hpp"
#include "replay/state.hpp"
#include "view/layout.hpp"

namespace portlab::viz {

// One packet, as the ladder and the packet list show it.
struct PacketRow {
    std::size_t event = 0;             // the `sent` event (or the fate, when the trace has no `sent` for it)
    std::optional<std::size_t> fate;   // the `delivered` or `dropped` event, when the trace reports one
    replay::PacketLabel label = replay::PacketLabel::other;
    std::optional<Protocol> protocol;  // tcp, udp; none for ICMP and undecodable packets
    Endpoint source;                   // ICMP: the quoted packet's ends, turned round (the error goes back)
    Endpoint destination;
    std::size_t from_endpoint = 0;     // indices into PacketLadder::endpoints()
    std::size_t to_endpoint = 0;
    std::size_t from_address = 0;      // indices into PacketLadder::addresses()
    std::size_t to_address = 0;
    std::size_t payload = 0;           // application bytes (TCP/UDP Len=)
    // TCP only (flags 0 otherwise).
    std::uint8_t flags = 0;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint32_t relative_seq = 0;    // seq minus the sender's ISN (RFC 9293 3.4)
    std::uint32_t relative_ack = 0;    // ack minus the receiver's ISN
    std::uint16_t window = 0;          // as in the header
    std::uint32_t scaled_window = 0;   // window << the sender's shift, once both SYNs offered one (RFC 7323 2.2)
    TcpOptions options;
    bool retransmission = false;       // data, SYN or FIN whose sequence range this side already sent
    bool duplicate_ack = false;        // ACK only, same ack number and window as this side's previous ACK
    std::optional<DropWords> drop;     // set when the fate is a drop: by a firewall rule, or lost on the link
    bool lost_on_link = false;         // the drop's cause is the link (it stopped between the hosts)
    std::string other;                 // what the decoder says of a packet that is neither TCP nor UDP
};

// One column of the ladder: an endpoint (host:port), or a host's address.
struct LadderColumn {
    std::string host;   // the trace's host name, when the trace said which host sent or took it
    std::string label;  // "10.0.0.1:40000", or the address alone for a host column
};

class PacketLadder {
public:
    // Decodes the events of `timeline` not seen yet, at most `budget` of them.
    void extend(const replay::Timeline& timeline, std::size_t budget = static_cast<std::size_t>(-1));
    [[nodiscard]] std::size_t events_seen() const noexcept { return events_seen_; }

    [[nodiscard]] const std::vector<PacketRow>& rows() const noexcept { return rows_; }
    [[nodiscard]] const std::vector<LadderColumn>& endpoints() const noexcept { return endpoints_; }
    [[nodiscard]] const std::vector<LadderColumn>& addresses() const noexcept { return addresses_; }
    // Rows whose packet had left by `position` events (their `sent` is before it): a prefix.
    [[nodiscard]] std::size_t visible_rows(std::size_t position) const;
    // The row event `index` belongs to (as its `sent` or its fate), if it is a packet.
    [[nodiscard]] std::optional<std::size_t> row_of_event(const replay::Timeline& timeline, std::size_t index) const;

private:
    // What one side of a TCP conversation has sent so far (Wireshark's tcp_flow_t, cut down).
    struct Flow {
        bool sent = false;                // a segment of this side was seen (else base_seq came from the peer's ACK)
        std::uint32_t base_seq = 0;       // its ISN: the SYN's seq, else the first seq seen minus 1 (as Wireshark)
        std::uint32_t next_seq = 0;       // one past the highest sequence number it has sent
        std::optional<std::uint32_t> last_ack;
        std::uint16_t last_window = 0;
        std::optional<std::uint8_t> window_scale;  // the shift its SYN offered
    };
    void add(const replay::Timeline& timeline, std::size_t index, const trace::Packet& packet);
    void analyse_tcp(PacketRow& row);
    std::size_t column(std::vector<LadderColumn>& columns, std::map<std::string, std::size_t>& index, std::string label,
                       const std::optional<std::string>& host);

    std::size_t events_seen_ = 0;
    std::vector<PacketRow> rows_;
    std::vector<LadderColumn> endpoints_;
    std::vector<LadderColumn> addresses_;
    std::map<std::string, std::size_t> endpoint_index_;
    std::map<std::string, std::size_t> address_index_;
    std::map<FourTuple, Flow> flows_;  // by (source, destination): a connection's two sides are two flows
};

// The Info column, as Wireshark writes it for TCP, UDP and ICMP:
// "[TCP Retransmission] 40002 → 8080 [SYN, ACK] Seq=0 Ack=1 Win=65483 Len=0 MSS=65495 SACK_PERM WS=128".
// relative: seq/ack relative to each side's ISN (Wireshark's default), else absolute.
[[nodiscard]] std::string info_text(const PacketRow& row, bool relative = true);
// An arrow's label on the ladder: "SYN, ACK  Seq=0 Ack=1 Len=0" (Wireshark's Flow Graph words).
[[nodiscard]] std::string arrow_label(const PacketRow& row, bool relative = true);
// The text over an arrow: the expert mark, then arrow_label ("[TCP Retransmission] SYN Seq=0 Len=0").
[[nodiscard]] std::string marked_arrow_label(const PacketRow& row, bool relative = true);
// Who took a dropped packet, written after the label: "✗ firewall: tcp dport 22 drop (rule r1)",
// "✗ lost on the link"; empty when the packet was not dropped.
[[nodiscard]] std::string drop_label(const PacketRow& row);
// How far a packet's arrow reaches at `position` events (the first `position` applied):
// a packet whose fate the trace reports is on the link (halfway) until that event, then
// arrives, or stops at its X: halfway when the link lost it, at the receiver's door when
// a firewall or a missing socket took it. A packet with no reported fate (lab traces,
// captures) arrives at once.
struct ArrowEnd {
    enum class Kind : std::uint8_t { arrived, in_flight, dropped };
    Kind kind = Kind::arrived;
    float fraction = 1.0f;  // of the way from the sender's column to the receiver's
};
[[nodiscard]] ArrowEnd arrow_end(const PacketRow& row, std::size_t position) noexcept;
// "[TCP Retransmission]", "[TCP Dup ACK]", or empty.
[[nodiscard]] std::string expert_mark(const PacketRow& row);

// Which packets the list and the ladder show.
struct PacketFilter {
    std::optional<Port> port;              // either end's port
    std::uint8_t flags = 0;                // tcp_flag bits that must all be set
    std::optional<FourTuple> connection;   // one 4-tuple, either direction ("follow this connection")
    bool marked_only = false;              // only retransmissions and duplicate ACKs
    [[nodiscard]] bool allows(const PacketRow& row) const noexcept;
    [[nodiscard]] bool allows_everything() const noexcept {
        return !port && flags == 0 && !connection && !marked_only;
    }
    friend bool operator==(const PacketFilter&, const PacketFilter&) = default;
};
// The 4-tuple of a row, seen from its source: what "follow this connection" filters on.
[[nodiscard]] FourTuple tuple_of(const PacketRow& row) noexcept;

enum class ColumnMode : std::uint8_t {
    automatic,  // endpoints, unless there are more than fit (a scan): then hosts
    endpoints,
    hosts,
};
inline constexpr std::size_t automatic_endpoint_limit = 6;

struct LadderView {
    std::vector<LadderColumn> columns;  // only those the rows touch, in order of first use
    struct Row {
        std::size_t row = 0;  // index into PacketLadder::rows()
        std::size_t from = 0;  // columns
        std::size_t to = 0;
    };
    std::vector<Row> rows;  // ascending by event
    bool by_host = false;
    // Rows shown at `position` events: the prefix whose packet has left.
    [[nodiscard]] std::size_t visible(const PacketLadder& ladder, std::size_t position) const;
};
[[nodiscard]] LadderView make_ladder_view(const PacketLadder& ladder, const PacketFilter& filter, ColumnMode mode);

// What the ladder and packet-list panels keep between frames (ViewState holds one):
// the ladder, extended only when the timeline grows, and the view of it, remade
// only when the filter, the column mode or the packets change; never per frame.
struct PacketViews {
    PacketFilter filter;  // shared by the ladder and the packet list
    ColumnMode mode = ColumnMode::automatic;
    bool relative = true;  // seq/ack relative to each side's ISN, else absolute
    PacketLadder ladder;
    LadderView view;
    std::size_t generation = static_cast<std::size_t>(-1);  // the Model::generation() the ladder was built from
    PacketFilter view_filter;
    ColumnMode view_mode = ColumnMode::automatic;
    std::size_t view_rows = static_cast<std::size_t>(-1);  // ladder.rows().size() when the view was made
    std::size_t scrolled_for = static_cast<std::size_t>(-1);  // the position the ladder last scrolled to
    std::size_t list_scrolled_for = static_cast<std::size_t>(-1);
    // Whether the ladder has events of a timeline of `size` events still to read.
    [[nodiscard]] bool catching_up(std::size_t size) const noexcept { return ladder.events_seen() < size; }
};
// Events a frame reads into the ladder: a packet costs ~6 us to decode, so a big trace
// fills the tabs over a few frames (the app keeps drawing meanwhile) instead of freezing one.
inline constexpr std::size_t ladder_events_per_frame = 20'000;
// Brings `views` up to date with the timeline (`generation` tells a new source), reading at
// most `budget` events; the view is remade once the ladder has caught up (and on the first call).
const LadderView& refresh(PacketViews& views, const replay::Timeline& timeline, std::size_t generation,
                          std::size_t budget = ladder_events_per_frame);

}  // namespace portlab::viz
