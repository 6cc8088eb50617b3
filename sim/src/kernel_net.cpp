// Packets on the wire: building them as real bytes, links (delay, loss), the input
// firewall, UDP and ICMP input, and the scanner.
#include <algorithm>
#include <cerrno>

#include "portlab/sim/kernel.hpp"

namespace portlab::sim {

namespace {

// ICMP codes: IPv4 (RFC 792) and IPv6 (RFC 4443 3.1) differ.
std::uint8_t port_unreachable_code(IpFamily family) {
    return icmpx_unreachable(IcmpxType::port_unreachable, family).code;
}

// A packet the input chain stopped, as the trace tells it: cause firewall, the rule's id
// ("r2", or "policy" when no rule matched) and its text ("tcp dport 22 drop").
void mark_firewall_drop(trace::Packet& event, const Firewall& firewall, const FirewallVerdict& verdict) {
    event.kind = trace::PacketKind::dropped;
    event.cause = trace::DropCause::firewall;
    if (!verdict.rule_index) {
        event.rule_id = std::string(policy_rule_id);
        event.rule = "policy " + std::string(to_string(firewall.policy));
        return;
    }
    const NamedRule& named = firewall.input[*verdict.rule_index];
    const auto text = nft_text(named.rule);
    event.rule_id = named.id;
    event.rule = text ? *text : text.error().message;
}

PacketMatch match_of(const Wire& packet) {
    PacketMatch match{std::nullopt, packet.ip.source, packet.ip.destination, 0, 0};
    if (const auto* tcp = std::get_if<TcpBody>(&packet.body)) {
        match.protocol = Protocol::tcp;
        match.source_port = tcp->header.source_port;
        match.destination_port = tcp->header.destination_port;
    } else if (const auto* udp = std::get_if<UdpBody>(&packet.body)) {
        match.protocol = Protocol::udp;
        match.source_port = udp->header.source_port;
        match.destination_port = udp->header.destination_port;
    }
    return match;
}

}  // namespace

// ---- building packets --------------------------------------------------------------

IpHeader Kernel::ip_header(HostId h, const IpAddress& from, const IpAddress& to) {
    IpHeader ip;
    ip.source = from;
    ip.destination = to;
    ip.identification = host_of(h).next_ip_id++;
    return ip;
}

std::optional<Wire> Kernel::make_tcp(HostId h, const Endpoint& from, const Endpoint& to, const TcpHeader& header,
                                     const Bytes& payload) {
    Wire wire{ip_header(h, from.address, to.address), TcpBody{header, payload}, {}};
    auto bytes = encode_tcp(wire.ip, header, payload);
    if (!bytes) {
        note(h, "could not encode a TCP segment: " + bytes.error().message);
        return std::nullopt;
    }
    wire.bytes = std::move(bytes.value());
    return wire;
}

std::optional<Wire> Kernel::make_udp(HostId h, const Endpoint& from, const Endpoint& to, const Bytes& payload,
                                     std::uint8_t ttl) {
    const UdpHeader header{from.port, to.port};
    Wire wire{ip_header(h, from.address, to.address), UdpBody{header, payload}, {}};
    wire.ip.ttl = ttl;
    auto bytes = encode_udp(wire.ip, header, payload);
    if (!bytes) {
        note(h, "could not encode a UDP datagram: " + bytes.error().message);
        return std::nullopt;
    }
    wire.bytes = std::move(bytes.value());
    return wire;
}

std::optional<Wire> Kernel::make_icmp_unreachable(HostId h, const Wire& offending, std::uint8_t code) {
    return make_icmp(h, offending, IcmpKind::unreachable, code);
}

std::optional<Wire> Kernel::make_icmp_time_exceeded(HostId h, const Wire& offending) {
    return make_icmp(h, offending, IcmpKind::time_exceeded, 0);
}

// An ICMP error about `offending`, sent back to its source. From the address the packet was
// sent to when that is this host's; a router answering for a packet it was forwarding
// uses its own address toward the sender (icmp_send's source, the route back).
std::optional<Wire> Kernel::make_icmp(HostId h, const Wire& offending, IcmpKind kind, std::uint8_t code) {
    IcmpBody body;
    body.kind = kind;
    body.code = code;
    body.quoted_ip = offending.ip;
    const PacketMatch quoted = match_of(offending);
    body.quoted_protocol = quoted.protocol == Protocol::tcp ? ip_protocol::tcp : ip_protocol::udp;
    body.quoted_source_port = quoted.source_port;
    body.quoted_destination_port = quoted.destination_port;
    const Host& host = host_of(h);
    const IpAddress from = is_local_address(host, offending.ip.destination)
                               ? offending.ip.destination
                               : source_address_for(host, offending.ip.source, offending.ip.family());
    Wire wire{ip_header(h, from, offending.ip.source), body, {}};
    auto bytes = kind == IcmpKind::unreachable ? encode_icmp_unreachable(wire.ip, code, offending.bytes)
                                               : encode_icmp_time_exceeded(wire.ip, offending.bytes);
    if (!bytes) {
        note(h, "could not encode an ICMP error: " + bytes.error().message);
        return std::nullopt;
    }
    wire.bytes = std::move(bytes.value());
    return wire;
}

// ---- the wire ------------------------------------------------------------------------

void Kernel::transmit(HostId from, Wire packet) {
    const auto to = next_hop(from, packet.ip.destination);
    const auto event = [&](trace::PacketKind kind, std::optional<trace::DropCause> cause, std::optional<std::string> rule) {
        if (recorder == nullptr) return;  // building the event copies the bytes: only when recording
        trace::Packet body{kind, packet.bytes, LinkType::raw, std::move(rule), host_of(from).name, std::nullopt, cause};
        if (to) body.to_host = host_of(*to).name;
        record(from, std::move(body));
    };
    event(trace::PacketKind::sent, std::nullopt, std::nullopt);
    if (!to) {
        if (recording())
            event(trace::PacketKind::dropped, trace::DropCause::no_route, "no route to host " + packet.ip.destination.to_string());
        return;
    }
    const LinkConfig& link = world.link(from, *to);
    const auto key = std::minmax(from.value, to->value);
    const std::uint64_t number = ++world.packets_on_link[{key.first, key.second}];
    const bool scripted = std::find(link.lose_packets.begin(), link.lose_packets.end(), number) != link.lose_packets.end();
    if (scripted || (link.loss > 0.0 && world.rng.unit() < link.loss)) {
        // A loss on the wire, no rule's doing: cause "link", and no `rule` (that field
        // names firewall rules to people), so no viewer can count it as a firewall drop.
        if (recording()) event(trace::PacketKind::dropped, trace::DropCause::link, std::nullopt);
        return;
    }
    world.queue.schedule_at(world.now + link.delay, Arrival{from, *to, Boxed<Wire>(std::move(packet))});
}

void Kernel::on_arrival(Arrival& arrival) {
    const HostId h = arrival.to;
    if (arrival.from != h && host_of(h).routing.forwarding && router_input(h, arrival.from, *arrival.packet)) return;
    const Wire& packet = *arrival.packet;
    trace::Packet event{trace::PacketKind::delivered, packet.bytes, LinkType::raw, std::nullopt,
                        host_of(arrival.from).name, host_of(h).name};
    // Loopback traffic never meets the input chain's port rules in this model.
    if (arrival.from != h) {
        const FirewallVerdict verdict = evaluate(host_of(h).firewall, match_of(packet));
        if (verdict.action != FirewallAction::accept) {
            mark_firewall_drop(event, host_of(h).firewall, verdict);
            record(h, std::move(event));
            if (verdict.action == FirewallAction::reject) reject(h, packet, verdict.reject_with);
            return;
        }
    }
    std::string why;
    if (listen_queue_full(h, packet, why)) {
        event.kind = trace::PacketKind::dropped;
        event.cause = trace::DropCause::other;  // Linux counts it as ListenDrops (nstat), no rule
        event.rule = why;
        record(h, std::move(event));
        return;
    }
    record(h, std::move(event));
    observe_for_scanner(h, packet);
    if (std::holds_alternative<TcpBody>(packet.body)) tcp_input(h, packet);
    else if (std::holds_alternative<UdpBody>(packet.body)) udp_input(h, packet);
    else icmp_input(h, packet);
    settle_connect_probes(h);
}

// The firewall's answer for a rejected packet, as nft_reject sends it: a TCP RST, or an
// ICMP error of the rule's icmpx type (plain "reject": port unreachable, TCP included);
// never an ICMP error about an ICMP error (RFC 1122 3.2.2).
bool Kernel::reject(HostId h, const Wire& packet, RejectWith with) {
    if (std::holds_alternative<IcmpBody>(packet.body)) return false;
    if (with == RejectWith::tcp_reset) {
        if (!std::holds_alternative<TcpBody>(packet.body)) return false;  // nft refuses such a rule
        send_reset_for(h, packet);
        return true;
    }
    const IcmpxType type = icmpx_type(with).value_or(IcmpxType::port_unreachable);
    const std::uint8_t code = icmpx_unreachable(type, packet.ip.family()).code;
    if (auto icmp = make_icmp_unreachable(h, packet, code)) transmit(h, std::move(*icmp));
    return true;
}

// ---- UDP and ICMP --------------------------------------------------------------------

void Kernel::udp_input(HostId h, const Wire& packet) {
    const auto& udp = std::get<UdpBody>(packet.body);
    const Endpoint local{packet.ip.destination, udp.header.destination_port};
    const Endpoint remote{packet.ip.source, udp.header.source_port};
    const auto id = find_udp_socket(h, local, remote);
    if (!id) {
        // RFC 1122 3.2.2.1 / 4.1.3.1: a datagram for a port nobody has bound is answered
        // with ICMP port unreachable.
        if (auto icmp = make_icmp_unreachable(h, packet, port_unreachable_code(packet.ip.family())))
            transmit(h, std::move(*icmp));
        return;
    }
    Socket* s = find(h, *id);
    s->inbox.push_back(Datagram{remote, udp.payload});
    if (s->auto_reply && s->local) {
        // The "application" answers at once: a service such as DNS on the scanned port.
        const Bytes reply = *s->auto_reply;
        s->inbox.pop_back();
        if (auto wire = make_udp(h, local, remote, reply)) transmit(h, std::move(*wire));
    }
}

// ICMP errors reach the socket that sent the quoted packet (RFC 1122 4.1.3.3 for UDP,
// 4.2.3.9 for TCP), turned into an errno as Linux does (portlab/icmp.hpp kernel_error:
// port unreachable -> ECONNREFUSED, admin-prohibited -> EHOSTUNREACH, ...). A connected
// UDP socket reports only hard errors (__udp4_lib_err); a TCP connect in SYN-SENT ends on
// every destination unreachable the model sends, hard or soft (tcp_v4_err sets sk_err and
// calls tcp_done() in SYN-SENT without looking at icmp_err_convert's "fatal").
void Kernel::icmp_input(HostId h, const Wire& packet) {
    const auto& icmp = std::get<IcmpBody>(packet.body);
    const Endpoint local{icmp.quoted_ip.source, icmp.quoted_source_port};
    const Endpoint remote{icmp.quoted_ip.destination, icmp.quoted_destination_port};
    // Time exceeded is a soft error, EHOSTUNREACH (icmp_err_convert has no entry for it;
    // udp_err and tcp_v4_err set EHOSTUNREACH): a connected UDP socket is not told
    // (IP_RECVERR's error queue would be), a TCP connect in SYN-SENT ends with it.
    const KernelIcmpError kernel = icmp.kind == IcmpKind::time_exceeded
                                       ? KernelIcmpError{EHOSTUNREACH, false}
                                       : kernel_error(IcmpUnreachable{packet.ip.family(), icmp.code});
    const auto error = errno_from_value(kernel.error);
    if (!error) return;
    if (icmp.quoted_protocol == ip_protocol::udp) {
        const auto id = find_udp_socket(h, local, remote);
        if (!id || !kernel.fatal) return;
        Socket* s = find(h, *id);
        if (s->remote && *s->remote == remote) s->error = *error;
        return;
    }
    const auto found = host_of(h).find_connection(Protocol::tcp, FourTuple{local, remote});
    if (!found) return;
    Socket* s = find(h, *found);
    if (s->state == TcpState::syn_sent)
        connection_closed(h, *s,
                          icmp.kind == IcmpKind::time_exceeded
                              ? std::string("ICMP time exceeded received")
                              : "ICMP destination unreachable (code " + std::to_string(icmp.code) + ") received",
                          *error, "connect");
}

// ---- the scanner --------------------------------------------------------------------

void Kernel::start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports) {
    if (scanner.value >= world.hosts.size()) return;
    const IpAddress source = source_address_for(host_of(scanner), target, target.family());
    // nmap's raw scans use one source port for the whole scan.
    const Port source_port = static_cast<Port>(40000 + world.rng.below(20000));
    note(scanner, "nmap " + std::string(scan::nmap_option(type)) + " " + target.to_string() + ": " +
                      std::to_string(ports.size()) + " port(s)");
    for (const Port port : ports) {
        Probe probe;
        probe.scanner = scanner;
        probe.type = type;
        probe.source = Endpoint{source, source_port};
        probe.target = Endpoint{target, port};
        world.probes.push_back(probe);
        send_probe(static_cast<std::uint32_t>(world.probes.size() - 1));
    }
}

