// Lab 14: a router between client and server, real, in private network namespaces.
//
// Every earlier lab talks over one kernel's loopback. Here three hosts, each a network
// namespace of its own, are joined by veth links (labkit/network.hpp), with documentation
// addresses (RFC 5737):
//
//   client 192.0.2.1 --- 192.0.2.2 router 198.51.100.1 --- 198.51.100.2 server
//
// and the lab shows what the router does to a port's traffic, each answer read from the
// kernel (IP_RECVTTL, the socket's error queue with IP_RECVERR, IP_MTU):
//
//   1. the network and the client's routes
//   2. TTL: a datagram arrives with TTL 63, one less than Linux sends (RFC 1812 5.3.1)
//   3. TTL 1: the router answers "time exceeded" instead (RFC 792): how traceroute works
//   4. the router's own ICMP: "host unreachable" for an address nobody on its link has
//   5. the router answers for itself: "port unreachable" for a closed port of its own, and
//      "administratively prohibited" from a rule of its firewall that rejects telnet
//   6. a UDP scan through the router: the server rate-limits its "port unreachable"
//   7. MTU: a link of 1280 bytes; DF set: "fragmentation needed", the path MTU learned,
//      EMSGSIZE; DF clear: the datagram is cut into fragments and arrives whole
//
//   lab14_router
//   lab14_router --mtu 576 --probes 100 --json

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "labkit/icmp_errors.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/nftables.hpp"
#include "labkit/private_story.hpp"
#include "labkit/network.hpp"
#include "labkit/node_look.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/icmp.hpp"
#include "portlab/net.hpp"
#include "portlab/text.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using labkit::fact::Bound;
using labkit::fact::Closed;
using labkit::fact::Connecting;
using labkit::fact::Failed;

constexpr Port server_port = 9000;     // the server's UDP socket
constexpr Port first_closed_port = 20000;  // the scan's ports: nothing listens there
constexpr Port router_closed_port = 9999;  // nothing on the router has it
constexpr Port telnet_port = 23;           // the router's firewall rejects it

struct Settings {
    int mtu = 1280;
    int probes = 50;
    std::uint64_t outer_netns = 0;  // firewall::network_namespace_id() before the namespaces
};

// What the run shares: the lab's voice, the network, the hosts of the story.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Network& net;
    Settings settings;
    Host client, router, server;
    json& facts() { return see.document(); }
};

// ---- sockets and what the kernel says about them ------------------------------------------

[[noreturn]] void kernel_error(const std::string& call) {
    throw std::runtime_error(call + ": " + std::strerror(errno));
}

// A UDP socket with a port, on the node the caller's thread is in.
int udp_socket_on(Port port) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto any = socket_address({IpAddress::any_v4(), port});
    if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0) kernel_error("bind");
    return fd;
}

// The TTL a datagram arrived with (IP_RECVTTL hands it over with the datagram).
std::optional<int> receive_with_ttl(int fd, std::size_t& bytes, std::chrono::milliseconds wait) {
    pollfd readable{fd, POLLIN, 0};
    if (poll(&readable, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
    static char data[65536];
    char control[64];
    iovec io{data, sizeof data};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const auto got = recvmsg(fd, &message, 0);
    if (got < 0) return std::nullopt;
    bytes = static_cast<std::size_t>(got);
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
            int ttl = 0;
            std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
            return ttl;
        }
    return std::nullopt;
}

// A client socket connected to the server's port, reporting ICMP errors on its queue.
int client_socket(Run& run, const IpAddress& to, Port port, SocketRef& ref) {
    ref = run.see.open(run.client, Protocol::udp, IpFamily::v4);
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    report_icmp_errors(fd, IpFamily::v4);
    const auto address = socket_address({to, port});
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) kernel_error("connect");
    if (const auto local = local_endpoint(fd)) run.see.record(Bound{ref, *local, trace::BindHow::ephemeral}, quietly);
    run.see.record(Connecting{ref, {to, port}}, quietly);
    return fd;
}

