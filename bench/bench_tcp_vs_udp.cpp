// lab12's single-stream TCP throughput against iperf3's, on the same machine, in one run.
//
// Starts `iperf3 -s -B 127.0.0.1 -p PORT` on a free loopback port, then alternates, for
// --rounds rounds:  iperf3 -c 127.0.0.1 -p PORT -t N -J   and   lab12_tcp_vs_udp --only tcp
// --seconds N --json, and stops the server. Prints each round and the medians; the aim is
// lab12 within 10% of iperf3 (both: one TCP connection, 128 KiB writes, default buffers).
//
//   bench_tcp_vs_udp [--seconds N (default 5)] [--rounds R (default 3)]

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

struct Output {
    int status = -1;
    std::string text;
};

Output run(const std::string& command) {
    Output output;
    std::FILE* pipe = popen(("timeout 120 " + command + " 2>/dev/null").c_str(), "r");
    if (pipe == nullptr) return output;
    std::array<char, 4096> buffer{};
    for (std::size_t count; (count = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) output.text.append(buffer.data(), count);
    const int status = pclose(pipe);
    output.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return output;
}

// A port nobody holds right now: bind port 0 and read what the kernel chose.
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int seconds = 5, rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::clamp(std::atoi(argv[i + 1]), 1, 30);
        if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::clamp(std::atoi(argv[i + 1]), 1, 10);
    }
    const auto lab = std::filesystem::canonical("/proc/self/exe").parent_path() / "lab12_tcp_vs_udp";
    const int port = free_port();

    // The iperf3 server, stopped at the end whatever happens.
    const std::string port_text = std::to_string(port);
    const char* server_argv[] = {"iperf3", "-s", "-B", "127.0.0.1", "-p", port_text.c_str(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t server = 0;
    if (posix_spawnp(&server, "iperf3", &actions, nullptr, const_cast<char* const*>(server_argv), environ) != 0) {
        std::cerr << "bench_tcp_vs_udp: cannot start iperf3 (is it installed? tools/setup installs it)\n";
        return 1;
    }
    posix_spawn_file_actions_destroy(&actions);

    std::vector<double> iperf, ours;
    fmt::print("iperf3 -s on 127.0.0.1:{}; {} rounds of {} s each\n", port, rounds, seconds);
    fmt::print("{:>5}  {:>16}  {:>16}  {:>7}\n", "round", "iperf3 Gbit/s", "lab12 Gbit/s", "ratio");
    for (int round = 1; round <= rounds; ++round) {
        const auto client = fmt::format("iperf3 -c 127.0.0.1 -p {} -t {} -J", port, seconds);
        Output reply;
        for (int attempt = 0; attempt < 30; ++attempt) {  // the server may still be starting
            reply = run(client);
            if (reply.status == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        const auto iperf_json = nlohmann::json::parse(reply.text, nullptr, false);
        const auto lab_reply = run(fmt::format("{} --only tcp --seconds {} --port 0 --json", lab.string(), seconds));
        const auto lab_json = nlohmann::json::parse(lab_reply.text, nullptr, false);
        if (iperf_json.is_discarded() || !iperf_json.contains("end") || lab_json.is_discarded() || !lab_json.contains("tcp")) {
            std::cerr << "bench_tcp_vs_udp: round " << round << " failed (iperf3 status " << reply.status
                      << ", lab12 status " << lab_reply.status << ")\n";
            continue;
        }
        // The receiver's figure on both sides: bytes that arrived, over the test's time.
        const double iperf_bps = iperf_json["end"]["sum_received"]["bits_per_second"].get<double>();
        const double lab_bps = lab_json["tcp"]["bits_per_second"].get<double>();
        iperf.push_back(iperf_bps);
        ours.push_back(lab_bps);
        fmt::print("{:>5}  {:>16.2f}  {:>16.2f}  {:>7.3f}\n", round, iperf_bps / 1e9, lab_bps / 1e9, lab_bps / iperf_bps);
    }
    kill(server, SIGTERM);
    waitpid(server, nullptr, 0);
    if (iperf.empty()) return 1;
    const double ratio = median(ours) / median(iperf);
    fmt::print("median {:>15.2f}  {:>16.2f}  {:>7.3f}   ({})\n", median(iperf) / 1e9, median(ours) / 1e9, ratio,
               ratio >= 0.9 ? "within 10% of iperf3 or faster" : "more than 10% below iperf3");
    return 0;
}
