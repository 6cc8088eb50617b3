#include "portlab/packet.hpp"

#include "portlab/icmp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <initializer_list>
#include <iterator>
#include <string_view>

#include "portlab/checksum.hpp"

// [SECTION] byte helpers
// [SECTION] encoding: IP headers, TCP options, TCP, UDP, ICMP, link headers
// [SECTION] decoding: checksums, link layers, IPv4, IPv6, TCP, UDP, ICMP, quoted packets
// [SECTION] DecodedPacket conveniences

namespace portlab {

namespace {

// ===========================================================================
// [SECTION] byte helpers
// ===========================================================================

using ByteSpan = std::span<const std::uint8_t>;

// Big-endian ("network byte order", RFC 791 appendix B) reads; callers have
// checked that the bytes are there.
std::uint16_t read_u16(ByteSpan bytes, std::size_t offset) {
    return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

std::uint32_t read_u32(ByteSpan bytes, std::size_t offset) {
    return static_cast<std::uint32_t>(read_u16(bytes, offset)) << 16 | read_u16(bytes, offset + 2);
}

void append_u16(Bytes& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value));
}

void append_u32(Bytes& out, std::uint32_t value) {
    append_u16(out, static_cast<std::uint16_t>(value >> 16));
    append_u16(out, static_cast<std::uint16_t>(value));
}

void append(Bytes& out, ByteSpan bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

void store_u16(Bytes& out, std::size_t offset, std::uint16_t value) {
    out[offset] = static_cast<std::uint8_t>(value >> 8);
    out[offset + 1] = static_cast<std::uint8_t>(value);
}

// Big-endian stores into a fixed-size header being built on the stack.
template <std::size_t N>
void put_u16(std::array<std::uint8_t, N>& out, std::size_t offset, std::uint16_t value) {
    out[offset] = static_cast<std::uint8_t>(value >> 8);
    out[offset + 1] = static_cast<std::uint8_t>(value);
}
template <std::size_t N>
void put_u32(std::array<std::uint8_t, N>& out, std::size_t offset, std::uint32_t value) {
    put_u16(out, offset, static_cast<std::uint16_t>(value >> 16));
    put_u16(out, offset + 2, static_cast<std::uint16_t>(value));
}

std::string hex16(std::uint16_t value) { return fmt::format("0x{:04x}", value); }

IpAddress address_at(ByteSpan bytes, std::size_t offset, std::size_t size) {
    // from_bytes only fails for sizes other than 4 and 16, which callers never pass.
    return IpAddress::from_bytes(bytes.subspan(offset, size)).value_or(IpAddress{});
}

constexpr std::size_t ipv4_header_size = 20;
constexpr std::size_t ipv6_header_size = 40;
constexpr std::size_t tcp_header_size = 20;
constexpr std::size_t udp_header_size = 8;
constexpr std::size_t icmp_header_size = 8;
constexpr std::size_t ipv6_minimum_mtu = 1280;  // RFC 8200 5
constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86DD;
constexpr std::uint16_t arphrd_loopback = 772;  // <linux/if_arp.h>
constexpr std::uint32_t loopback_ifindex = 1;     // lo is always the first interface a namespace gets

// The PACKET_* values of <linux/if_packet.h> that both cooked headers record.
std::string sll_packet_type_name(unsigned packet_type) {
    static constexpr std::string_view names[] = {"to us", "broadcast", "multicast", "to another host", "sent by us"};
    return packet_type < std::size(names) ? std::string(names[packet_type]) : std::to_string(packet_type);
}
constexpr std::uint32_t af_inet = 2;
constexpr std::uint32_t af_inet6_bsd = 24;  // what libpcap documents for LINKTYPE_NULL (also 28, 30; Linux uses 10)

// ===========================================================================
// [SECTION] encoding
// ===========================================================================

Result<void> check_families(const IpHeader& ip) {
    if (ip.source.family() != ip.destination.family())
        return fail("source " + ip.source.to_string() + " and destination " + ip.destination.to_string() +
                    " are different IP versions; one packet carries one version");
    if (ip.flow_label > 0xFFFFF) return fail(fmt::format("flow label {} does not fit in 20 bits", ip.flow_label));
    return {};
}

// The IPv4 (RFC 791 3.1) or IPv6 (RFC 8200 3) header for `payload_size` bytes of `protocol`.
Result<Bytes> encode_ip_header(const IpHeader& ip, std::uint8_t protocol, std::size_t payload_size) {
    if (auto ok = check_families(ip); !ok) return ok.error();
    Bytes header;
    // Room for the payload too: callers append it (join), so one allocation per packet.
    header.reserve((ip.family() == IpFamily::v4 ? ipv4_header_size : ipv6_header_size) + payload_size);
    if (ip.family() == IpFamily::v4) {
        const std::size_t total = ipv4_header_size + payload_size;
        if (total > 0xFFFF) return fail(fmt::format("an IPv4 packet holds at most 65535 bytes, not {}", total));
        std::array<std::uint8_t, ipv4_header_size> fixed{};
        fixed[0] = 0x45;  // version 4, IHL 5: no options
        fixed[1] = ip.traffic_class;
        put_u16(fixed, 2, static_cast<std::uint16_t>(total));
        put_u16(fixed, 4, ip.identification);
        put_u16(fixed, 6, ip.dont_fragment ? 0x4000 : 0x0000);  // flags + fragment offset 0
        fixed[8] = ip.ttl;
        fixed[9] = protocol;
        // bytes 10-11: the checksum, filled below
        std::copy_n(ip.source.bytes().begin(), 4, fixed.begin() + 12);
        std::copy_n(ip.destination.bytes().begin(), 4, fixed.begin() + 16);
        put_u16(fixed, 10, internet_checksum(fixed));
        append(header, fixed);
    } else {
        if (payload_size > 0xFFFF)
            return fail(fmt::format("an IPv6 payload holds at most 65535 bytes without a jumbogram, not {}", payload_size));
        append_u32(header, 6u << 28 | static_cast<std::uint32_t>(ip.traffic_class) << 20 | ip.flow_label);
        append_u16(header, static_cast<std::uint16_t>(payload_size));
        header.push_back(protocol);
        header.push_back(ip.ttl);
        append(header, ip.source.bytes());
        append(header, ip.destination.bytes());
    }
    return header;
}

// Options in the order Linux puts them in a SYN (tcp_options_write): MSS, then
// SACK-permitted sharing a word with timestamps (or NOP-padded alone), then
// NOP + window scale. Every piece is a multiple of 4 bytes, so no trailing padding.
// At most 20 bytes today (MSS 4 + SACK/timestamps 12 + window scale 4); a TCP
// header has room for 40. Kept on the stack: no allocation per segment.
struct TcpOptionBytes {
    std::array<std::uint8_t, 40> bytes{};
    std::size_t size = 0;
    void put(std::initializer_list<std::uint8_t> more) noexcept {
        for (const std::uint8_t byte : more) bytes[size++] = byte;
    }
    void put_u16(std::uint16_t value) noexcept {
        put({static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)});
    }
    void put_u32(std::uint32_t value) noexcept {
        put_u16(static_cast<std::uint16_t>(value >> 16));
        put_u16(static_cast<std::uint16_t>(value));
    }
    [[nodiscard]] ByteSpan span() const noexcept { return {bytes.data(), size}; }
};

TcpOptionBytes encode_tcp_options(const TcpOptions& options) {
    TcpOptionBytes out;
    if (options.mss) {
        out.put({2, 4});
        out.put_u16(*options.mss);
    }
    if (options.timestamps) {
        if (options.sack_permitted) out.put({4, 2});
        else out.put({1, 1});
        out.put({8, 10});
        out.put_u32(options.timestamps->first);
        out.put_u32(options.timestamps->second);
    } else if (options.sack_permitted) {
        out.put({1, 1, 4, 2});
    }
    if (options.window_scale) out.put({1, 3, 3, *options.window_scale});
    return out;
}

Bytes join(Bytes first, ByteSpan second) {
    append(first, second);
    return first;
}

Result<Bytes> encode_icmp(const IpHeader& ip, std::uint8_t type, std::uint8_t code, ByteSpan quoted) {
    const bool v4 = ip.family() == IpFamily::v4;
    const std::uint8_t protocol = v4 ? ip_protocol::icmp : ip_protocol::icmpv6;
    Bytes message{type, code, 0, 0, 0, 0, 0, 0};  // type, code, checksum, 4 unused bytes
    append(message, quoted);
    auto header = encode_ip_header(ip, protocol, message.size());
    if (!header) return header.error();
    // ICMPv4 sums the message alone (RFC 792); ICMPv6 adds the pseudo-header (RFC 4443 2.3).
    ChecksumAccumulator sum;
    if (!v4) add_pseudo_header(sum, ip.source, ip.destination, protocol, static_cast<std::uint32_t>(message.size()));
    sum.add(message);
    store_u16(message, 2, sum.finish());
    return join(std::move(*header), message);
}

}  // namespace

