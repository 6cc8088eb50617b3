#include "labkit/nftables.hpp"
#include "portlab/text_safety.hpp"

#include <net/if.h>
#include <nftables/libnftables.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

namespace portlab::firewall {
namespace {

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

Result<std::uint64_t> namespace_inode(const char* path) {
    struct stat status {};
    if (stat(path, &status) != 0)
        return fail(std::string("cannot read ") + path + ": " + std::strerror(errno), {errno, std::generic_category()});
    return static_cast<std::uint64_t>(status.st_ino);
}

}  // namespace

Result<std::string> ruleset_text(std::span<const FirewallRule> rules) {
    const std::string table = std::string(table_family) + " " + std::string(table_name);
    std::string text = "add table " + table + "\ndelete table " + table + "\ntable " + table + " {\n";
    text += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
    for (const auto& rule : rules) {
        auto line = nft_text(rule);
        if (!line) return line.error();
        text += "    " + *line + "\n";
    }
    text += "  }\n}\n";
    return text;
}

Result<std::uint64_t> network_namespace_id() { return namespace_inode("/proc/self/ns/net"); }

Result<std::vector<std::string>> interface_names() {
    struct if_nameindex* const names = if_nameindex();
    if (names == nullptr) return fail(std::string("if_nameindex: ") + std::strerror(errno));
    std::vector<std::string> result;
    for (const struct if_nameindex* entry = names; entry->if_index != 0 && entry->if_name != nullptr; ++entry)
        result.emplace_back(entry->if_name);
    if_freenameindex(names);
    return result;
}

Result<PrivateNetnsToken> PrivateNetnsToken::confirm(std::uint64_t outer_netns_id) {
    return confirm(outer_netns_id, {});
}

Result<PrivateNetnsToken> PrivateNetnsToken::confirm(std::uint64_t outer_netns_id,
                                                     std::span<const std::string> lab_interfaces) {
    const std::string refused = "refusing to touch a firewall outside a private network namespace: ";
    const auto current = network_namespace_id();
    if (!current) return fail(refused + current.error().message);
    if (*current == outer_netns_id) return fail(refused + "this process is still in the namespace it started in");
    // PID 1's namespace is the machine's (or the container's); /proc/1/ns/net cannot be
    // read from inside a user namespace, which is itself a sign we are not on the host.
    if (const auto init = namespace_inode("/proc/1/ns/net"); init && *init == *current)
        return fail(refused + "this is PID 1's network namespace");
    const auto interfaces = interface_names();
    if (!interfaces) return fail(refused + interfaces.error().message);
    for (const auto& name : *interfaces) {
        const bool made_by_the_lab = std::find(lab_interfaces.begin(), lab_interfaces.end(), name) != lab_interfaces.end();
        if (name != "lo" && !made_by_the_lab)
            return fail(refused + "interface " + text::printable(name) + " is here, so this is not a fresh namespace");
    }
    return PrivateNetnsToken(*current);
}

Result<Nftables> Nftables::open(const PrivateNetnsToken& token) {
    nft_ctx* const context = nft_ctx_new(NFT_CTX_DEFAULT);
    if (context == nullptr) return fail("nft_ctx_new failed");
    // Capture what nft would print on stdout and stderr, so a lab can show it (or its error).
    if (nft_ctx_buffer_output(context) != 0 || nft_ctx_buffer_error(context) != 0) {
        nft_ctx_free(context);
        return fail("libnftables could not buffer its output");
    }
    Nftables nftables(context, token.netns_id());
    if (auto same = nftables.still_in_namespace(); !same) return same.error();
    return nftables;
}

Result<void> Nftables::still_in_namespace() const {
    const auto current = network_namespace_id();
    if (!current) return current.error();
    if (*current != netns_id_) return fail("refusing to touch the firewall: this process left its private namespace");
    return {};
}

Result<std::string> Nftables::run(std::string_view commands) {
    if (context_ == nullptr) return fail("this firewall context was moved from");
    if (auto same = still_in_namespace(); !same) return same.error();
    const std::string text(commands);
    const int status = nft_run_cmd_from_buffer(context_, text.c_str());
    // The getters hand back what was written since the last call and reset the buffer.
    std::string output = nft_ctx_get_output_buffer(context_);
    const std::string errors = trim(nft_ctx_get_error_buffer(context_));
    if (status != 0) return fail("nft: " + (errors.empty() ? std::string("command failed") : errors));
    return output;
}

Result<void> Nftables::apply(std::span<const FirewallRule> rules) {
    const auto text = ruleset_text(rules);
    if (!text) return text.error();
    if (auto done = run(*text); !done) return done.error();
    return {};
}

Result<void> Nftables::clear() {
    const std::string table = std::string(table_family) + " " + std::string(table_name);
    if (auto done = run("add table " + table + "\ndelete table " + table + "\n"); !done) return done.error();
    return {};
}

Result<std::string> Nftables::list_ruleset() {
    if (context_ == nullptr) return fail("this firewall context was moved from");
    nft_ctx_output_set_flags(context_, 0);
    return run("list ruleset");
}

Result<nlohmann::json> Nftables::list_ruleset_json() {
    if (context_ == nullptr) return fail("this firewall context was moved from");
    nft_ctx_output_set_flags(context_, NFT_CTX_OUTPUT_JSON);
    auto text = run("list ruleset");
    nft_ctx_output_set_flags(context_, 0);
    if (!text) return text.error();
    auto parsed = nlohmann::json::parse(*text, nullptr, false);
    if (parsed.is_discarded()) return fail("nft printed JSON that does not parse");
    return parsed;
}

Nftables::Nftables(Nftables&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)), netns_id_(other.netns_id_) {}

