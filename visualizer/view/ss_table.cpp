#include "view/ss_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace portlab::viz {

std::string ss_state(const replay::Socket& socket) {
    if (socket.protocol == Protocol::udp) return socket.remote ? "ESTAB" : "UNCONN";
    switch (socket.slot_state()) {
        case replay::SlotState::listening: return "LISTEN";
        case replay::SlotState::created:
        case replay::SlotState::bound: return "UNCONN";
        default: break;
    }
    switch (socket.tcp_state) {
        case TcpState::closed: return "UNCONN";  // ss prints TCP_CLOSE as UNCONN
        case TcpState::listen: return "LISTEN";
        case TcpState::syn_sent: return "SYN-SENT";
        case TcpState::syn_received: return "SYN-RECV";
        case TcpState::established: return "ESTAB";
        case TcpState::fin_wait_1: return "FIN-WAIT-1";
        case TcpState::fin_wait_2: return "FIN-WAIT-2";
        case TcpState::close_wait: return "CLOSE-WAIT";
        case TcpState::closing: return "CLOSING";
        case TcpState::last_ack: return "LAST-ACK";
        case TcpState::time_wait: return "TIME-WAIT";
    }
    return "UNKNOWN";
}

namespace {

// ss prints an unconnected peer as the wildcard address with port "*".
std::string wildcard_peer(IpFamily family) { return family == IpFamily::v6 ? "[::]:*" : "0.0.0.0:*"; }

}  // namespace

std::vector<SsRow> ss_rows(const replay::State& world, replay::HostIndex host) {
    std::vector<SsRow> rows;
    if (host >= world.hosts().size()) return rows;
    for (const auto& [id, socket] : world.hosts()[host].sockets) {
        if (!socket.local) continue;
        SsRow row;
        row.netid = std::string(to_string(socket.protocol));
        row.state = ss_state(socket);
        row.recv_q = "0";
        row.send_q = socket.slot_state() == replay::SlotState::listening ? std::to_string(socket.backlog) : "0";
        row.local = socket.local->to_string();
        row.peer = socket.remote && socket.slot_state() != replay::SlotState::listening ? socket.remote->to_string()
                                                                                       : wildcard_peer(socket.family);
        row.process = "socket " + std::to_string(id.value);
        row.ref = replay::SocketRef{host, id};
        rows.push_back(std::move(row));
    }
    return rows;
}

std::string ss_text(const std::vector<SsRow>& rows) {
    const std::array<std::string, 7> header{"Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port",
                                            "Peer Address:Port", "Process"};
    std::array<std::size_t, 7> width{};
    for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
    const auto cells = [](const SsRow& r) {
        return std::array<std::string, 7>{r.netid, r.state, r.recv_q, r.send_q, r.local, r.peer, r.process};
    };
    for (const auto& row : rows) {
        const auto c = cells(row);
        for (std::size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i].size());
    }
    std::string text;
    const auto line = [&](const std::array<std::string, 7>& c) {
        std::string out;
        for (std::size_t i = 0; i < c.size(); ++i) {
            // Queues are right-aligned, as ss prints them.
            const bool right = i == 2 || i == 3;
            out += right ? fmt::format("{:>{}}", c[i], width[i]) : fmt::format("{:<{}}", c[i], width[i]);
            if (i + 1 < c.size()) out += ' ';
        }
        while (!out.empty() && out.back() == ' ') out.pop_back();
        return out + '\n';
    };
    text += line(header);
    for (const auto& row : rows) text += line(cells(row));
    return text;
}

}  // namespace portlab::viz
