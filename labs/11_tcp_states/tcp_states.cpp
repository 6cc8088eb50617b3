// Lab 11: one TCP connection through its whole life, every state read from the kernel.
//
// States such as SYN-SENT, FIN-WAIT-1 and LAST-ACK last a fraction of a millisecond on
// loopback, too short to see. So the lab holds each one open with a firewall rule in a
// private network namespace of its own: a rule that drops the packet that would end the
// state, read the state from the kernel, then lift the rule and let TCP's own
// retransmission carry the connection on. The connection's path:
//
//   server: CLOSED -> LISTEN                   (listen)
//   client: CLOSED -> SYN-SENT                 (connect; the SYN is dropped, then retransmitted)
//   both:   ESTABLISHED
//   client: FIN-WAIT-1 -> FIN-WAIT-2           (client shuts down its side; the ACK is held back)
//   server: CLOSE-WAIT -> LAST-ACK -> CLOSED   (server shuts down its side; the last ACK is held back)
//   client: TIME-WAIT                          (and stays there for 60 s after the lab ends)
//
// Every state is read twice where the kernel allows: getsockopt(TCP_INFO).tcpi_state on
// the lab's own file descriptor, and netlink sock_diag, which is how ss(8) reads it.
//
//   lab11_tcp_states
//   lab11_tcp_states --port 9011 --trace states.trace
//   lab11_tcp_states --json

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "labkit/nftables.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/observe.hpp"
#include "labkit/posix.hpp"
#include "portlab/ports.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/tcp_machine.hpp"
#include "portlab/tcp_state.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Port default_port = 8011;
constexpr auto state_wait_limit = 4s;  // a retransmission comes within ~1 s; this bounds every wait
// Under --step on a terminal a pause can last long while a rule drops the retransmissions,
// whose interval grows (1 s apart for the first tcp_syn_linear_timeouts, then doubling to
// 64 s: RFC 6298 5.5); the next one after the rule is lifted may then be a minute away.
// The kernel gives up on a SYN after about 131 s (127 s before Linux 6.5).
constexpr auto stepping_wait_limit = 135s;

// ---- the state machine, from the hub's table --------------------------------------------

using Edge = std::pair<TcpState, TcpState>;

// RFC 9293 Figure 5 (RFC 793 Figure 6) as the hub's transition table lists it: one line per
// arrow with its cause, plus any other edge of the table this connection took. The edges it
// took are marked "*" with the sides that took them (reverse video on a terminal).
std::string state_machine_table(const std::map<Edge, std::set<std::string>>& taken, bool color) {
    std::string table;
    std::set<Edge> listed;
    for (const auto& transition : tcp_transitions()) {
        const Edge edge{transition.from, transition.to};
        const auto took = taken.find(edge);
        if (transition.source != TcpEdgeSource::figure && took == taken.end()) continue;
        if (!listed.insert(edge).second) continue;
        const TcpTransition& shown = *principal_tcp_transition(edge.first, edge.second);
        std::string line = fmt::format("{} {:<12} -> {:<12}  ", took == taken.end() ? ' ' : '*', to_string(edge.first),
                                       to_string(edge.second));
        if (took == taken.end()) line += shown.cause();
        else line += fmt::format("{:<34}  {}", shown.cause(), fmt::join(took->second, ", "));
        if (took != taken.end() && color) line = "\033[7m" + line + "\033[0m";
        table += "  " + line + "\n";
    }
    for (const auto& [edge, sides] : taken)
        if (!is_tcp_transition(edge.first, edge.second))
            table += fmt::format("  ! {:<12} -> {:<12}  not an edge of TCP's state machine  {}\n", to_string(edge.first),
                                 to_string(edge.second), fmt::join(sides, ", "));
    return table;
}

// ---- reading a state from the kernel ------------------------------------------------------

