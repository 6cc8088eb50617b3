// Lab 18: a stateful firewall on a router between namespaces. While the lab pauses, the test
// asks each namespace itself: conntrack -L and nft on the router (what passed, which rule
// counted it), ss at both ends, and nmap run in the client's namespace, whose verdict for each
// scan type must be the lab's.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab18_stateful_firewall");

using test::tool_path;

// The lab's namespace child is the client; the router and the server are its children.
struct Nodes {
    pid_t client = -1, router = -1, server = -1;
};

Nodes find_nodes(pid_t lab_pid) {
    auto found = test::network_nodes(lab_pid, {{"router", "192.0.2.2/"}, {"server", "198.51.100.2/"}});
    return {found["first"], found["router"], found["server"]};
}

bool contains(const std::string& text, const std::string& pattern) { return std::regex_search(text, std::regex(pattern)); }

// nmap's verdict for ports 8080 and 8081 of the server, scanning from `client` with `option`
// ("-sA"): port -> state, read from its greppable output ("8080/filtered/tcp//http-proxy///").
std::map<std::string, std::string> nmap_states(pid_t client, const std::string& option) {
    const auto text = test::run_in_namespace_of(client, {tool_path("nmap"), "--privileged", "-Pn", "-n", option, "--max-retries",
                                                         "1", "--host-timeout", "30s", "-p", "8080,8081", "-oG", "-",
                                                         "198.51.100.2"});
    INFO("nmap " << option << ":\n" << text);
    std::map<std::string, std::string> states;
    const std::regex port(R"((\d+)/([a-z|]+)/(tcp|udp)/)");
    for (std::sregex_iterator it(text.begin(), text.end(), port), end; it != end; ++it) states[(*it)[1]] = (*it)[2];
    REQUIRE(states.size() == 2);
    return states;
}

using NmapView = std::map<std::string, std::map<std::string, std::string>>;  // scan -> port -> state

NmapView nmap_all(pid_t client) {
    NmapView view;
    for (const auto& [scan, option] : std::vector<std::pair<std::string, std::string>>{
             {"connect", "-sT"}, {"syn", "-sS"}, {"ack", "-sA"}, {"udp", "-sU"}})
        view[scan] = nmap_states(client, option);
    return view;
}

// A rule of the router's kernel, as nft lists it in the router's namespace: the match in nft's
// own words (`nft list ruleset`, its counter and comment struck out) read with the hub's reader,
// its comment, and its verdict as `nft -j list ruleset` states it.
struct KernelRule {
    std::string comment;
    portlab::FirewallRule rule;
    std::string verdict;
};

