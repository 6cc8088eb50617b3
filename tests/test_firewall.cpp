// The firewall module against the kernel: rules applied through libnftables inside a
// private network namespace, checked with real sockets (what connect() and recv()
// answer), and the refusal to run anywhere else.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "labkit/nftables.hpp"
#include "portlab/firewall_rule.hpp"
#include "labkit/netns.hpp"
#include "support.hpp"

using namespace portlab;
using nlohmann::json;

namespace {

sockaddr_in loopback(Port port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

int listener(int type, Port port) {
    const int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    const auto address = loopback(port);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return -1;
    if (type == SOCK_STREAM && listen(fd, 8) != 0) return -1;
    return fd;
}

std::string errno_string(int error) {
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : std::to_string(error);
}

// A non-blocking connect() given `wait_ms` to finish: "connected", an errno name, or
// "no answer" with the kernel's TCP state of the socket still waiting.
json connect_within(Port port, int wait_ms) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const auto address = loopback(port);
    json result;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        result["outcome"] = "connected";
    } else if (errno != EINPROGRESS) {
        result["outcome"] = errno_string(errno);
    } else {
        pollfd waiting{fd, POLLOUT, 0};
        if (poll(&waiting, 1, wait_ms) == 0) {
            tcp_info info{};
            socklen_t length = sizeof info;
            getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length);
            result["outcome"] = "no answer";
            result["tcpi_state"] = info.tcpi_state;
        } else {
            int error = 0;
            socklen_t length = sizeof error;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
            result["outcome"] = error == 0 ? std::string("connected") : errno_string(error);
        }
    }
    close(fd);
    return result;
}

// A connected UDP socket sends one datagram and waits for the kernel's verdict: an ICMP
// port unreachable arrives as ECONNREFUSED on the next recv() (udp(7), IP_RECVERR off).
std::string udp_send_and_listen(Port port, int wait_ms) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto address = loopback(port);
    connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    send(fd, "ping", 4, 0);
    pollfd waiting{fd, POLLIN, 0};
    std::string outcome = "no answer";
    if (poll(&waiting, 1, wait_ms) > 0) {
        char buffer[16];
        outcome = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) >= 0 ? "reply" : errno_string(errno);
    }
    close(fd);
    return outcome;
}

}  // namespace