void close_client(Run& run, int fd, const SocketRef& ref) {
    close(fd);
    run.see.record(Closed{ref}, quietly);
}

void record_error(Run& run, const SocketRef& ref, const IcmpError& icmp) {
    run.see.record(Failed{ref, "send", std::error_code(icmp.error, std::system_category())}, quietly);
}

// ---- the steps ------------------------------------------------------------------------------

void show_network(Run& run) {
    run.see.step("three hosts, three network namespaces, two veth links");
    tell_addresses(run.say, run.net, {"client", "router", "server"});
    const auto routes = run.net.run_in_node("client", {"ip", "-4", "route"});
    for (const auto& line : text::split_lines(routes ? *routes : routes.error().message)) run.say.kernel("client route: " + line);
    run.say.note("The client reaches 198.51.100.0/24 only through its default route: the router, 192.0.2.2.");
    run.say.see_it_yourself(run.net.see_inside("client", "ip route"));
}

// Step 2 and 3: the TTL, one hop at a time.
void ttl_goes_down(Run& run, int server_fd, const SocketRef& server_ref) {
    run.see.step("a datagram from client to server: the TTL it arrives with");
    const auto server_address = *run.net.address("server");
    SocketRef ref;
    const int fd = client_socket(run, server_address, server_port, ref);
    (void)!send(fd, "ttl", 3, 0);
    std::size_t bytes = 0;
    const auto ttl = receive_with_ttl(server_fd, bytes, 2s);
    run.say.kernel(ttl ? fmt::format("the server received {} bytes with TTL {} (IP_RECVTTL)", bytes, *ttl)
                       : std::string("the server received nothing"));
    run.say.note("Linux sends with TTL 64 (net.ipv4.ip_default_ttl); each router takes one off (RFC 1812 5.3.1).");
    run.facts()["ttl_at_server"] = ttl ? json(*ttl) : json(nullptr);
    (void)server_ref;

    run.see.step("the same with TTL 1 (setsockopt IP_TTL): the router may not forward it");
    const int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_TTL, &one, sizeof one);
    (void)!send(fd, "ttl", 3, 0);
    const auto icmp = next_icmp_error(fd, 2s);
    run.say.kernel(icmp ? describe(*icmp) : std::string("no ICMP error came back"));
    if (icmp) record_error(run, ref, *icmp);
    run.say.note("The router's own address speaks: traceroute sends TTL 1, 2, 3, ... and lists who answers.");
    run.say.see_it_yourself(run.net.see_inside("client", "traceroute -n -U 198.51.100.2   (or tracepath -n)"));
    run.facts()["ttl_1"] = icmp_json(icmp);
    close_client(run, fd, ref);
}

// Step 4: an address on the server's link that nobody has.
void host_unreachable(Run& run) {
    run.see.step("a datagram to 198.51.100.99, an address nobody on the server's link has");
    const auto nobody = *IpAddress::parse("198.51.100.99");
    SocketRef ref;
    const int fd = client_socket(run, nobody, server_port, ref);
    (void)!send(fd, "anyone?", 7, 0);
    const auto sent = std::chrono::steady_clock::now();
    const auto icmp = next_icmp_error(fd, 6s);  // the router's ARP gives up after ~3 s (3 probes, 1 s apart)
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
    run.say.kernel(icmp ? fmt::format("after {} ms: {}", waited.count(), describe(*icmp))
                        : std::string("no ICMP error came back within 6 s"));
    if (icmp) record_error(run, ref, *icmp);
    run.say.note("The router asked its link for 198.51.100.99 (ARP) three times, then gave up and told the client:");
    run.say.note("an ICMP error from the router itself, not from the server (RFC 1812 4.3.3.1).");
    run.say.see_it_yourself(run.net.see_inside("router", "ip neigh"));
    run.facts()["host_unreachable"] = icmp_json(icmp);
    if (icmp) run.facts()["host_unreachable"]["after_ms"] = waited.count();
    close_client(run, fd, ref);
}