void Kernel::send_probe(std::uint32_t index) {
    Probe& probe = world.probes[index];
    const HostId h = probe.scanner;
    ++probe.tries;
    Time timeout = 1 * seconds;
    switch (probe.type) {
        case scan::ScanType::connect: {
            // A full connect() through the scanner host's own stack (nmap -sT), on a socket
            // with SO_LINGER {1, 0} as nmap's init_socket() sets it: its close() is an RST.
            const auto s = socket(h, Protocol::tcp, probe.target.address.family());
            if (!s) return;
            (void)set_linger_zero(*s, true);
            world.probes[index].socket = s->id;
            record(h, trace::ScanProbe{probe.type, probe.target, probe.tries - 1, s->id});
            (void)connect(*s, world.probes[index].target);
            timeout = 3 * seconds;  // leaves room for the kernel's own SYN retransmission
            break;
        }
        case scan::ScanType::syn:
        case scan::ScanType::ack: {
            record(h, trace::ScanProbe{probe.type, probe.target, probe.tries - 1});
            TcpHeader header;
            header.source_port = probe.source.port;
            header.destination_port = probe.target.port;
            header.sequence = static_cast<std::uint32_t>(world.rng.next());
            header.window = 1024;  // what nmap's probes carry
            if (probe.type == scan::ScanType::syn) {
                header.flags = tcp_flag::syn;
                header.options.mss = 1460;
            } else {
                header.flags = tcp_flag::ack;
                header.acknowledgment = static_cast<std::uint32_t>(world.rng.next());
            }
            if (auto wire = make_tcp(h, probe.source, probe.target, header, {})) transmit(h, std::move(*wire));
            break;
        }
        case scan::ScanType::udp:
            record(h, trace::ScanProbe{probe.type, probe.target, probe.tries - 1});
            if (auto wire = make_udp(h, probe.source, probe.target, {})) transmit(h, std::move(*wire));
            break;
    }
    world.probes[index].timeout = world.queue.schedule_at(world.now + timeout, ProbeTimeout{index});
}

