// Set-up, recording, and the socket API of the simulated kernels.
#include "portlab/sim/kernel.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace portlab::sim {

namespace {

// Whether two local addresses claim one another's packets (Linux ipv6_rcv_saddr_equal and
// inet_rcv_saddr_equal): equal, or either is its family's wildcard; across families only an
// IPv6 wildcard without IPV6_V6ONLY, which also takes every IPv4 address (bindv6only = 0).
// `a_v6only`, `b_v6only`: the IPV6_V6ONLY of the socket each address belongs to.
bool addresses_overlap(const IpAddress& a, bool a_v6only, const IpAddress& b, bool b_v6only) {
    if (a.family() == b.family()) return a == b || a.is_unspecified() || b.is_unspecified();
    return (a.is_v6() && a.is_unspecified() && !a_v6only) || (b.is_v6() && b.is_unspecified() && !b_v6only);
}

}  // namespace

Endpoint named_for(const Socket& socket, const Endpoint& endpoint) {
    if (socket.family != IpFamily::v6 || !endpoint.address.is_v4()) return endpoint;
    std::array<std::uint8_t, 16> mapped{};
    mapped[10] = mapped[11] = 0xFF;
    std::copy_n(endpoint.address.bytes().begin(), 4, mapped.begin() + 12);
    return Endpoint{IpAddress::from_bytes(mapped).value(), endpoint.port};
}

// ---- set-up ----------------------------------------------------------------------

HostId Kernel::add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options) {
    Host host;
    host.name = std::move(name);
    host.addresses = std::move(addresses);
    host.options = std::move(options);
    world.hosts.push_back(std::move(host));
    const HostId id{static_cast<std::uint32_t>(world.hosts.size() - 1)};
    // Declared once, before any other event on it (docs/trace-format.md, `host`).
    const Host& added = world.hosts.back();
    record(id, trace::HostAdded{added.addresses, added.options.role});
    return id;
}

void Kernel::set_link(HostId a, HostId b, LinkConfig config) {
    const auto key = std::minmax(a.value, b.value);
    world.links[{key.first, key.second}] = config;
}

Result<std::string> Kernel::add_rule(HostId host, FirewallRule rule) {
    if (host.value >= world.hosts.size()) return fail("no host " + std::to_string(host.value));
    if (auto ok = check_rule(rule); !ok) return ok.error();
    if (auto ok = input_chain_models(rule); !ok) return ok.error();
    Firewall& firewall = host_of(host).firewall;
    std::string id = "r" + std::to_string(firewall.next_rule_number++);
    record(host, trace::RuleAdded{id, rule});
    firewall.input.push_back(NamedRule{id, std::move(rule)});
    return id;
}

bool Kernel::remove_rule(HostId host, std::string_view id) {
    if (host.value >= world.hosts.size()) return false;
    auto& rules = host_of(host).firewall.input;
    const auto found = std::find_if(rules.begin(), rules.end(), [&](const NamedRule& rule) { return rule.id == id; });
    if (found == rules.end()) return false;
    record(host, trace::RuleRemoved{found->id});
    rules.erase(found);
    return true;
}

void Kernel::set_policy(HostId host, FirewallAction policy) {
    if (host.value < world.hosts.size()) host_of(host).firewall.policy = policy;
}

// ---- time --------------------------------------------------------------------------

bool Kernel::step() {
    auto entry = world.queue.pop();
    if (!entry) return false;
    world.now = std::max(world.now, entry->at);
    std::visit(
        [this](auto& action) {
            using T = std::decay_t<decltype(action)>;
            if constexpr (std::is_same_v<T, Arrival>) on_arrival(action);
            else if constexpr (std::is_same_v<T, TcpTimer>) on_tcp_timer(action);
            else if constexpr (std::is_same_v<T, ProbeTimeout>) on_probe_timeout(action.probe);
            else if constexpr (std::is_same_v<T, NeighbourFailed>) on_neighbour_failed(action);
            else record(action.host, trace::Note{action.text});
        },
        entry->payload);
    return true;
}

// ---- lookups ---------------------------------------------------------------------------

