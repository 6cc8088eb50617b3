// Event -> sentence (include/portlab/caption.hpp). Each sentence names the facts
// of its event so a reader of the narration never needs the raw line: ports,
// states, errno, the rule, a timer's length. Grammar kept plain: "a TCP SYN", "an
// ICMP message", "a TCP segment carrying 5 bytes"; host names as written.
#include "portlab/caption.hpp"

#include <fmt/format.h>

#include <cctype>
#include <type_traits>
#include <variant>

namespace portlab {

std::string_view to_string(PacketLabel label) noexcept {
    switch (label) {
        case PacketLabel::syn: return "SYN";
        case PacketLabel::syn_ack: return "SYN-ACK";
        case PacketLabel::ack: return "ACK";
        case PacketLabel::data: return "data";
        case PacketLabel::fin: return "FIN";
        case PacketLabel::rst: return "RST";
        case PacketLabel::udp: return "UDP";
        case PacketLabel::icmp_unreachable: return "ICMP unreachable";
        case PacketLabel::icmp: return "ICMP";
        case PacketLabel::other: return "other";
    }
    return "?";
}

PacketLabel label_of(const DecodedPacket& packet) noexcept {
    if (packet.tcp) {
        const std::uint8_t flags = packet.tcp->flags;
        // RST first: it ends the connection whatever else is set (RFC 9293 3.5.2).
        if (flags & tcp_flag::rst) return PacketLabel::rst;
        if ((flags & tcp_flag::syn) && (flags & tcp_flag::ack)) return PacketLabel::syn_ack;
        if (flags & tcp_flag::syn) return PacketLabel::syn;
        if (flags & tcp_flag::fin) return PacketLabel::fin;
        if (packet.payload_length > 0) return PacketLabel::data;
        return PacketLabel::ack;
    }
    if (packet.udp) return PacketLabel::udp;
    if (packet.icmp) {
        // ICMPv4 type 3 (RFC 792) and ICMPv6 type 1 (RFC 4443 3.1) are "destination unreachable".
        const bool v6 = packet.ip_protocol == ip_protocol::icmpv6;
        return packet.icmp->type == (v6 ? 1 : 3) ? PacketLabel::icmp_unreachable : PacketLabel::icmp;
    }
    return PacketLabel::other;
}

namespace {

// ---- words ------------------------------------------------------------------------

// How a host is named in a sentence: a role in lower case takes "the" ("the
// client"), an address is "host 192.0.2.1", and a name that is already a proper
// noun stays as written ("localhost", "Alice").
std::string host_phrase(const std::string& host) {
    if (IpAddress::parse(host)) return "host " + host;
    if (host == "lo") return "the host";
    if (host == "localhost" || std::isupper(static_cast<unsigned char>(host.front()))) return host;
    return "the " + host;
}

std::string possessive(const std::string& host) { return host_phrase(host) + "'s"; }

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
    return std::to_string(count) + " " + std::string(count == 1 ? one : many);
}

// "a" or "an" by the first letter, which is how these words sound ("an ICMP", "a UDP").
std::string with_article(std::string_view word) {
    const char first = static_cast<char>(std::tolower(static_cast<unsigned char>(word.empty() ? 'x' : word.front())));
    const bool vowel_sound = first == 'a' || first == 'e' || first == 'i' || first == 'o' ||
                             (first == 'u' && word.rfind("UDP", 0) != 0);
    return (vowel_sound ? "an " : "a ") + std::string(word);
}

std::string list_of(const std::vector<IpAddress>& addresses) {
    std::string text;
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        if (i > 0) text += i + 1 == addresses.size() ? " and " : ", ";
        text += addresses[i].to_string();
    }
    return text;
}

std::string_view timer_name(trace::TimerKind timer) {
    switch (timer) {
        case trace::TimerKind::retransmission: return "retransmission timer";
        case trace::TimerKind::time_wait: return "TIME-WAIT timer";
        case trace::TimerKind::keepalive: return "keepalive timer";
        case trace::TimerKind::persist: return "persist timer";
        case trace::TimerKind::delayed_ack: return "delayed-ACK timer";
    }
    return "timer";
}

