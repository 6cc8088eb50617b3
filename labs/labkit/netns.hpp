#pragma once
// Running part of a lab inside a private network namespace, or as an unprivileged user.
//
// Some rules depend on per-namespace kernel settings: the ephemeral range
// (net.ipv4.ip_local_port_range) and the privileged-port boundary
// (net.ipv4.ip_unprivileged_port_start) are both kept per network namespace. A lab that
// wants to narrow the range to five ports, or raise the boundary, does it in a namespace
// of its own, so the host's settings are never touched and no root is needed:
//
//   NetnsSettings settings;
//   settings.ephemeral_range = PortRange{40000, 40004};
//   auto facts = run_in_private_netns([] {
//       // fresh namespace: only `lo` (up), no other sockets, the range above
//       return nlohmann::json{{"ports", open_connections_until_eaddrnotavail()}};
//   }, settings);
//   if (!facts) say.note(facts.error().message);   // "private network namespaces are unavailable here: ..."
//
// How: fork(); the child calls unshare(CLONE_NEWUSER | CLONE_NEWNET), maps its uid and gid
// to 0 inside (writing "deny" to /proc/self/setgroups first, as user_namespaces(7) requires
// of an unprivileged process), brings `lo` up (SIOCSIFFLAGS), writes the settings under
// /proc/sys/net/ipv4/ (which shows the namespace of the process that opens it), runs the
// body and sends its JSON back through a pipe. The parent waits at most `limit`, then
// kills and reaps the child. The body runs in another process: it can return data only
// as JSON, and nothing it changes in memory is seen by the caller.
//
// unshare(CLONE_NEWUSER) fails in a multi-threaded process; the forked child has one
// thread, so this works from any process, but call it before the lab starts threads of
// its own anyway (after fork() in a threaded program only async-signal-safe calls are
// strictly safe, and the body does far more).
//
// EACCES demonstrations (a port below the boundary). The kernel checks the capability
// CAP_NET_BIND_SERVICE in the user namespace that owns the network namespace, not uid 0
// (net/ipv4/af_inet.c, inet_bind -> inet_port_requires_bind_service). Two ways:
//   - run_in_private_netns with settings.drop_capabilities = true (and, if you like,
//     unprivileged_port_start raised): the body runs as "root" of the namespace but with
//     every capability dropped, so bind() below the boundary answers EACCES. Works for
//     root and for ordinary users.
//   - run_as_nobody: a forked child on the host's network that, when the lab runs as root,
//     becomes uid/gid 65534 (setgroups(0), setresgid, setresuid; this also clears its
//     capabilities). When the lab is not root the body just runs as the current user.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"

namespace portlab {

struct NetnsSettings {
    // Written to /proc/sys/net/ipv4/ip_local_port_range inside; a new namespace starts
    // with the kernel default 32768-60999, not the host's value.
    std::optional<PortRange> ephemeral_range;
    // Written to /proc/sys/net/ipv4/ip_unprivileged_port_start inside (default 1024).
    std::optional<Port> unprivileged_port_start;
    // After set-up, drop every capability (bounding, inheritable, ambient, permitted,
    // effective) before running the body, so the kernel treats it as an ordinary user.
    bool drop_capabilities = false;
    // A second network namespace beside this one, joined to it by a veth pair, as two hosts
    // on one Ethernet link: here veth0 with 192.0.2.1/24, there veth1 with 192.0.2.2/24
    // (RFC 5737 TEST-NET-1). Unlike lo, that link is what a real network looks like to the
    // kernel: ICMP rate limits apply (icmpv4_xrlim_allow exempts only loopback), and
    // tcp_tw_reuse=2 does not reuse TIME-WAIT ports (it is for loopback only). The body
    // reaches the neighbour at neighbour_address and may make sockets there with
    // in_neighbour_netns(). The neighbour lives in a process of its own that dies with the
    // body's (PR_SET_PDEATHSIG), and both namespaces vanish with their last process.
    bool veth_neighbour = false;
};

// The addresses of the veth link that NetnsSettings::veth_neighbour makes.
inline const IpAddress veth_own_address = *IpAddress::parse("192.0.2.1");
inline const IpAddress neighbour_address = *IpAddress::parse("192.0.2.2");

// Brings `lo` up in this process's network namespace (a new one has it down).
[[nodiscard]] Result<void> bring_loopback_up();
// Runs iproute2's `ip` with these arguments in this process's network namespace and waits
// for it ("link add veth0 type veth peer name veth1 netns PID").
[[nodiscard]] Result<void> run_ip(std::vector<std::string> arguments);

// Runs `fn` with this thread in the network namespace `netns_fd` refers to (setns), then
// back in the one it was in, even when `fn` throws. Sockets made by `fn` stay there.
[[nodiscard]] Result<void> in_network_namespace(int netns_fd, const std::function<void()>& fn);

// Inside a body run with veth_neighbour: runs `fn` with this thread in the neighbour's
// network namespace (setns), then back in the body's own. Sockets made by `fn` stay in
// the neighbour's namespace: a listener there is a server on the other host.
[[nodiscard]] Result<void> in_neighbour_netns(const std::function<void()>& fn);

// The body's JSON, or an error value: "private network namespaces are unavailable here:
// <reason>" when the namespace cannot be made; "... took longer than N ms" when the limit
// killed the child; the body's exception message when it threw.
[[nodiscard]] Result<nlohmann::json> run_in_private_netns(const std::function<nlohmann::json()>& body,
                                                          const NetnsSettings& settings = {},
                                                          std::chrono::milliseconds limit = std::chrono::seconds(10));

// The body in a forked child on the host's network namespace, as uid/gid 65534 when the
// lab is root (otherwise as the current user). JSON back as above.
[[nodiscard]] Result<nlohmann::json> run_as_nobody(const std::function<nlohmann::json()>& body,
                                                   std::chrono::milliseconds limit = std::chrono::seconds(10));

// Whether private user + network namespaces can be made here (tries once in a child).
[[nodiscard]] Result<void> private_netns_available();

}  // namespace portlab
