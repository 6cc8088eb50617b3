// Lab 15: IPv6 and dual stack. Its report against the kernel's own answers (bind's errno,
// getpeername, IPV6_V6ONLY, the ICMPv6 error), and its trace against sock_diag at each pause.

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab15_dual_stack");

json run_json(const std::string& arguments) {
    const auto run = test::run_command(test::shell_quote(lab) + " --json " + arguments, 60);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
}

}  // namespace

TEST_CASE("lab15: a dual-stack [::]:P takes IPv4 as v4-mapped and holds IPv4's P, while V6ONLY shares the number",
          "[lab15][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto facts = run_json("--port 8015");
    const auto& dual = facts.at("dual_stack");
    CHECK(dual.at("v6only") == 0);  // Linux's default, net.ipv6.bindv6only = 0
    CHECK(dual.at("ipv4_peer_seen_as").get<std::string>().rfind("[::ffff:127.0.0.1]:", 0) == 0);
    CHECK(dual.at("bind_ipv4_any_errno") == EADDRINUSE);
    const auto& apart = facts.at("one_per_family");
    CHECK(apart.at("ipv4_peer").get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(apart.at("ipv6_peer").get<std::string>().rfind("[::1]:", 0) == 0);
    const auto& first = facts.at("specific_v4_first");
    CHECK(first.at("dual_stack_errno") == EADDRINUSE);
    CHECK(first.at("v6only_errno") == 0);
    CHECK(facts.at("bindv6only").at("v6only_default_at_0") == 0);
    CHECK(facts.at("bindv6only").at("v6only_default_at_1") == 1);
    const auto& icmp = facts.at("icmpv6");
    REQUIRE_FALSE(icmp.is_null());
    CHECK(icmp.at("origin_icmp6") == true);
    CHECK(icmp.at("type") == 1);  // destination unreachable (RFC 4443)
    CHECK(icmp.at("code") == 4);  // port unreachable
    CHECK(icmp.at("errno") == ECONNREFUSED);
}

TEST_CASE("at every pause, lab15's replayed trace holds the sockets its namespace's kernel holds", "[lab15][netns][replay]") {
    const test::TempFile file("lab15.jsonl");
    test::PausedRun lab_run(lab, {"--trace", file.path});
    int compared = 0;
    const int status = lab_run.run([&](int) {
        const pid_t inside = test::namespace_child(lab_run.pid());
        REQUIRE(inside > 0);
        test::check_same_sockets(test::replayed_sockets(test::replay_of(file.path)),
                                 test::sockets_in_namespace_of(inside, /*udp=*/true, /*ipv6=*/true), "a pause");
        ++compared;
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(compared == 4);
}

TEST_CASE("lab15 rejects bad arguments with exit status 2", "[lab15]") {
    for (const auto* bad : {"--port 80", "--port 70000", "--port x", "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab15_dual_stack");
    }
}

TEST_CASE("lab15 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab15][conventions]") {
    test::check_lab_conventions({"lab15_dual_stack", false, ""});
}
