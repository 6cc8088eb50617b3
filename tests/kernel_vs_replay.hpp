#pragma once
// Does a lab's trace tell what the kernel had? A lab runs with --step --pause-on-stdin
// --trace FILE; at each pause (and once after it exits) the test rebuilds the world from
// the trace so far with the replay model (replay::State, as portlab-viz does) and asks
// the kernel itself, over netlink sock_diag as ss does, which sockets the lab's process
// holds and in which state. Every socket one side lists must be in the other, with the
// same 4-tuple and state.
//
//   test::PausedRun run(lab_path, {"--port", "0"}, trace_path);
//   test::KernelWitness kernel(run.pid());
//   run.at_each_pause([&](int pause) { CHECK(test::differences(test::replay_of(trace_path), kernel.now()).empty()); });
//
// The lab's own words (--json, narration) play no part: the truth is the kernel's.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "labkit/sock_diag.hpp"
#include "portlab/net.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/output_file.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"

namespace portlab::test {

// A lab started with --step --pause-on-stdin: it stops before each step and says so on
// stderr ("paused: ..."), and goes on when a line arrives on its stdin. Bounded: after
// `timeout` the lab is killed and the run fails. Its stdout goes to `stdout_path` (a
// --json document, for a test to read after the run).
class PausedRun {
public:
    PausedRun(const std::string& binary, std::vector<std::string> args, std::chrono::seconds timeout = std::chrono::seconds(60),
              const std::string& stdout_path = "/dev/null")
        : timeout_(timeout) {
        args.insert(args.begin(), {binary, "--step", "--pause-on-stdin"});
        int to_lab[2], from_lab[2];
        REQUIRE(pipe(to_lab) == 0);
        REQUIRE(pipe(from_lab) == 0);
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            dup2(to_lab[0], STDIN_FILENO);
            dup2(from_lab[1], STDERR_FILENO);
            const int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            dup2(out, STDOUT_FILENO);
            close(to_lab[1]);
            close(from_lab[0]);
            std::vector<char*> argv;
            for (auto& arg : args) argv.push_back(arg.data());
            argv.push_back(nullptr);
            execv(binary.c_str(), argv.data());
            _exit(127);
        }
        close(to_lab[0]);
        close(from_lab[1]);
        to_lab_ = to_lab[1];
        from_lab_ = from_lab[0];
    }
    ~PausedRun() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (to_lab_ >= 0) close(to_lab_);
        if (from_lab_ >= 0) close(from_lab_);
    }
    PausedRun(const PausedRun&) = delete;
    PausedRun& operator=(const PausedRun&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    // Runs the lab to its end, calling at_pause(n) at its n-th pause (1, 2, ...) while it
    // waits. Returns the lab's exit status (-1 when killed); stderr() holds what it said.
    int run(const std::function<void(int)>& at_pause) {
        const int status = drive([&](int pause) {
            at_pause(pause);
            return true;
        });
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    [[nodiscard]] const std::string& stderr_text() const noexcept { return stderr_; }

    // As run(), but `at_pause` says whether the lab may go on (true) or is left unanswered
    // (false: the caller has, say, sent it a signal). Returns the wait status.
    int run_while(const std::function<bool(int)>& at_pause) { return drive(at_pause); }

    // Runs the lab to its `pause`-th pause and sends it `signal` there (as Ctrl-C would),
    // then waits for it to end, reading what it says on stderr. Returns the signal that ended
    // it, or -1 when it exited by itself or the pause never came.
    int interrupt_at(int pause, int signal) {
        const int status = drive([&](int n) {
            if (n < pause) return true;
            kill(pid_, signal);
            return false;
        });
        return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
    }

private:
    // Reads the lab's stderr to its end (bounded by the timeout, then SIGKILL); at each pause
    // calls at_pause(n), and lets the lab go on (a line on its stdin) while it returns true.
    // Returns the wait status.
    int drive(const std::function<bool(int)>& at_pause) {
        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        std::string pending;
        int pauses = 0;
        bool answering = true;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd wait{from_lab_, POLLIN, 0};
            if (poll(&wait, 1, static_cast<int>(left.count())) <= 0) break;
            char buffer[4096];
            const auto count = read(from_lab_, buffer, sizeof buffer);
            if (count <= 0) break;  // end of file: the lab exited
            pending.append(buffer, static_cast<std::size_t>(count));
            for (auto end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
                const auto line = pending.substr(0, end);
                pending.erase(0, end + 1);
                stderr_ += line + "\n";
                if (!answering || line.rfind("paused:", 0) != 0) continue;
                answering = at_pause(++pauses);
                if (answering) REQUIRE(write(to_lab_, "\n", 1) == 1);
            }
        }
        if (std::chrono::steady_clock::now() >= deadline) kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        exited_ = true;
        return status;
    }

    std::chrono::seconds timeout_;
    pid_t pid_ = -1;
    int to_lab_ = -1, from_lab_ = -1;
    bool exited_ = false;
    std::string stderr_;
};

