// A host that forwards (router.hpp): netfilter's order, prerouting (conntrack lookup,
// DNAT), the routing decision, the TTL (RFC 1812 5.3.1; ip_forward() checks it before the
// FORWARD hook), the forward chain (lab 18's stateful rules), postrouting (masquerade), then the packet goes on as new bytes with
// new checksums. Every step is told in the trace: the packet delivered to the router as
// it arrived, a `nat` event when a translation is set up, the packet sent as it leaves,
// or dropped with its cause; and the router's own ICMP errors are packets like any other.
#include <algorithm>
#include <cerrno>

#include "portlab/checksum.hpp"
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

// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over the 16-bit words that changed from `before`
// to `after` (both of even length): how a NAT fixes a checksum it cannot recompute.
std::uint16_t updated_checksum(std::uint16_t checksum, std::span<const std::uint8_t> before, std::span<const std::uint8_t> after) {
    ChecksumAccumulator sum;
    sum.add_u16(static_cast<std::uint16_t>(~checksum));
    for (std::size_t i = 0; i + 1 < before.size(); i += 2) {
        sum.add_u16(static_cast<std::uint16_t>(~((before[i] << 8) | before[i + 1])));
        sum.add_u16(static_cast<std::uint16_t>((after[i] << 8) | after[i + 1]));
    }
    return sum.finish();
}

// The packet an ICMP error quotes, rewritten to `flow`, as nf_nat_icmp_reply_translation
// does (net/netfilter/nf_nat_proto.c): its addresses and ports, its IPv4 header checksum
// computed anew, a quoted UDP checksum updated (RFC 1624) for the addresses and ports.
Bytes rewrite_quote(std::span<const std::uint8_t> quote, const trace::Flow& flow) {
    Bytes q(quote.begin(), quote.end());
    const bool v4 = flow.source.address.is_v4();
    const std::size_t ip_size = v4 ? (q.at(0) & 0x0F) * 4u : 40u;
    const std::size_t source_at = v4 ? 12 : 8;
    const std::size_t length = v4 ? 4 : 16;
    if (q.size() < ip_size) return q;
    const auto fields = [&](const Bytes& bytes) {
        Bytes f(bytes.begin() + static_cast<std::ptrdiff_t>(source_at),
                bytes.begin() + static_cast<std::ptrdiff_t>(source_at + 2 * length));
        if (bytes.size() >= ip_size + 4) f.insert(f.end(), bytes.begin() + static_cast<std::ptrdiff_t>(ip_size),
                                                  bytes.begin() + static_cast<std::ptrdiff_t>(ip_size + 4));
        return f;
    };
    const Bytes before = fields(q);
    std::copy_n(flow.source.address.bytes().begin(), length, q.begin() + static_cast<std::ptrdiff_t>(source_at));
    std::copy_n(flow.destination.address.bytes().begin(), length, q.begin() + static_cast<std::ptrdiff_t>(source_at + length));
    if (q.size() >= ip_size + 4) {
        q[ip_size] = static_cast<std::uint8_t>(flow.source.port >> 8);
        q[ip_size + 1] = static_cast<std::uint8_t>(flow.source.port);
        q[ip_size + 2] = static_cast<std::uint8_t>(flow.destination.port >> 8);
        q[ip_size + 3] = static_cast<std::uint8_t>(flow.destination.port);
    }
    if (v4) {
        q[10] = q[11] = 0;
        const std::uint16_t sum = internet_checksum(std::span(q).first(ip_size));
        q[10] = static_cast<std::uint8_t>(sum >> 8);
        q[11] = static_cast<std::uint8_t>(sum);
    }
    const std::uint8_t protocol = v4 ? q[9] : q[6];
    if (protocol == ip_protocol::udp && q.size() >= ip_size + 8) {
        const auto stored = static_cast<std::uint16_t>((q[ip_size + 6] << 8) | q[ip_size + 7]);
        if (stored != 0) {  // 0: no checksum (IPv4 only, RFC 768)
            const std::uint16_t sum = updated_checksum(stored, before, fields(q));
            q[ip_size + 6] = static_cast<std::uint8_t>(sum >> 8);
            q[ip_size + 7] = static_cast<std::uint8_t>(sum);
        }
    }
    return q;
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
// The forward chain's rules enter the trace as they go into force, as lab 18's do when it
// installs a chain: the old ones removed, the new ones added, so a viewer has the router's
// firewall from the start, not from its first drop.
void Kernel::set_stateful_firewall(HostId router, StatefulFirewall firewall) {
    if (router.value >= world.hosts.size()) return;
    Host& host = host_of(router);
    if (host.routing.stateful)
        for (const NamedRule& old : host.routing.stateful->chain) record(router, trace::RuleRemoved{old.id});
    firewall.chain = stateful_chain(host.addresses, firewall.outside, firewall.new_from_outside);
    for (const NamedRule& rule : firewall.chain) record(router, trace::RuleAdded{rule.id, rule.rule});
    host_of(router).routing.stateful = std::move(firewall);
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

void Kernel::on_neighbour_failed(NeighbourFailed& failed) {
    const Wire& packet = *failed.packet;
    const std::string neighbour = packet.ip.family() == IpFamily::v4 ? "ARP" : "neighbour solicitation";
    router_drop(failed.router, *failed.arrived, trace::DropCause::no_route,
                "no neighbour answers " + neighbour + " for " + failed.neighbour.to_string());
    send_icmp_error(failed.router, packet, IcmpKind::unreachable,
                    icmpx_unreachable(IcmpxType::host_unreachable, packet.ip.family()).code);
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
    const trace::SharedBytes as_arrived = recording() ? packet.bytes : trace::SharedBytes{};  // before any translation (shared, not copied)
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
                if (rule.protocol == flow->first && rule.port == flow->second.destination.port &&
                    (!rule.arriving_on || *rule.arriving_on == incoming_interface(h, from)))
                    dnat_to = rule.to;
        }
    }
    if (auto* icmp = std::get_if<IcmpBody>(&packet.body); icmp != nullptr && !translate_related(h, packet, *icmp))
        return true;
    if (!dnat_to && is_local_address(host_of(h), packet.ip.destination)) return false;
    // The packet as it arrived: a capture on the incoming link shows these bytes.
    const trace::Packet arrived{trace::PacketKind::delivered, as_arrived, LinkType::raw, std::nullopt, host_of(from).name,
                                host_of(h).name};
    forward(h, from, packet, arrived, match, dnat_to);
    return true;
}

