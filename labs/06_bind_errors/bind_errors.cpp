// Lab 06: when bind() says no, and why.
//
// bind() claims a (protocol, address, port) for a socket. The kernel refuses a claim that
// clashes with one it already has (EADDRINUSE) or that needs a privilege the caller lacks
// (EACCES). Every answer printed here is what the kernel returned at run time; the lab
// only explains the rule behind it:
//   - a second TCP listener on the same address and port: EADDRINUSE
//   - TCP and UDP on the same number: two separate port spaces, both fine
//   - 127.0.0.1:P against 0.0.0.0:P: the wildcard overlaps every address
//   - a port held in TIME-WAIT: EADDRINUSE, unless both sockets set SO_REUSEADDR
//   - SO_REUSEPORT: several listeners share one port on purpose
//   - a port below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE: EACCES
//
//   lab06_bind_errors                 main port 127.0.0.1:7406
//   lab06_bind_errors --port 0 --json

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <string>
#include <vector>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/observe.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"

using namespace portlab;
using namespace portlab::labkit;
using asio::ip::tcp;
using asio::ip::udp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port default_port = 7406;
constexpr Port namespace_boundary = 2000;  // ip_unprivileged_port_start inside the lab's own namespace

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)

// Socket options set before bind(). SO_REUSEPORT has no Asio class, so it is set the way C does it.
struct BindOptions {
    bool reuse_address = false;  // SO_REUSEADDR
    bool reuse_port = false;     // SO_REUSEPORT (Linux 3.9+)
    bool listen = false;         // listen() after a successful bind()

    [[nodiscard]] json names() const {
        json list = json::array();
        if (reuse_address) list.push_back("SO_REUSEADDR");
        if (reuse_port) list.push_back("SO_REUSEPORT");
        return list;
    }
};

// socket() and the options: the kernel's answer, nothing else.
template <class Socket, class AsioEndpoint>
std::error_code open_with(Socket& socket, const AsioEndpoint& endpoint, BindOptions options) {
    std::error_code error;
    socket.open(endpoint.protocol(), error);
    if (error) return error;
    if (options.reuse_address) socket.set_option(asio::socket_base::reuse_address(true), error);
    const int on = 1;
    if (!error && options.reuse_port && setsockopt(socket.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
        error = std::error_code(errno, std::system_category());
    return error;
}

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each) and the hosts of the story. "server" and "client" share this
// process's kernel; "private-netns" is the namespace a child process makes in step 7.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    asio::io_context io{};
    Host server_host{}, client_host{}, netns_host{};
    std::vector<SocketRef> opened{};  // every socket of the cases, in order
    std::vector<SocketRef> closed{};  // those already told closed
    json& facts() { return see.document(); }

    // close() was called on a case's socket: told once.
    void closed_case(const SocketRef& ref) {
        if (std::find(closed.begin(), closed.end(), ref) != closed.end()) return;
        closed.push_back(ref);
        see.record(Closed{ref}, quietly);
    }

    // One bind() the lab makes and reports: what was tried, while what was held, what the
    // kernel said. Its facts go to the --json entry "/cases/N", with the case's own words.
    template <class Socket>
    std::error_code attempt(std::string id, Socket& socket, const Endpoint& endpoint, BindOptions options, std::string situation) {
        constexpr bool is_udp = std::is_same_v<Socket, udp::socket>;
        const Protocol protocol = is_udp ? Protocol::udp : Protocol::tcp;
        const auto at = "/cases/" + std::to_string(facts()["cases"].size());
        const auto ref = opened.emplace_back(see.open(server_host, protocol, endpoint.address.family()));
        const auto asio_endpoint = [&] {
            if constexpr (is_udp) return to_udp_endpoint(endpoint);
            else return to_tcp_endpoint(endpoint);
        }();
        std::string call = "bind";
        auto error = open_with(socket, asio_endpoint, options);
        if (!error) socket.bind(asio_endpoint, error);
        if (!error) {
            const auto how = endpoint.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port;
            const auto note = options.names().empty() ? std::nullopt : std::optional<std::string>(options.names().dump());
            see.record(Bound{ref, to_endpoint(socket.local_endpoint()), how, {}, {}, note}, {std::string(), at});
        }
        if constexpr (!is_udp) {
            if (!error && options.listen) {
                call = "listen";
                socket.listen(asio::socket_base::max_listen_connections, error);
                if (!error) see.record(Listening{ref, asio::socket_base::max_listen_connections}, {std::string(), at});
                if (!error) see.read_state(ref, socket.native_handle());  // LISTEN, from TCP_INFO
            }
        }
        if (error) {
            // A failed listen() names no address; a failed bind() names the one it wanted.
            const auto wanted = call == "bind" ? std::optional<Endpoint>(endpoint) : std::nullopt;
            see.record(Failed{ref, call, error, {}, wanted}, {std::string(), at});
        }
        const std::string options_text = options.names().empty() ? "" : " with " + fmt::format("{}", fmt::join(options.names(), "+"));
        say.kernel(fmt::format("{} bind {}{}{} -> {}", to_string(protocol), endpoint.to_string(), options_text,
                               options.listen ? " (+listen)" : "", error ? describe_error(error) : "ok"));
        facts()[json::json_pointer(at)].update({{"id", std::move(id)},
                                                {"protocol", to_string(protocol)},
                                                {"endpoint", json_of(endpoint)},
                                                {"options", options.names()},
                                                {"listen", options.listen},
                                                {"while", std::move(situation)},
                                                {"ok", !error},
                                                {"errno_name", error ? json(errno_name(error)) : json(nullptr)}});
        return error;
    }
};

