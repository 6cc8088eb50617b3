#include "labkit/network.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <utility>

#include "labkit/netns.hpp"
#include "labkit/posix.hpp"

namespace portlab::labkit {
namespace {

// One documentation range per link (RFC 5737).
constexpr std::array<const char*, 3> link_subnets{"192.0.2.", "198.51.100.", "203.0.113."};

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A node: a child that unshares a network namespace of its own, brings its lo up, says
// 'y' (or 'n') through `ready`, then waits for `hold` to close (the body ended) to exit.
pid_t start_node(int ready, int hold, int hold_write_end) {
    const pid_t child = fork();
    if (child != 0) return child;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    close(hold_write_end);  // else it would wait on itself
    char byte = unshare(CLONE_NEWNET) == 0 && bring_loopback_up() ? 'y' : 'n';
    (void)!write(ready, &byte, 1);
    while (read(hold, &byte, 1) > 0) {
    }
    _exit(0);
}

// /proc/sys/net shows the namespace of the thread that opens it.
Result<void> write_sysctl(const std::string& path, const std::string& value) {
    std::ofstream file(path);
    file << value;
    file.close();
    if (!file) return fail("cannot write " + path);
    return {};
}

}  // namespace

NetworkSpec client_router_server() {
    return {{"client", "router", "server"}, {"router"}, {{"client", "router"}, {"router", "server"}}};
}

Network::Network(Network&& other) noexcept
    : order_(std::move(other.order_)), nodes_(std::move(other.nodes_)), ends_(std::move(other.ends_)),
      hold_(std::exchange(other.hold_, -1)) {}

Network::~Network() {
    for (auto& [name, node] : nodes_)
        if (node.netns_fd >= 0) close(node.netns_fd);
    if (hold_ >= 0) close(hold_);  // the nodes' processes see end of file and exit
    for (auto& [name, node] : nodes_)
        if (node.pid > 0 && node.pid != getpid()) waitpid(node.pid, nullptr, 0);
}

Result<Network> Network::build(const NetworkSpec& spec) {
    if (spec.nodes.empty()) return fail("a network needs at least one node");
    if (spec.links.size() > link_subnets.size()) return fail("at most three links (one documentation range each)");
    Network net;
    net.order_ = spec.nodes;
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) != 0) return fail(errno_text("pipe"));
    net.hold_ = hold[1];
    // The first node is this process's own namespace.
    net.nodes_[spec.nodes.front()] = {getpid(), open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
    for (std::size_t i = 1; i < spec.nodes.size(); ++i) {
        int ready[2];
        if (pipe2(ready, O_CLOEXEC) != 0) return fail(errno_text("pipe"));
        const pid_t pid = start_node(ready[1], hold[0], hold[1]);
        close(ready[1]);
        char byte = 'n';
        const bool up = pid > 0 && read(ready[0], &byte, 1) == 1 && byte == 'y';
        close(ready[0]);
        if (!up) return fail("node " + spec.nodes[i] + ": its network namespace could not be made");
        const auto path = "/proc/" + std::to_string(pid) + "/ns/net";
        net.nodes_[spec.nodes[i]] = {pid, open(path.c_str(), O_RDONLY | O_CLOEXEC)};
        if (net.nodes_[spec.nodes[i]].netns_fd < 0) return fail(errno_text("open " + path));
    }
    close(hold[0]);
    // Links: both ends made here, then each moved into its node and addressed there.
    for (std::size_t i = 0; i < spec.links.size(); ++i) {
        const auto& link = spec.links[i];
        if (!net.nodes_.count(link.a) || !net.nodes_.count(link.b)) return fail("a link names an unknown node");
        const End a{link.a, link.b, link.a + "-" + link.b, *IpAddress::parse(std::string(link_subnets[i]) + "1")};
        const End b{link.b, link.a, link.b + "-" + link.a, *IpAddress::parse(std::string(link_subnets[i]) + "2")};
        if (a.interface.size() > 15 || b.interface.size() > 15) return fail("node names too long for an interface name");
        if (auto made = run_ip({"link", "add", a.interface, "type", "veth", "peer", "name", b.interface}); !made)
            return made.error();
        for (const End* end : {&a, &b}) {
            const auto& node = net.nodes_[end->node];
            if (node.pid != getpid())
                if (auto moved = run_ip({"link", "set", end->interface, "netns", std::to_string(node.pid)}); !moved)
                    return moved.error();
            Result<void> configured;
            auto entered = net.in_node(end->node, [&] {
                configured = run_ip({"addr", "add", end->address.to_string() + "/24", "dev", end->interface});
                if (configured) configured = run_ip({"link", "set", end->interface, "up"});
            });
            if (!entered) return entered.error();
            if (!configured) return configured.error();
            net.ends_.push_back(*end);
        }
    }
    // Routers forward; every other node sends what it has no link for to its first neighbour.
    for (const auto& name : spec.nodes) {
        const bool router = std::find(spec.routers.begin(), spec.routers.end(), name) != spec.routers.end();
        Result<void> routed;
        auto entered = net.in_node(name, [&] {
            if (router) {
                routed = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
                return;
            }
            const auto first = std::find_if(net.ends_.begin(), net.ends_.end(), [&](const End& e) { return e.node == name; });
            if (first == net.ends_.end()) return;
            const auto gateway = net.address(first->neighbour, name);
            routed = gateway ? run_ip({"route", "add", "default", "via", gateway->to_string()}) : Result<void>(gateway.error());
        });
        if (!entered) return entered.error();
        if (!routed) return fail("node " + name + ": " + routed.error().message);
    }
    return net;
}

