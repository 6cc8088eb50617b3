// Issue 11: every lab that builds a network of namespaces leaves nothing behind when it is
// interrupted, by Ctrl-C (SIGINT) or by SIGKILL, which no handler can catch; here while it
// waits at a pause (tests/test_lab16_nat.cpp interrupts one in the middle of a step). The nodes are
// processes that hold a network namespace each (labkit/network.hpp); a namespace, and every
// veth, route and nft rule in it, vanishes with its last process. So the witness is the
// kernel's process table: every process the lab started, seen in /proc while it paused, is
// gone a moment after the signal, and so is every network namespace they held.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernel_vs_replay.hpp"
#include "support.hpp"

namespace test = portlab::test;

namespace {

// `pid` and all its descendants, from /proc/PID/task/TID/children.
void add_descendants(pid_t pid, std::vector<pid_t>& found) {
    found.push_back(pid);
    std::error_code ignored;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ignored)) {
        std::ifstream children(task.path() / "children");
        for (pid_t child; children >> child;) add_descendants(child, found);
    }
}

// The inode of a process's network namespace, or 0 when it cannot be read.
ino_t netns_of(pid_t pid) {
    struct stat status{};
    return stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &status) == 0 ? status.st_ino : 0;
}

// When a process started, in clock ticks since boot (/proc/PID/stat, field 22, after the
// ")" that ends the name); 0 when it is gone.
unsigned long long start_time_of(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    const std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const auto name_end = stat.rfind(')');
    if (name_end == std::string::npos) return 0;
    std::istringstream fields(stat.substr(name_end + 2));
    std::string field;
    for (int i = 3; i < 22 && fields >> field;) ++i;  // fields 3..21: state ... itrealvalue
    unsigned long long ticks = 0;
    fields >> ticks;
    return ticks;
}

// Now, in the same clock ticks since boot (/proc/uptime).
unsigned long long ticks_since_boot() {
    std::ifstream uptime("/proc/uptime");
    double seconds = 0;
    uptime >> seconds;
    return static_cast<unsigned long long>(seconds * static_cast<double>(sysconf(_SC_CLK_TCK)));
}

// Whether a process that started before `before` (clock ticks since boot) is in the network
// namespace `inode`. nsfs numbers namespaces from an IDA that gives a freed number out again at
// once, so a namespace made after the lab died (a test running beside this one) may bear the
// same inode: its processes started later, and do not count.
bool netns_held(ino_t inode, unsigned long long before) {
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto pid = static_cast<pid_t>(std::stol(name));
        if (netns_of(pid) != inode) continue;
        const auto started = start_time_of(pid);
        if (started != 0 && started <= before) return true;
    }
    return false;
}

bool gone_within(pid_t pid, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (kill(pid, 0) == -1 && errno == ESRCH) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

}  // namespace

TEST_CASE("every lab with a network of namespaces, interrupted by SIGINT or SIGKILL, leaves no process and no namespace",
          "[netns][cleanup]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto lab = GENERATE(as<std::string>{}, "lab14_router", "lab15_dual_stack", "lab16_nat", "lab17_port_forwarding",
                              "lab18_stateful_firewall", "lab19_real_services");
    const int signal_number = GENERATE(SIGINT, SIGKILL);
    CAPTURE(lab, signal_number);
    const ino_t own_netns = netns_of(getpid());
    test::PausedRun lab_run(test::bin_path(lab), {}, std::chrono::seconds(60));
    std::vector<pid_t> started;
    std::set<ino_t> namespaces;
    unsigned long long killed_at = 0;
    const int status = lab_run.run_while([&](int pause) {
        if (pause < 2) return true;  // at pause 2 the network is up and a step has run
        std::vector<pid_t> all;
        add_descendants(lab_run.pid(), all);
        for (const pid_t pid : all)
            if (pid != lab_run.pid()) started.push_back(pid);
        for (const pid_t pid : started)
            if (const ino_t inode = netns_of(pid); inode != 0 && inode != own_netns) namespaces.insert(inode);
        killed_at = ticks_since_boot();
        kill(lab_run.pid(), signal_number);
        return false;
    });
    INFO(lab_run.stderr_text());
    CHECK(WIFSIGNALED(status));  // ended by the signal, Ctrl-C's too (the lab kit re-raises it)
    REQUIRE_FALSE(started.empty());
    CHECK_FALSE(namespaces.empty());
    for (const pid_t pid : started) {
        CAPTURE(pid);
        CHECK(gone_within(pid, std::chrono::seconds(5)));
    }
    for (const ino_t inode : namespaces) {
        CAPTURE(inode);
        CHECK_FALSE(netns_held(inode, killed_at));
    }
}
