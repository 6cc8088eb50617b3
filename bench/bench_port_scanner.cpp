// Lab 08's full TCP connect scan against its two yardsticks, in one run:
//   lab     lab08_port_scanner -p- --scan tcp --no-demo --json 127.0.0.1
//   nmap    nmap -sT -p- -T4 127.0.0.1 -oG -
//   loop    bench_connect_loop 1-65535 127.0.0.1   (blocking connect(), the floor)
// Each round runs the three one after another (so a busy moment on the machine hurts all
// three alike); every run is a separate process timed from fork to exit, and bounded by
// timeout(1). The open ports each reports must be the same set, or the run fails.
//
//   bench_port_scanner [ROUNDS]        default 5 rounds; prints a table and the medians
//
// Aims (issue 5): lab faster than nmap; lab within 1.25x of the loop.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

struct Run {
    double wall_ms = 0;
    std::string out;
    int exit_code = -1;
};

Run run(const std::string& command, int limit_seconds) {
    const std::string bounded = "timeout " + std::to_string(limit_seconds) + " " + command + " 2>/dev/null";
    Run result;
    const auto start = std::chrono::steady_clock::now();
    std::FILE* pipe = ::popen(bounded.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 65536> buffer{};
    std::size_t count = 0;
    while ((count = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), count);
    const int status = ::pclose(pipe);
    result.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::set<int> lab_open(const std::string& out) {
    std::set<int> open;
    const auto facts = nlohmann::json::parse(out);
    for (const auto& port : facts.at("scans").at(0).at("ports"))
        if (port.at("state") == "open") open.insert(port.at("port").get<int>());
    return open;
}

std::set<int> nmap_open(const std::string& out) {
    std::set<int> open;
    const std::regex entry(R"((\d+)/open/tcp/)");
    for (std::sregex_iterator it(out.begin(), out.end(), entry), end; it != end; ++it) open.insert(std::stoi((*it)[1]));
    return open;
}

std::set<int> loop_open(const std::string& out) {
    std::set<int> open;
    const auto facts = nlohmann::json::parse(out);  // named: a range-for would not keep a temporary alive
    for (const auto& port : facts.at("open")) open.insert(port.get<int>());
    return open;
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const auto n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string describe(const std::set<int>& ports) {
    std::string text;
    for (const int port : ports) text += (text.empty() ? "" : ",") + std::to_string(port);
    return "{" + text + "}";
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 50) {
        std::fprintf(stderr, "usage: bench_port_scanner [ROUNDS 1-50]\n");
        return 2;
    }
    const auto bin = std::filesystem::canonical("/proc/self/exe").parent_path();
    const std::string lab = (bin / "lab08_port_scanner").string() + " -p- --scan tcp --no-demo --json 127.0.0.1";
    const std::string nmap = "nmap -sT -p- -T4 127.0.0.1 -oG -";
    const std::string loop = (bin / "bench_connect_loop").string() + " 1-65535 127.0.0.1";
    std::printf("lab:  %s\nnmap: %s\nloop: %s\n\n", lab.c_str(), nmap.c_str(), loop.c_str());
    std::printf("%-6s %12s %12s %12s %14s   %s\n", "round", "lab ms", "nmap ms", "loop ms", "lab scan ms", "open ports");

    std::vector<double> lab_ms, nmap_ms, loop_ms, lab_inner_ms;
    bool same = true;
    for (int round = 1; round <= rounds; ++round) {
        const auto a = run(lab, 120);
        const auto b = run(nmap, 300);
        const auto c = run(loop, 120);
        if (a.exit_code != 0 || b.exit_code != 0 || c.exit_code != 0) {
            std::fprintf(stderr, "a run failed (exit codes lab %d, nmap %d, loop %d)\n", a.exit_code, b.exit_code, c.exit_code);
            return 1;
        }
        const auto open_lab = lab_open(a.out);
        const auto open_nmap = nmap_open(b.out);
        const auto open_loop = loop_open(c.out);
        const bool equal = open_lab == open_nmap && open_lab == open_loop;
        same = same && equal;
        const double inner = nlohmann::json::parse(a.out).at("scans").at(0).at("elapsed_ms").get<double>();
        lab_ms.push_back(a.wall_ms);
        nmap_ms.push_back(b.wall_ms);
        loop_ms.push_back(c.wall_ms);
        lab_inner_ms.push_back(inner);
        std::printf("%-6d %12.1f %12.1f %12.1f %14.1f   %s%s\n", round, a.wall_ms, b.wall_ms, c.wall_ms, inner,
                    describe(open_lab).c_str(),
                    equal ? "" : ("  DIFFER: nmap " + describe(open_nmap) + " loop " + describe(open_loop)).c_str());
    }
    const double lab_median = median(lab_ms);
    const double nmap_median = median(nmap_ms);
    const double loop_median = median(loop_ms);
    std::printf("%-6s %12.1f %12.1f %12.1f %14.1f\n\n", "median", lab_median, nmap_median, loop_median, median(lab_inner_ms));
    std::printf("lab / nmap = %.2f   (aim: below 1)\n", lab_median / nmap_median);
    std::printf("lab / loop = %.2f   (aim: at most 1.25)\n", lab_median / loop_median);
    std::printf("open sets %s\n", same ? "equal in every round" : "DIFFER");
    return same ? 0 : 1;
}
