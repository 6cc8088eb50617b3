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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>  // Asio 1.22 keeps as_tuple here; newer Asio has asio::as_tuple
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/observe.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/net.hpp"
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

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each) and the two hosts of the story, which share this one kernel.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    asio::io_context io{};
    Host server_host{}, client_host{};
    json& facts() { return see.document(); }
};

// A TCP socket the lab holds, with the name the trace gives it.
template <class Socket>
struct Held {
    explicit Held(asio::io_context& io) : socket(io) {}
    Held(Socket held, SocketRef named) : socket(std::move(held)), ref(std::move(named)) {}
    Socket socket;
    SocketRef ref{};
};
using Listener = Held<tcp::acceptor>;
using Connection = Held<tcp::socket>;

FourTuple four_tuple_of(const tcp::socket& socket) {
    return {to_endpoint(socket.local_endpoint()), to_endpoint(socket.remote_endpoint())};
}

// The kernel's own word on a socket's state (TCP_INFO), recorded once as observed; its
// RFC name goes to the --json entry at `json_at` as "state".
void read_state(Run& run, const SocketRef& ref, int fd, const std::string& json_at) {
    const auto state = run.see.read_state(ref, fd);
    run.facts()[json::json_pointer(json_at)]["state"] = state ? std::string(to_string(*state)) : "unknown";
}

// What ss shows for a local port: the kernel's socket table read over netlink sock_diag.
// The same dump refreshes the states the trace records (Observer::refresh).
json kernel_table(Run& run, Port local_port) {
    json rows = json::array();
    for (const auto& s : run.see.refresh()) {
        if (s.local.port != local_port) continue;
        run.say.kernel(fmt::format("{:<6} {:<22} {}", s.state_name(), s.local.to_string(), s.peer_text()));
        rows.push_back({{"local", json_of(s.local)}, {"remote", json_of(s.remote)}, {"state", s.state_name()}});
    }
    return rows;
}

// 127.0.0.1-127.0.0.4 for an IPv4 loopback server (all of 127.0.0.0/8 is this host, RFC 1122
// 3.2.1.3, and Linux answers on all of it without configuration); otherwise the server's own address.
std::vector<IpAddress> client_addresses(const IpAddress& server) {
    if (!(server.is_v4() && server.is_loopback())) return {server};
    return {IpAddress::v4(127, 0, 0, 1), IpAddress::v4(127, 0, 0, 2), IpAddress::v4(127, 0, 0, 3),
            IpAddress::v4(127, 0, 0, 4)};
}

// socket(), bind(), listen() (the kit's open_tcp_listener); `json_at` receives the listener's facts.
std::optional<Listener> listen_on(Run& run, const Endpoint& wanted, const std::string& json_at, std::error_code& error) {
    const Tell here{std::string(), json_at};
    auto opened = open_tcp_listener(run.see, run.io, run.server_host, wanted, here, here);
    if (!opened.listener) {
        error = opened.error;
        return std::nullopt;
    }
    run.facts()[json::json_pointer(json_at)]["state"] = std::string(to_string(run.see.state_of(opened.listener->ref)));
    return Listener{std::move(opened.listener->acceptor), opened.listener->ref};
}

// ---- Part 1: many clients, one server port ------------------------------------------

// Step 1: the server binds and listens.
std::optional<Listener> open_server(Run& run, int& exit_code) {
    const Endpoint wanted = run.lab.server().endpoint();
    run.see.step(fmt::format("the server binds {} and listens", wanted.to_string()));
    std::error_code error;
    auto server = listen_on(run, wanted, "/server", error);
    if (!server) {
        exit_code = run.lab.bind_failed(wanted, error);
        return std::nullopt;
    }
    const Endpoint listening = to_endpoint(server->socket.local_endpoint());
    run.facts()["server"].update(json_of(listening));
    run.say.kernel("listening on " + listening.to_string());
    run.say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'", listening.port));
    return server;
}

// The server: accept `count` connections and keep the sockets open.
awaitable<void> accept_clients(Run& run, Listener& listener, std::size_t count, std::vector<Connection>& accepted) {
    while (accepted.size() < count) {
        auto [error, socket] = co_await listener.socket.async_accept(as_tuple(use_awaitable));
        if (error) {
            run.see.record(Failed{listener.ref, "accept", error}, quietly);
            co_return;
        }
        const auto at = "/accepted/" + std::to_string(accepted.size());
        const auto ref = run.see.record(Accepted{listener.ref, four_tuple_of(socket)}, {std::string(), at});
        read_state(run, ref, socket.native_handle(), at);  // ESTABLISHED, from TCP_INFO
        accepted.push_back({std::move(socket), ref});
    }
}