TEST_CASE("a hub firewall rule prints in nft syntax and reads back", "[firewall][rule]") {
    CHECK(*nft_text(drop_port(Protocol::tcp, 22)) == "tcp dport 22 drop");
    CHECK(*nft_text(reject_port(Protocol::udp, 53, RejectWith::icmp_port_unreachable)) ==
          "udp dport 53 reject with icmpx type port-unreachable");
    CHECK(*nft_text(reject_port(Protocol::tcp, 8082, RejectWith::tcp_reset)) == "tcp dport 8082 reject with tcp reset");
    CHECK(*nft_text(reject_port(Protocol::tcp, 9000)) == "tcp dport 9000 reject");
    CHECK(*nft_text(reject_port(Protocol::tcp, 23, RejectWith::icmp_admin_prohibited)) ==
          "tcp dport 23 reject with icmpx type admin-prohibited");
    CHECK(*nft_text(drop_all()) == "drop");
    FirewallRule full;
    full.protocol = Protocol::tcp;
    full.source = *IpAddress::parse("192.0.2.7");
    full.destination = *IpAddress::parse("198.51.100.1");
    full.source_ports = PortRange{1024, 65535};
    full.destination_ports = PortRange{8000, 8080};
    full.action = FirewallAction::reject;
    full.reject_with = RejectWith::icmp_host_unreachable;
    CHECK(*nft_text(full) ==
          "ip saddr 192.0.2.7 ip daddr 198.51.100.1 tcp sport 1024-65535 tcp dport 8000-8080 reject with icmpx type "
          "host-unreachable");
    FirewallRule any_udp;
    any_udp.protocol = Protocol::udp;
    any_udp.source = *IpAddress::parse("2001:db8::1");
    CHECK(*nft_text(any_udp) == "ip6 saddr 2001:db8::1 meta l4proto udp accept");

    SECTION("what nft would refuse is refused") {
        CHECK_FALSE(nft_text(reject_port(Protocol::udp, 53, RejectWith::tcp_reset)));
        CHECK_FALSE(nft_text(drop_port(Protocol::tcp, 0)));
        FirewallRule bare_port;
        bare_port.destination_ports = PortRange{22, 22};
        CHECK_FALSE(nft_text(bare_port));
        FirewallRule backwards = drop_port(Protocol::tcp, 22);
        backwards.destination_ports = PortRange{30, 20};
        CHECK_FALSE(nft_text(backwards));
        FirewallRule mixed;
        mixed.source = *IpAddress::parse("192.0.2.1");
        mixed.destination = *IpAddress::parse("2001:db8::1");
        CHECK_FALSE(nft_text(mixed));
    }
    SECTION("parse_nft_rule reads every rule nft_text writes") {
        for (const auto& rule : {drop_port(Protocol::tcp, 22), reject_port(Protocol::tcp, 1, RejectWith::tcp_reset),
                                 reject_port(Protocol::udp, 2, RejectWith::icmp_admin_prohibited),
                                 reject_port(Protocol::udp, 3), accept_port(Protocol::udp, 4), drop_all(), full, any_udp}) {
            const auto text = nft_text(rule);
            REQUIRE(text);
            CAPTURE(*text);
            const auto back = parse_nft_rule(*text);
            REQUIRE(back);
            CHECK(*back == rule);
        }
        // nft lists icmpx rejects without the word "type".
        CHECK(parse_nft_rule("tcp dport 10 reject with icmpx admin-prohibited")->reject_with ==
              RejectWith::icmp_admin_prohibited);
        CHECK_FALSE(parse_nft_rule("tcp dport 10"));
        CHECK_FALSE(parse_nft_rule("tcp dport 10 drop now"));
        CHECK_FALSE(parse_nft_rule("udp dport 10 reject with tcp reset"));
        CHECK_FALSE(parse_nft_rule("ip saddr 2001:db8::1 drop"));
    }
    SECTION("actions and reject types parse back from their names") {
        for (const auto action : {FirewallAction::accept, FirewallAction::drop, FirewallAction::reject})
            CHECK(*parse_firewall_action(to_string(action)) == action);
        for (const auto with : {RejectWith::nft_default, RejectWith::tcp_reset, RejectWith::icmp_port_unreachable,
                                RejectWith::icmp_host_unreachable, RejectWith::icmp_admin_prohibited})
            CHECK(*parse_reject_with(to_string(with)) == with);
        CHECK_FALSE(parse_firewall_action("allow"));
        CHECK(icmpx_type(RejectWith::nft_default) == IcmpxType::port_unreachable);
        CHECK_FALSE(icmpx_type(RejectWith::tcp_reset).has_value());
    }
}

TEST_CASE("a ruleset is one transaction that replaces the portlab table", "[firewall]") {
    const FirewallRule rules[] = {drop_port(Protocol::tcp, 1), reject_port(Protocol::tcp, 2, RejectWith::tcp_reset)};
    const auto text = firewall::ruleset_text(rules);
    REQUIRE(text);
    CHECK(text->find("delete table inet portlab") != std::string::npos);
    CHECK(text->find("type filter hook input priority filter; policy accept;") != std::string::npos);
    CHECK(text->find("    tcp dport 1 drop\n    tcp dport 2 reject with tcp reset\n") != std::string::npos);
    // A rule nft would refuse makes the whole ruleset an error.
    const FirewallRule bad[] = {drop_port(Protocol::tcp, 1), reject_port(Protocol::udp, 2, RejectWith::tcp_reset)};
    CHECK_FALSE(firewall::ruleset_text(bad));
}

