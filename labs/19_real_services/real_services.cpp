// Lab 19: real services on their well-known ports, in private network namespaces.
//
// Does port 80 make a web server? Two hosts, each a network namespace of its own
// (labkit/network.hpp), joined by one veth link with documentation addresses (RFC 5737):
//
//   client 192.0.2.1 ------------------------------ 192.0.2.2 server
//                                                    UDP 53  DNS ("domain" in /etc/services)
//                                                    TCP 53  DNS, for answers too big for UDP
//                                                    TCP 80  HTTP ("http")
//                                                    TCP 25  greets like SSH, on "smtp"'s port
//
// The server's four services are Asio coroutines in this one process. What each step shows is
// read from the kernel or from a real client (curl), never from a table:
//
//   1. the network, and what /etc/services calls the ports 53, 80 and 25
//   2. the services bind their ports (below 1024: root of the lab's own namespace may)
//   3. DNS over UDP: one query, one datagram back (RFC 1035 4.2.1)
//   4. a big answer: more than 512 bytes does not fit a plain DNS datagram: the server sets
//      TC, the client asks again over TCP port 53, each message after a 2-byte length
//      (RFC 1035 4.2.2, RFC 7766)
//   5. curl, a real HTTP client, fetches http://www.portlab.example/ at the address step 3 found
//   6. what a scanner reads: connect, wait for a banner, ask if nothing comes, and set the
//      answer against the name /etc/services gives the port. Port 25 speaks SSH: the port
//      number names nothing; the program that bound it decides what it speaks.
//
//   lab19_real_services
//   lab19_real_services --records 29 --json      (29 A records still fit in 512 bytes)
//   lab19_real_services --pcap lab19.pcap        then: tshark -r lab19.pcap -Y dns -V

#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "labkit/capture.hpp"
#include "labkit/dns.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "labkit/private_story.hpp"
#include "labkit/network.hpp"
#include "labkit/node_look.hpp"
#include "labkit/observe.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/services.hpp"
#include "portlab/text.hpp"
#include "portlab/text_safety.hpp"

using namespace portlab;
using namespace portlab::labkit;
using namespace asio::experimental::awaitable_operators;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using asio::ip::udp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto no_throw = asio::experimental::as_tuple(use_awaitable);  // errors as values
constexpr Port http_port = 80;
constexpr Port banner_port = 25;
// What the service on port 25 says first. An SSH server sends its version line before
// anything else (RFC 4253 4.2); nmap's NULL probe waits for exactly that.
constexpr const char* ssh_banner = "SSH-2.0-portlab_lab19\r\n";
const std::string small_name = "www.portlab.example";  // RFC 6761: .example is for examples
const std::string big_name = "big.portlab.example";
constexpr std::uint32_t ttl = 60;

struct Settings {
    int records = 40;  // A records for big.portlab.example: 40 make a 677-byte answer
    std::chrono::milliseconds wait{2000};  // how long the client waits for each answer
    std::string pcap_file;                 // --pcap: the client's capture, for tshark
    OutputRules output_rules{};
};

// client - server, one link: the server is the lab's own namespace (the first node), so the
// kit reads its sockets back from the kernel at every step; the client is another node.
NetworkSpec services_network() { return {{"server", "client"}, {}, {{"client", "server"}}}; }

// What the server's coroutines heard, told by the main thread after each step (the services
// run on a thread of their own; the narration stays in order).
struct Heard {
    std::mutex mutex;
    std::vector<std::string> lines;
    std::atomic<int> open_connections = 0;  // accepted and not yet closed
    void add(std::string line) {
        const std::lock_guard lock(mutex);
        lines.push_back(std::move(line));
    }
    std::vector<std::string> take() {
        const std::lock_guard lock(mutex);
        return std::exchange(lines, {});
    }
};

// What the run shares.
struct Run {
    Lab& lab;
    Narrator& say;
    Observer& see;
    Network& net;
    Settings settings;
    ServiceTable services = ServiceTable::system_or_fallback();
    Host client{}, server{};
    Heard heard{};
    std::optional<capture::LiveCapture> capture{};
    std::vector<pcap::Record> captured{};
    json& facts() { return see.document(); }
    [[nodiscard]] IpAddress server_address() const { return *net.address("server"); }
};

[[noreturn]] void failed(const std::string& what, const Error& error) {
    throw std::runtime_error(what + ": " + error.message);
}

// The name /etc/services gives a port (what getservbyport(3) reads), or "(none)".
std::string etc_services_name(const Run& run, Port port, Protocol protocol) {
    const auto* entry = run.services.find_by_port(port, protocol);
    return entry ? entry->name : std::string("(none)");
}

