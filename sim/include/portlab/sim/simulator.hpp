#pragma once
// The simulator: a World of hosts driven by virtual time, with the socket API of
// each host, a trace of every step, and checkpoints to rebuild any earlier state.
//
//   Simulator sim{seed};
//   const HostId client = sim.add_host("client", {IpAddress::v4(10, 0, 0, 1)});
//   const HostId server = sim.add_host("server", {IpAddress::v4(10, 0, 0, 2)});
//   auto listener = sim.socket(server, Protocol::tcp).value();
//   sim.bind(listener, {IpAddress::any_v4(), 8080}); sim.listen(listener, 16);
//   auto conn = sim.socket(client, Protocol::tcp).value();
//   sim.connect(conn, {IpAddress::v4(10, 0, 0, 2), 8080});
//   sim.run_for(10 * milliseconds);               // the handshake happens here
//   sim.accept(listener);                         // a new socket, same server port
//
// Every call that changes the world is a "unit" of a journal (with its arguments),
// and so is every event the queue runs; a checkpoint copies the World every K units.
// The state after any trace event is then: nearest checkpoint + re-running the
// journal from there, silently. Nothing here reads a clock or prints.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "portlab/sim/kernel.hpp"
#include "portlab/sim/world.hpp"
#include "portlab/trace.hpp"

namespace portlab::sim {

// One journal entry per world-changing call: its arguments, so it can be replayed.
namespace call {
struct AddHost { std::string name; std::vector<IpAddress> addresses; HostOptions options; };
struct SetLink { HostId a; HostId b; LinkConfig config; };
struct SetDefaultLink { LinkConfig config; };
struct AddRule { HostId host; FirewallRule rule; };
struct SetPolicy { HostId host; FirewallAction policy; };
struct SetTcpConfig { TcpConfig config; };
struct Schedule { Time delay; Action action; };
struct Cancel { EventId id; };
struct AdvanceTo { Time t; };
struct Socket { HostId host; Protocol protocol; IpFamily family; };
struct SetReuseAddress { SocketRef s; bool on; };
struct SetPrivileged { SocketRef s; bool on; };
struct SetAutoReply { SocketRef s; Bytes reply; };
struct Bind { SocketRef s; Endpoint local; };
struct Listen { SocketRef s; std::uint32_t backlog; };
struct Connect { SocketRef s; Endpoint remote; };
struct Accept { SocketRef s; };
struct Send { SocketRef s; Bytes data; };
struct Recv { SocketRef s; };
struct SendTo { SocketRef s; Bytes data; Endpoint remote; };
struct RecvFrom { SocketRef s; };
struct Close { SocketRef s; };
struct TakeError { SocketRef s; };
struct Note { HostId host; std::string text; };
struct StartScan { HostId scanner; scan::ScanType type; IpAddress target; std::vector<Port> ports; };
}  // namespace call

using Call = std::variant<call::AddHost, call::SetLink, call::SetDefaultLink, call::AddRule, call::SetPolicy,
                          call::SetTcpConfig, call::Schedule, call::Cancel, call::AdvanceTo, call::Socket,
                          call::SetReuseAddress, call::SetPrivileged, call::SetAutoReply, call::Bind, call::Listen,
                          call::Connect, call::Accept, call::Send, call::Recv, call::SendTo, call::RecvFrom,
                          call::Close, call::TakeError, call::Note, call::StartScan>;

struct SimOptions {
    std::uint64_t seed = 1;
    std::uint32_t checkpoint_every = 64;  // units between World copies; 0 = only the initial one
    bool record_trace = true;             // false: no events kept (benchmarks of the bare model)
    bool keep_journal = true;             // false: no going back (world_after_units gives the current world)
};

class Simulator {
public:
    explicit Simulator(std::uint64_t seed = 1) : Simulator(SimOptions{seed}) {}
    explicit Simulator(SimOptions options);

    // ---- topology ----
    HostId add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options = {});
    void set_link(HostId a, HostId b, LinkConfig config);
    void set_default_link(LinkConfig config);
    void add_firewall_rule(HostId host, FirewallRule rule);
    void set_firewall_policy(HostId host, FirewallAction policy);
    void set_tcp_config(TcpConfig config);

