// Lab 15: IPv6 and dual stack: one port number, two address families, and who gets it.
//
// An IPv6 socket bound to [::]:P may also take IPv4 connections to port P: the kernel hands
// them over with the peer written as an IPv4-mapped IPv6 address (::ffff:127.0.0.1, RFC 4291
// 2.5.5.2). Whether it does is the socket's IPV6_V6ONLY option, whose default is the sysctl
// net.ipv6.bindv6only (0 on Linux). The lab runs in a private network namespace of its own, so
// it can change that sysctl without touching the host:
//
//   1. [::]:P, V6ONLY off: an IPv4 client is accepted, its peer ::ffff:127.0.0.1; and
//      0.0.0.0:P is then refused (EADDRINUSE): the dual-stack socket holds IPv4's P too
//   2. [::]:P, V6ONLY on: 0.0.0.0:P binds beside it; each family reaches its own socket
//   3. 127.0.0.1:P first: a dual-stack [::]:P is refused, a V6ONLY one is not
//   4. net.ipv6.bindv6only = 1: a new IPv6 socket starts V6ONLY
//   5. ICMPv6: a datagram to a closed UDP port of ::1 comes back as "port unreachable"
//      (type 1 code 4, RFC 4443 3.1): ECONNREFUSED, as ICMPv4's type 3 code 3 is
//
//   lab15_dual_stack
//   lab15_dual_stack --port 8080 --json

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "labkit/icmp_errors.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/observe.hpp"
#include "portlab/icmp.hpp"
#include "portlab/net.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using labkit::fact::Accepted;
using labkit::fact::Bound;
using labkit::fact::Closed;
using labkit::fact::Connecting;
using labkit::fact::Failed;
using labkit::fact::Listening;

constexpr Port default_port = 8015;
constexpr Port closed_udp_port = 9;  // discard: nothing listens in a fresh namespace

struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Port port;
    Host host;
    json& facts() { return see.document(); }
};

// ---- sockets ---------------------------------------------------------------------------------

sockaddr_storage address_of(const Endpoint& endpoint, socklen_t& length) {
    sockaddr_storage storage{};
    if (endpoint.address.is_v4()) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(endpoint.port);
        inet_pton(AF_INET, endpoint.address.to_string().c_str(), &v4->sin_addr);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(endpoint.port);
        inet_pton(AF_INET6, endpoint.address.to_string().c_str(), &v6->sin6_addr);
        length = sizeof(sockaddr_in6);
    }
    return storage;
}

std::string text_of(const sockaddr_storage& storage) {
    char text[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
        inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
        return fmt::format("{}:{}", text, ntohs(v4->sin_port));
    }
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return fmt::format("[{}]:{}", text, ntohs(v6->sin6_port));
}

// A TCP socket of `endpoint`'s family, V6ONLY as asked (IPv6 only; nullopt: the default),
// bound there. Returns the descriptor and bind()'s errno (0: bound).
struct Attempt {
    int fd = -1;
    int error = 0;
    SocketRef ref;
};

int v6only_of(int fd) {
    int value = -1;
    socklen_t length = sizeof value;
    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &length);
    return value;
}

