#pragma once
// The raw TCP scans, nmap's -sS and -sA: one bare segment per port, written whole (IP header
// included) through a raw socket, and the answers read from a second raw socket that gets a
// copy of every TCP segment the host receives (raw(7)). Raw sockets need CAP_NET_RAW, which
// root of a private user + network namespace holds over that namespace's network.
//
//   SYN scan: a SYN, as a connect() would send, but no socket waits for the answer:
//     SYN-ACK -> open "syn-ack"; RST -> closed "reset"; silence -> filtered "no-response".
//     The scanning host's own kernel, which has no socket for that SYN-ACK, answers it with
//     RST (RFC 9293 3.10.7.1), so the half-open connection is torn down at once.
//   ACK scan: a bare ACK belongs to no connection, so whatever receives it answers RST (RFC
//     9293 3.10.7.1, "reset generation"): RST back -> unfiltered "reset", open and closed
//     alike; silence -> filtered. It maps the firewall, not the services.
// States and reasons come from the hub's one classifier, portlab::scan::classify. ICMP
// answers are not read here: the labs that use this scan meet silence or RST.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"
#include "portlab/scan.hpp"

namespace portlab::labkit {

// What one raw probe found.
struct RawProbeResult {
    scan::Verdict verdict;
    std::int64_t elapsed_us = 0;  // from the probe leaving to its answer (or to the timeout)
};

struct RawScanOptions {
    scan::ScanType type = scan::ScanType::ack;  // syn or ack
    IpAddress source;                           // this host's address, written into each probe
    IpAddress target;
    std::chrono::milliseconds timeout{1000};    // for all the answers together, after the last probe
    // The probes' source port: above the ephemeral range, so no socket of this host owns it.
    Port source_port = 61234;
    // Called as each probe leaves (for the trace).
    std::function<void(Port)> on_sent;
};

// Sends one probe to each port of `ports` on options.target and waits for the answers.
// The error names the raw socket call that failed (EPERM without CAP_NET_RAW).
[[nodiscard]] Result<std::map<Port, RawProbeResult>> raw_tcp_scan(const std::vector<Port>& ports,
                                                                  const RawScanOptions& options);

}  // namespace portlab::labkit
