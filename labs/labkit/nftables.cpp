#include "labkit/nftables.hpp"
#include "portlab/text_safety.hpp"

#include <net/if.h>
#include <nftables/libnftables.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

}  // namespace portlab::firewall
