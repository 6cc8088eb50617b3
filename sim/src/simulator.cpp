#include "portlab/sim/simulator.hpp"

#include <algorithm>

namespace portlab::sim {

Simulator::Simulator(SimOptions options) : options_(options) {
    // The seed fixes every random choice: the generator, and the per-boot hash secret.
    kernel_.world.rng = Rng{options.seed};
    kernel_.world.secret = Rng{options.seed ^ 0xa5a5a5a5a5a5a5a5ULL}.next();
    checkpoints_.push_back(Checkpoint{0, kernel_.world});
}

void Simulator::begin_unit() {
    kernel_.recorder = options_.record_trace ? &recorder_ : nullptr;
    recorder_.unit = unit_;
}

void Simulator::end_unit() {
    ++unit_;
    if (options_.checkpoint_every != 0 && unit_ % options_.checkpoint_every == 0)
        checkpoints_.push_back(Checkpoint{unit_, kernel_.world});
}

// ---- topology ----

HostId Simulator::add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options) {
    return journaled(call::AddHost{name, addresses, options},
                     [&](Kernel& k) { return k.add_host(std::move(name), std::move(addresses), options); });
}

void Simulator::set_link(HostId a, HostId b, LinkConfig config) {
    journaled(call::SetLink{a, b, config}, [&](Kernel& k) { k.set_link(a, b, config); return 0; });
}

void Simulator::set_default_link(LinkConfig config) {
    journaled(call::SetDefaultLink{config}, [&](Kernel& k) { k.set_default_link(config); return 0; });
}

void Simulator::add_firewall_rule(HostId host, FirewallRule rule) {
    journaled(call::AddRule{host, rule}, [&](Kernel& k) { k.add_rule(host, rule); return 0; });
}

void Simulator::set_firewall_policy(HostId host, FirewallAction policy) {
    journaled(call::SetPolicy{host, policy}, [&](Kernel& k) { k.set_policy(host, policy); return 0; });
}

void Simulator::set_tcp_config(TcpConfig config) {
    journaled(call::SetTcpConfig{config}, [&](Kernel& k) { k.set_tcp_config(config); return 0; });
}

// ---- time ----

EventId Simulator::schedule(Time delay, Action action) {
    return journaled(call::Schedule{delay, action}, [&](Kernel& k) { return k.schedule(delay, std::move(action)); });
}

void Simulator::cancel(EventId id) {
    journaled(call::Cancel{id}, [&](Kernel& k) { k.cancel(id); return 0; });
}

bool Simulator::step() {
    if (kernel_.world.queue.empty()) return false;
    begin_unit();  // a queue step is a unit with no journal entry
    kernel_.step();
    end_unit();
    return true;
}

void Simulator::run_until(Time t) {
    while (true) {
        const auto next = kernel_.world.queue.next_time();
        if (!next || *next > t) break;
        step();
    }
    if (t > now()) journaled(call::AdvanceTo{t}, [&](Kernel& k) { k.advance_to(t); return 0; });
}

std::size_t Simulator::run_until_idle(std::size_t max_events) {
    std::size_t ran = 0;
    while (ran < max_events && step()) ++ran;
    return ran;
}

// ---- sockets ----

SysResult<SocketRef> Simulator::socket(HostId host, Protocol protocol, IpFamily family) {
    return journaled(call::Socket{host, protocol, family}, [&](Kernel& k) { return k.socket(host, protocol, family); });
}
SysResult<Ok> Simulator::set_reuse_address(SocketRef s, bool on) {
    return journaled(call::SetReuseAddress{s, on}, [&](Kernel& k) { return k.set_reuse_address(s, on); });
}
SysResult<Ok> Simulator::set_privileged(SocketRef s, bool on) {
    return journaled(call::SetPrivileged{s, on}, [&](Kernel& k) { return k.set_privileged(s, on); });
}
SysResult<Ok> Simulator::set_auto_reply(SocketRef s, Bytes reply) {
    return journaled(call::SetAutoReply{s, reply}, [&](Kernel& k) { return k.set_auto_reply(s, std::move(reply)); });
}
SysResult<Ok> Simulator::bind(SocketRef s, Endpoint local) {
    return journaled(call::Bind{s, local}, [&](Kernel& k) { return k.bind(s, local); });
}
SysResult<Ok> Simulator::listen(SocketRef s, std::uint32_t backlog) {
    return journaled(call::Listen{s, backlog}, [&](Kernel& k) { return k.listen(s, backlog); });
}
SysResult<Ok> Simulator::connect(SocketRef s, Endpoint remote) {
    return journaled(call::Connect{s, remote}, [&](Kernel& k) { return k.connect(s, remote); });
}
SysResult<SocketRef> Simulator::accept(SocketRef listener) {
    return journaled(call::Accept{listener}, [&](Kernel& k) { return k.accept(listener); });
}
SysResult<std::size_t> Simulator::send(SocketRef s, Bytes data) {
    return journaled(call::Send{s, data}, [&](Kernel& k) { return k.send(s, std::move(data)); });
}
SysResult<Bytes> Simulator::recv(SocketRef s) {
    return journaled(call::Recv{s}, [&](Kernel& k) { return k.recv(s); });
}
SysResult<std::size_t> Simulator::sendto(SocketRef s, Bytes data, Endpoint remote) {
    return journaled(call::SendTo{s, data, remote}, [&](Kernel& k) { return k.sendto(s, std::move(data), remote); });
}
SysResult<Datagram> Simulator::recvfrom(SocketRef s) {
    return journaled(call::RecvFrom{s}, [&](Kernel& k) { return k.recvfrom(s); });
}
SysResult<Ok> Simulator::close(SocketRef s) {
    return journaled(call::Close{s}, [&](Kernel& k) { return k.close(s); });
}
std::optional<Errno> Simulator::take_error(SocketRef s) {
    return journaled(call::TakeError{s}, [&](Kernel& k) { return k.take_error(s); });
}
void Simulator::note(HostId host, std::string text) {
    journaled(call::Note{host, text}, [&](Kernel& k) { k.note(host, std::move(text)); return 0; });
}
void Simulator::start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports) {
    journaled(call::StartScan{scanner, type, target, ports},
              [&](Kernel& k) { k.start_scan(scanner, type, target, std::move(ports)); return 0; });
}