Result<Bytes> encode_tcp(const IpHeader& ip, const TcpHeader& tcp, std::span<const std::uint8_t> payload) {
    const TcpOptionBytes options = encode_tcp_options(tcp.options);
    std::array<std::uint8_t, tcp_header_size> fixed{};
    put_u16(fixed, 0, tcp.source_port);
    put_u16(fixed, 2, tcp.destination_port);
    put_u32(fixed, 4, tcp.sequence);
    put_u32(fixed, 8, tcp.acknowledgment);
    const auto data_offset_words = static_cast<std::uint8_t>((tcp_header_size + options.size) / 4);
    fixed[12] = static_cast<std::uint8_t>(data_offset_words << 4);
    fixed[13] = tcp.flags;
    put_u16(fixed, 14, tcp.window);
    // bytes 16-17: the checksum, filled below
    put_u16(fixed, 18, tcp.urgent_pointer);
    const std::size_t segment_size = tcp_header_size + options.size + payload.size();

    // The IP header comes back with room for the segment behind it: one allocation.
    auto packet = encode_ip_header(ip, ip_protocol::tcp, segment_size);
    if (!packet) return packet.error();
    Bytes& bytes = *packet;
    const std::size_t segment_at = bytes.size();
    append(bytes, fixed);
    append(bytes, options.span());
    append(bytes, payload);
    auto sum = pseudo_header_sum(ip.source, ip.destination, ip_protocol::tcp, static_cast<std::uint32_t>(segment_size));
    sum.add(ByteSpan(bytes).subspan(segment_at));
    store_u16(bytes, segment_at + 16, sum.finish());
    return packet;
}

Result<Bytes> encode_udp(const IpHeader& ip, const UdpHeader& udp, std::span<const std::uint8_t> payload) {
    const std::size_t length = udp_header_size + payload.size();
    if (length > 0xFFFF) return fail(fmt::format("a UDP datagram holds at most 65535 bytes, not {}", length));
    Bytes datagram;
    datagram.reserve(length);
    append_u16(datagram, udp.source_port);
    append_u16(datagram, udp.destination_port);
    append_u16(datagram, static_cast<std::uint16_t>(length));
    append_u16(datagram, 0);
    append(datagram, payload);

    auto header = encode_ip_header(ip, ip_protocol::udp, datagram.size());
    if (!header) return header.error();
    auto sum = pseudo_header_sum(ip.source, ip.destination, ip_protocol::udp, static_cast<std::uint32_t>(length));
    sum.add(datagram);
    // 0 on the wire means "no checksum", so a computed 0 is sent as its other
    // one's-complement spelling, 0xFFFF (RFC 768).
    const std::uint16_t checksum = sum.finish();
    store_u16(datagram, 6, checksum == 0 ? 0xFFFF : checksum);
    return join(std::move(*header), datagram);
}

namespace {

// An ICMP error of any type: the quote is the same for all (RFC 792, RFC 4443 2.4(c)).
Result<Bytes> encode_icmp_error(const IpHeader& ip, std::uint8_t type_v4, std::uint8_t type_v6, std::uint8_t code,
                                std::span<const std::uint8_t> offending_packet) {
    if (auto ok = check_families(ip); !ok) return ok.error();
    const bool v4 = ip.family() == IpFamily::v4;
    const std::size_t minimum = v4 ? ipv4_header_size : ipv6_header_size;
    if (offending_packet.size() < minimum)
        return fail(fmt::format("the offending packet has {} bytes, too few for the IPv{} header an ICMP error quotes",
                                offending_packet.size(), v4 ? 4 : 6));
    const int version = offending_packet[0] >> 4;
    if (version != (v4 ? 4 : 6))
        return fail(fmt::format("an ICMPv{} error quotes an IPv{} packet, but the offending packet is version {}",
                                v4 ? 4 : 6, v4 ? 4 : 6, version));
    std::size_t quoted = 0;
    if (v4) {
        // RFC 792: "Internet Header + 64 bits of Original Data Datagram" — enough for
        // the sender to find the ports and so the socket the error belongs to.
        const std::size_t ihl_bytes = static_cast<std::size_t>(offending_packet[0] & 0x0F) * 4;
        if (ihl_bytes < ipv4_header_size) return fail("the offending packet's IHL is below 5");
        quoted = std::min(offending_packet.size(), ihl_bytes + 8);
    } else {
        // RFC 4443 3.1: "As much of invoking packet as possible without the ICMPv6
        // packet exceeding the minimum IPv6 MTU".
        quoted = std::min(offending_packet.size(), ipv6_minimum_mtu - ipv6_header_size - icmp_header_size);
    }
    return encode_icmp(ip, v4 ? type_v4 : type_v6, code, offending_packet.first(quoted));
}

}  // namespace

Result<Bytes> encode_icmp_unreachable(const IpHeader& ip, std::uint8_t code, std::span<const std::uint8_t> offending_packet) {
    return encode_icmp_error(ip, 3, 1, code, offending_packet);
}

Result<Bytes> encode_icmp_time_exceeded(const IpHeader& ip, std::span<const std::uint8_t> offending_packet) {
    return encode_icmp_error(ip, 11, 3, 0, offending_packet);
}

Result<Bytes> encode_port_unreachable(const IpHeader& ip, std::span<const std::uint8_t> offending_packet) {
    return encode_icmp_unreachable(ip, ip.family() == IpFamily::v4 ? 3 : 4, offending_packet);
}

Bytes with_link_header(LinkType link_type, std::span<const std::uint8_t> ip_packet) {
    const bool v6 = !ip_packet.empty() && (ip_packet[0] >> 4) == 6;
    const std::uint16_t ethertype = v6 ? ethertype_ipv6 : ethertype_ipv4;
    Bytes frame;
    switch (link_type) {
        case LinkType::en10mb:
            // Linux's loopback device has the all-zero MAC address (drivers/net/loopback.c).
            frame.assign(12, 0);
            append_u16(frame, ethertype);
            break;
        case LinkType::linux_sll:
            append_u16(frame, 0);  // packet type LINUX_SLL_HOST: "sent to us"
            append_u16(frame, arphrd_loopback);
            append_u16(frame, 6);  // link-layer address length (a MAC), all zero on lo
            frame.insert(frame.end(), 8, 0);
            append_u16(frame, ethertype);
            break;
        case LinkType::linux_sll2:
            // The v2 header leads with the protocol and names the interface by index.
            append_u16(frame, ethertype);
            append_u16(frame, 0);  // reserved, must be zero
            append_u32(frame, loopback_ifindex);
            append_u16(frame, arphrd_loopback);
            frame.push_back(0);  // packet type LINUX_SLL_HOST: "sent to us"
            frame.push_back(6);  // link-layer address length (a MAC), all zero on lo
            frame.insert(frame.end(), 8, 0);
            break;
        case LinkType::null: {
            const std::uint32_t family = v6 ? af_inet6_bsd : af_inet;
            // Host byte order of the machine writing the capture (pcap-linktype(7)).
            for (int i = 0; i < 4; ++i) {
                const int shift = std::endian::native == std::endian::little ? 8 * i : 8 * (3 - i);
                frame.push_back(static_cast<std::uint8_t>(family >> shift));
            }
            break;
        }
        case LinkType::raw:
            break;
    }
    append(frame, ip_packet);
    return frame;
}

std::string tcp_flags_to_string(std::uint8_t flags) {
    static constexpr std::pair<std::uint8_t, std::string_view> names[] = {
        {tcp_flag::fin, "FIN"}, {tcp_flag::syn, "SYN"}, {tcp_flag::rst, "RST"}, {tcp_flag::psh, "PSH"},
        {tcp_flag::ack, "ACK"}, {tcp_flag::urg, "URG"}, {tcp_flag::ece, "ECE"}, {tcp_flag::cwr, "CWR"},
    };
    std::string text;
    for (const auto& [bit, name] : names) {
        if (!(flags & bit)) continue;
        if (!text.empty()) text += ',';
        text += name;
    }
    return text.empty() ? "none" : text;
}

