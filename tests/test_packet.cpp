// Packet bytes: what the encoder writes is laid out as the RFCs draw it, decodes
// back to the same fields, and every byte of bad or cut-short input gives an error
// value (never a crash: these tests also run under ASan + UBSan).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "portlab/checksum.hpp"
#include "portlab/packet.hpp"

using namespace portlab;

namespace {

const IpAddress v4_loopback = IpAddress::loopback_v4();
const IpAddress v6_loopback = IpAddress::loopback_v6();

IpHeader loopback_ip(IpFamily family) {
    return family == IpFamily::v4 ? IpHeader{v4_loopback, v4_loopback} : IpHeader{v6_loopback, v6_loopback};
}

Bytes text_bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

// The options Linux puts on a SYN over loopback (MSS = 65535 - 40, wscale 7).
TcpOptions linux_syn_options() {
    TcpOptions options;
    options.mss = 65495;
    options.sack_permitted = true;
    options.timestamps = std::pair{1u, 0u};
    options.window_scale = 7;
    return options;
}

// Every layer and field lies inside the buffer: what a hex view relies on.
void require_ranges_inside(const DecodedPacket& packet, std::size_t size) {
    for (const auto& layer : packet.layers) {
        CAPTURE(layer.name, layer.offset, layer.length, size);
        REQUIRE(layer.offset <= size);
        REQUIRE(layer.length <= size - layer.offset);
        for (const auto& field : layer.fields) {
            CAPTURE(field.name, field.offset, field.length);
            REQUIRE(field.offset <= size);
            REQUIRE(field.length <= size - field.offset);
            REQUIRE(field.bit_offset + field.bit_count <= 8 * std::max<std::size_t>(field.length, 1));
        }
    }
}

const Field* find_field(const DecodedPacket& packet, std::string_view layer_name, std::string_view field_name) {
    const Layer* layer = packet.find_layer(layer_name);
    if (!layer) return nullptr;
    for (const auto& field : layer->fields)
        if (field.name == field_name) return &field;
    return nullptr;
}

void store_u16(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes[offset] = static_cast<std::uint8_t>(value >> 8);
    bytes[offset + 1] = static_cast<std::uint8_t>(value);
}

// Recomputes an IPv4 header checksum after a test edited the header on purpose.
void refresh_ipv4_checksum(Bytes& packet) {
    const std::size_t header = static_cast<std::size_t>(packet[0] & 0x0F) * 4;
    store_u16(packet, 10, 0);
    store_u16(packet, 10, internet_checksum(std::span(packet).first(header)));
}

// A set of valid packets of every kind the encoder makes, for the truncation and
// random tests.
std::vector<Bytes> sample_packets() {
    std::vector<Bytes> packets;
    for (const auto family : {IpFamily::v4, IpFamily::v6}) {
        const IpHeader ip = loopback_ip(family);
        TcpHeader syn{40002, 8080, 0, 0, tcp_flag::syn, 65495, 0, linux_syn_options()};
        packets.push_back(encode_tcp(ip, syn).value());
        TcpHeader data{40002, 8080, 1, 1, tcp_flag::psh | tcp_flag::ack, 512, 0, {}};
        data.options.timestamps = std::pair{100u, 200u};
        packets.push_back(encode_tcp(ip, data, text_bytes("GET / HTTP/1.0\r\n\r\n")).value());
        const Bytes udp = encode_udp(ip, UdpHeader{40000, 53}, text_bytes("hello")).value();
        packets.push_back(udp);
        packets.push_back(encode_port_unreachable(ip, udp).value());
    }
    return packets;
}

}  // namespace

// ---------------------------------------------------------------------------
// Layout: bytes where the RFCs put them
// ---------------------------------------------------------------------------

TEST_CASE("a Linux-style SYN is laid out byte for byte as RFC 791 and RFC 9293 draw it", "[packet][tcp][encode]") {
    const TcpHeader syn{40002, 8080, 0, 0, tcp_flag::syn, 65495, 0, linux_syn_options()};
    const auto packet = encode_tcp(loopback_ip(IpFamily::v4), syn);
    REQUIRE(packet);
    // Checksum bytes (IP 10-11, TCP 36-37) are checked separately below.
    const Bytes expected{
        0x45, 0x00, 0x00, 0x3c,  // version 4, IHL 5; TOS 0; total length 60 = 20 IP + 20 TCP + 20 options
        0x00, 0x00, 0x40, 0x00,  // identification 0; DF
        0x40, 0x06, 0x00, 0x00,  // TTL 64, protocol 6; (checksum)
        0x7f, 0x00, 0x00, 0x01,  // 127.0.0.1
        0x7f, 0x00, 0x00, 0x01,  // 127.0.0.1
        0x9c, 0x42, 0x1f, 0x90,  // ports 40002 -> 8080
        0x00, 0x00, 0x00, 0x00,  // sequence 0
        0x00, 0x00, 0x00, 0x00,  // acknowledgment 0
        0xa0, 0x02, 0xff, 0xd7,  // data offset 10 words; SYN; window 65495
        0x00, 0x00, 0x00, 0x00,  // (checksum); urgent pointer 0
        0x02, 0x04, 0xff, 0xd7,  // MSS 65495
        0x04, 0x02, 0x08, 0x0a,  // SACK permitted; timestamps kind 8 length 10
        0x00, 0x00, 0x00, 0x01,  // TSval 1
        0x00, 0x00, 0x00, 0x00,  // TSecr 0
        0x01, 0x03, 0x03, 0x07,  // NOP; window scale 7
    };
    Bytes without_checksums = *packet;
    store_u16(without_checksums, 10, 0);
    store_u16(without_checksums, 36, 0);
    CHECK(without_checksums == expected);
    // RFC 1071: a correct checksum makes the covered bytes sum to 0 after complementing.
    CHECK(internet_checksum(std::span(*packet).first(20)) == 0);
    auto tcp_sum = pseudo_header_sum(v4_loopback, v4_loopback, ip_protocol::tcp, 40);
    tcp_sum.add(std::span(*packet).subspan(20));
    CHECK(tcp_sum.finish() == 0);
}

