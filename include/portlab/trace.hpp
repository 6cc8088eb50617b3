#pragma once
// The trace: one run, simulated or real, as a sequence of events (host declared,
// socket created, bound, listening, connect started, ephemeral port assigned,
// accepted, state changed, timer armed/fired/stopped, packet sent/delivered/
// dropped, error, closed, note). The simulator and the labs write traces; the
// visualizer reads them.
//
// On disk a trace is JSON Lines: a header line, then one event per line. The format
// is versioned and documented in docs/trace-format.md; this header is its C++ face.
// Events are plain structs in a std::variant, so a trace is plain data.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "portlab/boxed.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/output_file.hpp"
#include "portlab/packet.hpp"
#include "portlab/result.hpp"
#include "portlab/scan.hpp"
#include "portlab/shared_value.hpp"
#include "portlab/tcp_state.hpp"

namespace portlab::trace {

// The "portlab_trace" number in the header line. Bumped only for changes an
// older reader would misread (see "Compatibility" in docs/trace-format.md).
// Version 2 added host, child_created, timer_armed/timer_fired/timer_stopped,
// rule_added/rule_removed, scan_probe/scan_result, state_changed's "evidence" and a
// dropped packet's "cause" and "rule_id"; version-1 files still read (they simply
// have none of these). Version 3 added nat (a router's address translation) and the drop
// causes "ttl-exceeded" and "ct-state"; version-1 and -2 files still read.
inline constexpr int format_version = 3;
// The largest trace file a reader accepts (a day of a busy lab is a few hundred MiB).
inline constexpr std::uint64_t max_trace_file_bytes = 4ull << 30;
// The longest line a reader accepts, '\n' not counted. The largest event a writer makes is a
// packet of 65,535 bytes (its hex, 131,070 characters, plus fields): 1 MiB leaves room, and
// a file whose first "line" is gigabytes long is refused after 1 MiB, not read into memory.
inline constexpr std::size_t max_trace_line_bytes = std::size_t{1} << 20;
inline constexpr int oldest_readable_version = 1;

// A socket, named by a small number that is unique on its host for the whole
// trace (never reused, even after the socket is closed), so (host, socket) keys
// a socket in a viewer. A handle, not a pointer: traces are plain data.
// An id is introduced by SocketCreated or as the new socket of Accepted.
struct SocketId {
    std::uint32_t value = 0;
    friend auto operator<=>(const SocketId&, const SocketId&) = default;
};

// ---- what events carry, shared ---------------------------------------------------
// A trace holds millions of events (issue 13): these keep an event small (one pointer
// each) and let copies share what they carry rather than copy it. All three are
// immutable once made; assigning a new value replaces the handle, never the value.

// A packet's bytes, shared: the simulator's in-flight packet, its `sent` event and
// its `delivered` event hold one copy. Reads as a `const Bytes&`.
class SharedBytes {
public:
    SharedBytes() = default;                                                // no bytes
    SharedBytes(Bytes bytes) : value_(std::move(bytes)) {}                  // NOLINT: a packet is made from its bytes
    SharedBytes(std::initializer_list<std::uint8_t> bytes) : SharedBytes(Bytes(bytes)) {}  // NOLINT
    [[nodiscard]] const Bytes& vector() const noexcept { return value_.holds() ? value_.get() : none(); }
    operator const Bytes&() const noexcept { return vector(); }             // NOLINT: reads as the bytes
    operator std::span<const std::uint8_t>() const noexcept { return vector(); }  // NOLINT
    [[nodiscard]] std::size_t size() const noexcept { return vector().size(); }
    [[nodiscard]] bool empty() const noexcept { return vector().empty(); }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return vector().data(); }
    [[nodiscard]] Bytes::const_iterator begin() const noexcept { return vector().begin(); }
    [[nodiscard]] Bytes::const_iterator end() const noexcept { return vector().end(); }
    [[nodiscard]] std::uint8_t operator[](std::size_t i) const noexcept { return vector()[i]; }
    friend bool operator==(const SharedBytes& a, const SharedBytes& b) noexcept { return a.vector() == b.vector(); }
    friend bool operator==(const SharedBytes& a, const Bytes& b) noexcept { return a.vector() == b; }

private:
    static const Bytes& none() noexcept {
        static const Bytes empty;
        return empty;
    }
    SharedValue<Bytes> value_;
};

