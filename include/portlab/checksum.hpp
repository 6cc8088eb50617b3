#pragma once
// The Internet checksum (RFC 1071): the 16-bit one's-complement of the
// one's-complement sum of the data taken as big-endian 16-bit words. IPv4 puts it
// over its header; TCP, UDP and ICMPv6 put it over a pseudo-header (addresses,
// protocol, length) plus the whole segment, so a packet delivered to the wrong
// address or port fails the check (RFC 793 3.1, RFC 768, RFC 8200 8.1).

#include <cstddef>
#include <cstdint>
#include <span>

#include "portlab/net.hpp"

namespace portlab {

// Incremental RFC 1071 sum. Bytes may arrive in pieces of any length: an odd
// piece leaves its last byte as the high half of a word the next piece completes,
// exactly as if all pieces had been one buffer (RFC 1071 2(B), "byte order
// independence" and incremental update).
class ChecksumAccumulator {
public:
    void add(std::span<const std::uint8_t> bytes) noexcept;
    void add_u16(std::uint16_t value) noexcept;
    void add_u32(std::uint32_t value) noexcept;

    // The folded sum, not complemented: what Linux stores in a TCP/UDP header it
    // hands to checksum offload (the pseudo-header sum the NIC finishes).
    [[nodiscard]] std::uint16_t folded_sum() const noexcept;
    // The checksum to store: complement of the folded sum (RFC 1071 1).
    [[nodiscard]] std::uint16_t finish() const noexcept;

private:
    void add_byte(std::uint8_t byte) noexcept;

    std::uint64_t sum_ = 0;   // wide enough that carries never overflow before folding
    bool odd_ = false;        // true when the next byte is the low half of a word
};

// RFC 1071 checksum of one buffer; a buffer with the correct checksum stored
// inside it sums to 0 here.
[[nodiscard]] std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes) noexcept;

// Adds the TCP/UDP/ICMPv6 pseudo-header to `sum`.
// IPv4 (RFC 793 3.1, RFC 768): source, destination, zero, protocol, 16-bit length.
// IPv6 (RFC 8200 8.1): source, destination, 32-bit length, three zero bytes, next header.
// `upper_layer_length` is the transport header plus payload. Both addresses must be
// the same family (the caller checks; a mixed pair sums each address as it is).
void add_pseudo_header(ChecksumAccumulator& sum, const IpAddress& source, const IpAddress& destination,
                       std::uint8_t protocol, std::uint32_t upper_layer_length) noexcept;

// A fresh accumulator holding just the pseudo-header.
[[nodiscard]] ChecksumAccumulator pseudo_header_sum(const IpAddress& source, const IpAddress& destination,
                                                    std::uint8_t protocol,
                                                    std::uint32_t upper_layer_length) noexcept;

}  // namespace portlab