// Puts one rule into the router's input chain, through libnftables in the router's own
// namespace (the token proves it is one this lab made).
void reject_telnet_on_router(Run& run) {
    const FirewallRule telnet_rule = reject_port(Protocol::tcp, telnet_port, RejectWith::icmp_admin_prohibited);
    Result<void> applied = fail("not run");
    const auto entered = run.net.in_node("router", [&] {
        auto token = run.net.firewall_token("router", run.settings.outer_netns);
        if (!token) {
            applied = fail(token.error().message);
            return;
        }
        auto nft = firewall::Nftables::open(*token);
        if (!nft) {
            applied = fail(nft.error().message);
            return;
        }
        applied = nft->apply({telnet_rule});
    });
    if (!entered) throw std::runtime_error(entered.error().message);
    if (!applied) throw std::runtime_error("nft in the router: " + applied.error().message);
    // The kernel took it: the trace says so, and the router gets its firewall in the picture.
    run.see.record(labkit::fact::RuleAdded{run.router.name, "r1", telnet_rule}, quietly);
    run.say.kernel("router: nft add rule inet portlab input tcp dport 23 reject with icmpx type admin-prohibited");
}

// A TCP connect() to the router's telnet port; the ICMP error that ends it, from the
// socket's error queue (tcp_v4_err queues it with IP_RECVERR, in SYN-SENT too).
std::optional<IcmpError> connect_to_telnet(Run& run, const IpAddress& router_address) {
    const auto ref = run.see.open(run.client, Protocol::tcp, IpFamily::v4);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) kernel_error("socket");
    report_icmp_errors(fd, IpFamily::v4);
    run.see.record(Connecting{ref, {router_address, telnet_port}}, quietly);
    const auto address = socket_address({router_address, telnet_port});
    (void)connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    // connect() took an ephemeral port before its SYN left (inet_hash_connect).
    if (const auto local = local_endpoint(fd)) run.see.record(Bound{ref, *local, trace::BindHow::ephemeral}, quietly);
    const auto icmp = next_icmp_error(fd, 3s);
    // The first ICMP comes back while connect() still holds the socket, so tcp_v4_err only
    // keeps it as a soft error and the socket stays in SYN-SENT. The SYN sent again 1 s later
    // meets the same rule; that answer is a hard error: tcp_done() closes the connection and
    // wakes poll(). Wait for it, as a blocking connect() would.
    pollfd done{fd, POLLOUT, 0};
    (void)poll(&done, 1, 3000);
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) run.see.record(Failed{ref, "connect", std::error_code(error, std::system_category())}, quietly);
    run.see.read_state(ref, fd);  // CLOSED, from TCP_INFO, once the kernel gave up
    close(fd);
    run.see.record(Closed{ref}, quietly);
    return icmp;
}

// Step 5: the router as an end host: its own closed port, its own firewall.
void routers_own_answers(Run& run) {
    run.see.step("the router answers for itself: a closed UDP port of its own, a firewall rule that rejects telnet");
    const auto router_address = *run.net.address("router", "client");
    SocketRef ref;
    const int fd = client_socket(run, router_address, router_closed_port, ref);
    (void)!send(fd, "anyone?", 7, 0);
    const auto closed = next_icmp_error(fd, 2s);
    run.say.kernel(closed ? describe(*closed) : std::string("no ICMP error came back"));
    if (closed) record_error(run, ref, *closed);
    close_client(run, fd, ref);
    run.say.note("Nothing on the router has UDP 9999: it answers as any host does (RFC 1122 3.2.2.1).");

    reject_telnet_on_router(run);
    const auto rejected = connect_to_telnet(run, router_address);
    run.say.kernel(rejected ? describe(*rejected) : std::string("no ICMP error came back"));
    run.say.note("Code 13, \"communication administratively prohibited\" (RFC 1812 5.2.7.1): a firewall said no, and");
    run.say.note("says so. connect() fails with EHOSTUNREACH (icmp_err_convert); a scanner calls the port filtered.");
    run.say.note("The first answer came while connect() held the socket: a soft error, still SYN-SENT. The SYN sent");
    run.say.note("again a second later got the answer that closed it (tcp_v4_err, tcp_done).");
    run.say.see_it_yourself(run.net.see_inside("router", "nft list ruleset"));
    run.facts()["router_port_unreachable"] = icmp_json(closed);
    run.facts()["admin_prohibited"] = icmp_json(rejected);
}