TEST_CASE("an IPv6 header carries version, traffic class, flow label, payload length, next header, hop limit", "[packet][ipv6][encode]") {
    IpHeader ip = loopback_ip(IpFamily::v6);
    ip.traffic_class = 0xb8;  // DSCP EF
    ip.flow_label = 0x12345;
    ip.ttl = 7;
    const auto packet = encode_udp(ip, UdpHeader{1, 2}, text_bytes("abc"));
    REQUIRE(packet);
    REQUIRE(packet->size() == 40 + 8 + 3);
    // RFC 8200 3: 4 bits version, 8 traffic class, 20 flow label.
    CHECK((*packet)[0] == 0x6b);
    CHECK((*packet)[1] == 0x81);
    CHECK((*packet)[2] == 0x23);
    CHECK((*packet)[3] == 0x45);
    CHECK((*packet)[4] == 0x00);
    CHECK((*packet)[5] == 11);  // payload length excludes the 40-byte header
    CHECK((*packet)[6] == 17);
    CHECK((*packet)[7] == 7);
    CHECK(std::equal(packet->begin() + 8, packet->begin() + 24, v6_loopback.bytes().begin()));
}

TEST_CASE("addresses of different IP versions are an error, not a packet", "[packet][encode]") {
    const IpHeader mixed{v4_loopback, v6_loopback};
    CHECK_FALSE(encode_tcp(mixed, TcpHeader{}));
    CHECK_FALSE(encode_udp(mixed, UdpHeader{}));
    const auto udp = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}).value();
    const auto icmp = encode_port_unreachable(mixed, udp);
    REQUIRE_FALSE(icmp);
    CHECK_THAT(icmp.error().message, Catch::Contains("different IP versions"));
}

TEST_CASE("a payload too big for one packet is an error", "[packet][encode]") {
    const Bytes huge(70000, 0);
    CHECK_FALSE(encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}, huge));
    CHECK_FALSE(encode_tcp(loopback_ip(IpFamily::v6), TcpHeader{}, huge));
    IpHeader bad_flow = loopback_ip(IpFamily::v6);
    bad_flow.flow_label = 0x100000;  // 21 bits
    CHECK_FALSE(encode_udp(bad_flow, UdpHeader{1, 2}));
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

TEST_CASE("TCP segments decode back to the header they were encoded from", "[packet][tcp][roundtrip]") {
    const auto family = GENERATE(IpFamily::v4, IpFamily::v6);
    const auto flags = GENERATE(std::uint8_t{tcp_flag::syn}, std::uint8_t{tcp_flag::syn | tcp_flag::ack},
                                std::uint8_t{tcp_flag::ack}, std::uint8_t{tcp_flag::psh | tcp_flag::ack},
                                std::uint8_t{tcp_flag::fin | tcp_flag::ack}, std::uint8_t{tcp_flag::rst},
                                std::uint8_t{tcp_flag::rst | tcp_flag::ack}, std::uint8_t{0xff}, std::uint8_t{0});
    const auto option_set = GENERATE(range(0, 6));
    TcpOptions options;
    switch (option_set) {
        case 0: break;
        case 1: options = linux_syn_options(); break;
        case 2: options.mss = 1460; break;
        case 3: options.sack_permitted = true; break;
        case 4: options.timestamps = std::pair{0xdeadbeefu, 0x01020304u}; break;
        case 5: options.window_scale = 14; options.sack_permitted = true; break;
    }
    CAPTURE(family == IpFamily::v4 ? 4 : 6, flags, option_set);

    IpHeader ip = family == IpFamily::v4 ? IpHeader{IpAddress::v4(192, 0, 2, 1), IpAddress::v4(198, 51, 100, 7)}
                                         : IpHeader{IpAddress::parse("2001:db8::1").value(), IpAddress::parse("2001:db8::2").value()};
    ip.ttl = 42;
    ip.traffic_class = 0x02;
    if (family == IpFamily::v4) {
        ip.identification = 0xbeef;
        ip.dont_fragment = false;
    } else {
        ip.flow_label = 0xabcde;
    }
    const TcpHeader tcp{54321, 443, 0x89abcdef, 0x12345678, flags, 29200, flags & tcp_flag::urg ? std::uint16_t{3} : std::uint16_t{0}, options};
    const Bytes payload = text_bytes("payload bytes!");

    const auto packet = encode_tcp(ip, tcp, payload);
    REQUIRE(packet);
    const auto decoded = decode_ip(*packet);
    REQUIRE(decoded);
    REQUIRE(decoded->tcp);
    CHECK(*decoded->tcp == tcp);
    CHECK(decoded->ip == ip);
    CHECK(decoded->ip_protocol == ip_protocol::tcp);
    CHECK(decoded->protocol() == Protocol::tcp);
    CHECK(decoded->ip_total_length == packet->size());
    REQUIRE(decoded->transport_checksum);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    CHECK(decoded->ip_checksum.has_value() == (family == IpFamily::v4));
    if (decoded->ip_checksum) CHECK(decoded->ip_checksum->status == ChecksumStatus::good);
    REQUIRE(decoded->payload_length == payload.size());
    CHECK(Bytes(packet->begin() + static_cast<std::ptrdiff_t>(decoded->payload_offset), packet->end()) == payload);
    CHECK(decoded->notes.empty());
    require_ranges_inside(*decoded, packet->size());
}

TEST_CASE("UDP datagrams decode back to the header they were encoded from", "[packet][udp][roundtrip]") {
    const auto family = GENERATE(IpFamily::v4, IpFamily::v6);
    const auto payload_size = GENERATE(0, 1, 2, 7, 1000);
    CAPTURE(family == IpFamily::v4 ? 4 : 6, payload_size);
    const IpHeader ip = loopback_ip(family);
    Bytes payload(static_cast<std::size_t>(payload_size));
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 7);
    const UdpHeader udp{33333, 9};

    const auto packet = encode_udp(ip, udp, payload);
    REQUIRE(packet);
    const auto decoded = decode_ip(*packet);
    REQUIRE(decoded);
    REQUIRE(decoded->udp);
    CHECK(*decoded->udp == udp);
    CHECK(decoded->ip == ip);
    CHECK(decoded->protocol() == Protocol::udp);
    CHECK(decoded->source() == Endpoint{ip.source, 33333});
    CHECK(decoded->destination() == Endpoint{ip.destination, 9});
    REQUIRE(decoded->transport_checksum);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    CHECK(decoded->payload_length == payload.size());
    CHECK(decoded->payload_offset == (family == IpFamily::v4 ? 28u : 48u));
    require_ranges_inside(*decoded, packet->size());
}

