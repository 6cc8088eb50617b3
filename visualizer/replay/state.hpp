#pragma once
// The world a trace describes, rebuilt from its events: which hosts exist, which
// sockets each holds (protocol, local and remote endpoints, TCP state), each
// host's ephemeral pool as the events report it, packets in flight, firewall
// drops and failed calls. The visualizer draws this; nothing here draws, reads a
// clock or decides how TCP behaves: a State only records what the events say.
//
// State     the state after the first N events of a trace (apply one event at a time).
// Timeline  the events plus copies of the State every K events (checkpoints), so
//           moving to any event, forwards or backwards, is one copy and < K applies
//           instead of a replay from the start. Copies share the sockets they have in
//           common (PagedMap), so a checkpoint costs what changed since the one before.
// Captions come from the hub (portlab/caption.hpp), the same words portlab-sim prints.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portlab/caption.hpp"
#include "portlab/conversation.hpp"
#include "portlab/net.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"
#include "portlab/services.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/trace.hpp"
#include "replay/paged_map.hpp"

namespace portlab::replay {

using trace::SocketId;

// ---- what a socket looks like on screen ----------------------------------------

// The colour classes of a port slot. TCP sockets take theirs from the RFC 793
// state the events reported; UDP sockets from bound/connected.
enum class SlotState : std::uint8_t {
    created,      // socket() returned; no port yet
    bound,        // has a local port, not listening, not connected (ss: UNCONN)
    listening,    // LISTEN
    connecting,   // SYN-SENT, SYN-RECEIVED
    established,  // ESTABLISHED (and a connected UDP socket, which ss also calls ESTAB)
    closing,      // FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK
    time_wait,    // TIME-WAIT: the port stays taken for 2*MSL (RFC 793 3.5)
    closed,       // CLOSED after a connection (RST, or close() with no linger)
};
[[nodiscard]] std::string_view to_string(SlotState state) noexcept;

// A TCP timer between timer_armed and timer_fired/timer_stopped: a viewer counts
// down from expires_at_us.
struct RunningTimer {
    std::uint64_t armed_at_us = 0;
    std::uint64_t expires_at_us = 0;  // armed_at_us + the event's duration_us
    std::uint32_t attempt = 0;
    std::size_t armed_event = 0;
    // Microseconds left at `now_us` (0 once due).
    [[nodiscard]] std::uint64_t remaining_us(std::uint64_t now_us) const noexcept {
        return now_us >= expires_at_us ? 0 : expires_at_us - now_us;
    }
    friend bool operator==(const RunningTimer&, const RunningTimer&) = default;
};

struct Socket {
    SocketId id;
    Protocol protocol = Protocol::tcp;
    IpFamily family = IpFamily::v4;
    std::optional<Endpoint> local;   // set by `bound` (and by `accepted` for the new socket)
    std::optional<Endpoint> remote;  // set by `connect_started` or `accepted`
    std::optional<trace::BindHow> how;
    std::optional<std::string> bind_note;  // e.g. "SO_REUSEADDR set"
    TcpState tcp_state = TcpState::closed;
    bool state_reported = false;  // a state_changed event named this socket
    std::optional<trace::Evidence> evidence;  // how the last state_changed knew its state
    std::map<trace::TimerKind, RunningTimer> timers;  // armed and neither fired nor stopped yet
    bool listening = false;       // a `listening` event named it
    std::uint32_t backlog = 0;
    bool closed_by_app = false;   // a `closed` event named it, but TCP still holds the port
    bool implicit = false;        // first named by an event other than socket_created/accepted
    std::optional<SocketId> listener;  // for a socket made for a connection at a listener (child_created or accepted)
    bool awaiting_accept = false;      // child_created, and accept() has not returned it yet (SYN-RECV / accept queue)
    std::optional<std::string> error;  // errno name of the last call that failed on it ("ECONNREFUSED")
    // The endpoint a failed bind() asked for: the socket holds no port, but the picture must
    // say which port was refused (lab01's EACCES below 1024, lab06's EADDRINUSE).
    std::optional<Endpoint> refused_bind;
    std::size_t created_at = 0;  // index of the event that introduced it
    std::size_t changed_at = 0;  // index of the last event that named it

