// labkit/nat_trace: conntrack entries (as the kernel's table holds them, written here as
// conntrack -L prints them) become the trace's nat events: one per side rewritten, the
// original tuple first, the reply tuple turned around last.

#include <catch2/catch.hpp>

#include <string>

#include "labkit/nat_trace.hpp"

using namespace portlab;

namespace {

Endpoint at(const char* text) { return *Endpoint::parse(text); }

conntrack::Entry entry(std::uint8_t protocol, conntrack::Tuple original, conntrack::Tuple reply) {
    conntrack::Entry made;
    made.id = 42;
    made.protocol_number = protocol;
    made.original = std::move(original);
    made.reply = std::move(reply);
    return made;
}

}  // namespace

TEST_CASE("nat trace: masquerade is one snat from the original tuple to the reply turned around", "[nat][trace]") {
    // tcp src=192.0.2.1 dst=198.51.100.2 sport=50000 dport=8080 src=198.51.100.2 dst=198.51.100.1 sport=8080 dport=3994
    const auto events = labkit::translations_of(entry(6, {at("192.0.2.1:50000"), at("198.51.100.2:8080")},
                                                      {at("198.51.100.2:8080"), at("198.51.100.1:3994")}));
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == trace::NatKind::snat);
    CHECK(events[0].protocol == Protocol::tcp);
    CHECK(events[0].conntrack_id == 42);
    CHECK(events[0].flows->before == trace::Flow{at("192.0.2.1:50000"), at("198.51.100.2:8080")});
    CHECK(events[0].flows->after == trace::Flow{at("198.51.100.1:3994"), at("198.51.100.2:8080")});
}

TEST_CASE("nat trace: port forwarding is one dnat that keeps the source", "[nat][trace]") {
    // udp src=192.0.2.1 dst=192.0.2.2 sport=4000 dport=8080 src=198.51.100.2 dst=192.0.2.1 sport=80 dport=4000
    const auto events = labkit::translations_of(entry(17, {at("192.0.2.1:4000"), at("192.0.2.2:8080")},
                                                       {at("198.51.100.2:80"), at("192.0.2.1:4000")}));
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == trace::NatKind::dnat);
    CHECK(events[0].protocol == Protocol::udp);
    CHECK(events[0].flows->after == trace::Flow{at("192.0.2.1:4000"), at("198.51.100.2:80")});
}

TEST_CASE("nat trace: a hairpin is a dnat, then an snat that starts where the dnat ended", "[nat][trace]") {
    const auto events = labkit::translations_of(entry(6, {at("203.0.113.2:36960"), at("192.0.2.2:8080")},
                                                      {at("198.51.100.2:80"), at("198.51.100.1:36960")}));
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == trace::NatKind::dnat);
    CHECK(events[1].kind == trace::NatKind::snat);
    CHECK(events[0].flows->before == trace::Flow{at("203.0.113.2:36960"), at("192.0.2.2:8080")});
    CHECK(events[0].flows->after == events[1].flows->before);
    CHECK(events[1].flows->after == trace::Flow{at("198.51.100.1:36960"), at("198.51.100.2:80")});
}

TEST_CASE("nat trace: an entry the router did not rewrite, or not TCP or UDP, gives no event", "[nat][trace]") {
    CHECK(labkit::translations_of(entry(6, {at("192.0.2.1:5000"), at("192.0.2.2:80")}, {at("192.0.2.2:80"), at("192.0.2.1:5000")}))
              .empty());
    CHECK(labkit::translations_of(entry(1, {at("192.0.2.1:0"), at("192.0.2.2:0")}, {at("198.51.100.2:0"), at("192.0.2.1:0")}))
              .empty());
}