// One client: bind its own source address with port 0 (the kernel picks the port), then
// connect. `json_at` receives what the kernel said; the client's line is printed in order later.
awaitable<void> connect_from(Run& run, Connection& client, IpAddress source, Endpoint server, std::string json_at) {
    client.ref = run.see.open(run.client_host, Protocol::tcp, source.family());
    run.facts()[json::json_pointer(json_at)]["source"] = source.to_string();
    std::error_code error;
    client.socket.open(to_tcp_endpoint(server).protocol(), error);
    if (!error) client.socket.bind(to_tcp_endpoint({source, 0}), error);
    if (error) {
        run.see.record(Failed{client.ref, "bind", error, {}, Endpoint{source, 0}}, {std::string(), json_at});
        close_and_tell(run.see, client.socket, client.ref);
        co_return;
    }
    run.see.record(Bound{client.ref, to_endpoint(client.socket.local_endpoint()), trace::BindHow::bind_zero},
                   {std::string(), json_at});
    run.see.record(Connecting{client.ref, server}, {std::string(), json_at});
    auto [refused] = co_await client.socket.async_connect(to_tcp_endpoint(server), as_tuple(use_awaitable));
    if (refused) {
        run.see.record(Failed{client.ref, "connect", refused}, {std::string(), json_at});
        close_and_tell(run.see, client.socket, client.ref);
        co_return;
    }
    read_state(run, client.ref, client.socket.native_handle(), json_at);  // ESTABLISHED, from TCP_INFO
}

// Step 2: every client connects at once; the server accepts them all.
void connect_clients(Run& run, Listener& server, int per_address, std::deque<Connection>& clients,
                     std::vector<Connection>& accepted) {
    const Endpoint listening = to_endpoint(server.socket.local_endpoint());
    const auto sources = client_addresses(listening.address);
    const std::size_t count = sources.size() * static_cast<std::size_t>(per_address);
    run.see.step(fmt::format("{} clients connect to {}, {} from {}; each binds its source address with port 0", count,
                             listening.to_string(), per_address,
                             sources.size() == 1 ? sources[0].to_string()
                                                 : "each of " + sources.front().to_string() + "-" + sources.back().to_string()));
    run.facts()["clients"] = json::array();
    run.facts()["accepted"] = json::array();
    for (std::size_t i = 0; i < count; ++i) clients.emplace_back(run.io);
    asio::co_spawn(run.io, accept_clients(run, server, count, accepted), asio::detached);
    for (std::size_t i = 0; i < count; ++i)
        asio::co_spawn(run.io, connect_from(run, clients[i], sources[i % sources.size()], listening, "/clients/" + std::to_string(i)),
                       asio::detached);
    run.io.run_for(run_limit);
    run.io.restart();
    for (const auto& entry : run.facts()["clients"]) {
        if (entry.contains("errno"))
            run.say.kernel(fmt::format("client from {}: {} ({})", entry["source"].get<std::string>(),
                                       entry["errno"].get<std::string>(), entry["message"].get<std::string>()));
        else
            run.say.kernel(fmt::format("client {}:{} -> {}:{}", entry["local"]["address"].get<std::string>(),
                                       entry["local"]["port"].get<int>(), entry["remote"]["address"].get<std::string>(),
                                       entry["remote"]["port"].get<int>()));
    }
    run.say.note("The kernel picked each client's port; every client knows the server as " + listening.to_string() + ".");
    run.say.see_it_yourself(fmt::format("ss -tnp 'dport = :{}'", listening.port));
}

// Step 3: the server's table of accepted 4-tuples, then the kernel's own.
void show_server_table(Run& run, Port listening_port) {
    auto table = run.facts()["accepted"];
    run.see.step(fmt::format("the server's table: the 4-tuple of each of the {} sockets accept() returned", table.size()));
    std::sort(table.begin(), table.end(), [](const json& a, const json& b) {
        return std::tie(a["remote"]["address"], a["remote"]["port"]) < std::tie(b["remote"]["address"], b["remote"]["port"]);
    });
    run.say.note(fmt::format("{:>3}  {:<22} {:<22} {}", "#", "local (server side)", "remote (the client)", "state"));
    bool all_share_port = true;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& row = table[i];
        const auto text = [](const json& endpoint) {
            return fmt::format("{}:{}", endpoint["address"].get<std::string>(), endpoint["port"].get<int>());
        };
        run.say.note(fmt::format("{:>3}  {:<22} {:<22} {}", i + 1, text(row["local"]), text(row["remote"]),
                                 row["state"].get<std::string>()));
        all_share_port = all_share_port && row["local"]["port"] == listening_port;
    }
    run.say.kernel(all_share_port ? fmt::format("every accepted socket has local port {}, the listener's own port", listening_port)
                                  : "an accepted socket has another local port (unexpected)");
    run.say.note("One port, many connections: what differs is the remote address and port.");
    run.say.note(fmt::format("The kernel's socket table for local port {} (netlink sock_diag, as ss reads it):", listening_port));
    run.facts()["kernel_table"] = kernel_table(run, listening_port);
    run.say.see_it_yourself(fmt::format("ss -tan 'sport = :{}'   (-a: the listener too)", listening_port));
}