TEST_CASE("the firewall refuses to run outside a private network namespace", "[firewall]") {
    const auto here = firewall::network_namespace_id();
    REQUIRE(here);
    // Claiming that the namespace we are in is the "outer" one: we have not left it.
    const auto token = firewall::PrivateNetnsToken::confirm(*here);
    REQUIRE_FALSE(token);
    CHECK(token.error().message.find("refusing") != std::string::npos);
}

TEST_CASE("in a private namespace, drop, reject and accept rules change what sockets see", "[firewall][netns]") {
    const auto outer = firewall::network_namespace_id();
    REQUIRE(outer);
    const Port open_port = 8080, dropped = 8081, reset = 8082, udp_rejected = 5353;

    const auto facts = run_in_private_netns(
        [&]() -> json {
            json result;
            // A token with the inner namespace named as "outer" is refused even here.
            const auto inner = firewall::network_namespace_id();
            result["self_as_outer_refused"] = !firewall::PrivateNetnsToken::confirm(*inner);

            auto token = firewall::PrivateNetnsToken::confirm(*outer);
            if (!token) return {{"error", token.error().message}};
            auto nft = firewall::Nftables::open(*token);
            if (!nft) return {{"error", nft.error().message}};
            const auto applied = nft->apply({drop_port(Protocol::tcp, dropped),
                                             reject_port(Protocol::tcp, reset, RejectWith::tcp_reset),
                                             reject_port(Protocol::udp, udp_rejected, RejectWith::icmp_port_unreachable)});
            if (!applied) return {{"error", applied.error().message}};
            // Applying the same ruleset again replaces it instead of adding to it.
            const auto again = nft->apply({drop_port(Protocol::tcp, dropped),
                                           reject_port(Protocol::tcp, reset, RejectWith::tcp_reset),
                                           reject_port(Protocol::udp, udp_rejected, RejectWith::icmp_port_unreachable)});
            result["applied_twice"] = static_cast<bool>(again);

            // Every port has a listener, so any refusal is the firewall's, not a closed port's.
            const int fds[] = {listener(SOCK_STREAM, open_port), listener(SOCK_STREAM, dropped),
                               listener(SOCK_STREAM, reset), listener(SOCK_DGRAM, udp_rejected)};
            result["listeners_ok"] = fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && fds[3] >= 0;

            result["open"] = connect_within(open_port, 2000);
            result["drop"] = connect_within(dropped, 500);
            result["reset"] = connect_within(reset, 2000);
            result["udp_rejected"] = udp_send_and_listen(udp_rejected, 2000);

            const auto listing = nft->list_ruleset();
            result["listing"] = listing ? *listing : listing.error().message;
            const auto listing_json = nft->list_ruleset_json();
            result["listing_json_ok"] = listing_json && listing_json->contains("nftables");

            const auto cleared = nft->clear();
            result["after_clear_drop"] = cleared ? connect_within(dropped, 2000) : json(cleared.error().message);
            for (const int fd : fds) close(fd);
            return result;
        },
        {}, std::chrono::seconds(20));

    REQUIRE(facts);
    INFO(facts->dump(2));
    REQUIRE_FALSE(facts->contains("error"));
    CHECK((*facts)["self_as_outer_refused"] == true);
    CHECK((*facts)["applied_twice"] == true);
    CHECK((*facts)["listeners_ok"] == true);

    SECTION("accept: the handshake completes") { CHECK((*facts)["open"]["outcome"] == "connected"); }
    SECTION("drop: no answer, the socket stays in SYN-SENT (kernel TCP_SYN_SENT = 2)") {
        CHECK((*facts)["drop"]["outcome"] == "no answer");
        CHECK((*facts)["drop"]["tcpi_state"] == TCP_SYN_SENT);
    }
    SECTION("reject with tcp reset: ECONNREFUSED, though a listener holds the port") {
        CHECK((*facts)["reset"]["outcome"] == "ECONNREFUSED");
    }
    SECTION("ICMP port unreachable for UDP: ECONNREFUSED on the connected UDP socket") {
        CHECK((*facts)["udp_rejected"] == "ECONNREFUSED");
    }
    SECTION("nft lists the rules back from the kernel") {
        const std::string listing = (*facts)["listing"];
        CHECK(listing.find("table inet portlab") != std::string::npos);
        CHECK(listing.find("tcp dport 8081 drop") != std::string::npos);
        CHECK(listing.find("tcp dport 8082 reject with tcp reset") != std::string::npos);
        CHECK(listing.find("udp dport 5353 reject") != std::string::npos);
        CHECK((*facts)["listing_json_ok"] == true);
    }
    SECTION("after clear() the dropped port answers again") {
        CHECK((*facts)["after_clear_drop"]["outcome"] == "connected");
    }
}