// What running out of each timer means (RFC 9293 3.8.1, 3.6.1, 3.8.4, 3.8.6.1, 3.8.6.3).
std::string_view timer_consequence(trace::TimerKind timer) {
    switch (timer) {
        case trace::TimerKind::retransmission: return "no ACK came in time, so the segment is due to be sent again";
        case trace::TimerKind::time_wait: return "TIME-WAIT is over and the connection's port is free again";
        case trace::TimerKind::keepalive: return "the connection was idle, so a keepalive probe is due";
        case trace::TimerKind::persist: return "the peer's window is still zero, so a window probe is due";
        case trace::TimerKind::delayed_ack: return "the ACK it held back is due now";
    }
    return "";
}

std::string_view evidence_suffix(trace::Evidence evidence) {
    switch (evidence) {
        case trace::Evidence::model: return "";
        case trace::Evidence::observed: return " (observed from the kernel)";
        case trace::Evidence::inferred: return " (inferred from a call that returned, not observed)";
    }
    return "";
}

std::string drop_reason(const trace::Packet& packet) {
    const auto rule_text = [&](std::string_view otherwise) {
        return packet.rule ? " (" + *packet.rule + ")" : std::string(otherwise);
    };
    if (!packet.cause) return " (" + packet.rule.value_or("no rule given") + ")";
    switch (*packet.cause) {
        case trace::DropCause::firewall:
            return ": firewall rule " + packet.rule_id.value_or("(unnamed)") + rule_text("") + " stopped it";
        case trace::DropCause::link: return ": it was lost on the link, not stopped by any rule";  // lost_on_link says it whole
        case trace::DropCause::no_socket: return ": no socket had its destination port" + rule_text("");
        case trace::DropCause::checksum: return ": its checksum was wrong" + rule_text("");
        case trace::DropCause::no_route: return ": there was no route to its destination" + rule_text("");
        case trace::DropCause::other: return rule_text(" (no reason given)");
        case trace::DropCause::ttl_exceeded: return ": its TTL ran out on the way" + rule_text("");
        case trace::DropCause::ct_state:
            return ": its stateful firewall lets no new connection through from there" + rule_text("");
    }
    return {};
}

// A link loss is nobody's drop: no host and no rule stopped the packet, the wire lost it.
// "A UDP datagram from ... was lost on the link from the client to the server, not
// stopped by any rule."
std::string lost_on_link(const std::string& what, const trace::Packet& packet) {
    const std::string between = packet.from_host && packet.to_host
                                    ? " from " + host_phrase(*packet.from_host) + " to " + host_phrase(*packet.to_host)
                                    : "";
    return what + " was lost on the link" + between + ", not stopped by any rule";
}

// "drops TCP packets to port 22", "answers UDP packets to port 53 with ICMP port unreachable".
std::string rule_phrase(const FirewallRule& rule) {
    auto text = nft_text(rule);
    const std::string nft = text ? "\"" + *text + "\"" : "(a rule nft would refuse: " + text.error().message + ")";
    switch (rule.action) {
        case FirewallAction::accept: return nft + ", which lets matching packets in";
        case FirewallAction::drop: return nft + ", which drops matching packets without a word";
        case FirewallAction::reject:
            return nft + (rule.reject_with == RejectWith::tcp_reset ? ", which answers matching packets with a TCP RST"
                                                                    : ", which answers matching packets with an ICMP error");
    }
    return nft;
}

std::string_view scan_name(scan::ScanType type) {
    switch (type) {
        case scan::ScanType::connect: return "connect";
        case scan::ScanType::syn: return "SYN";
        case scan::ScanType::ack: return "ACK";
        case scan::ScanType::udp: return "UDP";
    }
    return "?";
}