// What the kernel says about one socket right now, from both sources.
struct KernelView {
    std::optional<int> tcp_info;   // tcpi_state of our descriptor (include/net/tcp_states.h numbering)
    std::optional<int> sock_diag;  // idiag_state of the socket with this 4-tuple; nullopt: not listed
    std::uint32_t total_retransmissions = 0;  // tcpi_total_retrans

    // The state this socket is in. A descriptor whose connection went to TIME-WAIT says
    // CLOSE: Linux moved the connection into a small timewait socket with no file
    // (inet_twsk, net/ipv4/tcp_minisocks.c), which only sock_diag can see.
    [[nodiscard]] std::optional<TcpState> state() const {
        if (sock_diag) {
            if (auto listed = from_linux_tcp_state(*sock_diag)) return *listed;
        }
        if (tcp_info) {
            if (auto own = from_linux_tcp_state(*tcp_info)) return *own;
        }
        return std::nullopt;
    }
    [[nodiscard]] std::vector<std::string> via() const {
        std::vector<std::string> sources;
        const auto agreed = state();
        if (tcp_info && agreed && from_linux_tcp_state(*tcp_info).value_or(TcpState::closed) == *agreed)
            sources.emplace_back("tcp_info");
        if (sock_diag && agreed && from_linux_tcp_state(*sock_diag).value_or(TcpState::closed) == *agreed)
            sources.emplace_back("sock_diag");
        return sources;
    }
};

KernelView look(int fd, const FourTuple& tuple) {
    KernelView view;
    if (fd >= 0) {
        tcp_info info{};
        socklen_t length = sizeof info;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0) {
            view.tcp_info = info.tcpi_state;
            view.total_retransmissions = info.tcpi_total_retrans;
        }
    }
    const auto sockets = diag::list_sockets({.udp = false, .ipv6 = false, .port = tuple.local.port, .with_processes = false});
    if (sockets) {
        for (const auto& socket : *sockets)
            if (socket.local == tuple.local && socket.remote == tuple.remote) view.sock_diag = socket.kernel_state;
    }
    return view;
}

// Looks until the kernel reports `wanted` (or the limit passes; then the last view).
KernelView wait_for(int fd, const FourTuple& tuple, TcpState wanted, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    auto view = look(fd, tuple);
    while (view.state() != wanted && Clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
        view = look(fd, tuple);
    }
    return view;
}

// Waits until `side`'s kernel has sent a segment again (tcpi_total_retrans above `before`):
// the evidence that the rule really dropped what would have ended the state. The ACK of a
// FIN need not leave at once (tcp_fin() puts the receiver in delayed-ACK "pingpong" mode),
// so without this wait a rule lifted quickly may never see the ACK at all.
std::uint32_t wait_for_retransmission(int fd, const FourTuple& tuple, std::uint32_t before,
                                      std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    auto view = look(fd, tuple);
    while (view.total_retransmissions <= before && Clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
        view = look(fd, tuple);
    }
    if (view.total_retransmissions <= before)
        throw std::runtime_error(fmt::format("{}: no retransmission within {} ms while the rule was in force",
                                             tuple.to_string(), limit.count()));
    return view.total_retransmissions;
}

std::string kernel_name(std::optional<int> number) {
    if (!number) return "not listed";
    const auto state = from_linux_tcp_state(*number);
    return state ? std::string(to_string(*state)) : fmt::format("kernel state {}", *number);
}

// ---- sockets -----------------------------------------------------------------------------------

[[noreturn]] void kernel_error(const std::string& call) {
    throw std::runtime_error(call + ": " + errno_text(errno) + " (" + std::strerror(errno) + ")");
}

// ---- the story --------------------------------------------------------------------------------

using labkit::fact::Accepted;
using labkit::fact::Bound;
using labkit::fact::Closed;
using labkit::fact::Connecting;
using labkit::fact::Listening;
using labkit::quietly;

// One state, as observed: which socket, when, what the kernel said, and why it changed.
struct Sighting {
    std::string side;  // "listener", "client", "server"
    TcpState state;
    KernelView view;
    std::int64_t t_us;
    std::string cause;
};

