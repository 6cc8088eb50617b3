// TCP: the RFC 793 / RFC 9293 state machine, in the order of RFC 9293 3.10.7
// ("SEGMENT ARRIVES"), simplified where docs/sim.md says so: no window limits,
// no reassembly of out-of-order data (it is dropped and re-ACKed; the sender goes
// back to snd_una on a timeout), an ACK for every segment that carries data or FIN.
#include <algorithm>
#include <array>
#include <span>

#include "portlab/sim/kernel.hpp"
#include "portlab/sim/random.hpp"

namespace portlab::sim {

namespace {

// Sequence numbers compare modulo 2^32 (RFC 9293 3.4).
bool seq_lt(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) < 0; }
bool seq_le(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) <= 0; }

std::uint32_t segment_length(const TcpBody& segment) {
    std::uint32_t length = static_cast<std::uint32_t>(segment.payload.size());
    if (segment.header.flags & tcp_flag::syn) ++length;
    if (segment.header.flags & tcp_flag::fin) ++length;
    return length;
}

FourTuple tuple_of(const Wire& packet) {
    const auto& tcp = std::get<TcpBody>(packet.body);
    return FourTuple{Endpoint{packet.ip.destination, tcp.header.destination_port},
                     Endpoint{packet.ip.source, tcp.header.source_port}};
}

}  // namespace

// ---- sending -----------------------------------------------------------------------

void Kernel::send_segment(HostId h, Socket& s, std::uint32_t seq, std::uint8_t flags, const Bytes& payload) {
    if (!s.local || !s.remote) return;
    TcpHeader header;
    header.source_port = s.local->port;
    header.destination_port = s.remote->port;
    header.sequence = seq;
    header.flags = flags;
    if (s.state != TcpState::syn_sent || (flags & tcp_flag::ack)) {
        if (flags & tcp_flag::ack) header.acknowledgment = s.tcb.rcv_nxt;
    }
    if (flags & tcp_flag::syn) {
        // The options Linux puts on a SYN (no timestamps: the model has no clock to show).
        header.options.mss = world.tcp.mss;
        header.options.sack_permitted = true;
        header.options.window_scale = 7;
    }
    const Endpoint from{s.local->address, s.local->port};
    const Endpoint to = *s.remote;
    if (auto wire = make_tcp(h, from, to, header, payload)) transmit(h, std::move(*wire));
}

// RFC 9293 3.10.7.1: the answer to a segment for no connection. If it had an ACK,
// <SEQ=SEG.ACK><CTL=RST>; otherwise <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
void Kernel::send_reset_for(HostId h, const Wire& offending) {
    const auto& segment = std::get<TcpBody>(offending.body);
    if (segment.header.flags & tcp_flag::rst) return;
    TcpHeader header;
    header.source_port = segment.header.destination_port;
    header.destination_port = segment.header.source_port;
    header.window = 0;
    if (segment.header.flags & tcp_flag::ack) {
        header.sequence = segment.header.acknowledgment;
        header.flags = tcp_flag::rst;
    } else {
        header.acknowledgment = segment.header.sequence + segment_length(segment);
        header.flags = tcp_flag::rst | tcp_flag::ack;
    }
    const Endpoint from{offending.ip.destination, segment.header.destination_port};
    const Endpoint to{offending.ip.source, segment.header.source_port};
    if (auto wire = make_tcp(h, from, to, header, {})) transmit(h, std::move(*wire));
}

// Sends whatever lies between snd_nxt and the end of the send buffer, in MSS-sized
// segments, then the FIN if close() queued one.
void Kernel::tcp_output(HostId h, Socket& s) {
    switch (s.state) {
        case TcpState::established:
        case TcpState::close_wait:
        case TcpState::fin_wait_1:
        case TcpState::closing:
        case TcpState::last_ack: break;
        default: return;
    }
    Tcb& tcb = s.tcb;
    const std::uint32_t end_of_data = tcb.send_base + static_cast<std::uint32_t>(tcb.send_buffer.size());
    while (seq_lt(tcb.snd_nxt, end_of_data)) {
        const std::uint32_t offset = tcb.snd_nxt - tcb.send_base;
        const std::uint32_t length = std::min<std::uint32_t>(world.tcp.mss, end_of_data - tcb.snd_nxt);
        const Bytes chunk(tcb.send_buffer.begin() + offset, tcb.send_buffer.begin() + offset + length);
        send_segment(h, s, tcb.snd_nxt, tcp_flag::ack | tcp_flag::psh, chunk);
        tcb.snd_nxt += length;
    }
    if (tcb.fin_queued && tcb.snd_nxt == end_of_data) {
        send_segment(h, s, tcb.snd_nxt, tcp_flag::fin | tcp_flag::ack);
        tcb.snd_nxt += 1;
    }
    if (tcb.snd_una != tcb.snd_nxt && tcb.retransmit_timer.value == 0) arm_retransmit(h, s);
}