    [[nodiscard]] SlotState slot_state() const noexcept;
    // The state a viewer names: the RFC 793 state when the trace made it known (a
    // state_changed, or a connection's socket, SYN-RECEIVED or ESTABLISHED by
    // definition), else the slot's colour class ("bound", "listening", ...).
    [[nodiscard]] std::string_view state_name() const noexcept;
    // Whether the socket holds its local port: bound, and not yet gone.
    [[nodiscard]] bool holds_port() const noexcept { return local.has_value(); }
    friend bool operator==(const Socket&, const Socket&) = default;
};

// The ephemeral pool as the events describe it; the ports in use are those held
// by the host's sockets (State::ports_in_use).
struct EphemeralPool {
    std::optional<PortRange> range;  // from the last ephemeral_assigned event
    std::string algorithm;
    std::optional<trace::Parity> parity;  // of the last choice, when the event said
    std::optional<Port> last;
    std::size_t assignments = 0;
    std::vector<Port> recent;  // the last few choices, oldest first (at most recent_limit)

    static constexpr std::size_t recent_limit = 16;
    friend bool operator==(const EphemeralPool&, const EphemeralPool&) = default;
};

// A firewall rule in force on a host (rule_added, not yet rule_removed), in chain order.
struct RuleInForce {
    std::string id;
    FirewallRule rule;
    std::size_t added_event = 0;
    friend bool operator==(const RuleInForce&, const RuleInForce&) = default;
};

// What a scanner on this host knows of one port it probed.
struct ScannedPort {
    scan::ScanType scan = scan::ScanType::connect;
    Endpoint target;
    std::uint32_t probes = 0;                  // scan_probe events so far
    std::optional<scan::PortState> state;      // from scan_result; none while it waits
    std::optional<scan::Reason> reason;
    std::size_t last_event = 0;
    friend bool operator==(const ScannedPort&, const ScannedPort&) = default;
};

// One address translation a router set up (a `nat` event), as its connection-tracking
// table holds it: `conntrack -L` prints the original tuple (the packet as it reached the
// router) and the reply tuple (what an answer must carry: the packet as the router sent
// it on, reversed).
struct Translation {
    std::uint32_t conntrack_id = 0;
    trace::NatKind kind = trace::NatKind::snat;
    Protocol protocol = Protocol::tcp;
    trace::Flow original;  // the flow before the translation
    trace::Flow after;     // as the router sent it on
    std::size_t event = 0;  // the nat event
    [[nodiscard]] trace::Flow reply() const noexcept { return trace::Flow{after.destination, after.source}; }
    friend bool operator==(const Translation&, const Translation&) = default;
};

struct Host {
    std::string name;
    bool declared = false;  // by a `host` event (version 2); else it appeared because an event named it
    std::string role;       // from the `host` event: "client", "server", "scanner", ...
    std::vector<IpAddress> addresses;  // declared, then specific addresses seen bound or accepted on, first seen first
    PagedMap<Socket> sockets;  // live sockets by id (read as a std::map); a socket leaves when it is gone for good
    EphemeralPool pool;
    std::size_t errors = 0;
    std::vector<RuleInForce> rules;  // the input chain, first rule first
    // Ports this host scanned, by (scan, target): a full TCP range is 65,535 entries.
    std::map<std::pair<scan::ScanType, Endpoint>, ScannedPort> scanned;
    // A router's translations, oldest first (a new one for a conntrack id replaces the old),
    // at most translation_limit, the newest kept.
    std::vector<Translation> translations;
    static constexpr std::size_t translation_limit = 4096;
    friend bool operator==(const Host&, const Host&) = default;
};

using HostIndex = std::size_t;

struct SocketRef {
    HostIndex host = 0;
    SocketId socket;
    friend auto operator<=>(const SocketRef&, const SocketRef&) = default;
};

struct PendingPacket {
    std::size_t event = 0;  // the `sent` event
    Bytes bytes;            // to pair it with its `delivered` / `dropped` event
    friend bool operator==(const PendingPacket&, const PendingPacket&) = default;
};

struct Drop {
    std::size_t event = 0;
    HostIndex host = 0;  // where it was dropped (the event's host)
    std::string rule;    // the event's rule text, or "(no rule given)"
    std::optional<trace::DropCause> cause;  // none in version-1 traces
    std::optional<std::string> rule_id;
    // A firewall's doing: cause firewall or ct-state (a router's stateful chain), or
    // (version 1) no cause but a rule named. A link loss or a missing socket is not.
    [[nodiscard]] bool by_firewall() const noexcept {
        return cause ? *cause == trace::DropCause::firewall || *cause == trace::DropCause::ct_state : rule != no_rule;
    }
    static constexpr std::string_view no_rule = "(no rule given)";
    friend bool operator==(const Drop&, const Drop&) = default;
};

// Firewall drops per rule: keyed by (host, rule_id), or the rule's text when the
// trace names no id (version 1).
struct RuleHits {
    std::size_t count = 0;
    std::size_t last_event = 0;
    std::string text;  // the rule as the last drop described it
    friend bool operator==(const RuleHits&, const RuleHits&) = default;
};

// Both ends of one connection, found by matching 4-tuples: a socket whose
// (local, remote) is another's (remote, local) is its peer. Across a router that translates
// addresses (NAT, port forwarding) the two ends hold different 4-tuples: the peer is the
// socket whose tuple is the translation's reply side (a `nat` event's after flow, turned
// round), as conntrack pairs its original and reply tuples.
struct Connection {
    Protocol protocol = Protocol::tcp;
    FourTuple tuple;               // seen from `a` when a is set, else from b's peer side
    std::optional<SocketRef> a;    // the side whose local endpoint is tuple.local
    std::optional<SocketRef> b;    // the side whose local endpoint is tuple.remote (untranslated)
    // Set when a router translated the connection: the router, and the 4-tuple on b's side
    // of it, in a's direction (after.source -> after.destination; b's own is its reverse).
    std::optional<HostIndex> via{};
    std::optional<FourTuple> far_tuple{};
};

class State {
public:
    // Applies the next event; `applied()` is its index before the call.
    void apply(const trace::Event& event);

