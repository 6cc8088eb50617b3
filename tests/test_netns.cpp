// The private-namespace helper: what the kernel says inside (its /proc, its port
// choices, its errors) must match the settings asked for, and the host must not change.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "labkit/netns.hpp"
#include "portlab/packet.hpp"
#include "portlab/ports.hpp"

using nlohmann::json;
using namespace portlab;

namespace {

std::string read_text(const char* path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

// A TCP listener on 127.0.0.1:port (0 = any); returns fd and the port it got.
std::pair<int, std::uint16_t> listen_on(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto address = loopback(port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return {-1, 0};
    }
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return {fd, ntohs(address.sin_port)};
}

// connect() from a fresh socket; returns {errno or 0, the local port the kernel chose}.
std::pair<int, std::uint16_t> connect_from_new_socket(std::uint16_t port, std::vector<int>& keep) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto address = loopback(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        close(fd);
        return {error, 0};
    }
    keep.push_back(fd);
    sockaddr_in local{};
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    return {0, ntohs(local.sin_port)};
}

int bind_errno(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto address = loopback(port);
    const int error = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
    close(fd);
    return error;
}

}  // namespace

TEST_CASE("inside the namespace the ephemeral range is the one set, and the kernel picks from it", "[netns]") {
    const std::string host_range_before = read_text("/proc/sys/net/ipv4/ip_local_port_range");
    NetnsSettings settings;
    settings.ephemeral_range = PortRange{40100, 40109};

    const auto facts = run_in_private_netns(
        [] {
            std::vector<int> sockets;
            const auto [listener, port] = listen_on(7000);
            json ports = json::array();
            for (int i = 0; i < 4; ++i) ports.push_back(connect_from_new_socket(port, sockets).second);
            for (const int fd : sockets) close(fd);
            close(listener);
            return json{{"proc", read_text("/proc/sys/net/ipv4/ip_local_port_range")},
                        {"listener_port", port},
                        {"ports", ports}};
        },
        settings);
    REQUIRE(facts.has_value());
    CAPTURE(facts->dump());

    const auto inside = parse_ephemeral_range(facts->at("proc").get<std::string>());
    REQUIRE(inside.has_value());
    CHECK(*inside == PortRange{40100, 40109});
    CHECK(facts->at("listener_port") == 7000);  // lo is up and the port was free: a fresh namespace
    for (const auto& port : facts->at("ports")) {
        CHECK(port.get<int>() >= 40100);
        CHECK(port.get<int>() <= 40109);
    }
    CHECK(read_text("/proc/sys/net/ipv4/ip_local_port_range") == host_range_before);
}

TEST_CASE("a fresh namespace has lo up and none of the host's sockets", "[netns]") {
    const auto [host_listener, host_port] = listen_on(0);
    REQUIRE(host_listener >= 0);
    const auto facts = run_in_private_netns([port = host_port] {
        const int fd = socket(AF_INET, SOCK_DGRAM, 0);
        ifreq request{};
        std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
        const bool up = ioctl(fd, SIOCGIFFLAGS, &request) == 0 && (request.ifr_flags & IFF_UP) != 0;
        close(fd);
        std::vector<int> keep;
        const int host_listener_errno = connect_from_new_socket(port, keep).first;
        for (const int open_fd : keep) close(open_fd);
        return json{{"lo_up", up}, {"connect_to_host_listener_errno", host_listener_errno}};
    });
    close(host_listener);
    REQUIRE(facts.has_value());
    CHECK(facts->at("lo_up") == true);
    // The host's listener lives in another network namespace: here nobody listens there.
    CHECK(facts->at("connect_to_host_listener_errno") == ECONNREFUSED);
}

TEST_CASE("with capabilities dropped, a port below the raised boundary answers EACCES", "[netns]") {
    NetnsSettings settings;
    settings.unprivileged_port_start = 2000;
    settings.drop_capabilities = true;
    const auto facts = run_in_private_netns(
        [] {
            return json{{"boundary", read_text("/proc/sys/net/ipv4/ip_unprivileged_port_start")},
                        {"below", bind_errno(1500)},
                        {"at", bind_errno(2000)}};
        },
        settings);
    REQUIRE(facts.has_value());
    CHECK(parse_unprivileged_port_start(facts->at("boundary").get<std::string>()).value() == 2000);
    CHECK(facts->at("below") == EACCES);
    CHECK(facts->at("at") == 0);

    SECTION("without dropping them, the namespace's root may bind below the boundary") {
        settings.drop_capabilities = false;
        const auto privileged = run_in_private_netns([] { return json{{"below", bind_errno(1500)}}; }, settings);
        REQUIRE(privileged.has_value());
        CHECK(privileged->at("below") == 0);
    }
}

TEST_CASE("run_as_nobody runs the body as uid 65534 when started as root", "[netns]") {
    const auto facts = run_as_nobody([] { return json{{"uid", geteuid()}, {"bind_80", bind_errno(80)}}; });
    REQUIRE(facts.has_value());
    if (geteuid() == 0) {
        CHECK(facts->at("uid") == 65534);
        const auto boundary = read_unprivileged_port_start();
        if (boundary && *boundary > 80) CHECK(facts->at("bind_80") == EACCES);
    } else {
        CHECK(facts->at("uid") == geteuid());
    }
}

