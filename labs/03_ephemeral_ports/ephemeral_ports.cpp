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

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <type_traits>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
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

// ---- step 2: N connections to one server ---------------------------------------------

// The server half, as in Asio's echo examples: accept until it has `count` sockets.
awaitable<void> accept_all(tcp::acceptor& acceptor, std::vector<tcp::socket>& accepted, int count) {
    while (static_cast<int>(accepted.size()) < count) accepted.push_back(co_await acceptor.async_accept(use_awaitable));
}

// The client half: connect() `count` fresh sockets, never calling bind().
awaitable<void> connect_all(const tcp::endpoint server, std::vector<tcp::socket>& clients, int count,
                            std::error_code& failure) {
    auto executor = co_await asio::this_coro::executor;
    for (int i = 0; i < count; ++i) {
        tcp::socket socket(executor);
        auto [error] = co_await socket.async_connect(server, no_throw);
        if (error) {
            failure = error;
            co_return;
        }
        clients.push_back(std::move(socket));
    }
}

// ---- step 3: connect() versus bind(0), TCP and UDP -----------------------------------

template <class Protocol>
std::vector<Port> ports_from(asio::io_context& io, bool use_connect, const typename Protocol::endpoint& server, int count,
                             labkit::TraceRecorder& trace, PortRange range) {
    std::vector<typename Protocol::socket> sockets;  // all open at once, so no port is reused
    std::vector<Port> ports;
    const auto protocol = std::is_same_v<Protocol, tcp> ? portlab::Protocol::tcp : portlab::Protocol::udp;
    for (int i = 0; i < count; ++i) {
        typename Protocol::socket socket(io, server.protocol());
        const auto id = trace.socket_created("client", protocol, server.address().is_v4() ? IpFamily::v4 : IpFamily::v6);
        if (use_connect) {
            // For UDP, connect() sends nothing: it only fixes the peer, and binds a port first.
            socket.connect(server);
            trace.connect_started("client", id, labkit::to_endpoint(server));
        } else {
            socket.bind({server.address(), 0});
        }
        const auto port = socket.local_endpoint().port();
        if (use_connect && range.contains(port))
            trace.ephemeral_assigned("client", id, port, range,
                                     protocol == portlab::Protocol::tcp ? "linux-hash-connect" : "linux-udp-random");
        if (!use_connect) trace.bound("client", id, {labkit::to_ip_address(server.address()), port}, trace::BindHow::bind_zero);
        ports.push_back(port);
        sockets.push_back(std::move(socket));
    }
    return ports;
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
            {"other_destination_port", other_port},
            {"other_destination_error", other_error ? json(labkit::describe_error(other_error)) : json(nullptr)}};
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
        auto& say = lab.narrate();
        auto& trace = lab.trace();
        say.title("Lab 03: ephemeral ports");

        // Fork the namespace child now, before any socket or thread exists, and keep its
        // answer for step 4.
        const PortRange narrow{namespace_range_low, static_cast<Port>(namespace_range_low + range_size - 1)};
        NetnsSettings settings;
        settings.ephemeral_range = narrow;
        const auto exhaustion = run_in_private_netns([narrow] { return exhaust_range(narrow); }, settings);

        // --- 1. The range ----------------------------------------------------------------
        say.step("read the ephemeral range from /proc/sys/net/ipv4/ip_local_port_range");
        const auto range = read_ephemeral_range();
        if (!range) return lab.failure("cannot read the ephemeral range: " + range.error().message);
        say.kernel(fmt::format("{} ({} ports; {} even, {} odd)", range->to_string(), range->size(),
                               (range->size() + (range->low % 2 == 0 ? 1 : 0)) / 2,
                               (range->size() + (range->low % 2 == 1 ? 1 : 0)) / 2));
        say.see_it_yourself("sysctl net.ipv4.ip_local_port_range");
        json facts = {{"lab", lab.name()}, {"ephemeral_range", {{"low", range->low}, {"high", range->high}, {"size", range->size()}}}};

        // --- 2. N connections to one server ----------------------------------------------
        if (!raise_open_file_limit(static_cast<rlim_t>(2 * count + 64)))
            return lab.failure(fmt::format("{} connections need {} open files; raise the limit (ulimit -n) or use fewer", count, 2 * count + 64));
        asio::io_context io;
        const auto requested = lab.server().endpoint();
        tcp::acceptor acceptor(io);
        std::error_code error;
        acceptor.open(labkit::to_tcp_endpoint(requested).protocol(), error);
        if (!error) acceptor.set_option(tcp::acceptor::reuse_address(true), error);
        if (!error) acceptor.bind(labkit::to_tcp_endpoint(requested), error);
        if (error) return lab.bind_failed(requested, error);
        acceptor.listen(asio::socket_base::max_listen_connections);
        const auto server = labkit::to_endpoint(acceptor.local_endpoint());
        const auto listener_id = trace.socket_created("server", Protocol::tcp, server.address.family());
        trace.bound("server", listener_id, server, requested.port ? trace::BindHow::explicit_port : trace::BindHow::bind_zero);
        trace.listening("server", listener_id, asio::socket_base::max_listen_connections);

        say.step(fmt::format("open {} connections to {}, each from a new socket that never called bind()", count, server.to_string()));
        std::vector<tcp::socket> clients, accepted;
        std::error_code connect_error;
        asio::co_spawn(io, accept_all(acceptor, accepted, count), asio::detached);
        asio::co_spawn(io, connect_all(acceptor.local_endpoint(), clients, count, connect_error), asio::detached);
        io.run_for(std::chrono::seconds(20));
        if (connect_error) return lab.failure("connect() failed: " + labkit::describe_error(connect_error));
        if (static_cast<int>(accepted.size()) != count) return lab.failure("the connections did not finish in 20 s");

        std::vector<Port> ports;
        for (std::size_t i = 0; i < clients.size(); ++i) {
            const FourTuple client_side{labkit::to_endpoint(clients[i].local_endpoint()), server};
            const auto id = trace.socket_created("client", Protocol::tcp, server.address.family());
            trace.connect_started("client", id, server);
            if (range->contains(client_side.local.port)) trace.ephemeral_assigned("client", id, client_side.local.port, *range);
            ports.push_back(client_side.local.port);
        }
        for (const auto& socket : accepted)
            trace.accepted("server", listener_id, {labkit::to_endpoint(socket.local_endpoint()), labkit::to_endpoint(socket.remote_endpoint())});

        const auto pattern = pattern_of(ports, *range);
        const std::size_t shown = ports.size() <= 20 ? ports.size() : 10;
        for (std::size_t i = 0; i < shown; ++i)
            say.kernel(fmt::format("connection {:>4}: port {:<5} {:<4} {}", i + 1, ports[i], parity_of(ports[i]),
                                   i == 0 ? "" : fmt::format("gap {:+}", int{ports[i]} - int{ports[i - 1]})));
        if (shown < ports.size()) say.note(fmt::format("... {} more (use --json for all)", ports.size() - shown));
        say.fact("range", pattern.outside_range == 0 ? fmt::format("all {} ports lie in {}", ports.size(), range->to_string())
                                                     : fmt::format("{} ports lie OUTSIDE {}", pattern.outside_range, range->to_string()));
        say.fact("parity", fmt::format("{} even, {} odd", pattern.even, pattern.odd));
        say.fact("order", fmt::format("{} steps up, {} steps down; most common gaps: {}", pattern.increasing,
                                      pattern.decreasing, most_common_gaps(pattern)));
        say.note("Linux's connect() hashes the destination with a secret into a starting offset, then walks the");
        say.note("range in steps of 2 from an even port, leaving odd ports for bind(0) (RFC 6056 section 3.3.4,");
        say.note("'double-hash'; net/ipv4/inet_hashtables.c, __inet_hash_connect). The next connect() to the same");
        say.note("destination starts a little further on (plus a small random step), so the ports rise:");
        say.note("predictable per destination, not globally.");
        say.see_it_yourself(fmt::format("ss -tn 'dport = :{}'", server.port));
        facts["server"] = {{"address", server.address.to_string()}, {"port", server.port}};
        facts["connections"] = pattern_json(ports, *range);
        facts["accepted_local_ports"] = json::array();
        for (const auto& socket : accepted) facts["accepted_local_ports"].push_back(socket.local_endpoint().port());

        // --- 3. connect() versus bind(0), TCP and UDP ------------------------------------
        say.step(fmt::format("{} sockets each: TCP connect(), TCP bind(0), UDP connect(), UDP bind(0)", compare_count));
        const auto loopback = labkit::to_asio_address(server.address);
        const auto tcp_connect = ports_from<tcp>(io, true, {loopback, server.port}, compare_count, trace, *range);
        const auto tcp_bind = ports_from<tcp>(io, false, {loopback, server.port}, compare_count, trace, *range);
        const auto udp_connect = ports_from<udp>(io, true, {loopback, server.port}, compare_count, trace, *range);
        const auto udp_bind = ports_from<udp>(io, false, {loopback, server.port}, compare_count, trace, *range);
        facts["compare"] = json::object();
        for (const auto& [name, list] : {std::pair{"tcp_connect", &tcp_connect}, std::pair{"tcp_bind_zero", &tcp_bind},
                                         std::pair{"udp_connect", &udp_connect}, std::pair{"udp_bind_zero", &udp_bind}}) {
            const auto kind = pattern_of(*list, *range);
            say.kernel(fmt::format("{:<14} {:<36} {} even, {} odd", name, fmt::format("{}", fmt::join(*list, " ")), kind.even, kind.odd));
            facts["compare"][name] = pattern_json(*list, *range);
        }
        say.note("TCP bind(0) prefers odd ports (inet_csk_find_open_port), the half connect() leaves free, so");
        say.note("servers that bind(0) and clients that connect() rarely compete. UDP has no such split: it");
        say.note("starts at a random port (udp_lib_get_port), and connect() on an unbound UDP socket just binds one.");
        say.see_it_yourself("ss -uan 'sport >= :" + std::to_string(range->low) + "'   while paused with --step");

        // Close everything on the host before the namespace part (the sockets would go at
        // the end anyway; closing says it in the code).
        for (auto& socket : clients) socket.close();
        for (auto& socket : accepted) socket.close();
        acceptor.close();
        trace.closed("server", listener_id);

        // --- 4. Running out, in a private namespace ------------------------------------------
        say.step(fmt::format("in a private network namespace, narrow the range to {} ({} ports) and connect until the kernel refuses",
                             narrow.to_string(), narrow.size()));
        if (!exhaustion) {
            say.note(exhaustion.error().message + "; skipping this step");
            facts["exhaustion"] = {{"available", false}, {"reason", exhaustion.error().message}};
        } else {
            const auto& result = *exhaustion;
            std::vector<Port> used;
            for (const auto& port : result["ports"]) used.push_back(port.get<Port>());
            say.kernel(fmt::format("/proc in the namespace says {}", result["proc_range"].get<std::string>()));
            say.kernel(fmt::format("{} connections to 127.0.0.1:{} got ports {}", used.size(), namespace_server_a,
                                   fmt::format("{}", fmt::join(used, " "))));
            const auto refusal = result["refusal"].is_null() ? std::string("none") : result["refusal"].get<std::string>();
            say.kernel(fmt::format("connection {}: {}", used.size() + 1, refusal));
            say.kernel("bind(0) now: " + result["bind_zero_after"].get<std::string>());
            const auto other = result["other_destination_port"];
            say.kernel(other.is_null() ? "a connection to 127.0.0.1:" + std::to_string(namespace_server_b) + " failed too: " +
                                             result["other_destination_error"].get<std::string>()
                                       : fmt::format("a connection to ANOTHER server, 127.0.0.1:{}, still works: it got port {}, "
                                                     "already used for 127.0.0.1:{}", namespace_server_b, other.get<int>(), namespace_server_a));
            say.note("A connection is named by its 4-tuple, so connect() may reuse a local port as long as the");
            say.note("destination differs (__inet_hash_connect checks the 4-tuple with __inet_check_established).");
            say.note("What runs out is ports towards ONE destination address and port: range size, no more.");
            say.note("The fixes are more range, more destination addresses/ports, or fewer connections in TIME-WAIT.");
            say.see_it_yourself(fmt::format("unshare -rn sh -c 'ip link set lo up; sysctl -w net.ipv4.ip_local_port_range=\"{} {}\"; ...'",
                                            narrow.low, narrow.high));
            for (const auto port : used) {
                const auto id = trace.socket_created("private-netns", Protocol::tcp, IpFamily::v4);
                trace.connect_started("private-netns", id, {IpAddress::loopback_v4(), namespace_server_a});
                if (narrow.contains(port)) trace.ephemeral_assigned("private-netns", id, port, narrow);
            }
            const auto refused_id = trace.socket_created("private-netns", Protocol::tcp, IpFamily::v4);
            const std::error_code refused(result["refusal_errno"].get<int>(), std::system_category());
            if (refused) trace.call_failed("private-netns", refused_id, "connect", refused);
            facts["exhaustion"] = {{"available", true},
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

        say.step("myth: \"a port for every window\"");
        say.note("One browser tab is not one port, and a port is not a connection. A client port is picked per");
        say.note("connection, from a range of tens of thousands, and reused as soon as the 4-tuple differs.");
        if (lab.json()) lab.print_json(facts);
        return labkit::exit_ok;
    });
}