// ---- the server: four services, Asio coroutines on one thread ----------------------------------

// The zone the DNS server knows: one name for the server itself, one with many addresses.
dns::Message answer_to(const Run& run, const dns::Message& query) {
    dns::Message reply;
    reply.id = query.id;
    reply.response = true;
    reply.authoritative = true;
    reply.opcode = query.opcode;
    reply.recursion_desired = query.recursion_desired;
    reply.questions = query.questions;
    if (query.opcode != 0 || query.questions.size() != 1) {
        reply.rcode = dns::rcode_not_implemented;
        return reply;
    }
    const auto& question = query.questions.front();
    std::string name = question.name;  // names compare without regard to case (RFC 4343)
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == small_name && question.type == dns::type_a) {
        reply.answers.push_back(dns::a_record(question.name, run.server_address(), ttl));
    } else if (name == big_name && question.type == dns::type_a) {
        // 198.51.100.1, .2, ...: documentation addresses (RFC 5737), data only here.
        for (int i = 1; i <= run.settings.records; ++i)
            reply.answers.push_back(dns::a_record(question.name, IpAddress::v4(198, 51, 100, static_cast<std::uint8_t>(i)), ttl));
    } else if (name != small_name && name != big_name) {
        reply.rcode = dns::rcode_name_error;
    }
    return reply;
}

// A query's bytes in, the answer's bytes out, at most max_bytes (512 over UDP).
std::optional<std::vector<std::uint8_t>> serve_query(Run& run, std::span<const std::uint8_t> bytes, std::size_t max_bytes,
                                                     const std::string& how, const Endpoint& from) {
    const auto query = dns::decode(bytes);
    if (!query || query->response) {
        run.heard.add(fmt::format("{}: {} bytes from {} that are no DNS query: ignored", how, bytes.size(), from.to_string()));
        return std::nullopt;
    }
    const auto reply = answer_to(run, *query);
    auto encoded = dns::encode(reply, max_bytes);
    if (!encoded) return std::nullopt;
    const auto sent = dns::decode(*encoded);
    run.heard.add(fmt::format("{}: query {:#06x} from {} for {}: {} of {} answer(s) in {} bytes{}", how, query->id,
                              from.to_string(), query->questions.empty() ? "?" : dns::describe(query->questions.front()),
                              sent ? sent->answers.size() : 0, reply.answers.size(), encoded->size(),
                              sent && sent->truncated ? ", TC set" : ""));
    return std::move(*encoded);
}

awaitable<void> dns_over_udp(Run& run, udp::socket& socket) {
    std::array<std::uint8_t, 512> buffer{};
    for (;;) {
        udp::endpoint from;
        auto [error, size] = co_await socket.async_receive_from(asio::buffer(buffer), from, no_throw);
        if (error == asio::error::operation_aborted) co_return;
        if (error) continue;
        const auto reply = serve_query(run, {buffer.data(), size}, dns::udp_max_bytes, "UDP 53", to_endpoint(from));
        if (reply) co_await socket.async_send_to(asio::buffer(*reply), from, no_throw);
    }
}

// A connection the server accepted: recorded, counted, and closed once, after the client
// closed its end (so TIME-WAIT stays with the client, which closed first).
struct Served {
    tcp::socket socket;
    SocketRef ref;
    Endpoint peer;
};

void close_served(Run& run, Served& served) {
    close_and_tell(run.see, served.socket, served.ref);
    --run.heard.open_connections;
}

// Waits (at most 5 s) for the client to close its end, reading and dropping what it sends.
awaitable<void> until_client_closes(tcp::socket& socket) {
    std::array<char, 512> sink{};
    asio::steady_timer limit(co_await asio::this_coro::executor, 5s);
    auto drain = [&]() -> awaitable<void> {
        for (;;) {
            auto [error, size] = co_await socket.async_read_some(asio::buffer(sink), no_throw);
            if (error) co_return;
        }
    };
    co_await (drain() || limit.async_wait(use_awaitable));
}

