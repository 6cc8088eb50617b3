#include "labkit/labkit.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <mutex>
#include <span>
#include <string>

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <fmt/format.h>

#include "labkit/look.hpp"
#include "portlab/data_files.hpp"
#include "portlab/ports.hpp"
#include "portlab/standard_output.hpp"
#include "portlab/text_safety.hpp"

namespace portlab::labkit {
namespace {

// Errors are promised as one line; CLI11 and exceptions may carry more.
std::string first_line(std::string_view text) {
    return std::string(text.substr(0, text.find('\n')));
}

constexpr std::string_view bold = "\033[1m";
constexpr std::string_view cyan = "\033[36m";
constexpr std::string_view dim = "\033[2m";
constexpr std::string_view reset = "\033[0m";

}  // namespace

// ---- errno names and Asio adapters ---------------------------------------------------

namespace {
// Categories are singletons, compared by address as error_category::operator== does. Not
// through operator== itself: a member call is what UBSan's vptr check inspects, and at the
// open-file limit (lab04's EMFILE step) UBSan cannot open the pipe it reads memory through,
// so it takes the category for an invalid object and aborts on a false report.
bool carries_errno(const std::error_code& error) {
    const std::error_category* category = &error.category();
    return category == &std::system_category() || category == &std::generic_category() ||
           category == &asio::error::get_system_category();
}
}  // namespace

bool is_errno(const std::error_code& error, int errno_value) {
    return error && carries_errno(error) && error.value() == errno_value;
}

std::string errno_name(const std::error_code& error) {
    if (!error) return "";
    if (carries_errno(error)) {
        const char* name = strerrorname_np(error.value());
        return name != nullptr ? name : "errno " + std::to_string(error.value());
    }
    if (error == asio::error::eof) return "EOF";
    return std::string(error.category().name()) + ":" + std::to_string(error.value());
}

std::string describe_error(const std::error_code& error) {
    if (!error) return "no error";
    return errno_name(error) + " (" + error.message() + ")";
}

IpAddress to_ip_address(const asio::ip::address& address) {
    if (address.is_v4()) {
        const auto bytes = address.to_v4().to_bytes();
        return IpAddress::v4(bytes[0], bytes[1], bytes[2], bytes[3]);
    }
    const auto bytes = address.to_v6().to_bytes();
    // 16 bytes always make a valid IPv6 address, so from_bytes cannot fail here.
    return IpAddress::from_bytes(bytes).value();
}

asio::ip::address to_asio_address(const IpAddress& address) {
    const auto bytes = address.bytes();
    if (address.is_v4()) {
        asio::ip::address_v4::bytes_type raw{};
        std::copy(bytes.begin(), bytes.end(), raw.begin());
        return asio::ip::address_v4(raw);
    }
    asio::ip::address_v6::bytes_type raw{};
    std::copy(bytes.begin(), bytes.end(), raw.begin());
    return asio::ip::address_v6(raw);
}

Endpoint to_endpoint(const asio::ip::tcp::endpoint& endpoint) {
    return {to_ip_address(endpoint.address()), endpoint.port()};
}
Endpoint to_endpoint(const asio::ip::udp::endpoint& endpoint) {
    return {to_ip_address(endpoint.address()), endpoint.port()};
}
asio::ip::tcp::endpoint to_tcp_endpoint(const Endpoint& endpoint) {
    return {to_asio_address(endpoint.address), endpoint.port};
}
asio::ip::udp::endpoint to_udp_endpoint(const Endpoint& endpoint) {
    return {to_asio_address(endpoint.address), endpoint.port};
}

Result<Endpoint> parse_peer_endpoint(std::string_view text, bool allow_non_loopback) {
    constexpr std::string_view localhost = "localhost:";
    Result<Endpoint> parsed = fail("");
    if (text.substr(0, localhost.size()) == localhost) {
        const auto port = parse_port_number(text.substr(localhost.size()));
        if (!port) return fail("'" + std::string(text) + "': " + port.error().message);
        parsed = Endpoint{IpAddress::loopback_v4(), *port};
    } else {
        parsed = Endpoint::parse(text);
        if (!parsed) return parsed.error();
    }
    if (parsed->port == 0) return fail("'" + std::string(text) + "': port 0 cannot be connected to");
    if (!allow_non_loopback && !parsed->address.is_loopback())
        return fail(parsed->address.to_string() + " is not a loopback address; add --allow-non-loopback to use it");
    return parsed;
}

// ---- narration ----------------------------------------------------------------------

bool should_use_color(bool no_color_flag, int fd) {
    if (no_color_flag) return false;
    const char* no_color = std::getenv("NO_COLOR");
    if (no_color != nullptr && *no_color != '\0') return false;
    return isatty(fd) == 1;
}

void wait_for_enter_if_interactive(bool even_without_terminal) {
    if (even_without_terminal && isatty(STDIN_FILENO) != 1) {
        std::cerr << "paused: send a line to continue" << std::endl;
        std::string ignored;
        std::getline(std::cin, ignored);
        return;
    }
    if (isatty(STDIN_FILENO) != 1) return;
    std::cerr << "  (--step: press Enter to continue)" << std::flush;
    std::string ignored;
    std::getline(std::cin, ignored);
}

Narrator::Narrator(std::ostream& out, bool color, bool pause_between_steps, bool quiet, bool pause_without_terminal)
    : out_(&out),
      color_(color),
      pause_(pause_between_steps),
      quiet_(quiet),
      pause_without_terminal_(pause_without_terminal) {}

std::string Narrator::paint(std::string_view ansi, std::string_view text) const {
    if (!color_) return std::string(text);
    return std::string(ansi) + std::string(text) + std::string(reset);
}

void Narrator::title(std::string_view text) {
    if (quiet_) return;
    *out_ << paint(bold, text) << '\n';
}

void Narrator::pause() {
    if (!pause_ || (quiet_ && !pause_without_terminal_)) return;
    out_->flush();
    wait_for_enter_if_interactive(pause_without_terminal_);
}

void Narrator::step(std::string_view what) {
    // The sockets of the previous step exist now: this is the moment to look at them.
    if (steps_ > 0) pause();
    ++steps_;
    if (quiet_) return;
    *out_ << '\n' << paint(bold, "Step " + std::to_string(steps_) + ": ") << what << std::endl;
}

void Narrator::kernel(std::string_view answer) { fact("kernel", answer); }

void Narrator::fact(std::string_view label, std::string_view text) {
    if (quiet_) return;
    // Flushed line by line: in --serve mode the other terminal is waiting for these.
    *out_ << "  " << paint(cyan, std::string(label) + ":") << ' ' << text << std::endl;
}

void Narrator::note(std::string_view text) {
    if (quiet_) return;
    *out_ << "  " << text << std::endl;
}

void Narrator::see_it_yourself(std::string_view command) {
    if (quiet_) return;
    *out_ << "  " << paint(dim, "see it yourself:") << ' ' << command << std::endl;
    if (!show_) return;
    const auto look = parse_look(command, static_cast<int>(getpid()));
    for (const auto& run : look.commands) {
        const auto shown = run_tool(run.argv);
        if (look.commands.size() > 1 || run.in_own_namespace)
            *out_ << "    " << paint(dim, fmt::format("$ {}{}", shell_text(run.argv),
                                                      run.in_own_namespace ? "   (run inside the lab's namespace)" : ""))
                  << '\n';
        for (const auto& line : shown.lines) *out_ << "    " << paint(dim, "|") << ' ' << line << '\n';
        if (shown.lines.empty()) *out_ << "    " << paint(dim, "| (no output)") << '\n';
        if (shown.lines_left_out > 0) *out_ << "    " << paint(dim, fmt::format("| ... {} more lines", shown.lines_left_out)) << '\n';
        if (shown.timed_out) *out_ << "    " << paint(dim, "| (stopped after 5 s)") << '\n';
    }
    out_->flush();
}

void Narrator::blank_line() {
    if (quiet_) return;
    *out_ << '\n';
}

// ---- the trace recorder -------------------------------------------------------------

struct TraceRecorder::State {
    std::mutex mutex;
    trace::TraceWriter writer;
    std::chrono::steady_clock::time_point start;
    std::uint32_t next_socket = 1;
    std::optional<Error> first_error;
};

TraceRecorder::TraceRecorder() = default;
TraceRecorder::TraceRecorder(std::unique_ptr<State> state) : state_(std::move(state)) {}
TraceRecorder::TraceRecorder(TraceRecorder&&) noexcept = default;
TraceRecorder& TraceRecorder::operator=(TraceRecorder&&) noexcept = default;
TraceRecorder::~TraceRecorder() = default;

Result<TraceRecorder> TraceRecorder::to_file(const std::string& path, const trace::TraceHeader& header,
                                             std::chrono::steady_clock::time_point start, const OutputRules& rules) {
    auto writer = trace::TraceWriter::to_file(path, header, rules);
    if (!writer) return writer.error();
    auto state = std::unique_ptr<State>(new State{{}, std::move(*writer), start, 1, std::nullopt});
    return TraceRecorder(std::move(state));
}

bool TraceRecorder::enabled() const noexcept { return state_ != nullptr; }

void TraceRecorder::record(std::string_view host, trace::EventBody body) {
    if (!state_) return;
    const std::lock_guard lock(state_->mutex);
    // Stamped under the lock, so time never goes backwards between threads.
    const auto elapsed = std::chrono::steady_clock::now() - state_->start;
    const auto t_us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
    auto written = state_->writer.write(trace::Event{t_us, std::string(host), std::move(body)});
    // Each event reaches the file as it happens (one line, one write(2)): a run interrupted
    // or killed at any point leaves a file that ends on a whole event, and a namespace child
    // (labs 09 and 11), which writes through the same descriptor, adds its events in place.
    if (written) written = state_->writer.flush();
    if (!written && !state_->first_error) state_->first_error = written.error();
}

trace::SocketId TraceRecorder::socket_created(std::string_view host, Protocol protocol, IpFamily family) {
    if (!state_) return {};
    trace::SocketId id;
    {
        const std::lock_guard lock(state_->mutex);
        id = trace::SocketId{state_->next_socket++};
    }
    record(host, trace::SocketCreated{id, protocol, family});
    return id;
}

void TraceRecorder::bound(std::string_view host, trace::SocketId socket, const Endpoint& endpoint,
                          trace::BindHow how, std::optional<std::string> note_text) {
    record(host, trace::Bound{socket, endpoint, how, std::move(note_text)});
}

void TraceRecorder::listening(std::string_view host, trace::SocketId socket, std::uint32_t backlog) {
    record(host, trace::Listening{socket, backlog});
}

void TraceRecorder::connect_started(std::string_view host, trace::SocketId socket, const Endpoint& remote) {
    record(host, trace::ConnectStarted{socket, remote});
}

void TraceRecorder::ephemeral_assigned(std::string_view host, trace::SocketId socket, Port port, PortRange range,
                                       std::string algorithm) {
    const auto parity = port % 2 == 0 ? trace::Parity::even : trace::Parity::odd;
    record(host, trace::EphemeralAssigned{socket, port, range.low, range.high, std::move(algorithm), parity});
}

trace::SocketId TraceRecorder::accepted(std::string_view host, trace::SocketId listener, const FourTuple& four_tuple) {
    if (!state_) return {};
    trace::SocketId id;
    {
        const std::lock_guard lock(state_->mutex);
        id = trace::SocketId{state_->next_socket++};
    }
    record(host, trace::Accepted{listener, id, four_tuple});
    return id;
}

void TraceRecorder::state_changed(std::string_view host, trace::SocketId socket, TcpState from, TcpState to,
                                  std::string cause) {
    record(host, trace::StateChanged{socket, from, to, std::move(cause)});
}

void TraceRecorder::call_failed(std::string_view host, std::optional<trace::SocketId> socket, std::string call,
                                const std::error_code& error) {
    record(host, trace::CallFailed{socket, std::move(call), errno_name(error), error.message()});
}

void TraceRecorder::closed(std::string_view host, trace::SocketId socket) { record(host, trace::Closed{socket}); }

void TraceRecorder::note(std::string text, std::string_view host) { record(host, trace::Note{std::move(text)}); }

void TraceRecorder::flush() {
    if (!state_) return;
    const std::lock_guard lock(state_->mutex);
    auto flushed = state_->writer.flush();
    if (!flushed && !state_->first_error) state_->first_error = flushed.error();
}

// ---- an interrupted run keeps its trace so far ----------------------------------------
//
// Ctrl-C (SIGINT), SIGTERM or SIGHUP during a run: the events written so far, which end on a
// whole event (record() writes each one at once), are renamed into place, so the student has
// the trace up to the moment they stopped it and no ".FILE.partial-XXXXXX" is left behind.
// A signal handler may only make async-signal-safe calls (signal-safety(7)): rename(2),
// write(2), getpid(2), signal(2), raise(3). So everything it needs is prepared beforehand in
// fixed buffers, the one piece of global state the lab kit keeps. Only the process that
// opened the trace renames it: a namespace child (labs 09 and 11) inherits the handler and
// just dies of the signal, as it would have without one. SIGKILL cannot be caught: then the
// temporary file stays beside FILE, holding the run so far (docs/trace-format.md).
namespace {

struct InterruptedTrace {
    std::array<char, 4096> temp{};
    std::array<char, 4096> target{};
    std::array<char, 8192> message{};
    std::size_t message_size = 0;
    pid_t owner = 0;
};
InterruptedTrace interrupted_trace;  // written before the handlers are installed, read only by them

extern "C" void keep_trace_so_far(int signal_number) {
    const auto& trace = interrupted_trace;
    if (trace.owner == ::getpid() && trace.temp[0] != '\0' && ::rename(trace.temp.data(), trace.target.data()) == 0) {
        [[maybe_unused]] const auto written = ::write(STDERR_FILENO, trace.message.data(), trace.message_size);
    }
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
}

bool copy_into(std::span<char> buffer, std::string_view text) {
    if (text.size() >= buffer.size()) return false;
    std::copy(text.begin(), text.end(), buffer.begin());
    buffer[text.size()] = '\0';
    return true;
}

}  // namespace

void TraceRecorder::keep_on_interrupt(std::string_view program) {
    if (!state_) return;
    const OutputFile* file = state_->writer.output();
    if (file == nullptr) return;
    auto& trace = interrupted_trace;
    const std::string message = std::string(program) + ": interrupted; the trace so far, to the last whole event, is in " +
                                text::printable(file->path()) + "\n";
    if (!copy_into(trace.temp, file->temp_path()) || !copy_into(trace.target, file->path()) ||
        !copy_into(trace.message, message))
        return;  // a path longer than PATH_MAX: an interrupted run leaves the old file, as before
    trace.message_size = message.size();
    trace.owner = ::getpid();
    struct sigaction action {};
    action.sa_handler = keep_trace_so_far;
    sigemptyset(&action.sa_mask);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal_number, &action, nullptr);
}

