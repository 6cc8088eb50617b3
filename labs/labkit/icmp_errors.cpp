#include "labkit/icmp_errors.hpp"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include <fmt/format.h>

#include "portlab/icmp.hpp"

namespace portlab::labkit {
namespace {

// The offender's address from the sockaddr the kernel put after sock_extended_err.
IpAddress offender_of(const sock_extended_err& extended) {
    const auto* offender = SO_EE_OFFENDER(&extended);
    char text[INET6_ADDRSTRLEN] = {};
    if (offender->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(offender)->sin6_addr, text, sizeof text);
    else
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(offender)->sin_addr, text, sizeof text);
    const auto parsed = IpAddress::parse(text);
    return parsed ? *parsed : IpAddress{};
}

// Whether a control message carries an extended error that came from ICMP or ICMPv6.
std::optional<IcmpError> icmp_error_in(const cmsghdr& c) {
    const bool v4 = c.cmsg_level == IPPROTO_IP && c.cmsg_type == IP_RECVERR;
    const bool v6 = c.cmsg_level == IPPROTO_IPV6 && c.cmsg_type == IPV6_RECVERR;
    if (!v4 && !v6) return std::nullopt;
    sock_extended_err extended{};
    std::memcpy(&extended, CMSG_DATA(&c), sizeof extended);
    if (extended.ee_origin != SO_EE_ORIGIN_ICMP && extended.ee_origin != SO_EE_ORIGIN_ICMP6) return std::nullopt;
    return IcmpError{extended.ee_origin == SO_EE_ORIGIN_ICMP6 ? IpFamily::v6 : IpFamily::v4,
                     static_cast<int>(extended.ee_errno), extended.ee_type, extended.ee_code, extended.ee_info,
                     offender_of(*reinterpret_cast<const sock_extended_err*>(CMSG_DATA(&c)))};
}

}  // namespace

void report_icmp_errors(int fd, IpFamily family) {
    const int on = 1;
    if (family == IpFamily::v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
    else
        setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
}

std::optional<IcmpError> next_icmp_error(int fd, std::chrono::milliseconds wait) {
    pollfd waiting{fd, 0, 0};  // POLLERR is always reported
    if (poll(&waiting, 1, static_cast<int>(wait.count())) <= 0 || !(waiting.revents & POLLERR)) return std::nullopt;
    char data[2048];
    alignas(cmsghdr) char control[512];
    sockaddr_storage from{};
    iovec io{data, sizeof data};
    msghdr message{};
    message.msg_name = &from;
    message.msg_namelen = sizeof from;
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (recvmsg(fd, &message, MSG_ERRQUEUE) < 0) return std::nullopt;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c))
        if (auto icmp = icmp_error_in(*c)) return icmp;
    return std::nullopt;
}

std::string describe(const IcmpError& icmp) {
    return fmt::format("{} type {} code {} ({}) from {}; the socket's error: {}",
                       icmp.family == IpFamily::v6 ? "ICMPv6" : "ICMP", icmp.type, icmp.code,
                       icmp_description(icmp.family, icmp.type, icmp.code), icmp.offender.to_string(),
                       std::strerror(icmp.error));
}

nlohmann::json icmp_json(const std::optional<IcmpError>& icmp) {
    if (!icmp) return nullptr;
    return {{"type", icmp->type}, {"code", icmp->code}, {"from", icmp->offender.to_string()},
            {"errno", icmp->error}, {"info", icmp->info}};
}

}  // namespace portlab::labkit
