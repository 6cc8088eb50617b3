// The visualizer's model under load: open a big trace or capture (read + parse +
// timeline with checkpoints) and seek to random events, forwards and backwards.
//
//   bench_viz generate FILE [EVENTS] [KEPT]   write a trace: KEPT connections
//                                             opened and left open, then short
//                                             connections (open, data, close,
//                                             TIME-WAIT) until EVENTS events
//   bench_viz capture FILE [PACKETS]          write a pcap: TCP connections of 8 frames
//   bench_viz open FILE [RUNS]                time what portlab-viz does on open (a trace
//                                             or a capture): first batch, all in, CPU
//   bench_viz parse FILE [RUNS]               a trace's lines parsed on 1 and on 2 threads
//   bench_viz seek FILE [SEEKS]               time random seeks (forwards and backwards)
//   bench_viz ladder FILE                     time the ladder / packet list rows (view/ladder.hpp):
//                                             built once per source, then a cursor move
//   bench_viz plan FILE                       time the topology's slot plan (view/layout.hpp's
//                                             make_slot_plan): one pass over the whole trace
//
// The frame-time figure (10,000 connections on screen) comes from the app:
//   xvfb-run -a -s '-screen 0 1920x1080x24' build/bin/portlab-viz FILE --at N --bench-frames 300
// See bench/RESULTS.md, "portlab-viz".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include "portlab/input_file.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "view/ladder.hpp"
#include "view/layout.hpp"
#include "view/loader.hpp"

using namespace portlab;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

// ---- a synthetic but well-formed trace: what the simulator writes for many clients

class Generator {
public:
    explicit Generator(trace::TraceWriter& writer) : writer_(writer) {}

    std::size_t written() const { return written_; }

    // Connection i: client socket i + 1, server socket i + 2 (the listener is 1).
    // The kept connections take even ports from 32768 up; the short ones cycle
    // through the top 1,000 ports, so no two live connections share a 4-tuple.
    void open(std::uint32_t i, Port port) {
        const std::uint32_t client_socket = i + 1;
        const std::uint32_t server_socket = i + 2;
        const Endpoint local{client_ip, port};
        emit("client", trace::SocketCreated{{client_socket}, Protocol::tcp, IpFamily::v4});
        emit("client", trace::ConnectStarted{{client_socket}, server});
        emit("client", trace::EphemeralAssigned{{client_socket}, port, 32768, 60999, "linux-hash-connect", trace::Parity::even});
        emit("client", trace::Bound{{client_socket}, local, trace::BindHow::ephemeral, std::nullopt});
        emit("client", trace::StateChanged{{client_socket}, TcpState::closed, TcpState::syn_sent, "connect() called"});
        packet("client", "server", local, server, tcp_flag::syn, 0);
        packet("server", "client", server, local, tcp_flag::syn | tcp_flag::ack, 0);
        emit("client", trace::StateChanged{{client_socket}, TcpState::syn_sent, TcpState::established, "SYN+ACK received"});
        packet("client", "server", local, server, tcp_flag::ack, 0);
        emit("server", trace::Accepted{{1}, {server_socket}, FourTuple{server, local}});
    }

    void close(std::uint32_t i, Port port) {
        const std::uint32_t client_socket = i + 1;
        const std::uint32_t server_socket = i + 2;
        const Endpoint local{client_ip, port};
        packet("client", "server", local, server, tcp_flag::psh | tcp_flag::ack, 64);
        emit("client", trace::Closed{{client_socket}});
        emit("client", trace::StateChanged{{client_socket}, TcpState::established, TcpState::fin_wait_1, "close() called"});
        packet("client", "server", local, server, tcp_flag::fin | tcp_flag::ack, 0);
        emit("server", trace::StateChanged{{server_socket}, TcpState::established, TcpState::close_wait, "FIN received"});
        emit("server", trace::Closed{{server_socket}});
        emit("server", trace::StateChanged{{server_socket}, TcpState::close_wait, TcpState::last_ack, "close() called"});
        packet("server", "client", server, local, tcp_flag::fin | tcp_flag::ack, 0);
        emit("client", trace::StateChanged{{client_socket}, TcpState::fin_wait_1, TcpState::time_wait, "FIN received"});
        emit("server", trace::StateChanged{{server_socket}, TcpState::last_ack, TcpState::closed, "ACK of FIN received"});
        emit("client", trace::StateChanged{{client_socket}, TcpState::time_wait, TcpState::closed, "2MSL timer expired"});
    }

