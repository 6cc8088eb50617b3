// A host that forwards (router.hpp): netfilter's order, prerouting (conntrack lookup,
// DNAT), the routing decision, the forward chain (lab 18's stateful rules), the TTL
// (RFC 1812 5.3.1), postrouting (masquerade), then the packet goes on as new bytes with
// new checksums. Every step is told in the trace: the packet delivered to the router as
// it arrived, a `nat` event when a translation is set up, the packet sent as it leaves,
// or dropped with its cause; and the router's own ICMP errors are packets like any other.
#include <algorithm>
#include <cerrno>

#include "portlab/sim/kernel.hpp"

namespace portlab::sim {

namespace {

// A TCP segment's or UDP datagram's protocol and flow; none for ICMP.
std::optional<std::pair<Protocol, trace::Flow>> flow_of(const Wire& packet) {
    if (const auto* tcp = std::get_if<TcpBody>(&packet.body))
        return std::pair{Protocol::tcp, trace::Flow{{packet.ip.source, tcp->header.source_port},
                                                    {packet.ip.destination, tcp->header.destination_port}}};
    if (const auto* udp = std::get_if<UdpBody>(&packet.body))
        return std::pair{Protocol::udp, trace::Flow{{packet.ip.source, udp->header.source_port},
                                                    {packet.ip.destination, udp->header.destination_port}}};
    return std::nullopt;
}

void set_flow(Wire& packet, const trace::Flow& flow) {
    packet.ip.source = flow.source.address;
    packet.ip.destination = flow.destination.address;
    if (auto* tcp = std::get_if<TcpBody>(&packet.body)) {
        tcp->header.source_port = flow.source.port;
        tcp->header.destination_port = flow.destination.port;
    } else if (auto* udp = std::get_if<UdpBody>(&packet.body)) {
        udp->header.source_port = flow.source.port;
        udp->header.destination_port = flow.destination.port;
    }
}

// The flow an ICMP error is about: the quoted packet's, as its sender sent it.
trace::Flow quoted_flow(const IcmpBody& icmp) {
    return {{icmp.quoted_ip.source, icmp.quoted_source_port}, {icmp.quoted_ip.destination, icmp.quoted_destination_port}};
}

bool needs_conntrack(const Routing& routing) {
    return routing.masquerade || !routing.port_forwards.empty() || routing.stateful;
}

}  // namespace

// ---- set-up ----------------------------------------------------------------------------

void Kernel::add_route(HostId host, Route route) {
    if (host.value < world.hosts.size()) host_of(host).routing.routes.push_back(route);
}
void Kernel::set_forwarding(HostId host, bool on) {
    if (host.value < world.hosts.size()) host_of(host).routing.forwarding = on;
}
void Kernel::set_masquerade(HostId router, IpAddress outside) {
    if (router.value < world.hosts.size()) host_of(router).routing.masquerade = outside;
}
void Kernel::add_port_forward(HostId router, PortForward forward) {
    if (router.value < world.hosts.size()) host_of(router).routing.port_forwards.push_back(forward);
}
void Kernel::set_stateful_firewall(HostId router, StatefulFirewall firewall) {
    if (router.value < world.hosts.size()) host_of(router).routing.stateful = firewall;
}

// ---- helpers -----------------------------------------------------------------------------

// The router's address on the link `from` sent the packet over ("iifname"): the on-link
// route whose network holds one of the neighbour's addresses.
IpAddress Kernel::incoming_interface(HostId h, HostId from) const {
    const Host& router = world.hosts[h.value];
    for (const Route& route : router.routing.routes) {
        if (route.gateway) continue;
        for (const IpAddress& address : world.hosts[from.value].addresses)
            if (in_network(address, route.network, route.prefix_length)) return route.source;
    }
    return router.addresses.empty() ? IpAddress{} : router.addresses.front();
}

// The packet's bytes again after its header changed (TTL, addresses, ports): every
// checksum is computed anew by the hub's encoder, as the kernel's NAT updates them
// (nf_nat_ipv4_manip_pkt, inet_proto_csum_replace4).
bool Kernel::reencode(HostId h, Wire& packet) {
    Result<Bytes> bytes = fail("no body");
    if (const auto* tcp = std::get_if<TcpBody>(&packet.body)) {
        bytes = encode_tcp(packet.ip, tcp->header, tcp->payload);
    } else if (const auto* udp = std::get_if<UdpBody>(&packet.body)) {
        bytes = encode_udp(packet.ip, udp->header, udp->payload);
    } else {
        // An ICMP error quotes what it quoted: the bytes after the outer IP and ICMP headers.
        const auto& icmp = std::get<IcmpBody>(packet.body);
        const std::size_t ip_size = packet.ip.family() == IpFamily::v4 ? (packet.bytes[0] & 0x0F) * 4u : 40u;
        const std::span<const std::uint8_t> quoted(packet.bytes.data() + ip_size + 8, packet.bytes.size() - ip_size - 8);
        bytes = icmp.kind == IcmpKind::unreachable ? encode_icmp_unreachable(packet.ip, icmp.code, quoted)
                                                   : encode_icmp_time_exceeded(packet.ip, quoted);
    }
    if (!bytes) {
        note(h, "could not encode a forwarded packet: " + bytes.error().message);
        return false;
    }
    packet.bytes = std::move(*bytes);
    return true;
}

void Kernel::router_drop(HostId h, trace::Packet event, trace::DropCause cause, std::string why) {
    event.kind = trace::PacketKind::dropped;
    event.cause = cause;
    event.rule = std::move(why);
    record(h, std::move(event));
}

void Kernel::send_icmp_error(HostId h, const Wire& offending, IcmpKind kind, std::uint8_t code) {
    if (std::holds_alternative<IcmpBody>(offending.body)) return;  // never an error about an error (RFC 1122 3.2.2)
    if (auto icmp = make_icmp(h, offending, kind, code)) transmit(h, std::move(*icmp));
}

// ---- the path through a router ----------------------------------------------------------

// PREROUTING: a packet of a tracked connection takes the other tuple reversed (the reply
// to a masqueraded connection goes back to the client; a forwarded port's packets to the
// inside server); a new connection to a forwarded port is sent to its inside address.
// Then the routing decision: for this host (false: the input path takes it) or forward.
bool Kernel::router_input(HostId h, HostId from, Wire& packet) {
    Routing& routing = host_of(h).routing;
    const auto flow = flow_of(packet);
    const Bytes as_arrived = recording() ? packet.bytes : Bytes{};  // before any translation
    Routing::Match match;
    std::optional<Endpoint> dnat_to;
    if (flow) {
        match = routing.find(flow->first, flow->second);
        if (match.entry != nullptr) {
            if (match.reply) match.entry->seen_reply = true;
            const trace::Flow translated = reversed(match.reply ? match.entry->original : match.entry->reply);
            if (translated != flow->second) {
                set_flow(packet, translated);
                if (!reencode(h, packet)) return true;
            }
        } else {
            for (const PortForward& rule : routing.port_forwards)
                if (rule.protocol == flow->first && rule.port == flow->second.destination.port) dnat_to = rule.to;
        }
    }
    if (!dnat_to && is_local_address(host_of(h), packet.ip.destination)) return false;
    // The packet as it arrived: a capture on the incoming link shows these bytes.
    const trace::Packet arrived{trace::PacketKind::delivered, as_arrived, LinkType::raw, std::nullopt, host_of(from).name,
                                host_of(h).name};
    forward(h, from, packet, arrived, match, dnat_to);
    return true;
}

// FORWARD and POSTROUTING: lab 18's chain, the TTL, the route, masquerade, then out.
void Kernel::forward(HostId h, HostId from, Wire& packet, const trace::Packet& arrived, const Routing::Match& match,
                     std::optional<Endpoint> dnat_to) {
    Routing& routing = host_of(h).routing;
    const auto flow = flow_of(packet);
    record(h, arrived);
    // ct state: a reply, or a packet of a connection whose reply was seen, is established;
    // an ICMP error about a tracked connection is related; the rest is new (conntrack's
    // resolve_normal_ct). Only a packet the chain accepts makes an entry (confirmed).
    bool established = match.entry != nullptr && (match.reply || match.entry->seen_reply);
    if (const auto* icmp = std::get_if<IcmpBody>(&packet.body)) {
        const Protocol quoted = icmp->quoted_protocol == ip_protocol::tcp ? Protocol::tcp : Protocol::udp;
        established = routing.find(quoted, quoted_flow(*icmp)).entry != nullptr;
    }
    const IpAddress came_in = incoming_interface(h, from);
    if (routing.stateful && !established && came_in == routing.stateful->outside) {
        const bool reject = routing.stateful->new_from_outside == FirewallAction::reject;
        router_drop(h, arrived, trace::DropCause::ct_state,
                    reject ? "forward: iifname outside ct state new reject with icmpx admin-prohibited"
                           : "forward: iifname outside ct state new drop");
        if (reject) send_icmp_error(h, packet, IcmpKind::unreachable, icmpx_unreachable(IcmpxType::admin_prohibited, packet.ip.family()).code);
        return;
    }
    // RFC 1812 5.3.1: a router decrements the TTL; at 0 it drops the packet and tells the
    // sender (ICMP time exceeded, code 0: "TTL exceeded in transit").
    if (packet.ip.ttl <= 1) {
        router_drop(h, arrived, trace::DropCause::ttl_exceeded, "TTL " + std::to_string(packet.ip.ttl) + " exceeded in transit");
        send_icmp_error(h, packet, IcmpKind::time_exceeded, 0);
        return;
    }
    const Endpoint destination = dnat_to.value_or(flow ? flow->second.destination : Endpoint{packet.ip.destination, 0});
    const Route* chosen = longest_match(routing.routes, destination.address);
    if (chosen == nullptr) {
        router_drop(h, arrived, trace::DropCause::no_route, "no route to " + destination.address.to_string());
        send_icmp_error(h, packet, IcmpKind::unreachable, 0);  // net unreachable
        return;
    }
    if (!route(h, chosen->gateway.value_or(destination.address))) {
        // On-link, but no neighbour answers ARP: Linux sends host unreachable once the
        // neighbour entry fails (after mcast_solicit probes, about 3 s; the model answers at once).
        router_drop(h, arrived, trace::DropCause::no_route, "no neighbour answers ARP for " + destination.address.to_string());
        send_icmp_error(h, packet, IcmpKind::unreachable, icmpx_unreachable(IcmpxType::host_unreachable, packet.ip.family()).code);
        return;
    }
    if (flow && match.entry == nullptr && needs_conntrack(routing)) {
        // A new connection: DNAT (prerouting) and masquerade (postrouting) set up its entry.
        const auto [protocol, original] = *flow;
        trace::Flow translated{original.source, destination};
        const bool masquerade = routing.masquerade && chosen->source == *routing.masquerade;
        if (masquerade) {
            const auto port = masquerade_port(routing, protocol, translated, *routing.masquerade,
                                              [this] { return static_cast<std::uint32_t>(world.rng.below(65536)); });
            if (!port) {
                router_drop(h, arrived, trace::DropCause::other,
                            "masquerade: no free port toward " + destination.to_string() + " (nf_nat_l4proto_unique_tuple)");
                return;
            }
            translated.source = Endpoint{*routing.masquerade, *port};
        }
        ConntrackEntry entry{routing.next_conntrack_id++, protocol, original, reversed(translated), false};
        const trace::Flow after_dnat{original.source, destination};
        if (dnat_to)
            record(h, trace::NatTranslated{trace::NatKind::dnat, protocol, entry.id, Boxed(trace::NatFlows{original, after_dnat})});
        if (masquerade)
            record(h, trace::NatTranslated{trace::NatKind::snat, protocol, entry.id, Boxed(trace::NatFlows{after_dnat, translated})});
        routing.conntrack.push_back(entry);
        set_flow(packet, translated);
    }
    --packet.ip.ttl;
    if (!reencode(h, packet)) return;
    transmit(h, std::move(packet));
}

}  // namespace portlab::sim