TEST_CASE("a body that hangs is killed by the limit and reported as an error", "[netns]") {
    const auto facts = run_in_private_netns(
        [] {
            std::this_thread::sleep_for(std::chrono::seconds(60));
            return json(nullptr);
        },
        {}, std::chrono::milliseconds(300));
    REQUIRE_FALSE(facts.has_value());
    CHECK_THAT(facts.error().message, Catch::Contains("longer than 300 ms"));
}

TEST_CASE("a body that throws comes back as an error value", "[netns]") {
    const auto facts = run_in_private_netns([]() -> json { throw std::runtime_error("the body gave up"); });
    REQUIRE_FALSE(facts.has_value());
    CHECK(facts.error().message == "the body gave up");
}

// Issue 15 item 12: the decoder says which segments go without ACK. The kernel's answer: an
// ACK sent to a port where nothing listens comes back as a RST with no ACK flag (RFC 9293
// 3.10.7.1: <SEQ=SEG.ACK><CTL=RST>), and the decoder's line for that field names it.
TEST_CASE("the kernel answers a stray ACK with a RST that has no ACK flag, as the decoder explains", "[netns][packet]") {
    const auto facts = run_in_private_netns([] {
        const int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);  // root of this namespace: CAP_NET_RAW
        if (raw < 0) throw std::runtime_error(std::string("raw socket: ") + std::strerror(errno));
        const int on = 1;
        setsockopt(raw, IPPROTO_IP, IP_HDRINCL, &on, sizeof on);
        timeval wait{1, 0};
        setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        const IpHeader ip{IpAddress::loopback_v4(), IpAddress::loopback_v4()};
        TcpHeader stray{};
        stray.source_port = 40000;
        stray.destination_port = 7;  // nothing listens in a fresh namespace
        stray.sequence = 1000;
        stray.acknowledgment = 123456;
        stray.flags = tcp_flag::ack;
        const auto bytes = encode_tcp(ip, stray);
        if (!bytes) throw std::runtime_error(bytes.error().message);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (sendto(raw, bytes->data(), bytes->size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
            throw std::runtime_error(std::string("sendto: ") + std::strerror(errno));
        // The raw socket sees every TCP packet on lo: our ACK, then the kernel's answer.
        for (int i = 0; i < 8; ++i) {
            std::uint8_t buffer[1500];
            const auto got = recv(raw, buffer, sizeof buffer, 0);
            if (got <= 0) break;
            const auto packet = decode_ip(std::span<const std::uint8_t>(buffer, static_cast<std::size_t>(got)));
            if (!packet || !packet->tcp || packet->tcp->source_port != 7) continue;
            std::string meaning;
            for (const auto& field : packet->find_layer("TCP")->fields)
                if (field.name == "Acknowledgment number") meaning = field.meaning;
            close(raw);
            return json{{"flags", packet->tcp->flags}, {"sequence", packet->tcp->sequence}, {"meaning", meaning}};
        }
        close(raw);
        throw std::runtime_error("no answer from the kernel");
    });
    REQUIRE(facts.has_value());
    CHECK(facts->at("flags") == tcp_flag::rst);  // RST alone: no ACK
    CHECK(facts->at("sequence") == 123456);        // its sequence number is the stray segment's ACK
    const auto meaning = facts->at("meaning").get<std::string>();
    CHECK(meaning.find("RST") != std::string::npos);
}

namespace {

// One empty datagram to each port from a connected UDP socket, then how many of them came
// back as ECONNREFUSED (the ICMP port unreachable the kernel queued on the socket) within
// `wait`. Ports where nothing listens: every one would answer, were ICMP not rate-limited.
int refused_udp_ports(const IpAddress& to, Port first, int count, std::chrono::milliseconds wait) {
    std::vector<int> sockets;
    for (int i = 0; i < count; ++i) {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<Port>(first + i));
        inet_pton(AF_INET, to.to_string().c_str(), &address.sin_addr);
        connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
        send(fd, "", 0, 0);
        sockets.push_back(fd);
    }
    std::this_thread::sleep_for(wait);
    int refused = 0;
    for (const int fd : sockets) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error == ECONNREFUSED) ++refused;
        close(fd);
    }
    return refused;
}

}  // namespace

// Issue 15 item 8: loopback is exempt from ICMP rate limits (icmpv4_xrlim_allow), a veth
// link to a second namespace is not. The kernel's answers, counted on both.
TEST_CASE("closed UDP ports all answer over lo, but only a few across a veth link (ICMP rate limit)", "[netns][veth]") {
    NetnsSettings settings;
    settings.veth_neighbour = true;
    const auto facts = run_in_private_netns(
        [] {
            const auto over_lo = refused_udp_ports(IpAddress::loopback_v4(), 20000, 100, std::chrono::milliseconds(300));
            const auto over_veth = refused_udp_ports(neighbour_address, 20000, 100, std::chrono::milliseconds(300));
            return json{{"lo", over_lo}, {"veth", over_veth}};
        },
        settings);
    REQUIRE(facts.has_value());
    CAPTURE(facts->dump());
    CHECK(facts->at("lo") == 100);                 // every closed port answered on lo
    CHECK(facts->at("veth").get<int>() >= 1);       // the neighbour is reachable and answers...
    CHECK(facts->at("veth").get<int>() <= 20);      // ...a handful: a token bucket of 6 (XRLIM_BURST_FACTOR), 1/s
}

