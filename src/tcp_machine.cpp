// The TCP state machine as data; see tcp_machine.hpp for the three kinds of edge.
#include "portlab/tcp_machine.hpp"

#include <array>

namespace portlab {
namespace {

using S = TcpState;
constexpr auto figure = TcpEdgeSource::figure;
constexpr auto rfc = TcpEdgeSource::rfc;
constexpr auto linux_kernel = TcpEdgeSource::linux_kernel;

constexpr std::string_view figure_5 = "RFC 9293 3.3.2 Figure 5 (RFC 793 3.2 Figure 6)";
// Note 3 of Figure 5: "receipt of a RST from any state results in a transition to
// LISTEN or CLOSED"; 3.10.7.4 "second, check the RST bit" says which.
constexpr std::string_view rst_rule = "RFC 9293 3.3.2 Note 3; 3.10.7.4 (second, check the RST bit)";
// 3.10.5: ABORT in a synchronized state sends a reset and deletes the TCB. Linux aborts
// this way when close() finds unread data (tcp_close(), RFC 2525 2.17), with SO_LINGER
// of 0, and for connections a closed listener never accepted (inet_csk_listen_stop()).
constexpr std::string_view abort_rule = "RFC 9293 3.10.5 (ABORT); Linux tcp_close(), inet_csk_listen_stop()";
// 3.10.8: the USER TIMEOUT ends a connection whose data is not acknowledged in time;
// Linux counts retransmissions instead (tcp_write_timeout(): tcp_retries2, or
// tcp_orphan_retries once the application closed the socket).
constexpr std::string_view timeout_rule = "RFC 9293 3.10.8 (USER TIMEOUT); Linux tcp_write_timeout() (net/ipv4/tcp_timer.c)";

// Grouped by the state left, in Figure 5's order; within a group the figure's edges first.
constexpr std::array transitions{
    // CLOSED
    TcpTransition{S::closed, S::listen, "passive OPEN", "create TCB", figure_5, figure},
    TcpTransition{S::closed, S::syn_sent, "active OPEN", "create TCB, snd SYN", figure_5, figure},
    // LISTEN (an RST here is ignored: 3.10.7.2)
    TcpTransition{S::listen, S::syn_received, "rcv SYN", "snd SYN,ACK", figure_5, figure},
    TcpTransition{S::listen, S::syn_sent, "SEND", "snd SYN", figure_5, figure},
    TcpTransition{S::listen, S::closed, "CLOSE", "delete TCB", figure_5, figure},
    // SYN-SENT
    TcpTransition{S::syn_sent, S::established, "rcv SYN,ACK", "snd ACK", figure_5, figure},
    // Simultaneous open. RFC 793's figure printed "snd ACK" here; RFC 9293 corrected it.
    TcpTransition{S::syn_sent, S::syn_received, "rcv SYN", "snd SYN,ACK", figure_5, figure},
    TcpTransition{S::syn_sent, S::closed, "CLOSE", "delete TCB", figure_5, figure},
    TcpTransition{S::syn_sent, S::closed, "rcv RST", "delete TCB (connect: ECONNREFUSED)",
                  "RFC 9293 3.10.7.3 (an RST acknowledging our SYN); Linux tcp_reset()", rfc},
    TcpTransition{S::syn_sent, S::closed, "timeout (tcp_syn_retries)", "delete TCB (connect: ETIMEDOUT)", timeout_rule, rfc},
    // RFC 1122 4.2.3.9 lets TCP abort on a hard ICMP error; Linux does so only in SYN-SENT
    // (and SYN-RECEIVED), with the errno icmp_err_convert[] gives the code.
    TcpTransition{S::syn_sent, S::closed, "rcv ICMP unreachable (hard error)",
                  "delete TCB (connect: ECONNREFUSED for port unreachable, EHOSTUNREACH, ...)",
                  "Linux tcp_v4_err() (net/ipv4/tcp_ipv4.c), icmp_err_convert[]; RFC 1122 4.2.3.9", linux_kernel},
    // SYN-RECEIVED
    TcpTransition{S::syn_received, S::established, "rcv ACK of SYN", "", figure_5, figure},
    TcpTransition{S::syn_received, S::fin_wait_1, "CLOSE", "snd FIN", figure_5, figure},
    TcpTransition{S::syn_received, S::listen, "rcv RST", "", "RFC 9293 3.3.2 Figure 5, Note 1 (after a passive OPEN)", figure},
    TcpTransition{S::syn_received, S::closed, "rcv RST", "delete TCB (connection refused)",
                  "RFC 9293 3.10.7.4 (second: after an active OPEN)", rfc},
    // Linux keeps a passive open in a request sock, not in the listener's TCB: an RST
    // or too many SYN,ACKs free it, and the listener never left LISTEN.
    TcpTransition{S::syn_received, S::closed, "rcv RST", "free the request sock (the listener stays in LISTEN)",
                  "Linux tcp_check_req() (net/ipv4/tcp_minisocks.c)", linux_kernel},
    TcpTransition{S::syn_received, S::closed, "timeout (tcp_synack_retries)", "free the request sock",
                  "Linux reqsk_timer_handler() (net/ipv4/inet_connection_sock.c)", linux_kernel},
    TcpTransition{S::syn_received, S::closed, "rcv ICMP unreachable (hard error)", "delete TCB",
                  "Linux tcp_v4_err(), tcp_req_err() (net/ipv4/tcp_ipv4.c); RFC 1122 4.2.3.9", linux_kernel},
    TcpTransition{S::syn_received, S::closed, "ABORT", "snd RST, delete TCB", abort_rule, rfc},
    TcpTransition{S::syn_received, S::close_wait, "rcv FIN", "snd ACK", "RFC 9293 3.10.7.4 (eighth, check the FIN bit)", rfc},
    // ESTABLISHED
    TcpTransition{S::established, S::fin_wait_1, "CLOSE", "snd FIN", figure_5, figure},
    TcpTransition{S::established, S::close_wait, "rcv FIN", "snd ACK", figure_5, figure},
    TcpTransition{S::established, S::closed, "rcv RST", "delete TCB (ECONNRESET)", rst_rule, rfc},
    TcpTransition{S::established, S::closed, "ABORT", "snd RST, delete TCB", abort_rule, rfc},
    TcpTransition{S::established, S::closed, "timeout (tcp_retries2)", "delete TCB (ETIMEDOUT)", timeout_rule, rfc},
    // FIN-WAIT-1
    TcpTransition{S::fin_wait_1, S::fin_wait_2, "rcv ACK of FIN", "", figure_5, figure},
    TcpTransition{S::fin_wait_1, S::closing, "rcv FIN", "snd ACK", figure_5, figure},
    TcpTransition{S::fin_wait_1, S::time_wait, "rcv FIN, our FIN already acknowledged", "snd ACK",
                  "RFC 9293 3.3.2 Note 2; 3.10.7.4 (eighth, check the FIN bit)", rfc},
    TcpTransition{S::fin_wait_1, S::closed, "rcv RST", "delete TCB (ECONNRESET)", rst_rule, rfc},
    TcpTransition{S::fin_wait_1, S::closed, "ABORT", "snd RST, delete TCB", abort_rule, rfc},
    TcpTransition{S::fin_wait_1, S::closed, "timeout (tcp_retries2)", "delete TCB (ETIMEDOUT)", timeout_rule, rfc},
    // FIN-WAIT-2
    TcpTransition{S::fin_wait_2, S::time_wait, "rcv FIN", "snd ACK", figure_5, figure},
    TcpTransition{S::fin_wait_2, S::closed, "rcv RST", "delete TCB (ECONNRESET)", rst_rule, rfc},
    TcpTransition{S::fin_wait_2, S::closed, "ABORT", "snd RST, delete TCB", abort_rule, rfc},
    // The RFC lets FIN-WAIT-2 wait forever; Linux ends it tcp_fin_timeout (60 s) after
    // the application closed the socket.
    TcpTransition{S::fin_wait_2, S::closed, "timeout (tcp_fin_timeout)", "delete TCB",
                  "Linux tcp_fin_timeout: tcp_keepalive_timer() (net/ipv4/tcp_timer.c), tcp_time_wait() (tcp_minisocks.c)",
                  linux_kernel},
    // CLOSE-WAIT
    TcpTransition{S::close_wait, S::last_ack, "CLOSE", "snd FIN", figure_5, figure},
    TcpTransition{S::close_wait, S::closed, "rcv RST", "delete TCB (ECONNRESET)", rst_rule, rfc},
    TcpTransition{S::close_wait, S::closed, "ABORT", "snd RST, delete TCB", abort_rule, rfc},
    TcpTransition{S::close_wait, S::closed, "timeout (tcp_retries2)", "delete TCB (ETIMEDOUT)", timeout_rule, rfc},
    // CLOSING
    TcpTransition{S::closing, S::time_wait, "rcv ACK of FIN", "", figure_5, figure},
    TcpTransition{S::closing, S::closed, "rcv RST", "delete TCB", rst_rule, rfc},
    TcpTransition{S::closing, S::closed, "ABORT", "delete TCB", "RFC 9293 3.10.5 (ABORT)", rfc},
    TcpTransition{S::closing, S::closed, "timeout (tcp_orphan_retries)", "delete TCB", timeout_rule, rfc},
    // LAST-ACK
    TcpTransition{S::last_ack, S::closed, "rcv ACK of FIN", "", figure_5, figure},
    TcpTransition{S::last_ack, S::closed, "rcv RST", "delete TCB", rst_rule, rfc},
    TcpTransition{S::last_ack, S::closed, "ABORT", "delete TCB", "RFC 9293 3.10.5 (ABORT)", rfc},
    TcpTransition{S::last_ack, S::closed, "timeout (tcp_orphan_retries)", "delete TCB", timeout_rule, rfc},
    // TIME-WAIT
    TcpTransition{S::time_wait, S::closed, "timeout=2MSL", "delete TCB", figure_5, figure},
    // RFC 1337 calls this "TIME-WAIT assassination"; Linux allows it unless tcp_rfc1337 = 1.
    TcpTransition{S::time_wait, S::closed, "rcv RST", "delete TCB",
                  "RFC 9293 3.10.7.4 (second); Linux tcp_timewait_state_process() with tcp_rfc1337 = 0", rfc},
};

}  // namespace

std::string_view to_string(TcpEdgeSource source) noexcept {
    switch (source) {
        case TcpEdgeSource::figure: return "figure";
        case TcpEdgeSource::rfc: return "rfc";
        case TcpEdgeSource::linux_kernel: return "linux";
    }
    return "?";
}

std::string TcpTransition::cause() const {
    std::string text(event);
    if (!action.empty()) text.append(", ").append(action);
    return text;
}

std::span<const TcpTransition> tcp_transitions() noexcept { return transitions; }

std::vector<TcpTransition> tcp_transitions_between(TcpState from, TcpState to) {
    std::vector<TcpTransition> found;
    for (const auto& edge : transitions)
        if (edge.from == from && edge.to == to) found.push_back(edge);
    return found;
}

bool is_tcp_transition(TcpState from, TcpState to) noexcept { return principal_tcp_transition(from, to) != nullptr; }

const TcpTransition* principal_tcp_transition(TcpState from, TcpState to) noexcept {
    const TcpTransition* first = nullptr;
    for (const auto& edge : transitions) {
        if (edge.from != from || edge.to != to) continue;
        if (edge.source == TcpEdgeSource::figure) return &edge;
        if (first == nullptr) first = &edge;
    }
    return first;
}

}  // namespace portlab