Socket* Kernel::user_socket(SocketRef s) {
    if (s.host.value >= world.hosts.size()) return nullptr;
    Socket* socket = host_of(s.host).find(s.id);
    return socket != nullptr && socket->open_by_user ? socket : nullptr;
}

bool Kernel::is_local_address(const Host& host, const IpAddress& address) const {
    if (address.is_unspecified() || address.is_loopback()) return true;
    return std::find(host.addresses.begin(), host.addresses.end(), address) != host.addresses.end();
}

IpAddress Kernel::source_address_for(const Host& host, const IpAddress& destination, IpFamily family) const {
    if (destination.is_loopback()) return destination.is_v4() ? IpAddress::loopback_v4() : IpAddress::loopback_v6();
    if (is_local_address(host, destination)) return destination;
    // The route's preferred source (`ip route get` shows it as "src").
    if (const Route* r = longest_match(host.routing.routes, destination); r != nullptr && r->source.family() == family)
        return r->source;
    for (const IpAddress& address : host.addresses)
        if (address.family() == family) return address;
    return family == IpFamily::v4 ? IpAddress::loopback_v4() : IpAddress::loopback_v6();
}

std::optional<HostId> Kernel::next_hop(HostId from, const IpAddress& destination) const {
    const Host& host = world.hosts[from.value];
    if (host.routing.routes.empty() || is_local_address(host, destination)) return route(from, destination);
    const Route* r = longest_match(host.routing.routes, destination);
    if (r == nullptr) return std::nullopt;
    return route(from, r->gateway.value_or(destination));
}

std::optional<HostId> Kernel::route(HostId from, const IpAddress& destination) const {
    if (destination.is_loopback()) return from;
    for (std::size_t i = 0; i < world.hosts.size(); ++i) {
        const auto& addresses = world.hosts[i].addresses;
        if (std::find(addresses.begin(), addresses.end(), destination) != addresses.end())
            return HostId{static_cast<std::uint32_t>(i)};
    }
    return std::nullopt;
}

// The listener for a SYN to `local`, from the listening table alone (the bind bucket
// would walk every accepted and TIME-WAIT socket on the port). Linux
// __inet_lookup_listener looks up (daddr, port) first, then (INADDR_ANY, port), and
// among the wildcards compute_score prefers an AF_INET socket to an AF_INET6 one: the
// most specific match wins. An IPv6 wildcard socket takes IPv4 too (bindv6only = 0).
std::optional<trace::SocketId> Kernel::find_listener(HostId h, const Endpoint& local) {
    const auto& listeners = host_of(h).table(Protocol::tcp).listeners;
    if (listeners.empty()) return std::nullopt;
    const IpAddress same_family_any = local.address.is_v4() ? IpAddress::any_v4() : IpAddress::any_v6();
    for (const IpAddress& address : {local.address, same_family_any})
        if (const trace::SocketId* id = listeners.find(Endpoint{address, local.port})) return *id;
    // An IPv4 SYN may still reach an IPv6 wildcard listener, unless it is IPV6_V6ONLY
    // (ipv6_only_sock: inet6's listeners are not in IPv4's lookup then).
    if (const trace::SocketId* id = listeners.find(Endpoint{IpAddress::any_v6(), local.port}))
        if (const Socket* listener = host_of(h).find(*id); listener != nullptr && !listener->v6only) return *id;
    return std::nullopt;
}

// The UDP socket for a datagram: connected sockets must match the sender; among
// candidates the most specific wins (Linux udp4_lib_lookup's scoring).
std::optional<trace::SocketId> Kernel::find_udp_socket(HostId h, const Endpoint& local, const Endpoint& remote) {
    Host& host = host_of(h);
    const BoundSockets bucket = host.table(Protocol::udp).bound_to(local.port);
    std::optional<trace::SocketId> best;
    int best_score = -1;
    for (std::size_t i = 0; i < bucket.size(); ++i) {
        const trace::SocketId id = bucket[i];
        const Socket* s = host.find(id);
        if (s == nullptr || !s->local) continue;
        if (!addresses_overlap(s->local->address, s->v6only, local.address, false)) continue;
        int score = 0;
        if (s->local->address == local.address) score += 2;
        if (s->remote) {
            if (*s->remote != remote) continue;
            score += 4;
        }
        if (score >= best_score) {  // later binds win ties, as with SO_REUSEADDR on Linux
            best = id;
            best_score = score;
        }
    }
    return best;
}