TEST_CASE("ICMPv4 port unreachable quotes the IP header and 8 bytes of the datagram (RFC 792)", "[packet][icmp]") {
    const IpHeader client{IpAddress::v4(192, 0, 2, 1), IpAddress::v4(192, 0, 2, 2)};
    const Bytes offending = encode_udp(client, UdpHeader{40000, 9999}, text_bytes("is anyone there?")).value();
    const IpHeader reply{client.destination, client.source};
    const auto packet = encode_port_unreachable(reply, offending);
    REQUIRE(packet);
    REQUIRE(packet->size() == 20 + 8 + 28);
    CHECK((*packet)[9] == ip_protocol::icmp);
    CHECK((*packet)[20] == 3);  // type 3: destination unreachable
    CHECK((*packet)[21] == 3);  // code 3: port unreachable
    CHECK(std::all_of(packet->begin() + 24, packet->begin() + 28, [](auto b) { return b == 0; }));  // unused
    CHECK(Bytes(packet->begin() + 28, packet->end()) == Bytes(offending.begin(), offending.begin() + 28));
    CHECK(internet_checksum(std::span(*packet).subspan(20)) == 0);  // RFC 792: over the ICMP message only

    const auto decoded = decode_ip(*packet);
    REQUIRE(decoded);
    REQUIRE(decoded->icmp);
    CHECK(decoded->icmp->type == 3);
    CHECK(decoded->icmp->code == 3);
    CHECK_THAT(decoded->icmp->description, Catch::Contains("port unreachable"));
    REQUIRE(decoded->icmp->quoted_ip);
    CHECK(decoded->icmp->quoted_ip->source == client.source);
    CHECK(decoded->icmp->quoted_ip->destination == client.destination);
    CHECK(decoded->icmp->quoted_protocol == ip_protocol::udp);
    CHECK(decoded->icmp->quoted_source_port == Port{40000});
    CHECK(decoded->icmp->quoted_destination_port == Port{9999});
    REQUIRE(decoded->transport_checksum);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    CHECK(decoded->find_layer("Quoted IPv4"));
    CHECK(decoded->find_layer("Quoted UDP"));
    CHECK(decoded->summary() ==
          "192.0.2.2 > 192.0.2.1 ICMP Destination unreachable: port unreachable (for UDP 192.0.2.1:40000 > 192.0.2.2:9999)");
    require_ranges_inside(*decoded, packet->size());
}

TEST_CASE("ICMPv6 port unreachable is type 1 code 4 and quotes up to the 1280-byte minimum MTU (RFC 4443)", "[packet][icmp][ipv6]") {
    const IpHeader client{IpAddress::parse("2001:db8::1").value(), IpAddress::parse("2001:db8::2").value()};
    const IpHeader reply{client.destination, client.source};

    SECTION("a small datagram is quoted whole") {
        const Bytes offending = encode_udp(client, UdpHeader{40000, 9999}, text_bytes("hi")).value();
        const auto packet = encode_port_unreachable(reply, offending);
        REQUIRE(packet);
        REQUIRE(packet->size() == 40 + 8 + offending.size());
        CHECK((*packet)[6] == ip_protocol::icmpv6);
        CHECK((*packet)[40] == 1);
        CHECK((*packet)[41] == 4);
        CHECK(Bytes(packet->begin() + 48, packet->end()) == offending);
        auto sum = pseudo_header_sum(reply.source, reply.destination, ip_protocol::icmpv6,
                                     static_cast<std::uint32_t>(packet->size() - 40));
        sum.add(std::span(*packet).subspan(40));
        CHECK(sum.finish() == 0);  // RFC 4443 2.3: pseudo-header included

        const auto decoded = decode_ip(*packet);
        REQUIRE(decoded);
        REQUIRE(decoded->icmp);
        CHECK(decoded->icmp->type == 1);
        CHECK(decoded->icmp->code == 4);
        CHECK(decoded->icmp->quoted_source_port == Port{40000});
        CHECK(decoded->icmp->quoted_destination_port == Port{9999});
        REQUIRE(decoded->icmp->quoted_ip);
        CHECK(decoded->icmp->quoted_ip->source == client.source);
        CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
        require_ranges_inside(*decoded, packet->size());
    }
    SECTION("a big datagram is cut so the error is exactly 1280 bytes") {
        const Bytes offending = encode_udp(client, UdpHeader{40000, 9999}, Bytes(1400, 0x55)).value();
        const auto packet = encode_port_unreachable(reply, offending);
        REQUIRE(packet);
        CHECK(packet->size() == 1280);
        const auto decoded = decode_ip(*packet);
        REQUIRE(decoded);
        CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    }
}

TEST_CASE("time exceeded is ICMPv4 type 11 / ICMPv6 type 3, code 0, and quotes like any error (RFC 792, RFC 4443 3.3)",
          "[packet][icmp]") {
    const auto [client, router] = GENERATE(table<const char*, const char*>({{"192.0.2.1", "192.0.2.2"}, {"2001:db8::1", "2001:db8::2"}}));
    CAPTURE(client);
    IpHeader sent{IpAddress::parse(client).value(), IpAddress::parse("198.51.100.2").value()};
    if (sent.source.is_v6()) sent.destination = IpAddress::parse("2001:db8:1::2").value();
    sent.ttl = 1;
    const Bytes offending = encode_udp(sent, UdpHeader{33434, 9000}, text_bytes("probe")).value();
    const IpHeader reply{IpAddress::parse(router).value(), sent.source};
    const auto packet = encode_icmp_time_exceeded(reply, offending);
    REQUIRE(packet);
    const auto decoded = decode_ip(*packet);
    REQUIRE(decoded);
    REQUIRE(decoded->icmp);
    CHECK(decoded->icmp->type == (sent.source.is_v4() ? 11 : 3));
    CHECK(decoded->icmp->code == 0);
    CHECK_THAT(decoded->icmp->description, Catch::Contains("Time exceeded"));
    REQUIRE(decoded->icmp->quoted_ip);
    CHECK(decoded->icmp->quoted_ip->source == sent.source);
    CHECK(decoded->icmp->quoted_ip->ttl == 1);
    CHECK(decoded->icmp->quoted_source_port == Port{33434});
    CHECK(decoded->icmp->quoted_destination_port == Port{9000});
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    require_ranges_inside(*decoded, packet->size());
}

TEST_CASE("an ICMP error must quote a packet of its own IP version", "[packet][icmp]") {
    const Bytes v6_udp = encode_udp(loopback_ip(IpFamily::v6), UdpHeader{1, 2}).value();
    CHECK_FALSE(encode_port_unreachable(loopback_ip(IpFamily::v4), v6_udp));
    CHECK_FALSE(encode_port_unreachable(loopback_ip(IpFamily::v4), Bytes{0x45, 0}));
}

