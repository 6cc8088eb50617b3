// Lab 14: a router between client and server, in private namespaces. The lab's report is
// held to what the kernel answered (TTL, ICMP type/code/sender, path MTU, reassembly), and
// its network to what iproute2 and sysctl show inside each namespace while it pauses.

#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <unistd.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab14_router");

// ip's path: run_in_namespace_of executes it without a shell.
std::string ip_path() {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
        if (access(candidate, X_OK) == 0) return candidate;
    FAIL("ip (iproute2) not found");
    return {};
}

json run_json(const std::string& arguments) {
    const auto run = test::run_command(test::shell_quote(lab) + " --json " + arguments, 90);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
}

}  // namespace

TEST_CASE("lab14: TTL, the router's ICMP and the path MTU are what the kernel answered", "[lab14][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto facts = run_json("--mtu 1000 --probes 40");
    CHECK(facts.at("ttl_at_server") == 63);  // 64 from the client, one router
    const auto& ttl_1 = facts.at("ttl_1");
    CHECK(ttl_1.at("type") == 11);  // time exceeded, from the router's address on the client's link
    CHECK(ttl_1.at("code") == 0);
    CHECK(ttl_1.at("from") == "192.0.2.2");
    const auto& unreachable = facts.at("host_unreachable");
    CHECK(unreachable.at("type") == 3);
    CHECK(unreachable.at("code") == 1);
    CHECK(unreachable.at("from") == "192.0.2.2");  // the router, not the server
    CHECK(unreachable.at("errno") == EHOSTUNREACH);
    const auto& scan = facts.at("scan");
    CHECK(scan.at("refused").get<int>() >= 1);   // the server answers...
    CHECK(scan.at("refused").get<int>() <= 20);  // ...at its ICMP rate limit
    const auto& mtu = facts.at("path_mtu");
    CHECK(mtu.at("icmp").at("type") == 3);
    CHECK(mtu.at("icmp").at("code") == 4);          // fragmentation needed
    CHECK(mtu.at("icmp").at("info") == 1000);       // the next hop's MTU, in the ICMP message
    CHECK(mtu.at("learned") == 1000);               // IP_MTU
    CHECK(mtu.at("second_send_errno") == EMSGSIZE);
    CHECK(mtu.at("fragmented_datagram_bytes") == 3000);
}

TEST_CASE("lab14's namespaces, seen from outside while it pauses: addresses, routes, forwarding", "[lab14][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    test::PausedRun lab_run(lab, {});
    std::string client_routes, router_addresses, server_addresses, router_forwarding, server_forwarding;
    const int status = lab_run.run([&](int pause) {
        if (pause != 1) return;
        // The lab's namespace child is the client; the router and the server are its children.
        const pid_t client = test::namespace_child(lab_run.pid());
        REQUIRE(client > 0);
        std::ifstream children("/proc/" + std::to_string(client) + "/task/" + std::to_string(client) + "/children");
        pid_t first = -1, second = -1;
        children >> first >> second;
        REQUIRE(first > 0);
        REQUIRE(second > 0);
        client_routes = test::run_in_namespace_of(client, {ip_path(), "-4", "route"});
        const auto first_addresses = test::run_in_namespace_of(first, {ip_path(), "-4", "-o", "addr"});
        const auto second_addresses = test::run_in_namespace_of(second, {ip_path(), "-4", "-o", "addr"});
        const bool first_is_router = first_addresses.find("198.51.100.1") != std::string::npos;
        router_addresses = first_is_router ? first_addresses : second_addresses;
        server_addresses = first_is_router ? second_addresses : first_addresses;
        const pid_t router = first_is_router ? first : second;
        const pid_t server = first_is_router ? second : first;
        router_forwarding = test::run_in_namespace_of(router, {"/bin/cat", "/proc/sys/net/ipv4/ip_forward"});
        server_forwarding = test::run_in_namespace_of(server, {"/bin/cat", "/proc/sys/net/ipv4/ip_forward"});
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(client_routes.find("default via 192.0.2.2") != std::string::npos);
    CHECK(router_addresses.find("192.0.2.2/24") != std::string::npos);
    CHECK(router_addresses.find("198.51.100.1/24") != std::string::npos);
    CHECK(server_addresses.find("198.51.100.2/24") != std::string::npos);
    CHECK(router_forwarding == "1\n");  // the router forwards; the server does not
    CHECK(server_forwarding == "0\n");
}

TEST_CASE("lab14 rejects bad arguments with exit status 2", "[lab14]") {
    for (const auto* bad : {"--mtu 100", "--mtu 9000", "--probes 0", "--probes many", "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab14_router");
    }
}

TEST_CASE("lab14 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab14][conventions]") {
    test::check_lab_conventions({"lab14_router", false, ""});
}
