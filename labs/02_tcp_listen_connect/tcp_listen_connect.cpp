// Lab 02: a server listens, a client connects, and the kernel tells us the ports.
//
// A TCP server binds a port and listens; a client connects without choosing a port,
// so the kernel gives it an ephemeral one. accept() returns a NEW socket that has the
// SAME local port as the listener: ports name conversations only together with the
// other end (the 4-tuple). Both directions travel over one port pair. The side that
// closes first is the one the kernel keeps in TIME-WAIT (RFC 9293 section 3.6).
//
//   lab02_tcp_listen_connect                       both halves, narrated
//   lab02_tcp_listen_connect --closer server       the server closes first instead
//   lab02_tcp_listen_connect --serve --port 8080   terminal 1: only the server
//   lab02_tcp_listen_connect --connect 127.0.0.1:8080   terminal 2: only the client
//   lab02_tcp_listen_connect --json --port 0       the observed facts as JSON

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/observe.hpp"
#include "portlab/text_safety.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/ports.hpp"

using namespace portlab;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using nlohmann::json;
constexpr auto no_throw = asio::experimental::as_tuple(use_awaitable);  // errors as values

namespace {

constexpr Port default_port = 8080;
constexpr std::string_view client_says = "hello from the client";
constexpr std::string_view server_says = "hello back from the server";

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)
using labkit::quietly;

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each), the two hosts of the story, and who closes first.
struct Run {
    labkit::Lab& lab;
    labkit::Narrator& say;
    labkit::Observer& see;
    std::string closer;  // "client" or "server": who calls close() first
    std::optional<PortRange> ephemeral;
    std::string waiting_for;  // what the run was doing if it runs out of time
    bool client_arrived = false;  // accept() returned: --wait no longer bounds the run
    labkit::Host server_host{}, client_host{};
    json& facts() { return see.document(); }
};

// A socket the lab holds, with the name the trace gives it.
using Listener = labkit::TcpListener;
struct Connection {
    tcp::socket socket;
    labkit::SocketRef ref;
    [[nodiscard]] FourTuple four_tuple() const {
        return {labkit::to_endpoint(socket.local_endpoint()), labkit::to_endpoint(socket.remote_endpoint())};
    }
};

// As ss prints a peer: a listener has none, "*".
std::string peer_text(const Endpoint& endpoint) {
    const auto text = endpoint.to_string();  // "0.0.0.0:0", "[::]:0"
    return endpoint.port == 0 ? text.substr(0, text.size() - 1) + "*" : text;
}

std::string owner_text(const diag::SocketInfo& socket) {
    if (socket.owners.empty()) return socket.inode == 0 ? "(no process: the kernel holds it)" : "-";
    return fmt::format("{}(pid {})", socket.owners.front().name, socket.owners.front().pid);
}

// ---- asking the kernel (netlink sock_diag, as ss does) -------------------------------

// The kernel's entries for one connection, from either side, plus (optionally) the
// listener on `listening_port`: exactly what `ss -tan` would list for them. Read by the
// lab kit's refresh(), which records in the trace every state it finds changed.
std::vector<diag::SocketInfo> kernel_view(Run& run, const FourTuple& connection, std::optional<Port> listening_port = {}) {
    std::vector<diag::SocketInfo> mine;
    for (const auto& socket : run.see.refresh()) {
        const bool is_listener = listening_port && socket.tcp_state() == TcpState::listen &&
                                 socket.local.port == *listening_port && socket.local.address == connection.remote.address;
        if (is_listener || socket.four_tuple() == connection || socket.four_tuple() == connection.reversed())
            mine.push_back(socket);
    }
    return mine;
}

std::optional<diag::SocketInfo> side_of(const std::vector<diag::SocketInfo>& view, const FourTuple& side) {
    for (const auto& socket : view)
        if (socket.four_tuple() == side) return socket;
    return std::nullopt;
}

std::string state_of(const std::vector<diag::SocketInfo>& view, const FourTuple& side) {
    const auto socket = side_of(view, side);
    return socket ? socket->state_name() : "gone";
}