    [[nodiscard]] std::size_t applied() const noexcept { return applied_; }
    [[nodiscard]] std::uint64_t now_us() const noexcept { return now_us_; }
    [[nodiscard]] const std::vector<Host>& hosts() const noexcept { return hosts_; }
    [[nodiscard]] std::optional<HostIndex> find_host(std::string_view name) const;
    [[nodiscard]] const Socket* find_socket(SocketRef ref) const;
    // The socket a packet between these endpoints belongs to on `host`: the one
    // with exactly this (local, remote), else the one bound to `local`'s port and
    // address (or the wildcard address) with no remote, such as a listener.
    [[nodiscard]] std::optional<SocketRef> socket_for(HostIndex host, Protocol protocol, const Endpoint& local,
                                                      const Endpoint& remote) const;
    // The host with this specific address, if exactly one has been seen with it.
    [[nodiscard]] std::optional<HostIndex> host_with_address(const IpAddress& address) const;
    [[nodiscard]] std::size_t socket_count() const noexcept { return socket_count_; }
    // Local ports in use on a host, ascending, per protocol.
    [[nodiscard]] std::vector<Port> ports_in_use(HostIndex host, Protocol protocol) const;
    // Every socket with a local and a remote endpoint, paired with its peer where
    // the peer is in the world too (through a router's translation when one has it);
    // sorted by protocol and tuple.
    [[nodiscard]] std::vector<Connection> connections() const;

    // Sent packets not yet reported delivered or dropped, oldest first (at most pending_limit).
    [[nodiscard]] const std::vector<PendingPacket>& in_flight() const noexcept { return in_flight_; }
    // The most recent drops, oldest first (at most drop_limit).
    [[nodiscard]] const std::vector<Drop>& drops() const noexcept { return drops_; }
    [[nodiscard]] const std::map<std::pair<HostIndex, std::string>, RuleHits>& rule_hits() const noexcept {
        return rule_hits_;
    }
    // The most recent failed calls (event indices), oldest first (at most error_limit).
    [[nodiscard]] const std::vector<std::size_t>& recent_errors() const noexcept { return recent_errors_; }
    [[nodiscard]] std::optional<std::size_t> last_note() const noexcept { return last_note_; }
    [[nodiscard]] std::optional<std::size_t> last_packet() const noexcept { return last_packet_; }

    static constexpr std::size_t pending_limit = 64;
    static constexpr std::size_t drop_limit = 64;
    static constexpr std::size_t error_limit = 16;

    friend bool operator==(const State&, const State&) = default;

private:
    HostIndex host_named(const std::string& name);
    void on_timer_end(HostIndex host, SocketId socket, trace::TimerKind timer);
    Socket& socket_on(HostIndex host, SocketId id, Protocol assumed);
    void note_address(HostIndex host, const IpAddress& address);
    void add_connection_socket(HostIndex host, SocketId listener, SocketId id, const FourTuple& tuple, TcpState state,
                               bool awaiting_accept);
    void forget_if_gone(HostIndex host, SocketId id);
    static void end_connection(Socket& socket);