// ---- replay ----

void Simulator::replay(Kernel& k, const Call& call) {
    std::visit(
        [&k](const auto& c) {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, call::AddHost>) (void)k.add_host(c.name, c.addresses, c.options);
            else if constexpr (std::is_same_v<T, call::SetLink>) k.set_link(c.a, c.b, c.config);
            else if constexpr (std::is_same_v<T, call::SetDefaultLink>) k.set_default_link(c.config);
            else if constexpr (std::is_same_v<T, call::AddRule>) k.add_rule(c.host, c.rule);
            else if constexpr (std::is_same_v<T, call::SetPolicy>) k.set_policy(c.host, c.policy);
            else if constexpr (std::is_same_v<T, call::SetTcpConfig>) k.set_tcp_config(c.config);
            else if constexpr (std::is_same_v<T, call::Schedule>) (void)k.schedule(c.delay, c.action);
            else if constexpr (std::is_same_v<T, call::Cancel>) k.cancel(c.id);
            else if constexpr (std::is_same_v<T, call::AdvanceTo>) k.advance_to(c.t);
            else if constexpr (std::is_same_v<T, call::Socket>) (void)k.socket(c.host, c.protocol, c.family);
            else if constexpr (std::is_same_v<T, call::SetReuseAddress>) (void)k.set_reuse_address(c.s, c.on);
            else if constexpr (std::is_same_v<T, call::SetPrivileged>) (void)k.set_privileged(c.s, c.on);
            else if constexpr (std::is_same_v<T, call::SetAutoReply>) (void)k.set_auto_reply(c.s, c.reply);
            else if constexpr (std::is_same_v<T, call::Bind>) (void)k.bind(c.s, c.local);
            else if constexpr (std::is_same_v<T, call::Listen>) (void)k.listen(c.s, c.backlog);
            else if constexpr (std::is_same_v<T, call::Connect>) (void)k.connect(c.s, c.remote);
            else if constexpr (std::is_same_v<T, call::Accept>) (void)k.accept(c.s);
            else if constexpr (std::is_same_v<T, call::Send>) (void)k.send(c.s, c.data);
            else if constexpr (std::is_same_v<T, call::Recv>) (void)k.recv(c.s);
            else if constexpr (std::is_same_v<T, call::SendTo>) (void)k.sendto(c.s, c.data, c.remote);
            else if constexpr (std::is_same_v<T, call::RecvFrom>) (void)k.recvfrom(c.s);
            else if constexpr (std::is_same_v<T, call::Close>) (void)k.close(c.s);
            else if constexpr (std::is_same_v<T, call::TakeError>) (void)k.take_error(c.s);
            else if constexpr (std::is_same_v<T, call::Note>) k.note(c.host, c.text);
            else if constexpr (std::is_same_v<T, call::StartScan>) k.start_scan(c.scanner, c.type, c.target, c.ports);
        },
        call);
}

World Simulator::world_after_units(std::uint64_t unit) const {
    unit = std::min(unit, unit_);
    if (!options_.keep_journal) return kernel_.world;
    const auto checkpoint = std::prev(std::upper_bound(
        checkpoints_.begin(), checkpoints_.end(), unit, [](std::uint64_t u, const Checkpoint& c) { return u < c.unit; }));
    Kernel kernel;
    kernel.world = checkpoint->world;
    auto entry = std::lower_bound(journal_.begin(), journal_.end(), checkpoint->unit,
                                  [](const JournalEntry& e, std::uint64_t u) { return e.unit < u; });
    for (std::uint64_t u = checkpoint->unit; u < unit; ++u) {
        if (entry != journal_.end() && entry->unit == u) {
            replay(kernel, entry->call);
            ++entry;
        } else {
            kernel.step();
        }
    }
    return kernel.world;
}

World Simulator::world_at_event(std::size_t n) const { return world_after_units(unit_of_event(n) + 1); }

void Simulator::clear_events() {
    recorder_.events.clear();
    recorder_.unit_of_event.clear();
}

}  // namespace portlab::sim
