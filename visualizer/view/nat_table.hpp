#pragma once
// A router's address translations as the replay model holds them (replay::Host::
// translations, from the trace's `nat` events): each as `conntrack -L` prints its tuples,
// and what the topology shows at the router when the current event is a translation:
// the connection's 4-tuple before it and after it.

#include <optional>
#include <string>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

class Model;

// conntrack -L's tuples: "tcp src=192.0.2.1 dst=198.51.100.2 sport=45000 dport=8080
// src=198.51.100.2 dst=198.51.100.1 sport=8080 dport=45000 id=7" (the original tuple, then
// the reply tuple; conntrack(8)'s field order, its timeout and flags left out).
[[nodiscard]] std::string conntrack_line(const replay::Translation& translation);
// "masquerade (source NAT)" or "port forwarding (destination NAT)".
[[nodiscard]] std::string nat_kind_text(trace::NatKind kind);
// "192.0.2.1:45000 -> 198.51.100.2:8080"
[[nodiscard]] std::string flow_text(const trace::Flow& flow);

struct NatCallout {
    replay::HostIndex router = 0;
    std::string kind;    // nat_kind_text
    std::string before;  // flow_text of the original flow
    std::string after;   // as the router sent it on
    std::string reply;   // the reply tuple: what an answer carries (after, reversed)
    bool translates = true;  // false for a stateful firewall's entry (NatKind::track)
    // What the topology writes under the router: a title, then two tuples.
    [[nodiscard]] std::vector<std::string> lines() const;
};
// The translation the current event set up, when it is a nat event.
[[nodiscard]] std::optional<NatCallout> nat_callout(const Model& model);

}  // namespace portlab::viz