// ---- lab 18's matches: chain, iifname, ct state, tcp flags -------------------------------------

namespace {

FirewallRule stateful_rule(std::optional<std::string> interface, CtStates states, FirewallAction action) {
    FirewallRule rule;
    rule.chain = FirewallChain::forward;
    rule.in_interface = std::move(interface);
    rule.ct_states = states;
    rule.action = action;
    return rule;
}

constexpr CtStates replies = CtStates{}.with(CtState::established).with(CtState::related);
constexpr CtStates fresh = CtStates{}.with(CtState::new_connection);

FirewallRule syn_from(std::string interface) {
    FirewallRule rule;
    rule.chain = FirewallChain::forward;
    rule.in_interface = std::move(interface);
    rule.protocol = Protocol::tcp;
    rule.tcp_flags = TcpFlagsMatch{tcp_flag::syn | tcp_flag::ack, tcp_flag::syn};
    rule.action = FirewallAction::drop;
    return rule;
}

// Lab 18's rules and a few more of the same kinds.
std::vector<FirewallRule> stateful_examples() {
    FirewallRule reject_new = stateful_rule("eth0", fresh, FirewallAction::reject);
    reject_new.reject_with = RejectWith::icmp_admin_prohibited;
    FirewallRule synack = syn_from("eth1");
    synack.tcp_flags = TcpFlagsMatch{tcp_flag::syn | tcp_flag::ack, tcp_flag::syn | tcp_flag::ack};
    synack.destination_ports = PortRange{8080, 8080};
    FirewallRule no_flags = syn_from("eth1");
    no_flags.tcp_flags = TcpFlagsMatch{tcp_flag::syn | tcp_flag::ack, 0};
    FirewallRule one_flag = syn_from("eth1");
    one_flag.tcp_flags = TcpFlagsMatch{tcp_flag::syn, tcp_flag::syn};
    one_flag.ct_states = CtStates{}.with(CtState::invalid).with(CtState::new_connection);
    return {stateful_rule(std::nullopt, replies, FirewallAction::accept),
            stateful_rule("router-server", fresh, FirewallAction::accept),
            stateful_rule("router-client", fresh, FirewallAction::drop),
            stateful_rule("router-client", CtStates{}.with(CtState::invalid), FirewallAction::drop),
            syn_from("router-client"), reject_new, synack, no_flags, one_flag};
}

}  // namespace

TEST_CASE("lab 18's rules: iifname, ct state and tcp flags in nft's words, read back", "[firewall][stateful]") {
    CHECK(*nft_text(stateful_rule(std::nullopt, replies, FirewallAction::accept)) == "ct state established,related accept");
    CHECK(*nft_text(stateful_rule("router-client", fresh, FirewallAction::drop)) == "iifname \"router-client\" ct state new drop");
    CHECK(*nft_text(syn_from("router-client")) == "iifname \"router-client\" tcp flags & (syn | ack) == syn drop");
    for (const auto& rule : stateful_examples()) {
        const auto text = nft_text(rule);
        REQUIRE(text);
        CAPTURE(*text);
        const auto back = parse_nft_rule(*text, FirewallChain::forward);
        REQUIRE(back);
        CHECK(*back == rule);
        // The chain is not in the text: read as an input chain's line, only that differs.
        FirewallRule input = rule;
        input.chain = FirewallChain::input;
        CHECK(*parse_nft_rule(*text) == input);
    }
    CHECK(*parse_ct_states("related,established") == replies);
    CHECK(to_string(*parse_ct_states("new,invalid")) == "invalid,new");
    CHECK(*parse_firewall_chain("forward") == FirewallChain::forward);
    CHECK(to_string(FirewallChain::input) == "input");
}

