#pragma once
// A narrator that folds over a trace keeping each socket's latest 4-tuple and TCP
// state, for listings such as portlab-sim's; each row's sentence is the hub's
// caption (portlab/caption.hpp), the words portlab-viz shows for the same event.
// Works on any trace (simulated or from a lab): it needs only the events.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "portlab/services.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

struct NarratedEvent {
    std::uint64_t t_us = 0;
    std::string host;
    std::string type;        // the trace type name: "packet", "state_changed", ...
    std::string four_tuple;  // "10.0.0.1:40002 -> 10.0.0.2:80", or what is known ("0.0.0.0:80"), or ""
    std::string state;       // the socket's TCP state after the event, a packet's flags, or ""
    std::string caption;     // portlab::caption() of the event, with ServiceTable::fallback()'s names
};

class Narrator {
public:
    [[nodiscard]] NarratedEvent narrate(const trace::Event& event);

private:
    struct SocketView {
        std::optional<Endpoint> local;
        std::optional<Endpoint> remote;
        std::optional<TcpState> state;
    };
    SocketView& view(const std::string& host, trace::SocketId id) { return sockets_[{host, id.value}]; }
    // The same table the replay timeline names services with, so both say "(http)".
    ServiceTable services_ = ServiceTable::fallback();
    std::map<std::pair<std::string, std::uint32_t>, SocketView> sockets_;
};

}  // namespace portlab::sim
