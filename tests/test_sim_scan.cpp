// The scanner model against nmap's own definitions of its port states
// (nmap.org/book/man-port-scanning-basics.html and man-port-scanning-techniques.html):
//   SYN / connect scan: SYN+ACK (connection) -> open; RST (refused) -> closed;
//                       nothing, or ICMP unreachable -> filtered.
//   ACK scan:           RST -> unfiltered (open and closed alike); nothing or ICMP -> filtered.
//   UDP scan:           a UDP answer -> open; ICMP port unreachable -> closed;
//                       other ICMP unreachable -> filtered; nothing -> open|filtered.
#include <catch2/catch.hpp>

#include <set>

#include "portlab/sim/scenarios.hpp"
#include "replay/state.hpp"
#include "test_sim_script.hpp"

using namespace portlab;
using namespace portlab::sim;
using scan::PortState;
using scan::Reason;
using scan::ScanType;

namespace {

enum class Target { open, closed, firewall_accept, firewall_drop, firewall_reject, firewall_reject_default, firewall_reject_admin };

std::string name_of(Target t) {
    switch (t) {
        case Target::open: return "open service, no firewall";
        case Target::closed: return "nothing listening, no firewall";
        case Target::firewall_accept: return "service behind ACCEPT port, then DROP all";
        case Target::firewall_drop: return "service behind DROP";
        case Target::firewall_reject: return "service behind reject with tcp reset (TCP) / icmpx port-unreachable (UDP)";
        case Target::firewall_reject_default: return "service behind a plain reject (nft's default: ICMP port unreachable)";
        case Target::firewall_reject_admin: return "service behind reject with icmpx admin-prohibited";
    }
    return "";
}

scan::Verdict scan_once(ScanType type, Target target) {
    constexpr Port port = 4242;
    const Protocol protocol = scan::protocol_of(type);
    Simulator sim{11};
    const HostId scanner = sim.add_host("scanner", {scanner_address});
    const HostId server = sim.add_host("server", {server_address});
    if (target != Target::closed) {
        const SocketRef s = sim.socket(server, protocol).value();
        REQUIRE(sim.bind(s, {IpAddress::any_v4(), port}));
        if (protocol == Protocol::tcp) REQUIRE(sim.listen(s, 16));
        else (void)sim.set_auto_reply(s, {'h', 'i'});
    }
    switch (target) {
        case Target::firewall_accept:
            REQUIRE(sim.add_firewall_rule(server, accept_port(protocol, port)));
            REQUIRE(sim.add_firewall_rule(server, drop_all()));
            break;
        case Target::firewall_drop: REQUIRE(sim.add_firewall_rule(server, drop_port(protocol, port))); break;
        case Target::firewall_reject:
            REQUIRE(sim.add_firewall_rule(server, reject_port(protocol, port,
                                                              protocol == Protocol::tcp ? RejectWith::tcp_reset
                                                                                        : RejectWith::icmp_port_unreachable)));
            break;
        case Target::firewall_reject_default: REQUIRE(sim.add_firewall_rule(server, reject_port(protocol, port))); break;
        case Target::firewall_reject_admin:
            REQUIRE(sim.add_firewall_rule(server, reject_port(protocol, port, RejectWith::icmp_admin_prohibited)));
            break;
        default: break;
    }
    sim.start_scan(scanner, type, server_address, {port});
    sim.run_until_idle();
    REQUIRE(sim.world().probes.size() == 1);
    REQUIRE(sim.world().probes[0].result.has_value());
    return *sim.world().probes[0].result;
}

}  // namespace

