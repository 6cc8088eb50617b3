#pragma once
// The lab kit: what every lab program shares, and nothing a student must learn first.
//
//   int main(int argc, char** argv) {
//       return portlab::labkit::run_lab(argc, argv, {"lab02_tcp_listen_connect", "What listen and connect do"},
//                                       [](portlab::labkit::Lab& lab) {
//           lab.add_server_options(8080);       // --bind --port --allow-non-loopback (optional)
//           lab.cli().add_option("...", ...);   // the lab's own arguments
//           lab.parse();                        // common flags: --json --no-color --step --show --trace --help
//           auto& say = lab.narrate();
//           auto& trace = lab.trace();          // a no-op unless --trace FILE was given
//           say.step("bind 127.0.0.1:8080");
//           const auto id = trace.socket_created("server", Protocol::tcp, IpFamily::v4);
//           ...
//           if (error) return lab.bind_failed(endpoint, error);   // "port busy: try --port 0", exit 1
//           say.kernel("bound");
//           return 0;
//       });
//   }
//
// Exit codes: 0 done (and --help), 1 the lab failed (a kernel error the lab is not about,
// or an exception reached run_lab), 2 usage error (one line on stderr:
// "labNN_name: <reason> (try --help)").

#include <CLI/CLI.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/output_file.hpp"
#include "portlab/ports.hpp"
#include "portlab/result.hpp"
#include "portlab/tcp_state.hpp"
#include "labkit/observe.hpp"
#include "portlab/trace.hpp"

namespace portlab::labkit {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

struct LabInfo {
    std::string name;     // "lab01_ports_and_services", as the binary is called
    std::string summary;  // one line for --help
};

// The flags every lab understands.
struct CommonOptions {
    bool json = false;       // --json: one JSON document on stdout, no narration
    bool no_color = false;   // --no-color
    bool step = false;       // --step: pause before each step (only when stdin is a terminal)
    std::string trace_file;  // --trace FILE: the run as trace events (docs/trace-format.md); "" = none
    bool force = false;      // --force: an output path that is a symbolic link is replaced (output_file.hpp)
    // --pause-on-stdin: with --step, pause even when stdin is not a terminal, announce each
    // pause on stderr and wait for a line on stdin (tests look at the kernel at each pause).
    bool pause_on_stdin = false;
    // --show: run each step's see-it-yourself command (look.hpp) and print its real output.
    bool show = false;
};

// The flags of a lab that runs a server (Lab::add_server_options), validated by parse().
struct ServerOptions {
    IpAddress bind = IpAddress::loopback_v4();  // --bind ADDR; loopback unless allow_non_loopback
    Port port = 0;                              // --port P; 0 = let the kernel choose
    Port default_port = 0;                      // the lab's default, for the "port busy" message
    // The user gave no --port, the default was busy, and port is 0: the kernel chooses (parse()).
    bool default_port_busy = false;
    bool allow_non_loopback = false;            // --allow-non-loopback

    [[nodiscard]] Endpoint endpoint() const { return {bind, port}; }
};

// A port a lab's server binds: `protocol` at the server's port + `offset` (lab12's UDP is P+1).
struct PortUse {
    Protocol protocol = Protocol::tcp;
    Port offset = 0;
};

// ---- errno names and Asio adapters ---------------------------------------------------

// "EADDRINUSE" for an errno-valued code (system or generic category; strerrorname_np,
// glibc 2.32+). Other categories (Asio's misc errors): "EOF" for asio::error::eof,
// otherwise "<category>:<value>". An empty code gives "".
[[nodiscard]] std::string errno_name(const std::error_code& error);
// Whether the code carries an errno (std's system/generic category or Asio's own
// "asio.system" category, which Asio uses for every socket call) equal to errno_value.
// Compare this way rather than with std::errc: Asio's category does not always map
// its values onto std::generic_category.
[[nodiscard]] bool is_errno(const std::error_code& error, int errno_value);
// "EADDRINUSE (Address already in use)": the name a student can search for, then the text.
[[nodiscard]] std::string describe_error(const std::error_code& error);

[[nodiscard]] IpAddress to_ip_address(const asio::ip::address& address);
[[nodiscard]] asio::ip::address to_asio_address(const IpAddress& address);
[[nodiscard]] Endpoint to_endpoint(const asio::ip::tcp::endpoint& endpoint);
[[nodiscard]] Endpoint to_endpoint(const asio::ip::udp::endpoint& endpoint);
[[nodiscard]] asio::ip::tcp::endpoint to_tcp_endpoint(const Endpoint& endpoint);
[[nodiscard]] asio::ip::udp::endpoint to_udp_endpoint(const Endpoint& endpoint);

// "HOST:PORT" for --connect-style options: an IP literal ("127.0.0.1:8080", "[::1]:8080")
// or "localhost:PORT" (127.0.0.1). Port 1-65535. A non-loopback address is refused unless
// allow_non_loopback, because a lab should never knock on someone else's machine by accident.
[[nodiscard]] Result<Endpoint> parse_peer_endpoint(std::string_view text, bool allow_non_loopback);

// ---- narration ----------------------------------------------------------------------

// Colour only for a terminal, and never when NO_COLOR is set to a non-empty value
// (https://no-color.org) or --no-color was given.
[[nodiscard]] bool should_use_color(bool no_color_flag, int fd);

// Waits for Enter when stdin is a terminal; returns at once otherwise, so a lab in a
// pipe or a test never hangs. With even_without_terminal, announces the pause on stderr
// ("paused: ...") and waits for a line on any stdin (end of file continues too).
void wait_for_enter_if_interactive(bool even_without_terminal = false);

// Narration: what the program does, then what the kernel answered.
//   Step 1: bind 127.0.0.1:80
//     kernel: EACCES, permission denied
//     see it yourself: ss -tlnp 'sport = :80'
// Quiet narrators (under --json) print nothing and never pause, so labs narrate
// unconditionally. With --step, step() first waits for Enter (on a terminal) so the
// sockets of the previous step can be inspected with the printed ss/lsof command;
// pause() does the same at any other point (e.g. before the lab closes its sockets).
class Narrator {
public:
    Narrator(std::ostream& out, bool color, bool pause_between_steps, bool quiet, bool pause_without_terminal = false);