namespace {

// What a packet arriving at the scanner answers to a raw probe, if it answers it: a
// segment from the probed port to the probe's source port, a datagram from the probed
// port, or a destination unreachable quoting the probe (RFC 792: the IP header and the
// first 8 bytes, so both ports).
std::optional<scan::Answer> answer_to(const Probe& probe, const Wire& packet) {
    if (const auto* tcp = std::get_if<TcpBody>(&packet.body)) {
        if (probe.type == scan::ScanType::udp || packet.ip.source != probe.target.address ||
            tcp->header.source_port != probe.target.port || tcp->header.destination_port != probe.source.port)
            return std::nullopt;
        const std::uint8_t flags = tcp->header.flags;
        if (flags & tcp_flag::rst) return scan::Answer::reset();
        if ((flags & tcp_flag::syn) && (flags & tcp_flag::ack)) return scan::Answer::syn_ack();
        return std::nullopt;
    }
    if (const auto* udp = std::get_if<UdpBody>(&packet.body)) {
        if (packet.ip.source != probe.target.address || udp->header.source_port != probe.target.port ||
            udp->header.destination_port != probe.source.port)
            return std::nullopt;
        return scan::Answer::udp_reply();
    }
    const auto& icmp = std::get<IcmpBody>(packet.body);
    if (icmp.kind != IcmpKind::unreachable) return std::nullopt;  // time exceeded: not about the port
    const bool udp_probe = probe.type == scan::ScanType::udp;
    if (icmp.quoted_ip.destination != probe.target.address || icmp.quoted_destination_port != probe.target.port ||
        icmp.quoted_source_port != probe.source.port || udp_probe != (icmp.quoted_protocol == ip_protocol::udp))
        return std::nullopt;
    return scan::Answer::unreachable(IcmpUnreachable{packet.ip.family(), icmp.code});
}

// What the connect scan's socket holds when its time is up (nmap -sT reads connect()).
scan::Answer connect_answer(const Socket* socket) {
    if (socket == nullptr) return scan::Answer::local_error(EBADF);
    if (socket->state == TcpState::established) return scan::Answer::socket_error(0);
    if (socket->error) return scan::Answer::socket_error(errno_value(*socket->error));
    return scan::Answer::nothing();
}

}  // namespace