// ---------------------------------------------------------------------------
// Link headers
// ---------------------------------------------------------------------------

TEST_CASE("link headers are the ones a loopback capture records", "[packet][link]") {
    const Bytes v4 = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}).value();
    const Bytes v6 = encode_udp(loopback_ip(IpFamily::v6), UdpHeader{1, 2}).value();
    auto head = [](const Bytes& frame, std::size_t n) { return Bytes(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n)); };

    // Ethernet II: 6 + 6 zero MAC bytes (Linux lo), EtherType 0x0800 / 0x86DD.
    Bytes ethernet(12, 0);
    ethernet.insert(ethernet.end(), {0x08, 0x00});
    CHECK(head(with_link_header(LinkType::en10mb, v4), 14) == ethernet);
    ethernet[12] = 0x86;
    ethernet[13] = 0xdd;
    CHECK(head(with_link_header(LinkType::en10mb, v6), 14) == ethernet);
    // Linux cooked v1 (pcap-linktype(7)): packet type 0, ARPHRD_LOOPBACK 772 = 0x0304,
    // address length 6, 8 address bytes, protocol.
    const Bytes sll{0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00};
    CHECK(head(with_link_header(LinkType::linux_sll, v4), 16) == sll);
    // Linux cooked v2 (pcap-linktype(7)): protocol, reserved, interface index 1 (lo),
    // ARPHRD_LOOPBACK, packet type 0, address length 6, 8 address bytes.
    const Bytes sll2{0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(head(with_link_header(LinkType::linux_sll2, v6), 20) == sll2);
    // BSD NULL: AF_INET = 2 as a 32-bit number in this host's byte order.
    const std::uint32_t af_inet = 2;
    Bytes null_header(4);
    std::memcpy(null_header.data(), &af_inet, 4);
    CHECK(head(with_link_header(LinkType::null, v4), 4) == null_header);
    CHECK(with_link_header(LinkType::raw, v4) == v4);
}

TEST_CASE("decode_frame skips the link header and counts offsets from the frame's start", "[packet][link]") {
    const auto [link_type, header_size] = GENERATE(table<LinkType, std::size_t>({
        {LinkType::raw, 0}, {LinkType::en10mb, 14}, {LinkType::linux_sll, 16}, {LinkType::linux_sll2, 20}, {LinkType::null, 4}}));
    const auto family = GENERATE(IpFamily::v4, IpFamily::v6);
    CAPTURE(static_cast<int>(link_type), family == IpFamily::v4 ? 4 : 6);
    const TcpHeader syn{40002, 8080, 0, 0, tcp_flag::syn, 65495, 0, linux_syn_options()};
    const Bytes packet = encode_tcp(loopback_ip(family), syn).value();
    const Bytes frame = with_link_header(link_type, packet);

    const auto decoded = decode_frame(link_type, frame);
    REQUIRE(decoded);
    REQUIRE(decoded->tcp);
    CHECK(*decoded->tcp == syn);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    const std::size_t ip_header = family == IpFamily::v4 ? 20 : 40;
    const Field* source_port = find_field(*decoded, "TCP", "Source port");
    REQUIRE(source_port);
    CHECK(source_port->offset == header_size + ip_header);
    CHECK(source_port->length == 2);
    CHECK(decoded->layers.size() == (link_type == LinkType::raw ? 2u : 3u));
    require_ranges_inside(*decoded, frame.size());
}

TEST_CASE("a link header announcing the other IP version, or not IP at all, is an error", "[packet][link]") {
    const Bytes v4 = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}).value();
    Bytes frame = with_link_header(LinkType::en10mb, v4);
    frame[12] = 0x86;
    frame[13] = 0xdd;
    CHECK_FALSE(decode_frame(LinkType::en10mb, frame));
    frame[12] = 0x08;
    frame[13] = 0x06;  // ARP
    const auto arp = decode_frame(LinkType::en10mb, frame);
    REQUIRE_FALSE(arp);
    CHECK_THAT(arp.error().message, Catch::Contains("ARP"));
    CHECK_FALSE(decode_frame(static_cast<LinkType>(105), v4));
}

TEST_CASE("Ethernet padding after the IP total length is ignored", "[packet][link]") {
    // Ethernet frames are at least 60 bytes before the FCS (IEEE 802.3), so a short
    // packet arrives with zero padding the IP total length excludes.
    const Bytes packet = encode_tcp(loopback_ip(IpFamily::v4), TcpHeader{1, 2, 3, 4, tcp_flag::ack, 100, 0, {}}).value();
    Bytes frame = with_link_header(LinkType::en10mb, packet);
    REQUIRE(frame.size() == 54);
    frame.resize(60, 0);
    const auto decoded = decode_frame(LinkType::en10mb, frame);
    REQUIRE(decoded);
    CHECK(decoded->payload_length == 0);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
}

// ---------------------------------------------------------------------------
// Fields for the hex view
// ---------------------------------------------------------------------------

TEST_CASE("every decoded field has a name, a value and a one-line meaning", "[packet][fields]") {
    for (const auto& packet : sample_packets()) {
        const auto decoded = decode_ip(packet);
        REQUIRE(decoded);
        for (const auto& layer : decoded->layers) {
            CHECK_FALSE(layer.fields.empty());
            for (const auto& field : layer.fields) {
                CAPTURE(layer.name, field.name);
                CHECK_FALSE(field.name.empty());
                CHECK_FALSE(field.meaning.empty());
                CHECK(field.meaning.find('\n') == std::string::npos);
                CHECK(field.offset >= layer.offset);
                CHECK(field.offset + field.length <= layer.offset + layer.length);
            }
        }
    }
}