void TraceRecorder::forget_interrupt() noexcept {
    // Blocked while cleared, so a handler never sees half a buffer.
    sigset_t signals, previous;
    sigemptyset(&signals);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signal_number);
    ::sigprocmask(SIG_BLOCK, &signals, &previous);
    if (interrupted_trace.owner == ::getpid()) interrupted_trace.temp[0] = '\0';
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
}

Result<void> TraceRecorder::finish() {
    if (!state_) return {};
    const std::lock_guard lock(state_->mutex);
    forget_interrupt();  // from here the file is put in place, or the run failed and the old file stays
    if (state_->first_error) return *state_->first_error;
    return state_->writer.close();
}

// ---- the lab ------------------------------------------------------------------------

namespace {

// The summary, then where the lab's page of exercises is (docs/labs/NN_name.md under
// PREFIX/share/portlab, or the build tree's mirror of it), so --help and the man page
// made from it point a student at the exercises on any machine the lab runs on.
std::string help_description(const LabInfo& info) {
    if (!info.name.starts_with("lab")) return info.summary;
    const auto page = find_data_file("docs/labs/" + info.name.substr(3) + ".md");
    return page ? info.summary + "\nExercises: " + page->string() : info.summary;
}

}  // namespace

Lab::Lab(LabInfo info, int argc, char** argv)
    : info_(std::move(info)),
      argc_(argc),
      argv_(argv),
      app_(help_description(info_), info_.name),
      narrator_(std::cout, false, false, true),
      start_(std::chrono::steady_clock::now()) {
    app_.add_flag("--json", options_.json, "print the facts as one JSON document instead of the narration");
    app_.add_flag("--no-color", options_.no_color, "no colours (also: NO_COLOR=1)");
    app_.add_flag("--step", options_.step, "pause before each step until Enter is pressed (on a terminal)");
    app_.add_flag("--show", options_.show,
                  "run each step's 'see it yourself' command (ss, lsof, nstat, ...) and print its output, bounded to 5 s and 40 lines");
    app_.add_option("--trace", options_.trace_file, "write the run as trace events (JSON Lines) to FILE")
        ->type_name("FILE");
    app_.add_flag("--force", options_.force, "replace a symbolic link given as an output file (the link, not its target)");
    app_.add_flag("--pause-on-stdin", options_.pause_on_stdin,
                  "with --step: pause even without a terminal, say so on stderr, wait for a line on stdin (for tests)");
}

