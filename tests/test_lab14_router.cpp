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
    // The router's ARP: 3 requests 1 s apart (mcast_solicit, retrans_time_ms) before it gives up.
    CHECK(unreachable.at("after_ms").get<int>() >= 2500);
    const auto& own_port = facts.at("router_port_unreachable");  // UDP to a port of the router's own
    CHECK(own_port.at("type") == 3);
    CHECK(own_port.at("code") == 3);
    CHECK(own_port.at("from") == "192.0.2.2");
    CHECK(own_port.at("errno") == ECONNREFUSED);
    const auto& prohibited = facts.at("admin_prohibited");  // the router's reject rule, to a TCP connect()
    CHECK(prohibited.at("type") == 3);
    CHECK(prohibited.at("code") == 13);
    CHECK(prohibited.at("from") == "192.0.2.2");
    CHECK(prohibited.at("errno") == EHOSTUNREACH);
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

namespace {

// The processes that hold the three namespaces of a paused lab14 (the client is the lab's
// namespace child).
struct Nodes {
    pid_t client = -1, router = -1, server = -1;
};

Nodes find_nodes(pid_t lab_pid) {
    const auto nodes = test::network_nodes(lab_pid, {{"router", "198.51.100.1/"}, {"server", "198.51.100.2/"}});
    return {nodes.at("first"), nodes.at("router"), nodes.at("server")};
}

}  // namespace

TEST_CASE("lab14's namespaces, seen from outside while it pauses: addresses, routes, forwarding", "[lab14][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    test::PausedRun lab_run(lab, {});
    std::string client_routes, router_addresses, server_addresses, router_forwarding, server_forwarding;
    const int status = lab_run.run([&](int pause) {
        if (pause != 1) return;
        const auto nodes = find_nodes(lab_run.pid());
        client_routes = test::run_in_namespace_of(nodes.client, {ip_path(), "-4", "route"});
        router_addresses = test::run_in_namespace_of(nodes.router, {ip_path(), "-4", "-o", "addr"});
        server_addresses = test::run_in_namespace_of(nodes.server, {ip_path(), "-4", "-o", "addr"});
        router_forwarding = test::run_in_namespace_of(nodes.router, {"/bin/cat", "/proc/sys/net/ipv4/ip_forward"});
        server_forwarding = test::run_in_namespace_of(nodes.server, {"/bin/cat", "/proc/sys/net/ipv4/ip_forward"});
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

// Step 5's rule, judged by the peer tools while the lab pauses before step 6: nft lists it
// in the router's namespace, and nmap -sT from the client's namespace calls the rejected
// port filtered for the ICMP the lab read (host-unreach: code 13 is EHOSTUNREACH) and a
// port the router simply does not listen on closed.
TEST_CASE("lab14 step 5: nft lists the router's reject rule and nmap -sT from the client calls port 23 filtered, 24 closed",
          "[lab14][netns][nmap]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    test::PausedRun lab_run(lab, {"--probes", "5"});
    std::string ruleset, scan;
    const int status = lab_run.run([&](int pause) {
        if (pause != 6) return;
        const auto nodes = find_nodes(lab_run.pid());
        ruleset = test::run_in_namespace_of(nodes.router, {test::tool_path("nft"), "list", "ruleset"});
        scan = test::run_in_namespace_of(nodes.client, {test::tool_path("nmap"), "-n", "-Pn", "-sT", "--reason", "-oX", "-",
                                                        "-p", "23,24", "192.0.2.2"});
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(ruleset.find("tcp dport 23 reject with icmp") != std::string::npos);
    INFO(scan);
    CHECK(scan.find(R"(portid="23"><state state="filtered" reason="host-unreach")") != std::string::npos);
    CHECK(scan.find(R"(portid="24"><state state="closed" reason="conn-refused")") != std::string::npos);
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
