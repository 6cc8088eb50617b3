// Trace events <-> JSON Lines (docs/trace-format.md). Writing builds an ordered
// JSON object per line (t_us, host, type first, so a line reads left to right);
// reading checks every field's presence, type and range and names the line.
// No exception leaves this file: nlohmann::json is parsed with exceptions off and
// read only through checked accessors, and dumped with invalid UTF-8 replaced.
#include "portlab/trace.hpp"
#include "portlab/hex.hpp"
#include "portlab/input_file.hpp"
#include "portlab/spelling.hpp"
#include "portlab/text_safety.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>
#include <limits>
#include <map>
#include <sstream>
#include <ostream>
#include <type_traits>
#include <utility>

namespace portlab::trace {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// ---- names of enumerations, as the format spells them -------------------------

constexpr std::array<Spelling<IpFamily>, 2> family_names{{{IpFamily::v4, "ipv4"}, {IpFamily::v6, "ipv6"}}};
constexpr std::array<Spelling<BindHow>, 3> bind_how_names{{
    {BindHow::explicit_port, "explicit"}, {BindHow::ephemeral, "ephemeral"}, {BindHow::bind_zero, "bind_zero"}}};
constexpr std::array<Spelling<Parity>, 2> parity_names{{{Parity::even, "even"}, {Parity::odd, "odd"}}};
constexpr std::array<Spelling<PacketKind>, 3> packet_kind_names{{
    {PacketKind::sent, "sent"}, {PacketKind::delivered, "delivered"}, {PacketKind::dropped, "dropped"}}};
constexpr std::array<Spelling<LinkType>, 5> link_names{{{LinkType::raw, "raw"},
                                                       {LinkType::en10mb, "en10mb"},
                                                       {LinkType::linux_sll, "linux_sll"},
                                                       {LinkType::linux_sll2, "linux_sll2"},
                                                       {LinkType::null, "null"}}};
constexpr std::array<Spelling<Protocol>, 2> protocol_names{{{Protocol::tcp, "tcp"}, {Protocol::udp, "udp"}}};
constexpr std::array<Spelling<Evidence>, 3> evidence_names{{
    {Evidence::model, "model"}, {Evidence::observed, "observed"}, {Evidence::inferred, "inferred"}}};
constexpr std::array<Spelling<TimerKind>, 5> timer_names{{{TimerKind::retransmission, "retransmission"},
                                                          {TimerKind::time_wait, "time-wait"},
                                                          {TimerKind::keepalive, "keepalive"},
                                                          {TimerKind::persist, "persist"},
                                                          {TimerKind::delayed_ack, "delayed-ack"}}};
constexpr std::array<Spelling<DropCause>, 8> drop_cause_names{{{DropCause::firewall, "firewall"},
                                                               {DropCause::link, "link"},
                                                               {DropCause::no_socket, "no-socket"},
                                                               {DropCause::checksum, "checksum"},
                                                               {DropCause::no_route, "no-route"},
                                                               {DropCause::other, "other"},
                                                               {DropCause::ttl_exceeded, "ttl-exceeded"},
                                                               {DropCause::ct_state, "ct-state"}}};
constexpr std::array<Spelling<NatKind>, 3> nat_kind_names{{{NatKind::snat, "snat"}, {NatKind::dnat, "dnat"}, {NatKind::track, "track"}}};

// ---- the type names, one per variant alternative ----------------------------------

template <class Body> constexpr std::string_view body_name = "";
template <> constexpr std::string_view body_name<SocketCreated> = "socket_created";
template <> constexpr std::string_view body_name<Bound> = "bound";
template <> constexpr std::string_view body_name<Listening> = "listening";
template <> constexpr std::string_view body_name<ConnectStarted> = "connect_started";
template <> constexpr std::string_view body_name<EphemeralAssigned> = "ephemeral_assigned";
template <> constexpr std::string_view body_name<Accepted> = "accepted";
template <> constexpr std::string_view body_name<StateChanged> = "state_changed";
template <> constexpr std::string_view body_name<Packet> = "packet";
template <> constexpr std::string_view body_name<CallFailed> = "error";
template <> constexpr std::string_view body_name<Closed> = "closed";
template <> constexpr std::string_view body_name<Note> = "note";
template <> constexpr std::string_view body_name<HostAdded> = "host";
template <> constexpr std::string_view body_name<TimerArmed> = "timer_armed";
template <> constexpr std::string_view body_name<TimerFired> = "timer_fired";
template <> constexpr std::string_view body_name<TimerStopped> = "timer_stopped";
template <> constexpr std::string_view body_name<ChildCreated> = "child_created";
template <> constexpr std::string_view body_name<RuleAdded> = "rule_added";
template <> constexpr std::string_view body_name<RuleRemoved> = "rule_removed";
template <> constexpr std::string_view body_name<ScanProbe> = "scan_probe";
template <> constexpr std::string_view body_name<ScanResult> = "scan_result";
template <> constexpr std::string_view body_name<NatTranslated> = "nat";

// The format version each type arrived in (docs/trace-format.md, "Compatibility").
template <class Body> constexpr int body_version = 1;
template <> constexpr int body_version<HostAdded> = 2;
template <> constexpr int body_version<TimerArmed> = 2;
template <> constexpr int body_version<TimerFired> = 2;
template <> constexpr int body_version<TimerStopped> = 2;
template <> constexpr int body_version<ChildCreated> = 2;
template <> constexpr int body_version<RuleAdded> = 2;
template <> constexpr int body_version<RuleRemoved> = 2;
template <> constexpr int body_version<ScanProbe> = 2;
template <> constexpr int body_version<ScanResult> = 2;
template <> constexpr int body_version<NatTranslated> = 3;

// ---- writing ----------------------------------------------------------------------

ordered_json endpoint_json(const Endpoint& endpoint) {
    return ordered_json{{"address", endpoint.address.to_string()}, {"port", endpoint.port}};
}

void put_body(ordered_json& line, const SocketCreated& body) {
    line["socket"] = body.socket.value;
    line["protocol"] = spelling_of(protocol_names, body.protocol);
    line["family"] = spelling_of(family_names, body.family);
}
void put_body(ordered_json& line, const Bound& body) {
    line["socket"] = body.socket.value;
    line["endpoint"] = endpoint_json(body.endpoint);
    line["how"] = spelling_of(bind_how_names, body.how);
    if (body.note) line["note"] = *body.note;
}
void put_body(ordered_json& line, const Listening& body) {
    line["socket"] = body.socket.value;
    line["backlog"] = body.backlog;
}
void put_body(ordered_json& line, const ConnectStarted& body) {
    line["socket"] = body.socket.value;
    line["remote"] = endpoint_json(body.remote);
}
void put_body(ordered_json& line, const EphemeralAssigned& body) {
    line["socket"] = body.socket.value;
    line["port"] = body.port;
    line["range_low"] = body.range_low;
    line["range_high"] = body.range_high;
    line["algorithm"] = body.algorithm;
    if (body.parity) line["parity"] = spelling_of(parity_names, *body.parity);
}
ordered_json four_tuple_json(const FourTuple& tuple) {
    return ordered_json{{"local", endpoint_json(tuple.local)}, {"remote", endpoint_json(tuple.remote)}};
}

void put_body(ordered_json& line, const ChildCreated& body) {
    line["listener"] = body.listener.value;
    line["socket"] = body.socket.value;
    line["four_tuple"] = four_tuple_json(body.four_tuple);
}
void put_body(ordered_json& line, const Accepted& body) {
    line["listener"] = body.listener.value;
    line["socket"] = body.socket.value;
    line["four_tuple"] = four_tuple_json(body.four_tuple);
}
void put_body(ordered_json& line, const StateChanged& body) {
    line["socket"] = body.socket.value;
    line["from"] = to_string(body.from);
    line["to"] = to_string(body.to);
    line["cause"] = body.cause;
    line["evidence"] = spelling_of(evidence_names, body.evidence);
}
void put_body(ordered_json& line, const Packet& body) {
    line["kind"] = spelling_of(packet_kind_names, body.kind);
    line["link"] = spelling_of(link_names, body.link);
    line["bytes"] = to_hex(body.bytes);
    if (body.rule) line["rule"] = *body.rule;
    if (body.from_host) line["from_host"] = *body.from_host;
    if (body.to_host) line["to_host"] = *body.to_host;
    if (body.cause) line["cause"] = spelling_of(drop_cause_names, *body.cause);
    if (body.rule_id) line["rule_id"] = *body.rule_id;
}
void put_body(ordered_json& line, const CallFailed& body) {
    if (body.socket) line["socket"] = body.socket->value;
    line["call"] = body.call;
    line["errno_name"] = body.errno_name;
    line["message"] = body.message;
    if (body.endpoint) line["endpoint"] = endpoint_json(*body.endpoint);
}
void put_body(ordered_json& line, const Closed& body) { line["socket"] = body.socket.value; }
void put_body(ordered_json& line, const Note& body) { line["text"] = body.text; }
void put_body(ordered_json& line, const HostAdded& body) {
    ordered_json addresses = ordered_json::array();
    for (const auto& address : body.addresses) addresses.push_back(address.to_string());
    line["addresses"] = std::move(addresses);
    line["role"] = body.role;
}
void put_body(ordered_json& line, const TimerArmed& body) {
    line["socket"] = body.socket.value;
    line["timer"] = spelling_of(timer_names, body.timer);
    line["duration_us"] = body.duration_us;
    line["attempt"] = body.attempt;
}
void put_body(ordered_json& line, const TimerFired& body) {
    line["socket"] = body.socket.value;
    line["timer"] = spelling_of(timer_names, body.timer);
}
void put_body(ordered_json& line, const TimerStopped& body) {
    line["socket"] = body.socket.value;
    line["timer"] = spelling_of(timer_names, body.timer);
}
void put_body(ordered_json& line, const RuleAdded& body) {
    line["rule_id"] = body.rule_id;
    // value_problem() has refused a rule nft would refuse, so the text is there.
    line["rule"] = nft_text(*body.rule).value_or("");
    if (body.rule->chain != FirewallChain::input) line["chain"] = to_string(body.rule->chain);
}
void put_body(ordered_json& line, const RuleRemoved& body) { line["rule_id"] = body.rule_id; }
void put_body(ordered_json& line, const ScanProbe& body) {
    line["scan"] = scan::to_string(body.scan);
    line["target"] = endpoint_json(body.target);
    line["attempt"] = body.attempt;
    if (body.socket) line["socket"] = body.socket->value;
}
void put_body(ordered_json& line, const ScanResult& body) {
    line["scan"] = scan::to_string(body.scan);
    line["target"] = endpoint_json(body.target);
    line["state"] = scan::to_string(body.state);
    line["reason"] = scan::to_string(body.reason);
}

ordered_json flow_json(const Flow& flow) {
    return ordered_json{{"source", endpoint_json(flow.source)}, {"destination", endpoint_json(flow.destination)}};
}
void put_body(ordered_json& line, const NatTranslated& body) {
    line["kind"] = spelling_of(nat_kind_names, body.kind);
    line["protocol"] = spelling_of(protocol_names, body.protocol);
    line["conntrack_id"] = body.conntrack_id;
    line["before"] = flow_json(body.flows->before);
    line["after"] = flow_json(body.flows->after);
}

std::string dump_line(const ordered_json& line) {
    // `replace` turns invalid UTF-8 into U+FFFD instead of throwing type_error 316.
    return line.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

// ---- reading ----------------------------------------------------------------------

std::string json_type(const json& value) {
    if (value.is_number_unsigned()) return "unsigned integer";
    if (value.is_number_integer()) return "negative integer";
    if (value.is_number_float()) return "fractional number";
    return value.type_name();
}

// Reads the fields of one JSON object. The first problem is kept and every later
// read returns a default value, so a body is built in one expression and then
// checked once with finish(); field order in the expression is the reporting order.
class FieldReader {
public:
    FieldReader(const json& object, std::size_t line_number) : object_(object), line_number_(line_number) {}

    [[nodiscard]] bool failed() const noexcept { return problem_.has_value(); }

    template <class T>
    [[nodiscard]] Result<T> finish(T value) const {
        if (problem_) return fail("line " + std::to_string(line_number_) + ": " + *problem_);
        return value;
    }

    void reject(std::string reason) {
        if (!problem_) problem_ = std::move(reason);
    }

    [[nodiscard]] bool has(const char* name) const { return object_.contains(name); }

    std::uint64_t unsigned_number(const char* name, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
        const json* value = field(name);
        if (value == nullptr) return 0;
        if (!value->is_number_unsigned()) {
            reject(wrong_type(name, "an unsigned integer", *value));
            return 0;
        }
        const auto number = value->get<std::uint64_t>();
        if (number > max) {
            reject("field '" + std::string(name) + "' is " + std::to_string(number) + ", above its maximum " +
                   std::to_string(max));
            return 0;
        }
        return number;
    }

    std::string text(const char* name) {
        const json* value = field(name);
        if (value == nullptr) return {};
        if (!value->is_string()) {
            reject(wrong_type(name, "a string", *value));
            return {};
        }
        return value->get<std::string>();
    }

    std::string non_empty_text(const char* name) {
        std::string value = text(name);
        if (!failed() && value.empty()) reject("field '" + std::string(name) + "' must not be empty");
        return value;
    }

    std::optional<std::string> optional_text(const char* name) {
        if (!has(name)) return std::nullopt;
        return text(name);
    }

    SocketId socket(const char* name) {
        return SocketId{static_cast<std::uint32_t>(unsigned_number(name, std::numeric_limits<std::uint32_t>::max()))};
    }

    std::optional<Endpoint> optional_endpoint(const char* name) {
        if (!has(name)) return std::nullopt;
        return endpoint(name);
    }
    std::optional<SocketId> optional_socket(const char* name) {
        if (!has(name)) return std::nullopt;
        return socket(name);
    }

    Port port(const char* name) {
        const json* value = field(name);
        if (value == nullptr) return 0;
        if (!value->is_number_unsigned()) {
            reject(wrong_type(name, "a port number (0-65535)", *value));
            return 0;
        }
        const auto number = value->get<std::uint64_t>();
        if (number > std::numeric_limits<Port>::max()) {
            reject("port " + std::to_string(number) + " in field '" + name + "' is out of range 0-65535");
            return 0;
        }
        return static_cast<Port>(number);
    }

    Endpoint endpoint(const char* name) {
        const json* value = field(name);
        if (value == nullptr) return {};
        if (!value->is_object()) {
            reject(wrong_type(name, "an object {\"address\": ..., \"port\": ...}", *value));
            return {};
        }
        FieldReader inner(*value, line_number_);
        const std::string address_text = inner.text("address");
        const Port port_number = inner.port("port");
        if (inner.failed()) {
            reject("in '" + std::string(name) + "': " + *inner.problem_);
            return {};
        }
        auto address = IpAddress::parse(address_text);
        if (!address) {
            reject("in '" + std::string(name) + "': " + address.error().message);
            return {};
        }
        return Endpoint{*address, port_number};
    }

    // An object of two endpoints: a four-tuple (local, remote) or a flow (source, destination).
    template <class Pair>
    Pair endpoint_pair(const char* name, const char* first, const char* second) {
        const json* value = field(name);
        if (value == nullptr) return {};
        if (!value->is_object()) {
            reject(wrong_type(name, "an object {\"" + std::string(first) + "\": ..., \"" + second + "\": ...}", *value));
            return {};
        }
        FieldReader inner(*value, line_number_);
        Pair pair{inner.endpoint(first), inner.endpoint(second)};
        if (inner.failed()) reject("in '" + std::string(name) + "': " + *inner.problem_);
        return pair;
    }
    FourTuple four_tuple(const char* name) { return endpoint_pair<FourTuple>(name, "local", "remote"); }
    Flow flow(const char* name) { return endpoint_pair<Flow>(name, "source", "destination"); }

    template <class Enum, std::size_t N>
    Enum one_of(const char* name, const std::array<Spelling<Enum>, N>& names) {
        const std::string value = text(name);
        if (failed()) return names[0].value;
        for (const auto& entry : names) {
            if (entry.text == value) return entry.value;
        }
        reject("field '" + std::string(name) + "' is '" + value + "', expected one of: " + spellings_list(names));
        return names[0].value;
    }

    template <class Enum, std::size_t N>
    std::optional<Enum> optional_one_of(const char* name, const std::array<Spelling<Enum>, N>& names) {
        if (!has(name)) return std::nullopt;
        return one_of(name, names);
    }

    // Traces spell states one way, as RFC 793 does ("SYN-SENT"); ss's "ESTAB"
    // would parse but is refused so every trace reads the same.
    TcpState tcp_state(const char* name) {
        const std::string value = text(name);
        if (failed()) return TcpState::closed;
        auto state = parse_tcp_state(value);
        if (!state || to_string(*state) != value) {
            reject("field '" + std::string(name) + "' is '" + value + "', not an RFC 793 state name" +
                   (state ? " (write " + std::string(to_string(*state)) + ")" : std::string{}));
            return TcpState::closed;
        }
        return *state;
    }

    // A JSON array of address strings.
    std::vector<IpAddress> addresses(const char* name) {
        const json* value = field(name);
        if (value == nullptr) return {};
        if (!value->is_array()) {
            reject(wrong_type(name, "an array of addresses", *value));
            return {};
        }
        std::vector<IpAddress> result;
        for (std::size_t i = 0; i < value->size(); ++i) {
            const json& item = (*value)[i];
            const auto where = "in '" + std::string(name) + "' item " + std::to_string(i) + ": ";
            if (!item.is_string()) {
                reject(where + "an address must be a string, not " + json_type(item));
                return {};
            }
            auto address = IpAddress::parse(item.get<std::string>());
            if (!address) {
                reject(where + address.error().message);
                return {};
            }
            result.push_back(*address);
        }
        return result;
    }

    // A string field read by one of the hub's own parsers (scan::parse_port_state,
    // parse_nft_rule, ...), whose message explains a refusal.
    template <class Parse>
    auto parsed(const char* name, Parse parse) -> std::decay_t<decltype(*parse(std::string_view{}))> {
        using Value = std::decay_t<decltype(*parse(std::string_view{}))>;
        const std::string value = text(name);
        if (failed()) return Value{};
        auto result = parse(value);
        if (!result) {
            reject("field '" + std::string(name) + "': " + result.error().message);
            return Value{};
        }
        return std::move(*result);
    }

    Bytes hex_bytes(const char* name) {
        const std::string value = text(name);
        if (failed()) return {};
        auto bytes = from_hex(value);
        if (!bytes) {
            reject("bad hex in '" + std::string(name) + "': " + bytes.error().message);
            return {};
        }
        return std::move(*bytes);
    }

private:
    const json* field(const char* name) {
        if (failed()) return nullptr;
        const auto found = object_.find(name);
        if (found == object_.end()) {
            reject("missing field '" + std::string(name) + "'");
            return nullptr;
        }
        return &*found;
    }

    static std::string wrong_type(const char* name, const std::string& expected, const json& value) {
        return "field '" + std::string(name) + "' must be " + expected + ", not " + json_type(value);
    }

    const json& object_;
    std::size_t line_number_;
    std::optional<std::string> problem_;
};

// One body per type, read the same way by the full parser's FieldReader and by
// the fast path's fast::Fields (below), so the two cannot drift apart.
template <class Reader>
SocketCreated read_body(Reader& r, std::type_identity<SocketCreated>) {
    return {r.socket("socket"), r.one_of("protocol", protocol_names), r.one_of("family", family_names)};
}
template <class Reader>
Bound read_body(Reader& r, std::type_identity<Bound>) {
    return {r.socket("socket"), r.endpoint("endpoint"), r.one_of("how", bind_how_names), r.optional_text("note")};
}
template <class Reader>
Listening read_body(Reader& r, std::type_identity<Listening>) {
    return {r.socket("socket"),
            static_cast<std::uint32_t>(r.unsigned_number("backlog", std::numeric_limits<std::uint32_t>::max()))};
}
template <class Reader>
ConnectStarted read_body(Reader& r, std::type_identity<ConnectStarted>) {
    return {r.socket("socket"), r.endpoint("remote")};
}
template <class Reader>
EphemeralAssigned read_body(Reader& r, std::type_identity<EphemeralAssigned>) {
    return {r.socket("socket"),      r.port("port"),           r.port("range_low"),
            r.port("range_high"),    r.text("algorithm"),      r.optional_one_of("parity", parity_names)};
}
template <class Reader>
ChildCreated read_body(Reader& r, std::type_identity<ChildCreated>) {
    return {r.socket("listener"), r.socket("socket"), r.four_tuple("four_tuple")};
}
template <class Reader>
Accepted read_body(Reader& r, std::type_identity<Accepted>) {
    return {r.socket("listener"), r.socket("socket"), r.four_tuple("four_tuple")};
}
template <class Reader>
StateChanged read_body(Reader& r, std::type_identity<StateChanged>) {
    // "evidence" arrived in version 2; a version-1 line without it is the model's word.
    return {r.socket("socket"), r.tcp_state("from"), r.tcp_state("to"), r.text("cause"),
            r.optional_one_of("evidence", evidence_names).value_or(Evidence::model)};
}
template <class Reader>
Packet read_body(Reader& r, std::type_identity<Packet>) {
    Packet packet;
    packet.kind = r.one_of("kind", packet_kind_names);
    // "link" may be left out: most events carry bare IP packets.
    packet.link = r.optional_one_of("link", link_names).value_or(LinkType::raw);
    packet.bytes = r.hex_bytes("bytes");
    packet.rule = r.optional_text("rule");
    packet.from_host = r.optional_text("from_host");
    packet.to_host = r.optional_text("to_host");
    packet.cause = r.optional_one_of("cause", drop_cause_names);
    packet.rule_id = r.optional_text("rule_id");
    return packet;
}
template <class Reader>
CallFailed read_body(Reader& r, std::type_identity<CallFailed>) {
    return {r.optional_socket("socket"), r.text("call"), r.text("errno_name"), r.text("message"),
            r.optional_endpoint("endpoint")};
}
template <class Reader>
Closed read_body(Reader& r, std::type_identity<Closed>) { return {r.socket("socket")}; }
template <class Reader>
Note read_body(Reader& r, std::type_identity<Note>) { return {r.text("text")}; }
template <class Reader>
HostAdded read_body(Reader& r, std::type_identity<HostAdded>) {
    return {r.addresses("addresses"), r.text("role")};
}
template <class Reader>
TimerArmed read_body(Reader& r, std::type_identity<TimerArmed>) {
    return {r.socket("socket"), r.one_of("timer", timer_names), r.unsigned_number("duration_us"),
            static_cast<std::uint32_t>(r.unsigned_number("attempt", std::numeric_limits<std::uint32_t>::max()))};
}
template <class Reader>
TimerFired read_body(Reader& r, std::type_identity<TimerFired>) {
    return {r.socket("socket"), r.one_of("timer", timer_names)};
}
template <class Reader>
TimerStopped read_body(Reader& r, std::type_identity<TimerStopped>) {
    return {r.socket("socket"), r.one_of("timer", timer_names)};
}

template <class Reader>
RuleAdded read_body(Reader& r, std::type_identity<RuleAdded>) {
    Text id = r.text("rule_id");
    FirewallRule rule = r.parsed("rule", [](std::string_view text) { return parse_nft_rule(text); });
    // "chain" came later: a trace without it put every rule into the input chain.
    if (r.optional_text("chain")) rule.chain = r.parsed("chain", parse_firewall_chain);
    return {std::move(id), std::move(rule)};
}
template <class Reader>
RuleRemoved read_body(Reader& r, std::type_identity<RuleRemoved>) { return {r.text("rule_id")}; }
template <class Reader>
ScanProbe read_body(Reader& r, std::type_identity<ScanProbe>) {
    return {r.parsed("scan", scan::parse_scan_type), r.endpoint("target"),
            static_cast<std::uint32_t>(r.unsigned_number("attempt", std::numeric_limits<std::uint32_t>::max())),
            r.optional_socket("socket")};
}
template <class Reader>
ScanResult read_body(Reader& r, std::type_identity<ScanResult>) {
    return {r.parsed("scan", scan::parse_scan_type), r.endpoint("target"), r.parsed("state", scan::parse_port_state),
            r.parsed("reason", scan::parse_reason)};
}

template <class Reader>
NatTranslated read_body(Reader& r, std::type_identity<NatTranslated>) {
    NatTranslated nat;
    nat.kind = r.one_of("kind", nat_kind_names);
    nat.protocol = r.one_of("protocol", protocol_names);
    nat.conntrack_id = static_cast<std::uint32_t>(r.unsigned_number("conntrack_id", std::numeric_limits<std::uint32_t>::max()));
    Flow before = r.flow("before");  // read in the order of the line, for the first problem's message
    nat.flows = Boxed<NatFlows>(NatFlows{before, r.flow("after")});
    return nat;
}

// Picks the variant alternative whose name is `type` and reads its fields.
template <class Reader, std::size_t... I>
std::optional<EventBody> read_named_body(std::string_view type, Reader& reader, std::index_sequence<I...>) {
    std::optional<EventBody> body;
    const auto try_one = [&]<std::size_t Index>(std::integral_constant<std::size_t, Index>) {
        using Body = std::variant_alternative_t<Index, EventBody>;
        if (type != body_name<Body>) return false;
        body.emplace(read_body(reader, std::type_identity<Body>{}));
        return true;
    };
    (try_one(std::integral_constant<std::size_t, I>{}) || ...);
    return body;
}

// Rules about one event's values that its JSON types cannot express.
std::optional<std::string> value_problem(const Event& event) {
    if (event.host.empty()) return "field 'host' must not be empty";
    if (const auto* packet = std::get_if<Packet>(&event.body)) {
        if (packet->cause && packet->kind != PacketKind::dropped)
            return "field 'cause' is for dropped packets only, and this one is " +
                   std::string(spelling_of(packet_kind_names, packet->kind));
        if (packet->rule_id && packet->cause != DropCause::firewall && packet->cause != DropCause::ct_state)
            return "field 'rule_id' needs \"cause\": \"firewall\" or \"ct-state\" (only a firewall rule drops by rule)";
    }
    if (const auto* added = std::get_if<RuleAdded>(&event.body)) {
        if (added->rule_id.empty()) return "field 'rule_id' must not be empty";
        if (auto refused = check_rule(*added->rule); !refused) return "rule " + added->rule_id + ": " + refused.error().message;
    }
    if (const auto* removed = std::get_if<RuleRemoved>(&event.body); removed && removed->rule_id.empty())
        return "field 'rule_id' must not be empty";
    if (const auto* nat = std::get_if<NatTranslated>(&event.body)) {
        // A source NAT leaves the destination alone and a destination NAT the source
        // (nf_nat_setup_info manipulates one side per hook, NF_NAT_MANIP_SRC or _DST).
        const auto& [before, after] = *nat->flows;
        if (nat->kind == NatKind::snat && before.destination != after.destination)
            return "a snat translation keeps the destination, but 'before' and 'after' name different ones";
        if (nat->kind == NatKind::dnat && before.source != after.source)
            return "a dnat translation keeps the source, but 'before' and 'after' name different ones";
        if (nat->kind == NatKind::track && before != after) return "a track entry translates nothing, but 'before' and 'after' differ";
    }
    if (const auto* assigned = std::get_if<EphemeralAssigned>(&event.body)) {
        if (assigned->range_low > assigned->range_high) {
            return "ephemeral range " + std::to_string(assigned->range_low) + "-" +
                   std::to_string(assigned->range_high) + " is empty (range_low > range_high)";
        }
        if (assigned->port < assigned->range_low || assigned->port > assigned->range_high) {
            return "ephemeral port " + std::to_string(assigned->port) + " is outside its range " +
                   std::to_string(assigned->range_low) + "-" + std::to_string(assigned->range_high);
        }
    }
    return std::nullopt;
}

std::string excerpt(std::string_view line) {
    constexpr std::size_t shown = 40;
    return line.size() <= shown ? std::string(line) : std::string(line.substr(0, shown)) + "...";
}

std::string too_long(std::size_t line_number, std::size_t length) {
    return "line " + std::to_string(line_number) + ": longer than a trace line may be (" + std::to_string(length) +
           " bytes or more, at most " + std::to_string(max_trace_line_bytes) + "); is this a portlab trace?";
}

Result<json> parse_object(std::string_view line, std::size_t line_number) {
    const auto prefix = "line " + std::to_string(line_number) + ": ";
    if (line.size() > max_trace_line_bytes) return fail(too_long(line_number, line.size()));
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return fail(prefix + "empty line");
    json value = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return fail(prefix + "not JSON: " + excerpt(line));
    if (!value.is_object()) return fail(prefix + "not a JSON object but " + json_type(value));
    return value;
}

// ---- the fast path ------------------------------------------------------------------
//
// A million-line trace spends most of its reading time in the DOM parser above
// (~2.5 us a line), yet writers produce one narrow shape: an object of strings
// without escapes, unsigned integers and small objects. This scanner reads that
// shape straight into an Event (~10x faster) and declines everything else (an
// escape, a non-ASCII byte, a duplicate key, a negative or fractional number,
// an array, a value out of range, an unknown type, any rule broken), so the full
// parser decides every line it is unsure of, with the full parser's message. It
// accepts a line only when the full parser accepts it and yields the same Event
// (tests/test_trace.cpp checks the two agree).
namespace fast {

// Characters of the line: a std::string_view without its constructor, which zeroes
// it. A Scanner holds 96 members, and zeroing their views for every line was half of
// parse_event_line_fast's own time (issue 13).
struct Chars {
    const char* data;
    std::size_t size;
    [[nodiscard]] std::string_view view() const noexcept { return {data, size}; }
};

// Trivially constructible on purpose: a scan leaves unused slots untouched.
struct Member {
    enum class Kind : std::uint8_t { string, number, object };
    Chars key;
    Kind kind;
    Chars text;              // string: the characters between the quotes
    std::uint64_t number;    // number: an unsigned integer that fits 64 bits
    std::uint8_t object;     // object: index into Scanner::objects_
};
static_assert(std::is_trivially_default_constructible_v<Member>, "a Scanner's members must cost nothing to make");

// Keys are a few bytes long: comparing them in line beats a call to memcmp.
inline bool same_key(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) return false;
    return true;
}

struct Object {
    static constexpr std::size_t capacity = 12;
    std::array<Member, capacity> members;
    std::size_t count = 0;

    [[nodiscard]] const Member* find(std::string_view key) const noexcept {
        for (std::size_t i = 0; i < count; ++i)
            if (same_key(members[i].key.view(), key)) return &members[i];
        return nullptr;
    }
};

// Bytes a string may hold without the full parser's help: printable ASCII and
// space, but not the quote that ends it nor the backslash that starts an escape.
constexpr std::array<bool, 256> plain_bytes = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    return plain;
}();

class Scanner {
public:
    explicit Scanner(std::string_view line) : p_(line.data()), end_(line.data() + line.size()) {}

