// Lab 13: ports are not owned one to one, by programs or by conversations.
//
// Myths say every application has a port of its own, or that a server talks to each
// client "one to one" on its port. The kernel's tables say otherwise, and this lab asks
// them (netlink sock_diag, as ss does, and /proc/PID/fd, as ss -p and lsof do):
//   - a program with no port at all, and a socket that has none until it connects
//   - one program holding several ports at once
//   - a name in /etc/services that reserves nothing: any user may bind that port
//   - one server port, many connections, each its own 4-tuple
//   - two separate processes serving ONE port (SO_REUSEPORT), TCP and UDP, and how the
//     kernel spreads connections and datagrams between them
//   - one listening socket held by two processes after fork()
//
//   lab13_myths                       the shared port is 127.0.0.1:7413, 20 clients
//   lab13_myths --port 0 --clients 50 --json

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/services.hpp"

using namespace portlab;
using namespace portlab::labkit;
using asio::ip::tcp;
using asio::ip::udp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr Port default_port = 7413;
constexpr int listen_backlog = 64;
constexpr int reply_wait_ms = 2000;       // how long a client waits for a server's "pid N" answer
constexpr int child_lifetime_ms = 120'000;  // a server process ends by itself after this, whatever happens

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)

// ---- server processes -----------------------------------------------------------------
// The lab forks its server processes itself, so the story needs nothing but this program.
// Each child talks to the lab through two pipes: the lab writes a byte to ask for work and
// closes its end to say "finish"; the child writes one-line reports back.

struct Child {
    pid_t pid = -1;
    Fd control;  // the lab's end: a byte asks for work, end of file says finish
    Fd reports;  // the lab's end: the child's one-line reports
};

// A forked child holds a copy of every descriptor of its parent, and ss -p lists every
// process holding a socket as its owner. So a server child first closes all it inherited
// except stdin/stdout/stderr and `keep`: it then holds only the sockets it opens itself
// (or, in step 8, the one listener it is meant to share).
void close_inherited(const std::set<int>& keep) {
    std::vector<int> inherited;
    if (DIR* dir = opendir("/proc/self/fd")) {
        while (const dirent* entry = readdir(dir)) {
            const int fd = std::atoi(entry->d_name);
            if (fd > 2 && fd != dirfd(dir) && !keep.count(fd)) inherited.push_back(fd);
        }
        closedir(dir);
    }
    for (const int fd : inherited) close(fd);
}

void report(int fd, const std::string& line) {
    const std::string text = line + "\n";
    (void)!write(fd, text.data(), text.size());
}

// One line from `fd`, waiting at most `wait_ms`; nullopt on timeout or end of file.
std::optional<std::string> read_line(int fd, int wait_ms) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd wait{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&wait, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
        char c = 0;
        if (read(fd, &c, 1) != 1) return std::nullopt;
        if (c == '\n') return line;
        line += c;
    }
}

// One datagram from `fd`, waiting at most `wait_ms` (a datagram is read whole: no line to split).
std::optional<std::string> read_datagram(int fd, int wait_ms) {
    pollfd wait{fd, POLLIN, 0};
    if (poll(&wait, 1, wait_ms) <= 0) return std::nullopt;
    char buffer[512];
    const auto count = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (count < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(count));
}

// fork(): the child closes what it inherited, runs body(control, reports) and _exit()s, so
// nothing of the lab (its narration, its trace buffer) runs twice. It dies with the lab
// (PR_SET_PDEATHSIG) and ends by itself after child_lifetime_ms.
template <class Body>
std::optional<Child> start_child(Body body, std::set<int> keep = {}) {
    int control[2], reports[2];
    if (pipe2(control, O_CLOEXEC) != 0) return std::nullopt;
    if (pipe2(reports, O_CLOEXEC) != 0) {
        close(control[0]);
        close(control[1]);
        return std::nullopt;
    }
    const pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        keep.insert({control[0], reports[1]});
        close_inherited(keep);
        try {
            body(control[0], reports[1]);
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    close(control[0]);
    close(reports[1]);
    if (pid < 0) {
        close(control[1]);
        close(reports[0]);
        return std::nullopt;
    }
    return Child{pid, Fd(control[1]), Fd(reports[0])};
}

// Closes the control pipe (the child's signal to finish), waits up to 3 s for it to exit
// (its report pipe reaches end of file, after any reports not read yet), then kills it if
// need be, and reaps it.
void finish(Child& child) {
    if (child.pid <= 0) return;
    child.control = Fd();
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (std::chrono::steady_clock::now() < deadline && read_line(child.reports.get(), 3000)) {
    }
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) == 0) {
        kill(child.pid, SIGKILL);
        waitpid(child.pid, &status, 0);
    }
    child.pid = -1;
}