// ---- recording ---------------------------------------------------------------------------

const trace::OptText& Kernel::recorded_host_name(HostId h) {
    auto& names = recorder->host_names;
    if (h.value >= names.size()) names.resize(h.value + 1);
    if (!names[h.value]) names[h.value] = host_of(h).name;
    return names[h.value];
}

SysResult<Ok> Kernel::failed(HostId h, std::optional<trace::SocketId> s, std::string_view call, Errno error,
                             std::optional<Endpoint> named) {
    // EAGAIN is "not yet", not a failure: it leaves no trace (the model never blocks).
    if (recording() && error != Errno::eagain && h.value < world.hosts.size())
        record(h, trace::CallFailed{s, std::string(call), std::string(errno_name(error)), std::string(errno_message(error)),
                                    named});
    return error;
}

void Kernel::set_state(HostId h, Socket& s, TcpState to, std::string_view cause) {
    if (s.state == to) return;
    const TcpState from = s.state;
    s.state = to;
    if (recording()) record(h, trace::StateChanged{s.id, from, to, std::string(cause)});
}

void Kernel::note(HostId host, std::string text) {
    if (host.value < world.hosts.size()) record(host, trace::Note{std::move(text)});
}

// ---- sockets and ports -----------------------------------------------------------------

Socket& Kernel::create_socket(HostId h, Protocol protocol, IpFamily family) {
    Host& host = host_of(h);
    std::uint32_t slot = 0;
    if (!host.free_slots.empty()) {
        slot = host.free_slots.back();  // destroy_socket left it as a fresh Socket{}
        host.free_slots.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(host.slots.size());
        host.slots.emplace_back();
    }
    Socket& s = host.slots[slot];
    s.id = trace::SocketId{host.next_socket_id++};
    s.protocol = protocol;
    s.family = family;
    s.tcb.rto = world.tcp.initial_rto;
    host.slot_of[s.id.value] = slot;
    return s;
}

void Kernel::destroy_socket(HostId h, trace::SocketId id) {
    Host& host = host_of(h);
    Socket* s = host.find(id);
    if (s == nullptr) return;
    disarm_retransmit(h, *s);
    disarm_time_wait(h, *s);
    stop_listening(h, *s);
    remove_connection(h, *s);
    detach_port(h, *s);
    if (s->listener) {
        if (Socket* listener = host.find(*s->listener)) {
            auto& queue = listener->accept_queue;
            queue.erase(std::remove(queue.begin(), queue.end(), id), queue.end());
        }
    }
    const std::uint32_t slot = *host.slot_of.find(id.value);
    host.slot_of.erase(id.value);
    host.slots[slot] = Socket{};
    host.free_slots.push_back(slot);
}

// Linux inet_bind_conflict / udp_lib_lport_inuse: two sockets on one port conflict
// when their addresses overlap (equal, or either is the wildcard), unless both set
// SO_REUSEADDR and (TCP) the one already there is not listening. TIME-WAIT sockets
// count, with the SO_REUSEADDR their socket had.
bool Kernel::bind_conflict(const Host& host, const Socket& s, const Endpoint& local) const {
    const BoundSockets bucket = host.table(s.protocol).bound_to(local.port);
    for (std::size_t i = 0; i < bucket.size(); ++i) {
        const Socket* other = host.find(bucket[i]);
        if (other == nullptr || other == &s || !other->local) continue;
        if (!addresses_overlap(other->local->address, other->v6only, local.address, s.v6only)) continue;
        const bool both_reuse = s.reuse_address && other->reuse_address;
        if (s.protocol == Protocol::udp && both_reuse) continue;
        if (s.protocol == Protocol::tcp && both_reuse && !other->listening) continue;
        return true;
    }
    return false;
}

void Kernel::attach_port(HostId h, Socket& s, const Endpoint& local) {
    ProtocolTable& table = host_of(h).table(s.protocol);
    s.local = local;
    table.bind_socket(local.port, s.id);
    table.free.take(local.port);
}