    // The whole line as one object followed only by whitespace; false declines it.
    bool scan() {
        skip_space();
        if (!object()) return false;
        skip_space();
        return p_ == end_;
    }

    [[nodiscard]] const Object& top() const noexcept { return objects_[0]; }
    [[nodiscard]] const Object& object_at(std::size_t index) const noexcept { return objects_[index]; }

private:
    // JSON's four whitespace characters (RFC 8259 section 2).
    void skip_space() noexcept {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
    }

    // Plain ASCII between quotes; an escape, a control or non-ASCII byte declines
    // (the full parser decodes escapes and checks UTF-8).
    bool string(Chars& out) noexcept {
        if (p_ == end_ || *p_ != '"') return false;
        const char* start = ++p_;
        skip_plain_words();
        while (p_ != end_ && plain_bytes[static_cast<unsigned char>(*p_)]) ++p_;
        if (p_ == end_ || *p_ != '"') return false;
        out = Chars{start, static_cast<std::size_t>(p_ - start)};
        ++p_;
        return true;
    }

    // Skips 8 bytes at a time while none of them can end a plain string: a packet's
    // hex is most of a trace's bytes (issue 13: the line scanner was a fifth of a
    // million-event load). The byte loop after it finds the exact end.
    void skip_plain_words() noexcept {
        constexpr std::uint64_t ones = 0x0101010101010101u;
        constexpr std::uint64_t highs = 0x8080808080808080u;
        // Whether some byte of v is zero (exact, never a false "no").
        const auto has_zero_byte = [](std::uint64_t v) { return ((v - ones) & ~v & highs) != 0; };
        while (end_ - p_ >= 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, p_, sizeof word);
            const bool non_ascii = (word & highs) != 0;
            const bool control = ((word - ones * 0x20) & ~word & highs) != 0;  // some byte < 0x20
            if (non_ascii || control || has_zero_byte(word ^ (ones * '"')) || has_zero_byte(word ^ (ones * '\\'))) return;
            p_ += 8;
        }
    }

