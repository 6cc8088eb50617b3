// Issue 10: a lab's trace must let portlab-viz rebuild what the kernel had at every step.
// Labs 16, 17 and 18 build networks of namespaces (labkit/network.hpp). At each pause, every
// node's sockets as the replayed trace holds them (replay::State, as portlab-viz replays it)
// must be the sockets sock_diag lists inside that node's namespace, as ss would there.
// A node is matched to the trace's host by an address only they share (`ip -o addr`).

#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

namespace test = portlab::test;
using portlab::replay::State;

namespace {

// The processes that hold a paused network lab's namespaces: the lab's namespace child and
// its children, one per node.
std::vector<pid_t> node_processes(pid_t lab) {
    const pid_t first = test::namespace_child(lab);
    REQUIRE(first > 0);
    std::vector<pid_t> nodes{first};
    std::ifstream children("/proc/" + std::to_string(first) + "/task/" + std::to_string(first) + "/children");
    for (pid_t child; children >> child;) nodes.push_back(child);
    return nodes;
}

// The replayed host that has one of the addresses `ip -o addr` lists in the node, if any.
std::optional<std::string> host_of_node(const State& state, pid_t node) {
    const auto listed = test::run_in_namespace_of(node, {test::tool_path("ip"), "-o", "addr"});
    for (const auto& host : state.hosts())
        for (const auto& address : host.addresses) {
            if (address.is_loopback() || address.is_unspecified()) continue;
            if (listed.find(" " + address.to_string() + "/") != std::string::npos) return host.name;
        }
    return std::nullopt;
}

// Runs `lab` with --trace under --step; at every pause holds each node's replayed sockets
// to its kernel's. Returns how many sockets were compared in all.
std::size_t compare_every_node_at_every_pause(const std::string& lab, std::vector<std::string> args) {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile trace("network-lab.jsonl");
    args.insert(args.end(), {"--trace", trace.path});
    test::PausedRun lab_run(test::bin_path(lab), args, std::chrono::seconds(150));
    std::size_t compared = 0;
    int pauses = 0;
    const int status = lab_run.run([&](int pause) {
        ++pauses;
        const State state = test::replay_of(trace.path);
        std::set<std::string> all_hosts;
        for (const auto& host : state.hosts()) all_hosts.insert(host.name);
        std::set<std::string> matched;
        for (const pid_t node : node_processes(lab_run.pid())) {
            const auto host = host_of_node(state, node);
            const auto kernel = test::sockets_in_namespace_of(node, /*udp=*/true, /*ipv6=*/true);
            const std::string when = "pause " + std::to_string(pause) + ", node " + host.value_or("(no host of the trace)");
            if (!host) {  // a node the story never names must hold nothing the story made
                INFO(when);
                CHECK(kernel.empty());
                continue;
            }
            matched.insert(*host);
            std::set<std::string> others = all_hosts;
            others.erase(*host);
            const auto replayed = test::replayed_sockets(state, others);
            test::check_same_sockets(replayed, kernel, when);
            compared += replayed.size();
        }
        // Every host that holds a socket in the replay is a node the test looked into.
        for (const auto& host : state.hosts())
            if (!matched.contains(host.name)) {
                INFO("pause " << pause << ": host " << host.name << " matched no namespace");
                CHECK(test::replayed_sockets(state, [&] {
                          auto others = all_hosts;
                          others.erase(host.name);
                          return others;
                      }()).empty());
            }
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(pauses >= 3);
    return compared;
}

}  // namespace

TEST_CASE("at every pause, lab16's replayed trace holds each namespace's sockets: client, second client, router, server",
          "[lab16][netns][replay]") {
    CHECK(compare_every_node_at_every_pause("lab16_nat", {"--syn-wait", "1"}) > 0);
}

TEST_CASE("at every pause, lab17's replayed trace holds each namespace's sockets", "[lab17][netns][replay]") {
    CHECK(compare_every_node_at_every_pause("lab17_port_forwarding", {"--wait", "500"}) > 0);
}

TEST_CASE("at every pause, lab18's replayed trace holds each namespace's sockets", "[lab18][netns][replay]") {
    CHECK(compare_every_node_at_every_pause("lab18_stateful_firewall", {"--timeout", "300"}) > 0);
}