namespace {

// What bind() answers now for `endpoint`, as a lab's server would bind it: a TCP socket with
// SO_REUSEADDR (Asio's acceptor sets it, so a TIME-WAIT left by an earlier run is no obstacle),
// a UDP socket without. The socket is closed at once; only the answer is kept.
std::error_code try_bind(const Endpoint& endpoint, Protocol protocol) {
    std::error_code error;
    asio::io_context io;
    if (protocol == Protocol::tcp) {
        asio::ip::tcp::acceptor acceptor(io);
        acceptor.open(to_tcp_endpoint(endpoint).protocol(), error);
        if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
        if (!error) acceptor.bind(to_tcp_endpoint(endpoint), error);
    } else {
        asio::ip::udp::socket socket(io);
        socket.open(to_udp_endpoint(endpoint).protocol(), error);
        if (!error) socket.bind(to_udp_endpoint(endpoint), error);
    }
    return error;
}

}  // namespace

void Lab::add_server_options(Port default_port, std::vector<PortUse> uses) {
    has_server_options_ = true;
    default_port_uses_ = std::move(uses);
    server_.default_port = default_port;
    server_.port = default_port;
    port_text_ = std::to_string(default_port);
    app_.add_option("--bind", bind_text_, "the server's address: 127.0.0.1 or another loopback address")
        ->type_name("ADDR")
        ->default_str("127.0.0.1");
    port_option_ = app_.add_option("--port", port_text_, "the server's port; 0 lets the kernel choose a free one")
        ->type_name("P")
        ->default_str(port_text_);
    app_.add_flag("--allow-non-loopback", server_.allow_non_loopback,
                  "allow a --bind (or peer) address outside 127.0.0.0/8 and ::1");
}

