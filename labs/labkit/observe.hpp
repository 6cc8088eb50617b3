#pragma once
// How a lab records what it observed: one call per fact, three outputs from one value.
//
// A lab learns facts from the kernel (bind() returned, getsockname() said port 40002,
// TCP_INFO says ESTABLISHED). Each fact is a plain struct below; Observer::record takes
// it and, from that one value, prints the narration line ("  kernel: ..."), writes the
// trace event(s) (--trace) and puts the --json entry in the lab's JSON document. So the
// three outputs cannot drift apart.
//
//   labkit::Observer& see = lab.observer();
//   const auto server = see.declare({"server", {IpAddress::loopback_v4()}, "server"});
//   const auto listener = see.open(server, Protocol::tcp, IpFamily::v4);            // socket()
//   acceptor.bind(...);
//   see.record(labkit::fact::Bound{listener, local, trace::BindHow::bind_zero}, {.json_at = "/listener"});
//   acceptor.listen();
//   see.record(labkit::fact::Listening{listener, backlog});
//   see.read_state(listener, acceptor.native_handle());   // TCP_INFO: LISTEN, evidence "observed"
//   see.step("client: connect()");                         // re-reads every socket's state first
//
// Evidence. A TCP state the kit read from the kernel (TCP_INFO on the lab's descriptor,
// or sock_diag for sockets the lab no longer holds, such as TIME-WAIT) is "observed";
// a state the lab deduced from a call that returned (connect() was called, so SYN-SENT)
// is "inferred". Before each step (and when the lab ends) the kit reads every socket it
// knows back from the kernel with sock_diag and records the states that changed, so the
// trace says at each step what the kernel had: the replay model (visualizer/replay)
// rebuilds exactly that, and each lab's test checks it against the kernel.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "labkit/sock_diag.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"
#include "portlab/scan.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/trace.hpp"

namespace portlab::labkit {

class Narrator;
class TraceRecorder;

// A host of the lab's story, declared once (the trace's "host" event) before any socket
// on it. Two hosts may share one kernel: lab02's "client" and "server" are both 127.0.0.1.
struct Host {
    std::string name;                  // "client", "server", "private-netns": the trace's host name
    std::vector<IpAddress> addresses;  // its own addresses
    std::string role;                  // for the picture: "client", "server", "scanner"; may be empty
    // Whether its sockets live in this process's network namespace, so the kit can read
    // them back from the kernel. False for a namespace a child process owned (lab03).
    bool here = true;
    // For a host that is not here but whose namespace this process can enter (a node of
    // network.hpp's Network): runs a function with this thread inside it, so the kit reads
    // that host's sockets back with sock_diag there, as `ss` in that namespace would.
    // Observer::stop_looking_inside() drops it, and the namespace descriptor it holds, when
    // the story ends.
    std::function<void(const std::function<void()>&)> look_inside{};
};

// A socket the lab opened, as the trace names it: (host, id). Copyable, cheap.
struct SocketRef {
    std::string host;
    trace::SocketId id;
    Protocol protocol = Protocol::tcp;
    friend bool operator==(const SocketRef&, const SocketRef&) = default;
};

// How the lab knows a TCP state (the trace's Evidence, without the simulator's "model").
enum class Evidence : std::uint8_t {
    observed,  // read from the kernel: TCP_INFO, sock_diag, ss
    inferred,  // deduced from a call that returned
};
[[nodiscard]] std::string_view to_string(Evidence evidence) noexcept;

// ---- the facts ---------------------------------------------------------------------
namespace fact {

// The socket has a local address and port (getsockname() after bind(), connect() or sendto()).
struct Bound {
    SocketRef socket{};
    Endpoint local{};
    trace::BindHow how = trace::BindHow::explicit_port;  // explicit, port 0, or implicitly by connect()/sendto()
    // For a port the kernel chose (bind_zero, ephemeral): the range it chose from. Unset:
    // this namespace's ip_local_port_range, read once.
    std::optional<PortRange> range{};
    // How the kernel chose it; unset: the kit names Linux's way for the protocol and call
    // ("linux-hash-connect", "linux-bind-zero-odd-first", "linux-udp-random").
    std::optional<std::string> chosen_by{};
    std::optional<std::string> note{};  // "SO_REUSEADDR set"
};

struct Listening {
    SocketRef socket{};
    std::uint32_t backlog = 0;  // as passed to listen()
};

// connect() was called: a TCP socket sends its SYN (SYN-SENT, inferred); a UDP socket
// only fixes its peer.
struct Connecting {
    SocketRef socket{};
    Endpoint remote{};
    // false: the lab reads SYN-SENT from the kernel itself right after (lab11 holds the
    // state open to see it), so the kit infers nothing.
    bool infer_syn_sent = true;
};

// accept() returned a new socket; its 4-tuple is seen from the listener's host.
struct Accepted {
    SocketRef listener{};
    FourTuple four_tuple{};
};

// A TCP state. `from` is the last state the kit recorded for the socket.
struct State {
    SocketRef socket{};
    TcpState to = TcpState::closed;
    Evidence evidence = Evidence::inferred;
    std::string cause{};  // "connect() returned", "TCP_INFO", "sock_diag"
};

// close() was called. TCP may keep the socket a while (FIN exchange, TIME-WAIT): later
// states come from the kernel.
struct Closed {
    SocketRef socket{};
};

// A call the kernel refused, tied to its socket when there is one.
struct Failed {
    std::optional<SocketRef> socket{};
    std::string call{};  // "bind", "connect", ...
    std::error_code error{};
    std::string host{};  // the host, when no socket names it
    // The address the call named: bind()'s wanted local endpoint, which the trace can show
    // no other way. Unset for a connect(): the kit fills in the remote it recorded.
    std::optional<Endpoint> endpoint{};
};

// A firewall rule the lab put into one of a host's chains (rule.chain: input, or a router's
// forward chain; and the kernel took it: nft answered without an error, or listed it back),
// or took out again. rule_id names it for the drops.
struct RuleAdded {
    std::string host{};
    std::string rule_id{};
    FirewallRule rule{};
};
struct RuleRemoved {
    std::string host{};
    std::string rule_id{};
};

// A scanner on `host` sent a probe (attempt 0 first, n for the n-th retransmission),
// through `socket` when it scans with sockets.
struct Probed {
    std::string host{};
    scan::ScanType scan = scan::ScanType::connect;
    Endpoint target{};
    std::uint32_t attempt = 0;
    std::optional<SocketRef> socket{};
};
// What the scanner concluded about the port, in nmap's words (scan::classify's verdict).
struct ScanConcluded {
    std::string host{};
    scan::ScanType scan = scan::ScanType::connect;
    Endpoint target{};
    scan::Verdict verdict{};
};

// A router's kernel translated a connection's addresses: one NAT rewrite, as connection
// tracking holds it (nat_trace.hpp reads it from the kernel's table).
struct Translated {
    std::string router{};
    trace::NatTranslated translation{};
};

// A packet from a capture (or one the lab built), as the trace stores it.
struct PacketSeen {
    std::string host{};
    trace::Packet packet{};
};

}  // namespace fact

// What record() says and where its --json entry goes.
struct Tell {
    // The narration line, printed as "  kernel: <say>". Unset: the kit's sentence for the
    // fact; "": say nothing (the lab narrates it in its own words elsewhere).
    std::optional<std::string> say;
    // A JSON pointer ("/listener") into the lab's document: the fact's fields are merged
    // into the object there. "": the entry is appended to the "/observed" list.
    std::string json_at;
    // false: no --json entry (a scan of 65,535 ports reports its ports in its own table).
    bool in_json = true;
};
inline const Tell quietly{std::string(), {}};
// Only the trace: nothing said, nothing in --json.
inline const Tell trace_only{std::string(), {}, false};

// One lab's facts: narrates, traces and collects --json from each. Thread-safe.
class Observer {
public:
    Observer(Narrator& narrator, TraceRecorder& trace);

