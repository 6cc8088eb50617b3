// Lab 12: TCP against UDP on loopback: throughput, loss and latency.
//
// Four measurements, each with a receiver thread and a sender on the same machine:
//   1. TCP stream: one connection, the sender writes as fast as the kernel takes the
//      bytes; every byte arrives, in order, and flow control slows the sender instead.
//   2. UDP at a chosen rate (--rate Mbit/s): every datagram carries a sequence number, so
//      the receiver counts what never arrived. Nothing slows the sender down: when the
//      receiver's buffer is full the kernel drops datagrams (UDP RcvbufErrors).
//   3-4. Request-reply latency: a small message and its echo, one at a time, over TCP
//      (TCP_NODELAY) and over UDP; min, median and 99th percentile of the round trips.
// The data path is plain send()/recv() on blocking sockets, the calls iperf3 makes, so
// bench/bench_tcp_vs_udp can compare the two fairly.
//
//   lab12_tcp_vs_udp                          2 s per throughput test
//   lab12_tcp_vs_udp --seconds 5 --size 65536 --rate 5000
//   lab12_tcp_vs_udp --json

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/posix.hpp"
#include "labkit/snmp.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Port default_port = 8012;
constexpr std::size_t default_tcp_size = 128 * 1024;  // iperf3's default TCP write length
constexpr std::size_t default_udp_size = 1472;        // fills Ethernet's 1500-byte MTU: 1500 - 20 (IPv4) - 8 (UDP)
constexpr std::size_t max_udp_size = 65507;           // 65535 - 20 (IPv4) - 8 (UDP)
constexpr std::size_t latency_size = 64;
constexpr std::size_t max_latency_samples = 200'000;

// ---- sockets (Fd, socket_address, local_endpoint: labkit/posix.hpp) -------------------------------

Protocol protocol_of(int type) { return type == SOCK_STREAM ? Protocol::tcp : Protocol::udp; }

// A server's bind() failed: main() turns it into the lab kit's "port busy, try --port 0".
struct BindError : std::runtime_error {
    BindError(const Endpoint& at, Protocol proto, std::error_code error)
        : std::runtime_error("bind " + at.to_string()), endpoint(at), protocol(proto), code(error) {}
    Endpoint endpoint;
    Protocol protocol;
    std::error_code code;
};

// The story's two hosts, one kernel: the servers and the clients, both on --bind's address.
// Every socket fact goes through the observer once (trace, --json), quietly: the lab's
// narration says what the measurements found.
struct Cast {
    Observer& see;
    Host server, client;
};

// The sockets one measurement used, as the kernel reported them.
struct Ends {
    Endpoint server;  // the listening (TCP) or bound (UDP) socket
    Endpoint client;  // the client's end: an ephemeral port the kernel chose at connect()
};

// A bound (and, for TCP, listening) socket and the port the kernel gave it.
struct Server {
    Fd fd;
    Endpoint endpoint;
    SocketRef ref;
};

Server open_server(int type, const Endpoint& wanted, Cast& cast) {
    Fd fd(socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw std::system_error(errno, std::generic_category(), "socket()");
    const auto ref = cast.see.open(cast.server, protocol_of(type), IpFamily::v4);
    const int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const auto address = socket_address(wanted);
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const std::error_code error(errno, std::generic_category());
        cast.see.record(fact::Failed{ref, "bind", error, {}, wanted}, quietly);
        throw BindError(wanted, protocol_of(type), error);
    }
    if (type == SOCK_STREAM && listen(fd.get(), 4) != 0)
        throw std::system_error(errno, std::generic_category(), "listen()");
    const Endpoint bound = local_endpoint(fd.get()).value();
    cast.see.record(fact::Bound{ref, bound, wanted.port == 0 ? trace::BindHow::bind_zero : trace::BindHow::explicit_port,
                                std::nullopt, std::nullopt, "SO_REUSEADDR set"},
                    quietly);
    if (type == SOCK_STREAM) {
        cast.see.record(fact::Listening{ref, 4}, quietly);
        cast.see.read_state(ref, fd.get());
    }
    return Server{std::move(fd), bound, ref};
}

struct Client {
    Fd fd;
    Endpoint local;
    SocketRef ref;
};