// A string, shared: reads as a `const std::string&` (empty when never set).
class Text {
public:
    Text() = default;
    Text(std::string text) : value_(std::move(text)) {}            // NOLINT: set like a std::string
    Text(const char* text) : Text(std::string(text)) {}            // NOLINT
    Text(std::string_view text) : Text(std::string(text)) {}       // NOLINT
    [[nodiscard]] const std::string& str() const noexcept { return value_.holds() ? value_.get() : none(); }
    operator const std::string&() const noexcept { return str(); }              // NOLINT: reads as a std::string
    operator std::string_view() const noexcept { return str(); }                // NOLINT
    [[nodiscard]] bool empty() const noexcept { return str().empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return str().size(); }
    [[nodiscard]] const char* c_str() const noexcept { return str().c_str(); }
    friend bool operator==(const Text& a, const Text& b) noexcept { return a.str() == b.str(); }
    friend bool operator==(const Text& a, const std::string& b) noexcept { return a.str() == b; }
    friend bool operator==(const Text& a, std::string_view b) noexcept { return a.str() == b; }
    friend bool operator==(const Text& a, const char* b) noexcept { return a.str() == b; }
    friend std::string operator+(const Text& a, std::string_view b) { return a.str() + std::string(b); }
    friend std::string operator+(std::string_view a, const Text& b) { return std::string(a) + b.str(); }

private:
    static const std::string& none() noexcept {
        static const std::string empty;
        return empty;
    }
    SharedValue<std::string> value_;
};

// An optional string, shared: reads as a `std::optional<std::string>` (has_value, *, ->,
// value_or), for fields most events leave out or repeat (a packet's host names).
class OptText {
public:
    OptText() = default;
    OptText(std::nullopt_t) noexcept {}                                           // NOLINT
    OptText(std::string text) : value_(std::move(text)) {}                        // NOLINT
    OptText(const char* text) : OptText(std::string(text)) {}                     // NOLINT
    OptText(std::optional<std::string> text) {                                    // NOLINT
        if (text) value_ = SharedValue<std::string>(std::move(*text));
    }
    [[nodiscard]] bool has_value() const noexcept { return value_.holds(); }
    explicit operator bool() const noexcept { return has_value(); }
    // Only when has_value(), as std::optional's.
    [[nodiscard]] const std::string& operator*() const noexcept { return value_.get(); }
    [[nodiscard]] const std::string* operator->() const noexcept { return &value_.get(); }
    [[nodiscard]] const std::string& value() const {
        if (!has_value()) throw std::bad_optional_access();
        return value_.get();
    }
    [[nodiscard]] std::string value_or(std::string_view fallback) const {
        return has_value() ? value_.get() : std::string(fallback);
    }
    [[nodiscard]] std::optional<std::string> optional() const {
        return has_value() ? std::optional<std::string>(value_.get()) : std::nullopt;
    }
    operator std::optional<std::string>() const { return optional(); }  // NOLINT
    void reset() noexcept { value_.reset(); }
    friend bool operator==(const OptText& a, const OptText& b) noexcept {
        return a.has_value() == b.has_value() && (!a.has_value() || *a == *b);
    }
    friend bool operator==(const OptText& a, const std::optional<std::string>& b) noexcept {
        return a.has_value() == b.has_value() && (!a.has_value() || *a == *b);
    }
    friend bool operator==(const OptText& a, std::nullopt_t) noexcept { return !a.has_value(); }
    friend bool operator==(const OptText& a, const std::string& b) noexcept { return a.has_value() && *a == b; }
    friend bool operator==(const OptText& a, std::string_view b) noexcept { return a.has_value() && *a == b; }
    friend bool operator==(const OptText& a, const char* b) noexcept { return a.has_value() && *a == b; }

private:
    SharedValue<std::string> value_;
};

// ---- event bodies -----------------------------------------------------------

// Declares a host (Event::host is its name: "client", "server", "router",
// "localhost"), once, before any other event on it. A viewer draws a host only
// when it is declared or named by an event.
struct HostAdded {
    std::vector<IpAddress> addresses;  // its own addresses, in the order the writer knows them
    std::string role;                  // free text for the picture: "client", "server", "scanner", "router"; may be empty
    friend bool operator==(const HostAdded&, const HostAdded&) = default;
};

struct SocketCreated {
    SocketId socket;
    Protocol protocol = Protocol::tcp;
    IpFamily family = IpFamily::v4;
    friend bool operator==(const SocketCreated&, const SocketCreated&) = default;
};

