#pragma once
// The simulated kernels of every host, acting on a World. This is the model's
// engine; programs use it through Simulator (simulator.hpp). Every function here is
// deterministic in (World, arguments): no clocks, no globals, no printing.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/sim/errno.hpp"
#include "portlab/sim/world.hpp"
#include "portlab/event_log.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

// Where trace events go.
struct Recorder {
    trace::EventLog events;
    // Each host's name as packet events carry it (from_host, to_host): one string per
    // host shared by all of them, not one per packet.
    std::vector<trace::OptText> host_names;
};

// An endpoint as the socket API names it to an AF_INET6 socket: an IPv4 address becomes
// IPv4-mapped, ::ffff:a.b.c.d (RFC 4291 2.5.5.2). Linux keeps such a connection's
// addresses in both forms (inet_daddr for the wire, sk_v6_daddr set by
// ipv6_addr_set_v4mapped in tcp_v6_syn_recv_sock) and accept()/getpeername() give the latter.
[[nodiscard]] Endpoint named_for(const Socket& socket, const Endpoint& endpoint);

class Kernel {
public:
    World world;
    Recorder* recorder = nullptr;  // null: record nothing (SimOptions::record_trace false)

    // ---- set-up ----
    HostId add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options);
    void set_link(HostId a, HostId b, LinkConfig config);
    void set_default_link(LinkConfig config) { world.default_link = config; }
    // Appends a rule to the host's input chain; returns its id ("r1"), which a packet it
    // drops names (rule_id).
    Result<std::string> add_rule(HostId host, FirewallRule rule);
    // Takes the rule with this id out of the host's chain; false when there is none.
    bool remove_rule(HostId host, std::string_view id);
    void set_policy(HostId host, FirewallAction policy);
    void set_tcp_config(TcpConfig config) { world.tcp = config; }
    // Routers and routes (router.hpp).
    void add_route(HostId host, Route route);
    void set_forwarding(HostId host, bool on);
    void set_masquerade(HostId router, IpAddress outside);
    void add_port_forward(HostId router, PortForward forward);
    void set_stateful_firewall(HostId router, StatefulFirewall firewall);

    // ---- time ----
    EventId schedule(Time delay, Action action) { return world.queue.schedule_at(world.now + delay, std::move(action)); }
    void cancel(EventId id) { world.queue.cancel(id); }
    // Runs the next event; false when there is none.
    bool step();
    void advance_to(Time t) {
        if (t > world.now) world.now = t;
    }

    // ---- the socket API (non-blocking: a call that would wait answers EAGAIN) ----
    SysResult<SocketRef> socket(HostId host, Protocol protocol, IpFamily family);
    SysResult<Ok> set_reuse_address(SocketRef s, bool on);
    SysResult<Ok> set_privileged(SocketRef s, bool on);
    SysResult<Ok> set_linger_zero(SocketRef s, bool on);
    SysResult<Ok> set_auto_reply(SocketRef s, Bytes reply);
    SysResult<Ok> set_ttl(SocketRef s, std::uint8_t ttl);
    SysResult<Ok> set_v6only(SocketRef s, bool on);
    SysResult<Ok> bind(SocketRef s, Endpoint local);
    SysResult<Ok> listen(SocketRef s, std::uint32_t backlog);
    // Starts the handshake (TCP) or sets the default peer (UDP); a TCP connect's
    // outcome shows later as ESTABLISHED or as the socket's error.
    SysResult<Ok> connect(SocketRef s, Endpoint remote);
    SysResult<SocketRef> accept(SocketRef listener);
    SysResult<std::size_t> send(SocketRef s, Bytes data);
    // TCP: every byte received so far; empty = end of stream (the peer's FIN).
    SysResult<Bytes> recv(SocketRef s);
    SysResult<std::size_t> sendto(SocketRef s, Bytes data, Endpoint remote);
    SysResult<Datagram> recvfrom(SocketRef s);
    SysResult<Ok> close(SocketRef s);
    // getsockopt(SO_ERROR): the pending error, cleared by reading it.
    std::optional<Errno> take_error(SocketRef s);
    void note(HostId host, std::string text);

    // ---- the scanner ----
    void start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports);

