// One story told twice: lab 14 sends through a real router in private namespaces (its
// --json facts come from IP_RECVTTL and the socket's error queue, IP_RECVERR; see
// tests/test_lab14_router.cpp), and the simulator's `router` scenario tells it on the
// model, with the same addresses (RFC 5737). Both must agree on what the router does: the
// TTL one lower at the server, time exceeded for TTL 1, host unreachable for an address
// nobody has (about 3 s later, when ARP gives up), port unreachable for a closed port of the
// router's own, admin-prohibited from a reject rule, each from the router's address on the
// client's side, and on the errno a socket reports.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/packet.hpp"
#include "portlab/sim/scenarios.hpp"
#include "lab_vs_sim.hpp"

using nlohmann::json;
using namespace portlab;

namespace {

struct IcmpSeen {
    int type = 0, code = 0;
    std::string from;
    std::uint64_t at_us = 0;            // when the client received it
    std::string quoted_destination;  // the address the offending datagram was for
};

// The ICMP messages the model's client received, decoded from their bytes, in order.
std::vector<IcmpSeen> icmp_received_by_client(const sim::Simulator& model) {
    std::vector<IcmpSeen> seen;
    for (const auto& event : model.events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || event.host != "client" || packet->kind != trace::PacketKind::delivered) continue;
        const auto decoded = decode_frame(packet->link, packet->bytes);
        REQUIRE(decoded);
        if (decoded->icmp)
            seen.push_back({decoded->icmp->type, decoded->icmp->code, decoded->ip.source.to_string(), event.t_us,
                            decoded->icmp->quoted_ip ? decoded->icmp->quoted_ip->destination.to_string() : ""});
    }
    return seen;
}

// The TTL of the first UDP datagram the model's server received.
std::optional<int> ttl_at_model_server(const sim::Simulator& model) {
    for (const auto& event : model.events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || event.host != "server" || packet->kind != trace::PacketKind::delivered) continue;
        const auto decoded = decode_frame(packet->link, packet->bytes);
        REQUIRE(decoded);
        if (decoded->udp) return decoded->ip.ttl;
    }
    return std::nullopt;
}

// When the model's client sent its first datagram to `address`.
std::optional<std::uint64_t> first_sent_to(const sim::Simulator& model, const std::string& address) {
    for (const auto& event : model.events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || event.host != "client" || packet->kind != trace::PacketKind::sent) continue;
        const auto decoded = decode_frame(packet->link, packet->bytes);
        if (decoded && decoded->ip.destination.to_string() == address) return event.t_us;
    }
    return std::nullopt;
}

// The errno names the model's client sockets failed with, by call.
std::vector<std::string> model_failures(const sim::Simulator& model, const std::string& call) {
    std::vector<std::string> names;
    for (const auto& event : model.events())
        if (const auto* failed = std::get_if<trace::CallFailed>(&event.body); failed && event.host == "client" && failed->call == call)
            names.emplace_back(failed->errno_name);
    return names;
}

bool has(const std::vector<IcmpSeen>& seen, int type, int code, const std::string& from) {
    for (const auto& icmp : seen)
        if (icmp.type == type && icmp.code == code && icmp.from == from) return true;
    return false;
}

}  // namespace

TEST_CASE("lab 14 on the kernel and the simulator's router scenario agree on the TTL and the router's ICMP",
          "[lab14][sim][netns]") {
    const auto facts = test::lab_facts("lab14_router", "--probes 5", 90);
    const auto model = sim::run_scenario("router");
    REQUIRE(model);
    const auto icmp = icmp_received_by_client(*model);

    // One router: one less than the sender's 64 on both.
    CHECK(ttl_at_model_server(*model) == facts.at("ttl_at_server").get<int>());

    // Each message the lab read from its error queue, the model's client received too: the same
    // type, code and sender.
    for (const char* name : {"ttl_1", "host_unreachable", "admin_prohibited"}) {
        const auto& kernel = facts.at(name);
        CAPTURE(name, kernel.dump());
        CHECK(has(icmp, kernel.at("type"), kernel.at("code"), kernel.at("from")));
    }
    // Host unreachable comes when the router's ARP gives up (three requests, a second apart),
    // on the kernel and in the model alike: within a second of each other.
    const auto sent = first_sent_to(*model, "198.51.100.99");
    REQUIRE(sent);
    std::optional<std::uint64_t> answered;
    for (const auto& message : icmp)
        if (message.type == 3 && message.code == 1 && message.quoted_destination == "198.51.100.99") answered = message.at_us;
    REQUIRE(answered);
    const double model_ms = static_cast<double>(*answered - *sent) / 1000.0;
    const double kernel_ms = facts.at("host_unreachable").at("after_ms").get<double>();
    CAPTURE(model_ms, kernel_ms);
    CHECK(std::abs(model_ms - kernel_ms) < 1000.0);

    // Port unreachable for a closed port of the router's own; the model's server sends one too,
    // through the router, for its own closed port.
    const auto& closed = facts.at("router_port_unreachable");
    CHECK(has(icmp, closed.at("type"), closed.at("code"), closed.at("from")));
    CHECK(has(icmp, 3, 3, "198.51.100.2"));

    // The reject rule fails a TCP connect() with EHOSTUNREACH on both (icmp_err_convert: code 13 is fatal).
    CHECK(facts.at("admin_prohibited").at("errno") == EHOSTUNREACH);
    const auto connect_failures = model_failures(*model, "connect");
    CHECK(std::find(connect_failures.begin(), connect_failures.end(), "EHOSTUNREACH") != connect_failures.end());
}