// How the bound port was chosen.
enum class BindHow : std::uint8_t {
    explicit_port,  // bind() named the port: "explicit"
    ephemeral,      // the kernel picked one implicitly: connect() or sendto() on an unbound socket
    bind_zero,      // bind() with port 0 asked the kernel to pick one
};

struct Bound {
    SocketId socket;
    Endpoint endpoint;
    BindHow how = BindHow::explicit_port;
    OptText note;  // e.g. "SO_REUSEADDR set"
    friend bool operator==(const Bound&, const Bound&) = default;
};

struct Listening {
    SocketId socket;
    std::uint32_t backlog = 0;  // as passed to listen(); the kernel caps it at somaxconn
    friend bool operator==(const Listening&, const Listening&) = default;
};

struct ConnectStarted {
    SocketId socket;
    Endpoint remote;
    friend bool operator==(const ConnectStarted&, const ConnectStarted&) = default;
};

// Linux's connect() tries even ports first and leaves odd ones for bind(0)
// (net/ipv4/inet_hashtables.c, __inet_hash_connect, since Linux 4.6).
enum class Parity : std::uint8_t { even, odd };

struct EphemeralAssigned {
    SocketId socket;
    Port port = 0;
    Port range_low = 0;   // ip_local_port_range, inclusive
    Port range_high = 0;  // inclusive; range_low <= range_high
    std::string algorithm;  // e.g. "linux-hash-connect", "sequential", "random" (RFC 6056 names welcome)
    std::optional<Parity> parity;
    friend bool operator==(const EphemeralAssigned&, const EphemeralAssigned&) = default;
};

// A connection arrived at a listener and the kernel made it a socket of its own, with
// the whole 4-tuple, before any program asked for it: at the SYN, Linux's
// tcp_conn_request() makes a request sock (ss shows SYN-RECV), and after the handshake
// tcp_check_req() a full socket that waits, ESTABLISHED, in the listener's accept queue
// (inet_csk_reqsk_queue_add) until accept() returns it. Introduces `socket`; a later
// `accepted` naming the same listener and socket hands it to the program. A connection
// never accepted (a connect scan's) keeps its 4-tuple all the same.
struct ChildCreated {
    SocketId listener;
    SocketId socket;
    FourTuple four_tuple;  // seen from the listening host: local = its side
    friend bool operator==(const ChildCreated&, const ChildCreated&) = default;
};

struct Accepted {
    SocketId listener;
    SocketId socket;        // the new, connected socket accept() returned (introduced here unless child_created did)
    FourTuple four_tuple;   // seen from the accepting host: local = its side
    friend bool operator==(const Accepted&, const Accepted&) = default;
};

// How the writer knows a state: the difference between what the kernel said and
// what a program guessed is part of the lesson.
enum class Evidence : std::uint8_t {
    model,     // "model": the simulator's own state (and every version-1 trace)
    observed,  // "observed": a lab read it from the kernel (sock_diag, TCP_INFO, ss)
    inferred,  // "inferred": a lab deduced it, e.g. from a call that returned
};

struct StateChanged {
    SocketId socket;
    TcpState from = TcpState::closed;
    TcpState to = TcpState::closed;
    std::string cause;  // e.g. "SYN received", "close() called", "2MSL timer expired"
    Evidence evidence = Evidence::model;
    friend bool operator==(const StateChanged&, const StateChanged&) = default;
};

// TCP's timers, as data (smoltcp keeps them so): a viewer shows a countdown from
// timer_armed until timer_fired or timer_stopped. RFC 9293 3.8.1 (retransmission),
// 3.6.1 (TIME-WAIT, 2*MSL), 3.8.4 (keep-alive), 3.8.6.1 (persist), 3.8.6.3 (delayed ACK).
enum class TimerKind : std::uint8_t { retransmission, time_wait, keepalive, persist, delayed_ack };

struct TimerArmed {
    SocketId socket;
    TimerKind timer = TimerKind::retransmission;
    std::uint64_t duration_us = 0;  // it fires at the event's t_us + duration_us unless stopped first
    std::uint32_t attempt = 0;      // 0: the first transmission's timer; n: the timer after the n-th retransmission
    friend bool operator==(const TimerArmed&, const TimerArmed&) = default;
};

struct TimerFired {
    SocketId socket;
    TimerKind timer = TimerKind::retransmission;
    friend bool operator==(const TimerFired&, const TimerFired&) = default;
};