bool Kernel::fin_acked(const Socket& s) const {
    const std::uint32_t end_of_data = s.tcb.send_base + static_cast<std::uint32_t>(s.tcb.send_buffer.size());
    return s.tcb.fin_queued && s.tcb.snd_una == end_of_data + 1;
}

// ---- timers --------------------------------------------------------------------------

// Timers are data in the trace too (trace v2): timer_armed with its duration and attempt,
// then timer_fired or timer_stopped, so a viewer can count down what the kernel waits for.

void Kernel::arm_retransmit(HostId h, Socket& s) {
    disarm_retransmit(h, s);
    const Time timeout = retransmit_timeout(s);
    s.tcb.retransmit_timer = world.queue.schedule_at(world.now + timeout, TcpTimer{h, s.id, TimerKind::retransmit});
    record(h, trace::TimerArmed{s.id, trace::TimerKind::retransmission, timeout, s.tcb.retries});
}

// How long the retransmission timer runs now: a SYN follows Linux's SYN schedule
// (tcp_syn_linear_timeouts, then doubling: portlab/syn_schedule.hpp), anything else the
// RTO, which on_retransmit doubles (RFC 6298 5.5).
Time Kernel::retransmit_timeout(const Socket& s) const {
    if (s.state == TcpState::syn_sent) return world.tcp.syn.timeout_us(s.tcb.retries);
    return s.tcb.rto;
}

// Cancelled: everything sent was acknowledged, or the connection is over.
void Kernel::disarm_retransmit(HostId h, Socket& s) {
    if (s.tcb.retransmit_timer.value == 0) return;
    world.queue.cancel(s.tcb.retransmit_timer);
    s.tcb.retransmit_timer = EventId{};
    record(h, trace::TimerStopped{s.id, trace::TimerKind::retransmission});
}

// Cancelled: TIME-WAIT restarts (the peer's FIN came again) or ends early (an RST).
void Kernel::disarm_time_wait(HostId h, Socket& s) {
    if (s.tcb.time_wait_timer.value == 0) return;
    world.queue.cancel(s.tcb.time_wait_timer);
    s.tcb.time_wait_timer = EventId{};
    record(h, trace::TimerStopped{s.id, trace::TimerKind::time_wait});
}

void Kernel::on_tcp_timer(const TcpTimer& timer) {
    Socket* s = find(timer.host, timer.socket);
    if (s == nullptr) return;
    if (timer.kind == TimerKind::time_wait) {
        s->tcb.time_wait_timer = EventId{};
        record(timer.host, trace::TimerFired{s->id, trace::TimerKind::time_wait});
        set_state(timer.host, *s, TcpState::closed, "2MSL timer expired");
        destroy_socket(timer.host, s->id);
        return;
    }
    s->tcb.retransmit_timer = EventId{};
    record(timer.host, trace::TimerFired{s->id, trace::TimerKind::retransmission});
    on_retransmit(timer.host, *s);
}