// Step 6: closed ports behind the router, each probed once.
void scan_through_the_router(Run& run) {
    run.see.step(fmt::format("a UDP scan of {} closed ports of the server, through the router", run.settings.probes));
    const auto server_address = *run.net.address("server");
    std::vector<int> sockets;
    for (int i = 0; i < run.settings.probes; ++i) {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        const auto to = socket_address({server_address, static_cast<Port>(first_closed_port + i)});
        connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
        (void)!send(fd, "", 0, 0);
        sockets.push_back(fd);
    }
    std::this_thread::sleep_for(500ms);
    int refused = 0;
    for (const int fd : sockets) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        refused += error == ECONNREFUSED;
        close(fd);
    }
    run.say.kernel(fmt::format("{} of {} closed ports answered \"port unreachable\" within 500 ms; {} stayed silent",
                               refused, run.settings.probes, run.settings.probes - refused));
    run.say.note("The server's kernel rate-limits ICMP to one destination (net.ipv4.icmp_ratelimit, 1000 ms, after a");
    run.say.note("small burst); loopback is exempt, so lab08's UDP scan is fast only there. A scanner sees the silent");
    run.say.note("ports as open|filtered, and nmap slows down to wait for the answers.");
    run.facts()["scan"] = {{"probes", run.settings.probes}, {"refused", refused}};
}

// Step 7: a narrow link on the server's side.
void path_mtu(Run& run, int server_fd) {
    run.see.step(fmt::format("the router-server link now carries at most {} bytes (ip link set mtu {})", run.settings.mtu,
                             run.settings.mtu));
    const auto mtu = std::to_string(run.settings.mtu);
    Result<void> narrowed;
    auto entered = run.net.in_node("router", [&] { narrowed = run_ip({"link", "set", "router-server", "mtu", mtu}); });
    if (entered && narrowed)
        entered = run.net.in_node("server", [&] { narrowed = run_ip({"link", "set", "server-router", "mtu", mtu}); });
    if (!entered || !narrowed) throw std::runtime_error("setting the MTU failed");
    const auto server_address = *run.net.address("server");

    // Don't fragment: the client learns the path MTU from the router.
    SocketRef ref;
    const int fd = client_socket(run, server_address, server_port, ref);
    const int probe = IP_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
    const std::string big(1400, 'x');
    const auto first = send(fd, big.data(), big.size(), 0);
    const auto icmp = next_icmp_error(fd, 2s);
    int learned = 0;
    socklen_t length = sizeof learned;
    getsockopt(fd, IPPROTO_IP, IP_MTU, &learned, &length);
    const auto second = send(fd, big.data(), big.size(), 0);
    const int second_errno = second < 0 ? errno : 0;
    run.say.kernel(fmt::format("DF set, 1400 bytes: send() {}; then {}", first >= 0 ? "accepted them (the client's link is 1500)" : std::strerror(errno),
                               icmp ? describe(*icmp) : std::string("no ICMP error")));
    run.say.kernel(fmt::format("getsockopt(IP_MTU) = {}: the path MTU the kernel learned; the next 1400-byte send(): {}",
                               learned, second_errno != 0 ? std::string(std::strerror(second_errno)) : std::string("accepted")));
    if (second_errno != 0) run.see.record(Failed{ref, "send", std::error_code(second_errno, std::system_category())}, quietly);
    close_client(run, fd, ref);

    // Fragmenting allowed: one big datagram arrives whole.
    SocketRef ref2;
    const int fd2 = client_socket(run, server_address, server_port, ref2);
    const int dont = IP_PMTUDISC_DONT;
    setsockopt(fd2, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof dont);
    const std::string huge(3000, 'y');
    (void)!send(fd2, huge.data(), huge.size(), 0);
    std::size_t bytes = 0;
    while (receive_with_ttl(server_fd, bytes, 100ms)) {  // what earlier steps left in the queue
        if (bytes == huge.size()) break;
    }
    if (bytes != huge.size()) receive_with_ttl(server_fd, bytes, 2s);
    run.say.kernel(fmt::format("DF clear, 3000 bytes: the server received one datagram of {} bytes", bytes));
    run.say.note("IP cut it into fragments to fit each link (RFC 791); the server's kernel put them together again.");
    run.say.note("Lose one fragment and the whole datagram is lost: why DNS and QUIC keep datagrams small.");
    run.say.see_it_yourself(run.net.see_inside("server", "nstat -az IpReasmOKs IpReasmReqds"));
    run.facts()["path_mtu"] = {{"link_mtu", run.settings.mtu}, {"icmp", icmp_json(icmp)}, {"learned", learned},
                               {"second_send_errno", second_errno}, {"fragmented_datagram_bytes", bytes}};
    close_client(run, fd2, ref2);
}

