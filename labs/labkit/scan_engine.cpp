// The scan engine of labs 08 and 18 (connect and UDP scans). Why it is shaped like this:
//
// On loopback a closed port answers at once: connect() sends the SYN through `lo`, the
// kernel's softirq turns it into a RST before connect() even returns, and the scan is
// bound by system calls, not by waiting. So each probe first tries the fast path, plain
// non-blocking calls on a raw descriptor:
//   connect()  -> EINPROGRESS (the SYN left; its answer was queued on our locked socket
//                 and processed in release_sock() on the way out of the call)
//   connect()  -> a second call reads that answer: 0 = connected, ECONNREFUSED = RST,
//                 EALREADY = still waiting (net/ipv4/af_inet.c, __inet_stream_connect)
// Only a probe still waiting goes to Asio's reactor (epoll) with a timer; at most
// `concurrency` of those are outstanding, one per worker coroutine.
//
// Per port that is socket(), two connect()s and close(), and even socket()/close() are
// saved after a refusal: Linux lets a TCP socket whose connect() failed connect again
// (the sock_error path of __inet_stream_connect calls tcp_disconnect(), which resets it),
// so a worker reuses its descriptor until a port answers. An open port's socket is closed
// with SO_LINGER {on, 0}: the kernel sends RST instead of FIN and keeps no TIME-WAIT
// entry (RFC 9293 3.6, Linux tcp_close), so a full scan leaves nothing behind and never
// runs out of ephemeral ports.

#include "labkit/scan_engine.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "portlab/ports.hpp"
#include "portlab/text.hpp"

namespace portlab::scanner {
namespace {

using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

// ---- port lists ----------------------------------------------------------------------

Result<Port> parse_scan_port(std::string_view text, const ServiceTable& services) {
    const auto spec = resolve_port_spec(text, services);
    if (!spec) return spec.error();
    if (spec->port == 0) return fail("port 0 cannot be scanned: connect() to port 0 is refused without a packet");
    return spec->port;
}

// ---- sockets --------------------------------------------------------------------------

// The target as a sockaddr; only the port changes from probe to probe.
struct Target {
    sockaddr_storage address{};
    socklen_t length = 0;
    int family = AF_INET;

    explicit Target(const IpAddress& ip) {
        const auto bytes = ip.bytes();
        if (ip.is_v4()) {
            auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
            v4->sin_family = AF_INET;
            std::memcpy(&v4->sin_addr, bytes.data(), 4);
            length = sizeof(sockaddr_in);
            family = AF_INET;
        } else {
            auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
            v6->sin6_family = AF_INET6;
            std::memcpy(&v6->sin6_addr, bytes.data(), 16);
            length = sizeof(sockaddr_in6);
            family = AF_INET6;
        }
    }
    void set_port(Port port) noexcept {
        if (family == AF_INET) reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(port);
        else reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(port);
    }
    [[nodiscard]] const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&address); }
};

// A connect can meet itself: when the kernel picks, as the ephemeral source port, the
// very port being scanned on the same address, the SYN arrives at its own sender, and
// TCP's simultaneous open (RFC 9293 3.5, figure 7) connects the socket to itself. That
// says nothing about the port (nobody listens there), so it must not be reported open.
bool is_self_connect(int fd, const Target& target) {
    sockaddr_storage local{};
    socklen_t length = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0 || length != target.length) return false;
    return std::memcmp(&local, &target.address, target.length) == 0;
}

// RST instead of FIN on close: no TIME-WAIT left behind by the scanner.
void close_with_reset(int fd) {
    const linger abort_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    ::close(fd);
}

// A probe's outcome so far: still waiting for the kernel, or the hub's verdict.
struct Outcome {
    bool pending = false;
    scan::Verdict verdict;
};

Outcome decided(scan::ScanType type, const scan::Answer& answer) {
    // Every answer a socket scan can get has a verdict; local-error is the safe fallback.
    return {false, scan::classify(type, answer).value_or(scan::Verdict{scan::PortState::filtered, scan::Reason::local_error})};
}

