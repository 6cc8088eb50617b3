#include "portlab/sim/narration.hpp"

#include <variant>

#include "portlab/caption.hpp"
#include "portlab/packet.hpp"

namespace portlab::sim {

NarratedEvent Narrator::narrate(const trace::Event& event) {
    NarratedEvent row{event.t_us, event.host, std::string(trace::type_name(event.body)), "", "",
                      portlab::caption(event, &services_)};
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
            } else if constexpr (std::is_same_v<T, trace::ChildCreated>) {
                // The connection's socket, from the SYN on: SYN-RECEIVED, its 4-tuple known.
                describe(view(event.host, body.socket) =
                             SocketView{body.four_tuple.local, body.four_tuple.remote, TcpState::syn_received});
            } else if constexpr (std::is_same_v<T, trace::Accepted>) {
                auto& v = view(event.host, body.socket);
                v.local = body.four_tuple.local;
                v.remote = body.four_tuple.remote;
                if (!v.state) v.state = TcpState::established;
                describe(v);
            } else if constexpr (std::is_same_v<T, trace::StateChanged>) {
                auto& v = view(event.host, body.socket);
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
                    else if (decoded->udp) row.state = "UDP";
                    else if (decoded->icmp) row.state = "ICMP";
                }
            }
        },
        event.body);
    return row;
}

}  // namespace portlab::sim
