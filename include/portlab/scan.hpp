#pragma once
// Port scans as nmap defines them: the scan types, the six port states, the reasons
// --reason prints, and ONE classifier from (scan type, what came back) to (state, reason).
// Lab 08 and lab 09 (real sockets on the kernel), the simulator's scanner (the model) and
// the trace (scan_result events) all speak these types.
//
// nmap's definitions (nmap.org/book/man-port-scanning-basics.html, the scan-methods
// chapters, and nmap's own scan_engine_connect.cc / scan_engine_raw.cc / portreasons.cc):
//   connect (-sT)  connect() returns 0 -> open "syn-ack"; ECONNREFUSED -> closed
//                  "conn-refused"; no answer -> filtered "no-response"; EHOSTUNREACH,
//                  ENETUNREACH, EACCES, ENOPROTOOPT -> filtered, named after the ICMP error.
//   SYN (-sS)      SYN-ACK -> open "syn-ack"; RST -> closed "reset"; no answer or any ICMP
//                  unreachable -> filtered, reason the ICMP code ("port-unreach", ...).
//   ACK (-sA)      RST -> unfiltered "reset" (open and closed alike); no answer or ICMP
//                  unreachable -> filtered.
//   UDP (-sU)      a UDP reply -> open "udp-response"; ICMP port unreachable -> closed
//                  "port-unreach"; another ICMP unreachable -> filtered; silence, even after
//                  a retransmission -> open|filtered "no-response".
// closed|filtered exists only for nmap's IP ID idle scan (-sI), which portlab does not do;
// it is here so every state nmap can print has a name.

#include <cstdint>
#include <optional>
#include <string_view>

#include "portlab/icmp.hpp"
#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab::scan {

enum class ScanType : std::uint8_t { connect, syn, ack, udp };
// "connect", "syn", "ack", "udp"
[[nodiscard]] std::string_view to_string(ScanType type) noexcept;
[[nodiscard]] Result<ScanType> parse_scan_type(std::string_view text);
// nmap's option: "-sT", "-sS", "-sA", "-sU".
[[nodiscard]] std::string_view nmap_option(ScanType type) noexcept;
// What the scan's probes are: UDP for a UDP scan, TCP for the others.
[[nodiscard]] Protocol protocol_of(ScanType type) noexcept;

enum class PortState : std::uint8_t { open, closed, filtered, unfiltered, open_filtered, closed_filtered };
// As nmap prints them: "open", "closed", "filtered", "unfiltered", "open|filtered", "closed|filtered".
[[nodiscard]] std::string_view to_string(PortState state) noexcept;
[[nodiscard]] Result<PortState> parse_port_state(std::string_view text);

// As nmap's --reason prints them (portreasons.cc), plus two of portlab's own.
enum class Reason : std::uint8_t {
    syn_ack,           // SYN-ACK to a SYN, or connect() succeeded
    reset,             // a RST came back (raw scans)
    conn_refused,      // connect() failed with ECONNREFUSED (connect scan: RST or ICMP port unreachable)
    no_response,       // nothing before the timeout
    udp_response,      // a UDP datagram came back
    port_unreach,      // ICMP(v6) port unreachable
    host_unreach,      // ICMP host unreachable / ICMPv6 address unreachable, or EHOSTUNREACH
    net_unreach,       // ICMP net unreachable, or ENETUNREACH
    proto_unreach,     // ICMP protocol unreachable, or ENOPROTOOPT
    admin_prohibited,  // ICMP code 13 / ICMPv6 code 1 or 5, or EACCES
    host_prohibited,   // ICMP code 10
    net_prohibited,    // ICMP code 9
    no_route,          // ICMPv6 code 0
    beyond_scope,      // ICMPv6 code 2
    reject_route,      // ICMPv6 code 6
    dest_unreach,      // any other destination unreachable (ENONET: ICMP code 8)
    self_connect,      // portlab: every try met itself (TCP simultaneous open); state unknown, reported closed
    local_error,       // portlab: the probe failed here (socket() or connect() error such as EMFILE); reported filtered
};
// "syn-ack", "reset", "conn-refused", "no-response", ..., "self-connect", "local-error"
[[nodiscard]] std::string_view to_string(Reason reason) noexcept;
[[nodiscard]] Result<Reason> parse_reason(std::string_view text);

// nmap's reason for a destination unreachable (portreasons.cc icmp_to_reason).
[[nodiscard]] Reason reason_for(const IcmpUnreachable& icmp) noexcept;

// What came back for one probe. A raw scan sees packets (syn_ack, reset, udp_reply,
// icmp_unreachable, nothing); a scan through sockets sees what the kernel made of them,
// an errno (socket_error): connect()'s for a connect scan, the next call's on a connected
// UDP socket for a UDP scan.
enum class AnswerKind : std::uint8_t {
    syn_ack,           // a segment with SYN and ACK
    reset,             // a segment with RST
    udp_reply,         // a UDP datagram from the probed port
    icmp_unreachable,  // a destination unreachable quoting the probe
    nothing,           // silence until the scanner's timeout (after its retries)
    socket_error,      // an errno from the scanner's socket; 0 = connect() succeeded
    self_connect,      // the probe's socket met itself (source port == the probed port)
    local_error,       // the probe could not be sent (socket(), bind(), ... failed here)
};

struct Answer {
    AnswerKind kind = AnswerKind::nothing;
    IcmpUnreachable icmp{};  // for icmp_unreachable
    int error = 0;           // for socket_error and local_error: an errno value

    [[nodiscard]] static Answer syn_ack() noexcept { return {AnswerKind::syn_ack, {}, 0}; }
    [[nodiscard]] static Answer reset() noexcept { return {AnswerKind::reset, {}, 0}; }
    [[nodiscard]] static Answer udp_reply() noexcept { return {AnswerKind::udp_reply, {}, 0}; }
    [[nodiscard]] static Answer unreachable(IcmpUnreachable icmp) noexcept { return {AnswerKind::icmp_unreachable, icmp, 0}; }
    [[nodiscard]] static Answer nothing() noexcept { return {AnswerKind::nothing, {}, 0}; }
    [[nodiscard]] static Answer socket_error(int error) noexcept { return {AnswerKind::socket_error, {}, error}; }
    [[nodiscard]] static Answer self_connect() noexcept { return {AnswerKind::self_connect, {}, 0}; }
    [[nodiscard]] static Answer local_error(int error) noexcept { return {AnswerKind::local_error, {}, error}; }
    friend bool operator==(const Answer&, const Answer&) = default;
};

struct Verdict {
    PortState state = PortState::filtered;
    Reason reason = Reason::no_response;
    friend bool operator==(const Verdict&, const Verdict&) = default;
};

// The port's state and nmap's reason for `answer` to a `type` probe, or nullopt when the
// answer says nothing about the port for that scan and nmap ignores it (a SYN-ACK to an
// ACK probe, a UDP reply to a TCP probe, an errno to a raw probe).
// A connect scan reads packets through the kernel: SYN-ACK is connect() == 0, RST is
// ECONNREFUSED, and an ICMP error is kernel_error(icmp): a fatal one ends connect() with
// its errno (port unreachable -> ECONNREFUSED -> closed "conn-refused"; admin-prohibited
// -> EHOSTUNREACH -> filtered "host-unreach"), a soft one leaves the SYN retrying until
// the scanner's timeout (filtered "no-response").
[[nodiscard]] std::optional<Verdict> classify(ScanType type, const Answer& answer) noexcept;

}  // namespace portlab::scan