// What each state tells the person who scanned (nmap's book, "port scanning basics").
std::string_view scan_meaning(const trace::ScanResult& result) {
    switch (result.state) {
        case scan::PortState::open: return "a program is listening there";
        case scan::PortState::closed: return "the host answered, and nothing listens there";
        case scan::PortState::filtered: return "something in between stopped the probe, so the scanner cannot tell";
        case scan::PortState::unfiltered: return "probes reach the port, but an ACK scan cannot say if it is open";
        case scan::PortState::open_filtered: return "no answer came: open or filtered, the scanner cannot tell which";
        case scan::PortState::closed_filtered: return "closed or filtered, the scanner cannot tell which";
    }
    return "";
}

// "a TCP SYN from 10.0.0.1:40000 to 10.0.0.2:80", "an ICMP message ...".
std::string packet_phrase(const DecodedPacket& decoded) {
    const PacketLabel label = label_of(decoded);
    const auto source = decoded.source();
    const auto destination = decoded.destination();
    const std::string between = source && destination
                                    ? "from " + source->to_string() + " to " + destination->to_string()
                                    : "from " + decoded.ip.source.to_string() + " to " + decoded.ip.destination.to_string();
    const std::string icmp = decoded.ip_protocol == ip_protocol::icmpv6 ? "ICMPv6" : "ICMP";
    switch (label) {
        case PacketLabel::syn:
        case PacketLabel::syn_ack:
        case PacketLabel::ack:
        case PacketLabel::fin:
        case PacketLabel::rst: return "a TCP " + std::string(to_string(label)) + " " + between;
        case PacketLabel::data:
            return "a TCP segment " + between + " carrying " + plural(decoded.payload_length, "byte", "bytes");
        case PacketLabel::udp:
            return "a UDP datagram " + between + " carrying " + plural(decoded.payload_length, "byte", "bytes");
        case PacketLabel::icmp_unreachable:
        case PacketLabel::icmp:
            return with_article(icmp) + " message " + between +
                   (decoded.icmp && !decoded.icmp->description.empty() ? " (" + decoded.icmp->description + ")" : "");
        case PacketLabel::other: break;
    }
    return "a packet " + between;
}

struct Captioner {
    const trace::Event& event;
    const ServiceTable* services;

    std::string host() const { return host_phrase(event.host); }
    std::string socket_of(trace::SocketId id) const { return possessive(event.host) + " socket " + std::to_string(id.value); }
    std::string service_suffix(Port port, Protocol protocol) const {
        if (services == nullptr) return {};
        if (const auto* entry = services->find_by_port(port, protocol)) return " (" + entry->name + ")";
        return {};
    }