    void title(std::string_view text);                   // a heading line
    void step(std::string_view what);                    // "Step N: what" (pauses first under --step)
    void kernel(std::string_view answer);                // "  kernel: answer"
    void fact(std::string_view label, std::string_view text);  // "  label: text"
    void note(std::string_view text);                    // "  text"
    // "  see it yourself: command"; with show_commands(true), the command run (look.hpp),
    // its output under it ("    | ..."), unless the line is prose.
    void see_it_yourself(std::string_view command);
    void blank_line();
    void pause();                                        // under --step: wait for Enter
    void show_commands(bool on) noexcept { show_ = on; }  // --show

    [[nodiscard]] int steps_so_far() const noexcept { return steps_; }

private:
    [[nodiscard]] std::string paint(std::string_view ansi, std::string_view text) const;

    std::ostream* out_;
    bool color_;
    bool pause_;
    bool quiet_;
    bool pause_without_terminal_;
    bool show_ = false;
    int steps_ = 0;
};

// ---- the trace recorder (--trace FILE) -----------------------------------------------

// Writes the run as portlab::trace events, each to the file as it happens. t_us counts
// microseconds on a steady clock from the lab's start; every socket gets a fresh SocketId
// from one counter (so ids are unique per host too). Without --trace every call does nothing and returns a dummy id,
// so labs record unconditionally. Thread-safe. A write error is kept and reported by
// run_lab when the lab ends (exit 1), so recording never interrupts a lab.
// Host names are the lab's words: "server", "client", or "localhost".
class TraceRecorder {
public:
    TraceRecorder();  // disabled: records nothing
    // The file is written through an OutputFile (portlab/output_file.hpp): refused when
    // `rules` forbid it, put in place by finish() only.
    [[nodiscard]] static Result<TraceRecorder> to_file(const std::string& path, const trace::TraceHeader& header,
                                                       std::chrono::steady_clock::time_point start,
                                                       const OutputRules& rules = {});

    [[nodiscard]] bool enabled() const noexcept;

    trace::SocketId socket_created(std::string_view host, Protocol protocol, IpFamily family);
    void bound(std::string_view host, trace::SocketId socket, const Endpoint& endpoint, trace::BindHow how,
               std::optional<std::string> note = std::nullopt);
    void listening(std::string_view host, trace::SocketId socket, std::uint32_t backlog);
    void connect_started(std::string_view host, trace::SocketId socket, const Endpoint& remote);
    // Parity is taken from the port; "linux-hash-connect" is __inet_hash_connect's choice.
    void ephemeral_assigned(std::string_view host, trace::SocketId socket, Port port, PortRange range,
                            std::string algorithm = "linux-hash-connect");
    // Returns the id of the new, connected socket; four_tuple is seen from `host`.
    trace::SocketId accepted(std::string_view host, trace::SocketId listener, const FourTuple& four_tuple);
    void state_changed(std::string_view host, trace::SocketId socket, TcpState from, TcpState to, std::string cause);
    void call_failed(std::string_view host, std::optional<trace::SocketId> socket, std::string call,
                     const std::error_code& error);
    void closed(std::string_view host, trace::SocketId socket);
    void note(std::string text, std::string_view host = "localhost");
    // Any other event (packets, say), stamped now.
    void record(std::string_view host, trace::EventBody body);

    // Writes what is buffered to the file now (at a --step pause, for tools reading it).
    void flush();
    // Closes the file and puts it in place; the first error any write met, if one did.
    // run_lab calls it when the lab succeeded; otherwise the old file stays as it was.
    [[nodiscard]] Result<void> finish();
    // From now on SIGINT, SIGTERM and SIGHUP put the events written so far in place (each
    // event is written as it happens, so the file ends on a whole event) and say so on stderr,
    // then end the process as the signal would have. Lab::parse calls it; finish() undoes it.
    void keep_on_interrupt(std::string_view program);
    static void forget_interrupt() noexcept;