    void on(HostIndex host, const trace::SocketCreated& body);
    void on(HostIndex host, const trace::Bound& body);
    void on(HostIndex host, const trace::Listening& body);
    void on(HostIndex host, const trace::ConnectStarted& body);
    void on(HostIndex host, const trace::EphemeralAssigned& body);
    void on(HostIndex host, const trace::Accepted& body);
    void on(HostIndex host, const trace::StateChanged& body);
    void on(HostIndex host, const trace::Packet& body);
    void on(HostIndex host, const trace::CallFailed& body);
    void on(HostIndex host, const trace::Closed& body);
    void on(HostIndex host, const trace::Note& body);
    void on(HostIndex host, const trace::HostAdded& body);
    void on(HostIndex host, const trace::TimerArmed& body);
    void on(HostIndex host, const trace::TimerFired& body);
    void on(HostIndex host, const trace::TimerStopped& body);
    void on(HostIndex host, const trace::ChildCreated& body);
    void on(HostIndex host, const trace::RuleAdded& body);
    void on(HostIndex host, const trace::RuleRemoved& body);
    void on(HostIndex host, const trace::ScanProbe& body);
    void on(HostIndex host, const trace::ScanResult& body);
    void on(HostIndex host, const trace::NatTranslated& body);

    std::size_t applied_ = 0;
    std::uint64_t now_us_ = 0;
    std::vector<Host> hosts_;
    std::map<std::string, HostIndex, std::less<>> host_index_;
    std::size_t socket_count_ = 0;
    std::vector<PendingPacket> in_flight_;
    std::vector<Drop> drops_;
    std::map<std::pair<HostIndex, std::string>, RuleHits> rule_hits_;
    std::vector<std::size_t> recent_errors_;
    std::optional<std::size_t> last_note_;
    std::optional<std::size_t> last_packet_;
};

// ---- packets, as a viewer labels them --------------------------------------------

// What a packet is (SYN, SYN-ACK, ..., UDP, ICMP): the hub's words, as captions use them.
using portlab::PacketLabel;
using portlab::label_of;

struct PacketInfo {
    bool decoded = false;
    std::string error;  // why decoding failed, when it did
    PacketLabel label = PacketLabel::other;
    std::optional<Protocol> protocol;
    std::optional<Endpoint> source;
    std::optional<Endpoint> destination;
    std::size_t payload = 0;
    std::string summary;  // DecodedPacket::summary(), tcpdump-like
};

[[nodiscard]] PacketInfo describe_packet(const trace::Packet& packet);

// ---- event kinds, for filters and "jump to the next ..." ----------------------------

enum class EventKind : std::uint8_t {
    socket_created,
    bound,
    listening,
    connect_started,
    ephemeral_assigned,
    accepted,
    state_changed,
    packet_sent,
    packet_delivered,
    packet_dropped,
    error,
    closed,
    note,
    host_added,
    timer_armed,
    timer_fired,
    timer_stopped,
    child_created,
    rule_added,
    rule_removed,
    scan_probe,
    scan_result,
    nat,
};
inline constexpr std::size_t event_kind_count = 23;
[[nodiscard]] EventKind kind_of(const trace::EventBody& body) noexcept;
[[nodiscard]] std::string_view to_string(EventKind kind) noexcept;

// ---- the timeline ------------------------------------------------------------------

struct TimelineOptions {
    // A checkpoint is taken at least this many events after the previous one, and
    // otherwise once as many events have passed as the world holds sockets: a seek
    // then applies fewer events than the world holds sockets, and the checkpoints'
    // memory stays O(events): what a checkpoint holds of its own is one handle per
    // page of 32 socket ids and the pages changed since the one before (PagedMap
    // shares the rest).
    std::size_t min_interval = 256;
    bool adaptive = true;  // false: exactly every min_interval events (tests use tiny intervals)
};

// The half of building a Timeline that can run on another thread: the world
// after every event so far, copied at each checkpoint. A loader runs one beside
// its parser and hands the checkpoints over with the events (Timeline::append's
// second form), so the window's thread only moves events into place.
class Checkpointer {
public:
    explicit Checkpointer(TimelineOptions options = {}) : options_(options) {}
    // Applies the next events of the trace, in order, and returns the checkpoints
    // taken among them (worlds after some of them, ascending).
    [[nodiscard]] std::vector<State> add(const trace::Event* first, std::size_t count);
    [[nodiscard]] std::vector<State> add(const std::vector<trace::Event>& events) { return add(events.data(), events.size()); }
    // Carries on from `world`, a checkpoint taken by a Checkpointer with the same options.
    void resume(const State& world);
    [[nodiscard]] const State& tail() const noexcept { return tail_; }

private:
    TimelineOptions options_;
    State tail_;
    std::size_t last_checkpoint_ = 0;  // tail_.applied() when the last checkpoint was taken
};

class Timeline {
public:
    explicit Timeline(trace::TraceHeader header, TimelineOptions options = {});
    [[nodiscard]] static Timeline of(trace::Trace trace, TimelineOptions options = {});