const Outcome waiting_tcp{true, {scan::PortState::filtered, scan::Reason::no_response}};
const Outcome waiting_udp{true, {scan::PortState::open_filtered, scan::Reason::no_response}};

// What a connect() call told us, errno-wise: still in progress, or the answer.
Outcome outcome_of_connect(int error) {
    if (error == EALREADY || error == EINPROGRESS) return waiting_tcp;
    return decided(scan::ScanType::connect, scan::Answer::socket_error(error));
}

int connect_errno(int fd, const Target& target) {
    return ::connect(fd, target.get(), target.length) == 0 ? 0 : errno;
}

// connect()'s answer so far. An ICMP error that arrives while connect() holds the socket
// is kept as a "soft" error (tcp_v4_err / tcp_v6_err: sk_err_soft when sock_owned_by_user):
// on loopback a reject's ICMP comes back within the connect() call itself. The socket then
// stays in SYN-SENT, and connect() says EALREADY, until the SYN is retransmitted a second
// later; getsockopt(SO_ERROR) hands the error over at once (sock_getsockopt: sk_err, else
// sk_err_soft), which is how nmap -sT answers in milliseconds.
struct ConnectAnswer {
    int error = 0;
    bool soft = false;  // from SO_ERROR while still in SYN-SENT: the socket cannot be reused
};

ConnectAnswer connect_answer(int fd, const Target& target) {
    const int error = connect_errno(fd, target);
    if (error != EALREADY) return {error, false};
    int pending = 0;
    socklen_t length = sizeof pending;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length) == 0 && pending != 0) return {pending, true};
    return {EALREADY, false};
}

// ---- TCP --------------------------------------------------------------------------------

struct Shared {
    asio::io_context& io;
    const std::vector<Port>& ports;
    const ScanOptions& options;
    ScanReport& report;
    std::size_t next = 0;
    std::size_t done = 0;
    std::size_t next_progress = 0;

    void probe_sent(Port port, std::uint32_t attempt) const {
        if (options.on_probe) options.on_probe(port, attempt);
    }

    void finished_one(const PortResult& result) {
        if (options.on_result) options.on_result(result);
        ++done;
        if (options.progress && done >= next_progress) {
            options.progress(done, ports.size());
            next_progress = done + 1024;
        }
    }
};

constexpr int self_connect_tries = 3;
constexpr std::size_t ports_between_yields = 512;

class TcpWorker {
public:
    TcpWorker(Shared& shared, const IpAddress& target) : shared_(shared), target_(target), timer_(shared.io) {}
    TcpWorker(const TcpWorker&) = delete;
    TcpWorker& operator=(const TcpWorker&) = delete;
    ~TcpWorker() {
        if (spare_ >= 0) ::close(spare_);
    }

