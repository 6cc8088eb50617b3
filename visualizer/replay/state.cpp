// The world a trace describes: bookkeeping of what the events say, a timeline with
// checkpoints, captions, and captures turned into traces.
#include "replay/state.hpp"
#include "portlab/text_safety.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>
#include <tuple>
#include <type_traits>

// [SECTION] slot states and packet labels
// [SECTION] State: applying events
// [SECTION] State: queries
// [SECTION] Timeline
// [SECTION] captures and files

namespace portlab::replay {

// ===========================================================================
// [SECTION] slot states and packet labels
// ===========================================================================

std::string_view to_string(SlotState state) noexcept {
    switch (state) {
        case SlotState::created: return "created";
        case SlotState::bound: return "bound";
        case SlotState::listening: return "listening";
        case SlotState::connecting: return "connecting";
        case SlotState::established: return "established";
        case SlotState::closing: return "closing";
        case SlotState::time_wait: return "time-wait";
        case SlotState::closed: return "closed";
    }
    return "?";
}

SlotState Socket::slot_state() const noexcept {
    if (protocol == Protocol::udp) {
        if (closed_by_app) return SlotState::closed;
        if (remote && local) return SlotState::established;  // ss shows a connected UDP socket as ESTAB
        return local ? SlotState::bound : SlotState::created;
    }
    switch (tcp_state) {
        case TcpState::listen: return SlotState::listening;
        case TcpState::syn_sent:
        case TcpState::syn_received: return SlotState::connecting;
        case TcpState::established: return SlotState::established;
        case TcpState::fin_wait_1:
        case TcpState::fin_wait_2:
        case TcpState::close_wait:
        case TcpState::closing:
        case TcpState::last_ack: return SlotState::closing;
        case TcpState::time_wait: return SlotState::time_wait;
        case TcpState::closed: break;
    }
    // CLOSED: either before any connection (a `listening` event without a
    // state_changed still means LISTEN) or after one ended.
    if (state_reported || closed_by_app) return SlotState::closed;
    if (listening) return SlotState::listening;
    return local ? SlotState::bound : SlotState::created;
}

std::string_view Socket::state_name() const noexcept {
    const bool tcp_state_known = state_reported || listener.has_value();
    return protocol == Protocol::tcp && tcp_state_known ? to_string(tcp_state) : to_string(slot_state());
}

PacketInfo describe_packet(const trace::Packet& packet) {
    PacketInfo info;
    const auto decoded = decode_frame(packet.link, packet.bytes);
    if (!decoded) {
        info.error = decoded.error().message;
        info.summary = "undecodable packet: " + info.error;
        return info;
    }
    info.decoded = true;
    info.label = label_of(*decoded);
    info.protocol = decoded->protocol();
    info.source = decoded->source();
    info.destination = decoded->destination();
    info.payload = decoded->payload_length;
    info.summary = decoded->summary();
    return info;
}

EventKind kind_of(const trace::EventBody& body) noexcept {
    struct Visitor {
        EventKind operator()(const trace::SocketCreated&) const { return EventKind::socket_created; }
        EventKind operator()(const trace::Bound&) const { return EventKind::bound; }
        EventKind operator()(const trace::Listening&) const { return EventKind::listening; }
        EventKind operator()(const trace::ConnectStarted&) const { return EventKind::connect_started; }
        EventKind operator()(const trace::EphemeralAssigned&) const { return EventKind::ephemeral_assigned; }
        EventKind operator()(const trace::Accepted&) const { return EventKind::accepted; }
        EventKind operator()(const trace::StateChanged&) const { return EventKind::state_changed; }
        EventKind operator()(const trace::Packet& p) const {
            switch (p.kind) {
                case trace::PacketKind::sent: return EventKind::packet_sent;
                case trace::PacketKind::delivered: return EventKind::packet_delivered;
                case trace::PacketKind::dropped: return EventKind::packet_dropped;
            }
            return EventKind::packet_sent;
        }
        EventKind operator()(const trace::CallFailed&) const { return EventKind::error; }
        EventKind operator()(const trace::Closed&) const { return EventKind::closed; }
        EventKind operator()(const trace::Note&) const { return EventKind::note; }
        EventKind operator()(const trace::HostAdded&) const { return EventKind::host_added; }
        EventKind operator()(const trace::TimerArmed&) const { return EventKind::timer_armed; }
        EventKind operator()(const trace::TimerFired&) const { return EventKind::timer_fired; }
        EventKind operator()(const trace::TimerStopped&) const { return EventKind::timer_stopped; }
        EventKind operator()(const trace::ChildCreated&) const { return EventKind::child_created; }
        EventKind operator()(const trace::RuleAdded&) const { return EventKind::rule_added; }
        EventKind operator()(const trace::RuleRemoved&) const { return EventKind::rule_removed; }
        EventKind operator()(const trace::ScanProbe&) const { return EventKind::scan_probe; }
        EventKind operator()(const trace::ScanResult&) const { return EventKind::scan_result; }
        EventKind operator()(const trace::NatTranslated&) const { return EventKind::nat; }
    };
    return std::visit(Visitor{}, body);
}

std::string_view to_string(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::socket_created: return "socket created";
        case EventKind::bound: return "bound";
        case EventKind::listening: return "listening";
        case EventKind::connect_started: return "connect";
        case EventKind::ephemeral_assigned: return "ephemeral port";
        case EventKind::accepted: return "accepted";
        case EventKind::state_changed: return "state change";
        case EventKind::packet_sent: return "packet sent";
        case EventKind::packet_delivered: return "packet delivered";
        case EventKind::packet_dropped: return "packet dropped";
        case EventKind::error: return "error";
        case EventKind::closed: return "closed";
        case EventKind::note: return "note";
        case EventKind::host_added: return "host";
        case EventKind::timer_armed: return "timer armed";
        case EventKind::timer_fired: return "timer fired";
        case EventKind::timer_stopped: return "timer stopped";
        case EventKind::child_created: return "connection arrived";
        case EventKind::rule_added: return "rule added";
        case EventKind::rule_removed: return "rule removed";
        case EventKind::scan_probe: return "scan probe";
        case EventKind::scan_result: return "scan result";
        case EventKind::nat: return "NAT";
    }
    return "?";
}

