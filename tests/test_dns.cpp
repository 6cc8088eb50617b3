// The lab kit's DNS messages (labkit/dns.hpp) against bytes written by hand from RFC 1035
// 4.1: the header's fields, a name as labels, a compression pointer, the 512-byte limit.

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "labkit/dns.hpp"

using namespace portlab;

namespace {

// A query for "a.example" type A class IN, id 0xbeef, RD set, as RFC 1035 4.1.1-4.1.2 lay it out.
const std::vector<std::uint8_t> query_bytes = {
    0xbe, 0xef,              // ID
    0x01, 0x00,              // QR 0, OPCODE 0, AA 0, TC 0, RD 1, RA 0, RCODE 0
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // QDCOUNT 1, the other counts 0
    0x01, 'a', 0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x00,  // QNAME
    0x00, 0x01, 0x00, 0x01,  // QTYPE A, QCLASS IN
};

}  // namespace

TEST_CASE("dns: a query written by hand from RFC 1035 decodes field by field", "[dns]") {
    const auto message = dns::decode(query_bytes);
    REQUIRE(message.has_value());
    CHECK(message->id == 0xbeef);
    CHECK_FALSE(message->response);
    CHECK(message->recursion_desired);
    CHECK_FALSE(message->truncated);
    REQUIRE(message->questions.size() == 1);
    CHECK(message->questions[0] == dns::Question{"a.example", dns::type_a, dns::class_in});
    CHECK(message->answers.empty());
}

TEST_CASE("dns: encode writes the same bytes for the same query", "[dns]") {
    auto query = dns::query(0xbeef, "a.example");
    query.recursion_desired = true;
    const auto bytes = dns::encode(query);
    REQUIRE(bytes.has_value());
    CHECK(*bytes == query_bytes);
}

TEST_CASE("dns: an answer's owner name is a pointer to the question (RFC 1035 4.1.4), and decodes back", "[dns]") {
    auto reply = dns::query(7, "a.example");
    reply.response = true;
    reply.answers.push_back(dns::a_record("a.example", IpAddress::v4(192, 0, 2, 9), 300));
    const auto bytes = dns::encode(reply);
    REQUIRE(bytes.has_value());
    REQUIRE(bytes->size() == 12 + 15 + 16);
    // The record starts right after the question: C0 0C points at byte 12, the question's name.
    CHECK((*bytes)[27] == 0xC0);
    CHECK((*bytes)[28] == 0x0C);
    const auto decoded = dns::decode(*bytes);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == reply);
    CHECK(decoded->answers[0].address()->to_string() == "192.0.2.9");
}

TEST_CASE("dns: at most 512 bytes keeps the whole records that fit and sets TC", "[dns]") {
    auto reply = dns::query(1, "big.portlab.example");
    reply.response = true;
    for (int i = 1; i <= 40; ++i)
        reply.answers.push_back(dns::a_record("big.portlab.example", IpAddress::v4(198, 51, 100, static_cast<std::uint8_t>(i)), 60));
    const auto whole = dns::encode(reply);
    REQUIRE(whole.has_value());
    CHECK(whole->size() == 12 + 25 + 40 * 16);
    const auto cut = dns::encode(reply, dns::udp_max_bytes);
    REQUIRE(cut.has_value());
    CHECK(cut->size() == 12 + 25 + 29 * 16);
    CHECK(((*cut)[2] & 0x02) != 0);  // TC is bit 1 of the flags' first byte
    const auto decoded = dns::decode(*cut);
    REQUIRE(decoded.has_value());
    CHECK(decoded->truncated);
    CHECK(decoded->answers.size() == 29);
}

TEST_CASE("dns: broken messages are errors that name the byte, never a crash or a loop", "[dns]") {
    using Bytes = std::vector<std::uint8_t>;
    auto with = [](std::size_t at, std::vector<std::uint8_t> tail) {
        Bytes bytes(query_bytes.begin(), query_bytes.begin() + static_cast<std::ptrdiff_t>(at));
        bytes.insert(bytes.end(), tail.begin(), tail.end());
        return bytes;
    };
    const auto [name, bytes] = GENERATE_COPY(table<std::string, Bytes>({
        {"shorter than a header", Bytes(query_bytes.begin(), query_bytes.begin() + 7)},
        {"a name cut short", with(12, {0x05, 'a', 'b'})},
        {"a pointer to itself", with(12, {0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01})},
        {"a pointer forwards", with(12, {0xC0, 0x20, 0x00, 0x01, 0x00, 0x01})},
        {"label type 01", with(12, {0x41, 0x00, 0x00, 0x01, 0x00, 0x01})},
        {"bytes after the last section", with(query_bytes.size(), {0x00})},
    }));
    CAPTURE(name);
    const auto decoded = dns::decode(bytes);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().message.find("byte ") == 0);
}

TEST_CASE("dns: names a label or a whole name too long to encode are refused (RFC 1035 2.3.4)", "[dns]") {
    CHECK_FALSE(dns::encode(dns::query(1, std::string(64, 'a') + ".example")).has_value());
    std::string long_name;
    for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
    long_name += "example";
    CHECK_FALSE(dns::encode(dns::query(1, long_name)).has_value());
    CHECK_FALSE(dns::encode(dns::query(1, "a..example")).has_value());
}