std::string_view to_string(ChecksumStatus status) noexcept {
    switch (status) {
        case ChecksumStatus::good: return "good";
        case ChecksumStatus::bad: return "bad";
        case ChecksumStatus::partial_offload: return "partial: pseudo-header only, left for checksum offload";
        case ChecksumStatus::not_computed: return "not computed";
        case ChecksumStatus::not_verifiable: return "not verifiable: capture truncated";
    }
    return "unknown";
}

// ===========================================================================
// [SECTION] decoding
// ===========================================================================

namespace {

// Appends fields to one layer; keeps the call sites one line per header field.
class LayerBuilder {
public:
    LayerBuilder(std::string name, std::size_t offset, std::size_t length) : layer_{std::move(name), offset, length, {}} {}

    void bytes(std::string name, std::size_t offset, std::size_t length, std::string value, std::string meaning) {
        layer_.fields.push_back(Field{std::move(name), offset, length, 0, 0, std::move(value), std::move(meaning)});
    }
    void bits(std::string name, std::size_t offset, std::size_t length, std::uint8_t bit_offset, std::uint8_t bit_count,
              std::string value, std::string meaning) {
        layer_.fields.push_back(
            Field{std::move(name), offset, length, bit_offset, bit_count, std::move(value), std::move(meaning)});
    }
    Layer take() { return std::move(layer_); }

private:
    Layer layer_;
};

std::string_view ip_protocol_name(std::uint8_t protocol) {
    switch (protocol) {
        case 0: return "IPv6 Hop-by-Hop options";
        case ip_protocol::icmp: return "ICMP";
        case ip_protocol::tcp: return "TCP";
        case ip_protocol::udp: return "UDP";
        case 43: return "IPv6 Routing header";
        case 44: return "IPv6 Fragment header";
        case 50: return "ESP";
        case 51: return "AH";
        case ip_protocol::icmpv6: return "ICMPv6";
        case 59: return "no next header";
        case 60: return "IPv6 Destination options";
        default: return "other";
    }
}

std::string icmpv4_unreachable_text(std::uint8_t code) {
    // RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1.
    static constexpr std::string_view texts[] = {
        "network unreachable", "host unreachable", "protocol unreachable", "port unreachable",
        "fragmentation needed and DF set", "source route failed", "destination network unknown",
        "destination host unknown", "source host isolated", "network administratively prohibited",
        "host administratively prohibited", "network unreachable for type of service",
        "host unreachable for type of service", "communication administratively prohibited",
        "host precedence violation", "precedence cutoff in effect",
    };
    return code < std::size(texts) ? std::string(texts[code]) : fmt::format("code {}", code);
}

std::string icmpv6_unreachable_text(std::uint8_t code) {
    // RFC 4443 3.1.
    static constexpr std::string_view texts[] = {
        "no route to destination", "communication administratively prohibited", "beyond scope of source address",
        "address unreachable", "port unreachable", "source address failed ingress/egress policy",
        "reject route to destination",
    };
    return code < std::size(texts) ? std::string(texts[code]) : fmt::format("code {}", code);
}

std::string icmp_description(bool v6, std::uint8_t type, std::uint8_t code) {
    if (!v6) {
        switch (type) {
            case 0: return "Echo reply";
            case 3: return "Destination unreachable: " + icmpv4_unreachable_text(code);
            case 5: return "Redirect";
            case 8: return "Echo request";
            case 11: return code == 0 ? "Time exceeded: TTL expired in transit" : "Time exceeded: fragment reassembly";
            case 12: return "Parameter problem";
            default: return fmt::format("ICMP type {} code {}", type, code);
        }
    }
    switch (type) {
        case 1: return "Destination unreachable: " + icmpv6_unreachable_text(code);
        case 2: return "Packet too big";
        case 3: return code == 0 ? "Time exceeded: hop limit exceeded in transit" : "Time exceeded: fragment reassembly";
        case 4: return "Parameter problem";
        case 128: return "Echo request";
        case 129: return "Echo reply";
        case 133: return "Router solicitation";
        case 134: return "Router advertisement";
        case 135: return "Neighbor solicitation";
        case 136: return "Neighbor advertisement";
        default: return fmt::format("ICMPv6 type {} code {}", type, code);
    }
}

// Everything one decode needs: the buffer, how much of the packet the capture
// dropped, and the packet being filled in. Every read goes through `frame_`
// after an explicit size check, so no input can make it read past the span.
class Decoder {
public:
    // What to fill in: every field with its text and the checksums (the hex view,
    // lab 10), or only the header values (a capture's list of a million packets).
    // Both take the same checks, so both fail on the same bytes.
    enum class Detail { fields, headers };
    Decoder(ByteSpan frame, std::size_t missing, Detail detail = Detail::fields)
        : frame_(frame), missing_(missing), fields_(detail == Detail::fields) {}

    Result<DecodedPacket> link_then_ip(LinkType link_type);
    Result<DecodedPacket> ip_only() {
        if (auto ok = decode_ip_at(0, std::nullopt); !ok) return ok.error();
        return std::move(out_);
    }

private:
    // ---- link layers ----
    struct LinkInfo {
        std::size_t ip_offset;
        std::optional<int> ip_version;  // what the link header's type field announces
    };
    Result<LinkInfo> decode_ethernet();
    Result<LinkInfo> decode_linux_sll();
    Result<LinkInfo> decode_linux_sll2();
    Result<LinkInfo> decode_null();
    Result<int> version_for_ethertype(std::uint16_t ethertype) const;

    // ---- network layer ----
    Result<void> decode_ip_at(std::size_t offset, std::optional<int> expected_version);
    Result<void> decode_ipv4(std::size_t offset);
    Result<void> decode_ipv6(std::size_t offset);
    Result<std::size_t> skip_ipv6_extensions(std::size_t offset, std::size_t end, std::uint8_t& next_header);

    // ---- transport layer: [offset, end) is the IP payload as the IP header states it ----
    Result<void> decode_transport(std::size_t offset, std::size_t end);
    Result<void> decode_tcp(std::size_t offset, std::size_t end);
    Result<void> decode_tcp_options(std::size_t offset, std::size_t end, LayerBuilder& layer, TcpOptions& options);
    Result<void> decode_udp(std::size_t offset, std::size_t end);
    Result<void> decode_icmp(std::size_t offset, std::size_t end);
    void decode_quoted(std::size_t offset, std::size_t end, bool v6, IcmpInfo& info);

    // ---- checksums ----
    ChecksumCheck check_transport(std::size_t offset, std::size_t end, std::size_t checksum_offset, bool pseudo_header,
                                  bool offload_possible);

    // Bytes of [offset, end) the capture holds.
    std::size_t captured_end(std::size_t end) const { return std::min(end, frame_.size()); }
    bool complete(std::size_t end) const { return end <= frame_.size(); }
    void add_payload(std::size_t offset, std::size_t end);

    ByteSpan frame_;
    std::size_t missing_;  // bytes on the wire past the end of frame_
    bool fields_;          // Detail::fields: layers, field texts, checksums and notes too
    DecodedPacket out_;
};

Result<DecodedPacket> Decoder::link_then_ip(LinkType link_type) {
    auto link = [&]() -> Result<LinkInfo> {
        switch (link_type) {
            case LinkType::en10mb: return decode_ethernet();
            case LinkType::linux_sll: return decode_linux_sll();
            case LinkType::linux_sll2: return decode_linux_sll2();
            case LinkType::null: return decode_null();
            case LinkType::raw: return LinkInfo{0, std::nullopt};
        }
        return fail(fmt::format("link type {} is not one portlab decodes", static_cast<int>(link_type)));
    }();
    if (!link) return link.error();
    // The link header's type field and the IP version nibble must agree.
    if (auto ok = decode_ip_at(link->ip_offset, link->ip_version); !ok) return ok.error();
    return std::move(out_);
}

Result<int> Decoder::version_for_ethertype(std::uint16_t ethertype) const {
    if (ethertype == ethertype_ipv4) return 4;
    if (ethertype == ethertype_ipv6) return 6;
    const std::string_view known = ethertype == 0x0806 ? " (ARP)" : ethertype == 0x8100 ? " (802.1Q VLAN tag)" : "";
    return fail(fmt::format("EtherType 0x{:04x}{} is not IP; portlab decodes IPv4 and IPv6 only", ethertype, known));
}

Result<Decoder::LinkInfo> Decoder::decode_ethernet() {
    constexpr std::size_t size = 14;
    if (frame_.size() < size) return fail(fmt::format("an Ethernet header needs 14 bytes, the frame has {}", frame_.size()));
    const auto ethertype = read_u16(frame_, 12);
    auto version = version_for_ethertype(ethertype);
    if (!version) return version.error();
    if (!fields_) return LinkInfo{size, *version};
    auto mac = [&](std::size_t at) {
        return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", frame_[at], frame_[at + 1], frame_[at + 2],
                           frame_[at + 3], frame_[at + 4], frame_[at + 5]);
    };
    LayerBuilder layer("Ethernet", 0, size);
    layer.bytes("Destination MAC", 0, 6, mac(0),
                "The next hop's hardware address; all zero on loopback, where no wire needs one");
    layer.bytes("Source MAC", 6, 6, mac(6), "The sending interface's hardware address; all zero on loopback");
    layer.bytes("EtherType", 12, 2, *version == 6 ? "IPv6" : "IPv4",
                fmt::format("0x{:04x}: which protocol the frame carries, so the receiver hands it to IPv{}", ethertype,
                            *version));
    out_.layers.push_back(layer.take());
    return LinkInfo{size, *version};
}

