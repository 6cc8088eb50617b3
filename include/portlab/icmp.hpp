#pragma once
// ICMP "destination unreachable", the one ICMP message a port scan and a firewall share:
// its codes in both families, the icmpx types nftables rejects with, and what Linux makes
// of one that arrives for a socket (the errno, and whether it ends a connect at once).

#include <cstdint>
#include <string>
#include <string_view>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab {

// ICMPv4 type 3 codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
namespace icmp_v4 {
inline constexpr std::uint8_t destination_unreachable = 3;  // the type
inline constexpr std::uint8_t net_unreachable = 0;
inline constexpr std::uint8_t host_unreachable = 1;
inline constexpr std::uint8_t protocol_unreachable = 2;
inline constexpr std::uint8_t port_unreachable = 3;
inline constexpr std::uint8_t net_prohibited = 9;     // "communication with destination network administratively prohibited"
inline constexpr std::uint8_t host_prohibited = 10;   // "... destination host administratively prohibited"
inline constexpr std::uint8_t admin_prohibited = 13;  // "communication administratively prohibited" (a filter)
}  // namespace icmp_v4

// ICMPv6 type 1 codes (RFC 4443 3.1).
namespace icmp_v6 {
inline constexpr std::uint8_t destination_unreachable = 1;  // the type
inline constexpr std::uint8_t no_route = 0;
inline constexpr std::uint8_t admin_prohibited = 1;
inline constexpr std::uint8_t beyond_scope = 2;
inline constexpr std::uint8_t address_unreachable = 3;
inline constexpr std::uint8_t port_unreachable = 4;
inline constexpr std::uint8_t policy_failed = 5;
inline constexpr std::uint8_t reject_route = 6;
}  // namespace icmp_v6

// One destination unreachable as it arrived: its family says which code table applies.
struct IcmpUnreachable {
    IpFamily family = IpFamily::v4;
    std::uint8_t code = icmp_v4::port_unreachable;
    friend bool operator==(const IcmpUnreachable&, const IcmpUnreachable&) = default;
};

// nftables' family-independent reject types ("reject with icmpx type port-unreachable"),
// one per meaning; nft_reject_icmpx turns each into the code of the packet's family.
enum class IcmpxType : std::uint8_t { port_unreachable, host_unreachable, admin_prohibited, no_route };

// "port-unreachable", "host-unreachable", "admin-prohibited", "no-route" (nft(8) spelling).
[[nodiscard]] std::string_view to_string(IcmpxType type) noexcept;
[[nodiscard]] Result<IcmpxType> parse_icmpx_type(std::string_view text);

// The code nft sends for `type` to a packet of `family` (net/netfilter/nft_reject.c,
// icmp_code_v4 / icmp_code_v6): port 3/4, host 1/3 (address unreachable), admin 13/1,
// no-route 0/0.
[[nodiscard]] IcmpUnreachable icmpx_unreachable(IcmpxType type, IpFamily family) noexcept;

// What Linux does with a destination unreachable quoting one of its sockets' packets
// (net/ipv4/icmp.c icmp_err_convert, net/ipv6/icmp.c icmpv6_err_convert):
//   errno  what the socket reports (connect(), or the next call on a connected UDP socket);
//   fatal  a hard error: a connected UDP socket reports it (__udp4_lib_err), a soft one it
//          does not (without IP_RECVERR). A TCP connect in SYN-SENT is different: tcp_v4_err
//          and tcp_v6_err end it with `errno` on every destination unreachable, hard or
//          soft, except IPv4 code 4 (fragmentation needed); scan::classify knows this.
// IPv4 port unreachable -> ECONNREFUSED, fatal; host/net unreachable -> EHOSTUNREACH /
// ENETUNREACH, soft; admin-prohibited (13) and host-prohibited (10) -> EHOSTUNREACH, fatal;
// net-prohibited (9) -> ENETUNREACH, fatal; protocol unreachable -> ENOPROTOOPT, fatal.
// IPv6 admin-prohibited -> EACCES, fatal; port unreachable -> ECONNREFUSED, fatal.
struct KernelIcmpError {
    int error = 0;  // an errno value (<cerrno>)
    bool fatal = false;
    friend bool operator==(const KernelIcmpError&, const KernelIcmpError&) = default;
};
[[nodiscard]] KernelIcmpError kernel_error(const IcmpUnreachable& icmp) noexcept;

// "Time exceeded: TTL expired in transit", "Destination unreachable: host unreachable": an
// ICMP message's type and code in words, as the packet decoder names them.
[[nodiscard]] std::string icmp_description(IpFamily family, std::uint8_t type, std::uint8_t code);

}  // namespace portlab
