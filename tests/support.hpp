#pragma once
// What several tests need: run a command with a time limit and capture what it
// printed, check a peer tool is installed, and a temporary directory that cleans
// itself up. Every command goes through timeout(1), so no test can hang.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "portlab/trace.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <cstdint>
#include <string>
#include <utility>
#include <system_error>
#include <vector>

namespace portlab::test {

// Single-quotes a word for /bin/sh.
inline std::string shell_quote(const std::string& text) {
    std::string quoted = "'";
    for (const char c : text) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

// A directory under $TMPDIR, removed with everything in it when the test ends.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "portlab_test_XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// One file path in a fresh temporary directory; both go when the test ends.
class TempFile {
public:
    explicit TempFile(const std::string& name) : path(dir_.file(name)) {}

private:
    TempDir dir_;  // declared first: path is made from it

public:
    const std::string path;
};

struct CommandResult {
    int exit_code = -1;  // -1 when killed by a signal (timeout(1) sends SIGTERM, then exits 124)
    std::string out;
    std::string err;
};

// Runs `command` with /bin/sh under timeout(1), stdin from /dev/null; keeps at most
// 4 MiB of stdout and all of stderr.
inline CommandResult run_command(const std::string& command, int timeout_seconds = 60) {
    const TempDir scratch;
    const std::string err_path = scratch.file("stderr");
    const std::string wrapped = "timeout " + std::to_string(timeout_seconds) + " sh -c " + shell_quote(command) +
                                " </dev/null 2>" + shell_quote(err_path);
    CommandResult result;
    std::FILE* pipe = popen(wrapped.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 4096> buffer{};
    std::size_t count = 0;
    while ((count = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        if (result.out.size() < (std::size_t{4} << 20)) result.out.append(buffer.data(), count);
    const int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream err_file(err_path);
    result.err.assign(std::istreambuf_iterator<char>(err_file), std::istreambuf_iterator<char>());
    return result;
}

inline bool tool_available(const std::string& tool) {
    return run_command("command -v " + shell_quote(tool) + " >/dev/null", 10).exit_code == 0;
}

inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// A program built by this project: build/bin/NAME.
inline std::string bin_path(const std::string& name) { return std::string(PORTLAB_BIN_DIR) + "/" + name; }

// `count` bytes of xorshift32 noise from `seed` written to `path`: no file format's, the same every run.
inline void write_noise(const std::string& path, std::uint32_t seed, int count) {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < count; ++i) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        out.put(static_cast<char>(seed & 0xff));
    }
}

// A command line running portlab-viz ARGUMENTS headless. Every run gets its own X server
// (xvfb-run -a picks a free display number); xvfb-run -a races when two start at once (both
// pick the same number), so runs take turns. LP_NUM_THREADS=0: Mesa's llvmpipe draws on the
// calling thread instead of a pool of its own; the pictures are the same, and under ASan
// LeakSanitizer's exit-time stop-the-world has no driver threads to trip over (its tracer
// crashed once with signal 11 in the sanitizer run).
inline std::string viz_command(const std::string& arguments) {
    REQUIRE(tool_available("xvfb-run"));
    REQUIRE(tool_available("flock"));
    return "flock /tmp/portlab-viz-xvfb.lock env LP_NUM_THREADS=0 xvfb-run -a -s '-screen 0 1280x1024x24' " +
           shell_quote(bin_path("portlab-viz")) + " " + arguments;
}

// A lab binary run the way a student would, bounded by timeout(1).
class LabBinary {
public:
    explicit LabBinary(const std::string& name) : path_(bin_path(name)) {}

    [[nodiscard]] CommandResult run(const std::string& args) const {
        return run_command(shell_quote(path_) + " " + args, 30);
    }
    // Runs with --json, requires exit 0 and returns the parsed document.
    [[nodiscard]] nlohmann::json json(const std::string& args) const {
        const auto result = run("--json " + args);
        INFO("stderr: " << result.err);
        REQUIRE(result.exit_code == 0);
        return nlohmann::json::parse(result.out);
    }

private:
    std::string path_;
};

// The conventions every lab from 02 on follows (issue 4), checked by running its binary:
// --help exits 0; an unknown flag gives one line on stderr and exit 2; a lab with a server
// also refuses a port out of range, a port that is not a number and a non-loopback --bind
// (exit 2, one line); a narrated run with --step, --trace FILE, NO_COLOR unset and stdout
// a pipe ends by itself (stdin is /dev/null, not a terminal, so --step must not wait),
// paints nothing, names a command to look with, and writes a trace the shared reader
// accepts. `run_args` keep that run short; timeout(1) bounds it.
struct LabConventions {
    std::string lab;       // "lab05_udp_datagrams"
    bool has_server;       // whether the lab takes --port, --bind and --allow-non-loopback
    std::string run_args;  // extra arguments for the narrated run
};

inline void check_lab_conventions(const LabConventions& conventions) {
    const std::string bin = shell_quote(bin_path(conventions.lab));
    CAPTURE(conventions.lab);
    {
        const auto help = run_command(bin + " --help", 20);
        CHECK(help.exit_code == 0);
        CHECK(help.out.find("--json") != std::string::npos);
        CHECK(help.out.find("--trace") != std::string::npos);
        CHECK(help.out.find("--step") != std::string::npos);
    }
    std::vector<std::string> bad = {"--no-such-flag"};
    if (conventions.has_server) bad.insert(bad.end(), {"--port 70000", "--port abc", "--port -1", "--bind 10.1.2.3"});
    for (const auto& args : bad) {
        CAPTURE(args);
        const auto result = run_command(bin + " " + args, 20);
        CHECK(result.exit_code == 2);
        CHECK(lines_of(result.err).size() == 1);
        CHECK(result.out.empty());
    }
    const TempFile trace_file("run.jsonl");
    const auto run = run_command("unset NO_COLOR; " + bin + " --step --trace " + shell_quote(trace_file.path) + " " +
                                     conventions.run_args,
                                 60);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out.find('\x1b') == std::string::npos);  // no ANSI colour into a pipe
    CHECK(run.out.find("Step 1:") != std::string::npos);
    CHECK(run.out.find("see it yourself: ") != std::string::npos);
    const auto trace = portlab::trace::read_trace_file(trace_file.path);
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace.has_value());
    CHECK(trace->header.source == "lab");
    CHECK_FALSE(trace->events.empty());
}

// The test's own sockets, checked against what a lab reports. In a namespace of
// their own: several tests have helpers with these names.
namespace sockets {

// A descriptor that closes itself; movable, so a helper can return one.
struct Fd {
    int fd = -1;
    explicit Fd(int value) : fd(value) {}
    ~Fd() { reset(); }
    Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&&) = delete;
    [[nodiscard]] int get() const noexcept { return fd; }
    void reset() noexcept {
        if (fd >= 0) close(fd);
        fd = -1;
    }
};

// socket() + bind(loopback, port 0), IPv4 or IPv6: the kernel picks the port.
inline Fd bound_socket(int family, int type) {
    Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
    REQUIRE(fd.get() >= 0);
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        length = sizeof(sockaddr_in6);
    }
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) == 0);
    return fd;
}

inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

// The local port the kernel gave an IPv4 socket (getsockname).
inline std::uint16_t local_port(int fd) {
    sockaddr_in address{};
    socklen_t size = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    return ntohs(address.sin_port);
}

// "EADDRINUSE" for EADDRINUSE: glibc's own name table, not the lab's.
inline std::string errno_name(int error) {
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : std::to_string(error);
}

}  // namespace sockets

// A usage error as every lab gives it: exit 2, nothing on stdout, one line on stderr that
// starts with the program's name.
inline void check_usage_error(const CommandResult& run, const std::string& program) {
    CHECK(run.exit_code == 2);
    CHECK(run.out.empty());
    REQUIRE_FALSE(run.err.empty());
    CHECK(run.err.find('\n') == run.err.size() - 1);
    CHECK_THAT(run.err, Catch::StartsWith(program + ": "));
}

// A lab run without --port while its default port is taken (the test holds 127.0.0.1:port:
// a TCP listener, or a bound UDP socket; if another program holds it, the lab meets the
// same busy port): the kernel chooses another port and the run succeeds, saying so in one
// line on stderr that names the busy port; every port its trace binds on 127.0.0.1 is another
// one, as the kernel would have it, and the narration names the port it used. With that port
// given as --port, the lab keeps today's answer: exit 1 and one line that suggests --port 0.
// `args`: what else the lab needs for a short run; `offset`: the held port is the lab's
// --port + offset (lab12 binds UDP at P + 1).
inline void check_busy_default_port(const LabBinary& lab, std::uint16_t port, int type, const std::string& args = "",
                                    int offset = 0) {
    const sockets::Fd holder(::socket(AF_INET, type, 0));
    REQUIRE(holder.get() >= 0);
    auto address = sockets::loopback(port);
    const bool held = ::bind(holder.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                      (type != SOCK_STREAM || ::listen(holder.get(), 1) == 0);
    const int error = errno;
    if (!held && error != EADDRINUSE) FAIL("could not hold port " << port << ": " << std::strerror(error));

    const TempFile trace_file("busy.jsonl");
    const auto run = lab.run(args + " --trace " + shell_quote(trace_file.path));
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(lines_of(run.err).size() == 1);
    CHECK_THAT(run.err, Catch::Contains(std::to_string(port)));
    const auto trace = trace::read_trace_file(trace_file.path);
    REQUIRE(trace.has_value());
    std::vector<Port> bound;
    for (const auto& event : trace->events)
        if (const auto* b = std::get_if<trace::Bound>(&event.body); b && b->endpoint.address == IpAddress::loopback_v4())
            bound.push_back(b->endpoint.port);
    REQUIRE_FALSE(bound.empty());
    CHECK(std::find(bound.begin(), bound.end(), port) == bound.end());
    CHECK_THAT(run.out, Catch::Contains(":" + std::to_string(bound.front())));

    const auto chosen = lab.run(args + " --port " + std::to_string(port - offset));
    CHECK(chosen.exit_code == 1);
    CHECK_THAT(chosen.err, Catch::Contains("--port 0"));
    CHECK(chosen.err.find('\n') == chosen.err.size() - 1);
}

// A lab whose reader goes away (`lab | head -1`): it ends by itself, quietly or with one line
// that says its standard output broke, never with a dead child's signal as its story.
inline void check_reader_goes_away(const LabBinary& lab, const std::string& args) {
    const auto run = lab.run(args + " | head -1");
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 0);  // head's status: the pipeline ended by itself
    CHECK(lines_of(run.out).size() == 1);
    CHECK(run.err.find("child process") == std::string::npos);
    CHECK(lines_of(run.err).size() <= 1);
    if (!run.err.empty()) CHECK_THAT(run.err, Catch::Contains(std::strerror(EPIPE)));
}

}  // namespace portlab::test