Result<Decoder::LinkInfo> Decoder::decode_linux_sll() {
    constexpr std::size_t size = 16;
    if (frame_.size() < size)
        return fail(fmt::format("a Linux cooked header needs 16 bytes, the frame has {}", frame_.size()));
    const auto protocol = read_u16(frame_, 14);
    auto version = version_for_ethertype(protocol);
    if (!version) return version.error();
    if (!fields_) return LinkInfo{size, *version};
    LayerBuilder layer("Linux cooked", 0, size);
    layer.bytes("Packet type", 0, 2, sll_packet_type_name(read_u16(frame_, 0)),
                "Which way the packet went through this host (Linux records it because 'any' mixes interfaces)");
    layer.bytes("ARPHRD type", 2, 2, std::to_string(read_u16(frame_, 2)),
                "The interface's hardware type; 772 is ARPHRD_LOOPBACK, the lo device");
    layer.bytes("Address length", 4, 2, std::to_string(read_u16(frame_, 4)), "How many of the next 8 bytes are the address");
    layer.bytes("Address", 6, 8, "", "The link-layer source address, zero-padded to 8 bytes");
    layer.bytes("Protocol", 14, 2, *version == 6 ? "IPv6" : "IPv4",
                fmt::format("0x{:04x}: the EtherType of what follows", protocol));
    out_.layers.push_back(layer.take());
    return LinkInfo{size, *version};
}

Result<Decoder::LinkInfo> Decoder::decode_linux_sll2() {
    constexpr std::size_t size = 20;
    if (frame_.size() < size)
        return fail(fmt::format("a Linux cooked v2 header needs 20 bytes, the frame has {}", frame_.size()));
    const auto protocol = read_u16(frame_, 0);
    auto version = version_for_ethertype(protocol);
    if (!version) return version.error();
    if (!fields_) return LinkInfo{size, *version};
    const auto interface_index = read_u32(frame_, 4);
    const std::uint8_t packet_type = frame_[10];
    LayerBuilder layer("Linux cooked v2", 0, size);
    layer.bytes("Protocol", 0, 2, *version == 6 ? "IPv6" : "IPv4",
                fmt::format("0x{:04x}: the EtherType of what follows", protocol));
    layer.bytes("Reserved", 2, 2, std::to_string(read_u16(frame_, 2)), "Must be zero");
    layer.bytes("Interface index", 4, 4, std::to_string(interface_index),
                interface_index == loopback_ifindex ? "Which interface saw the packet; 1 is lo on Linux (ip link shows it)"
                                                    : "Which interface saw the packet (the number ip link shows)");
    layer.bytes("ARPHRD type", 8, 2, std::to_string(read_u16(frame_, 8)),
                "The interface's hardware type; 772 is ARPHRD_LOOPBACK, the lo device");
    layer.bytes("Packet type", 10, 1, sll_packet_type_name(packet_type),
                "Which way the packet went through this host (Linux records it because 'any' mixes interfaces)");
    layer.bytes("Address length", 11, 1, std::to_string(frame_[11]), "How many of the next 8 bytes are the address");
    layer.bytes("Address", 12, 8, "", "The link-layer source address, zero-padded to 8 bytes");
    out_.layers.push_back(layer.take());
    return LinkInfo{size, *version};
}

Result<Decoder::LinkInfo> Decoder::decode_null() {
    constexpr std::size_t size = 4;
    if (frame_.size() < size) return fail(fmt::format("a NULL loopback header needs 4 bytes, the frame has {}", frame_.size()));
    // Host byte order of the machine that wrote the file: try both (libpcap does the same).
    const std::uint32_t big = read_u32(frame_, 0);
    const std::uint32_t little = static_cast<std::uint32_t>(frame_[0]) | static_cast<std::uint32_t>(frame_[1]) << 8 |
                                 static_cast<std::uint32_t>(frame_[2]) << 16 | static_cast<std::uint32_t>(frame_[3]) << 24;
    auto version_of = [](std::uint32_t family) -> int {
        if (family == af_inet) return 4;
        if (family == 10 || family == 24 || family == 28 || family == 30) return 6;  // Linux, BSDs, FreeBSD, macOS
        return 0;
    };
    const int version = version_of(little) ? version_of(little) : version_of(big);
    if (!version) return fail(fmt::format("address family {} in the NULL header is not IPv4 or IPv6", little));
    if (!fields_) return LinkInfo{size, version};
    LayerBuilder layer("Loopback", 0, size);
    layer.bytes("Address family", 0, 4, version == 6 ? "IPv6" : "IPv4",
                fmt::format("AF_ value {} in the capturing host's byte order: which protocol follows",
                            version_of(little) ? little : big));
    out_.layers.push_back(layer.take());
    return LinkInfo{size, version};
}

Result<void> Decoder::decode_ip_at(std::size_t offset, std::optional<int> expected_version) {
    if (frame_.size() <= offset) return fail("no IP header: the packet is empty");
    const int version = frame_[offset] >> 4;
    if (expected_version && version != *expected_version)
        return fail(fmt::format("the link header says IPv{} but the IP version field is {}", *expected_version, version));
    if (version == 4) return decode_ipv4(offset);
    if (version == 6) return decode_ipv6(offset);
    return fail(fmt::format("IP version {} is neither 4 nor 6", version));
}

