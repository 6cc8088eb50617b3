#pragma once
// The kernel of a lab's private namespace, asked from outside it. Labs 09 and 11 run in a
// user + network namespace of their own (labkit/netns.hpp), where the test's own sock_diag
// or nft cannot see. A child of the test joins that namespace (setns, as
// `nsenter --target PID --user --net` does: a single-threaded process of the namespace's
// owner may) and asks there, as ss and nft would.
//
//   const pid_t inside = test::namespace_child(lab_run.pid());
//   const auto sockets = test::sockets_in_namespace_of(inside);      // test::SocketView's (TCP; UDP too with true)
//   const auto ruleset = test::run_in_namespace_of(inside, {"/usr/sbin/nft", "-j", "list", "ruleset"});
//   test::check_same_rules(test::replayed_rules(replay), test::rules_in_namespace_of(inside), "pause 3");

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "kernel_vs_replay.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/trace.hpp"

namespace portlab::test {

// The process the lab forked into its private namespace (its only child).
inline pid_t namespace_child(pid_t lab) {
    std::ifstream children("/proc/" + std::to_string(lab) + "/task/" + std::to_string(lab) + "/children");
    pid_t child = -1;
    children >> child;
    return child;
}

// Runs `ask` in a child that joined `inside`'s user and network namespaces and returns
// what it wrote to the fd it is given. `ask` returns the child's exit status.
inline std::string ask_in_namespace_of(pid_t inside, const std::function<int(int out)>& ask) {
    int lines[2];
    REQUIRE(pipe(lines) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        close(lines[0]);
        const std::string ns = "/proc/" + std::to_string(inside) + "/ns/";
        const int user = open((ns + "user").c_str(), O_RDONLY | O_CLOEXEC);
        const int net = open((ns + "net").c_str(), O_RDONLY | O_CLOEXEC);
        if (user < 0 || net < 0 || setns(user, CLONE_NEWUSER) != 0 || setns(net, CLONE_NEWNET) != 0) _exit(3);
        _exit(ask(lines[1]));
    }
    close(lines[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t count; (count = read(lines[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(count));
    close(lines[0]);
    int status = 0;
    waitpid(child, &status, 0);
    INFO("the child in the lab's namespace: exit status " << status << ", said: " << text);
    REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    return text;
}

// A program's stdout, run inside `inside`'s namespaces (nft, ss).
inline std::string run_in_namespace_of(pid_t inside, std::vector<std::string> argv) {
    return ask_in_namespace_of(inside, [&](int out) {
        dup2(out, STDOUT_FILENO);
        std::vector<char*> args;
        for (auto& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        execv(args[0], args.data());
        return 127;
    });
}

// The TCP sockets of `inside`'s network namespace, as sock_diag lists them there; with
// `udp`, its UDP sockets too ("UNCONN" or "ESTAB", as replayed_sockets spells them).
inline std::vector<SocketView> sockets_in_namespace_of(pid_t inside, bool udp = false, bool ipv6 = false) {
    const auto text = ask_in_namespace_of(inside, [udp, ipv6](int out) {
        diag::Query query;
        query.udp = udp;
        query.ipv6 = ipv6;
        const auto sockets = diag::list_sockets(query);
        if (!sockets) return 4;
        std::string lines;
        for (const auto& socket : *sockets) {
            std::string state;
            if (socket.protocol == Protocol::udp) {
                state = socket.remote.port != 0 ? "ESTAB" : "UNCONN";
            } else if (const auto tcp = socket.tcp_state()) {
                state = std::string(to_string(*tcp));
            } else {
                continue;  // TCP_NEW_SYN_RECV: a half-open request, not a socket yet
            }
            lines += std::string(to_string(socket.protocol)) + " " + socket.local.to_string() + " " +
                     socket.remote.to_string() + " " + state + "\n";
        }
        return write(out, lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()) ? 0 : 5;
    });
    std::vector<SocketView> views;
    std::istringstream in(text);
    for (std::string protocol, local, remote, state; in >> protocol >> local >> remote >> state;) {
        const auto near = Endpoint::parse(local);
        const auto far = Endpoint::parse(remote);
        REQUIRE((near && far));
        SocketView view{protocol == "udp" ? Protocol::udp : Protocol::tcp, *near, std::nullopt, state};
        if (far->port != 0) view.remote = *far;
        views.push_back(view);
    }
    return views;
}

// ---- a lab network's nodes (labkit/network.hpp) -------------------------------------------

// Where a tool lives (run_in_namespace_of executes it without a shell, so without PATH).
inline std::string tool_path(const std::string& name) {
    for (const char* folder : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
        if (access((folder + name).c_str(), X_OK) == 0) return folder + name;
    FAIL(name + " not found");
    return {};
}

// The processes whose namespaces are a lab network's nodes. The lab's namespace child is the
// first node; the others are its children, each named by an address only it has:
// {{"router", "192.0.2.2/"}, {"server", "198.51.100.2/"}} as `ip -4 -o addr` lists them.
// The result holds "first" for the lab's namespace child and each node found.
inline std::map<std::string, pid_t> network_nodes(pid_t lab, const std::map<std::string, std::string>& address_of) {
    std::map<std::string, pid_t> nodes;
    const pid_t first = namespace_child(lab);
    REQUIRE(first > 0);
    nodes["first"] = first;
    std::ifstream children("/proc/" + std::to_string(first) + "/task/" + std::to_string(first) + "/children");
    for (pid_t child; children >> child;) {
        const auto addresses = run_in_namespace_of(child, {tool_path("ip"), "-4", "-o", "addr"});
        for (const auto& [node, address] : address_of)
            if (addresses.find(address) != std::string::npos) nodes[node] = child;
    }
    for (const auto& [node, address] : address_of) {
        CAPTURE(node, address);
        REQUIRE(nodes.contains(node));
    }
    return nodes;
}

// ---- a router's translations: conntrack -L against the trace's nat events ---------------------

// One entry of `conntrack -L -o id` that translates: its reply tuple turned around differs
// from its original tuple.
struct ConntrackTranslation {
    std::uint32_t id = 0;
    std::string line;  // as conntrack printed it
    trace::Flow original, reply;
};

inline std::vector<ConntrackTranslation> conntrack_translations(pid_t router) {
    const auto text = run_in_namespace_of(router, {tool_path("conntrack"), "-L", "-o", "id"});
    std::vector<ConntrackTranslation> found;
    std::istringstream lines(text);
    const std::regex field(R"((src|dst|sport|dport|id)=(\S+))");
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("tcp", 0) != 0 && line.rfind("udp", 0) != 0) continue;
        std::vector<std::pair<std::string, std::string>> fields;
        for (auto it = std::sregex_iterator(line.begin(), line.end(), field); it != std::sregex_iterator(); ++it)
            fields.emplace_back((*it)[1], (*it)[2]);
        INFO(line);
        REQUIRE(fields.size() == 9);  // src dst sport dport, twice, then id
        auto endpoint = [&](std::size_t address, std::size_t port) {
            const auto parsed = Endpoint::parse(fields[address].second + ":" + fields[port].second);
            REQUIRE(parsed.has_value());
            return *parsed;
        };
        ConntrackTranslation entry{static_cast<std::uint32_t>(std::stoul(fields[8].second)), line,
                                   {endpoint(0, 2), endpoint(1, 3)}, {endpoint(4, 6), endpoint(5, 7)}};
        if (entry.reply.source != entry.original.destination || entry.reply.destination != entry.original.source)
            found.push_back(entry);
    }
    return found;
}

// The trace's nat events so far, by conntrack id, in the order written.
inline std::map<std::uint32_t, std::vector<trace::NatTranslated>> traced_translations(const std::string& trace_path) {
    const auto trace = trace::read_trace_file(trace_so_far(trace_path));
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace.has_value());
    std::map<std::uint32_t, std::vector<trace::NatTranslated>> by_id;
    for (const auto& event : trace->events)
        if (const auto* nat = std::get_if<trace::NatTranslated>(&event.body)) by_id[nat->conntrack_id].push_back(*nat);
    return by_id;
}

// Every translation `conntrack -L` lists in the router is in the trace, and nothing else: per
// entry, the nat events chain from the original tuple (the first one's before) to the reply
// tuple turned around (the last one's after), a dnat when the destination changed, an snat
// when the source did, in that order (prerouting, then postrouting).
inline void check_translations_match(const std::string& trace_path, pid_t router, const std::string& when) {
    INFO("at " << when);
    const auto kernel = conntrack_translations(router);
    auto traced = traced_translations(trace_path);
    for (const auto& entry : kernel) {
        INFO("conntrack -L: " << entry.line);
        const auto found = traced.find(entry.id);
        REQUIRE(found != traced.end());
        const auto& events = found->second;
        const bool dnat = entry.reply.source != entry.original.destination;
        const bool snat = entry.reply.destination != entry.original.source;
        REQUIRE(events.size() == static_cast<std::size_t>(dnat) + static_cast<std::size_t>(snat));
        if (dnat) CHECK(events.front().kind == trace::NatKind::dnat);
        if (snat) CHECK(events.back().kind == trace::NatKind::snat);
        CHECK(events.front().flows->before == entry.original);
        CHECK(events.back().flows->after == (trace::Flow{entry.reply.destination, entry.reply.source}));
        if (events.size() == 2) CHECK(events.front().flows->after == events.back().flows->before);
        traced.erase(found);
    }
    for (const auto& [id, events] : traced) {
        INFO("a nat event for conntrack id " << id << " that conntrack -L does not list");
        CHECK(false);
    }
}

// ---- the namespace's firewall --------------------------------------------------------

// A rule as nft lists it back: nft prints a plain "reject" for "reject with icmpx type
// port-unreachable", which is what reject sends by default in an inet table (nft(8),
// REJECT STATEMENT). Both are one rule.
inline FirewallRule as_nft_lists(FirewallRule rule) {
    if (rule.action == FirewallAction::reject && rule.reject_with == RejectWith::icmp_port_unreachable)
        rule.reject_with = RejectWith::nft_default;
    return rule;
}

// The rules of a `nft list ruleset` listing, in chain order: each line the hub's nft reader
// reads as a rule ("tcp dport 9001 drop"; table, chain and hook lines are not).
inline std::vector<FirewallRule> nft_rules(const std::string& listing) {
    std::vector<FirewallRule> rules;
    std::istringstream lines(listing);
    for (std::string line; std::getline(lines, line);)
        if (const auto rule = parse_nft_rule(line)) rules.push_back(as_nft_lists(*rule));
    return rules;
}

// The rules the kernel of `inside`'s namespace holds, as nft lists them there.
inline std::vector<FirewallRule> rules_in_namespace_of(pid_t inside) {
    return nft_rules(run_in_namespace_of(inside, {"/usr/sbin/nft", "list", "ruleset"}));
}

// The rules the replayed trace holds in force (rule_added, not yet rule_removed), every
// host's, in the order they were added: one chain, as the namespace has one.
inline std::vector<FirewallRule> replayed_rules(const replay::State& state) {
    std::vector<std::pair<std::size_t, FirewallRule>> added;
    for (const auto& host : state.hosts())
        for (const auto& in_force : host.rules) added.emplace_back(in_force.added_event, as_nft_lists(in_force.rule));
    std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<FirewallRule> rules;
    for (const auto& [when, rule] : added) rules.push_back(rule);
    return rules;
}

// The same rules in the same order, or a failed CHECK naming each one that differs.
inline void check_same_rules(const std::vector<FirewallRule>& replayed, const std::vector<FirewallRule>& kernel,
                             const std::string& when) {
    INFO("at " << when);
    CHECK(replayed.size() == kernel.size());
    for (std::size_t i = 0; i < std::min(replayed.size(), kernel.size()); ++i) {
        CAPTURE(i, nft_text(replayed[i]).value_or("?"), nft_text(kernel[i]).value_or("?"));
        CHECK(replayed[i] == kernel[i]);
    }
}

}  // namespace portlab::test
