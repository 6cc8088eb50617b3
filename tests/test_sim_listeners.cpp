// Which listener a SYN reaches. The model keeps listeners in a table of their own,
// keyed by bound address and port (Linux's listening hash), and looks up the exact
// address, then the wildcard of the packet's family, then the IPv6 wildcard. Checked
// against this machine's kernel on loopback, and through closing and rebinding.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "test_sim_script.hpp"

using namespace portlab;
using namespace portlab::sim;
using portlab::sim::test::outcome;
using portlab::sim::test::Script;

namespace {

// ---- the real kernel ---------------------------------------------------------------------

struct RealSocket {
    int fd = -1;
    explicit RealSocket(int family) : fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
    ~RealSocket() {
        if (fd >= 0) ::close(fd);
    }
    RealSocket(const RealSocket&) = delete;
    RealSocket& operator=(const RealSocket&) = delete;
};

struct RealAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

RealAddress real_address(const IpAddress& ip, Port port) {
    RealAddress out;
    if (ip.is_v4()) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        std::memcpy(&in->sin_addr, ip.bytes().data(), 4);
        out.length = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        std::memcpy(&in6->sin6_addr, ip.bytes().data(), 16);
        out.length = sizeof(sockaddr_in6);
    }
    return out;
}

int family_of(const IpAddress& ip) { return ip.is_v4() ? AF_INET : AF_INET6; }

Port real_port(const RealSocket& s) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&bound), &length);
    return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

// Whether this machine's loopback has ::1 (containers may run without IPv6).
bool ipv6_loopback_available() {
    RealSocket s(AF_INET6);
    if (s.fd < 0) return false;
    const RealAddress loopback = real_address(IpAddress::loopback_v6(), 0);
    return ::bind(s.fd, reinterpret_cast<const sockaddr*>(&loopback.storage), loopback.length) == 0;
}

// What a listener-choice question's answer looks like, from the kernel or the model.
std::string chosen(int index) { return index < 0 ? "refused" : "listener " + std::to_string(index); }

// Listeners on one port of this machine's loopback, then a connect() to `destination`:
// which listener's accept queue the connection landed in, or "refused". IPv6 sockets say
// IPV6_V6ONLY 0 themselves, so the answer does not hang on net.ipv6.bindv6only.
// Returns the port the listeners used beside the answer.
std::pair<Port, std::string> kernel_choice(const std::vector<IpAddress>& listeners, const IpAddress& destination) {
    std::vector<std::unique_ptr<RealSocket>> sockets;
    Port port = 0;
    // The first listener takes a port the kernel picks; another test running at the same time
    // may hold that port on another address, so a later EADDRINUSE starts again on a new port.
    for (int attempt = 0; attempt < 20 && sockets.size() < listeners.size(); ++attempt) {
        sockets.clear();
        port = 0;
        for (const IpAddress& address : listeners) {
            auto& s = *sockets.emplace_back(std::make_unique<RealSocket>(family_of(address)));
            REQUIRE(s.fd >= 0);
            const int off = 0;
            if (address.is_v6()) ::setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
            const RealAddress bound = real_address(address, port);
            if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&bound.storage), bound.length) != 0) {
                INFO("real bind " << address.to_string() << " port " << port << ": " << std::strerror(errno));
                REQUIRE(errno == EADDRINUSE);
                REQUIRE(port != 0);
                sockets.clear();
                break;
            }
            REQUIRE(::listen(s.fd, 4) == 0);
            if (port == 0) port = real_port(s);
        }
    }
    REQUIRE(sockets.size() == listeners.size());
    RealSocket client(family_of(destination));
    const RealAddress to = real_address(destination, port);
    // On loopback the handshake is over when connect() returns: a refusal is ECONNREFUSED.
    if (::connect(client.fd, reinterpret_cast<const sockaddr*>(&to.storage), to.length) != 0) return {port, chosen(-1)};
    std::vector<pollfd> waiting;
    for (const auto& s : sockets) waiting.push_back(pollfd{s->fd, POLLIN, 0});
    REQUIRE(::poll(waiting.data(), waiting.size(), 2000) == 1);
    for (std::size_t i = 0; i < waiting.size(); ++i)
        if (waiting[i].revents & POLLIN) return {port, chosen(static_cast<int>(i))};
    return {port, chosen(-1)};
}

// ---- the model -----------------------------------------------------------------------------

// The model's listening table holds exactly the sockets in LISTEN, each under its bound
// address and port.
void check_listening_table(const Simulator& sim, HostId h) {
    const Host& host = *sim.world().host(h);
    std::set<std::pair<std::string, std::uint32_t>> listening;
    for (const Socket* s : host.sockets())
        if (s->protocol == Protocol::tcp && s->listening) listening.insert({s->local->to_string(), s->id.value});
    std::set<std::pair<std::string, std::uint32_t>> table;
    host.table(Protocol::tcp).listeners.for_each(
        [&](const Endpoint& local, trace::SocketId id) { table.insert({local.to_string(), id.value}); });
    CHECK(table == listening);
}

