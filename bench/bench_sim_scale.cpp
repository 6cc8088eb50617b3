// The simulator at scale (plain timed program; figures go to bench/RESULTS.md, issue 13).
// Workload, the same as bench/ns3_short_connections.cpp's: two hosts on one link
// (10 us one way), a server listening on port 80, and N connections one after another:
// connect, accept, 1000 bytes each way, the server closes first (its end stays in
// TIME-WAIT: 60 s, longer than the whole run), the client closes, the next connection
// starts once the client's socket is gone. Connection i comes from its own source
// endpoint (client address 10.0.0.1 + 2*(i / 50,000), port 10,000 + i % 50,000, bound
// before connect()): with kernel-chosen ports a later connection soon takes the 4-tuple
// of a TIME-WAIT socket (its SYN draws a challenge ACK, the client's RST ends the
// TIME-WAIT socket), so not every TIME-WAIT socket would still be there at the end;
// this way all N are.
// Each (options, N) runs in a child process of its own, so its peak RSS is its own:
//   bare     SimOptions{record_trace = false}
//   default  SimOptions{} (trace on: every event kept, every packet as bytes), what
//            portlab-sim, the scenarios and the visualizer use
//   drained  (only when asked) default, with the recorded events dropped after every
//            thousand connections, as a consumer that streams the trace away would: what
//            recording costs without the trace's storage
// Printed per run, one line of key=value: simulator events (queue entries run, as
// ns-3's event count), wall and CPU seconds, events/s, us per connection (wall and CPU),
// for the first and last thousand (wall) and their ratio, the TIME-WAIT sockets left on
// the server, trace events kept, peak RSS, virtual time at the end.
// Usage: bench_sim_scale [--options bare|default|drained|both] [N ...]   (default: both, 1000 10000 100000)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <time.h>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/sim/simulator.hpp"

using namespace portlab;
using namespace portlab::sim;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t payload_size = 1000;
constexpr Port server_port = 80;
constexpr long block = 1000;  // "first thousand", "last thousand"
constexpr long ports_per_address = 50'000;
constexpr long max_connections = 3 * ports_per_address;  // three client addresses

// CPU time of this process (the wall clock also counts the time other programs had the core).
double cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

struct Workload {
    Simulator sim;
    HostId client;
    HostId server;
    SocketRef listener;
    std::size_t events = 0;  // queue entries run

    explicit Workload(SimOptions options) : sim(options) {
        client = sim.add_host("client", {IpAddress::v4(10, 0, 0, 1), IpAddress::v4(10, 0, 0, 3), IpAddress::v4(10, 0, 0, 5)});
        server = sim.add_host("server", {IpAddress::v4(10, 0, 0, 2)});
        sim.set_link(client, server, LinkConfig{10 * microseconds, 0.0, {}});
        listener = sim.socket(server, Protocol::tcp).value();
        (void)sim.set_privileged(listener);  // port 80: a server started as root
        if (!sim.bind(listener, Endpoint{IpAddress::any_v4(), server_port}) || !sim.listen(listener, 128)) std::abort();
    }

    // Runs events until done() holds; a connection that stalls is a bug in the model.
    template <class Done>
    void run_until(Done done) {
        while (!done()) {
            if (!sim.step()) {
                std::fprintf(stderr, "bench_sim_scale: the queue ran dry before the connection finished\n");
                std::exit(1);
            }
            ++events;
        }
    }