json view_json(const std::vector<diag::SocketInfo>& view) {
    json rows = json::array();
    for (const auto& socket : view)
        rows.push_back({{"state", socket.state_name()}, {"local", labkit::json_of(socket.local)},
                        {"remote", labkit::json_of(socket.remote)}, {"inode", socket.inode},
                        {"pids", [&] { json pids = json::array(); for (const auto& o : socket.owners) pids.push_back(o.pid); return pids; }()}});
    return rows;
}

void print_view(Run& run, const std::vector<diag::SocketInfo>& view) {
    run.say.note(fmt::format("{:<11} {:<22} {:<22} {}", "State", "Local Address:Port", "Peer Address:Port", "Process"));
    for (const auto& socket : view)
        run.say.note(fmt::format("{:<11} {:<22} {:<22} {}", socket.state_name(), socket.local.to_string(),
                                 peer_text(socket.remote), owner_text(socket)));
}

// For one half on its own: whose is the TIME-WAIT entry, this process's side or the peer's?
void say_who_waits(Run& run, const std::vector<diag::SocketInfo>& settled, const FourTuple& mine, std::string_view me) {
    print_view(run, settled);
    const auto entry = side_of(settled, mine);
    const bool mine_waits = entry && entry->tcp_state() == TcpState::time_wait;
    run.say.kernel(mine_waits ? fmt::format("the TIME-WAIT entry is ours ({} side, {})", me, mine.local.to_string())
                              : fmt::format("the TIME-WAIT entry, if any, is the other side's, not ours ({})", mine.local.to_string()));
    run.facts()["close"]["time_wait_side"] = mine_waits ? json(me) : json(nullptr);
}

// Asks the kernel every 20 ms, at most `attempts` times, until `done` holds for its view.
template <class Done>
awaitable<std::vector<diag::SocketInfo>> kernel_view_once(Run& run, const FourTuple& connection, int attempts, Done done) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    std::vector<diag::SocketInfo> view;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        view = kernel_view(run, connection);
        if (done(view)) break;
        timer.expires_after(std::chrono::milliseconds(20));
        co_await timer.async_wait(use_awaitable);
    }
    co_return view;
}

// After both closes, the kernel needs a moment (one FIN and one ACK on loopback). Waits,
// at most 2 s, until one side is in TIME-WAIT and no other entry of the connection is left.
awaitable<std::vector<diag::SocketInfo>> settled_after_close(Run& run, const FourTuple& connection) {
    co_return co_await kernel_view_once(run, connection, 100, [](const auto& view) {
        return !view.empty() && std::all_of(view.begin(), view.end(),
                                            [](const auto& s) { return s.tcp_state() == TcpState::time_wait; });
    });
}

// After the first FIN: the peer's kernel delays its ACK (it enters "ping-pong" mode in
// CLOSE-WAIT, hoping to send the ACK with its own FIN; tcp_fin() in net/ipv4/tcp_input.c),
// so the closer sits in FIN-WAIT-1 for up to the delayed-ACK timeout (40-200 ms). Waits at
// most 0.5 s for the ACK, so the kernel's answer is settled when the lab pauses.
awaitable<std::vector<diag::SocketInfo>> settled_after_fin(Run& run, const FourTuple& closer_side) {
    co_return co_await kernel_view_once(run, closer_side, 25, [&](const auto& view) {
        return state_of(view, closer_side) != "FIN-WAIT-1";
    });
}

// ---- the steps ------------------------------------------------------------------------

// Step: socket(), bind(), listen().
std::optional<Listener> open_listener(Run& run, asio::io_context& io, int& exit_code) {
    const auto requested = run.lab.server().endpoint();
    run.see.step(fmt::format("server: socket(), bind({}), listen()", requested.to_string()));
    auto opened = labkit::open_tcp_listener(run.see, io, run.server_host, requested, {{}, "/listener"}, {{}, "/listener"});
    if (!opened.listener) {
        exit_code = run.lab.bind_failed(requested, opened.error);
        return std::nullopt;
    }
    const auto port = opened.listener->acceptor.local_endpoint().port();
    run.say.note("The listening socket has no peer. It never carries data: it only hands out new sockets.");
    run.say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'   and   lsof -nP -iTCP:{} -sTCP:LISTEN", port, port));
    run.facts()["listener"]["port_requested"] = requested.port;
    return std::move(opened.listener);
}

