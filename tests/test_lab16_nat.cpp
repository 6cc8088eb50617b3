// Lab 16: NAT (masquerade) in private namespaces. The lab's report (--json) is held to what
// peer tools say inside its namespaces while it pauses: ss in the client and the server,
// conntrack -L in the router, and tshark on both of the router's links during the step
// that runs out of outside ports. Where the lab reads one kernel interface (netlink,
// libpcap, accept()), the test asks another.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "portlab/packet.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab16_nat");

std::string tool_path(const std::string& name) {
    for (const auto* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
        if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
    FAIL(name + " not found");
    return {};
}

std::string endpoint_text(const json& endpoint) {
    return endpoint.at("address").get<std::string>() + ":" + std::to_string(endpoint.at("port").get<int>());
}

// The lab's nodes, found from outside: the body (client) is the lab's namespace child, the
// router, the server and client2 its children; each is told apart by its addresses.
std::map<std::string, pid_t> nodes_of(pid_t lab_pid) {
    std::map<std::string, pid_t> nodes;
    const pid_t client = test::namespace_child(lab_pid);
    REQUIRE(client > 0);
    nodes["client"] = client;
    std::ifstream children("/proc/" + std::to_string(client) + "/task/" + std::to_string(client) + "/children");
    for (pid_t child; children >> child;) {
        const auto addresses = test::run_in_namespace_of(child, {tool_path("ip"), "-4", "-o", "addr"});
        if (addresses.find("198.51.100.1/") != std::string::npos) nodes["router"] = child;
        else if (addresses.find("198.51.100.2/") != std::string::npos) nodes["server"] = child;
        else if (addresses.find("203.0.113.1/") != std::string::npos) nodes["client2"] = child;
    }
    REQUIRE(nodes.size() == 4);
    return nodes;
}

// tshark in the router's namespaces, in the background, writing what crosses one of its
// links into a capture file. Starts when tshark says it captures; stop() ends it as Ctrl-C
// would (it is killed after `seconds` anyway).
class Tshark {
public:
    Tshark(pid_t router, const std::string& interface, const std::string& filter, const std::string& file) {
        int said[2];
        REQUIRE(pipe(said) == 0);
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            const std::string ns = "/proc/" + std::to_string(router) + "/ns/";
            const int user = open((ns + "user").c_str(), O_RDONLY | O_CLOEXEC);
            const int net = open((ns + "net").c_str(), O_RDONLY | O_CLOEXEC);
            if (user < 0 || net < 0 || setns(user, CLONE_NEWUSER) != 0 || setns(net, CLONE_NEWNET) != 0) _exit(3);
            dup2(said[1], STDERR_FILENO);
            execl("/usr/bin/tshark", "tshark", "-n", "-i", interface.c_str(), "-f", filter.c_str(), "-a", "duration:60",
                  "-w", file.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        close(said[1]);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        bool capturing = false;
        while (!capturing && std::chrono::steady_clock::now() < deadline) {
            pollfd readable{said[0], POLLIN, 0};
            if (poll(&readable, 1, 500) <= 0) continue;
            char buffer[1024];
            const auto got = read(said[0], buffer, sizeof buffer);
            if (got <= 0) break;
            said_.append(buffer, static_cast<std::size_t>(got));
            capturing = said_.find("Capturing on") != std::string::npos;
        }
        close(said[0]);
        INFO("tshark said: " << said_);
        REQUIRE(capturing);
        // tshark says "Capturing on" a little before dumpcap's capture takes packets: packets
        // right after it were missing from the file in trials, none after a second's wait.
        usleep(1'500'000);
    }
    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGINT);
        for (int i = 0; i < 100 && waitpid(pid_, nullptr, WNOHANG) != pid_; ++i) usleep(100'000);
        kill(pid_, SIGKILL);  // no effect when it has ended
        waitpid(pid_, nullptr, WNOHANG);
        pid_ = -1;
    }
    ~Tshark() { stop(); }
    Tshark(const Tshark&) = delete;
    Tshark& operator=(const Tshark&) = delete;

private:
    pid_t pid_ = -1;
    std::string said_;
};

// "source port" of each packet in a capture file, as tshark reads it.
std::vector<std::pair<std::string, int>> sources_in(const std::string& file) {
    const auto run = test::run_command("tshark -n -r " + test::shell_quote(file) + " -T fields -e ip.src -e tcp.srcport", 30);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    std::vector<std::pair<std::string, int>> sources;
    for (const auto& line : test::lines_of(run.out)) {
        std::istringstream fields(line);
        std::string source;
        int port = 0;
        if (fields >> source >> port) sources.emplace_back(source, port);
    }
    return sources;
}

// The line of `conntrack -L` whose original tuple is src:sport -> ... dport.
std::string conntrack_line(const std::string& listing, const json& client, int dport) {
    const auto from = "src=" + client.at("address").get<std::string>() + " ";
    const auto sport = "sport=" + std::to_string(client.at("port").get<int>()) + " dport=" + std::to_string(dport) + " ";
    for (const auto& line : test::lines_of(listing))
        if (line.find(from) != std::string::npos && line.find(sport) != std::string::npos) return line;
    return {};
}

}  // namespace