// A TCP connection the lab holds, with the name the trace gives it.
struct Connection {
    tcp::socket socket;
    SocketRef ref;
};

// A client: socket(), connect() without bind(); the kernel chooses the port.
Connection connect_client(Run& run, const Endpoint& server) {
    Connection client{tcp::socket(run.io), run.see.open(run.client_host, Protocol::tcp, server.address.family())};
    run.see.record(Connecting{client.ref, server}, quietly);
    std::error_code error;
    client.socket.connect(to_tcp_endpoint(server), error);
    if (error) {
        run.see.record(Failed{client.ref, "connect", error}, quietly);
        return client;
    }
    run.see.record(Bound{client.ref, to_endpoint(client.socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
    run.see.read_state(client.ref, client.socket.native_handle());  // ESTABLISHED, from TCP_INFO
    return client;
}

void close_connection(Run& run, Connection& connection) { close_and_tell(run.see, connection.socket, connection.ref); }

// ---- EACCES: run where the caller holds no CAP_NET_BIND_SERVICE ---------------------------------

// bind() of a TCP socket to 127.0.0.1:port, as a JSON fact; used in forked children.
json bind_as_json(Port port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int result = fd < 0 ? -1 : bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int error = result == 0 ? 0 : errno;
    if (fd >= 0) close(fd);
    return {{"port", port},
            {"ok", error == 0},
            {"errno_name", error == 0 ? json(nullptr) : json(errno_name(std::error_code(error, std::system_category())))},
            {"errno", error},
            {"euid", geteuid()}};
}

// In the lab's own network namespace, every capability dropped, the boundary set to 2000.
Result<json> privileged_in_namespace() {
    NetnsSettings settings;
    settings.unprivileged_port_start = namespace_boundary;
    settings.drop_capabilities = true;
    return run_in_private_netns(
        [] {
            return json{{"boundary", namespace_boundary},
                        {"attempts", {bind_as_json(80), bind_as_json(namespace_boundary - 1), bind_as_json(namespace_boundary)}}};
        },
        settings);
}

// On this host's own network, as uid 65534 when the lab is root (as the lab's user otherwise).
Result<json> privileged_on_host(Port boundary) {
    return run_as_nobody([boundary] {
        json attempts = json::array();
        if (boundary > 1) attempts.push_back(bind_as_json(static_cast<Port>(boundary - 1)));
        return json{{"boundary", boundary}, {"attempts", attempts}};
    });
}

// Socket by socket, what a child process reported: on the host (as nobody) or in the namespace.
void record_child_binds(Run& run, const Host& host, const json& report) {
    for (const auto& a : report["attempts"]) {
        const auto ref = run.see.open(host, Protocol::tcp, IpFamily::v4);
        const Endpoint endpoint{IpAddress::loopback_v4(), a["port"].get<Port>()};
        if (a["ok"].get<bool>())
            run.see.record(Bound{ref, endpoint, trace::BindHow::explicit_port}, quietly);
        else
            run.see.record(Failed{ref, "bind", std::error_code(a["errno"].get<int>(), std::system_category()), {}, endpoint},
                           quietly);
        run.see.record(Closed{ref}, quietly);
        run.say.kernel(fmt::format("tcp bind 127.0.0.1:{} -> {}", a["port"].get<int>(),
                                   a["ok"].get<bool>() ? "ok" : a["errno_name"].get<std::string>()));
    }
}

// ---- the steps ------------------------------------------------------------------------

struct Sockets {  // every socket of the story, held until the last step
    explicit Sockets(asio::io_context& io)
        : first(io), second(io), wildcard_socket(io), other_address(io), wildcard_holder(io), specific(io), old_server(io),
          restart_plain(io), restart_reusing(io), shared_one(io), shared_two(io), shared_three(io), udp_same(io) {}
    tcp::acceptor first, second, wildcard_socket, other_address, wildcard_holder, specific, old_server, restart_plain,
        restart_reusing, shared_one, shared_two, shared_three;
    udp::socket udp_same;
    SocketRef old_server_ref{};
    std::vector<Connection> clients;
};

// Step 1: the same port twice. Returns the endpoint the first listener holds.
std::optional<Endpoint> same_port_twice(Run& run, Sockets& s, int& exit_code) {
    const Endpoint wanted = run.lab.server().endpoint();
    run.see.step(fmt::format("a TCP server binds {} and listens; a second TCP socket binds the same", wanted.to_string()));
    if (const auto e = run.attempt("first_listener", s.first, wanted, {.listen = true}, "nothing")) {
        exit_code = run.lab.bind_failed(wanted, e);
        return std::nullopt;
    }
    const Endpoint held{wanted.address, s.first.local_endpoint().port()};
    run.attempt("second_listener", s.second, held, {.listen = true}, "a TCP listener holds " + held.to_string());
    run.say.note("Two sockets cannot both bind one TCP (address, port) to listen on it, unless both ask to share it "
                 "(SO_REUSEPORT, step 6): the kernel must know which listener gets a new SYN.");
    run.say.note("Connected sockets share a port all the time (lab 04): each connection has its own 4-tuple.");
    run.say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'", held.port));
    return held;
}

// Step 2: TCP and UDP on the same number.
std::optional<int> tcp_and_udp(Run& run, Sockets& s, const Endpoint& held) {
    run.see.step(fmt::format("a UDP socket binds {} while the TCP listener holds it", held.to_string()));
    // Only another program's UDP socket can refuse this bind: that is not this step's lesson.
    if (const auto e = run.attempt("udp_same_number", s.udp_same, held, {}, "a TCP listener holds " + held.to_string()))
        return run.lab.bind_failed(held, e, Protocol::udp);
    run.say.note("TCP and UDP keep separate port tables: the protocol is part of a port's name.");
    run.say.see_it_yourself(fmt::format("ss -tulnp 'sport = :{}'", held.port));
    return std::nullopt;
}

// Step 3: a specific address against the wildcard.
void specific_against_wildcard(Run& run, Sockets& s, const Endpoint& held, const IpAddress& wildcard,
                               const std::optional<IpAddress>& neighbour) {
    run.see.step(fmt::format("{}:{} (every address) while {} is held; then the other way round", wildcard.to_string(),
                             held.port, held.to_string()));
    const std::string holds = "a TCP listener holds " + held.to_string();
    run.attempt("wildcard_over_specific", s.wildcard_socket, {wildcard, held.port}, {}, holds);
    if (neighbour) run.attempt("other_loopback_address", s.other_address, {*neighbour, held.port}, {.listen = true}, holds);
    // Bound, never listening: nothing here is reachable from another machine.
    run.attempt("wildcard_holder", s.wildcard_holder, {wildcard, 0}, {}, "nothing (port 0: the kernel picks)");
    const Endpoint wide{wildcard, s.wildcard_holder.is_open() ? s.wildcard_holder.local_endpoint().port() : Port{0}};
    run.attempt("specific_over_wildcard", s.specific, {held.address, wide.port}, {},
                "a TCP socket is bound to " + wide.to_string() + " (not listening)");
    run.say.note("0.0.0.0 means every local address, so it overlaps 127.0.0.1 in both directions;");
    run.say.note("two different specific addresses (127.0.0.1 and 127.0.0.2) do not overlap.");
    run.say.see_it_yourself(fmt::format("ss -tanp '( sport = :{} or sport = :{} )'", held.port, wide.port));
}

// Step 4: a server with SO_REUSEADDR accepts one connection. Returns both ends.
std::pair<Connection, Connection> one_connection(Run& run, Sockets& s, const IpAddress& address) {
    run.see.step("a server with SO_REUSEADDR accepts one connection");
    run.attempt("time_wait_original", s.old_server, {address, 0}, {.reuse_address = true, .listen = true}, "nothing");
    s.old_server_ref = run.opened.back();
    const Endpoint server = to_endpoint(s.old_server.local_endpoint());
    auto client = connect_client(run, server);
    tcp::socket accepted = s.old_server.accept();
    const FourTuple tuple{to_endpoint(accepted.local_endpoint()), to_endpoint(accepted.remote_endpoint())};
    const auto ref = run.see.record(Accepted{s.old_server_ref, tuple}, {"accepted " + tuple.to_string(), {}});
    run.see.read_state(ref, accepted.native_handle());  // ESTABLISHED, from TCP_INFO
    run.say.see_it_yourself(fmt::format("ss -tanp 'sport = :{}'", server.port));
    return {std::move(client), Connection{std::move(accepted), ref}};
}

// The server socket of a connection that this side closed first sits in TIME-WAIT for
// 60 seconds (TCP_TIMEWAIT_LEN); sock_diag shows it, as `ss -tan state time-wait` does.
// Observer::settle follows the FIN exchange until it is over and records what it finds.
std::optional<diag::SocketInfo> time_wait_socket(Run& run, Port port) {
    for (const auto& socket : run.see.settle())
        if (socket.local.port == port && socket.tcp_state() == TcpState::time_wait) return socket;
    return std::nullopt;
}

// Step 5: the server closes first, so it keeps TIME-WAIT; then it is restarted on the same port.
void restart_over_time_wait(Run& run, Sockets& s, std::pair<Connection, Connection>& ends) {
    auto& [client, served] = ends;
    const Endpoint restart = to_endpoint(s.old_server.local_endpoint());
    run.see.step("the server closes its connection first, so it keeps TIME-WAIT; then the server is restarted on the same port");
    close_connection(run, served);  // the server closes first: it sends FIN and will hold TIME-WAIT
    std::array<char, 1> byte{};
    std::error_code ignored;
    client.socket.read_some(asio::buffer(byte), ignored);  // EOF: the server's FIN arrived
    run.see.read_state(client.ref, client.socket.native_handle());  // CLOSE-WAIT, from TCP_INFO
    close_connection(run, client);  // our FIN completes the server's close: FIN-WAIT-2 -> TIME-WAIT
    s.old_server.close(ignored);
    run.closed_case(s.old_server_ref);
    const auto waiting = time_wait_socket(run, restart.port);
    run.say.kernel(waiting ? fmt::format("TIME-WAIT {} -> {} (no socket, no process: the kernel alone holds it)",
                                         waiting->local.to_string(), waiting->remote.to_string())
                           : std::string("no TIME-WAIT socket found (unexpected)"));
    run.say.see_it_yourself(fmt::format("ss -tan state time-wait 'sport = :{}'", restart.port));
    const std::string situation = fmt::format("only a TIME-WAIT socket holds {}", restart.to_string());
    run.attempt("time_wait_without_reuseaddr", s.restart_plain, restart, {.listen = true}, situation);
    run.attempt("time_wait_with_reuseaddr", s.restart_reusing, restart, {.reuse_address = true, .listen = true}, situation);
    run.say.note("TIME-WAIT keeps the old 4-tuple's port taken for 2*MSL (RFC 9293 3.6), so late segments of the");
    run.say.note("old connection cannot reach a new one. Linux lets a bind() through only if BOTH the new socket and");
    run.say.note("the one that left TIME-WAIT set SO_REUSEADDR: that is why servers set it before bind().");
    run.facts()["time_wait"] = waiting ? json{{"port", restart.port}, {"local", json_of(waiting->local)}, {"remote", json_of(waiting->remote)}}
                                       : json{{"port", restart.port}, {"local", nullptr}, {"remote", nullptr}};
}

// Step 6: SO_REUSEPORT.
void share_with_reuseport(Run& run, Sockets& s, const IpAddress& address) {
    run.see.step("two listeners set SO_REUSEPORT and bind one port; a third without it tries too; 8 clients connect");
    run.attempt("reuseport_first", s.shared_one, {address, 0}, {.reuse_port = true, .listen = true}, "nothing");
    const Endpoint pool{address, s.shared_one.local_endpoint().port()};
    run.attempt("reuseport_second", s.shared_two, pool, {.reuse_port = true, .listen = true},
                "a listener with SO_REUSEPORT holds " + pool.to_string());
    run.attempt("reuseport_without", s.shared_three, pool, {.listen = true}, "two listeners with SO_REUSEPORT hold " + pool.to_string());
    for (int i = 0; i < 8; ++i) s.clients.push_back(connect_client(run, pool));
    json queues = json::array();
    if (const auto listeners = diag::list_sockets({.udp = false, .listening_only = true, .port = pool.port, .with_processes = false})) {
        for (const auto& l : *listeners) {
            run.say.kernel(fmt::format("listener {} (inode {}): {} connections waiting in its accept queue", l.local.to_string(),
                                       l.inode, l.recv_q));
            queues.push_back(l.recv_q);
        }
    }
    run.say.note("With SO_REUSEPORT (same user on every socket) the kernel lets listeners share the port and spreads");
    run.say.note("new connections over them by a hash of the 4-tuple; a socket without the option is still refused.");
    run.say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'   (Recv-Q = connections waiting per listener)", pool.port));
    run.facts()["reuseport"] = {{"port", pool.port}, {"accept_queues", queues}};
}

// Step 7: EACCES below the privileged boundary, from the children's reports.
void below_the_boundary(Run& run, const std::optional<Port>& host_boundary, const Result<json>& on_host, const Result<json>& in_namespace) {
    run.see.step("bind() below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE");
    json privileged = {{"host_boundary", host_boundary ? json(*host_boundary) : json(nullptr)}};
    if (on_host) {
        run.say.note(fmt::format("on this host (boundary {}), in a child process running as uid {}:", host_boundary.value_or(1024),
                                 (*on_host)["attempts"].empty() ? geteuid() : (*on_host)["attempts"][0]["euid"].get<unsigned>()));
        record_child_binds(run, run.server_host, *on_host);
        privileged["host"] = *on_host;
    } else {
        run.say.note("(could not run a child as another user: " + on_host.error().message + ")");
        privileged["host"] = nullptr;
    }
    if (in_namespace) {
        run.say.note(fmt::format("in the lab's own network namespace, boundary set to {}, as uid {} there but with every "
                                 "capability dropped:",
                                 namespace_boundary, (*in_namespace)["attempts"][0]["euid"].get<unsigned>()));
        record_child_binds(run, run.netns_host, *in_namespace);
        privileged["namespace"] = *in_namespace;
    } else {
        run.say.note("(skipped the namespace part: " + in_namespace.error().message + ")");
        privileged["namespace"] = nullptr;
    }
    run.say.note("The kernel checks the capability CAP_NET_BIND_SERVICE, not the port's name or the user id, for");
    run.say.note("ports below ip_unprivileged_port_start; the boundary is a per-namespace setting (sysctl).");
    run.say.see_it_yourself("sysctl net.ipv4.ip_unprivileged_port_start");
    run.facts()["privileged"] = privileged;
}

// Step 8: close every socket; the TIME-WAIT entry of step 5 stays.
void close_everything(Run& run, Sockets& s, Port restart_port) {
    run.see.step("close every socket");
    for (auto& client : s.clients) close_connection(run, client);
    std::error_code ignored;
    for (auto* a : {&s.first, &s.second, &s.wildcard_socket, &s.other_address, &s.wildcard_holder, &s.specific, &s.restart_plain,
                    &s.restart_reusing, &s.shared_one, &s.shared_two, &s.shared_three})
        a->close(ignored);
    s.udp_same.close(ignored);
    for (const auto& ref : run.opened) run.closed_case(ref);
    run.see.settle();
    run.say.kernel("closed; the TIME-WAIT socket of step 5 stays until its timer ends");
    run.say.see_it_yourself(fmt::format("ss -tan state time-wait 'sport = :{}'", restart_port));
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab06_bind_errors", "Lab 06: EADDRINUSE, EACCES and the socket options that change them"},
                   [](Lab& lab) {
        lab.add_server_options(default_port, {{Protocol::tcp}, {Protocol::udp}});
        lab.parse();
        const IpAddress address = lab.server().bind;
        const IpAddress wildcard = address.is_v4() ? IpAddress::any_v4() : IpAddress::any_v6();
        std::optional<IpAddress> neighbour;  // another loopback address, for step 3
        if (address.is_v4() && address.is_loopback())
            neighbour = address == IpAddress::v4(127, 0, 0, 2) ? IpAddress::v4(127, 0, 0, 3) : IpAddress::v4(127, 0, 0, 2);

        // The forked parts first, before anything in this process could start a thread.
        const auto host_boundary = read_unprivileged_port_start();
        const auto on_host = privileged_on_host(host_boundary.value_or(1024));
        const auto in_namespace = privileged_in_namespace();

        Run run{lab, lab.narrate(), lab.observer()};
        // One kernel, two hosts of the story; and the private namespace of step 7.
        std::vector<IpAddress> server_addresses{address};
        if (neighbour) server_addresses.push_back(*neighbour);
        run.server_host = run.see.declare({"server", server_addresses, "server"});
        run.client_host = run.see.declare({"client", {address}, "client"});
        if (in_namespace)
            run.netns_host = run.see.declare({"private-netns", {IpAddress::loopback_v4()}, "binds without privilege", false});
        run.facts().update({{"lab", lab.name()}, {"cases", json::array()}});
        run.say.title("Lab 06: bind errors");

        Sockets sockets(run.io);
        int exit_code = exit_ok;
        const auto held = same_port_twice(run, sockets, exit_code);
        if (!held) return exit_code;
        if (const auto failed = tcp_and_udp(run, sockets, *held)) return *failed;
        specific_against_wildcard(run, sockets, *held, wildcard, neighbour);
        auto ends = one_connection(run, sockets, address);
        restart_over_time_wait(run, sockets, ends);
        share_with_reuseport(run, sockets, address);
        below_the_boundary(run, host_boundary ? std::optional<Port>(*host_boundary) : std::nullopt, on_host, in_namespace);
        close_everything(run, sockets, run.facts()["time_wait"]["port"].get<Port>());
        if (lab.json()) lab.print_json(run.facts());
        return exit_ok;
    });
}
