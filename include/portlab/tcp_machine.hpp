#pragma once
// The TCP state machine as data: every transition a connection can take, each with its
// cause in the RFC's words ("rcv SYN" / "snd SYN,ACK") and where it is written down.
//
// Three kinds of edge, because three sources tell the story:
//   figure   drawn in RFC 9293 section 3.3.2, Figure 5 (RFC 793 section 3.2, Figure 6);
//   rfc      in the RFC's text or the figure's notes, not drawn (Note 2's FIN-WAIT-1 ->
//            TIME-WAIT, Note 3's "receipt of a RST from any state", the ABORT call of
//            3.10.5, the USER TIMEOUT of 3.10.8);
//   linux    what Linux does where the RFC says otherwise or nothing (a refused
//            connection's request sock is freed rather than going back to LISTEN; a SYN
//            answered by ICMP port unreachable fails connect(); an orphaned FIN-WAIT-2
//            ends after tcp_fin_timeout).
// The simulator takes only edges of this table (a test runs every scenario against it);
// the visualizer's state panel and lab11 draw it.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/tcp_state.hpp"

namespace portlab {

enum class TcpEdgeSource : std::uint8_t {
    figure,  // RFC 9293 Figure 5 draws it
    rfc,     // the RFC's text says it, the figure does not draw it
    linux_kernel,  // Linux's behaviour beyond (or instead of) the RFC
};

// "figure", "rfc", "linux".
[[nodiscard]] std::string_view to_string(TcpEdgeSource source) noexcept;

struct TcpTransition {
    TcpState from;
    TcpState to;
    std::string_view event;      // what happened: "rcv SYN", "CLOSE", "timeout=2MSL"
    std::string_view action;     // what TCP does about it: "snd SYN,ACK"; empty when nothing ("x" in the figure)
    std::string_view reference;  // where it is written: "RFC 9293 3.3.2 Figure 5", "Linux tcp_done() ..."
    TcpEdgeSource source;

    // "rcv SYN, snd SYN,ACK", or the event alone when there is no action.
    [[nodiscard]] std::string cause() const;
};

// Every transition, grouped by the state it leaves, in the order of RFC 9293 Figure 5
// (CLOSED, LISTEN, SYN-SENT, SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2,
// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT). A pair of states may have several edges
// with different causes (SYN-SENT -> CLOSED: CLOSE, rcv RST, timeout, ICMP).
[[nodiscard]] std::span<const TcpTransition> tcp_transitions() noexcept;

// The edges from `from` to `to`, in table order; empty when TCP never goes that way.
[[nodiscard]] std::vector<TcpTransition> tcp_transitions_between(TcpState from, TcpState to);

// True when some edge of the table goes from `from` to `to`.
[[nodiscard]] bool is_tcp_transition(TcpState from, TcpState to) noexcept;

// The edge a drawing shows for this pair: the figure's edge if the figure draws one,
// else the first edge of the table; nullptr when there is none.
[[nodiscard]] const TcpTransition* principal_tcp_transition(TcpState from, TcpState to) noexcept;

}  // namespace portlab
