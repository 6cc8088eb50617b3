#pragma once
// A host's sockets as `ss -tuanp` prints them: Netid, State, Recv-Q, Send-Q,
// Local Address:Port, Peer Address:Port, Process. The trace knows no queue
// lengths or process ids, so the queues read 0 (a listener's Send-Q is its
// backlog, as ss shows it) and the process column names the socket.

#include <string>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

struct SsRow {
    std::string netid;  // "tcp", "udp"
    std::string state;  // ss's spelling: LISTEN, ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, ..., UNCONN
    std::string recv_q;
    std::string send_q;
    std::string local;  // "0.0.0.0:8080", "[::]:53"
    std::string peer;   // "10.0.0.1:40010", "0.0.0.0:*"
    std::string process;
    replay::SocketRef ref;
};

// ss's name for a socket's state (iproute2 misc/ss.c, sstate_name[]).
[[nodiscard]] std::string ss_state(const replay::Socket& socket);
// Sockets without a local port are left out, as ss leaves them out.
[[nodiscard]] std::vector<SsRow> ss_rows(const replay::State& world, replay::HostIndex host);
// The whole table as text, columns padded, with ss's header line.
[[nodiscard]] std::string ss_text(const std::vector<SsRow>& rows);

}  // namespace portlab::viz