    // An unsigned integer as JSON writes it (no leading zero, no sign, no
    // fraction or exponent) that fits 64 bits; anything else declines.
    bool number(std::uint64_t& out) noexcept {
        const char* start = p_;
        std::uint64_t value = 0;
        while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
            const auto digit = static_cast<std::uint64_t>(*p_ - '0');
            if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
            value = value * 10 + digit;
            ++p_;
        }
        const auto digits = p_ - start;
        if (digits == 0 || (digits > 1 && *start == '0')) return false;
        if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
        out = value;
        return true;
    }

    bool object() {
        if (p_ == end_ || *p_ != '{' || used_ == objects_.size() || ++depth_ > 3) return false;
        const std::size_t index = used_++;
        ++p_;
        skip_space();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
            --depth_;
            return true;
        }
        while (true) {
            Object& into = objects_[index];
            if (into.count == Object::capacity) return false;
            // Filled in place: a Member built on the stack and copied in stalled on
            // store forwarding (16-byte loads of 8-byte stores), half of this function's time.
            Member& member = into.members[into.count];
            if (!string(member.key)) return false;
            skip_space();
            if (p_ == end_ || *p_ != ':') return false;
            ++p_;
            skip_space();
            if (p_ == end_) return false;
            if (*p_ == '"') {
                member.kind = Member::Kind::string;
                if (!string(member.text)) return false;
            } else if (*p_ == '{') {
                member.kind = Member::Kind::object;
                member.object = static_cast<std::uint8_t>(used_);
                if (!object()) return false;
            } else {
                member.kind = Member::Kind::number;
                if (!number(member.number)) return false;
            }
            // A repeated key: the full parser keeps the last; let it decide. (find reads
            // the members before this one.)
            if (into.find(member.key.view()) != nullptr) return false;
            ++into.count;
            skip_space();
            if (p_ == end_) return false;
            if (*p_ == '}') {
                ++p_;
                --depth_;
                return true;
            }
            if (*p_ != ',') return false;
            ++p_;
            skip_space();
        }
    }

    const char* p_;
    const char* end_;
    std::array<Object, 8> objects_;  // [0] is the line; accepted's four_tuple needs three more, nat's two flows six
    std::size_t used_ = 0;
    int depth_ = 0;
};

