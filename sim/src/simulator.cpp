#include "portlab/sim/simulator.hpp"

namespace portlab::sim {

Simulator::Simulator(SimOptions options) : options_(options) {
    // The seed fixes every random choice: the generator, and the per-boot hash secret.
    kernel_.world.rng = Rng{options.seed};
    kernel_.world.secret = Rng{options.seed ^ 0xa5a5a5a5a5a5a5a5ULL}.next();
}

// ---- topology ----

HostId Simulator::add_host(std::string name, std::vector<IpAddress> addresses, HostOptions options) {
    return kernel().add_host(std::move(name), std::move(addresses), std::move(options));
}
void Simulator::set_link(HostId a, HostId b, LinkConfig config) { kernel().set_link(a, b, config); }
void Simulator::set_default_link(LinkConfig config) { kernel().set_default_link(config); }
std::string Simulator::add_firewall_rule(HostId host, FirewallRule rule) { return kernel().add_rule(host, std::move(rule)); }
bool Simulator::remove_firewall_rule(HostId host, std::string_view rule_id) { return kernel().remove_rule(host, rule_id); }
void Simulator::set_firewall_policy(HostId host, FirewallAction policy) { kernel().set_policy(host, policy); }
void Simulator::set_tcp_config(TcpConfig config) { kernel().set_tcp_config(config); }

// ---- time ----

EventId Simulator::schedule(Time delay, Action action) { return kernel().schedule(delay, std::move(action)); }
void Simulator::cancel(EventId id) { kernel().cancel(id); }

bool Simulator::step() {
    if (kernel_.world.queue.empty()) return false;
    kernel().step();
    return true;
}

void Simulator::run_until(Time t) {
    while (true) {
        const auto next = kernel_.world.queue.next_time();
        if (!next || *next > t) break;
        step();
    }
    if (t > now()) kernel().advance_to(t);
}

std::size_t Simulator::run_until_idle(std::size_t max_events) {
    std::size_t ran = 0;
    while (ran < max_events && step()) ++ran;
    return ran;
}

// ---- sockets ----

SysResult<SocketRef> Simulator::socket(HostId host, Protocol protocol, IpFamily family) {
    return kernel().socket(host, protocol, family);
}
SysResult<Ok> Simulator::set_reuse_address(SocketRef s, bool on) { return kernel().set_reuse_address(s, on); }
SysResult<Ok> Simulator::set_privileged(SocketRef s, bool on) { return kernel().set_privileged(s, on); }
SysResult<Ok> Simulator::set_linger_zero(SocketRef s, bool on) { return kernel().set_linger_zero(s, on); }
SysResult<Ok> Simulator::set_auto_reply(SocketRef s, Bytes reply) { return kernel().set_auto_reply(s, std::move(reply)); }
SysResult<Ok> Simulator::bind(SocketRef s, Endpoint local) { return kernel().bind(s, local); }
SysResult<Ok> Simulator::listen(SocketRef s, std::uint32_t backlog) { return kernel().listen(s, backlog); }
SysResult<Ok> Simulator::connect(SocketRef s, Endpoint remote) { return kernel().connect(s, remote); }
SysResult<SocketRef> Simulator::accept(SocketRef listener) { return kernel().accept(listener); }
SysResult<std::size_t> Simulator::send(SocketRef s, Bytes data) { return kernel().send(s, std::move(data)); }
SysResult<Bytes> Simulator::recv(SocketRef s) { return kernel().recv(s); }
SysResult<std::size_t> Simulator::sendto(SocketRef s, Bytes data, Endpoint remote) {
    return kernel().sendto(s, std::move(data), remote);
}
SysResult<Datagram> Simulator::recvfrom(SocketRef s) { return kernel().recvfrom(s); }
SysResult<Ok> Simulator::close(SocketRef s) { return kernel().close(s); }
std::optional<Errno> Simulator::take_error(SocketRef s) { return kernel().take_error(s); }
void Simulator::note(HostId host, std::string text) { kernel().note(host, std::move(text)); }
void Simulator::start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports) {
    kernel().start_scan(scanner, type, target, std::move(ports));
}

}  // namespace portlab::sim
