// Lab 03: which port the kernel gives a client, and what happens when it runs out.
//
// A client that calls connect() without bind() gets an "ephemeral" port, chosen by the
// kernel from /proc/sys/net/ipv4/ip_local_port_range. This lab opens N connections to a
// server of its own and lists the kernel's choices (range, parity, gaps, order); compares
// connect() with bind(port 0) for TCP and UDP; and then, in a private network namespace
// whose range it narrows to six ports, connects until the kernel answers EADDRNOTAVAIL.
//
//   lab03_ephemeral_ports                 10 connections
//   lab03_ephemeral_ports -n 200 --json   200, as JSON
//   lab03_ephemeral_ports --range-size 3  exhaust a range of 3 ports in the namespace

#include <arpa/inet.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <type_traits>
#include <string>
#include <thread>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "portlab/text.hpp"
#include "portlab/ports.hpp"

using namespace portlab;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using asio::ip::udp;
using nlohmann::json;
constexpr auto no_throw = asio::experimental::as_tuple(use_awaitable);

namespace {

constexpr Port default_port = 8080;
constexpr int max_connections = 2000;
// In the namespace: a range of a few ports, away from the servers' fixed ports.
constexpr Port namespace_range_low = 40000;
constexpr Port namespace_server_a = 7001;
constexpr Port namespace_server_b = 7002;
// Step 5: a range of four ports, each of them put in TIME-WAIT, toward a server on this port.
constexpr PortRange time_wait_range{40000, 40003};
constexpr Port time_wait_server_port = 7003;

std::string parity_of(Port port) { return port % 2 == 0 ? "even" : "odd"; }

// ---- what a list of ports looks like ------------------------------------------------

struct PortPattern {
    std::size_t even = 0, odd = 0, outside_range = 0;
    std::size_t increasing = 0, decreasing = 0;  // steps from one port to the next
    std::map<int, std::size_t> gaps;             // next - previous -> how often
};

PortPattern pattern_of(const std::vector<Port>& ports, PortRange range) {
    PortPattern pattern;
    for (std::size_t i = 0; i < ports.size(); ++i) {
        (ports[i] % 2 == 0 ? pattern.even : pattern.odd) += 1;
        if (!range.contains(ports[i])) ++pattern.outside_range;
        if (i == 0) continue;
        const int gap = int{ports[i]} - int{ports[i - 1]};
        (gap > 0 ? pattern.increasing : pattern.decreasing) += 1;
        pattern.gaps[gap] += 1;
    }
    return pattern;
}

json pattern_json(const std::vector<Port>& ports, PortRange range) {
    const auto pattern = pattern_of(ports, range);
    json gaps = json::object();
    for (const auto& [gap, count] : pattern.gaps) gaps[std::to_string(gap)] = count;
    return {{"ports", ports}, {"even", pattern.even}, {"odd", pattern.odd}, {"outside_range", pattern.outside_range},
            {"increasing_steps", pattern.increasing}, {"decreasing_steps", pattern.decreasing}, {"gaps", gaps}};
}

std::string most_common_gaps(const PortPattern& pattern) {
    std::vector<std::pair<std::size_t, int>> by_count;
    for (const auto& [gap, count] : pattern.gaps) by_count.emplace_back(count, gap);
    std::sort(by_count.rbegin(), by_count.rend());
    std::string text;
    for (std::size_t i = 0; i < by_count.size() && i < 3; ++i)
        text += fmt::format("{}{:+} ({}x)", i ? ", " : "", by_count[i].second, by_count[i].first);
    return text.empty() ? "-" : text;
}

// ---- what the lab holds and records ---------------------------------------------------

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)
using labkit::quietly;

// A socket the lab holds, with the name the trace gives it.
template <class Socket>
struct Held {
    Socket socket;
    labkit::SocketRef ref;
};

// Everything a run shares: the lab, its voice, what it observed, the hosts of the story.
struct Run {
    labkit::Lab& lab;
    labkit::Narrator& say;
    labkit::Observer& see;
    labkit::Host server, client, netns;
    json& facts() { return see.document(); }
};