Result<void> Decoder::decode_ipv4(std::size_t offset) {
    const std::size_t available = frame_.size() - offset;
    if (available < ipv4_header_size)
        return fail(fmt::format("truncated IPv4 header: {} bytes, the fixed header needs 20", available));
    const auto ip = frame_.subspan(offset);
    const std::size_t ihl = ip[0] & 0x0F;
    const std::size_t header_size = ihl * 4;
    if (ihl < 5) return fail(fmt::format("IPv4 IHL is {} words; the header is at least 5 words (20 bytes)", ihl));
    if (header_size > available)
        return fail(fmt::format("IPv4 IHL says {} header bytes but only {} are there", header_size, available));
    const std::uint16_t total = read_u16(ip, 2);
    if (total < header_size)
        return fail(fmt::format("IPv4 total length {} is shorter than the {}-byte header", total, header_size));
    if (total > available + missing_)
        return fail(fmt::format("IPv4 total length {} runs past the {} bytes of the packet", total, available + missing_));

    const std::uint16_t flags_fragment = read_u16(ip, 6);
    const bool dont_fragment = flags_fragment & 0x4000;
    const bool more_fragments = flags_fragment & 0x2000;
    const std::uint16_t fragment_offset = flags_fragment & 0x1FFF;
    const std::uint8_t protocol = ip[9];

    out_.ip.source = address_at(ip, 12, 4);
    out_.ip.destination = address_at(ip, 16, 4);
    out_.ip.traffic_class = ip[1];
    out_.ip.identification = read_u16(ip, 4);
    out_.ip.dont_fragment = dont_fragment;
    out_.ip.ttl = ip[8];
    out_.ip.flow_label = 0;
    out_.ip_protocol = protocol;
    out_.ip_total_length = total;
    const std::size_t payload = offset + header_size;
    const std::size_t end = offset + total;
    if (!fields_) {
        if (more_fragments || fragment_offset != 0) {
            add_payload(payload, end);
            return {};
        }
        return decode_transport(payload, end);
    }

    // The header checksum covers only the header (RFC 791 3.1), which is all here.
    ChecksumCheck check;
    check.stored = read_u16(ip, 10);
    ChecksumAccumulator without_field;
    without_field.add(ip.first(10));
    without_field.add(ip.subspan(12, header_size - 12));
    check.expected = without_field.finish();
    if (internet_checksum(ip.first(header_size)) == 0) {
        check.status = ChecksumStatus::good;
        check.explanation = "Correct: the one's-complement sum of the header, checksum included, is 0xFFFF (RFC 791, RFC 1071)";
    } else {
        check.status = ChecksumStatus::bad;
        check.explanation = fmt::format(
            "Wrong: the header sums to {} with the field zeroed, so it should hold {}; a router or host drops the packet",
            hex16(static_cast<std::uint16_t>(~check.expected)), hex16(check.expected));
        out_.notes.push_back("IPv4 header checksum: " + check.explanation);
    }

    const std::size_t o = offset;
    LayerBuilder layer("IPv4", o, header_size);
    layer.bits("Version", o, 1, 0, 4, "4", "IP version: 4 means this header has the IPv4 layout (RFC 791)");
    layer.bits("IHL", o, 1, 4, 4, fmt::format("{} ({} bytes)", ihl, header_size),
               "Header length in 32-bit words; 5 means no options, so the payload starts 20 bytes in");
    layer.bits("DSCP", o + 1, 1, 0, 6, std::to_string(ip[1] >> 2),
               "Differentiated services code point: a class-of-service mark for queues (RFC 2474); usually 0");
    layer.bits("ECN", o + 1, 1, 6, 2, std::to_string(ip[1] & 3),
               "Explicit congestion notification: routers may mark instead of drop (RFC 3168)");
    layer.bytes("Total length", o + 2, 2, std::to_string(total),
                "Bytes in the whole packet, header included; anything after it in the frame is link padding");
    layer.bytes("Identification", o + 4, 2, std::to_string(out_.ip.identification),
                "Groups the fragments of one packet so the receiver can reassemble them");
    layer.bits("Reserved flag", o + 6, 1, 0, 1, std::to_string(flags_fragment >> 15), "Must be zero (RFC 791)");
    layer.bits("Don't fragment", o + 6, 1, 1, 1, dont_fragment ? "1" : "0",
               "Set: routers must not split the packet but drop it and report 'fragmentation needed' (path MTU discovery)");
    layer.bits("More fragments", o + 6, 1, 2, 1, more_fragments ? "1" : "0",
               "Set on every fragment but the last");
    layer.bits("Fragment offset", o + 6, 2, 3, 13, std::to_string(fragment_offset),
               "Where this fragment's data belongs in the original packet, in units of 8 bytes");
    layer.bytes("TTL", o + 8, 1, std::to_string(out_.ip.ttl),
                "Time to live: each router subtracts 1 and drops the packet at 0, so loops cannot last forever");
    layer.bytes("Protocol", o + 9, 1, fmt::format("{} ({})", protocol, ip_protocol_name(protocol)),
                "Which transport the payload is for: 6 TCP, 17 UDP, 1 ICMP; the ports live in that header, not here");
    layer.bytes("Header checksum", o + 10, 2, fmt::format("{} [{}]", hex16(check.stored), to_string(check.status)),
                "RFC 1071 sum over the IP header only; recomputed at each hop because the TTL changes");
    layer.bytes("Source address", o + 12, 4, out_.ip.source.to_string(),
                "Who sent the packet: replies go back to this address");
    layer.bytes("Destination address", o + 16, 4, out_.ip.destination.to_string(),
                "Which host the packet is for; the port in the transport header then picks the socket on that host");
    if (header_size > ipv4_header_size)
        layer.bytes("Options", o + 20, header_size - 20, fmt::format("{} bytes", header_size - 20),
                    "IPv4 options (record route, timestamps, ...): rare today, skipped by their length");
    out_.layers.push_back(layer.take());
    out_.ip_checksum = std::move(check);

    if (more_fragments || fragment_offset != 0) {
        // Only the reassembled packet holds a whole segment whose checksum can be checked.
        out_.notes.push_back(fmt::format(
            "This is a fragment (offset {} bytes{}): the transport header is decoded only after reassembly",
            fragment_offset * 8, more_fragments ? ", more follow" : ", the last one"));
        add_payload(payload, end);
        return {};
    }
    return decode_transport(payload, end);
}

Result<void> Decoder::decode_ipv6(std::size_t offset) {
    const std::size_t available = frame_.size() - offset;
    if (available < ipv6_header_size)
        return fail(fmt::format("truncated IPv6 header: {} bytes, the fixed header needs 40", available));
    const auto ip = frame_.subspan(offset);
    const std::uint32_t first_word = read_u32(ip, 0);
    const std::uint16_t payload_length = read_u16(ip, 4);
    if (ipv6_header_size + payload_length > available + missing_)
        return fail(fmt::format("IPv6 payload length {} runs past the {} bytes after the header", payload_length,
                                available + missing_ - ipv6_header_size));
    std::uint8_t next_header = ip[6];

    out_.ip.source = address_at(ip, 8, 16);
    out_.ip.destination = address_at(ip, 24, 16);
    out_.ip.traffic_class = static_cast<std::uint8_t>(first_word >> 20);
    out_.ip.flow_label = first_word & 0xFFFFF;
    out_.ip.ttl = ip[7];
    out_.ip.identification = 0;
    out_.ip.dont_fragment = true;  // IPv6 routers never fragment (RFC 8200 5)
    out_.ip_total_length = static_cast<std::uint16_t>(std::min<std::size_t>(ipv6_header_size + payload_length, 0xFFFF));

    const std::size_t o = offset;
    if (fields_) {
        LayerBuilder layer("IPv6", o, ipv6_header_size);
        layer.bits("Version", o, 1, 0, 4, "6", "IP version: 6 means this header has the IPv6 layout (RFC 8200)");
        layer.bits("Traffic class", o, 2, 4, 8, std::to_string(out_.ip.traffic_class),
                   "DSCP and ECN bits, the same marks as IPv4's second byte");
        layer.bits("Flow label", o + 1, 3, 4, 20, fmt::format("0x{:05x}", out_.ip.flow_label),
                   "Lets routers keep one flow's packets on one path; Linux derives it from a hash of the connection");
        layer.bytes("Payload length", o + 4, 2, std::to_string(payload_length),
                    "Bytes after this 40-byte header (extension headers included); unlike IPv4 it excludes the header");
        layer.bytes("Next header", o + 6, 1, fmt::format("{} ({})", next_header, ip_protocol_name(next_header)),
                    "What follows: a transport (6 TCP, 17 UDP, 58 ICMPv6) or an extension header");
        layer.bytes("Hop limit", o + 7, 1, std::to_string(out_.ip.ttl),
                    "IPv6's TTL: each router subtracts 1 and drops the packet at 0");
        layer.bytes("Source address", o + 8, 16, out_.ip.source.to_string(),
                    "Who sent the packet: replies go back to this address");
        layer.bytes("Destination address", o + 24, 16, out_.ip.destination.to_string(),
                    "Which host the packet is for; the port in the transport header then picks the socket on that host");
        out_.layers.push_back(layer.take());
    }

    const std::size_t end = o + ipv6_header_size + payload_length;
    auto transport = skip_ipv6_extensions(o + ipv6_header_size, end, next_header);
    if (!transport) return transport.error();
    out_.ip_protocol = next_header;
    return decode_transport(*transport, end);
}

// Hop-by-hop (0), routing (43) and destination options (60) share one layout: next
// header, length in 8-byte units not counting the first 8 (RFC 8200 4.3-4.6), so
// they can be skipped without understanding them.
Result<std::size_t> Decoder::skip_ipv6_extensions(std::size_t offset, std::size_t end, std::uint8_t& next_header) {
    while (next_header == 0 || next_header == 43 || next_header == 60) {
        if (offset + 2 > end || !complete(offset + 2))
            return fail(fmt::format("the {} runs past the IPv6 payload", ip_protocol_name(next_header)));
        const std::size_t size = (static_cast<std::size_t>(frame_[offset + 1]) + 1) * 8;
        if (offset + size > end || !complete(offset + size))
            return fail(fmt::format("the {} ({} bytes) runs past the IPv6 payload", ip_protocol_name(next_header), size));
        const std::uint8_t following = frame_[offset];
        if (fields_) {
            LayerBuilder layer(std::string(ip_protocol_name(next_header)), offset, size);
            layer.bytes("Next header", offset, 1, fmt::format("{} ({})", following, ip_protocol_name(following)),
                        "What follows this extension header");
            layer.bytes("Header length", offset + 1, 1, std::to_string(frame_[offset + 1]),
                        "Length in 8-byte units, not counting the first 8 bytes");
            layer.bytes("Options and data", offset + 2, size - 2, fmt::format("{} bytes", size - 2),
                        "Skipped: portlab only needs to know where the transport header starts");
            out_.layers.push_back(layer.take());
        }
        next_header = following;
        offset += size;
    }
    if (next_header == 44 || next_header == 50 || next_header == 51)
        return fail(fmt::format("IPv6 extension header {} ({}) is not supported", next_header, ip_protocol_name(next_header)));
    return offset;
}