    std::string operator()(const trace::HostAdded& b) const {
        std::string text = host() + " joins";
        if (!b.role.empty() && b.role != event.host) text += " as " + with_article(b.role);
        if (b.addresses.size() == 1) text += ", with address " + list_of(b.addresses);
        if (b.addresses.size() > 1) text += ", with addresses " + list_of(b.addresses);
        return text;
    }
    std::string operator()(const trace::SocketCreated& b) const {
        return fmt::format("{} created {} socket, socket {} ({}); it has no port yet", host(),
                           with_article(b.protocol == Protocol::tcp ? "TCP" : "UDP"), b.socket.value,
                           b.family == IpFamily::v4 ? "IPv4" : "IPv6");
    }
    std::string operator()(const trace::Bound& b) const {
        const std::string note = b.note ? "; " + *b.note : "";
        switch (b.how) {
            case trace::BindHow::explicit_port:
                return fmt::format("{} bound socket {} to {}, the port it asked for{}", host(), b.socket.value,
                                   b.endpoint.to_string(), note);
            case trace::BindHow::ephemeral:
                return fmt::format("{} is now bound to {}, a port the OS picked for it{}", socket_of(b.socket),
                                   b.endpoint.to_string(), note);
            case trace::BindHow::bind_zero:
                return fmt::format("{} called bind() with port 0, so the OS picked: socket {} is bound to {}{}", host(),
                                   b.socket.value, b.endpoint.to_string(), note);
        }
        return {};
    }
    std::string operator()(const trace::Listening& b) const {
        return fmt::format("{} is listening (backlog {}): connections to its port can now be accepted",
                           socket_of(b.socket), b.backlog);
    }
    std::string operator()(const trace::ConnectStarted& b) const {
        return fmt::format("{} called connect() on socket {} to {}{}", host(), b.socket.value, b.remote.to_string(),
                           service_suffix(b.remote.port, Protocol::tcp));
    }
    std::string operator()(const trace::EphemeralAssigned& b) const {
        std::string how = b.algorithm;
        if (b.parity) how += b.parity == trace::Parity::even ? ", even" : ", odd";
        return fmt::format("{} OS assigned ephemeral port {} to socket {}, from {}-{} ({})", possessive(event.host),
                           b.port, b.socket.value, b.range_low, b.range_high, how);
    }
    std::string operator()(const trace::ChildCreated& b) const {
        return fmt::format("A connection for {} arrived at {}: its kernel made socket {} for it, SYN-RECEIVED, "
                           "before any program asked (it waits for accept() once the handshake is done)",
                           b.four_tuple.to_string(), socket_of(b.listener), b.socket.value);
    }
    std::string operator()(const trace::Accepted& b) const {
        return fmt::format("{} accepted a connection on socket {}: new socket {} for {}, sharing port {} with the "
                           "listener",
                           host(), b.listener.value, b.socket.value, b.four_tuple.to_string(), b.four_tuple.local.port);
    }
    std::string operator()(const trace::StateChanged& b) const {
        const std::string cause = b.cause.empty() ? "" : ": " + b.cause;
        return fmt::format("{} went from {} to {}{}{}", socket_of(b.socket), to_string(b.from), to_string(b.to), cause,
                           evidence_suffix(b.evidence));
    }
    std::string operator()(const trace::TimerArmed& b) const {
        std::string text = fmt::format("{} armed the {} of socket {} for {}", host(), timer_name(b.timer), b.socket.value,
                                       duration_text(b.duration_us));
        if (b.attempt > 0) text += fmt::format(", after retransmission {}", b.attempt);
        if (b.timer == trace::TimerKind::time_wait) text += ": the port stays taken until it fires";
        return text;
    }
    std::string operator()(const trace::TimerFired& b) const {
        return fmt::format("The {} of {} fired: {}", timer_name(b.timer), socket_of(b.socket), timer_consequence(b.timer));
    }
    std::string operator()(const trace::TimerStopped& b) const {
        return fmt::format("{} stopped the {} of socket {} before it fired", host(), timer_name(b.timer), b.socket.value);
    }
    std::string operator()(const trace::Packet& b) const {
        const auto decoded = decode_frame(b.link, b.bytes);
        if (!decoded) return fmt::format("{} saw a packet that does not decode: {}", host(), decoded.error().message);
        const std::string what = packet_phrase(*decoded);
        switch (b.kind) {
            case trace::PacketKind::sent: return fmt::format("{} sent {}", host(), what);
            case trace::PacketKind::delivered: return fmt::format("{} received {}", host(), what);
            case trace::PacketKind::dropped:
                if (b.cause == trace::DropCause::link) return lost_on_link(what, b);
                return fmt::format("{} dropped {}{}", host(), what, drop_reason(b));
        }
        return {};
    }
    std::string operator()(const trace::CallFailed& b) const {
        const std::string on = b.socket ? " on socket " + std::to_string(b.socket->value) : "";
        const std::string to = b.endpoint ? " to " + b.endpoint->to_string() : "";
        return fmt::format("{} {}(){}{} failed with {}: {}", possessive(event.host), b.call, on, to, b.errno_name, b.message);
    }
    std::string operator()(const trace::Closed& b) const {
        return fmt::format("{} closed socket {}", host(), b.socket.value);
    }
    std::string operator()(const trace::Note& b) const { return b.text; }
    std::string operator()(const trace::RuleAdded& b) const {
        return fmt::format("{} added firewall rule {} to its {} chain: {}", host(), b.rule_id, to_string(b.rule->chain), rule_phrase(*b.rule));
    }
    std::string operator()(const trace::RuleRemoved& b) const {
        return fmt::format("{} removed firewall rule {}", host(), b.rule_id);
    }
    std::string operator()(const trace::ScanProbe& b) const {
        const auto protocol = scan::protocol_of(b.scan);
        std::string text = fmt::format("{} sent {} scan probe ({}) to {}{}", host(), with_article(scan_name(b.scan)),
                                       scan::nmap_option(b.scan), b.target.to_string(),
                                       service_suffix(b.target.port, protocol));
        if (b.attempt > 0) text += fmt::format(", retransmission {}", b.attempt);
        return text;
    }
    std::string operator()(const trace::ScanResult& b) const {
        return fmt::format("{} port {}/{}{} is {} ({}): {}", possessive_target(b.target), b.target.port,
                           to_string(scan::protocol_of(b.scan)), service_suffix(b.target.port, scan::protocol_of(b.scan)),
                           scan::to_string(b.state), scan::to_string(b.reason), scan_meaning(b));
    }
    // "The router translated a TCP connection's source (masquerade): 192.0.2.10:50000 ->
    // 198.51.100.2:80 leaves as 198.51.100.1:50001 -> 198.51.100.2:80, and replies are translated back."
    std::string operator()(const trace::NatTranslated& b) const {
        const auto flow = [](const trace::Flow& f) { return f.source.to_string() + " -> " + f.destination.to_string(); };
        // "The router tracked a new TCP connection (stateful firewall, no translation): ..."
        if (b.kind == trace::NatKind::track)
            return fmt::format("{} tracked a new {} connection (stateful firewall, no translation): {}; its replies now pass as established",
                               host(), b.protocol == Protocol::tcp ? "TCP" : "UDP", flow(b.flows->before));
        return fmt::format("{} translated {} connection's {} ({}): {} leaves as {}, and replies are translated back",
                           host(), with_article(b.protocol == Protocol::tcp ? "TCP" : "UDP"), b.kind == trace::NatKind::snat ? "source" : "destination",
                           b.kind == trace::NatKind::snat ? "masquerade" : "port forwarding", flow(b.flows->before),
                           flow(b.flows->after));
    }
    std::string possessive_target(const Endpoint& target) const { return "Host " + target.address.to_string() + "'s"; }
};

