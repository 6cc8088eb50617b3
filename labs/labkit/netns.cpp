#include "labkit/netns.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace portlab {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The most a body may send back; anything a lab reports fits easily.
constexpr std::size_t max_reply_bytes = std::size_t{16} << 20;

std::string errno_text(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

// ---- in the child ---------------------------------------------------------------------

// Writes `text` to a file in full; /proc files take one write().
Result<void> write_file(const char* path, std::string_view text) {
    const int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno_text(std::string("open ") + path));
    const auto written = write(fd, text.data(), text.size());
    const int saved = errno;
    close(fd);
    if (written != static_cast<ssize_t>(text.size())) {
        errno = saved;
        return fail(errno_text(std::string("write ") + path));
    }
    return {};
}

// user_namespaces(7): an unprivileged process must deny setgroups before it may write
// gid_map; then it may map exactly its own uid and gid. We map them to 0 inside, which
// makes the body root of the namespace, with every capability over the new network.
Result<void> map_ids(uid_t outer_uid, gid_t outer_gid) {
    if (auto denied = write_file("/proc/self/setgroups", "deny"); !denied) return denied;
    if (auto uid = write_file("/proc/self/uid_map", "0 " + std::to_string(outer_uid) + " 1"); !uid) return uid;
    return write_file("/proc/self/gid_map", "0 " + std::to_string(outer_gid) + " 1");
}

// /proc/sys/net shows the network namespace of the process that opens it, so these
// writes change only the private namespace.
Result<void> apply_settings(const NetnsSettings& settings) {
    if (settings.ephemeral_range) {
        const auto text = std::to_string(settings.ephemeral_range->low) + " " + std::to_string(settings.ephemeral_range->high);
        if (auto done = write_file(ephemeral_range_path, text); !done) return done;
    }
    if (settings.unprivileged_port_start) {
        if (auto done = write_file(unprivileged_port_start_path, std::to_string(*settings.unprivileged_port_start)); !done)
            return done;
    }
    return {};
}

// ---- the veth neighbour ---------------------------------------------------------------

// The neighbour's namespace, for in_neighbour_netns(): a descriptor of /proc/N/ns/net.
int neighbour_netns_fd = -1;

// The neighbour: a child that unshares a network namespace of its own (it is root of the
// user namespace, so it may), brings its lo up, says so through `ready`, and then only
// waits for the pipe `hold` to close (the body's process ended) to exit.
pid_t start_neighbour(int ready, int hold) {
    const pid_t child = fork();
    if (child != 0) return child;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    char byte = unshare(CLONE_NEWNET) == 0 && bring_loopback_up() ? 'y' : 'n';
    (void)!write(ready, &byte, 1);
    while (read(hold, &byte, 1) > 0) {
    }
    _exit(0);
}

Result<void> join_neighbour_by_veth() {
    int ready[2], hold[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0) return fail(errno_text("pipe"));
    const pid_t neighbour = start_neighbour(ready[1], hold[0]);
    if (neighbour < 0) return fail(errno_text("fork"));
    close(ready[1]);
    close(hold[0]);  // hold[1] stays open in this process until it ends
    char byte = 'n';
    if (read(ready[0], &byte, 1) != 1 || byte != 'y') return fail("the neighbour's namespace could not be made");
    close(ready[0]);
    const auto there = "/proc/" + std::to_string(neighbour) + "/ns/net";
    neighbour_netns_fd = open(there.c_str(), O_RDONLY | O_CLOEXEC);
    if (neighbour_netns_fd < 0) return fail(errno_text("open " + there));
    if (auto made = run_ip({"link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
                            std::to_string(neighbour)}); !made)
        return made;
    if (auto addressed = run_ip({"addr", "add", veth_own_address.to_string() + "/24", "dev", "veth0"}); !addressed)
        return addressed;
    if (auto up = run_ip({"link", "set", "veth0", "up"}); !up) return up;
    Result<void> far_side;
    auto entered = in_neighbour_netns([&] {
        far_side = run_ip({"addr", "add", neighbour_address.to_string() + "/24", "dev", "veth1"});
        if (far_side) far_side = run_ip({"link", "set", "veth1", "up"});
    });
    if (!entered) return entered;
    return far_side;
}