// ===========================================================================
// [SECTION] State: applying events
// ===========================================================================

namespace {

template <class T>
void push_bounded(std::vector<T>& items, T item, std::size_t limit) {
    if (items.size() >= limit) items.erase(items.begin());
    items.push_back(std::move(item));
}

// Whether a TCP socket in this state outlives close(): the kernel keeps it to
// finish the connection (FIN exchange, then TIME-WAIT, RFC 793 3.5), and the
// trace's later state_changed events say when it is done. In CLOSED, LISTEN and
// SYN-SENT, close() simply frees it.
bool lingers_after_close(const Socket& socket) {
    if (socket.protocol != Protocol::tcp) return false;
    switch (socket.tcp_state) {
        case TcpState::closed:
        case TcpState::listen:
        case TcpState::syn_sent: return false;
        default: return true;
    }
}

}  // namespace

void State::apply(const trace::Event& event) {
    now_us_ = event.t_us;
    if (std::holds_alternative<trace::Note>(event.body)) {
        // A note is narration, not a fact about its host: it makes no host appear
        // (lab traces put notes on "localhost", which would be an empty box).
        last_note_ = applied_;
    } else {
        const HostIndex host = host_named(event.host);
        std::visit([&](const auto& body) { on(host, body); }, event.body);
    }
    ++applied_;
}

HostIndex State::host_named(const std::string& name) {
    if (const auto found = host_index_.find(name); found != host_index_.end()) return found->second;
    const HostIndex index = hosts_.size();
    Host added;
    added.name = name;
    hosts_.push_back(std::move(added));
    host_index_.emplace(name, index);
    return index;
}

Socket& State::socket_on(HostIndex host, SocketId id, Protocol assumed) {
    auto& sockets = hosts_[host].sockets;
    Socket* found = sockets.find_to_change(id);
    if (found == nullptr) {
        // A trace that starts mid-run (or a lab that recorded only some calls)
        // names sockets it never introduced; keep them, marked as such.
        Socket socket;
        socket.id = id;
        socket.protocol = assumed;
        socket.implicit = true;
        socket.created_at = applied_;
        found = sockets.insert_or_assign(id, std::move(socket)).first;
        ++socket_count_;
    }
    found->changed_at = applied_;
    return *found;
}

void State::note_address(HostIndex host, const IpAddress& address) {
    if (address.is_unspecified()) return;
    auto& addresses = hosts_[host].addresses;
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) addresses.push_back(address);
}

// A socket is gone when its program closed it and TCP holds nothing more, or when
// a connection no program accepted yet ends (an RST to a SYN-RECV request sock or
// to a queued connection: the kernel frees it or unhashes it, tcp_done(), and
// `ss -tan` lists it no more).
void State::forget_if_gone(HostIndex host, SocketId id) {
    auto& sockets = hosts_[host].sockets;
    const auto found = sockets.find(id);
    if (found == sockets.end()) return;
    const bool unclaimed_and_over = found->second.awaiting_accept && found->second.tcp_state == TcpState::closed;
    if (!found->second.closed_by_app && !unclaimed_and_over) return;
    if (lingers_after_close(found->second)) return;
    sockets.erase(id);
    --socket_count_;
}

void State::on(HostIndex host, const trace::SocketCreated& body) {
    auto& sockets = hosts_[host].sockets;
    Socket socket;
    socket.id = body.socket;
    socket.protocol = body.protocol;
    socket.family = body.family;
    socket.created_at = applied_;
    socket.changed_at = applied_;
    if (sockets.insert_or_assign(body.socket, std::move(socket)).second) ++socket_count_;
}

void State::on(HostIndex host, const trace::Bound& body) {
    Socket& socket = socket_on(host, body.socket, Protocol::tcp);
    socket.local = body.endpoint;
    socket.how = body.how;
    socket.bind_note = body.note;
    socket.refused_bind.reset();  // bound after all: the port it holds is what counts now
    note_address(host, body.endpoint.address);
}

void State::on(HostIndex host, const trace::Listening& body) {
    Socket& socket = socket_on(host, body.socket, Protocol::tcp);
    socket.listening = true;
    socket.backlog = body.backlog;
}

void State::on(HostIndex host, const trace::ConnectStarted& body) {
    socket_on(host, body.socket, Protocol::tcp).remote = body.remote;
}