void Decoder::add_payload(std::size_t offset, std::size_t end) {
    out_.payload_offset = offset;
    out_.payload_length = end - offset;
    const std::size_t captured = captured_end(end) > offset ? captured_end(end) - offset : 0;
    if (captured == 0 || !fields_) return;
    LayerBuilder layer("Payload", offset, captured);
    layer.bytes("Data", offset, captured,
                captured < end - offset ? fmt::format("{} of {} bytes captured", captured, end - offset)
                                        : fmt::format("{} bytes", captured),
                "The application's bytes, handed to the socket the ports chose");
    out_.layers.push_back(layer.take());
}

Result<void> Decoder::decode_transport(std::size_t offset, std::size_t end) {
    switch (out_.ip_protocol) {
        case ip_protocol::tcp: return decode_tcp(offset, end);
        case ip_protocol::udp: return decode_udp(offset, end);
        case ip_protocol::icmp:
            if (out_.ip.source.is_v6()) break;
            return decode_icmp(offset, end);
        case ip_protocol::icmpv6:
            if (out_.ip.source.is_v4()) break;
            return decode_icmp(offset, end);
        default: break;
    }
    out_.notes.push_back(fmt::format("IP protocol {} ({}) is not decoded", out_.ip_protocol, ip_protocol_name(out_.ip_protocol)));
    add_payload(offset, end);
    return {};
}

ChecksumCheck Decoder::check_transport(std::size_t offset, std::size_t end, std::size_t checksum_offset,
                                       bool pseudo_header, bool offload_possible) {
    ChecksumCheck check;
    check.stored = read_u16(frame_, checksum_offset);
    const auto length = static_cast<std::uint32_t>(end - offset);
    const std::uint8_t protocol = out_.ip_protocol;
    if (!complete(end)) {
        check.status = ChecksumStatus::not_verifiable;
        check.expected = check.stored;
        check.explanation = fmt::format(
            "Cannot check: the checksum covers {} bytes but the capture kept only {} (snap length)", length,
            frame_.size() - offset);
        return check;
    }
    ChecksumAccumulator pseudo;
    if (pseudo_header) add_pseudo_header(pseudo, out_.ip.source, out_.ip.destination, protocol, length);
    ChecksumAccumulator zeroed = pseudo;
    zeroed.add(frame_.subspan(offset, checksum_offset - offset));
    zeroed.add_u16(0);
    zeroed.add(frame_.subspan(checksum_offset + 2, end - checksum_offset - 2));
    check.expected = zeroed.finish();
    if (protocol == ip_protocol::udp && check.expected == 0) check.expected = 0xFFFF;  // RFC 768

    ChecksumAccumulator whole = pseudo;
    whole.add(frame_.subspan(offset, end - offset));
    const std::string covers = pseudo_header ? "the pseudo-header (addresses, protocol, length) and the whole segment"
                                             : "the whole ICMP message";
    if (protocol == ip_protocol::udp && check.stored == 0) {
        if (out_.ip.source.is_v4()) {
            check.status = ChecksumStatus::not_computed;
            check.explanation = "0 means the sender chose not to compute one, which UDP over IPv4 allows (RFC 768)";
        } else {
            check.status = ChecksumStatus::bad;
            check.explanation = "UDP over IPv6 must carry a checksum (RFC 8200 8.1); a receiver drops a zero one";
        }
    } else if (whole.finish() == 0) {
        check.status = ChecksumStatus::good;
        check.explanation = "Correct: the sum over " + covers + " comes out as 0xFFFF (RFC 1071)";
    } else if (offload_possible && check.stored == pseudo.folded_sum()) {
        // Linux stores ~csum_tcpudp_magic(...) = the folded pseudo-header sum and
        // marks the packet CHECKSUM_PARTIAL; the NIC would add the segment's sum.
        // On loopback the bytes never leave memory, nothing finishes the sum, and the
        // receiver trusts the skb's flag instead (net/ipv4/tcp_ipv4.c tcp_v4_send_check).
        check.status = ChecksumStatus::partial_offload;
        check.explanation = fmt::format(
            "Only the pseudo-header sum ({}) is stored: the kernel left the rest for checksum offload, and on loopback "
            "nothing finishes it; this is not corruption (it would be {} when complete)",
            hex16(check.stored), hex16(check.expected));
    } else {
        check.status = ChecksumStatus::bad;
        check.explanation = fmt::format(
            "Wrong: stored {} but {} gives {}; the bytes changed after the checksum was computed, and a receiver drops "
            "the packet silently",
            hex16(check.stored), covers, hex16(check.expected));
    }
    return check;
}

Result<void> Decoder::decode_tcp(std::size_t offset, std::size_t end) {
    const std::size_t segment = end - offset;
    if (segment < tcp_header_size)
        return fail(fmt::format("the IP payload has {} bytes, too few for a 20-byte TCP header", segment));
    if (!complete(offset + tcp_header_size)) return fail("the capture ends inside the TCP header");
    const std::size_t data_offset = frame_[offset + 12] >> 4;
    const std::size_t header_size = data_offset * 4;
    if (data_offset < 5) return fail(fmt::format("TCP data offset is {} words; the header is at least 5 words", data_offset));
    if (header_size > segment)
        return fail(fmt::format("TCP data offset says {} header bytes but the segment has {}", header_size, segment));
    if (!complete(offset + header_size)) return fail("the capture ends inside the TCP options");

    TcpHeader tcp;
    const std::size_t o = offset;
    tcp.source_port = read_u16(frame_, o);
    tcp.destination_port = read_u16(frame_, o + 2);
    tcp.sequence = read_u32(frame_, o + 4);
    tcp.acknowledgment = read_u32(frame_, o + 8);
    tcp.flags = frame_[o + 13];
    tcp.window = read_u16(frame_, o + 14);
    tcp.urgent_pointer = read_u16(frame_, o + 18);

    LayerBuilder layer("TCP", o, header_size);
    if (auto ok = decode_tcp_options(o + tcp_header_size, o + header_size, layer, tcp.options); !ok) return ok;
    if (!fields_) {
        out_.tcp = tcp;
        add_payload(o + header_size, end);
        return {};
    }
    const auto check = check_transport(o, end, o + 16, true, true);

    // Options are decoded first (they can fail); the fixed fields go in front of them.
    std::vector<Field> option_fields = layer.take().fields;
    LayerBuilder fixed("TCP", o, header_size);
    fixed.bytes("Source port", o, 2, std::to_string(tcp.source_port),
                "The sender's port: the client's ephemeral port on the way out, the server's port on the way back");
    fixed.bytes("Destination port", o + 2, 2, std::to_string(tcp.destination_port),
                "The receiver's port: with the addresses and the source port it names exactly one connection");
    fixed.bytes("Sequence number", o + 4, 4, std::to_string(tcp.sequence),
                "Number of this segment's first byte in the sender's stream; a SYN or FIN uses up one number");
    fixed.bytes("Acknowledgment number", o + 8, 4, std::to_string(tcp.acknowledgment),
                (tcp.flags & tcp_flag::ack) ? "The next byte the sender expects from the other side: all before it arrived"
                                            : "Unused without the ACK flag: a connection's first SYN lacks it, and so does a RST "
                                              "answering a segment that carried an ACK (RFC 9293 3.10.7.1)");
    fixed.bits("Data offset", o + 12, 1, 0, 4, fmt::format("{} ({} bytes)", data_offset, header_size),
               "Header length in 32-bit words; above 5 means options follow the fixed 20 bytes");
    fixed.bits("Reserved", o + 12, 1, 4, 4, std::to_string(frame_[o + 12] & 0x0F), "Must be zero when sent");
    fixed.bytes("Flags", o + 13, 1, tcp_flags_to_string(tcp.flags), "The control bits that drive the connection state machine");
    struct FlagText {
        std::uint8_t bit;
        std::string_view name;
        std::string_view meaning;
    };
    static constexpr FlagText flag_texts[] = {
        {tcp_flag::cwr, "CWR", "Congestion window reduced: the sender slowed down after an ECN echo (RFC 3168)"},
        {tcp_flag::ece, "ECE", "ECN echo: a router marked congestion on the way here; on a SYN, 'I can do ECN'"},
        {tcp_flag::urg, "URG", "Urgent pointer is valid (rarely used today)"},
        {tcp_flag::ack, "ACK", "The acknowledgment number is valid; set on everything after the first SYN"},
        {tcp_flag::psh, "PSH", "Push: hand the data to the application now instead of waiting for more"},
        {tcp_flag::rst, "RST", "Reset: abort the connection, or 'nobody listens on this port' in reply to a SYN"},
        {tcp_flag::syn, "SYN", "Synchronize: opens a connection and carries the initial sequence number"},
        {tcp_flag::fin, "FIN", "Finish: the sender has no more data; the other side can still send"},
    };
    for (std::uint8_t i = 0; i < 8; ++i) {
        const auto& flag = flag_texts[i];
        fixed.bits(std::string(flag.name), o + 13, 1, i, 1, (tcp.flags & flag.bit) ? "1" : "0", std::string(flag.meaning));
    }
    fixed.bytes("Window", o + 14, 2, std::to_string(tcp.window),
                "How many more bytes the sender can receive now (shifted left by the window scale, except on a SYN)");
    fixed.bytes("Checksum", o + 16, 2, fmt::format("{} [{}]", hex16(check.stored), to_string(check.status)),
                "RFC 1071 sum over a pseudo-header (addresses, protocol, length) plus the whole segment");
    fixed.bytes("Urgent pointer", o + 18, 2, std::to_string(tcp.urgent_pointer),
                "Offset of the end of urgent data when URG is set; otherwise 0");
    Layer tcp_layer = fixed.take();
    tcp_layer.fields.insert(tcp_layer.fields.end(), option_fields.begin(), option_fields.end());
    out_.layers.push_back(std::move(tcp_layer));

    if (check.status != ChecksumStatus::good) out_.notes.push_back("TCP checksum: " + check.explanation);
    out_.transport_checksum = check;
    out_.tcp = tcp;
    add_payload(o + header_size, end);
    return {};
}