// Step: connect() from a socket that never called bind().
awaitable<std::optional<Connection>> connect_client(Run& run, const Endpoint& server) {
    run.see.step(fmt::format("client: socket(), connect({}) without bind()", server.to_string()));
    tcp::socket client(co_await asio::this_coro::executor);
    const auto ref = run.see.open(run.client_host, Protocol::tcp, server.address.family());
    run.see.record(Connecting{ref, server}, {"", "/client"});
    run.waiting_for = "connect() to " + server.to_string();
    auto [error] = co_await client.async_connect(labkit::to_tcp_endpoint(server), no_throw);
    if (error) {
        run.see.record(Failed{ref, "connect", error}, {labkit::describe_error(error), {}});
        run.see.record(Closed{ref}, quietly);
        run.facts()["connect_error"] = labkit::errno_name(error);
        co_return std::nullopt;
    }
    // connect() on an unbound socket bound it first, to a port of the kernel's choice.
    const auto local = labkit::to_endpoint(client.local_endpoint());
    run.see.record(Bound{ref, local, trace::BindHow::ephemeral, run.ephemeral},
                   {fmt::format("connected: the client's socket is {} -> {}", local.to_string(), server.to_string()),
                    "/client"});
    run.see.read_state(ref, client.native_handle());  // ESTABLISHED, as TCP_INFO reports it

    const bool in_range = run.ephemeral && run.ephemeral->contains(local.port);
    if (run.ephemeral)
        run.say.note(fmt::format("Port {} is an ephemeral port: the kernel picked it from {} ({}).", local.port,
                                 run.ephemeral->to_string(), in_range ? "it lies inside" : "it lies OUTSIDE"));
    run.say.see_it_yourself(fmt::format("ss -tnp 'sport = :{}'", local.port));
    run.facts()["client"]["port_in_ephemeral_range"] = run.ephemeral ? json(in_range) : json(nullptr);
    co_return Connection{std::move(client), ref};
}

// Step: accept(). The handshake already happened in the kernel; accept() only takes the
// finished connection from the listener's queue.
awaitable<Connection> accept_one(Run& run, Listener& listener) {
    const auto listening = labkit::to_endpoint(listener.acceptor.local_endpoint());
    run.see.step("server: accept()");
    run.waiting_for = "a client to connect to " + listening.to_string();
    tcp::socket accepted = co_await listener.acceptor.async_accept(use_awaitable);
    run.client_arrived = true;
    const FourTuple seen{labkit::to_endpoint(accepted.local_endpoint()), labkit::to_endpoint(accepted.remote_endpoint())};
    const auto ref = run.see.record(
        labkit::fact::Accepted{listener.ref, seen},
        {fmt::format("a NEW socket {} -> {}; the listener stays as it was", seen.local.to_string(), seen.remote.to_string()),
         "/accepted"});
    run.see.read_state(ref, accepted.native_handle());

    const bool same_port = seen.local.port == listening.port;
    run.say.note(fmt::format("Its local port is {}: {} the listener's. Port {} now names two sockets; the kernel tells",
                             seen.local.port, same_port ? "the same as" : "NOT the same as", listening.port));
    run.say.note("their packets apart by the whole 4-tuple (local address, local port, peer address, peer port).");
    run.facts()["accepted"]["same_local_port_as_listener"] = same_port;
    co_return Connection{std::move(accepted), ref};
}

// Step: one message each way, over the one pair of ports.
awaitable<std::string> send_and_receive(tcp::socket& from, tcp::socket& to, std::string_view text) {
    co_await asio::async_write(from, asio::buffer(text), use_awaitable);
    std::string received(text.size(), '\0');
    co_await asio::async_read(to, asio::buffer(received), use_awaitable);
    co_return received;
}

json message_json(std::string_view from, const tcp::socket& sender, const tcp::socket& receiver, const std::string& text) {
    return {{"from", from}, {"text", text}, {"bytes", text.size()},
            {"sender_local", labkit::json_of(labkit::to_endpoint(sender.local_endpoint()))},
            {"receiver_local", labkit::json_of(labkit::to_endpoint(receiver.local_endpoint()))},
            {"receiver_remote", labkit::json_of(labkit::to_endpoint(receiver.remote_endpoint()))}};
}

