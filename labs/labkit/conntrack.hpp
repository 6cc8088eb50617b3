#pragma once
// The kernel's connection-tracking table, read through netlink: what `conntrack -L` shows.
//
// Netfilter follows every connection that crosses a namespace with stateful rules or NAT
// (nf_conntrack). Each entry holds two tuples: the ORIGINAL one, as the first packet came
// (client -> server), and the REPLY one, the tuple an answer must carry to belong to the
// connection. Without NAT the reply tuple is the original turned around. With masquerade
// the router rewrites the source, so the reply tuple names the router's address (and maybe
// another port): that difference IS the translation (nf_nat_setup_info, nf_nat_core.c,
// alters the reply tuple and sets IPS_SRC_NAT).
//
//   Result<std::vector<conntrack::Entry>> table;
//   net.in_node("router", [&] { table = conntrack::dump(); });   // the thread's namespace
//   for (const auto& entry : *table) entry.original.to_string(), entry.reply.to_string();
//
// How: libnetfilter_conntrack's nfct_query(NFCT_Q_DUMP) on a NETLINK_NETFILTER socket
// opened by the calling thread, so in the namespace that thread is in. Reading needs
// CAP_NET_ADMIN in the user namespace owning that network namespace (ctnetlink checks
// it per request): root of the lab's own user namespace has it, nobody else's table is read.

#include <cstdint>
#include <string>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab::conntrack {

// One direction of a connection, as conntrack prints it: src= dst= sport= dport=. For a
// protocol without ports (ICMP) both ports are 0.
struct Tuple {
    Endpoint source;
    Endpoint destination;
    // "192.0.2.1:50000 -> 198.51.100.2:8080"
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Tuple&, const Tuple&) = default;
};

struct Entry {
    std::uint32_t id = 0;  // the kernel's id for the entry (conntrack -o id prints it)
    IpFamily family = IpFamily::v4;
    std::uint8_t protocol_number = 0;  // 6 TCP, 17 UDP, 1 ICMP (IANA protocol numbers)
    std::string protocol;              // "tcp", "udp", "icmp", ...; the number otherwise
    // conntrack's own TCP state, as conntrack -L prints it ("SYN_SENT", "ESTABLISHED",
    // "TIME_WAIT"): the firewall's view of the connection, not a socket's state. "" for
    // other protocols.
    std::string tcp_state;
    Tuple original;  // as the first packet came
    Tuple reply;     // what an answer must look like when it arrives
    bool source_nat = false;       // IPS_SRC_NAT: the original direction's source is rewritten
    bool destination_nat = false;  // IPS_DST_NAT: its destination is rewritten (DNAT, port forwarding)
    bool seen_reply = false;       // IPS_SEEN_REPLY; conntrack prints [UNREPLIED] without it
    bool assured = false;          // IPS_ASSURED: [ASSURED], not dropped first when the table is full
    std::uint32_t timeout_s = 0;   // seconds left before the entry expires
};

// The connection-tracking table of the calling thread's network namespace, IPv4 and IPv6.
// Errors, one line each: "cannot open a conntrack netlink socket: ...", "conntrack dump: ...".
[[nodiscard]] Result<std::vector<Entry>> dump();

// What conntrack counted in the calling thread's network namespace (conntrack -S), summed
// over CPUs: from /proc/thread-self/net/stat/nf_conntrack, which shows the namespace of
// the thread that opens it.
struct Statistics {
    std::uint64_t found = 0;
    std::uint64_t invalid = 0;
    std::uint64_t insert = 0;
    // A new connection whose tuples clash with an entry already in the table when it is
    // confirmed (__nf_conntrack_confirm, nf_conntrack_core.c): its packet is dropped.
    std::uint64_t insert_failed = 0;
    std::uint64_t drop = 0;
    std::uint64_t early_drop = 0;
};
[[nodiscard]] Result<Statistics> statistics();

}  // namespace portlab::conntrack