    awaitable<void> run() {
        std::size_t since_yield = 0;
        while (shared_.next < shared_.ports.size()) {
            const std::size_t index = shared_.next++;
            const Port port = shared_.ports[index];
            scan::Verdict verdict;
            for (int attempt = 0; attempt < self_connect_tries; ++attempt) {
                shared_.probe_sent(port, static_cast<std::uint32_t>(attempt));
                verdict = (co_await probe(port)).verdict;
                if (verdict.reason != scan::Reason::self_connect) break;
                ++shared_.report.self_connects;
            }
            shared_.report.results[index] = {port, verdict.state, verdict.reason};
            shared_.finished_one(shared_.report.results[index]);
            // The fast path never suspends; let timers and other workers run now and then.
            if (++since_yield == ports_between_yields) {
                since_yield = 0;
                co_await asio::post(shared_.io, use_awaitable);
            }
        }
    }

private:
    int take_socket() {
        if (spare_ >= 0) return std::exchange(spare_, -1);
        return ::socket(target_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }

    // A descriptor whose connect() ended: refused ones (back in CLOSED after the RST) are
    // kept for the next port; one that learnt its answer as a soft error is still in SYN-SENT.
    Outcome finish(int fd, Outcome outcome, bool soft = false) {
        if (outcome.verdict.state == scan::PortState::open) {
            const bool self = is_self_connect(fd, target_);
            close_with_reset(fd);
            if (self) return decided(scan::ScanType::connect, scan::Answer::self_connect());
        } else if (outcome.verdict.reason == scan::Reason::conn_refused && spare_ < 0 && !soft) {
            spare_ = fd;
        } else {
            ::close(fd);
        }
        return outcome;
    }

    awaitable<Outcome> probe(Port port) {
        const int fd = take_socket();
        if (fd < 0) co_return decided(scan::ScanType::connect, scan::Answer::local_error(errno));
        target_.set_port(port);
        ConnectAnswer answer{connect_errno(fd, target_), false};
        if (answer.error == EINPROGRESS) answer = connect_answer(fd, target_);  // the answer is usually here already
        const Outcome outcome = outcome_of_connect(answer.error);
        if (!outcome.pending) co_return finish(fd, outcome, answer.soft);
        ++shared_.report.waited;
        co_return co_await wait_for_answer(fd);
    }

    // The slow path: epoll says when the socket is writable (connected or failed), the
    // timer says when to give up.
    awaitable<Outcome> wait_for_answer(int fd) {
        asio::ip::tcp::socket socket(shared_.io);
        asio::error_code error;
        socket.assign(target_.family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, error);
        if (error) {
            ::close(fd);
            co_return decided(scan::ScanType::connect, scan::Answer::local_error(error.value()));
        }
        const auto deadline = std::chrono::steady_clock::now() + shared_.options.timeout;
        Outcome outcome = waiting_tcp;
        bool soft = false;
        while (outcome.pending && std::chrono::steady_clock::now() < deadline) {
            timer_.expires_at(deadline);
            const auto winner = co_await (socket.async_wait(asio::socket_base::wait_write, asio::experimental::as_tuple(use_awaitable)) ||
                                          timer_.async_wait(asio::experimental::as_tuple(use_awaitable)));
            if (winner.index() == 1) break;  // timed out: no answer at all
            const auto answer = connect_answer(fd, target_);
            outcome = outcome_of_connect(answer.error);
            soft = answer.soft;
        }
        if (outcome.pending) outcome = decided(scan::ScanType::connect, scan::Answer::nothing());
        co_return finish(socket.release(), outcome, soft);
    }

    Shared& shared_;
    Target target_;
    asio::steady_timer timer_;
    int spare_ = -1;
};

// ---- UDP --------------------------------------------------------------------------------

class UdpWorker {
public:
    UdpWorker(Shared& shared, const IpAddress& target) : shared_(shared), target_(target), timer_(shared.io) {}

    awaitable<void> run() {
        while (shared_.next < shared_.ports.size()) {
            const std::size_t index = shared_.next++;
            const Port port = shared_.ports[index];
            const scan::Verdict verdict = (co_await probe(port)).verdict;
            shared_.report.results[index] = {port, verdict.state, verdict.reason};
            shared_.finished_one(shared_.report.results[index]);
        }
    }

private:
    // A connected UDP socket that did not meet itself, or -1 (self_connect tells why).
    int connected_socket(Port port, bool& self_connect) {
        self_connect = false;
        target_.set_port(port);
        for (int attempt = 0; attempt < self_connect_tries; ++attempt) {
            const int fd = ::socket(target_.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) return -1;
            if (::connect(fd, target_.get(), target_.length) != 0) {
                ::close(fd);
                return -1;
            }
            // A UDP socket connected to its own address and port would read its own probe
            // back and call the port open.
            if (!is_self_connect(fd, target_)) return fd;
            ++shared_.report.self_connects;
            self_connect = true;
            ::close(fd);
        }
        return -1;
    }

    // What the socket holds right now: a datagram, a queued ICMP error, or nothing yet.
    // A datagram, the errno of a queued ICMP error (udp(7): ECONNREFUSED for port
    // unreachable), or nothing yet.
    static Outcome read_answer(int fd) {
        std::uint8_t buffer[512];
        const auto received = ::recv(fd, buffer, sizeof(buffer), 0);
        if (received >= 0) return decided(scan::ScanType::udp, scan::Answer::udp_reply());
        if (errno == EAGAIN || errno == EWOULDBLOCK) return waiting_udp;
        return decided(scan::ScanType::udp, scan::Answer::socket_error(errno));
    }