// The index of the listener whose accept queue holds a connection, or -1.
int model_landed(const Simulator& sim, const std::vector<SocketRef>& listeners) {
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        const Socket* s = sim.find_socket(listeners[i]);
        if (s != nullptr && !s->accept_queue.empty()) return static_cast<int>(i);
    }
    return -1;
}

// One connect from `client` to `destination`, run until its SYN is answered.
std::string model_connect(Script& s, HostId client, const Endpoint& destination, const std::vector<SocketRef>& listeners) {
    const IpFamily family = destination.address.family();
    const SocketRef c = s.step("client: socket + connect " + destination.to_string()).socket(client, Protocol::tcp, family).value();
    s.expect("connect() starts", outcome(s.sim.connect(c, destination)), "ok");
    s.step("run 50 ms").run_for(50 * milliseconds);
    const Socket* after = s.sim.find_socket(c);
    REQUIRE(after != nullptr);
    if (after->state != TcpState::established) return chosen(-1);
    return chosen(model_landed(s.sim, listeners));
}

}  // namespace

TEST_CASE("a SYN reaches the listener this machine's kernel picks: exact address, then its family's wildcard, then ::",
          "[sim][listen][kernel]") {
    struct Case {
        const char* what;
        std::vector<const char*> listeners;
        const char* destination;
    };
    const auto c = GENERATE(values<Case>({
        {"two specific addresses, SYN to the second", {"127.0.0.1", "127.0.0.2"}, "127.0.0.2"},
        {"two specific addresses, SYN to the first", {"127.0.0.1", "127.0.0.2"}, "127.0.0.1"},
        {"a specific address, SYN to another", {"127.0.0.1"}, "127.0.0.2"},
        {"IPv4 wildcard beside [::1], SYN to 127.0.0.1", {"0.0.0.0", "::1"}, "127.0.0.1"},
        {"IPv4 wildcard beside [::1], SYN to ::1", {"0.0.0.0", "::1"}, "::1"},
        {"[::1] beside 127.0.0.1, SYN to ::1", {"127.0.0.1", "::1"}, "::1"},
        {"IPv4 wildcard alone, SYN to ::1", {"0.0.0.0"}, "::1"},
        {"IPv6 wildcard alone takes IPv4 (IPV6_V6ONLY 0)", {"::"}, "127.0.0.1"},
        {"IPv6 wildcard alone, SYN to ::1", {"::"}, "::1"},
        {"[::1] alone, SYN to 127.0.0.1", {"::1"}, "127.0.0.1"},
    }));
    CAPTURE(c.what);
    std::vector<IpAddress> addresses;
    for (const char* text : c.listeners) addresses.push_back(IpAddress::parse(text).value());
    const IpAddress destination = IpAddress::parse(c.destination).value();
    const bool needs_v6 = destination.is_v6() ||
                          std::any_of(addresses.begin(), addresses.end(), [](const IpAddress& a) { return a.is_v6(); });
    if (needs_v6 && !ipv6_loopback_available()) {
        WARN("no ::1 on this machine's loopback: the kernel cannot be asked, case skipped");
        return;
    }
    const auto [port, kernel] = kernel_choice(addresses, destination);

    Script s;
    const HostId host = s.step("add host (loopback only)").add_host("host", {});
    std::vector<SocketRef> listeners;
    for (const IpAddress& address : addresses) {
        const SocketRef l = s.step("socket(TCP)").socket(host, Protocol::tcp, address.family()).value();
        const Endpoint local{address, port};
        s.expect("bind " + local.to_string(), outcome(s.step("bind " + local.to_string()).bind(l, local)), "ok");
        s.expect("listen", outcome(s.step("listen").listen(l, 4)), "ok");
        listeners.push_back(l);
    }
    check_listening_table(s.sim, host);
    const std::string model = model_connect(s, host, Endpoint{destination, port}, listeners);
    s.expect(std::string("where the SYN to ") + c.destination + " landed (the kernel says " + kernel + ")", model, kernel);
}