// A capital for a sentence that starts with a common word ("the client", "host
// 10.0.0.1"), never for one that starts with a name as written ("localhost").
std::string as_sentence(std::string text, bool capitalise) {
    if (capitalise && !text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
    if (!text.empty() && text.back() != '.' && text.back() != '!' && text.back() != '?') text += '.';
    return text;
}

// "60.031" from 60031 thousandths: the whole part, then the fraction without trailing zeros.
std::string trimmed_decimal(std::uint64_t value, std::uint64_t per_unit, int digits) {
    std::string text = fmt::format("{}.{:0{}}", value / per_unit, value % per_unit, digits);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
}

}  // namespace

std::string duration_text(std::uint64_t us) {
    if (us == 0) return "0 s";
    if (us >= 1000000) return trimmed_decimal(us, 1000000, 6) + " s";
    if (us >= 1000) return trimmed_decimal(us, 1000, 3) + " ms";
    return fmt::format("{} µs", us);
}

std::string caption(const trace::Event& event, const ServiceTable* services) {
    std::string text = std::visit(Captioner{event, services}, event.body);
    // A note is left as its writer wrote it: "sshd listens ..." names a program,
    // which a capital would misspell ("Sshd").
    const bool is_note = std::holds_alternative<trace::Note>(event.body);
    const bool starts_with_a_name = !event.host.empty() && text.rfind(event.host, 0) == 0;
    return as_sentence(std::move(text), !is_note && !starts_with_a_name);
}

}  // namespace portlab