    awaitable<Outcome> probe(Port port) {
        bool self_connect = false;
        const int fd = connected_socket(port, self_connect);
        if (fd < 0 && self_connect) co_return decided(scan::ScanType::udp, scan::Answer::self_connect());
        if (fd < 0) co_return decided(scan::ScanType::udp, scan::Answer::local_error(errno));
        asio::ip::udp::socket socket(shared_.io);
        asio::error_code error;
        socket.assign(target_.family == AF_INET ? asio::ip::udp::v4() : asio::ip::udp::v6(), fd, error);
        if (error) {
            ::close(fd);
            co_return decided(scan::ScanType::udp, scan::Answer::local_error(error.value()));
        }
        Outcome outcome = waiting_udp;
        for (int attempt = 0; attempt <= shared_.options.udp_retries && outcome.pending; ++attempt) {
            // An empty datagram, as nmap sends to ports it has no payload for. The ICMP
            // error for a closed port on `lo` is usually queued before send() returns, and
            // then send() itself reports it.
            shared_.probe_sent(port, static_cast<std::uint32_t>(attempt));
            if (::send(fd, "", 0, 0) < 0) {
                outcome = decided(scan::ScanType::udp, scan::Answer::socket_error(errno));
                break;
            }
            outcome = read_answer(fd);
            if (!outcome.pending) break;
            ++shared_.report.waited;
            timer_.expires_after(shared_.options.timeout);
            const auto winner = co_await (socket.async_wait(asio::socket_base::wait_read, asio::experimental::as_tuple(use_awaitable)) ||
                                          timer_.async_wait(asio::experimental::as_tuple(use_awaitable)));
            if (winner.index() == 0) outcome = read_answer(fd);
        }
        if (outcome.pending) outcome = decided(scan::ScanType::udp, scan::Answer::nothing());
        co_return outcome;  // the asio socket closes fd
    }

    Shared& shared_;
    Target target_;
    asio::steady_timer timer_;
};

template <class Worker>
awaitable<void> run_worker(Shared& shared, IpAddress target) {
    Worker worker(shared, target);
    co_await worker.run();
}

}  // namespace

// ---- port lists ------------------------------------------------------------------------

Result<std::vector<Port>> parse_port_list(std::string_view text, const ServiceTable& services) {
    std::vector<Port> ports;
    std::vector<bool> seen(65536, false);
    const auto add = [&](Port port) {
        if (!seen[port]) {
            seen[port] = true;
            ports.push_back(port);
        }
    };
    if (text == "-") text = "1-65535";
    if (text.empty()) return fail("empty port list (expected e.g. 1-1024,8080)");
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view item = text.substr(start, comma - start);
        start = comma + 1;
        if (item.empty()) return fail("empty item in port list '" + std::string(text) + "'");
        const std::size_t dash = item.find('-');
        // A name with a dash in it ("http-alt", "ftp-data") is a name, not a range.
        const bool dashed_name = dash != std::string_view::npos && services.find_by_name(item) != nullptr;
        if (dash == std::string_view::npos || dashed_name) {
            const auto port = parse_scan_port(item, services);
            if (!port) return port.error();
            add(*port);
            continue;
        }
        // "a-b", and nmap's open ends "-b" (from 1) and "a-" (to 65535).
        const std::string_view low_text = item.substr(0, dash);
        const std::string_view high_text = item.substr(dash + 1);
        const auto low = low_text.empty() ? Result<Port>(Port{1}) : parse_scan_port(low_text, services);
        if (!low) return low.error();
        const auto high = high_text.empty() ? Result<Port>(Port{65535}) : parse_scan_port(high_text, services);
        if (!high) return high.error();
        if (*low > *high) return fail("port range '" + std::string(item) + "' runs backwards");
        for (unsigned port = *low; port <= *high; ++port) add(static_cast<Port>(port));
    }
    return ports;
}