void narrate_message(Run& run, std::string_view from, std::string_view to, const tcp::socket& receiver,
                     const std::string& text) {
    const auto local = labkit::to_endpoint(receiver.local_endpoint());
    const auto remote = labkit::to_endpoint(receiver.remote_endpoint());
    run.say.kernel(fmt::format("{} received \"{}\" ({} bytes) from {} on {}", to, text, text.size(), remote.to_string(), local.to_string()));
    run.say.note(fmt::format("({} -> {}: source port {}, destination port {})", from, to, remote.port, local.port));
}

// Step: one message each way over the same connection.
awaitable<void> exchange_messages(Run& run, Connection& client, Connection& server, Port listening_port) {
    run.see.step("one message each way over the same connection");
    run.facts()["messages"] = json::array();
    const auto request = co_await send_and_receive(client.socket, server.socket, client_says);
    narrate_message(run, "client", "server", server.socket, request);
    run.facts()["messages"].push_back(message_json("client", client.socket, server.socket, request));
    const auto reply = co_await send_and_receive(server.socket, client.socket, server_says);
    narrate_message(run, "server", "client", client.socket, reply);
    run.facts()["messages"].push_back(message_json("server", server.socket, client.socket, reply));
    run.say.note("Both directions use the same two ports, swapped: one connection, one 4-tuple.");
    run.say.see_it_yourself(fmt::format("sudo tcpdump -ni lo -A 'tcp port {}'   (then run the lab again)", listening_port));
}

// Reads until the peer's FIN: read() returning 0 bytes is TCP's end of file.
awaitable<bool> read_end_of_file(tcp::socket& socket) {
    char byte = 0;
    auto [error, count] = co_await socket.async_read_some(asio::buffer(&byte, 1), no_throw);
    co_return error == asio::error::eof && count == 0;
}

// The last steps: the closer closes, the other side reads end of file and closes
// too; then the kernel shows who is left in TIME-WAIT.
awaitable<void> close_and_find_time_wait(Run& run, Connection& closer, std::string_view closer_name, Connection& passive,
                                         std::string_view passive_name) {
    const FourTuple closer_side = closer.four_tuple();
    const FourTuple passive_side = closer_side.reversed();

    run.see.step(fmt::format("{}: close() first (the active close); {} reads until end of file", closer_name, passive_name));
    closer.socket.close();
    run.see.record(Closed{closer.ref}, quietly);
    run.waiting_for = std::string(passive_name) + " to see end of file";
    const bool eof = co_await read_end_of_file(passive.socket);
    run.see.read_state(passive.ref, passive.socket.native_handle());  // CLOSE-WAIT
    const auto after_fin = co_await settled_after_fin(run, closer_side);
    run.say.kernel(fmt::format("{}'s read() returned {}: the FIN arrived", passive_name, eof ? "0 bytes (end of file)" : "an error"));
    run.say.kernel(fmt::format("now {} is {} and {} is {}", closer_name, state_of(after_fin, closer_side), passive_name,
                               state_of(after_fin, passive_side)));
    if (state_of(after_fin, closer_side) == "FIN-WAIT-1")
        run.say.note(fmt::format("FIN-WAIT-1: {}'s FIN is not acknowledged yet ({}'s kernel may delay that ACK).", closer_name, passive_name));
    else if (state_of(after_fin, closer_side) == "FIN-WAIT-2")
        run.say.note(fmt::format("FIN-WAIT-2: {}'s FIN was acknowledged; it waits for {}'s FIN.", closer_name, passive_name));
    run.say.see_it_yourself(fmt::format("ss -tan '( sport = :{} or dport = :{} )'", closer_side.local.port, closer_side.local.port));

    run.see.step(fmt::format("{}: close() second (the passive close)", passive_name));
    passive.socket.close();
    run.see.record(Closed{passive.ref}, quietly);
    const auto settled = co_await settled_after_close(run, closer_side);
    const auto passive_entry = side_of(settled, passive_side);

    print_view(run, settled);
    std::string owner = "nobody";
    for (const auto& socket : settled)
        if (socket.tcp_state() == TcpState::time_wait)
            owner = socket.four_tuple() == closer_side ? std::string(closer_name) : std::string(passive_name);
    run.say.kernel(fmt::format("TIME-WAIT: {}; {}'s socket: {}", owner == "nobody" ? "none" : "the " + owner + "'s side",
                               passive_name, passive_entry ? passive_entry->state_name() : "gone"));
    run.say.note("The side that closed first waits in TIME-WAIT for 2 MSL (60 s on Linux) so that a late duplicate");
    run.say.note("segment cannot be mistaken for a new connection on the same 4-tuple (RFC 9293 section 3.6).");
    run.say.note("No process owns it any more (inode 0): the kernel keeps it, even after this lab exits.");
    run.say.see_it_yourself(fmt::format("ss -tan state time-wait '( sport = :{} or dport = :{} )'", closer_side.local.port,
                                        closer_side.local.port));

    run.facts()["close"] = {{"active_closer", closer_name},
                            {"passive_saw_end_of_file", eof},
                            {"after_fin", {{"closer_state", state_of(after_fin, closer_side)},
                                           {"passive_state", state_of(after_fin, passive_side)}}},
                            {"after_both_closed", view_json(settled)},
                            {"time_wait_side", owner == "nobody" ? json(nullptr) : json(owner)},
                            {"passive_state_after_close", passive_entry ? passive_entry->state_name() : "gone"}};
}