void State::on(HostIndex host, const trace::EphemeralAssigned& body) {
    Socket& socket = socket_on(host, body.socket, Protocol::tcp);
    // The port is the socket's from now on, even when the trace never says `bound`
    // (a lab sees the port through getsockname() after connect()): the address is
    // the wildcard until a `bound` event names it.
    if (!socket.local)
        socket.local = Endpoint{socket.family == IpFamily::v4 ? IpAddress::any_v4() : IpAddress::any_v6(), body.port};
    else if (socket.local->port == 0)
        socket.local->port = body.port;
    auto& pool = hosts_[host].pool;
    pool.range = PortRange{body.range_low, body.range_high};
    pool.algorithm = body.algorithm;
    pool.parity = body.parity;
    pool.last = body.port;
    ++pool.assignments;
    push_bounded(pool.recent, body.port, EphemeralPool::recent_limit);
}

// A connection's socket on the listening host, introduced by child_created (in
// SYN-RECEIVED, waiting for accept()) or by accepted (ESTABLISHED, already handed over).
void State::add_connection_socket(HostIndex host, SocketId listener_id, SocketId id, const FourTuple& tuple,
                                  TcpState state, bool awaiting_accept) {
    const Socket* listener = find_socket(SocketRef{host, listener_id});
    Socket socket;
    socket.id = id;
    socket.protocol = listener ? listener->protocol : Protocol::tcp;
    socket.family = tuple.local.address.family();
    socket.local = tuple.local;
    socket.remote = tuple.remote;
    socket.tcp_state = state;
    socket.listener = listener_id;
    socket.awaiting_accept = awaiting_accept;
    socket.created_at = applied_;
    socket.changed_at = applied_;
    if (hosts_[host].sockets.insert_or_assign(id, std::move(socket)).second) ++socket_count_;
    note_address(host, tuple.local.address);
}

void State::on(HostIndex host, const trace::ChildCreated& body) {
    // The SYN made it (tcp_conn_request): SYN-RECEIVED by definition, as ss's SYN-RECV row.
    add_connection_socket(host, body.listener, body.socket, body.four_tuple, TcpState::syn_received, true);
}

void State::on(HostIndex host, const trace::Accepted& body) {
    auto& sockets = hosts_[host].sockets;
    if (const auto child = sockets.find(body.socket); child != sockets.end() && child->second.awaiting_accept) {
        // The kernel made it when the connection arrived; accept() only hands it over.
        Socket& accepted = *sockets.find_to_change(body.socket);
        accepted.awaiting_accept = false;
        accepted.changed_at = applied_;
        return;
    }
    // accept() hands back a connected socket: ESTABLISHED by definition (RFC 793
    // 3.4; Linux completes the handshake before the socket reaches the queue).
    add_connection_socket(host, body.listener, body.socket, body.four_tuple, TcpState::established, false);
}

void State::on(HostIndex host, const trace::StateChanged& body) {
    // A socket close() already freed (a listener: LISTEN -> CLOSED comes after
    // `closed`) reaching CLOSED brings nothing back: ss lists nothing for it.
    if (body.to == TcpState::closed && find_socket(SocketRef{host, body.socket}) == nullptr) return;
    Socket& socket = socket_on(host, body.socket, Protocol::tcp);
    socket.tcp_state = body.to;
    socket.state_reported = true;
    socket.evidence = body.evidence;
    if (body.to == TcpState::listen) socket.listening = true;
    if (body.to == TcpState::closed) {
        end_connection(socket);
        forget_if_gone(host, body.socket);
    }
}

// A connection that ends while its program still holds the socket (refused, reset, timed
// out, unreachable) leaves it unconnected: Linux tcp_done() -> tcp_set_state(TCP_CLOSE)
// unhashes it (no peer; ss lists it no more) and inet_put_port() gives back a port the
// kernel chose for connect() (no SOCK_BINDPORT_LOCK), so the pool has that port free
// again. A port bind() named stays the socket's.
void State::end_connection(Socket& socket) {
    if (socket.protocol != Protocol::tcp || socket.closed_by_app || socket.awaiting_accept) return;
    socket.remote.reset();
    if (socket.how == trace::BindHow::ephemeral) {
        socket.local.reset();
        socket.how.reset();
        socket.bind_note.reset();
    }
}

void State::on(HostIndex host, const trace::Packet& body) {
    last_packet_ = applied_;
    if (body.from_host) host_named(*body.from_host);
    if (body.to_host) host_named(*body.to_host);
    switch (body.kind) {
        case trace::PacketKind::sent:
            push_bounded(in_flight_, PendingPacket{applied_, body.bytes}, pending_limit);
            break;
        case trace::PacketKind::delivered:
        case trace::PacketKind::dropped: {
            // The oldest identical sent packet is the one that arrived (or was lost):
            // same bytes, and the trace keeps events in order.
            const auto match = std::find_if(in_flight_.begin(), in_flight_.end(),
                                             [&](const PendingPacket& p) { return p.bytes == body.bytes; });
            if (match != in_flight_.end()) in_flight_.erase(match);
            break;
        }
    }
    if (body.kind == trace::PacketKind::dropped) {
        Drop drop{applied_, host, body.rule.value_or(std::string(Drop::no_rule)), body.cause, body.rule_id};
        if (drop.by_firewall()) {
            RuleHits& hits = rule_hits_[{host, drop.rule_id.value_or(drop.rule)}];
            ++hits.count;
            hits.last_event = applied_;
            hits.text = drop.rule;
        }
        push_bounded(drops_, std::move(drop), drop_limit);
    }
}

