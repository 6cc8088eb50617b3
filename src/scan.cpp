#include "portlab/scan.hpp"

#include <array>
#include <cerrno>
#include <string>

#include "portlab/spelling.hpp"

namespace portlab::scan {
namespace {

constexpr std::array<Spelling<ScanType>, 4> scan_type_spellings{{
    {ScanType::connect, "connect"}, {ScanType::syn, "syn"}, {ScanType::ack, "ack"}, {ScanType::udp, "udp"}}};
constexpr std::array<Spelling<PortState>, 6> port_state_spellings{{{PortState::open, "open"},
                                                                  {PortState::closed, "closed"},
                                                                  {PortState::filtered, "filtered"},
                                                                  {PortState::unfiltered, "unfiltered"},
                                                                  {PortState::open_filtered, "open|filtered"},
                                                                  {PortState::closed_filtered, "closed|filtered"}}};
// As nmap's portreasons.cc spells them, plus portlab's two.
constexpr std::array<Spelling<Reason>, 18> reason_spellings{{{Reason::syn_ack, "syn-ack"},
                                                            {Reason::reset, "reset"},
                                                            {Reason::conn_refused, "conn-refused"},
                                                            {Reason::no_response, "no-response"},
                                                            {Reason::udp_response, "udp-response"},
                                                            {Reason::port_unreach, "port-unreach"},
                                                            {Reason::host_unreach, "host-unreach"},
                                                            {Reason::net_unreach, "net-unreach"},
                                                            {Reason::proto_unreach, "proto-unreach"},
                                                            {Reason::admin_prohibited, "admin-prohibited"},
                                                            {Reason::host_prohibited, "host-prohibited"},
                                                            {Reason::net_prohibited, "net-prohibited"},
                                                            {Reason::no_route, "no-route"},
                                                            {Reason::beyond_scope, "beyond-scope"},
                                                            {Reason::reject_route, "reject-route"},
                                                            {Reason::dest_unreach, "dest-unreach"},
                                                            {Reason::self_connect, "self-connect"},
                                                            {Reason::local_error, "local-error"}}};

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

// Whether a destination unreachable ends a TCP connect() in SYN-SENT. Linux's tcp_v4_err
// and tcp_v6_err end it on every one, hard or soft (sk_err = the icmp_err_convert errno,
// tcp_done()), except IPv4's "fragmentation needed" (code 4, path MTU discovery) and
// IPv4 codes past NR_ICMP_UNREACH (15), which they ignore.
bool ends_tcp_connect(const IcmpUnreachable& icmp) noexcept {
    if (icmp.family == IpFamily::v6) return true;
    return icmp.code != 4 && kernel_error(icmp).error != 0;
}

}  // namespace

std::string_view to_string(ScanType type) noexcept { return spelling_of(scan_type_spellings, type); }

Result<ScanType> parse_scan_type(std::string_view text) { return parse_spelling(scan_type_spellings, text, "scan type"); }

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

std::string_view to_string(PortState state) noexcept { return spelling_of(port_state_spellings, state); }

Result<PortState> parse_port_state(std::string_view text) {
    return parse_spelling(port_state_spellings, text, "port state");
}

std::string_view to_string(Reason reason) noexcept { return spelling_of(reason_spellings, reason); }

Result<Reason> parse_reason(std::string_view text) { return parse_spelling(reason_spellings, text, "scan reason"); }

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
                if (!ends_tcp_connect(answer.icmp)) return Verdict{PortState::filtered, Reason::no_response};
                return from_errno(type, kernel_error(answer.icmp).error);
            }
            const Reason reason = reason_for(answer.icmp);
            if (type == ScanType::udp && reason == Reason::port_unreach) return Verdict{PortState::closed, reason};
            return Verdict{PortState::filtered, reason};
        }
    }
    return std::nullopt;
}

}  // namespace portlab::scan