// The host's sockets of steps 2 and 3, kept open until step 4 so that a pause (--step)
// shows them all to ss.
struct HostSockets {
    std::optional<Held<tcp::acceptor>> listener;
    std::vector<Held<tcp::socket>> clients, accepted, compare_tcp;
    std::vector<Held<udp::socket>> compare_udp;
};

// ---- step 1: the range --------------------------------------------------------------------

Result<PortRange> read_range(Run& run) {
    run.see.step("read the ephemeral range from /proc/sys/net/ipv4/ip_local_port_range");
    auto range = read_ephemeral_range();
    if (!range) return range;
    run.say.kernel(fmt::format("{} ({}; {} even, {} odd)", range->to_string(), text::counted(range->size(), "port"),
                               (range->size() + (range->low % 2 == 0 ? 1 : 0)) / 2,
                               (range->size() + (range->low % 2 == 1 ? 1 : 0)) / 2));
    run.say.see_it_yourself("sysctl net.ipv4.ip_local_port_range");
    run.facts()["ephemeral_range"] = {{"low", range->low}, {"high", range->high}, {"size", range->size()}};
    return range;
}

// ---- step 2: N connections to one server ---------------------------------------------

// socket(), bind(), listen() for the server of step 2; the error when bind() fails.
std::error_code open_listener(Run& run, asio::io_context& io, HostSockets& held) {
    auto opened = labkit::open_tcp_listener(run.see, io, run.server, run.lab.server().endpoint(), quietly, quietly);
    if (opened.listener) held.listener.emplace(std::move(opened.listener->acceptor), opened.listener->ref);
    return opened.error;
}

// The server half, as in Asio's echo examples: accept until it has `count` sockets.
awaitable<void> accept_all(Run& run, Held<tcp::acceptor>& listener, std::vector<Held<tcp::socket>>& accepted, int count) {
    while (static_cast<int>(accepted.size()) < count) {
        auto socket = co_await listener.socket.async_accept(use_awaitable);
        const FourTuple seen{labkit::to_endpoint(socket.local_endpoint()), labkit::to_endpoint(socket.remote_endpoint())};
        const auto ref = run.see.record(labkit::fact::Accepted{listener.ref, seen}, quietly);
        accepted.push_back({std::move(socket), ref});
    }
}

// The client half: connect() `count` fresh sockets, never calling bind().
awaitable<void> connect_all(Run& run, const Endpoint server, PortRange range, std::vector<Held<tcp::socket>>& clients,
                            int count, std::error_code& failure) {
    auto executor = co_await asio::this_coro::executor;
    for (int i = 0; i < count; ++i) {
        tcp::socket socket(executor);
        const auto ref = run.see.open(run.client, Protocol::tcp, server.address.family());
        run.see.record(Connecting{ref, server}, quietly);
        auto [error] = co_await socket.async_connect(labkit::to_tcp_endpoint(server), no_throw);
        if (error) {
            run.see.record(Failed{ref, "connect", error}, quietly);
            run.see.record(Closed{ref}, quietly);
            failure = error;
            co_return;
        }
        // connect() bound the socket first, to a port of the kernel's choice.
        run.see.record(Bound{ref, labkit::to_endpoint(socket.local_endpoint()), trace::BindHow::ephemeral, range}, quietly);
        run.see.read_state(ref, socket.native_handle());
        clients.push_back({std::move(socket), ref});
    }
}

