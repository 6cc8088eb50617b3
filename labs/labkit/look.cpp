// "See it yourself" commands: read from the lab's text, run for --show (look.hpp).
#include "labkit/look.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

namespace portlab::labkit {
namespace {

// The line's pieces: separated by runs of three spaces or more, the way the labs print
// "COMMAND   and   COMMAND" or "COMMAND   (comment)".
std::vector<std::string> pieces_of(std::string_view text) {
    std::vector<std::string> pieces;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto gap = text.find("   ", start);
        const auto piece = text.substr(start, gap == std::string_view::npos ? std::string_view::npos : gap - start);
        if (!piece.empty()) pieces.emplace_back(piece);
        if (gap == std::string_view::npos) break;
        start = text.find_first_not_of(' ', gap);
        if (start == std::string_view::npos) break;
    }
    return pieces;
}

bool is_comment(const std::string& piece) { return piece.front() == '(' && piece.back() == ')'; }

bool is_looking_tool(std::string_view program) {
    return std::find(std::begin(looking_tools), std::end(looking_tools), program) != std::end(looking_tools);
}

// "nsenter [--preserve-credentials] --target PID --user --net COMMAND..." with PID ==
// own_pid: COMMAND, to run here.
std::optional<std::vector<std::string>> inside_own_namespace(const std::vector<std::string>& words, int own_pid) {
    const std::size_t at = words.size() > 1 && words[1] == "--preserve-credentials" ? 2 : 1;
    if (words.size() < at + 5 || words[at] != "--target" || words[at + 1] != std::to_string(own_pid) ||
        words[at + 2] != "--user" || words[at + 3] != "--net")
        return std::nullopt;
    return std::vector<std::string>(words.begin() + static_cast<std::ptrdiff_t>(at + 4), words.end());
}

// A tool's output line as a terminal may show it: control characters (an escape sequence in
// a process name, say) become '?', so a tool's output cannot repaint or retitle the screen.
std::string printable(std::string line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    for (char& c : line)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
    return line;
}

// Every descriptor above stderr, closed before exec: close_range(2) (Linux 5.9), or one by one.
void close_from_three() {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
    const long most = std::min(sysconf(_SC_OPEN_MAX), 65536L);
    for (long fd = 3; fd < most; ++fd) close(static_cast<int>(fd));
}

}  // namespace

std::string shell_text(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& word : argv) {
        if (!text.empty()) text += ' ';
        const bool plain = !word.empty() && word.find_first_of(" \t'\"|&;<>$`*?[]{}()~#\\") == std::string::npos;
        text += plain ? word : "'" + word + "'";  // the words the labs print hold no single quote
    }
    return text;
}

std::vector<std::string> shell_words(std::string_view text) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == ' ' || c == '\t') {
            if (in_word) words.push_back(std::exchange(word, {}));
            in_word = false;
            continue;
        }
        if (std::strchr("|&;<>$`*?[]{}()~#\\\n", c) != nullptr) return {};
        in_word = true;
        if (c != '\'' && c != '"') {
            word += c;
            continue;
        }
        const auto end = text.find(c, i + 1);
        if (end == std::string_view::npos) return {};
        const auto quoted = text.substr(i + 1, end - i - 1);
        // Inside "...", the shell would expand $ and ` and read \ : keep to what needs none of it.
        if (c == '"' && quoted.find_first_of("$`\\") != std::string_view::npos) return {};
        word += quoted;
        i = end;
    }
    if (in_word) words.push_back(word);
    return words;
}

Look parse_look(std::string_view text, int own_pid) {
    Look look{std::string(text), {}};
    std::vector<LookCommand> commands;
    bool expect_command = true;  // at the start, and after "and"
    for (const auto& piece : pieces_of(text)) {
        if (piece == "and" && !expect_command) {
            expect_command = true;
            continue;
        }
        if (is_comment(piece)) continue;
        if (!expect_command) return look;  // "then", "or", or words after a command: prose
        auto words = shell_words(piece);
        if (words.empty()) return look;
        LookCommand command;
        if (words.front() == "nsenter") {
            auto inside = inside_own_namespace(words, own_pid);
            if (!inside) return look;
            words = std::move(*inside);
            command.in_own_namespace = true;
        }
        if (!is_looking_tool(words.front()) || std::find(words.begin(), words.end(), "...") != words.end()) return look;
        command.argv = std::move(words);
        commands.push_back(std::move(command));
        expect_command = false;
    }
    if (expect_command) return look;  // a trailing "and", or nothing at all
    look.commands = std::move(commands);
    return look;
}

ToolOutput run_tool(const std::vector<std::string>& argv, std::chrono::milliseconds limit, std::size_t max_lines,
                    std::size_t max_bytes) {
    ToolOutput output;
    output.exit_status = 127;
    int pipe_ends[2];
    if (argv.empty() || pipe2(pipe_ends, O_CLOEXEC) != 0) return output;
    const pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);  // its own process group, so a timeout kills whatever it started too
        const int nothing = open("/dev/null", O_RDONLY);
        dup2(nothing, STDIN_FILENO);
        dup2(pipe_ends[1], STDOUT_FILENO);
        dup2(pipe_ends[1], STDERR_FILENO);
        close_from_three();
        std::vector<char*> args;
        for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        const std::string why = "cannot run " + argv[0] + ": " + std::strerror(errno) + "\n";
        (void)!write(STDOUT_FILENO, why.data(), why.size());
        _exit(127);
    }
    close(pipe_ends[1]);
    if (pid < 0) {
        close(pipe_ends[0]);
        return output;
    }
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd wait{pipe_ends[0], POLLIN, 0};
        if (left.count() <= 0 || poll(&wait, 1, static_cast<int>(left.count())) <= 0) {
            output.timed_out = true;
            break;
        }
        char buffer[4096];
        const auto count = read(pipe_ends[0], buffer, sizeof buffer);
        if (count <= 0) break;  // end of file: the tool is done
        text.append(buffer, static_cast<std::size_t>(std::min<std::size_t>(static_cast<std::size_t>(count), max_bytes - text.size())));
        if (text.size() >= max_bytes) break;  // enough: the rest would not be printed anyway
    }
    close(pipe_ends[0]);
    // End of file means the tool closed its output, so it is exiting: give it until the deadline.
    int status = 0;
    pid_t reaped = waitpid(pid, &status, WNOHANG);
    while (reaped == 0 && !output.timed_out && std::chrono::steady_clock::now() < deadline) {
        usleep(5000);
        reaped = waitpid(pid, &status, WNOHANG);
    }
    if (reaped == 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    output.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (output.lines.size() < max_lines) output.lines.push_back(printable(text.substr(start, end - start)));
        else ++output.lines_left_out;
        start = end + 1;
    }
    return output;
}

}  // namespace portlab::labkit
