// The simulator against the hub's TCP state machine: every state change any scenario
// emits must be an edge of the table (portlab/tcp_machine.hpp), and each socket's
// changes must chain (each starts where the previous one ended). A connection's socket
// made by a listener (child_created) starts in SYN-RECEIVED: it takes LISTEN's
// "rcv SYN, snd SYN,ACK" edge, from a listener that is in LISTEN.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <utility>

#include "portlab/sim/scenarios.hpp"
#include "portlab/tcp_machine.hpp"
#include "portlab/trace.hpp"

using namespace portlab;
using namespace portlab::sim;

TEST_CASE("every state change of every scenario is an edge of TCP's state machine", "[sim][tcp_state]") {
    std::set<std::pair<TcpState, TcpState>> taken;
    for (const auto& info : scenarios()) {
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
            CAPTURE(info.name, seed);
            const auto sim = run_scenario(info.name, seed);
            REQUIRE(sim);
            std::map<std::pair<std::string, std::uint32_t>, TcpState> last;  // (host, socket) -> state
            for (const auto& event : sim->events()) {
                if (const auto* child = std::get_if<trace::ChildCreated>(&event.body)) {
                    CAPTURE(event.host, child->listener.value, child->socket.value);
                    CHECK(last[{event.host, child->listener.value}] == TcpState::listen);
                    CHECK_FALSE(last.contains({event.host, child->socket.value}));  // a new socket
                    last[{event.host, child->socket.value}] = TcpState::syn_received;
                    taken.insert({TcpState::listen, TcpState::syn_received});
                    continue;
                }
                const auto* change = std::get_if<trace::StateChanged>(&event.body);
                if (change == nullptr) continue;
                CAPTURE(event.host, change->socket.value, to_string(change->from), to_string(change->to), change->cause);
                CHECK(is_tcp_transition(change->from, change->to));
                const auto key = std::make_pair(event.host, change->socket.value);
                if (const auto previous = last.find(key); previous != last.end()) CHECK(previous->second == change->from);
                last[key] = change->to;
                taken.insert({change->from, change->to});
            }
        }
    }
    // The scenarios between them walk the whole life of a connection, both closes included.
    for (const auto& [from, to] : std::initializer_list<std::pair<TcpState, TcpState>>{
             {TcpState::closed, TcpState::listen},
             {TcpState::closed, TcpState::syn_sent},
             {TcpState::syn_sent, TcpState::established},
             {TcpState::listen, TcpState::syn_received},
             {TcpState::syn_received, TcpState::established},
             {TcpState::established, TcpState::fin_wait_1},
             {TcpState::established, TcpState::close_wait},
             {TcpState::fin_wait_1, TcpState::fin_wait_2},
             {TcpState::fin_wait_2, TcpState::time_wait},
             {TcpState::close_wait, TcpState::last_ack},
             {TcpState::last_ack, TcpState::closed},
             {TcpState::time_wait, TcpState::closed},
             {TcpState::syn_sent, TcpState::closed},
         }) {
        CAPTURE(to_string(from), to_string(to));
        CHECK(taken.contains({from, to}));
    }
}
