#include "labkit/raw_scan.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <span>

#include "labkit/posix.hpp"
#include "portlab/packet.hpp"

namespace portlab::labkit {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t microseconds_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

RawProbeResult result_of(scan::ScanType type, const scan::Answer& answer, Clock::time_point sent) {
    const auto verdict = scan::classify(type, answer);
    return {verdict.value_or(scan::Verdict{scan::PortState::filtered, scan::Reason::local_error}), microseconds_since(sent)};
}

// The probe for `port`: a SYN (what connect() would send first) or a bare ACK that
// acknowledges data nobody sent.
TcpHeader probe_header(const RawScanOptions& options, Port port) {
    TcpHeader tcp;
    tcp.source_port = options.source_port;
    tcp.destination_port = port;
    tcp.sequence = 0x1000u + port;
    tcp.acknowledgment = options.type == scan::ScanType::ack ? 0x50000000u + port : 0;
    tcp.flags = options.type == scan::ScanType::ack ? tcp_flag::ack : tcp_flag::syn;
    tcp.window = 1024;
    return tcp;
}

// The answer a received segment is to one of our probes, if it is one.
std::optional<scan::Answer> answer_in(const DecodedPacket& packet, const RawScanOptions& options) {
    if (!packet.tcp || packet.tcp->destination_port != options.source_port || packet.ip.source != options.target)
        return std::nullopt;
    const auto flags = packet.tcp->flags;
    if (flags & tcp_flag::rst) return scan::Answer::reset();
    if ((flags & tcp_flag::syn) && (flags & tcp_flag::ack)) return scan::Answer::syn_ack();
    return std::nullopt;
}

}  // namespace

Result<std::map<Port, RawProbeResult>> raw_tcp_scan(const std::vector<Port>& ports, const RawScanOptions& options) {
    if (options.type != scan::ScanType::syn && options.type != scan::ScanType::ack)
        return fail("a raw TCP scan is a SYN or an ACK scan");
    Fd sender(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));   // we write the IP header
    Fd listener(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP));  // a copy of every TCP segment in
    if (!sender.ok() || !listener.ok()) return fail("raw socket: " + errno_text(errno), {errno, std::generic_category()});

    std::map<Port, RawProbeResult> found;
    std::map<Port, Clock::time_point> sent_at;
    for (const Port port : ports) {
        IpHeader ip;
        ip.source = options.source;
        ip.destination = options.target;
        auto bytes = encode_tcp(ip, probe_header(options, port));
        if (!bytes) return bytes.error();
        const auto destination = socket_address({options.target, port});
        sent_at[port] = Clock::now();
        if (sendto(sender.get(), bytes->data(), bytes->size(), 0, reinterpret_cast<const sockaddr*>(&destination),
                   sizeof destination) < 0)
            return fail("sendto (raw): " + errno_text(errno), {errno, std::generic_category()});
        if (options.on_sent) options.on_sent(port);
    }

    const auto deadline = Clock::now() + options.timeout;
    while (found.size() < ports.size() && Clock::now() < deadline) {
        pollfd waiting{listener.get(), POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (poll(&waiting, 1, static_cast<int>(std::max<std::int64_t>(left, 1))) <= 0) continue;
        std::uint8_t buffer[2048];
        const auto received = recv(listener.get(), buffer, sizeof buffer, 0);
        if (received <= 0) continue;
        const auto packet = decode_ip(std::span<const std::uint8_t>(buffer, static_cast<std::size_t>(received)));
        // On loopback our own probes come back into this socket too: only an answer counts.
        if (!packet) continue;
        const auto answer = answer_in(*packet, options);
        const Port port = packet->tcp ? packet->tcp->source_port : 0;
        if (!answer || !sent_at.contains(port) || found.contains(port)) continue;
        found[port] = result_of(options.type, *answer, sent_at[port]);
    }
    for (const Port port : ports)
        if (!found.contains(port)) found[port] = result_of(options.type, scan::Answer::nothing(), sent_at[port]);
    return found;
}

}  // namespace portlab::labkit