// Step 2: the ports the kernel gave `count` connections to one server, in order.
Result<std::vector<Port>> connect_many(Run& run, asio::io_context& io, HostSockets& held, PortRange range, int count) {
    const auto server = labkit::to_endpoint(held.listener->socket.local_endpoint());
    run.see.step(fmt::format("open {} connections to {}, each from a new socket that never called bind()", count, server.to_string()));
    std::error_code connect_error;
    asio::co_spawn(io, accept_all(run, *held.listener, held.accepted, count), asio::detached);
    asio::co_spawn(io, connect_all(run, server, range, held.clients, count, connect_error), asio::detached);
    io.run_for(std::chrono::seconds(20));
    io.restart();
    if (connect_error) return fail("connect() failed: " + labkit::describe_error(connect_error));
    if (static_cast<int>(held.accepted.size()) != count) return fail("the connections did not finish in 20 s");

    std::vector<Port> ports;
    for (const auto& client : held.clients) ports.push_back(client.socket.local_endpoint().port());
    const auto pattern = pattern_of(ports, range);
    const std::size_t shown = ports.size() <= 20 ? ports.size() : 10;
    for (std::size_t i = 0; i < shown; ++i)
        run.say.kernel(fmt::format("connection {:>4}: port {:<5} {:<4} {}", i + 1, ports[i], parity_of(ports[i]),
                                   i == 0 ? "" : fmt::format("gap {:+}", int{ports[i]} - int{ports[i - 1]})));
    if (shown < ports.size()) run.say.note(fmt::format("... {} more (use --json for all)", ports.size() - shown));
    run.say.fact("range", pattern.outside_range == 0 ? fmt::format("all {} ports lie in {}", ports.size(), range.to_string())
                                                     : fmt::format("{} ports lie OUTSIDE {}", pattern.outside_range, range.to_string()));
    run.say.fact("parity", fmt::format("{} even, {} odd", pattern.even, pattern.odd));
    run.say.fact("order", fmt::format("{} steps up, {} steps down; most common gaps: {}", pattern.increasing,
                                      pattern.decreasing, most_common_gaps(pattern)));
    run.say.note("Linux's connect() hashes the destination with a secret into a starting offset, then walks the");
    run.say.note(fmt::format("range in steps of 2 from a port of the range's low end's parity ({} here: {} is {}), leaving",
                             parity_of(range.low), range.low, parity_of(range.low)));
    run.say.note("the other half for bind(0) (RFC 6056 section 3.3.4,");
    run.say.note("'double-hash'; net/ipv4/inet_hashtables.c, __inet_hash_connect). The next connect() to the same");
    run.say.note("destination starts a little further on (plus a small random step), so the ports rise:");
    run.say.note("predictable per destination, not globally.");
    run.say.see_it_yourself(fmt::format("ss -tn 'dport = :{}'", server.port));
    run.facts()["server"] = {{"address", server.address.to_string()}, {"port", server.port}};
    run.facts()["connections"] = pattern_json(ports, range);
    run.facts()["accepted_local_ports"] = json::array();
    for (const auto& socket : held.accepted) run.facts()["accepted_local_ports"].push_back(socket.socket.local_endpoint().port());
    return ports;
}

// ---- step 3: connect() versus bind(0), TCP and UDP -----------------------------------

// `count` sockets of one kind, all kept open (so no port is reused): connect() to the
// server, or bind() to port 0. Returns the ports the kernel chose.
template <class Protocol>
std::vector<Port> ports_from(Run& run, asio::io_context& io, bool use_connect, const Endpoint& server, int count,
                             std::vector<Held<typename Protocol::socket>>& kept) {
    constexpr auto protocol = std::is_same_v<Protocol, tcp> ? portlab::Protocol::tcp : portlab::Protocol::udp;
    typename Protocol::endpoint target{labkit::to_asio_address(server.address), server.port};
    std::vector<Port> ports;
    for (int i = 0; i < count; ++i) {
        typename Protocol::socket socket(io, target.protocol());
        const auto ref = run.see.open(run.client, protocol, server.address.family());
        if (use_connect) {
            // For UDP, connect() sends nothing: it only fixes the peer, and binds a port first.
            run.see.record(Connecting{ref, server}, quietly);
            socket.connect(target);
        } else {
            socket.bind({target.address(), 0});
        }
        const auto local = labkit::to_endpoint(socket.local_endpoint());
        run.see.record(Bound{ref, local, use_connect ? trace::BindHow::ephemeral : trace::BindHow::bind_zero}, quietly);
        if constexpr (protocol == portlab::Protocol::tcp)
            if (use_connect) run.see.read_state(ref, socket.native_handle());
        ports.push_back(local.port);
        kept.push_back({std::move(socket), ref});
    }
    return ports;
}

