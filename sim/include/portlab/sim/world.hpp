#pragma once
// The simulator's whole state as plain data: hosts, their sockets and port tables,
// links, packets in flight (the event queue), the scanner's probes, the clock and the
// random generator. A viewer reads it; two states compare with ==. Sockets are named by (host, SocketId) handles, never pointers.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "portlab/boxed.hpp"
#include "portlab/net.hpp"
#include "portlab/packet.hpp"
#include "portlab/ports.hpp"
#include "portlab/scan.hpp"
#include "portlab/sim/ephemeral.hpp"
#include "portlab/sim/errno.hpp"
#include "portlab/sim/event_queue.hpp"
#include "portlab/sim/firewall.hpp"
#include "portlab/sim/flat_map.hpp"
#include "portlab/sim/random.hpp"
#include "portlab/sim/router.hpp"
#include "portlab/syn_schedule.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

// An index into World::hosts.
struct HostId {
    std::uint32_t value = 0;
    friend auto operator<=>(const HostId&, const HostId&) = default;
};

// A socket: its host and its trace id (unique on the host for the whole run).
struct SocketRef {
    HostId host;
    trace::SocketId id;
    friend auto operator<=>(const SocketRef&, const SocketRef&) = default;
};

// ---- packets --------------------------------------------------------------------

struct TcpBody {
    TcpHeader header;
    Bytes payload;
    friend bool operator==(const TcpBody&, const TcpBody&) = default;
};
struct UdpBody {
    UdpHeader header;
    Bytes payload;
    friend bool operator==(const UdpBody&, const UdpBody&) = default;
};
// The ICMP errors the model sends: destination unreachable (RFC 792 type 3, RFC 4443 type 1)
// and time exceeded (type 11, ICMPv6 type 3), sent by a router whose forwarding took a
// packet's TTL to 0 (RFC 1812 5.3.1).
enum class IcmpKind : std::uint8_t { unreachable, time_exceeded };

// An ICMP error, with the parts of the quoted packet the stack reads.
struct IcmpBody {
    IcmpKind kind = IcmpKind::unreachable;
    std::uint8_t code = 3;
    IpHeader quoted_ip;
    std::uint8_t quoted_protocol = 0;
    Port quoted_source_port = 0;
    Port quoted_destination_port = 0;
    friend bool operator==(const IcmpBody&, const IcmpBody&) = default;
};

// One packet: the fields the model acts on, and the same packet as real bytes
// (encoded by portlab/packet.hpp, checksums set) for the trace and the pcap.
struct Wire {
    IpHeader ip;
    std::variant<TcpBody, UdpBody, IcmpBody> body;
    trace::SharedBytes bytes;  // shared with the packet's sent and delivered events
    friend bool operator==(const Wire&, const Wire&) = default;
};

// ---- TCP ------------------------------------------------------------------------

// The transmission control block (RFC 9293 3.3.1 names). Sequence numbers wrap
// modulo 2^32; the model compares them with RFC 1982-style serial arithmetic.
struct Tcb {
    std::uint32_t iss = 0;      // initial send sequence number
    std::uint32_t snd_una = 0;  // oldest unacknowledged
    std::uint32_t snd_nxt = 0;  // next to send
    std::uint32_t irs = 0;      // initial receive sequence number
    std::uint32_t rcv_nxt = 0;  // next expected
    Bytes send_buffer;          // data from sequence `send_base` on: sent-unacked, then unsent
    std::uint32_t send_base = 0;
    bool fin_queued = false;    // close() asked for a FIN after the data
    bool fin_sent = false;
    Bytes receive_buffer;       // in-order data the application has not read
    bool peer_fin = false;      // the peer's FIN arrived (recv() returns end of stream after the data)
    Time rto = 1 * seconds;     // RFC 6298 2.1 initial RTO; Linux TCP_TIMEOUT_INIT
    std::uint32_t retries = 0;  // consecutive timeouts of the same data
    EventId retransmit_timer;   // 0 = not armed
    EventId time_wait_timer;
    Time syn_sent_at = 0;       // for the RTT sample that sets the RTO after the handshake
    friend bool operator==(const Tcb&, const Tcb&) = default;
};

struct Datagram {
    Endpoint from;
    Bytes payload;
    friend bool operator==(const Datagram&, const Datagram&) = default;
};