// ---- Part 2: one local port, two connections -----------------------------------------

// SO_REUSEADDR must be on EVERY socket that shares the port, before bind(): Linux then lets
// them bind the same address and port as long as none of them listens (inet_csk_bind_conflict).
// That is all it relaxes: connect() still refuses a 4-tuple that already exists.
std::error_code bind_reusing(Run& run, Connection& client, const Endpoint& local) {
    std::error_code error;
    client.socket.open(local.address.is_v4() ? tcp::v4() : tcp::v6(), error);
    client.ref = run.see.open(run.client_host, Protocol::tcp, local.address.family());
    if (!error) client.socket.set_option(asio::socket_base::reuse_address(true), error);
    if (!error) client.socket.bind(to_tcp_endpoint(local), error);
    if (error) {
        run.see.record(Failed{client.ref, "bind", error, {}, local}, quietly);
        return error;
    }
    const auto how = local.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port;
    run.see.record(Bound{client.ref, to_endpoint(client.socket.local_endpoint()), how, {}, {}, "SO_REUSEADDR set"}, quietly);
    return error;
}

// A blocking connect is enough: on loopback the handshake completes into the backlog at once.
void connect_blocking(Run& run, Connection& client, const Endpoint& server, const std::string& json_at) {
    run.see.record(Connecting{client.ref, server}, {std::string(), json_at});
    client.socket.connect(to_tcp_endpoint(server));
    const auto tuple = four_tuple_of(client.socket);
    run.facts()[json::json_pointer(json_at)]["local"] = json_of(tuple.local);
    read_state(run, client.ref, client.socket.native_handle(), json_at);  // ESTABLISHED, from TCP_INFO
    run.say.kernel(fmt::format("{}  {}", tuple.to_string(), run.facts()[json::json_pointer(json_at)]["state"].get<std::string>()));
}

struct SharedPort {
    std::optional<Listener> second_server;
    Connection first, second;
    Endpoint local{};
};

// Step 4: a second server; two client sockets bind one local port and connect to the two servers.
std::optional<int> share_one_port(Run& run, const Endpoint& listening, const IpAddress& source, SharedPort& part) {
    run.see.step("a second server listens; two client sockets bind ONE local port (SO_REUSEADDR on both) "
                 "and connect to the two servers");
    std::error_code error;
    part.second_server = listen_on(run, {listening.address, 0}, "/shared_local_port/second_server", error);
    if (!part.second_server) return run.lab.failure("second server: " + describe_error(error));
    const Endpoint second = to_endpoint(part.second_server->socket.local_endpoint());
    run.say.kernel("second server listening on " + second.to_string());

    if (const auto e = bind_reusing(run, part.first, {source, 0})) return run.lab.failure("bind: " + describe_error(e));
    part.local = to_endpoint(part.first.socket.local_endpoint());
    run.say.kernel("first client socket: bind " + source.to_string() + ":0 -> " + part.local.to_string());
    const auto second_bind = bind_reusing(run, part.second, part.local);
    run.say.kernel("second client socket: bind " + part.local.to_string() + " -> " +
                   (second_bind ? describe_error(second_bind) : "ok"));
    auto& facts = run.facts()["shared_local_port"];
    facts.update({{"local", json_of(part.local)},
                  {"servers", {json_of(listening), json_of(second)}},
                  {"second_bind", second_bind ? json(errno_name(second_bind)) : json("ok")},
                  {"connections", json::array()}});
    if (!second_bind) {
        connect_blocking(run, part.first, listening, "/shared_local_port/connections/0");
        connect_blocking(run, part.second, second, "/shared_local_port/connections/1");
    }
    run.say.note(fmt::format("The kernel's socket table for local port {}:", part.local.port));
    facts["kernel_table"] = kernel_table(run, part.local.port);
    run.say.note(fmt::format("Both connections use local port {} at the same time: their 4-tuples differ in the remote end,",
                             part.local.port));
    run.say.note("so the kernel can still tell every arriving segment which socket it belongs to.");
    run.say.see_it_yourself(fmt::format("ss -tn 'sport = :{}'", part.local.port));
    return std::nullopt;
}