Attempt try_bind(Run& run, const Endpoint& endpoint, std::optional<bool> v6only) {
    const bool v6 = endpoint.address.is_v6();
    Attempt attempt;
    attempt.ref = run.see.open(run.host, Protocol::tcp, v6 ? IpFamily::v6 : IpFamily::v4);
    attempt.fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // As servers do: an earlier step's connection in TIME-WAIT must not hold the port (lab 06
    // shows that rule). It never lets two sockets share a port one of them listens on.
    const int reuse = 1;
    setsockopt(attempt.fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
    if (v6 && v6only) {
        const int value = *v6only ? 1 : 0;
        setsockopt(attempt.fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof value);
    }
    socklen_t length = 0;
    const auto address = address_of(endpoint, length);
    if (bind(attempt.fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        attempt.error = errno;
        run.see.record(Failed{attempt.ref, "bind", std::error_code(attempt.error, std::system_category()), {}, endpoint},
                       {.say = fmt::format("bind({}) -> {}", endpoint.to_string(),
                                           labkit::errno_name(std::error_code(attempt.error, std::system_category()))),
                        .json_at = {}});
        return attempt;
    }
    run.see.record(Bound{attempt.ref, endpoint, trace::BindHow::explicit_port},
                   {.say = fmt::format("bind({}) -> ok{}", endpoint.to_string(),
                                       v6 ? fmt::format(", IPV6_V6ONLY = {}", v6only_of(attempt.fd)) : ""),
                    .json_at = {}});
    return attempt;
}


void close_socket(Run& run, Attempt& attempt) {
    if (attempt.fd < 0) return;
    close(attempt.fd);
    attempt.fd = -1;
    run.see.record(Closed{attempt.ref}, quietly);
}

void listen_on(Run& run, Attempt& attempt) {
    if (listen(attempt.fd, 8) != 0) throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    run.see.record(Listening{attempt.ref, 8}, quietly);
}

// A client of `to`'s family connects; the listener accepts. Returns the peer the server
// sees (getpeername of the accepted socket) and which listener took it.
std::string connect_and_accept(Run& run, const Endpoint& to, Attempt& listener) {
    Attempt client;
    client.ref = run.see.open(run.host, Protocol::tcp, to.address.is_v6() ? IpFamily::v6 : IpFamily::v4);
    client.fd = socket(to.address.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t length = 0;
    const auto address = address_of(to, length);
    if (connect(client.fd, reinterpret_cast<const sockaddr*>(&address), length) != 0)
        throw std::runtime_error(fmt::format("connect {}: {}", to.to_string(), std::strerror(errno)));
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    getsockname(client.fd, reinterpret_cast<sockaddr*>(&local), &local_length);
    const auto client_local = Endpoint::parse(text_of(local));
    run.see.record(Bound{client.ref, *client_local, trace::BindHow::ephemeral}, quietly);
    run.see.record(Connecting{client.ref, to}, quietly);
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    const int accepted = accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &peer_length, SOCK_CLOEXEC);
    if (accepted < 0) throw std::runtime_error(std::string("accept: ") + std::strerror(errno));
    sockaddr_storage server_side{};
    socklen_t server_length = sizeof server_side;
    getsockname(accepted, reinterpret_cast<sockaddr*>(&server_side), &server_length);
    const auto peer_text = text_of(peer);
    const auto server_ref = run.see.record(
        Accepted{listener.ref, {*Endpoint::parse(text_of(server_side)), *Endpoint::parse(peer_text)}},
        {.say = fmt::format("accept() on the listener: a socket whose peer is {}", peer_text), .json_at = {}});
    close(accepted);
    run.see.record(Closed{server_ref}, quietly);
    Attempt done = client;
    close_socket(run, done);
    return peer_text;
}

Endpoint at(const char* address, Port port) { return {*IpAddress::parse(address), port}; }

// ---- the steps ------------------------------------------------------------------------------

void dual_stack_listener(Run& run) {
    run.see.step(fmt::format("[::]:{} with IPV6_V6ONLY off (Linux's default): one socket for both families", run.port));
    auto listener = try_bind(run, at("::", run.port), false);
    if (listener.error != 0) throw std::runtime_error("bind [::] failed");
    listen_on(run, listener);
    const auto peer = connect_and_accept(run, at("127.0.0.1", run.port), listener);
    run.say.note("An IPv4 client reached the IPv6 socket; the server sees its address IPv4-mapped (RFC 4291 2.5.5.2).");
    auto v4 = try_bind(run, at("0.0.0.0", run.port), std::nullopt);
    run.say.note("IPv4's port is taken by the dual-stack socket: one port number, one owner for both families.");
    run.say.see_it_yourself(fmt::format("nsenter --target {} --user --net --preserve-credentials ss -tln 'sport = :{}'   "
                                        "(with --step: one line, [::]:{}, no 0.0.0.0 line)", getpid(), run.port, run.port));
    run.facts()["dual_stack"] = {{"v6only", v6only_of(listener.fd)}, {"ipv4_peer_seen_as", peer},
                                 {"bind_ipv4_any_errno", v4.error}};
    close_socket(run, v4);
    close_socket(run, listener);
}

void v6only_beside_v4(Run& run) {
    run.see.step(fmt::format("[::]:{} with IPV6_V6ONLY on, and 0.0.0.0:{} beside it: one socket per family", run.port, run.port));
    auto v6 = try_bind(run, at("::", run.port), true);
    auto v4 = try_bind(run, at("0.0.0.0", run.port), std::nullopt);
    if (v6.error != 0 || v4.error != 0) throw std::runtime_error("binding one socket per family failed");
    listen_on(run, v6);
    listen_on(run, v4);
    const auto from_v4 = connect_and_accept(run, at("127.0.0.1", run.port), v4);
    const auto from_v6 = connect_and_accept(run, at("::1", run.port), v6);
    run.say.note("Each family now reaches its own socket: two sockets, one port number (and ss lists two lines).");
    run.facts()["one_per_family"] = {{"ipv4_peer", from_v4}, {"ipv6_peer", from_v6}};
    close_socket(run, v4);
    close_socket(run, v6);
}

void specific_v4_first(Run& run) {
    run.see.step(fmt::format("a server on 127.0.0.1:{} first; then [::]:{} dual-stack, and [::]:{} V6ONLY", run.port,
                             run.port, run.port));
    auto v4 = try_bind(run, at("127.0.0.1", run.port), std::nullopt);
    if (v4.error != 0) throw std::runtime_error("bind 127.0.0.1 failed");
    listen_on(run, v4);
    auto dual = try_bind(run, at("::", run.port), false);
    close_socket(run, dual);
    auto only = try_bind(run, at("::", run.port), true);
    run.say.note("The dual-stack wildcard would cover 127.0.0.1:P, which is taken; the V6ONLY one covers IPv6 only.");
    run.facts()["specific_v4_first"] = {{"dual_stack_errno", dual.error}, {"v6only_errno", only.error}};
    close_socket(run, only);
    close_socket(run, v4);
}

void bindv6only_sysctl(Run& run) {
    run.see.step("net.ipv6.bindv6only = 1 in this namespace: what a new IPv6 socket starts with");
    const auto before = [&] {
        const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int value = v6only_of(fd);
        close(fd);
        return value;
    };
    const int default_before = before();
    std::ofstream("/proc/sys/net/ipv6/bindv6only") << "1";
    const int default_after = before();
    run.say.kernel(fmt::format("getsockopt(IPV6_V6ONLY) on a new socket: {} before, {} after", default_before, default_after));
    run.say.note("Some systems (BSDs, some distributions' services) default to V6ONLY: a server that means both");
    run.say.note("families sets the option itself, or opens one socket per family.");
    run.say.see_it_yourself(fmt::format("nsenter --target {} --user --net --preserve-credentials sysctl net.ipv6.bindv6only",
                                        getpid()));
    std::ofstream("/proc/sys/net/ipv6/bindv6only") << "0";
    run.facts()["bindv6only"] = {{"v6only_default_at_0", default_before}, {"v6only_default_at_1", default_after}};
}

void icmpv6_port_unreachable(Run& run) {
    run.see.step(fmt::format("a UDP datagram to [::1]:{}, where nothing listens", closed_udp_port));
    const auto ref = run.see.open(run.host, Protocol::udp, IpFamily::v6);
    const int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    report_icmp_errors(fd, IpFamily::v6);
    socklen_t length = 0;
    const auto to = at("::1", closed_udp_port);
    const auto address = address_of(to, length);
    connect(fd, reinterpret_cast<const sockaddr*>(&address), length);
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length);
    run.see.record(Bound{ref, *Endpoint::parse(text_of(local)), trace::BindHow::ephemeral}, quietly);
    run.see.record(Connecting{ref, to}, quietly);
    (void)!send(fd, "?", 1, 0);
    const auto error = next_icmp_error(fd, std::chrono::seconds(1));
    json icmp = nullptr;
    if (error) {
        icmp = {{"origin_icmp6", error->family == IpFamily::v6}, {"type", error->type}, {"code", error->code}, {"errno", error->error}};
        run.say.kernel(describe(*error));
        run.see.record(Failed{ref, "send", std::error_code(error->error, std::system_category())}, quietly);
    }
    run.say.note("IPv6 has its own ICMP (RFC 4443) with other numbers; Linux maps both to ECONNREFUSED.");
    run.facts()["icmpv6"] = icmp;
    close(fd);
    run.see.record(Closed{ref}, quietly);
}

json tell_the_story(Lab& lab, Port port) {
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, port, {}};
    run.host = see.declare({"host", {IpAddress::loopback_v4(), IpAddress::loopback_v6()}, "server"});
    see.document().update({{"lab", lab.name()}, {"port", port}});
    dual_stack_listener(run);
    v6only_beside_v4(run);
    specific_v4_first(run);
    bindv6only_sysctl(run);
    icmpv6_port_unreachable(run);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab15_dual_stack", "Lab 15: IPv6 and dual stack: [::]:P, IPV6_V6ONLY, v4-mapped peers, ICMPv6"},
                   [](Lab& lab) {
        Port port = default_port;
        lab.cli().add_option("--port", port, "the port every step binds (1024-65535; in the lab's own namespace)")
            ->check(CLI::Range(1024, 65535))->default_str(std::to_string(default_port));
        lab.cli().footer("Runs in a private network namespace of its own, so no port of the host is ever busy or changed.");
        lab.parse();
        lab.narrate().title("Lab 15: one port, two address families");
        return tell_in_private_netns(lab, 20s, [&] { return tell_the_story(lab, port); });
    });
}
