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

// Whether any process on the machine is in the network namespace `inode`.
bool netns_held(ino_t inode) {
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        if (netns_of(static_cast<pid_t>(std::stol(name))) == inode) return true;
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
    const int status = lab_run.run_while([&](int pause) {
        if (pause < 2) return true;  // at pause 2 the network is up and a step has run
        std::vector<pid_t> all;
        add_descendants(lab_run.pid(), all);
        for (const pid_t pid : all)
            if (pid != lab_run.pid()) started.push_back(pid);
        for (const pid_t pid : started)
            if (const ino_t inode = netns_of(pid); inode != 0 && inode != own_netns) namespaces.insert(inode);
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
        CHECK_FALSE(netns_held(inode));
    }
}