// DNS over TCP: each message preceded by its length, two bytes (RFC 1035 4.2.2). The
// client may ask several questions on one connection (RFC 7766 6.2.1); EOF ends it.
awaitable<void> dns_connection(Run& run, Served served) {
    for (;;) {
        std::array<std::uint8_t, 2> length{};
        auto [error, got] = co_await asio::async_read(served.socket, asio::buffer(length), no_throw);
        if (error) break;
        std::vector<std::uint8_t> message(static_cast<std::size_t>(length[0] << 8 | length[1]));
        auto [read_error, size] = co_await asio::async_read(served.socket, asio::buffer(message), no_throw);
        if (read_error) break;
        auto reply = serve_query(run, message, 65535, "TCP 53", served.peer);
        if (!reply) break;
        const std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(reply->size() >> 8),
                                                 static_cast<std::uint8_t>(reply->size() & 0xFF)};
        const std::array<asio::const_buffer, 2> buffers{asio::buffer(prefix), asio::buffer(*reply)};
        auto [write_error, written] = co_await asio::async_write(served.socket, buffers, no_throw);
        if (write_error) break;
    }
    close_served(run, served);
}

// HTTP/1.1 (RFC 9112): read the request head, answer, and let the client close: the
// response says Connection: close and how long its body is, so curl knows it has it all.
awaitable<void> http_connection(Run& run, Served served) {
    asio::streambuf head(8192);
    auto [error, size] = co_await asio::async_read_until(served.socket, head, "\r\n\r\n", no_throw);
    if (!error) {
        std::string request_line;
        std::istream in(&head);
        std::getline(in, request_line);
        if (!request_line.empty() && request_line.back() == '\r') request_line.pop_back();
        const bool root = request_line.rfind("GET / ", 0) == 0 || request_line.rfind("HEAD / ", 0) == 0;
        const auto body = root ? fmt::format("Hello from {}:{}. You are {}.\n"
                                             "The kernel gave this program port 80; the program decided to speak HTTP.\n",
                                             run.server_address().to_string(), http_port, served.peer.to_string())
                               : std::string("Not found: this server has one page, /\n");
        const auto response = fmt::format("HTTP/1.1 {}\r\nServer: portlab-lab19\r\nContent-Type: text/plain\r\n"
                                          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                          root ? "200 OK" : "404 Not Found", body.size(), body);
        run.heard.add(fmt::format("TCP 80: \"{}\" from {}: {}", text::printable(request_line), served.peer.to_string(),
                                  root ? "200 OK" : "404 Not Found"));
        co_await asio::async_write(served.socket, asio::buffer(response), no_throw);
        co_await until_client_closes(served.socket);
    }
    close_served(run, served);
}

// Port 25, "smtp" in /etc/services: this program greets like an SSH server instead.
awaitable<void> banner_connection(Run& run, Served served) {
    run.heard.add(fmt::format("TCP 25: a connection from {}: sent \"{}\"", served.peer.to_string(),
                              text::printable(std::string(ssh_banner).substr(0, std::string(ssh_banner).size() - 2))));
    co_await asio::async_write(served.socket, asio::buffer(std::string(ssh_banner)), no_throw);
    co_await until_client_closes(served.socket);
    close_served(run, served);
}

using Handler = awaitable<void> (*)(Run&, Served);

awaitable<void> accept_loop(Run& run, TcpListener& listener, Handler handler) {
    const auto port = listener.acceptor.local_endpoint().port();
    for (;;) {
        auto [error, socket] = co_await listener.acceptor.async_accept(no_throw);
        if (error == asio::error::operation_aborted) co_return;
        if (error) continue;
        // A scanner may reset the connection before accept() returns it (nmap -sT does):
        // then getpeername() fails with ENOTCONN, and the connection is simply gone.
        asio::error_code local_error, peer_error;
        const auto local = socket.local_endpoint(local_error);
        const auto peer = socket.remote_endpoint(peer_error);
        if (local_error || peer_error) {
            run.heard.add(fmt::format("TCP {}: a connection reset before accept() returned it", port));
            continue;
        }
        const FourTuple seen{to_endpoint(local), to_endpoint(peer)};
        const auto ref = run.see.record(fact::Accepted{listener.ref, seen}, quietly);
        ++run.heard.open_connections;
        asio::co_spawn(socket.get_executor(), handler(run, Served{std::move(socket), ref, seen.remote}), asio::detached);
    }
}

// The server's sockets and the thread that runs them.
struct Services {
    asio::io_context io;
    std::optional<udp::socket> dns_udp;
    SocketRef dns_udp_ref;
    std::vector<TcpListener> listeners;  // TCP 53, 80, 25
    std::jthread thread;
    // The thread ends only when the io_context stops: stop it on every way out, an
    // exception included, before the jthread joins.
    ~Services() { io.stop(); }
};

// ---- the client: short coroutines run inside the client's namespace -------------------------

