#pragma once
// Packet bytes <-> fields. Encoders build real IPv4/IPv6 packets carrying TCP, UDP
// or an ICMP destination-unreachable, with every checksum computed; decoders take
// bytes apart into layers and fields, each field naming its byte (and bit) range
// and what it means, so the visualizer's hex view and a lab's printout are the
// same code. Bad input is an error value: a decoder never reads past the span it
// is given.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab {

using Bytes = std::vector<std::uint8_t>;

// The LINKTYPE_* values a pcap file stores in its header (pcap-linktype(7);
// tcpdump.org/linktypes.html): what sits in front of the IP packet.
enum class LinkType : int {
    null = 0,         // BSD loopback: 4-byte address family in the writer's byte order
    en10mb = 1,       // Ethernet II (Linux `lo` captures: zero MAC addresses)
    raw = 101,        // the IP packet alone; version nibble says v4 or v6
    linux_sll = 113,  // Linux cooked capture v1 ("tcpdump -i any" before libpcap 1.10), 16-byte header
    linux_sll2 = 276, // Linux cooked capture v2 ("tcpdump -i any" since libpcap 1.10), 20-byte header
};

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
namespace ip_protocol {
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t icmpv6 = 58;
}  // namespace ip_protocol

// TCP flag bits in header byte 13 (RFC 9293 3.1; ECE/CWR from RFC 3168 23.2).
namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01;
inline constexpr std::uint8_t syn = 0x02;
inline constexpr std::uint8_t rst = 0x04;
inline constexpr std::uint8_t psh = 0x08;
inline constexpr std::uint8_t ack = 0x10;
inline constexpr std::uint8_t urg = 0x20;
inline constexpr std::uint8_t ece = 0x40;
inline constexpr std::uint8_t cwr = 0x80;
}  // namespace tcp_flag

// The options portlab writes and reads (RFC 9293 3.2, RFC 7323, RFC 2018). On
// encode they are laid out as Linux lays out a SYN: MSS, SACK-permitted,
// timestamps, NOP, window scale, padded with NOPs/EOL to a multiple of 4.
struct TcpOptions {
    std::optional<std::uint16_t> mss;
    std::optional<std::uint8_t> window_scale;
    bool sack_permitted = false;
    std::optional<std::pair<std::uint32_t, std::uint32_t>> timestamps;  // value, echo reply

    friend bool operator==(const TcpOptions&, const TcpOptions&) = default;
};

struct TcpHeader {
    Port source_port = 0;
    Port destination_port = 0;
    std::uint32_t sequence = 0;
    std::uint32_t acknowledgment = 0;
    std::uint8_t flags = 0;  // tcp_flag bits
    std::uint16_t window = 65535;
    std::uint16_t urgent_pointer = 0;
    TcpOptions options;

    friend bool operator==(const TcpHeader&, const TcpHeader&) = default;
};

struct UdpHeader {
    Port source_port = 0;
    Port destination_port = 0;

    friend bool operator==(const UdpHeader&, const UdpHeader&) = default;
};

// IPv4 and IPv6 in one struct; the family comes from the addresses, and a pair of
// addresses of different families is an error on encode. v4-only fields
// (identification, dont_fragment) and v6-only ones (flow_label) are ignored by the
// other family; ttl is the IPv6 hop limit, traffic_class the IPv4 DSCP+ECN byte.
struct IpHeader {
    IpAddress source;
    IpAddress destination;
    std::uint8_t ttl = 64;
    std::uint16_t identification = 0;
    bool dont_fragment = true;
    std::uint8_t traffic_class = 0;
    std::uint32_t flow_label = 0;  // 20 bits

    [[nodiscard]] IpFamily family() const noexcept { return source.family(); }
    friend bool operator==(const IpHeader&, const IpHeader&) = default;
};

// ---- encoding -------------------------------------------------------------

// A whole IP packet with the TCP segment inside; IPv4 header and TCP checksums set.
[[nodiscard]] Result<Bytes> encode_tcp(const IpHeader& ip, const TcpHeader& tcp,
                                       std::span<const std::uint8_t> payload = {});
// A whole IP packet with the UDP datagram inside; the UDP checksum is always
// computed (a computed 0 is sent as 0xFFFF, RFC 768).
[[nodiscard]] Result<Bytes> encode_udp(const IpHeader& ip, const UdpHeader& udp,
                                       std::span<const std::uint8_t> payload = {});
// ICMPv4 type 3 / ICMPv6 type 1 with `code`, quoting the offending packet:
// IPv4 quotes its IP header + the first 8 bytes after it (RFC 792); IPv6 as much as
// keeps the whole error within the 1280-byte minimum MTU (RFC 4443 2.4(c), 3.1).
[[nodiscard]] Result<Bytes> encode_icmp_unreachable(const IpHeader& ip, std::uint8_t code,
                                                    std::span<const std::uint8_t> offending_packet);
// ICMPv4 type 11 / ICMPv6 type 3, code 0, quoting the offending packet as above: what a
// router sends when forwarding takes a packet's TTL (hop limit) to 0 (RFC 792, RFC 1812
// 5.3.1, RFC 4443 3.3). traceroute is built on it.
[[nodiscard]] Result<Bytes> encode_icmp_time_exceeded(const IpHeader& ip, std::span<const std::uint8_t> offending_packet);
// What a host sends when a UDP datagram arrives for a port nobody has bound:
// code 3 for ICMPv4 (RFC 792, RFC 1122 3.2.2.1), code 4 for ICMPv6 (RFC 4443 3.1).
[[nodiscard]] Result<Bytes> encode_port_unreachable(const IpHeader& ip,
                                                    std::span<const std::uint8_t> offending_packet);