TEST_CASE("bit fields point at the bits RFC 791 and RFC 9293 assign them", "[packet][fields]") {
    const TcpHeader segment{40002, 8080, 5, 6, tcp_flag::syn | tcp_flag::ack, 100, 0, {}};
    const auto decoded = decode_ip(encode_tcp(loopback_ip(IpFamily::v4), segment).value());
    REQUIRE(decoded);
    auto check_field = [&](std::string_view layer, std::string_view name, std::size_t offset, std::size_t length,
                           int bit_offset, int bit_count, std::string_view value) {
        CAPTURE(layer, name);
        const Field* field = find_field(*decoded, layer, name);
        REQUIRE(field);
        CHECK(field->offset == offset);
        CHECK(field->length == length);
        CHECK(field->bit_offset == bit_offset);
        CHECK(field->bit_count == bit_count);
        CHECK(field->value == value);
    };
    check_field("IPv4", "Version", 0, 1, 0, 4, "4");
    check_field("IPv4", "IHL", 0, 1, 4, 4, "5 (20 bytes)");
    check_field("IPv4", "Don't fragment", 6, 1, 1, 1, "1");
    check_field("IPv4", "Fragment offset", 6, 2, 3, 13, "0");
    check_field("IPv4", "Protocol", 9, 1, 0, 0, "6 (TCP)");
    check_field("IPv4", "Source address", 12, 4, 0, 0, "127.0.0.1");
    check_field("TCP", "Source port", 20, 2, 0, 0, "40002");
    check_field("TCP", "Destination port", 22, 2, 0, 0, "8080");
    check_field("TCP", "Data offset", 32, 1, 0, 4, "5 (20 bytes)");
    check_field("TCP", "Flags", 33, 1, 0, 0, "SYN,ACK");
    // Byte 13 from its most significant bit: CWR ECE URG ACK PSH RST SYN FIN.
    check_field("TCP", "ACK", 33, 1, 3, 1, "1");
    check_field("TCP", "SYN", 33, 1, 6, 1, "1");
    check_field("TCP", "FIN", 33, 1, 7, 1, "0");
    check_field("TCP", "CWR", 33, 1, 0, 1, "0");
    check_field("TCP", "Window", 34, 2, 0, 0, "100");
    const Field* source_port = find_field(*decoded, "TCP", "Source port");
    CHECK(source_port->meaning ==
          "The sender's port: the client's ephemeral port on the way out, the server's port on the way back");
}

TEST_CASE("TCP options each get a field over their kind, length and value bytes", "[packet][fields][tcp]") {
    const TcpHeader syn{40002, 8080, 0, 0, tcp_flag::syn, 65495, 0, linux_syn_options()};
    const auto decoded = decode_ip(encode_tcp(loopback_ip(IpFamily::v4), syn).value());
    REQUIRE(decoded);
    // Options start at byte 40 (20 IP + 20 TCP), in the order of the SYN layout test.
    const auto mss = find_field(*decoded, "TCP", "Option: MSS");
    REQUIRE(mss);
    CHECK(mss->offset == 40);
    CHECK(mss->length == 4);
    CHECK(mss->value == "65495");
    const auto timestamps = find_field(*decoded, "TCP", "Option: Timestamps");
    REQUIRE(timestamps);
    CHECK(timestamps->offset == 46);
    CHECK(timestamps->length == 10);
    const auto wscale = find_field(*decoded, "TCP", "Option: Window scale");
    REQUIRE(wscale);
    CHECK(wscale->offset == 57);
    CHECK(wscale->length == 3);
}

TEST_CASE("the summary line reads like tcpdump's", "[packet][summary]") {
    const auto syn = decode_ip(encode_tcp(loopback_ip(IpFamily::v4), TcpHeader{40002, 8080, 0, 0, tcp_flag::syn, 65495, 0, {}}).value());
    REQUIRE(syn);
    CHECK(syn->summary() == "127.0.0.1:40002 > 127.0.0.1:8080 TCP [SYN] seq=0 win=65495 len=0");
    const auto data = decode_ip(
        encode_tcp(loopback_ip(IpFamily::v6), TcpHeader{8080, 40002, 1, 2, tcp_flag::psh | tcp_flag::ack, 512, 0, {}}, text_bytes("hey")).value());
    REQUIRE(data);
    CHECK(data->summary() == "[::1]:8080 > [::1]:40002 TCP [PSH,ACK] seq=1 ack=2 win=512 len=3");
    const auto udp = decode_ip(encode_udp(loopback_ip(IpFamily::v4), UdpHeader{5000, 53}, text_bytes("query")).value());
    REQUIRE(udp);
    CHECK(udp->summary() == "127.0.0.1:5000 > 127.0.0.1:53 UDP len=5");
}

TEST_CASE("flags print lowest bit first, comma separated", "[packet][tcp]") {
    CHECK(tcp_flags_to_string(0x12) == "SYN,ACK");
    CHECK(tcp_flags_to_string(0x00) == "none");
    CHECK(tcp_flags_to_string(0x11) == "FIN,ACK");
    CHECK(tcp_flags_to_string(0xff) == "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR");
}

// ---------------------------------------------------------------------------
// Checksum status: reported and explained, never a reason to reject
// ---------------------------------------------------------------------------

TEST_CASE("a loopback capture's partial checksum is reported as offload, not as corruption", "[packet][checksum]") {
    // Linux marks loopback TCP/UDP CHECKSUM_PARTIAL and stores only the folded
    // pseudo-header sum (tcp_v4_send_check: th->check = ~tcp_v4_check(len, saddr, daddr, 0)).
    const auto family = GENERATE(IpFamily::v4, IpFamily::v6);
    const bool tcp = GENERATE(true, false);
    CAPTURE(family == IpFamily::v4 ? 4 : 6, tcp);
    const IpHeader ip = loopback_ip(family);
    const Bytes payload = text_bytes("ping");
    Bytes packet = tcp ? encode_tcp(ip, TcpHeader{40002, 8080, 1, 1, tcp_flag::ack | tcp_flag::psh, 512, 0, {}}, payload).value()
                       : encode_udp(ip, UdpHeader{40002, 8080}, payload).value();
    const std::size_t transport = family == IpFamily::v4 ? 20 : 40;
    const std::size_t checksum_at = transport + (tcp ? 16 : 6);
    const auto length = static_cast<std::uint32_t>(packet.size() - transport);
    const std::uint16_t partial =
        pseudo_header_sum(ip.source, ip.destination, tcp ? ip_protocol::tcp : ip_protocol::udp, length).folded_sum();
    const std::uint16_t full = static_cast<std::uint16_t>(packet[checksum_at] << 8 | packet[checksum_at + 1]);
    store_u16(packet, checksum_at, partial);

    const auto decoded = decode_ip(packet);
    REQUIRE(decoded);
    REQUIRE(decoded->transport_checksum);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::partial_offload);
    CHECK(decoded->transport_checksum->stored == partial);
    CHECK(decoded->transport_checksum->expected == full);
    CHECK_THAT(decoded->transport_checksum->explanation, Catch::Contains("offload"));
    CHECK(to_string(ChecksumStatus::partial_offload) == "partial: pseudo-header only, left for checksum offload");
    REQUIRE_FALSE(decoded->notes.empty());
    CHECK(decoded->payload_length == 4);
}