// Cancelled before it fired: the ACK came, or the socket went away.
struct TimerStopped {
    SocketId socket;
    TimerKind timer = TimerKind::retransmission;
    friend bool operator==(const TimerStopped&, const TimerStopped&) = default;
};

enum class PacketKind : std::uint8_t { sent, delivered, dropped };

// Why a packet was dropped: a firewall drop is a rule's doing, a link loss is not.
enum class DropCause : std::uint8_t {
    firewall,   // "firewall": a rule dropped or rejected it (rule_id names the rule)
    link,       // "link": lost on the wire (the simulator's lossy link)
    no_socket,  // "no-socket": nothing listens on the port
    checksum,   // "checksum": a bad checksum
    no_route,   // "no-route": no route to the destination
    other,      // "other"
    ttl_exceeded,  // "ttl-exceeded" (version 3): a router's forwarding took the TTL/hop limit to 0 (RFC 1812 5.3.1)
    ct_state,      // "ct-state" (version 3): a stateful chain (nft `ct state new drop`) refused a packet that would start a connection it does not allow; rule_id names the forward-chain rule when the trace added it
};

struct Packet {
    PacketKind kind = PacketKind::sent;
    SharedBytes bytes;                // the whole frame, link header included
    LinkType link = LinkType::raw;    // what sits in front of the IP packet
    OptText rule;                     // why it was dropped, for people: a firewall rule's text, "no route", ...
    OptText from_host;
    OptText to_host;
    std::optional<DropCause> cause = std::nullopt;  // dropped packets only
    OptText rule_id = std::nullopt;                 // the rule that dropped or rejected it (cause firewall or ct_state only)
    friend bool operator==(const Packet&, const Packet&) = default;
};

// A firewall rule put into one of the host's chains (rule.chain: input, or a router's
// forward chain; after the rules already there), or taken out. The rule is written in nft
// syntax (firewall_rule.hpp's nft_text), so the file reads as `nft list ruleset` would, and
// its chain beside it ("chain", absent for input); rule_id names it for packets it drops.
struct RuleAdded {
    RuleAdded() : RuleAdded(Text{}, FirewallRule{}) {}
    RuleAdded(Text id, FirewallRule added) : rule_id(std::move(id)), rule(std::move(added)) {}
    Text rule_id;  // unique among the host's rules in force; never empty
    Boxed<FirewallRule> rule;  // never empty; boxed, as a rule with an interface name outgrows an event
    friend bool operator==(const RuleAdded&, const RuleAdded&) = default;
};

struct RuleRemoved {
    std::string rule_id;
    friend bool operator==(const RuleRemoved&, const RuleRemoved&) = default;
};

// A scanner on this host probed target's port (scan.hpp: nmap's scan types); the
// probe's protocol is the scan's (scan::protocol_of). attempt 0 is the first probe,
// n the n-th retransmission. socket: the scanner's socket, for scans through sockets.
struct ScanProbe {
    scan::ScanType scan = scan::ScanType::connect;
    Endpoint target;
    std::uint32_t attempt = 0;
    std::optional<SocketId> socket = std::nullopt;
    friend bool operator==(const ScanProbe&, const ScanProbe&) = default;
};

// What the scanner concluded about target's port, as nmap --reason prints it.
struct ScanResult {
    scan::ScanType scan = scan::ScanType::connect;
    Endpoint target;
    scan::PortState state = scan::PortState::filtered;
    scan::Reason reason = scan::Reason::no_response;
    friend bool operator==(const ScanResult&, const ScanResult&) = default;
};

// One direction of a connection as a packet's IP and transport headers state it.
struct Flow {
    Endpoint source;
    Endpoint destination;
    friend bool operator==(const Flow&, const Flow&) = default;
};

// Which address a NAT rewrites: the source (masquerade, `nft ... masquerade`, SNAT) or the
// destination (port forwarding, `dnat to`, DNAT); or none (track): a stateful firewall's
// connection-tracking entry (`ct state established,related accept`), which conntrack -L
// lists as well, its reply tuple the original reversed.
enum class NatKind : std::uint8_t { snat, dnat, track };

// A connection's first packet as it reached the router (before) and as the router sent it
// on (after). Linux's conntrack keeps the same facts as two tuples: the original tuple is
// `before`, the reply tuple is `after` reversed (what the answer will carry), as
// `conntrack -L` prints them (src=... dst=... sport=... dport=... src=... dst=...).
struct NatFlows {
    Flow before;
    Flow after;
    friend bool operator==(const NatFlows&, const NatFlows&) = default;
};

