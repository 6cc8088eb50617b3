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
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "labkit/nftables.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
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

// One state, as observed: which socket, when, what the kernel said, and why it changed.
struct Sighting {
    std::string side;  // "listener", "client", "server"
    TcpState state;
    KernelView view;
    std::int64_t t_us;
    std::string cause;
};

class Story {
public:
    Story(Lab& lab, std::uint64_t host_netns, std::chrono::milliseconds wait_limit)
        : lab_(lab), say_(lab.narrate()), trace_(lab.trace()), host_netns_(host_netns), wait_limit_(wait_limit) {}

    json run(const Endpoint& server_endpoint);

private:
    // Reads `side`'s state from the kernel (waiting until it is `expected`), narrates it,
    // and records it in the timeline and the trace.
    void observe(const std::string& side, int fd, const FourTuple& tuple, TcpState expected, const std::string& cause);
    void hold_back(std::initializer_list<firewall::Rule> rules, const std::string& why);
    void lift_rule(const std::string& why);

    struct Socket {
        trace::SocketId id;
        std::string host;
        TcpState last = TcpState::closed;
    };

    Lab& lab_;
    Narrator& say_;
    TraceRecorder& trace_;
    std::uint64_t host_netns_;
    std::chrono::milliseconds wait_limit_;  // how long to wait for a retransmission to change a state
    std::optional<firewall::Nftables> nft_;
    std::map<std::string, Socket> sockets_;
    std::vector<Sighting> timeline_;
    json rules_log_ = json::array();
};

void Story::observe(const std::string& side, int fd, const FourTuple& tuple, TcpState expected, const std::string& cause) {
    const auto view = wait_for(fd, tuple, expected, wait_limit_);
    const auto state = view.state();
    if (!state) throw std::runtime_error(side + ": the kernel reports no state for " + tuple.to_string());
    say_.kernel(fmt::format("{:<8} {:<12} TCP_INFO: {:<12} sock_diag: {}", side, to_string(*state),
                            fd >= 0 ? kernel_name(view.tcp_info) : "(no descriptor)", kernel_name(view.sock_diag)));
    if (*state != expected)
        say_.note(fmt::format("(expected {}: this kernel took another path)", to_string(expected)));
    auto& socket = sockets_.at(side);
    if (socket.last != *state) trace_.state_changed(socket.host, socket.id, socket.last, *state, cause);
    socket.last = *state;
    timeline_.push_back({side, *state, view, static_cast<std::int64_t>(lab_.elapsed_us()), cause});
}

void Story::hold_back(std::initializer_list<firewall::Rule> rules, const std::string& why) {
    if (auto applied = nft_->apply(rules); !applied) throw std::runtime_error(applied.error().message);
    for (const auto& rule : rules) {
        say_.fact("firewall", *firewall::rule_text(rule) + "   (" + why + ")");
        rules_log_.push_back({{"t_us", lab_.elapsed_us()}, {"rule", *firewall::rule_text(rule)}, {"why", why}});
        trace_.note("firewall: " + *firewall::rule_text(rule) + " (" + why + ")");
    }
}

void Story::lift_rule(const std::string& why) {
    if (auto cleared = nft_->clear(); !cleared) throw std::runtime_error(cleared.error().message);
    say_.fact("firewall", "rule removed (" + why + ")");
    rules_log_.push_back({{"t_us", lab_.elapsed_us()}, {"rule", nullptr}, {"why", why}});
    trace_.note("firewall: rule removed (" + why + ")");
}