TEST_CASE("packets the Linux kernel sent over lo decode, with their checksums left to offload", "[packet][checksum][kernel]") {
    // Captured with `tcpdump -i lo` on Linux 6.18 (Ethernet header removed): a
    // connect() SYN and a sendto() datagram, both from 127.0.0.1 to 127.0.0.1.
    // The kernel stored only the folded pseudo-header sum, by hand:
    //   7f00 + 0001 + 7f00 + 0001 = fe02; TCP: + 0006 + 0028 (length 40) = fe30
    //                                      UDP: + 0011 + 000c (length 12) = fe1f
    const Bytes kernel_syn{
        0x45, 0x00, 0x00, 0x3c, 0x54, 0x18, 0x40, 0x00, 0x40, 0x06, 0xe8, 0xa1, 0x7f, 0x00, 0x00, 0x01,
        0x7f, 0x00, 0x00, 0x01, 0xba, 0x0c, 0xb8, 0x13, 0x28, 0x3d, 0xcf, 0xd2, 0x00, 0x00, 0x00, 0x00,
        0xa0, 0x02, 0xff, 0xd7, 0xfe, 0x30, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7, 0x04, 0x02, 0x08, 0x0a,
        0x66, 0xae, 0xc1, 0xf7, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    };
    const Bytes kernel_udp{
        0x45, 0x00, 0x00, 0x20, 0x6f, 0x67, 0x40, 0x00, 0x40, 0x11, 0xcd, 0x63, 0x7f, 0x00, 0x00, 0x01,
        0x7f, 0x00, 0x00, 0x01, 0xdf, 0x91, 0xb8, 0x14, 0x00, 0x0c, 0xfe, 0x1f, 0x75, 0x64, 0x70, 0x21,
    };

    const auto syn = decode_ip(kernel_syn);
    REQUIRE(syn);
    REQUIRE(syn->tcp);
    CHECK(syn->tcp->source_port == 47628);  // 0xba0c
    CHECK(syn->tcp->destination_port == 47123);  // 0xb813
    CHECK(syn->tcp->sequence == 0x283dcfd2);
    CHECK(syn->tcp->flags == tcp_flag::syn);
    CHECK(syn->tcp->window == 65495);
    CHECK(syn->tcp->options.mss == std::uint16_t{65495});
    CHECK(syn->tcp->options.sack_permitted);
    CHECK(syn->tcp->options.timestamps == std::pair{0x66aec1f7u, 0u});
    CHECK(syn->tcp->options.window_scale == std::uint8_t{10});
    CHECK(syn->ip_checksum->status == ChecksumStatus::good);  // the IP header checksum is always computed
    CHECK(syn->transport_checksum->status == ChecksumStatus::partial_offload);
    CHECK(syn->transport_checksum->stored == 0xfe30);

    const auto udp = decode_ip(kernel_udp);
    REQUIRE(udp);
    REQUIRE(udp->udp);
    CHECK(udp->udp->destination_port == 47124);
    CHECK(udp->payload_length == 4);  // "udp!"
    CHECK(udp->ip_checksum->status == ChecksumStatus::good);
    CHECK(udp->transport_checksum->status == ChecksumStatus::partial_offload);
    CHECK(udp->transport_checksum->stored == 0xfe1f);
}

TEST_CASE("a corrupted segment decodes with a bad checksum and the value it should have", "[packet][checksum]") {
    const Bytes good = encode_tcp(loopback_ip(IpFamily::v4), TcpHeader{1, 2, 3, 4, tcp_flag::ack, 5, 0, {}}, text_bytes("data")).value();
    Bytes bad = good;
    bad.back() ^= 0x01;
    const auto decoded = decode_ip(bad);
    REQUIRE(decoded);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::bad);
    CHECK(decoded->transport_checksum->stored == (good[36] << 8 | good[37]));
    // The receiver's view: storing `expected` makes the RFC 1071 check pass again.
    store_u16(bad, 36, decoded->transport_checksum->expected);
    CHECK(decode_ip(bad)->transport_checksum->status == ChecksumStatus::good);

    SECTION("the same for the IPv4 header checksum") {
        Bytes ip_bad = good;
        ip_bad[8] = 1;  // TTL changed without updating the checksum
        const auto result = decode_ip(ip_bad);
        REQUIRE(result);
        CHECK(result->ip_checksum->status == ChecksumStatus::bad);
        store_u16(ip_bad, 10, result->ip_checksum->expected);
        CHECK(internet_checksum(std::span(ip_bad).first(20)) == 0);
    }
}

TEST_CASE("UDP checksum 0 means 'not computed' over IPv4 and is wrong over IPv6", "[packet][checksum][udp]") {
    // RFC 768: an all-zero checksum means the sender did not compute one.
    Bytes v4 = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}, text_bytes("x")).value();
    store_u16(v4, 26, 0);
    const auto decoded_v4 = decode_ip(v4);
    REQUIRE(decoded_v4);
    CHECK(decoded_v4->transport_checksum->status == ChecksumStatus::not_computed);
    // RFC 8200 8.1: mandatory over IPv6.
    Bytes v6 = encode_udp(loopback_ip(IpFamily::v6), UdpHeader{1, 2}, text_bytes("x")).value();
    store_u16(v6, 46, 0);
    const auto decoded_v6 = decode_ip(v6);
    REQUIRE(decoded_v6);
    CHECK(decoded_v6->transport_checksum->status == ChecksumStatus::bad);
    CHECK_THAT(decoded_v6->transport_checksum->explanation, Catch::Contains("RFC 8200"));
}

TEST_CASE("a UDP checksum that computes to 0 is sent as ffff (RFC 768)", "[packet][checksum][udp]") {
    // Choose the payload so the sum works out to ffff before complementing: put the
    // needed word in the payload, computed from the sum of everything else.
    const IpHeader ip = loopback_ip(IpFamily::v4);
    auto rest = pseudo_header_sum(ip.source, ip.destination, ip_protocol::udp, 10);
    rest.add_u16(1);   // source port
    rest.add_u16(2);   // destination port
    rest.add_u16(10);  // length
    const std::uint16_t filler = static_cast<std::uint16_t>(~rest.folded_sum());  // sum + filler = ffff
    const Bytes payload{static_cast<std::uint8_t>(filler >> 8), static_cast<std::uint8_t>(filler)};
    const auto packet = encode_udp(ip, UdpHeader{1, 2}, payload);
    REQUIRE(packet);
    CHECK((*packet)[26] == 0xff);
    CHECK((*packet)[27] == 0xff);
    CHECK(decode_ip(*packet)->transport_checksum->status == ChecksumStatus::good);
}