// Reads fields the way FieldReader does, but only says yes or no: the first
// problem makes `ok` false and the caller hands the line to the full parser.
class Fields {
public:
    Fields(const Scanner& scanner, const Object& object) : scanner_(scanner), object_(object) {}

    bool ok = true;

    std::uint64_t unsigned_number(std::string_view name, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
        const Member* m = object_.find(name);
        if (!m || m->kind != Member::Kind::number || m->number > max) return decline(0);
        return m->number;
    }
    std::string_view view(std::string_view name) {
        const Member* m = object_.find(name);
        if (!m || m->kind != Member::Kind::string) return decline(std::string_view{});
        return m->text.view();
    }
    std::string text(std::string_view name) { return std::string(view(name)); }
    std::optional<std::string> optional_text(std::string_view name) {
        if (!object_.find(name)) return std::nullopt;
        return text(name);
    }
    SocketId socket(std::string_view name) {
        return SocketId{static_cast<std::uint32_t>(unsigned_number(name, std::numeric_limits<std::uint32_t>::max()))};
    }
    std::optional<Endpoint> optional_endpoint(std::string_view name) {
        if (!object_.find(name)) return std::nullopt;
        return endpoint(name);
    }
    std::optional<SocketId> optional_socket(std::string_view name) {
        if (!object_.find(name)) return std::nullopt;
        return socket(name);
    }
    Port port(std::string_view name) {
        return static_cast<Port>(unsigned_number(name, std::numeric_limits<Port>::max()));
    }
    Endpoint endpoint(std::string_view name) {
        const Member* m = object_.find(name);
        if (!m || m->kind != Member::Kind::object) return decline(Endpoint{});
        Fields inner(scanner_, scanner_.object_at(m->object));
        const std::string_view address_text = inner.view("address");
        const Port port_number = inner.port("port");
        if (!inner.ok) return decline(Endpoint{});
        auto address = IpAddress::parse(address_text);
        if (!address) return decline(Endpoint{});
        return Endpoint{*address, port_number};
    }
    template <class Pair>
    Pair endpoint_pair(std::string_view name, std::string_view first, std::string_view second) {
        const Member* m = object_.find(name);
        if (!m || m->kind != Member::Kind::object) return decline(Pair{});
        Fields inner(scanner_, scanner_.object_at(m->object));
        Pair pair{inner.endpoint(first), inner.endpoint(second)};
        if (!inner.ok) return decline(Pair{});
        return pair;
    }
    FourTuple four_tuple(std::string_view name) { return endpoint_pair<FourTuple>(name, "local", "remote"); }
    Flow flow(std::string_view name) { return endpoint_pair<Flow>(name, "source", "destination"); }
    template <class Enum, std::size_t N>
    Enum one_of(std::string_view name, const std::array<Spelling<Enum>, N>& names) {
        const std::string_view value = view(name);
        for (const auto& entry : names)
            if (entry.text == value) return entry.value;
        return decline(names[0].value);
    }
    template <class Enum, std::size_t N>
    std::optional<Enum> optional_one_of(std::string_view name, const std::array<Spelling<Enum>, N>& names) {
        if (!object_.find(name)) return std::nullopt;
        return one_of(name, names);
    }
    // Exactly an RFC 793 spelling, as FieldReader::tcp_state insists.
    TcpState tcp_state(std::string_view name) {
        const std::string_view value = view(name);
        for (auto state = TcpState::closed;; state = static_cast<TcpState>(static_cast<int>(state) + 1)) {
            if (portlab::to_string(state) == value) return state;
            if (state == TcpState::time_wait) break;
        }
        return decline(TcpState::closed);
    }
    // Arrays are the full parser's job: host lines are a few per trace.
    std::vector<IpAddress> addresses(std::string_view) { return decline(std::vector<IpAddress>{}); }
    template <class Parse>
    auto parsed(std::string_view name, Parse parse) -> std::decay_t<decltype(*parse(std::string_view{}))> {
        using Value = std::decay_t<decltype(*parse(std::string_view{}))>;
        const std::string_view value = view(name);
        if (!ok) return Value{};
        auto result = parse(value);
        if (!result) return decline(Value{});
        return std::move(*result);
    }
    Bytes hex_bytes(std::string_view name) {
        const std::string_view value = view(name);
        if (!ok) return decline(Bytes{});
        auto bytes = from_hex(value);
        if (!bytes) return decline(Bytes{});
        return std::move(*bytes);
    }

private:
    template <class T>
    T decline(T value) {
        ok = false;
        return value;
    }

