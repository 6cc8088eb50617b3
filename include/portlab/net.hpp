#pragma once
// The nouns every part of portlab shares: a port number, a transport protocol,
// an IP address, an endpoint (address + port) and the 4-tuple of a connection.
// Plain values with no sockets behind them, so the simulator can use them too.

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "portlab/result.hpp"

namespace portlab {

// A port is a 16-bit number; it only means something together with a protocol
// and an address (TCP 80 and UDP 80 on the same host are different sockets).
using Port = std::uint16_t;

enum class Protocol : std::uint8_t { tcp, udp };

[[nodiscard]] std::string_view to_string(Protocol protocol) noexcept;
// Accepts "tcp" and "udp" in any letter case.
[[nodiscard]] Result<Protocol> parse_protocol(std::string_view text);

enum class IpFamily : std::uint8_t { v4, v6 };

// An IPv4 or IPv6 address held as network-order bytes (4 or 16 of them used).
class IpAddress {
public:
    IpAddress() = default;  // 0.0.0.0
    [[nodiscard]] static IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) noexcept;
    // From network-order bytes: 4 make an IPv4 address, 16 an IPv6 one.
    [[nodiscard]] static Result<IpAddress> from_bytes(std::span<const std::uint8_t> bytes);
    // Dotted quad or RFC 4291 text ("127.0.0.1", "::1"); no host names.
    [[nodiscard]] static Result<IpAddress> parse(std::string_view text);
    [[nodiscard]] static IpAddress loopback_v4() noexcept { return v4(127, 0, 0, 1); }
    [[nodiscard]] static IpAddress loopback_v6() noexcept;
    [[nodiscard]] static IpAddress any_v4() noexcept { return {}; }
    [[nodiscard]] static IpAddress any_v6() noexcept;

    [[nodiscard]] IpFamily family() const noexcept { return family_; }
    [[nodiscard]] bool is_v4() const noexcept { return family_ == IpFamily::v4; }
    [[nodiscard]] bool is_v6() const noexcept { return family_ == IpFamily::v6; }
    // 127.0.0.0/8 or ::1 (RFC 1122 3.2.1.3, RFC 4291 2.5.3).
    [[nodiscard]] bool is_loopback() const noexcept;
    // 0.0.0.0 or :: — "every local address" when bound.
    [[nodiscard]] bool is_unspecified() const noexcept;
    [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept {
        return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
    }
    [[nodiscard]] std::string to_string() const;

    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

private:
    IpFamily family_ = IpFamily::v4;
    std::array<std::uint8_t, 16> bytes_{};  // unused tail is zero, so defaulted comparison is exact
};

struct Endpoint {
    IpAddress address;
    Port port = 0;

    // "127.0.0.1:80" or "[::1]:80", the way ss prints them.
    [[nodiscard]] std::string to_string() const;
    // The reverse of to_string(); the port must be numeric 0-65535.
    [[nodiscard]] static Result<Endpoint> parse(std::string_view text);

    friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// What names one connection: both endpoints, seen from one side. The other side
// sees the same four values with local and remote swapped (reversed()).
struct FourTuple {
    Endpoint local;
    Endpoint remote;

    [[nodiscard]] FourTuple reversed() const noexcept { return {remote, local}; }
    // "127.0.0.1:40002 -> 127.0.0.1:8080"
    [[nodiscard]] std::string to_string() const;

    friend auto operator<=>(const FourTuple&, const FourTuple&) = default;
};

}  // namespace portlab