// RFC 6298 5.4-5.6: retransmit, back off, restart the timer; give up after as many
// tries as Linux allows: tcp_syn_retries + tcp_syn_linear_timeouts for a SYN
// (tcp_write_timeout()), tcp_synack_retries for a SYN+ACK, tcp_retries2 for data.
void Kernel::on_retransmit(HostId h, Socket& s) {
    if (s.tcb.snd_una == s.tcb.snd_nxt) return;
    const std::uint32_t limit = s.state == TcpState::syn_sent       ? world.tcp.syn.retransmissions()
                                : s.state == TcpState::syn_received ? world.tcp.synack_retries
                                                                    : world.tcp.data_retries;
    const Time waited = retransmit_timeout(s);
    if (s.tcb.retries >= limit) {
        if (s.state == TcpState::syn_received && s.listener) {
            set_state(h, s, TcpState::closed, "SYN+ACK retransmissions exhausted");
            destroy_socket(h, s.id);
            return;
        }
        const std::string_view call = s.state == TcpState::syn_sent ? "connect" : "send";
        connection_closed(h, s, "retransmissions exhausted (" + std::to_string(limit) + " tries)", Errno::etimedout, call);
        return;
    }
    ++s.tcb.retries;
    if (s.state != TcpState::syn_sent) s.tcb.rto = std::min(s.tcb.rto * 2, world.tcp.max_rto);
    note(h, "retransmission timer expired after " + std::to_string(waited / 1000) + " ms (retry " +
                std::to_string(s.tcb.retries) + "): resending from seq " + std::to_string(s.tcb.snd_una - s.tcb.iss) +
                " (relative)");
    switch (s.state) {
        case TcpState::syn_sent: send_segment(h, s, s.tcb.iss, tcp_flag::syn); break;
        case TcpState::syn_received: send_segment(h, s, s.tcb.iss, tcp_flag::syn | tcp_flag::ack); break;
        default:
            s.tcb.snd_nxt = s.tcb.snd_una;  // go back N: resend everything unacknowledged
            tcp_output(h, s);               // which restarts the timer
            break;
    }
    if (s.tcb.retransmit_timer.value == 0) arm_retransmit(h, s);
}

// RFC 6298 2.2 with one sample R: SRTT = R, RTTVAR = R/2, RTO = R + 4*R/2 = 3R,
// clamped to Linux's [TCP_RTO_MIN, TCP_RTO_MAX]. Karn's rule: no sample after a retry;
// then the RTO starts at 3 s (RFC 6298 5.7; Linux tcp_init_metrics(), TCP_TIMEOUT_FALLBACK).
void Kernel::sample_rtt(Socket& s) {
    if (s.tcb.retries != 0) {
        s.tcb.rto = std::max(s.tcb.rto, world.tcp.fallback_rto);
        return;
    }
    const Time rtt = world.now - s.tcb.syn_sent_at;
    s.tcb.rto = std::clamp<Time>(3 * rtt, world.tcp.min_rto, world.tcp.max_rto);
}

void Kernel::enter_time_wait(HostId h, Socket& s, std::string cause) {
    disarm_retransmit(h, s);
    set_state(h, s, TcpState::time_wait, std::move(cause));
    disarm_time_wait(h, s);
    s.tcb.time_wait_timer =
        world.queue.schedule_at(world.now + 2 * world.tcp.msl, TcpTimer{h, s.id, TimerKind::time_wait});
    record(h, trace::TimerArmed{s.id, trace::TimerKind::time_wait, 2 * world.tcp.msl, 0});
}

// The connection is over without TIME-WAIT (refused, reset, timed out, LAST-ACK done).
// A socket the user still holds stays, unbound if the kernel had picked its port
// (Linux tcp_done -> inet_put_port), with the error for its next call.
void Kernel::connection_closed(HostId h, Socket& s, std::string cause, std::optional<Errno> error, std::string_view call) {
    disarm_retransmit(h, s);
    set_state(h, s, TcpState::closed, std::move(cause));
    if (!s.open_by_user) {
        destroy_socket(h, s.id);
        return;
    }
    remove_connection(h, s);
    if (s.port_auto_bound) detach_port(h, s);
    const auto remote = std::exchange(s.remote, std::nullopt);
    if (error) {
        s.error = *error;
        record(h, trace::CallFailed{s.id, std::string(call), std::string(errno_name(*error)),
                                    std::string(errno_message(*error)),
                                    call == "connect" ? remote : std::nullopt});  // the address connect() named
    }
}

// ---- input -----------------------------------------------------------------------------

// Linux drops a SYN when the listener's accept queue is full
// (tcp_conn_request: sk_acceptq_is_full, i.e. more than `backlog` waiting).
bool Kernel::listen_queue_full(HostId h, const Wire& packet, std::string& why) {
    const auto* tcp = std::get_if<TcpBody>(&packet.body);
    if (tcp == nullptr || tcp->header.flags != tcp_flag::syn) return false;
    if (host_of(h).find_connection(Protocol::tcp, tuple_of(packet))) return false;
    const auto listener = find_listener(h, tuple_of(packet).local);
    if (!listener) return false;
    const Socket* s = find(h, *listener);
    if (s->accept_queue.size() <= s->backlog) return false;
    why = "listen queue of socket " + std::to_string(s->id.value) + " is full (backlog " + std::to_string(s->backlog) +
          ", " + std::to_string(s->accept_queue.size()) + " waiting for accept())";
    return true;
}