// Empties every capability set of this process: the bounding set first (that needs
// CAP_SETPCAP, which we still hold), then ambient, then inheritable/permitted/effective.
Result<void> drop_all_capabilities() {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capset, &header, data) != 0) return fail(errno_text("capset"));
    return {};
}

// root -> nobody (65534). Groups first: after setresuid we could no longer change them.
Result<void> become_nobody() {
    if (geteuid() != 0) return {};
    if (setgroups(0, nullptr) != 0) return fail(errno_text("setgroups"));
    if (setresgid(65534, 65534, 65534) != 0) return fail(errno_text("setresgid"));
    if (setresuid(65534, 65534, 65534) != 0) return fail(errno_text("setresuid"));
    return {};
}

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const auto written = write(fd, text.data(), text.size());
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(written));
    }
}

// The child's reply: {"ok": body's JSON}, {"unavailable": reason} or {"error": reason}.
[[noreturn]] void reply_and_exit(int fd, const json& reply) {
    write_all(fd, reply.dump(-1, ' ', false, json::error_handler_t::replace));  // never throws on bad UTF-8
    close(fd);
    std::cout.flush();  // a body that printed anyway: _exit would drop it
    _exit(0);
}

enum class ChildKind { private_netns, nobody };

[[noreturn]] void child_main(int fd, ChildKind kind, const NetnsSettings& settings,
                             const std::function<json()>& body, uid_t outer_uid, gid_t outer_gid) {
    // Die with the parent, so a killed lab never leaves a child behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (kind == ChildKind::private_netns) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) reply_and_exit(fd, {{"unavailable", errno_text("unshare")}});
        if (auto mapped = map_ids(outer_uid, outer_gid); !mapped)
            reply_and_exit(fd, {{"unavailable", mapped.error().message}});
        if (auto up = bring_loopback_up(); !up) reply_and_exit(fd, {{"unavailable", up.error().message}});
        if (auto applied = apply_settings(settings); !applied)
            reply_and_exit(fd, {{"error", "setting up the namespace: " + applied.error().message}});
        if (settings.veth_neighbour) {
            if (auto joined = join_neighbour_by_veth(); !joined)
                reply_and_exit(fd, {{"unavailable", "the veth link to a second namespace: " + joined.error().message}});
        }
        if (settings.drop_capabilities) {
            if (auto dropped = drop_all_capabilities(); !dropped) reply_and_exit(fd, {{"error", dropped.error().message}});
        }
    } else {
        if (auto dropped = become_nobody(); !dropped) reply_and_exit(fd, {{"error", dropped.error().message}});
    }
    try {
        reply_and_exit(fd, {{"ok", body()}});
    } catch (const std::exception& error) {
        reply_and_exit(fd, {{"error", error.what()}});
    } catch (...) {
        reply_and_exit(fd, {{"error", "unknown exception"}});
    }
}

// ---- in the parent ------------------------------------------------------------------

// Reads the child's reply until it closes the pipe or the deadline passes.
// Returns false on timeout.
bool read_reply(int fd, Clock::time_point deadline, std::string& reply) {
    char buffer[65536];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd waiting{fd, POLLIN, 0};
        const int ready = poll(&waiting, 1, static_cast<int>(left));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return ready == 0 ? false : true;
        const auto count = read(fd, buffer, sizeof buffer);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) return true;  // EOF: the child is done (or died)
        if (reply.size() < max_reply_bytes) reply.append(buffer, static_cast<std::size_t>(count));
    }
}

// Reaps the child, waiting until the deadline, then killing it.
int reap(pid_t child, Clock::time_point deadline) {
    int status = 0;
    for (;;) {
        const pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) return status;
        if (done < 0 && errno != EINTR) return -1;
        if (Clock::now() >= deadline) {
            kill(child, SIGKILL);
            while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
            }
            return status;
        }
        usleep(1000);
    }
}