std::vector<KernelRule> kernel_rules(pid_t router) {
    const auto listing = test::run_in_namespace_of(router, {tool_path("nft"), "list", "ruleset"});
    INFO("nft list ruleset:\n" << listing);
    std::vector<KernelRule> rules;
    auto chain = portlab::FirewallChain::input;
    const std::regex counter(R"( counter packets \d+ bytes \d+)"), comment(R"re( comment "([^"]*)"$)re"), hook(R"(hook (\w+))");
    for (auto line : test::lines_of(listing)) {
        line.erase(0, line.find_first_not_of(" \t"));
        std::smatch found;
        if (std::regex_search(line, found, hook)) chain = portlab::parse_firewall_chain(found[1].str()).value();
        if (line.starts_with("table ") || line.starts_with("chain ") || line.starts_with("type ") || line == "}" || line.empty())
            continue;
        KernelRule rule;
        if (std::regex_search(line, found, comment)) rule.comment = found[1].str();
        line = std::regex_replace(std::regex_replace(line, comment, ""), counter, "");
        const auto read = portlab::parse_nft_rule(line, chain);
        INFO(line);
        REQUIRE(read);
        rule.rule = test::as_nft_lists(*read);
        rules.push_back(rule);
    }
    const auto listed = json::parse(test::run_in_namespace_of(router, {tool_path("nft"), "-j", "list", "ruleset"}));
    std::size_t n = 0;
    for (const auto& item : listed.at("nftables")) {
        if (!item.contains("rule")) continue;
        REQUIRE(n < rules.size());
        for (const auto& statement : item["rule"].at("expr"))
            for (const char* verdict : {"accept", "drop", "reject"})
                if (statement.contains(verdict)) rules[n].verdict = verdict;
        ++n;
    }
    CHECK(n == rules.size());
    return rules;
}

}  // namespace

// The picture must show the router's firewall as its kernel holds it: at every pause the
// rules the replayed trace has in force on the router (rule_added, not yet rule_removed) are
// the rules nft lists in the router's namespace, in order, with the same match and verdict.
TEST_CASE("lab18: at every pause the trace's rules on the router are the ones nft lists in its namespace",
          "[lab18][netns][trace]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile trace("lab18.jsonl");
    test::PausedRun lab_run(lab, {"--timeout", "300", "--trace", trace.path}, std::chrono::seconds(110));
    int checked = 0, with_rules = 0;
    const int status = lab_run.run([&](int pause) {
        const auto kernel = kernel_rules(find_nodes(lab_run.pid()).router);
        const auto state = test::replay_of(trace.path);
        std::vector<const portlab::replay::RuleInForce*> replayed;
        for (const auto& host : state.hosts())
            for (const auto& rule : host.rules) {
                CHECK(host.name == "router");
                replayed.push_back(&rule);
            }
        CAPTURE(pause);
        REQUIRE(replayed.size() == kernel.size());
        for (std::size_t i = 0; i < kernel.size(); ++i) {
            CAPTURE(i, portlab::nft_text(kernel[i].rule).value_or("?"));
            CHECK(replayed[i]->id == kernel[i].comment);
            CHECK(test::as_nft_lists(replayed[i]->rule) == kernel[i].rule);
            CHECK(portlab::to_string(replayed[i]->rule.action) == kernel[i].verdict);
            CHECK(replayed[i]->rule.chain == portlab::FirewallChain::forward);
        }
        ++checked;
        if (!kernel.empty()) ++with_rules;
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(checked >= 7);
    CHECK(with_rules >= 4);  // the stateful chain from step 3, the stateless one from step 7
}

TEST_CASE("lab18: conntrack, nft counters, ss and nmap agree: replies pass, new connections from outside do not",
          "[lab18][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    REQUIRE(test::tool_available("nmap"));
    const test::TempFile report("lab18.json");
    test::PausedRun lab_run(lab, {"--json", "--timeout", "500"}, std::chrono::seconds(110), report.path);
    // Pause n comes after step n, with what that step made still open.
    std::string inside_out_conntrack, inside_out_ruleset, inside_out_server_ss;  // pause 4
    std::string outside_in_client_ss, outside_in_server_ss, outside_in_conntrack;  // pause 5
    NmapView through_stateful, through_stateless;                                // pauses 6 and 7
    const int status = lab_run.run([&](int pause) {
        if (pause < 4 || pause > 7) return;
        const auto nodes = find_nodes(lab_run.pid());
        if (pause == 4) {
            inside_out_conntrack = test::run_in_namespace_of(nodes.router, {tool_path("conntrack"), "-L"});
            inside_out_ruleset = test::run_in_namespace_of(nodes.router, {tool_path("nft"), "list", "ruleset"});
            inside_out_server_ss = test::run_in_namespace_of(nodes.server, {tool_path("ss"), "-Htan"});
        } else if (pause == 5) {
            outside_in_client_ss = test::run_in_namespace_of(nodes.client, {tool_path("ss"), "-Htan"});
            outside_in_server_ss = test::run_in_namespace_of(nodes.server, {tool_path("ss"), "-Htan"});
            outside_in_conntrack = test::run_in_namespace_of(nodes.router, {tool_path("conntrack"), "-L"});
        } else if (pause == 6) {
            through_stateful = nmap_all(nodes.client);
        } else {
            through_stateless = nmap_all(nodes.client);
        }
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);

    // Inside out: the server's connection and datagram are tracked, and their replies were
    // accepted by the "replies" rule (ct state established).
    INFO("conntrack:\n" << inside_out_conntrack << "ruleset:\n" << inside_out_ruleset << "server ss:\n" << inside_out_server_ss);
    CHECK(contains(inside_out_conntrack, R"(tcp .* ESTABLISHED src=198\.51\.100\.2 dst=192\.0\.2\.1 sport=\d+ dport=9000 )"
                                         R"(src=192\.0\.2\.1 dst=198\.51\.100\.2 sport=9000 dport=\d+ \[ASSURED\])"));
    CHECK(contains(inside_out_conntrack, R"(udp .* src=198\.51\.100\.2 dst=192\.0\.2\.1 sport=\d+ dport=9000 )"
                                         R"(src=192\.0\.2\.1 dst=198\.51\.100\.2 sport=9000)"));
    CHECK(contains(inside_out_ruleset, R"(counter packets [1-9]\d* bytes \d+ accept comment "replies")"));
    CHECK(contains(inside_out_server_ss, R"(ESTAB\s+\d+\s+\d+\s+198\.51\.100\.2:\d+\s+192\.0\.2\.1:9000)"));

    // Outside in: the client waits in SYN-SENT; the server never saw the SYN, and conntrack
    // kept no entry for the dropped packet.
    INFO("client ss:\n" << outside_in_client_ss << "server ss:\n" << outside_in_server_ss << "conntrack:\n" << outside_in_conntrack);
    CHECK(contains(outside_in_client_ss, R"(SYN-SENT\s+\d+\s+\d+\s+192\.0\.2\.1:\d+\s+198\.51\.100\.2:8080)"));
    CHECK_FALSE(contains(outside_in_server_ss, R"(198\.51\.100\.2:8080\s+192\.0\.2\.1)"));
    CHECK_FALSE(contains(outside_in_conntrack, "dport=8080"));

    // nmap through each firewall; and the lab's scans said the same.
    std::ifstream file(report.path);
    const auto facts = json::parse(file);
    for (const auto& [firewall, nmap] : {std::pair{std::string("stateful"), through_stateful},
                                         std::pair{std::string("stateless"), through_stateless}}) {
        for (const auto& [scan, ports] : nmap)
            for (const auto& [port, state] : ports) {
                CAPTURE(firewall, scan, port);
                CHECK(facts.at("scans").at(firewall).at(scan).at("ports").at(port).at("state") == state);
            }
    }
    // What nmap reports is the lesson: through the stateful firewall every TCP probe is
    // dropped, the ACK probes included; the stateless one lets the ACKs reach the server.
    CHECK(through_stateful.at("ack").at("8080") == "filtered");
    CHECK(through_stateful.at("syn").at("8080") == "filtered");
    CHECK(through_stateful.at("udp").at("8081") == "open|filtered");
    CHECK(through_stateless.at("ack").at("8080") == "unfiltered");
    CHECK(through_stateless.at("ack").at("8081") == "unfiltered");
    CHECK(through_stateless.at("syn").at("8080") == "filtered");
    CHECK(through_stateless.at("udp").at("8081") == "closed");
}

TEST_CASE("lab18 rejects bad arguments with exit status 2", "[lab18]") {
    for (const auto* bad : {"--timeout 10", "--timeout 60000", "--timeout soon", "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab18_stateful_firewall");
    }
}

TEST_CASE("lab18 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab18][conventions]") {
    test::check_lab_conventions({"lab18_stateful_firewall", false, "--timeout 300"});
}