// Step: the listener goes; whatever sits in TIME-WAIT stays.
void close_listener(Run& run, Listener& listener) {
    const auto port = listener.acceptor.local_endpoint().port();
    run.see.step("server: close the listening socket");
    listener.acceptor.close();
    run.see.record(Closed{listener.ref},
                   {fmt::format("the listener is gone; nothing in this process holds port {} any more", port), {}});
    run.say.note("Whatever sits in TIME-WAIT stays in the kernel's table; lab 06 shows when it blocks a new bind().");
    run.say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'   (nothing listens)   and   ss -tan state time-wait", port));
}

// ---- the three ways to run --------------------------------------------------------------

// Both halves in one process: the whole story, in order.
awaitable<int> both_halves(Run& run) {
    auto& io = static_cast<asio::io_context&>((co_await asio::this_coro::executor).context());
    int exit_code = labkit::exit_ok;
    auto listener = open_listener(run, io, exit_code);
    if (!listener) co_return exit_code;
    const auto listening = labkit::to_endpoint(listener->acceptor.local_endpoint());

    auto client = co_await connect_client(run, listening);
    if (!client) co_return run.lab.failure("the client could not connect to the lab's own server");
    for (const auto& socket : kernel_view(run, client->four_tuple(), listening.port))
        if (socket.tcp_state() == TcpState::listen) {
            run.say.note(fmt::format("connect() returned before the server called accept(): the kernel finished the"));
            run.say.note(fmt::format("handshake by itself and queued the connection (the listener's Recv-Q is {}).", socket.recv_q));
            run.facts()["accept_queue_before_accept"] = socket.recv_q;
        }

    auto accepted = co_await accept_one(run, *listener);
    const auto all = kernel_view(run, client->four_tuple(), listening.port);
    run.say.note("The kernel's table now holds three sockets for this lab:");
    print_view(run, all);
    run.say.see_it_yourself(fmt::format("ss -tanp '( sport = :{} or dport = :{} )'", listening.port, listening.port));
    run.facts()["kernel_sockets_after_accept"] = view_json(all);

    co_await exchange_messages(run, *client, accepted, listening.port);
    if (run.closer == "client")
        co_await close_and_find_time_wait(run, *client, "client", accepted, "server");
    else
        co_await close_and_find_time_wait(run, accepted, "server", *client, "client");
    close_listener(run, *listener);
    co_return labkit::exit_ok;
}