std::string pid_answer() { return "pid " + std::to_string(getpid()); }

// "pid 4242" -> 4242.
std::optional<int> pid_in(const std::optional<std::string>& answer) {
    if (!answer || answer->rfind("pid ", 0) != 0) return std::nullopt;
    return std::atoi(answer->c_str() + 4);
}

// socket(), SO_REUSEPORT, bind(), and listen() for a stream socket. Returns 0 or the errno.
int open_reusing_port(int type, const Endpoint& at, Fd& out) {
    Fd fd(socket(AF_INET, type | SOCK_CLOEXEC, 0));
    const int on = 1;
    const auto address = socket_address(at);
    if (!fd.ok() || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        (type == SOCK_STREAM && listen(fd.get(), listen_backlog) != 0))
        return errno;
    out = std::move(fd);
    return 0;
}

// A TCP server process: accepts up to `limit` connections on `listener`, answers each
// with "pid N" and keeps it open until the lab says finish.
void serve_tcp(int listener, std::size_t limit, int control, int reports) {
    std::vector<Fd> connections;
    const std::string hello = pid_answer() + "\n";
    for (;;) {
        pollfd watch[2] = {{control, POLLIN, 0}, {listener, POLLIN, 0}};
        const nfds_t count = connections.size() < limit ? 2 : 1;
        if (poll(watch, count, child_lifetime_ms) <= 0 || watch[0].revents != 0) return;
        if (count == 2 && (watch[1].revents & POLLIN) != 0) {
            Fd connection(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
            if (!connection.ok()) continue;
            (void)send(connection.get(), hello.data(), hello.size(), MSG_NOSIGNAL);
            connections.push_back(std::move(connection));
            report(reports, "accepted");
        }
    }
}

// A UDP server process: at each byte from the lab it reads every datagram waiting in its
// socket, answers each sender with "pid N" and reports how many it read.
void serve_udp(int socket, int control, int reports) {
    const std::string hello = pid_answer();
    for (;;) {
        pollfd watch{control, POLLIN, 0};
        char command = 0;
        if (poll(&watch, 1, child_lifetime_ms) <= 0 || read(control, &command, 1) != 1) return;
        int count = 0;
        for (;;) {
            char buffer[512];
            sockaddr_in from{};
            socklen_t size = sizeof from;
            if (recvfrom(socket, buffer, sizeof buffer, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &size) < 0) break;
            (void)sendto(socket, hello.data(), hello.size(), 0, reinterpret_cast<const sockaddr*>(&from), size);
            ++count;
        }
        report(reports, "read " + std::to_string(count));
    }
}

// A process of its own with a socket on the shared port: started, bound, and its answer
// ("bound P" or "error E") read back. Returns the errno when bind() failed.
struct Server {
    Child child;
    SocketRef ref{};
};
int start_reuseport_server(int type, const Endpoint& at, std::optional<Server>& out, Port& bound) {
    auto child = start_child([type, at](int control, int reports) {
        Fd fd;
        if (const int error = open_reusing_port(type, at, fd)) return report(reports, "error " + std::to_string(error));
        report(reports, "bound " + std::to_string(local_endpoint(fd.get()).value_or(at).port));
        if (type == SOCK_STREAM) serve_tcp(fd.get(), SIZE_MAX, control, reports);
        else serve_udp(fd.get(), control, reports);
    });
    if (!child) return errno;
    const auto answer = read_line(child->reports.get(), 5000).value_or("error " + std::to_string(ETIMEDOUT));
    if (answer.rfind("bound ", 0) != 0) {
        finish(*child);
        return std::atoi(answer.c_str() + 6);
    }
    bound = static_cast<Port>(std::atoi(answer.c_str() + 6));
    out = Server{std::move(*child), {}};
    return 0;
}

// ---- the run ------------------------------------------------------------------------------

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each) and the hosts of the story, which share this one kernel.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    asio::io_context io{};
    Host server_host{}, client_host{};
    int clients = 20;
    json& facts() { return see.document(); }
};

// A socket the lab holds, with the name the trace gives it.
template <class Socket>
struct Held {
    explicit Held(asio::io_context& io) : socket(io) {}
    Held(Socket held, SocketRef named) : socket(std::move(held)), ref(std::move(named)) {}
    Socket socket;
    SocketRef ref{};
};
using Connection = Held<tcp::socket>;
using Listener = Held<tcp::acceptor>;
using Datagrams = Held<udp::socket>;