    // Declares a host (the trace's "host" event). Returns it, to open sockets on.
    const Host& declare(Host host);
    // socket() returned. Not narrated unless tell.say is given.
    SocketRef open(const Host& host, Protocol protocol, IpFamily family, const Tell& tell = quietly);

    void record(const fact::Bound& fact, const Tell& tell = {});
    void record(const fact::Listening& fact, const Tell& tell = {});
    void record(const fact::Connecting& fact, const Tell& tell = {});
    // Returns the new socket accept() returned.
    SocketRef record(const fact::Accepted& fact, const Tell& tell = {});
    // Recorded only when the state differs from the last one recorded for the socket.
    void record(const fact::State& fact, const Tell& tell = {});
    void record(const fact::Closed& fact, const Tell& tell = {});
    void record(const fact::Failed& fact, const Tell& tell = {});
    void record(const fact::PacketSeen& fact, const Tell& tell = quietly);
    void record(const fact::RuleAdded& fact, const Tell& tell = {});
    void record(const fact::RuleRemoved& fact, const Tell& tell = {});
    void record(const fact::Probed& fact, const Tell& tell = trace_only);
    void record(const fact::ScanConcluded& fact, const Tell& tell = trace_only);
    void record(const fact::Translated& fact, const Tell& tell = trace_only);