// RFC 6528 (Linux secure_tcp_seq(), net/core/secure_seq.c): ISN = M + F(4-tuple, secret),
// M a clock ticking every 64 ns and F a keyed hash. For one 4-tuple the ISN grows with time,
// so a connection opened again on a 4-tuple that just closed starts above the sequence
// numbers of the old one: what lets TIME-WAIT take its SYN (syn_reopens_time_wait).
std::uint32_t Kernel::initial_sequence(const FourTuple& tuple) const {
    std::array<std::uint8_t, 16 + 2 + 16 + 2> bytes{};
    std::size_t size = 0;
    for (const Endpoint* end : {&tuple.local, &tuple.remote}) {
        const auto address = end->address.bytes();
        std::copy(address.begin(), address.end(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
        size += address.size();
        bytes[size++] = static_cast<std::uint8_t>(end->port >> 8);
        bytes[size++] = static_cast<std::uint8_t>(end->port & 0xff);
    }
    const std::uint64_t hash = keyed_hash(world.secret, std::span<const std::uint8_t>(bytes.data(), size));
    const std::uint64_t ticks_of_64_ns = world.now * 1000 / 64;  // world.now counts microseconds
    return static_cast<std::uint32_t>(hash + ticks_of_64_ns);
}

// Linux tcp_timewait_state_process() (net/ipv4/tcp_minisocks.c) answers TCP_TW_SYN to a bare
// SYN whose sequence number is after everything the old connection received: the TIME-WAIT
// socket is dropped and the SYN goes to the listener (tcp_v4_rcv), as RFC 9293 3.10.7.4 and
// RFC 6191 allow. An older SYN gets an ACK instead (TCP_TW_ACK), below as for any
// synchronized state.
bool Kernel::syn_reopens_time_wait(const Socket& s, const Wire& packet) {
    const auto& segment = std::get<TcpBody>(packet.body);
    return s.state == TcpState::time_wait && segment.header.flags == tcp_flag::syn &&
           seq_lt(s.tcb.rcv_nxt, segment.header.sequence);
}

void Kernel::tcp_input(HostId h, const Wire& packet) {
    const FourTuple tuple = tuple_of(packet);
    if (const auto found = host_of(h).find_connection(Protocol::tcp, tuple)) {
        const trace::SocketId id = *found;
        if (syn_reopens_time_wait(*find(h, id), packet)) {
            if (const auto listener = find_listener(h, tuple.local)) {
                Socket& old = *find(h, id);
                disarm_time_wait(h, old);
                set_state(h, old, TcpState::closed,
                          "a new SYN on this 4-tuple, numbered after the old connection's: TIME-WAIT gives way");
                destroy_socket(h, id);
                listen_input(h, *listener, packet);
                return;
            }
        }
        if (find(h, id)->state == TcpState::syn_sent) syn_sent_input(h, id, packet);
        else synchronized_input(h, id, packet);
        return;
    }
    if (const auto listener = find_listener(h, tuple.local)) {
        listen_input(h, *listener, packet);
        return;
    }
    send_reset_for(h, packet);  // a closed port: RST (RFC 9293 3.10.7.1)
}

// RFC 9293 3.10.7.2: a SYN to a listener makes a new connection in SYN-RECEIVED,
// answered with SYN+ACK. Linux makes it a request sock with the whole 4-tuple
// (tcp_conn_request; ss shows SYN-RECV), a full socket once the handshake completes
// (tcp_check_req), which waits ESTABLISHED in the accept queue until accept(). The model
// makes the child socket at once, and the trace introduces it so (child_created), 4-tuple
// and all: a connection nobody accepts (a connect scan's) still shows whose it is.
void Kernel::listen_input(HostId h, trace::SocketId listener_id, const Wire& packet) {
    const auto& segment = std::get<TcpBody>(packet.body);
    const std::uint8_t flags = segment.header.flags;
    if (flags & tcp_flag::rst) return;
    if (flags & tcp_flag::ack) {
        send_reset_for(h, packet);
        return;
    }
    if (!(flags & tcp_flag::syn)) return;
    const FourTuple tuple = tuple_of(packet);
    const Socket listener = *find(h, listener_id);  // a copy: create_socket may move the slots
    Socket& child = create_socket(h, Protocol::tcp, listener.family);
    child.open_by_user = false;  // nobody holds it until accept()
    child.reuse_address = listener.reuse_address;
    child.privileged = listener.privileged;
    child.listener = listener_id;
    child.state = TcpState::syn_received;  // LISTEN's "rcv SYN, snd SYN,ACK" edge, taken by the new socket
    attach_port(h, child, tuple.local);
    child.remote = tuple.remote;
    add_connection(h, child);
    record(h, trace::ChildCreated{listener_id, child.id, tuple});
    Tcb& tcb = child.tcb;
    tcb.irs = segment.header.sequence;
    tcb.rcv_nxt = segment.header.sequence + 1;
    tcb.iss = initial_sequence(tuple);
    tcb.snd_una = tcb.iss;
    tcb.snd_nxt = tcb.iss + 1;
    tcb.send_base = tcb.iss + 1;
    tcb.syn_sent_at = world.now;
    send_segment(h, child, tcb.iss, tcp_flag::syn | tcp_flag::ack);
    arm_retransmit(h, child);
}

// RFC 9293 3.10.7.3.
void Kernel::syn_sent_input(HostId h, trace::SocketId id, const Wire& packet) {
    Socket& s = *find(h, id);
    const auto& segment = std::get<TcpBody>(packet.body);
    const std::uint8_t flags = segment.header.flags;
    const bool has_ack = (flags & tcp_flag::ack) != 0;
    const bool ack_ok = has_ack && segment.header.acknowledgment == s.tcb.snd_nxt;
    if (has_ack && !ack_ok) {
        send_reset_for(h, packet);
        return;
    }
    if (flags & tcp_flag::rst) {
        if (ack_ok) connection_closed(h, s, "RST received in answer to the SYN: refused (no listener, or a firewall rejecting with a TCP reset; the client cannot tell which)", Errno::econnrefused, "connect");
        return;
    }
    if (!(flags & tcp_flag::syn)) return;
    s.tcb.irs = segment.header.sequence;
    s.tcb.rcv_nxt = segment.header.sequence + 1;
    if (ack_ok) {
        s.tcb.snd_una = segment.header.acknowledgment;
        disarm_retransmit(h, s);
        sample_rtt(s);
        s.tcb.retries = 0;
        set_state(h, s, TcpState::established, "SYN+ACK received");
        send_segment(h, s, s.tcb.snd_nxt, tcp_flag::ack);
        return;
    }
    // Simultaneous open (RFC 9293 figure 7).
    set_state(h, s, TcpState::syn_received, "SYN received while in SYN-SENT (simultaneous open)");
    send_segment(h, s, s.tcb.iss, tcp_flag::syn | tcp_flag::ack);
}

// ACK processing shared by the synchronized states: advances snd_una and drops
// the acknowledged bytes. False when the ACK acknowledges nothing we sent.
bool Kernel::process_ack(HostId h, Socket& s, std::uint32_t ack) {
    Tcb& tcb = s.tcb;
    if (!seq_lt(tcb.snd_una, ack) || !seq_le(ack, tcb.snd_nxt)) return false;
    if (seq_lt(tcb.send_base, ack)) {
        const std::uint32_t acked = std::min<std::uint32_t>(ack - tcb.send_base, static_cast<std::uint32_t>(tcb.send_buffer.size()));
        tcb.send_buffer.erase(tcb.send_buffer.begin(), tcb.send_buffer.begin() + acked);
        tcb.send_base += acked;
    }
    tcb.snd_una = ack;
    tcb.retries = 0;
    disarm_retransmit(h, s);
    if (tcb.snd_una != tcb.snd_nxt) arm_retransmit(h, s);
    return true;
}

// RFC 9293 3.10.7.4, "Otherwise": SYN-RECEIVED and every later state.
void Kernel::synchronized_input(HostId h, trace::SocketId id, const Wire& packet) {
    Socket* s = find(h, id);
    const auto& segment = std::get<TcpBody>(packet.body);
    const std::uint8_t flags = segment.header.flags;
    const std::uint32_t seq = segment.header.sequence;

    // First, RST: accepted only at exactly rcv_nxt (RFC 5961 3.2).
    if (flags & tcp_flag::rst) {
        if (seq != s->tcb.rcv_nxt) return;
        if (s->state == TcpState::syn_received && s->listener) {
            set_state(h, *s, TcpState::closed, "RST received");
            destroy_socket(h, id);
            return;
        }
        const bool reports_error = s->state == TcpState::established || s->state == TcpState::fin_wait_1 ||
                                   s->state == TcpState::fin_wait_2 || s->state == TcpState::close_wait ||
                                   s->state == TcpState::syn_received;
        connection_closed(h, *s, "RST received", reports_error ? std::optional(Errno::econnreset) : std::nullopt, "recv");
        return;
    }
    // A SYN on a synchronized connection gets a challenge ACK (RFC 5961 4.2).
    if (flags & tcp_flag::syn) {
        send_segment(h, *s, s->tcb.snd_nxt, tcp_flag::ack);
        return;
    }
    if (!(flags & tcp_flag::ack)) return;
    const std::uint32_t ack = segment.header.acknowledgment;

    if (s->state == TcpState::syn_received) {
        if (ack != s->tcb.snd_nxt) {
            send_reset_for(h, packet);
            return;
        }
        process_ack(h, *s, ack);
        sample_rtt(*s);
        set_state(h, *s, TcpState::established, "ACK of SYN+ACK received: handshake complete");
        if (s->listener) {
            if (Socket* listener = find(h, *s->listener)) listener->accept_queue.push_back(id);
        }
    } else {
        process_ack(h, *s, ack);
    }
    if (s->state == TcpState::fin_wait_1 && fin_acked(*s)) set_state(h, *s, TcpState::fin_wait_2, "ACK of our FIN received");
    else if (s->state == TcpState::closing && fin_acked(*s)) {
        enter_time_wait(h, *s, "ACK of our FIN received");
        return;
    } else if (s->state == TcpState::last_ack && fin_acked(*s)) {
        connection_closed(h, *s, "ACK of our FIN received", std::nullopt, "close");
        return;
    }

    // The segment text (RFC 9293 3.10.7.4, seventh): in-order data only.
    bool must_ack = false;
    Tcb& tcb = s->tcb;
    std::uint32_t data_seq = seq;
    const Bytes& payload = segment.payload;
    const bool can_receive =
        s->state == TcpState::established || s->state == TcpState::fin_wait_1 || s->state == TcpState::fin_wait_2;
    if (!payload.empty()) {
        must_ack = true;
        const std::uint32_t end = seq + static_cast<std::uint32_t>(payload.size());
        if (can_receive && seq_le(seq, tcb.rcv_nxt) && seq_lt(tcb.rcv_nxt, end)) {
            const std::uint32_t skip = tcb.rcv_nxt - seq;  // already had these bytes
            tcb.receive_buffer.insert(tcb.receive_buffer.end(), payload.begin() + skip, payload.end());
            tcb.rcv_nxt = end;
            data_seq = end;
        } else {
            data_seq = end;
        }
    }
    // Eighth, FIN: only when it comes right after everything received.
    if (flags & tcp_flag::fin) {
        must_ack = true;
        if (data_seq == tcb.rcv_nxt) {
            tcb.rcv_nxt += 1;
            tcb.peer_fin = true;
            switch (s->state) {
                case TcpState::syn_received:
                case TcpState::established: set_state(h, *s, TcpState::close_wait, "FIN received"); break;
                case TcpState::fin_wait_1:
                    if (fin_acked(*s)) {
                        send_segment(h, *s, tcb.snd_nxt, tcp_flag::ack);
                        enter_time_wait(h, *s, "FIN received (our FIN already acknowledged)");
                        return;
                    }
                    set_state(h, *s, TcpState::closing, "FIN received (simultaneous close)");
                    break;
                case TcpState::fin_wait_2:
                    send_segment(h, *s, tcb.snd_nxt, tcp_flag::ack);
                    enter_time_wait(h, *s, "FIN received");
                    return;
                default: break;
            }
        } else if (s->state == TcpState::time_wait && data_seq + 1 == tcb.rcv_nxt) {
            // The peer did not get our last ACK and sent its FIN again: ACK, restart 2MSL.
            send_segment(h, *s, tcb.snd_nxt, tcp_flag::ack);
            enter_time_wait(h, *s, "FIN retransmitted by the peer");
            return;
        }
    }
    if (must_ack) send_segment(h, *s, tcb.snd_nxt, tcp_flag::ack);
}

}  // namespace portlab::sim