CLI::Option* Lab::add_input_option(const std::string& name, std::string& path, const std::string& description) {
    inputs_.push_back(&path);
    return app_.add_option(name, path, description)->type_name("FILE");
}

OutputRules Lab::output_rules() const {
    OutputRules rules{{options_.trace_file}, options_.force};
    for (const auto* input : inputs_) rules.others.push_back(*input);
    return rules;
}

void Lab::parse() {
    app_.parse(argc_, argv_);
    // An empty value ("--connect ''") is not "not given": refuse it rather than run as if it were.
    for (const CLI::Option* option : app_.get_options()) {
        if (option->get_type_size_max() == 0 || option->count() == 0) continue;  // flags, options not given
        for (const auto& value : option->results())
            if (value.empty()) throw CLI::ValidationError(option->get_name(), "an empty value: give one, or leave the option out");
    }
    color_ = should_use_color(options_.no_color, STDOUT_FILENO);
    narrator_ = Narrator(std::cout, color_, options_.step, options_.json, options_.pause_on_stdin);
    narrator_.show_commands(options_.show);
    if (has_server_options_) {
        const auto address = IpAddress::parse(bind_text_);
        if (!address) throw CLI::ValidationError("--bind", address.error().message);
        const auto port = parse_port_number(port_text_);
        if (!port) throw CLI::ValidationError("--port", port.error().message);
        if (!address->is_loopback() && !server_.allow_non_loopback)
            throw CLI::ValidationError("--bind", address->to_string() +
                                                     " is not a loopback address; add --allow-non-loopback to use it");
        if (!address->is_loopback())
            std::cerr << info_.name << ": warning: binding " << address->to_string()
                      << ", which other machines may reach; this lab is meant for loopback\n";
        server_.bind = *address;
        server_.port = *port;
        if (port_option_->count() == 0 && *port != 0) {
            for (const auto& use : default_port_uses_) {
                const auto busy = static_cast<Port>(server_.port + use.offset);
                if (!is_errno(try_bind({server_.bind, busy}, use.protocol), EADDRINUSE)) continue;
                held_note_ = fmt::format(
                    "{}: port {}, the lab's default, is busy ({} 'sport = :{}' shows who holds it); the kernel "
                    "chooses a free port instead, as with --port 0\n",
                    info_.name, busy, use.protocol == Protocol::udp ? "ss -ulnp" : "ss -tlnp", busy);
                server_.port = 0;
                server_.default_port_busy = true;
                break;
            }
        }
    }
    if (!options_.trace_file.empty()) {
        trace::TraceHeader header;
        header.source = "lab";
        header.generator = info_.name + " " + PORTLAB_VERSION;
        header.title = info_.summary;
        auto rules = output_rules();
        rules.others.erase(rules.others.begin());  // the trace itself
        auto recorder = TraceRecorder::to_file(options_.trace_file, header, start_, rules);
        if (!recorder) throw CLI::ValidationError("--trace", recorder.error().message);
        trace_ = std::move(*recorder);
        trace_.keep_on_interrupt(info_.name);
    }
}