// An ICMP error about a tracked connection ("related") goes where the connection's packets
// go, its quote rewritten to what that side sent: a port unreachable from the server about a
// masqueraded datagram reaches the client, quoting the client's own datagram. False when it
// could not be encoded (then it is dropped).
bool Kernel::translate_related(HostId h, Wire& packet, IcmpBody& icmp) {
    const trace::Flow about = quoted_flow(icmp);
    const Protocol protocol = icmp.quoted_protocol == ip_protocol::tcp ? Protocol::tcp : Protocol::udp;
    std::optional<trace::Flow> to;
    for (const ConntrackEntry& entry : host_of(h).routing.conntrack) {
        if (entry.protocol != protocol) continue;
        // The error is about a packet that left translated: quote it as it was sent.
        if (reversed(entry.reply) == about) to = entry.original;
        else if (reversed(entry.original) == about) to = entry.reply;
        if (to) break;
    }
    if (!to || *to == about) return true;
    if (packet.ip.source == about.destination.address) packet.ip.source = to->destination.address;
    packet.ip.destination = to->source.address;
    const std::size_t ip_size = packet.ip.family() == IpFamily::v4 ? (packet.bytes[0] & 0x0F) * 4u : 40u;
    const Bytes quote = rewrite_quote(std::span(packet.bytes).subspan(ip_size + 8), *to);
    icmp.quoted_ip.source = to->source.address;
    icmp.quoted_ip.destination = to->destination.address;
    icmp.quoted_source_port = to->source.port;
    icmp.quoted_destination_port = to->destination.port;
    auto bytes = icmp.kind == IcmpKind::unreachable ? encode_icmp_unreachable(packet.ip, icmp.code, quote)
                                                    : encode_icmp_time_exceeded(packet.ip, quote);
    if (!bytes) return false;
    packet.bytes = std::move(*bytes);
    return true;
}