TEST_CASE("a capture cut by the snap length decodes with checksums not verifiable", "[packet][checksum][truncated]") {
    const Bytes payload(200, 0xab);
    const Bytes packet = encode_tcp(loopback_ip(IpFamily::v4), TcpHeader{1, 2, 3, 4, tcp_flag::ack, 5, 0, {}}, payload).value();
    const Bytes frame = with_link_header(LinkType::en10mb, packet);
    const std::span<const std::uint8_t> captured = std::span(frame).first(96);  // tcpdump's old default snap length
    const auto decoded = decode_frame(LinkType::en10mb, captured, frame.size());
    REQUIRE(decoded);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::not_verifiable);
    CHECK(decoded->ip_checksum->status == ChecksumStatus::good);  // the IP header is all there
    CHECK(decoded->payload_length == 200);
    require_ranges_inside(*decoded, captured.size());
    // Without the original length the same bytes claim more than they have: an error.
    CHECK_FALSE(decode_frame(LinkType::en10mb, captured));
}

// ---------------------------------------------------------------------------
// Headers beyond the fixed ones
// ---------------------------------------------------------------------------

TEST_CASE("IPv4 options are skipped by the IHL and shown as one field", "[packet][ipv4]") {
    Bytes packet = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}, text_bytes("x")).value();
    // Insert 4 bytes of options (NOP NOP NOP EOL, RFC 791 3.1) and fix IHL, total length, checksum.
    packet.insert(packet.begin() + 20, {1, 1, 1, 0});
    packet[0] = 0x46;
    store_u16(packet, 2, static_cast<std::uint16_t>(packet.size()));
    refresh_ipv4_checksum(packet);
    const auto decoded = decode_ip(packet);
    REQUIRE(decoded);
    CHECK(decoded->ip_checksum->status == ChecksumStatus::good);
    REQUIRE(decoded->udp);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);
    const Field* options = find_field(*decoded, "IPv4", "Options");
    REQUIRE(options);
    CHECK(options->offset == 20);
    CHECK(options->length == 4);
}

TEST_CASE("IPv6 hop-by-hop options are skipped, but a fragment header is reported unsupported", "[packet][ipv6]") {
    Bytes packet = encode_udp(loopback_ip(IpFamily::v6), UdpHeader{1, 2}, text_bytes("x")).value();
    // RFC 8200 4.3: next header 17, length 0 (8 bytes), PadN option of 4 bytes of zeros.
    packet.insert(packet.begin() + 40, {17, 0, 1, 4, 0, 0, 0, 0});
    packet[6] = 0;  // next header: hop-by-hop
    store_u16(packet, 4, static_cast<std::uint16_t>(packet.size() - 40));
    const auto decoded = decode_ip(packet);
    REQUIRE(decoded);
    REQUIRE(decoded->udp);
    CHECK(decoded->ip_protocol == ip_protocol::udp);
    CHECK(decoded->transport_checksum->status == ChecksumStatus::good);  // pseudo-header uses the UDP length
    CHECK(decoded->payload_offset == 56);

    packet[6] = 44;  // Fragment
    const auto fragment = decode_ip(packet);
    REQUIRE_FALSE(fragment);
    CHECK_THAT(fragment.error().message, Catch::Contains("not supported"));
}

TEST_CASE("an IPv4 fragment is decoded down to IP, with a note", "[packet][ipv4]") {
    Bytes packet = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}, text_bytes("abcdefgh")).value();
    store_u16(packet, 6, 0x2000);  // more fragments, offset 0
    refresh_ipv4_checksum(packet);
    const auto decoded = decode_ip(packet);
    REQUIRE(decoded);
    CHECK_FALSE(decoded->udp);
    REQUIRE_FALSE(decoded->notes.empty());
    CHECK_THAT(decoded->notes.front(), Catch::Contains("fragment"));
}

// ---------------------------------------------------------------------------
// Bad input: errors, never crashes
// ---------------------------------------------------------------------------

TEST_CASE("inconsistent headers are errors that say what is wrong", "[packet][errors]") {
    const Bytes udp4 = encode_udp(loopback_ip(IpFamily::v4), UdpHeader{1, 2}, text_bytes("hi")).value();  // 30 bytes
    const Bytes tcp4 = encode_tcp(loopback_ip(IpFamily::v4), TcpHeader{1, 2, 0, 0, tcp_flag::syn, 5, 0, {}}).value();  // 40 bytes
    const Bytes udp6 = encode_udp(loopback_ip(IpFamily::v6), UdpHeader{1, 2}, text_bytes("hi")).value();  // 50 bytes
    struct Case {
        std::string what;
        int base;  // index into `bases` (locals are rebuilt on every GENERATE pass)
        std::size_t offset;
        std::uint8_t value;
        std::string message;
    };
    const auto c = GENERATE(values<Case>({
        {"IHL 4", 0, 0, 0x44, "IHL is 4"},
        {"IHL 15 past a 30-byte packet", 0, 0, 0x4f, "IHL says 60"},
        {"version 5", 0, 0, 0x55, "neither 4 nor 6"},
        {"total length 19", 0, 3, 19, "shorter than"},
        {"total length 31 in a 30-byte buffer", 0, 3, 31, "runs past"},
        {"UDP length 7", 0, 25, 7, "below the 8-byte header"},
        {"UDP length 11 in a 10-byte payload", 0, 25, 11, "runs past"},
        {"TCP data offset 4", 1, 32, 0x40, "data offset is 4"},
        {"TCP data offset 6 in a 20-byte segment", 1, 32, 0x60, "data offset says 24"},
        {"IPv6 payload length 11 in 10 bytes", 2, 5, 11, "runs past"},
        {"IPv6 bytes with a version 4 nibble", 2, 0, 0x46, "shorter than the 24-byte header"},
        {"IPv4 protocol UDP with a 10-byte TCP", 0, 9, 6, "too few for a 20-byte TCP header"},
    }));
    CAPTURE(c.what);
    const Bytes* bases[] = {&udp4, &tcp4, &udp6};
    Bytes packet = *bases[c.base];
    packet[c.offset] = c.value;
    const auto decoded = decode_ip(packet);
    REQUIRE_FALSE(decoded);
    CHECK_THAT(decoded.error().message, Catch::Contains(c.message));
}