    const Scanner& scanner_;
    const Object& object_;
};

}  // namespace fast

}  // namespace

std::string_view type_name(const EventBody& body) noexcept {
    return std::visit([](const auto& alternative) { return body_name<std::decay_t<decltype(alternative)>>; }, body);
}

std::optional<SocketId> socket_of(const EventBody& body) noexcept {
    return std::visit(
        [](const auto& alternative) -> std::optional<SocketId> {
            if constexpr (requires { alternative.socket; }) return alternative.socket;
            else return std::nullopt;
        },
        body);
}

int introduced_in_version(const EventBody& body) noexcept {
    return std::visit([](const auto& alternative) { return body_version<std::decay_t<decltype(alternative)>>; }, body);
}

std::string_view to_string(Evidence evidence) noexcept { return spelling_of(evidence_names, evidence); }
std::string_view to_string(TimerKind timer) noexcept { return spelling_of(timer_names, timer); }
std::string_view to_string(DropCause cause) noexcept { return spelling_of(drop_cause_names, cause); }
std::string_view to_string(NatKind kind) noexcept { return spelling_of(nat_kind_names, kind); }

// ---- the rules that span lines ---------------------------------------------------

namespace {

// The socket an event brings into existence: socket_created's, child_created's, or
// the new connected socket of accepted (unless child_created brought it already).
std::optional<SocketId> introduced_socket(const EventBody& body) {
    if (const auto* created = std::get_if<SocketCreated>(&body)) return created->socket;
    if (const auto* child = std::get_if<ChildCreated>(&body)) return child->socket;
    if (const auto* accepted = std::get_if<Accepted>(&body)) return accepted->socket;
    return std::nullopt;
}

}  // namespace