// connect() without bind(): the kernel picks the client's port. For UDP, connect() sends
// nothing; it only binds the socket and remembers the peer.
Client connect_to(int type, const Endpoint& endpoint, Cast& cast) {
    Fd fd(socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw std::system_error(errno, std::generic_category(), "socket()");
    const auto ref = cast.see.open(cast.client, protocol_of(type), IpFamily::v4);
    cast.see.record(fact::Connecting{ref, endpoint}, quietly);
    const auto address = socket_address(endpoint);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const std::error_code error(errno, std::generic_category());
        cast.see.record(fact::Failed{ref, "connect", error}, quietly);
        throw std::system_error(error, "connect " + endpoint.to_string());
    }
    const Endpoint local = local_endpoint(fd.get()).value();
    cast.see.record(fact::Bound{ref, local, trace::BindHow::ephemeral}, quietly);
    if (type == SOCK_STREAM) cast.see.read_state(ref, fd.get());
    return Client{std::move(fd), local, ref};
}

// The receiving side of a TCP measurement: accept() and record the new socket's 4-tuple.
Fd accept_one(const Server& server, Cast& cast, std::optional<SocketRef>& accepted) {
    Fd connection(accept4(server.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (connection.get() >= 0)
        accepted = cast.see.record(
            fact::Accepted{server.ref, FourTuple{local_endpoint(connection.get()).value(), peer_endpoint(connection.get()).value()}},
            quietly);
    return connection;
}

// close(). TCP sockets' states are read from the kernel first: after a shutdown() the
// connection is already past ESTABLISHED. With sock_diag, not TCP_INFO: once a connection
// is in TIME-WAIT, tcp_time_wait() has handed it to a timewait socket and the descriptor's
// own socket reads CLOSE. What TCP keeps after close() the observer reads back later.
void close_socket(Observer& see, const SocketRef& ref, Fd& fd) {
    if (ref.protocol == Protocol::tcp) see.refresh();
    fd = Fd();
    see.record(fact::Closed{ref}, quietly);
}

void set_receive_timeout(int fd, std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void set_no_delay(int fd) {
    const int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

// A thread that is always joined. On an early exit (an exception), `stop` first makes it
// return: shutdown() wakes a thread blocked in accept() or recv().
class Worker {
public:
    Worker(std::function<void()> body, std::function<void()> stop) : stop_(std::move(stop)), thread_(std::move(body)) {}
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    ~Worker() {
        if (thread_.joinable()) {
            stop_();
            thread_.join();
        }
    }

private:
    std::function<void()> stop_;
    std::thread thread_;
};

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// ---- progress (a terminal only) ----------------------------------------------------------------

class Progress {
public:
    explicit Progress(bool enabled) : enabled_(enabled) {}
    // At most five times a second: "  TCP stream   1.2 s / 2 s   35.1 Gbit/s".
    void show(std::string_view what, double elapsed, double total, double bits_per_second) {
        if (!enabled_ || Clock::now() - last_ < 200ms) return;
        last_ = Clock::now();
        std::cout << fmt::format("\r  {:<14} {:4.1f} s / {:.0f} s   {:>8.2f} Gbit/s", what, elapsed, total, bits_per_second / 1e9)
                  << std::flush;
    }
    void done() {
        if (enabled_) std::cout << "\r\033[K" << std::flush;
    }

private:
    bool enabled_;
    Clock::time_point last_{};
};

// ---- 1. TCP stream ------------------------------------------------------------------------------

struct StreamResult {
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    double seconds = 0;  // from the first send to the receiver's end of stream
    Ends ends;
};

StreamResult tcp_stream(const Endpoint& bind_to, std::size_t size, std::chrono::duration<double> duration, Progress& progress,
                        Cast& cast) {
    auto server = open_server(SOCK_STREAM, bind_to, cast);
    std::atomic<std::uint64_t> received{0};
    Clock::time_point receiver_done;
    std::optional<SocketRef> accepted;
    Worker receiver([&] {
        Fd connection = accept_one(server, cast, accepted);
        set_receive_timeout(connection.get(), 5s);  // bounded: a vanished sender cannot hang us
        std::vector<char> buffer(std::max(size, default_tcp_size));
        for (;;) {
            const auto count = recv(connection.get(), buffer.data(), buffer.size(), 0);
            if (count <= 0) break;  // 0: the sender's FIN (end of stream)
            received.fetch_add(static_cast<std::uint64_t>(count), std::memory_order_relaxed);
        }
        receiver_done = Clock::now();
        if (accepted) close_socket(cast.see, *accepted, connection);
    }, [&] { shutdown(server.fd.get(), SHUT_RDWR); });

    StreamResult result;
    {
        Client client = connect_to(SOCK_STREAM, server.endpoint, cast);
        const Fd& sender = client.fd;
        result.ends = {server.endpoint, client.local};
        const std::vector<char> block(size, 'x');
        const auto start = Clock::now();
        const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
        for (auto now = start; now < end; now = Clock::now()) {
            const auto count = send(sender.get(), block.data(), block.size(), MSG_NOSIGNAL);
            if (count < 0) break;
            result.bytes_sent += static_cast<std::uint64_t>(count);
            const double elapsed = seconds_between(start, now);
            if (elapsed > 0) progress.show("TCP stream", elapsed, duration.count(), 8.0 * static_cast<double>(received) / elapsed);
        }
        shutdown(sender.get(), SHUT_WR);
        receiver.join();
        result.seconds = seconds_between(start, receiver_done);
        close_socket(cast.see, client.ref, client.fd);
    }
    progress.done();
    close_socket(cast.see, server.ref, server.fd);
    cast.see.settle();  // the FIN exchange ends; the client's side stays in TIME-WAIT
    result.bytes_received = received;
    return result;
}

// ---- 2. UDP at a rate ----------------------------------------------------------------------------

struct UdpResult {
    std::uint64_t sent = 0, received = 0, bytes_sent = 0, bytes_received = 0;
    std::uint64_t out_of_order = 0;  // arrived with a sequence number below the highest seen
    double seconds = 0;
    std::int64_t rcvbuf_errors_delta = -1;  // /proc/net/snmp Udp RcvbufErrors, whole namespace; -1 unknown
    Ends ends;
};

// The kernel's own count of datagrams it dropped because a receive buffer was full
// (/proc/net/snmp, Udp RcvbufErrors; proc(5)); -1 when it cannot be read.
std::int64_t udp_rcvbuf_errors() {
    const auto counters = SnmpCounters::read();
    return counters ? counters->get("Udp", "RcvbufErrors").value_or(-1) : -1;
}

UdpResult udp_at_rate(const Endpoint& bind_to, std::size_t size, double rate_mbps, std::chrono::duration<double> duration,
                      Progress& progress, Cast& cast) {
    auto server = open_server(SOCK_DGRAM, bind_to, cast);
    set_receive_timeout(server.fd.get(), 100ms);
    std::atomic<bool> sender_done{false};
    std::atomic<std::uint64_t> received{0};
    UdpResult result;
    const auto errors_before = udp_rcvbuf_errors();

    Worker receiver([&] {
        std::vector<char> buffer(max_udp_size);
        std::uint64_t highest = 0, bytes = 0, out_of_order = 0;
        auto quiet_since = Clock::now();
        for (;;) {
            const auto count = recv(server.fd.get(), buffer.data(), buffer.size(), 0);
            if (count < 0) {
                // Stop once the sender has finished and 300 ms passed with nothing more.
                if (sender_done && Clock::now() - quiet_since > 300ms) break;
                continue;
            }
            quiet_since = Clock::now();
            std::uint64_t sequence = 0;
            if (static_cast<std::size_t>(count) >= sizeof sequence) std::memcpy(&sequence, buffer.data(), sizeof sequence);
            if (sequence < highest) ++out_of_order;
            highest = std::max(highest, sequence);
            bytes += static_cast<std::uint64_t>(count);
            received.fetch_add(1, std::memory_order_relaxed);
        }
        result.bytes_received = bytes;
        result.out_of_order = out_of_order;
    }, [&] { sender_done = true; });

    {
        Client client = connect_to(SOCK_DGRAM, server.endpoint, cast);
        const Fd& sender = client.fd;
        result.ends = {server.endpoint, client.local};
        std::vector<char> datagram(std::max(size, sizeof(std::uint64_t)), 'u');
        const double bytes_per_second = rate_mbps * 1e6 / 8.0;
        const auto start = Clock::now();
        const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
        for (auto now = start; now < end; now = Clock::now()) {
            const double elapsed = seconds_between(start, now);
            // Pacing: stay at or below the rate; a short sleep when ahead of it.
            if (rate_mbps > 0 && static_cast<double>(result.bytes_sent) > bytes_per_second * elapsed) {
                std::this_thread::sleep_for(50us);
                continue;
            }
            const std::uint64_t sequence = result.sent + 1;
            std::memcpy(datagram.data(), &sequence, sizeof sequence);
            if (send(sender.get(), datagram.data(), datagram.size(), 0) < 0) continue;  // ENOBUFS: try again
            ++result.sent;
            result.bytes_sent += datagram.size();
            if (elapsed > 0)
                progress.show("UDP", elapsed, duration.count(), 8.0 * static_cast<double>(received) * static_cast<double>(datagram.size()) / elapsed);
        }
        result.seconds = seconds_between(start, Clock::now());
        sender_done = true;
        receiver.join();
        close_socket(cast.see, client.ref, client.fd);
    }
    progress.done();
    close_socket(cast.see, server.ref, server.fd);
    result.received = received;
    const auto errors_after = udp_rcvbuf_errors();
    if (errors_before >= 0 && errors_after >= 0) result.rcvbuf_errors_delta = errors_after - errors_before;
    return result;
}

// ---- 3-4. request-reply latency --------------------------------------------------------------

struct Latency {
    std::vector<double> round_trips_us;
    std::uint64_t lost = 0;  // UDP requests or replies that never came back
    Ends ends;

    [[nodiscard]] double percentile(double fraction) const {
        // Nearest rank on the sorted samples (caller sorts).
        if (round_trips_us.empty()) return 0;
        const auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(round_trips_us.size())));
        return round_trips_us[std::clamp<std::size_t>(rank, 1, round_trips_us.size()) - 1];
    }
};

// One message, its echo, again and again, for `duration` (or max_latency_samples).
Latency request_reply(int type, const Endpoint& bind_to, std::chrono::duration<double> duration, Progress& progress,
                      Cast& cast) {
    auto server = open_server(type, bind_to, cast);
    std::atomic<bool> stop{false};
    std::optional<SocketRef> accepted_ref;
    Worker echo([&] {
        Fd accepted;
        int fd = server.fd.get();
        if (type == SOCK_STREAM) {
            accepted = accept_one(server, cast, accepted_ref);
            fd = accepted.get();
            set_no_delay(fd);
        }
        set_receive_timeout(fd, 100ms);
        char buffer[2048];
        while (!stop) {
            sockaddr_in from{};
            socklen_t length = sizeof from;
            const auto count = recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (count == 0) break;
            if (count < 0) continue;
            if (type == SOCK_STREAM) send(fd, buffer, static_cast<std::size_t>(count), MSG_NOSIGNAL);
            else sendto(fd, buffer, static_cast<std::size_t>(count), 0, reinterpret_cast<sockaddr*>(&from), length);
        }
        if (accepted_ref) close_socket(cast.see, *accepted_ref, accepted);
    }, [&] { stop = true; shutdown(server.fd.get(), SHUT_RDWR); });

    Latency latency;
    {
        Client connected = connect_to(type, server.endpoint, cast);
        const Fd& client = connected.fd;
        latency.ends = {server.endpoint, connected.local};
        if (type == SOCK_STREAM) set_no_delay(client.get());
        set_receive_timeout(client.get(), 1s);
        const std::vector<char> request(latency_size, 'q');
        std::vector<char> reply(latency_size);
        const auto start = Clock::now();
        const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
        const std::string what = type == SOCK_STREAM ? "TCP latency" : "UDP latency";
        while (Clock::now() < end && latency.round_trips_us.size() < max_latency_samples) {
            const auto sent_at = Clock::now();
            if (send(client.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) break;
            std::size_t got = 0;
            bool lost = false;
            while (got < reply.size()) {  // TCP may deliver the echo in pieces; UDP in one
                const auto count = recv(client.get(), reply.data() + got, reply.size() - got, 0);
                if (count <= 0) { lost = true; break; }
                got += static_cast<std::size_t>(count);
            }
            if (lost) { ++latency.lost; continue; }
            latency.round_trips_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_at).count());
            progress.show(what, seconds_between(start, Clock::now()), duration.count(), 0);
        }
        stop = true;
        if (type == SOCK_STREAM) shutdown(client.get(), SHUT_WR);
        echo.join();
        close_socket(cast.see, connected.ref, connected.fd);
    }
    progress.done();
    close_socket(cast.see, server.ref, server.fd);
    cast.see.settle();
    std::sort(latency.round_trips_us.begin(), latency.round_trips_us.end());
    return latency;
}

// ---- output -----------------------------------------------------------------------------------

std::string rate_text(double bits_per_second) {
    if (bits_per_second >= 1e9) return fmt::format("{:.2f} Gbit/s", bits_per_second / 1e9);
    return fmt::format("{:.1f} Mbit/s", bits_per_second / 1e6);
}

json endpoint_json(const Endpoint& endpoint) {
    return {{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

// The ends as the kernel reported them (getsockname on each socket).
json ends_json(const Ends& ends) {
    return {{"server", endpoint_json(ends.server)}, {"client", endpoint_json(ends.client)}};
}

json latency_json(const Latency& latency) {
    return {{"samples", latency.round_trips_us.size()}, {"lost", latency.lost}, {"sockets", ends_json(latency.ends)},
            {"min_us", latency.round_trips_us.empty() ? 0.0 : latency.round_trips_us.front()},
            {"median_us", latency.percentile(0.5)}, {"p99_us", latency.percentile(0.99)}};
}

std::string latency_text(const Latency& latency) {
    if (latency.round_trips_us.empty()) return "no samples";
    return fmt::format("{:.1f} / {:.1f} / {:.1f} us", latency.round_trips_us.front(), latency.percentile(0.5),
                       latency.percentile(0.99));
}

// ---- the steps ----------------------------------------------------------------------------------

struct Options {
    double seconds = 2;
    std::size_t size = 0;  // 0: each protocol's default
    double rate_mbps = 0;  // as fast as possible, as the TCP stream runs: a like-for-like comparison
    std::string only;      // "", "tcp", "udp" or "latency"
};

// One run: what the steps share, and what they found for the summary.
struct Run {
    Lab& lab;
    Narrator& say;
    Cast cast;
    Options options;
    Endpoint tcp_at, udp_at;
    std::size_t tcp_size, udp_size;
    Progress progress;
    std::optional<double> tcp_bps, udp_bps;
    std::optional<Latency> tcp_rr, udp_rr;
    std::string udp_loss_text;

    [[nodiscard]] json& facts() { return cast.see.document(); }
    [[nodiscard]] std::chrono::duration<double> duration() const { return std::chrono::duration<double>(options.seconds); }
    // With --port 0 the port is not known before the test binds it, so look by process
    // instead (ss shows the command name cut to 15 characters, as the kernel keeps it).
    [[nodiscard]] std::string ss_while_running(std::string_view flags, std::string_view port_filter) const {
        if (lab.server().port == 0) return fmt::format("ss -{}p | grep -A1 lab12_tcp_vs_ud", flags);
        return fmt::format("ss -{} '{}'", flags, port_filter);
    }
};

void measure_tcp_stream(Run& run) {
    run.cast.see.step(fmt::format("TCP stream for {:g} s: one connection to {}, {}-byte writes", run.options.seconds,
                                  run.tcp_at.to_string(), run.tcp_size));
    run.say.see_it_yourself(run.ss_while_running("tni", fmt::format("sport = :{}", run.tcp_at.port)) +
                            "   (while it runs: cwnd, rtt, bytes_acked)");
    const auto tcp = tcp_stream(run.tcp_at, run.tcp_size, run.duration(), run.progress, run.cast);
    run.tcp_bps = 8.0 * static_cast<double>(tcp.bytes_received) / tcp.seconds;
    run.say.kernel(fmt::format("connection {} -> {}", tcp.ends.client.to_string(), tcp.ends.server.to_string()));
    run.say.kernel(fmt::format("sent {} bytes, received {} bytes in {:.2f} s: {}", tcp.bytes_sent, tcp.bytes_received,
                               tcp.seconds, rate_text(*run.tcp_bps)));
    run.lab.trace().note(fmt::format("TCP stream: {} bytes sent, {} received in {:.2f} s", tcp.bytes_sent,
                                     tcp.bytes_received, tcp.seconds),
                         "client");
    run.facts()["tcp"] = {{"bytes_sent", tcp.bytes_sent}, {"bytes_received", tcp.bytes_received},
                          {"seconds", tcp.seconds}, {"bits_per_second", *run.tcp_bps}, {"sockets", ends_json(tcp.ends)}};
}

void measure_udp(Run& run) {
    const double rate_mbps = run.options.rate_mbps;
    const std::string rate = rate_mbps > 0 ? fmt::format("{:g} Mbit/s", rate_mbps) : "as fast as possible";
    run.cast.see.step(fmt::format("UDP for {:g} s at {}: {}-byte datagrams with sequence numbers to {}", run.options.seconds,
                                  rate, run.udp_size, run.udp_at.to_string()));
    run.say.see_it_yourself("nstat -az UdpInDatagrams UdpRcvbufErrors   (the kernel's UDP counters)");
    const auto udp = udp_at_rate(run.udp_at, run.udp_size, rate_mbps, run.duration(), run.progress, run.cast);
    run.udp_bps = 8.0 * static_cast<double>(udp.bytes_received) / udp.seconds;
    const std::uint64_t lost = udp.sent - std::min(udp.sent, udp.received);
    const double loss = udp.sent == 0 ? 0.0 : static_cast<double>(lost) / static_cast<double>(udp.sent);
    // The ports the kernel gave (with --port 0, or a busy default, the step above could only say :0).
    run.say.kernel(fmt::format("datagrams {} -> {}", udp.ends.client.to_string(), udp.ends.server.to_string()));
    run.say.kernel(fmt::format("sent {} datagrams, received {}: {} lost ({:.2f}%), {} out of order; received {}", udp.sent,
                               udp.received, lost, 100 * loss, udp.out_of_order, rate_text(*run.udp_bps)));
    if (udp.rcvbuf_errors_delta >= 0)
        run.say.kernel(fmt::format("the kernel's UDP RcvbufErrors grew by {} (datagrams dropped at a full receive buffer)",
                                   udp.rcvbuf_errors_delta));
    run.udp_loss_text = fmt::format("{} of {} ({:.2f}%)", lost, udp.sent, 100 * loss);
    run.lab.trace().note(fmt::format("UDP: {} datagrams sent, {} received, {} lost", udp.sent, udp.received, lost), "client");
    run.facts()["udp"] = {{"datagrams_sent", udp.sent}, {"datagrams_received", udp.received}, {"lost", lost},
                          {"loss_ratio", loss}, {"out_of_order", udp.out_of_order}, {"bytes_sent", udp.bytes_sent},
                          {"bytes_received", udp.bytes_received}, {"seconds", udp.seconds},
                          {"bits_per_second_received", *run.udp_bps},
                          {"rcvbuf_errors_delta", udp.rcvbuf_errors_delta < 0 ? json(nullptr) : json(udp.rcvbuf_errors_delta)},
                          {"sockets", ends_json(udp.ends)}};
}

void measure_latency(Run& run) {
    const auto quarter = std::chrono::duration<double>(run.options.seconds / 4);
    run.cast.see.step(fmt::format("request-reply latency, {}-byte messages, one at a time, {:g} s each", latency_size,
                                  run.options.seconds / 4));
    run.say.see_it_yourself(run.ss_while_running("tuni", fmt::format("( sport = :{} or sport = :{} )", run.tcp_at.port, run.udp_at.port)) +
                            "   (while it runs: rtt, and the UDP socket's queues)");
    run.tcp_rr = request_reply(SOCK_STREAM, run.tcp_at, quarter, run.progress, run.cast);
    run.say.kernel("TCP (TCP_NODELAY) min / median / p99: " + latency_text(*run.tcp_rr));
    run.udp_rr = request_reply(SOCK_DGRAM, run.udp_at, quarter, run.progress, run.cast);
    run.say.kernel("UDP                min / median / p99: " + latency_text(*run.udp_rr));
    run.facts()["latency"] = {{"tcp", latency_json(*run.tcp_rr)}, {"udp", latency_json(*run.udp_rr)}};
}

void summarise(Run& run) {
    run.cast.see.step("summary");
    run.say.note(fmt::format("{:<5} {:>14}  {:<28} {}", "", "throughput", "loss", "latency min / median / p99"));
    run.say.note(fmt::format("{:<5} {:>14}  {:<28} {}", "TCP", rate_text(*run.tcp_bps), "none: every byte arrives",
                             latency_text(*run.tcp_rr)));
    run.say.note(fmt::format("{:<5} {:>14}  {:<28} {}", "UDP", rate_text(*run.udp_bps), run.udp_loss_text, latency_text(*run.udp_rr)));
    // The myth compares speeds: say when the UDP sender was held back and TCP was not.
    if (run.options.rate_mbps > 0)
        run.say.note(fmt::format("UDP was paced at {:g} Mbit/s (--rate) and TCP was not: the throughputs do not compare; "
                                 "run with --rate 0 for both at full speed", run.options.rate_mbps));
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab12_tcp_vs_udp", "Lab 12: TCP versus UDP on loopback: throughput, loss, latency"},
                   [](Lab& lab) {
        Options options;
        lab.add_server_options(default_port, {{Protocol::tcp}, {Protocol::udp, 1}});  // TCP at P, UDP at P+1
        lab.cli().add_option("--seconds", options.seconds, "length of each throughput test, 0.2-30 s (each latency test takes a quarter)")
            ->check(CLI::Range(0.2, 30.0))->default_str("2");
        lab.cli().add_option("--size", options.size, "bytes per send(): default 131072 for TCP (like iperf3), 1472 for UDP; at most 65507 for UDP")
            ->check(CLI::Range(std::size_t{8}, std::size_t{4} << 20));
        lab.cli().add_option("--rate", options.rate_mbps, "UDP send rate in Mbit/s; 0 sends as fast as possible")
            ->check(CLI::Range(0.0, 1e6))->default_str("0");
        lab.cli().add_option("--only", options.only, "run one part: tcp, udp or latency")
            ->check(CLI::IsMember({"tcp", "udp", "latency"}));
        lab.cli().footer("The TCP server uses --port P, the UDP server P+1 (with --port 0 the kernel picks both).");
        lab.parse();
        // CLI::Range compares, and every comparison with NaN is false: it lets "nan" through.
        if (!std::isfinite(options.seconds)) return lab.usage_error("--seconds: a number of seconds, 0.2-30, not NaN");
        if (!std::isfinite(options.rate_mbps)) return lab.usage_error("--rate: a number of Mbit/s, 0-1000000, not NaN");
        const auto& server = lab.server();
        if (server.port > 65534) return lab.usage_error("--port: the lab needs P and P+1, so P must be at most 65534");
        if (!server.bind.is_v4()) return lab.usage_error("--bind: this lab uses IPv4; give an address like 127.0.0.1");

        auto& see = lab.observer();
        Run run{lab,
                lab.narrate(),
                {see, see.declare({"server", {server.bind}, "server"}), see.declare({"client", {server.bind}, "client"})},
                options,
                server.endpoint(),
                {server.bind, server.port == 0 ? Port{0} : static_cast<Port>(server.port + 1)},
                options.size == 0 ? default_tcp_size : options.size,
                options.size == 0 ? default_udp_size : std::min(options.size, max_udp_size),
                Progress(!lab.json() && isatty(STDOUT_FILENO) == 1),
                {}, {}, {}, {}, {}};
        run.say.title("Lab 12: TCP versus UDP on loopback");
        run.facts().update({{"lab", lab.name()}, {"seconds", options.seconds}, {"tcp_size", run.tcp_size},
                            {"udp_size", run.udp_size}, {"udp_rate_mbps", options.rate_mbps}, {"latency_size", latency_size}});
        const auto wanted = [&options](std::string_view part) { return options.only.empty() || options.only == part; };
        try {
            if (wanted("tcp")) measure_tcp_stream(run);
            if (wanted("udp")) measure_udp(run);
            if (wanted("latency")) measure_latency(run);
            if (options.only.empty()) summarise(run);
        } catch (const BindError& error) {
            return lab.bind_failed(error.endpoint, error.code, error.protocol);
        } catch (const std::system_error& error) {
            return lab.failure(error.what());
        }
        if (lab.json()) lab.print_json(run.facts());
        return exit_ok;
    });
}