// Terminal 1: only the server. Waits for one client, answers it, closes.
awaitable<int> serve_only(Run& run) {
    auto& io = static_cast<asio::io_context&>((co_await asio::this_coro::executor).context());
    int exit_code = labkit::exit_ok;
    auto listener = open_listener(run, io, exit_code);
    if (!listener) co_return exit_code;
    const auto listening = labkit::to_endpoint(listener->acceptor.local_endpoint());
    run.say.note(fmt::format("In a second terminal: lab02_tcp_listen_connect --connect {}", listening.to_string()));

    auto accepted = co_await accept_one(run, *listener);
    listener->acceptor.close();  // one client is the whole story; nobody else may connect now
    run.see.record(Closed{listener->ref}, quietly);

    run.see.step("read the client's message, answer it");
    const auto side = accepted.four_tuple();
    run.say.see_it_yourself(fmt::format("ss -tnp 'sport = :{}'", side.local.port));
    std::string request(client_says.size(), '\0');
    run.waiting_for = "the client's message";
    const auto [read_error, count] = co_await asio::async_read(accepted.socket, asio::buffer(request), no_throw);
    request.resize(count);
    if (read_error) {
        // A peer that closes (or resets) before its message is a story too, told in one line.
        co_return run.lab.failure(fmt::format("the client at {} {} after {} of the {} bytes of its message{}",
                                              side.remote.to_string(),
                                              read_error == asio::error::eof ? "closed the connection"
                                                                             : "failed: " + labkit::describe_error(read_error),
                                              count, client_says.size(),
                                              count == 0 ? "" : ": \"" + text::printable(request) + "\""));
    }
    run.say.kernel(fmt::format("received \"{}\" from {}", text::printable(request), side.remote.to_string()));
    co_await asio::async_write(accepted.socket, asio::buffer(server_says), use_awaitable);
    run.say.kernel(fmt::format("sent \"{}\" back over the same connection", server_says));

    if (run.closer == "server") {
        run.see.step("server: close() first (the active close)");
    } else {
        run.see.step("wait for the client to close first, then close");
        run.waiting_for = "the client to close";
        const bool eof = co_await read_end_of_file(accepted.socket);
        run.see.read_state(accepted.ref, accepted.socket.native_handle());
        run.say.kernel(eof ? "read() returned 0 bytes: the client's FIN arrived (we are in CLOSE-WAIT)" : "the read failed");
    }
    accepted.socket.close();
    run.see.record(Closed{accepted.ref}, quietly);
    const auto settled = co_await settled_after_close(run, side);
    run.facts()["close"] = {{"active_closer", run.closer}, {"after_both_closed", view_json(settled)}};
    say_who_waits(run, settled, side, "server");
    run.say.see_it_yourself("ss -tan state time-wait");
    co_return labkit::exit_ok;
}

