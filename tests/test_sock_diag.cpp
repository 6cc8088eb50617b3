// The sock_diag module against sockets this test opens itself with plain POSIX calls.
// Independent sources for every fact: the socket's inode from fstat(), its endpoints
// from getsockname()/getpeername(), its pid from getpid(), its name from prctl(), and
// the state numbers from glibc's <netinet/tcp.h> (the kernel's tcp_states.h order).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

#include "labkit/sock_diag.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::diag;

namespace {

// A file descriptor that closes itself.
using portlab::test::sockets::Fd;

Endpoint endpoint_of(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET) {
        sockaddr_in v4{};
        std::memcpy(&v4, &address, sizeof v4);
        auto ip = IpAddress::from_bytes({reinterpret_cast<const std::uint8_t*>(&v4.sin_addr), 4});
        return {*ip, ntohs(v4.sin_port)};
    }
    sockaddr_in6 v6{};
    std::memcpy(&v6, &address, sizeof v6);
    auto ip = IpAddress::from_bytes({reinterpret_cast<const std::uint8_t*>(&v6.sin6_addr), 16});
    return {*ip, ntohs(v6.sin6_port)};
}

Endpoint local_of(int fd) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    return endpoint_of(address);
}

Endpoint remote_of(int fd) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    REQUIRE(getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    return endpoint_of(address);
}

std::uint32_t inode_of(int fd) {
    struct stat info{};
    REQUIRE(fstat(fd, &info) == 0);
    return static_cast<std::uint32_t>(info.st_ino);
}

std::string my_comm() {
    std::array<char, 17> name{};
    REQUIRE(prctl(PR_GET_NAME, name.data()) == 0);
    return name.data();
}

using portlab::test::sockets::bound_socket;

Fd listener(int family) {
    Fd fd = bound_socket(family, SOCK_STREAM);
    REQUIRE(::listen(fd.get(), 16) == 0);
    return fd;
}

void connect_to(int fd, int target) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    REQUIRE(getsockname(target, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
}

bool ipv6_loopback_available() {
    const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

std::vector<SocketInfo> sockets_on(Port port, Protocol protocol, bool listening_only = false) {
    Query query;
    query.port = port;
    query.tcp = protocol == Protocol::tcp;
    query.udp = protocol == Protocol::udp;
    query.listening_only = listening_only;
    auto sockets = list_sockets(query);
    INFO((sockets ? std::string() : sockets.error().message));
    REQUIRE(sockets.has_value());
    return *sockets;
}

const SocketInfo* find_local(const std::vector<SocketInfo>& sockets, const Endpoint& local,
                             std::optional<Endpoint> remote = std::nullopt) {
    for (const auto& s : sockets)
        if (s.local == local && (!remote || s.remote == *remote)) return &s;
    return nullptr;
}

// The owner list names this process, with the descriptor we hold.
void require_owned_by_us(const SocketInfo& socket, int fd) {
    const ProcessRef us{getpid(), my_comm(), fd};
    CAPTURE(socket.owners.size());
    CHECK(std::find(socket.owners.begin(), socket.owners.end(), us) != socket.owners.end());
}

}  // namespace

TEST_CASE("a listening TCP socket is reported with the kernel's LISTEN number, its inode and its owner",
          "[sock_diag][tcp]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    CAPTURE(family);
    if (family == AF_INET6 && !ipv6_loopback_available()) {
        WARN("no IPv6 loopback here: the IPv6 case is not checked");
        return;
    }
    const Fd server = listener(family);
    const Endpoint local = local_of(server.get());

    const auto sockets = sockets_on(local.port, Protocol::tcp, /*listening_only=*/true);
    const SocketInfo* found = find_local(sockets, local);
    REQUIRE(found != nullptr);
    CHECK(found->protocol == Protocol::tcp);
    CHECK(found->family == (family == AF_INET ? IpFamily::v4 : IpFamily::v6));
    CHECK(found->kernel_state == TCP_LISTEN);
    CHECK(found->tcp_state() == TcpState::listen);
    CHECK(found->state_name() == "LISTEN");
    CHECK(found->is_listening());
    CHECK(found->remote.port == 0);
    CHECK(found->remote.address.is_unspecified());
    CHECK(found->inode == inode_of(server.get()));
    CHECK(found->uid == getuid());
    // ss's Send-Q for a listener is its backlog limit: what we passed to listen().
    CHECK(found->send_q == 16);
    CHECK(found->recv_q == 0);
    require_owned_by_us(*found, server.get());
}

TEST_CASE("both ends of a loopback connection are ESTABLISHED with mirrored 4-tuples", "[sock_diag][tcp]") {
    const Fd server = listener(AF_INET);
    const Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    connect_to(client.get(), server.get());
    const Fd accepted(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));

    const FourTuple client_side{local_of(client.get()), remote_of(client.get())};
    const FourTuple server_side{local_of(accepted.get()), remote_of(accepted.get())};
    REQUIRE(server_side == client_side.reversed());

    // Listener and accepted socket share the server port; the client is found by its own.
    const auto on_server_port = sockets_on(server_side.local.port, Protocol::tcp);
    const SocketInfo* accepted_info = find_local(on_server_port, server_side.local, server_side.remote);
    const SocketInfo* listener_info = find_local(on_server_port, local_of(server.get()), Endpoint{});
    REQUIRE(accepted_info != nullptr);
    REQUIRE(listener_info != nullptr);
    CHECK(accepted_info->kernel_state == TCP_ESTABLISHED);
    CHECK(accepted_info->state_name() == "ESTAB");
    CHECK(accepted_info->tcp_state() == TcpState::established);
    CHECK(accepted_info->inode == inode_of(accepted.get()));
    CHECK(accepted_info->four_tuple() == server_side);
    CHECK_FALSE(accepted_info->is_listening());
    require_owned_by_us(*accepted_info, accepted.get());
    CHECK(listener_info->kernel_state == TCP_LISTEN);

    const auto on_client_port = sockets_on(client_side.local.port, Protocol::tcp);
    const SocketInfo* client_info = find_local(on_client_port, client_side.local, client_side.remote);
    REQUIRE(client_info != nullptr);
    CHECK(client_info->kernel_state == TCP_ESTABLISHED);
    CHECK(client_info->inode == inode_of(client.get()));
    require_owned_by_us(*client_info, client.get());

    SECTION("listening_only leaves the established sockets out") {
        const auto listening = sockets_on(server_side.local.port, Protocol::tcp, true);
        CHECK(find_local(listening, server_side.local, server_side.remote) == nullptr);
        CHECK(find_local(listening, local_of(server.get()), Endpoint{}) != nullptr);
    }
    SECTION("bytes written but not yet read show up in Recv-Q") {
        const std::string message = "hello";
        REQUIRE(::write(client.get(), message.data(), message.size()) == static_cast<ssize_t>(message.size()));
        // Loopback delivery happens inside write(); the bytes now wait in the accepted socket.
        const auto again = sockets_on(server_side.local.port, Protocol::tcp);
        const SocketInfo* with_data = find_local(again, server_side.local, server_side.remote);
        REQUIRE(with_data != nullptr);
        CHECK(with_data->recv_q == message.size());
    }
}