// A socket as the kernel sees it. After close() (`open_by_user` false) a TCP socket
// can live on (FIN-WAIT-*, TIME-WAIT) until it reaches CLOSED.
struct Socket {
    trace::SocketId id;
    Protocol protocol = Protocol::tcp;
    IpFamily family = IpFamily::v4;
    bool privileged = false;     // the owner has CAP_NET_BIND_SERVICE
    bool reuse_address = false;  // SO_REUSEADDR
    bool linger_zero = false;    // SO_LINGER {1, 0}: close() aborts with RST
    std::uint8_t ttl = 64;       // IP_TTL (UDP here): Linux's default, net.ipv4.ip_default_ttl
    bool v6only = false;         // IPV6_V6ONLY (AF_INET6 only): net.ipv6.bindv6only's default, 0
    bool open_by_user = true;
    std::optional<Endpoint> local;   // bound address and port
    std::optional<Endpoint> remote;  // connected peer
    bool port_auto_bound = false;    // the kernel chose the port (released again on failure)
    trace::BindHow bound_how = trace::BindHow::explicit_port;  // how `local` was bound, as the trace said
    bool bound_by_connect = false;   // TCP: connect() chose the port, so it may share it (another 4-tuple)
    TcpState state = TcpState::closed;
    bool listening = false;          // TCP LISTEN
    std::uint32_t backlog = 0;
    std::vector<trace::SocketId> accept_queue;  // ESTABLISHED children not yet accept()ed, oldest first
    std::optional<trace::SocketId> listener;   // a child's listener, until accept()
    Tcb tcb;
    std::vector<Datagram> inbox;                // UDP, boundaries kept, oldest first
    std::optional<Errno> error;                // SO_ERROR: reported by the next call
    std::optional<Bytes> auto_reply;           // UDP "service": answer each datagram with this
    friend bool operator==(const Socket&, const Socket&) = default;
};

// The sockets bound to one port (the kernel's bind bucket), in bind order, as
// ProtocolTable::bound_to returns them.
struct BoundSockets {
    trace::SocketId first{};                               // 0 = none
    const std::vector<trace::SocketId>* more = nullptr;   // the second and later, if any
    [[nodiscard]] std::size_t size() const noexcept {
        return first.value == 0 ? 0 : 1 + (more == nullptr ? 0 : more->size());
    }
    [[nodiscard]] trace::SocketId operator[](std::size_t i) const noexcept { return i == 0 ? first : (*more)[i - 1]; }
};

// Ports as they are: ephemeral ports are taken nearly in order, so their buckets
// sit side by side.
struct PortHash {
    [[nodiscard]] std::uint64_t operator()(Port port) const noexcept { return port; }
};

// Per host and protocol: the bind table (sockets grouped by port, as the kernel's
// bind buckets), which ports are free, the ephemeral counters, connected TCP
// sockets by 4-tuple (local, remote), and TCP listeners by bound address and port.
struct ProtocolTable {
    // Bind buckets: the first socket of each bound port here (nearly every port has
    // just one, and a small entry keeps the table compact), the rest (SO_REUSEADDR
    // sharers, a listener's accepted children) in bound_more.
    FlatMap<Port, trace::SocketId, PortHash> bound;
    FlatMap<Port, std::vector<trace::SocketId>, PortHash> bound_more;
    FreePorts free;
    EphemeralState ephemeral;
    IdIndex<FourTuple, FourTupleHash> connections;  // socket ids; each socket holds its own 4-tuple
    // TCP: the sockets in LISTEN by the address and port they are bound to, apart from
    // the bind buckets (which also hold accepted and TIME-WAIT sockets), as Linux keeps
    // listeners in their own hash (inet_hashinfo.lhash2), so a SYN's lookup costs the
    // same with 100,000 closed connections on the port as with none. Invariant: a socket
    // is here, under *local, exactly while `listening` is true; listen() refuses a second
    // listener whose address overlaps, so no two share a key.
    FlatMap<Endpoint, trace::SocketId, EndpointHash> listeners;
    friend bool operator==(const ProtocolTable&, const ProtocolTable&) = default;