// Puts a link header in front of an IP packet, as a capture on loopback records it:
// Ethernet with zero MAC addresses (Linux `lo`), Linux cooked (ARPHRD_LOOPBACK,
// "sent to us"), BSD NULL (AF_INET = 2, AF_INET6 = 24, this host's byte order), or
// nothing for raw. The EtherType / family comes from the version nibble.
[[nodiscard]] Bytes with_link_header(LinkType link_type, std::span<const std::uint8_t> ip_packet);

// ---- decoding -------------------------------------------------------------

enum class ChecksumStatus {
    good,
    bad,
    partial_offload,  // only the pseudo-header sum is stored; the NIC (or nobody, on lo) finishes it
    not_computed,     // UDP over IPv4 with checksum 0 (RFC 768)
    not_verifiable,   // the capture was cut short, so the covered bytes are not all here
};

[[nodiscard]] std::string_view to_string(ChecksumStatus status) noexcept;

struct ChecksumCheck {
    ChecksumStatus status = ChecksumStatus::good;
    std::uint16_t stored = 0;
    std::uint16_t expected = 0;  // what a full computation over the captured bytes gives
    std::string explanation;     // one line, for the hex view and the labs
};

struct Field {
    std::string name;
    std::size_t offset = 0;  // bytes, from the start of the buffer given to decode
    std::size_t length = 0;  // bytes the field touches
    std::uint8_t bit_offset = 0;  // within the first byte, from its most significant bit
    std::uint8_t bit_count = 0;   // 0 = whole bytes; set for flags, IHL, version
    std::string value;    // display text
    std::string meaning;  // one line of teaching text
};

struct Layer {
    std::string name;  // "Ethernet", "Linux cooked", "Loopback", "IPv4", "IPv6", "TCP", "UDP",
                       // "ICMP", "ICMPv6", "Quoted IPv4", "Quoted UDP", "Payload", ...
    std::size_t offset = 0;
    std::size_t length = 0;
    std::vector<Field> fields;
};

struct IcmpInfo {
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::string description;  // "Destination unreachable: port unreachable"
    std::optional<IpHeader> quoted_ip;
    std::uint8_t quoted_protocol = 0;
    std::optional<Port> quoted_source_port;
    std::optional<Port> quoted_destination_port;
};

struct DecodedPacket {
    std::vector<Layer> layers;
    IpHeader ip;
    std::uint8_t ip_protocol = 0;      // IPv4 protocol / IPv6 final next header
    std::uint16_t ip_total_length = 0;  // IPv4 total length; IPv6 40 + payload length
    std::optional<ChecksumCheck> ip_checksum;  // IPv4 only; IPv6 has no header checksum
    std::optional<TcpHeader> tcp;
    std::optional<UdpHeader> udp;
    std::optional<IcmpInfo> icmp;
    std::optional<ChecksumCheck> transport_checksum;
    std::size_t payload_offset = 0;  // application bytes, from the start of the decoded buffer
    std::size_t payload_length = 0;  // as the headers say; may exceed what was captured
    std::vector<std::string> notes;  // e.g. why a checksum looks wrong

    // tcp or udp when the packet carries one of them.
    [[nodiscard]] std::optional<Protocol> protocol() const noexcept;
    [[nodiscard]] std::optional<Endpoint> source() const;
    [[nodiscard]] std::optional<Endpoint> destination() const;
    // One line like tcpdump's:
    // "127.0.0.1:40002 > 127.0.0.1:8080 TCP [SYN] seq=0 win=65495 len=0"
    [[nodiscard]] std::string summary() const;
    // The layer with this name, or nullptr.
    [[nodiscard]] const Layer* find_layer(std::string_view name) const noexcept;
};

// Starts at the IP header; the version nibble picks IPv4 or IPv6.
[[nodiscard]] Result<DecodedPacket> decode_ip(std::span<const std::uint8_t> bytes);
// Starts at the link header. `original_length` is the length on the wire (0 means
// frame.size()); when larger, the capture was truncated and checksums over the
// missing bytes are not_verifiable. Field offsets count from the frame's start.
[[nodiscard]] Result<DecodedPacket> decode_frame(LinkType link_type, std::span<const std::uint8_t> frame,
                                                 std::size_t original_length = 0);
// decode_frame's checks and header values (ip, ip_protocol, ip_total_length, tcp,
// udp, icmp, payload) without the layers, field texts, checksums and notes: what a
// list of a million captured packets needs. It fails exactly where decode_frame
// does, with the same message, being the same code with the texts left out.
[[nodiscard]] Result<DecodedPacket> decode_frame_headers(LinkType link_type, std::span<const std::uint8_t> frame,
                                                         std::size_t original_length = 0);

// "SYN,ACK"; "none" for no flags. Lowest bit first, the order Wireshark lists
// them in its info column: FIN,SYN,RST,PSH,ACK,URG,ECE,CWR.
[[nodiscard]] std::string tcp_flags_to_string(std::uint8_t flags);

}  // namespace portlab
