#include "portlab/checksum.hpp"

namespace portlab {

void ChecksumAccumulator::add_byte(std::uint8_t byte) noexcept {
    // Words are big-endian: a byte at an even position is the high half.
    sum_ += odd_ ? byte : static_cast<std::uint64_t>(byte) << 8;
    odd_ = !odd_;
}

void ChecksumAccumulator::add(std::span<const std::uint8_t> bytes) noexcept {
    // Whole 16-bit words at a time; a byte left over (or owed from an odd-length
    // earlier span) goes through add_byte, so the sum is the same as byte by byte.
    std::size_t i = 0;
    if (odd_ && !bytes.empty()) add_byte(bytes[i++]);
    std::uint64_t sum = 0;
    for (; i + 1 < bytes.size(); i += 2) sum += static_cast<std::uint64_t>(bytes[i]) << 8 | bytes[i + 1];
    sum_ += sum;
    if (i < bytes.size()) add_byte(bytes[i]);
}

void ChecksumAccumulator::add_u16(std::uint16_t value) noexcept {
    add_byte(static_cast<std::uint8_t>(value >> 8));
    add_byte(static_cast<std::uint8_t>(value));
}

void ChecksumAccumulator::add_u32(std::uint32_t value) noexcept {
    add_u16(static_cast<std::uint16_t>(value >> 16));
    add_u16(static_cast<std::uint16_t>(value));
}

std::uint16_t ChecksumAccumulator::folded_sum() const noexcept {
    // End-around carry (RFC 1071 4.1): add the carries back in until none are left.
    // An odd total length is already padded with a zero low byte by add_byte.
    std::uint64_t sum = sum_;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

std::uint16_t ChecksumAccumulator::finish() const noexcept {
    return static_cast<std::uint16_t>(~folded_sum());
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes) noexcept {
    ChecksumAccumulator sum;
    sum.add(bytes);
    return sum.finish();
}

void add_pseudo_header(ChecksumAccumulator& sum, const IpAddress& source, const IpAddress& destination,
                       std::uint8_t protocol, std::uint32_t upper_layer_length) noexcept {
    sum.add(source.bytes());
    sum.add(destination.bytes());
    if (source.is_v4()) {
        // RFC 793 3.1: zero byte, protocol, then the TCP/UDP length in 16 bits.
        sum.add_u16(protocol);
        sum.add_u16(static_cast<std::uint16_t>(upper_layer_length));
    } else {
        // RFC 8200 8.1: 32-bit upper-layer length, 3 zero bytes, next header.
        sum.add_u32(upper_layer_length);
        sum.add_u32(protocol);
    }
}

ChecksumAccumulator pseudo_header_sum(const IpAddress& source, const IpAddress& destination,
                                      std::uint8_t protocol, std::uint32_t upper_layer_length) noexcept {
    ChecksumAccumulator sum;
    add_pseudo_header(sum, source, destination, protocol, upper_layer_length);
    return sum;
}

}  // namespace portlab