    void listen() {
        emit("server", trace::SocketCreated{{1}, Protocol::tcp, IpFamily::v4});
        emit("server", trace::Bound{{1}, Endpoint{IpAddress{}, 80}, trace::BindHow::explicit_port, std::nullopt});
        emit("server", trace::Listening{{1}, 4096});
        emit("server", trace::StateChanged{{1}, TcpState::closed, TcpState::listen, "listen() called"});
    }

private:
    template <class Body>
    void emit(const char* host, Body body) {
        (void)writer_.write(trace::Event{t_us_, host, std::move(body)}).value();
        t_us_ += 3;
        ++written_;
    }

    // A sent and a delivered event for one segment, as the simulator reports both ends.
    void packet(const char* from, const char* to, const Endpoint& source, const Endpoint& destination, std::uint8_t flags,
                std::size_t payload) {
        TcpHeader tcp;
        tcp.source_port = source.port;
        tcp.destination_port = destination.port;
        tcp.sequence = 1000;
        tcp.acknowledgment = (flags & tcp_flag::ack) ? 2000 : 0;
        tcp.flags = flags;
        const std::vector<std::uint8_t> data(payload, 'x');
        const Bytes bytes = encode_tcp(IpHeader{source.address, destination.address}, tcp, data).value();
        emit(from, trace::Packet{trace::PacketKind::sent, bytes, LinkType::raw, std::nullopt, std::string(from), std::string(to)});
        emit(to, trace::Packet{trace::PacketKind::delivered, bytes, LinkType::raw, std::nullopt, std::string(from), std::string(to)});
    }

    trace::TraceWriter& writer_;
    std::uint64_t t_us_ = 0;
    std::size_t written_ = 0;
    const IpAddress client_ip = IpAddress::v4(10, 0, 0, 1);
    const Endpoint server{IpAddress::v4(10, 0, 0, 2), 80};
};

int generate(const std::string& path, std::size_t events, std::size_t kept) {
    trace::TraceHeader header;
    header.source = "test";
    header.generator = "bench_viz";
    header.title = std::to_string(kept) + " open connections, then churn";
    auto writer = trace::TraceWriter::to_file(path, header);
    if (!writer) {
        std::fprintf(stderr, "%s\n", writer.error().message.c_str());
        return 2;
    }
    Generator generator(*writer);
    generator.listen();
    if (kept > 13000) {
        std::fprintf(stderr, "at most 13000 kept connections (even ports 32768-58766)\n");
        return 2;
    }
    std::uint32_t connections = 0;
    for (; connections < kept; ++connections) generator.open(2 * connections, static_cast<Port>(32768 + 2 * connections));
    while (generator.written() < events) {
        const auto port = static_cast<Port>(60999 - connections % 1000);
        generator.open(2 * connections, port);
        generator.close(2 * connections, port);
        ++connections;
    }
    if (auto closed = writer->close(); !closed) {
        std::fprintf(stderr, "%s\n", closed.error().message.c_str());
        return 1;
    }
    std::printf("wrote %zu events (%zu connections kept open, %u in all) to %s\n", generator.written(), kept, connections, path.c_str());
    return 0;
}

// ---- a capture of real TCP connections, as tcpdump -i lo writes one

