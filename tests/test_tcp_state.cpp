// The hub's TCP state machine, ss spellings and SYN retransmission schedule, held to what
// RFC 9293 section 3.3.2 (Figure 5 and its notes), iproute2's ss and the kernel's
// net/ipv4/tcp_timer.c say; the schedule's defaults also to a fresh network namespace's
// sysctls on this machine.
#include <netinet/tcp.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "portlab/syn_schedule.hpp"
#include "portlab/tcp_machine.hpp"
#include "portlab/tcp_state.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::test;

namespace {

constexpr std::array all_states{TcpState::closed,     TcpState::listen,     TcpState::syn_sent, TcpState::syn_received,
                                TcpState::established, TcpState::fin_wait_1, TcpState::fin_wait_2, TcpState::close_wait,
                                TcpState::closing,    TcpState::last_ack,   TcpState::time_wait};

std::set<TcpState> targets_of(TcpState from) {
    std::set<TcpState> to;
    for (const auto& edge : tcp_transitions())
        if (edge.from == from) to.insert(edge.to);
    return to;
}

std::set<TcpState> sources_of(TcpState to) {
    std::set<TcpState> from;
    for (const auto& edge : tcp_transitions())
        if (edge.to == to) from.insert(edge.from);
    return from;
}

// The states reachable from `start` along the table's edges (start included).
std::set<TcpState> reachable_from(TcpState start) {
    std::set<TcpState> seen{start};
    std::vector<TcpState> todo{start};
    while (!todo.empty()) {
        const TcpState state = todo.back();
        todo.pop_back();
        for (const TcpState next : targets_of(state))
            if (seen.insert(next).second) todo.push_back(next);
    }
    return seen;
}

bool has_edge(TcpState from, TcpState to, std::string_view event, TcpEdgeSource source) {
    for (const auto& edge : tcp_transitions_between(from, to))
        if (edge.event == event && edge.source == source) return true;
    return false;
}

std::vector<std::uint64_t> in_seconds(const std::vector<std::uint64_t>& us) {
    std::vector<std::uint64_t> s;
    for (const auto t : us) s.push_back(t / 1'000'000);
    return s;
}

}  // namespace

TEST_CASE("a connection leaves CLOSED only by an OPEN: to LISTEN (passive) or SYN-SENT (active)", "[tcp_state][rfc]") {
    CHECK(targets_of(TcpState::closed) == std::set{TcpState::listen, TcpState::syn_sent});
    CHECK(has_edge(TcpState::closed, TcpState::listen, "passive OPEN", TcpEdgeSource::figure));
    CHECK(has_edge(TcpState::closed, TcpState::syn_sent, "active OPEN", TcpEdgeSource::figure));
    // SYN-SENT is entered only by sending a SYN: an active OPEN, or SEND on a listener.
    CHECK(sources_of(TcpState::syn_sent) == std::set{TcpState::closed, TcpState::listen});
    // LISTEN is entered by a passive OPEN, or by an RST in SYN-RECEIVED after one (Note 1).
    CHECK(sources_of(TcpState::listen) == std::set{TcpState::closed, TcpState::syn_received});
}

TEST_CASE("Figure 5 draws twenty arrows, each between two different states", "[tcp_state][rfc]") {
    std::set<std::pair<TcpState, TcpState>> drawn;
    for (const auto& edge : tcp_transitions()) {
        if (edge.source != TcpEdgeSource::figure) continue;
        CAPTURE(to_string(edge.from), to_string(edge.to));
        CHECK(edge.from != edge.to);
        CHECK(edge.reference.find("Figure 5") != std::string_view::npos);
        CHECK(drawn.insert({edge.from, edge.to}).second);
    }
    CHECK(drawn.size() == 20);
}

