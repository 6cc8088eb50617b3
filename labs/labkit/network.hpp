#pragma once
// A small network of hosts, each a private network namespace, joined by veth pairs: what
// lies between two hosts (a router, later NAT and firewalls) made real without root.
//
//   NetworkSpec spec = client_router_server();   // client - router - server
//   auto facts = run_in_private_netns([&] {
//       auto net = Network::build(spec);         // inside the body: it owns the user namespace
//       if (!net) throw std::runtime_error(net.error().message);
//       int listener = -1;
//       net->in_node("server", [&] { listener = listen_on_any(80); });
//       ... connect from here (the body is the first node, "client") to net->address("server") ...
//       return nlohmann::json{...};
//   });
//
// How: the body runs inside a user + network namespace of its own (netns.hpp); that first
// namespace is the spec's first node. Every other node is a small process that unshares a
// network namespace (it is root of the same user namespace, so it may) and then only waits.
// Links are veth pairs made with iproute2 (`ip link add A type veth peer name B netns PID`),
// addressed from the documentation ranges (RFC 5737: 192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, one per link, .1 for the link's first end, .2 for its second). A router
// forwards (net.ipv4.ip_forward = 1 in its namespace); every other node routes everything
// it has no link for through its first link's far end.
//
// Nothing is left behind: a node's process dies with the body (PR_SET_PDEATHSIG), the body
// dies with the lab, and a namespace vanishes with its last process. The host's own
// network and firewall are never touched.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "labkit/nftables.hpp"
#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab::labkit {

struct LinkSpec {
    std::string a, b;  // node names; `a` gets .1 of the link's subnet, `b` gets .2
};

struct NetworkSpec {
    std::vector<std::string> nodes;    // the first is the body's own namespace
    std::vector<std::string> routers;  // nodes that forward IPv4 between their links
    std::vector<LinkSpec> links;       // at most three (one documentation range each)
};

// client - router - server: the client's link 192.0.2.0/24, the server's 198.51.100.0/24.
[[nodiscard]] NetworkSpec client_router_server();

class Network {
public:
    // Builds the network; call it inside a run_in_private_netns body, before any thread.
    [[nodiscard]] static Result<Network> build(const NetworkSpec& spec);

    Network(Network&&) noexcept;
    Network& operator=(Network&&) = delete;
    Network(const Network&) = delete;
    Network& operator=(const Network&) = delete;
    ~Network();

    // Runs `fn` with this thread in `node`'s network namespace, then back in the body's own.
    // Sockets and captures made by `fn` stay in that namespace.
    [[nodiscard]] Result<void> in_node(const std::string& node, const std::function<void()>& fn) const;
    // in_node as a callable, for the lab kit's Host::look_inside: the Observer then reads the
    // node's sockets back inside its namespace. It holds its own descriptor of the namespace,
    // so it stays valid wherever it is kept (a story that throws, a moved Network).
    [[nodiscard]] std::function<void(const std::function<void()>&)> entering(std::string node) const;
    // `node`'s address on the link toward `neighbour` (or its first link's, when empty).
    [[nodiscard]] Result<IpAddress> address(const std::string& node, const std::string& neighbour = {}) const;
    // The interface name of `node` on the link toward `neighbour` ("client-router").
    [[nodiscard]] Result<std::string> interface(const std::string& node, const std::string& neighbour) const;
    // The process whose namespace `node` is (the body's own pid for the first node).
    [[nodiscard]] Result<pid_t> pid_of(const std::string& node) const;
    // A command a student can type in another terminal to look inside `node` while the lab
    // pauses, without sudo: nsenter into the lab's user namespace keeps their own uid.
    [[nodiscard]] std::string see_inside(const std::string& node, const std::string& command) const;
    // Runs argv (a program and its arguments) inside `node` and returns what it printed on
    // stdout (bounded: `limit` ms, 64 KiB).
    [[nodiscard]] Result<std::string> run_in_node(const std::string& node, const std::vector<std::string>& argv,
                                                  int limit_ms = 5000) const;

    // Proof for nftables.hpp that `node` is one of this network's private namespaces, so a
    // lab may put a firewall or NAT there (its veth ends are the lab's own). Open the
    // Nftables with it inside in_node(node, ...): every call checks it runs there.
    // `outer_netns_id` is firewall::network_namespace_id() read before run_in_private_netns.
    [[nodiscard]] Result<firewall::PrivateNetnsToken> firewall_token(const std::string& node,
                                                                     std::uint64_t outer_netns_id) const;

private:
    Network() = default;
    struct Node {
        pid_t pid = -1;
        int netns_fd = -1;
    };
    struct End {
        std::string node, neighbour, interface;
        IpAddress address;
    };
    std::vector<std::string> order_;
    std::map<std::string, Node> nodes_;
    std::vector<End> ends_;
    int hold_ = -1;  // the write end of the pipe the nodes' processes wait on
};

}  // namespace portlab::labkit
