#include "portlab/icmp.hpp"

#include <array>
#include <cerrno>
#include <string>

namespace portlab {

std::string_view to_string(IcmpxType type) noexcept {
    switch (type) {
        case IcmpxType::port_unreachable: return "port-unreachable";
        case IcmpxType::host_unreachable: return "host-unreachable";
        case IcmpxType::admin_prohibited: return "admin-prohibited";
        case IcmpxType::no_route: return "no-route";
    }
    return "port-unreachable";
}

Result<IcmpxType> parse_icmpx_type(std::string_view text) {
    for (const auto type : {IcmpxType::port_unreachable, IcmpxType::host_unreachable, IcmpxType::admin_prohibited,
                            IcmpxType::no_route})
        if (text == to_string(type)) return type;
    return fail("unknown icmpx type \"" + std::string(text) +
                "\" (port-unreachable, host-unreachable, admin-prohibited, no-route)");
}

IcmpUnreachable icmpx_unreachable(IcmpxType type, IpFamily family) noexcept {
    const bool v4 = family == IpFamily::v4;
    switch (type) {
        case IcmpxType::port_unreachable: return {family, v4 ? icmp_v4::port_unreachable : icmp_v6::port_unreachable};
        case IcmpxType::host_unreachable: return {family, v4 ? icmp_v4::host_unreachable : icmp_v6::address_unreachable};
        case IcmpxType::admin_prohibited: return {family, v4 ? icmp_v4::admin_prohibited : icmp_v6::admin_prohibited};
        case IcmpxType::no_route: return {family, v4 ? icmp_v4::net_unreachable : icmp_v6::no_route};
    }
    return {family, v4 ? icmp_v4::port_unreachable : icmp_v6::port_unreachable};
}

KernelIcmpError kernel_error(const IcmpUnreachable& icmp) noexcept {
    if (icmp.family == IpFamily::v4) {
        // icmp_err_convert[], indexed by code (ICMP_NET_UNREACH .. ICMP_PREC_CUTOFF).
        static constexpr std::array<KernelIcmpError, 16> table{{
            {ENETUNREACH, false},   // 0 net unreachable
            {EHOSTUNREACH, false},  // 1 host unreachable
            {ENOPROTOOPT, true},    // 2 protocol unreachable
            {ECONNREFUSED, true},   // 3 port unreachable
            {EMSGSIZE, false},      // 4 fragmentation needed
            {EOPNOTSUPP, false},    // 5 source route failed
            {ENETUNREACH, true},    // 6 net unknown
            {EHOSTDOWN, true},      // 7 host unknown
            {ENONET, true},         // 8 host isolated
            {ENETUNREACH, true},    // 9 net administratively prohibited
            {EHOSTUNREACH, true},   // 10 host administratively prohibited
            {ENETUNREACH, false},   // 11 net unreachable for TOS
            {EHOSTUNREACH, false},  // 12 host unreachable for TOS
            {EHOSTUNREACH, true},   // 13 communication administratively prohibited
            {EHOSTUNREACH, true},   // 14 precedence violation
            {EHOSTUNREACH, true},   // 15 precedence cutoff
        }};
        // tcp_v4_err and __udp4_lib_err ignore codes past NR_ICMP_UNREACH (15): no error.
        return icmp.code < table.size() ? table[icmp.code] : KernelIcmpError{0, false};
    }
    // icmpv6_err_convert's tab_unreach[]; any other code is EPROTO, fatal.
    static constexpr std::array<KernelIcmpError, 7> table{{
        {ENETUNREACH, false},   // 0 no route
        {EACCES, true},         // 1 administratively prohibited
        {EHOSTUNREACH, false},  // 2 beyond scope (was "not a neighbour")
        {EHOSTUNREACH, false},  // 3 address unreachable
        {ECONNREFUSED, true},   // 4 port unreachable
        {EACCES, true},         // 5 source address failed policy
        {EACCES, true},         // 6 reject route
    }};
    return icmp.code < table.size() ? table[icmp.code] : KernelIcmpError{EPROTO, true};
}

}  // namespace portlab
