// lab09_firewall run with --json: the states its scans report must follow from the rules
// the kernel was given, as the kernel answered them (RST, ICMP, silence), and the rules
// must be in the ruleset the lab listed back from the kernel.

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/packet.hpp"
#include "portlab/scan.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab::test;

namespace {

const json* find_entry(const json& scan, int port) {
    for (const auto& entry : scan)
        if (entry["port"] == port) return &entry;
    return nullptr;
}

}  // namespace

constexpr int timeout_ms = 300;

// One run of the lab, shared by every SECTION (each SECTION re-enters the TEST_CASE).
struct LabRun {
    TempDir dir;
    std::string trace_path = dir.file("lab09.trace");
    CommandResult result = run_command(bin_path("lab09_firewall") + " --json --timeout " + std::to_string(timeout_ms) +
                                           " --port 9000 --trace " + shell_quote(trace_path),
                                       60);
};

const LabRun& lab_run() {
    static const LabRun run;
    return run;
}

TEST_CASE("lab09 scans a private namespace's firewall: drop is filtered and slow, reject is closed and fast", "[lab09]") {
    const auto& run = lab_run();
    const auto& trace_path = run.trace_path;
    INFO(run.result.err);
    REQUIRE(run.result.exit_code == 0);
    const auto facts = json::parse(run.result.out);

    SECTION("the lab ran in a network namespace other than the test's") {
        struct stat own {};
        REQUIRE(stat("/proc/self/ns/net", &own) == 0);
        CHECK(facts["namespace"]["netns_id"].get<std::uint64_t>() != static_cast<std::uint64_t>(own.st_ino));
        CHECK(facts["namespace"]["interfaces"] == json::array({"lo"}));
    }

    SECTION("the rules asked for are in the kernel's ruleset") {
        const std::string ruleset = facts["ruleset_text"];
        CHECK(ruleset.find("table inet portlab") != std::string::npos);
        CHECK(ruleset.find("tcp dport 9001 drop") != std::string::npos);
        CHECK(ruleset.find("tcp dport 9002 reject with tcp reset") != std::string::npos);
        CHECK(ruleset.find("udp dport 9001 drop") != std::string::npos);
        // nft prints "reject" alone for icmpx port-unreachable: it is the default of an inet reject.
        CHECK(ruleset.find("udp dport 9002 reject") != std::string::npos);
        CHECK(ruleset.find("9000") == std::string::npos);  // the open port has no rule
        CHECK(facts["ruleset_json"].contains("nftables"));
    }

    SECTION("TCP connect scan: each state follows from the port's rule and listener") {
        const auto& scan = facts["tcp_scan"];
        REQUIRE(scan.size() == 4);
        const json expected[] = {{{"port", 9000}, {"state", "open"}, {"reason", "syn-ack"}},
                                 {{"port", 9001}, {"state", "filtered"}, {"reason", "no-response"}},
                                 // nmap -sT names what connect() said: ECONNREFUSED is "conn-refused"
                                 // (nmap's "reset" is a raw scan's RST).
                                 {{"port", 9002}, {"state", "closed"}, {"reason", "conn-refused"}},
                                 {{"port", 9003}, {"state", "closed"}, {"reason", "conn-refused"}}};
        for (const auto& want : expected) {
            CAPTURE(want.dump());
            const json* got = find_entry(scan, want["port"]);
            REQUIRE(got != nullptr);
            CHECK((*got)["state"] == want["state"]);
            CHECK((*got)["reason"] == want["reason"]);
        }
        CHECK((*find_entry(scan, 9002))["errno"] == "ECONNREFUSED");
        // Ordering facts: the drop made the probe wait its whole timeout; both refusals
        // came back before that.
        const auto filtered_us = (*find_entry(scan, 9001))["elapsed_us"].get<std::int64_t>();
        CHECK(filtered_us >= timeout_ms * 1000);
        CHECK((*find_entry(scan, 9002))["elapsed_us"].get<std::int64_t>() < filtered_us);
        CHECK((*find_entry(scan, 9003))["elapsed_us"].get<std::int64_t>() < filtered_us);
    }

    SECTION("UDP scan: echo is open, drop is open|filtered, ICMP reject and no socket are closed") {
        const auto& scan = facts["udp_scan"];
        REQUIRE(scan.size() == 4);
        CHECK((*find_entry(scan, 9000))["state"] == "open");
        CHECK((*find_entry(scan, 9001))["state"] == "open|filtered");
        CHECK((*find_entry(scan, 9002))["state"] == "closed");
        CHECK((*find_entry(scan, 9002))["errno"] == "ECONNREFUSED");
        CHECK((*find_entry(scan, 9003))["state"] == "closed");
        const auto silent_us = (*find_entry(scan, 9001))["elapsed_us"].get<std::int64_t>();
        CHECK(silent_us >= timeout_ms * 1000);
        CHECK((*find_entry(scan, 9002))["elapsed_us"].get<std::int64_t>() < silent_us);
    }

    SECTION("ACK scan: only the dropped port is filtered; open and closed ports alike are unfiltered") {
        const auto& scan = facts["ack_scan"];
        REQUIRE(scan.size() == 4);
        CHECK((*find_entry(scan, 9000))["state"] == "unfiltered");
        CHECK((*find_entry(scan, 9001))["state"] == "filtered");
        CHECK((*find_entry(scan, 9002))["state"] == "unfiltered");
        CHECK((*find_entry(scan, 9003))["state"] == "unfiltered");
    }

    SECTION("--trace wrote a valid trace with the three TCP listeners") {
        const auto trace = portlab::trace::read_trace_file(trace_path);
        REQUIRE(trace);
        int listening = 0;
        for (const auto& event : trace->events)
            if (std::holds_alternative<portlab::trace::Listening>(event.body)) ++listening;
        CHECK(listening == 3);
    }
}