void Kernel::bind_to(HostId h, Socket& s, const Endpoint& local, trace::BindHow how, std::optional<std::string> note) {
    attach_port(h, s, local);
    s.bound_how = how;
    s.port_auto_bound = how == trace::BindHow::ephemeral;
    record(h, trace::Bound{s.id, local, how, std::move(note)});
}

void Kernel::detach_port(HostId h, Socket& s) {
    if (!s.local) return;
    ProtocolTable& table = host_of(h).table(s.protocol);
    if (table.unbind_socket(s.local->port, s.id)) table.free.release(s.local->port);
    s.local.reset();
    s.port_auto_bound = false;
    s.bound_by_connect = false;
}

void Kernel::start_listening(HostId h, Socket& s, std::uint32_t backlog) {
    s.listening = true;
    s.backlog = backlog;
    (void)host_of(h).table(Protocol::tcp).listeners.try_emplace(*s.local, s.id);
}

void Kernel::stop_listening(HostId h, Socket& s) {
    if (!s.listening) return;
    s.listening = false;
    (void)host_of(h).table(Protocol::tcp).listeners.erase(*s.local, s.id);
}

void Kernel::add_connection(HostId h, const Socket& s) {
    if (s.local && s.remote) (void)host_of(h).add_connection(s.protocol, FourTuple{*s.local, *s.remote}, s.id);
}

void Kernel::remove_connection(HostId h, const Socket& s) {
    if (!s.local || !s.remote) return;
    host_of(h).table(s.protocol).connections.erase(FourTuple{*s.local, *s.remote}, s.id.value);
}

std::optional<Port> Kernel::pick_ephemeral(HostId h, Socket& s, PortPurpose purpose, const IpAddress& local,
                                           std::optional<Endpoint> remote) {
    Host& host = host_of(h);
    ProtocolTable& table = host.table(s.protocol);
    const auto choice = choose_ephemeral_port(host.options.ephemeral, table.ephemeral, table.free,
                                              PortRequest{purpose, local, remote}, world.rng, world.secret);
    if (!choice) return std::nullopt;
    const PortRange range = host.options.ephemeral.range;
    if (recording())
        record(h, trace::EphemeralAssigned{s.id, choice->port, range.low, range.high, std::string(choice->algorithm),
                                           choice->parity});
    return choice->port;
}

// ---- the socket API -------------------------------------------------------------------

SysResult<SocketRef> Kernel::socket(HostId h, Protocol protocol, IpFamily family) {
    if (h.value >= world.hosts.size()) return Errno::einval;
    Socket& s = create_socket(h, protocol, family);
    s.open_by_user = true;
    record(h, trace::SocketCreated{s.id, protocol, family});
    return SocketRef{h, s.id};
}

SysResult<Ok> Kernel::set_reuse_address(SocketRef ref, bool on) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    s->reuse_address = on;
    return Ok{};
}

SysResult<Ok> Kernel::set_privileged(SocketRef ref, bool on) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    s->privileged = on;
    return Ok{};
}

SysResult<Ok> Kernel::set_linger_zero(SocketRef ref, bool on) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    s->linger_zero = on;
    return Ok{};
}

// setsockopt(IP_TTL): the TTL of the datagrams the socket sends from now on (1-255).
SysResult<Ok> Kernel::set_ttl(SocketRef ref, std::uint8_t ttl) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    if (ttl == 0) return failed(ref.host, ref.id, "setsockopt", Errno::einval);
    s->ttl = ttl;
    return Ok{};
}

// do_ipv6_setsockopt(IPV6_V6ONLY): only before the socket has a port (EINVAL after), and
// an AF_INET socket has no IPv6 options at all (ip_setsockopt: ENOPROTOOPT).
SysResult<Ok> Kernel::set_v6only(SocketRef ref, bool on) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    if (s->family != IpFamily::v6) return failed(ref.host, ref.id, "setsockopt", Errno::enoprotoopt);
    if (s->local) return failed(ref.host, ref.id, "setsockopt", Errno::einval);
    s->v6only = on;
    return Ok{};
}