Nftables& Nftables::operator=(Nftables&& other) noexcept {
    if (this != &other) {
        if (context_ != nullptr) nft_ctx_free(context_);
        context_ = std::exchange(other.context_, nullptr);
        netns_id_ = other.netns_id_;
    }
    return *this;
}

Nftables::~Nftables() {
    if (context_ != nullptr) nft_ctx_free(context_);
}

// ---- reading rules back from nft -j --------------------------------------------------------

namespace {

// A set of names as JSON lists it: one name, an array of them, or {"set": [...]}.
std::vector<std::string> names_of(const nlohmann::json& value) {
    if (value.is_string()) return {value.get<std::string>()};
    const auto& items = value.is_object() && value.contains("set") ? value["set"] : value;
    std::vector<std::string> names;
    if (items.is_array())
        for (const auto& item : items)
            if (item.is_string()) names.push_back(item.get<std::string>());
    return names;
}

// TCP flags as JSON lists them: names (as above) or a number.
Result<std::uint8_t> flags_of(const nlohmann::json& value) {
    if (value.is_number_unsigned() && value.get<unsigned>() <= 0xFF) return static_cast<std::uint8_t>(value.get<unsigned>());
    const auto names = names_of(value);
    if (names.empty()) return fail("tcp flags " + value.dump() + " are not flag names");
    std::string joined;
    for (const auto& name : names) joined += (joined.empty() ? "" : ",") + name;
    // The hub reads nft's own listing form, "syn,ack / syn,ack", so it spells the flags once.
    const auto rule = parse_nft_rule("tcp flags " + joined + " / " + joined + " accept");
    if (!rule) return rule.error();
    return rule->tcp_flags->value;
}

Result<PortRange> ports_of(const nlohmann::json& value) {
    if (value.is_number_unsigned() && value.get<unsigned>() <= 65535)
        return PortRange{static_cast<Port>(value.get<unsigned>()), static_cast<Port>(value.get<unsigned>())};
    if (value.is_object() && value.contains("range") && value["range"].size() == 2 && value["range"][0].is_number_unsigned() &&
        value["range"][1].is_number_unsigned())
        return PortRange{value["range"][0].get<Port>(), value["range"][1].get<Port>()};
    return fail("ports " + value.dump() + " are not a port or a range");
}

// One {"match": ...} expression into the rule.
Result<void> read_match(const nlohmann::json& match, FirewallRule& rule) {
    const auto& left = match.value("left", nlohmann::json());
    const auto& right = match.value("right", nlohmann::json());
    const std::string op = match.value("op", "");
    const auto unknown = [&] { return fail("nft match " + match.dump() + " has no field in portlab's rule"); };
    if (left.contains("meta") && left["meta"].value("key", "") == "iifname" && op == "==" && right.is_string()) {
        rule.in_interface = right.get<std::string>();
    } else if (left.contains("meta") && left["meta"].value("key", "") == "l4proto" && op == "==" && right.is_string()) {
        const auto protocol = parse_protocol(right.get<std::string>());
        if (!protocol) return protocol.error();
        rule.protocol = *protocol;
    } else if (left.contains("ct") && left["ct"].value("key", "") == "state" && (op == "in" || op == "==")) {
        std::string joined;
        for (const auto& name : names_of(right)) joined += (joined.empty() ? "" : ",") + name;
        const auto states = parse_ct_states(joined);
        if (!states) return states.error();
        rule.ct_states = *states;
    } else if (left.contains("&") && left["&"].size() == 2 && left["&"][0].contains("payload") &&
               left["&"][0]["payload"].value("protocol", "") == "tcp" && left["&"][0]["payload"].value("field", "") == "flags" &&
               op == "==") {
        const auto mask = flags_of(left["&"][1]);
        if (!mask) return mask.error();
        const auto value = flags_of(right);
        if (!value) return value.error();
        rule.protocol = Protocol::tcp;
        rule.tcp_flags = TcpFlagsMatch{*mask, *value};
    } else if (left.contains("payload") && op == "==") {
        const std::string protocol = left["payload"].value("protocol", "");
        const std::string field = left["payload"].value("field", "");
        if ((protocol == "ip" || protocol == "ip6") && (field == "saddr" || field == "daddr") && right.is_string()) {
            const auto address = IpAddress::parse(right.get<std::string>());
            if (!address) return address.error();
            (field == "saddr" ? rule.source : rule.destination) = *address;
        } else if ((protocol == "tcp" || protocol == "udp") && (field == "sport" || field == "dport")) {
            const auto ports = ports_of(right);
            if (!ports) return ports.error();
            rule.protocol = protocol == "tcp" ? Protocol::tcp : Protocol::udp;
            (field == "sport" ? rule.source_ports : rule.destination_ports) = *ports;
        } else {
            return unknown();
        }
    } else {
        return unknown();
    }
    return {};
}

// A verdict statement; false when `statement` is none.
Result<bool> read_verdict(const nlohmann::json& statement, FirewallRule& rule) {
    if (statement.contains("accept")) rule.action = FirewallAction::accept;
    else if (statement.contains("drop")) rule.action = FirewallAction::drop;
    else if (statement.contains("reject")) {
        rule.action = FirewallAction::reject;
        const auto& reject = statement["reject"];
        if (reject.is_object()) {
            // The hub reads nft's own words: "reject with tcp reset", "reject with icmpx admin-prohibited".
            const std::string type = reject.value("type", "");
            const std::string text = type == "tcp reset" ? "reject with tcp reset" : "reject with " + type + " " + reject.value("expr", "");
            const auto read = parse_nft_rule(text);
            if (!read) return read.error();
            rule.reject_with = read->reject_with;
        }
    } else {
        return false;
    }
    return true;
}

}  // namespace

