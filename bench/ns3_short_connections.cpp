// The workload of bench_sim_scale.cpp in ns-3 (3.37, Debian's libns3-dev), for the ratio
// in bench/RESULTS.md: two nodes on a point-to-point link (10 us one way, 10 Gbit/s), a
// server listening on port 80, and N TCP connections one after another: connect,
// accept, 1000 bytes each way, the server closes first (TIME-WAIT on the server, kept
// for the whole run: MaxSegLifetime set past it), the client closes when it reads the
// server's FIN, the next connection starts when the client's socket reaches CLOSED.
// Connection i binds source port 10,000 + i first, as bench_sim_scale does, so no
// 4-tuple repeats (N at most 50,000).
// Set so each 1000 bytes go in one segment and every segment is ACKed at once
// (SegmentSize 1448, DelAckCount 1), as the portlab model does; other TCP options are
// ns-3's defaults (timestamps, window scaling, SACK on).
// Prints the same fields as bench_sim_scale: events (Simulator::GetEventCount), wall and
// CPU seconds, events/s, us per connection (first and last thousand), peak RSS.
// Built only when CMake finds ns-3 (bench/CMakeLists.txt); never part of CI.
// Usage: ns3_short_connections N
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <time.h>

#include <ns3/applications-module.h>
#include <ns3/core-module.h>
#include <ns3/internet-module.h>
#include <ns3/network-module.h>
#include <ns3/point-to-point-module.h>

using namespace ns3;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t payload_size = 1000;
constexpr uint16_t server_port = 80;
constexpr long block = 1000;

struct Bench {
    Ptr<Node> client_node;
    Ipv4Address client_address;
    Ipv4Address server_address;
    long connections = 0;
    long done = 0;
    Clock::time_point block_start;
    double block_cpu_start = 0;
    double first_block = 0;
    double last_block = 0;
    double first_block_cpu = 0;
    double last_block_cpu = 0;
    // The current connection's client side.
    Ptr<Socket> client;
    uint32_t client_received = 0;
    bool client_closed = false;
    uint32_t server_received = 0;  // one connection at a time
};

Bench bench;

double cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

void start_connection();

// The server's side: read until 1000 bytes are in, then close (the active close).
void server_read(Ptr<Socket> socket) {
    while (Ptr<Packet> packet = socket->Recv()) {
        if (packet->GetSize() == 0) break;
        bench.server_received += packet->GetSize();
    }
    if (bench.server_received >= payload_size) {
        bench.server_received = 0;
        socket->Close();
    }
}

void server_accepted(Ptr<Socket> socket, const Address&) {
    socket->SetRecvCallback(MakeCallback(&server_read));
    socket->Send(Create<Packet>(payload_size));
}

bool server_accepts(Ptr<Socket>, const Address&) { return true; }

void connection_finished() {
    ++bench.done;
    if (bench.done % block == 0 || bench.done == bench.connections) {
        const double seconds = std::chrono::duration<double>(Clock::now() - bench.block_start).count();
        const double cpu = cpu_seconds() - bench.block_cpu_start;
        if (bench.done <= block) {
            bench.first_block = seconds;
            bench.first_block_cpu = cpu;
        }
        bench.last_block = seconds;
        bench.last_block_cpu = cpu;
        bench.block_start = Clock::now();
        bench.block_cpu_start = cpu_seconds();
    }
    if (bench.done == bench.connections) {
        Simulator::Stop();
        return;
    }
    Simulator::ScheduleNow(&start_connection);
}

void client_state(TcpSocket::TcpStates_t, TcpSocket::TcpStates_t now) {
    if (now == TcpSocket::CLOSED && !bench.client_closed) {
        bench.client_closed = true;
        Simulator::ScheduleNow(&connection_finished);
    }
}

void client_read(Ptr<Socket> socket) {
    while (Ptr<Packet> packet = socket->Recv()) {
        if (packet->GetSize() == 0) break;
        bench.client_received += packet->GetSize();
    }
}

// The server's FIN: the client closes too.
void client_peer_closed(Ptr<Socket> socket) { socket->Close(); }