TEST_CASE("the side that closes first is left in TIME-WAIT, with no inode and no owner", "[sock_diag][tcp]") {
    const Fd server = listener(AF_INET);
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    connect_to(client.get(), server.get());
    Fd accepted(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const FourTuple client_side{local_of(client.get()), remote_of(client.get())};

    // RFC 793 3.5: the active closer goes FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT once the
    // passive side's FIN arrives; the passive side goes CLOSE-WAIT -> LAST-ACK -> CLOSED.
    client.reset();
    accepted.reset();

    // Loopback is fast but the FIN/ACK exchange runs in softirq context: poll, bounded.
    const SocketInfo* time_wait = nullptr;
    std::vector<SocketInfo> sockets;
    for (int attempt = 0; attempt < 200 && time_wait == nullptr; ++attempt) {
        sockets = sockets_on(client_side.local.port, Protocol::tcp);
        const SocketInfo* found = find_local(sockets, client_side.local, client_side.remote);
        if (found != nullptr && found->kernel_state == TCP_TIME_WAIT) time_wait = found;
        else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(time_wait != nullptr);
    CHECK(time_wait->tcp_state() == TcpState::time_wait);
    CHECK(time_wait->state_name() == "TIME-WAIT");
    CHECK(time_wait->inode == 0);  // a tcp_timewait_sock has no struct file
    CHECK(time_wait->owners.empty());

    SECTION("the passive closer's end is gone from the table") {
        const auto on_server_port = sockets_on(client_side.remote.port, Protocol::tcp);
        CHECK(find_local(on_server_port, client_side.remote, client_side.local) == nullptr);
    }
}

TEST_CASE("UDP sockets: unconnected is UNCONN (TCP_CLOSE), connected is ESTAB", "[sock_diag][udp]") {
    const Fd bound = bound_socket(AF_INET, SOCK_DGRAM);
    const Endpoint bound_local = local_of(bound.get());
    const Fd connected = bound_socket(AF_INET, SOCK_DGRAM);
    connect_to(connected.get(), bound.get());
    const FourTuple connected_tuple{local_of(connected.get()), remote_of(connected.get())};

    const auto unconnected = sockets_on(bound_local.port, Protocol::udp);
    const SocketInfo* bound_info = find_local(unconnected, bound_local);
    REQUIRE(bound_info != nullptr);
    CHECK(bound_info->protocol == Protocol::udp);
    CHECK(bound_info->kernel_state == TCP_CLOSE);
    CHECK(bound_info->state_name() == "UNCONN");
    CHECK_FALSE(bound_info->tcp_state().has_value());  // UDP has no TCP state machine
    CHECK(bound_info->is_listening());
    CHECK(bound_info->inode == inode_of(bound.get()));
    require_owned_by_us(*bound_info, bound.get());

    const auto on_connected_port = sockets_on(connected_tuple.local.port, Protocol::udp);
    const SocketInfo* connected_info = find_local(on_connected_port, connected_tuple.local);
    REQUIRE(connected_info != nullptr);
    CHECK(connected_info->kernel_state == TCP_ESTABLISHED);
    CHECK(connected_info->state_name() == "ESTAB");
    CHECK(connected_info->remote == connected_tuple.remote);
    CHECK_FALSE(connected_info->is_listening());

    SECTION("listening_only keeps the unconnected socket and drops the connected one") {
        CHECK(find_local(sockets_on(bound_local.port, Protocol::udp, true), bound_local) != nullptr);
        CHECK(find_local(sockets_on(connected_tuple.local.port, Protocol::udp, true), connected_tuple.local) == nullptr);
    }
}

TEST_CASE("Query flags select protocols and families", "[sock_diag]") {
    const Fd tcp = listener(AF_INET);
    const Endpoint local = local_of(tcp.get());

    Query query;
    query.port = local.port;
    query.with_processes = false;
    SECTION("udp only: the TCP listener is not there") {
        query.tcp = false;
        auto sockets = list_sockets(query);
        REQUIRE(sockets.has_value());
        CHECK(find_local(*sockets, local) == nullptr);
    }
    SECTION("IPv6 only: the IPv4 listener is not there") {
        query.ipv4 = false;
        auto sockets = list_sockets(query);
        REQUIRE(sockets.has_value());
        CHECK(find_local(*sockets, local) == nullptr);
    }
    SECTION("without processes: found, but no owners filled in") {
        auto sockets = list_sockets(query);
        REQUIRE(sockets.has_value());
        const SocketInfo* found = find_local(*sockets, local);
        REQUIRE(found != nullptr);
        CHECK(found->owners.empty());
        CHECK(found->inode == inode_of(tcp.get()));
    }
    SECTION("every socket returned has the asked local port") {
        query.with_processes = true;
        auto sockets = list_sockets(query);
        REQUIRE(sockets.has_value());
        for (const auto& s : *sockets) CHECK(s.local.port == local.port);
    }
}

TEST_CASE("the inode map finds this process's sockets under their descriptor numbers", "[sock_diag][proc]") {
    const Fd tcp = listener(AF_INET);
    const Fd udp = bound_socket(ipv6_loopback_available() ? AF_INET6 : AF_INET, SOCK_DGRAM);
    auto map = map_socket_inodes_to_processes();
    REQUIRE(map.has_value());
    for (const int fd : {tcp.get(), udp.get()}) {
        CAPTURE(fd);
        const auto found = map->find(inode_of(fd));
        REQUIRE(found != map->end());
        const ProcessRef us{getpid(), my_comm(), fd};
        CHECK(std::find(found->second.begin(), found->second.end(), us) != found->second.end());
    }
}

TEST_CASE("a forked child holding the same socket is a second owner", "[sock_diag][proc]") {
    const Fd server = listener(AF_INET);
    std::array<int, 2> ready{};
    REQUIRE(::pipe2(ready.data(), O_CLOEXEC) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Child: holds the inherited listener until the parent closes the pipe (bounded by alarm).
        ::alarm(10);
        ::close(ready[1]);
        char byte = 0;
        [[maybe_unused]] const auto ignored = ::read(ready[0], &byte, 1);
        ::_exit(0);
    }
    ::close(ready[0]);
    // The child shares the listener from fork() on, so it is an owner at once.
    const auto sockets = sockets_on(local_of(server.get()).port, Protocol::tcp, true);
    const SocketInfo* found = find_local(sockets, local_of(server.get()));
    ::close(ready[1]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(found != nullptr);
    std::vector<int> pids;
    for (const auto& owner : found->owners) pids.push_back(owner.pid);
    CHECK(std::find(pids.begin(), pids.end(), getpid()) != pids.end());
    CHECK(std::find(pids.begin(), pids.end(), child) != pids.end());
}

TEST_CASE("ss's state names follow the kernel's numbering", "[sock_diag]") {
    const auto [number, name] = GENERATE(table<int, std::string>({
        {TCP_ESTABLISHED, "ESTAB"},
        {TCP_SYN_SENT, "SYN-SENT"},
        {TCP_SYN_RECV, "SYN-RECV"},
        {TCP_FIN_WAIT1, "FIN-WAIT-1"},
        {TCP_FIN_WAIT2, "FIN-WAIT-2"},
        {TCP_TIME_WAIT, "TIME-WAIT"},
        {TCP_CLOSE, "UNCONN"},
        {TCP_CLOSE_WAIT, "CLOSE-WAIT"},
        {TCP_LAST_ACK, "LAST-ACK"},
        {TCP_LISTEN, "LISTEN"},
        {TCP_CLOSING, "CLOSING"},
        {0, "UNKNOWN"},
        {200, "UNKNOWN"},
    }));
    CAPTURE(number);
    CHECK(ss_state_name(static_cast<std::uint8_t>(number)) == name);
}

TEST_CASE("an inet_diag_msg is decoded field by field", "[sock_diag][parse]") {
    // Built by hand from linux/inet_diag.h's layout: family, state, timer, retrans,
    // then inet_diag_sockid (sport, dport big-endian; src, dst 16 bytes; if; cookie[2]),
    // then expires, rqueue, wqueue, uid, inode (host order).
    std::vector<std::uint8_t> bytes(72, 0);
    bytes[0] = AF_INET;
    bytes[1] = TCP_ESTABLISHED;
    bytes[4] = 0x1f; bytes[5] = 0x90;  // sport 8080
    bytes[6] = 0x9c; bytes[7] = 0x40;  // dport 40000
    bytes[8] = 127; bytes[9] = 0; bytes[10] = 0; bytes[11] = 1;     // src 127.0.0.1
    bytes[24] = 127; bytes[25] = 0; bytes[26] = 0; bytes[27] = 2;   // dst 127.0.0.2
    const auto put32 = [&](std::size_t offset, std::uint32_t value) { std::memcpy(&bytes[offset], &value, 4); };
    put32(56, 3);       // rqueue
    put32(60, 5);       // wqueue
    put32(64, 1000);    // uid
    put32(68, 424242);  // inode

    auto parsed = parse_inet_diag_msg(bytes, Protocol::tcp);
    REQUIRE(parsed.has_value());
    CHECK(parsed->local.to_string() == "127.0.0.1:8080");
    CHECK(parsed->remote.to_string() == "127.0.0.2:40000");
    CHECK(parsed->kernel_state == TCP_ESTABLISHED);
    CHECK(parsed->recv_q == 3);
    CHECK(parsed->send_q == 5);
    CHECK(parsed->uid == 1000);
    CHECK(parsed->inode == 424242);

    SECTION("IPv6 uses all 16 address bytes") {
        bytes[0] = AF_INET6;
        std::fill(bytes.begin() + 8, bytes.begin() + 40, 0);
        bytes[23] = 1;  // src ::1
        bytes[24] = 0xfe; bytes[25] = 0x80; bytes[39] = 2;  // dst fe80::2
        auto v6 = parse_inet_diag_msg(bytes, Protocol::udp);
        REQUIRE(v6.has_value());
        CHECK(v6->local.to_string() == "[::1]:8080");
        CHECK(v6->remote.to_string() == "[fe80::2]:40000");
        CHECK(v6->protocol == Protocol::udp);
    }
    SECTION("a short payload is an error, not a read past its end") {
        for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{71}}) {
            CAPTURE(size);
            CHECK_FALSE(parse_inet_diag_msg(std::span(bytes.data(), size), Protocol::tcp).has_value());
        }
    }
    SECTION("an address family other than AF_INET/AF_INET6 is an error") {
        bytes[0] = AF_UNIX;
        CHECK_FALSE(parse_inet_diag_msg(bytes, Protocol::tcp).has_value());
    }
}

TEST_CASE("socket links in /proc/PID/fd are recognised and nothing else is", "[sock_diag][parse]") {
    const auto [text, inode] = GENERATE(table<std::string, std::optional<std::uint32_t>>({
        {"socket:[12345]", 12345u},
        {"socket:[0]", 0u},
        {"socket:[4294967295]", 4294967295u},
        {"socket:[4294967296]", std::nullopt},  // does not fit the kernel's 32-bit ino in inet_diag
        {"socket:[]", std::nullopt},
        {"socket:[12a]", std::nullopt},
        {"socket:[-1]", std::nullopt},
        {"socket:[12", std::nullopt},
        {"pipe:[12345]", std::nullopt},
        {"anon_inode:[eventpoll]", std::nullopt},
        {"/dev/null", std::nullopt},
        {"", std::nullopt},
    }));
    CAPTURE(text);
    CHECK(socket_inode_from_link(text) == inode);
}