TEST_CASE("what nft would refuse in a stateful rule is refused", "[firewall][stateful]") {
    const auto refused = [](FirewallRule rule) { return !check_rule(rule) && !nft_text(rule); };
    CHECK(refused(stateful_rule(std::nullopt, CtStates{}, FirewallAction::accept)));  // ct state of nothing
    CHECK(refused(stateful_rule("", fresh, FirewallAction::drop)));
    CHECK(refused(stateful_rule("a-name-of-16-chr", fresh, FirewallAction::drop)));  // IFNAMSIZ
    CHECK(refused(stateful_rule("two words", fresh, FirewallAction::drop)));
    CHECK(refused(stateful_rule("quo\"te", fresh, FirewallAction::drop)));
    FirewallRule udp_flags = syn_from("eth0");
    udp_flags.protocol = Protocol::udp;
    CHECK(refused(udp_flags));
    FirewallRule outside_mask = syn_from("eth0");
    outside_mask.tcp_flags = TcpFlagsMatch{tcp_flag::syn, tcp_flag::ack};
    CHECK(refused(outside_mask));
    FirewallRule no_mask = syn_from("eth0");
    no_mask.tcp_flags = TcpFlagsMatch{0, 0};
    CHECK(refused(no_mask));
    for (const char* text : {"ct state drop", "ct state new,new drop", "ct state old accept", "ct status new accept",
                             "iifname eth0 drop", "iifname \"\" drop", "udp dport 1 tcp flags & syn == syn drop",
                             "tcp flags & (syn | ack) == fin drop", "tcp flags & (syn | bogus) == syn drop",
                             "tcp flags syn syn,ack drop", "ct state new ct state new drop",
                             "iifname \"a\" iifname \"b\" drop"}) {
        CAPTURE(text);
        CHECK_FALSE(parse_nft_rule(text));
    }
    CHECK_FALSE(parse_firewall_chain("output"));
}

// The judge is nft itself: each rule goes into a forward chain of a private namespace as
// nft_text writes it, `nft list ruleset` prints it back in nft's own words (tcp flags as
// "syn / syn,ack", icmpx without "type"), and that line reads as the same rule.
TEST_CASE("nft takes each stateful rule as nft_text writes it and lists back the same rule", "[firewall][stateful][nft]") {
    REQUIRE(test::tool_available("nft"));
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const auto rules = stateful_examples();
    std::string script = "add table inet t\nadd chain inet t forward { type filter hook forward priority filter; policy accept; }\n";
    for (const auto& rule : rules) script += "add rule inet t forward " + *nft_text(rule) + "\n";
    const test::TempFile file("rules.nft");
    { std::ofstream(file.path) << script; }
    const auto listed = test::run_command("unshare -rn sh -c " + test::shell_quote("nft -f " + file.path + " && nft list ruleset"), 20);
    REQUIRE(listed.exit_code == 0);
    std::vector<FirewallRule> back;
    for (const auto& line : test::lines_of(listed.out))
        if (const auto rule = parse_nft_rule(line, FirewallChain::forward)) back.push_back(*rule);
    CAPTURE(listed.out);
    CHECK(back == rules);
    CHECK(listed.out.find("tcp flags syn / syn,ack") != std::string::npos);  // nft's form, not ours, was read
}