// Runs a client coroutine to its end with this thread in the client's namespace, at most
// `wait` (then everything it opened is closed). Sockets it makes live in the client's kernel.
template <class T>
std::optional<T> in_client(Run& run, const std::function<awaitable<T>()>& step, std::chrono::milliseconds wait) {
    std::optional<T> result;
    std::exception_ptr thrown;
    const auto entered = run.net.in_node("client", [&] {
        asio::io_context io;
        asio::co_spawn(io, step(), [&](std::exception_ptr error, T value) {
            if (error) thrown = error;
            else result = std::move(value);
        });
        io.run_for(wait);
    });
    if (!entered) failed("entering the client", entered.error());
    if (thrown) std::rethrow_exception(thrown);
    return result;
}

// What the client got back for one DNS question.
struct Asked {
    std::string over;  // "udp" or "tcp"
    Endpoint local{};
    std::size_t bytes = 0;
    std::optional<dns::Message> answer{};
    std::string error{};  // why there is no answer
};

json asked_json(const Asked& asked) {
    json addresses = json::array();
    if (asked.answer)
        for (const auto& record : asked.answer->answers)
            if (auto address = record.address()) addresses.push_back(address->to_string());
    return {{"over", asked.over},
            {"local", asked.local.to_string()},
            {"bytes", asked.bytes},
            {"id", asked.answer ? json(asked.answer->id) : json(nullptr)},
            {"truncated", asked.answer ? json(asked.answer->truncated) : json(nullptr)},
            {"rcode", asked.answer ? json(asked.answer->rcode) : json(nullptr)},
            {"answers", addresses},
            {"error", asked.error.empty() ? json(nullptr) : json(asked.error)}};
}

// One query in one datagram to the server's port 53, one datagram back (RFC 1035 4.2.1).
awaitable<Asked> ask_over_udp(Run& run, std::string name, std::uint16_t id) {
    Asked asked{"udp"};
    udp::socket socket(co_await asio::this_coro::executor, udp::v4());
    const auto ref = run.see.open(run.client, Protocol::udp, IpFamily::v4);
    const Endpoint server{run.server_address(), dns::port};
    // connect() on UDP sends nothing: it fixes the peer, so only the server's datagrams are
    // delivered to this socket, and binds an ephemeral port, as a stub resolver does.
    socket.connect(to_udp_endpoint(server));
    asked.local = to_endpoint(socket.local_endpoint());
    run.see.record(fact::Bound{ref, asked.local, trace::BindHow::ephemeral}, quietly);
    run.see.record(fact::Connecting{ref, server}, quietly);
    const auto query = dns::encode(dns::query(id, std::move(name)));
    co_await socket.async_send(asio::buffer(*query), use_awaitable);
    std::array<std::uint8_t, 65535> buffer{};
    const auto size = co_await socket.async_receive(asio::buffer(buffer), use_awaitable);
    asked.bytes = size;
    auto decoded = dns::decode({buffer.data(), size});
    if (decoded) asked.answer = std::move(*decoded);
    else asked.error = decoded.error().message;
    close_and_tell(run.see, socket, ref);
    co_return asked;
}

// The same question over TCP port 53: a connection, the query after its 2-byte length, the
// answer after its own (RFC 1035 4.2.2, RFC 7766 8). The client closes first.
awaitable<Asked> ask_over_tcp(Run& run, std::string name, std::uint16_t id) {
    Asked asked{"tcp"};
    tcp::socket socket(co_await asio::this_coro::executor);
    const auto ref = run.see.open(run.client, Protocol::tcp, IpFamily::v4);
    const Endpoint server{run.server_address(), dns::port};
    run.see.record(fact::Connecting{ref, server}, quietly);
    co_await socket.async_connect(to_tcp_endpoint(server), use_awaitable);
    asked.local = to_endpoint(socket.local_endpoint());
    run.see.record(fact::Bound{ref, asked.local, trace::BindHow::ephemeral}, quietly);
    run.see.record(fact::State{ref, TcpState::established, Evidence::inferred, "connect() returned"}, quietly);
    auto query = *dns::encode(dns::query(id, std::move(name)));
    const std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(query.size() >> 8),
                                             static_cast<std::uint8_t>(query.size() & 0xFF)};
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(prefix), asio::buffer(query)};
    co_await asio::async_write(socket, buffers, use_awaitable);
    std::array<std::uint8_t, 2> length{};
    co_await asio::async_read(socket, asio::buffer(length), use_awaitable);
    std::vector<std::uint8_t> message(static_cast<std::size_t>(length[0] << 8 | length[1]));
    co_await asio::async_read(socket, asio::buffer(message), use_awaitable);
    asked.bytes = message.size();
    auto decoded = dns::decode(message);
    if (decoded) asked.answer = std::move(*decoded);
    else asked.error = decoded.error().message;
    close_and_tell(run.see, socket, ref);
    co_return asked;
}