SysResult<Ok> Kernel::set_auto_reply(SocketRef ref, Bytes reply) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "setsockopt", Errno::ebadf);
    s->auto_reply = std::move(reply);
    return Ok{};
}

// Linux __inet_bind: the address must be local (EADDRNOTAVAIL), a port below
// ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE (EACCES), a socket binds
// once (EINVAL), and the port must not conflict (EADDRINUSE). Port 0 asks for one.
SysResult<Ok> Kernel::bind(SocketRef ref, Endpoint local) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "bind", Errno::ebadf, local);
    const Host& host = host_of(ref.host);
    const Endpoint wanted = local;  // as the call named it: a failed bind() shows the port it wanted
    if (local.address.family() != s->family) return failed(ref.host, ref.id, "bind", Errno::eafnosupport, wanted);
    if (!is_local_address(host, local.address)) return failed(ref.host, ref.id, "bind", Errno::eaddrnotavail, wanted);
    if (local.port != 0 && local.port < host.options.unprivileged_port_start && !s->privileged)
        return failed(ref.host, ref.id, "bind", Errno::eacces, wanted);
    if (s->local || s->state != TcpState::closed) return failed(ref.host, ref.id, "bind", Errno::einval, wanted);
    trace::BindHow how = trace::BindHow::explicit_port;
    if (local.port == 0) {
        const auto purpose = s->protocol == Protocol::tcp ? PortPurpose::tcp_bind_zero : PortPurpose::udp;
        const auto port = pick_ephemeral(ref.host, *s, purpose, local.address, std::nullopt);
        if (!port) return failed(ref.host, ref.id, "bind", Errno::eaddrinuse, wanted);  // Linux: bind(0) on a full range
        local.port = *port;
        how = trace::BindHow::bind_zero;
    } else if (bind_conflict(host, *s, local)) {
        return failed(ref.host, ref.id, "bind", Errno::eaddrinuse, wanted);
    }
    std::optional<std::string> note;
    if (s->reuse_address) note = "SO_REUSEADDR set";
    bind_to(ref.host, *s, local, how, std::move(note));
    return Ok{};
}

// inet_listen: TCP only; an unbound socket gets a port as bind(0) would; the port
// is checked again because SO_REUSEADDR lets two sockets bind but not both listen.
SysResult<Ok> Kernel::listen(SocketRef ref, std::uint32_t backlog) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "listen", Errno::ebadf);
    if (s->protocol != Protocol::tcp) return failed(ref.host, ref.id, "listen", Errno::eopnotsupp);
    if (s->listening) {
        s->backlog = backlog;
        return Ok{};
    }
    if (s->state != TcpState::closed) return failed(ref.host, ref.id, "listen", Errno::einval);
    if (!s->local) {
        const IpAddress any = s->family == IpFamily::v4 ? IpAddress::any_v4() : IpAddress::any_v6();
        const auto port = pick_ephemeral(ref.host, *s, PortPurpose::tcp_bind_zero, any, std::nullopt);
        if (!port) return failed(ref.host, ref.id, "listen", Errno::eaddrinuse);
        bind_to(ref.host, *s, Endpoint{any, *port}, trace::BindHow::ephemeral);
    }
    const Host& host = host_of(ref.host);
    const BoundSockets bucket = host.table(Protocol::tcp).bound_to(s->local->port);
    for (std::size_t i = 0; i < bucket.size(); ++i) {
        const Socket* other = host.find(bucket[i]);
        if (other != nullptr && other != s && other->listening &&
            addresses_overlap(other->local->address, other->v6only, s->local->address, s->v6only))
            return failed(ref.host, ref.id, "listen", Errno::eaddrinuse);
    }
    start_listening(ref.host, *s, backlog);
    record(ref.host, trace::Listening{s->id, backlog});
    set_state(ref.host, *s, TcpState::listen, "listen() called");
    return Ok{};
}

