// The simulator's speed (plain timed program; figures go to bench/RESULTS.md).
//   1. events per second: the "web" scenario run again and again, every trace event
//      recorded (each packet encoded as real bytes).
//   2. one million connects through a 28,232-port ephemeral pool kept 99% full:
//      (a) the port allocator alone, (b) socket() + connect() + close() through the
//      whole model (each connect encodes a SYN), trace off.
// Usage: bench_sim [web-runs] [connects]
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <vector>

#include "portlab/sim/ephemeral.hpp"
#include "portlab/sim/scenarios.hpp"

using namespace portlab;
using namespace portlab::sim;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of this process: on a shared machine the wall clock also counts the
// time other programs had the core; both are printed.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

void web_events(long runs) {
    std::size_t events = 0;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    for (long i = 0; i < runs; ++i) {
        auto sim = run_scenario("web", static_cast<std::uint64_t>(i + 1));
        if (!sim) std::abort();
        events += sim->events().size();
    }
    const double elapsed = seconds_since(start);
    const double cpu = cpu_seconds() - cpu_start;
    std::printf("web scenario x %ld: %zu events in %.3f s (cpu %.3f s) = %.2f M events/s (%.1f us per run)\n", runs,
                events, elapsed, cpu, static_cast<double>(events) / elapsed / 1e6,
                elapsed / static_cast<double>(runs) * 1e6);
}

// Fills all but 1% of the Linux range, then takes and gives back one port per round,
// so every allocation searches a 99% full pool.
void allocator_only(long connects) {
    EphemeralConfig config;  // Linux range 32768-60999, Linux strategy
    EphemeralState state;
    FreePorts free;
    Rng rng{1};
    const PortRequest request{PortPurpose::tcp_connect, IpAddress::v4(10, 0, 0, 1), Endpoint{IpAddress::v4(10, 0, 0, 2), 80}};
    std::vector<Port> taken;
    const std::size_t keep_free = config.range.size() / 100;  // 282
    for (std::size_t i = 0; i + keep_free < config.range.size(); ++i) {
        const auto choice = choose_ephemeral_port(config, state, free, request, rng, 7);
        free.take(choice->port);
        taken.push_back(choice->port);
    }
    std::size_t cursor = 0;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    for (long i = 0; i < connects; ++i) {
        const auto choice = choose_ephemeral_port(config, state, free, request, rng, 7);
        if (!choice) std::abort();
        free.take(choice->port);
        free.release(taken[cursor]);  // the oldest connection ends
        taken[cursor] = choice->port;
        cursor = (cursor + 1) % taken.size();
    }
    const double elapsed = seconds_since(start);
    const double cpu = cpu_seconds() - cpu_start;
    std::printf("allocator, pool 99%% full (%zu of %zu taken): %ld allocations in %.3f s (cpu %.3f s) = %.0f ns each\n",
                taken.size(), config.range.size(), connects, elapsed, cpu, elapsed / static_cast<double>(connects) * 1e9);
}

void connects_through_model(long connects) {
    SimOptions options;
    options.record_trace = false;
    Simulator sim{options};
    const HostId client = sim.add_host("client", {IpAddress::v4(10, 0, 0, 1)});
    const Endpoint nowhere{IpAddress::v4(192, 0, 2, 1), 80};  // no route: the SYN is dropped at once, no queue growth
    // Fill 99% of the pool with connections that stay.
    const std::size_t size = linux_ephemeral_range.size();
    std::vector<SocketRef> open;
    for (std::size_t i = 0; i + size / 100 < size; ++i) {
        const SocketRef s = sim.socket(client, Protocol::tcp).value();
        if (!sim.connect(s, nowhere)) std::abort();
        open.push_back(s);
    }
    std::size_t cursor = 0;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    for (long i = 0; i < connects; ++i) {
        const SocketRef s = sim.socket(client, Protocol::tcp).value();
        if (!sim.connect(s, nowhere)) std::abort();
        (void)sim.close(open[cursor]);  // the oldest one gives its port back
        open[cursor] = s;
        cursor = (cursor + 1) % open.size();
    }
    const double elapsed = seconds_since(start);
    const double cpu = cpu_seconds() - cpu_start;
    std::printf("model socket+connect+close, pool 99%% full: %ld connects in %.3f s (cpu %.3f s) = %.0f ns each\n",
                connects, elapsed, cpu, elapsed / static_cast<double>(connects) * 1e9);
}

}  // namespace

int main(int argc, char** argv) {
    const long runs = argc > 1 ? std::atol(argv[1]) : 20000;
    const long connects = argc > 2 ? std::atol(argv[2]) : 1000000;
    web_events(runs);
    allocator_only(connects);
    connects_through_model(connects);
    return 0;
}