std::optional<std::string> SequenceRules::admit(const Event& event, std::size_t line_number) {
    if (event.t_us < last_t_us_) {
        return "time goes backwards: t_us " + std::to_string(event.t_us) + " after " + std::to_string(last_t_us_);
    }
    if (const int needed = introduced_in_version(event.body); needed > version_) {
        return "event type '" + std::string(type_name(event.body)) + "' needs trace format version " +
               std::to_string(needed) + ", but the header says " + std::to_string(version_);
    }
    if (std::holds_alternative<HostAdded>(event.body)) {
        if (const auto declared = host_declared_on_line_.find(event.host); declared != host_declared_on_line_.end()) {
            return "host '" + event.host + "' was already declared on line " + std::to_string(declared->second) +
                   " (a host is declared once)";
        }
        if (const auto seen = host_seen_on_line_.find(event.host); seen != host_seen_on_line_.end()) {
            return "host '" + event.host + "' is declared after line " + std::to_string(seen->second) +
                   " already named it (declare a host before any other event on it)";
        }
        host_declared_on_line_.emplace(event.host, line_number);
    }
    if (auto problem = admit_child_or_rule(event, line_number)) return problem;
    const auto* accepted = std::get_if<Accepted>(&event.body);
    const bool accepts_child = accepted && waiting_children_.erase({event.host, accepted->socket.value}) > 0;
    if (const auto socket = introduced_socket(event.body); socket && !accepts_child) {
        const auto [where, fresh] = introduced_on_line_.try_emplace({event.host, socket->value}, line_number);
        if (!fresh) {
            return "socket " + std::to_string(socket->value) + " on host '" + event.host + "' was already created on line " +
                   std::to_string(where->second) + " (socket ids are never reused)";
        }
    }
    // Consecutive events mostly share a host: look it up only when it changes.
    if (event.host != last_host_) {
        host_seen_on_line_.try_emplace(event.host, line_number);
        last_host_ = event.host;
    }
    last_t_us_ = event.t_us;
    return std::nullopt;
}