Narrator& Lab::narrate() noexcept {
    if (!held_note_.empty()) {
        std::cerr << held_note_;
        held_note_.clear();
    }
    return narrator_;
}

std::uint64_t Lab::elapsed_us() const {
    const auto elapsed = std::chrono::steady_clock::now() - start_;
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
}

int Lab::usage_error(std::string_view reason) const {
    std::cerr << info_.name << ": " << first_line(reason) << " (try --help)\n";
    return exit_usage;
}

int Lab::failure(std::string_view reason) const {
    std::cerr << info_.name << ": error: " << first_line(reason) << '\n';
    return exit_failure;
}

int Lab::bind_failed(const Endpoint& endpoint, const std::error_code& error, Protocol protocol) const {
    const bool udp = protocol == Protocol::udp;
    const std::string what = std::string("cannot bind ") + (udp ? "UDP " : "TCP ") + endpoint.to_string() + ": " +
                             describe_error(error);
    if (is_errno(error, EADDRINUSE) && endpoint.port != 0) {
        const bool is_default = has_server_options_ && endpoint.port == server_.default_port;
        return failure(what + (is_default ? ": another socket holds the lab's default port; "
                                          : ": another socket holds this port; ") +
                       "run again with --port 0 to let the kernel choose a free one (" + (udp ? "ss -ulnp" : "ss -tlnp") +
                       " 'sport = :" + std::to_string(endpoint.port) + "' shows who holds it)");
    }
    if (is_errno(error, EACCES))
        return failure(what + ": ports below ip_unprivileged_port_start need CAP_NET_BIND_SERVICE; "
                              "choose --port 0 or a port of 1024 or above");
    return failure(what);
}