void State::on(HostIndex host, const trace::CallFailed& body) {
    if (body.socket) {
        Socket& socket = socket_on(host, *body.socket, Protocol::tcp);
        socket.error = body.errno_name;
        if (body.call == "bind" && body.endpoint) socket.refused_bind = body.endpoint;
        // A TCP connect() that failed once it had started (connect_started named the peer)
        // leaves no peer: tcp_v4_connect's failure path sets TCP_CLOSE and inet_dport = 0
        // (EADDRNOTAVAIL: no port made a new 4-tuple). One refused before it started
        // (EALREADY in SYN-SENT, EISCONN when connected) leaves the connection as it was.
        if (body.call == "connect" && socket.protocol == Protocol::tcp && socket.tcp_state == TcpState::closed && !socket.listening)
            socket.remote.reset();
    }
    ++hosts_[host].errors;
    push_bounded(recent_errors_, applied_, error_limit);
}

void State::on(HostIndex host, const trace::Closed& body) {
    Socket& socket = socket_on(host, body.socket, Protocol::tcp);
    socket.closed_by_app = true;
    forget_if_gone(host, body.socket);
}

void State::on(HostIndex, const trace::Note&) { last_note_ = applied_; }

// The router's connection-tracking table: the translation is kept as conntrack keeps it
// (nf_nat_setup_info records it once per connection; later packets reuse it).
void State::on(HostIndex host, const trace::NatTranslated& body) {
    auto& table = hosts_[host].translations;
    std::erase_if(table, [&](const Translation& t) { return t.conntrack_id == body.conntrack_id && t.protocol == body.protocol; });
    table.push_back(Translation{body.conntrack_id, body.kind, body.protocol, body.flows->before, body.flows->after, applied_});
    if (table.size() > Host::translation_limit) table.erase(table.begin());
}

void State::on(HostIndex host, const trace::HostAdded& body) {
    hosts_[host].declared = true;
    hosts_[host].role = body.role;
    for (const auto& address : body.addresses) note_address(host, address);
}

void State::on(HostIndex host, const trace::TimerArmed& body) {
    // Arming a running timer restarts it (docs/trace-format.md).
    socket_on(host, body.socket, Protocol::tcp).timers.insert_or_assign(
        body.timer, RunningTimer{now_us_, now_us_ + body.duration_us, body.attempt, applied_});
}

// A timer ends with its socket too, so an end reported after the socket is gone
// (TIME-WAIT's timer fires as the socket reaches CLOSED) brings nothing back.
void State::on_timer_end(HostIndex host, SocketId socket, trace::TimerKind timer) {
    auto& sockets = hosts_[host].sockets;
    if (Socket* found = sockets.find_to_change(socket)) {
        found->timers.erase(timer);
        found->changed_at = applied_;
    }
}

void State::on(HostIndex host, const trace::TimerFired& body) { on_timer_end(host, body.socket, body.timer); }

void State::on(HostIndex host, const trace::RuleAdded& body) {
    hosts_[host].rules.push_back(RuleInForce{body.rule_id, *body.rule, applied_});
}

void State::on(HostIndex host, const trace::RuleRemoved& body) {
    auto& rules = hosts_[host].rules;
    std::erase_if(rules, [&](const RuleInForce& rule) { return rule.id == body.rule_id; });
}

void State::on(HostIndex host, const trace::ScanProbe& body) {
    ScannedPort& port = hosts_[host].scanned[{body.scan, body.target}];
    port.scan = body.scan;
    port.target = body.target;
    ++port.probes;
    port.last_event = applied_;
    if (body.socket) socket_on(host, *body.socket, scan::protocol_of(body.scan));
}

void State::on(HostIndex host, const trace::ScanResult& body) {
    ScannedPort& port = hosts_[host].scanned[{body.scan, body.target}];
    port.scan = body.scan;
    port.target = body.target;
    port.state = body.state;
    port.reason = body.reason;
    port.last_event = applied_;
}
void State::on(HostIndex host, const trace::TimerStopped& body) { on_timer_end(host, body.socket, body.timer); }

// ===========================================================================
// [SECTION] State: queries
// ===========================================================================

std::optional<HostIndex> State::find_host(std::string_view name) const {
    const auto found = host_index_.find(name);
    if (found == host_index_.end()) return std::nullopt;
    return found->second;
}

const Socket* State::find_socket(SocketRef ref) const {
    if (ref.host >= hosts_.size()) return nullptr;
    const auto& sockets = hosts_[ref.host].sockets;
    const auto found = sockets.find(ref.socket);
    return found == sockets.end() ? nullptr : &found->second;
}

std::optional<SocketRef> State::socket_for(HostIndex host, Protocol protocol, const Endpoint& local,
                                           const Endpoint& remote) const {
    if (host >= hosts_.size()) return std::nullopt;
    std::optional<SocketRef> unconnected;
    for (const auto& [id, socket] : hosts_[host].sockets) {
        if (socket.protocol != protocol || !socket.local || socket.local->port != local.port) continue;
        const bool address_fits =
            socket.local->address == local.address || socket.local->address.is_unspecified();
        if (!address_fits) continue;
        if (socket.remote) {
            if (*socket.remote == remote && socket.local->address == local.address) return SocketRef{host, id};
            if (*socket.remote == remote && !unconnected) unconnected = SocketRef{host, id};
            continue;
        }
        if (!unconnected) unconnected = SocketRef{host, id};
    }
    return unconnected;
}

