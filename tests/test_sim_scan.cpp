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
            sim.add_firewall_rule(server, accept_port(protocol, port));
            sim.add_firewall_rule(server, drop_all());
            break;
        case Target::firewall_drop: sim.add_firewall_rule(server, drop_port(protocol, port)); break;
        case Target::firewall_reject:
            sim.add_firewall_rule(server, reject_port(protocol, port,
                                                      protocol == Protocol::tcp ? RejectWith::tcp_reset
                                                                                : RejectWith::icmp_port_unreachable));
            break;
        case Target::firewall_reject_default: sim.add_firewall_rule(server, reject_port(protocol, port)); break;
        case Target::firewall_reject_admin:
            sim.add_firewall_rule(server, reject_port(protocol, port, RejectWith::icmp_admin_prohibited));
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

TEST_CASE("a SYN scan is half-open: the scanner's own kernel resets the SYN+ACK", "[sim][scan]") {
    Simulator sim{3};
    const HostId scanner = sim.add_host("scanner", {scanner_address});
    const HostId server = sim.add_host("server", {server_address});
    const SocketRef s = sim.socket(server, Protocol::tcp).value();
    REQUIRE(sim.set_privileged(s));
    REQUIRE(sim.bind(s, {IpAddress::any_v4(), 22}));
    REQUIRE(sim.listen(s, 4));
    sim.start_scan(scanner, ScanType::syn, server_address, {22});
    sim.run_until_idle();
    std::vector<std::string> sent_by_scanner;
    for (const auto& event : sim.events())
        if (const auto* p = std::get_if<trace::Packet>(&event.body); p && p->kind == trace::PacketKind::sent && event.host == "scanner")
            sent_by_scanner.push_back(tcp_flags_to_string(decode_ip(p->bytes)->tcp->flags));
    // nmap's raw SYN, then the RST the scanner host's kernel sends for a connection it never made.
    CHECK(sent_by_scanner == std::vector<std::string>{"SYN", "RST"});
    CHECK(sim.world().hosts[server.value].find(s.id)->accept_queue.empty());
}
