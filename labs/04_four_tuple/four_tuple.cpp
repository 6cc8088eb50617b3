// Lab 04: the 4-tuple, not the port, names a TCP connection.
//
// Part 1: many clients, from 127.0.0.1 and from 127.0.0.2-127.0.0.4, connect to one
// server port. Every socket accept() returns has the SAME local port as the listener;
// what tells them apart is the other end: the client's address and port.
// Part 2: two client sockets share ONE local port and are connected at the same time,
// to two different servers. Both are ESTABLISHED; the kernel refuses only a third one
// that would repeat a 4-tuple that already exists.
//
//   lab04_four_tuple                     server on 127.0.0.1:7404, 2 clients per address
//   lab04_four_tuple --port 0 --per-address 5
//   lab04_four_tuple --json

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>  // Asio 1.22 keeps as_tuple here; newer Asio has asio::as_tuple
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "portlab/net.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/tcp_state.hpp"

using namespace portlab;
using namespace portlab::labkit;
using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using asio::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port default_port = 7404;
constexpr auto run_limit = 3s;  // the clients and the accept loop end within this, whatever happens

json endpoint_json(const Endpoint& endpoint) {
    return {{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

json four_tuple_json(const FourTuple& tuple, std::string_view state) {
    return {{"local", endpoint_json(tuple.local)}, {"remote", endpoint_json(tuple.remote)}, {"state", state}};
}

FourTuple four_tuple_of(const tcp::socket& socket) {
    return {to_endpoint(socket.local_endpoint()), to_endpoint(socket.remote_endpoint())};
}

// The kernel's own word on one socket's state: TCP_INFO's tcpi_state (include/net/tcp_states.h).
std::string kernel_state_of(tcp::socket& socket) {
    tcp_info info{};
    socklen_t size = sizeof info;
    if (getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return "unknown";
    const auto state = from_linux_tcp_state(info.tcpi_state);
    return state ? std::string(to_string(*state)) : "unknown";
}

// What ss shows for a local port: the kernel's socket table read over netlink sock_diag.
json kernel_table(Port local_port, Narrator& say) {
    const auto sockets = diag::list_sockets({.udp = false, .port = local_port, .with_processes = false});
    if (!sockets) {
        say.note("(sock_diag unavailable: " + sockets.error().message + ")");
        return nullptr;
    }
    json rows = json::array();
    for (const auto& s : *sockets) {
        say.kernel(fmt::format("{:<6} {:<22} {}", s.state_name(), s.local.to_string(), s.remote.to_string()));
        rows.push_back(four_tuple_json(s.four_tuple(), s.state_name()));
    }
    return rows;
}

// ---- Part 1: many clients, one server port ------------------------------------------

// The server: accept `count` connections, keep the sockets open, tell the trace.
awaitable<void> accept_clients(tcp::acceptor& acceptor, trace::SocketId listener, std::size_t count,
                               std::vector<tcp::socket>& accepted, TraceRecorder& trace) {
    while (accepted.size() < count) {
        auto [error, socket] = co_await acceptor.async_accept(as_tuple(use_awaitable));
        if (error) {
            trace.call_failed("server", listener, "accept", error);
            co_return;
        }
        trace.accepted("server", listener, four_tuple_of(socket));
        accepted.push_back(std::move(socket));
    }
}

// One client: bind its own source address with port 0 (the kernel picks the port), then connect.
awaitable<void> connect_from(tcp::socket& socket, IpAddress source, tcp::endpoint server, std::error_code& result,
                             TraceRecorder& trace) {
    const auto id = trace.socket_created("client", Protocol::tcp, source.family());
    socket.open(server.protocol());
    socket.bind(to_tcp_endpoint({source, 0}), result);
    if (result) {
        trace.call_failed("client", id, "bind", result);
        co_return;
    }
    trace.bound("client", id, to_endpoint(socket.local_endpoint()), trace::BindHow::bind_zero);
    trace.connect_started("client", id, to_endpoint(server));
    auto [error] = co_await socket.async_connect(server, as_tuple(use_awaitable));
    result = error;
    if (error) trace.call_failed("client", id, "connect", error);
    else trace.state_changed("client", id, TcpState::syn_sent, TcpState::established, "SYN-ACK received");
}

// 127.0.0.1-127.0.0.4 for an IPv4 loopback server (all of 127.0.0.0/8 is this host, RFC 1122
// 3.2.1.3, and Linux answers on all of it without configuration); otherwise the server's own address.
std::vector<IpAddress> client_addresses(const IpAddress& server) {
    if (!(server.is_v4() && server.is_loopback())) return {server};
    return {IpAddress::v4(127, 0, 0, 1), IpAddress::v4(127, 0, 0, 2), IpAddress::v4(127, 0, 0, 3),
            IpAddress::v4(127, 0, 0, 4)};
}

// ---- Part 2: one local port, two connections -----------------------------------------

// SO_REUSEADDR must be on EVERY socket that shares the port, before bind(): Linux then lets
// them bind the same address and port as long as none of them listens (inet_csk_bind_conflict).
// That is all it relaxes: connect() still refuses a 4-tuple that already exists.
std::error_code bind_reusing(tcp::socket& socket, const Endpoint& local) {
    std::error_code error;
    socket.open(local.address.is_v4() ? tcp::v4() : tcp::v6(), error);
    if (!error) socket.set_option(asio::socket_base::reuse_address(true), error);
    if (!error) socket.bind(to_tcp_endpoint(local), error);
    return error;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab04_four_tuple", "Lab 04: the 4-tuple, not the port, names a connection"},
                   [](Lab& lab) {
        // --- Arguments --------------------------------------------------------------------------
        int per_address = 2;
        lab.add_server_options(default_port);
        lab.cli().add_option("--per-address", per_address, "clients from each source address, 1-50")
            ->capture_default_str();
        lab.parse();
        if (per_address < 1 || per_address > 50)
            return lab.usage_error(fmt::format("--per-address {}: must be 1-50", per_address));

        auto& say = lab.narrate();
        auto& trace = lab.trace();
        json facts = {{"lab", lab.name()}};
        say.title("Lab 04: the 4-tuple names a connection");
        asio::io_context io;
        std::error_code ignored;

        // --- 1. One server, one port -----------------------------------------------------------
        const Endpoint wanted = lab.server().endpoint();
        say.step(fmt::format("the server binds {} and listens", wanted.to_string()));
        tcp::acceptor server(io, to_tcp_endpoint(wanted).protocol());
        const auto server_id = trace.socket_created("server", Protocol::tcp, wanted.address.family());
        std::error_code error;
        server.bind(to_tcp_endpoint(wanted), error);
        if (error) return lab.bind_failed(wanted, error);
        server.listen(asio::socket_base::max_listen_connections);
        const Endpoint listening = to_endpoint(server.local_endpoint());
        trace.bound("server", server_id, listening, wanted.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port);
        trace.listening("server", server_id, asio::socket_base::max_listen_connections);
        say.kernel("listening on " + listening.to_string());
        say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'", listening.port));
        facts["server"] = endpoint_json(listening);

        // --- 2. Many clients connect -------------------------------------------------------------
        const auto sources = client_addresses(listening.address);
        const std::size_t count = sources.size() * static_cast<std::size_t>(per_address);
        say.step(fmt::format("{} clients connect to {}, {} from {}; each binds its source address with port 0", count,
                             listening.to_string(), per_address,
                             sources.size() == 1 ? sources[0].to_string()
                                                 : "each of " + sources.front().to_string() + "-" + sources.back().to_string()));
        std::vector<tcp::socket> clients;
        for (std::size_t i = 0; i < count; ++i) clients.emplace_back(io);
        std::vector<std::error_code> client_errors(count);
        std::vector<tcp::socket> accepted;
        asio::co_spawn(io, accept_clients(server, server_id, count, accepted, trace), asio::detached);
        for (std::size_t i = 0; i < count; ++i)
            asio::co_spawn(io, connect_from(clients[i], sources[i % sources.size()], to_tcp_endpoint(listening),
                                            client_errors[i], trace),
                           asio::detached);
        io.run_for(run_limit);
        facts["clients"] = json::array();
        for (std::size_t i = 0; i < count; ++i) {
            if (client_errors[i]) {
                say.kernel(fmt::format("client from {}: {}", sources[i % sources.size()].to_string(), describe_error(client_errors[i])));
                facts["clients"].push_back({{"source", sources[i % sources.size()].to_string()},
                                            {"errno_name", errno_name(client_errors[i])}});
                continue;
            }
            const auto tuple = four_tuple_of(clients[i]);
            say.kernel("client " + tuple.to_string());
            facts["clients"].push_back(four_tuple_json(tuple, kernel_state_of(clients[i])));
        }
        say.note("The kernel picked each client's port; every client knows the server as " + listening.to_string() + ".");
        say.see_it_yourself(fmt::format("ss -tnp 'dport = :{}'", listening.port));

        // --- 3. The server's table of accepted 4-tuples ------------------------------------------
        say.step(fmt::format("the server's table: the 4-tuple of each of the {} sockets accept() returned", accepted.size()));
        std::vector<std::pair<FourTuple, std::string>> table;
        for (auto& socket : accepted) table.emplace_back(four_tuple_of(socket), kernel_state_of(socket));
        std::sort(table.begin(), table.end());
        say.note(fmt::format("{:>3}  {:<22} {:<22} {}", "#", "local (server side)", "remote (the client)", "state"));
        facts["accepted"] = json::array();
        for (std::size_t i = 0; i < table.size(); ++i) {
            const auto& [tuple, state] = table[i];
            say.note(fmt::format("{:>3}  {:<22} {:<22} {}", i + 1, tuple.local.to_string(), tuple.remote.to_string(), state));
            facts["accepted"].push_back(four_tuple_json(tuple, state));
        }
        const bool all_share_port = std::all_of(table.begin(), table.end(),
                                                [&](const auto& row) { return row.first.local.port == listening.port; });
        say.kernel(all_share_port ? fmt::format("every accepted socket has local port {}, the listener's own port", listening.port)
                                  : "an accepted socket has another local port (unexpected)");
        say.note("One port, many connections: what differs is the remote address and port.");
        say.note(fmt::format("The kernel's socket table for local port {} (netlink sock_diag, as ss reads it):", listening.port));
        facts["kernel_table"] = kernel_table(listening.port, say);
        say.see_it_yourself(fmt::format("ss -tn 'sport = :{}'", listening.port));

        // --- 4. One client port, two servers at once -----------------------------------------------
        say.step("a second server listens; two client sockets bind ONE local port (SO_REUSEADDR on both) "
                 "and connect to the two servers");
        tcp::acceptor second_server(io, to_tcp_endpoint(listening).protocol());
        const auto second_id = trace.socket_created("server", Protocol::tcp, listening.address.family());
        second_server.bind(to_tcp_endpoint({listening.address, 0}));
        second_server.listen();
        const Endpoint second = to_endpoint(second_server.local_endpoint());
        trace.bound("server", second_id, second, trace::BindHow::bind_zero);
        trace.listening("server", second_id, asio::socket_base::max_listen_connections);
        say.kernel("second server listening on " + second.to_string());

        tcp::socket first_client(io), second_client(io);
        const auto first_id = trace.socket_created("client", Protocol::tcp, sources.front().family());
        if (const auto e = bind_reusing(first_client, {sources.front(), 0})) return lab.failure("bind: " + describe_error(e));
        const Endpoint shared = to_endpoint(first_client.local_endpoint());
        trace.bound("client", first_id, shared, trace::BindHow::bind_zero, "SO_REUSEADDR set");
        say.kernel("first client socket: bind " + sources.front().to_string() + ":0 -> " + shared.to_string());
        const auto second_client_id = trace.socket_created("client", Protocol::tcp, shared.address.family());
        const auto second_bind = bind_reusing(second_client, shared);
        say.kernel("second client socket: bind " + shared.to_string() + " -> " + (second_bind ? describe_error(second_bind) : "ok"));
        json part2 = {{"local", endpoint_json(shared)},
                      {"servers", {endpoint_json(listening), endpoint_json(second)}},
                      {"second_bind", second_bind ? json(errno_name(second_bind)) : json("ok")},
                      {"connections", json::array()}};
        if (second_bind) {
            trace.call_failed("client", second_client_id, "bind", second_bind);
        } else {
            trace.bound("client", second_client_id, shared, trace::BindHow::explicit_port, "SO_REUSEADDR set");
            // Blocking connects are enough: on loopback the handshake completes into the backlog at once.
            for (auto [socket, id, server_endpoint] : {std::tuple{&first_client, first_id, listening},
                                                       std::tuple{&second_client, second_client_id, second}}) {
                trace.connect_started("client", id, server_endpoint);
                socket->connect(to_tcp_endpoint(server_endpoint));
                trace.state_changed("client", id, TcpState::syn_sent, TcpState::established, "SYN-ACK received");
                const auto tuple = four_tuple_of(*socket);
                const auto state = kernel_state_of(*socket);
                say.kernel(fmt::format("{}  {}", tuple.to_string(), state));
                part2["connections"].push_back(four_tuple_json(tuple, state));
            }
        }
        say.note(fmt::format("The kernel's socket table for local port {}:", shared.port));
        part2["kernel_table"] = kernel_table(shared.port, say);
        say.note(fmt::format("Both connections use local port {} at the same time: their 4-tuples differ in the remote end,", shared.port));
        say.note("so the kernel can still tell every arriving segment which socket it belongs to.");
        say.see_it_yourself(fmt::format("ss -tn 'sport = :{}'", shared.port));

        // --- 5. The same 4-tuple twice -----------------------------------------------------------------
        say.step(fmt::format("a third socket binds {} too and connects to {}: the first connection's 4-tuple again",
                             shared.to_string(), listening.to_string()));
        tcp::socket third_client(io);
        const auto third_id = trace.socket_created("client", Protocol::tcp, shared.address.family());
        std::error_code third_error = bind_reusing(third_client, shared);
        if (!third_error) {
            trace.bound("client", third_id, shared, trace::BindHow::explicit_port, "SO_REUSEADDR set");
            trace.connect_started("client", third_id, listening);
            third_client.connect(to_tcp_endpoint(listening), third_error);
        }
        if (third_error)
            trace.call_failed("client", third_id, is_errno(third_error, EADDRNOTAVAIL) ? "connect" : "bind", third_error);
        say.kernel(third_error ? describe_error(third_error) : "ok (unexpected: two connections with one 4-tuple?)");
        say.note("Sharing the port was allowed; repeating a 4-tuple is not (EADDRNOTAVAIL from connect()),");
        say.note("because an arriving segment could then belong to either socket.");
        say.see_it_yourself(fmt::format("ss -tn 'sport = :{}'   (still only the two connections of step 4)", shared.port));
        part2["duplicate_connect"] = {{"remote", endpoint_json(listening)},
                                      {"errno_name", third_error ? json(errno_name(third_error)) : json(nullptr)}};
        facts["shared_local_port"] = part2;

        // --- 6. Clean up --------------------------------------------------------------------------------
        say.step("close every socket");
        say.pause();
        for (auto& socket : clients) socket.close(ignored);
        for (auto& socket : accepted) socket.close(ignored);
        for (auto* socket : {&first_client, &second_client, &third_client}) socket->close(ignored);
        second_server.close(ignored);
        server.close(ignored);
        trace.note("every socket closed");
        say.kernel("closed; whichever side closed a connection first now holds it in TIME-WAIT for a minute");
        say.see_it_yourself(fmt::format("ss -tn state time-wait '( sport = :{} or dport = :{} )'", listening.port, listening.port));

        if (lab.json()) lab.print_json(facts);
        return exit_ok;
    });
}
