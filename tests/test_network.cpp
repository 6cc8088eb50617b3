// The lab kit's multi-host network (labkit/network.hpp): client - router - server, each a
// private network namespace, made without root. What the kernel of each host says.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "labkit/netns.hpp"
#include "labkit/network.hpp"
#include "labkit/nftables.hpp"

using nlohmann::json;
using namespace portlab;
using portlab::labkit::Network;

namespace {

sockaddr_in address_of(const IpAddress& address, Port port) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, address.to_string().c_str(), &to.sin_addr);
    return to;
}

std::string text_of(const sockaddr_in& address) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
    return text;
}

}  // namespace

TEST_CASE("client - router - server: a connection crosses the router, the server sees the client's address, TTL one less",
          "[netns][network]") {
    const auto facts = run_in_private_netns(
        [] {
            auto net = Network::build(labkit::client_router_server());
            if (!net) throw std::runtime_error(net.error().message);
            const auto server = *net->address("server");
            int listener = -1;
            auto made = net->in_node("server", [&] {
                listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                const auto any = address_of(IpAddress::any_v4(), 80);
                if (bind(listener, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 || listen(listener, 4) != 0)
                    throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
            });
            if (!made) throw std::runtime_error(made.error().message);
            const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            const auto to = address_of(server, 80);
            const bool connected = connect(client, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0;
            sockaddr_in peer{};
            socklen_t length = sizeof peer;
            const int accepted = accept(listener, reinterpret_cast<sockaddr*>(&peer), &length);
            // The TTL as the server's kernel received a datagram from the client (IP_RECVTTL
            // hands it over with each datagram; TCP gives no such thing).
            int udp_server = -1;
            auto bound = net->in_node("server", [&] {
                udp_server = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                const auto any = address_of(IpAddress::any_v4(), 53);
                const int on = 1;
                setsockopt(udp_server, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
                if (bind(udp_server, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0)
                    throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
            });
            if (!bound) throw std::runtime_error(bound.error().message);
            const int udp_client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            const auto dns = address_of(server, 53);
            (void)!sendto(udp_client, "q", 1, 0, reinterpret_cast<const sockaddr*>(&dns), sizeof dns);
            char byte = 0;
            char control[64];
            iovec io{&byte, 1};
            msghdr message{};
            message.msg_iov = &io;
            message.msg_iovlen = 1;
            message.msg_control = control;
            message.msg_controllen = sizeof control;
            int ttl = -1;
            if (recvmsg(udp_server, &message, 0) == 1)
                for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c))
                    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
            close(udp_client);
            close(udp_server);
            // What ss says inside the router: nothing of this connection (it only forwards).
            const auto router_sockets = net->run_in_node("router", {"ss", "-tanH"});
            close(accepted);
            close(client);
            close(listener);
            return json{{"connected", connected},
                        {"server", server.to_string()},
                        {"peer", text_of(peer)},
                        {"client", net->address("client")->to_string()},
                        {"ttl", ttl},
                        {"router_ss", router_sockets ? *router_sockets : router_sockets.error().message},
                        {"see", net->see_inside("router", "ss -tan")}};
        },
        {}, std::chrono::seconds(20));
    INFO((facts ? std::string() : facts.error().message));
    REQUIRE(facts.has_value());
    CAPTURE(facts->dump());
    CHECK(facts->at("connected") == true);
    CHECK(facts->at("server") == "198.51.100.2");  // documentation ranges, one per link
    CHECK(facts->at("client") == "192.0.2.1");
    CHECK(facts->at("peer") == "192.0.2.1");  // a router does not change addresses
    CHECK(facts->at("ttl") == 63);            // Linux sends 64; the router took one (RFC 791, RFC 1812 5.3.1)
    CHECK(facts->at("router_ss").get<std::string>().find("198.51.100.2:80") == std::string::npos);
    CHECK(facts->at("see").get<std::string>().find("nsenter --target") == 0);
}

TEST_CASE("the network's processes are gone when the body ends: nothing left behind", "[netns][network]") {
    const auto facts = run_in_private_netns(
        [] {
            auto net = Network::build(labkit::client_router_server());
            if (!net) throw std::runtime_error(net.error().message);
            return json{{"router", *net->pid_of("router")}, {"server", *net->pid_of("server")}};
        },
        {}, std::chrono::seconds(20));
    INFO((facts ? std::string() : facts.error().message));
    REQUIRE(facts.has_value());
    for (const auto* node : {"router", "server"}) {
        const auto pid = facts->at(node).get<int>();
        // The pids are those of the body's pid namespace, which is the host's: gone now.
        CHECK(kill(pid, 0) == -1);
        CHECK(errno == ESRCH);
    }
}

TEST_CASE("Network::entering runs a function inside the node's namespace, and still does after the Network is moved and gone",
          "[netns][network]") {
    const auto facts = run_in_private_netns(
        [] {
            auto net = Network::build(labkit::client_router_server());
            if (!net) throw std::runtime_error(net.error().message);
            const auto inode_of = [](const std::string& path) {
                struct stat seen {};
                if (stat(path.c_str(), &seen) != 0) throw std::runtime_error("stat " + path + ": " + std::strerror(errno));
                return static_cast<std::uint64_t>(seen.st_ino);
            };
            const auto here = [&] { return inode_of("/proc/thread-self/ns/net"); };
            json out;
            out["router"] = inode_of("/proc/" + std::to_string(*net->pid_of("router")) + "/ns/net");
            out["body"] = here();
            const auto enter_router = net->entering("router");
            const auto enter_nobody = net->entering("nobody");
            enter_router([&] { out["inside_before"] = here(); });
            {
                const Network moved = std::move(*net);  // the router's process exits with it
            }
            enter_router([&] { out["inside_after"] = here(); });
            out["after_returned_to"] = here();
            bool ran = false;
            enter_nobody([&] { ran = true; });
            out["nobody_ran"] = ran;
            return out;
        },
        {}, std::chrono::seconds(20));
    INFO((facts ? std::string() : facts.error().message));
    REQUIRE(facts.has_value());
    CHECK((*facts)["router"] != (*facts)["body"]);
    CHECK((*facts)["inside_before"] == (*facts)["router"]);
    CHECK((*facts)["inside_after"] == (*facts)["router"]);
    CHECK((*facts)["after_returned_to"] == (*facts)["body"]);
    CHECK((*facts)["nobody_ran"] == false);
}

TEST_CASE("a lab network's router may hold a firewall and NAT, but the host's namespace and a stranger's interface may not",
          "[netns][network][firewall]") {
    const auto outer = firewall::network_namespace_id();
    REQUIRE(outer);
    const auto facts = run_in_private_netns(
        [&] {
            auto net = Network::build(labkit::client_router_server());
            if (!net) throw std::runtime_error(net.error().message);
            json out;
            // The plain check still refuses the router: it holds veth ends.
            Result<firewall::PrivateNetnsToken> plain = fail("not asked");
            (void)net->in_node("router", [&] { plain = firewall::PrivateNetnsToken::confirm(*outer); });
            out["plain_refused"] = !plain.has_value();
            // The body's namespace asked about with the host's id as its own: refused.
            out["host_refused"] = !net->firewall_token("client", *firewall::network_namespace_id()).has_value();
            auto token = net->firewall_token("router", *outer);
            if (!token) throw std::runtime_error(token.error().message);
            (void)net->in_node("router", [&] {
                auto nft = firewall::Nftables::open(*token);
                if (!nft) throw std::runtime_error(nft.error().message);
                auto applied = nft->run(
                    "add table ip portlab_nat\n"
                    "add chain ip portlab_nat post { type nat hook postrouting priority srcnat; }\n"
                    "add rule ip portlab_nat post oifname \"router-server\" masquerade\n");
                if (!applied) throw std::runtime_error(applied.error().message);
                out["ruleset"] = *nft->list_ruleset();
            });
            // Opened in the router, the context refuses to run anywhere else.
            auto elsewhere = firewall::Nftables::open(*token);
            out["elsewhere_refused"] = !elsewhere.has_value();
            return out;
        },
        {}, std::chrono::seconds(15));
    INFO((facts ? std::string() : facts.error().message));
    REQUIRE(facts.has_value());
    CHECK((*facts)["plain_refused"] == true);
    CHECK((*facts)["host_refused"] == true);
    CHECK((*facts)["elsewhere_refused"] == true);
    CHECK((*facts)["ruleset"].get<std::string>().find("masquerade") != std::string::npos);
}