// Connection after connection from 10.0.0.1 to 10.0.0.2:80, each eight Ethernet
// frames (handshake, 100 bytes each way, FIN from both ends, last ACK) with
// sequence numbers a peer tool's TCP analysis follows; 10 us between frames.
int generate_capture(const std::string& path, std::size_t packets) {
    auto writer = pcap::Writer::create(path, LinkType::en10mb);
    if (!writer) {
        std::fprintf(stderr, "%s\n", writer.error().message.c_str());
        return 2;
    }
    const IpAddress client_ip = IpAddress::v4(10, 0, 0, 1);
    const Endpoint server{IpAddress::v4(10, 0, 0, 2), 80};
    const std::vector<std::uint8_t> request(100, 'q');
    const std::vector<std::uint8_t> reply(100, 'r');
    std::uint64_t t_us = 1'700'000'000'000'000;
    std::size_t written = 0;
    std::size_t connection = 0;
    const auto frame = [&](const Endpoint& from, const Endpoint& to, std::uint32_t seq, std::uint32_t ack, std::uint8_t flags,
                           const std::vector<std::uint8_t>& data) {
        if (written == packets) return;
        TcpHeader tcp;
        tcp.source_port = from.port;
        tcp.destination_port = to.port;
        tcp.sequence = seq;
        tcp.acknowledgment = ack;
        tcp.flags = flags;
        const Bytes ip = encode_tcp(IpHeader{from.address, to.address}, tcp, data).value();
        (void)writer->write(pcap::Record::whole(t_us, with_link_header(LinkType::en10mb, ip))).value();
        t_us += 10;
        ++written;
    };
    const std::vector<std::uint8_t> none;
    while (written < packets) {
        const Endpoint client{client_ip, static_cast<Port>(32768 + connection % 28000)};
        const auto c = static_cast<std::uint32_t>(1000 + connection * 7919);  // initial sequence numbers
        const auto s = static_cast<std::uint32_t>(5000 + connection * 104729);
        using namespace tcp_flag;
        frame(client, server, c, 0, syn, none);
        frame(server, client, s, c + 1, syn | ack, none);
        frame(client, server, c + 1, s + 1, ack, none);
        frame(client, server, c + 1, s + 1, psh | ack, request);
        frame(server, client, s + 1, c + 101, psh | ack, reply);
        frame(client, server, c + 101, s + 101, fin | ack, none);
        frame(server, client, s + 101, c + 102, fin | ack, none);
        frame(client, server, c + 102, s + 102, ack, none);
        ++connection;
    }
    if (auto closed = writer->close(); !closed) {
        std::fprintf(stderr, "%s\n", closed.error().message.c_str());
        return 1;
    }
    std::printf("wrote %zu packets (%zu connections) to %s\n", written, connection, path.c_str());
    return 0;
}

// CPU time of every thread of the process so far (user + system), in ms, as getrusage(2) counts it.
double rusage_cpu_ms() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
    return ms(usage.ru_utime) + ms(usage.ru_stime);
}

