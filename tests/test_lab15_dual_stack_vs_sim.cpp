// One story told twice: lab 15 on the real kernel (its --json facts come from bind()'s
// errno, getpeername() and the ICMPv6 error the socket's error queue holds; the lab's own
// test holds them to the kernel) and the simulator's `dual-stack` scenario on the model.
// The lab runs on loopback, the scenario across a router, so the addresses differ; what
// must agree is every bind's verdict in the same order, what accept() names (an IPv4
// client IPv4-mapped by a dual-stack socket, plain by a socket of its own family), and the
// ICMPv6 error with the errno it becomes.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/packet.hpp"
#include "portlab/sim/scenarios.hpp"
#include "lab_vs_sim.hpp"

using nlohmann::json;
using namespace portlab;
namespace sockets = portlab::test::sockets;

namespace {

// What accept() named, as a kind: an IPv4 client IPv4-mapped (RFC 4291 2.5.5.2) and which
// one, or a plain IPv4 or IPv6 peer.
std::string kind_of(const Endpoint& peer, const IpAddress& client_v4) {
    if (peer.address.is_v4()) return peer.address == client_v4 ? "IPv4, the client" : "IPv4, someone else";
    const auto bytes = peer.address.bytes();
    const bool mapped = std::all_of(bytes.begin(), bytes.begin() + 10, [](auto b) { return b == 0; }) && bytes[10] == 0xFF &&
                        bytes[11] == 0xFF;
    if (!mapped) return "IPv6";
    const IpAddress inside = IpAddress::from_bytes(bytes.subspan(12)).value();
    return inside == client_v4 ? "IPv4-mapped, the client" : "IPv4-mapped, someone else";
}

Endpoint endpoint_of(const json& text) { return Endpoint::parse(text.get<std::string>()).value(); }

// Every bind the server made, in order: "ok" or the errno's name.
std::vector<std::string> model_binds(const sim::Simulator& sim) {
    std::vector<std::string> verdicts;
    for (const auto& event : sim.events()) {
        if (event.host != "server") continue;
        if (const auto* bound = std::get_if<trace::Bound>(&event.body); bound && bound->how == trace::BindHow::explicit_port)
            verdicts.emplace_back("ok");
        if (const auto* failed = std::get_if<trace::CallFailed>(&event.body); failed && failed->call == "bind")
            verdicts.push_back(failed->errno_name);
    }
    return verdicts;
}

}  // namespace

TEST_CASE("lab 15 on the kernel and the simulator's dual-stack scenario tell the same story", "[lab15][sim][ipv6][netns]") {
    const auto facts = test::lab_facts("lab15_dual_stack", "--port 8015", 60);
    const auto model = sim::run_scenario("dual-stack");
    REQUIRE(model);

    // The binds, in the lab's order: [::] dual-stack, 0.0.0.0 beside it; [::] V6ONLY and
    // 0.0.0.0 (the lab stops unless both bind); 127.0.0.1, [::] dual-stack, [::] V6ONLY.
    const auto name = [](const json& error) { return error.get<int>() == 0 ? std::string("ok") : sockets::errno_name(error.get<int>()); };
    const std::vector<std::string> kernel_binds{"ok", name(facts.at("dual_stack").at("bind_ipv4_any_errno")), "ok", "ok", "ok",
                                                name(facts.at("specific_v4_first").at("dual_stack_errno")),
                                                name(facts.at("specific_v4_first").at("v6only_errno"))};
    CHECK(model_binds(*model) == kernel_binds);
    // Both start dual-stack: Linux's net.ipv6.bindv6only = 0, the model's socket default.
    CHECK(facts.at("dual_stack").at("v6only") == (sim::Socket{}.v6only ? 1 : 0));

    // What accept() named: the lab's clients are on loopback, the model's across the router.
    const IpAddress lab_client = IpAddress::loopback_v4();
    const IpAddress model_client = IpAddress::parse("192.0.2.1").value();
    const std::vector<std::string> kernel_peers{kind_of(endpoint_of(facts.at("dual_stack").at("ipv4_peer_seen_as")), lab_client),
                                                kind_of(endpoint_of(facts.at("one_per_family").at("ipv4_peer")), lab_client),
                                                kind_of(endpoint_of(facts.at("one_per_family").at("ipv6_peer")), lab_client)};
    std::vector<std::string> model_peers;
    for (const auto& event : model->events())
        if (const auto* accepted = std::get_if<trace::Accepted>(&event.body); accepted && event.host == "server")
            model_peers.push_back(kind_of(accepted->four_tuple.remote, model_client));
    CHECK(kernel_peers == std::vector<std::string>{"IPv4-mapped, the client", "IPv4, the client", "IPv6"});
    CHECK(model_peers == kernel_peers);

    // The closed UDP port: ICMPv6 destination unreachable, port unreachable, and its errno.
    const auto& icmp = facts.at("icmpv6");
    REQUIRE_FALSE(icmp.is_null());
    std::vector<std::pair<int, int>> model_icmp;
    for (const auto& event : model->events()) {
        const auto* packet = std::get_if<trace::Packet>(&event.body);
        if (packet == nullptr || packet->kind != trace::PacketKind::delivered || event.host != "client") continue;
        const auto decoded = decode_ip(packet->bytes);
        REQUIRE(decoded);
        if (decoded->icmp && decoded->ip_protocol == 58 && decoded->icmp->type == 1) model_icmp.emplace_back(decoded->icmp->type, decoded->icmp->code);
    }
    CHECK(icmp.at("origin_icmp6") == true);
    CHECK(model_icmp == std::vector<std::pair<int, int>>{{icmp.at("type").get<int>(), icmp.at("code").get<int>()}});
    std::vector<std::string> model_udp_errors;
    for (const auto& event : model->events())
        if (const auto* failed = std::get_if<trace::CallFailed>(&event.body); failed && event.host == "client")
            model_udp_errors.push_back(failed->errno_name);
    CHECK(model_udp_errors == std::vector<std::string>{sockets::errno_name(icmp.at("errno").get<int>())});
}
