#pragma once
// One firewall rule, the kind every part of portlab means: a match and an action, as an
// nftables input-chain rule without connection tracking. The simulator evaluates rules
// (sim/firewall.hpp), the lab kit applies them to a private namespace's kernel through
// libnftables (labkit/nftables.hpp), and the trace records them (rule_added).
//
// The actions are what nmap's port states are defined against (portlab/scan.hpp):
//   accept  the packet goes on to the host's stack;
//   drop    silence: a connect or SYN scan says filtered, a UDP scan open|filtered;
//   reject  an answer for the host: a TCP RST ("reject with tcp reset", looks closed) or an
//           ICMP destination unreachable ("reject with icmpx type admin-prohibited", ...).
// A plain `reject` is nft's default: ICMP(v6) port unreachable for every protocol, TCP
// included (nft(8) REJECT STATEMENT; `nft list` then prints just "reject").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "portlab/icmp.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"

namespace portlab {

enum class FirewallAction : std::uint8_t { accept, drop, reject };
// "accept", "drop", "reject"
[[nodiscard]] std::string_view to_string(FirewallAction action) noexcept;
[[nodiscard]] Result<FirewallAction> parse_firewall_action(std::string_view text);

// What a reject answers with.
enum class RejectWith : std::uint8_t {
    nft_default,            // plain "reject": ICMP(v6) port unreachable (icmpx port-unreachable)
    tcp_reset,              // "reject with tcp reset" (TCP rules only; RFC 9293 3.10.7.1 reset)
    icmp_port_unreachable,  // "reject with icmpx type port-unreachable" (iptables REJECT's default too)
    icmp_host_unreachable,  // "reject with icmpx type host-unreachable"
    icmp_admin_prohibited,  // "reject with icmpx type admin-prohibited" (ICMP code 13, RFC 1812 5.2.7.1)
};
// "default", "tcp-reset", "icmp-port-unreachable", "icmp-host-unreachable", "icmp-admin-prohibited"
[[nodiscard]] std::string_view to_string(RejectWith with) noexcept;
[[nodiscard]] Result<RejectWith> parse_reject_with(std::string_view text);
// The ICMP type a reject sends; nullopt for tcp_reset.
[[nodiscard]] std::optional<IcmpxType> icmpx_type(RejectWith with) noexcept;

// A rule. Every field of the match that is set must hold for the packet; none set matches
// everything. Ports need a protocol (nft matches "tcp dport", never a bare port).
struct FirewallRule {
    // the match
    std::optional<Protocol> protocol;
    std::optional<IpAddress> source;
    std::optional<IpAddress> destination;
    std::optional<PortRange> source_ports;
    std::optional<PortRange> destination_ports;
    // the action
    FirewallAction action = FirewallAction::accept;
    RejectWith reject_with = RejectWith::nft_default;  // for reject only

    friend bool operator==(const FirewallRule&, const FirewallRule&) = default;
};

// Shorthands: "<protocol> dport <port> drop", ... and "drop" (everything).
[[nodiscard]] FirewallRule accept_port(Protocol protocol, Port port);
[[nodiscard]] FirewallRule drop_port(Protocol protocol, Port port);
[[nodiscard]] FirewallRule reject_port(Protocol protocol, Port port, RejectWith with = RejectWith::nft_default);
[[nodiscard]] FirewallRule drop_all();

// Why nft would refuse the rule, if it would: ports without a protocol, a TCP reset for a
// rule that does not match TCP only, port 0 or a backwards range, source and destination
// of different families.
[[nodiscard]] Result<void> check_rule(const FirewallRule& rule);

// The rule in nft syntax, as a line of an inet-family chain:
//   "tcp dport 22 drop", "udp dport 53 reject with icmpx type port-unreachable",
//   "ip saddr 192.0.2.1 tcp dport 8000-8080 reject with tcp reset", "meta l4proto udp accept", "drop".
// An error when check_rule() refuses it.
[[nodiscard]] Result<std::string> nft_text(const FirewallRule& rule);

// The reverse of nft_text() for the lines it writes (and "reject with icmpx <type>", which
// is how nft lists them back).
[[nodiscard]] Result<FirewallRule> parse_nft_rule(std::string_view text);

}  // namespace portlab