void Lab::print_json(const nlohmann::json& document) const {
    // Text from outside (a process name, a services file) that is not UTF-8 would make dump()
    // throw; labs pass it through text::valid_utf8, and this catches any they miss (U+FFFD).
    std::cout << document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

int run_lab(int argc, char** argv, LabInfo info, const std::function<int(Lab&)>& body) {
    const std::string name = info.name;
    try {
        Lab lab(std::move(info), argc, argv);
        int code = exit_ok;
        try {
            code = body(lab);
        } catch (const CLI::Success&) {  // --help
            std::cout << lab.cli().help();
            if (auto printed = flush_standard_output(); !printed) return lab.failure(printed.error().message);
            return exit_ok;
        } catch (const CLI::ParseError& error) {
            return lab.usage_error(error.what());
        }
        // The last word is the kernel's: what became of the lab's sockets (TIME-WAIT, gone).
        if (lab.observer().follows_sockets()) lab.observer().refresh();
        // A narration or --json document that never reached stdout (/dev/full, a closed
        // stdout) is a failed run, said in one line on stderr.
        if (auto printed = flush_standard_output(); !printed) {
            std::cerr << name << ": error: " << first_line(printed.error().message) << '\n';
            return exit_failure;
        }
        // Only a run that succeeded puts its trace in place; any other leaves the file that
        // was there (the recorder's temporary file goes with the Lab).
        if (code != exit_ok) return code;
        if (auto finished = lab.trace().finish(); !finished) {
            std::cerr << name << ": error: trace: " << first_line(finished.error().message) << '\n';
            return exit_failure;
        }
        return code;
    } catch (const std::exception& error) {
        std::cerr << name << ": error: " << first_line(error.what()) << '\n';
        return exit_failure;
    } catch (...) {
        std::cerr << name << ": error: unknown exception\n";
        return exit_failure;
    }
}

}  // namespace portlab::labkit
