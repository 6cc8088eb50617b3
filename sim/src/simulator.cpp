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
Result<std::string> Simulator::add_firewall_rule(HostId host, FirewallRule rule) { return kernel().add_rule(host, std::move(rule)); }
bool Simulator::remove_firewall_rule(HostId host, std::string_view rule_id) { return kernel().remove_rule(host, rule_id); }
void Simulator::set_firewall_policy(HostId host, FirewallAction policy) { kernel().set_policy(host, policy); }
void Simulator::set_tcp_config(TcpConfig config) { kernel().set_tcp_config(config); }

// ---- routers ----

namespace {

// The network an address lies on: the address with its host bits cleared.
IpAddress network_of(const IpAddress& address, std::uint8_t prefix_length) {
    auto bytes = std::vector<std::uint8_t>(address.bytes().begin(), address.bytes().end());
    std::size_t bits = prefix_length;
    for (auto& byte : bytes) {
        const unsigned keep = bits >= 8 ? 8u : static_cast<unsigned>(bits);
        byte = static_cast<std::uint8_t>(byte & (keep == 0 ? 0 : 0xFF << (8 - keep)));
        bits -= keep;
    }
    return IpAddress::from_bytes(bytes).value_or(address);
}

Route on_link(const Interface& interface) {
    return Route{network_of(interface.address, interface.prefix_length), interface.prefix_length, std::nullopt,
                 interface.address};
}

}  // namespace

HostId Simulator::add_router(std::string name, std::vector<Interface> interfaces, HostOptions options) {
    std::vector<IpAddress> addresses;
    for (const Interface& interface : interfaces) addresses.push_back(interface.address);
    if (options.role.empty()) options.role = "router";
    const HostId router = add_host(std::move(name), std::move(addresses), std::move(options));
    for (const Interface& interface : interfaces) kernel().add_route(router, on_link(interface));
    kernel().set_forwarding(router, true);
    return router;
}

void Simulator::set_network(HostId host, std::uint8_t prefix_length, std::optional<IpAddress> gateway,
                            std::optional<IpFamily> family) {
    const Host* h = world().host(host);
    if (h == nullptr) return;
    std::vector<IpAddress> addresses;
    for (const IpAddress& address : h->addresses)
        if (!family || address.family() == *family) addresses.push_back(address);
    for (const IpAddress& address : addresses) kernel().add_route(host, on_link(Interface{address, prefix_length}));
    if (!gateway) return;
    for (const IpAddress& address : addresses) {
        if (address.family() != gateway->family() || !in_network(*gateway, network_of(address, prefix_length), prefix_length))
            continue;
        const IpAddress any = gateway->is_v4() ? IpAddress::any_v4() : IpAddress::any_v6();
        kernel().add_route(host, Route{any, 0, gateway, address});
        return;
    }
}

void Simulator::add_route(HostId host, Route route) { kernel().add_route(host, route); }
void Simulator::add_nat(HostId router, IpAddress outside) { kernel().set_masquerade(router, outside); }
void Simulator::add_port_forward(HostId router, Protocol protocol, Port port, Endpoint to,
                                 std::optional<IpAddress> arriving_on) {
    kernel().add_port_forward(router, PortForward{protocol, port, to, arriving_on});
}
void Simulator::set_stateful_firewall(HostId router, IpAddress outside, FirewallAction new_from_outside) {
    kernel().set_stateful_firewall(router, StatefulFirewall{outside, new_from_outside});
}

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
SysResult<Ok> Simulator::set_ttl(SocketRef s, std::uint8_t ttl) { return kernel().set_ttl(s, ttl); }
SysResult<Ok> Simulator::set_v6only(SocketRef s, bool on) { return kernel().set_v6only(s, on); }
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


std::optional<Endpoint> Simulator::peer_name(SocketRef s) const {
    const Socket* socket = find_socket(s);
    if (socket == nullptr || !socket->remote) return std::nullopt;
    return named_for(*socket, *socket->remote);
}

std::optional<Endpoint> Simulator::local_name(SocketRef s) const {
    const Socket* socket = find_socket(s);
    if (socket == nullptr || !socket->local) return std::nullopt;
    return named_for(*socket, *socket->local);
}
void Simulator::note(HostId host, std::string text) { kernel().note(host, std::move(text)); }
void Simulator::start_scan(HostId scanner, scan::ScanType type, IpAddress target, std::vector<Port> ports) {
    kernel().start_scan(scanner, type, target, std::move(ports));
}

}  // namespace portlab::sim
