// One story told twice: lab 16 masquerades on the real kernel (its --json facts come from
// accept(), getsockname() and conntrack's netlink table; tests/test_lab16_nat.cpp holds
// them to ss and conntrack -L), and the simulator's `nat` scenario tells it on the model.
// Both must translate the same way: the server sees the router's outside address; a free
// client port is kept; a second client's same port goes out under another; conntrack's
// reply tuple is the translated connection reversed.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/sim/scenarios.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab;

namespace {

// One translated connection as either teller states it.
struct Translation {
    Endpoint client;       // the client's own address and port
    Endpoint server_peer;  // the peer the server's accept() names
    Endpoint reply_source;       // conntrack's reply tuple
    Endpoint reply_destination;
    Endpoint original_destination;
};

Endpoint endpoint_of(const json& e) {
    return Endpoint{IpAddress::parse(e.at("address").get<std::string>()).value(), static_cast<Port>(e.at("port").get<int>())};
}

Translation from_lab(const json& connection) {
    const auto& ct = connection.at("conntrack");
    return {endpoint_of(connection.at("client_local")), endpoint_of(connection.at("server_peer")),
            endpoint_of(ct.at("reply").at("source")), endpoint_of(ct.at("reply").at("destination")),
            endpoint_of(ct.at("original").at("destination"))};
}

// The model's three connections, in the order the scenario makes them (the first, then
// the two from the same port), from its conntrack table and the server's accept()s.
std::vector<Translation> from_model(const sim::Simulator& sim) {
    std::vector<Endpoint> peers;
    for (const auto& event : sim.events())
        if (const auto* accepted = std::get_if<trace::Accepted>(&event.body); accepted && event.host == "server")
            peers.push_back(accepted->four_tuple.remote);
    const auto& table = sim.world().host(*sim.world().find_host("router"))->routing.conntrack;
    REQUIRE(table.size() == peers.size());
    std::vector<Translation> found;
    for (std::size_t i = 0; i < table.size(); ++i)
        found.push_back({table[i].original.source, peers[i], table[i].reply.source, table[i].reply.destination,
                         table[i].original.destination});
    return found;
}

void check_shape(const Translation& t, const IpAddress& router_outside) {
    CAPTURE(t.client.to_string(), t.server_peer.to_string());
    CHECK(t.server_peer.address == router_outside);          // the server never sees the client's address
    CHECK(t.reply_destination == t.server_peer);             // conntrack's reply tuple: back to the translated peer
    CHECK(t.reply_source == t.original_destination);         // from the server, as the client called it
}

}  // namespace

TEST_CASE("lab 16 on the kernel and the simulator's nat scenario translate alike", "[lab16][sim][nat][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto lab = test::run_command(test::shell_quote(test::bin_path("lab16_nat")) + " --json --nat-ports 1 --syn-wait 1", 90);
    INFO(lab.err);
    REQUIRE(lab.exit_code == 0);
    const auto facts = json::parse(lab.out);

    const auto model = sim::run_scenario("nat");
    REQUIRE(model);
    const auto modelled = from_model(*model);
    REQUIRE(modelled.size() == 3);

    // Both run on the same addresses (RFC 5737), so the facts compare directly.
    const IpAddress outside = IpAddress::parse("198.51.100.1").value();
    const auto& first = facts.at("first_connection");
    const Translation kernel_first = from_lab(json{{"client_local", first.at("client_local")},
                                                   {"server_peer", first.at("server_peer")},
                                                   {"conntrack", facts.at("conntrack")}});
    const auto& same_port = facts.at("same_source_port").at("connections");
    REQUIRE(same_port.size() == 2);
    const std::vector<Translation> kernel{kernel_first, from_lab(same_port[0]), from_lab(same_port[1])};

    for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        check_shape(kernel[i], outside);
        check_shape(modelled[i], outside);
        CHECK(kernel[i].original_destination == modelled[i].original_destination);  // the same server and port
    }
    // The first connection's port was free: kept, by the kernel and the model.
    CHECK(kernel[0].server_peer.port == kernel[0].client.port);
    CHECK(modelled[0].server_peer.port == modelled[0].client.port);
    // Two clients, one source port: the first keeps it, the second leaves under another.
    for (const auto* teller : {&kernel, &modelled}) {
        const auto& t = *teller;
        CHECK(t[1].client.port == t[2].client.port);
        CHECK(t[1].client.address != t[2].client.address);
        CHECK(t[1].server_peer.port == t[1].client.port);
        CHECK(t[2].server_peer.port != t[2].client.port);
        CHECK(t[2].server_peer.port >= 1024);  // masquerade stays in the port's class (1024-65535)
    }
}