// Every socket and process of the story, held until the last step.
struct World {
    explicit World(asio::io_context& io) : unconnected(io), service(io), shared(io) {}
    Connection unconnected;               // step 1: a socket with no port yet (it connects in step 4)
    std::vector<Listener> listeners;      // step 2: one program, several ports
    std::optional<Datagrams> udp_port;    // step 2
    Listener service;                     // step 3: the port of a name in /etc/services
    std::deque<Connection> clients;       // steps 4, 5 and 8
    std::deque<Connection> accepted;      // steps 4 and 8: connections this process accepted itself
    std::vector<Server> tcp_servers, udp_servers;  // steps 5-7: two processes on one port each
    std::deque<Datagrams> udp_clients;    // steps 6-7
    std::vector<SocketRef> served_elsewhere;  // connections the server processes accepted
    Listener shared;                      // step 8: one listener, two processes
    std::optional<Child> sharer;
};

// What sock_diag lists for a local port, with the processes holding each socket (ss -p).
std::vector<diag::SocketInfo> kernel_rows(Protocol protocol, Port port, bool listening_only = false) {
    diag::Query query;
    query.tcp = protocol == Protocol::tcp;
    query.udp = protocol == Protocol::udp;
    query.ipv6 = false;
    query.port = port;
    query.listening_only = listening_only;
    return diag::list_sockets(query).value_or(std::vector<diag::SocketInfo>{});
}

std::vector<int> pids_of(const diag::SocketInfo& socket) {
    std::vector<int> pids;
    for (const auto& owner : socket.owners) pids.push_back(owner.pid);
    return pids;
}

std::string owners_text(const diag::SocketInfo& socket) {
    std::vector<std::string> parts;
    for (const auto& owner : socket.owners) parts.push_back(fmt::format("pid {} fd {}", owner.pid, owner.fd.value_or(-1)));
    return parts.empty() ? "no process" : fmt::format("{}", fmt::join(parts, ", "));
}

// The socket inodes this process holds: its /proc/self/fd links "socket:[INODE]".
std::vector<std::uint32_t> own_socket_inodes() {
    std::vector<std::uint32_t> inodes;
    if (DIR* dir = opendir("/proc/self/fd")) {
        while (const dirent* entry = readdir(dir)) {
            char target[64] = {};
            const std::string link = std::string("/proc/self/fd/") + entry->d_name;
            if (readlink(link.c_str(), target, sizeof target - 1) <= 0) continue;
            if (const auto inode = diag::socket_inode_from_link(target)) inodes.push_back(*inode);
        }
        closedir(dir);
    }
    return inodes;
}

