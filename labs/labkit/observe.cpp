// One fact, three outputs: narration, trace events and the --json entry (observe.hpp).
#include "labkit/observe.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <thread>

#include "labkit/labkit.hpp"
#include "portlab/tcp_machine.hpp"

namespace portlab::labkit {

using nlohmann::json;

std::string_view to_string(Evidence evidence) noexcept {
    return evidence == Evidence::observed ? "observed" : "inferred";
}

json json_of(const Endpoint& endpoint) {
    return {{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

Result<TcpState> tcp_state_of(int fd) {
    tcp_info info{};
    socklen_t size = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0)
        return fail(std::string("getsockopt(TCP_INFO): ") + describe_error({errno, std::system_category()}));
    return from_linux_tcp_state(info.tcpi_state);
}

namespace {

std::string_view how_text(trace::BindHow how) {
    switch (how) {
        case trace::BindHow::explicit_port: return "explicit";
        case trace::BindHow::ephemeral: return "ephemeral";
        case trace::BindHow::bind_zero: return "bind_zero";
    }
    return "?";
}

// Linux's ways of choosing a port (RFC 6056 names the families):
// TCP connect(): __inet_hash_connect, even ports first (net/ipv4/inet_hashtables.c);
// TCP bind(0): inet_csk_find_open_port, odd ports first (net/ipv4/inet_connection_sock.c);
// UDP, either call: udp_lib_get_port from a random start (net/ipv4/udp.c).
std::string linux_choice(Protocol protocol, trace::BindHow how) {
    if (protocol == Protocol::udp) return "linux-udp-random";
    return how == trace::BindHow::ephemeral ? "linux-hash-connect" : "linux-bind-zero-odd-first";
}

// RFC 9293's edge for CLOSE from `state` (tcp_machine.hpp): ESTABLISHED and
// SYN-RECEIVED send a FIN (FIN-WAIT-1), CLOSE-WAIT sends its FIN (LAST-ACK); none for
// states close() simply ends.
const TcpTransition* close_edge(TcpState state) {
    for (const auto& edge : tcp_transitions())
        if (edge.from == state && edge.event == "CLOSE" && edge.to != TcpState::closed) return &edge;
    return nullptr;
}

// Connections a listener holds before accept() returns them.
bool waits_for_accept(std::optional<TcpState> state) {
    return state == TcpState::syn_received || state == TcpState::established || state == TcpState::close_wait;
}

// Whether close() frees a TCP socket at once (no connection to finish).
bool gone_on_close(Protocol protocol, TcpState state) {
    return protocol == Protocol::udp || state == TcpState::closed || state == TcpState::listen ||
           state == TcpState::syn_sent;
}

}  // namespace

Observer::Observer(Narrator& narrator, TraceRecorder& trace) : say_(&narrator), trace_(&trace) {}

const Host& Observer::declare(Host host) {
    const std::lock_guard lock(mutex_);
    const auto [where, inserted] = hosts_.insert_or_assign(host.name, std::move(host));
    (void)inserted;
    json addresses = json::array();
    for (const auto& address : where->second.addresses) addresses.push_back(address.to_string());
    document_["hosts"][where->first] = {{"addresses", addresses}, {"role", where->second.role}};
    emit(where->first, trace::HostAdded{where->second.addresses, where->second.role});
    return where->second;
}

SocketRef Observer::mint(const std::string& host, Protocol protocol, bool here) {
    SocketRef socket{host, trace::SocketId{next_id_++}, protocol};
    known_[{host, socket.id.value}] = Known{protocol, here, {}, {}, false, false, TcpState::closed, std::nullopt};
    return socket;
}

void Observer::emit(const std::string& host, trace::EventBody body) { trace_->record(host, std::move(body)); }

void Observer::tell(const Tell& how, const std::string& sentence, json entry, std::string_view kind) {
    const std::string& line = how.say ? *how.say : sentence;
    if (!line.empty()) say_->kernel(line);
    if (!how.in_json) return;
    if (how.json_at.empty()) {
        entry["fact"] = kind;
        document_["observed"].push_back(std::move(entry));
        return;
    }
    auto& target = document_[json::json_pointer(how.json_at)];
    if (!target.is_object()) target = json::object();
    target.update(entry);
}

std::optional<PortRange> Observer::range_here() {
    if (!range_here_) {
        const auto range = read_ephemeral_range();
        range_here_ = range ? std::optional<PortRange>(*range) : std::nullopt;
    }
    return *range_here_;
}

SocketRef Observer::open(const Host& host, Protocol protocol, IpFamily family, const Tell& how) {
    const std::lock_guard lock(mutex_);
    const auto socket = mint(host.name, protocol, host.here);
    emit(host.name, trace::SocketCreated{socket.id, protocol, family});
    const std::string kind = protocol == Protocol::tcp ? "TCP" : "UDP";
    tell(how, fmt::format("socket() returned a new {} socket; it has no port yet", kind),
         {{"host", host.name}, {"socket", socket.id.value}, {"protocol", to_string(protocol)},
          {"family", family == IpFamily::v4 ? "ipv4" : "ipv6"}},
         "socket_created");
    return socket;
}

void Observer::record(const fact::Bound& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    auto& known = known_[{fact.socket.host, fact.socket.id.value}];
    known.local = fact.local;
    emit(fact.socket.host, trace::Bound{fact.socket.id, fact.local, fact.how, fact.note});
    json entry = {{"host", fact.socket.host}, {"socket", fact.socket.id.value}, {"local", json_of(fact.local)},
                  {"how", how_text(fact.how)}};
    if (fact.note) entry["note"] = *fact.note;

    std::string sentence = "bound to " + fact.local.to_string();
    if (fact.how != trace::BindHow::explicit_port) {
        const auto range = fact.range ? fact.range : (known.here ? range_here() : std::nullopt);
        const auto chosen_by = fact.chosen_by.value_or(linux_choice(fact.socket.protocol, fact.how));
        const bool inside = range && range->contains(fact.local.port);
        // The pool of the viewer counts the ports the kernel took from the range.
        if (inside)
            emit(fact.socket.host,
                 trace::EphemeralAssigned{fact.socket.id, fact.local.port, range->low, range->high, chosen_by,
                                          fact.local.port % 2 == 0 ? trace::Parity::even : trace::Parity::odd});
        if (range) entry["range"] = {{"low", range->low}, {"high", range->high}};
        entry["chosen_by"] = chosen_by;
        entry["in_range"] = range ? json(inside) : json(nullptr);
        const std::string by = fact.how == trace::BindHow::bind_zero ? "port 0 asked the kernel to choose"
                               : fact.socket.protocol == Protocol::tcp ? "connect() made the kernel choose"
                                                                       : "connect()/sendto() made the kernel choose";
        sentence += fmt::format(": {}, it chose {}", by, fact.local.port);
        if (range) sentence += fmt::format(" ({} {})", inside ? "inside" : "OUTSIDE", range->to_string());
    }
    tell(how, sentence, std::move(entry), "bound");
}

void Observer::record(const fact::Listening& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    known_[{fact.socket.host, fact.socket.id.value}].listening = true;
    emit(fact.socket.host, trace::Listening{fact.socket.id, fact.backlog});
    tell(how, fmt::format("listening (backlog {})", fact.backlog),
         {{"host", fact.socket.host}, {"socket", fact.socket.id.value}, {"backlog", fact.backlog}}, "listening");
}

void Observer::record(const fact::Connecting& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    auto& known = known_[{fact.socket.host, fact.socket.id.value}];
    known.remote = fact.remote;
    emit(fact.socket.host, trace::ConnectStarted{fact.socket.id, fact.remote});
    const bool tcp = fact.socket.protocol == Protocol::tcp;
    tell(how,
         fmt::format("connect({}): {}", fact.remote.to_string(),
                     tcp ? "the kernel sends a SYN" : "the peer is fixed; UDP sends nothing"),
         {{"host", fact.socket.host}, {"socket", fact.socket.id.value}, {"remote", json_of(fact.remote)}},
         "connecting");
    // RFC 9293 3.5: an active OPEN sends a SYN and enters SYN-SENT. The lab cannot see that
    // moment (on loopback the handshake may be over before connect() returns): inferred.
    if (tcp && fact.infer_syn_sent) change_state(fact.socket, known, TcpState::syn_sent, Evidence::inferred, "connect() called: SYN sent", quietly);
}

SocketRef Observer::record(const fact::Accepted& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    for (auto& [key, child] : known_) {
        // The kit saw this connection wait in the listener's queue: the same socket now.
        if (key.first != fact.listener.host || child.child_of != fact.listener.id.value || child.local != fact.four_tuple.local ||
            child.remote != fact.four_tuple.remote)
            continue;
        child.child_of.reset();
        const SocketRef socket{key.first, trace::SocketId{key.second}, fact.listener.protocol};
        emit(socket.host, trace::Accepted{fact.listener.id, socket.id, fact.four_tuple});
        tell(how,
             fmt::format("accept() returned the socket the kernel had queued: {} -> {}",
                         fact.four_tuple.local.to_string(), fact.four_tuple.remote.to_string()),
             {{"host", socket.host}, {"listener", fact.listener.id.value}, {"socket", socket.id.value},
              {"local", json_of(fact.four_tuple.local)}, {"remote", json_of(fact.four_tuple.remote)}},
             "accepted");
        return socket;
    }
    const auto listener = known_.find({fact.listener.host, fact.listener.id.value});
    const bool here = listener == known_.end() || listener->second.here;
    const auto socket = mint(fact.listener.host, fact.listener.protocol, here);
    auto& known = known_[{socket.host, socket.id.value}];
    known.local = fact.four_tuple.local;
    known.remote = fact.four_tuple.remote;
    // accept() hands out only connections whose handshake is done (RFC 9293 3.5; Linux
    // queues them ESTABLISHED): the trace's accepted event says so by itself.
    known.state = TcpState::established;
    emit(socket.host, trace::Accepted{fact.listener.id, socket.id, fact.four_tuple});
    tell(how,
         fmt::format("accept() returned a NEW socket {} -> {}", fact.four_tuple.local.to_string(),
                     fact.four_tuple.remote.to_string()),
         {{"host", socket.host}, {"listener", fact.listener.id.value}, {"socket", socket.id.value},
          {"local", json_of(fact.four_tuple.local)}, {"remote", json_of(fact.four_tuple.remote)}},
         "accepted");
    return socket;
}

void Observer::change_state(const SocketRef& socket, Known& known, TcpState to, Evidence evidence,
                            const std::string& cause, const Tell& how) {
    if (known.state == to) return;
    const TcpState from = known.state;
    known.state = to;
    trace::StateChanged changed{socket.id, from, to, cause};
    changed.evidence = evidence == Evidence::observed ? trace::Evidence::observed : trace::Evidence::inferred;
    emit(socket.host, std::move(changed));
    // Linux keeps a TIME-WAIT socket TCP_TIMEWAIT_LEN, 60 s (include/net/tcp.h): the
    // viewer counts it down from the moment the kernel was seen to hold it.
    if (to == TcpState::time_wait)
        emit(socket.host, trace::TimerArmed{socket.id, trace::TimerKind::time_wait, 60'000'000, 0});
    tell(how, fmt::format("{} -> {} ({}: {})", to_string(from), to_string(to), to_string(evidence), cause),
         {{"host", socket.host}, {"socket", socket.id.value}, {"from", to_string(from)}, {"to", to_string(to)},
          {"evidence", to_string(evidence)}, {"cause", cause}},
         "state_changed");
    if (to == TcpState::closed && known.closed) known_.erase({socket.host, socket.id.value});
}

void Observer::record(const fact::State& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    // A socket already gone (closed, and freed or seen CLOSED) has no state left to change.
    const auto known = known_.find({fact.socket.host, fact.socket.id.value});
    if (known != known_.end()) change_state(fact.socket, known->second, fact.to, fact.evidence, fact.cause, how);
}

void Observer::record(const fact::Closed& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    const Key key{fact.socket.host, fact.socket.id.value};
    auto& known = known_[key];
    known.closed = true;
    const bool gone = gone_on_close(fact.socket.protocol, known.state);
    emit(fact.socket.host, trace::Closed{fact.socket.id});
    tell(how, "closed", {{"host", fact.socket.host}, {"socket", fact.socket.id.value}}, "closed");
    // RFC 9293 3.6 (the CLOSE edges of tcp_machine.hpp): from ESTABLISHED a FIN and
    // FIN-WAIT-1, from CLOSE-WAIT a FIN and LAST-ACK. The descriptor is gone, so TCP_INFO
    // cannot confirm it: inferred, until refresh() reads the connection back with sock_diag.
    if (fact.socket.protocol == Protocol::tcp) {
        if (const auto* edge = close_edge(known.state))
            change_state(fact.socket, known, edge->to, Evidence::inferred, "close() called: " + edge->cause(), quietly);
    }
    // A connection's socket stays in the kernel (FIN exchange, TIME-WAIT): refresh() follows it.
    if (gone) known_.erase(key);
}

void Observer::record(const fact::Failed& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    const std::string host = fact.socket ? fact.socket->host : fact.host;
    auto named = fact.endpoint;
    if (!named && fact.socket && fact.call == "connect")
        if (const auto known = known_.find({fact.socket->host, fact.socket->id.value}); known != known_.end())
            named = known->second.remote;
    emit(host, trace::CallFailed{fact.socket ? std::optional(fact.socket->id) : std::nullopt, fact.call,
                                 errno_name(fact.error), fact.error.message(), named});
    if (fact.socket && fact.call == "connect") forget_failed_connect(*fact.socket, fact.error);
    json entry = {{"host", host}, {"call", fact.call}, {"errno", errno_name(fact.error)}, {"message", fact.error.message()}};
    if (fact.socket) entry["socket"] = fact.socket->id.value;
    if (named) entry["endpoint"] = named->to_string();
    tell(how, fact.call + "(): " + describe_error(fact.error), std::move(entry), "error");
}

// A connect() that failed left no connection: tcp_v4_connect() sets SYN-SENT, and on an
// error such as EADDRNOTAVAIL (that 4-tuple is taken) goes back to CLOSE. The socket has no
// peer then, so refresh() must not take another socket's connection with that 4-tuple for it.
void Observer::forget_failed_connect(const SocketRef& socket, std::error_code error) {
    const auto found = known_.find({socket.host, socket.id.value});
    if (found == known_.end() || found->second.protocol != Protocol::tcp) return;
    // EINPROGRESS and EALREADY are not failures: the handshake goes on.
    if (error == std::errc::operation_in_progress || error == std::errc::connection_already_in_progress) return;
    found->second.remote.reset();
    if (found->second.state == TcpState::syn_sent)
        change_state(socket, found->second, TcpState::closed, Evidence::inferred,
                     "connect() failed: " + errno_name(error), quietly);
}

void Observer::record(const fact::PacketSeen& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    const auto size = fact.packet.bytes.size();
    emit(fact.host, fact.packet);
    tell(how, fmt::format("a packet of {} bytes", size), {{"host", fact.host}, {"bytes", size}}, "packet");
}

std::optional<TcpState> Observer::read_state(const SocketRef& socket, int fd, const Tell& how) {
    const auto state = tcp_state_of(fd);
    if (!state) return std::nullopt;
    const std::lock_guard lock(mutex_);
    auto& known = known_[{socket.host, socket.id.value}];
    if (*state == TcpState::closed && known.local && known.remote && known.here) {
        // Maybe TIME-WAIT in a timewait sock: ask sock_diag, which lists it.
        read_back(false);
        return state_of(socket);
    }
    change_state(socket, known, *state, Evidence::observed, "TCP_INFO", how);
    return *state;
}

std::vector<diag::SocketInfo> Observer::refresh() { return read_back(true); }

std::vector<diag::SocketInfo> Observer::read_back(bool with_owners) {
    diag::Query query;
    query.udp = false;
    query.with_processes = with_owners;  // labs quote the owner, as ss -p does
    auto dump = diag::list_sockets(query);
    if (!dump) return {};  // nothing observed: record nothing
    // The hosts in other namespaces this process can enter: each one's sockets, listed there.
    std::map<std::string, std::vector<diag::SocketInfo>, std::less<>> inside;
    std::vector<std::pair<std::string, std::function<void(const std::function<void()>&)>>> enterable;
    {
        const std::lock_guard lock(mutex_);
        for (const auto& [name, host] : hosts_)
            if (!host.here && host.look_inside) enterable.emplace_back(name, host.look_inside);
    }
    for (const auto& [name, look_inside] : enterable) {
        Result<std::vector<diag::SocketInfo>> listed = fail("not entered");
        look_inside([&] { listed = diag::list_sockets(query); });
        if (listed) inside.emplace(name, std::move(*listed));
    }
    const std::lock_guard lock(mutex_);
    std::vector<std::pair<Key, std::optional<TcpState>>> seen;
    for (const auto& [key, known] : known_) {
        if (known.protocol != Protocol::tcp || !known.local) continue;
        const auto found_inside = inside.find(key.first);
        const std::vector<diag::SocketInfo>* where = known.here ? &*dump : found_inside != inside.end() ? &found_inside->second : nullptr;
        if (where == nullptr) continue;
        const bool as_listener = known.listening && !known.remote;
        if (!as_listener && !known.remote) continue;  // bound only: sock_diag does not list it by default
        std::optional<TcpState> state;
        for (const auto& socket : *where) {
            const bool match = as_listener ? socket.tcp_state() == TcpState::listen && socket.local == *known.local
                                           : socket.four_tuple() == FourTuple{*known.local, *known.remote};
            if (match && socket.tcp_state()) state = socket.tcp_state();
        }
        seen.emplace_back(key, state);
    }
    for (const auto& [key, state] : seen) {
        auto found = known_.find(key);
        if (found == known_.end()) continue;
        const SocketRef socket{key.first, trace::SocketId{key.second}, found->second.protocol};
        if (state) {
            change_state(socket, found->second, *state, Evidence::observed, "sock_diag", quietly);
        } else if (found->second.state != TcpState::closed) {
            change_state(socket, found->second, TcpState::closed, Evidence::observed,
                         "sock_diag: the kernel no longer lists it", quietly);
        } else if (found->second.closed) {
            known_.erase(found);
        }
    }
    adopt_children(*dump, std::nullopt);
    for (const auto& [name, listed] : inside) adopt_children(listed, name);
    return *dump;
}

bool Observer::readable(const Key& key, const Known& known) const {
    if (known.here) return true;
    const auto host = hosts_.find(key.first);
    return host != hosts_.end() && static_cast<bool>(host->second.look_inside);
}

// `inside`: the host whose namespace `dump` was listed in; none: this process's own.
void Observer::adopt_children(const std::vector<diag::SocketInfo>& dump, const std::optional<std::string>& inside) {
    for (const auto& entry : dump) {
        if (!waits_for_accept(entry.tcp_state())) continue;
        const FourTuple tuple = entry.four_tuple();
        std::optional<SocketRef> listener;
        bool known_already = false;
        for (const auto& [key, known] : known_) {
            const bool listed_there = inside ? key.first == *inside && !known.here : known.here;
            if (!listed_there || known.protocol != Protocol::tcp || !known.local) continue;
            if (known.remote && *known.local == tuple.local && *known.remote == tuple.remote) known_already = true;
            const bool serves = known.listening && !known.remote && !known.closed && known.local->port == tuple.local.port &&
                                (known.local->address == tuple.local.address || known.local->address.is_unspecified());
            if (serves) listener = SocketRef{key.first, trace::SocketId{key.second}, Protocol::tcp};
        }
        if (known_already || !listener) continue;
        // tcp_conn_request() made it at the SYN; the kit sees it now, in the state the kernel reports.
        const auto child = mint(listener->host, Protocol::tcp, !inside.has_value());
        auto& known = known_[{child.host, child.id.value}];
        known.local = tuple.local;
        known.remote = tuple.remote;
        known.child_of = listener->id.value;
        known.state = TcpState::syn_received;
        emit(child.host, trace::ChildCreated{listener->id, child.id, tuple});
        change_state(child, known, *entry.tcp_state(), Evidence::observed, "sock_diag: waiting for accept()", quietly);
    }
}

void Observer::record(const fact::RuleAdded& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    emit(fact.host, trace::RuleAdded{fact.rule_id, fact.rule});
    const std::string text = nft_text(fact.rule).value_or("?");
    tell(how, fmt::format("rule {} added: {}", fact.rule_id, text),
         {{"host", fact.host}, {"rule_id", fact.rule_id}, {"rule", text}}, "rule_added");
}

void Observer::record(const fact::RuleRemoved& fact, const Tell& how) {
    const std::lock_guard lock(mutex_);
    emit(fact.host, trace::RuleRemoved{fact.rule_id});
    tell(how, fmt::format("rule {} removed", fact.rule_id), {{"host", fact.host}, {"rule_id", fact.rule_id}},
         "rule_removed");
}

// Whether a fact told this way leaves any trace at all: a scan of every port without
// --trace records 131,070 facts, and each should then cost nothing.
bool Observer::silent(const Tell& how) const { return !trace_->enabled() && how.say && how.say->empty() && !how.in_json; }

void Observer::record(const fact::Probed& fact, const Tell& how) {
    if (silent(how)) return;
    const std::lock_guard lock(mutex_);
    emit(fact.host, trace::ScanProbe{fact.scan, fact.target, fact.attempt,
                                     fact.socket ? std::optional(fact.socket->id) : std::nullopt});
    json entry = {{"host", fact.host}, {"scan", scan::to_string(fact.scan)}, {"target", json_of(fact.target)},
                  {"attempt", fact.attempt}};
    if (fact.socket) entry["socket"] = fact.socket->id.value;
    tell(how, fmt::format("{} probe to {}", scan::nmap_option(fact.scan), fact.target.to_string()), std::move(entry),
         "scan_probe");
}

void Observer::record(const fact::Translated& fact, const Tell& how) {
    if (silent(how)) return;
    const std::lock_guard lock(mutex_);
    const auto& translation = fact.translation;
    const auto& flows = *translation.flows;
    emit(fact.router, translation);
    auto flow_json = [](const trace::Flow& flow) {
        return json{{"source", json_of(flow.source)}, {"destination", json_of(flow.destination)}};
    };
    json entry = {{"router", fact.router},
                  {"kind", trace::to_string(translation.kind)},
                  {"protocol", to_string(translation.protocol)},
                  {"conntrack_id", translation.conntrack_id},
                  {"before", flow_json(flows.before)},
                  {"after", flow_json(flows.after)}};
    tell(how, fmt::format("{} {} on {}: {} -> {} leaves as {} -> {}", trace::to_string(translation.kind),
                          to_string(translation.protocol), fact.router, flows.before.source.to_string(),
                          flows.before.destination.to_string(), flows.after.source.to_string(),
                          flows.after.destination.to_string()),
         std::move(entry), "nat");
}

void Observer::record(const fact::ScanConcluded& fact, const Tell& how) {
    if (silent(how)) return;
    const std::lock_guard lock(mutex_);
    emit(fact.host, trace::ScanResult{fact.scan, fact.target, fact.verdict.state, fact.verdict.reason});
    tell(how,
         fmt::format("{} is {} ({})", fact.target.to_string(), scan::to_string(fact.verdict.state),
                     scan::to_string(fact.verdict.reason)),
         {{"host", fact.host}, {"scan", scan::to_string(fact.scan)}, {"target", json_of(fact.target)},
          {"state", scan::to_string(fact.verdict.state)}, {"reason", scan::to_string(fact.verdict.reason)}},
         "scan_result");
}

std::vector<diag::SocketInfo> Observer::settle(std::chrono::milliseconds limit) {
    const auto passing = [](TcpState state) {
        return state == TcpState::syn_sent || state == TcpState::syn_received || state == TcpState::fin_wait_1 ||
               state == TcpState::closing || state == TcpState::last_ack;
    };
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto dump = refresh();
        bool moving = false;
        {
            const std::lock_guard lock(mutex_);
            for (const auto& [key, known] : known_) moving = moving || (readable(key, known) && passing(known.state));
        }
        if (!moving || std::chrono::steady_clock::now() >= deadline) return dump;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void Observer::stop_looking_inside() {
    const std::lock_guard lock(mutex_);
    for (auto& [name, host] : hosts_) host.look_inside = nullptr;
}

void Observer::step(std::string_view what) {
    // Only the states matter here, not the owners: skipping the /proc scan keeps a step cheap.
    read_back(false);
    trace_->flush();
    say_->step(what);
}

bool Observer::follows_sockets() const {
    const std::lock_guard lock(mutex_);
    return !known_.empty();
}

TcpState Observer::state_of(const SocketRef& socket) const {
    const std::lock_guard lock(mutex_);
    const auto found = known_.find({socket.host, socket.id.value});
    return found == known_.end() ? TcpState::closed : found->second.state;
}

OpenedListener open_tcp_listener(Observer& see, asio::io_context& io, const Host& host, const Endpoint& requested,
                                 const Tell& bound_tell, const Tell& listening_tell) {
    using asio::ip::tcp;
    tcp::acceptor acceptor(io);
    std::error_code error;
    acceptor.open(to_tcp_endpoint(requested).protocol(), error);
    const auto ref = see.open(host, Protocol::tcp, requested.address.family());
    if (!error) acceptor.set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) acceptor.bind(to_tcp_endpoint(requested), error);
    if (error) {
        see.record(fact::Failed{ref, "bind", error, {}, requested}, quietly);
        see.record(fact::Closed{ref}, quietly);
        return {std::nullopt, error};
    }
    const auto how = requested.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port;
    see.record(fact::Bound{ref, to_endpoint(acceptor.local_endpoint()), how, {}, {}, "SO_REUSEADDR set"}, bound_tell);
    acceptor.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
        see.record(fact::Failed{ref, "listen", error}, quietly);
        see.record(fact::Closed{ref}, quietly);
        return {std::nullopt, error};
    }
    see.record(fact::Listening{ref, asio::socket_base::max_listen_connections}, listening_tell);
    see.read_state(ref, acceptor.native_handle());
    return {TcpListener{std::move(acceptor), ref}, {}};
}

}  // namespace portlab::labkit
