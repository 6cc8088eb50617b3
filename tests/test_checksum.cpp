// The Internet checksum (RFC 1071) against vectors from outside portlab: the RFC's
// own worked example, the IPv4 header everyone quotes, and pseudo-header sums
// worked out by hand below (each step of the arithmetic is in the comment).
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "portlab/checksum.hpp"
#include "portlab/packet.hpp"

using namespace portlab;
using Bytes8 = std::vector<std::uint8_t>;

namespace {

// RFC 1071 section 3, "Numerical Examples": bytes 00 01 f2 03 f4 f5 f6 f7.
// 0001 + f203 + f4f5 + f6f7 = 2ddf0, folded 2 + ddf0 = ddf2; checksum ~ddf2 = 220d.
const Bytes8 rfc1071_example{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};

// The IPv4 header worked through on Wikipedia's "Internet checksum" / "IPv4 header
// checksum" pages: 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF, TTL 64.
// Its checksum field holds b861.
const Bytes8 wikipedia_ipv4_header{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                   0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};

}  // namespace

TEST_CASE("the RFC 1071 numerical example sums to ddf2 and checks to 220d", "[checksum]") {
    ChecksumAccumulator sum;
    sum.add(rfc1071_example);
    CHECK(sum.folded_sum() == 0xddf2);
    CHECK(sum.finish() == 0x220d);
    CHECK(internet_checksum(rfc1071_example) == 0x220d);
}

TEST_CASE("the sum is the same however the bytes are split into pieces", "[checksum]") {
    // RFC 1071 2(B)/(C): the sum may be computed in parts, including odd-length
    // parts, as long as each byte keeps its position in its 16-bit word.
    for (std::size_t split = 0; split <= rfc1071_example.size(); ++split) {
        for (std::size_t second = split; second <= rfc1071_example.size(); ++second) {
            CAPTURE(split, second);
            ChecksumAccumulator sum;
            const std::span<const std::uint8_t> all(rfc1071_example);
            sum.add(all.subspan(0, split));
            sum.add(all.subspan(split, second - split));
            sum.add(all.subspan(second));
            CHECK(sum.finish() == 0x220d);
        }
    }
}

TEST_CASE("add_u16 and add_u32 add big-endian words like the bytes they stand for", "[checksum]") {
    ChecksumAccumulator words;
    words.add_u16(0x0001);
    words.add_u16(0xf203);
    words.add_u32(0xf4f5f6f7);
    CHECK(words.finish() == 0x220d);
}

TEST_CASE("an odd byte count is padded with a zero byte at the end", "[checksum]") {
    // RFC 1071 1(1): an odd last byte is the high half of a word whose low half is 0.
    CHECK(internet_checksum(Bytes8{0x01}) == static_cast<std::uint16_t>(~0x0100));
    CHECK(internet_checksum(Bytes8{0x00, 0x01, 0xf2}) == static_cast<std::uint16_t>(~(0x0001 + 0xf200)));
}

TEST_CASE("no bytes and all-zero bytes check to ffff", "[checksum]") {
    CHECK(internet_checksum({}) == 0xffff);
    CHECK(internet_checksum(Bytes8(20, 0)) == 0xffff);
}

TEST_CASE("the well-known IPv4 header's checksum is b861, and the header verifies to 0", "[checksum][ipv4]") {
    Bytes8 zeroed = wikipedia_ipv4_header;
    zeroed[10] = zeroed[11] = 0;
    CHECK(internet_checksum(zeroed) == 0xb861);
    CHECK(internet_checksum(wikipedia_ipv4_header) == 0);
}

TEST_CASE("a header whose one bit flipped no longer verifies", "[checksum][ipv4]") {
    for (std::size_t byte = 0; byte < wikipedia_ipv4_header.size(); ++byte) {
        Bytes8 corrupted = wikipedia_ipv4_header;
        corrupted[byte] ^= 0x10;
        CAPTURE(byte);
        CHECK(internet_checksum(corrupted) != 0);
    }
}

TEST_CASE("the IPv4 pseudo-header is source, destination, zero, protocol, length", "[checksum][pseudo]") {
    // UDP 127.0.0.1:1234 -> 127.0.0.1:5678 carrying "hi" (RFC 768 layout), by hand:
    //   pseudo-header  7f00 0001 7f00 0001 0011 000a
    //   UDP header     04d2 162e 000a 0000     data 6869
    //   7f00+0001+7f00+0001 = fe02; +0011 = fe13; +000a = fe1d;
    //   +04d2 = 102ef; +162e = 1191d; +000a = 11927; +6869 = 18190
    //   folded 1 + 8190 = 8191; checksum ~8191 = 7e6e
    const auto loopback = IpAddress::loopback_v4();
    auto sum = pseudo_header_sum(loopback, loopback, 17, 10);
    sum.add(Bytes8{0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0a, 0x00, 0x00, 'h', 'i'});
    CHECK(sum.finish() == 0x7e6e);

    SECTION("and encode_udp stores exactly that checksum at UDP bytes 6-7") {
        const Bytes8 payload{'h', 'i'};
        const auto packet = encode_udp(IpHeader{loopback, loopback}, UdpHeader{1234, 5678}, payload);
        REQUIRE(packet);
        REQUIRE(packet->size() == 30);
        CHECK((*packet)[26] == 0x7e);
        CHECK((*packet)[27] == 0x6e);
    }
}

TEST_CASE("the IPv6 pseudo-header has a 32-bit length and the next header last", "[checksum][pseudo]") {
    // The same datagram over ::1 -> ::1 (RFC 8200 8.1), by hand:
    //   addresses contribute 0001 + 0001 = 0002; length 0000 000a; zero, next header 0000 0011
    //   pseudo-header 0002 + 000a + 0011 = 001d
    //   UDP 04d2 + 162e + 000a + 0000 + 6869 = 8373; total 8390; checksum ~8390 = 7c6f
    const auto loopback = IpAddress::loopback_v6();
    auto sum = pseudo_header_sum(loopback, loopback, 17, 10);
    CHECK(sum.folded_sum() == 0x001d);
    sum.add(Bytes8{0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0a, 0x00, 0x00, 'h', 'i'});
    CHECK(sum.finish() == 0x7c6f);

    const Bytes8 payload{'h', 'i'};
    const auto packet = encode_udp(IpHeader{loopback, loopback}, UdpHeader{1234, 5678}, payload);
    REQUIRE(packet);
    REQUIRE(packet->size() == 50);
    CHECK((*packet)[46] == 0x7c);
    CHECK((*packet)[47] == 0x6f);
}

TEST_CASE("the IPv4 header portlab encodes has the RFC 791 checksum", "[checksum][ipv4]") {
    // Rebuild the well-known header's fields through the encoder: a UDP packet of
    // total length 0x73 = 115 (20 IP + 8 UDP + 87 data) from 192.168.0.1 to .199.
    IpHeader ip{IpAddress::v4(192, 168, 0, 1), IpAddress::v4(192, 168, 0, 199)};
    ip.ttl = 64;
    ip.identification = 0;
    ip.dont_fragment = true;
    const Bytes8 data(87, 0);
    const auto packet = encode_udp(ip, UdpHeader{1, 2}, data);
    REQUIRE(packet);
    CHECK(Bytes8(packet->begin(), packet->begin() + 20) == wikipedia_ipv4_header);
}