json Story::run(const Endpoint& server_endpoint) {
    const Port port = server_endpoint.port;
    const auto token = firewall::PrivateNetnsToken::confirm(host_netns_);
    if (!token) throw std::runtime_error(token.error().message);
    auto nft = firewall::Nftables::open(*token);
    if (!nft) throw std::runtime_error(nft.error().message);
    nft_.emplace(std::move(*nft));
    const auto range = read_ephemeral_range().value_or(PortRange{32768, 60999});

    // 1. LISTEN.
    say_.step(fmt::format("the server: socket(), bind({}), listen()", server_endpoint.to_string()));
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto server_address = socket_address(server_endpoint);
    if (listener < 0 || bind(listener, reinterpret_cast<const sockaddr*>(&server_address), sizeof server_address) != 0)
        kernel_error("bind " + server_endpoint.to_string());
    if (listen(listener, 8) != 0) kernel_error("listen");
    sockets_["listener"] = {trace_.socket_created("server", Protocol::tcp, IpFamily::v4), "server"};
    trace_.bound("server", sockets_["listener"].id, server_endpoint, trace::BindHow::explicit_port);
    trace_.listening("server", sockets_["listener"].id, 8);
    const FourTuple listening{server_endpoint, {IpAddress::any_v4(), 0}};
    observe("listener", listener, listening, TcpState::listen, "listen() called");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tan 'sport = :{}'", getpid(), port));

    // 2. SYN-SENT: the SYN goes out and the firewall drops it, so no SYN-ACK comes back.
    say_.step("the client: connect() while a firewall rule drops every packet to the server's port");
    hold_back({{Protocol::tcp, port, firewall::Action::drop}}, "the SYN never arrives");
    const int client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client < 0) kernel_error("socket");
    sockets_["client"] = {trace_.socket_created("client", Protocol::tcp, IpFamily::v4), "client"};
    trace_.connect_started("client", sockets_["client"].id, server_endpoint);
    const auto connect_started = Clock::now();
    if (connect(client, reinterpret_cast<const sockaddr*>(&server_address), sizeof server_address) == 0 || errno != EINPROGRESS)
        kernel_error("connect (expected EINPROGRESS)");
    const FourTuple client_tuple{local_endpoint(client).value(), server_endpoint};
    trace_.ephemeral_assigned("client", sockets_["client"].id, client_tuple.local.port, range);
    say_.kernel(fmt::format("connect() answered EINPROGRESS; the kernel chose port {} for the client", client_tuple.local.port));
    observe("client", client, client_tuple, TcpState::syn_sent, "connect() sent a SYN");
    std::this_thread::sleep_for(300ms);
    observe("client", client, client_tuple, TcpState::syn_sent, "still no SYN-ACK: the SYN was dropped");
    say_.note("no answer at all: the kernel will send the SYN again 1 s after the first (initial RTO, RFC 6298 2.1)");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tano state syn-sent   (timer: the next retransmission)",
                                     getpid()));

    // 3. ESTABLISHED: lift the rule; the retransmitted SYN completes the handshake.
    say_.step("lift the rule and wait for the SYN's retransmission");
    lift_rule("the next SYN gets through");
    pollfd waiting{client, POLLOUT, 0};
    if (poll(&waiting, 1, static_cast<int>(wait_limit_.count())) <= 0)
        throw std::runtime_error(fmt::format("the handshake did not complete within {} s", wait_limit_.count() / 1000));
    int error = 0;
    socklen_t error_length = sizeof error;
    getsockopt(client, SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (error != 0) throw std::runtime_error("connect: " + errno_text(error));
    const auto handshake_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - connect_started).count();
    observe("client", client, client_tuple, TcpState::established, "SYN-ACK received, ACK sent");
    const auto syn_retransmissions = timeline_.back().view.total_retransmissions;
    say_.note(fmt::format("the handshake took {} ms; tcpi_total_retrans = {} (the dropped SYN, sent again)", handshake_ms,
                          syn_retransmissions));
    const int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0) kernel_error("accept");
    const FourTuple server_tuple = client_tuple.reversed();
    sockets_["server"] = {trace_.accepted("server", sockets_["listener"].id, server_tuple), "server"};
    sockets_["server"].last = TcpState::syn_received;  // the kernel finished the handshake before accept()
    observe("server", server, server_tuple, TcpState::established, "handshake completed; accept() returned it");
    if (send(client, "hello", 5, 0) != 5 || send(server, "hi", 2, 0) != 2) kernel_error("send");
    char buffer[16];
    if (recv(server, buffer, sizeof buffer, 0) <= 0) kernel_error("recv (server)");
    pollfd readable{client, POLLIN, 0};
    if (poll(&readable, 1, 2000) <= 0 || recv(client, buffer, sizeof buffer, 0) <= 0) kernel_error("recv (client)");
    say_.note("data went both ways: \"hello\" to the server, \"hi\" back");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tani 'sport = :{}'", getpid(), port));

    // 4. FIN-WAIT-1 and CLOSE-WAIT: the client closes its side; the server's ACK is held back.
    say_.step("the client calls shutdown(SHUT_WR): it sends a FIN; the server's ACK of it is dropped");
    hold_back({{Protocol::tcp, client_tuple.local.port, firewall::Action::drop}}, "nothing reaches the client");
    if (shutdown(client, SHUT_WR) != 0) kernel_error("shutdown (client)");
    observe("server", server, server_tuple, TcpState::close_wait, "FIN received, ACK sent");
    observe("client", client, client_tuple, TcpState::fin_wait_1, "shutdown() sent a FIN");
    say_.note("the server knows the client is done sending; the client does not yet know its FIN arrived");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tano '( sport = :{} or dport = :{} )'", getpid(),
                                     port, port));

    // 5. FIN-WAIT-2: the rule goes; the FIN is retransmitted and acknowledged.
    say_.step("lift the rule: the client's FIN is retransmitted and acknowledged");
    lift_rule("the ACK can get through");
    observe("client", client, client_tuple, TcpState::fin_wait_2, "ACK of FIN received");
    const auto eof = recv(server, buffer, sizeof buffer, MSG_DONTWAIT);
    say_.note(fmt::format("the server's recv() now returns {}: end of stream. It may still send, and must close", eof));
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tan state fin-wait-2", getpid()));

    // 6. LAST-ACK and TIME-WAIT: the server closes; the client's last ACK is held back.
    say_.step("the server calls shutdown(SHUT_WR): its FIN reaches the client; the client's ACK is dropped");
    hold_back({{Protocol::tcp, port, firewall::Action::drop}}, "nothing reaches the server");
    if (shutdown(server, SHUT_WR) != 0) kernel_error("shutdown (server)");
    observe("server", server, server_tuple, TcpState::last_ack, "shutdown() sent a FIN");
    observe("client", client, client_tuple, TcpState::time_wait, "FIN received, ACK sent");
    say_.note("TIME-WAIT is seen only by sock_diag: the client's descriptor already reports CLOSE, because Linux moved the");
    say_.note("connection into a small timewait socket (no file, no owner) that will live 60 s (TCP_TIMEWAIT_LEN)");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tan state time-wait", getpid()));

    // 7. CLOSED: the rule goes; the server's FIN is retransmitted, the timewait socket ACKs it.
    say_.step("lift the rule: the server's FIN is retransmitted, the client (in TIME-WAIT) acknowledges it");
    lift_rule("the last ACK can get through");
    observe("server", server, server_tuple, TcpState::closed, "ACK of FIN received");
    say_.note("the server's connection is gone: sock_diag no longer lists it");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tan 'sport = :{}'   (only the listener)", getpid(), port));

    // 8. Close the descriptors: TIME-WAIT stays.
    say_.step("close() both descriptors and the listener");
    say_.pause();
    close(server);
    close(client);
    close(listener);
    trace_.closed("server", sockets_["server"].id);
    trace_.closed("client", sockets_["client"].id);
    trace_.closed("server", sockets_["listener"].id);
    observe("client", -1, client_tuple, TcpState::time_wait, "still in TIME-WAIT after close()");
    say_.note("the listener is closed; the client's port stays held by TIME-WAIT (2 MSL, RFC 793 3.5)");
    say_.see_it_yourself(fmt::format("sudo nsenter --target {} --user --net ss -tano state time-wait   (timer: what is left of 60 s)",
                                     getpid()));

    // The timeline, the diagram and the facts.
    say_.step("the timeline");
    json timeline = json::array();
    std::map<std::string, json> paths;
    std::map<Edge, std::set<std::string>> taken;
    // Where each side's path starts: the server's socket came out of the kernel's
    // SYN-RECEIVED request sock, which only the kernel saw.
    std::map<std::string, TcpState> at = {{"listener", TcpState::closed}, {"client", TcpState::closed},
                                          {"server", TcpState::syn_received}};
    for (const auto& sighting : timeline_) {
        say_.note(fmt::format("t = {:7.3f} s  {:<8} {:<12} via {:<20} {}", static_cast<double>(sighting.t_us) / 1e6,
                              sighting.side, to_string(sighting.state), fmt::format("{}", fmt::join(sighting.view.via(), "+")),
                              sighting.cause));
        timeline.push_back({{"t_us", sighting.t_us}, {"side", sighting.side}, {"state", to_string(sighting.state)},
                            {"via", sighting.view.via()}, {"cause", sighting.cause},
                            {"tcp_info_state", sighting.view.tcp_info ? json(*sighting.view.tcp_info) : json(nullptr)},
                            {"sock_diag_state", sighting.view.sock_diag ? json(*sighting.view.sock_diag) : json(nullptr)}});
        auto& path = paths[sighting.side];
        if (path.empty() || path.back() != to_string(sighting.state)) path.push_back(to_string(sighting.state));
        if (at[sighting.side] != sighting.state) taken[{at[sighting.side], sighting.state}].insert(sighting.side);
        at[sighting.side] = sighting.state;
    }
    say_.step("TCP's state machine (RFC 9293 3.3.2, Figure 5), with the edges this connection took marked *");
    if (!lab_.json()) std::cout << state_machine_table(taken, lab_.color()) << '\n';
    say_.fact("client", fmt::format("CLOSED -> {}", fmt::join(paths["client"], " -> ")));
    say_.fact("listener", "CLOSED -> LISTEN");
    say_.fact("server", fmt::format("(SYN-RECEIVED, inside the kernel) -> {}", fmt::join(paths["server"], " -> ")));
    (void)trace_.finish();  // this child's events; the parent writes no more

    return {{"lab", lab_.name()},
            {"server", {{"address", server_endpoint.address.to_string()}, {"port", port}}},
            {"client_port", client_tuple.local.port},
            {"namespace", {{"private", true}, {"netns_id", token->netns_id()}, {"host_netns_id", host_netns_}}},
            {"handshake_ms", handshake_ms},
            {"syn_retransmissions", syn_retransmissions},
            {"timeline", timeline},
            {"paths", paths},
            {"firewall", rules_log_}};
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab11_tcp_states", "Lab 11: one TCP connection through every state, read from the kernel"},
                   [](Lab& lab) {
        lab.add_server_options(default_port);
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
        (void)lab.trace().finish();  // flush before fork: the child continues the same file
        const auto limit = lab.options().step ? std::chrono::milliseconds(std::chrono::minutes(30))
                                              : std::chrono::milliseconds(30s);
        const bool pausing = lab.options().step && isatty(STDIN_FILENO) == 1;
        const auto wait_limit = std::chrono::duration_cast<std::chrono::milliseconds>(pausing ? stepping_wait_limit : state_wait_limit);
        const auto facts = run_in_private_netns([&] { return Story(lab, *host_netns, wait_limit).run(endpoint); }, {}, limit);
        if (!facts) {
            if (facts.error().message.find("unavailable") == std::string::npos) return lab.failure(facts.error().message);
            return lab.failure(facts.error().message +
                               "; this lab holds states open with firewall rules in a namespace of its own. "
                               "The simulator shows the same path: portlab-sim --scenario firewall-drop");
        }
        if (lab.json()) lab.print_json(*facts);
        return exit_ok;
    });
}
