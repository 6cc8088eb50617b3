// lab09_firewall run with --json: the states its scans report must follow from the rules
// the kernel was given, as the kernel answered them (RST, ICMP, silence), and the rules
// must be in the ruleset the lab listed back from the kernel.

#include <sys/stat.h>

#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

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