// Step 3: connect() and bind(0), for TCP and UDP, side by side.
void compare_connect_and_bind_zero(Run& run, asio::io_context& io, HostSockets& held, PortRange range, int count) {
    run.see.step(fmt::format("{} sockets each: TCP connect(), TCP bind(0), UDP connect(), UDP bind(0)", count));
    const auto server = labkit::to_endpoint(held.listener->socket.local_endpoint());
    const auto tcp_connect = ports_from<tcp>(run, io, true, server, count, held.compare_tcp);
    const auto tcp_bind = ports_from<tcp>(run, io, false, server, count, held.compare_tcp);
    const auto udp_connect = ports_from<udp>(run, io, true, server, count, held.compare_udp);
    const auto udp_bind = ports_from<udp>(run, io, false, server, count, held.compare_udp);
    run.facts()["compare"] = json::object();
    for (const auto& [name, list] : {std::pair{"tcp_connect", &tcp_connect}, std::pair{"tcp_bind_zero", &tcp_bind},
                                     std::pair{"udp_connect", &udp_connect}, std::pair{"udp_bind_zero", &udp_bind}}) {
        const auto kind = pattern_of(*list, range);
        run.say.kernel(fmt::format("{:<14} {:<36} {} even, {} odd", name, fmt::format("{}", fmt::join(*list, " ")), kind.even, kind.odd));
        run.facts()["compare"][name] = pattern_json(*list, range);
    }
    run.say.note(fmt::format("TCP bind(0) prefers {} ports here (inet_csk_find_open_port: the parity opposite to the range's",
                             parity_of(static_cast<Port>(range.low + 1))));
    run.say.note(fmt::format("low end, {}), the half connect() leaves free, so", range.low));
    run.say.note("servers that bind(0) and clients that connect() rarely compete. UDP has no such split: it");
    run.say.note("starts at a random port (udp_lib_get_port), and connect() on an unbound UDP socket just binds one.");
    run.say.see_it_yourself("ss -uan 'sport >= :" + std::to_string(range.low) + "'   (while paused with --step)");
}

// Closes everything on the host before the namespace part (the sockets would go at the
// end anyway; closing says it in the code), then lets the kernel finish the FINs.
template <class Socket>
void close_all(Run& run, std::vector<Held<Socket>>& sockets) {
    for (auto& held : sockets) {
        held.socket.close();
        run.see.record(Closed{held.ref}, quietly);
    }
}

void close_host_sockets(Run& run, HostSockets& held) {
    close_all(run, held.clients);
    close_all(run, held.accepted);
    close_all(run, held.compare_tcp);
    close_all(run, held.compare_udp);
    held.listener->socket.close();
    run.see.record(Closed{held.listener->ref}, quietly);
    run.see.settle();
}

// ---- step 4: exhaustion in a private namespace ------------------------------------------

