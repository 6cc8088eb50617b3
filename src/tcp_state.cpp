// TCP state names: RFC 793 3.2 for printing, Linux tools' spellings accepted when parsing.
#include "portlab/tcp_state.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace portlab {
namespace {

// One spelling per row; `canonical` folds case and '_' to '-' before the lookup,
// so "syn_sent", "SYN_SENT" and "SYN-SENT" all find the "SYN-SENT" row.
constexpr std::array<std::pair<std::string_view, TcpState>, 17> spellings{{
    // RFC 793 section 3.2.
    {"CLOSED", TcpState::closed},
    {"LISTEN", TcpState::listen},
    {"SYN-SENT", TcpState::syn_sent},
    {"SYN-RECEIVED", TcpState::syn_received},
    {"ESTABLISHED", TcpState::established},
    {"FIN-WAIT-1", TcpState::fin_wait_1},
    {"FIN-WAIT-2", TcpState::fin_wait_2},
    {"CLOSE-WAIT", TcpState::close_wait},
    {"CLOSING", TcpState::closing},
    {"LAST-ACK", TcpState::last_ack},
    {"TIME-WAIT", TcpState::time_wait},
    // ss(8) (iproute2 misc/ss.c, sstate_name[]).
    {"ESTAB", TcpState::established},
    {"SYN-RECV", TcpState::syn_received},
    // netstat(8) and the kernel's TCP_* constant names.
    {"FIN-WAIT1", TcpState::fin_wait_1},
    {"FIN-WAIT2", TcpState::fin_wait_2},
    {"CLOSE", TcpState::closed},
    {"SYN-RCVD", TcpState::syn_received},  // BSD netstat
}};

// Order of include/net/tcp_states.h, starting at TCP_ESTABLISHED = 1.
constexpr std::array<TcpState, 11> by_linux_number{
    TcpState::established, TcpState::syn_sent,  TcpState::syn_received, TcpState::fin_wait_1,
    TcpState::fin_wait_2,  TcpState::time_wait, TcpState::closed,       TcpState::close_wait,
    TcpState::last_ack,    TcpState::listen,    TcpState::closing,
};

std::string canonical(std::string_view text) {
    std::string folded(text);
    std::transform(folded.begin(), folded.end(), folded.begin(), [](char c) {
        if (c == '_') return '-';
        if (c >= 'a' && c <= 'z') return static_cast<char>(c - 'a' + 'A');
        return c;
    });
    return folded;
}

}  // namespace

std::string_view to_string(TcpState state) noexcept {
    switch (state) {
        case TcpState::closed: return "CLOSED";
        case TcpState::listen: return "LISTEN";
        case TcpState::syn_sent: return "SYN-SENT";
        case TcpState::syn_received: return "SYN-RECEIVED";
        case TcpState::established: return "ESTABLISHED";
        case TcpState::fin_wait_1: return "FIN-WAIT-1";
        case TcpState::fin_wait_2: return "FIN-WAIT-2";
        case TcpState::close_wait: return "CLOSE-WAIT";
        case TcpState::closing: return "CLOSING";
        case TcpState::last_ack: return "LAST-ACK";
        case TcpState::time_wait: return "TIME-WAIT";
    }
    return "?";
}

Result<TcpState> parse_tcp_state(std::string_view text) {
    const std::string key = canonical(text);
    if (key == "UNCONN") {
        return fail("'" + std::string(text) + "' is how ss shows a socket with no TCP state (UDP, raw); it is not a TCP state");
    }
    for (const auto& [spelling, state] : spellings) {
        if (spelling == key) return state;
    }
    return fail("'" + std::string(text) + "' is not a TCP state (expected an RFC 793 name such as SYN-SENT or ESTABLISHED)");
}

Result<TcpState> from_linux_tcp_state(int kernel_state) {
    if (kernel_state < 1 || kernel_state > static_cast<int>(by_linux_number.size())) {
        return fail("kernel TCP state " + std::to_string(kernel_state) +
                    " is not one of TCP_ESTABLISHED (1) .. TCP_CLOSING (11)");
    }
    return by_linux_number[static_cast<std::size_t>(kernel_state - 1)];
}

int to_linux_tcp_state(TcpState state) noexcept {
    const auto* at = std::find(by_linux_number.begin(), by_linux_number.end(), state);
    return static_cast<int>(at - by_linux_number.begin()) + 1;
}

std::string_view ss_name(TcpState state) noexcept { return ss_state_name(to_linux_tcp_state(state)); }

std::string_view ss_state_name(int kernel_state) noexcept {
    // misc/ss.c sstate_name[], indexed by the kernel's number; 12 is TCP_NEW_SYN_RECV.
    constexpr std::array<std::string_view, 13> names{
        "UNKNOWN", "ESTAB",      "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
        "UNCONN",  "CLOSE-WAIT", "LAST-ACK", "LISTEN",   "CLOSING",    "SYN-RECV",
    };
    if (kernel_state < 0 || kernel_state >= static_cast<int>(names.size())) return "UNKNOWN";
    return names[static_cast<std::size_t>(kernel_state)];
}

}  // namespace portlab