// The whole story, inside the private namespaces. Returns the --json document.
json tell_the_story(Lab& lab, Settings settings) {
    auto net = Network::build(client_router_server());
    if (!net) throw std::runtime_error(net.error().message);
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, *net, settings, {}, {}, {}};
    run.client = see.declare({"client", {*net->address("client")}, "client"});
    run.router = see.declare({"router", {*net->address("router", "client"), *net->address("router", "server")}, "router", false, net->entering("router")});
    run.server = see.declare({"server", {*net->address("server")}, "server", false, net->entering("server")});
    see.document()["lab"] = lab.name();

    show_network(run);
    int server_fd = -1;
    const auto server_ref = see.open(run.server, Protocol::udp, IpFamily::v4);
    auto made = net->in_node("server", [&] {
        server_fd = udp_socket_on(server_port);
        const int on = 1;
        setsockopt(server_fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
    });
    if (!made) throw std::runtime_error(made.error().message);
    see.record(Bound{server_ref, {IpAddress::any_v4(), server_port}, trace::BindHow::explicit_port}, quietly);
    ttl_goes_down(run, server_fd, server_ref);
    host_unreachable(run);
    routers_own_answers(run);
    scan_through_the_router(run);
    path_mtu(run, server_fd);
    close(server_fd);
    see.record(Closed{server_ref}, quietly);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab14_router", "Lab 14: a router between client and server: TTL, its own ICMP, MTU"},
                   [](Lab& lab) {
        Settings settings;
        lab.cli().add_option("--mtu", settings.mtu, "the router-server link's MTU in step 7 (576-1500)")
            ->check(CLI::Range(576, 1500))->default_str("1280");
        lab.cli().add_option("--probes", settings.probes, "closed ports the scan of step 6 probes (1-500)")
            ->check(CLI::Range(1, 500))->default_str("50");
        lab.cli().footer("Runs in private network namespaces (client, router, server) of its own; needs no root.");
        lab.parse();
        const auto outer = firewall::network_namespace_id();
        if (!outer) return lab.failure(outer.error().message);
        settings.outer_netns = *outer;
        lab.narrate().title("Lab 14: a router between two hosts");
        return tell_in_private_netns(lab, 45s, [&] { return tell_the_story(lab, settings); });
    });
}
