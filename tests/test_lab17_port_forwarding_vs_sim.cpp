// One story told twice: lab 17 forwards the router's port 8080 to the server's port 80 on
// the real kernel (its --json facts come from getsockname(), getpeername() and accept()),
// and the simulator's `port-forward` scenario tells it on the model, on the same addresses.
// Both must show the same two 4-tuples: the server sees the real client, the client sees
// the router's port.
#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "portlab/packet.hpp"
#include "portlab/sim/scenarios.hpp"
#include "lab_vs_sim.hpp"

using nlohmann::json;
using namespace portlab;

TEST_CASE("lab 17 on the kernel and the simulator's port-forward scenario show the same two 4-tuples", "[lab17][sim][dnat][netns]") {
    const auto facts = test::lab_facts("lab17_port_forwarding", "--wait 300", 90);
    const auto& outside = facts.at("from_outside");

    const auto model = sim::run_scenario("port-forward");
    REQUIRE(model);
    std::optional<FourTuple> server_side;  // as the server's accept() has it
    std::optional<Endpoint> client_peer;   // what the client connected to
    for (const auto& event : model->events()) {
        if (const auto* accepted = std::get_if<trace::Accepted>(&event.body); accepted && event.host == "server")
            server_side = accepted->four_tuple;
        if (const auto* connect = std::get_if<trace::ConnectStarted>(&event.body); connect && event.host == "client")
            client_peer = connect->remote;
    }
    REQUIRE(server_side);
    REQUIRE(client_peer);

    // The kernel: the server's peer is the client itself, its local end the inside port.
    CHECK(outside.at("client").at("errno").is_null());
    CHECK(outside.at("server_peer") == outside.at("client").at("local"));
    const std::string kernel_client_peer = outside.at("client").at("peer");
    const std::string kernel_server_local = outside.at("server_local");
    // The model: the same addresses and ports (the client's port is its own ephemeral choice).
    CHECK(client_peer->to_string() == kernel_client_peer);
    CHECK(server_side->local.to_string() == kernel_server_local);
    const auto kernel_peer = Endpoint::parse(outside.at("server_peer").get<std::string>()).value();
    CHECK(server_side->remote.address == kernel_peer.address);  // the real client, not the router
    // and the model's client socket still names the router's port as its peer while connected
    const auto client = model->world().find_host("client");
    REQUIRE(client);
    bool client_saw_router = false;
    for (const auto& event : model->events())
        if (const auto* packet = std::get_if<trace::Packet>(&event.body);
            packet && event.host == "client" && packet->kind == trace::PacketKind::delivered) {
            const auto decoded = decode_ip(packet->bytes);
            REQUIRE(decoded);
            CHECK(decoded->source() == client_peer);
            client_saw_router = true;
        }
    CHECK(client_saw_router);

    // From inside, to the router's outside address: the rule (iifname outside) does not
    // apply, the router answers for itself. The kernel's errno, and the model's.
    sim::Simulator hairpin;
    const auto router = hairpin.add_router("router", {{IpAddress::parse("192.0.2.2").value(), 24},
                                                      {IpAddress::parse("198.51.100.1").value(), 24}});
    const auto server = hairpin.add_host("server", {IpAddress::parse("198.51.100.2").value()});
    hairpin.set_network(server, 24, IpAddress::parse("198.51.100.1").value());
    hairpin.add_port_forward(router, Protocol::tcp, 8080, Endpoint::parse("198.51.100.2:80").value(),
                             IpAddress::parse("192.0.2.2").value());
    const auto s = hairpin.socket(server, Protocol::tcp).value();
    REQUIRE(hairpin.connect(s, Endpoint::parse("192.0.2.2:8080").value()));
    hairpin.run_for(1 * sim::seconds);
    const auto error = hairpin.take_error(s);
    REQUIRE(error);
    CHECK(facts.at("hairpin_outside_only").at("inside").at("errno") == sim::errno_name(*error));
}
