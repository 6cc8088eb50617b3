#pragma once
// Scenario files: a story for the simulator written as text a teacher can edit
// (docs/scenarios.md teaches the format). The first line names the format and its
// version; every other line is one directive, run in file order, as the C++ stories
// made their calls:
//
//   portlab-scenario 1
//   name        closed-port
//   title       Knocking on a closed port
//   description a SYN to a port nobody listens on is answered with RST
//   host client 10.0.0.1 role client
//   host server 10.0.0.2 role server
//   link client server delay 5ms
//   socket c client tcp
//   connect c 10.0.0.2:81
//   run idle
//   note client connect() failed with ECONNREFUSED.
//
// parse_scenario() is a pure function of the text: every name is resolved and every
// field checked there, so a bad file is one line "FILE:LINE: field 'delay': ..." and
// nothing has run. run_scenario_spec() then drives a Simulator; the only error left
// for it is a run that would not end (more events than RunLimits allows).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"
#include "portlab/scan.hpp"
#include "portlab/sim/router.hpp"
#include "portlab/sim/simulator.hpp"
#include "portlab/tcp_state.hpp"

namespace portlab::sim {

// The header line's words, and the versions this reader understands: version 2 adds
// fields to a note's text ({peer NAME}, ...); a version 1 file still reads as it always did
// (its notes are plain text, braces and all).
inline constexpr std::string_view scenario_magic = "portlab-scenario";
inline constexpr int scenario_format_version = 2;
inline constexpr int oldest_scenario_format_version = 1;
// A scenario file is a page of text, not a data set.
inline constexpr std::size_t max_scenario_file_bytes = 1u << 20;
// A payload's bytes (fill, hex, text): enough for a story, not a way to exhaust memory.
inline constexpr std::size_t max_payload_bytes = 1u << 20;

// Hosts and sockets are named in the file; the spec keeps them as indexes into the
// order they were declared in (the hosts are the Simulator's HostIds, in order).
struct HostIndex {
    std::uint32_t value = 0;
    friend bool operator==(const HostIndex&, const HostIndex&) = default;
};
struct SocketIndex {
    std::uint32_t value = 0;
    friend bool operator==(const SocketIndex&, const SocketIndex&) = default;
};

namespace step {

// ---- the network ----
struct AddHost {
    std::string name;
    std::vector<IpAddress> addresses;
    HostOptions options;
};
struct SetLink {
    HostIndex a, b;
    LinkConfig config;
};
struct SetDefaultLink {
    LinkConfig config;
};
struct AddRule {
    HostIndex host;
    FirewallRule rule;
};
struct RemoveRule {
    HostIndex host;
    std::string rule_id;  // "r1", as add_firewall_rule named it
};
struct SetPolicy {
    HostIndex host;
    FirewallAction policy = FirewallAction::accept;
};
struct SetTcp {
    TcpConfig config;  // the whole configuration after this line's change
};

// ---- between hosts (router.hpp) ----
struct AddRouter {
    std::string name;
    std::vector<Interface> interfaces;
    HostOptions options;  // role "router" unless the line says
};
struct SetNetwork {  // the host's addresses of one family on /prefix networks, the rest via gateway
    HostIndex host;
    std::uint8_t prefix_length = 24;
    std::optional<IpAddress> gateway;
    IpFamily family = IpFamily::v4;  // the gateway's; without one, IPv6 for a prefix over 32
};
struct AddNat {  // oifname OUT masquerade
    HostIndex router;
    IpAddress outside;
};
struct AddForward {  // [iifname IF] PROTOCOL dport PORT dnat to TO
    HostIndex router;
    Protocol protocol = Protocol::tcp;
    Port port = 0;
    Endpoint to;
    std::optional<IpAddress> arriving_on;  // IF, named by the router's address on it
};
struct SetStateful {  // lab 18's forward chain
    HostIndex router;
    IpAddress outside;
    FirewallAction new_from_outside = FirewallAction::drop;
};

// ---- sockets (each names the socket it acts on) ----
struct OpenSocket {
    HostIndex host;
    SocketIndex socket;
    Protocol protocol = Protocol::tcp;
    IpFamily family = IpFamily::v4;
};
enum class SocketOption : std::uint8_t { reuse_address, privileged, linger_zero, ttl, v6only };
struct SetOption {
    SocketIndex socket;
    SocketOption option = SocketOption::reuse_address;
    bool on = true;
    std::uint8_t ttl = 64;  // SocketOption::ttl (IP_TTL)
};
struct SetAutoReply {
    SocketIndex socket;
    Bytes reply;
};
struct Bind {
    SocketIndex socket;
    Endpoint local;
};
struct Listen {
    SocketIndex socket;
    std::uint32_t backlog = 128;
};
struct Connect {
    SocketIndex socket;
    Endpoint remote;
};
struct Accept {
    SocketIndex listener;
    SocketIndex socket;  // the name the accepted connection gets
};
struct Send {
    SocketIndex socket;
    Bytes data;
};
// sendto(); no `to`: back to whoever sent the datagram recvfrom last read on this socket.
struct SendTo {
    SocketIndex socket;
    std::optional<Endpoint> to;
    Bytes data;
};
struct Recv {
    SocketIndex socket;
};
struct RecvFrom {
    SocketIndex socket;
};
// recv() until the peer's FIN or an error, running the simulation meanwhile.
struct RecvAll {
    SocketIndex socket;
    Time within = 600 * seconds;
};
struct Close {
    SocketIndex socket;
};
// A server socket in one line: socket, CAP_NET_BIND_SERVICE, then for TCP SO_REUSEADDR,
// bind 0.0.0.0:port, listen; for UDP bind 0.0.0.0:port and an optional auto-reply.
struct Service {
    HostIndex host;
    SocketIndex socket;
    Protocol protocol = Protocol::tcp;
    Port port = 0;
    std::uint32_t backlog = 128;
    std::optional<Bytes> reply;
};
// A field of a version 2 note, filled in when the note is made, as a program would print
// what the call returns: {peer NAME} getpeername(), {local NAME} getsockname(), {error NAME}
// getsockopt(SO_ERROR) (which reads and clears the pending error, sock_error()), {state NAME}
// the TCP state as RFC 9293 spells it.
enum class NoteValue : std::uint8_t { peer, local, error, state };
struct NoteField {
    NoteValue value = NoteValue::peer;
    SocketIndex socket;
    friend bool operator==(const NoteField&, const NoteField&) = default;
};
using NotePart = std::variant<std::string, NoteField>;
struct Note {
    HostIndex host;
    std::vector<NotePart> parts;  // text and fields, in the order written
};
struct Scan {
    HostIndex scanner;
    scan::ScanType type = scan::ScanType::syn;
    IpAddress target;
    std::vector<Port> ports;
};

// ---- time ----
struct RunFor {
    Time duration = 0;
};
struct RunUntil {  // "at T": run to the absolute virtual time T
    Time time = 0;
};
struct RunIdle {};
// Runs one event at a time until the condition holds or `within` has passed.
enum class Condition : std::uint8_t { state, accept_queue, data };
struct Wait {
    SocketIndex socket;
    Condition condition = Condition::state;
    TcpState state = TcpState::established;  // Condition::state
    std::size_t count = 1;                   // Condition::accept_queue: at least this many waiting
    Time within = 600 * seconds;
};

}  // namespace step

using Step = std::variant<step::AddHost, step::SetLink, step::SetDefaultLink, step::AddRule, step::RemoveRule,
                          step::SetPolicy, step::SetTcp, step::AddRouter, step::SetNetwork, step::AddNat,
                          step::AddForward, step::SetStateful, step::OpenSocket, step::SetOption, step::SetAutoReply,
                          step::Bind, step::Listen, step::Connect, step::Accept, step::Send, step::SendTo,
                          step::Recv, step::RecvFrom, step::RecvAll, step::Close, step::Service, step::Note,
                          step::Scan, step::RunFor, step::RunUntil, step::RunIdle, step::Wait>;

struct ScenarioLine {
    std::size_t line = 0;  // in the file, from 1
    Step step;
};

struct ScenarioSpec {
    int version = scenario_format_version;  // the header's
    std::string file;         // as parse_scenario was told, for run-time errors "FILE:LINE: ..."
    std::string name;         // "web" (the file's stem when the file names none)
    std::string title;        // "A web page fetch"
    std::string description;  // one line
    std::vector<std::string> hosts;    // by HostIndex
    std::vector<std::string> sockets;  // by SocketIndex
    std::vector<ScenarioLine> steps;
};

// Parses a scenario file's text. `file` names it in errors ("web.scenario:12: field
// 'delay': expected a time such as 5ms, not '5'"); its stem is the name when the file
// has no `name` line.
[[nodiscard]] Result<ScenarioSpec> parse_scenario(std::string_view text, std::string_view file);

struct RunLimits {
    RunLimits() = default;
    explicit RunLimits(std::size_t events) : max_events(events) {}  // RunLimits{5000}, no observer
    // Every event the simulation runs counts; a story that needs more is refused with
    // an error instead of running for ever.
    std::size_t max_events = 5'000'000;
    // Called with the simulator after every line of the file and after every event the
    // run executes (Simulator::step), so a test can hold each intermediate World to what
    // the trace so far says (tests/test_viz_every_step.cpp). Unset: nothing is called.
    std::function<void(const Simulator&)> observe;
};

// Runs every step in order on a new Simulator. An error only when the limits are hit.
[[nodiscard]] Result<Simulator> run_scenario_spec(const ScenarioSpec& spec, SimOptions options = {},
                                                  RunLimits limits = {});

}  // namespace portlab::sim