// What a scanner reads from one port: what the service says first, and, when it says
// nothing, what it answers to an HTTP request (nmap -sV's NULL probe, then GetRequest).
struct Banner {
    Port port = 0;
    std::string etc_services;          // the name /etc/services gives the port
    std::optional<std::string> first{};      // the first line the service sent unasked
    std::optional<std::string> after_get{};  // the first line of its answer to "GET / HTTP/1.0"
    [[nodiscard]] std::string speaks() const {
        if (first && first->rfind("SSH-", 0) == 0) return "ssh";
        if (after_get && after_get->rfind("HTTP/", 0) == 0) return "http";
        return "unknown";
    }
};

json banner_json(const Banner& banner) {
    return {{"port", banner.port},
            {"etc_services", banner.etc_services},
            {"first_line", banner.first ? json(*banner.first) : json(nullptr)},
            {"after_get", banner.after_get ? json(*banner.after_get) : json(nullptr)},
            {"speaks", banner.speaks()}};
}

// The first line `socket` receives within `wait`, or nothing.
awaitable<std::optional<std::string>> first_line(tcp::socket& socket, std::chrono::milliseconds wait) {
    asio::streambuf received(4096);
    asio::steady_timer limit(co_await asio::this_coro::executor, wait);
    auto line = co_await (asio::async_read_until(socket, received, "\n", no_throw) || limit.async_wait(no_throw));
    if (line.index() != 0 || std::get<0>(std::get<0>(line))) co_return std::nullopt;
    std::string text;
    std::istream in(&received);
    std::getline(in, text);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    co_return text::printable(text);
}

awaitable<Banner> read_banner(Run& run, Port port) {
    Banner banner{port, etc_services_name(run, port, Protocol::tcp)};
    tcp::socket socket(co_await asio::this_coro::executor);
    const auto ref = run.see.open(run.client, Protocol::tcp, IpFamily::v4);
    const Endpoint server{run.server_address(), port};
    run.see.record(fact::Connecting{ref, server}, quietly);
    co_await socket.async_connect(to_tcp_endpoint(server), use_awaitable);
    run.see.record(fact::Bound{ref, to_endpoint(socket.local_endpoint()), trace::BindHow::ephemeral}, quietly);
    run.see.record(fact::State{ref, TcpState::established, Evidence::inferred, "connect() returned"}, quietly);
    banner.first = co_await first_line(socket, 1000ms);
    if (!banner.first) {
        co_await asio::async_write(socket, asio::buffer(std::string("GET / HTTP/1.0\r\n\r\n")), no_throw);
        banner.after_get = co_await first_line(socket, 1000ms);
    }
    close_and_tell(run.see, socket, ref);
    co_return banner;
}

// ---- the steps --------------------------------------------------------------------------------

// Before each step: every connection the server accepted is closed and the kernel has
// settled (no socket in a passing state), so a pause shows what stays.
void settle(Run& run) {
    for (int i = 0; i < 100 && run.heard.open_connections > 0; ++i) std::this_thread::sleep_for(20ms);
    (void)run.see.settle();
}

void tell_what_the_server_heard(Run& run) {
    for (const auto& line : run.heard.take()) run.say.kernel("server: " + line);
}

// Packets the client's interface saw since the last look: into the trace (the visualizer
// shows their bytes) and kept for --pcap.
void record_captured(Run& run) {
    if (!run.capture) return;
    const auto records = run.capture->read({.limit = 500ms, .idle = 150ms, .max_packets = 2000, .enough = {}});
    if (!records) return;
    const auto client = *run.net.address("client");
    for (const auto& record : *records) {
        const auto packet = decode_frame(run.capture->link_type(), record.bytes, record.original_length);
        if (!packet) continue;
        const bool outward = packet->ip.source == client;
        const std::string from = outward ? "client" : "server", to = outward ? "server" : "client";
        run.see.record(fact::PacketSeen{to, {trace::PacketKind::delivered, record.bytes, run.capture->link_type(),
                                             std::nullopt, from, to}});
        run.captured.push_back(record);
    }
}