TEST_CASE("the handshake, simultaneous open, both closes and TIME-WAIT have the figure's causes", "[tcp_state][rfc]") {
    using S = TcpState;
    // Three-way handshake (RFC 9293 3.5, Figure 6).
    CHECK(principal_tcp_transition(S::listen, S::syn_received)->cause() == "rcv SYN, snd SYN,ACK");
    CHECK(principal_tcp_transition(S::syn_sent, S::established)->cause() == "rcv SYN,ACK, snd ACK");
    CHECK(principal_tcp_transition(S::syn_received, S::established)->cause() == "rcv ACK of SYN");
    // Simultaneous open (Figure 7): RFC 9293 answers the SYN with SYN,ACK (RFC 793 printed "snd ACK").
    CHECK(principal_tcp_transition(S::syn_sent, S::syn_received)->cause() == "rcv SYN, snd SYN,ACK");
    // Active close, passive close (Figure 12) and simultaneous close (Figure 13).
    CHECK(principal_tcp_transition(S::established, S::fin_wait_1)->cause() == "CLOSE, snd FIN");
    CHECK(principal_tcp_transition(S::established, S::close_wait)->cause() == "rcv FIN, snd ACK");
    CHECK(principal_tcp_transition(S::fin_wait_1, S::fin_wait_2)->cause() == "rcv ACK of FIN");
    CHECK(principal_tcp_transition(S::fin_wait_2, S::time_wait)->cause() == "rcv FIN, snd ACK");
    CHECK(principal_tcp_transition(S::close_wait, S::last_ack)->cause() == "CLOSE, snd FIN");
    CHECK(principal_tcp_transition(S::last_ack, S::closed)->cause() == "rcv ACK of FIN");
    CHECK(principal_tcp_transition(S::fin_wait_1, S::closing)->cause() == "rcv FIN, snd ACK");
    CHECK(principal_tcp_transition(S::closing, S::time_wait)->cause() == "rcv ACK of FIN");
    CHECK(principal_tcp_transition(S::time_wait, S::closed)->cause() == "timeout=2MSL, delete TCB");
    // Note 2: FIN-WAIT-1 straight to TIME-WAIT, in the text, not drawn.
    CHECK(principal_tcp_transition(S::fin_wait_1, S::time_wait)->source == TcpEdgeSource::rfc);
    // TIME-WAIT ends only in CLOSED, and only the active closer gets there.
    CHECK(targets_of(S::time_wait) == std::set{S::closed});
    CHECK(sources_of(S::time_wait) == std::set{S::fin_wait_1, S::fin_wait_2, S::closing});
}

TEST_CASE("an RST ends every synchronized connection (Note 3) but is ignored in LISTEN", "[tcp_state][rfc]") {
    for (const auto state : {TcpState::established, TcpState::fin_wait_1, TcpState::fin_wait_2, TcpState::close_wait,
                             TcpState::closing, TcpState::last_ack, TcpState::time_wait, TcpState::syn_received}) {
        CAPTURE(to_string(state));
        bool rst_to_closed = false;
        for (const auto& edge : tcp_transitions_between(state, TcpState::closed)) rst_to_closed |= edge.event == "rcv RST";
        CHECK(rst_to_closed);
    }
    // RFC 9293 3.10.7.2: "An incoming RST segment could not be valid ... should be ignored."
    for (const auto& edge : tcp_transitions()) {
        if (edge.from == TcpState::listen) CHECK(edge.event != "rcv RST");
    }
    // SYN-SENT takes an RST only when it acknowledges our SYN (3.10.7.3): connect() is refused.
    CHECK(has_edge(TcpState::syn_sent, TcpState::closed, "rcv RST", TcpEdgeSource::rfc));
}

TEST_CASE("Linux's own edges: a SYN that times out, an ICMP error, a request sock freed", "[tcp_state][linux]") {
    CHECK(has_edge(TcpState::syn_sent, TcpState::closed, "timeout (tcp_syn_retries)", TcpEdgeSource::rfc));
    CHECK(has_edge(TcpState::syn_sent, TcpState::closed, "rcv ICMP unreachable (hard error)", TcpEdgeSource::linux_kernel));
    CHECK(has_edge(TcpState::syn_received, TcpState::closed, "rcv RST", TcpEdgeSource::linux_kernel));
    CHECK(has_edge(TcpState::syn_received, TcpState::closed, "timeout (tcp_synack_retries)", TcpEdgeSource::linux_kernel));
    CHECK(has_edge(TcpState::fin_wait_2, TcpState::closed, "timeout (tcp_fin_timeout)", TcpEdgeSource::linux_kernel));
}

TEST_CASE("every state is reachable from CLOSED and leads back to it, and every edge says why and where", "[tcp_state]") {
    CHECK(reachable_from(TcpState::closed).size() == all_states.size());
    for (const auto state : all_states) {
        CAPTURE(to_string(state));
        CHECK(reachable_from(state).contains(TcpState::closed));
    }
    for (const auto& edge : tcp_transitions()) {
        CAPTURE(to_string(edge.from), to_string(edge.to), edge.event);
        CHECK(!edge.event.empty());
        CHECK((edge.reference.starts_with("RFC") || edge.reference.starts_with("Linux")));
        CHECK(is_tcp_transition(edge.from, edge.to));
    }
    CHECK_FALSE(is_tcp_transition(TcpState::closed, TcpState::established));
    CHECK_FALSE(is_tcp_transition(TcpState::time_wait, TcpState::established));
    CHECK(tcp_transitions_between(TcpState::listen, TcpState::established).empty());
    CHECK(principal_tcp_transition(TcpState::syn_sent, TcpState::closed)->event == "CLOSE");  // the figure's edge
}

