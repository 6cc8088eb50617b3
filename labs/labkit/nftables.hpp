#pragma once
// A small nftables firewall, for private network namespaces only.
//
// Labs 09 and 11 need a firewall that drops or rejects packets to chosen ports: a
// dropped SYN is what makes a port "filtered" and keeps a connect in SYN-SENT. The rules
// are the hub's (portlab/firewall_rule.hpp, the simulator evaluates the same type); they
// go into the kernel through libnftables (the library behind nft(8)), as one text
// transaction: nft_run_cmd_from_buffer() applies the whole ruleset or none of it.
//
// A lab must never touch the firewall of the machine it runs on. So nothing here runs
// without a PrivateNetnsToken, and a token is only issued when the process is inside a
// network namespace that is not the one it started in and that holds nothing but `lo`
// (what a namespace fresh from unshare(CLONE_NEWNET) looks like):
//
//   const auto outer = firewall::network_namespace_id();          // in the parent, before
//   auto facts = run_in_private_netns([&] {                          // portlab/netns.hpp
//       auto token = firewall::PrivateNetnsToken::confirm(*outer);   // in the child
//       auto nft = firewall::Nftables::open(*token);
//       nft->apply({drop_port(Protocol::tcp, 8081)});
//       ...
//   });
//
// All rules live in one table, `inet portlab`, in a chain hooked at input: on loopback a
// packet passes output and then input (net/core/dev.c loopback_xmit -> netif_rx), so an
// input rule sees every packet addressed to a local port, for IPv4 and IPv6 alike.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/firewall_rule.hpp"
#include "portlab/net.hpp"
#include "portlab/result.hpp"

struct nft_ctx;  // libnftables

namespace portlab::firewall {

// The table every rule lives in.
inline constexpr std::string_view table_family = "inet";
inline constexpr std::string_view table_name = "portlab";

// A whole transaction that replaces table inet portlab with one input chain (policy
// accept) holding `rules` in order, each written by portlab::nft_text ("tcp dport 8081
// drop"); a rule nft would refuse is an error here. "add table" before "delete table"
// makes the delete succeed whether or not the table existed, so applying twice is the
// same as once.
[[nodiscard]] Result<std::string> ruleset_text(std::span<const FirewallRule> rules);

// The inode number of /proc/self/ns/net: two processes are in the same network
// namespace exactly when these are equal (namespaces(7)).
[[nodiscard]] Result<std::uint64_t> network_namespace_id();

// The names of the network interfaces this process can see (if_nameindex(3)).
[[nodiscard]] Result<std::vector<std::string>> interface_names();

// A rule as `nft -j list ruleset` lists it (libnftables-json(5)), read back into the hub's
// type: where the kernel holds it (table, chain, handle), its comment, and the rule itself,
// its chain taken from the chain's hook (input or forward). Counters are left out.
struct ListedRule {
    std::string table;
    std::string chain;
    std::uint64_t handle = 0;
    std::string comment;
    FirewallRule rule;
};

// Every rule of a JSON listing, in chain order. An error for an expression the hub's rule has
// no field for, or a chain hooked elsewhere than input or forward: a rule the trace could not
// hold whole is never recorded with a part left out.
[[nodiscard]] Result<std::vector<ListedRule>> listed_rules(const nlohmann::json& listing);

// Proof, checked when issued, that this process is in a private network namespace.
class PrivateNetnsToken {
public:
    // `outer_netns_id` is network_namespace_id() as read BEFORE the namespace was made
    // (in the parent of run_in_private_netns). Refuses unless:
    //   - this process's network namespace differs from it;
    //   - it also differs from PID 1's, when /proc/1/ns/net can be read;
    //   - the namespace has no interface but `lo`.
    [[nodiscard]] static Result<PrivateNetnsToken> confirm(std::uint64_t outer_netns_id);
    // The same for a node of a lab network (network.hpp), whose namespace also holds the
    // veth ends the lab made itself: `lab_interfaces` names them, and any other interface
    // still refuses. Network::firewall_token() is how a lab asks for one.
    [[nodiscard]] static Result<PrivateNetnsToken> confirm(std::uint64_t outer_netns_id,
                                                           std::span<const std::string> lab_interfaces);

    [[nodiscard]] std::uint64_t netns_id() const noexcept { return netns_id_; }

private:
    explicit PrivateNetnsToken(std::uint64_t netns_id) : netns_id_(netns_id) {}
    std::uint64_t netns_id_ = 0;
};

// A libnftables context bound to the private namespace its token names. Every call first
// checks that the process is still in that namespace. Move-only.
class Nftables {
public:
    [[nodiscard]] static Result<Nftables> open(const PrivateNetnsToken& token);

    // Runs nft commands (the text nft -f reads) as one transaction. Returns what nft
    // printed; an error carries nft's own error text ("Error: syntax error, ...").
    [[nodiscard]] Result<std::string> run(std::string_view commands);
    // Replaces table inet portlab with `rules` (ruleset_text).
    [[nodiscard]] Result<void> apply(std::span<const FirewallRule> rules);
    [[nodiscard]] Result<void> apply(std::initializer_list<FirewallRule> rules) {
        return apply(std::span<const FirewallRule>(rules.begin(), rules.size()));
    }
    // Deletes table inet portlab if it exists: every packet is accepted again.
    [[nodiscard]] Result<void> clear();
    // "nft list ruleset", as nft prints it.
    [[nodiscard]] Result<std::string> list_ruleset();
    // "nft -j list ruleset": the same, in libnftables' JSON schema.
    [[nodiscard]] Result<nlohmann::json> list_ruleset_json();

    Nftables(Nftables&& other) noexcept;
    Nftables& operator=(Nftables&& other) noexcept;
    Nftables(const Nftables&) = delete;
    Nftables& operator=(const Nftables&) = delete;
    ~Nftables();

private:
    Nftables(nft_ctx* context, std::uint64_t netns_id) : context_(context), netns_id_(netns_id) {}
    [[nodiscard]] Result<void> still_in_namespace() const;

    nft_ctx* context_ = nullptr;
    std::uint64_t netns_id_ = 0;
};

}  // namespace portlab::firewall
