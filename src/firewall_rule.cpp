#include "portlab/firewall_rule.hpp"

#include <algorithm>
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

// nft's names for the TCP flag bits (payload-expression.c, tcp_flag_type), in bit order.
constexpr std::array<Spelling<std::uint8_t>, 8> tcp_flag_spellings{{{tcp_flag::fin, "fin"},
                                                                   {tcp_flag::syn, "syn"},
                                                                   {tcp_flag::rst, "rst"},
                                                                   {tcp_flag::psh, "psh"},
                                                                   {tcp_flag::ack, "ack"},
                                                                   {tcp_flag::urg, "urg"},
                                                                   {tcp_flag::ece, "ecn"},
                                                                   {tcp_flag::cwr, "cwr"}}};

// "syn | ack" (or "0"), the bits in nft's order.
std::string flags_text(std::uint8_t bits) {
    std::string text;
    for (const auto& flag : tcp_flag_spellings)
        if ((bits & flag.value) != 0) text += (text.empty() ? "" : " | ") + std::string(flag.text);
    return text.empty() ? "0" : text;
}

// Flag names joined by '|' or ',' with blanks and parentheses anywhere ("(syn | ack)",
// "syn,ack"), or a number ("0", "0x12").
Result<std::uint8_t> parse_flags(std::string_view text) {
    std::string names;
    for (const char c : text)
        if (c != '(' && c != ')' && c != ' ') names += c == ',' ? '|' : c;
    if (!names.empty() && names[0] >= '0' && names[0] <= '9') {
        const bool hex = names.starts_with("0x");
        std::uint32_t value = 0;
        for (const char c : std::string_view(names).substr(hex ? 2 : 0)) {
            const int digit = c >= '0' && c <= '9' ? c - '0' : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0 || (value = value * (hex ? 16 : 10) + static_cast<std::uint32_t>(digit)) > 0xFF)
                return fail("tcp flags \"" + std::string(text) + "\" is no flag value");
        }
        return static_cast<std::uint8_t>(value);
    }
    std::uint8_t bits = 0;
    for (const auto name : text::split_on(names, '|')) {
        const auto flag = parse_spelling(tcp_flag_spellings, name, "tcp flag");
        if (!flag) return flag.error();
        bits = static_cast<std::uint8_t>(bits | *flag);
    }
    return bits;
}

// The kernel's name limit (IFNAMSIZ 16 with its NUL) and what a quoted nft string can hold.
Result<void> check_interface(const std::optional<std::string>& name) {
    if (!name) return {};
    if (name->empty() || name->size() > 15) return fail("an interface name has 1 to 15 characters (IFNAMSIZ), not \"" + *name + "\"");
    for (const char c : *name)
        if (c <= ' ' || c == '"' || c == '\\' || c > '~') return fail("an interface name has no blanks or quotes: \"" + *name + "\"");
    return {};
}

}  // namespace

constexpr std::array<Spelling<FirewallChain>, 2> chain_spellings{{{FirewallChain::input, "input"}, {FirewallChain::forward, "forward"}}};
constexpr std::array<Spelling<CtState>, 4> ct_state_spellings{{{CtState::invalid, "invalid"},
                                                               {CtState::established, "established"},
                                                               {CtState::related, "related"},
                                                               {CtState::new_connection, "new"}}};

std::string_view to_string(FirewallChain chain) noexcept { return spelling_of(chain_spellings, chain); }

Result<FirewallChain> parse_firewall_chain(std::string_view text) { return parse_spelling(chain_spellings, text, "chain"); }

std::string_view to_string(CtState state) noexcept { return spelling_of(ct_state_spellings, state); }

std::string to_string(CtStates states) {
    std::string text;
    for (const auto& state : ct_state_spellings)
        if (states.contains(state.value)) text += (text.empty() ? "" : ",") + std::string(state.text);
    return text;
}

Result<CtStates> parse_ct_states(std::string_view text) {
    CtStates states;
    for (const auto name : text::split_on(text, ',')) {
        const auto state = parse_spelling(ct_state_spellings, name, "ct state");
        if (!state) return state.error();
        if (states.contains(*state)) return fail("ct state \"" + std::string(name) + "\" twice");
        states = states.with(*state);
    }
    return states;
}

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
    if (auto ok = check_interface(rule.in_interface); !ok) return ok;
    if (rule.ct_states && rule.ct_states->bits == 0) return fail("a ct state match needs at least one state");
    if (rule.ct_states && (rule.ct_states->bits & ~0x0F) != 0) return fail("ct state holds new, established, related, invalid only");
    if (rule.tcp_flags) {
        if (rule.protocol != Protocol::tcp) return fail("a tcp flags match needs a TCP rule");
        if (rule.tcp_flags->mask == 0) return fail("a tcp flags match needs at least one flag in its mask");
        if ((rule.tcp_flags->value & ~rule.tcp_flags->mask) != 0)
            return fail("tcp flags & (" + flags_text(rule.tcp_flags->mask) + ") can never equal " + flags_text(rule.tcp_flags->value));
    }
    return {};
}

