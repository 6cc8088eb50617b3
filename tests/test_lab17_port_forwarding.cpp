// Lab 17: port forwarding (DNAT) in private namespaces. While the lab pauses, the test looks
// into each namespace itself: ss says who each end thinks its peer is, conntrack -L on the
// router says which two tuples the kernel maps onto each other, /proc/net/snmp how many
// resets the hairpin client sent. The lab's --json report is then held to those answers.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab17_port_forwarding");

using test::tool_path;

// The lab's namespace child is the client; the other nodes are its children.
struct Nodes {
    pid_t client = -1, router = -1, server = -1, inside = -1;
};

Nodes find_nodes(pid_t lab_pid) {
    auto found = test::network_nodes(lab_pid, {{"router", "192.0.2.2/"}, {"server", "198.51.100.2/"}, {"inside", "203.0.113.2/"}});
    return {found["first"], found["router"], found["server"], found["inside"]};
}

std::string ss(pid_t node) { return test::run_in_namespace_of(node, {tool_path("ss"), "-Htan"}); }
std::string conntrack(pid_t node) { return test::run_in_namespace_of(node, {tool_path("conntrack"), "-L"}); }

// The value of a /proc/net/snmp counter ("Tcp", "OutRsts") in a namespace.
long snmp_counter(pid_t node, const std::string& protocol, const std::string& name) {
    const auto text = test::run_in_namespace_of(node, {"/bin/cat", "/proc/net/snmp"});
    std::istringstream lines(text);
    std::string names, values;
    while (std::getline(lines, names) && std::getline(lines, values)) {
        if (names.rfind(protocol + ":", 0) != 0) continue;
        std::istringstream n(names), v(values);
        for (std::string key, value; n >> key && v >> value;)
            if (key == name) return std::stol(value);
    }
    FAIL("no counter " + protocol + " " + name);
    return -1;
}

// The first match of `pattern` in `text`: the whole match, then its groups; empty when none.
std::vector<std::string> find_line(const std::string& text, const std::string& pattern) {
    std::smatch match;
    if (!std::regex_search(text, match, std::regex(pattern))) return {};
    return {match.begin(), match.end()};
}

}  // namespace