Result<json> run_child(ChildKind kind, const std::function<json()>& body, const NetnsSettings& settings,
                       std::chrono::milliseconds limit) {
    const std::string unavailable = "private network namespaces are unavailable here: ";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(errno_text("pipe"));
    const uid_t outer_uid = geteuid();
    const gid_t outer_gid = getegid();
    std::cout.flush();
    std::cerr.flush();
    const pid_t child = fork();
    if (child < 0) {
        close(fds[0]);
        close(fds[1]);
        return fail(errno_text("fork"));
    }
    if (child == 0) {
        close(fds[0]);
        child_main(fds[1], kind, settings, body, outer_uid, outer_gid);
    }
    close(fds[1]);
    const auto deadline = Clock::now() + limit;
    std::string reply;
    const bool in_time = read_reply(fds[0], deadline, reply);
    close(fds[0]);
    const int status = reap(child, in_time ? deadline + std::chrono::milliseconds(500) : Clock::now());
    const auto ms = std::to_string(limit.count());
    if (!in_time) return fail("the part run in a child process took longer than " + ms + " ms and was stopped");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
        // SIGPIPE: the child's narration met a closed standard output (`lab09 | head -1`),
        // the same failure the parent reports for its own stdout (standard_output.hpp).
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
            return fail(std::string("cannot write to standard output: ") + std::strerror(EPIPE));
        if (WIFSIGNALED(status))
            return fail(std::string("the child process died: ") + strsignal(WTERMSIG(status)));
        return fail("the child process ended without an answer");
    }
    const auto parsed = json::parse(reply, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) return fail("the child process sent an unreadable answer");
    if (parsed.contains("ok")) return parsed["ok"];
    if (parsed.contains("unavailable")) return fail(unavailable + parsed["unavailable"].get<std::string>());
    if (parsed.contains("error") && parsed["error"].is_string()) return fail(parsed["error"].get<std::string>());
    return fail("the child process sent an unreadable answer");
}

}  // namespace

// A new network namespace has only `lo`, and it is down: without this even 127.0.0.1
// is unreachable (connect answers ENETUNREACH).
Result<void> bring_loopback_up() {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(errno_text("socket"));
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    Result<void> result;
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
        result = fail(errno_text("SIOCGIFFLAGS lo"));
    } else {
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
        if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) result = fail(errno_text("SIOCSIFFLAGS lo up"));
    }
    close(fd);
    return result;
}

// Runs `ip` (iproute2) with these arguments in this process's network namespace and
// waits for it: one "ip link add ... type veth" is far shorter than the netlink messages.
Result<void> run_ip(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), "ip");
    const pid_t child = fork();
    if (child < 0) return fail(errno_text("fork"));
    if (child == 0) {
        std::vector<char*> argv;
        for (auto& argument : arguments) argv.push_back(argument.data());
        argv.push_back(nullptr);
        for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) execv(path, argv.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    std::string command;
    for (const auto& argument : arguments) command += (command.empty() ? "" : " ") + argument;
    return fail(WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "ip (iproute2) not found" : "'" + command + "' failed");
}

Result<void> in_network_namespace(int netns_fd, const std::function<void()>& fn) {
    const int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) return fail(errno_text("open /proc/thread-self/ns/net"));
    if (setns(netns_fd, CLONE_NEWNET) != 0) {
        const auto error = fail(errno_text("setns"));
        close(home);
        return error;
    }
    std::exception_ptr thrown;
    try {
        fn();
    } catch (...) {
        thrown = std::current_exception();
    }
    const bool back = setns(home, CLONE_NEWNET) == 0;
    close(home);
    if (!back) return fail(errno_text("setns back"));
    if (thrown) std::rethrow_exception(thrown);
    return {};
}

Result<void> in_neighbour_netns(const std::function<void()>& fn) {
    if (neighbour_netns_fd < 0) return fail("no veth neighbour: run the body with NetnsSettings::veth_neighbour");
    return in_network_namespace(neighbour_netns_fd, fn);
}

Result<json> run_in_private_netns(const std::function<json()>& body, const NetnsSettings& settings,
                                  std::chrono::milliseconds limit) {
    return run_child(ChildKind::private_netns, body, settings, limit);
}

Result<json> run_as_nobody(const std::function<json()>& body, std::chrono::milliseconds limit) {
    return run_child(ChildKind::nobody, body, {}, limit);
}

Result<void> private_netns_available() {
    auto probe = run_in_private_netns([] { return json(true); }, {}, std::chrono::seconds(5));
    if (!probe) return probe.error();
    return {};
}

}  // namespace portlab