Result<void> Decoder::decode_tcp_options(std::size_t offset, std::size_t end, LayerBuilder& layer, TcpOptions& options) {
    std::size_t at = offset;
    while (at < end) {
        const std::uint8_t kind = frame_[at];
        if (kind == 0) {  // End of option list: the rest is padding (RFC 9293 3.2)
            layer.bytes("Option: End of list", at, end - at, "", "Marks the end of the options; the rest is padding");
            break;
        }
        if (kind == 1) {
            layer.bytes("Option: NOP", at, 1, "", "No-operation: padding that aligns the next option to 4 bytes");
            ++at;
            continue;
        }
        if (at + 2 > end) return fail(fmt::format("TCP option {} has no length byte", kind));
        const std::size_t length = frame_[at + 1];
        if (length < 2 || at + length > end)
            return fail(fmt::format("TCP option {} claims {} bytes, which does not fit the options area", kind, length));
        auto expect_length = [&](std::size_t wanted, std::string_view name) -> Result<void> {
            if (length != wanted) return fail(fmt::format("TCP {} option has length {}, not {}", name, length, wanted));
            return {};
        };
        switch (kind) {
            case 2: {
                if (auto ok = expect_length(4, "MSS"); !ok) return ok;
                options.mss = read_u16(frame_, at + 2);
                layer.bytes("Option: MSS", at, length, std::to_string(*options.mss),
                            "Maximum segment size: the largest payload this side wants per segment (MTU minus headers)");
                break;
            }
            case 3: {
                if (auto ok = expect_length(3, "window scale"); !ok) return ok;
                options.window_scale = frame_[at + 2];
                layer.bytes("Option: Window scale", at, length, fmt::format("shift {} (x{})", *options.window_scale,
                                                                           1u << std::min<unsigned>(*options.window_scale, 14)),
                            "Window values after the handshake are shifted left by this much (RFC 7323 2), so windows can exceed 64 KiB");
                if (*options.window_scale > 14)
                    out_.notes.push_back("Window scale above 14 is treated as 14 (RFC 7323 2.3)");
                break;
            }
            case 4:
                if (auto ok = expect_length(2, "SACK-permitted"); !ok) return ok;
                options.sack_permitted = true;
                layer.bytes("Option: SACK permitted", at, length, "",
                            "This side understands selective acknowledgments of out-of-order data (RFC 2018)");
                break;
            case 5:
                if ((length - 2) % 8 != 0) return fail(fmt::format("TCP SACK option length {} is not 2 + 8n", length));
                layer.bytes("Option: SACK", at, length, fmt::format("{} block(s)", (length - 2) / 8),
                            "Ranges of data that arrived beyond a gap, so only the gap is resent (RFC 2018)");
                break;
            case 8: {
                if (auto ok = expect_length(10, "timestamps"); !ok) return ok;
                options.timestamps = std::pair{read_u32(frame_, at + 2), read_u32(frame_, at + 6)};
                layer.bytes("Option: Timestamps", at, length,
                            fmt::format("TSval {} TSecr {}", options.timestamps->first, options.timestamps->second),
                            "Sender's clock and the echo of the peer's: measures round-trip time, guards against wrapped sequence numbers (RFC 7323)");
                break;
            }
            default:
                layer.bytes(fmt::format("Option: kind {}", kind), at, length, fmt::format("{} bytes", length),
                            "An option portlab does not interpret; its length byte lets a receiver skip it");
                break;
        }
        at += length;
    }
    return {};
}

Result<void> Decoder::decode_udp(std::size_t offset, std::size_t end) {
    const std::size_t size = end - offset;
    if (size < udp_header_size)
        return fail(fmt::format("the IP payload has {} bytes, too few for an 8-byte UDP header", size));
    if (!complete(offset + udp_header_size)) return fail("the capture ends inside the UDP header");
    const std::size_t o = offset;
    UdpHeader udp{read_u16(frame_, o), read_u16(frame_, o + 2)};
    const std::uint16_t length = read_u16(frame_, o + 4);
    if (length < udp_header_size) return fail(fmt::format("UDP length {} is below the 8-byte header", length));
    if (length > size) return fail(fmt::format("UDP length {} runs past the {}-byte IP payload", length, size));
    const std::size_t udp_end = o + length;
    if (!fields_) {
        out_.udp = udp;
        add_payload(o + udp_header_size, udp_end);
        return {};
    }
    if (length < size)
        out_.notes.push_back(fmt::format("{} bytes after the UDP datagram inside the IP packet are ignored", size - length));
    const auto check = check_transport(o, udp_end, o + 6, true, true);

    LayerBuilder layer("UDP", o, udp_header_size);
    layer.bytes("Source port", o, 2, std::to_string(udp.source_port),
                "The sender's port: the client's ephemeral port on the way out, the server's port on the way back");
    layer.bytes("Destination port", o + 2, 2, std::to_string(udp.destination_port),
                "The receiver's port: the kernel delivers the datagram to the socket bound to it, or answers 'port unreachable'");
    layer.bytes("Length", o + 4, 2, std::to_string(length), "Bytes in the datagram, this 8-byte header included");
    layer.bytes("Checksum", o + 6, 2, fmt::format("{} [{}]", hex16(check.stored), to_string(check.status)),
                "RFC 1071 sum over a pseudo-header plus the datagram; 0 over IPv4 means 'not computed'");
    out_.layers.push_back(layer.take());
    if (check.status != ChecksumStatus::good) out_.notes.push_back("UDP checksum: " + check.explanation);
    out_.transport_checksum = check;
    out_.udp = udp;
    add_payload(o + udp_header_size, udp_end);
    return {};
}

Result<void> Decoder::decode_icmp(std::size_t offset, std::size_t end) {
    const bool v6 = out_.ip.source.is_v6();
    const std::string name = v6 ? "ICMPv6" : "ICMP";
    const std::size_t size = end - offset;
    if (size < 4) return fail(fmt::format("the IP payload has {} bytes, too few for an {} header", size, name));
    if (!complete(offset + std::min(size, icmp_header_size))) return fail("the capture ends inside the " + name + " header");
    const std::size_t o = offset;
    IcmpInfo info;
    info.type = frame_[o];
    info.code = frame_[o + 1];
    info.description = icmp_description(v6, info.type, info.code);
    const auto check = check_transport(o, end, o + 2, v6, false);

    LayerBuilder layer(name, o, std::min(size, icmp_header_size));
    layer.bytes("Type", o, 1, std::to_string(info.type), info.description);
    layer.bytes("Code", o + 1, 1, std::to_string(info.code), "Refines the type: for unreachable, what exactly could not be reached");
    layer.bytes("Checksum", o + 2, 2, fmt::format("{} [{}]", hex16(check.stored), to_string(check.status)),
                v6 ? "RFC 1071 sum over a pseudo-header plus the message (RFC 4443 2.3)"
                   : "RFC 1071 sum over the ICMP message (RFC 792)");
    if (size >= icmp_header_size)
        layer.bytes("Rest of header", o + 4, 4, fmt::format("0x{:08x}", read_u32(frame_, o + 4)),
                    "Depends on the type: unused (zero) for unreachable, identifier and sequence for echo");
    out_.layers.push_back(layer.take());
    if (check.status != ChecksumStatus::good) out_.notes.push_back(name + " checksum: " + check.explanation);
    out_.transport_checksum = check;

    // The errors that quote the packet they are about: destination unreachable and time
    // exceeded (RFC 792; RFC 4443 3.1, 3.3).
    const bool quotes = v6 ? (info.type == 1 || info.type == 3) : (info.type == 3 || info.type == 11);
    if (quotes && size > icmp_header_size) {
        decode_quoted(o + icmp_header_size, end, v6, info);
    } else if (size > icmp_header_size) {
        add_payload(o + icmp_header_size, end);
    }
    out_.icmp = std::move(info);
    return {};
}

