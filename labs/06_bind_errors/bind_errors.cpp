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

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "portlab/net.hpp"
#include "labkit/netns.hpp"
#include "portlab/ports.hpp"
#include "labkit/sock_diag.hpp"

using namespace portlab;
using namespace portlab::labkit;
using asio::ip::tcp;
using asio::ip::udp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port default_port = 7406;
constexpr Port namespace_boundary = 2000;  // ip_unprivileged_port_start inside the lab's own namespace

json endpoint_json(const Endpoint& endpoint) {
    return {{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

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

// socket(), the options, bind() and maybe listen(): the kernel's answer, nothing else.
template <class Socket>
std::error_code open_and_bind(Socket& socket, const Endpoint& endpoint, BindOptions options) {
    std::error_code error;
    const auto asio_endpoint = [&] {
        if constexpr (std::is_same_v<Socket, udp::socket>) return to_udp_endpoint(endpoint);
        else return to_tcp_endpoint(endpoint);
    }();
    socket.open(asio_endpoint.protocol(), error);
    if (error) return error;
    if (options.reuse_address) socket.set_option(asio::socket_base::reuse_address(true), error);
    const int on = 1;
    if (!error && options.reuse_port &&
        setsockopt(socket.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
        error = std::error_code(errno, std::system_category());
    if (!error) socket.bind(asio_endpoint, error);
    if constexpr (std::is_same_v<Socket, tcp::acceptor>)
        if (!error && options.listen) socket.listen(asio::socket_base::max_listen_connections, error);
    return error;
}

// One bind() the lab makes and reports: what was tried, while what was held, what the kernel said.
class Cases {
public:
    Cases(Narrator& say, TraceRecorder& trace) : say_(&say), trace_(&trace) {}

    template <class Socket>
    std::error_code attempt(std::string id, Socket& socket, const Endpoint& endpoint, BindOptions options,
                            std::string situation) {
        constexpr bool is_udp = std::is_same_v<Socket, udp::socket>;
        const Protocol protocol = is_udp ? Protocol::udp : Protocol::tcp;
        const auto trace_id = trace_->socket_created("lab", protocol, endpoint.address.family());
        const auto error = open_and_bind(socket, endpoint, options);
        if (error) {
            trace_->call_failed("lab", trace_id, "bind", error);
        } else {
            trace_->bound("lab", trace_id, endpoint, endpoint.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port,
                          options.names().empty() ? std::nullopt : std::optional<std::string>(options.names().dump()));
            if (options.listen && !is_udp) trace_->listening("lab", trace_id, asio::socket_base::max_listen_connections);
        }
        const std::string options_text = options.names().empty() ? "" : " with " + fmt::format("{}", fmt::join(options.names(), "+"));
        say_->kernel(fmt::format("{} bind {}{}{} -> {}", to_string(protocol), endpoint.to_string(), options_text,
                                 options.listen ? " (+listen)" : "", error ? describe_error(error) : "ok"));
        cases_.push_back({{"id", std::move(id)},
                          {"protocol", to_string(protocol)},
                          {"endpoint", endpoint_json(endpoint)},
                          {"options", options.names()},
                          {"listen", options.listen},
                          {"while", std::move(situation)},
                          {"ok", !error},
                          {"errno_name", error ? json(errno_name(error)) : json(nullptr)}});
        return error;
    }

    [[nodiscard]] const json& facts() const noexcept { return cases_; }

private:
    Narrator* say_;
    TraceRecorder* trace_;
    json cases_ = json::array();
};

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

// The server socket of a connection that this side closed first sits in TIME-WAIT for
// 60 seconds (TCP_TIMEWAIT_LEN); sock_diag shows it, as `ss -tan state time-wait` does.
std::optional<diag::SocketInfo> time_wait_socket(Port port) {
    for (int tries = 0; tries < 50; ++tries) {  // bounded: the FIN exchange on loopback takes microseconds
        const auto sockets = diag::list_sockets({.udp = false, .port = port, .with_processes = false});
        if (!sockets) return std::nullopt;
        for (const auto& s : *sockets)
            if (s.tcp_state() == TcpState::time_wait) return s;
        std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab06_bind_errors", "Lab 06: EADDRINUSE, EACCES and the socket options that change them"},
                   [](Lab& lab) {
        lab.add_server_options(default_port);
        lab.parse();
        const Endpoint main_endpoint = lab.server().endpoint();
        const IpAddress address = main_endpoint.address;
        const IpAddress wildcard = address.is_v4() ? IpAddress::any_v4() : IpAddress::any_v6();

        // The forked parts first, before anything in this process could start a thread.
        const auto host_boundary = read_unprivileged_port_start();
        const auto host_privilege = privileged_on_host(host_boundary.value_or(1024));
        const auto namespace_privilege = privileged_in_namespace();

        auto& say = lab.narrate();
        auto& trace = lab.trace();
        Cases cases(say, trace);
        json facts = {{"lab", lab.name()}};
        say.title("Lab 06: bind errors");
        asio::io_context io;
        std::error_code ignored;

        // --- 1. The same port twice --------------------------------------------------------------
        say.step(fmt::format("a TCP server binds {} and listens; a second TCP socket binds the same", main_endpoint.to_string()));
        tcp::acceptor first(io), second(io);
        if (const auto e = cases.attempt("first_listener", first, main_endpoint, {.listen = true}, "nothing"))
            return lab.bind_failed(main_endpoint, e);
        const Endpoint held{address, first.local_endpoint().port()};
        cases.attempt("second_listener", second, held, {.listen = true}, "a TCP listener holds " + held.to_string());
        say.note("One TCP (address, port) belongs to one socket: the kernel must know whom to give a new SYN.");
        say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'", held.port));

        // --- 2. TCP and UDP on the same number -----------------------------------------------------
        say.step(fmt::format("a UDP socket binds {} while the TCP listener holds it", held.to_string()));
        udp::socket udp_same(io);
        // Only another program's UDP socket can refuse this bind: that is not this step's lesson.
        if (const auto e = cases.attempt("udp_same_number", udp_same, held, {}, "a TCP listener holds " + held.to_string()))
            return lab.bind_failed(held, e, Protocol::udp);
        say.note("TCP and UDP keep separate port tables: the protocol is part of a port's name.");
        say.see_it_yourself(fmt::format("ss -tulnp 'sport = :{}'", held.port));

        // --- 3. A specific address against the wildcard --------------------------------------------
        say.step(fmt::format("{}:{} (every address) while {} is held; then the other way round", wildcard.to_string(),
                             held.port, held.to_string()));
        tcp::acceptor wildcard_socket(io), other_address(io), wildcard_holder(io), specific(io);
        cases.attempt("wildcard_over_specific", wildcard_socket, {wildcard, held.port}, {},
                      "a TCP listener holds " + held.to_string());
        if (address.is_v4() && address.is_loopback()) {
            const IpAddress neighbour = address == IpAddress::v4(127, 0, 0, 2) ? IpAddress::v4(127, 0, 0, 3) : IpAddress::v4(127, 0, 0, 2);
            cases.attempt("other_loopback_address", other_address, {neighbour, held.port}, {.listen = true},
                          "a TCP listener holds " + held.to_string());
        }
        // Bound, never listening: nothing here is reachable from another machine.
        cases.attempt("wildcard_holder", wildcard_holder, {wildcard, 0}, {}, "nothing (port 0: the kernel picks)");
        const Endpoint wide{wildcard, wildcard_holder.is_open() ? wildcard_holder.local_endpoint().port() : Port{0}};
        cases.attempt("specific_over_wildcard", specific, {address, wide.port}, {},
                      "a TCP socket is bound to " + wide.to_string() + " (not listening)");
        say.note("0.0.0.0 means every local address, so it overlaps 127.0.0.1 in both directions;");
        say.note("two different specific addresses (127.0.0.1 and 127.0.0.2) do not overlap.");
        say.see_it_yourself(fmt::format("ss -tanp '( sport = :{} or sport = :{} )'", held.port, wide.port));

        // --- 4. TIME-WAIT and SO_REUSEADDR -----------------------------------------------------------
        say.step("a server with SO_REUSEADDR accepts one connection and closes it first, so it keeps TIME-WAIT; "
                 "then the server is restarted on the same port");
        tcp::acceptor old_server(io);
        cases.attempt("time_wait_original", old_server, {address, 0}, {.reuse_address = true, .listen = true}, "nothing");
        const Endpoint restart{address, old_server.local_endpoint().port()};
        {
            tcp::socket client(io);
            client.connect(to_tcp_endpoint(restart));
            tcp::socket served = old_server.accept();
            served.close();  // the server closes first: it sends FIN and will hold TIME-WAIT
            std::array<char, 1> byte{};
            client.read_some(asio::buffer(byte), ignored);  // EOF: the server's FIN arrived
            client.close();  // our FIN completes the server's close: FIN-WAIT-2 -> TIME-WAIT
            old_server.close();
        }
        const auto waiting = time_wait_socket(restart.port);
        say.kernel(waiting ? fmt::format("TIME-WAIT {} -> {} (no socket, no process: the kernel alone holds it)",
                                         waiting->local.to_string(), waiting->remote.to_string())
                           : std::string("no TIME-WAIT socket found (unexpected)"));
        say.see_it_yourself(fmt::format("ss -tan state time-wait 'sport = :{}'", restart.port));
        tcp::acceptor restart_plain(io), restart_reusing(io);
        const std::string situation = fmt::format("only a TIME-WAIT socket holds {}", restart.to_string());
        cases.attempt("time_wait_without_reuseaddr", restart_plain, restart, {.listen = true}, situation);
        cases.attempt("time_wait_with_reuseaddr", restart_reusing, restart, {.reuse_address = true, .listen = true}, situation);
        say.note("TIME-WAIT keeps the old 4-tuple's port taken for 2*MSL (RFC 9293 3.6), so late segments of the");
        say.note("old connection cannot reach a new one. Linux lets a bind() through only if BOTH the new socket and");
        say.note("the one that left TIME-WAIT set SO_REUSEADDR: that is why servers set it before bind().");
        facts["time_wait"] = waiting ? json{{"port", restart.port},
                                            {"local", endpoint_json(waiting->local)},
                                            {"remote", endpoint_json(waiting->remote)}}
                                     : json{{"port", restart.port}, {"local", nullptr}, {"remote", nullptr}};

        // --- 5. SO_REUSEPORT ----------------------------------------------------------------------------
        say.step("two listeners set SO_REUSEPORT and bind one port; a third without it tries too; 8 clients connect");
        tcp::acceptor shared_one(io), shared_two(io), shared_three(io);
        cases.attempt("reuseport_first", shared_one, {address, 0}, {.reuse_port = true, .listen = true}, "nothing");
        const Endpoint pool{address, shared_one.local_endpoint().port()};
        cases.attempt("reuseport_second", shared_two, pool, {.reuse_port = true, .listen = true},
                      "a listener with SO_REUSEPORT holds " + pool.to_string());
        cases.attempt("reuseport_without", shared_three, pool, {.listen = true},
                      "two listeners with SO_REUSEPORT hold " + pool.to_string());
        std::vector<tcp::socket> clients;
        for (int i = 0; i < 8; ++i) {
            clients.emplace_back(io);
            clients.back().connect(to_tcp_endpoint(pool), ignored);
        }
        json queues = json::array();
        if (const auto listeners = diag::list_sockets({.udp = false, .listening_only = true, .port = pool.port, .with_processes = false})) {
            for (const auto& s : *listeners) {
                say.kernel(fmt::format("listener {} (inode {}): {} connections waiting in its accept queue", s.local.to_string(),
                                       s.inode, s.recv_q));
                queues.push_back(s.recv_q);
            }
        }
        say.note("With SO_REUSEPORT (same user on every socket) the kernel lets listeners share the port and spreads");
        say.note("new connections over them by a hash of the 4-tuple; a socket without the option is still refused.");
        say.see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'   (Recv-Q = connections waiting per listener)", pool.port));
        facts["reuseport"] = {{"port", pool.port}, {"accept_queues", queues}};

        // --- 6. EACCES below the privileged boundary -----------------------------------------------------
        say.step("bind() below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE");
        json privileged = {{"host_boundary", host_boundary ? json(*host_boundary) : json(nullptr)}};
        if (host_privilege) {
            say.note(fmt::format("on this host (boundary {}), in a child process running as uid {}:",
                                 host_boundary.value_or(1024), (*host_privilege)["attempts"].empty() ? geteuid() :
                                 (*host_privilege)["attempts"][0]["euid"].get<unsigned>()));
            for (const auto& a : (*host_privilege)["attempts"])
                say.kernel(fmt::format("tcp bind 127.0.0.1:{} -> {}", a["port"].get<int>(),
                                       a["ok"].get<bool>() ? "ok" : a["errno_name"].get<std::string>()));
            privileged["host"] = *host_privilege;
        } else {
            say.note("(could not run a child as another user: " + host_privilege.error().message + ")");
            privileged["host"] = nullptr;
        }
        if (namespace_privilege) {
            say.note(fmt::format("in the lab's own network namespace, boundary set to {}, as uid {} there but with every "
                                 "capability dropped:", namespace_boundary,
                                 (*namespace_privilege)["attempts"][0]["euid"].get<unsigned>()));
            for (const auto& a : (*namespace_privilege)["attempts"])
                say.kernel(fmt::format("tcp bind 127.0.0.1:{} -> {}", a["port"].get<int>(),
                                       a["ok"].get<bool>() ? "ok" : a["errno_name"].get<std::string>()));
            privileged["namespace"] = *namespace_privilege;
        } else {
            say.note("(skipped the namespace part: " + namespace_privilege.error().message + ")");
            privileged["namespace"] = nullptr;
        }
        say.note("The kernel checks the capability CAP_NET_BIND_SERVICE, not the port's name or the user id, for");
        say.note("ports below ip_unprivileged_port_start; the boundary is a per-namespace setting (sysctl).");
        say.see_it_yourself("sysctl net.ipv4.ip_unprivileged_port_start");
        facts["privileged"] = privileged;

        // --- 7. Clean up -----------------------------------------------------------------------------------
        say.step("close every socket");
        say.pause();
        for (auto& c : clients) c.close(ignored);
        for (auto* a : {&first, &second, &wildcard_socket, &other_address, &wildcard_holder, &specific, &restart_plain,
                        &restart_reusing, &shared_one, &shared_two, &shared_three})
            a->close(ignored);
        udp_same.close(ignored);
        trace.note("every socket closed");
        say.kernel("closed; the TIME-WAIT socket of step 4 stays until its timer ends");
        say.see_it_yourself(fmt::format("ss -tan state time-wait 'sport = :{}'", restart.port));

        facts["cases"] = cases.facts();
        if (lab.json()) lab.print_json(facts);
        return exit_ok;
    });
}