// Runs in the namespace's child process: connect to A until the kernel refuses, then ask
// for bind(0), then connect to B. Plain blocking calls: nothing here waits for a peer.
json exhaust_range(PortRange range) {
    asio::io_context io;
    const auto loopback = asio::ip::address_v4::loopback();
    tcp::acceptor server_a(io, {loopback, namespace_server_a});
    tcp::acceptor server_b(io, {loopback, namespace_server_b});
    std::vector<tcp::socket> clients;
    json ports = json::array();
    std::string refusal;
    int refusal_errno = 0;
    for (std::size_t attempt = 0; attempt < range.size() + 5 && refusal.empty(); ++attempt) {
        tcp::socket socket(io, tcp::v4());
        std::error_code error;
        socket.connect({loopback, namespace_server_a}, error);
        if (error) {
            refusal = labkit::describe_error(error);
            refusal_errno = error.value();
            break;
        }
        ports.push_back(socket.local_endpoint().port());
        clients.push_back(std::move(socket));
    }
    tcp::socket bound(io, tcp::v4());
    std::error_code bind_error;
    bound.bind({loopback, 0}, bind_error);

    tcp::socket other(io, tcp::v4());
    std::error_code other_error;
    other.connect({loopback, namespace_server_b}, other_error);
    const json other_port = other_error ? json(nullptr) : json(other.local_endpoint().port());
    return {{"proc_range", read_ephemeral_range().has_value() ? read_ephemeral_range()->to_string() : "?"},
            {"ports", ports},
            {"refusal", refusal.empty() ? json(nullptr) : json(refusal)},
            {"refusal_errno", refusal_errno},
            {"bind_zero_after", bind_error ? json(labkit::describe_error(bind_error)) : json("ok")},
            {"bind_zero_port", bind_error ? json(nullptr) : json(bound.local_endpoint().port())},
            {"bind_zero_errno", bind_error.value()},
            {"other_destination_port", other_port},
            {"other_destination_errno", other_error.value()},
            {"other_destination_error", other_error ? json(labkit::describe_error(other_error)) : json(nullptr)}};
}

// The namespace's story, recorded from the child's report once it is over: its two
// listeners, each connection it opened, the refusals, and then the end of it all (the
// namespace went away with the child). The child held these sockets, not this process,
// so their states are inferred from the calls that returned.
void record_namespace(Run& run, const json& result, PortRange narrow) {
    const auto loopback = IpAddress::loopback_v4();
    const auto inferred = [&](const labkit::SocketRef& ref, TcpState to, std::string cause) {
        run.see.record(labkit::fact::State{ref, to, labkit::Evidence::inferred, std::move(cause)}, quietly);
    };
    std::vector<labkit::SocketRef> opened;
    const auto open = [&] { return opened.emplace_back(run.see.open(run.netns, Protocol::tcp, IpFamily::v4)); };
    for (const Port port : {namespace_server_a, namespace_server_b}) {
        const auto listener = open();
        run.see.record(Bound{listener, {loopback, port}, trace::BindHow::explicit_port}, quietly);
        run.see.record(Listening{listener, asio::socket_base::max_listen_connections}, quietly);
        inferred(listener, TcpState::listen, "listen() returned");
    }
    const auto connection = [&](Port server_port, std::optional<Port> port, int error) {
        const auto client = open();
        if (!port) {  // refused before any SYN: no port was free (inet_hash_connect)
            run.see.record(Failed{client, "connect", {error, std::system_category()}}, quietly);
            return;
        }
        run.see.record(Connecting{client, {loopback, server_port}}, quietly);
        run.see.record(Bound{client, {loopback, *port}, trace::BindHow::ephemeral, narrow}, quietly);
        inferred(client, TcpState::established, "connect() returned");
    };
    for (const auto& port : result["ports"]) connection(namespace_server_a, port.get<Port>(), 0);
    if (result["refusal_errno"].get<int>() != 0) connection(namespace_server_a, std::nullopt, result["refusal_errno"].get<int>());
    const auto bind_zero = open();
    if (result["bind_zero_port"].is_null())
        run.see.record(Failed{bind_zero, "bind", {result["bind_zero_errno"].get<int>(), std::system_category()}}, quietly);
    else
        run.see.record(Bound{bind_zero, {loopback, result["bind_zero_port"].get<Port>()}, trace::BindHow::bind_zero, narrow}, quietly);
    const auto other = result["other_destination_port"];
    connection(namespace_server_b, other.is_null() ? std::nullopt : std::optional(other.get<Port>()),
               result["other_destination_errno"].get<int>());
    for (const auto& ref : opened) {
        run.see.record(Closed{ref}, quietly);
        inferred(ref, TcpState::closed, "the namespace went away with the child process");
    }
}