std::optional<std::string> SequenceRules::admit_child_or_rule(const Event& event, std::size_t line_number) {
    if (const auto* accepted = std::get_if<Accepted>(&event.body)) {
        const auto child = waiting_children_.find({event.host, accepted->socket.value});
        if (child != waiting_children_.end() && child->second != accepted->listener.value) {
            return "socket " + std::to_string(accepted->socket.value) + " on host '" + event.host +
                   "' arrived at listener " + std::to_string(child->second) + ", so listener " +
                   std::to_string(accepted->listener.value) + " cannot accept it";
        }
    }
    if (const auto* child = std::get_if<ChildCreated>(&event.body)) {
        waiting_children_.try_emplace({event.host, child->socket.value}, child->listener.value);
    }
    if (const auto* added = std::get_if<RuleAdded>(&event.body)) {
        const auto [where, fresh] = rules_in_force_.try_emplace({event.host, added->rule_id}, line_number);
        if (!fresh) {
            return "rule '" + added->rule_id + "' on host '" + event.host + "' was already added on line " +
                   std::to_string(where->second) + " and is still in force";
        }
    }
    if (const auto* removed = std::get_if<RuleRemoved>(&event.body)) {
        if (rules_in_force_.erase({event.host, removed->rule_id}) == 0)
            return "rule '" + removed->rule_id + "' on host '" + event.host + "' is not in force, so it cannot be removed";
    }
    return std::nullopt;
}

std::string to_json_line(const TraceHeader& header) {
    ordered_json line;
    line["portlab_trace"] = header.version;
    line["source"] = header.source;
    line["generator"] = header.generator;
    if (header.scenario) line["scenario"] = *header.scenario;
    if (header.title) line["title"] = *header.title;
    return dump_line(line);
}

std::string to_json_line(const Event& event) {
    ordered_json line;
    line["t_us"] = event.t_us;
    line["host"] = event.host;
    line["type"] = type_name(event.body);
    std::visit([&line](const auto& body) { put_body(line, body); }, event.body);
    return dump_line(line);
}

namespace {

// A reader's message quotes the file's own text (an excerpt, a field's value, a type name):
// escaped (text_safety.hpp), so a line holding ESC cannot drive the terminal the message is
// printed on, and the message stays one line (issue 12, item 4).
template <class T>
Result<T> escaped(Result<T> result) {
    if (!result) return fail(text::printable(result.error().message), result.error().code);
    return result;
}

Result<TraceHeader> parse_header_line_unescaped(std::string_view line, std::size_t line_number) {
    auto object = parse_object(line, line_number);
    if (!object) return object.error();
    const auto prefix = "line " + std::to_string(line_number) + ": ";
    if (!object->contains("portlab_trace")) {
        return fail(prefix + "not a portlab trace header (no 'portlab_trace' field)");
    }
    // The version is checked before anything else: another version may name its
    // other fields differently, and "wrong version" is the useful message then.
    const json& version = (*object)["portlab_trace"];
    if (!version.is_number_unsigned()) {
        return fail(prefix + "field 'portlab_trace' must be an unsigned integer, not " + json_type(version));
    }
    const auto number = version.get<std::uint64_t>();
    if (number < static_cast<std::uint64_t>(oldest_readable_version) || number > static_cast<std::uint64_t>(format_version)) {
        return fail(prefix + "trace format version " + std::to_string(number) + " is not supported; this reader reads versions " +
                    std::to_string(oldest_readable_version) + " to " + std::to_string(format_version));
    }
    FieldReader reader(*object, line_number);
    TraceHeader header;
    header.version = static_cast<int>(number);
    header.source = reader.non_empty_text("source");
    header.generator = reader.non_empty_text("generator");
    header.scenario = reader.optional_text("scenario");
    header.title = reader.optional_text("title");
    return reader.finish(std::move(header));
}

Result<Event> parse_event_line_full_unescaped(std::string_view line, std::size_t line_number) {
    auto object = parse_object(line, line_number);
    if (!object) return object.error();
    FieldReader reader(*object, line_number);
    Event event;
    event.t_us = reader.unsigned_number("t_us");
    event.host = reader.non_empty_text("host");
    const std::string type = reader.text("type");
    if (reader.failed()) return reader.finish(std::move(event));

    auto body = read_named_body(type, reader, std::make_index_sequence<std::variant_size_v<EventBody>>{});
    if (!body) return fail("line " + std::to_string(line_number) + ": unknown event type '" + type + "'");
    event.body = std::move(*body);
    if (auto problem = value_problem(event)) reader.reject(*problem);
    return reader.finish(std::move(event));
}

}  // namespace

Result<TraceHeader> parse_header_line(std::string_view line, std::size_t line_number) {
    return escaped(parse_header_line_unescaped(line, line_number));
}

std::optional<Event> parse_event_line_fast(std::string_view line) {
    fast::Scanner scanner(line);
    if (!scanner.scan()) return std::nullopt;
    fast::Fields reader(scanner, scanner.top());
    Event event;
    event.t_us = reader.unsigned_number("t_us");
    event.host = reader.text("host");
    const std::string_view type = reader.view("type");
    if (!reader.ok) return std::nullopt;
    auto body = read_named_body(type, reader, std::make_index_sequence<std::variant_size_v<EventBody>>{});
    if (!body || !reader.ok) return std::nullopt;
    event.body = std::move(*body);
    if (value_problem(event)) return std::nullopt;  // includes an empty host
    return event;
}