void client_connected(Ptr<Socket> socket) { socket->Send(Create<Packet>(payload_size)); }
void client_failed(Ptr<Socket>) {
    std::fprintf(stderr, "ns3_short_connections: a connection failed\n");
    std::exit(1);
}

void start_connection() {
    bench.client = Socket::CreateSocket(bench.client_node, TcpSocketFactory::GetTypeId());
    bench.client_received = 0;
    bench.client_closed = false;
    bench.client->TraceConnectWithoutContext("State", MakeCallback(&client_state));
    bench.client->SetConnectCallback(MakeCallback(&client_connected), MakeCallback(&client_failed));
    bench.client->SetRecvCallback(MakeCallback(&client_read));
    bench.client->SetCloseCallbacks(MakeCallback(&client_peer_closed), MakeNullCallback<void, Ptr<Socket>>());
    bench.client->Bind(InetSocketAddress(bench.client_address, static_cast<uint16_t>(10'000 + bench.done)));
    bench.client->Connect(InetSocketAddress(bench.server_address, server_port));
}

}  // namespace

int main(int argc, char** argv) {
    bench.connections = argc > 1 ? std::atol(argv[1]) : 0;
    if (bench.connections <= 0 || bench.connections > 50'000) {
        std::fprintf(stderr, "usage: ns3_short_connections N (1-50000)\n");
        return 2;
    }
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(1448));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(1));
    Config::SetDefault("ns3::TcpSocketBase::MaxSegLifetime", DoubleValue(1e6));

    NodeContainer nodes;
    nodes.Create(2);
    PointToPointHelper link;
    link.SetDeviceAttribute("DataRate", StringValue("10Gbps"));
    link.SetChannelAttribute("Delay", StringValue("10us"));
    const NetDeviceContainer devices = link.Install(nodes);
    InternetStackHelper stack;
    stack.Install(nodes);
    Ipv4AddressHelper addresses("192.0.2.0", "255.255.255.0");  // RFC 5737 documentation range (simulated by ns-3)
    const Ipv4InterfaceContainer interfaces = addresses.Assign(devices);
    bench.client_node = nodes.Get(0);
    bench.client_address = interfaces.GetAddress(0);
    bench.server_address = interfaces.GetAddress(1);

    Ptr<Socket> listener = Socket::CreateSocket(nodes.Get(1), TcpSocketFactory::GetTypeId());
    listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), server_port));
    listener->Listen();
    listener->SetAcceptCallback(MakeCallback(&server_accepts), MakeCallback(&server_accepted));

    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    bench.block_start = start;
    bench.block_cpu_start = cpu_start;
    Simulator::ScheduleNow(&start_connection);
    Simulator::Run();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = cpu_seconds() - cpu_start;
    const uint64_t events = Simulator::GetEventCount();
    if (bench.done != bench.connections) {
        std::fprintf(stderr, "ns3_short_connections: %ld of %ld connections finished\n", bench.done, bench.connections);
        return 1;
    }
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double per_block = static_cast<double>(std::min(block, bench.connections));
    const double n = static_cast<double>(bench.connections);
    std::printf("options=ns-3 conns=%ld events=%llu wall_s=%.3f cpu_s=%.3f events_per_s=%.0f cpu_events_per_s=%.0f "
                "us_per_conn=%.2f cpu_us_per_conn=%.2f first1000_us=%.2f last1000_us=%.2f last_over_first=%.2f "
                "first1000_cpu_us=%.2f last1000_cpu_us=%.2f cpu_last_over_first=%.2f peak_rss_mib=%.1f virtual_s=%.3f\n",
                bench.connections, static_cast<unsigned long long>(events), wall, cpu,
                static_cast<double>(events) / wall, static_cast<double>(events) / cpu, wall / n * 1e6, cpu / n * 1e6,
                bench.first_block / per_block * 1e6, bench.last_block / per_block * 1e6,
                bench.last_block / bench.first_block, bench.first_block_cpu / per_block * 1e6,
                bench.last_block_cpu / per_block * 1e6, bench.last_block_cpu / bench.first_block_cpu,
                static_cast<double>(usage.ru_maxrss) / 1024.0, Simulator::Now().GetSeconds());
    Simulator::Destroy();
    return 0;
}