// After PREROUTING: the routing decision (no route: net unreachable, ip_route_input_slow),
// the TTL (ip_forward() checks it before the FORWARD hook, so a stateful chain never hides
// a time exceeded), lab 18's FORWARD chain, the neighbour, POSTROUTING's masquerade, then out.
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
    const Endpoint destination = dnat_to.value_or(flow ? flow->second.destination : Endpoint{packet.ip.destination, 0});
    const Route* chosen = longest_match(routing.routes, destination.address);
    if (chosen == nullptr) {
        router_drop(h, arrived, trace::DropCause::no_route, "no route to " + destination.address.to_string());
        send_icmp_error(h, packet, IcmpKind::unreachable, 0);  // net unreachable
        return;
    }
    // RFC 1812 5.3.1: a router decrements the TTL; at 0 it drops the packet and tells the
    // sender (ICMP time exceeded, code 0: "TTL exceeded in transit"). IPv6's hop limit the
    // same (RFC 8200 3, ip6_forward; ICMPv6 type 3 code 0, "hop limit exceeded in transit",
    // RFC 4443 3.3).
    if (packet.ip.ttl <= 1) {
        const std::string field = packet.ip.family() == IpFamily::v4 ? "TTL " : "hop limit ";
        router_drop(h, arrived, trace::DropCause::ttl_exceeded, field + std::to_string(packet.ip.ttl) + " exceeded in transit");
        send_icmp_error(h, packet, IcmpKind::time_exceeded, 0);
        return;
    }
    if (routing.stateful) {
        // The forward chain, first match wins; the packet's ct state as above (an ICMP error
        // about a tracked connection is related), its iifname the interface it came in on.
        const bool icmp = std::holds_alternative<IcmpBody>(packet.body);
        const CtState state = !established ? CtState::new_connection : icmp ? CtState::related : CtState::established;
        const auto& chain = routing.stateful->chain;
        const auto hit = first_match(chain, state, interface_name(host_of(h).addresses, incoming_interface(h, from)));
        if (!hit || chain[*hit].rule.action != FirewallAction::accept) {
            trace::Packet dropped = arrived;
            if (hit) dropped.rule_id = chain[*hit].id;  // the viewer counts the rule's hits by it
            router_drop(h, std::move(dropped), trace::DropCause::ct_state,
                        hit ? "forward: " + nft_text(chain[*hit].rule).value_or("?") : std::string("forward: policy drop"));
            if (hit && chain[*hit].rule.action == FirewallAction::reject)
                send_icmp_error(h, packet, IcmpKind::unreachable,
                                icmpx_unreachable(icmpx_type(chain[*hit].rule.reject_with).value_or(IcmpxType::admin_prohibited), packet.ip.family()).code);
            return;
        }
    }
    if (!route(h, chosen->gateway.value_or(destination.address))) {
        // On-link, but no neighbour answers: the packet waits in the neighbour's queue until
        // the entry fails, about 3 s later (world.hpp, NeighbourFailed).
        world.queue.schedule_at(world.now + neighbour_resolution_time,
                                NeighbourFailed{h, chosen->gateway.value_or(destination.address), Boxed<Wire>(packet),
                                                Boxed<trace::Packet>(arrived)});
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
        if (!dnat_to && !masquerade)  // a stateful firewall's entry: conntrack -L lists it, nothing translated
            record(h, trace::NatTranslated{trace::NatKind::track, protocol, entry.id, Boxed(trace::NatFlows{original, original})});
        routing.conntrack.push_back(entry);
        set_flow(packet, translated);
    }
    --packet.ip.ttl;
    if (!reencode(h, packet)) return;
    transmit(h, std::move(packet));
}

}  // namespace portlab::sim
