#include "portlab/sim/narration.hpp"

#include <variant>

#include "portlab/packet.hpp"

namespace portlab::sim {

namespace {

std::string sock(trace::SocketId id) { return "socket " + std::to_string(id.value); }

std::string possessive(const std::string& host) { return "the " + host + "'s"; }

std::string how_text(trace::BindHow how) {
    switch (how) {
        case trace::BindHow::explicit_port: return "by bind()";
        case trace::BindHow::ephemeral: return "implicitly, with the port the kernel picked";
        case trace::BindHow::bind_zero: return "by bind() with port 0, so the kernel picked the port";
    }
    return "";
}

std::string packet_caption(const trace::Event& event, const trace::Packet& packet) {
    const auto decoded = decode_frame(packet.link, packet.bytes);
    const std::string what = decoded ? decoded->summary() : std::string("an undecodable packet");
    const std::string to = packet.to_host.value_or("?");
    switch (packet.kind) {
        case trace::PacketKind::sent: return event.host + " sends " + what;
        case trace::PacketKind::delivered: return to + " receives " + what;
        case trace::PacketKind::dropped: return "dropped (" + packet.rule.value_or("no reason given") + "): " + what;
    }
    return what;
}

}  // namespace

std::string caption(const trace::Event& event) {
    return std::visit(
        [&event](const auto& body) -> std::string {
            using T = std::decay_t<decltype(body)>;
            const std::string& host = event.host;
            if constexpr (std::is_same_v<T, trace::SocketCreated>) {
                return possessive(host) + " program asks its OS for a new " + std::string(to_string(body.protocol)) +
                       " socket (" + sock(body.socket) + ", " + (body.family == IpFamily::v4 ? "IPv4" : "IPv6") + ")";
            } else if constexpr (std::is_same_v<T, trace::Bound>) {
                return sock(body.socket) + " is bound to " + body.endpoint.to_string() + " " + how_text(body.how) +
                       (body.note ? " (" + *body.note + ")" : std::string());
            } else if constexpr (std::is_same_v<T, trace::Listening>) {
                return sock(body.socket) + " listens (backlog " + std::to_string(body.backlog) +
                       "): the port now accepts connections";
            } else if constexpr (std::is_same_v<T, trace::ConnectStarted>) {
                return possessive(host) + " program calls connect() on " + sock(body.socket) + " to " +
                       body.remote.to_string();
            } else if constexpr (std::is_same_v<T, trace::EphemeralAssigned>) {
                std::string text = possessive(host) + " OS assigned ephemeral port " + std::to_string(body.port) +
                                   " from " + std::to_string(body.range_low) + "-" + std::to_string(body.range_high) +
                                   " (" + body.algorithm;
                if (body.parity) text += body.parity == trace::Parity::even ? ", even" : ", odd";
                return text + ")";
            } else if constexpr (std::is_same_v<T, trace::Accepted>) {
                return "accept() returns " + sock(body.socket) + " for " + body.four_tuple.to_string() +
                       ": same local port as listening " + sock(body.listener) + ", its own 4-tuple";
            } else if constexpr (std::is_same_v<T, trace::StateChanged>) {
                return sock(body.socket) + " goes " + std::string(to_string(body.from)) + " -> " +
                       std::string(to_string(body.to)) + (body.cause.empty() ? std::string() : " (" + body.cause + ")");
            } else if constexpr (std::is_same_v<T, trace::Packet>) {
                return packet_caption(event, body);
            } else if constexpr (std::is_same_v<T, trace::CallFailed>) {
                return body.call + "() " + (body.socket ? "on " + sock(*body.socket) + " " : std::string()) +
                       "fails with " + body.errno_name + " (" + body.message + ")";
            } else if constexpr (std::is_same_v<T, trace::Closed>) {
                return possessive(host) + " program closes " + sock(body.socket);
            } else if constexpr (std::is_same_v<T, trace::Note>) {
                return body.text;
            } else {
                return std::string(trace::type_name(event.body));
            }
        },
        event.body);
}

NarratedEvent Narrator::narrate(const trace::Event& event) {
    NarratedEvent row{event.t_us, event.host, std::string(trace::type_name(event.body)), "", "", caption(event)};
    const auto describe = [&row](const SocketView& v) {
        if (v.local && v.remote) row.four_tuple = FourTuple{*v.local, *v.remote}.to_string();
        else if (v.local) row.four_tuple = v.local->to_string();
        else if (v.remote) row.four_tuple = "-> " + v.remote->to_string();
        if (v.state) row.state = std::string(to_string(*v.state));
    };
    std::visit(
        [&](const auto& body) {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, trace::SocketCreated>) {
                describe(view(event.host, body.socket) = SocketView{});
            } else if constexpr (std::is_same_v<T, trace::Bound>) {
                auto& v = view(event.host, body.socket);
                v.local = body.endpoint;
                describe(v);
            } else if constexpr (std::is_same_v<T, trace::ConnectStarted>) {
                auto& v = view(event.host, body.socket);
                v.remote = body.remote;
                describe(v);
            } else if constexpr (std::is_same_v<T, trace::Accepted>) {
                auto& v = view(event.host, body.socket);
                v.local = body.four_tuple.local;
                v.remote = body.four_tuple.remote;
                if (!v.state) v.state = TcpState::established;
                describe(v);
            } else if constexpr (std::is_same_v<T, trace::StateChanged>) {
                auto& v = view(event.host, body.socket);
                const auto syn = last_syn_.find(event.host);
                if (body.from == TcpState::listen && body.to == TcpState::syn_received && !v.local && !v.remote &&
                    syn != last_syn_.end()) {
                    v.local = syn->second.first;
                    v.remote = syn->second.second;
                }
                v.state = body.to;
                describe(v);
            } else if constexpr (std::is_same_v<T, trace::Listening> || std::is_same_v<T, trace::EphemeralAssigned> ||
                                 std::is_same_v<T, trace::Closed>) {
                describe(view(event.host, body.socket));
            } else if constexpr (std::is_same_v<T, trace::CallFailed>) {
                if (body.socket) describe(view(event.host, *body.socket));
            } else if constexpr (std::is_same_v<T, trace::Packet>) {
                if (const auto decoded = decode_frame(body.link, body.bytes)) {
                    const auto source = decoded->source();
                    const auto destination = decoded->destination();
                    if (source && destination) row.four_tuple = source->to_string() + " > " + destination->to_string();
                    else row.four_tuple = decoded->ip.source.to_string() + " > " + decoded->ip.destination.to_string();
                    if (decoded->tcp) row.state = tcp_flags_to_string(decoded->tcp->flags);
                    if (decoded->tcp && decoded->tcp->flags == tcp_flag::syn && source && destination &&
                        body.kind == trace::PacketKind::delivered)
                        last_syn_[event.host] = {*destination, *source};
                    else if (decoded->udp) row.state = "UDP";
                    else if (decoded->icmp) row.state = "ICMP";
                }
            }
        },
        event.body);
    return row;
}

}  // namespace portlab::sim