TEST_CASE("lab09 rejects bad arguments with exit status 2", "[lab09]") {
    const auto bad = GENERATE(as<std::string>{}, "--timeout 0", "--timeout 99999", "--port 65534", "--port x",
                              "--bind 10.1.2.3 --allow-non-loopback", "--nonsense");
    CAPTURE(bad);
    const auto run = run_command(bin_path("lab09_firewall") + " " + bad, 20);
    CHECK(run.exit_code == 2);
    CHECK(lines_of(run.err).size() >= 1);
}

TEST_CASE("lab09 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab09][conventions]") {
    check_lab_conventions({"lab09_firewall", true, "--timeout 50"});
}

// ---- the trace against the kernel of the lab's namespace --------------------------------

namespace {

using portlab::FirewallAction;
using portlab::FirewallRule;
using portlab::Protocol;
using portlab::RejectWith;
namespace scan = portlab::scan;
namespace trace = portlab::trace;

// The first rule that takes a packet of `protocol` to `port`, as nft walks the chain.
const FirewallRule* first_match(const std::vector<FirewallRule>& rules, Protocol protocol, portlab::Port port) {
    for (const auto& rule : rules)
        if (rule.protocol == protocol && rule.destination_ports && rule.destination_ports->contains(port)) return &rule;
    return nullptr;
}

// What the namespace's kernel held for the scans: its listening ports and its rules.
struct Arrangement {
    std::set<int> tcp_listeners, udp_sockets;
    std::vector<FirewallRule> rules;
};

// The states a scan can report for a port, from what the kernel holds there (nmap's
// definitions, portlab/scan.hpp): the first rule that matches the probe decides, and
// without one (or with accept) the socket behind the port does. A UDP socket without a
// rule is open if its program replies and open|filtered if not: the kernel cannot say.
std::set<std::string> implied_states(scan::ScanType type, const Arrangement& kernel, int port) {
    const Protocol protocol = scan::protocol_of(type);
    const auto* rule = first_match(kernel.rules, protocol, static_cast<portlab::Port>(port));
    const auto action = rule ? rule->action : FirewallAction::accept;
    const bool resets = rule && rule->reject_with == RejectWith::tcp_reset;
    const bool port_unreachable = rule && (rule->reject_with == RejectWith::nft_default ||
                                           rule->reject_with == RejectWith::icmp_port_unreachable);
    switch (type) {
        case scan::ScanType::connect:
            if (action == FirewallAction::drop) return {"filtered"};
            if (action == FirewallAction::reject) return {resets || port_unreachable ? "closed" : "filtered"};
            return {kernel.tcp_listeners.count(port) ? "open" : "closed"};
        case scan::ScanType::udp:
            if (action == FirewallAction::drop) return {"open|filtered"};
            if (action == FirewallAction::reject) return {port_unreachable ? "closed" : "filtered"};
            if (kernel.udp_sockets.count(port)) return {"open", "open|filtered"};
            return {"closed"};
        case scan::ScanType::ack:
            if (action == FirewallAction::drop) return {"filtered"};
            if (action == FirewallAction::reject) return {resets ? "unfiltered" : "filtered"};
            return {"unfiltered"};
        case scan::ScanType::syn: break;
    }
    return {};
}

std::string json_key(scan::ScanType type) {
    switch (type) {
        case scan::ScanType::connect: return "tcp_scan";
        case scan::ScanType::udp: return "udp_scan";
        default: return "ack_scan";
    }
}

std::string slurp(const std::string& path) {
    std::ifstream file(path);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("at every step, lab09's replayed trace holds the sockets and rules its namespace's kernel holds, every "
          "dropped packet names the kernel's rule, and every scan result follows from the kernel's arrangement",
          "[lab09][trace][replay]") {
    const TempFile file("lab09.jsonl");
    const TempFile out("lab09.json");
    PausedRun lab_run(bin_path("lab09_firewall"), {"--json", "--timeout", "300", "--port", "9000", "--trace", file.path},
                      std::chrono::seconds(60), out.path);
    std::size_t compared = 0;
    int rules_compared = 0;
    Arrangement arrangement;  // the last pause's with listeners and rules: before the clean-up
    const int status = lab_run.run([&](int pause) {
        const pid_t inside = namespace_child(lab_run.pid());
        REQUIRE(inside > 0);
        const auto when = "the pause before step " + std::to_string(pause);
        const auto replay = replay_of(file.path);
        const auto kernel = sockets_in_namespace_of(inside, true);
        check_same_sockets(replayed_sockets(replay), kernel, when);
        compared += kernel.size();

        const auto rules = rules_in_namespace_of(inside);
        check_same_rules(replayed_rules(replay), rules, when);
        rules_compared += static_cast<int>(rules.size());

        Arrangement now{{}, {}, rules};
        for (const auto& view : kernel) {
            if (view.protocol == Protocol::tcp && view.state == "LISTEN") now.tcp_listeners.insert(view.local.port);
            if (view.protocol == Protocol::udp && !view.remote) now.udp_sockets.insert(view.local.port);
        }
        if (!now.rules.empty() && !now.tcp_listeners.empty()) arrangement = now;
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(compared > 0);
    CHECK(rules_compared > 0);
    // The kernel held what the lab's plan says: three TCP listeners and three UDP sockets
    // on 9000-9002, and four rules.
    CHECK(arrangement.tcp_listeners == std::set<int>{9000, 9001, 9002});
    CHECK(arrangement.udp_sockets == std::set<int>{9000, 9001, 9002});
    REQUIRE(arrangement.rules.size() == 4);

    const auto trace = trace::read_trace_file(file.path);
    REQUIRE(trace);

    {  // each dropped packet names a rule the kernel had, the first in its chain to match the packet
        std::map<std::string, FirewallRule> added;  // rule_id -> rule, from rule_added
        std::map<std::string, int> taken;           // rule_id -> packets the trace says it took
        int packets = 0;
        for (const auto& event : trace->events) {
            if (const auto* rule = std::get_if<trace::RuleAdded>(&event.body)) {
                CHECK(event.host == "server");
                added[rule->rule_id] = as_nft_lists(*rule->rule);
            }
            const auto* packet = std::get_if<trace::Packet>(&event.body);
            if (packet == nullptr) continue;
            ++packets;
            const auto decoded = portlab::decode_frame(packet->link, packet->bytes);
            REQUIRE(decoded);
            CAPTURE(decoded->summary(), packet->rule_id.value_or("(none)"));
            const auto protocol = decoded->protocol();
            const auto destination = decoded->destination();
            const auto* rule = protocol && destination ? first_match(arrangement.rules, *protocol, destination->port) : nullptr;
            if (rule == nullptr || rule->action == FirewallAction::accept) {
                CHECK(packet->kind != trace::PacketKind::dropped);
                continue;
            }
            CHECK(packet->kind == trace::PacketKind::dropped);
            CHECK(packet->cause == trace::DropCause::firewall);
            CHECK(event.host == "server");
            REQUIRE(packet->rule_id);
            REQUIRE(added.count(*packet->rule_id) == 1);
            CHECK(added[*packet->rule_id] == *rule);
            ++taken[*packet->rule_id];
        }
        CHECK(packets > 0);
        // r1..r4 in chain order, and every scan probed every port, so each rule took a packet.
        REQUIRE(added.size() == 4);
        for (int i = 1; i <= 4; ++i) {
            const auto id = "r" + std::to_string(i);
            CAPTURE(id);
            CHECK(added[id] == arrangement.rules[static_cast<std::size_t>(i - 1)]);
            CHECK(taken[id] >= 1);
        }
    }

    {  // each replayed scan result is what --json says and what the kernel's arrangement implies
        const auto facts = json::parse(slurp(out.path));
        const auto replay = replay_of(file.path);
        int results = 0;
        for (const auto& host : replay.hosts()) {
            if (host.scanned.empty()) continue;
            CHECK(host.name == "scanner");
            for (const auto& [key, scanned] : host.scanned) {
                const auto& [type, target] = key;
                CAPTURE(scan::to_string(type), target.to_string());
                REQUIRE(scanned.state);
                CHECK(scanned.probes >= 1);
                const std::string state(scan::to_string(*scanned.state));
                CHECK(implied_states(type, arrangement, target.port).count(state) == 1);
                const json* reported = find_entry(facts[json_key(type)], target.port);
                REQUIRE(reported != nullptr);
                CHECK((*reported)["state"] == state);
                CHECK((*reported)["reason"] == scan::to_string(*scanned.reason));
                if (type == scan::ScanType::ack) {
                    // An RST the firewall sent (reject with tcp reset) is named as the firewall's:
                    // the ACK scan alone would call the port unfiltered as if no rule were there.
                    const auto* rule = first_match(arrangement.rules, Protocol::tcp, target.port);
                    const bool firewall_resets = rule != nullptr && rule->action == FirewallAction::reject &&
                                                 rule->reject_with == RejectWith::tcp_reset;
                    CHECK(reported->contains("rst_from") == firewall_resets);
                }
                ++results;
            }
        }
        CHECK(results == 12);  // four ports, three scans
    }

    {  // the trace names the server and the scanner, and no other host
        std::set<std::string> hosts;
        const auto replay = replay_of(file.path);
        for (const auto& host : replay.hosts()) hosts.insert(host.name);
        CHECK(hosts == std::set<std::string>{"server", "scanner"});
    }
}

TEST_CASE("lab09 | head -1 ends quietly or says its output broke, not that a child died", "[lab09][safety]") {
    check_reader_goes_away(LabBinary("lab09_firewall"), "--timeout 100");
}
