#include "view/ss_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace portlab::viz {

// UDP sockets carry TCP's numbers in sock_diag: TCP_ESTABLISHED once connected, else
// TCP_CLOSE, which ss prints as UNCONN; so does a TCP socket not yet listening or connecting.
std::string ss_state(const replay::Socket& socket) {
    if (socket.protocol == Protocol::udp) return std::string(ss_name(socket.remote ? TcpState::established : TcpState::closed));
    switch (socket.slot_state()) {
        case replay::SlotState::listening: return std::string(ss_name(TcpState::listen));
        case replay::SlotState::created:
        case replay::SlotState::bound: return std::string(ss_name(TcpState::closed));
        default: break;
    }
    return std::string(ss_name(socket.tcp_state));
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
