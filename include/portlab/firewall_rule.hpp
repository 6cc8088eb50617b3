#pragma once
// One firewall rule, the kind every part of portlab means: a match and an action, as a rule
// of an nftables inet-family chain: the input chain (lab 09's host firewall) or a router's
// forward chain (lab 18's, which asks connection tracking: `ct state`). The simulator evaluates
// input-chain rules without ct state, iifname or tcp flags (sim/firewall.hpp) and models
// lab 18's forward chain itself (sim/router.hpp); the simulator evaluates rules
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
#include "portlab/packet.hpp"
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

// Where a rule sits. input: packets for this host (nft `hook input`); forward: packets a
// router passes on (`hook forward`, ip_forward()). The chain is not in the rule's text: nft
// names it in the command (`add rule inet portlab_fw forward ...`), so the trace writes it beside.
enum class FirewallChain : std::uint8_t { input, forward };
// "input", "forward"
[[nodiscard]] std::string_view to_string(FirewallChain chain) noexcept;
[[nodiscard]] Result<FirewallChain> parse_firewall_chain(std::string_view text);

// Conntrack's verdict on a packet, as nft's `ct state` names it (nf_conntrack_common.h:
// NF_CT_STATE_INVALID_BIT, then NF_CT_STATE_BIT(IP_CT_ESTABLISHED), (IP_CT_RELATED),
// (IP_CT_NEW)); the values are the kernel's bits, so a set lists in nft's order.
//   new          the first packet of a connection conntrack has not confirmed yet
//   established  a packet of a connection that has seen traffic both ways, or its reply
//   related      a packet about a tracked connection (an ICMP error quoting it, FTP data)
//   invalid      fits no connection conntrack could start or follow
enum class CtState : std::uint8_t { invalid = 0x01, established = 0x02, related = 0x04, new_connection = 0x08 };
// "invalid", "established", "related", "new"
[[nodiscard]] std::string_view to_string(CtState state) noexcept;

// A set of ct states, `ct state established,related`: the packet's state must be one of them.
struct CtStates {
    std::uint8_t bits = 0;
    [[nodiscard]] constexpr bool contains(CtState state) const noexcept { return (bits & static_cast<std::uint8_t>(state)) != 0; }
    [[nodiscard]] constexpr CtStates with(CtState state) const noexcept {
        return {static_cast<std::uint8_t>(bits | static_cast<std::uint8_t>(state))};
    }
    friend bool operator==(const CtStates&, const CtStates&) = default;
};
// "established,related", in the kernel's bit order, as `nft list` prints it.
[[nodiscard]] std::string to_string(CtStates states);
// "established,related", "new", "related,established": any order, each state once.
[[nodiscard]] Result<CtStates> parse_ct_states(std::string_view text);

// `tcp flags & (syn | ack) == syn`: the header's flag bits (packet.hpp tcp_flag) under `mask`
// must equal `value`, a subset of the mask. That one means "a SYN without ACK": a connection's
// first segment. nft lists it back as `tcp flags syn / syn,ack`.
struct TcpFlagsMatch {
    std::uint8_t mask = 0;
    std::uint8_t value = 0;
    friend bool operator==(const TcpFlagsMatch&, const TcpFlagsMatch&) = default;
};

// A rule. Every field of the match that is set must hold for the packet; none set matches
// everything. Ports need a protocol (nft matches "tcp dport", never a bare port).
struct FirewallRule {
    // the match
    std::optional<Protocol> protocol;
    std::optional<IpAddress> source;
    std::optional<IpAddress> destination;
    std::optional<PortRange> source_ports;
    std::optional<PortRange> destination_ports;
    std::optional<std::string> in_interface;  // `iifname "NAME"`: the interface the packet came in on
    std::optional<CtStates> ct_states;        // `ct state new,...`: conntrack's verdict (needs conntrack)
    std::optional<TcpFlagsMatch> tcp_flags;   // `tcp flags & (...) == ...` (TCP rules only)
    // where it sits
    FirewallChain chain = FirewallChain::input;
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
// of different families, an empty ct state set, an interface name the kernel cannot have
// (empty, longer than IFNAMSIZ - 1 = 15, blanks or quotes), tcp flags on a rule that is not
// TCP's or a flags value outside its mask.
[[nodiscard]] Result<void> check_rule(const FirewallRule& rule);

// The rule in nft syntax, as a line of an inet-family chain:
//   "tcp dport 22 drop", "udp dport 53 reject with icmpx type port-unreachable",
//   "ip saddr 192.0.2.1 tcp dport 8000-8080 reject with tcp reset", "meta l4proto udp accept", "drop",
//   "iifname \"router-client\" ct state new drop", "ct state established,related accept",
//   "iifname \"router-client\" tcp flags & (syn | ack) == syn drop".
// Words in the order iifname, ct state, addresses, protocol and ports, tcp flags, action.
// The chain is not in the text (see FirewallChain). An error when check_rule() refuses it.
[[nodiscard]] Result<std::string> nft_text(const FirewallRule& rule);

// The reverse of nft_text() for the lines it writes, in any order of the matches, and for
// how nft 1.0 lists them back: "reject with icmpx <type>", "tcp flags syn / syn,ack"
// (mask after the slash), "tcp flags ! syn,ack" (none of them set), "tcp flags == 0x12"
// (all eight bits). The rule gets `chain`, which its text cannot say.
[[nodiscard]] Result<FirewallRule> parse_nft_rule(std::string_view text, FirewallChain chain = FirewallChain::input);

}  // namespace portlab
