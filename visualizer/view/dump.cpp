#include "view/dump.hpp"

#include "portlab/caption.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/trace.hpp"
#include "view/nat_table.hpp"
#include "view/ss_table.hpp"
#include "view/timers.hpp"

namespace portlab::viz {
namespace {

using nlohmann::json;

json endpoint_json(const std::optional<Endpoint>& endpoint) {
    return endpoint ? json(endpoint->to_string()) : json(nullptr);
}

json rules_json(const replay::Host& host) {
    json rules = json::array();
    for (const auto& rule : host.rules) {
        const auto text = nft_text(rule.rule);
        rules.push_back({{"id", rule.id}, {"chain", std::string(to_string(rule.rule.chain))}, {"nft", text ? json(*text) : json(nullptr)}});
    }
    return rules;
}

json pool_json(const Model& model, replay::HostIndex index, const replay::Host& host) {
    if (!host.pool.range) return nullptr;
    const auto use = model.pool_use(index);
    return {{"range", host.pool.range->to_string()},
            {"size", use.size},
            {"in_use", {{"tcp", use.tcp}, {"udp", use.udp}}},
            {"full", use.full()},
            {"last", host.pool.last ? json(*host.pool.last) : json(nullptr)}};
}

// A router's translation table: each entry's original and reply tuples, as conntrack -L.
json nat_json(const replay::Host& host) {
    json table = json::array();
    const auto flow = [](const trace::Flow& f) { return json{{"src", f.source.to_string()}, {"dst", f.destination.to_string()}}; };
    for (const auto& t : host.translations)
        table.push_back({{"conntrack_id", t.conntrack_id},
                         {"kind", std::string(trace::to_string(t.kind))},
                         {"protocol", std::string(to_string(t.protocol))},
                         {"original", flow(t.original)},
                         {"after", flow(t.after)},
                         {"reply", flow(t.reply())},
                         {"event", t.event},
                         {"conntrack", conntrack_line(t)}});
    return table;
}

json hosts_json(const Model& model) {
    const auto& world = model.world();
    json hosts = json::array();
    for (std::size_t i = 0; i < world.hosts().size(); ++i) {
        const auto& host = world.hosts()[i];
        json addresses = json::array();
        for (const auto& address : host.addresses) addresses.push_back(address.to_string());
        hosts.push_back({{"name", host.name},
                         {"role", host.role},
                         {"addresses", addresses},
                         {"firewall", has_firewall(world, i)},
                         {"rules", rules_json(host)},
                         {"pool", pool_json(model, i, host)},
                         {"errors", host.errors},
                         {"nat", nat_json(host)}});
    }
    return hosts;
}

json slots_json(const Model& model) {
    const auto& world = model.world();
    json slots = json::array();
    for (const auto& slot : model.layout().slots) {
        json entry = {{"host", world.hosts()[slot.host].name},
                      {"protocol", to_string(slot.protocol)},
                      {"local", endpoint_json(slot.local)},
                      {"state", to_string(slot.state)},
                      {"error", slot.error ? json(*slot.error) : json(nullptr)},
                      {"refused_bind", endpoint_json(slot.refused_bind)},
                      {"observed", slot.observed}};
        if (!slot.observed) {
            if (const auto* socket = world.find_socket(slot.ref)) {
                entry["socket"] = socket->id.value;
                // The RFC 793 state the replay holds (reported, or a connection's socket's by
                // definition); the name the panels show beside it.
                entry["tcp_state"] = socket->protocol == Protocol::tcp ? json(std::string(to_string(socket->tcp_state)))
                                                                       : json(nullptr);
                entry["state_name"] = std::string(socket->state_name());
                entry["ss_state"] = ss_state(*socket);  // as the sockets table (ss -tuan) spells it
                entry["remote"] = endpoint_json(socket->remote);
                entry["awaiting_accept"] = socket->awaiting_accept;
            }
        }
        slots.push_back(entry);
    }
    return slots;
}

json connections_json(const Model& model) {
    json lines = json::array();
    for (const auto& line : model.layout().lines) {
        json entry{{"protocol", to_string(line.protocol)},
                   {"local", line.tuple.local.to_string()},
                   {"remote", line.tuple.remote.to_string()}};
        // Through a translating router: which one, and the 4-tuple beyond it (same direction).
        if (line.via && *line.via < model.world().hosts().size()) entry["via"] = model.world().hosts()[*line.via].name;
        if (line.far_tuple) {
            entry["far_local"] = line.far_tuple->local.to_string();
            entry["far_remote"] = line.far_tuple->remote.to_string();
        }
        lines.push_back(std::move(entry));
    }
    return lines;
}

json in_flight_json(const Model& model) {
    json packets = json::array();
    for (const auto& pending : model.world().in_flight()) {
        const auto& event = model.timeline().event(pending.event);
        packets.push_back({{"sent_event", pending.event}, {"caption", caption(event, &model.timeline().services())}});
    }
    return packets;
}

// Each running timer as the slot's countdown shows it at `at_us`.
json timers_json(const Model& model, std::uint64_t at_us) {
    const auto& world = model.world();
    json timers = json::array();
    for (const auto& countdown : countdowns(world, at_us)) {
        const auto* socket = world.find_socket(countdown.socket);
        timers.push_back({{"host", world.hosts()[countdown.socket.host].name},
                          {"socket", countdown.socket.socket.value},
                          {"local", endpoint_json(socket ? socket->local : std::nullopt)},
                          {"timer", std::string(trace::to_string(countdown.timer))},
                          {"attempt", countdown.attempt},
                          {"armed_event", countdown.armed_event},
                          {"duration_us", countdown.duration_us},
                          {"remaining_us", countdown.remaining_us},
                          {"text", countdown_text(countdown)}});
    }
    return timers;
}

// The score, and each question with what was chosen: a grader reads the answers back.
json challenge_json(const Model& model, const ChallengeView& challenge) {
    const auto score = challenge.session.score();
    json state = {{"enabled", challenge.enabled}, {"asked", score.asked}, {"correct", score.correct}};
    if (challenge.generation != model.generation()) return state;
    json questions = json::array();
    const auto& session = challenge.session;
    for (std::size_t q = 0; q < session.questions().size(); ++q) {
        const auto& question = session.questions()[q];
        const auto& chosen = session.answers()[q];
        questions.push_back({{"event", question.event},
                             {"kind", std::string(to_string(question.kind))},
                             {"prompt", question.prompt},
                             {"choices", question.choices},
                             {"answer", question.choices[question.answer]},
                             {"chosen", chosen ? json(question.choices[*chosen]) : json(nullptr)}});
    }
    state["questions"] = std::move(questions);
    const auto open = session.open_question(model.position());
    state["open"] = open ? json(*open) : json(nullptr);
    json scores = json::object();
    for (const auto& [label, per_source] : challenge.scores) scores[label] = {{"asked", per_source.asked}, {"correct", per_source.correct}};
    state["scores"] = std::move(scores);
    return state;
}

}  // namespace

namespace {

json state_json(const Model& model, const ChallengeView* challenge, std::uint64_t at_us) {
    json state = {{"position", model.position()}, {"events", model.size()}};
    if (!model.loaded()) return state;
    state["now_us"] = model.world().now_us();
    state["cursor_us"] = at_us;
    state["caption"] = model.position() > 0 ? json(model.timeline().caption(model.position() - 1)) : json(nullptr);
    state["hosts"] = hosts_json(model);
    state["slots"] = slots_json(model);
    state["connections"] = connections_json(model);
    state["in_flight"] = in_flight_json(model);
    state["timers"] = timers_json(model, at_us);
    // The translation the topology shows at its router, when the current event set one up.
    if (const auto callout = nat_callout(model))
        state["nat_translation"] = {{"router", model.world().hosts()[callout->router].name},
                                    {"kind", callout->kind},
                                    {"before", callout->before},
                                    {"after", callout->after},
                                    {"reply", callout->reply},
                                    {"translates", callout->translates},
                                    {"lines", callout->lines()}};
    if (challenge && challenge->enabled) state["challenge"] = challenge_json(model, *challenge);
    return state;
}

json selection_json(const Model& model, const ViewState& view) {
    json selection = {{"socket", nullptr}, {"event", nullptr}, {"field", nullptr}};
    if (view.selected_socket)
        if (const auto* socket = model.world().find_socket(*view.selected_socket))
            selection["socket"] = {{"host", model.world().hosts()[view.selected_socket->host].name}, {"socket", socket->id.value}};
    if (!view.selected_field) return selection;
    const auto& chosen = *view.selected_field;
    selection["event"] = chosen.event;
    json field = {{"layer", chosen.field.layer}, {"field", chosen.field.field}};
    const auto* packet = chosen.event < model.size() ? std::get_if<trace::Packet>(&model.timeline().event(chosen.event).body) : nullptr;
    if (packet) {
        if (const auto decoded = decode_frame(packet->link, packet->bytes)) {
            if (const Field* f = field_of(decoded->layers, chosen.field)) {
                field["layer_name"] = decoded->layers[chosen.field.layer].name;
                field["name"] = f->name;
                field["offset"] = f->offset;
                field["length"] = f->length;
            }
        }
    }
    selection["field"] = std::move(field);
    return selection;
}

json rect_json(const Rect& r) { return {{"x", r.x}, {"y", r.y}, {"w", r.w}, {"h", r.h}}; }

// Where the last frame drew what a click can pick (only after frames were drawn: --script).
json drawn_json(const DrawnPlaces& drawn) {
    json places = json::object();
    if (drawn.hex) {
        const auto& hex = *drawn.hex;
        json cells = json::array();
        for (std::size_t byte = 0; byte < hex.size && cells.size() < 4096; ++byte) {
            const HexCell cell = hex.geometry.hex_cell(byte);
            const Vec2 centre{hex.origin.x + (cell.x0 + cell.x1) / 2, hex.origin.y + (cell.y0 + cell.y1) / 2};
            if (hex.visible.contains(centre)) cells.push_back({{"byte", byte}, {"x", centre.x}, {"y", centre.y}});
        }
        places["hex"] = {{"event", hex.event}, {"cells", std::move(cells)}};
    }
    json tree = json::array();
    for (const auto& row : drawn.tree)
        tree.push_back({{"event", row.event}, {"layer", row.field.layer}, {"field", row.field.field}, {"name", row.name}, {"rect", rect_json(row.rect)}});
    places["tree"] = std::move(tree);
    json items = json::object();
    for (const auto& [name, rect] : drawn.items) items[name] = rect_json(rect);
    places["items"] = std::move(items);
    return places;
}

}  // namespace

json dump_state(const Model& model, const ChallengeView* challenge) { return state_json(model, challenge, model.world().now_us()); }

json dump_state(const Model& model, const ViewState& view) {
    json state = state_json(model, &view.challenge, cursor_time_us(model, view));
    state["playback"] = {{"proportional", view.playback.proportional},
                         {"time_scale", view.playback.time_scale},
                         {"playing", view.playback.playing}};
    state["selection"] = selection_json(model, view);
    // After files were dropped: the status line, and the file it opened.
    if (!view.status.empty()) {
        state["status"] = view.status;
        state["source"] = model.source_path();
    }
    if (view.drawn.hex || !view.drawn.tree.empty() || !view.drawn.items.empty()) state["drawn"] = drawn_json(view.drawn);
    return state;
}

}  // namespace portlab::viz