// A router (Event::host) set up an address translation for a new connection
// (net/netfilter/nf_nat_core.c, nf_nat_setup_info): every later packet of the connection
// is rewritten the same way, and its replies back. snat keeps the destination, dnat the
// source. Its JSON type is "nat" (version 3).
struct NatTranslated {
    NatKind kind = NatKind::snat;
    Protocol protocol = Protocol::tcp;
    std::uint32_t conntrack_id = 0;  // names the connection-tracking entry on the router
    Boxed<NatFlows> flows{NatFlows{}};  // never empty; boxed (portlab/boxed.hpp): two flows are 80 bytes, the rest 8
    friend bool operator==(const NatTranslated&, const NatTranslated&) = default;
};

// A call the kernel (or the model) refused; its JSON type is "error".
struct CallFailed {
    std::optional<SocketId> socket;
    Text call;        // "bind", "connect", "listen", "accept", "sendto", ...
    Text errno_name;  // "EADDRINUSE"
    Text message;     // strerror() text or a lab's explanation
    // The address the call named, when it named one: bind()'s local endpoint (which a failed
    // bind never takes, so only this event can show the port it wanted), connect()'s or
    // sendto()'s remote one. Absent in traces older than this field.
    std::optional<Endpoint> endpoint{};
    friend bool operator==(const CallFailed&, const CallFailed&) = default;
};

struct Closed {
    SocketId socket;
    friend bool operator==(const Closed&, const Closed&) = default;
};

// A narration caption a lab or scenario attaches to the timeline.
struct Note {
    std::string text;
    friend bool operator==(const Note&, const Note&) = default;
};

using EventBody = std::variant<SocketCreated, Bound, Listening, ConnectStarted, EphemeralAssigned, Accepted,
                               StateChanged, Packet, CallFailed, Closed, Note, HostAdded, TimerArmed, TimerFired,
                               TimerStopped, ChildCreated, RuleAdded, RuleRemoved, ScanProbe, ScanResult, NatTranslated>;
static_assert(sizeof(EventBody) <= 72, "an event body carries at most 64 bytes inline: box the rest (see Event)");

// Every alternative is at most 64 bytes, so an Event is 112 (issue 13: a trace of a
// million events). A new alternative with more to carry boxes it (Text, OptText,
// SharedBytes, or a SharedValue of its own) rather than growing every event.
struct Event {
    std::uint64_t t_us = 0;  // microseconds since the start of the run (or the epoch); never decreases
    std::string host;        // the host the event happened on; never empty
    EventBody body;
    friend bool operator==(const Event&, const Event&) = default;
};

// The "type" value of an event line: "socket_created", "bound", ..., "note", "host", "timer_armed", "scan_result".
[[nodiscard]] std::string_view type_name(const EventBody& body) noexcept;
// The socket an event is about: its `socket` field (for accepted, the new socket;
// for an error or a scan probe, when it names one); none for host, note, packet,
// rule and scan result events.
[[nodiscard]] std::optional<SocketId> socket_of(const EventBody& body) noexcept;
// The trace format version that introduced an event's type: 1, 2 or 3.
[[nodiscard]] int introduced_in_version(const EventBody& body) noexcept;

// The enumerations' spellings in the format ("observed", "time-wait", "no-socket").
[[nodiscard]] std::string_view to_string(Evidence evidence) noexcept;
[[nodiscard]] std::string_view to_string(TimerKind timer) noexcept;
[[nodiscard]] std::string_view to_string(DropCause cause) noexcept;
[[nodiscard]] std::string_view to_string(NatKind kind) noexcept;  // "snat", "dnat"

// ---- header -------------------------------------------------------------------

struct TraceHeader {
    int version = format_version;  // as read: oldest_readable_version..format_version; writers write format_version
    std::string source = "sim";  // "sim", "lab", "pcap", "test", ...; never empty
    std::string generator;       // program and version, e.g. "portlab-sim 0.1.0"
    std::optional<std::string> scenario;
    std::optional<std::string> title;
    friend bool operator==(const TraceHeader&, const TraceHeader&) = default;
};

struct Trace {
    TraceHeader header;
    std::vector<Event> events;
};

// ---- lines ----------------------------------------------------------------------

// One line of JSON, without the trailing newline.
[[nodiscard]] std::string to_json_line(const TraceHeader& header);
[[nodiscard]] std::string to_json_line(const Event& event);