TEST_CASE("ss spells the kernel's states as iproute2's sstate_name[] does", "[tcp_state][ss]") {
    // misc/ss.c sstate_name[], indexed by include/net/tcp_states.h's numbers.
    const auto [number, name] = GENERATE(table<int, std::string>({
        {TCP_ESTABLISHED, "ESTAB"},  {TCP_SYN_SENT, "SYN-SENT"},     {TCP_SYN_RECV, "SYN-RECV"},
        {TCP_FIN_WAIT1, "FIN-WAIT-1"}, {TCP_FIN_WAIT2, "FIN-WAIT-2"}, {TCP_TIME_WAIT, "TIME-WAIT"},
        {TCP_CLOSE, "UNCONN"},       {TCP_CLOSE_WAIT, "CLOSE-WAIT"}, {TCP_LAST_ACK, "LAST-ACK"},
        {TCP_LISTEN, "LISTEN"},      {TCP_CLOSING, "CLOSING"},
    }));
    CAPTURE(number);
    const auto state = from_linux_tcp_state(number);
    REQUIRE(state);
    CHECK(to_linux_tcp_state(*state) == number);
    CHECK(ss_name(*state) == name);
    CHECK(ss_state_name(number) == name);
    // What ss prints reads back as the same state, except UNCONN, which is no TCP state.
    if (name != "UNCONN") CHECK(parse_tcp_state(name).value() == *state);
}

TEST_CASE("ss's names for numbers outside TCP's states", "[tcp_state][ss]") {
    CHECK(ss_state_name(0) == "UNKNOWN");
    CHECK(ss_state_name(12) == "SYN-RECV");  // TCP_NEW_SYN_RECV, a request sock
    CHECK(ss_state_name(200) == "UNKNOWN");
    CHECK(ss_state_name(-1) == "UNKNOWN");
}

TEST_CASE("Linux 6.5+ sends the SYN again at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s and gives up at 131 s", "[tcp_state][syn]") {
    // net/ipv4/tcp_timer.c: tcp_write_timeout() allows tcp_syn_retries (6) +
    // tcp_syn_linear_timeouts (4) retransmissions; tcp_retransmit_timer() doubles the RTO
    // only once more than tcp_syn_linear_timeouts have gone out. Waits: 1 s after the SYN
    // and after each of the first four retransmissions, then 2, 4, 8, 16, 32, 64 s.
    const SynSchedule schedule = SynSchedule::linux_default();
    CHECK(schedule.retransmissions() == 10);
    CHECK(in_seconds(schedule.retransmit_at_us()) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 7, 11, 19, 35, 67});
    CHECK(schedule.give_up_at_us() == 131'000'000);
    CHECK(schedule.timeout_us(0) == 1'000'000);
    CHECK(schedule.timeout_us(4) == 1'000'000);
    CHECK(schedule.timeout_us(5) == 2'000'000);
    CHECK(schedule.timeout_us(10) == 64'000'000);
}

TEST_CASE("before Linux 6.5 every wait doubles: 1, 3, 7, 15, 31, 63 s, giving up at 127 s", "[tcp_state][syn]") {
    // ip-sysctl.rst, tcp_syn_retries: "the final timeout for an active TCP connection
    // attempt will happen after 127 seconds" with the default of 6.
    const SynSchedule schedule = SynSchedule::before_linux_6_5();
    CHECK(in_seconds(schedule.retransmit_at_us()) == std::vector<std::uint64_t>{1, 3, 7, 15, 31, 63});
    CHECK(schedule.give_up_at_us() == 127'000'000);
}

TEST_CASE("the SYN's wait stops growing at TCP_RTO_MAX = 120 s", "[tcp_state][syn]") {
    SynSchedule schedule = SynSchedule::before_linux_6_5();
    schedule.syn_retries = 10;
    CHECK(schedule.timeout_us(6) == 64'000'000);
    CHECK(schedule.timeout_us(7) == 120'000'000);
    CHECK(schedule.timeout_us(10) == 120'000'000);
    CHECK(schedule.give_up_at_us() == (127 + 4 * 120) * 1'000'000ULL);
    schedule.syn_retries = 0;  // no retransmission at all: one wait, then ETIMEDOUT
    CHECK(schedule.retransmit_at_us().empty());
    CHECK(schedule.give_up_at_us() == 1'000'000);
}

TEST_CASE("the default schedule is what this kernel gives a fresh network namespace", "[tcp_state][syn][kernel]") {
    // tcp_sk_init() (net/ipv4/tcp_ipv4.c) sets each namespace's sysctls to the defaults.
    const auto read = run_command("unshare -Urn sh -c 'cat /proc/sys/net/ipv4/tcp_syn_retries; "
                                  "cat /proc/sys/net/ipv4/tcp_syn_linear_timeouts 2>/dev/null || echo 0'",
                                  10);
    if (read.exit_code != 0) {
        WARN("no user+net namespace here (" << read.err << "); the kernel's defaults were not read");
        return;
    }
    const auto values = lines_of(read.out);
    REQUIRE(values.size() == 2);
    const SynSchedule defaults = SynSchedule::linux_default();
    CHECK(std::stoul(values[0]) == defaults.syn_retries);
    if (std::stoul(values[1]) == 0) {
        WARN("this kernel predates tcp_syn_linear_timeouts (Linux 6.5): it doubles every wait");
    } else {
        CHECK(std::stoul(values[1]) == defaults.linear_timeouts);
    }
}