// Raw probes (SYN, ACK, UDP) read the packets that come back; the hub's classifier says
// what each means (nmap.org/book/man-port-scanning-techniques.html).
void Kernel::observe_for_scanner(HostId h, const Wire& packet) {
    for (std::uint32_t i = 0; i < world.probes.size(); ++i) {
        const Probe& probe = world.probes[i];
        if (probe.scanner != h || probe.result || probe.type == scan::ScanType::connect) continue;
        const auto answer = answer_to(probe, packet);
        if (!answer) continue;
        if (const auto verdict = scan::classify(probe.type, *answer)) conclude(i, *verdict);
    }
}

// nmap -sT learns a port's state as soon as its non-blocking connect() is writable: the
// connection is up (open) or failed with an errno (RST: closed; ICMP: filtered). It then
// closes the socket, with an RST (SO_LINGER 0). Called after each packet a host takes in.
void Kernel::settle_connect_probes(HostId h) {
    for (std::uint32_t i = 0; i < world.probes.size(); ++i) {
        const Probe& probe = world.probes[i];
        if (probe.scanner != h || probe.result || probe.type != scan::ScanType::connect || !probe.socket) continue;
        if (connect_answer(find(h, *probe.socket)).kind != scan::AnswerKind::nothing) finish_connect_probe(i);
    }
}