void show_network(Run& run) {
    run.see.step("two hosts, two network namespaces, one veth link");
    tell_addresses(run.say, run.net, {"client", "server"});
    run.say.note(fmt::format("/etc/services (read from {}) names the ports the server will use:", run.services.source()));
    for (const auto& [port, protocol] : std::vector<std::pair<Port, Protocol>>{
             {dns::port, Protocol::udp}, {dns::port, Protocol::tcp}, {http_port, Protocol::tcp}, {banner_port, Protocol::tcp}})
        run.say.note(fmt::format("  {}/{:<3}  {}", port, to_string(protocol), etc_services_name(run, port, protocol)));
    run.say.note("That file is a phone book: the kernel never reads it. getservbyport(3) and ss read it to print names.");
    run.say.see_it_yourself("getent services 25/tcp   and   getent services domain/udp");
}

TcpListener listen_on(Run& run, Services& services, Port port) {
    auto opened = open_tcp_listener(run.see, services.io, run.server, {IpAddress::any_v4(), port}, quietly, quietly);
    if (!opened.listener) throw std::runtime_error(fmt::format("TCP port {}: {}", port, describe_error(opened.error)));
    return std::move(*opened.listener);
}

// Step 2: four sockets on three well-known ports, and one thread that serves them.
void start_services(Run& run, Services& services) {
    run.see.step("the server binds UDP 53, TCP 53, TCP 80 and TCP 25 on 0.0.0.0");
    services.dns_udp.emplace(services.io, udp::v4());
    services.dns_udp_ref = run.see.open(run.server, Protocol::udp, IpFamily::v4);
    services.dns_udp->bind({asio::ip::address_v4::any(), dns::port});
    run.see.record(fact::Bound{services.dns_udp_ref, {IpAddress::any_v4(), dns::port}, trace::BindHow::explicit_port}, quietly);
    for (const Port port : {dns::port, http_port, banner_port}) services.listeners.push_back(listen_on(run, services, port));
    run.say.kernel("bind() took all four: ports below 1024 need CAP_NET_BIND_SERVICE, which root of the lab's own");
    run.say.kernel("user namespace has for the network namespace it owns (inet_bind -> inet_port_requires_bind_service).");
    asio::co_spawn(services.io, dns_over_udp(run, *services.dns_udp), asio::detached);
    asio::co_spawn(services.io, accept_loop(run, services.listeners[0], dns_connection), asio::detached);
    asio::co_spawn(services.io, accept_loop(run, services.listeners[1], http_connection), asio::detached);
    asio::co_spawn(services.io, accept_loop(run, services.listeners[2], banner_connection), asio::detached);
    services.thread = std::jthread([&io = services.io] { io.run(); });
    run.say.note("ss -tul prints names from /etc/services: 0.0.0.0:domain, :http, :smtp. Nothing in the kernel says what");
    run.say.note("each socket will speak: three of them are ours, and the one on \"smtp\" will not speak SMTP.");
    show_in_node(run.say, run.net, run.lab.options().show, "server", {"ss", "-tuln"});
    show_in_node(run.say, run.net, run.lab.options().show, "server", {"ss", "-tul"});
}

void stop_services(Run& run, Services& services) {
    services.io.stop();
    services.thread = {};  // joins
    close_and_tell(run.see, *services.dns_udp, services.dns_udp_ref);
    for (auto& listener : services.listeners) close_and_tell(run.see, listener.acceptor, listener.ref);
}

// From step 3 on, libpcap on the client's interface keeps every packet of the story.
void start_capture(Run& run) {
    const auto interface = *run.net.interface("client", "server");
    const auto entered = run.net.in_node("client", [&] {
        if (auto opened = capture::LiveCapture::open({.interface = interface, .filter = "tcp or udp"}))
            run.capture.emplace(std::move(*opened));
    });
    if (!entered) failed("entering the client", entered.error());
}

void tell_asked(Run& run, const Asked& asked) {
    if (!asked.answer) {
        run.say.kernel(fmt::format("client: no answer over {}: {}", asked.over, asked.error.empty() ? "timed out" : asked.error));
        return;
    }
    const auto& answer = *asked.answer;
    run.say.kernel(fmt::format("client ({} {}): {} bytes, id {:#06x}, rcode {}, TC {}, {} answer(s)", asked.over,
                               asked.local.to_string(), asked.bytes, answer.id, answer.rcode, answer.truncated ? 1 : 0,
                               answer.answers.size()));
    for (std::size_t i = 0; i < answer.answers.size(); ++i) {
        if (i == 3 && answer.answers.size() > 4) {
            run.say.kernel(fmt::format("client:   ... and {} more", answer.answers.size() - 3));
            break;
        }
        run.say.kernel("client:   " + dns::describe(answer.answers[i]));
    }
}