    TraceRecorder(TraceRecorder&&) noexcept;
    TraceRecorder& operator=(TraceRecorder&&) noexcept;
    ~TraceRecorder();

private:
    struct State;
    explicit TraceRecorder(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// ---- the lab ------------------------------------------------------------------------

class Lab {
public:
    Lab(LabInfo info, int argc, char** argv);

    // Add the lab's own options and positionals here before parse().
    [[nodiscard]] CLI::App& cli() noexcept { return app_; }
    // An option naming a file the lab reads (--services FILE, --read FILE): like
    // cli().add_option, and no output of the run (--trace, --pcap) may name the same file.
    CLI::Option* add_input_option(const std::string& name, std::string& path, const std::string& description);
    // What an output file of this run must respect: not the same file as an input or the
    // --trace file; --force lets it replace a symbolic link (portlab/output_file.hpp).
    [[nodiscard]] OutputRules output_rules() const;
    // Adds --bind ADDR (default 127.0.0.1), --allow-non-loopback and --port P (default
    // default_port; 0 = the kernel chooses). Call before parse(). `uses`: what the lab binds
    // on this host at the port (and after it). When the user gives no --port and one of them
    // is busy (a classroom of students running the same lab on one machine), parse() says so
    // on stderr and sets the port to 0, so the kernel chooses a free one; an explicit --port
    // is kept, busy or not. A lab whose server lives in a private namespace of its own passes
    // none: nothing on this host can hold its port.
    void add_server_options(Port default_port, std::vector<PortUse> uses = {{Protocol::tcp}});
    // Throws CLI::ParseError; run_lab turns it into --help (exit 0) or a usage line (exit 2).
    // Validates the server options with parse_port_number and IpAddress::parse, warns on
    // stderr for a non-loopback --bind, and opens the --trace file.
    void parse();

    [[nodiscard]] const std::string& name() const noexcept { return info_.name; }
    [[nodiscard]] const CommonOptions& options() const noexcept { return options_; }
    [[nodiscard]] bool json() const noexcept { return options_.json; }
    [[nodiscard]] bool color() const noexcept { return color_; }
    // Valid after parse().
    // The lab's voice. Its first use also prints the note parse() kept back (a busy default
    // port replaced), so a usage error found after parse() stays the only line on stderr.
    [[nodiscard]] Narrator& narrate() noexcept;
    [[nodiscard]] TraceRecorder& trace() noexcept { return trace_; }
    // The lab's facts: narration, trace and --json from one call each (observe.hpp).
    [[nodiscard]] Observer& observer() noexcept { return observer_; }
    // Valid after parse(), when add_server_options was called.
    [[nodiscard]] const ServerOptions& server() const noexcept { return server_; }
    // Microseconds since the lab started (the trace's clock).
    [[nodiscard]] std::uint64_t elapsed_us() const;

    // Prints "name: reason (try --help)" on stderr and returns exit_usage, for
    // arguments that parse but mean nothing (a port of 70000, an unknown service).
    [[nodiscard]] int usage_error(std::string_view reason) const;
    // Prints "name: error: reason" on stderr and returns exit_failure, for a kernel error
    // the lab is not about.
    [[nodiscard]] int failure(std::string_view reason) const;
    // A server's bind() failed: EADDRINUSE on the lab's fixed default port says which port
    // is busy and suggests --port 0; EACCES says the port is privileged; anything else
    // names the errno. The protocol picks the ss command that shows who holds the port
    // (ss -tlnp for TCP, ss -ulnp for UDP). Returns exit_failure.
    [[nodiscard]] int bind_failed(const Endpoint& endpoint, const std::error_code& error,
                                  Protocol protocol = Protocol::tcp) const;
    // The --json document, pretty-printed, on stdout.
    void print_json(const nlohmann::json& document) const;

private:
    LabInfo info_;
    int argc_;
    char** argv_;
    CLI::App app_;
    CommonOptions options_;
    bool color_ = false;
    Narrator narrator_;
    std::string held_note_;  // printed by the first narrate()
    TraceRecorder trace_;
    Observer observer_{narrator_, trace_};
    std::chrono::steady_clock::time_point start_;
    bool has_server_options_ = false;
    std::vector<const std::string*> inputs_;  // add_input_option's variables, read after parse()
    std::string bind_text_ = "127.0.0.1";
    std::string port_text_;
    CLI::Option* port_option_ = nullptr;
    std::vector<PortUse> default_port_uses_;
    ServerOptions server_;
};

// main() for a lab: builds the Lab, runs body, reads its sockets back from the kernel
// a last time (Observer::refresh), finishes the trace, and catches exceptions once.
[[nodiscard]] int run_lab(int argc, char** argv, LabInfo info, const std::function<int(Lab&)>& body);

}  // namespace portlab::labkit