// The connect scan's verdict from its socket, then close() (an RST for a connection).
void Kernel::finish_connect_probe(std::uint32_t index) {
    const Probe& probe = world.probes[index];
    const SocketRef s{probe.scanner, probe.socket.value_or(trace::SocketId{})};
    const Socket* socket = find(s.host, s.id);
    const auto verdict = scan::classify(probe.type, connect_answer(socket));
    conclude(index, verdict.value_or(scan::Verdict{scan::PortState::filtered, scan::Reason::local_error}));
    if (socket != nullptr) (void)close(s);
}

void Kernel::on_probe_timeout(std::uint32_t index) {
    if (index >= world.probes.size() || world.probes[index].result) return;
    Probe& probe = world.probes[index];
    if (probe.type == scan::ScanType::connect) {
        finish_connect_probe(index);
        return;
    }
    if (probe.tries < 2) {  // nmap retransmits an unanswered probe
        send_probe(index);
        return;
    }
    conclude(index, *scan::classify(probe.type, scan::Answer::nothing()));
}

void Kernel::conclude(std::uint32_t index, scan::Verdict verdict) {
    Probe& probe = world.probes[index];
    probe.result = verdict;
    world.queue.cancel(probe.timeout);  // harmless when it is the timeout that concluded
    record(probe.scanner, trace::ScanResult{probe.type, probe.target, verdict.state, verdict.reason});
}

}  // namespace portlab::sim