Result<Event> parse_event_line(std::string_view line, std::size_t line_number) {
    if (line.size() > max_trace_line_bytes) return fail(too_long(line_number, line.size()));
    if (auto event = parse_event_line_fast(line)) return std::move(*event);
    return parse_event_line_full(line, line_number);
}

Result<Event> parse_event_line_full(std::string_view line, std::size_t line_number) {
    return escaped(parse_event_line_full_unescaped(line, line_number));
}

namespace {

enum class LineRead { line, end, too_long };

// The reading both read_trace and read_trace_file share; `next(line)` hands over the next line
// (without its '\n'), says the input ended, or that the line is longer than
// max_trace_line_bytes (then `line` holds what was read of it, for the message).
template <class NextLine>
Result<Trace> read_trace_lines(NextLine next) {
    Trace trace;
    std::optional<SequenceRules> rules;  // made from the header, which says the version
    std::size_t line_number = 0;
    std::string_view line;
    for (LineRead read = next(line); read != LineRead::end; read = next(line)) {
        ++line_number;
        if (read == LineRead::too_long) return fail(too_long(line_number, line.size()));
        if (line_number == 1) {
            auto header = parse_header_line(line, line_number);
            if (!header) return header.error();
            trace.header = std::move(*header);
            rules.emplace(trace.header.version);
            continue;
        }
        auto event = parse_event_line(line, line_number);
        if (!event) return event.error();
        if (auto problem = rules->admit(*event, line_number)) {
            return fail("line " + std::to_string(line_number) + ": " + text::printable(*problem));
        }
        trace.events.push_back(std::move(*event));
    }
    if (line_number == 0) return fail("line 1: empty trace, expected a header line");
    return trace;
}

}  // namespace

Result<Trace> read_trace(std::istream& in) {
    // std::getline, bounded: a line longer than max_trace_line_bytes is not read into memory.
    std::string buffer;
    auto trace = read_trace_lines([&](std::string_view& line) {
        buffer.clear();
        std::streambuf* bytes = in.rdbuf();
        for (;;) {
            const auto c = bytes->sbumpc();
            if (c == std::char_traits<char>::eof()) {
                in.setstate(std::ios::eofbit);
                line = buffer;
                return buffer.empty() ? LineRead::end : LineRead::line;
            }
            if (c == '\n') break;
            buffer += static_cast<char>(c);
            if (buffer.size() > max_trace_line_bytes) {
                line = buffer;
                return LineRead::too_long;
            }
        }
        line = buffer;
        return LineRead::line;
    });
    if (in.bad()) return fail("read error");
    return trace;
}

Result<Trace> read_trace_file(const std::string& path) {
    auto text = read_input_file(path, max_trace_file_bytes);
    if (!text) return text.error();
    std::string_view rest = *text;
    auto trace = read_trace_lines([&](std::string_view& line) {
        if (rest.empty()) return LineRead::end;
        const auto end = rest.substr(0, max_trace_line_bytes + 1).find('\n');
        if (end == std::string_view::npos && rest.size() > max_trace_line_bytes) {
            line = rest.substr(0, max_trace_line_bytes + 1);
            return LineRead::too_long;
        }
        line = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        return LineRead::line;
    });
    if (!trace) return fail(text::printable(path) + ": " + trace.error().message);
    return trace;
}

// ---- writer -------------------------------------------------------------------------

struct TraceWriter::State {
    std::optional<OutputFile> output;     // set when the writer writes a file: declared first, removed last
    std::unique_ptr<std::ofstream> file;  // set when the writer owns its stream
    std::ostream* out = nullptr;
    std::string name;  // for messages: a path or "stream"
    SequenceRules rules;
    std::size_t line_number = 1;  // the header
};

TraceWriter::TraceWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
TraceWriter::TraceWriter(TraceWriter&&) noexcept = default;
TraceWriter& TraceWriter::operator=(TraceWriter&&) noexcept = default;
TraceWriter::~TraceWriter() = default;

namespace {

std::optional<std::string> header_problem(const TraceHeader& header) {
    if (header.version != format_version) {
        return "this writer writes trace format version " + std::to_string(format_version) + ", not " +
               std::to_string(header.version);
    }
    if (header.source.empty()) return "the header's 'source' must not be empty";
    if (header.generator.empty()) return "the header's 'generator' must not be empty";
    return std::nullopt;
}

}  // namespace

Result<TraceWriter> TraceWriter::to_stream(std::ostream& out, const TraceHeader& header) {
    if (auto problem = header_problem(header)) return fail("trace: " + *problem);
    auto state = std::make_unique<State>();
    state->out = &out;
    state->name = "trace stream";
    out << to_json_line(header) << '\n';
    if (!out) return fail("trace: writing the header to the stream failed");
    return TraceWriter(std::move(state));
}

Result<TraceWriter> TraceWriter::to_file(const std::string& path, const TraceHeader& header,
                                         const OutputRules& rules) {
    if (auto problem = header_problem(header)) return fail(path + ": " + *problem);
    auto output = OutputFile::create(path, rules);
    if (!output) return output.error();
    auto file = std::make_unique<std::ofstream>(output->temp_path(), std::ios::out | std::ios::trunc);
    if (!*file) return fail(path + ": cannot create: " + std::strerror(errno));
    auto writer = to_stream(*file, header);
    if (!writer) return fail(path + ": " + writer.error().message);
    writer->state_->output = std::move(*output);
    writer->state_->file = std::move(file);
    writer->state_->name = path;
    return writer;
}

Result<void> TraceWriter::write(const Event& event) {
    if (!state_) return fail("trace: writer was moved from");
    const std::size_t line_number = state_->line_number + 1;
    const auto where = state_->name + ": line " + std::to_string(line_number) + ": ";
    if (auto problem = value_problem(event)) return fail(where + *problem);
    const auto text = to_json_line(event);
    if (text.size() > max_trace_line_bytes) return fail(where + "an event of " + std::to_string(text.size()) + " bytes, more than a trace line may hold");
    if (auto problem = state_->rules.admit(event, line_number)) return fail(where + *problem);
    *state_->out << text << '\n';
    if (!*state_->out) return fail(where + "write failed");
    state_->line_number = line_number;
    return {};
}

Result<void> TraceWriter::flush() {
    if (!state_) return fail("trace: writer was moved from");
    state_->out->flush();
    if (!*state_->out) return fail(state_->name + ": flush failed");
    return {};
}

const OutputFile* TraceWriter::output() const noexcept {
    if (!state_ || !state_->output || state_->output->temp_path().empty()) return nullptr;
    return &*state_->output;
}

Result<void> TraceWriter::close() {
    if (state_ && state_->file && !state_->file->is_open()) return {};  // closed already
    if (auto flushed = flush(); !flushed) return flushed;
    if (!state_->file) return {};
    state_->file->close();
    if (state_->file->fail()) return fail(state_->name + ": closing the file failed");
    return state_->output->commit();
}

}  // namespace portlab::trace