Result<std::vector<ListedRule>> listed_rules(const nlohmann::json& listing) {
    std::map<std::pair<std::string, std::string>, std::string> hooks;  // (table, chain) -> hook
    std::vector<ListedRule> rules;
    for (const auto& item : listing.value("nftables", nlohmann::json::array())) {
        if (item.contains("chain")) {
            const auto& chain = item["chain"];
            hooks[{chain.value("table", ""), chain.value("name", "")}] = chain.value("hook", "");
        }
        if (!item.contains("rule")) continue;
        const auto& listed = item["rule"];
        ListedRule rule{listed.value("table", ""), listed.value("chain", ""), listed.value("handle", std::uint64_t{0}),
                        listed.value("comment", ""), FirewallRule{}};
        const auto where = "rule " + std::to_string(rule.handle) + " of chain " + rule.chain + ": ";
        const auto hook = parse_firewall_chain(hooks[{rule.table, rule.chain}]);
        if (!hook) return fail(where + "hooked at " + hooks[{rule.table, rule.chain}] + ", neither input nor forward");
        rule.rule.chain = *hook;
        bool verdict = false;
        for (const auto& statement : listed.value("expr", nlohmann::json::array())) {
            if (statement.contains("counter")) continue;
            if (statement.contains("match")) {
                if (auto read = read_match(statement["match"], rule.rule); !read) return fail(where + read.error().message);
                continue;
            }
            const auto read = read_verdict(statement, rule.rule);
            if (!read) return fail(where + read.error().message);
            if (!*read) return fail(where + "statement " + statement.dump() + " has no field in portlab's rule");
            verdict = true;
        }
        if (!verdict) return fail(where + "no verdict");
        if (auto ok = check_rule(rule.rule); !ok) return fail(where + ok.error().message);
        rules.push_back(std::move(rule));
    }
    return rules;
}

}  // namespace portlab::firewall