// What portlab-viz does on open, without a window: the loader reads in blocks on
// its threads, and this thread moves what is ready into the timeline (as the
// window does between frames) until the file is in; a capture's conversations
// come with the last block. "first batch": when the first events could be drawn.
int open(const std::string& path, int runs) {
    for (int run = 0; run < runs; ++run) {
        const auto start = Clock::now();
        const double cpu_start = rusage_cpu_ms();
        viz::TraceLoader loader(path);
        std::optional<replay::Timeline> timeline;
        std::optional<double> first_batch_ms;
        double progress_at_first = 0;
        std::size_t conversations = 0;
        while (true) {
            const bool done = loader.done();
            auto batch = loader.take(static_cast<std::size_t>(-1));
            if (!batch.events.empty()) {
                if (!timeline) {
                    timeline.emplace(*loader.header());
                    const std::size_t estimate = loader.estimated_events();
                    timeline->reserve(std::max(batch.events.size(), estimate + estimate / 10));
                    first_batch_ms = ms_since(start);
                    progress_at_first = loader.progress();
                }
                timeline->append(std::move(batch.events), std::move(batch.checkpoints));
            } else if (done) {
                break;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        if (const auto error = loader.error()) {
            std::fprintf(stderr, "%s\n", error->message.c_str());
            return 2;
        }
        if (const auto warning = loader.warning()) std::fprintf(stderr, "warning: %s\n", warning->c_str());
        conversations = loader.take_conversations().size();
        const double total_ms = ms_since(start);
        const double cpu = rusage_cpu_ms() - cpu_start;
        std::printf("open %zu events: first batch %.0f ms (%.1f%% of the file read), all in %.0f ms, cpu %.0f ms (every thread, "
                    "getrusage), %zu checkpoints, %zu conversations\n",
                    timeline ? timeline->size() : 0, first_batch_ms.value_or(-1), 100 * progress_at_first, total_ms, cpu,
                    timeline ? timeline->checkpoint_count() : 0, conversations);
    }
    return 0;
}

// Parsing a trace's event lines alone, on one thread and on two, over the same
// blocks the loader reads: whether the second thread shortens the wall time.
int parse(const std::string& path, int runs) {
    auto text = read_input_file(path, trace::max_trace_file_bytes);
    if (!text) {
        std::fprintf(stderr, "%s\n", text.error().message.c_str());
        return 2;
    }
    const std::string_view all(*text);
    for (int run = 0; run < runs; ++run) {
        for (const unsigned threads : {1u, 2u}) {
            replay::TraceTextReader reader;
            const auto first_end = all.find('\n');
            if (!reader.header(all.substr(0, first_end))) return 2;
            std::size_t offset = first_end + 1;
            std::size_t events = 0;
            const auto start = Clock::now();
            const double cpu_start = rusage_cpu_ms();
            while (offset < all.size()) {
                std::size_t end = offset;
                for (std::size_t count = 0; end < all.size() && count < 50000; ++count) {
                    const auto next = all.find('\n', end);
                    end = next == std::string_view::npos ? all.size() : next + 1;
                }
                auto block = reader.block(all.substr(offset, end - offset), threads);
                if (!block) {
                    std::fprintf(stderr, "%s\n", block.error().message.c_str());
                    return 2;
                }
                events += block->size();
                offset = end;
            }
            const double wall = ms_since(start);
            const double cpu = rusage_cpu_ms() - cpu_start;
            std::printf("parse %zu events on %u thread%s: wall %.0f ms, cpu %.0f ms (cpu/wall %.2f)\n", events, threads,
                        threads == 1 ? "" : "s", wall, cpu, cpu / wall);
        }
    }
    return 0;
}

double percentile(std::vector<double> values, double p) {
    std::sort(values.begin(), values.end());
    return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5))];
}

int seek(const std::string& path, int seeks) {
    auto trace = replay::read_any_file(path);
    if (!trace) {
        std::fprintf(stderr, "%s\n", trace.error().message.c_str());
        return 2;
    }
    const replay::Timeline timeline = replay::Timeline::of(std::move(trace).value());
    std::mt19937_64 random(42);
    std::uniform_int_distribution<std::size_t> any(0, timeline.size());
    replay::State world = timeline.state_at(timeline.size() / 2);
    std::vector<double> forward;
    std::vector<double> backward;
    std::vector<double> step_back;
    for (int i = 0; i < seeks; ++i) {
        const std::size_t target = any(random);
        const bool is_forward = target >= world.applied();
        const auto start = Clock::now();
        timeline.seek(world, target);
        (is_forward ? forward : backward).push_back(ms_since(start));
        // One step back from there: the Left key.
        if (target > 0) {
            const auto back = Clock::now();
            timeline.seek(world, target - 1);
            step_back.push_back(ms_since(back));
        }
    }
    const auto report = [](const char* what, const std::vector<double>& v) {
        if (v.empty()) return;
        std::printf("%-22s n=%-5zu median %.2f ms  p99 %.2f ms  max %.2f ms\n", what, v.size(), percentile(v, 0.5), percentile(v, 0.99),
                    percentile(v, 1.0));
    };
    std::printf("seek over %zu events, %zu checkpoints, %zu sockets at the end\n", timeline.size(), timeline.checkpoint_count(),
                timeline.state_at(timeline.size()).socket_count());
    report("seek forwards", forward);
    report("seek backwards", backward);
    report("one step back", step_back);
    return 0;
}

