#pragma once
// What the built-in scenarios share (scenarios.cpp, scenarios_network.cpp): running until
// something holds, a socket's state, a listening server. Internal to the simulator library.

#include <string_view>

#include "portlab/sim/simulator.hpp"

namespace portlab::sim::kit {

inline Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

// Runs events until `done()` holds or `limit` of virtual time has passed.
template <class Done>
bool run_until_true(Simulator& sim, Done done, Time limit = 600 * seconds) {
    const Time deadline = sim.now() + limit;
    while (!done()) {
        if (sim.now() > deadline || !sim.step()) return done();
    }
    return true;
}

inline TcpState state_of(const Simulator& sim, SocketRef s) {
    const Socket* socket = sim.find_socket(s);
    return socket == nullptr ? TcpState::closed : socket->state;
}

inline SocketRef tcp_server(Simulator& sim, HostId server, Port port, std::uint32_t backlog = 128) {
    const SocketRef listener = sim.socket(server, Protocol::tcp).value();
    (void)sim.set_privileged(listener);  // a server started as root may take ports below 1024
    (void)sim.set_reuse_address(listener);
    (void)sim.bind(listener, Endpoint{IpAddress::any_v4(), port});
    (void)sim.listen(listener, backlog);
    return listener;
}

// The built-in scenarios of scenarios_network.cpp, for scenarios.cpp's table.
void router_story(Simulator& sim);
void nat_story(Simulator& sim);
void port_forward_story(Simulator& sim);
void stateful_firewall_story(Simulator& sim);

}  // namespace portlab::sim::kit