    // Connection i's source: a 4-tuple no earlier connection had (see the top).
    static Endpoint source_of(long i) {
        const auto address = static_cast<std::uint8_t>(1 + 2 * (i / ports_per_address));
        return Endpoint{IpAddress::v4(10, 0, 0, address), static_cast<Port>(10'000 + i % ports_per_address)};
    }

    void one_connection(long i, const Bytes& payload) {
        const SocketRef c = sim.socket(client, Protocol::tcp).value();
        if (!sim.bind(c, source_of(i)) || !sim.connect(c, Endpoint{IpAddress::v4(10, 0, 0, 2), server_port})) std::abort();
        SysResult<SocketRef> accepted = Errno::eagain;
        run_until([&] { return (accepted = sim.accept(listener)).has_value(); });
        const SocketRef a = accepted.value();
        if (!sim.send(c, payload) || !sim.send(a, payload)) std::abort();
        std::size_t at_client = 0;
        std::size_t at_server = 0;
        const auto take = [&](SocketRef s, std::size_t& count) {
            if (auto data = sim.recv(s)) count += data->size();
            return count >= payload_size;
        };
        run_until([&] {
            const bool client_has_all = take(c, at_client);
            const bool server_has_all = take(a, at_server);
            return client_has_all && server_has_all;
        });
        (void)sim.close(a);  // the active close: the server's end waits in TIME-WAIT
        run_until([&] {
            const auto data = sim.recv(c);
            return data && data->empty();  // the server's FIN: end of stream
        });
        (void)sim.close(c);
        run_until([&] { return sim.find_socket(c) == nullptr; });  // LAST-ACK answered
    }
};

struct RunResult {
    long connections = 0;
    std::size_t events = 0;
    std::size_t trace_events = 0;
    std::size_t time_wait = 0;
    double virtual_seconds = 0;
    double wall = 0;
    double cpu = 0;
    double first_block = 0;  // seconds for the first `block` connections
    double last_block = 0;
    double first_block_cpu = 0;  // the same in CPU seconds: steadier on a shared machine
    double last_block_cpu = 0;
    long peak_rss_kib = 0;
};

enum class Mode { bare, defaults, drained };
const char* name_of(Mode mode) { return mode == Mode::bare ? "bare" : mode == Mode::defaults ? "default" : "drained"; }

RunResult run(Mode mode, long connections) {
    SimOptions options;
    options.record_trace = mode != Mode::bare;
    Workload w{options};
    const Bytes payload(payload_size, std::uint8_t{'x'});
    RunResult r;
    r.connections = connections;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    auto block_start = start;
    double block_cpu_start = cpu_start;
    for (long i = 0; i < connections; ++i) {
        if (i % block == 0) {
            block_start = Clock::now();
            block_cpu_start = cpu_seconds();
        }
        w.one_connection(i, payload);
        if (mode == Mode::drained && i % block == block - 1) {
            r.trace_events += w.sim.events().size();
            w.sim.clear_events();
        }
        if (i % block == block - 1 || i == connections - 1) {
            const double seconds = std::chrono::duration<double>(Clock::now() - block_start).count();
            const double cpu = cpu_seconds() - block_cpu_start;
            if (i < block) {
                r.first_block = seconds;
                r.first_block_cpu = cpu;
            }
            r.last_block = seconds;
            r.last_block_cpu = cpu;
        }
    }
    r.wall = std::chrono::duration<double>(Clock::now() - start).count();
    r.cpu = cpu_seconds() - cpu_start;
    r.events = w.events;
    r.trace_events += w.sim.events().size();
    r.virtual_seconds = static_cast<double>(w.sim.now()) / static_cast<double>(seconds);
    for (const Socket* s : w.sim.world().host(w.server)->sockets())
        if (s->state == TcpState::time_wait) ++r.time_wait;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    r.peak_rss_kib = usage.ru_maxrss;
    return r;
}

// Runs one measurement in a child, so each peak RSS is that run's alone.
bool run_in_child(Mode mode, long connections) {
    std::fflush(stdout);
    const pid_t child = fork();
    if (child < 0) return false;
    if (child == 0) {
        const RunResult r = run(mode, connections);
        const double per_block = static_cast<double>(std::min(block, r.connections));
        const double n = static_cast<double>(r.connections);
        std::printf("options=%s conns=%ld events=%zu wall_s=%.3f cpu_s=%.3f events_per_s=%.0f cpu_events_per_s=%.0f "
                    "us_per_conn=%.2f cpu_us_per_conn=%.2f first1000_us=%.2f last1000_us=%.2f last_over_first=%.2f "
                    "first1000_cpu_us=%.2f last1000_cpu_us=%.2f cpu_last_over_first=%.2f time_wait=%zu "
                    "trace_events=%zu peak_rss_mib=%.1f virtual_s=%.3f\n",
                    name_of(mode), r.connections, r.events, r.wall, r.cpu,
                    static_cast<double>(r.events) / r.wall, static_cast<double>(r.events) / r.cpu, r.wall / n * 1e6,
                    r.cpu / n * 1e6, r.first_block / per_block * 1e6, r.last_block / per_block * 1e6,
                    r.last_block / r.first_block, r.first_block_cpu / per_block * 1e6, r.last_block_cpu / per_block * 1e6,
                    r.last_block_cpu / r.first_block_cpu, r.time_wait, r.trace_events,
                    static_cast<double>(r.peak_rss_kib) / 1024.0, r.virtual_seconds);
        std::fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<Mode> modes{Mode::bare, Mode::defaults};
    std::vector<long> sizes;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--options" && i + 1 < argc) {
            const std::string_view which = argv[++i];
            if (which == "bare") modes = {Mode::bare};
            else if (which == "default") modes = {Mode::defaults};
            else if (which == "drained") modes = {Mode::drained};
            else if (which == "both") modes = {Mode::bare, Mode::defaults};
            else {
                std::fprintf(stderr, "bench_sim_scale: --options takes bare, default, drained or both\n");
                return 2;
            }
        } else if (const long n = std::atol(argv[i]); n > 0 && n <= max_connections) {
            sizes.push_back(n);
        } else {
            std::fprintf(stderr, "usage: bench_sim_scale [--options bare|default|drained|both] [connections (1-150000) ...]\n");
            return 2;
        }
    }
    if (sizes.empty()) sizes = {1000, 10000, 100000};
    bool ok = true;
    for (const long n : sizes) {
        for (const Mode mode : modes) ok = run_in_child(mode, n) && ok;
    }
    return ok ? 0 : 1;
}