// Step 4: in a private namespace whose range holds a few ports, connect until refused.
void run_out(Run& run, HostSockets& held, const Result<json>& exhaustion, PortRange narrow) {
    run.see.step(fmt::format("in a private network namespace, narrow the range to {} ({}) and connect until the kernel refuses",
                             narrow.to_string(), text::counted(narrow.size(), "port")));
    close_host_sockets(run, held);
    if (!exhaustion) {
        run.say.note(exhaustion.error().message + "; skipping this step");
        run.facts()["exhaustion"] = {{"available", false}, {"reason", exhaustion.error().message}};
        return;
    }
    const auto& result = *exhaustion;
    std::vector<Port> used;
    for (const auto& port : result["ports"]) used.push_back(port.get<Port>());
    run.say.kernel(fmt::format("/proc in the namespace says {}", result["proc_range"].get<std::string>()));
    run.say.kernel(fmt::format("{} connections to 127.0.0.1:{} got ports {}", used.size(), namespace_server_a,
                               fmt::format("{}", fmt::join(used, " "))));
    const auto refusal = result["refusal"].is_null() ? std::string("none") : result["refusal"].get<std::string>();
    run.say.kernel(fmt::format("connection {}: {}", used.size() + 1, refusal));
    run.say.kernel("bind(0) now: " + result["bind_zero_after"].get<std::string>());
    const auto other = result["other_destination_port"];
    run.say.kernel(other.is_null() ? "a connection to 127.0.0.1:" + std::to_string(namespace_server_b) + " failed too: " +
                                         result["other_destination_error"].get<std::string>()
                                   : fmt::format("a connection to ANOTHER server, 127.0.0.1:{}, still works: it got port {}, "
                                                 "already used for 127.0.0.1:{}", namespace_server_b, other.get<int>(), namespace_server_a));
    run.say.note("A connection is named by its 4-tuple, so connect() may reuse a local port as long as the");
    run.say.note("destination differs (__inet_hash_connect checks the 4-tuple with __inet_check_established).");
    run.say.note("What runs out is ports towards ONE destination address and port: range size, no more.");
    run.say.note("The fixes are more range, more destination addresses/ports, or fewer connections in TIME-WAIT.");
    // The whole experiment in one shell line (bash's /dev/tcp connects; python3 listens),
    // one connection more than the range has ports.
    run.say.see_it_yourself(fmt::format(
        "unshare -rn bash -c 'ip link set lo up; sysctl -qw net.ipv4.ip_local_port_range=\"{} {}\"; "
        "python3 -m http.server -b 127.0.0.1 9000 >/dev/null 2>&1 & sleep 1; "
        "for i in $(seq {}); do exec {{fd}}<>/dev/tcp/127.0.0.1/9000 || echo \"connection $i: no local port left\"; done; "
        "ss -tn state established \"dport = :9000\"; kill %1'",
        narrow.low, narrow.high, narrow.size() + 1));
    record_namespace(run, result, narrow);
    run.facts()["exhaustion"] = {{"available", true},
                                 {"range", {{"low", narrow.low}, {"high", narrow.high}, {"size", narrow.size()}}},
                                 {"proc_range_inside", result["proc_range"]},
                                 {"server_port", namespace_server_a},
                                 {"ports", used},
                                 {"opened", used.size()},
                                 {"refusal", result["refusal"]},
                                 {"refusal_errno_name", labkit::errno_name(std::error_code(result["refusal_errno"].get<int>(), std::system_category()))},
                                 {"bind_zero_after", result["bind_zero_after"]},
                                 {"other_destination", {{"server_port", namespace_server_b}, {"port", other},
                                                        {"error", result["other_destination_error"]}}}};
}

// ---- step 5: TIME-WAIT, on lo and across a link -------------------------------------------