TEST_CASE("lab17: ss and conntrack in each namespace show DNAT, the peers each end sees, and hairpin",
          "[lab17][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile report("lab17.json");
    test::PausedRun lab_run(lab, {"--json"}, std::chrono::seconds(90), report.path);
    // Pause n comes after step n, with what that step made still open.
    std::string client_ss, server_ss, forward_conntrack;      // pause 3: the forwarded connection
    std::string inside_ss, direct_conntrack;                  // pause 5: the hairpin without masquerade
    long inside_resets = -1;
    std::string masqueraded_conntrack, masqueraded_server_ss;  // pause 6: with hairpin masquerade
    const int status = lab_run.run([&](int pause) {
        if (pause != 3 && pause != 5 && pause != 6) return;
        const auto nodes = find_nodes(lab_run.pid());
        if (pause == 3) {
            client_ss = ss(nodes.client);
            server_ss = ss(nodes.server);
            forward_conntrack = conntrack(nodes.router);
        } else if (pause == 5) {
            inside_ss = ss(nodes.inside);
            direct_conntrack = conntrack(nodes.router);
            inside_resets = snmp_counter(nodes.inside, "Tcp", "OutRsts");
        } else {
            masqueraded_conntrack = conntrack(nodes.router);
            masqueraded_server_ss = ss(nodes.server);
        }
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);

    // Outside -> 192.0.2.2:8080 -> 198.51.100.2:80: the client's socket has the router's
    // outside address as its peer; the server's has the client's real address.
    INFO("client ss:\n" << client_ss << "server ss:\n" << server_ss << "router conntrack:\n" << forward_conntrack);
    const auto client = find_line(client_ss, R"(ESTAB\s+\d+\s+\d+\s+192\.0\.2\.1:(\d+)\s+192\.0\.2\.2:8080)");
    REQUIRE(!client.empty());
    const std::string client_port = client[1];
    CHECK(!find_line(server_ss, R"(ESTAB\s+\d+\s+\d+\s+198\.51\.100\.2:80\s+192\.0\.2\.1:)" + client_port).empty());
    // One conntrack entry, two tuples: the original as the client sent it, the reply as the
    // server sends it.
    CHECK(!find_line(forward_conntrack, "ESTABLISHED src=192\\.0\\.2\\.1 dst=192\\.0\\.2\\.2 sport=" + client_port +
                                            " dport=8080 src=198\\.51\\.100\\.2 dst=192\\.0\\.2\\.1 sport=80 dport=" +
                                            client_port)
               .empty());

    // Hairpin without masquerade: the router rewrote the SYN but never saw a reply; the inside
    // host is still waiting for 192.0.2.2:8080 and has been sending resets.
    INFO("inside ss:\n" << inside_ss << "router conntrack:\n" << direct_conntrack);
    const auto waiting = find_line(inside_ss, R"(SYN-SENT\s+\d+\s+\d+\s+203\.0\.113\.2:(\d+)\s+192\.0\.2\.2:8080)");
    REQUIRE(!waiting.empty());
    const std::string inside_port = waiting[1];
    CHECK(!find_line(direct_conntrack, "SYN_SENT src=203\\.0\\.113\\.2 dst=192\\.0\\.2\\.2 sport=" + inside_port +
                                           " dport=8080 \\[UNREPLIED\\] src=198\\.51\\.100\\.2 dst=203\\.0\\.113\\.2 sport=80")
               .empty());
    CHECK(inside_resets >= 1);

    // With hairpin masquerade the reply tuple is addressed to the router, and the server's
    // socket has the router as its peer.
    INFO("router conntrack:\n" << masqueraded_conntrack << "server ss:\n" << masqueraded_server_ss);
    const auto masqueraded = find_line(masqueraded_conntrack,
                                       R"(ESTABLISHED src=203\.0\.113\.2 dst=192\.0\.2\.2 sport=(\d+) dport=8080 )"
                                       R"(src=198\.51\.100\.2 dst=198\.51\.100\.1 sport=80 dport=(\d+))");
    REQUIRE(!masqueraded.empty());
    const std::string router_port = masqueraded[2];
    CHECK(!find_line(masqueraded_server_ss, R"(ESTAB\s+\d+\s+\d+\s+198\.51\.100\.2:80\s+198\.51\.100\.1:)" + router_port)
               .empty());

    // The lab's report says what the kernel said.
    std::ifstream file(report.path);
    const auto facts = json::parse(file);
    CHECK(facts.at("from_outside").at("client").at("peer") == "192.0.2.2:8080");
    CHECK(facts.at("from_outside").at("server_peer") == "192.0.2.1:" + client_port);
    CHECK(facts.at("hairpin_outside_only").at("inside").at("errno") == "ECONNREFUSED");
    const auto& direct = facts.at("hairpin_without_masquerade");
    CHECK(direct.at("inside").at("local") == "203.0.113.2:" + inside_port);
    CHECK(direct.at("inside").at("answered") == false);
    CHECK(direct.at("synack_from") == "198.51.100.2:80");
    CHECK(direct.at("resets_sent").get<int>() >= 1);
    const auto& masq = facts.at("hairpin_with_masquerade");
    CHECK(masq.at("inside").at("peer") == "192.0.2.2:8080");
    CHECK(masq.at("server_peer") == "198.51.100.1:" + router_port);
}

TEST_CASE("lab17: the trace's nat events are the translations conntrack -L lists in the router, at every pause",
          "[lab17][netns][trace]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile trace("lab17-nat.jsonl");
    test::PausedRun lab_run(lab, {"--trace", trace.path}, std::chrono::seconds(90));
    int pauses = 0;
    const int status = lab_run.run([&](int pause) {
        ++pauses;
        test::check_translations_match(trace.path, find_nodes(lab_run.pid()).router, "pause " + std::to_string(pause));
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(pauses >= 6);
    // The story's translations, in the finished trace: the forwarded connection (dnat), the two
    // hairpin attempts after the rule matched the address (dnat), the last one masqueraded too.
    std::size_t dnat = 0, snat = 0;
    for (const auto& [id, events] : test::traced_translations(trace.path))
        for (const auto& event : events) ++(event.kind == portlab::trace::NatKind::dnat ? dnat : snat);
    CHECK(dnat == 3);
    CHECK(snat == 1);
}

TEST_CASE("lab17 rejects bad arguments with exit status 2", "[lab17]") {
    for (const auto* bad : {"--public-port 0", "--public-port 70000", "--public-port 80", "--wait 10", "--wait soon",
                            "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab17_port_forwarding");
    }
}

TEST_CASE("lab17 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab17][conventions]") {
    test::check_lab_conventions({"lab17_port_forwarding", false, ""});
}