std::optional<HostIndex> State::host_with_address(const IpAddress& address) const {
    std::optional<HostIndex> found;
    for (HostIndex i = 0; i < hosts_.size(); ++i) {
        const auto& addresses = hosts_[i].addresses;
        if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) continue;
        if (found) return std::nullopt;  // two hosts claim it (e.g. 127.0.0.1 on each): ambiguous
        found = i;
    }
    return found;
}

std::vector<Port> State::ports_in_use(HostIndex host, Protocol protocol) const {
    std::vector<Port> ports;
    if (host >= hosts_.size()) return ports;
    for (const auto& [id, socket] : hosts_[host].sockets)
        if (socket.protocol == protocol && socket.local && socket.local->port != 0) ports.push_back(socket.local->port);
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    return ports;
}

std::vector<Connection> State::connections() const {
    // Key each connected socket by (protocol, local, remote); its peer has the
    // same key reversed.
    using Key = std::tuple<Protocol, Endpoint, Endpoint>;
    std::map<Key, SocketRef> by_tuple;
    for (HostIndex h = 0; h < hosts_.size(); ++h)
        for (const auto& [id, socket] : hosts_[h].sockets)
            if (socket.local && socket.remote && !socket.listening)
                by_tuple.emplace(Key{socket.protocol, *socket.local, *socket.remote}, SocketRef{h, id});
    const auto mirrored = [&](const Key& key) {
        const Key peer{std::get<0>(key), std::get<2>(key), std::get<1>(key)};
        return peer != key && by_tuple.contains(peer);
    };

    // Across a translating router: the connecting socket's key is the translation's original
    // flow, its peer's the after flow turned round (conntrack's reply tuple). Only sockets no
    // mirror pairs; the newest translation of a flow wins. A stateful firewall's tracked
    // entries translate nothing: their ends mirror each other.
    std::map<Key, std::pair<Key, HostIndex>> across;  // connecting side -> (far side, router)
    std::set<Key> far_sides;
    for (HostIndex h = 0; h < hosts_.size(); ++h)
        for (auto t = hosts_[h].translations.rbegin(); t != hosts_[h].translations.rend(); ++t) {
            if (t->kind == trace::NatKind::track) continue;
            const Key near{t->protocol, t->original.source, t->original.destination};
            const Key far{t->protocol, t->after.destination, t->after.source};
            if (near == far || !by_tuple.contains(near) || !by_tuple.contains(far) || mirrored(near) || mirrored(far)) continue;
            if (far_sides.contains(far) || across.contains(near)) continue;
            across.emplace(near, std::pair{far, h});
            far_sides.insert(far);
        }

    std::vector<Connection> result;
    std::set<Key> paired;
    for (const auto& [key, ref] : by_tuple) {
        if (paired.count(key) || far_sides.contains(key)) continue;
        const auto& [protocol, local, remote] = key;
        Connection connection{protocol, FourTuple{local, remote}, ref, std::nullopt, std::nullopt, std::nullopt};
        const Key peer_key{protocol, remote, local};
        if (const auto peer = by_tuple.find(peer_key); peer != by_tuple.end() && peer_key != key) {
            connection.b = peer->second;
            paired.insert(peer_key);
            // Seen from the connecting side: the accepted socket is the server's end.
            const Socket* first = find_socket(ref);
            if (first && first->listener) {
                std::swap(connection.a, connection.b);
                connection.tuple = connection.tuple.reversed();
            }
        } else if (const auto via = across.find(key); via != across.end()) {
            const auto& [far, router] = via->second;
            connection.b = by_tuple.at(far);
            connection.via = router;
            connection.far_tuple = FourTuple{std::get<2>(far), std::get<1>(far)};
        }
        result.push_back(connection);
    }
    return result;
}

// ===========================================================================
// [SECTION] Timeline
// ===========================================================================

std::vector<State> Checkpointer::add(const trace::Event* first, std::size_t count) {
    std::vector<State> taken;
    for (std::size_t i = 0; i < count; ++i) {
        tail_.apply(first[i]);
        const std::size_t since = tail_.applied() - last_checkpoint_;
        const std::size_t wanted =
            options_.adaptive ? std::max(options_.min_interval, tail_.socket_count()) : options_.min_interval;
        if (since >= std::max<std::size_t>(1, wanted)) {
            taken.push_back(tail_);
            last_checkpoint_ = tail_.applied();
        }
    }
    return taken;
}

void Checkpointer::resume(const State& world) {
    tail_ = world;
    last_checkpoint_ = world.applied();
}

Timeline::Timeline(trace::TraceHeader header, TimelineOptions options)
    : header_(std::move(header)),
      options_(options),
      checkpointer_(options),
      services_(ServiceTable::fallback()) {
    checkpoints_.push_back(State{});
}

Timeline Timeline::of(trace::Trace trace, TimelineOptions options) {
    Timeline timeline(std::move(trace.header), options);
    timeline.append(std::move(trace.events));
    return timeline;
}

