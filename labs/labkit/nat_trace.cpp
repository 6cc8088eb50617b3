#include "labkit/nat_trace.hpp"


namespace portlab::labkit {

std::vector<trace::NatTranslated> translations_of(const conntrack::Entry& entry) {
    Protocol protocol = Protocol::tcp;
    if (entry.protocol_number == 17) protocol = Protocol::udp;
    else if (entry.protocol_number != 6) return {};
    const trace::Flow before{entry.original.source, entry.original.destination};
    // What the router sent on: the reply tuple turned around.
    const trace::Flow sent{entry.reply.destination, entry.reply.source};
    std::vector<trace::NatTranslated> translations;
    trace::Flow at = before;
    if (sent.destination != before.destination) {  // prerouting first: the destination
        const trace::Flow after{at.source, sent.destination};
        translations.push_back({trace::NatKind::dnat, protocol, entry.id, Boxed<trace::NatFlows>(trace::NatFlows{at, after})});
        at = after;
    }
    if (sent.source != before.source) {  // then postrouting: the source
        const trace::Flow after{sent.source, at.destination};
        translations.push_back({trace::NatKind::snat, protocol, entry.id, Boxed<trace::NatFlows>(trace::NatFlows{at, after})});
    }
    return translations;
}

std::optional<trace::NatTranslated> tracked_of(const conntrack::Entry& entry) {
    if (entry.protocol_number != 6 && entry.protocol_number != 17) return std::nullopt;
    if (!translations_of(entry).empty()) return std::nullopt;
    const trace::Flow original{entry.original.source, entry.original.destination};
    return trace::NatTranslated{trace::NatKind::track, entry.protocol_number == 17 ? Protocol::udp : Protocol::tcp, entry.id,
                                Boxed<trace::NatFlows>(trace::NatFlows{original, original})};
}

std::size_t record_translations(Observer& see, std::string_view router, const std::vector<conntrack::Entry>& table,
                                std::set<std::uint32_t>& told, Untranslated untranslated) {
    std::size_t written = 0;
    for (const auto& entry : table) {
        if (told.contains(entry.id)) continue;
        auto translations = translations_of(entry);
        if (untranslated == Untranslated::track)
            if (auto tracked = tracked_of(entry)) translations.push_back(std::move(*tracked));
        if (translations.empty()) continue;
        told.insert(entry.id);
        for (const auto& translation : translations) {
            see.record(fact::Translated{std::string(router), translation});
            ++written;
        }
    }
    return written;
}

Result<std::size_t> record_router_translations(Observer& see, const Network& net, const std::string& router,
                                               std::set<std::uint32_t>& told, Untranslated untranslated) {
    Result<std::vector<conntrack::Entry>> table = fail("not read");
    if (auto entered = net.in_node(router, [&] { table = conntrack::dump(); }); !entered) return entered.error();
    if (!table) return table.error();
    return record_translations(see, router, *table, told, untranslated);
}

}  // namespace portlab::labkit