// One socket of the story: the lab's descriptor, the trace's name for it, its 4-tuple.
struct Side {
    std::string name;  // "listener", "client", "server"
    labkit::SocketRef ref;
    int fd = -1;
    FourTuple tuple;
};

// Everything a run shares: the lab's voice, what it observed (narration, trace and --json
// from one call each), the two hosts of the story and the namespace's firewall.
struct Run {
    Lab& lab;
    Narrator& say;
    labkit::Observer& see;
    std::chrono::milliseconds wait_limit;  // how long to wait for a retransmission to change a state
    firewall::Nftables nft;
    labkit::Host server_host, client_host;
    std::vector<Sighting> timeline{};
    struct Rule {
        std::string host, id;  // the host whose port it holds back, and its id ("r1")
    };
    std::optional<Rule> rule_in_force{};  // one at a time
    int rules_added = 0;
    // The --json "firewall" log: one entry per rule added or removed, with its time and why.
    json& firewall_log() { return see.document()["firewall"]; }
};

// Reads `side`'s state from the kernel (waiting until it is `expected`), narrates it, and
// records it once: the timeline, and the Observer's trace event (observed: the kernel said it).
void observe(Run& run, const Side& side, TcpState expected, const std::string& cause, bool descriptor_open = true) {
    const int fd = descriptor_open ? side.fd : -1;
    const auto view = wait_for(fd, side.tuple, expected, run.wait_limit);
    const auto state = view.state();
    if (!state) throw std::runtime_error(side.name + ": the kernel reports no state for " + side.tuple.to_string());
    run.say.kernel(fmt::format("{:<8} {:<12} TCP_INFO: {:<12} sock_diag: {}", side.name, to_string(*state),
                               fd >= 0 ? kernel_name(view.tcp_info) : "(no descriptor)", kernel_name(view.sock_diag)));
    if (*state != expected) run.say.note(fmt::format("(expected {}: this kernel took another path)", to_string(expected)));
    run.see.record(labkit::fact::State{side.ref, *state, labkit::Evidence::observed,
                                       fmt::format("{} ({})", cause, fmt::join(view.via(), "+"))},
                   quietly);
    run.timeline.push_back({side.name, *state, view, static_cast<std::int64_t>(run.lab.elapsed_us()), cause});
}

// A rule that drops packets to `port`, on the host whose port it is (both hosts share the
// namespace's one nftables table, but the rule stops traffic into that host's socket).
// Recorded once nft took it: rule_added r1, r2, ... (narration, trace, and its entry of the
// --json "firewall" log).
void hold_back(Run& run, const labkit::Host& host, Port port, const std::string& why) {
    const FirewallRule rule = drop_port(Protocol::tcp, port);
    if (auto applied = run.nft.apply({rule}); !applied) throw std::runtime_error(applied.error().message);
    // apply() replaces the whole table: a rule still in force went with it.
    if (run.rule_in_force)
        run.see.record(labkit::fact::RuleRemoved{run.rule_in_force->host, run.rule_in_force->id}, labkit::trace_only);
    const auto id = fmt::format("r{}", ++run.rules_added);
    run.rule_in_force = Run::Rule{host.name, id};
    auto& log = run.firewall_log();
    log.push_back({{"t_us", run.lab.elapsed_us()}, {"why", why}});
    run.see.record(labkit::fact::RuleAdded{host.name, id, rule},
                   {.say = fmt::format("rule {} added: {}   ({})", id, *nft_text(rule), why),
                    .json_at = fmt::format("/firewall/{}", log.size() - 1)});
}

