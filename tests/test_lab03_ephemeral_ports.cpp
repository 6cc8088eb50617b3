// Lab 03 run for real: every port it reports must lie in the range this test reads from
// /proc itself; in the private namespace, the number of connections before the refusal
// must equal the size of the range the test asked for, and the refusal is EADDRNOTAVAIL.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "portlab/ports.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab03_ephemeral_ports");

json run_json(const std::string& args) {
    const auto run = test::run_command(test::shell_quote(lab) + " --json " + args, 60);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
}

}  // namespace

TEST_CASE("every ephemeral port the lab reports lies in the range /proc gives", "[lab03]") {
    const auto range = read_ephemeral_range();
    REQUIRE(range.has_value());
    const auto facts = run_json("--port 0 -n 50 --compare 5");

    const auto& ports = facts.at("connections").at("ports");
    REQUIRE(ports.size() == 50);
    std::set<int> distinct;
    for (const auto& port : ports) {
        CAPTURE(port);
        CHECK(range->contains(port.get<Port>()));
        distinct.insert(port.get<int>());
    }
    // Fifty open connections to one server endpoint: fifty different 4-tuples, so fifty ports.
    CHECK(distinct.size() == 50);
    // And on the server side all fifty accepted sockets share the listening port.
    for (const auto& port : facts.at("accepted_local_ports")) CHECK(port == facts.at("server").at("port"));

    for (const auto* kind : {"tcp_connect", "tcp_bind_zero", "udp_connect", "udp_bind_zero"}) {
        CAPTURE(kind);
        const auto& list = facts.at("compare").at(kind).at("ports");
        CHECK(list.size() == 5);
        for (const auto& port : list) CHECK(range->contains(port.get<Port>()));
    }
}

TEST_CASE("in a private namespace the range runs out after exactly its size", "[lab03][netns]") {
    REQUIRE(test::tool_available("unshare"));
    const bool namespaces_work = test::run_command("unshare -rn true", 10).exit_code == 0;
    const auto facts = run_json("--port 0 -n 2 --range-size 4");
    const auto& exhaustion = facts.at("exhaustion");
    REQUIRE(exhaustion.at("available").get<bool>() == namespaces_work);
    if (!namespaces_work) return;

    CHECK(exhaustion.at("proc_range_inside") == "40000-40003");  // what /proc said inside
    const auto& ports = exhaustion.at("ports");
    CHECK(ports.size() == 4);
    std::set<int> distinct;
    for (const auto& port : ports) {
        CHECK(port.get<int>() >= 40000);
        CHECK(port.get<int>() <= 40003);
        distinct.insert(port.get<int>());
    }
    CHECK(distinct.size() == 4);
    CHECK(exhaustion.at("refusal_errno_name") == "EADDRNOTAVAIL");
    // Another destination is another 4-tuple: a port of the exhausted range is used again.
    const auto& other = exhaustion.at("other_destination");
    REQUIRE_FALSE(other.at("port").is_null());
    CHECK(distinct.count(other.at("port").get<int>()) == 1);
}

TEST_CASE("lab03 --trace parses and records each connection's ephemeral port", "[lab03][trace]") {
    const auto range = read_ephemeral_range();
    REQUIRE(range.has_value());
    const test::TempFile file("lab03.jsonl");
    run_json("--port 0 -n 12 --trace " + test::shell_quote(file.path));
    const auto read = trace::read_trace_file(file.path);
    REQUIRE(read.has_value());
    std::size_t on_host = 0;
    for (const auto& event : read->events)
        if (const auto* assigned = std::get_if<trace::EphemeralAssigned>(&event.body); assigned && event.host == "client") {
            ++on_host;
            CHECK(range->contains(assigned->port));
        }
    CHECK(on_host >= 12);
}

TEST_CASE("lab03 bad arguments: one line on stderr, exit 2", "[lab03][args]") {
    const auto args = GENERATE(as<std::string>{}, "-n 0", "-n 2001", "-n many", "--range-size 0", "--compare 51",
                               "--port 70000", "--bind 8.8.8.8");
    CAPTURE(args);
    const auto run = test::run_command(test::shell_quote(lab) + " " + args, 20);
    CHECK(run.exit_code == 2);
    CHECK(test::lines_of(run.err).size() == 1);
}

TEST_CASE("lab03 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab03][conventions]") {
    test::check_lab_conventions({"lab03_ephemeral_ports", true, "--port 0 -n 5"});
}