// One socket, in the words both sides can say: protocol, local, remote (none for a
// listener or an unconnected UDP socket) and state as ss spells it in RFC words
// ("LISTEN", "ESTABLISHED", "TIME-WAIT"; UDP: "UNCONN" or "ESTAB").
struct SocketView {
    Protocol protocol = Protocol::tcp;
    Endpoint local;
    std::optional<Endpoint> remote;
    std::string state;
    [[nodiscard]] std::string key() const {
        return std::string(to_string(protocol)) + " " + local.to_string() + " -> " + (remote ? remote->to_string() : "*");
    }
};

// Where a lab's --trace FILE is while the lab runs: it writes a temporary file beside FILE
// (portlab/output_file.hpp's ".FILE.partial-XXXXXX") and renames it onto FILE when it ends.
inline std::string trace_so_far(const std::string& trace_path) {
    const std::filesystem::path prefix = partial_prefix(trace_path);
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(prefix.parent_path(), ignored))
        if (entry.path().filename().string().starts_with(prefix.filename().string())) return entry.path().string();
    return trace_path;
}

// A lab stopped with `signal` at its `pause`-th pause, run with --trace FILE over an older
// FILE: FILE holds the events so far and the reader accepts it whole (so it ends on a whole
// event), and the folder holds nothing else (no temporary file left behind). Returns it.
inline trace::Trace interrupted_run(const std::string& binary, std::vector<std::string> args, int pause,
                                    int signal = SIGINT) {
    const TempDir dir;
    const std::string path = dir.file("run.jsonl");
    std::ofstream(path) << "the old file\n";
    args.insert(args.end(), {"--trace", path});
    PausedRun run(binary, args);
    CHECK(run.interrupt_at(pause, signal) == signal);  // it died of the signal, as without a handler
    INFO(run.stderr_text());
    const auto read = trace::read_trace_file(path);
    INFO((read ? std::string() : read.error().message));
    REQUIRE(read.has_value());
    std::vector<std::string> left;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) left.push_back(entry.path().filename().string());
    CHECK(left == std::vector<std::string>{"run.jsonl"});
    return *read;
}

// The world after every event the trace file holds so far (the lab's partial file while it runs).
inline replay::State replay_of(const std::string& trace_path) {
    const auto trace = trace::read_trace_file(trace_so_far(trace_path));
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace.has_value());
    replay::State state;
    for (const auto& event : trace->events) state.apply(event);
    return state;
}

// The sockets the replayed world holds that the kernel would list: TCP sockets in a
// state other than CLOSED (sock_diag does not list a socket only created or bound),
// every bound UDP socket. Hosts in `elsewhere` (another namespace) are left out.
inline std::vector<SocketView> replayed_sockets(const replay::State& state, const std::set<std::string>& elsewhere = {}) {
    std::vector<SocketView> views;
    for (const auto& host : state.hosts()) {
        if (elsewhere.count(host.name)) continue;
        for (const auto& [id, socket] : host.sockets) {
            if (!socket.local) continue;
            SocketView view{socket.protocol, *socket.local, socket.remote, {}};
            if (socket.protocol == Protocol::udp) {
                if (socket.closed_by_app) continue;
                view.state = socket.remote ? "ESTAB" : "UNCONN";
            } else {
                auto state_now = socket.tcp_state;
                if (!socket.state_reported && socket.listening) state_now = TcpState::listen;
                if (state_now == TcpState::closed) continue;
                if (state_now == TcpState::listen) view.remote.reset();
                view.state = std::string(to_string(state_now));
            }
            views.push_back(view);
        }
    }
    return views;
}

// The parent of a process: the field after the state in /proc/PID/stat, after the ")" that
// ends the name (which may hold spaces). -1 when the process is gone.
inline pid_t parent_of(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto end = text.rfind(')');
    if (end == std::string::npos) return -1;
    std::istringstream fields(text.substr(end + 1));
    std::string state;
    pid_t parent = -1;
    fields >> state >> parent;
    return parent;
}

// The kernel's side: the sockets the lab's process holds, and those it held that the
// kernel keeps after close() (TIME-WAIT, FIN-WAIT-2, LAST-ACK belong to no process).
class KernelWitness {
public:
    // `ports`: connections with an end on one of these count as the lab's even when the
    // witness never saw the process hold them (opened and closed between two looks, and
    // kept by the kernel in TIME-WAIT), for a lab whose server ports the test chose.
    // `children`: sockets held by the lab's child processes count as the lab's too (lab13's
    // server processes, forked by the lab itself).
    explicit KernelWitness(pid_t pid, bool udp = false, std::set<Port> ports = {}, bool children = false)
        : pid_(pid), udp_(udp), ports_(std::move(ports)), children_(children) {}