// Step 5: a third socket on that port repeats the first connection's 4-tuple.
void repeat_a_four_tuple(Run& run, const Endpoint& shared, const Endpoint& listening, Connection& third) {
    run.see.step(fmt::format("a third socket binds {} too and connects to {}: the first connection's 4-tuple again",
                             shared.to_string(), listening.to_string()));
    std::error_code error = bind_reusing(run, third, shared);
    if (!error) {
        run.see.record(Connecting{third.ref, listening}, quietly);
        third.socket.connect(to_tcp_endpoint(listening), error);
        if (error) run.see.record(Failed{third.ref, "connect", error}, quietly);
    }
    if (error) close_and_tell(run.see, third.socket, third.ref);  // refused before any packet: nothing left in the kernel
    run.say.kernel(error ? describe_error(error) : "ok (unexpected: two connections with one 4-tuple?)");
    run.say.note("Sharing the port was allowed; repeating a 4-tuple is not (EADDRNOTAVAIL from connect()),");
    run.say.note("because an arriving segment could then belong to either socket.");
    run.say.see_it_yourself(fmt::format("ss -tn 'sport = :{}'   (still only the two connections of step 4)", shared.port));
    run.facts()["shared_local_port"]["duplicate_connect"] = {{"remote", json_of(listening)},
                                                             {"errno_name", error ? json(errno_name(error)) : json(nullptr)}};
}

// Step 6: close everything, clients first; then ask the kernel who is left.
template <class Socket>
void close_held(Run& run, Held<Socket>& held) { close_and_tell(run.see, held.socket, held.ref); }

void close_everything(Run& run, std::deque<Connection>& clients, std::vector<Connection>& accepted, SharedPort& part,
                      Listener& server, Port listening_port) {
    run.see.step("close every socket, the clients first");
    for (auto& client : clients) close_held(run, client);
    for (auto& socket : accepted) close_held(run, socket);
    close_held(run, part.first);
    close_held(run, part.second);
    if (part.second_server) close_held(run, *part.second_server);
    close_held(run, server);
    // The FIN exchanges take a moment (the peer may delay its ACK); the kit follows every
    // closed connection with sock_diag until none is half-way, and records what it finds.
    int time_wait = 0, left = 0;
    for (const auto& s : run.see.settle()) {
        const bool ours = s.local.port == listening_port || s.remote.port == listening_port ||
                          (part.local.port != 0 && s.local.port == part.local.port);
        if (!ours) continue;
        ++left;
        if (s.tcp_state() == TcpState::time_wait) ++time_wait;
        run.say.kernel(fmt::format("{:<10} {:<22} {}", s.state_name(), s.local.to_string(), s.peer_text()));
    }
    run.say.kernel(fmt::format("{} sockets left in the kernel, {} of them in TIME-WAIT: the side that closed first keeps each "
                               "connection there for a minute",
                               left, time_wait));
    run.facts()["after_close"] = {{"left", left}, {"time_wait", time_wait}};
    run.say.see_it_yourself(fmt::format("ss -tn state time-wait '( sport = :{} or dport = :{} )'", listening_port, listening_port));
}

int four_tuple_story(Run& run, int per_address) {
    int exit_code = exit_ok;
    auto server = open_server(run, exit_code);
    if (!server) return exit_code;
    const Endpoint listening = to_endpoint(server->socket.local_endpoint());
    std::deque<Connection> clients;
    std::vector<Connection> accepted;
    connect_clients(run, *server, per_address, clients, accepted);
    show_server_table(run, listening.port);
    SharedPort part{std::nullopt, Connection(run.io), Connection(run.io), {}};
    if (const auto failed = share_one_port(run, listening, client_addresses(listening.address).front(), part)) return *failed;
    Connection third(run.io);
    repeat_a_four_tuple(run, part.local, listening, third);
    close_everything(run, clients, accepted, part, *server, listening.port);
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab04_four_tuple", "Lab 04: the 4-tuple, not the port, names a connection"},
                   [](Lab& lab) {
        int per_address = 2;
        lab.add_server_options(default_port);
        lab.cli().add_option("--per-address", per_address, "clients from each source address, 1-50")
            ->capture_default_str();
        lab.parse();
        if (per_address < 1 || per_address > 50)
            return lab.usage_error(fmt::format("--per-address {}: must be 1-50", per_address));

        Run run{lab, lab.narrate(), lab.observer()};
        // One kernel, two hosts of the story: the server on --bind, the clients on the
        // loopback addresses they bind.
        const auto server_address = lab.server().bind;
        run.server_host = run.see.declare({"server", {server_address}, "server"});
        run.client_host = run.see.declare({"client", client_addresses(server_address), "client"});
        run.facts()["lab"] = lab.name();
        run.say.title("Lab 04: the 4-tuple names a connection");
        const int result = four_tuple_story(run, per_address);
        if (result != exit_ok) return result;
        if (lab.json()) lab.print_json(run.facts());
        return exit_ok;
    });
}
