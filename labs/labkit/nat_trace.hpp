#pragma once
// The translations a router's kernel made, as the trace's `nat` events (docs/trace-format.md),
// read from connection tracking (conntrack.hpp): the kernel's own tuples, as conntrack -L
// prints them, never the lab's idea of what the NAT should have done.
//
//   std::set<std::uint32_t> told;                      // conntrack ids already in the trace
//   record_router_translations(lab.observer(), net, "router", told);   // before each step
//
// An entry holds the connection's first packet as it reached the router (the ORIGINAL tuple)
// and what an answer must carry (the REPLY tuple). The packet the router sent on is the reply
// tuple turned around, so whatever differs between the two is the translation
// (nf_nat_setup_info, nf_nat_core.c, alters the reply tuple). A source that differs is an
// snat (IPS_SRC_NAT), a destination a dnat (IPS_DST_NAT). A connection translated both ways
// (a hairpin: DNAT in prerouting, then masquerade in postrouting) gives two events, the dnat
// first, as the packet meets them, each changing one side only.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "labkit/conntrack.hpp"
#include "labkit/network.hpp"
#include "labkit/observe.hpp"
#include "portlab/trace.hpp"

namespace portlab::labkit {

// The translations in one entry: none for a connection the router did not rewrite (or a
// protocol other than TCP and UDP), one for snat or dnat, two for both.
[[nodiscard]] std::vector<trace::NatTranslated> translations_of(const conntrack::Entry& entry);

// A stateful firewall's entry for a TCP or UDP connection it did not rewrite, as a `nat`
// event of kind track (before = after = the original tuple); none for a rewritten entry.
[[nodiscard]] std::optional<trace::NatTranslated> tracked_of(const conntrack::Entry& entry);

// What a router's entries are told as: its translations only (a NAT), or each untranslated
// entry as tracked too (a stateful firewall, lab 18).
enum class Untranslated : std::uint8_t { skip, track };

// Records (fact::Translated, trace only) each translation of an entry whose id is not in
// `told` yet, and adds the id. Returns how many it recorded.
std::size_t record_translations(Observer& see, std::string_view router, const std::vector<conntrack::Entry>& table,
                                std::set<std::uint32_t>& told, Untranslated untranslated = Untranslated::skip);

// Reads the table of `router` (a node of `net`, inside its namespace) and records what is
// new, as record_translations. Call it before each step, so a pause shows every translation
// the kernel has made so far.
Result<std::size_t> record_router_translations(Observer& see, const Network& net, const std::string& router,
                                               std::set<std::uint32_t>& told, Untranslated untranslated = Untranslated::skip);

}  // namespace portlab::labkit
