#pragma once
// "See it yourself": the command a lab step cites so a student can check the kernel from
// outside (ss, lsof, nstat, nft, ...), and, with --show, that command run by the lab itself
// with its real output printed under the narration: evidence from one terminal.
//
// A lab writes the command as the shell text a student would type, and the kit reads it:
//   "ss -tlnp 'sport = :8080'"                                one command
//   "ss -tlnp 'sport = :8080'   (Recv-Q: the accept queue)"   a command, then a comment
//   "ss -tlnp 'sport = :80'   and   ss -ulnp 'sport = :53'"   two commands, both run
//   "nsenter --preserve-credentials --target PID --user --net ss -tan"
//                                                             inside the namespace of PID
// Pieces are separated by three spaces or more. The nsenter form, with PID this very process,
// runs the command directly: the lab is inside that namespace already, so a fork + exec from
// it lands there too, with no sudo and no nsenter. (A student types it without sudo as well:
// the user who started the lab owns the namespace; --preserve-credentials keeps nsenter from
// calling setgroups(), which a namespace made by an ordinary user refuses.) Everything else is prose, printed only:
// "then" or "or" between commands (something must happen first, or there is a choice), a
// pipe, "...", sudo (the lab has no privilege to lend), or a program that does more than
// look (only the tools in looking_tools run).
//
//   const auto look = parse_look("ss -tlnp 'sport = :8080'");
//   for (const auto& command : look.commands) print(run_tool(command.argv).lines);

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portlab::labkit {

// The programs --show may run: they only read the kernel's state or a file the lab wrote.
inline constexpr std::string_view looking_tools[] = {"ss",  "lsof", "ls",   "sysctl", "nstat",   "nft",
                                                     "ip",  "getent", "nmap", "tshark", "conntrack", "cat"};

struct LookCommand {
    std::vector<std::string> argv;  // {"ss", "-tlnp", "sport = :8080"}: what runs
    bool in_own_namespace = false;  // printed behind nsenter --target <this process>, run directly
};

struct Look {
    std::string text;                   // the line as printed
    std::vector<LookCommand> commands;  // what --show runs, in order; empty: prose, printed only
};

// Reads a see-it-yourself line; `own_pid` is the process an nsenter --target must name for
// the command to run here (getpid() of the caller).
[[nodiscard]] Look parse_look(std::string_view text, int own_pid);

// argv as a student would type it: a word with a blank or a shell character in single quotes.
[[nodiscard]] std::string shell_text(const std::vector<std::string>& argv);

// Words as /bin/sh splits them: blanks separate, '...' keeps everything, "..." keeps all but
// \" and \\. Empty when the text holds what a word list cannot say: a pipe, a redirection,
// ';', '&', '$', a backquote, a glob, or an unclosed quote.
[[nodiscard]] std::vector<std::string> shell_words(std::string_view text);

struct ToolOutput {
    std::vector<std::string> lines;  // stdout and stderr together, at most max_lines
    std::size_t lines_left_out = 0;  // lines past max_lines
    bool timed_out = false;          // killed after the time limit
    int exit_status = 0;             // the tool's exit status; 127 when it could not be started
};

// Runs argv (execvp, so PATH finds it) in a child process that holds none of the lab's
// descriptors (ss -p would otherwise name the tool an owner of the lab's sockets), with stdin
// /dev/null, at most `limit` (then SIGKILL) and at most `max_bytes` of output read.
[[nodiscard]] ToolOutput run_tool(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds limit = std::chrono::seconds(5), std::size_t max_lines = 40,
                                  std::size_t max_bytes = 64 * 1024);

}  // namespace portlab::labkit