    std::vector<SocketView> now() {
        diag::Query query;
        query.udp = udp_;
        const auto sockets = diag::list_sockets(query);
        INFO((sockets ? std::string() : sockets.error().message));
        REQUIRE(sockets.has_value());
        // The lab's listeners: a connection the kernel queued for one (no file yet, so no
        // owner: accept() has not returned it) is the lab's too, as ss shows it.
        std::vector<Endpoint> listeners;
        for (const auto& socket : *sockets)
            if (owned_by_lab(socket) && socket.tcp_state() == TcpState::listen) listeners.push_back(socket.local);
        std::vector<SocketView> views;
        for (const auto& socket : *sockets) {
            const bool owned = owned_by_lab(socket);
            const bool connected = socket.remote.port != 0;
            const auto tuple = std::make_tuple(socket.protocol, socket.local, socket.remote);
            if (owned && connected) held_.insert(tuple);
            const bool on_ports = ports_.count(socket.local.port) || ports_.count(socket.remote.port);
            const bool queued = connected && socket.inode == 0 && waits_for_accept(socket) && serves(listeners, socket.local);
            if (!owned && !queued && !(connected && (held_.count(tuple) || on_ports))) continue;
            SocketView view{socket.protocol, socket.local, std::nullopt, {}};
            if (connected) view.remote = socket.remote;
            if (socket.protocol == Protocol::udp) {
                view.state = connected ? "ESTAB" : "UNCONN";
            } else {
                const auto state = socket.tcp_state();
                if (!state) continue;  // TCP_NEW_SYN_RECV: a half-open request, not a socket yet
                view.state = std::string(to_string(*state));
            }
            views.push_back(view);
        }
        return views;
    }

private:
    [[nodiscard]] bool owned_by_lab(const diag::SocketInfo& socket) const {
        for (const auto& owner : socket.owners)
            if (owner.pid == pid_ || (children_ && parent_of(owner.pid) == pid_)) return true;
        return false;
    }
    static bool waits_for_accept(const diag::SocketInfo& socket) {
        const auto state = socket.tcp_state();
        return state == TcpState::syn_received || state == TcpState::established || state == TcpState::close_wait;
    }
    static bool serves(const std::vector<Endpoint>& listeners, const Endpoint& local) {
        for (const auto& listener : listeners)
            if (listener.port == local.port && (listener.address == local.address || listener.address.is_unspecified()))
                return true;
        return false;
    }

    pid_t pid_;
    bool udp_;
    std::set<Port> ports_;
    bool children_ = false;
    std::set<std::tuple<Protocol, Endpoint, Endpoint>> held_;  // connections the process held at some point
};

// What one side lists and the other does not, or lists in another state, in sentences.
// A connection still waiting in a listener's accept queue belongs to no process yet, so
// the witness does not list it: the lab cannot know it before accept() returns it.
inline std::vector<std::string> differences(const std::vector<SocketView>& replayed, const std::vector<SocketView>& kernel) {
    std::map<std::string, std::string> in_replay, in_kernel;
    for (const auto& view : replayed) in_replay[view.key()] = view.state;
    for (const auto& view : kernel) in_kernel[view.key()] = view.state;
    std::vector<std::string> found;
    for (const auto& [key, state] : in_kernel) {
        const auto other = in_replay.find(key);
        if (other == in_replay.end())
            found.push_back("the kernel lists " + key + " in " + state + ", but the replayed trace has no such socket");
        else if (other->second != state)
            found.push_back(key + ": should have had state = " + state + " (the kernel's), but instead the trace says " +
                            other->second);
    }
    for (const auto& [key, state] : in_replay)
        if (!in_kernel.count(key))
            found.push_back("the replayed trace has " + key + " in " + state + ", but the kernel lists no such socket");
    return found;
}

// Each difference as its own failed CHECK, so a failure names every socket that is off.
inline void check_same_sockets(const std::vector<SocketView>& replayed, const std::vector<SocketView>& kernel,
                               const std::string& when) {
    INFO("at " << when);
    for (const auto& difference : differences(replayed, kernel)) {
        INFO(difference);
        CHECK(false);
    }
}

// Runs a PausedRun to its end; at each pause holds the replayed trace so far to the
// kernel (hosts in `elsewhere` left out). Requires exit 0; returns how many sockets each
// pause compared, for the test to check the story's shape.
inline std::vector<std::size_t> compare_at_each_pause(PausedRun& run, KernelWitness& kernel, const std::string& trace_path,
                                                      const std::set<std::string>& elsewhere = {}) {
    std::vector<std::size_t> compared;
    const int status = run.run([&](int pause) {
        const auto replayed = replayed_sockets(replay_of(trace_path), elsewhere);
        check_same_sockets(replayed, kernel.now(), "the pause before step " + std::to_string(pause + 1));
        compared.push_back(replayed.size());
    });
    INFO(run.stderr_text());
    REQUIRE(status == 0);
    return compared;
}

}  // namespace portlab::test