TEST_CASE("lab16: the peer the server sees, conntrack's two tuples and the NAT's port choice, seen from outside",
          "[lab16][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    REQUIRE(test::tool_available("conntrack"));
    REQUIRE(test::tool_available("tshark"));
    const test::TempFile report("facts.json");
    const test::TempFile client_link("client-side.pcapng");
    const test::TempFile server_link("server-side.pcapng");
    test::PausedRun lab_run(lab, {"--json", "--nat-ports", "3", "--source-port", "45000", "--syn-wait", "3"},
                            std::chrono::seconds(90), report.path);
    std::map<std::string, pid_t> nodes;
    std::string server_sockets, client_sockets, router_table, ruleset;
    std::optional<Tshark> client_side, server_side;
    const std::string syns_to_8081 = "tcp dst port 8081 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn";
    const int status = lab_run.run([&](int pause) {
        if (pause == 2) {  // before step 3 (no pause before step 1): step 2 done: one connection through the NAT, still open
            nodes = nodes_of(lab_run.pid());
            server_sockets = test::run_in_namespace_of(nodes["server"], {tool_path("ss"), "-tnH", "state", "established"});
            client_sockets = test::run_in_namespace_of(nodes["client"], {tool_path("ss"), "-tnH", "state", "established"});
            router_table = test::run_in_namespace_of(nodes["router"], {tool_path("conntrack"), "-L", "-p", "tcp"});
            ruleset = test::run_in_namespace_of(nodes["router"], {tool_path("nft"), "list", "ruleset"});
        }
        if (pause == 5) {  // before step 6
            client_side.emplace(nodes["router"], "router-client", syns_to_8081, client_link.path);
            server_side.emplace(nodes["router"], "router-server", syns_to_8081, server_link.path);
        }
        if (pause == 6) {  // step 6 done, nothing closed yet
            REQUIRE(client_side.has_value());
            client_side->stop();
            server_side->stop();
        }
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    std::ifstream file(report.path);
    const auto facts = json::parse(file);

    {  // the server's peer is the router; conntrack's reply tuple holds the translation
        CHECK(ruleset.find("masquerade") != std::string::npos);
        const auto& first = facts.at("first_connection");
        const auto client_local = endpoint_text(first.at("client_local"));
        const auto server_peer = endpoint_text(first.at("server_peer"));
        CAPTURE(server_sockets, client_sockets, router_table);
        CHECK(first.at("server_peer").at("address") == "198.51.100.1");  // the router's address on the server's link
        // ss in each namespace: the same connection, two different 4-tuples.
        CHECK(server_sockets.find("198.51.100.2:8080") != std::string::npos);
        CHECK(server_sockets.find(server_peer) != std::string::npos);
        CHECK(client_sockets.find(client_local + " ") != std::string::npos);
        CHECK(client_sockets.find("198.51.100.2:8080") != std::string::npos);
        CHECK(server_sockets.find("192.0.2.1") == std::string::npos);  // the client's address never reaches the server
        // conntrack -L in the router: original from the client, reply to the router's outside port.
        const auto line = conntrack_line(router_table, first.at("client_local"), 8080);
        REQUIRE_FALSE(line.empty());
        const auto reply = "src=198.51.100.2 dst=198.51.100.1 sport=8080 dport=" +
                           std::to_string(first.at("server_peer").at("port").get<int>());
        CHECK(line.find(reply) != std::string::npos);
        // The lab's netlink reading says the same.
        const auto& entry = facts.at("conntrack");
        CHECK(entry.at("original").at("source") == first.at("client_local"));
        CHECK(entry.at("reply").at("destination") == first.at("server_peer"));
        CHECK(entry.at("source_nat") == true);
        CHECK(line.find(entry.at("tcp_state").get<std::string>()) != std::string::npos);
        // libpcap on both links: the SYN under both tuples.
        const auto& captures = facts.at("captures");
        REQUIRE_FALSE(captures.at("client_side").empty());
        REQUIRE_FALSE(captures.at("server_side").empty());
        CHECK(captures.at("client_side")[0].at("flags") == "SYN");
        CHECK(captures.at("client_side")[0].at("source") == first.at("client_local"));
        CHECK(captures.at("server_side")[0].at("flags") == "SYN");
        CHECK(captures.at("server_side")[0].at("source") == first.at("server_peer"));
    }

    {  // two clients from one source port leave through two outside ports
        const auto& connections = facts.at("same_source_port").at("connections");
        REQUIRE(connections.size() == 2);
        std::set<int> outside;
        for (const auto& c : connections) {
            CHECK(c.at("client_local").at("port") == 45000);
            CHECK(c.at("server_peer").at("address") == "198.51.100.1");
            CHECK(c.at("conntrack").at("reply").at("destination") == c.at("server_peer"));
            outside.insert(c.at("server_peer").at("port").get<int>());
        }
        CHECK(outside.size() == 2);
        CHECK(outside.count(45000) == 1);  // the first keeps its port (get_unique_tuple)
    }

    {  // out of outside ports: the last SYNs never leave the router, tshark agrees
        const auto& out = facts.at("out_of_ports");
        CHECK(out.at("connected") == 3);
        CHECK(out.at("conntrack_entries") == 3);
        CHECK(out.at("failed").at("tcp_state") == "SYN-SENT");
        CHECK(out.at("failed").at("connect_result").is_null());
        CHECK(out.at("failed").at("syns_sent").get<int>() >= 2);  // the SYN and at least one retransmission
        // tshark on both of the router's links.
        std::multiset<int> server_ports;
        for (const auto& [source, port] : sources_in(server_link.path)) {
            CHECK(source == "198.51.100.1");
            server_ports.insert(port);
        }
        int client_side_failed = 0;
        const auto failed = out.at("failed").at("client_local");
        for (const auto& [source, port] : sources_in(client_link.path))
            client_side_failed += source == failed.at("address") && port == failed.at("port");
        CHECK(server_ports.size() == 3);  // one SYN per connection that got a port
        std::set<int> reported;
        for (const auto& port : out.at("outside_ports")) reported.insert(port.get<int>());
        CHECK(std::set<int>(server_ports.begin(), server_ports.end()) == reported);
        for (const int port : server_ports) {
            CHECK(port >= 40000);
            CHECK(port <= 40002);
        }
        CHECK(client_side_failed == out.at("client_side_syns").get<int>());
        CHECK(client_side_failed == out.at("insert_failed").get<int>());  // each one dropped at confirmation
        CHECK(out.at("drop") == out.at("insert_failed"));
    }

    {  // nothing is left behind: the nodes' processes are gone
        for (const auto& [name, pid] : nodes) {
            CAPTURE(name);
            CHECK(kill(pid, 0) == -1);
            CHECK(errno == ESRCH);
        }
    }
}

TEST_CASE("lab16 interrupted in the middle of a step leaves no namespace process behind", "[lab16][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const int signal_number = GENERATE(SIGINT, SIGKILL);
    CAPTURE(signal_number);
    test::PausedRun lab_run(lab, {"--syn-wait", "5"}, std::chrono::seconds(60));
    std::map<std::string, pid_t> nodes;
    std::thread interrupter;
    const int status = lab_run.run([&](int pause) {
        if (pause != 5) return;  // before step 6, whose last connect() waits 5 s
        nodes = nodes_of(lab_run.pid());
        interrupter = std::thread([&lab_run, signal_number] {
            std::this_thread::sleep_for(std::chrono::seconds(2));  // inside step 6, a SYN in flight
            kill(lab_run.pid(), signal_number);
        });
    });
    if (interrupter.joinable()) interrupter.join();
    CHECK(status == -1);  // ended by the signal
    REQUIRE(nodes.size() == 4);
    // The nodes die with the body (PR_SET_PDEATHSIG), the body with the lab: give them a moment.
    for (const auto& [name, pid] : nodes) {
        CAPTURE(name);
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {
            gone = kill(pid, 0) == -1 && errno == ESRCH;
            if (!gone) usleep(100'000);
        }
        CHECK(gone);
    }
}

TEST_CASE("lab16: the trace's nat events are the translations conntrack -L lists in the router, at every pause",
          "[lab16][netns][trace]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile trace("lab16-nat.jsonl");
    test::PausedRun lab_run(lab, {"--trace", trace.path, "--syn-wait", "1"}, std::chrono::seconds(90));
    int pauses = 0;
    const int status = lab_run.run([&](int pause) {
        ++pauses;
        test::check_translations_match(trace.path, nodes_of(lab_run.pid())["router"], "pause " + std::to_string(pause));
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    CHECK(pauses >= 6);
    // Masquerade only: every translation is an snat, and there was at least one per step that connects.
    const auto traced = test::traced_translations(trace.path);
    CHECK(traced.size() >= 4);
    for (const auto& [id, events] : traced)
        for (const auto& event : events) CHECK(event.kind == portlab::trace::NatKind::snat);
}

TEST_CASE("lab16 rejects bad arguments with exit status 2", "[lab16]") {
    for (const auto* bad : {"--nat-ports 0", "--nat-ports 9", "--source-port 80", "--source-port 40001", "--syn-wait 0",
                            "--syn-wait many", "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab16_nat");
    }
}

TEST_CASE("lab16 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab16][conventions]") {
    test::check_lab_conventions({"lab16_nat", false, "--syn-wait 1"});
}

// Issue 10: near the end of lab16's trace, "socket 2 went from CLOSED to LISTEN: TCP_INFO":
// the listeners' state was first read at close(). listen() puts a socket in LISTEN at once
// (inet_csk_listen_start), so the trace must say so before anyone connects to it.
TEST_CASE("lab16's trace tells each state when it happens: LISTEN when listening starts, a client's ESTABLISHED after its SYN-ACK",
          "[lab16][netns][trace]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile trace_file("lab16.jsonl");
    const auto run = test::run_command(test::shell_quote(lab) + " --syn-wait 1 --trace " + test::shell_quote(trace_file.path), 120);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const auto trace = portlab::trace::read_trace_file(trace_file.path);
    REQUIRE(trace.has_value());
    const auto& events = trace->events;
    std::size_t listeners = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto* listening = std::get_if<portlab::trace::Listening>(&events[i].body);
        if (!listening) continue;
        ++listeners;
        std::optional<std::size_t> listen_state;
        std::optional<std::size_t> first_connect;
        for (std::size_t j = i + 1; j < events.size(); ++j) {
            if (const auto* changed = std::get_if<portlab::trace::StateChanged>(&events[j].body);
                changed && !listen_state && events[j].host == events[i].host && changed->socket == listening->socket &&
                changed->to == portlab::TcpState::listen)
                listen_state = j;
            if (std::holds_alternative<portlab::trace::ConnectStarted>(events[j].body) && !first_connect) first_connect = j;
        }
        CAPTURE(i, listening->socket.value);
        REQUIRE(listen_state);
        if (first_connect) CHECK(*listen_state < *first_connect);
    }
    CHECK(listeners == 2);

    // A client's connect() sees ESTABLISHED only after the SYN-ACK reached it: the router's
    // captures must be in the trace before the state they made, or the picture shows a
    // handshake after the connection it opened.
    std::map<std::pair<std::string, std::uint64_t>, portlab::Port> local_port;  // (host, socket) -> port
    std::set<std::string> captured;  // hosts on a link the router captures (client2's is not)
    for (const auto& event : events)
        if (const auto* packet = std::get_if<portlab::trace::Packet>(&event.body); packet && packet->to_host)
            captured.insert(std::string(*packet->to_host));
    std::size_t checked = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (const auto* bound = std::get_if<portlab::trace::Bound>(&events[i].body))
            local_port[{events[i].host, bound->socket.value}] = bound->endpoint.port;
        const auto* changed = std::get_if<portlab::trace::StateChanged>(&events[i].body);
        if (!changed || changed->to != portlab::TcpState::established || !events[i].host.starts_with("client")) continue;
        if (changed->from != portlab::TcpState::syn_sent || !captured.contains(events[i].host)) continue;
        const auto port = local_port.find({events[i].host, changed->socket.value});
        REQUIRE(port != local_port.end());
        bool syn_ack_before = false;
        for (std::size_t j = 0; j < i && !syn_ack_before; ++j) {
            const auto* packet = std::get_if<portlab::trace::Packet>(&events[j].body);
            if (!packet || events[j].host != events[i].host || packet->kind != portlab::trace::PacketKind::delivered) continue;
            const auto decoded = portlab::decode_frame(packet->link, packet->bytes);
            syn_ack_before = decoded && decoded->tcp && decoded->tcp->destination_port == port->second &&
                             (decoded->tcp->flags & (portlab::tcp_flag::syn | portlab::tcp_flag::ack)) ==
                                 (portlab::tcp_flag::syn | portlab::tcp_flag::ack);
        }
        CAPTURE(i, events[i].host, port->second);
        CHECK(syn_ack_before);
        ++checked;
    }
    CHECK(checked >= 3);  // the client's: step 2's, step 5's, step 6's
}