TEST_CASE("malformed TCP options are errors", "[packet][errors][tcp]") {
    TcpHeader header{1, 2, 0, 0, tcp_flag::syn, 5, 0, {}};
    header.options.mss = 1460;
    const Bytes good = encode_tcp(loopback_ip(IpFamily::v4), header).value();  // options at 40..43
    const auto [what, offset, value] = GENERATE(table<std::string, std::size_t, std::uint8_t>({
        {"MSS length 3", 41, 3}, {"length 0", 41, 0}, {"length past the options", 41, 5}, {"length 1", 41, 1},
        {"window scale with length 4", 40, 3}, {"timestamps with length 4", 40, 8}}));
    CAPTURE(what);
    Bytes packet = good;
    packet[offset] = value;
    CHECK_FALSE(decode_ip(packet));
}

TEST_CASE("every truncation of a valid packet is an error, or a not-verifiable decode when the wire length is known", "[packet][errors][truncated]") {
    for (const auto& packet : sample_packets()) {
        for (const auto link_type : {LinkType::raw, LinkType::en10mb, LinkType::linux_sll, LinkType::linux_sll2, LinkType::null}) {
            const Bytes frame = with_link_header(link_type, packet);
            REQUIRE(decode_frame(link_type, frame));
            for (std::size_t n = 0; n < frame.size(); ++n) {
                CAPTURE(packet.size(), static_cast<int>(link_type), n);
                // An exact-size copy so ASan catches a read one byte past the end.
                const Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
                REQUIRE_FALSE(decode_frame(link_type, cut));
                const auto as_capture = decode_frame(link_type, cut, frame.size());
                if (!as_capture) continue;
                require_ranges_inside(*as_capture, n);
                if (as_capture->transport_checksum)
                    CHECK(as_capture->transport_checksum->status == ChecksumStatus::not_verifiable);
            }
            if (link_type == LinkType::raw) {
                for (std::size_t n = 0; n < packet.size(); ++n) {
                    const Bytes cut(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(n));
                    REQUIRE_FALSE(decode_ip(cut));
                }
            }
        }
    }
}

TEST_CASE("random bytes and random corruptions never crash the decoder", "[packet][errors][random]") {
    // A fixed seed: the same few thousand inputs every run, so a failure reproduces.
    std::mt19937 random(20240601);
    auto byte = [&] { return static_cast<std::uint8_t>(random() & 0xff); };
    const auto samples = sample_packets();
    const LinkType link_types[] = {LinkType::raw, LinkType::en10mb, LinkType::linux_sll, LinkType::linux_sll2,
                                   LinkType::null};
    std::size_t decoded_ok = 0;

    for (int i = 0; i < 3000; ++i) {
        Bytes input;
        const LinkType link_type = link_types[random() % std::size(link_types)];
        if (i % 2 == 0) {
            // Pure noise, with a plausible version nibble half the time so it gets past it.
            input.resize(random() % 120);
            std::generate(input.begin(), input.end(), byte);
            if (!input.empty() && random() % 2) input[0] = static_cast<std::uint8_t>((random() % 2 ? 0x40 : 0x60) | (input[0] & 0x0f));
            input = link_type == LinkType::raw ? input : with_link_header(link_type, input);
        } else {
            // A valid packet with a few bytes changed: reaches the deeper decoders.
            input = with_link_header(link_type, samples[random() % samples.size()]);
            const int changes = 1 + static_cast<int>(random() % 4);
            for (int k = 0; k < changes; ++k) input[random() % input.size()] = byte();
            if (random() % 4 == 0) input.resize(random() % (input.size() + 1));
        }
        CAPTURE(i);
        const std::size_t wire = random() % 3 == 0 ? input.size() + random() % 100 : 0;
        const auto decoded = decode_frame(link_type, input, wire);
        if (decoded) {
            ++decoded_ok;
            require_ranges_inside(*decoded, input.size());
            (void)decoded->summary();
        }
    }
    // Sanity: the corruptions leave some packets decodable (e.g. a changed payload byte).
    CHECK(decoded_ok > 100);
}

TEST_CASE("decoding headers only gives the full decode's answer on every truncation and one-byte change", "[packet][headers]") {
    // decode_frame_headers is what the visualizer runs on a million captured packets;
    // the hex view runs decode_frame on the one selected. They must never disagree
    // on whether a packet decodes, why not, or what its addresses and ports are.
    const auto same_answer = [](LinkType link_type, const Bytes& frame, std::size_t wire) {
        const auto full = decode_frame(link_type, frame, wire);
        const auto headers = decode_frame_headers(link_type, frame, wire);
        REQUIRE(full.has_value() == headers.has_value());
        if (!full) {
            CHECK(headers.error().message == full.error().message);
            return;
        }
        CHECK(headers->ip == full->ip);
        CHECK(headers->ip_protocol == full->ip_protocol);
        CHECK(headers->ip_total_length == full->ip_total_length);
        CHECK(headers->tcp == full->tcp);
        CHECK(headers->udp == full->udp);
        CHECK(headers->icmp.has_value() == full->icmp.has_value());
        CHECK(headers->payload_offset == full->payload_offset);
        CHECK(headers->payload_length == full->payload_length);
        CHECK(headers->protocol() == full->protocol());
        CHECK(headers->source() == full->source());
        CHECK(headers->destination() == full->destination());
        CHECK(headers->layers.empty());
    };
    std::size_t decoded = 0;
    for (const auto& packet : sample_packets()) {
        for (const auto link_type : {LinkType::raw, LinkType::en10mb, LinkType::linux_sll, LinkType::linux_sll2, LinkType::null}) {
            const Bytes frame = with_link_header(link_type, packet);
            decoded += decode_frame(link_type, frame).has_value();
            for (std::size_t n = 0; n <= frame.size(); ++n) {
                CAPTURE(packet.size(), static_cast<int>(link_type), n);
                const Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
                same_answer(link_type, cut, 0);
                same_answer(link_type, cut, frame.size());
            }
            for (std::size_t at = 0; at < frame.size(); ++at) {
                for (const std::uint8_t value : {std::uint8_t{0}, std::uint8_t(frame[at] ^ 0xff), std::uint8_t(frame[at] + 1)}) {
                    CAPTURE(packet.size(), static_cast<int>(link_type), at, static_cast<int>(value));
                    Bytes changed = frame;
                    changed[at] = value;
                    same_answer(link_type, changed, 0);
                }
            }
        }
    }
    CHECK(decoded == 5 * sample_packets().size());  // the unchanged frames all decode
}
