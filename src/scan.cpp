#include "portlab/scan.hpp"

#include <cerrno>
#include <string>

namespace portlab::scan {
namespace {

// Every value of an enum whose values run from 0 to `last`, for parse().
template <class Enum>
Result<Enum> parse_enum(std::string_view text, Enum last, std::string_view what) {
    std::string known;
    for (int i = 0; i <= static_cast<int>(last); ++i) {
        const auto value = static_cast<Enum>(i);
        if (text == to_string(value)) return value;
        known += (known.empty() ? "" : ", ") + std::string(to_string(value));
    }
    return fail("unknown " + std::string(what) + " \"" + std::string(text) + "\" (" + known + ")");
}

// What an errno from a scanner's socket says, for a connect scan (nmap's
// scan_engine_connect.cc handleConnectResult) and, through a connected UDP socket, for
// a UDP scan (there ECONNREFUSED is the ICMP port unreachable itself).
std::optional<Verdict> from_errno(ScanType type, int error) noexcept {
    const bool udp = type == ScanType::udp;
    switch (error) {
        case 0:
            if (udp) return std::nullopt;  // a UDP scan learns "open" from a reply, not from a call
            return Verdict{PortState::open, Reason::syn_ack};
        case ECONNREFUSED:
            return udp ? Verdict{PortState::closed, Reason::port_unreach} : Verdict{PortState::closed, Reason::conn_refused};
        // nmap: "apparently this can be caused by dest unreachable admin prohibited" (ICMPv6
        // codes 1, 5, 6 in icmpv6_err_convert). EPERM is Linux's answer when a netfilter
        // rule on this host refused the packet on its way out: a filter too.
        case EACCES:
        case EPERM: return Verdict{PortState::filtered, Reason::admin_prohibited};
        case ENOPROTOOPT: return Verdict{PortState::filtered, Reason::proto_unreach};
        case EHOSTUNREACH: return Verdict{PortState::filtered, Reason::host_unreach};
        case ETIMEDOUT:
        case EHOSTDOWN: return Verdict{PortState::filtered, Reason::no_response};
        case ENETUNREACH: return Verdict{PortState::filtered, Reason::net_unreach};
        case ENONET: return Verdict{PortState::filtered, Reason::dest_unreach};  // ICMP code 8, host isolated
        default: return Verdict{PortState::filtered, Reason::local_error};
    }
}

}  // namespace

std::string_view to_string(ScanType type) noexcept {
    switch (type) {
        case ScanType::connect: return "connect";
        case ScanType::syn: return "syn";
        case ScanType::ack: return "ack";
        case ScanType::udp: return "udp";
    }
    return "connect";
}

Result<ScanType> parse_scan_type(std::string_view text) { return parse_enum(text, ScanType::udp, "scan type"); }

std::string_view nmap_option(ScanType type) noexcept {
    switch (type) {
        case ScanType::connect: return "-sT";
        case ScanType::syn: return "-sS";
        case ScanType::ack: return "-sA";
        case ScanType::udp: return "-sU";
    }
    return "-sT";
}

Protocol protocol_of(ScanType type) noexcept { return type == ScanType::udp ? Protocol::udp : Protocol::tcp; }

std::string_view to_string(PortState state) noexcept {
    switch (state) {
        case PortState::open: return "open";
        case PortState::closed: return "closed";
        case PortState::filtered: return "filtered";
        case PortState::unfiltered: return "unfiltered";
        case PortState::open_filtered: return "open|filtered";
        case PortState::closed_filtered: return "closed|filtered";
    }
    return "filtered";
}

Result<PortState> parse_port_state(std::string_view text) {
    return parse_enum(text, PortState::closed_filtered, "port state");
}

std::string_view to_string(Reason reason) noexcept {
    switch (reason) {
        case Reason::syn_ack: return "syn-ack";
        case Reason::reset: return "reset";
        case Reason::conn_refused: return "conn-refused";
        case Reason::no_response: return "no-response";
        case Reason::udp_response: return "udp-response";
        case Reason::port_unreach: return "port-unreach";
        case Reason::host_unreach: return "host-unreach";
        case Reason::net_unreach: return "net-unreach";
        case Reason::proto_unreach: return "proto-unreach";
        case Reason::admin_prohibited: return "admin-prohibited";
        case Reason::host_prohibited: return "host-prohibited";
        case Reason::net_prohibited: return "net-prohibited";
        case Reason::no_route: return "no-route";
        case Reason::beyond_scope: return "beyond-scope";
        case Reason::reject_route: return "reject-route";
        case Reason::dest_unreach: return "dest-unreach";
        case Reason::self_connect: return "self-connect";
        case Reason::local_error: return "local-error";
    }
    return "local-error";
}

Result<Reason> parse_reason(std::string_view text) { return parse_enum(text, Reason::local_error, "scan reason"); }

Reason reason_for(const IcmpUnreachable& icmp) noexcept {
    if (icmp.family == IpFamily::v4) {
        switch (icmp.code) {
            case icmp_v4::net_unreachable: return Reason::net_unreach;
            case icmp_v4::host_unreachable: return Reason::host_unreach;
            case icmp_v4::protocol_unreachable: return Reason::proto_unreach;
            case icmp_v4::port_unreachable: return Reason::port_unreach;
            case icmp_v4::net_prohibited: return Reason::net_prohibited;
            case icmp_v4::host_prohibited: return Reason::host_prohibited;
            case icmp_v4::admin_prohibited: return Reason::admin_prohibited;
            default: return Reason::dest_unreach;
        }
    }
    switch (icmp.code) {
        case icmp_v6::no_route: return Reason::no_route;
        case icmp_v6::admin_prohibited:
        case icmp_v6::policy_failed: return Reason::admin_prohibited;
        case icmp_v6::beyond_scope: return Reason::beyond_scope;
        case icmp_v6::address_unreachable: return Reason::host_unreach;
        case icmp_v6::port_unreachable: return Reason::port_unreach;
        case icmp_v6::reject_route: return Reason::reject_route;
        default: return Reason::dest_unreach;
    }
}

std::optional<Verdict> classify(ScanType type, const Answer& answer) noexcept {
    switch (answer.kind) {
        case AnswerKind::self_connect: return Verdict{PortState::closed, Reason::self_connect};
        case AnswerKind::local_error: return Verdict{PortState::filtered, Reason::local_error};
        case AnswerKind::socket_error:
            if (type == ScanType::connect || type == ScanType::udp) return from_errno(type, answer.error);
            return std::nullopt;  // raw scans read packets, not a socket's errno
        case AnswerKind::nothing:
            return Verdict{type == ScanType::udp ? PortState::open_filtered : PortState::filtered, Reason::no_response};
        case AnswerKind::syn_ack:
            if (type == ScanType::syn) return Verdict{PortState::open, Reason::syn_ack};
            if (type == ScanType::connect) return from_errno(type, 0);
            return std::nullopt;  // an ACK scan expects RST or nothing; a UDP scan, no TCP at all
        case AnswerKind::reset:
            if (type == ScanType::syn) return Verdict{PortState::closed, Reason::reset};
            if (type == ScanType::ack) return Verdict{PortState::unfiltered, Reason::reset};
            if (type == ScanType::connect) return from_errno(type, ECONNREFUSED);
            return std::nullopt;
        case AnswerKind::udp_reply:
            if (type == ScanType::udp) return Verdict{PortState::open, Reason::udp_response};
            return std::nullopt;
        case AnswerKind::icmp_unreachable: {
            if (type == ScanType::connect) {
                // The kernel reads the ICMP error for connect() (tcp_v4_err / tcp_v6_err).
                const auto kernel = kernel_error(answer.icmp);
                if (!kernel.fatal) return Verdict{PortState::filtered, Reason::no_response};
                return from_errno(type, kernel.error);
            }
            const Reason reason = reason_for(answer.icmp);
            if (type == ScanType::udp && reason == Reason::port_unreach) return Verdict{PortState::closed, reason};
            return Verdict{PortState::filtered, reason};
        }
    }
    return std::nullopt;
}

}  // namespace portlab::scan