    // Adds events at the end (a loader may add them in pieces) and extends the checkpoints.
    void append(std::vector<trace::Event> events);
    // The same, with the checkpoints already taken by a Checkpointer (with this
    // timeline's options) that was fed every event of this timeline in order; a
    // checkpoint past the events appended so far is kept until they arrive.
    void append(std::vector<trace::Event> events, std::vector<State> checkpoints);
    // Room for this many events in all, so appending a big file in pieces never
    // moves the events already in (a million events are ~200 MB).
    void reserve(std::size_t events) { events_.reserve(events); }

    [[nodiscard]] const trace::TraceHeader& header() const noexcept { return header_; }
    [[nodiscard]] std::size_t size() const noexcept { return events_.size(); }
    [[nodiscard]] const trace::Event& event(std::size_t index) const { return events_.at(index); }
    [[nodiscard]] const std::vector<trace::Event>& events() const noexcept { return events_; }
    [[nodiscard]] const ServiceTable& services() const noexcept { return services_; }
    [[nodiscard]] std::size_t checkpoint_count() const noexcept { return checkpoints_.size(); }

    // The world after the first n events (0 <= n <= size(); larger n is clamped).
    [[nodiscard]] State state_at(std::size_t n) const;
    // Moves `world` (after world.applied() events of this timeline) to n events:
    // forwards by applying when that is cheaper, else from the nearest checkpoint.
    void seek(State& world, std::size_t n) const;

    // The caption of event `index`: the hub's sentence for it (a note's is its text).
    [[nodiscard]] std::string caption(std::size_t index) const;
    // A note right after event `index`, on the same host at the same time: it
    // tells why the event matters, beside (never instead of) its caption.
    [[nodiscard]] std::optional<std::size_t> note_for(std::size_t index) const;
    // What the timeline shows for event `index`: its caption, then the note for it
    // on a line of its own.
    [[nodiscard]] std::string narration(std::size_t index) const;
    // The protocol an event concerns: its socket's, or its packet's; none for notes
    // and for sockets the trace never introduced.
    [[nodiscard]] std::optional<Protocol> protocol_of(std::size_t index) const;
    // Decoded once and kept (packets are immutable); nullptr for non-packet events.
    [[nodiscard]] const PacketInfo* packet_info(std::size_t index) const;
    // Whether the trace reports deliveries, so sent packets can be shown in flight
    // until they arrive; lab traces and captures only see packets leave.
    [[nodiscard]] bool reports_deliveries() const noexcept { return reports_deliveries_; }
    // One packet's two ends: the `delivered` or `dropped` event that reports what
    // became of a `sent` packet (the first later one with the same bytes not
    // already matched, as State::in_flight pairs them), and the other way round.
    // None when the trace does not say (lab traces and captures see packets leave).
    [[nodiscard]] std::optional<std::size_t> fate_of(std::size_t sent) const;
    [[nodiscard]] std::optional<std::size_t> sent_of(std::size_t fate) const;
    // The event that introduced a socket (socket_created, child_created, or accepted without one).
    [[nodiscard]] std::optional<std::size_t> introduced_at(const std::string& host, SocketId socket) const;
    // Indices of the state_changed events of a socket up to (not including) event n.
    [[nodiscard]] std::vector<std::size_t> state_path(const std::string& host, SocketId socket, std::size_t n) const;

private:
    trace::TraceHeader header_;
    TimelineOptions options_;
    std::vector<trace::Event> events_;
    void index(std::size_t first);  // socket_info_, reports_deliveries_ and packet pairs for events [first, size())
    void pair_packet(std::size_t index, const trace::Packet& packet);

