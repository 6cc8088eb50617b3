#pragma once
// The eleven TCP connection states of RFC 793 section 3.2 ("CLOSED" included, though
// the RFC calls it fictional: it is the state of no connection at all).
// Printed the way the RFC writes them ("SYN-SENT"); parsed from the RFC spelling and
// from what Linux tools print (ss: "ESTAB", "SYN-RECV"; netstat: "SYN_SENT", "FIN_WAIT1").

#include <cstdint>
#include <string_view>

#include "portlab/result.hpp"

namespace portlab {

enum class TcpState : std::uint8_t {
    closed,
    listen,
    syn_sent,
    syn_received,
    established,
    fin_wait_1,
    fin_wait_2,
    close_wait,
    closing,
    last_ack,
    time_wait,
};

// "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
// "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT" (RFC 793 3.2).
[[nodiscard]] std::string_view to_string(TcpState state) noexcept;

// Accepts, in any letter case, with '-' or '_' between words:
//   the RFC 793 names ("SYN-RECEIVED", "FIN-WAIT-1"),
//   ss(8)'s names ("ESTAB", "SYN-RECV", "CLOSE-WAIT"),
//   netstat(8)'s and the kernel's names ("SYN_RECV", "FIN_WAIT1", "CLOSE").
// ss's "UNCONN" is rejected on purpose: ss prints it for sockets with no
// connection state (UDP, raw), and it is not one of TCP's states.
[[nodiscard]] Result<TcpState> parse_tcp_state(std::string_view text);

// The kernel's numbering of sk_state for TCP sockets (include/net/tcp_states.h,
// also <netinet/tcp.h>): TCP_ESTABLISHED = 1, TCP_SYN_SENT, TCP_SYN_RECV,
// TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE, TCP_CLOSE_WAIT,
// TCP_LAST_ACK, TCP_LISTEN, TCP_CLOSING = 11. This is the number in the "st"
// column of /proc/net/tcp (in hex) and in tcp_info.tcpi_state.
// TCP_NEW_SYN_RECV (12) and TCP_BOUND_INACTIVE (13) are kernel-internal and,
// like any other number, give an error.
[[nodiscard]] Result<TcpState> from_linux_tcp_state(int kernel_state);

// The kernel's number for a state (the inverse of from_linux_tcp_state): 1 for
// ESTABLISHED ... 11 for CLOSING.
[[nodiscard]] int to_linux_tcp_state(TcpState state) noexcept;

// How ss(8) prints a state (iproute2 misc/ss.c, sstate_name[]): "ESTAB", "SYN-RECV",
// "UNCONN" for CLOSED (ss's word for TCP_CLOSE), the RFC's names otherwise.
[[nodiscard]] std::string_view ss_name(TcpState state) noexcept;

// ss's name for a kernel state number: sstate_name[] for 1 .. 11, "SYN-RECV" for
// TCP_NEW_SYN_RECV (12, a request sock), "UNKNOWN" for anything else. UDP sockets use
// the same numbers: "UNCONN" (TCP_CLOSE, not connected) or "ESTAB" (connected).
[[nodiscard]] std::string_view ss_state_name(int kernel_state) noexcept;

}  // namespace portlab
