// How fast is diag::list_sockets against ss, with 10,000 sockets open?
//
// Opens 5,000 connected TCP pairs on 127.0.0.1 (10,000 sockets plus one listener), then
// times, several times each, with medians:
//   a) diag::list_sockets(every state, with processes)   in this process
//   b) ss -tuanp > /dev/null                            as a child process
//   c) lab07_who_is_listening --all --json > /dev/null  as a child process (the lab end to end)
//   d) lab07_who_is_listening --all > /dev/null         the same, narrated text instead of JSON
// and checks once, untimed, that (a) and ss list the same number of sockets and that every
// one of our 10,001 sockets is in both. Aim (issue 4): (a) at most twice (b).
//
//   build/bin/bench_who_is_listening [pairs=5000] [repetitions=7]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "labkit/sock_diag.hpp"

using namespace portlab;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

constexpr int max_pairs = 9000;  // bounded: 2 fds per pair, below the usual 20,000 hard limit

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

// Raises the soft RLIMIT_NOFILE to what is needed, never above the hard limit.
bool ensure_fd_limit(rlim_t needed) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
    if (limit.rlim_cur >= needed) return true;
    if (limit.rlim_max < needed) return false;
    limit.rlim_cur = needed;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

Port port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

// fork+exec of argv with stdout to /dev/null; wall time in milliseconds, or -1.
double time_command(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const auto start = Clock::now();
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return -1;
    int status = 0;
    waitpid(pid, &status, 0);
    const auto end = Clock::now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return std::chrono::duration<double, std::milli>(end - start).count();
}

// "proto local remote" for each socket line of `ss -tuan` (no header, no processes).
std::multiset<std::string> ss_keys() {
    std::multiset<std::string> keys;
    std::FILE* pipe = popen("ss -tuanH", "r");
    if (pipe == nullptr) return keys;
    char line[512];
    while (std::fgets(line, sizeof line, pipe) != nullptr) {
        char netid[16], state[32], local[160], remote[160];
        unsigned long rq = 0, sq = 0;
        if (std::sscanf(line, "%15s %31s %lu %lu %159s %159s", netid, state, &rq, &sq, local, remote) == 6)
            keys.insert(std::string(netid) + " " + local + " " + remote);
    }
    pclose(pipe);
    return keys;
}

std::string key_of(const diag::SocketInfo& s) {
    const auto remote = s.remote.port == 0
                            ? (s.remote.address.is_v6() ? "[" + s.remote.address.to_string() + "]" : s.remote.address.to_string()) + ":*"
                            : s.remote.to_string();
    return std::string(to_string(s.protocol)) + " " + s.local.to_string() + " " + remote;
}

}  // namespace

int main(int argc, char** argv) {
    const int pairs = std::clamp(argc > 1 ? std::atoi(argv[1]) : 5000, 1, max_pairs);
    const int repetitions = std::clamp(argc > 2 ? std::atoi(argv[2]) : 7, 1, 101);
    if (!ensure_fd_limit(static_cast<rlim_t>(2 * pairs + 100))) {
        fmt::print(stderr, "cannot raise RLIMIT_NOFILE to {}\n", 2 * pairs + 100);
        return 1;
    }

    // --- 10,000 sockets: 5,000 connections over loopback -------------------------------
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        listen(listener, 4096) != 0) {
        std::perror("listener");
        return 1;
    }
    address.sin_port = htons(port_of(listener));
    std::vector<int> fds{listener};
    for (int i = 0; i < pairs; ++i) {
        const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (client < 0 || connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            std::perror("connect");
            return 1;
        }
        const int accepted = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (accepted < 0) {
            std::perror("accept");
            return 1;
        }
        fds.push_back(client);
        fds.push_back(accepted);
    }
    fmt::print("open: {} TCP sockets of ours (1 listener + {} connected pairs) on 127.0.0.1:{}\n", fds.size(), pairs,
               port_of(listener));

    // --- Same sockets? (untimed) ----------------------------------------------------------
    diag::Query all;
    all.listening_only = false;
    const auto ours = diag::list_sockets(all);
    if (!ours) {
        fmt::print(stderr, "list_sockets: {}\n", ours.error().message);
        return 1;
    }
    std::multiset<std::string> our_keys;
    std::size_t owned_by_us = 0;
    for (const auto& s : *ours) {
        our_keys.insert(key_of(s));
        if (std::any_of(s.owners.begin(), s.owners.end(), [](const auto& o) { return o.pid == getpid(); })) ++owned_by_us;
    }
    const auto their_keys = ss_keys();
    fmt::print("list_sockets: {} sockets ({} owned by this pid); ss -tuan: {} sockets; same set: {}\n", ours->size(),
               owned_by_us, their_keys.size(), our_keys == their_keys ? "yes" : "NO");

    // --- Timing ---------------------------------------------------------------------------
    std::vector<double> ours_ms, ss_ms, lab_ms, lab_text_ms;
    const auto lab = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "lab07_who_is_listening").string();
    const bool have_lab = std::filesystem::exists(lab);
    for (int r = 0; r < repetitions; ++r) {
        const auto start = Clock::now();
        const auto listed = diag::list_sockets(all);
        ours_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (!listed) return 1;
        ss_ms.push_back(time_command({"ss", "-tuanp"}));
        if (have_lab) lab_ms.push_back(time_command({lab, "--all", "--json"}));
        if (have_lab) lab_text_ms.push_back(time_command({lab, "--all", "--no-color"}));
    }
    const double a = median(ours_ms), b = median(ss_ms);
    fmt::print("median of {}: list_sockets(all, with processes) {:.1f} ms; ss -tuanp {:.1f} ms; ratio {:.2f} (aim <= 2)\n",
               repetitions, a, b, a / b);
    if (have_lab)
        fmt::print("median of {}: lab07_who_is_listening --all --json {:.1f} ms; --all (text) {:.1f} ms\n", repetitions,
                   median(lab_ms), median(lab_text_ms));

    for (const int fd : fds) close(fd);
    return our_keys == their_keys ? 0 : 1;
}