Asked ask(Run& run, bool over_tcp, const std::string& name, std::uint16_t id) {
    auto asked = in_client<Asked>(
        run, [&] { return over_tcp ? ask_over_tcp(run, name, id) : ask_over_udp(run, name, id); }, run.settings.wait);
    settle(run);
    record_captured(run);
    tell_what_the_server_heard(run);
    if (!asked) asked = Asked{over_tcp ? "tcp" : "udp", {}, 0, std::nullopt, "no answer within the wait"};
    tell_asked(run, *asked);
    return *asked;
}

// Step 3.
std::optional<IpAddress> resolve_over_udp(Run& run) {
    run.see.step(fmt::format("the client asks {}:53 over UDP: {} A?", run.server_address().to_string(), small_name));
    const auto asked = ask(run, false, small_name, 0x1901);
    run.say.note("One datagram each way; the query's source port is the client's, chosen by the kernel at connect().");
    run.say.note("A DNS message over UDP is at most 512 bytes unless the query carries EDNS (RFC 1035 4.2.1, RFC 6891).");
    run.facts()["dns_udp"] = asked_json(asked);
    if (!asked.answer || asked.answer->answers.empty()) return std::nullopt;
    auto address = asked.answer->answers.front().address();
    return address ? std::optional(*address) : std::nullopt;
}

// Step 4.
void big_answer_falls_back_to_tcp(Run& run) {
    run.see.step(fmt::format("a bigger answer: {} A? ({} addresses)", big_name, run.settings.records));
    const auto over_udp = ask(run, false, big_name, 0x1902);
    const bool truncated = over_udp.answer && over_udp.answer->truncated;
    json fact = {{"udp", asked_json(over_udp)}, {"tcp", nullptr}};
    if (truncated) {
        run.say.note("TC = 1: the whole answer did not fit in 512 bytes, so the server sent what fit and set TC.");
        run.say.note("A resolver must not use a truncated answer: it asks the same question again over TCP (RFC 7766 5).");
        const auto over_tcp = ask(run, true, big_name, 0x1903);
        run.say.note("Over TCP each message comes after its length in two bytes (RFC 1035 4.2.2), so it can be up to");
        run.say.note("65,535 bytes. Same port number, 53, another protocol: UDP 53 and TCP 53 are two sockets.");
        fact["tcp"] = asked_json(over_tcp);
    } else {
        run.say.note("TC = 0: it fitted in one datagram, so there was no reason to ask over TCP. Try --records 30.");
    }
    run.facts()["dns_big"] = fact;
    show_in_node(run.say, run.net, run.lab.options().show, "client", {"ss", "-tan"});
}

// Step 5: a real client, curl, run inside the client's namespace.
void fetch_with_curl(Run& run, const std::optional<IpAddress>& resolved) {
    const auto address = resolved.value_or(run.server_address()).to_string();
    run.see.step(fmt::format("curl, a real HTTP client, fetches http://{}/ at {} (the answer of step 3)", small_name, address));
    const std::vector<std::string> curl = {"curl", "--silent", "--show-error", "--max-time", "3",
                                           "--resolve", fmt::format("{}:{}:{}", small_name, http_port, address),
                                           "--include", "--write-out",
                                           "curl: %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port}, HTTP %{http_code}\\n",
                                           fmt::format("http://{}/", small_name)};
    const auto output = run.net.run_in_node("client", curl, 5000);
    settle(run);
    record_captured(run);
    tell_what_the_server_heard(run);
    std::vector<std::string> lines;
    for (const auto& line : text::split_lines(output ? *output : output.error().message)) {
        auto shown = line;
        if (!shown.empty() && shown.back() == '\r') shown.pop_back();
        shown = text::printable(shown);
        lines.push_back(shown);
        run.say.kernel("curl: " + shown);
    }
    run.say.note("--resolve hands curl the address our DNS server gave, as a resolver would. curl never learned");
    run.say.note("what port 80 \"is\": it connected, sent GET, and the program on the other end answered HTTP.");
    run.say.see_it_yourself(run.net.see_inside("client", "curl -si --resolve " + small_name + ":80:" + address + " http://" +
                                                                  small_name + "/"));
    run.facts()["http"] = {{"curl_output", lines}, {"curl_ran", output.has_value()}};
}