std::function<void(const std::function<void()>&)> Network::entering(std::string node) const {
    // The callable holds its own descriptor of the namespace (F_DUPFD_CLOEXEC), not a pointer to
    // this Network: the Observer may keep it past a move of the Network, or past a story that
    // throws before end_story() drops it. An unknown node's callable runs nothing.
    const auto found = nodes_.find(node);
    const auto netns = std::make_shared<const Fd>(
        found == nodes_.end() ? -1 : fcntl(found->second.netns_fd, F_DUPFD_CLOEXEC, 0));
    return [netns](const std::function<void()>& fn) {
        if (netns->ok()) (void)in_network_namespace(netns->get(), fn);
    };
}

Result<void> Network::in_node(const std::string& node, const std::function<void()>& fn) const {
    const auto found = nodes_.find(node);
    if (found == nodes_.end()) return fail("no node named " + node);
    if (auto entered = in_network_namespace(found->second.netns_fd, fn); !entered)
        return fail(node + ": " + entered.error().message);
    return {};
}

Result<IpAddress> Network::address(const std::string& node, const std::string& neighbour) const {
    for (const auto& end : ends_)
        if (end.node == node && (neighbour.empty() || end.neighbour == neighbour)) return end.address;
    return fail("node " + node + " has no link" + (neighbour.empty() ? std::string() : " toward " + neighbour));
}

Result<std::string> Network::interface(const std::string& node, const std::string& neighbour) const {
    for (const auto& end : ends_)
        if (end.node == node && end.neighbour == neighbour) return end.interface;
    return fail("node " + node + " has no link toward " + neighbour);
}

Result<firewall::PrivateNetnsToken> Network::firewall_token(const std::string& node,
                                                            std::uint64_t outer_netns_id) const {
    std::vector<std::string> lab_interfaces;
    for (const auto& end : ends_)
        if (end.node == node) lab_interfaces.push_back(end.interface);
    Result<firewall::PrivateNetnsToken> token = fail("no node named " + node);
    if (auto entered = in_node(node, [&] { token = firewall::PrivateNetnsToken::confirm(outer_netns_id, lab_interfaces); });
        !entered)
        return entered.error();
    return token;
}

Result<pid_t> Network::pid_of(const std::string& node) const {
    const auto found = nodes_.find(node);
    if (found == nodes_.end()) return fail("no node named " + node);
    return found->second.pid;
}

std::string Network::see_inside(const std::string& node, const std::string& command) const {
    const auto pid = pid_of(node);
    return "nsenter --target " + (pid ? std::to_string(*pid) : std::string("PID")) +
           " --user --net --preserve-credentials " + command;
}

Result<std::string> Network::run_in_node(const std::string& node, const std::vector<std::string>& argv, int limit_ms) const {
    if (argv.empty()) return fail("no program to run");
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return fail(errno_text("pipe"));
    pid_t child = -1;
    auto entered = in_node(node, [&] {
        child = fork();
        if (child != 0) return;
        dup2(out[1], STDOUT_FILENO);
        std::vector<char*> args;
        std::vector<std::string> copy = argv;
        for (auto& arg : copy) args.push_back(arg.data());
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    });
    close(out[1]);
    if (!entered || child < 0) {
        close(out[0]);
        return entered ? fail(errno_text("fork")) : Result<std::string>(entered.error());
    }
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd readable{out[0], POLLIN, 0};
        if (left.count() <= 0 || poll(&readable, 1, static_cast<int>(left.count())) <= 0) break;
        char buffer[4096];
        const auto got = read(out[0], buffer, sizeof buffer);
        if (got <= 0) break;
        if (text.size() < 65536) text.append(buffer, static_cast<std::size_t>(got));
    }
    close(out[0]);
    kill(child, SIGKILL);  // no effect when it has exited already
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return fail(argv[0] + " not found");
    return text;
}

}  // namespace portlab::labkit