    // ---- virtual time (ns-3's Schedule / Cancel / Run) ----
    [[nodiscard]] Time now() const noexcept { return kernel_.world.now; }
    // A Mark (a caption at a time) or any other Action; same-time events run FIFO.
    EventId schedule(Time delay, Action action);
    void cancel(EventId id);
    // Runs one queued event; false when the queue is empty.
    bool step();
    // Runs every event due at or before t, then sets the clock to t.
    void run_until(Time t);
    void run_for(Time duration) { run_until(now() + duration); }
    // Runs until nothing is queued (at most max_events); returns how many ran.
    std::size_t run_until_idle(std::size_t max_events = 10'000'000);

    // ---- the socket API of each host ----
    SysResult<SocketRef> socket(HostId host, Protocol protocol, IpFamily family = IpFamily::v4);
    SysResult<Ok> set_reuse_address(SocketRef s, bool on = true);
    // Whether the owning process has CAP_NET_BIND_SERVICE (root): ports below 1024.
    SysResult<Ok> set_privileged(SocketRef s, bool on = true);
    // A UDP "service" that answers each datagram with `reply` (the scan's open UDP port).
    SysResult<Ok> set_auto_reply(SocketRef s, Bytes reply);
    SysResult<Ok> bind(SocketRef s, Endpoint local);
    SysResult<Ok> listen(SocketRef s, std::uint32_t backlog);
    SysResult<Ok> connect(SocketRef s, Endpoint remote);
    SysResult<SocketRef> accept(SocketRef listener);
    SysResult<std::size_t> send(SocketRef s, Bytes data);
    SysResult<Bytes> recv(SocketRef s);
    SysResult<std::size_t> sendto(SocketRef s, Bytes data, Endpoint remote);
    SysResult<Datagram> recvfrom(SocketRef s);
    SysResult<Ok> close(SocketRef s);
    std::optional<Errno> take_error(SocketRef s);
    void note(HostId host, std::string text);

    // ---- the scanner (nmap -sT / -sS / -sA / -sU) ----
    void start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports);

    // ---- reading ----
    [[nodiscard]] const World& world() const noexcept { return kernel_.world; }
    [[nodiscard]] const Socket* find_socket(SocketRef s) const { return kernel_.world.socket(s); }
    [[nodiscard]] const std::vector<trace::Event>& events() const noexcept { return recorder_.events; }
    [[nodiscard]] std::uint64_t units() const noexcept { return unit_; }
    // The journal unit that produced event n.
    [[nodiscard]] std::uint64_t unit_of_event(std::size_t n) const { return recorder_.unit_of_event.at(n); }
    // The World right after `unit` units ran (0: the empty world). Rebuilt from the
    // nearest checkpoint; unit is clamped to units().
    [[nodiscard]] World world_after_units(std::uint64_t unit) const;
    // The World right after the unit that recorded event n (the events of one unit,
    // e.g. "state changed" and the packet it sends, share one state).
    [[nodiscard]] World world_at_event(std::size_t n) const;
    [[nodiscard]] std::size_t checkpoint_count() const noexcept { return checkpoints_.size(); }
    // Forgets the events recorded so far (long benchmarks); the journal stays.
    void clear_events();

private:
    struct JournalEntry {
        std::uint64_t unit = 0;
        Call call;
    };
    struct Checkpoint {
        std::uint64_t unit = 0;
        World world;
    };

    template <class Fn>
    auto journaled(Call call, Fn&& fn) {
        if (options_.keep_journal) journal_.push_back(JournalEntry{unit_, std::move(call)});
        begin_unit();
        auto result = fn(kernel_);
        end_unit();
        return result;
    }
    void begin_unit();
    void end_unit();
    static void replay(Kernel& kernel, const Call& call);

    SimOptions options_;
    Kernel kernel_;
    Recorder recorder_;
    std::uint64_t unit_ = 0;
    std::vector<JournalEntry> journal_;
    std::vector<Checkpoint> checkpoints_;
};

}  // namespace portlab::sim