// Step 6.
void read_banners(Run& run) {
    run.see.step("what a scanner reads: connect to 25 and 80, wait for a banner, ask when nothing comes");
    json banners = json::array();
    for (const Port port : {banner_port, http_port}) {
        const auto banner = in_client<Banner>(run, [&] { return read_banner(run, port); }, 4000ms);
        settle(run);
        record_captured(run);
        tell_what_the_server_heard(run);
        if (!banner) {
            run.say.kernel(fmt::format("client: port {}: no connection within the wait", port));
            continue;
        }
        run.say.kernel(fmt::format("client: port {} (\"{}\" in /etc/services): {}", port, banner->etc_services,
                                   banner->first ? "said first: \"" + *banner->first + "\""
                                                 : "said nothing for 1 s; to \"GET / HTTP/1.0\" it answered \"" +
                                                       banner->after_get.value_or("(nothing)") + "\""));
        run.say.kernel(fmt::format("client: port {} speaks {}", port, banner->speaks()));
        banners.push_back(banner_json(*banner));
    }
    run.say.note("Port 25 is \"smtp\" in /etc/services, and what answers there is an SSH server's greeting (RFC 4253");
    run.say.note("4.2). The port number names nothing: the program that bound the port decides what it speaks.");
    run.say.note("nmap -sV does the same: it reads the banner (its NULL probe) and asks (GetRequest) before it names one.");
    show_in_node(run.say, run.net, run.lab.options().show, "client",
                 {"nmap", "-sT", "-sV", "-Pn", "-n", "--version-light", "-p", "25", run.server_address().to_string()});
    run.say.note("(-p 25,80 works too, but takes some 10 s: nmap waits 6 s for a banner from 80 before it asks.)");
    run.facts()["banners"] = banners;
}

// --pcap: the client's capture, for tshark and Wireshark.
void save_capture(Run& run) {
    if (run.settings.pcap_file.empty() || !run.capture) return;
    auto writer = pcap::Writer::create(run.settings.pcap_file, run.capture->link_type(), 262144, run.settings.output_rules);
    if (!writer) failed("--pcap", writer.error());
    for (const auto& record : run.captured)
        if (auto written = writer->write(record); !written) failed("--pcap", written.error());
    if (auto closed = writer->close(); !closed) failed("--pcap", closed.error());
    run.say.note(fmt::format("{} packets from the client's interface saved in {}", run.captured.size(), run.settings.pcap_file));
    run.say.see_it_yourself(fmt::format("tshark -n -r {} -Y dns", run.settings.pcap_file));
    run.facts()["pcap"] = run.settings.pcap_file;
}

// The whole story, inside the private namespaces. Returns the --json document.
json tell_the_story(Lab& lab, const Settings& settings) {
    auto net = Network::build(services_network());
    if (!net) throw std::runtime_error(net.error().message);
    auto& see = lab.observer();
    Run run{lab, lab.narrate(), see, *net, settings};
    run.server = see.declare({"server", {*net->address("server")}, "server"});
    run.client = see.declare({"client", {*net->address("client")}, "client", false, net->entering("client")});
    see.document()["lab"] = lab.name();
    see.document()["records"] = settings.records;

    show_network(run);
    Services services;
    start_services(run, services);
    start_capture(run);
    const auto resolved = resolve_over_udp(run);
    big_answer_falls_back_to_tcp(run);
    fetch_with_curl(run, resolved);
    read_banners(run);
    settle(run);
    run.say.pause();
    stop_services(run, services);
    save_capture(run);
    end_story(lab);  // the closing connections followed to their end; the parent writes no more
    return see.document();
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv,
                   {"lab19_real_services", "Lab 19: DNS on 53 (UDP, and TCP when truncated), HTTP on 80, and a banner on 25"},
                   [](Lab& lab) {
        Settings settings;
        int wait_ms = 2000;
        lab.cli().add_option("--records", settings.records, "A records for big.portlab.example (1-250; 30 or more need TCP)")
            ->check(CLI::Range(1, 250))->default_str("40");
        lab.cli().add_option("--wait", wait_ms, "how long the client waits for each answer, in ms (200-10000)")
            ->check(CLI::Range(200, 10000))->default_str("2000");
        lab.cli().add_option("--pcap", settings.pcap_file, "save the client's capture to FILE (open it in tshark or Wireshark)")
            ->type_name("FILE");
        lab.cli().footer("Runs in private network namespaces (server, client) of its own; needs no root.");
        lab.parse();
        settings.wait = std::chrono::milliseconds(wait_ms);
        settings.output_rules = lab.output_rules();
        if (!settings.pcap_file.empty())
            if (auto allowed = check_output_path(settings.pcap_file, settings.output_rules); !allowed)
                return lab.usage_error("--pcap: " + allowed.error().message);
        lab.narrate().title("Lab 19: real services on their well-known ports");
        return tell_in_private_netns(lab, std::chrono::milliseconds(60s) + 6 * settings.wait,
                                     [&] { return tell_the_story(lab, settings); });
    });
}
