#pragma once
// The scanner behind lab 08: which ports to knock on, and how to knock.
//
// A TCP connect scan asks the kernel to connect() to each port and reads the answer
// the way nmap's -sT does (nmap.org/book/scan-methods-connect-scan.html); the state and
// reason of every answer come from the hub's one classifier, portlab::scan::classify:
//   SYN -> SYN-ACK      connect() succeeds             open      reason "syn-ack"
//   SYN -> RST          ECONNREFUSED                   closed    reason "conn-refused"
//   SYN -> nothing      no answer before the timeout   filtered  reason "no-response"
//   SYN -> ICMP error   EHOSTUNREACH / ENETUNREACH     filtered  reason "host-unreach" / "net-unreach"
//                       (Linux's icmp_err_convert: admin-prohibited, code 13, is EHOSTUNREACH)
// A UDP scan sends one datagram per port on a connected UDP socket:
//   a reply                                            open           "udp-response"
//   ICMP port unreachable -> ECONNREFUSED (RFC 1122 4.1.3.3, Linux udp_err)
//                                                      closed         "port-unreach"
//   silence, even after a retry                        open|filtered  "no-response"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"
#include "portlab/scan.hpp"
#include "portlab/services.hpp"

// The lab's scan engine; the vocabulary it reports in is the hub's, portlab::scan.
namespace portlab::scanner {

// ---- which ports -----------------------------------------------------------------------

// "1-1024,8080,http" -> ports in the order written, duplicates dropped. "-" alone means
// 1-65535 as in nmap's -p-. Names are looked up in `services`. Port 0 is refused: nobody
// can connect() to it (Linux answers ECONNREFUSED without sending anything).
[[nodiscard]] Result<std::vector<Port>> parse_port_list(std::string_view text, const ServiceTable& services);

// Where --top N takes its ports from.
struct TopPorts {
    std::vector<Port> ports;
    std::string source;  // e.g. "/usr/share/nmap/nmap-services (open-frequency)"
};

// /etc/services has no frequencies, so "top" needs a definition. When nmap is installed its
// nmap-services file lists how often each port was found open on the Internet: then the top
// N are the N most frequent TCP (or UDP) ports, exactly what `nmap --top-ports N` scans.
// Otherwise they are the first N distinct ports of `services` in file order, which lists
// the old well-known services first.
inline constexpr const char* nmap_services_path = "/usr/share/nmap/nmap-services";

// One line of nmap-services: "name <tab> port/proto <tab> open-frequency [<tab> # comment]".
// nmap names the ports of its report from this file, not from /etc/services.
struct NmapService {
    std::string name;
    Port port = 0;
    Protocol protocol = Protocol::tcp;
    double frequency = 0;
};
// Every well-formed line of `file` (empty when it cannot be read: nmap not installed).
[[nodiscard]] std::vector<NmapService> read_nmap_services(const std::string& file = nmap_services_path);
[[nodiscard]] Result<TopPorts> top_ports(std::size_t count, Protocol protocol, const ServiceTable& services,
                                         const std::string& frequency_file = nmap_services_path);

// "1-3,5,7-9": how nmap's XML writes a set of ports. Input in any order.
[[nodiscard]] std::string compress_ranges(std::vector<Port> ports);

// ---- the answers -----------------------------------------------------------------------

// One port's answer, as nmap would report it (states and reasons: portlab/scan.hpp;
// a connect that met itself every time is closed "self-connect", a probe that failed
// here filtered "local-error").
struct PortResult {
    Port port = 0;
    scan::PortState state = scan::PortState::closed;
    scan::Reason reason = scan::Reason::conn_refused;
};

struct ScanOptions {
    IpAddress target = IpAddress::loopback_v4();
    Protocol protocol = Protocol::tcp;
    std::size_t concurrency = 256;  // probes waiting for an answer at once
    std::chrono::milliseconds timeout{1000};  // per probe, before "no-response"
    int udp_retries = 1;  // extra datagrams before "open|filtered" (a datagram may be lost)
    // Called now and then from the scanning thread with (done, total).
    std::function<void(std::size_t, std::size_t)> progress;
    // Called from the scanning thread as each probe leaves (port, attempt: 0 first, then
    // each retry: another datagram, or another source port after a self-connect) and as
    // each port's answer is decided: what the lab records in its trace.
    std::function<void(Port, std::uint32_t)> on_probe;
    std::function<void(const PortResult&)> on_result;
    // The target is a host the lab made itself, in a private network namespace (a veth
    // neighbour on 192.0.2.0/24): then it need not be a loopback address.
    bool target_in_private_namespace = false;
};

struct ScanReport {
    Protocol protocol = Protocol::tcp;
    std::vector<PortResult> results;   // one per port, in the order asked
    std::size_t self_connects = 0;     // connects that met themselves (and were retried)
    std::size_t waited = 0;            // probes that had no answer at once and went to epoll
    std::chrono::microseconds elapsed{0};
};

// Scans every port of `ports` on options.target. Every wait is bounded by options.timeout.
// The target must be a loopback address, or a host of the lab's own private namespace.
[[nodiscard]] Result<ScanReport> run_scan(const std::vector<Port>& ports, const ScanOptions& options);

}  // namespace portlab::scanner
