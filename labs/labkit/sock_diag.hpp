#pragma once
// Who holds which port: the kernel's own socket tables, read the way ss(8) reads them.
//
// ss does not scan ports and does not guess: it sends a SOCK_DIAG_BY_FAMILY request
// over a NETLINK_SOCK_DIAG socket (linux/sock_diag.h, linux/inet_diag.h) and the kernel
// dumps one inet_diag_msg per socket from its TCP or UDP hash tables. A socket's owner
// is not in that message; only its inode is. Like ss -p and lsof, we find the owner by
// reading every /proc/PID/fd/N link and matching "socket:[INODE]". A process we may not
// read (another user's, without root) is skipped, as ss does.
//
//   auto sockets = portlab::diag::list_sockets({.listening_only = true});
//   for (const auto& s : *sockets) fmt::print("{} {}\n", s.state_name(), s.local.to_string());

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"
#include "portlab/tcp_state.hpp"

namespace portlab::diag {

// One process holding a socket open. Several processes can hold the same socket
// (after fork(), or SCM_RIGHTS), so a socket has a list of these.
struct ProcessRef {
    int pid = 0;
    std::string name;        // /proc/PID/comm, at most 15 characters (TASK_COMM_LEN - 1)
    std::optional<int> fd;   // the descriptor number in that process, when known

    friend bool operator==(const ProcessRef&, const ProcessRef&) = default;
};

// One socket as the kernel reported it in an inet_diag_msg.
struct SocketInfo {
    Protocol protocol = Protocol::tcp;
    IpFamily family = IpFamily::v4;
    Endpoint local;   // idiag_src:idiag_sport
    Endpoint remote;  // idiag_dst:idiag_dport; 0.0.0.0:0 / [::]:0 when not connected
    // idiag_state in the kernel's TCP_* numbering (include/net/tcp_states.h):
    // 1 ESTABLISHED ... 7 CLOSE ... 10 LISTEN, 11 CLOSING. UDP sockets use the same
    // numbers: TCP_CLOSE (7) when unconnected, TCP_ESTABLISHED (1) after connect().
    std::uint8_t kernel_state = 0;
    std::uint32_t inode = 0;  // 0 for TIME-WAIT mini-sockets: no file, no owner
    std::uint32_t uid = 0;
    // inet_diag_msg's idiag_rqueue/idiag_wqueue, which ss prints as Recv-Q/Send-Q: for a
    // listener the accept queue length and its backlog limit; otherwise bytes queued.
    std::uint32_t recv_q = 0;
    std::uint32_t send_q = 0;
    std::vector<ProcessRef> owners;  // empty when unknown (not asked, or unreadable /proc)
    // IPV6_V6ONLY of an IPv6 socket in LISTEN or CLOSE (the kernel's INET_DIAG_SKV6ONLY,
    // inet_diag_msg_attrs_fill): false means a [::] socket takes IPv4 too (dual stack).
    std::optional<bool> v6only;

    // The RFC 793 state for a TCP socket; nullopt for UDP, and for kernel-internal
    // numbers (TCP_NEW_SYN_RECV) that have no RFC name.
    [[nodiscard]] std::optional<TcpState> tcp_state() const;
    // As ss spells it: "LISTEN", "ESTAB", "TIME-WAIT", "SYN-SENT", "CLOSE-WAIT", ...;
    // for UDP "UNCONN" (TCP_CLOSE, not connected) or "ESTAB" (connected).
    [[nodiscard]] std::string state_name() const;
    // "listening" in ss -l's sense: TCP in LISTEN, UDP unconnected (UNCONN).
    [[nodiscard]] bool is_listening() const noexcept;
    [[nodiscard]] FourTuple four_tuple() const { return {local, remote}; }
    // The peer column as ss prints it: "127.0.0.1:40002", or "0.0.0.0:*" / "[::]:*" when
    // there is no peer (a listener, an unconnected UDP socket).
    [[nodiscard]] std::string peer_text() const;
};

struct Query {
    bool tcp = true, udp = true;
    bool ipv4 = true, ipv6 = true;
    // Only listeners: TCP in LISTEN, UDP unconnected (like ss -l). Otherwise every
    // state, TIME-WAIT and SYN-RECV included (like ss -a).
    bool listening_only = false;
    // Only sockets whose LOCAL port is this, like ss 'sport = :P'.
    std::optional<Port> port;
    // Fill SocketInfo::owners from /proc (costs a walk over every process's fds).
    bool with_processes = true;
};

// Asks the kernel over NETLINK_SOCK_DIAG, one dump per (protocol, family). Sorted by
// protocol, family, local endpoint, remote endpoint, for stable output.
[[nodiscard]] Result<std::vector<SocketInfo>> list_sockets(const Query& query);

// Every socket inode some readable /proc/PID/fd/N points to, with its holders.
[[nodiscard]] Result<std::unordered_map<std::uint32_t, std::vector<ProcessRef>>> map_socket_inodes_to_processes();

// --- Pieces exposed for tests ----------------------------------------------------------

// Parses one netlink message payload that should be an inet_diag_msg (plus attributes)
// into a SocketInfo without owners. A payload shorter than inet_diag_msg, or an
// idiag_family other than AF_INET/AF_INET6, is an error.
[[nodiscard]] Result<SocketInfo> parse_inet_diag_msg(std::span<const std::uint8_t> payload, Protocol protocol);

// The inode in a /proc/PID/fd link target "socket:[12345]"; nullopt for anything else
// ("pipe:[7]", "/dev/null", "socket:[]", "socket:[99999999999]").
[[nodiscard]] std::optional<std::uint32_t> socket_inode_from_link(std::string_view link_target);

}  // namespace portlab::diag