int listen_on_any(Port port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto any = labkit::socket_address({IpAddress::any_v4(), port});
    if (bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 || listen(fd, 16) != 0)
        throw std::runtime_error(fmt::format("listen on port {}: {}", port, std::strerror(errno)));
    return fd;
}

// In the namespace's child: as many connections as the range has ports, each closed by the
// client first, so every port of the range sits in TIME-WAIT; then, 1.2 s later, one more
// connect(). Returns 0 when it got a port, else its errno.
int connect_when_all_in_time_wait(int listener, const IpAddress& server, Port port, std::size_t range_size) {
    const auto to = labkit::socket_address({server, port});
    for (std::size_t i = 0; i < range_size; ++i) {
        const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(client, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
            throw std::runtime_error(fmt::format("connect to {}: {}", server.to_string(), std::strerror(errno)));
        const int accepted = accept(listener, nullptr, nullptr);
        close(client);  // the active close: TIME-WAIT will be on the client's side
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        close(accepted);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // tcp_tw_reuse waits for a TIME-WAIT older than 1 s
    const int again = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int result = connect(again, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0 ? 0 : errno;
    close(again);
    return result;
}

// Runs in a namespace with a veth neighbour: the same experiment toward a server on its
// own lo and toward one on the other side of the veth link.
json time_wait_on_lo_and_across_a_link(PortRange range) {
    std::ifstream reuse_file("/proc/sys/net/ipv4/tcp_tw_reuse");
    int reuse = -1;
    reuse_file >> reuse;
    const int here = listen_on_any(time_wait_server_port);
    const int over_lo = connect_when_all_in_time_wait(here, IpAddress::loopback_v4(), time_wait_server_port, range.size());
    int there = -1;
    if (auto made = in_neighbour_netns([&] { there = listen_on_any(time_wait_server_port); }); !made)
        throw std::runtime_error(made.error().message);
    const int across = connect_when_all_in_time_wait(there, neighbour_address, time_wait_server_port, range.size());
    close(here);
    close(there);
    return {{"tcp_tw_reuse", reuse}, {"lo_errno", over_lo}, {"veth_errno", across}};
}

// Step 5: why exhaustion by TIME-WAIT does not reproduce on loopback.
void time_wait_and_the_range(Run& run, const Result<json>& result, PortRange range) {
    run.see.step(fmt::format("every port of a {}-port range in TIME-WAIT, then one more connect(): toward lo, and across "
                             "a veth link to a second namespace ({})", range.size(), neighbour_address.to_string()));
    if (!result) {
        run.say.note("not shown here: " + result.error().message);
        run.facts()["time_wait_reuse"] = {{"available", false}, {"why", result.error().message}};
        return;
    }
    const auto outcome = [](int error) {
        return error == 0 ? std::string("connected: a port in TIME-WAIT was reused")
                           : fmt::format("{}: no port left", labkit::errno_name(std::error_code(error, std::system_category())));
    };
    run.say.kernel(fmt::format("net.ipv4.tcp_tw_reuse = {}", (*result)["tcp_tw_reuse"].get<int>()));
    run.say.kernel("toward 127.0.0.1:     " + outcome((*result)["lo_errno"].get<int>()));
    run.say.kernel(fmt::format("toward {}:     ", neighbour_address.to_string()) + outcome((*result)["veth_errno"].get<int>()));
    run.say.note("tcp_tw_reuse = 2, Linux's default, lets connect() take a port whose TIME-WAIT is older than 1 s, for");
    run.say.note("loopback traffic only (tcp_twsk_unique, net/ipv4/tcp_ipv4.c). So on lo, TIME-WAIT never uses up the range");
    run.say.note("for long; between two hosts it holds each port for 60 s, and a busy client runs out (EADDRNOTAVAIL).");
    run.say.see_it_yourself("sysctl net.ipv4.tcp_tw_reuse   and   ss -tan state time-wait");
    run.facts()["time_wait_reuse"] = {{"available", true}, {"range", range.to_string()}, {"tcp_tw_reuse", (*result)["tcp_tw_reuse"]},
                                      {"lo_errno", (*result)["lo_errno"]}, {"veth_errno", (*result)["veth_errno"]}};
}

// ---- step 6 -------------------------------------------------------------------------------

void the_myth(Run& run) {
    run.see.step("myth: \"a port for every window\"");
    run.say.note("One browser tab is not one port, and a port is not a connection. A client port is picked per");
    run.say.note("connection, from a range of tens of thousands, and reused as soon as the 4-tuple differs.");
}

// The fd limit must hold 2 sockets per connection (client and accepted) plus a few.
bool raise_open_file_limit(rlim_t wanted) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
    if (limit.rlim_cur >= wanted) return true;
    if (limit.rlim_max < wanted) return false;
    limit.rlim_cur = wanted;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab03_ephemeral_ports", "Lab 03: the kernel's choice of ephemeral ports, and running out of them"},
                           [](labkit::Lab& lab) {
        // --- Arguments --------------------------------------------------------------
        lab.add_server_options(default_port);
        int count = 10;
        int compare_count = 5;
        int range_size = 6;
        lab.cli().add_option("-n,--connections", count, "how many connections to open (1-2000)")
            ->check(CLI::Range(1, max_connections))->default_str("10");
        lab.cli().add_option("--compare", compare_count, "sockets per kind in the connect()/bind(0) comparison (1-50)")
            ->check(CLI::Range(1, 50))->default_str("5");
        lab.cli().add_option("--range-size", range_size, "ports in the namespace's narrowed range (1-50)")
            ->check(CLI::Range(1, 50))->default_str("6");
        lab.parse();

        // --- The hosts of the story: one kernel here, and a private namespace --------------
        auto& see = lab.observer();
        const auto address = lab.server().bind;
        const auto loopback = address.is_v4() ? IpAddress::loopback_v4() : IpAddress::loopback_v6();
        Run run{lab, lab.narrate(), see, see.declare({"server", {address}, "server"}),
                see.declare({"client", {loopback}, "client"}),
                see.declare({"private-netns", {IpAddress::loopback_v4()}, "client and servers in a private network namespace", false})};
        see.document()["lab"] = lab.name();
        run.say.title("Lab 03: ephemeral ports");

        // Fork the namespace child now, before any socket or thread exists, and keep its
        // answer for step 4.
        const PortRange narrow{namespace_range_low, static_cast<Port>(namespace_range_low + range_size - 1)};
        NetnsSettings settings;
        settings.ephemeral_range = narrow;
        const auto exhaustion = run_in_private_netns([narrow] { return exhaust_range(narrow); }, settings);
        NetnsSettings with_a_link;
        with_a_link.ephemeral_range = time_wait_range;
        with_a_link.veth_neighbour = true;
        const auto time_wait = run_in_private_netns([] { return time_wait_on_lo_and_across_a_link(time_wait_range); },
                                                    with_a_link, std::chrono::seconds(20));

        // --- The steps -------------------------------------------------------------------
        const auto range = read_range(run);
        if (!range) return lab.failure("cannot read the ephemeral range: " + range.error().message);
        if (!raise_open_file_limit(static_cast<rlim_t>(2 * count + 4 * compare_count + 64)))
            return lab.failure(fmt::format("{} connections need {} open files; raise the limit (ulimit -n) or use fewer", count, 2 * count + 64));
        asio::io_context io;
        HostSockets held;
        if (const auto error = open_listener(run, io, held)) return lab.bind_failed(lab.server().endpoint(), error);
        if (const auto ports = connect_many(run, io, held, *range, count); !ports) return lab.failure(ports.error().message);
        compare_connect_and_bind_zero(run, io, held, *range, compare_count);
        run_out(run, held, exhaustion, narrow);
        time_wait_and_the_range(run, time_wait, time_wait_range);
        the_myth(run);
        if (lab.json()) lab.print_json(see.document());
        return labkit::exit_ok;
    });
}