TEST_CASE("closing and rebinding listeners keeps the listening table right, TIME-WAIT sockets on the port or not",
          "[sim][listen]") {
    Script s;
    const IpAddress server_address = IpAddress::v4(10, 0, 0, 2);
    const HostId client = s.step("add host client 10.0.0.1").add_host("client", {IpAddress::v4(10, 0, 0, 1)});
    const HostId server = s.step("add host server 10.0.0.2").add_host("server", {server_address});
    const Endpoint target{server_address, 8080};
    const auto listen_on = [&](const Endpoint& local, bool reuse) {
        const SocketRef l = s.step("server: socket").socket(server, Protocol::tcp, local.address.family()).value();
        (void)s.sim.set_reuse_address(l, reuse);
        s.expect("bind " + local.to_string(), outcome(s.step("server: bind " + local.to_string()).bind(l, local)), "ok");
        s.expect("listen on " + local.to_string(), outcome(s.step("server: listen").listen(l, 16)), "ok");
        check_listening_table(s.sim, server);
        return l;
    };

    // A specific address first.
    const SocketRef specific = listen_on(target, true);
    s.expect("SYN to 10.0.0.2:8080 with 10.0.0.2:8080 listening", model_connect(s, client, target, {specific}), chosen(0));

    // Closed: nobody listens, however the table was left.
    s.expect("close the listener", outcome(s.step("server: close listener").close(specific)), "ok");
    check_listening_table(s.sim, server);
    s.expect("SYN to 10.0.0.2:8080 after the listener closed", model_connect(s, client, target, {}), chosen(-1));

    // The wildcard, now that the specific listener is gone, takes 10.0.0.2.
    const SocketRef wildcard = listen_on(Endpoint{IpAddress::any_v4(), 8080}, true);
    s.expect("SYN to 10.0.0.2:8080 with 0.0.0.0:8080 listening", model_connect(s, client, target, {wildcard}), chosen(0));

    // Refused calls leave the table alone: a bind overlapping the listener, and a listen()
    // on a port another SO_REUSEADDR socket already listens on (both bound: allowed).
    const SocketRef dual = s.step("server: socket (IPv6)").socket(server, Protocol::tcp, IpFamily::v6).value();
    (void)s.sim.set_reuse_address(dual);
    s.expect("bind [::]:8080 while 0.0.0.0:8080 listens",
             outcome(s.step("server: bind [::]:8080").bind(dual, Endpoint{IpAddress::any_v6(), 8080})), "EADDRINUSE");
    const Endpoint other_port{IpAddress::any_v4(), 8081};
    SocketRef pair[2];
    for (SocketRef& p : pair) {
        p = s.step("server: socket").socket(server, Protocol::tcp).value();
        (void)s.sim.set_reuse_address(p);
        s.expect("bind 0.0.0.0:8081 (SO_REUSEADDR)", outcome(s.step("server: bind 0.0.0.0:8081").bind(p, other_port)), "ok");
    }
    s.expect("first listen on 0.0.0.0:8081", outcome(s.step("server: listen").listen(pair[0], 4)), "ok");
    s.expect("second listen on 0.0.0.0:8081", outcome(s.step("server: listen").listen(pair[1], 4)), "EADDRINUSE");
    check_listening_table(s.sim, server);
    s.expect("SYN to 10.0.0.2:8081", model_connect(s, client, Endpoint{server_address, 8081}, {pair[1], pair[0]}), chosen(1));

    // Connections on port 8080 that the server closes first: TIME-WAIT sockets on the port.
    (void)model_connect(s, client, target, {wildcard});
    (void)model_connect(s, client, target, {wildcard});
    for (auto accepted = s.sim.accept(wildcard); accepted; accepted = s.sim.accept(wildcard))
        s.expect("server closes first", outcome(s.step("server: close accepted").close(*accepted)), "ok");
    s.step("run 100 ms").run_for(100 * milliseconds);
    for (const Socket* socket : s.sim.world().host(client)->sockets())
        if (socket->open_by_user && socket->remote && socket->remote->port == 8080)
            (void)s.step("client: close").close(SocketRef{client, socket->id});
    s.step("run 1 s").run_for(1 * seconds);
    std::size_t time_wait = 0;
    for (const Socket* socket : s.sim.world().host(server)->sockets())
        if (socket->state == TcpState::time_wait && socket->local->port == 8080) ++time_wait;
    s.expect("TIME-WAIT sockets on server port 8080", time_wait, std::size_t{3});

    // The wildcard closes and another socket takes the port (SO_REUSEADDR past TIME-WAIT):
    // the SYN reaches it, not a TIME-WAIT socket, not the closed listener.
    s.expect("close the wildcard listener", outcome(s.step("server: close 0.0.0.0:8080").close(wildcard)), "ok");
    check_listening_table(s.sim, server);
    const SocketRef again = listen_on(Endpoint{IpAddress::any_v4(), 8080}, true);
    s.expect("SYN to 10.0.0.2:8080 with a new 0.0.0.0:8080", model_connect(s, client, target, {again}), chosen(0));
    s.expect("close the new listener", outcome(s.step("server: close").close(again)), "ok");
    s.expect("close 0.0.0.0:8081", outcome(s.step("server: close 0.0.0.0:8081").close(pair[0])), "ok");
    check_listening_table(s.sim, server);
    s.expect("listening table empty at the end", s.sim.world().host(server)->table(Protocol::tcp).listeners.size(),
             std::size_t{0});
}