SysResult<Ok> Kernel::connect(SocketRef ref, Endpoint remote) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "connect", Errno::ebadf, remote);
    if (remote.address.family() != s->family) return failed(ref.host, ref.id, "connect", Errno::eafnosupport, remote);
    if (s->protocol == Protocol::tcp) {
        if (s->state == TcpState::syn_sent) return failed(ref.host, ref.id, "connect", Errno::ealready, remote);
        if (s->state != TcpState::closed || s->listening) return failed(ref.host, ref.id, "connect", Errno::eisconn, remote);
    }
    const IpAddress source = s->local && !s->local->address.is_unspecified()
                                 ? s->local->address
                                 : source_address_for(host_of(ref.host), remote.address, s->family);
    record(ref.host, trace::ConnectStarted{s->id, remote});
    if (!s->local) {
        const auto purpose = s->protocol == Protocol::tcp ? PortPurpose::tcp_connect : PortPurpose::udp;
        std::optional<std::string> note;
        auto port = pick_ephemeral(ref.host, *s, purpose, source, remote);
        if (!port && s->protocol == Protocol::tcp) {
            port = share_ephemeral(ref.host, *s, Endpoint{source, 0}, remote);
            if (port) note = "shared with connections to other destinations: the 4-tuple is still unique";
        }
        if (!port) return failed(ref.host, ref.id, "connect", Errno::eaddrnotavail, remote);
        // TCP and UDP alike bind the source address the route gives: inet_hash_connect for
        // TCP, __ip4_datagram_connect / ip6_datagram_connect (inet_rcv_saddr) for UDP.
        bind_to(ref.host, *s, Endpoint{source, *port}, trace::BindHow::ephemeral, std::move(note));
        s->bound_by_connect = s->protocol == Protocol::tcp;
    }
    // The 4-tuple must be new (Linux __inet_check_established).
    const Endpoint local{source, s->local->port};
    if (s->protocol == Protocol::tcp && !host_of(ref.host).add_connection(Protocol::tcp, FourTuple{local, remote}, s->id))
        return failed(ref.host, ref.id, "connect", Errno::eaddrnotavail, remote);
    if (s->local->address.is_unspecified()) {
        // Bound to the wildcard: connect() fills the address in, as getsockname() then shows.
        s->local = local;
        record(ref.host, trace::Bound{s->id, local, s->bound_how, "connect() filled in the source address"});
    }
    s->remote = remote;
    if (s->protocol == Protocol::udp) return Ok{};
    s->tcb.iss = initial_sequence(FourTuple{local, remote});
    s->tcb.snd_una = s->tcb.iss;
    s->tcb.snd_nxt = s->tcb.iss + 1;
    s->tcb.send_base = s->tcb.iss + 1;
    s->tcb.rto = world.tcp.initial_rto;
    s->tcb.retries = 0;
    s->tcb.syn_sent_at = world.now;
    s->error.reset();
    set_state(ref.host, *s, TcpState::syn_sent, "connect() called");
    send_segment(ref.host, *s, s->tcb.iss, tcp_flag::syn);
    arm_retransmit(ref.host, *s);
    return Ok{};
}

// Linux __inet_hash_connect: a port whose bind bucket was made by connect() alone
// (tb->fastreuse < 0: no bind(), no listener) serves another connection when the new
// 4-tuple is unique (__inet_check_established), so the ephemeral range limits the
// connections to one destination, not to all. Linux may share such a port before the
// range is full, in its probing order; the model shares only once no port is free, the
// lowest shareable port first, so its ports differ but its limits are Linux's.
std::optional<Port> Kernel::share_ephemeral(HostId h, Socket& s, Endpoint local, const Endpoint& remote) {
    const Host& host = host_of(h);
    const PortRange range = host.options.ephemeral.range;
    for (std::uint32_t port = range.low; port <= range.high; ++port) {
        const BoundSockets bucket = host.table(Protocol::tcp).bound_to(static_cast<Port>(port));
        bool by_connect_only = bucket.size() > 0;
        for (std::size_t i = 0; i < bucket.size() && by_connect_only; ++i) {
            const Socket* other = host.find(bucket[i]);
            by_connect_only = other != nullptr && other->bound_by_connect;
        }
        local.port = static_cast<Port>(port);
        if (!by_connect_only || host.find_connection(Protocol::tcp, FourTuple{local, remote})) continue;
        if (recording())
            record(h, trace::EphemeralAssigned{s.id, local.port, range.low, range.high, "linux-hash-connect, shared",
                                               (port & 1U) == 0 ? trace::Parity::even : trace::Parity::odd});
        return local.port;
    }
    return std::nullopt;
}