// Terminal 2: only the client.
awaitable<int> connect_only(Run& run, const Endpoint& server) {
    auto client = co_await connect_client(run, server);
    if (!client) co_return run.lab.failure("connect to " + server.to_string() + " failed: " + run.facts()["connect_error"].get<std::string>() +
                                           " (is lab02_tcp_listen_connect --serve running there?)");
    const auto side = client->four_tuple();
    if (const auto other = side_of(kernel_view(run, side), side.reversed())) {
        run.say.note("The server's accepted socket, as the kernel lists it:");
        print_view(run, {*other});
    }

    run.see.step("send a message, read the answer");
    run.say.see_it_yourself(fmt::format("ss -tnp 'sport = :{}'", side.local.port));
    co_await asio::async_write(client->socket, asio::buffer(client_says), use_awaitable);
    std::string reply(server_says.size(), '\0');
    run.waiting_for = "the server's answer";
    co_await asio::async_read(client->socket, asio::buffer(reply), use_awaitable);
    run.say.kernel(fmt::format("received \"{}\" from {} on {}", reply, server.to_string(), side.local.to_string()));

    if (run.closer == "client") {
        run.see.step("client: close() first (the active close)");
    } else {
        run.see.step("wait for the server to close first, then close");
        run.waiting_for = "the server to close";
        const bool eof = co_await read_end_of_file(client->socket);
        run.see.read_state(client->ref, client->socket.native_handle());
        run.say.kernel(eof ? "read() returned 0 bytes: the server's FIN arrived" : "the read failed");
    }
    client->socket.close();
    run.see.record(Closed{client->ref}, quietly);
    const auto settled = co_await settled_after_close(run, side);
    run.facts()["close"] = {{"active_closer", run.closer}, {"after_both_closed", view_json(settled)}};
    say_who_waits(run, settled, side, "client");
    run.say.see_it_yourself("ss -tan state time-wait");
    co_return labkit::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab02_tcp_listen_connect", "Lab 02: listen, connect, accept, and who ends up in TIME-WAIT"},
                           [](labkit::Lab& lab) {
        // --- Arguments --------------------------------------------------------------
        lab.add_server_options(default_port);
        bool serve = false;
        std::string connect_to;
        std::string closer = "client";
        int wait_seconds = 60;
        lab.cli().add_flag("--serve", serve, "run only the server half (then --connect from a second terminal)");
        lab.cli().add_option("--connect", connect_to, "run only the client half, connecting to HOST:PORT (loopback)")
            ->type_name("HOST:PORT");
        lab.cli().add_option("--closer", closer, "who calls close() first: client or server")
            ->check(CLI::IsMember({"client", "server"}))
            ->default_str("client");
        lab.cli().add_option("--wait", wait_seconds, "with --serve: how long to wait for a client (seconds, 1-3600)")
            ->check(CLI::Range(1, 3600))
            ->default_str("60");
        lab.parse();
        if (serve && !connect_to.empty()) return lab.usage_error("--serve and --connect run different halves; give one");
        std::optional<Endpoint> server;
        if (!connect_to.empty()) {
            auto parsed = labkit::parse_peer_endpoint(connect_to, lab.server().allow_non_loopback);
            if (!parsed) return lab.usage_error("--connect: " + parsed.error().message);
            server = *parsed;
        }

        auto& see = lab.observer();
        Run run{lab, lab.narrate(), see, closer, std::nullopt, "the start"};
        if (auto range = read_ephemeral_range()) run.ephemeral = *range;
        // One kernel, two hosts of the story: the server's address is --bind, the client's
        // the loopback address of the same family.
        const auto server_address = server ? server->address : lab.server().bind;
        const auto client_address = server_address.is_v4() ? IpAddress::loopback_v4() : IpAddress::loopback_v6();
        if (!server) run.server_host = see.declare({"server", {server_address}, "server"});
        if (!serve) run.client_host = see.declare({"client", {client_address}, "client"});
        see.document().update({{"lab", lab.name()}, {"mode", serve ? "serve" : server ? "connect" : "both"}, {"closer", closer},
                               {"ephemeral_range", run.ephemeral ? json{{"low", run.ephemeral->low}, {"high", run.ephemeral->high}}
                                                                 : json(nullptr)}});
        run.say.title("Lab 02: a TCP server listens, a client connects");

        // --- Run the chosen half (or both) on one io_context, bounded in time ------------
        asio::io_context io;
        std::optional<int> result;
        std::exception_ptr failure;
        auto story = serve ? serve_only(run) : server ? connect_only(run, *server) : both_halves(run);
        asio::co_spawn(io, std::move(story), [&](std::exception_ptr error, int code) {
            failure = error;
            result = code;
        });
        // --step waits for a person; otherwise a few seconds is plenty on loopback. With
        // --serve, --wait bounds the wait for a client, and the talk after it gets 10 s more.
        const auto limit = lab.options().step ? std::chrono::seconds(3600) : std::chrono::seconds(10);
        if (serve && !lab.options().step) {
            io.run_for(std::chrono::seconds(wait_seconds));
            if (!result && !run.client_arrived)
                return lab.failure(fmt::format("no client connected within {} s (--wait {})", wait_seconds, wait_seconds));
        }
        io.run_for(limit);
        if (!result) return lab.failure("gave up after " + std::to_string(limit.count()) + " s waiting for " + run.waiting_for);
        if (failure) std::rethrow_exception(failure);
        if (*result != labkit::exit_ok) return *result;

        run.say.blank_line();
        if (lab.json()) lab.print_json(run.facts());
        return labkit::exit_ok;
    });
}