// Every error reads "line N: <reason>", with the line's own text escaped (text_safety.hpp:
// a line holding ESC gives a one-line message that cannot drive a terminal). A line longer
// than max_trace_line_bytes is refused unread. These check one line on its own; the rules
// that span lines (time never decreasing, a socket id introduced once per host)
// are checked by read_trace and TraceWriter.
[[nodiscard]] Result<TraceHeader> parse_header_line(std::string_view line, std::size_t line_number);
[[nodiscard]] Result<Event> parse_event_line(std::string_view line, std::size_t line_number);

// parse_event_line's two halves, public so tests can hold them to each other.
// The fast path reads the shape writers produce (strings without escapes or
// non-ASCII bytes, unsigned integers, small objects, no repeated keys, every rule
// kept) straight into an Event, and returns nullopt for any other line, valid or
// not. The full parser (nlohmann::json's DOM) reads any JSON and explains what is
// wrong. parse_event_line tries the first, then the second: whenever the fast path
// returns an event, the full parser returns the same event.
[[nodiscard]] std::optional<Event> parse_event_line_fast(std::string_view line);
[[nodiscard]] Result<Event> parse_event_line_full(std::string_view line, std::size_t line_number);

// ---- the rules that span lines ------------------------------------------------------

// Time never decreases; a socket id is introduced (socket_created, child_created,
// or the new socket of an accepted that no child_created introduced) once per host,
// and an accepted naming a child names the child's listener; a rule id is added
// once while in force and removed only when in force; a host is declared at most once, before any
// other event on it; an event type newer than the header's version is refused.
// Every reader and writer of traces applies these, through this one class.
class SequenceRules {
public:
    explicit SequenceRules(int version = format_version) : version_(version) {}
    // Checks the next event (on line `line_number`) against those admitted so far
    // and admits it; returns the reason, without "line N: ", when it breaks a rule.
    [[nodiscard]] std::optional<std::string> admit(const Event& event, std::size_t line_number);

private:
    [[nodiscard]] std::optional<std::string> admit_child_or_rule(const Event& event, std::size_t line_number);
    int version_;
    std::uint64_t last_t_us_ = 0;
    std::map<std::pair<std::string, std::uint32_t>, std::size_t, std::less<>> introduced_on_line_;
    std::map<std::string, std::size_t, std::less<>> host_seen_on_line_;  // first line naming each host
    std::map<std::string, std::size_t, std::less<>> host_declared_on_line_;
    // (host, child socket) -> its listener, for children not yet accepted
    std::map<std::pair<std::string, std::uint32_t>, std::uint32_t, std::less<>> waiting_children_;
    std::map<std::pair<std::string, std::string>, std::size_t, std::less<>> rules_in_force_;  // (host, rule id) -> line added
    std::string last_host_;
};

// ---- whole traces -----------------------------------------------------------------

// Reads a header line and events to the end; the first bad line is the error.
[[nodiscard]] Result<Trace> read_trace(std::istream& in);
// As read_trace, with the path in front of the message: "PATH: line N: reason". Only a
// regular file of at most max_trace_file_bytes (input_file.hpp): no device, no FIFO.
[[nodiscard]] Result<Trace> read_trace_file(const std::string& path);

// Writes the header, then events one line each, checking the cross-line rules so
// a producer's bug shows where it happens rather than in the viewer. Move-only.
class TraceWriter {
public:
    // Writes to a stream the caller keeps alive for the writer's lifetime.
    [[nodiscard]] static Result<TraceWriter> to_stream(std::ostream& out, const TraceHeader& header);
    // Writes `path` through an OutputFile (output_file.hpp): refused when `rules` forbid it;
    // the events go to a temporary file beside it, put in place by close() only.
    [[nodiscard]] static Result<TraceWriter> to_file(const std::string& path, const TraceHeader& header,
                                                     const OutputRules& rules = {});

    [[nodiscard]] Result<void> write(const Event& event);
    [[nodiscard]] Result<void> flush();
    // Flushes and, for a file, closes it and puts it in place. A file writer dropped without
    // close() leaves the file that was there before untouched.
    [[nodiscard]] Result<void> close();
    // For a file writer not yet closed: the file it fills and where close() puts it (a
    // program that is interrupted may put the events so far in place itself); else nullptr.
    [[nodiscard]] const OutputFile* output() const noexcept;

    TraceWriter(TraceWriter&&) noexcept;
    TraceWriter& operator=(TraceWriter&&) noexcept;
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;
    ~TraceWriter();

private:
    struct State;
    explicit TraceWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace portlab::trace
