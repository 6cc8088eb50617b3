// Addresses and endpoints: the shared nouns every module prints and parses.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include "portlab/net.hpp"

using namespace portlab;

TEST_CASE("an IPv4 address parses to the same bytes inet_aton gives", "[net]") {
    const auto text = GENERATE(as<std::string>{}, "127.0.0.1", "0.0.0.0", "192.0.2.7", "255.255.255.255");
    CAPTURE(text);
    in_addr expected{};
    REQUIRE(inet_aton(text.c_str(), &expected) == 1);
    const auto parsed = IpAddress::parse(text);
    REQUIRE(parsed);
    REQUIRE(parsed->is_v4());
    const auto* raw = reinterpret_cast<const std::uint8_t*>(&expected.s_addr);
    CHECK(std::vector<std::uint8_t>(parsed->bytes().begin(), parsed->bytes().end()) ==
          std::vector<std::uint8_t>(raw, raw + 4));
    CHECK(parsed->to_string() == text);
}

TEST_CASE("text that is not an address is an error, not a guess", "[net]") {
    const auto text = GENERATE(as<std::string>{}, "", "localhost", "127.1", "256.0.0.1", "1.2.3.4.5", "::1::2", " 127.0.0.1");
    CAPTURE(text);
    const auto parsed = IpAddress::parse(text);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message, Catch::Contains("not an IPv4 or IPv6 address"));
}

TEST_CASE("loopback is 127.0.0.0/8 and ::1, nothing else", "[net]") {
    auto [text, loopback] = GENERATE(table<std::string, bool>({
        {"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true},
        {"128.0.0.1", false}, {"0.0.0.0", false}, {"::", false}, {"::ffff:127.0.0.1", false}, {"::2", false},
    }));
    CAPTURE(text);
    CHECK(IpAddress::parse(text)->is_loopback() == loopback);
}

TEST_CASE("an endpoint prints as ss does and parses back", "[net]") {
    SECTION("IPv4") {
        const Endpoint endpoint{IpAddress::loopback_v4(), 8080};
        CHECK(endpoint.to_string() == "127.0.0.1:8080");
        CHECK(Endpoint::parse("127.0.0.1:8080").value() == endpoint);
    }
    SECTION("IPv6 goes in brackets so the port's colon is not part of the address") {
        const Endpoint endpoint{IpAddress::loopback_v6(), 443};
        CHECK(endpoint.to_string() == "[::1]:443");
        CHECK(Endpoint::parse("[::1]:443").value() == endpoint);
    }
    SECTION("bad endpoints say what is wrong") {
        auto [text, reason] = GENERATE(table<std::string, std::string>({
            {"127.0.0.1", "ADDRESS:PORT"}, {"127.0.0.1:70000", "not a port"}, {"127.0.0.1:", "not a port"},
            {"::1:80", "brackets"}, {"[::1]80", "brackets"}, {"host:80", "not an IPv4"}, {"127.0.0.1:8o", "not a port"},
        }));
        CAPTURE(text);
        const auto parsed = Endpoint::parse(text);
        REQUIRE_FALSE(parsed);
        CHECK_THAT(parsed.error().message, Catch::Contains(reason));
    }
}

TEST_CASE("the two sides of a connection see the same 4-tuple reversed", "[net]") {
    const FourTuple client{{IpAddress::loopback_v4(), 40002}, {IpAddress::loopback_v4(), 8080}};
    const FourTuple server = client.reversed();
    CHECK(server.local.port == 8080);
    CHECK(server.remote.port == 40002);
    CHECK(server.reversed() == client);
    CHECK(client.to_string() == "127.0.0.1:40002 -> 127.0.0.1:8080");
}

TEST_CASE("protocol names parse in any case and nothing else does", "[net]") {
    CHECK(parse_protocol("TCP").value() == Protocol::tcp);
    CHECK(parse_protocol("udp").value() == Protocol::udp);
    CHECK_FALSE(parse_protocol("sctp"));
    CHECK(to_string(Protocol::udp) == "udp");
}

TEST_CASE("a Result carries either a value or a one-line error", "[result]") {
    const Result<int> good = 7;
    const Result<int> bad = fail("port 70000 is out of range");
    CHECK(good.value() == 7);
    CHECK(bad.value_or(3) == 3);
    CHECK_THROWS_AS(bad.value(), BadResultAccess);
    const Result<void> done;
    CHECK(done.has_value());
}