// Takes the rule out again (nft deletes the table): rule_removed.
void lift_rule(Run& run, const std::string& why) {
    if (auto cleared = run.nft.clear(); !cleared) throw std::runtime_error(cleared.error().message);
    if (!run.rule_in_force) return;
    auto& log = run.firewall_log();
    log.push_back({{"t_us", run.lab.elapsed_us()}, {"rule", nullptr}, {"why", why}});
    run.see.record(labkit::fact::RuleRemoved{run.rule_in_force->host, run.rule_in_force->id},
                   {.say = fmt::format("rule {} removed   ({})", run.rule_in_force->id, why),
                    .json_at = fmt::format("/firewall/{}", log.size() - 1)});
    run.rule_in_force.reset();
}

// 1. LISTEN.
Side listen_on(Run& run, const Endpoint& server_endpoint) {
    run.see.step(fmt::format("the server: socket(), bind({}), listen()", server_endpoint.to_string()));
    Side listener{"listener", run.see.open(run.server_host, Protocol::tcp, IpFamily::v4), -1,
                  {server_endpoint, {IpAddress::any_v4(), 0}}};
    listener.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto address = socket_address(server_endpoint);
    if (listener.fd < 0 || bind(listener.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        kernel_error("bind " + server_endpoint.to_string());
    run.see.record(Bound{listener.ref, server_endpoint, trace::BindHow::explicit_port}, quietly);
    if (listen(listener.fd, 8) != 0) kernel_error("listen");
    run.see.record(Listening{listener.ref, 8}, quietly);
    observe(run, listener, TcpState::listen, "listen() called");
    run.say.see_it_yourself(
        fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tan 'sport = :{}'", getpid(), server_endpoint.port));
    return listener;
}

// 2. SYN-SENT: the SYN goes out and the firewall drops it, so no SYN-ACK comes back.
Side connect_while_dropped(Run& run, const Endpoint& server_endpoint) {
    run.see.step("the client: connect() while a firewall rule drops every packet to the server's port");
    hold_back(run, run.server_host, server_endpoint.port, "the SYN never arrives");
    Side client{"client", run.see.open(run.client_host, Protocol::tcp, IpFamily::v4), -1, {}};
    client.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client.fd < 0) kernel_error("socket");
    const auto address = socket_address(server_endpoint);
    run.see.record(Connecting{client.ref, server_endpoint, false}, quietly);
    if (connect(client.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 || errno != EINPROGRESS)
        kernel_error("connect (expected EINPROGRESS)");
    const auto local = local_endpoint(client.fd);
    if (!local) throw std::runtime_error(local.error().message);
    client.tuple = {*local, server_endpoint};
    run.see.record(Bound{client.ref, client.tuple.local, trace::BindHow::ephemeral},
                   {fmt::format("connect() answered EINPROGRESS; the kernel chose port {} for the client",
                                client.tuple.local.port),
                    "/client"});
    observe(run, client, TcpState::syn_sent, "connect() sent a SYN");
    std::this_thread::sleep_for(300ms);
    observe(run, client, TcpState::syn_sent, "still no SYN-ACK: the SYN was dropped");
    run.say.note("no answer at all: the kernel will send the SYN again 1 s after the first (initial RTO, RFC 6298 2.1)");
    run.say.see_it_yourself(fmt::format(
        "nsenter --preserve-credentials --target {} --user --net ss -tano state syn-sent   (timer: the next retransmission)", getpid()));
    return client;
}

// 3. ESTABLISHED: lift the rule; the retransmitted SYN completes the handshake.
// Returns how many times the client sent its SYN again (tcpi_total_retrans).
std::uint32_t establish(Run& run, const Side& client, Clock::time_point connect_started) {
    run.see.step("lift the rule and wait for the SYN's retransmission");
    lift_rule(run, "the next SYN gets through");
    pollfd waiting{client.fd, POLLOUT, 0};
    if (poll(&waiting, 1, static_cast<int>(run.wait_limit.count())) <= 0)
        throw std::runtime_error(fmt::format("the handshake did not complete within {} s", run.wait_limit.count() / 1000));
    int error = 0;
    socklen_t error_length = sizeof error;
    getsockopt(client.fd, SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (error != 0) throw std::runtime_error("connect: " + errno_text(error));
    const auto handshake_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - connect_started).count();
    observe(run, client, TcpState::established, "SYN-ACK received, ACK sent");
    const auto retransmissions = run.timeline.back().view.total_retransmissions;
    run.say.note(fmt::format("the handshake took {} ms; tcpi_total_retrans = {} (the dropped SYN, sent again)",
                             handshake_ms, retransmissions));
    run.see.document()["handshake_ms"] = handshake_ms;
    return retransmissions;
}

// accept() hands out the server's side of the connection, and data goes both ways.
Side accept_and_talk(Run& run, const Side& listener, const Side& client) {
    const int fd = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) kernel_error("accept");
    const FourTuple tuple = client.tuple.reversed();
    Side server{"server", run.see.record(Accepted{listener.ref, tuple}, quietly), fd, tuple};
    observe(run, server, TcpState::established, "handshake completed; accept() returned it");
    if (send(client.fd, "hello", 5, 0) != 5 || send(server.fd, "hi", 2, 0) != 2) kernel_error("send");
    char buffer[16];
    if (recv(server.fd, buffer, sizeof buffer, 0) <= 0) kernel_error("recv (server)");
    pollfd readable{client.fd, POLLIN, 0};
    if (poll(&readable, 1, 2000) <= 0 || recv(client.fd, buffer, sizeof buffer, 0) <= 0) kernel_error("recv (client)");
    run.say.note("data went both ways: \"hello\" to the server, \"hi\" back");
    run.say.see_it_yourself(
        fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tani 'sport = :{}'", getpid(), tuple.local.port));
    return server;
}

// 4. FIN-WAIT-1 and CLOSE-WAIT: the client closes its side; the server's ACK is held back.
void client_sends_fin(Run& run, const Side& client, const Side& server) {
    run.see.step("the client calls shutdown(SHUT_WR): it sends a FIN; the server's ACK of it is dropped");
    hold_back(run, run.client_host, client.tuple.local.port, "nothing reaches the client");
    if (shutdown(client.fd, SHUT_WR) != 0) kernel_error("shutdown (client)");
    observe(run, server, TcpState::close_wait, "FIN received, ACK sent");
    observe(run, client, TcpState::fin_wait_1, "shutdown() sent a FIN");
    const auto before = run.timeline.back().view.total_retransmissions;
    const auto after = wait_for_retransmission(client.fd, client.tuple, before, run.wait_limit);
    run.say.kernel(fmt::format("client   sent its FIN again: tcpi_total_retrans {} -> {}, so no ACK of it got through",
                               before, after));
    run.see.document()["fin_retransmissions"] = after - before;
    run.say.note("the server knows the client is done sending; the client does not yet know its FIN arrived");
    run.say.see_it_yourself(fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tano '( sport = :{} or dport = :{} )'",
                                        getpid(), server.tuple.local.port, server.tuple.local.port));
}

// 5. FIN-WAIT-2: the rule goes; the next ACK from the server (of the FIN it received twice) gets through.
void client_fin_acknowledged(Run& run, const Side& client, const Side& server) {
    run.see.step("lift the rule: the server's next ACK of the FIN reaches the client");
    lift_rule(run, "the ACK can get through");
    observe(run, client, TcpState::fin_wait_2, "ACK of FIN received");
    char buffer[16];
    const auto eof = recv(server.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    run.say.note(fmt::format("the server's recv() now returns {}: end of stream. It may still send, and must close", eof));
    run.say.see_it_yourself(fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tan state fin-wait-2", getpid()));
}

// 6. LAST-ACK and TIME-WAIT: the server closes; the client's last ACK is held back.
void server_sends_fin(Run& run, const Side& client, const Side& server) {
    run.see.step("the server calls shutdown(SHUT_WR): its FIN reaches the client; the client's ACK is dropped");
    hold_back(run, run.server_host, server.tuple.local.port, "nothing reaches the server");
    if (shutdown(server.fd, SHUT_WR) != 0) kernel_error("shutdown (server)");
    observe(run, server, TcpState::last_ack, "shutdown() sent a FIN");
    observe(run, client, TcpState::time_wait, "FIN received, ACK sent");
    const auto before = look(server.fd, server.tuple).total_retransmissions;
    const auto after = wait_for_retransmission(server.fd, server.tuple, before, run.wait_limit);
    run.say.kernel(fmt::format("server   sent its FIN again: tcpi_total_retrans {} -> {}, so the client's ACK was dropped",
                               before, after));
    run.see.document()["last_fin_retransmissions"] = after - before;
    run.say.note("TIME-WAIT is seen only by sock_diag: the client's descriptor already reports CLOSE, because Linux moved the");
    run.say.note("connection into a small timewait socket (no file, no owner) that will live 60 s (TCP_TIMEWAIT_LEN)");
    run.say.see_it_yourself(fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tan state time-wait", getpid()));
}

// 7. CLOSED: the rule goes; the server's FIN is retransmitted, the timewait socket ACKs it.
void server_fin_acknowledged(Run& run, const Side& server) {
    run.see.step("lift the rule: the server's FIN is retransmitted, the client (in TIME-WAIT) acknowledges it");
    lift_rule(run, "the last ACK can get through");
    observe(run, server, TcpState::closed, "ACK of FIN received");
    run.say.note("the server's connection is gone: sock_diag no longer lists it");
    run.say.see_it_yourself(fmt::format("nsenter --preserve-credentials --target {} --user --net ss -tan 'sport = :{}'   (only the listener)",
                                        getpid(), server.tuple.local.port));
}

// 8. Close the descriptors: TIME-WAIT stays.
void close_all(Run& run, const Side& listener, const Side& client, const Side& server) {
    run.see.step("close() both descriptors and the listener");
    run.say.pause();
    for (const Side* side : {&server, &client, &listener}) {
        close(side->fd);
        run.see.record(Closed{side->ref}, quietly);
    }
    observe(run, client, TcpState::time_wait, "still in TIME-WAIT after close()", false);
    run.say.note("the listener is closed; the client's port stays held by TIME-WAIT (2 MSL, RFC 793 3.5)");
    run.say.see_it_yourself(fmt::format(
        "nsenter --preserve-credentials --target {} --user --net ss -tano state time-wait   (timer: what is left of 60 s)", getpid()));
}

// The timeline, the diagram and the facts: each side's path, and the machine's edges it took.
void print_timeline(Run& run) {
    run.see.step("the timeline");
    json timeline = json::array();
    std::map<std::string, json> paths;
    std::map<Edge, std::set<std::string>> taken;
    // Where each side's path starts: the server's socket came out of the kernel's
    // SYN-RECEIVED request sock, which only the kernel saw.
    std::map<std::string, TcpState> at = {
        {"listener", TcpState::closed}, {"client", TcpState::closed}, {"server", TcpState::syn_received}};
    for (const auto& sighting : run.timeline) {
        run.say.note(fmt::format("t = {:7.3f} s  {:<8} {:<12} via {:<20} {}", static_cast<double>(sighting.t_us) / 1e6,
                                 sighting.side, to_string(sighting.state),
                                 fmt::format("{}", fmt::join(sighting.view.via(), "+")), sighting.cause));
        timeline.push_back({{"t_us", sighting.t_us}, {"side", sighting.side}, {"state", to_string(sighting.state)},
                            {"via", sighting.view.via()}, {"cause", sighting.cause},
                            {"tcp_info_state", sighting.view.tcp_info ? json(*sighting.view.tcp_info) : json(nullptr)},
                            {"sock_diag_state", sighting.view.sock_diag ? json(*sighting.view.sock_diag) : json(nullptr)}});
        auto& path = paths[sighting.side];
        if (path.empty() || path.back() != to_string(sighting.state)) path.push_back(to_string(sighting.state));
        if (at[sighting.side] != sighting.state) taken[{at[sighting.side], sighting.state}].insert(sighting.side);
        at[sighting.side] = sighting.state;
    }
    run.say.step("TCP's state machine (RFC 9293 3.3.2, Figure 5), with the edges this connection took marked *");
    if (!run.lab.json()) std::cout << state_machine_table(taken, run.lab.color()) << '\n';
    run.say.fact("client", fmt::format("CLOSED -> {}", fmt::join(paths["client"], " -> ")));
    run.say.fact("listener", "CLOSED -> LISTEN");
    run.say.fact("server", fmt::format("(SYN-RECEIVED, inside the kernel) -> {}", fmt::join(paths["server"], " -> ")));
    run.see.document().update({{"timeline", timeline}, {"paths", paths}});
}

// The whole story, inside the private namespace. Returns the --json document.
json tell_the_story(Lab& lab, std::uint64_t host_netns, std::chrono::milliseconds wait_limit, const Endpoint& server_endpoint) {
    const auto token = firewall::PrivateNetnsToken::confirm(host_netns);
    if (!token) throw std::runtime_error(token.error().message);
    auto nft = firewall::Nftables::open(*token);
    if (!nft) throw std::runtime_error(nft.error().message);
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, wait_limit, std::move(*nft), {}, {}};
    // Both ends live on the namespace's own loopback: two hosts of the story, one kernel.
    run.server_host = see.declare({"server", {server_endpoint.address}, "server"});
    run.client_host = see.declare({"client", {server_endpoint.address}, "client"});
    see.document().update({{"lab", lab.name()}, {"server", labkit::json_of(server_endpoint)},
                           {"namespace", {{"private", true}, {"netns_id", token->netns_id()}, {"host_netns_id", host_netns}}}});

    const auto listener = listen_on(run, server_endpoint);
    const auto connect_started = Clock::now();
    const auto client = connect_while_dropped(run, server_endpoint);
    const auto syn_retransmissions = establish(run, client, connect_started);
    const auto server = accept_and_talk(run, listener, client);
    client_sends_fin(run, client, server);
    client_fin_acknowledged(run, client, server);
    server_sends_fin(run, client, server);
    server_fin_acknowledged(run, server);
    close_all(run, listener, client, server);
    print_timeline(run);
    see.refresh();
    lab.trace().flush();  // this child's events; the parent writes no more

    see.document().update({{"client_port", client.tuple.local.port}, {"syn_retransmissions", syn_retransmissions}});
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab11_tcp_states", "Lab 11: one TCP connection through every state, read from the kernel"},
                   [](Lab& lab) {
        lab.add_server_options(default_port, {});  // its own namespace: nothing here holds the port
        lab.cli().footer("Runs in a private network namespace; firewall rules there hold each state long enough to see.");
        lab.parse();
        const auto& server = lab.server();
        if (!server.bind.is_v4() || !server.bind.is_loopback())
            return lab.usage_error("--bind: the lab's namespace has only lo, so use an IPv4 loopback address (127.x.y.z)");
        const Endpoint endpoint{server.bind, server.port == 0 ? default_port : server.port};

        auto& say = lab.narrate();
        say.title("Lab 11: the life of one TCP connection, state by state");
        const auto host_netns = firewall::network_namespace_id();
        if (!host_netns) return lab.failure(host_netns.error().message);
        const bool pausing = lab.options().step && isatty(STDIN_FILENO) == 1;
        const auto wait_limit = std::chrono::duration_cast<std::chrono::milliseconds>(pausing ? stepping_wait_limit : state_wait_limit);
        return tell_in_private_netns(lab, 30s, [&] { return tell_the_story(lab, *host_netns, wait_limit, endpoint); },
                                     "this lab holds states open with firewall rules in a namespace of its own. "
                                     "The simulator shows the same path: portlab-sim --scenario firewall-drop");
    });
}