namespace {

// Moves `more` to the end of `events`; the first batch is adopted whole unless
// room was reserved, and capacity grows geometrically so appending in pieces
// stays linear.
void move_to_end(std::vector<trace::Event>& events, std::vector<trace::Event>&& more) {
    if (events.empty() && events.capacity() <= more.size()) {  // nothing reserved to keep
        events = std::move(more);
        return;
    }
    if (events.capacity() < events.size() + more.size())
        events.reserve(std::max(events.size() + more.size(), 2 * events.capacity()));
    events.insert(events.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace

void Timeline::index(std::size_t first) {
    partner_.resize(events_.size(), no_partner);
    for (std::size_t index = first; index < events_.size(); ++index) {
        const auto& event = events_[index];
        if (const auto* created = std::get_if<trace::SocketCreated>(&event.body))
            socket_info_.insert_or_assign({event.host, created->socket.value}, std::pair{created->protocol, index});
        else if (const auto* child = std::get_if<trace::ChildCreated>(&event.body)) {
            const auto listener = socket_info_.find(std::pair{event.host, child->listener.value});
            const Protocol protocol = listener != socket_info_.end() ? listener->second.first : Protocol::tcp;
            socket_info_.insert_or_assign({event.host, child->socket.value}, std::pair{protocol, index});
        } else if (const auto* accepted = std::get_if<trace::Accepted>(&event.body)) {
            if (socket_info_.contains(std::pair{event.host, accepted->socket.value})) continue;  // a child_created's
            const auto listener = socket_info_.find(std::pair{event.host, accepted->listener.value});
            const Protocol protocol = listener != socket_info_.end() ? listener->second.first : Protocol::tcp;
            socket_info_.insert_or_assign({event.host, accepted->socket.value}, std::pair{protocol, index});
        } else if (const auto* packet = std::get_if<trace::Packet>(&event.body)) {
            reports_deliveries_ = reports_deliveries_ || packet->kind == trace::PacketKind::delivered;
            pair_packet(index, *packet);
        }
    }
}

void Timeline::pair_packet(std::size_t index, const trace::Packet& packet) {
    if (header_.source == "pcap") return;  // a capture sees packets leave, never arrive
    const std::size_t key = std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(packet.bytes.data()), packet.bytes.size()));
    auto& unmatched = unmatched_sent_[key];
    if (packet.kind == trace::PacketKind::sent) {
        unmatched.push_back(index);
        return;
    }
    const auto match = std::find_if(unmatched.begin(), unmatched.end(), [&](std::size_t sent) {
        return std::get<trace::Packet>(events_[sent].body).bytes == packet.bytes;
    });
    if (match == unmatched.end()) return;
    partner_[*match] = index;
    partner_[index] = *match;
    unmatched.erase(match);
    if (unmatched.empty()) unmatched_sent_.erase(key);
}

std::optional<std::size_t> Timeline::fate_of(std::size_t sent) const {
    if (sent >= partner_.size() || partner_[sent] == no_partner || partner_[sent] < sent) return std::nullopt;
    return partner_[sent];
}

std::optional<std::size_t> Timeline::sent_of(std::size_t fate) const {
    if (fate >= partner_.size() || partner_[fate] == no_partner || partner_[fate] > fate) return std::nullopt;
    return partner_[fate];
}

void Timeline::append(std::vector<trace::Event> events) {
    const std::size_t first = events_.size();
    move_to_end(events_, std::move(events));
    index(first);
    std::size_t from = first;
    if (checkpointer_behind_) {
        // Checkpoints came with the events so far: carry on from the last one
        // (the same options make the same choices, so none is taken twice).
        while (checkpoints_.back().applied() > events_.size()) checkpoints_.pop_back();
        checkpointer_.resume(checkpoints_.back());
        from = checkpoints_.back().applied();
        checkpointer_behind_ = false;
    }
    auto taken = checkpointer_.add(events_.data() + from, events_.size() - from);
    checkpoints_.insert(checkpoints_.end(), std::make_move_iterator(taken.begin()), std::make_move_iterator(taken.end()));
}

void Timeline::append(std::vector<trace::Event> events, std::vector<State> checkpoints) {
    const std::size_t first = events_.size();
    move_to_end(events_, std::move(events));
    index(first);
    for (auto& checkpoint : checkpoints)
        if (checkpoint.applied() > checkpoints_.back().applied()) checkpoints_.push_back(std::move(checkpoint));
    checkpointer_behind_ = true;
}

State Timeline::state_at(std::size_t n) const {
    State world;
    seek(world, n);
    return world;
}

void Timeline::seek(State& world, std::size_t n) const {
    n = std::min(n, events_.size());
    // The last checkpoint at or before n.
    const auto after = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), n,
                                        [](std::size_t target, const State& w) { return target < w.applied(); });
    const State& checkpoint = *std::prev(after);
    const bool forward_is_cheaper = world.applied() <= n && world.applied() >= checkpoint.applied();
    if (!forward_is_cheaper) world = checkpoint;
    while (world.applied() < n) world.apply(events_[world.applied()]);
}

std::string Timeline::caption(std::size_t index) const {
    if (index >= events_.size()) return {};
    return portlab::caption(events_[index], &services_);
}

std::optional<std::size_t> Timeline::note_for(std::size_t index) const {
    if (index + 1 >= events_.size() || std::holds_alternative<trace::Note>(events_[index].body)) return std::nullopt;
    const auto& event = events_[index];
    const auto& next = events_[index + 1];
    if (!std::holds_alternative<trace::Note>(next.body) || next.host != event.host || next.t_us != event.t_us)
        return std::nullopt;
    return index + 1;
}