TEST_CASE("every scan type reports the port state and reason nmap defines for each kind of target", "[sim][scan]") {
    using P = PortState;
    using R = Reason;
    // (scan, target, state and reason nmap reports)
    const auto [type, target, state, reason] = GENERATE(table<ScanType, Target, PortState, Reason>({
        {ScanType::syn, Target::open, P::open, R::syn_ack},
        {ScanType::syn, Target::closed, P::closed, R::reset},
        {ScanType::syn, Target::firewall_accept, P::open, R::syn_ack},
        {ScanType::syn, Target::firewall_drop, P::filtered, R::no_response},
        {ScanType::syn, Target::firewall_reject, P::closed, R::reset},  // an RST from the firewall looks like a closed port
        {ScanType::syn, Target::firewall_reject_default, P::filtered, R::port_unreach},  // ICMP to a TCP probe: filtered
        {ScanType::syn, Target::firewall_reject_admin, P::filtered, R::admin_prohibited},
        {ScanType::connect, Target::open, P::open, R::syn_ack},
        {ScanType::connect, Target::closed, P::closed, R::conn_refused},
        {ScanType::connect, Target::firewall_accept, P::open, R::syn_ack},
        {ScanType::connect, Target::firewall_drop, P::filtered, R::no_response},
        {ScanType::connect, Target::firewall_reject, P::closed, R::conn_refused},
        // connect() hears ICMP through the kernel: port unreachable is a hard ECONNREFUSED,
        // admin-prohibited a hard EHOSTUNREACH (icmp_err_convert).
        {ScanType::connect, Target::firewall_reject_default, P::closed, R::conn_refused},
        {ScanType::connect, Target::firewall_reject_admin, P::filtered, R::host_unreach},
        {ScanType::ack, Target::open, P::unfiltered, R::reset},
        {ScanType::ack, Target::closed, P::unfiltered, R::reset},
        {ScanType::ack, Target::firewall_accept, P::unfiltered, R::reset},
        {ScanType::ack, Target::firewall_drop, P::filtered, R::no_response},
        {ScanType::ack, Target::firewall_reject, P::unfiltered, R::reset},  // the RST answers the ACK probe
        {ScanType::ack, Target::firewall_reject_default, P::filtered, R::port_unreach},
        {ScanType::ack, Target::firewall_reject_admin, P::filtered, R::admin_prohibited},
        {ScanType::udp, Target::open, P::open, R::udp_response},
        {ScanType::udp, Target::closed, P::closed, R::port_unreach},
        {ScanType::udp, Target::firewall_accept, P::open, R::udp_response},
        {ScanType::udp, Target::firewall_drop, P::open_filtered, R::no_response},
        {ScanType::udp, Target::firewall_reject, P::closed, R::port_unreach},  // ICMP port unreachable, as from a closed port
        {ScanType::udp, Target::firewall_reject_default, P::closed, R::port_unreach},
        {ScanType::udp, Target::firewall_reject_admin, P::filtered, R::admin_prohibited},
    }));
    CAPTURE(to_string(type), name_of(target));
    const auto got = scan_once(type, target);
    CHECK(std::string(to_string(got.state)) + " " + std::string(to_string(got.reason)) ==
          std::string(to_string(state)) + " " + std::string(to_string(reason)));
}

TEST_CASE("the scan scenario shows every nmap state at least once", "[sim][scan][scenario]") {
    const auto story = run_scenario("scan");
    REQUIRE(story);
    std::set<std::string> states;
    for (const Probe& probe : story->world().probes) {
        REQUIRE(probe.result);
        states.insert(std::string(to_string(probe.result->state)));
    }
    CHECK(states == std::set<std::string>{"open", "closed", "filtered", "unfiltered", "open|filtered"});
}

TEST_CASE("the scan's trace tells each probe and each verdict, and the replay ends knowing what the model knows", "[sim][scan][trace]") {
    const auto story = run_scenario("scan");
    REQUIRE(story);
    const auto& events = story->events();
    const replay::State end = replay::Timeline::of(trace::Trace{{}, events}).state_at(events.size());
    const auto scanner = end.find_host("scanner");
    REQUIRE(scanner);
    const auto& scanned = end.hosts()[*scanner].scanned;
    REQUIRE(scanned.size() == story->world().probes.size());
    for (const Probe& probe : story->world().probes) {
        CAPTURE(to_string(probe.type), probe.target.to_string());
        const auto port = scanned.find({probe.type, probe.target});
        REQUIRE(port != scanned.end());
        CHECK(port->second.probes == probe.tries);  // one scan_probe per probe sent, retransmissions included
        CHECK(port->second.state == probe.result->state);
        CHECK(port->second.reason == probe.result->reason);
    }
    // Each probe is told before its packet leaves: a scan_probe right before the scanner's
    // raw packet, or before the connect scan's connect().
    for (std::size_t n = 0; n < events.size(); ++n) {
        const auto* probe = std::get_if<trace::ScanProbe>(&events[n].body);
        if (probe == nullptr) continue;
        CAPTURE(n, to_string(probe->scan));
        REQUIRE(n + 1 < events.size());
        if (probe->scan == ScanType::connect) {
            const auto* connect = std::get_if<trace::ConnectStarted>(&events[n + 1].body);
            REQUIRE(connect != nullptr);
            CHECK(probe->socket == connect->socket);
            CHECK(connect->remote == probe->target);
        } else {
            const auto* packet = std::get_if<trace::Packet>(&events[n + 1].body);
            REQUIRE(packet != nullptr);
            CHECK(packet->kind == trace::PacketKind::sent);
            CHECK(decode_ip(packet->bytes)->destination() == probe->target);
        }
    }
}