SysResult<SocketRef> Kernel::accept(SocketRef ref) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "accept", Errno::ebadf).error();
    if (s->protocol != Protocol::tcp) return failed(ref.host, ref.id, "accept", Errno::eopnotsupp).error();
    if (!s->listening) return failed(ref.host, ref.id, "accept", Errno::einval).error();
    if (s->accept_queue.empty()) return Errno::eagain;
    const trace::SocketId child_id = s->accept_queue.front();
    s->accept_queue.erase(s->accept_queue.begin());
    Socket* child = find(ref.host, child_id);
    child->listener.reset();
    child->open_by_user = true;
    // accept()'s view: an IPv4 connection to a dual-stack listener, named IPv4-mapped.
    record(ref.host, trace::Accepted{ref.id, child_id, FourTuple{named_for(*child, *child->local), named_for(*child, *child->remote)}});
    return SocketRef{ref.host, child_id};
}

SysResult<std::size_t> Kernel::send(SocketRef ref, Bytes data) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "send", Errno::ebadf).error();
    if (s->error) {
        const Errno error = *s->error;
        s->error.reset();
        return failed(ref.host, ref.id, "send", error).error();
    }
    if (s->protocol == Protocol::udp) {
        if (!s->remote) return failed(ref.host, ref.id, "send", Errno::edestaddrreq).error();
        return sendto(ref, std::move(data), *s->remote);
    }
    if (s->tcb.fin_queued) return failed(ref.host, ref.id, "send", Errno::epipe).error();
    if (s->state != TcpState::established && s->state != TcpState::close_wait) {
        if (s->state == TcpState::syn_sent || s->state == TcpState::syn_received) return Errno::eagain;
        return failed(ref.host, ref.id, "send", Errno::enotconn).error();
    }
    const std::size_t size = data.size();
    s->tcb.send_buffer.insert(s->tcb.send_buffer.end(), data.begin(), data.end());
    tcp_output(ref.host, *s);
    return size;
}

SysResult<Bytes> Kernel::recv(SocketRef ref) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "recv", Errno::ebadf).error();
    if (s->protocol == Protocol::udp) {
        if (!s->inbox.empty()) {
            Bytes payload = std::move(s->inbox.front().payload);
            s->inbox.erase(s->inbox.begin());
            return payload;
        }
        if (s->error) {
            const Errno error = *s->error;
            s->error.reset();
            return failed(ref.host, ref.id, "recv", error).error();
        }
        return Errno::eagain;
    }
    if (!s->tcb.receive_buffer.empty()) return std::exchange(s->tcb.receive_buffer, Bytes{});
    if (s->tcb.peer_fin) return Bytes{};  // end of stream
    if (s->error) {
        const Errno error = *s->error;
        s->error.reset();
        return failed(ref.host, ref.id, "recv", error).error();
    }
    if (s->state == TcpState::closed || s->listening) return failed(ref.host, ref.id, "recv", Errno::enotconn).error();
    return Errno::eagain;
}

SysResult<Ok> Kernel::autobind_udp(HostId h, Socket& s, const IpAddress& destination, std::string_view call) {
    if (s.local) return Ok{};
    const IpAddress any = s.family == IpFamily::v4 ? IpAddress::any_v4() : IpAddress::any_v6();
    const IpAddress source = source_address_for(host_of(h), destination, s.family);
    const auto port = pick_ephemeral(h, s, PortPurpose::udp, source, std::nullopt);
    if (!port) return failed(h, s.id, call, Errno::eaddrnotavail);
    bind_to(h, s, Endpoint{any, *port}, trace::BindHow::ephemeral);  // sendto() leaves the address open
    return Ok{};
}