std::string Timeline::narration(std::size_t index) const {
    std::string text = caption(index);
    if (const auto note = note_for(index)) text += "\n" + caption(*note);
    return text;
}

std::optional<Protocol> Timeline::protocol_of(std::size_t index) const {
    if (index >= events_.size()) return std::nullopt;
    const auto& event = events_[index];
    if (std::holds_alternative<trace::Packet>(event.body)) return packet_info(index)->protocol;
    if (const auto* probe = std::get_if<trace::ScanProbe>(&event.body)) return scan::protocol_of(probe->scan);
    if (const auto* result = std::get_if<trace::ScanResult>(&event.body)) return scan::protocol_of(result->scan);
    const auto socket = trace::socket_of(event.body);
    if (!socket) return std::nullopt;
    if (const auto* accepted = std::get_if<trace::Accepted>(&event.body)) {
        const auto found = socket_info_.find(std::pair{event.host, accepted->listener.value});
        return found == socket_info_.end() ? std::optional<Protocol>{Protocol::tcp} : found->second.first;
    }
    const auto found = socket_info_.find(std::pair{event.host, socket->value});
    if (found == socket_info_.end()) return std::nullopt;
    return found->second.first;
}

const PacketInfo* Timeline::packet_info(std::size_t index) const {
    if (index >= events_.size()) return nullptr;
    const auto* packet = std::get_if<trace::Packet>(&events_[index].body);
    if (!packet) return nullptr;
    auto found = packet_cache_.find(index);
    if (found == packet_cache_.end()) found = packet_cache_.emplace(index, describe_packet(*packet)).first;
    return &found->second;
}

std::optional<std::size_t> Timeline::introduced_at(const std::string& host, SocketId socket) const {
    const auto found = socket_info_.find(std::pair{host, socket.value});
    if (found == socket_info_.end()) return std::nullopt;
    return found->second.second;
}

std::vector<std::size_t> Timeline::state_path(const std::string& host, SocketId socket, std::size_t n) const {
    std::vector<std::size_t> path;
    n = std::min(n, events_.size());
    std::size_t start = 0;
    if (const auto found = socket_info_.find(std::pair{host, socket.value}); found != socket_info_.end())
        start = found->second.second;
    for (std::size_t i = start; i < n; ++i) {
        const auto* change = std::get_if<trace::StateChanged>(&events_[i].body);
        if (change && change->socket == socket && events_[i].host == host) path.push_back(i);
    }
    return path;
}

// ===========================================================================
// [SECTION] captures and files
// ===========================================================================

trace::TraceHeader capture_header(const std::string& name) {
    trace::TraceHeader header;
    header.source = "pcap";
    header.generator = std::string("portlab-viz ") + PORTLAB_VERSION;
    header.title = name;
    return header;
}

trace::Event CaptureConverter::event(pcap::Record record) {
    if (!start_us_) start_us_ = record.timestamp_us;
    trace::Event event;
    const std::uint64_t since_start = record.timestamp_us >= *start_us_ ? record.timestamp_us - *start_us_ : 0;
    event.t_us = std::max(previous_t_us_, since_start);
    previous_t_us_ = event.t_us;
    const auto decoded = decode_frame_headers(link_type_, record.bytes, record.original_length);
    trace::Packet packet{trace::PacketKind::sent, {}, link_type_, std::nullopt, std::nullopt, std::nullopt};
    if (decoded) {
        packet.from_host = decoded->ip.source.to_string();
        packet.to_host = decoded->ip.destination.to_string();
        event.host = *packet.from_host;
        table_.add(converted_, *decoded, std::max<std::size_t>(record.original_length, record.bytes.size()));
    } else {
        event.host = "capture";
    }
    packet.bytes = std::move(record.bytes);
    event.body = std::move(packet);
    ++converted_;
    return event;
}

trace::Trace trace_from_capture(const pcap::Capture& capture, const std::string& name) {
    trace::Trace result;
    result.header = capture_header(name);
    CaptureConverter converter(capture.link_type);
    result.events.reserve(capture.records.size());
    for (const auto& record : capture.records) result.events.push_back(converter.event(record));
    return result;
}

std::vector<Conversation> find_conversations(const Timeline& timeline) {
    ConversationTable table;
    for (std::size_t i = 0; i < timeline.size(); ++i) {
        const auto* packet = std::get_if<trace::Packet>(&timeline.event(i).body);
        if (!packet) continue;
        if (const auto decoded = decode_frame(packet->link, packet->bytes)) table.add(i, *decoded, packet->bytes.size());
    }
    return std::move(table).conversations();
}

namespace {

// Lines as std::getline sees them: split at '\n', no empty line after a final '\n'.
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto end = text.find('\n', start);
        if (end == std::string_view::npos) {
            lines.push_back(text.substr(start));
            break;
        }
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

}  // namespace

Result<trace::TraceHeader> TraceTextReader::header(std::string_view line) {
    auto header = trace::parse_header_line(line, 1);
    if (header) {
        next_line_ = 2;
        rules_ = trace::SequenceRules(header->version);
    }
    return header;
}

Result<std::vector<trace::Event>> TraceTextReader::block(std::string_view text, unsigned threads) {
    auto [events, error] = block_until_error(text, threads);
    if (error) return *error;
    return std::move(events);
}