private:
    // lookups
    Host& host_of(HostId id) { return world.hosts[id.value]; }
    Socket* user_socket(SocketRef s);
    Socket* find(HostId h, trace::SocketId id) { return host_of(h).find(id); }
    std::optional<HostId> route(HostId from, const IpAddress& destination) const;
    // The neighbour a packet for `destination` goes to: through the host's routes when it
    // has any (the gateway, or the destination itself on-link), else straight to the owner.
    std::optional<HostId> next_hop(HostId from, const IpAddress& destination) const;
    bool is_local_address(const Host& host, const IpAddress& address) const;
    IpAddress source_address_for(const Host& host, const IpAddress& destination, IpFamily family) const;
    std::optional<trace::SocketId> find_listener(HostId h, const Endpoint& local);
    std::optional<trace::SocketId> find_udp_socket(HostId h, const Endpoint& local, const Endpoint& remote);

    // recording: an event body is only turned into an Event when events are kept
    // Built in place at the end of the log: no event is moved after it is made.
    template <class Body>
    void record(HostId h, Body&& body) {
        if (recorder != nullptr) recorder->events.emplace_back(world.now, host_of(h).name, std::forward<Body>(body));
    }
    // The host's name for a packet event, shared (Recorder::host_names); only when recording.
    const trace::OptText& recorded_host_name(HostId h);
    // Records the failed call (with the address it named, when it named one) and returns its errno.
    SysResult<Ok> failed(HostId h, std::optional<trace::SocketId> s, std::string_view call, Errno error,
                         std::optional<Endpoint> named = std::nullopt);
    // Whether events are being kept: building an event's text costs allocations the
    // bare model (benchmarks, silent replay) should not pay.
    [[nodiscard]] bool recording() const noexcept { return recorder != nullptr; }
    void set_state(HostId h, Socket& s, TcpState to, std::string_view cause);

    // sockets and ports
    Socket& create_socket(HostId h, Protocol protocol, IpFamily family);
    void destroy_socket(HostId h, trace::SocketId id);
    bool bind_conflict(const Host& host, const Socket& s, const Endpoint& local) const;
    void attach_port(HostId h, Socket& s, const Endpoint& local);
    // attach_port for a user's socket, told in the trace (`bound`).
    void bind_to(HostId h, Socket& s, const Endpoint& local, trace::BindHow how, std::optional<std::string> note = std::nullopt);
    void detach_port(HostId h, Socket& s);
    // LISTEN entered and left: the socket enters and leaves the listening table.
    void start_listening(HostId h, Socket& s, std::uint32_t backlog);
    void stop_listening(HostId h, Socket& s);
    void add_connection(HostId h, const Socket& s);
    void remove_connection(HostId h, const Socket& s);
    std::optional<Port> pick_ephemeral(HostId h, Socket& s, PortPurpose purpose, const IpAddress& local,
                                       std::optional<Endpoint> remote);
    std::optional<Port> share_ephemeral(HostId h, Socket& s, Endpoint local, const Endpoint& remote);
    SysResult<Ok> autobind_udp(HostId h, Socket& s, const IpAddress& destination, std::string_view call);

    // packets
    std::optional<Wire> make_tcp(HostId h, const Endpoint& from, const Endpoint& to, const TcpHeader& header,
                                 const Bytes& payload);
    std::optional<Wire> make_udp(HostId h, const Endpoint& from, const Endpoint& to, const Bytes& payload,
                                 std::uint8_t ttl = 64);
    std::optional<Wire> make_icmp_unreachable(HostId h, const Wire& offending, std::uint8_t code);
    std::optional<Wire> make_icmp_time_exceeded(HostId h, const Wire& offending);
    std::optional<Wire> make_icmp(HostId h, const Wire& offending, IcmpKind kind, std::uint8_t code);
    IpHeader ip_header(HostId h, const IpAddress& from, const IpAddress& to);
    void transmit(HostId from, Wire packet);
    void on_arrival(Arrival& arrival);
    // the router (kernel_router.cpp): true when the packet was forwarded or dropped, false
    // when it is for this host (after any translation back)
    bool router_input(HostId h, HostId from, Wire& packet);
    bool translate_related(HostId h, Wire& packet, IcmpBody& icmp);
    void forward(HostId h, HostId from, Wire& packet, const trace::Packet& arrived, const Routing::Match& match,
                 std::optional<Endpoint> dnat_to);
    void router_drop(HostId h, trace::Packet event, trace::DropCause cause, std::string why);
    void send_icmp_error(HostId h, const Wire& offending, IcmpKind kind, std::uint8_t code);
    [[nodiscard]] IpAddress incoming_interface(HostId h, HostId from) const;
    [[nodiscard]] bool reencode(HostId h, Wire& packet);
    bool reject(HostId h, const Wire& packet, RejectWith with);
    bool listen_queue_full(HostId h, const Wire& packet, std::string& why);

    // TCP (RFC 9293 3.10 "Event Processing")
    void tcp_input(HostId h, const Wire& packet);
    void listen_input(HostId h, trace::SocketId listener, const Wire& packet);
    void syn_sent_input(HostId h, trace::SocketId id, const Wire& packet);
    void synchronized_input(HostId h, trace::SocketId id, const Wire& packet);
    bool process_ack(HostId h, Socket& s, std::uint32_t ack);
    void send_segment(HostId h, Socket& s, std::uint32_t seq, std::uint8_t flags, const Bytes& payload = {});
    void send_reset_for(HostId h, const Wire& offending);
    void tcp_output(HostId h, Socket& s);
    void arm_retransmit(HostId h, Socket& s);
    void disarm_retransmit(HostId h, Socket& s);
    void disarm_time_wait(HostId h, Socket& s);
    // RFC 6528's initial sequence number for a connection on `tuple` (seen from its own end).
    [[nodiscard]] std::uint32_t initial_sequence(const FourTuple& tuple) const;
    // Whether a SYN that meets a TIME-WAIT socket starts a new connection on its 4-tuple.
    [[nodiscard]] static bool syn_reopens_time_wait(const Socket& s, const Wire& packet);
    [[nodiscard]] Time retransmit_timeout(const Socket& s) const;
    void on_tcp_timer(const TcpTimer& timer);
    void on_retransmit(HostId h, Socket& s);
    void enter_time_wait(HostId h, Socket& s, std::string cause);
    void connection_closed(HostId h, Socket& s, std::string cause, std::optional<Errno> error, std::string_view call);
    void sample_rtt(Socket& s);
    bool fin_acked(const Socket& s) const;

    // UDP and ICMP
    void udp_input(HostId h, const Wire& packet);
    void icmp_input(HostId h, const Wire& packet);

    // the scanner
    void send_probe(std::uint32_t index);
    void observe_for_scanner(HostId h, const Wire& packet);
    void on_probe_timeout(std::uint32_t index);
    void on_neighbour_failed(NeighbourFailed& failed);
    void settle_connect_probes(HostId h);
    void finish_connect_probe(std::uint32_t index);
    void conclude(std::uint32_t index, scan::Verdict verdict);
};

}  // namespace portlab::sim