// A client of the lab: socket() and connect(), the kernel choosing the port; its server's
// "pid N" answer read back. Returns that pid.
std::optional<int> connect_and_ask(Run& run, Connection& client, const Endpoint& server) {
    std::error_code error;
    if (!client.socket.is_open()) {
        client.ref = run.see.open(run.client_host, Protocol::tcp, IpFamily::v4);
        client.socket.open(tcp::v4(), error);
    }
    run.see.record(Connecting{client.ref, server}, quietly);
    if (!error) client.socket.connect(to_tcp_endpoint(server), error);
    if (error) {
        run.see.record(Failed{client.ref, "connect", error}, quietly);
        return std::nullopt;
    }
    run.see.record(Bound{client.ref, to_endpoint(client.socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
    run.see.read_state(client.ref, client.socket.native_handle());  // ESTABLISHED, from TCP_INFO
    return pid_in(read_line(client.socket.native_handle(), reply_wait_ms));
}

FourTuple server_side(const Connection& client) {
    return {to_endpoint(client.socket.remote_endpoint()), to_endpoint(client.socket.local_endpoint())};
}

// ---- the steps ------------------------------------------------------------------------------

// Step 1: a program holding no port, and a socket that has none yet.
void no_port_yet(Run& run, World& w) {
    run.see.step("before any socket: which ports does this program hold? Then socket(), and no connect() yet");
    const auto before = own_socket_inodes();
    run.say.kernel(fmt::format("/proc/{}/fd: {} socket descriptor{}: this program holds {}", getpid(), before.size(),
                               before.size() == 1 ? "" : "s", before.empty() ? "no port at all" : "only sockets it inherited"));
    w.unconnected.ref = run.see.open(run.client_host, Protocol::tcp, IpFamily::v4);
    w.unconnected.socket.open(tcp::v4());
    struct stat info {};
    fstat(w.unconnected.socket.native_handle(), &info);
    const auto inode = static_cast<std::uint32_t>(info.st_ino);
    const Endpoint local = to_endpoint(w.unconnected.socket.local_endpoint());
    diag::Query query;
    query.udp = false;
    query.with_processes = false;
    const auto table = diag::list_sockets(query).value_or(std::vector<diag::SocketInfo>{});
    const bool listed = std::any_of(table.begin(), table.end(), [&](const auto& s) { return s.inode == inode; });
    run.say.kernel(fmt::format("socket() made socket:[{}]; getsockname() says {}: no port", inode, local.to_string()));
    run.say.kernel(fmt::format("the kernel's TCP tables {} inode {}", listed ? "list" : "do not list", inode));
    run.say.note("A socket gets a port only when it binds or connects: a client before connect(), and a program");
    run.say.note("with no socket at all (most programs: ls, an editor, this lab a moment ago), hold none.");
    run.say.see_it_yourself(fmt::format("ls -l /proc/{}/fd", getpid()));
    run.facts()["no_port"] = {{"sockets_before", before.size()},
                              {"unconnected", {{"inode", inode}, {"local", json_of(local)}, {"listed_by_kernel", listed}}}};
}

// Step 2: one program, several ports.
std::optional<int> many_ports(Run& run, World& w) {
    const IpAddress address = run.lab.server().bind;
    run.see.step(fmt::format("this one program opens three TCP listeners and a UDP socket on {}, port 0 each", address.to_string()));
    for (int i = 0; i < 3; ++i) {
        auto opened = open_tcp_listener(run.see, run.io, run.server_host, {address, 0}, quietly, quietly);
        if (!opened.listener) return run.lab.failure("listener: " + describe_error(opened.error));
        w.listeners.emplace_back(std::move(opened.listener->acceptor), opened.listener->ref);
    }
    w.udp_port.emplace(run.io);
    w.udp_port->ref = run.see.open(run.server_host, Protocol::udp, IpFamily::v4);
    w.udp_port->socket.open(udp::v4());
    w.udp_port->socket.bind(to_udp_endpoint({address, 0}));
    run.see.record(Bound{w.udp_port->ref, to_endpoint(w.udp_port->socket.local_endpoint()), trace::BindHow::bind_zero}, quietly);

    json ports = json::array();
    std::set<Port> seen;
    diag::Query query;
    query.ipv6 = false;
    for (const auto& s : diag::list_sockets(query).value_or(std::vector<diag::SocketInfo>{})) {
        const auto pids = pids_of(s);
        if (std::find(pids.begin(), pids.end(), getpid()) == pids.end() || !s.is_listening()) continue;
        run.say.kernel(fmt::format("{} {:<6} {:<22} held by pid {}", to_string(s.protocol), s.state_name(), s.local.to_string(), getpid()));
        ports.push_back({{"protocol", to_string(s.protocol)}, {"local", json_of(s.local)}});
        seen.insert(s.local.port);
    }
    run.say.note(fmt::format("One process, {} ports: a web server on 80 and 443, a DNS server on TCP and UDP 53, a", seen.size()));
    run.say.note("browser with fifty connections. A port belongs to a socket, and a program may hold any number.");
    run.say.see_it_yourself(fmt::format("lsof -nP -a -p {} -i", getpid()));
    run.facts()["many_ports"] = {{"pid", getpid()}, {"sockets", ports}};
    return std::nullopt;
}

// An /etc/services entry above the privileged boundary that nothing holds: the first TCP
// entry of a well-known list that exists, else the first entry the kernel lets us bind.
const ServiceEntry* pick_service(const ServiceTable& services, Port boundary, const IpAddress& address) {
    std::vector<const ServiceEntry*> candidates;
    for (const char* name : {"postgresql", "mysql", "x11", "http-alt", "webcache", "irc"})
        if (const auto* entry = services.find_by_name(name, Protocol::tcp)) candidates.push_back(entry);
    for (const auto& entry : services.entries())
        if (entry.protocol == Protocol::tcp) candidates.push_back(&entry);
    for (const auto* entry : candidates) {
        if (entry->port < boundary) continue;
        Fd probe(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const auto at = socket_address({address, entry->port});
        if (bind(probe.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at) == 0) return entry;
    }
    return nullptr;
}

// Step 3: a name in /etc/services reserves nothing.
void name_reserves_nothing(Run& run, World& w, const ServiceTable& services, Port boundary, const Result<json>& as_nobody,
                           const ServiceEntry* entry) {
    run.see.step("bind the port of a service /etc/services lists, as an ordinary program");
    if (entry == nullptr) {
        run.say.note(fmt::format("(no free TCP service port at or above {} in {}: skipped)", boundary, services.source()));
        run.facts()["service"] = nullptr;
        return;
    }
    const Endpoint at{run.lab.server().bind, entry->port};
    run.say.note(fmt::format("{} says: {} {}/tcp", services.source(), entry->name, entry->port));
    auto opened = open_tcp_listener(run.see, run.io, run.server_host, at, quietly, quietly);
    const std::error_code error = opened.error;
    if (opened.listener) w.service = Listener(std::move(opened.listener->acceptor), opened.listener->ref);
    run.say.kernel(fmt::format("bind {} + listen -> {}", at.to_string(), error ? describe_error(error) : "ok"));
    if (as_nobody)
        run.say.kernel(fmt::format("the same bind() by uid {} (no privilege at all) -> {}", (*as_nobody)["uid"].get<int>(),
                                   (*as_nobody)["answer"].get<std::string>()));
    run.say.note(fmt::format("/etc/services is a phone book for names, read by getservbyname(); the kernel never opens it. "
                             "Port {} is above", entry->port));
    run.say.note(fmt::format("ip_unprivileged_port_start ({}), so any program may take it; {} is whoever binds it first.",
                             boundary, entry->name));
    run.say.see_it_yourself(fmt::format("ss -tlp 'sport = :{}'   (no -n: ss prints the port as '{}')", entry->port, entry->name));
    run.facts()["service"] = {{"name", entry->name},
                              {"port", entry->port},
                              {"source", services.source()},
                              {"boundary", boundary},
                              {"bind", error ? errno_name(error) : "ok"},
                              {"as_nobody", as_nobody ? *as_nobody : json(nullptr)}};
}

// Step 4: the server keeps its port; each connection is its own 4-tuple.
void one_port_many_tuples(Run& run, World& w) {
    Listener& server = w.listeners.front();
    const Endpoint listening = to_endpoint(server.socket.local_endpoint());
    run.see.step(fmt::format("three clients connect to {} (the first is step 1's socket); the server accepts each",
                             listening.to_string()));
    std::vector<Connection*> three{&w.unconnected};
    for (int i = 0; i < 2; ++i) three.push_back(&w.clients.emplace_back(run.io));
    json rows = json::array();
    for (auto* client : three) {
        std::error_code error;
        if (!client->socket.is_open()) {
            client->ref = run.see.open(run.client_host, Protocol::tcp, IpFamily::v4);
            client->socket.open(tcp::v4(), error);
        }
        run.see.record(Connecting{client->ref, listening}, quietly);
        client->socket.connect(to_tcp_endpoint(listening), error);
        if (error) {
            run.see.record(Failed{client->ref, "connect", error}, {});
            continue;
        }
        run.see.record(Bound{client->ref, to_endpoint(client->socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
        run.see.read_state(client->ref, client->socket.native_handle());
        tcp::socket socket = server.socket.accept();
        const FourTuple tuple{to_endpoint(socket.local_endpoint()), to_endpoint(socket.remote_endpoint())};
        const auto ref = run.see.record(Accepted{server.ref, tuple}, {"accepted " + tuple.to_string(), {}});
        run.see.read_state(ref, socket.native_handle());
        w.accepted.emplace_back(std::move(socket), ref);
        rows.push_back({{"local", json_of(tuple.local)}, {"remote", json_of(tuple.remote)}});
    }
    run.say.note(fmt::format("The kernel's table for local port {} (sock_diag, as ss reads it):", listening.port));
    for (const auto& s : kernel_rows(Protocol::tcp, listening.port))
        run.say.kernel(fmt::format("{:<11} {:<22} {}", s.state_name(), s.local.to_string(), s.peer_text()));
    run.say.note(fmt::format("Every accepted socket keeps the listener's port {}. The server is not in one dialog on it:", listening.port));
    run.say.note("it holds one connection per client at once, told apart by the client's address and port (lab 04).");
    run.say.see_it_yourself(fmt::format("ss -tanp 'sport = :{}'", listening.port));
    run.facts()["one_port"] = {{"port", listening.port}, {"connections", rows}};
}

// Counts per process, in --json and in words.
json count_per_process(Run& run, const std::map<int, int>& counts, const std::string& what) {
    json list = json::array();
    for (const auto& [pid, count] : counts) {
        run.say.kernel(fmt::format("process {} got {} {}", pid, count, what));
        list.push_back({{"pid", pid}, {"count", count}});
    }
    return list;
}

// Two server processes, each with its own socket on `wanted` with SO_REUSEPORT. Returns
// the exit code when a bind() failed.
std::optional<int> start_pair(Run& run, Protocol protocol, const Endpoint& wanted, std::vector<Server>& servers, Port& port) {
    Endpoint at = wanted;
    for (int i = 0; i < 2; ++i) {
        std::optional<Server> server;
        Port bound = 0;
        const auto ref = run.see.open(run.server_host, protocol, IpFamily::v4);
        if (const int error = start_reuseport_server(protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM, at, server, bound)) {
            const std::error_code code(error, std::system_category());
            run.see.record(Failed{ref, "bind", code, {}, at}, quietly);
            run.see.record(Closed{ref}, quietly);
            return run.lab.bind_failed(at, code, protocol);
        }
        server->ref = ref;
        const auto how = at.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port;
        at.port = bound;
        run.see.record(Bound{ref, at, how, {}, {}, fmt::format("SO_REUSEPORT, in process {}", server->child.pid)},
                       {fmt::format("process {}: {} socket() + SO_REUSEPORT + bind {}{} -> ok", server->child.pid,
                                    to_string(protocol), at.to_string(), protocol == Protocol::tcp ? " + listen" : ""),
                        {}});
        if (protocol == Protocol::tcp) run.see.record(Listening{ref, listen_backlog}, quietly);
        servers.push_back(std::move(*server));
    }
    port = at.port;
    return std::nullopt;
}

// The sockets the kernel lists on the port, one line each, and their owners, for --json.
json quote_kernel(Run& run, Protocol protocol, Port port, bool listening_only) {
    json rows = json::array();
    for (const auto& s : kernel_rows(protocol, port, listening_only)) {
        if (!s.is_listening()) continue;
        run.say.kernel(fmt::format("{} {:<6} {:<20} inode {:<8} Recv-Q {:<6} {}", to_string(s.protocol), s.state_name(),
                                   s.local.to_string(), s.inode, s.recv_q, owners_text(s)));
        rows.push_back({{"inode", s.inode}, {"pids", pids_of(s)}, {"recv_q", s.recv_q}});
    }
    return rows;
}

// Step 5: two processes serve one TCP port; N clients connect.
std::optional<int> reuseport_tcp(Run& run, World& w, Port& shared_port) {
    const Endpoint wanted = run.lab.server().endpoint();
    run.see.step(fmt::format("two separate processes each open a TCP listener on {}{} with SO_REUSEPORT; {} clients connect",
                             wanted.to_string(), wanted.port == 0 ? " (the first lets the kernel choose, the second takes that port)" : "",
                             run.clients));
    if (const auto failed = start_pair(run, Protocol::tcp, wanted, w.tcp_servers, shared_port)) return failed;
    const Endpoint shared{wanted.address, shared_port};
    std::map<int, int> per_process;
    for (const auto& server : w.tcp_servers) per_process[server.child.pid] = 0;
    for (int i = 0; i < run.clients; ++i) {
        auto& client = w.clients.emplace_back(run.io);
        const auto pid = connect_and_ask(run, client, shared);
        const auto server = std::find_if(w.tcp_servers.begin(), w.tcp_servers.end(),
                                         [&](const Server& s) { return pid && s.child.pid == *pid; });
        if (server == w.tcp_servers.end()) continue;
        ++per_process[*pid];
        w.served_elsewhere.push_back(run.see.record(Accepted{server->ref, server_side(client)}, trace_only));
    }
    const auto listeners = quote_kernel(run, Protocol::tcp, shared_port, true);
    const auto counts = count_per_process(run, per_process, "connections (each client read the pid its server sent)");
    run.say.note("Two listening sockets, two inodes, two processes, one port. The kernel picks a listener for each new");
    run.say.note("connection by a hash of its 4-tuple (reuseport_select_sock), so the clients spread over both.");
    run.say.see_it_yourself(fmt::format("ss -tlpn 'sport = :{}'   and   ss -tnp 'sport = :{}'", shared_port, shared_port));
    run.facts()["reuseport_tcp"] = {{"port", shared_port}, {"listeners", listeners}, {"processes", counts}};
    return std::nullopt;
}

// Step 6: two processes hold one UDP port; N clients send a datagram each.
std::optional<int> reuseport_udp_send(Run& run, World& w, Port shared_port) {
    const Endpoint shared{run.lab.server().bind, shared_port};
    run.see.step(fmt::format("two more processes each bind UDP {} with SO_REUSEPORT; {} client sockets send one datagram each",
                             shared.to_string(), run.clients));
    Port port = 0;
    if (const auto failed = start_pair(run, Protocol::udp, shared, w.udp_servers, port)) return failed;
    const std::string hello = "hello";
    for (int i = 0; i < run.clients; ++i) {
        auto& client = w.udp_clients.emplace_back(run.io);
        client.ref = run.see.open(run.client_host, Protocol::udp, IpFamily::v4);
        client.socket.open(udp::v4());
        client.socket.send_to(asio::buffer(hello), to_udp_endpoint(shared));
        run.see.record(Bound{client.ref, to_endpoint(client.socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
    }
    run.say.note("Nobody has read yet: the datagrams wait in the receive queue of the socket the kernel chose for each.");
    const auto queues = quote_kernel(run, Protocol::udp, shared_port, true);
    run.say.note("Recv-Q is what ss shows: the memory the kernel charges for the waiting datagrams, per socket.");
    run.say.see_it_yourself(fmt::format("ss -ulpn 'sport = :{}'", shared_port));
    run.facts()["reuseport_udp"] = {{"port", shared_port}, {"queues", queues}};
    return std::nullopt;
}

// Step 7: each UDP process reads its queue and answers; the clients count who answered.
void reuseport_udp_read(Run& run, World& w) {
    run.see.step("each UDP process reads what waits in its own socket and answers every sender with its pid");
    std::map<int, int> per_process;
    for (auto& server : w.udp_servers) {
        per_process[server.child.pid] = 0;
        (void)!write(server.child.control.get(), "r", 1);
        const auto answer = read_line(server.child.reports.get(), reply_wait_ms);
        run.say.kernel(fmt::format("process {}: {}", server.child.pid, answer.value_or("no answer")));
    }
    for (auto& client : w.udp_clients)
        if (const auto pid = pid_in(read_datagram(client.socket.native_handle(), reply_wait_ms)); pid && per_process.count(*pid))
            ++per_process[*pid];
    const auto counts = count_per_process(run, per_process, "datagrams (each client read the pid that answered it)");
    run.say.note("The same hash as TCP, on the datagram's addresses and ports: one client socket always reaches the same");
    run.say.note("process, different client sockets spread over both. Neither process owns the port: they share it.");
    run.say.see_it_yourself(fmt::format("ss -uapn 'sport = :{}'", run.facts()["reuseport_udp"]["port"].get<Port>()));
    run.facts()["reuseport_udp"]["processes"] = counts;
}

// Step 8: one listening socket, two processes after fork().
std::optional<int> shared_after_fork(Run& run, World& w) {
    const IpAddress address = run.lab.server().bind;
    run.see.step("this program opens one listener, then fork()s: parent and child hold the SAME socket");
    auto opened = open_tcp_listener(run.see, run.io, run.server_host, {address, 0}, quietly, quietly);
    if (!opened.listener) return run.lab.failure("listener: " + describe_error(opened.error));
    w.shared = Listener(std::move(opened.listener->acceptor), opened.listener->ref);
    const int fd = w.shared.socket.native_handle();
    const Endpoint listening = to_endpoint(w.shared.socket.local_endpoint());
    // The child accepts one connection; the lab (the parent) accepts the next one itself.
    w.sharer = start_child([fd](int control, int reports) { serve_tcp(fd, 1, control, reports); }, {fd});
    if (!w.sharer) return run.lab.failure("fork: " + describe_error({errno, std::system_category()}));
    run.say.kernel(fmt::format("fork() -> child {}; both hold descriptor {} of listener {}", w.sharer->pid, fd, listening.to_string()));

    json accepted_by = json::array();
    auto& first = w.clients.emplace_back(run.io);
    if (const auto pid = connect_and_ask(run, first, listening)) {
        w.served_elsewhere.push_back(run.see.record(Accepted{w.shared.ref, server_side(first)}, trace_only));
        run.say.kernel(fmt::format("client {} was accepted by the child, pid {}", to_endpoint(first.socket.local_endpoint()).to_string(), *pid));
        accepted_by.push_back(*pid);
    }
    auto& second = w.clients.emplace_back(run.io);
    second.ref = run.see.open(run.client_host, Protocol::tcp, IpFamily::v4);
    second.socket.open(tcp::v4());
    run.see.record(Connecting{second.ref, listening}, quietly);
    second.socket.connect(to_tcp_endpoint(listening));
    run.see.record(Bound{second.ref, to_endpoint(second.socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
    run.see.read_state(second.ref, second.socket.native_handle());
    tcp::socket mine = w.shared.socket.accept();
    const FourTuple tuple{to_endpoint(mine.local_endpoint()), to_endpoint(mine.remote_endpoint())};
    const auto ref = run.see.record(Accepted{w.shared.ref, tuple}, quietly);
    run.see.read_state(ref, mine.native_handle());
    w.accepted.emplace_back(std::move(mine), ref);
    run.say.kernel(fmt::format("client {} was accepted by the parent, pid {}", tuple.remote.to_string(), getpid()));
    accepted_by.push_back(getpid());

    const auto rows = kernel_rows(Protocol::tcp, listening.port, true);
    json pids = json::array();
    for (const auto& s : rows) {
        run.say.kernel(fmt::format("{} {} inode {}: ONE socket, held by {}", s.state_name(), s.local.to_string(), s.inode, owners_text(s)));
        pids = pids_of(s);
    }
    run.say.note("After fork() the child shares the parent's open sockets: one socket, one port, one accept queue,");
    run.say.note("two owners. Whoever calls accept() first gets the next connection (pre-forking servers work this way).");
    run.say.see_it_yourself(fmt::format("ss -tlpn 'sport = :{}'", listening.port));
    run.facts()["shared_listener"] = {{"port", listening.port}, {"pids", pids}, {"accepted_by", accepted_by}};
    return std::nullopt;
}

// Step 9: close everything: clients first, then the server processes end, then ours.
template <class Socket>
void close_held(Run& run, Held<Socket>& held) { close_and_tell(run.see, held.socket, held.ref); }

void close_everything(Run& run, World& w) {
    run.see.step("close every socket and end the server processes; the clients close first");
    for (auto& client : w.clients) close_held(run, client);
    close_held(run, w.unconnected);
    for (auto& client : w.udp_clients) close_held(run, client);
    run.see.settle();  // the servers' sides are in CLOSE-WAIT now
    for (auto& server : w.tcp_servers) finish(server.child);
    for (auto& server : w.udp_servers) finish(server.child);
    if (w.sharer) finish(*w.sharer);
    for (const auto& ref : w.served_elsewhere) run.see.record(Closed{ref}, quietly);
    for (const auto& server : w.tcp_servers) run.see.record(Closed{server.ref}, quietly);
    for (const auto& server : w.udp_servers) run.see.record(Closed{server.ref}, quietly);
    for (auto& socket : w.accepted) close_held(run, socket);
    for (auto& listener : w.listeners) close_held(run, listener);
    if (w.udp_port) close_held(run, *w.udp_port);
    close_held(run, w.service);
    close_held(run, w.shared);
    run.see.settle();
    run.say.kernel("closed; the clients' sides wait in TIME-WAIT for a minute (they closed first)");
    run.say.see_it_yourself("ss -tan state time-wait");
}

// bind() of 127.0.0.1:port by uid 65534 (when the lab is root; else as the lab's user).
Result<json> bind_as_nobody(const IpAddress& address, Port port) {
    return run_as_nobody([address, port] {
        Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const auto at = socket_address({address, port});
        const int result = bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at);
        return json{{"uid", geteuid()}, {"answer", result == 0 ? std::string("ok") : errno_text(errno)}};
    });
}

// Whether the shared port can be bound with SO_REUSEPORT, for TCP and for UDP (each probe
// closed at once). Port 0 is always free.
std::optional<std::pair<std::error_code, Protocol>> port_taken(const Endpoint& wanted) {
    if (wanted.port == 0) return std::nullopt;
    for (const auto protocol : {Protocol::tcp, Protocol::udp}) {
        Fd probe;
        if (const int error = open_reusing_port(protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM, wanted, probe))
            return std::pair{std::error_code(error, std::system_category()), protocol};
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab13_myths", "Lab 13: one port, many processes; one process, many ports; and names that reserve nothing"},
                   [](Lab& lab) {
        int clients = 20;
        lab.add_server_options(default_port);
        lab.cli().add_option("--clients", clients, "connections (and datagrams) sent to the shared port, 2-200")->capture_default_str();
        lab.cli().footer("--port is the port the two server processes share (TCP and UDP); the other ports are the kernel's choice.");
        lab.parse();
        if (clients < 2 || clients > 200) return lab.usage_error(fmt::format("--clients {}: must be 2-200", clients));
        if (!lab.server().bind.is_v4()) return lab.usage_error("--bind: this lab runs on IPv4 addresses only");

        // A busy --port fails now, not at step 5: a socket without SO_REUSEPORT holding it
        // refuses both server processes.
        if (const auto busy = port_taken(lab.server().endpoint())) return lab.bind_failed(lab.server().endpoint(), busy->first, busy->second);

        // The forked parts that need no socket of ours first (run_as_nobody forks too).
        const auto services = ServiceTable::system_or_fallback();
        const Port boundary = std::max<Port>(read_unprivileged_port_start().value_or(1024), 1024);
        const auto* service = pick_service(services, boundary, lab.server().bind);
        const auto as_nobody = service ? bind_as_nobody(lab.server().bind, service->port) : Result<json>(fail("no service"));

        Run run{lab, lab.narrate(), lab.observer()};
        run.clients = clients;
        // One kernel, two hosts of the story: servers (of this process and of its children) and clients.
        run.server_host = run.see.declare({"server", {lab.server().bind}, "server"});
        run.client_host = run.see.declare({"client", {lab.server().bind}, "client"});
        run.facts().update({{"lab", lab.name()}, {"pid", getpid()}});
        run.say.title("Lab 13: who holds a port?");

        World world(run.io);
        no_port_yet(run, world);
        if (const auto failed = many_ports(run, world)) return *failed;
        name_reserves_nothing(run, world, services, boundary, as_nobody, service);
        one_port_many_tuples(run, world);
        Port shared_port = 0;
        int result = exit_ok;
        if (const auto failed = reuseport_tcp(run, world, shared_port)) result = *failed;
        if (result == exit_ok) {
            if (const auto failed = reuseport_udp_send(run, world, shared_port)) result = *failed;
        }
        if (result == exit_ok) reuseport_udp_read(run, world);
        if (result == exit_ok) {
            if (const auto failed = shared_after_fork(run, world)) result = *failed;
        }
        close_everything(run, world);
        if (result != exit_ok) return result;
        if (lab.json()) lab.print_json(run.facts());
        return exit_ok;
    });
}