    // The TCP state the kernel holds for a socket the lab still has open, read with
    // TCP_INFO on its descriptor (getsockopt, <netinet/tcp.h>) and recorded as observed.
    // TCP_INFO says CLOSE once the connection has moved to a timewait sock (tcp_time_wait()
    // marks the original socket closed), so a CLOSE for a connection is checked with
    // sock_diag, which lists the TIME-WAIT entry.
    std::optional<TcpState> read_state(const SocketRef& socket, int fd, const Tell& tell = quietly);
    // Reads every TCP socket of the hosts `here` back from the kernel (one sock_diag
    // dump), records each state that changed as observed, and CLOSED for a socket the
    // kernel no longer lists. A connection the kernel holds for a listener the kit follows
    // but that accept() has not returned yet (SYN-RECV, or ESTABLISHED in the accept
    // queue) is recorded as the listener's child (trace child_created), with its state;
    // fact::Accepted then hands that same socket over. Returns the dump, for narration
    // that quotes the kernel.
    std::vector<diag::SocketInfo> refresh();
    // Refreshes every 20 ms, for at most `limit`, until no TCP socket the kit follows is in
    // a passing state (SYN-SENT, SYN-RECEIVED, FIN-WAIT-1, CLOSING, LAST-ACK): after a
    // burst of close() calls, so the next pause shows what stays. Returns the last dump.
    std::vector<diag::SocketInfo> settle(std::chrono::milliseconds limit = std::chrono::milliseconds(2000));
    // Forgets every host's look_inside: the namespaces they enter are about to go.
    void stop_looking_inside();
    // A new step of the lab: refresh(), flush the trace (so a tool reading the file at a
    // --step pause sees every event so far), then Narrator::step (which may pause first).
    void step(std::string_view what);
    // Whether any socket is still followed (opened, not yet gone).
    [[nodiscard]] bool follows_sockets() const;
    // The last state recorded for a socket (CLOSED if none).
    [[nodiscard]] TcpState state_of(const SocketRef& socket) const;

    // The --json document; a lab adds its own keys and prints it at the end.
    [[nodiscard]] nlohmann::json& document() noexcept { return document_; }

private:
    struct Known {  // what the kit remembers of a socket, to fill `from` and to refresh it
        Protocol protocol = Protocol::tcp;
        bool here = true;
        std::optional<Endpoint> local, remote;
        bool listening = false;
        bool closed = false;
        TcpState state = TcpState::closed;
        std::optional<std::uint32_t> child_of{};  // a listener's, until accept() returns it
    };
    using Key = std::pair<std::string, std::uint32_t>;

    SocketRef mint(const std::string& host, Protocol protocol, bool here);
    void emit(const std::string& host, trace::EventBody body);
    [[nodiscard]] bool silent(const Tell& tell) const;
    void forget_failed_connect(const SocketRef& socket, std::error_code error);
    void tell(const Tell& tell, const std::string& sentence, nlohmann::json entry, std::string_view kind);
    void change_state(const SocketRef& socket, Known& known, TcpState to, Evidence evidence, const std::string& cause,
                      const Tell& tell);
    std::optional<PortRange> range_here();
    // A connection in `dump` that belongs to a listener the kit follows and that it does
    // not know yet becomes that listener's child (observed).
    void adopt_children(const std::vector<diag::SocketInfo>& dump, const std::optional<std::string>& inside);
    // Whether the kit can read this socket's state back: here, or on a host it can look into.
    [[nodiscard]] bool readable(const Key& key, const Known& known) const;
    // refresh()'s work; `with_owners`: also name each socket's processes (a /proc scan).
    std::vector<diag::SocketInfo> read_back(bool with_owners);

    mutable std::recursive_mutex mutex_;
    Narrator* say_;
    TraceRecorder* trace_;
    std::map<std::string, Host, std::less<>> hosts_;
    std::map<Key, Known> known_;
    std::uint32_t next_id_ = 1;
    std::optional<std::optional<PortRange>> range_here_;  // read once
    nlohmann::json document_ = nlohmann::json::object();
};

// ---- what most labs do first --------------------------------------------------------

struct TcpListener {
    asio::ip::tcp::acceptor acceptor;
    SocketRef ref;
};
struct OpenedListener {
    std::optional<TcpListener> listener;
    std::error_code error;  // bind()'s (or socket()'s), for Lab::bind_failed
};
// socket(), SO_REUSEADDR, bind(requested), listen(), each recorded as a fact (bound_tell
// tells the bind, listening_tell the listen), then LISTEN read with TCP_INFO. SO_REUSEADDR
// on purpose: a lab's server must restart while its old connections sit in TIME-WAIT
// (lab 06 shows what happens without it). A failed bind() is recorded, tied to its socket.
[[nodiscard]] OpenedListener open_tcp_listener(Observer& see, asio::io_context& io, const Host& host,
                                               const Endpoint& requested, const Tell& bound_tell = {},
                                               const Tell& listening_tell = {});

// close() on a socket the lab holds (an Asio socket or acceptor), told to the Observer
// once: nothing happens when it is closed already.
// For TCP the state just before close() is read first (TCP_INFO): a peer's FIN may have
// moved it to CLOSE-WAIT, and then close() leads to LAST-ACK, not FIN-WAIT-1.
template <class Socket>
void close_and_tell(Observer& see, Socket& socket, const SocketRef& ref, const Tell& tell = quietly) {
    if (!socket.is_open()) return;
    if (ref.protocol == Protocol::tcp) (void)see.read_state(ref, socket.native_handle());
    std::error_code ignored;
    socket.close(ignored);
    see.record(fact::Closed{ref}, tell);
}

// The JSON the facts use: {"address": "127.0.0.1", "port": 8080}.
[[nodiscard]] nlohmann::json json_of(const Endpoint& endpoint);

// The TCP state of a descriptor, from TCP_INFO's tcpi_state.
[[nodiscard]] Result<TcpState> tcp_state_of(int fd);

}  // namespace portlab::labkit
