// One port number, two address families: which binds conflict, with and without IPV6_V6ONLY.
// The same table of binds runs on the model and on this machine's kernel (loopback, no
// listen, so nothing can connect), and both must give every bind the same verdict. Linux's
// rule is ipv6_rcv_saddr_equal (net/ipv6/addrconf.c, through inet_bind_conflict): an IPv6
// wildcard without IPV6_V6ONLY overlaps every IPv4 address of the port.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <optional>
#include <string>

#include "portlab/sim/simulator.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::sim;
namespace sockets = portlab::test::sockets;

namespace {

// One bind: an address, and for IPv6 whether IPV6_V6ONLY is set first.
struct BindSpec {
    const char* address;
    bool v6only = false;
};

struct KernelBind {
    sockets::Fd fd;
    int error = 0;
};

// socket(), IPV6_V6ONLY set either way (the host's net.ipv6.bindv6only must not decide),
// bind(). No SO_REUSEADDR and no listen(): the conflict is bind's alone.
KernelBind kernel_bind(const BindSpec& spec, std::uint16_t port) {
    const IpAddress address = IpAddress::parse(spec.address).value();
    const int family = address.is_v4() ? AF_INET : AF_INET6;
    KernelBind result{sockets::Fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)), 0};
    REQUIRE(result.fd.get() >= 0);
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        inet_pton(AF_INET, spec.address, &v4->sin_addr);
        length = sizeof(sockaddr_in);
    } else {
        const int v6only = spec.v6only ? 1 : 0;
        REQUIRE(setsockopt(result.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0);
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        inet_pton(AF_INET6, spec.address, &v6->sin6_addr);
        length = sizeof(sockaddr_in6);
    }
    if (::bind(result.fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) result.error = errno;
    return result;
}

std::uint16_t kernel_port(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
    return storage.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port)
                                        : ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
}

// The model's verdict for the second bind, after the first on the same port.
std::string model_verdict(const BindSpec& first, const BindSpec& second) {
    Simulator sim;
    const HostId host = sim.add_host("host", {});
    const auto bind = [&](const BindSpec& spec) -> std::optional<Errno> {
        const IpAddress address = IpAddress::parse(spec.address).value();
        const SocketRef s = sim.socket(host, Protocol::tcp, address.family()).value();
        if (address.is_v6()) REQUIRE(sim.set_v6only(s, spec.v6only));
        const auto bound = sim.bind(s, Endpoint{address, 8015});
        return bound ? std::nullopt : std::optional(bound.error());
    };
    REQUIRE_FALSE(bind(first));
    const auto error = bind(second);
    return error ? std::string(errno_name(*error)) : "ok";
}

}  // namespace

TEST_CASE("IPV6_V6ONLY decides whether [::]:P and IPv4's P conflict, in the model as in the kernel", "[sim][sockets][ipv6]") {
    {
        const sockets::Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe.get() < 0) {
            WARN("no IPv6 on this machine: nothing to compare against");
            return;
        }
    }
    const auto [first, second] = GENERATE(table<BindSpec, BindSpec>({
        {{"::", false}, {"0.0.0.0"}},        // lab 15 step 1: the dual-stack socket holds IPv4's port
        {{"::", false}, {"127.0.0.1"}},
        {{"::", true}, {"0.0.0.0"}},         // step 2: one socket per family
        {{"0.0.0.0"}, {"::", false}},
        {{"0.0.0.0"}, {"::", true}},
        {{"127.0.0.1"}, {"::", false}},      // step 3
        {{"127.0.0.1"}, {"::", true}},
        {{"::1", false}, {"0.0.0.0"}},       // a specific IPv6 address covers no IPv4 one
        {{"::", true}, {"::", false}},       // one family, two wildcards
        {{"::", true}, {"::1", true}},
        {{"0.0.0.0"}, {"127.0.0.1"}},
    }));
    CAPTURE(first.address, first.v6only, second.address, second.v6only);
    // The kernel: the first bind takes a port of its choosing, the second asks for that one.
    const KernelBind kernel_first = kernel_bind(first, 0);
    REQUIRE(kernel_first.error == 0);
    const KernelBind kernel_second = kernel_bind(second, kernel_port(kernel_first.fd.get()));
    const std::string kernel = kernel_second.error == 0 ? "ok" : sockets::errno_name(kernel_second.error);
    CHECK(model_verdict(first, second) == kernel);
}

TEST_CASE("IPV6_V6ONLY is set before bind, on an IPv6 socket only, in the model as in the kernel", "[sim][sockets][ipv6]") {
    Simulator sim;
    const HostId host = sim.add_host("host", {});
    const SocketRef v4 = sim.socket(host, Protocol::tcp, IpFamily::v4).value();
    const SocketRef v6 = sim.socket(host, Protocol::tcp, IpFamily::v6).value();
    REQUIRE(sim.bind(v6, Endpoint{IpAddress::loopback_v6(), 8015}));
    const auto model = [](const SysResult<Ok>& r) { return r ? std::string("ok") : std::string(errno_name(r.error())); };

    const sockets::Fd kernel_v4(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockets::Fd kernel_v6(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (kernel_v6.get() < 0) {
        WARN("no IPv6 on this machine: nothing to compare against");
        return;
    }
    sockaddr_in6 loopback{};
    loopback.sin6_family = AF_INET6;
    loopback.sin6_addr = in6addr_loopback;
    REQUIRE(::bind(kernel_v6.get(), reinterpret_cast<const sockaddr*>(&loopback), sizeof loopback) == 0);
    const int on = 1;
    const auto kernel = [&](int fd) {
        return setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) == 0 ? std::string("ok") : sockets::errno_name(errno);
    };
    CHECK(model(sim.set_v6only(v4, true)) == kernel(kernel_v4.get()));  // ENOPROTOOPT: no IPv6 options on AF_INET
    CHECK(model(sim.set_v6only(v6, true)) == kernel(kernel_v6.get()));  // EINVAL: bound already
}