// What the Ladder and Packets tabs cost: the rows, decoded once when the tab is first
// shown; the filtered view; and what a cursor move asks (a binary search each).
int ladder(const std::string& path) {
    auto trace = replay::read_any_file(path);
    if (!trace) {
        std::fprintf(stderr, "%s\n", trace.error().message.c_str());
        return 2;
    }
    const replay::Timeline timeline = replay::Timeline::of(std::move(trace).value());
    const auto start = Clock::now();
    const double cpu_start = rusage_cpu_ms();
    viz::PacketLadder rows;
    rows.extend(timeline);
    const double build_ms = ms_since(start);
    const double build_cpu = rusage_cpu_ms() - cpu_start;
    const auto view_start = Clock::now();
    const viz::LadderView view = viz::make_ladder_view(rows, {}, viz::ColumnMode::automatic);
    const double view_ms = ms_since(view_start);
    std::mt19937_64 random(42);
    std::uniform_int_distribution<std::size_t> any(0, timeline.size() - 1);
    std::vector<double> moves;
    for (int i = 0; i < 1000; ++i) {
        const std::size_t at = any(random);
        const auto move = Clock::now();
        const auto shown = view.visible(rows, at + 1);
        const auto current = rows.row_of_event(timeline, at);
        moves.push_back(ms_since(move));
        if (shown > view.rows.size() || (current && *current >= rows.rows().size())) return 1;
    }
    std::printf("ladder over %zu events: %zu packet rows, %zu columns shown (%s); rows built in %.0f ms (cpu %.0f), view %.1f ms, "
                "cursor move median %.4f ms, max %.4f ms\n",
                timeline.size(), rows.rows().size(), view.columns.size(), view.by_host ? "hosts" : "endpoints", build_ms, build_cpu,
                view_ms, percentile(moves, 0.5), percentile(moves, 1.0));
    return 0;
}

int plan(const std::string& path) {
    auto trace = replay::read_any_file(path);
    if (!trace) {
        std::fprintf(stderr, "%s\n", trace.error().message.c_str());
        return 2;
    }
    const replay::Timeline timeline = replay::Timeline::of(std::move(trace).value());
    const auto start = Clock::now();
    const double cpu_start = rusage_cpu_ms();
    const viz::SlotPlan made = viz::make_slot_plan(timeline);
    std::size_t capacity = 0;
    for (const auto& host : made.hosts) capacity += host.capacity;
    std::printf("slot plan over %zu events: %zu sockets placed in %zu cells, %.0f ms (cpu %.0f)\n", timeline.size(), made.cells.size(),
                capacity, ms_since(start), rusage_cpu_ms() - cpu_start);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 2 && args[0] == "generate")
        return generate(args[1], args.size() > 2 ? std::stoul(args[2]) : 1'000'000, args.size() > 3 ? std::stoul(args[3]) : 10'000);
    if (args.size() >= 2 && args[0] == "capture") return generate_capture(args[1], args.size() > 2 ? std::stoul(args[2]) : 1'000'000);
    if (args.size() >= 2 && args[0] == "open") return open(args[1], args.size() > 2 ? std::stoi(args[2]) : 3);
    if (args.size() >= 2 && args[0] == "parse") return parse(args[1], args.size() > 2 ? std::stoi(args[2]) : 3);
    if (args.size() >= 2 && args[0] == "seek") return seek(args[1], args.size() > 2 ? std::stoi(args[2]) : 1000);
    if (args.size() >= 2 && args[0] == "ladder") return ladder(args[1]);
    if (args.size() >= 2 && args[0] == "plan") return plan(args[1]);
    std::fprintf(stderr, "usage: bench_viz generate FILE [EVENTS] [KEPT] | capture FILE [PACKETS] | open FILE [RUNS] | parse FILE [RUNS] | "
                         "seek FILE [SEEKS] | ladder FILE | plan FILE\n");
    return 2;
}
