#include "portlab/firewall_rule.hpp"

#include <array>
#include <vector>

#include "portlab/spelling.hpp"
#include "portlab/text.hpp"

namespace portlab {
namespace {

std::string ports_text(PortRange range) {
    return range.low == range.high ? std::to_string(range.low) : range.to_string();
}

Result<PortRange> parse_ports(std::string_view text) {
    const auto dash = text.find('-');
    const auto low = parse_port_number(text.substr(0, dash));
    if (!low) return low.error();
    if (dash == std::string_view::npos) return PortRange{*low, *low};
    const auto high = parse_port_number(text.substr(dash + 1));
    if (!high) return high.error();
    return PortRange{*low, *high};
}

Result<void> check_ports(const std::optional<PortRange>& range, std::string_view which) {
    if (!range) return {};
    if (range->low == 0) return fail("a firewall rule's " + std::string(which) + " must be 1-65535, not 0");
    if (range->low > range->high) return fail("a firewall rule's " + std::string(which) + " range runs backwards");
    return {};
}

std::string_view ip_keyword(const IpAddress& address) { return address.is_v4() ? "ip" : "ip6"; }

}  // namespace

constexpr std::array<Spelling<FirewallAction>, 3> action_spellings{
    {{FirewallAction::accept, "accept"}, {FirewallAction::drop, "drop"}, {FirewallAction::reject, "reject"}}};
constexpr std::array<Spelling<RejectWith>, 5> reject_with_spellings{{{RejectWith::nft_default, "default"},
                                                                    {RejectWith::tcp_reset, "tcp-reset"},
                                                                    {RejectWith::icmp_port_unreachable, "icmp-port-unreachable"},
                                                                    {RejectWith::icmp_host_unreachable, "icmp-host-unreachable"},
                                                                    {RejectWith::icmp_admin_prohibited, "icmp-admin-prohibited"}}};

std::string_view to_string(FirewallAction action) noexcept { return spelling_of(action_spellings, action); }

Result<FirewallAction> parse_firewall_action(std::string_view text) {
    return parse_spelling(action_spellings, text, "firewall action");
}

std::string_view to_string(RejectWith with) noexcept { return spelling_of(reject_with_spellings, with); }

Result<RejectWith> parse_reject_with(std::string_view text) {
    return parse_spelling(reject_with_spellings, text, "reject type");
}

std::optional<IcmpxType> icmpx_type(RejectWith with) noexcept {
    switch (with) {
        case RejectWith::tcp_reset: return std::nullopt;
        case RejectWith::nft_default:
        case RejectWith::icmp_port_unreachable: return IcmpxType::port_unreachable;
        case RejectWith::icmp_host_unreachable: return IcmpxType::host_unreachable;
        case RejectWith::icmp_admin_prohibited: return IcmpxType::admin_prohibited;
    }
    return IcmpxType::port_unreachable;
}

FirewallRule accept_port(Protocol protocol, Port port) {
    FirewallRule rule;
    rule.protocol = protocol;
    rule.destination_ports = PortRange{port, port};
    rule.action = FirewallAction::accept;
    return rule;
}

FirewallRule drop_port(Protocol protocol, Port port) {
    FirewallRule rule = accept_port(protocol, port);
    rule.action = FirewallAction::drop;
    return rule;
}

FirewallRule reject_port(Protocol protocol, Port port, RejectWith with) {
    FirewallRule rule = accept_port(protocol, port);
    rule.action = FirewallAction::reject;
    rule.reject_with = with;
    return rule;
}

FirewallRule drop_all() {
    FirewallRule rule;
    rule.action = FirewallAction::drop;
    return rule;
}

Result<void> check_rule(const FirewallRule& rule) {
    if ((rule.source_ports || rule.destination_ports) && !rule.protocol)
        return fail("a firewall rule with ports needs a protocol (nft matches \"tcp dport\", not a bare port)");
    if (auto ok = check_ports(rule.source_ports, "source port"); !ok) return ok;
    if (auto ok = check_ports(rule.destination_ports, "destination port"); !ok) return ok;
    if (rule.source && rule.destination && rule.source->family() != rule.destination->family())
        return fail("a firewall rule's source and destination must both be IPv4 or both IPv6");
    // A RST exists only in TCP (RFC 9293 3.10.7.1); nft refuses it for anything else.
    if (rule.action == FirewallAction::reject && rule.reject_with == RejectWith::tcp_reset &&
        rule.protocol != Protocol::tcp)
        return fail("reject with tcp reset needs a TCP rule");
    return {};
}

Result<std::string> nft_text(const FirewallRule& rule) {
    if (auto ok = check_rule(rule); !ok) return ok.error();
    std::vector<std::string> words;
    if (rule.source) words.push_back(std::string(ip_keyword(*rule.source)) + " saddr " + rule.source->to_string());
    if (rule.destination)
        words.push_back(std::string(ip_keyword(*rule.destination)) + " daddr " + rule.destination->to_string());
    if (rule.protocol) {
        const std::string protocol(to_string(*rule.protocol));
        if (rule.source_ports) words.push_back(protocol + " sport " + ports_text(*rule.source_ports));
        if (rule.destination_ports) words.push_back(protocol + " dport " + ports_text(*rule.destination_ports));
        if (!rule.source_ports && !rule.destination_ports) words.push_back("meta l4proto " + protocol);
    }
    std::string action(to_string(rule.action));
    if (rule.action == FirewallAction::reject && rule.reject_with != RejectWith::nft_default) {
        // icmpx: one code per meaning, sent as ICMP to IPv4 and ICMPv6 to IPv6, so one rule
        // of an inet table serves both families (nft(8), REJECT STATEMENT).
        const auto icmp = icmpx_type(rule.reject_with);
        action += icmp ? " with icmpx type " + std::string(to_string(*icmp)) : std::string(" with tcp reset");
    }
    words.push_back(std::move(action));
    std::string text;
    for (const auto& word : words) text += (text.empty() ? "" : " ") + word;
    return text;
}

Result<FirewallRule> parse_nft_rule(std::string_view text) {
    const auto words = text::split_words(text);
    const auto refuse = [&](const std::string& why) {
        return fail("cannot read firewall rule \"" + std::string(text) + "\": " + why);
    };
    FirewallRule rule;
    std::size_t i = 0;
    const auto next = [&]() -> std::string_view { return i < words.size() ? words[i++] : std::string_view{}; };
    while (i < words.size()) {
        const std::string_view word = next();
        if (word == "ip" || word == "ip6") {
            const std::string_view field = next();
            const auto address = IpAddress::parse(next());
            if (!address) return refuse(address.error().message);
            if (address->is_v4() != (word == "ip")) return refuse("\"" + std::string(word) + "\" with " + address->to_string());
            if (field == "saddr") rule.source = *address;
            else if (field == "daddr") rule.destination = *address;
            else return refuse("expected saddr or daddr after " + std::string(word));
        } else if (word == "tcp" || word == "udp") {
            const Protocol protocol = word == "tcp" ? Protocol::tcp : Protocol::udp;
            if (rule.protocol && *rule.protocol != protocol) return refuse("two protocols in one rule");
            rule.protocol = protocol;
            const std::string_view field = next();
            const auto ports = parse_ports(next());
            if (!ports) return refuse(ports.error().message);
            if (field == "sport") rule.source_ports = *ports;
            else if (field == "dport") rule.destination_ports = *ports;
            else return refuse("expected sport or dport after " + std::string(word));
        } else if (word == "meta") {
            if (next() != "l4proto") return refuse("only \"meta l4proto\" is understood");
            const auto protocol = parse_protocol(next());
            if (!protocol) return refuse(protocol.error().message);
            rule.protocol = *protocol;
        } else {
            const auto action = parse_firewall_action(word);
            if (!action) return refuse(action.error().message);
            rule.action = *action;
            if (*action == FirewallAction::reject && i < words.size()) {
                if (next() != "with") return refuse("expected \"with\" after reject");
                const std::string_view kind = next();
                if (kind == "tcp") {
                    if (next() != "reset") return refuse("expected \"tcp reset\"");
                    rule.reject_with = RejectWith::tcp_reset;
                } else if (kind == "icmpx") {
                    std::string_view type = next();
                    if (type == "type") type = next();
                    const auto icmp = parse_icmpx_type(type);
                    if (!icmp) return refuse(icmp.error().message);
                    if (*icmp == IcmpxType::no_route) return refuse("portlab has no reject with no-route");
                    rule.reject_with = *icmp == IcmpxType::port_unreachable   ? RejectWith::icmp_port_unreachable
                                       : *icmp == IcmpxType::host_unreachable ? RejectWith::icmp_host_unreachable
                                                                              : RejectWith::icmp_admin_prohibited;
                } else {
                    return refuse("expected \"with tcp reset\" or \"with icmpx type ...\"");
                }
            }
            if (i != words.size()) return refuse("words after the action");
            if (auto ok = check_rule(rule); !ok) return refuse(ok.error().message);
            return rule;
        }
    }
    return refuse("no action (accept, drop or reject)");
}

}  // namespace portlab
