#pragma once
// The simulator: a World of hosts driven by virtual time, with the socket API of
// each host and a trace of every step.
//
//   Simulator sim{seed};
//   const HostId client = sim.add_host("client", {IpAddress::v4(10, 0, 0, 1)});
//   const HostId server = sim.add_host("server", {IpAddress::v4(10, 0, 0, 2)});
//   auto listener = sim.socket(server, Protocol::tcp).value();
//   sim.bind(listener, {IpAddress::any_v4(), 8080}); sim.listen(listener, 16);
//   auto conn = sim.socket(client, Protocol::tcp).value();
//   sim.connect(conn, {IpAddress::v4(10, 0, 0, 2), 8080});
//   sim.run_for(10 * milliseconds);               // the handshake happens here
//   sim.accept(listener);                         // a new socket, same server port
//
// The simulator only goes forwards. An earlier state is rebuilt from the trace
// (events()) by the replay model, as the visualizer does for a simulation and a
// lab alike: one way back in time. Nothing here reads a clock or prints.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/sim/kernel.hpp"
#include "portlab/sim/world.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

struct SimOptions {
    std::uint64_t seed = 1;
    bool record_trace = true;  // false: no events kept (benchmarks of the bare model)
};

class Simulator {
public:
    explicit Simulator(std::uint64_t seed = 1) : Simulator(SimOptions{seed}) {}
    explicit Simulator(SimOptions options);