    [[nodiscard]] BoundSockets bound_to(Port port) const {
        const trace::SocketId* first = bound.find(port);
        if (first == nullptr) return {};
        return BoundSockets{*first, bound_more.find(port)};
    }
    void bind_socket(Port port, trace::SocketId id) {
        if (!bound.try_emplace(port, id).second) bound_more[port].push_back(id);
    }
    // Takes id off the port; true when no socket is left on it.
    bool unbind_socket(Port port, trace::SocketId id) {
        trace::SocketId* first = bound.find(port);
        if (first == nullptr) return false;
        std::vector<trace::SocketId>* more = bound_more.find(port);
        if (*first == id) {
            if (more == nullptr) {
                bound.erase(port);
                return true;
            }
            *first = more->front();
            more->erase(more->begin());
        } else if (more != nullptr) {
            std::erase(*more, id);
        }
        if (more != nullptr && more->empty()) bound_more.erase(port);
        return false;
    }
};

struct HostOptions {
    std::string role;  // for the picture, as the trace's `host` event says it: "client", "server", "scanner", "router"
    EphemeralConfig ephemeral;
    Port unprivileged_port_start = 1024;  // net.ipv4.ip_unprivileged_port_start
    friend bool operator==(const HostOptions&, const HostOptions&) = default;
};

struct Host {
    std::string name;
    std::vector<IpAddress> addresses;  // besides loopback, which every host has
    HostOptions options;
    Firewall firewall;
    Routing routing;                           // routes, forwarding, conntrack, NAT (router.hpp)
    std::vector<Socket> slots;                 // sockets; slots of destroyed ones are reused
    std::vector<std::uint32_t> free_slots;
    FlatMap<std::uint32_t, std::uint32_t, IntegerHash> slot_of;  // SocketId value -> slot
    std::uint32_t next_socket_id = 1;          // ids only grow: never reused in a run
    std::array<ProtocolTable, 2> tables;       // [tcp, udp]
    std::uint16_t next_ip_id = 1;              // IPv4 identification counter
    friend bool operator==(const Host&, const Host&) = default;

    [[nodiscard]] ProtocolTable& table(Protocol p) { return tables[p == Protocol::tcp ? 0 : 1]; }
    [[nodiscard]] const ProtocolTable& table(Protocol p) const { return tables[p == Protocol::tcp ? 0 : 1]; }
    [[nodiscard]] Socket* find(trace::SocketId id) {
        const std::uint32_t* slot = slot_of.find(id.value);
        return slot == nullptr ? nullptr : &slots[*slot];
    }
    [[nodiscard]] const Socket* find(trace::SocketId id) const {
        const std::uint32_t* slot = slot_of.find(id.value);
        return slot == nullptr ? nullptr : &slots[*slot];
    }
    // Live sockets in id order, for listings.
    [[nodiscard]] std::vector<const Socket*> sockets() const;

    // The connected socket with this 4-tuple (local, remote), if any. Invariant: a
    // socket in `connections` has local and remote set, equal to the tuple it was
    // indexed under, until it is removed.
    [[nodiscard]] std::optional<trace::SocketId> find_connection(Protocol p, const FourTuple& tuple) const {
        const std::uint32_t id = table(p).connections.find(tuple, tuple_of_id());
        return id == 0 ? std::nullopt : std::optional(trace::SocketId{id});
    }
    // Indexes s under its 4-tuple; false (and nothing indexed) when the tuple is taken.
    bool add_connection(Protocol p, const FourTuple& tuple, trace::SocketId id) {
        return table(p).connections.insert(tuple, id.value, tuple_of_id());
    }

private:
    // Reads an indexed socket's 4-tuple back, for IdIndex to confirm a hash match.
    struct TupleOfId {
        const Host* host;
        FourTuple operator()(std::uint32_t id) const {
            const Socket* s = host->find(trace::SocketId{id});
            return FourTuple{*s->local, *s->remote};
        }
    };
    [[nodiscard]] TupleOfId tuple_of_id() const { return TupleOfId{this}; }
};

struct LinkConfig {
    Time delay = 1 * milliseconds;  // one way
    double loss = 0.0;              // probability each packet is lost, 0..1
    // Packets lost for certain: the n-th packet (from 1, both directions counted) to
    // cross the link. Lets a story show a loss whatever the seed.
    std::vector<std::uint64_t> lose_packets;
    friend bool operator==(const LinkConfig&, const LinkConfig&) = default;
};