std::pair<std::vector<trace::Event>, std::optional<Error>> TraceTextReader::block_until_error(std::string_view text, unsigned threads) {
    const auto lines = lines_of(text);
    const std::size_t first_line = next_line_;
    const std::size_t count = lines.size();
    std::vector<trace::Event> events(count);

    // Each thread parses a contiguous part and stops at its first bad line.
    threads = std::clamp(threads, 1u, 16u);
    if (count < 20000) threads = 1;
    std::vector<std::optional<std::pair<std::size_t, Error>>> first_error(threads);
    const auto parse_part = [&](unsigned part) {
        const std::size_t begin = count * part / threads;
        const std::size_t end = count * (part + 1) / threads;
        for (std::size_t i = begin; i < end; ++i) {
            auto event = trace::parse_event_line(lines[i], first_line + i);
            if (!event) {
                first_error[part] = std::pair{i, event.error()};
                return;
            }
            events[i] = std::move(event).value();
        }
    };
    std::vector<std::thread> workers;
    for (unsigned part = 1; part < threads; ++part) workers.emplace_back(parse_part, part);
    parse_part(0);
    for (auto& worker : workers) worker.join();

    // The first bad line wins, whether it breaks a line's own rules or a rule across lines.
    std::size_t parsed = count;
    std::optional<Error> parse_error;
    for (const auto& error : first_error) {
        if (error && error->first < parsed) {
            parsed = error->first;
            parse_error = error->second;
        }
    }
    for (std::size_t i = 0; i < parsed; ++i)
        if (auto problem = rules_.admit(events[i], first_line + i)) {
            events.resize(i);
            next_line_ += i;
            return {std::move(events), fail("line " + std::to_string(first_line + i) + ": " + text::printable(*problem))};
        }
    events.resize(parsed);
    next_line_ += parsed;
    return {std::move(events), std::move(parse_error)};
}

Result<trace::Trace> read_trace_text(std::string_view text, unsigned threads) {
    if (text.empty()) return fail("line 1: empty trace, expected a header line");
    TraceTextReader reader;
    const auto header_end = text.find('\n');
    auto header = reader.header(text.substr(0, header_end));
    if (!header) return header.error();
    auto events = reader.block(header_end == std::string_view::npos ? std::string_view{} : text.substr(header_end + 1), threads);
    if (!events) return events.error();
    return trace::Trace{std::move(header).value(), std::move(events).value()};
}

std::optional<std::string> binary_not_trace(std::string_view first_bytes, const std::string& path) {
    const std::string_view head = first_bytes.substr(0, 64);
    // Text: printable ASCII, tabs and line ends, and UTF-8's bytes (0x80 and up); a NUL or
    // another control byte is no trace's.
    const bool text = std::all_of(head.begin(), head.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte >= 0x20 || byte == '\t' || byte == '\n' || byte == '\r';
    });
    if (text) return std::nullopt;
    std::string hex;
    for (std::size_t i = 0; i < std::min<std::size_t>(head.size(), 8); ++i) {
        static constexpr char digits[] = "0123456789abcdef";
        const auto byte = static_cast<unsigned char>(head[i]);
        hex += (i == 0 ? "" : " ") + std::string{digits[byte >> 4], digits[byte & 15]};
    }
    return path + ": neither a trace nor a capture: it begins with bytes " + hex +
           " (a trace is text, a JSON header line first; a capture begins with a pcap or pcapng magic number)";
}

Result<trace::Trace> read_any_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(path + ": cannot open the file (does it exist and is it readable?)");
    std::array<unsigned char, 4> magic{};
    in.read(reinterpret_cast<char*>(magic.data()), magic.size());
    const auto got = in.gcount();
    in.close();
    // pcap: a4b2c3d4 / d4c3b2a1 (and 4d3cb2a1 / a1b23c4d for nanosecond files);
    // pcapng: the Section Header Block type 0a0d0d0a.
    const auto is = [&](std::array<unsigned char, 4> m) { return got == 4 && magic == m; };
    const bool capture = is({0xd4, 0xc3, 0xb2, 0xa1}) || is({0xa1, 0xb2, 0xc3, 0xd4}) ||
                         is({0x4d, 0x3c, 0xb2, 0xa1}) || is({0xa1, 0xb2, 0x3c, 0x4d}) ||
                         is({0x0a, 0x0d, 0x0d, 0x0a});
    if (capture) {
        auto read = pcap::read_file(path);
        if (!read) return fail(read.error().message);  // libpcap's messages name the file
        const auto slash = path.find_last_of('/');
        return trace_from_capture(*read, slash == std::string::npos ? path : path.substr(slash + 1));
    }
    if (got == 0) return fail(path + ": line 1: the file is empty (expected a trace header line)");
    // One read into a string of the file's size (a stringstream would copy it as it grows).
    std::ifstream text_file(path, std::ios::binary | std::ios::ate);
    std::string text(static_cast<std::size_t>(std::max<std::streamoff>(0, text_file.tellg())), '\0');
    text_file.seekg(0);
    if (!text_file.read(text.data(), static_cast<std::streamsize>(text.size()))) return fail(path + ": read error");
    if (auto binary = binary_not_trace(text, path)) return fail(std::move(*binary));
    auto trace = read_trace_text(text, std::thread::hardware_concurrency());
    if (!trace) return fail(path + ": " + trace.error().message);
    return trace;
}

}  // namespace portlab::replay