TEST_CASE("a listener made in the veth neighbour is a server on the other host", "[netns][veth]") {
    NetnsSettings settings;
    settings.veth_neighbour = true;
    const auto facts = run_in_private_netns(
        [] {
            int listener = -1;
            auto made = in_neighbour_netns([&] {
                listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                sockaddr_in any{};
                any.sin_family = AF_INET;
                any.sin_port = htons(7100);  // on 0.0.0.0: every address of the neighbour
                if (bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || listen(listener, 8) != 0)
                    throw std::runtime_error(std::string("listen in the neighbour: ") + std::strerror(errno));
            });
            if (!made) throw std::runtime_error(made.error().message);
            std::vector<int> keep;
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(7100);
            inet_pton(AF_INET, "192.0.2.2", &to.sin_addr);
            const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            const int connected = connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to);
            sockaddr_in local{};
            socklen_t length = sizeof local;
            getsockname(client, reinterpret_cast<sockaddr*>(&local), &length);
            char text[INET_ADDRSTRLEN] = {};
            inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
            // Nothing listens on 7100 in the body's own namespace.
            const int refused = connect_from_new_socket(7100, keep).first;
            for (const int fd : keep) close(fd);
            close(client);
            close(listener);
            return json{{"connected", connected == 0}, {"source", text}, {"own_7100", refused}};
        },
        settings);
    REQUIRE(facts.has_value());
    CHECK(facts->at("connected") == true);
    CHECK(facts->at("source") == "192.0.2.1");  // the route to 192.0.2.0/24 is veth0
    CHECK(facts->at("own_7100") == ECONNREFUSED);
}

namespace {

sockaddr_in address_of(const IpAddress& address, Port port) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, address.to_string().c_str(), &to.sin_addr);
    return to;
}

// Fills the namespace's whole ephemeral range (`size` ports) with connections to
// server:port that the client closes first, so each port ends in TIME-WAIT on the
// client's side; then, after `wait`, tries one more connect(): 0 or its errno.
int connect_after_time_wait(int listener, const IpAddress& server, Port port, int size, std::chrono::milliseconds wait) {
    const auto to = address_of(server, port);
    for (int i = 0; i < size; ++i) {
        const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(client, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
            throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
        const int accepted = accept(listener, nullptr, nullptr);
        close(client);    // the active close: the client's side will wait in TIME-WAIT
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        close(accepted);  // the server's FIN; the client's ACK puts it in TIME-WAIT
    }
    std::this_thread::sleep_for(wait);
    const int again = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int result = connect(again, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0 ? 0 : errno;
    close(again);
    return result;
}

int listen_any(Port port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto any = address_of(IpAddress::any_v4(), port);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 || listen(fd, 16) != 0)
        throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    return fd;
}

}  // namespace

// Issue 15 item 8: net.ipv4.tcp_tw_reuse = 2 (Linux's default) lets connect() reuse a port
// whose TIME-WAIT is older than 1 s, for loopback traffic only (tcp_twsk_unique). So
// exhaustion by TIME-WAIT does not reproduce on lo; across a veth link it does.
TEST_CASE("a range full of TIME-WAIT is reused after 1 s on lo, but not across a veth link (tcp_tw_reuse=2)", "[netns][veth]") {
    NetnsSettings settings;
    settings.veth_neighbour = true;
    settings.ephemeral_range = PortRange{40000, 40003};
    const auto facts = run_in_private_netns(
        [] {
            std::ifstream reuse_file("/proc/sys/net/ipv4/tcp_tw_reuse");
            int reuse = -1;
            reuse_file >> reuse;
            const int local = listen_any(7300);
            const int over_lo = connect_after_time_wait(local, IpAddress::loopback_v4(), 7300, 4, std::chrono::milliseconds(1200));
            int remote = -1;
            auto made = in_neighbour_netns([&] { remote = listen_any(7300); });
            if (!made) throw std::runtime_error(made.error().message);
            const int across = connect_after_time_wait(remote, neighbour_address, 7300, 4, std::chrono::milliseconds(1200));
            close(local);
            close(remote);
            return json{{"tcp_tw_reuse", reuse}, {"lo", over_lo}, {"veth", across}};
        },
        settings, std::chrono::seconds(20));
    REQUIRE(facts.has_value());
    CAPTURE(facts->dump());
    REQUIRE(facts->at("tcp_tw_reuse") == 2);  // the kernel's default in a fresh namespace
    CHECK(facts->at("lo") == 0);              // a TIME-WAIT port reused toward 127.0.0.1
    CHECK(facts->at("veth") == EADDRNOTAVAIL);  // no reuse across the link: the range is used up
}