Result<std::string> nft_text(const FirewallRule& rule) {
    if (auto ok = check_rule(rule); !ok) return ok.error();
    std::vector<std::string> words;
    if (rule.in_interface) words.push_back("iifname \"" + *rule.in_interface + "\"");
    if (rule.ct_states) words.push_back("ct state " + to_string(*rule.ct_states));
    if (rule.source) words.push_back(std::string(ip_keyword(*rule.source)) + " saddr " + rule.source->to_string());
    if (rule.destination)
        words.push_back(std::string(ip_keyword(*rule.destination)) + " daddr " + rule.destination->to_string());
    if (rule.protocol) {
        const std::string protocol(to_string(*rule.protocol));
        if (rule.source_ports) words.push_back(protocol + " sport " + ports_text(*rule.source_ports));
        if (rule.destination_ports) words.push_back(protocol + " dport " + ports_text(*rule.destination_ports));
        // `tcp flags` says TCP by itself (nft adds the l4proto dependency).
        if (!rule.source_ports && !rule.destination_ports && !rule.tcp_flags) words.push_back("meta l4proto " + protocol);
    }
    if (rule.tcp_flags) {
        const std::string mask = flags_text(rule.tcp_flags->mask);
        const std::string value = flags_text(rule.tcp_flags->value);
        const auto grouped = [](const std::string& flags) { return flags.find('|') == std::string::npos ? flags : "(" + flags + ")"; };
        words.push_back("tcp flags & " + grouped(mask) + " == " + grouped(value));
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

Result<FirewallRule> parse_nft_rule(std::string_view text, FirewallChain chain) {
    const auto words = text::split_words(text);
    const auto refuse = [&](const std::string& why) {
        return fail("cannot read firewall rule \"" + std::string(text) + "\": " + why);
    };
    FirewallRule rule;
    rule.chain = chain;
    std::size_t i = 0;
    const auto next = [&]() -> std::string_view { return i < words.size() ? words[i++] : std::string_view{}; };
    // A flags expression's words up to the next match: "(syn", "|", "ack)" or "syn,ack".
    const auto flag_words = [&] {
        std::string joined(next());
        while (i < words.size() && (words[i] == "|" || joined.ends_with('|') ||
                                    std::count(joined.begin(), joined.end(), '(') > std::count(joined.begin(), joined.end(), ')')))
            joined += " " + std::string(next());
        return joined;
    };
    const auto read_tcp_flags = [&]() -> Result<TcpFlagsMatch> {
        const std::string_view first = next();
        if (first == "&") {  // "& (syn | ack) == syn", as nft_text writes it
            std::string mask;
            while (i < words.size() && words[i] != "==") mask += " " + std::string(next());
            if (next() != "==") return fail("expected \"==\" after tcp flags & MASK");
            const auto m = parse_flags(mask);
            if (!m) return m.error();
            const auto v = parse_flags(flag_words());
            if (!v) return v.error();
            return TcpFlagsMatch{*m, *v};
        }
        if (first == "!") {  // "! syn,ack": none of them, as nft lists "& (syn | ack) == 0"
            const auto m = parse_flags(flag_words());
            if (!m) return m.error();
            return TcpFlagsMatch{*m, 0};
        }
        if (first == "==") {  // "== 0x12": the whole byte
            const auto v = parse_flags(flag_words());
            if (!v) return v.error();
            return TcpFlagsMatch{0xFF, *v};
        }
        // "syn / syn,ack": value / mask, as nft lists "& (syn | ack) == syn"
        const auto v = parse_flags(first);
        if (!v) return v.error();
        if (next() != "/") return fail("expected \"tcp flags & MASK == VALUE\" or \"tcp flags VALUE / MASK\"");
        const auto m = parse_flags(flag_words());
        if (!m) return m.error();
        return TcpFlagsMatch{*m, *v};
    };
    while (i < words.size()) {
        const std::string_view word = next();
        if (word == "iifname") {
            std::string_view name = next();
            if (name.size() < 2 || !name.starts_with('"') || !name.ends_with('"')) return refuse("expected iifname \"NAME\"");
            if (rule.in_interface) return refuse("two iifname matches in one rule");
            rule.in_interface = std::string(name.substr(1, name.size() - 2));
        } else if (word == "ct") {
            if (next() != "state") return refuse("only \"ct state\" is understood");
            if (rule.ct_states) return refuse("two ct state matches in one rule");
            const auto states = parse_ct_states(next());
            if (!states) return refuse(states.error().message);
            rule.ct_states = *states;
        } else if (word == "tcp" && i < words.size() && words[i] == "flags") {
            ++i;
            if (rule.protocol && *rule.protocol != Protocol::tcp) return refuse("two protocols in one rule");
            if (rule.tcp_flags) return refuse("two tcp flags matches in one rule");
            rule.protocol = Protocol::tcp;
            const auto flags = read_tcp_flags();
            if (!flags) return refuse(flags.error().message);
            rule.tcp_flags = *flags;
        } else if (word == "ip" || word == "ip6") {
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