    // ---- topology ----
    HostId add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options = {});
    void set_link(HostId a, HostId b, LinkConfig config);
    void set_default_link(LinkConfig config);
    // Returns the rule's id ("r1"), as the packets it drops name it; an error for a rule nft
    // would refuse or one the input chain does not model (sim::input_chain_models: iifname,
    // ct state, tcp flags, the forward chain), never a rule with a field ignored.
    Result<std::string> add_firewall_rule(HostId host, FirewallRule rule);
    // Takes a rule out (nft delete rule); false when the host has no rule with that id.
    bool remove_firewall_rule(HostId host, std::string_view rule_id);
    void set_firewall_policy(HostId host, FirewallAction policy);
    void set_tcp_config(TcpConfig config);

    // ---- routers (router.hpp) ----
    // A host that forwards between its interfaces (net.ipv4.ip_forward = 1), with an on-link
    // route for each: `ip addr add 192.0.2.2/24 dev ...` on each of its links.
    HostId add_router(std::string name, std::vector<Interface> interfaces, HostOptions options = {});
    // Puts a host's addresses on networks of `prefix_length` (on-link routes) and sends the
    // rest to `gateway`, if given: `ip route add default via GATEWAY`. Without this a host
    // reaches every address in one hop, as in the simulator's first scenarios.
    // With `family`, only the host's addresses of that family (a dual-stack host has a /24 and
    // a /64); without, all of them.
    void set_network(HostId host, std::uint8_t prefix_length, std::optional<IpAddress> gateway,
                     std::optional<IpFamily> family = std::nullopt);
    void add_route(HostId host, Route route);
    // `oifname OUT masquerade`: connections leaving the router from `outside` leave with it.
    void add_nat(HostId router, IpAddress outside);
    // `[iifname IF] PROTOCOL dport PORT dnat to TO` in the router's prerouting chain; IF is
    // named by the router's address on it.
    void add_port_forward(HostId router, Protocol protocol, Port port, Endpoint to,
                          std::optional<IpAddress> arriving_on = std::nullopt);
    // Lab 18's forward chain: established,related accept; new from inside accept; new from
    // the interface with address `outside` dropped (or rejected with admin-prohibited).
    void set_stateful_firewall(HostId router, IpAddress outside, FirewallAction new_from_outside = FirewallAction::drop);

    // ---- virtual time (ns-3's Schedule / Cancel / Run) ----
    [[nodiscard]] Time now() const noexcept { return kernel_.world.now; }
    // A Mark (a caption at a time) or any other Action; same-time events run FIFO.
    EventId schedule(Time delay, Action action);
    void cancel(EventId id);
    // When the next queued event is due; nullopt when nothing is queued.
    [[nodiscard]] std::optional<Time> next_event_time() { return kernel_.world.queue.next_time(); }
    // Runs one queued event; false when the queue is empty.
    bool step();
    // Runs every event due at or before t, then sets the clock to t.
    void run_until(Time t);
    void run_for(Time duration) { run_until(now() + duration); }
    // Runs until nothing is queued (at most max_events); returns how many ran.
    std::size_t run_until_idle(std::size_t max_events = 10'000'000);

    // ---- the socket API of each host ----
    SysResult<SocketRef> socket(HostId host, Protocol protocol, IpFamily family = IpFamily::v4);
    SysResult<Ok> set_reuse_address(SocketRef s, bool on = true);
    // Whether the owning process has CAP_NET_BIND_SERVICE (root): ports below 1024.
    SysResult<Ok> set_privileged(SocketRef s, bool on = true);
    // SO_LINGER {on, 0}: close() then resets a connection (RST) instead of closing it (FIN).
    SysResult<Ok> set_linger_zero(SocketRef s, bool on = true);
    // A UDP "service" that answers each datagram with `reply` (the scan's open UDP port).
    SysResult<Ok> set_auto_reply(SocketRef s, Bytes reply);
    // setsockopt(IP_TTL) on a UDP socket (traceroute's trick): 1-255.
    SysResult<Ok> set_ttl(SocketRef s, std::uint8_t ttl);
    // setsockopt(IPV6_V6ONLY) on an AF_INET6 socket, before bind(): on, its wildcard [::]
    // takes IPv6 alone and leaves IPv4's port to others.
    SysResult<Ok> set_v6only(SocketRef s, bool on = true);
    SysResult<Ok> bind(SocketRef s, Endpoint local);
    SysResult<Ok> listen(SocketRef s, std::uint32_t backlog);
    SysResult<Ok> connect(SocketRef s, Endpoint remote);
    SysResult<SocketRef> accept(SocketRef listener);
    SysResult<std::size_t> send(SocketRef s, Bytes data);
    SysResult<Bytes> recv(SocketRef s);
    SysResult<std::size_t> sendto(SocketRef s, Bytes data, Endpoint remote);
    SysResult<Datagram> recvfrom(SocketRef s);
    SysResult<Ok> close(SocketRef s);
    // getsockopt(SO_ERROR): the pending error, cleared by reading it (sock_error()).
    std::optional<Errno> take_error(SocketRef s);
    // getpeername() and getsockname(): an AF_INET6 socket names an IPv4 endpoint IPv4-mapped,
    // ::ffff:192.0.2.1 (RFC 4291 2.5.5.2), as Linux's inet6_getname does for a connection an
    // IPv4 client made to a dual-stack listener. nullopt: no such socket, or not connected/bound.
    [[nodiscard]] std::optional<Endpoint> peer_name(SocketRef s) const;
    [[nodiscard]] std::optional<Endpoint> local_name(SocketRef s) const;
    void note(HostId host, std::string text);

    // ---- the scanner (nmap -sT / -sS / -sA / -sU) ----
    void start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports);

    // ---- reading ----
    [[nodiscard]] const World& world() const noexcept { return kernel_.world; }
    [[nodiscard]] const Socket* find_socket(SocketRef s) const { return kernel_.world.socket(s); }
    [[nodiscard]] const trace::EventLog& events() const noexcept { return recorder_.events; }
    // Forgets the events recorded so far (long benchmarks).
    void clear_events() { recorder_.events.clear(); }

private:
    // The kernel, writing to this simulator's recorder: pointed again on every call,
    // so a copied or moved Simulator never writes into another's trace.
    Kernel& kernel() noexcept {
        kernel_.recorder = options_.record_trace ? &recorder_ : nullptr;
        return kernel_;
    }

    SimOptions options_;
    Kernel kernel_;
    Recorder recorder_;
};

}  // namespace portlab::sim