// Timing constants, Linux's defaults (see docs/sim.md for each source).
struct TcpConfig {
    Time msl = 30 * seconds;                  // TIME-WAIT lasts 2*MSL = 60 s (Linux TCP_TIMEWAIT_LEN)
    Time initial_rto = tcp_timeout_init_us;   // RFC 6298 2.1; Linux TCP_TIMEOUT_INIT
    Time fallback_rto = 3 * seconds;          // RFC 6298 5.7: after a retransmitted SYN; Linux TCP_TIMEOUT_FALLBACK
    Time min_rto = 200 * milliseconds;        // Linux TCP_RTO_MIN
    Time max_rto = tcp_rto_max_us;            // Linux TCP_RTO_MAX
    // When a SYN is sent again and when connect() gives up: tcp_syn_retries and, since
    // Linux 6.5, tcp_syn_linear_timeouts. SynSchedule::before_linux_6_5() for older kernels.
    SynSchedule syn = SynSchedule::linux_default();
    std::uint32_t synack_retries = 5;         // net.ipv4.tcp_synack_retries
    std::uint32_t data_retries = 15;          // net.ipv4.tcp_retries2
    std::uint16_t mss = 1460;
    friend bool operator==(const TcpConfig&, const TcpConfig&) = default;
};

// ---- the scanner -----------------------------------------------------------------

// One probe of a scan; its result is the hub's classifier's (portlab/scan.hpp).
struct Probe {
    HostId scanner;
    scan::ScanType type = scan::ScanType::syn;
    Endpoint source;  // the scanner's address and (raw) source port
    Endpoint target;
    std::uint32_t tries = 0;
    std::optional<scan::Verdict> result;  // the port's state and nmap's reason, once known
    EventId timeout;
    std::optional<trace::SocketId> socket;  // connect scans use a real socket
    friend bool operator==(const Probe&, const Probe&) = default;
};

// ---- scheduled work ---------------------------------------------------------------

// A packet reaching a host after its link's delay.
struct Arrival {
    HostId from;
    HostId to;
    Boxed<Wire> packet;  // boxed (portlab/boxed.hpp): a timer in the queue should not cost a packet's space
    friend bool operator==(const Arrival&, const Arrival&) = default;
};
enum class TimerKind : std::uint8_t { retransmit, time_wait };
struct TcpTimer {
    HostId host;
    trace::SocketId socket;
    TimerKind kind = TimerKind::retransmit;
    friend bool operator==(const TcpTimer&, const TcpTimer&) = default;
};
struct ProbeTimeout {
    std::uint32_t probe = 0;
    friend bool operator==(const ProbeTimeout&, const ProbeTimeout&) = default;
};
// A caption put on the timeline at a chosen time (Simulator::schedule).
struct Mark {
    HostId host;
    std::string text;
    friend bool operator==(const Mark&, const Mark&) = default;
};
// A packet a router holds while it asks for the next hop's link-layer address (ARP, RFC
// 826; neighbour discovery, RFC 4861 7.2.2), due when nobody has answered: Linux sends
// mcast_solicit (3) requests retrans_time (1 s) apart, then the entry fails
// (neigh_timer_handler -> neigh_invalidate) and each queued packet brings its sender an
// ICMP host unreachable (arp_error_report) or ICMPv6 address unreachable.
struct NeighbourFailed {
    HostId router;
    IpAddress neighbour;           // the address nobody answers for
    Boxed<Wire> packet;
    Boxed<trace::Packet> arrived;  // the packet as the router received it, for the drop event
    friend bool operator==(const NeighbourFailed&, const NeighbourFailed&) = default;
};
inline constexpr Time neighbour_resolution_time = 3 * seconds;  // 3 requests x 1 s (neigh_max_probes)
using Action = std::variant<Arrival, TcpTimer, ProbeTimeout, Mark, NeighbourFailed>;

struct World {
    Time now = 0;
    Rng rng;
    std::uint64_t secret = 0;  // the kernel's hash secret (per boot); from the seed
    TcpConfig tcp;
    std::vector<Host> hosts;
    std::map<std::pair<std::uint32_t, std::uint32_t>, LinkConfig> links;  // (lower id, higher id)
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> packets_on_link;  // sent so far
    LinkConfig default_link;
    LinkConfig loopback{10 * microseconds, 0.0, {}};
    EventQueue<Action> queue;  // packets in flight and timers
    std::vector<Probe> probes;
    friend bool operator==(const World&, const World&) = default;

    [[nodiscard]] const Host* host(HostId id) const { return id.value < hosts.size() ? &hosts[id.value] : nullptr; }
    [[nodiscard]] const Socket* socket(SocketRef ref) const;
    [[nodiscard]] std::optional<HostId> find_host(std::string_view name) const;
    [[nodiscard]] const LinkConfig& link(HostId a, HostId b) const;
};

}  // namespace portlab::sim
