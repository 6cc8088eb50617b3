#pragma once
// The ICMP errors the kernel queues on a socket that asked for them (IP_RECVERR, ip(7);
// IPV6_RECVERR, ipv6(7)): how a program learns who refused its datagram, which router's
// TTL ran out, or the next hop's MTU. Read with recvmsg(MSG_ERRQUEUE); the kernel files
// them in ip_icmp_error() / ipv6_icmp_error() (net/ipv4/ip_sockglue.c, net/ipv6/datagram.c).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "portlab/net.hpp"

namespace portlab::labkit {

struct IcmpError {
    IpFamily family = IpFamily::v4;  // ICMP (RFC 792) or ICMPv6 (RFC 4443): different numbers
    int error = 0;                    // the errno the socket reports for it
    std::uint8_t type = 0, code = 0;
    std::uint32_t info = 0;           // ee_info: the next-hop MTU for "fragmentation needed"
    IpAddress offender;               // who sent the ICMP message
};

// Asks the kernel to queue ICMP errors on `fd` (IP_RECVERR or IPV6_RECVERR by family).
void report_icmp_errors(int fd, IpFamily family);

// The next ICMP error queued on `fd`, waiting up to `wait` for one; nothing when none came.
[[nodiscard]] std::optional<IcmpError> next_icmp_error(int fd, std::chrono::milliseconds wait);

// "ICMP type 3 code 3 (port unreachable) from 192.0.2.2; the socket's error: Connection refused"
[[nodiscard]] std::string describe(const IcmpError& icmp);

// {type, code, from, errno, info}, or null when no error came.
[[nodiscard]] nlohmann::json icmp_json(const std::optional<IcmpError>& icmp);

}  // namespace portlab::labkit