std::vector<NmapService> read_nmap_services(const std::string& file) {
    std::vector<NmapService> services;
    std::ifstream in(file);
    for (std::string line; in && std::getline(in, line);) {
        if (line.empty() || line.front() == '#') continue;
        const auto words = text::split_words(line);
        if (words.size() < 3) continue;
        const auto slash = words[1].find('/');
        if (slash == std::string_view::npos) continue;
        const auto protocol = parse_protocol(words[1].substr(slash + 1));
        const auto port = parse_port_number(words[1].substr(0, slash));
        if (!protocol || !port || *port == 0) continue;
        double frequency = 0;
        const auto [end, error] = std::from_chars(words[2].data(), words[2].data() + words[2].size(), frequency);
        if (error != std::errc{}) continue;
        services.push_back({std::string(words[0]), *port, *protocol, frequency});
    }
    return services;
}

Result<TopPorts> top_ports(std::size_t count, Protocol protocol, const ServiceTable& services,
                           const std::string& frequency_file) {
    if (count == 0) return fail("--top needs at least 1 port");
    TopPorts top;
    if (const auto listed = read_nmap_services(frequency_file); !listed.empty()) {
        std::vector<std::pair<double, Port>> ranked;
        for (const auto& service : listed)
            if (service.protocol == protocol) ranked.emplace_back(service.frequency, service.port);
        // Most frequent first; nmap breaks ties by port number.
        std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        std::set<Port> taken;
        for (const auto& [frequency, port] : ranked) {
            if (top.ports.size() == count) break;
            if (taken.insert(port).second) top.ports.push_back(port);
        }
        top.source = frequency_file + " (nmap's open-frequency table, as nmap --top-ports uses)";
        if (!top.ports.empty()) return top;
        top = TopPorts{};
    }
    std::set<Port> taken;
    for (const auto& entry : services.entries()) {
        if (top.ports.size() == count) break;
        if (entry.protocol == protocol && entry.port != 0 && taken.insert(entry.port).second) top.ports.push_back(entry.port);
    }
    top.source = services.source() + " (first distinct " + std::string(to_string(protocol)) +
                 " ports in file order; it has no frequencies)";
    if (top.ports.empty()) return fail("no " + std::string(to_string(protocol)) + " ports in " + services.source());
    return top;
}

std::string compress_ranges(std::vector<Port> ports) {
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    std::string text;
    for (std::size_t i = 0; i < ports.size();) {
        std::size_t j = i;
        while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1) ++j;
        if (!text.empty()) text += ',';
        text += std::to_string(ports[i]);
        if (j > i) text += "-" + std::to_string(ports[j]);
        i = j + 1;
    }
    return text;
}

// ---- the scan ----------------------------------------------------------------------------

Result<ScanReport> run_scan(const std::vector<Port>& ports, const ScanOptions& options) {
    if (!options.target.is_loopback() && !options.target_in_private_namespace)
        return fail("refusing to scan " + options.target.to_string() + ": not a loopback address");
    if (options.concurrency == 0) return fail("concurrency must be at least 1");
    ScanReport report;
    report.protocol = options.protocol;
    report.results.resize(ports.size());
    asio::io_context io(1);
    Shared shared{io, ports, options, report};
    const std::size_t workers = std::min(options.concurrency, std::max<std::size_t>(ports.size(), 1));
    std::exception_ptr failure;
    const auto remember = [&failure](std::exception_ptr error) {
        if (error && !failure) failure = error;
    };
    for (std::size_t i = 0; i < workers; ++i) {
        if (options.protocol == Protocol::tcp) asio::co_spawn(io, run_worker<TcpWorker>(shared, options.target), remember);
        else asio::co_spawn(io, run_worker<UdpWorker>(shared, options.target), remember);
    }
    const auto start = std::chrono::steady_clock::now();
    io.run();
    report.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& error) {
            return fail(std::string("scan failed: ") + error.what());
        }
    }
    if (options.progress) options.progress(ports.size(), ports.size());
    return report;
}

}  // namespace portlab::scanner