SysResult<std::size_t> Kernel::sendto(SocketRef ref, Bytes data, Endpoint remote) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "sendto", Errno::ebadf).error();
    if (s->protocol == Protocol::tcp) return send(ref, std::move(data));  // Linux ignores the address on TCP
    if (remote.address.family() != s->family) return failed(ref.host, ref.id, "sendto", Errno::eafnosupport).error();
    if (s->error) {
        const Errno error = *s->error;
        s->error.reset();
        return failed(ref.host, ref.id, "sendto", error).error();
    }
    if (const auto bound = autobind_udp(ref.host, *s, remote.address, "sendto"); !bound) return bound.error();
    s = user_socket(ref);
    const IpAddress source = s->local->address.is_unspecified()
                                 ? source_address_for(host_of(ref.host), remote.address, s->family)
                                 : s->local->address;
    const std::size_t size = data.size();
    if (auto wire = make_udp(ref.host, Endpoint{source, s->local->port}, remote, data, s->ttl))
        transmit(ref.host, std::move(*wire));
    return size;
}

SysResult<Datagram> Kernel::recvfrom(SocketRef ref) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "recvfrom", Errno::ebadf).error();
    if (s->protocol == Protocol::tcp) {
        auto data = recv(ref);
        if (!data) return data.error();
        return Datagram{s->remote.value_or(Endpoint{}), std::move(data.value())};
    }
    if (!s->inbox.empty()) {
        Datagram datagram = std::move(s->inbox.front());
        s->inbox.erase(s->inbox.begin());
        return datagram;
    }
    if (s->error) {
        const Errno error = *s->error;
        s->error.reset();
        return failed(ref.host, ref.id, "recvfrom", error).error();
    }
    return Errno::eagain;
}

std::optional<Errno> Kernel::take_error(SocketRef ref) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return Errno::ebadf;
    return std::exchange(s->error, std::nullopt);
}

SysResult<Ok> Kernel::close(SocketRef ref) {
    Socket* s = user_socket(ref);
    if (s == nullptr) return failed(ref.host, ref.id, "close", Errno::ebadf);
    const HostId h = ref.host;
    record(h, trace::Closed{s->id});
    s->open_by_user = false;
    if (s->protocol == Protocol::udp) {
        destroy_socket(h, s->id);
        return Ok{};
    }
    switch (s->state) {
        case TcpState::listen: {
            stop_listening(h, *s);
            set_state(h, *s, TcpState::closed, "close() called");
            // Connections nobody accepted are reset (Linux inet_csk_listen_stop).
            std::vector<trace::SocketId> children;
            for (const Socket& other : host_of(h).slots)
                if (other.listener == s->id) children.push_back(other.id);
            std::sort(children.begin(), children.end());
            const trace::SocketId listener_id = s->id;
            for (const trace::SocketId child_id : children) {
                Socket* child = find(h, child_id);
                send_segment(h, *child, child->tcb.snd_nxt, tcp_flag::rst | tcp_flag::ack);
                set_state(h, *child, TcpState::closed, "listener closed before accept()");
                destroy_socket(h, child_id);
            }
            destroy_socket(h, listener_id);
            break;
        }
        case TcpState::syn_sent:
        case TcpState::closed:
            set_state(h, *s, TcpState::closed, "close() called");
            destroy_socket(h, s->id);
            break;
        case TcpState::syn_received:
        case TcpState::established:
        case TcpState::close_wait:
            // Abort with RST instead of FIN (RFC 9293 3.10.5 ABORT) when data is left unread
            // (RFC 2525 2.17) or SO_LINGER is on with time 0: Linux tcp_close() ->
            // tcp_disconnect() -> tcp_send_active_reset().
            if (!s->tcb.receive_buffer.empty() || s->linger_zero) {
                send_segment(h, *s, s->tcb.snd_nxt, tcp_flag::rst | tcp_flag::ack);
                set_state(h, *s, TcpState::closed,
                          s->tcb.receive_buffer.empty() ? "close() with SO_LINGER 0: reset" : "close() with unread data: reset");
                destroy_socket(h, s->id);
                break;
            }
            // Else the orderly close: our FIN after the data.
            s->tcb.fin_queued = true;
            set_state(h, *s, s->state == TcpState::close_wait ? TcpState::last_ack : TcpState::fin_wait_1, "close() called");
            tcp_output(h, *s);
            break;
        default: break;  // already closing
    }
    return Ok{};
}

}  // namespace portlab::sim
