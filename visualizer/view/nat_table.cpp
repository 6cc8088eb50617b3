#include "view/nat_table.hpp"

#include "view/model.hpp"

namespace portlab::viz {

namespace {

std::string tuple_text(const trace::Flow& flow) {
    return "src=" + flow.source.address.to_string() + " dst=" + flow.destination.address.to_string() +
           " sport=" + std::to_string(flow.source.port) + " dport=" + std::to_string(flow.destination.port);
}

}  // namespace

std::string conntrack_line(const replay::Translation& translation) {
    return std::string(to_string(translation.protocol)) + " " + tuple_text(translation.original) + " " + tuple_text(translation.reply()) +
           " id=" + std::to_string(translation.conntrack_id);
}

std::string nat_kind_text(trace::NatKind kind) {
    switch (kind) {
        case trace::NatKind::snat: return "masquerade (source NAT)";
        case trace::NatKind::dnat: return "port forwarding (destination NAT)";
        case trace::NatKind::track: return "tracked by a stateful firewall (no translation)";
    }
    return "";
}

std::string flow_text(const trace::Flow& flow) { return flow.source.to_string() + " -> " + flow.destination.to_string(); }

std::optional<NatCallout> nat_callout(const Model& model) {
    const auto current = model.current_event();
    if (!current) return std::nullopt;
    const auto& event = model.timeline().event(*current);
    const auto* nat = std::get_if<trace::NatTranslated>(&event.body);
    const auto router = model.world().find_host(event.host);
    if (!nat || !router) return std::nullopt;
    const trace::Flow reply{nat->flows->after.destination, nat->flows->after.source};
    return NatCallout{*router, nat_kind_text(nat->kind), flow_text(nat->flows->before), flow_text(nat->flows->after), flow_text(reply),
                      nat->kind != trace::NatKind::track};
}

std::vector<std::string> NatCallout::lines() const {
    if (!translates) return {"conntrack: new entry (no translation)", "original  " + before, "reply     " + reply};
    return {"NAT: " + kind, "before  " + before, "after   " + after};
}

}  // namespace portlab::viz