namespace {

// A scan of port 22 of a server where sshd listens there or not, run to the end.
struct ScanOfPort22 {
    Simulator sim{3};
    HostId scanner;
    HostId server;
    std::optional<SocketRef> sshd;
};
ScanOfPort22 scan_port_22(ScanType type, bool listening) {
    ScanOfPort22 run;
    run.scanner = run.sim.add_host("scanner", {scanner_address});
    run.server = run.sim.add_host("server", {server_address});
    if (listening) {
        run.sshd = run.sim.socket(run.server, Protocol::tcp).value();
        REQUIRE(run.sim.set_privileged(*run.sshd));
        REQUIRE(run.sim.bind(*run.sshd, {IpAddress::any_v4(), 22}));
        REQUIRE(run.sim.listen(*run.sshd, 4));
    }
    run.sim.start_scan(run.scanner, type, server_address, {22});
    run.sim.run_until_idle();
    return run;
}

// The TCP flags of each packet the scanner sent.
std::vector<std::string> flags_sent_by_scanner(const Simulator& sim) {
    std::vector<std::string> flags;
    for (const auto& event : sim.events())
        if (const auto* p = std::get_if<trace::Packet>(&event.body); p && p->kind == trace::PacketKind::sent && event.host == "scanner")
            flags.push_back(tcp_flags_to_string(decode_ip(p->bytes)->tcp->flags));
    return flags;
}

}  // namespace

TEST_CASE("a SYN scan is half-open: the scanner's own kernel resets the SYN+ACK", "[sim][scan]") {
    const ScanOfPort22 run = scan_port_22(ScanType::syn, true);
    // nmap's raw SYN, then the RST the scanner host's kernel sends for a connection it never made.
    CHECK(flags_sent_by_scanner(run.sim) == std::vector<std::string>{"SYN", "RST"});
    CHECK(run.sim.world().hosts[run.server.value].find(run.sshd->id)->accept_queue.empty());
}

TEST_CASE("a connect scan is a full handshake closed by RST, and it reports as soon as connect() returns", "[sim][scan]") {
    // nmap's init_socket() sets SO_LINGER {1, 0} on every socket of a connect scan, so its
    // close() is an RST (nmap.org/book/scan-methods-connect-scan.html shows the capture);
    // and it polls the non-blocking connect(), so it knows the port's state in one round trip.
    for (const bool open : {true, false}) {
        CAPTURE(open);
        const ScanOfPort22 run = scan_port_22(ScanType::connect, open);
        const Simulator& sim = run.sim;
        // The scanner's kernel: SYN, the handshake's ACK, then close() with linger 0: RST.
        // A refused connect() sends nothing more.
        CHECK(flags_sent_by_scanner(sim) ==
              (open ? std::vector<std::string>{"SYN", "ACK", "RST,ACK"} : std::vector<std::string>{"SYN"}));
        // The verdict came one round trip (2 x 1 ms) after the SYN, not at the probe's timeout.
        std::optional<std::uint64_t> concluded;
        for (const auto& event : sim.events())
            if (const auto* result = std::get_if<trace::ScanResult>(&event.body); result && result->target.port == 22)
                concluded = event.t_us;
        REQUIRE(concluded);
        CHECK(*concluded == 2 * milliseconds);
        REQUIRE(sim.world().probes.at(0).result);
        CHECK(sim.world().probes.at(0).result->state == (open ? PortState::open : PortState::closed));
        // Nothing is left of the connection on either side: the RST ended the server's too.
        CHECK(sim.world().hosts[run.scanner.value].slot_of.empty());
        CHECK(sim.world().hosts[run.server.value].slot_of.size() == (open ? 1U : 0U));
    }
}