// The packet an ICMP error quotes is cut short by design, so its lengths and
// checksums are not checked; only the header fields that identify the socket are
// read. Anything too short to read becomes a note, not an error.
void Decoder::decode_quoted(std::size_t offset, std::size_t end, bool v6, IcmpInfo& info) {
    const std::size_t stop = captured_end(end);
    const std::size_t header_size = v6 ? ipv6_header_size : ipv4_header_size;
    const std::size_t o = offset;
    if (stop < o + header_size || ((frame_[o] >> 4) != (v6 ? 6 : 4))) {
        out_.notes.push_back("The quoted packet is too short or not the same IP version, so it is not decoded");
        add_payload(o, end);
        return;
    }
    IpHeader quoted;
    std::size_t transport = 0;
    if (!v6) {
        const std::size_t ihl_bytes = static_cast<std::size_t>(frame_[o] & 0x0F) * 4;
        if (ihl_bytes < ipv4_header_size || o + ihl_bytes > stop) {
            out_.notes.push_back("The quoted IPv4 header has a bad IHL, so it is not decoded");
            add_payload(o, end);
            return;
        }
        quoted.source = address_at(frame_, o + 12, 4);
        quoted.destination = address_at(frame_, o + 16, 4);
        quoted.ttl = frame_[o + 8];
        quoted.identification = read_u16(frame_, o + 4);
        quoted.dont_fragment = read_u16(frame_, o + 6) & 0x4000;
        quoted.traffic_class = frame_[o + 1];
        info.quoted_protocol = frame_[o + 9];
        transport = o + ihl_bytes;
        LayerBuilder layer("Quoted IPv4", o, ihl_bytes);
        layer.bytes("Protocol", o + 9, 1, fmt::format("{} ({})", info.quoted_protocol, ip_protocol_name(info.quoted_protocol)),
                    "The transport of the packet that could not be delivered");
        layer.bytes("Source address", o + 12, 4, quoted.source.to_string(),
                    "The original sender: the host this error comes back to");
        layer.bytes("Destination address", o + 16, 4, quoted.destination.to_string(),
                    "Where the original packet was going");
        out_.layers.push_back(layer.take());
    } else {
        quoted.source = address_at(frame_, o + 8, 16);
        quoted.destination = address_at(frame_, o + 24, 16);
        quoted.ttl = frame_[o + 7];
        quoted.traffic_class = static_cast<std::uint8_t>(read_u32(frame_, o) >> 20);
        quoted.flow_label = read_u32(frame_, o) & 0xFFFFF;
        info.quoted_protocol = frame_[o + 6];
        transport = o + ipv6_header_size;
        LayerBuilder layer("Quoted IPv6", o, ipv6_header_size);
        layer.bytes("Next header", o + 6, 1, fmt::format("{} ({})", info.quoted_protocol, ip_protocol_name(info.quoted_protocol)),
                    "The transport of the packet that could not be delivered");
        layer.bytes("Source address", o + 8, 16, quoted.source.to_string(),
                    "The original sender: the host this error comes back to");
        layer.bytes("Destination address", o + 24, 16, quoted.destination.to_string(),
                    "Where the original packet was going");
        out_.layers.push_back(layer.take());
    }
    info.quoted_ip = quoted;

    // The first 8 bytes of TCP and UDP both start with the two ports (RFC 792 quotes
    // exactly these 8 bytes so the sender can find the socket to tell).
    const bool ports = info.quoted_protocol == ip_protocol::tcp || info.quoted_protocol == ip_protocol::udp;
    if (ports && transport + 4 <= stop) {
        info.quoted_source_port = read_u16(frame_, transport);
        info.quoted_destination_port = read_u16(frame_, transport + 2);
        const std::size_t shown = std::min<std::size_t>(stop - transport, 8);
        LayerBuilder layer(info.quoted_protocol == ip_protocol::tcp ? "Quoted TCP" : "Quoted UDP", transport, shown);
        layer.bytes("Source port", transport, 2, std::to_string(*info.quoted_source_port),
                    "The original sender's port: tells its kernel which socket gets this error");
        layer.bytes("Destination port", transport + 2, 2, std::to_string(*info.quoted_destination_port),
                    "The port nobody was listening on (for 'port unreachable')");
        out_.layers.push_back(layer.take());
    }
}

}  // namespace

Result<DecodedPacket> decode_ip(std::span<const std::uint8_t> bytes) { return Decoder(bytes, 0).ip_only(); }

Result<DecodedPacket> decode_frame(LinkType link_type, std::span<const std::uint8_t> frame, std::size_t original_length) {
    const std::size_t missing = original_length > frame.size() ? original_length - frame.size() : 0;
    return Decoder(frame, missing).link_then_ip(link_type);
}

Result<DecodedPacket> decode_frame_headers(LinkType link_type, std::span<const std::uint8_t> frame,
                                           std::size_t original_length) {
    const std::size_t missing = original_length > frame.size() ? original_length - frame.size() : 0;
    auto decoded = Decoder(frame, missing, Decoder::Detail::headers).link_then_ip(link_type);
    if (decoded) {
        // ICMP is taken apart in full either way (it is rare); its texts are not part of the answer.
        decoded->layers.clear();
        decoded->notes.clear();
    }
    return decoded;
}

// ===========================================================================
// [SECTION] DecodedPacket conveniences
// ===========================================================================

std::optional<Protocol> DecodedPacket::protocol() const noexcept {
    if (tcp) return Protocol::tcp;
    if (udp) return Protocol::udp;
    return std::nullopt;
}

std::optional<Endpoint> DecodedPacket::source() const {
    if (tcp) return Endpoint{ip.source, tcp->source_port};
    if (udp) return Endpoint{ip.source, udp->source_port};
    return std::nullopt;
}

std::optional<Endpoint> DecodedPacket::destination() const {
    if (tcp) return Endpoint{ip.destination, tcp->destination_port};
    if (udp) return Endpoint{ip.destination, udp->destination_port};
    return std::nullopt;
}

const Layer* DecodedPacket::find_layer(std::string_view name) const noexcept {
    const auto found = std::find_if(layers.begin(), layers.end(), [&](const Layer& layer) { return layer.name == name; });
    return found == layers.end() ? nullptr : &*found;
}

std::string DecodedPacket::summary() const {
    if (tcp) {
        std::string text = fmt::format("{} > {} TCP [{}] seq={}", source()->to_string(), destination()->to_string(),
                                       tcp_flags_to_string(tcp->flags), tcp->sequence);
        if (tcp->flags & tcp_flag::ack) text += fmt::format(" ack={}", tcp->acknowledgment);
        return text + fmt::format(" win={} len={}", tcp->window, payload_length);
    }
    if (udp) return fmt::format("{} > {} UDP len={}", source()->to_string(), destination()->to_string(), payload_length);
    const std::string addresses = ip.source.to_string() + " > " + ip.destination.to_string();
    if (icmp) {
        std::string text = fmt::format("{} {} {}", addresses, ip.source.is_v6() ? "ICMPv6" : "ICMP", icmp->description);
        if (icmp->quoted_ip && icmp->quoted_source_port && icmp->quoted_destination_port) {
            text += fmt::format(" (for {} {} > {})", icmp->quoted_protocol == ip_protocol::tcp ? "TCP" : "UDP",
                                Endpoint{icmp->quoted_ip->source, *icmp->quoted_source_port}.to_string(),
                                Endpoint{icmp->quoted_ip->destination, *icmp->quoted_destination_port}.to_string());
        }
        return text;
    }
    return fmt::format("{} IP protocol {} len={}", addresses, ip_protocol, payload_length);
}

std::string icmp_description(IpFamily family, std::uint8_t type, std::uint8_t code) {
    return icmp_description(family == IpFamily::v6, type, code);
}

}  // namespace portlab