    std::vector<State> checkpoints_;  // checkpoints_[i].applied() ascending; [0] is the empty world
    Checkpointer checkpointer_;       // extends checkpoints_ when append() takes events alone
    bool checkpointer_behind_ = false;  // append() was handed checkpoints; resume before using it
    ServiceTable services_;
    std::map<std::pair<std::string, std::uint32_t>, std::pair<Protocol, std::size_t>, std::less<>> socket_info_;
    mutable std::map<std::size_t, PacketInfo> packet_cache_;
    bool reports_deliveries_ = false;
    // Sent events not yet paired, by a hash of their bytes, oldest first: as many
    // entries as packets in flight (captures, which only see packets leave, skip this).
    std::map<std::size_t, std::vector<std::size_t>> unmatched_sent_;
    std::vector<std::size_t> partner_;  // per event: the other end of its packet, or no_partner
    static constexpr std::size_t no_partner = static_cast<std::size_t>(-1);
};

// ---- captures as traces --------------------------------------------------------------

// A capture file turned into a trace: one `packet` event ("sent") per record, the
// host being the source address's text, from_host/to_host the two addresses, time
// from the first record. Records that do not decode are kept (the inspector shows
// why). Times that go backwards (captures merged from two interfaces) are held at
// the previous time, since a trace's time never decreases.
[[nodiscard]] trace::Trace trace_from_capture(const pcap::Capture& capture, const std::string& name);

// The header of a capture turned into a trace (source "pcap", titled `name`).
[[nodiscard]] trace::TraceHeader capture_header(const std::string& name);

// trace_from_capture one record at a time, for a loader that reads a big capture
// in blocks: feed the records in file order. Each record is decoded once, headers
// only (decode_frame_headers), and its conversation counted on the way, so the
// window never decodes a million packets to list them.
class CaptureConverter {
public:
    explicit CaptureConverter(LinkType link_type) : link_type_(link_type) {}
    [[nodiscard]] trace::Event event(pcap::Record record);
    // The conversations of the records so far (first_index and last_index count
    // records from 0, the events' indices); lengths are wire lengths, as tshark's.
    [[nodiscard]] const std::vector<Conversation>& conversations() const noexcept { return table_.conversations(); }
    [[nodiscard]] std::vector<Conversation> take_conversations() { return std::move(table_).conversations(); }

private:
    LinkType link_type_;
    std::optional<std::uint64_t> start_us_;  // the first record's time stamp
    std::uint64_t previous_t_us_ = 0;
    std::size_t converted_ = 0;
    ConversationTable table_;
};

// Every TCP/UDP conversation in the timeline's packets (portlab/conversation.hpp), in
// order of first packet; a conversation's first_index and last_index are event indices.
[[nodiscard]] std::vector<Conversation> find_conversations(const Timeline& timeline);

// Reads a trace's text in pieces, as trace::read_trace reads it (same events,
// same first error, same words), with several threads parsing lines: a
// million-line trace is mostly JSON parsing, and lines parse independently.
// Feed the header line, then blocks of whole lines in file order; each block is
// checked against everything before it with trace::SequenceRules.
class TraceTextReader {
public:
    [[nodiscard]] Result<trace::TraceHeader> header(std::string_view line);
    // Lines separated by '\n' (a final '\n' ends the last line, it does not start an empty one).
    [[nodiscard]] Result<std::vector<trace::Event>> block(std::string_view lines, unsigned threads);
    // The same, keeping the events of the lines before the first bad one with its error.
    [[nodiscard]] std::pair<std::vector<trace::Event>, std::optional<Error>> block_until_error(std::string_view lines, unsigned threads);
    [[nodiscard]] std::size_t next_line() const noexcept { return next_line_; }

private:
    std::size_t next_line_ = 1;
    trace::SequenceRules rules_;  // the hub's, made again from the header's version
};

// A whole trace from its text, through one TraceTextReader.
[[nodiscard]] Result<trace::Trace> read_trace_text(std::string_view text, unsigned threads);

// Why a file that is not a capture is no trace either, judged by its first bytes (a
// trace is text: its first line is a JSON header): "PATH: neither a trace nor a
// capture: it begins with bytes 5a 1f 00 c3 ...", naming the bytes in hex, never
// quoting them. None when the bytes are text (the parser then says what is wrong).
[[nodiscard]] std::optional<std::string> binary_not_trace(std::string_view first_bytes, const std::string& path);

// Opens a trace (.jsonl) or a capture (pcap/pcapng, told by its first bytes).
// Errors read "PATH: line N: reason" for traces, "PATH: reason" otherwise.
[[nodiscard]] Result<trace::Trace> read_any_file(const std::string& path);

}  // namespace portlab::replay
