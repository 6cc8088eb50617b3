// Scenario files (scenario_file.hpp, docs/scenarios.md): a line-based text read in one
// pass. A line is a directive and its fields; a field is a word, a "quoted string" (C
// escapes), or, for the last field of note/title/description, the rest of the line.
// Names are resolved as they are met (a host or socket is declared before it is used),
// so every later stage works on indexes and cannot meet an unknown name.
#include "portlab/sim/scenario_file.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "portlab/sim/errno.hpp"
#include "portlab/text.hpp"

namespace portlab::sim {

namespace {

// ---- the words of one line -------------------------------------------------------

struct Word {
    std::string_view text;  // as written (a quoted word with its quotes)
    std::size_t offset = 0; // where it starts in the line, for "the rest of the line"
};

// Splits on blanks; a word that starts with '"' runs to the closing unescaped '"'.
Result<std::vector<Word>> split_line(std::string_view line) {
    std::vector<Word> words;
    std::size_t i = 0;
    while (i < line.size()) {
        if (text::is_blank(line[i])) {
            ++i;
            continue;
        }
        const std::size_t start = i;
        if (line[i] == '"') {
            ++i;
            while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
            if (i >= line.size()) return fail("a quoted string has no closing '\"'");
            ++i;
            if (i < line.size() && !text::is_blank(line[i])) return fail("a blank must follow a quoted string's closing '\"'");
        } else {
            while (i < line.size() && !text::is_blank(line[i])) ++i;
        }
        words.push_back(Word{line.substr(start, i - start), start});
    }
    return words;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "GET /\r\n" with C's escapes: \r \n \t \0 \\ \" \xHH.
Result<Bytes> unquote(std::string_view quoted) {
    Bytes out;
    const std::string_view body = quoted.substr(1, quoted.size() - 2);
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] != '\\') {
            out.push_back(static_cast<std::uint8_t>(body[i]));
            continue;
        }
        if (++i >= body.size()) return fail("a '\\' ends the string");
        switch (body[i]) {
            case 'r': out.push_back('\r'); break;
            case 'n': out.push_back('\n'); break;
            case 't': out.push_back('\t'); break;
            case '0': out.push_back(0); break;
            case '\\': out.push_back('\\'); break;
            case '"': out.push_back('"'); break;
            case 'x': {
                const int high = i + 1 < body.size() ? hex_digit(body[i + 1]) : -1;
                const int low = i + 2 < body.size() ? hex_digit(body[i + 2]) : -1;
                if (high < 0 || low < 0) return fail("\\x needs two hex digits");
                out.push_back(static_cast<std::uint8_t>(high * 16 + low));
                i += 2;
                break;
            }
            default: return fail("unknown escape '\\" + std::string(1, body[i]) + "' (\\r \\n \\t \\0 \\\\ \\\" \\xHH)");
        }
    }
    return out;
}

// What a user wrote, fit for a one-line message: printable ASCII, at most 60 characters.
std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return text.size() > 60 ? out + "..." : out;
}
std::string quote_for_message(std::string_view text) { return "'" + printable(text) + "'"; }

Result<std::uint64_t> parse_whole(std::string_view text, std::uint64_t max) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size())
        return fail("expected a whole number, not " + quote_for_message(text));
    if (value > max) return fail(std::string(text) + " is more than " + std::to_string(max));
    return value;
}

// "5ms", "1s", "200us", "1.5s": a number and its unit. At most a week of virtual time.
constexpr Time max_time = 7ULL * 24 * 3600 * seconds;
Result<Time> parse_time(std::string_view text) {
    const auto unit_at = text.find_first_not_of("0123456789.");
    const std::string_view number = text.substr(0, unit_at);
    const std::string_view unit = unit_at == std::string_view::npos ? std::string_view{} : text.substr(unit_at);
    Time scale = 0;
    if (unit == "us") scale = microseconds;
    else if (unit == "ms") scale = milliseconds;
    else if (unit == "s") scale = seconds;
    else return fail("expected a time such as 5ms, 1s or 200us, not " + quote_for_message(text));
    const auto dot = number.find('.');
    const std::string_view whole = number.substr(0, dot);
    const std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
    if (whole.empty() || fraction.find('.') != std::string_view::npos || (dot != std::string_view::npos && fraction.empty()))
        return fail("expected a time such as 5ms, 1s or 200us, not " + quote_for_message(text));
    auto units = parse_whole(whole, max_time / scale);
    if (!units) return fail("a time is at most a week (604800s), not " + quote_for_message(text));
    Time value = *units * scale;
    Time place = scale;
    for (const char digit : fraction) {
        place /= 10;
        if (place == 0) return fail("a time is counted in whole microseconds: " + quote_for_message(text));
        value += static_cast<Time>(digit - '0') * place;
    }
    if (value > max_time) return fail("a time is at most a week (604800s), not " + quote_for_message(text));
    return value;
}

// "0.2": a probability, 0 to 1.
Result<double> parse_probability(std::string_view text) {
    double value = -1;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size() || !(value >= 0.0 && value <= 1.0))
        return fail("expected a probability from 0 to 1 such as 0.2, not " + quote_for_message(text));
    return value;
}

// "22,23,25" or "20-25" or both mixed: ports in the order written.
Result<std::vector<Port>> parse_port_list(std::string_view text) {
    std::vector<Port> ports;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = text.find(',', start);
        const std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        const auto dash = item.find('-');
        auto low = parse_port_number(item.substr(0, dash));
        if (!low) return fail(low.error().message);
        Port high = *low;
        if (dash != std::string_view::npos) {
            auto last = parse_port_number(item.substr(dash + 1));
            if (!last) return fail(last.error().message);
            if (*last < *low) return fail("the range " + std::string(item) + " runs backwards");
            high = *last;
        }
        for (std::uint32_t p = *low; p <= high; ++p) ports.push_back(static_cast<Port>(p));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return ports;
}

// ---- the parser -----------------------------------------------------------------

constexpr std::size_t max_total_payload_bytes = 16u << 20;
constexpr std::size_t max_total_scanned_ports = 1u << 20;

// One line's error: "FILE:LINE: field 'delay': reason" (or without the field).
struct LineError {
    std::string field;
    std::string reason;
};

class Parser {
public:
    Parser(std::string_view file) : file_(file) {}

    Result<ScenarioSpec> parse(std::string_view text);

private:
    using LineResult = std::optional<LineError>;

    // The line being read.
    std::string_view line_;
    std::vector<Word> words_;
    std::size_t next_ = 0;

    std::string_view file_;
    ScenarioSpec spec_;
    std::map<std::string, HostIndex, std::less<>> hosts_;
    std::map<std::string, SocketIndex, std::less<>> sockets_;
    std::map<std::string, Bytes, std::less<>> payloads_;  // define NAME PAYLOAD
    TcpConfig tcp_;                                         // as the `tcp` lines so far left it
    std::set<std::string> seen_once_;                      // name, title, description
    std::map<IpAddress, std::string> addresses_;           // every host's, to its host
    // What the steps hold in all, each use of a payload counted: a 1 MiB file must not
    // expand into gigabytes (35,000 lines of "fill 1048576" or of "scan ... 1-65535").
    std::size_t payload_bytes_ = 0;
    std::size_t scanned_ports_ = 0;

    static LineError error(std::string field, std::string reason) { return LineError{std::move(field), std::move(reason)}; }

    bool more() const { return next_ < words_.size(); }
    std::string_view peek() const { return more() ? words_[next_].text : std::string_view{}; }
    // The next word, required: its absence is the field's error.
    Result<std::string_view> take(std::string_view what) {
        if (!more()) return fail("missing: expected " + std::string(what));
        return words_[next_++].text;
    }
    // The rest of the line from the next word on, verbatim.
    std::string_view rest() {
        if (!more()) return {};
        const std::string_view tail = line_.substr(words_[next_].offset);
        next_ = words_.size();
        const auto end = tail.find_last_not_of(" \t\r\v\f");
        return tail.substr(0, end + 1);
    }
    LineResult no_more() const {
        if (more()) return error(std::string(words_[next_].text), "unexpected " + quote_for_message(words_[next_].text));
        return std::nullopt;
    }

    LineResult directive(std::string_view word, ScenarioLine& out);
    LineResult host_line(ScenarioLine& out);
    LineResult router_line(ScenarioLine& out);
    std::variant<IpAddress, LineError> address_field(std::string_view field);
    std::variant<std::string, LineError> new_host_name();
    LineResult claim_address(std::string_view field, const IpAddress& address, const std::string& owner);
    LineResult link_options(LinkConfig& config);
    LineResult tcp_line(ScenarioLine& out);
    std::variant<HostIndex, LineError> host_field(std::string_view field);
    std::variant<SocketIndex, LineError> socket_field(std::string_view field);
    std::variant<SocketIndex, LineError> new_socket(std::string_view field);
    std::variant<Bytes, LineError> payload(std::string_view field);
    std::variant<Bytes, LineError> payload_bytes(std::string_view field);
    std::variant<Time, LineError> time_field(std::string_view field);
    LineResult within(Time& limit);
    LineResult note_parts(std::string_view text, std::vector<step::NotePart>& parts);
};

// A version 2 note's text: "{peer conn}" and the like are fields, "{{" and "}}" are braces.
Parser::LineResult Parser::note_parts(std::string_view text, std::vector<step::NotePart>& parts) {
    static constexpr std::array<std::pair<std::string_view, step::NoteValue>, 4> names{
        {{"peer", step::NoteValue::peer}, {"local", step::NoteValue::local}, {"error", step::NoteValue::error},
         {"state", step::NoteValue::state}}};
    std::string plain;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '}') {
            if (i + 1 < text.size() && text[i + 1] == '}') ++i;
            else return error("text", "a '}' closes no field (write }} for a brace)");
            plain += '}';
            continue;
        }
        if (text[i] != '{') {
            plain += text[i];
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '{') {
            plain += '{';
            ++i;
            continue;
        }
        const auto close = text.find('}', i);
        if (close == std::string_view::npos) return error("text", "a '{' opens a field that no '}' closes (write {{ for a brace)");
        const std::string_view inside = text.substr(i + 1, close - i - 1);
        const auto blank = inside.find(' ');
        const std::string_view key = inside.substr(0, blank);
        const std::string_view socket = blank == std::string_view::npos ? std::string_view{} : inside.substr(blank + 1);
        const auto named = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == key; });
        if (named == names.end() || socket.empty())
            return error("text", "expected a field {peer NAME}, {local NAME}, {error NAME} or {state NAME}, not " +
                                     quote_for_message(text.substr(i, close - i + 1)));
        const auto found = sockets_.find(socket);
        if (found == sockets_.end())
            return error("text", "no socket named " + quote_for_message(socket) + " (a socket, service or accept line names it first)");
        if (!plain.empty()) parts.emplace_back(std::exchange(plain, {}));
        parts.emplace_back(step::NoteField{named->second, found->second});
        i = close;
    }
    if (!plain.empty()) parts.emplace_back(std::move(plain));
    return std::nullopt;
}

template <class T>
bool failed(const std::variant<T, LineError>& v) {
    return std::holds_alternative<LineError>(v);
}

std::variant<HostIndex, LineError> Parser::host_field(std::string_view field) {
    auto name = take("a host's name");
    if (!name) return error(std::string(field), name.error().message);
    if (const auto found = hosts_.find(*name); found != hosts_.end()) return found->second;
    std::string known;
    for (const auto& host : spec_.hosts) known += (known.empty() ? "" : ", ") + host;
    return error(std::string(field), "no host named " + quote_for_message(*name) +
                                         (known.empty() ? " (declare it first with a host line)" : " (hosts so far: " + known + ")"));
}

std::variant<SocketIndex, LineError> Parser::socket_field(std::string_view field) {
    auto name = take("a socket's name");
    if (!name) return error(std::string(field), name.error().message);
    if (const auto found = sockets_.find(*name); found != sockets_.end()) return found->second;
    return error(std::string(field), "no socket named " + quote_for_message(*name) +
                                         " (a socket, service or accept line names it first)");
}

std::variant<SocketIndex, LineError> Parser::new_socket(std::string_view field) {
    auto name = take("a name for the socket");
    if (!name) return error(std::string(field), name.error().message);
    if (name->front() == '"' || name->front() == '$') return error(std::string(field), "a name is a plain word, not " + quote_for_message(*name));
    if (sockets_.count(*name) != 0 || hosts_.count(*name) != 0)
        return error(std::string(field), "the name " + quote_for_message(*name) + " is taken already");
    const SocketIndex index{static_cast<std::uint32_t>(spec_.sockets.size())};
    spec_.sockets.emplace_back(*name);
    sockets_.emplace(std::string(*name), index);
    return index;
}

std::variant<Time, LineError> Parser::time_field(std::string_view field) {
    auto word = take("a time such as 5ms");
    if (!word) return error(std::string(field), word.error().message);
    auto time = parse_time(*word);
    if (!time) return error(std::string(field), time.error().message);
    return *time;
}

Parser::LineResult Parser::within(Time& limit) {
    if (peek() != "within") return no_more();
    ++next_;
    const auto time = time_field("within");
    if (failed(time)) return std::get<LineError>(time);
    limit = std::get<Time>(time);
    return no_more();
}

// A payload, always a line's last field: "text" | hex 12 34 ... | fill N "x" | $name.
std::variant<Bytes, LineError> Parser::payload(std::string_view field) {
    auto bytes = payload_bytes(field);
    if (const auto* data = std::get_if<Bytes>(&bytes)) {
        payload_bytes_ += data->size();
        if (payload_bytes_ > max_total_payload_bytes)
            return error(std::string(field), "the file's payloads add up to more than 16 MiB");
    }
    return bytes;
}

std::variant<Bytes, LineError> Parser::payload_bytes(std::string_view field) {
    const std::string f(field);
    auto word = take("a payload: \"text\", hex 12 34, fill 100 \"x\" or $name");
    if (!word) return error(f, word.error().message);
    if (word->front() == '"') {
        auto bytes = unquote(*word);
        if (!bytes) return error(f, bytes.error().message);
        if (auto extra = no_more()) return error(f, "unexpected " + quote_for_message(extra->field) + " after the string");
        return std::move(bytes).value();
    }
    if (word->front() == '$') {
        const auto found = payloads_.find(word->substr(1));
        if (found == payloads_.end()) return error(f, "no payload named " + quote_for_message(word->substr(1)) + " (define it first)");
        if (auto extra = no_more()) return error(f, "unexpected " + quote_for_message(extra->field));
        return found->second;
    }
    if (*word == "hex") {
        Bytes bytes;
        std::string digits;
        for (const char c : rest())
            if (!text::is_blank(c)) digits += c;
        if (digits.empty() || digits.size() % 2 != 0) return error(f, "hex needs an even number of hex digits");
        if (digits.size() / 2 > max_payload_bytes) return error(f, "a payload is at most 1 MiB");
        for (std::size_t i = 0; i < digits.size(); i += 2) {
            const int high = hex_digit(digits[i]), low = hex_digit(digits[i + 1]);
            if (high < 0 || low < 0) return error(f, "not a hex digit in " + quote_for_message(digits.substr(i, 2)));
            bytes.push_back(static_cast<std::uint8_t>(high * 16 + low));
        }
        return bytes;
    }
    if (*word == "fill") {
        auto count_word = take("how many bytes");
        if (!count_word) return error(f, count_word.error().message);
        auto count = parse_whole(*count_word, max_payload_bytes);
        if (!count) return error(f, "fill: " + count.error().message + " (at most 1 MiB)");
        auto with = take("the byte to repeat, as \"x\"");
        if (!with) return error(f, with.error().message);
        if (with->front() != '"') return error(f, "fill: the byte to repeat is a quoted character such as \"x\"");
        auto byte = unquote(*with);
        if (!byte) return error(f, byte.error().message);
        if (byte->size() != 1) return error(f, "fill: give one character to repeat, not " + quote_for_message(*with));
        if (auto extra = no_more()) return error(f, "unexpected " + quote_for_message(extra->field));
        return Bytes(*count, byte->front());
    }
    return error(f, "expected a payload: \"text\", hex 12 34, fill 100 \"x\" or $name, not " + quote_for_message(*word));
}

// A new host's (or router's) name: a plain word no host or socket has.
std::variant<std::string, LineError> Parser::new_host_name() {
    auto name = take("the host's name");
    if (!name) return error("name", name.error().message);
    if (name->front() == '"' || name->front() == '$') return error("name", "a name is a plain word, not " + quote_for_message(*name));
    if (hosts_.count(*name) != 0 || sockets_.count(*name) != 0) return error("name", "the name " + quote_for_message(*name) + " is taken already");
    if (spec_.hosts.size() >= 64) return error("name", "a scenario has at most 64 hosts");
    return std::string(*name);
}

// An address a host declares as its own: not loopback or the wildcard, and no other host's.
Parser::LineResult Parser::claim_address(std::string_view field, const IpAddress& address, const std::string& owner) {
    if (address.is_unspecified() || address.is_loopback())
        return error(std::string(field), address.to_string() + " is not a host's own address (every host has loopback already)");
    if (const auto taken = addresses_.find(address); taken != addresses_.end())
        return error(std::string(field), address.to_string() + " belongs to " + taken->second + " already");
    addresses_.emplace(address, owner);
    return std::nullopt;
}

std::variant<IpAddress, LineError> Parser::address_field(std::string_view field) {
    auto text = take("an address such as 198.51.100.1");
    if (!text) return error(std::string(field), text.error().message);
    auto address = IpAddress::parse(*text);
    if (!address) return error(std::string(field), address.error().message);
    return *address;
}

// router NAME ADDRESS/PREFIX[,ADDRESS/PREFIX...] [role ROLE]: a host that forwards.
Parser::LineResult Parser::router_line(ScenarioLine& out) {
    step::AddRouter router;
    auto name = new_host_name();
    if (failed(name)) return std::get<LineError>(name);
    router.name = std::get<std::string>(std::move(name));
    auto interfaces = take("its interfaces, such as 192.0.2.2/24,198.51.100.1/24");
    if (!interfaces) return error("interfaces", interfaces.error().message);
    for (std::size_t start = 0;;) {
        const auto comma = interfaces->find(',', start);
        const auto item = interfaces->substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        const auto slash = item.find('/');
        auto address = IpAddress::parse(item.substr(0, slash));
        if (!address || slash == std::string_view::npos)
            return error("interfaces", "expected ADDRESS/PREFIX such as 192.0.2.2/24, not " + quote_for_message(item));
        auto prefix = parse_whole(item.substr(slash + 1), address->is_v4() ? 32 : 128);
        if (!prefix) return error("interfaces", "the prefix of " + quote_for_message(item) + ": " + prefix.error().message);
        if (auto e = claim_address("interfaces", *address, router.name)) return e;
        router.interfaces.push_back(Interface{*address, static_cast<std::uint8_t>(*prefix)});
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    if (peek() == "role") {
        ++next_;
        auto role = take("a role");
        if (!role) return error("role", role.error().message);
        router.options.role = std::string(*role);
    }
    hosts_.emplace(router.name, HostIndex{static_cast<std::uint32_t>(spec_.hosts.size())});
    spec_.hosts.push_back(router.name);
    out.step = std::move(router);
    return no_more();
}

Parser::LineResult Parser::link_options(LinkConfig& config) {
    while (more()) {
        const std::string_view option = words_[next_++].text;
        if (option == "delay") {
            const auto time = time_field("delay");
            if (failed(time)) return std::get<LineError>(time);
            config.delay = std::get<Time>(time);
        } else if (option == "loss") {
            auto word = take("a probability");
            if (!word) return error("loss", word.error().message);
            auto loss = parse_probability(*word);
            if (!loss) return error("loss", loss.error().message);
            config.loss = *loss;
        } else if (option == "lose") {
            auto word = take("packet numbers such as 4 or 4,7");
            if (!word) return error("lose", word.error().message);
            config.lose_packets.clear();
            std::size_t start = 0;
            const std::string_view list = *word;
            while (true) {
                const auto comma = list.find(',', start);
                auto n = parse_whole(list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start),
                                     std::numeric_limits<std::uint32_t>::max());
                if (!n || *n == 0) return error("lose", "expected packet numbers from 1, such as 4 or 4,7, not " + quote_for_message(list));
                config.lose_packets.push_back(*n);
                if (comma == std::string_view::npos) break;
                start = comma + 1;
            }
        } else {
            return error(std::string(option), "unknown link option " + quote_for_message(option) + " (delay, loss, lose)");
        }
    }
    return std::nullopt;
}

Parser::LineResult Parser::host_line(ScenarioLine& out) {
    step::AddHost host;
    auto name = new_host_name();
    if (failed(name)) return std::get<LineError>(name);
    host.name = std::get<std::string>(std::move(name));
    auto addresses = take("the host's addresses, such as 10.0.0.1 or 10.0.0.1,2001:db8::1");
    if (!addresses) return error("address", addresses.error().message);
    for (std::size_t start = 0;;) {
        const auto comma = addresses->find(',', start);
        const auto item = addresses->substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        auto address = IpAddress::parse(item);
        if (!address) return error("address", address.error().message);
        if (auto e = claim_address("address", *address, host.name)) return e;
        host.addresses.push_back(*address);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    while (more()) {
        const std::string_view option = words_[next_++].text;
        if (option == "role") {
            auto role = take("a role such as client, server, scanner or router");
            if (!role) return error("role", role.error().message);
            host.options.role = std::string(*role);
        } else if (option == "ephemeral") {
            auto word = take("a port range such as 40000-40007");
            if (!word) return error("ephemeral", word.error().message);
            const auto dash = word->find('-');
            auto low = parse_port_number(word->substr(0, dash));
            auto high = dash == std::string_view::npos ? low : parse_port_number(word->substr(dash + 1));
            if (!low || !high || dash == std::string_view::npos || *high < *low || *low == 0)
                return error("ephemeral", "expected a port range LOW-HIGH such as 40000-40007, not " + quote_for_message(*word));
            host.options.ephemeral.range = PortRange{*low, *high};
        } else if (option == "unprivileged-port-start") {
            auto word = take("a port number");
            if (!word) return error("unprivileged-port-start", word.error().message);
            auto port = parse_port_number(*word);
            if (!port) return error("unprivileged-port-start", port.error().message);
            host.options.unprivileged_port_start = *port;
        } else {
            return error(std::string(option), "unknown host option " + quote_for_message(option) +
                                                   " (role, ephemeral, unprivileged-port-start)");
        }
    }
    hosts_.emplace(host.name, HostIndex{static_cast<std::uint32_t>(spec_.hosts.size())});
    spec_.hosts.push_back(host.name);
    out.step = std::move(host);
    return std::nullopt;
}

Parser::LineResult Parser::tcp_line(ScenarioLine& out) {
    if (!more()) return error("option", "expected a TCP setting: msl, initial-rto, min-rto, max-rto, synack-retries, data-retries, mss, syn-schedule");
    while (more()) {
        const std::string option(words_[next_++].text);
        if (option == "msl" || option == "initial-rto" || option == "min-rto" || option == "max-rto") {
            const auto time = time_field(option);
            if (failed(time)) return std::get<LineError>(time);
            const Time value = std::get<Time>(time);
            if (value == 0 && option != "msl") return error(option, "a timeout of 0 would fire for ever");
            (option == "msl" ? tcp_.msl : option == "initial-rto" ? tcp_.initial_rto : option == "min-rto" ? tcp_.min_rto : tcp_.max_rto) = value;
        } else if (option == "synack-retries" || option == "data-retries") {
            auto word = take("a count");
            if (!word) return error(option, word.error().message);
            auto count = parse_whole(*word, 255);
            if (!count) return error(option, count.error().message);
            (option == "synack-retries" ? tcp_.synack_retries : tcp_.data_retries) = static_cast<std::uint32_t>(*count);
        } else if (option == "mss") {
            auto word = take("a segment size");
            if (!word) return error(option, word.error().message);
            auto mss = parse_whole(*word, 65495);
            if (!mss || *mss < 88) return error(option, "expected an MSS from 88 to 65495, not " + quote_for_message(*word));
            tcp_.mss = static_cast<std::uint16_t>(*mss);
        } else if (option == "syn-schedule") {
            auto word = take("linux or before-6.5");
            if (!word) return error(option, word.error().message);
            if (*word == "linux") tcp_.syn = SynSchedule::linux_default();
            else if (*word == "before-6.5") tcp_.syn = SynSchedule::before_linux_6_5();
            else return error(option, "expected linux or before-6.5, not " + quote_for_message(*word));
        } else {
            return error(option, "unknown TCP setting " + quote_for_message(option) +
                                     " (msl, initial-rto, min-rto, max-rto, synack-retries, data-retries, mss, syn-schedule)");
        }
    }
    out.step = step::SetTcp{tcp_};
    return std::nullopt;
}

Parser::LineResult Parser::directive(std::string_view word, ScenarioLine& out) {
    const auto expect = [](const auto& value, std::string_view) -> LineResult {
        if (failed(value)) return std::get<LineError>(value);
        return std::nullopt;
    };
    if (word == "name" || word == "title" || word == "description") {
        if (!seen_once_.insert(std::string(word)).second) return error(std::string(word), "given twice");
        const std::string_view value = rest();
        if (value.empty()) return error(std::string(word), "missing: expected the scenario's " + std::string(word));
        if (word == "name") {
            if (value.find_first_of(" \t") != std::string_view::npos || value.front() == '-')
                return error("name", "a scenario's name is one word that does not start with '-', not " + quote_for_message(value));
            spec_.name = std::string(value);
        } else {
            (word == "title" ? spec_.title : spec_.description) = std::string(value);
        }
        return std::nullopt;
    }
    if (word == "define") {
        auto name = take("the payload's name");
        if (!name) return error("name", name.error().message);
        auto bytes = payload("payload");
        if (auto e = expect(bytes, "payload")) return e;
        payloads_[std::string(*name)] = std::get<Bytes>(std::move(bytes));
        return std::nullopt;
    }
    if (word == "host") return host_line(out);
    if (word == "link") {
        step::SetLink link;
        const auto a = host_field("host");
        if (auto e = expect(a, "host")) return e;
        const auto b = host_field("host");
        if (auto e = expect(b, "host")) return e;
        link.a = std::get<HostIndex>(a);
        link.b = std::get<HostIndex>(b);
        if (link.a == link.b) return error("host", "a link joins two different hosts");
        if (auto e = link_options(link.config)) return e;
        out.step = std::move(link);
        return std::nullopt;
    }
    if (word == "default-link") {
        step::SetDefaultLink link;
        if (auto e = link_options(link.config)) return e;
        out.step = std::move(link);
        return std::nullopt;
    }
    if (word == "firewall") {
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        const std::string_view text = rest();
        if (text.empty()) return error("rule", "missing: expected an nft rule such as 'tcp dport 22 drop'");
        auto rule = parse_nft_rule(text);
        if (!rule) return error("rule", rule.error().message);
        if (auto checked = check_rule(*rule); !checked) return error("rule", checked.error().message);
        if (auto modelled = input_chain_models(*rule); !modelled) return error("rule", modelled.error().message);
        out.step = step::AddRule{std::get<HostIndex>(host), *rule};
        return std::nullopt;
    }
    if (word == "firewall-delete") {
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        auto id = take("a rule's id such as r1");
        if (!id) return error("rule", id.error().message);
        if (id->size() < 2 || id->front() != 'r' || !parse_whole(id->substr(1), 1u << 30))
            return error("rule", "expected a rule's id such as r1 (the n-th firewall line of that host), not " + quote_for_message(*id));
        out.step = step::RemoveRule{std::get<HostIndex>(host), std::string(*id)};
        return no_more();
    }
    if (word == "firewall-policy") {
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        auto text = take("accept, drop or reject");
        if (!text) return error("policy", text.error().message);
        auto policy = parse_firewall_action(*text);
        if (!policy) return error("policy", policy.error().message);
        out.step = step::SetPolicy{std::get<HostIndex>(host), *policy};
        return no_more();
    }
    if (word == "tcp") return tcp_line(out);
    if (word == "socket") {
        const auto socket = new_socket("name");
        if (auto e = expect(socket, "name")) return e;
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        auto text = take("tcp or udp");
        if (!text) return error("protocol", text.error().message);
        auto protocol = parse_protocol(*text);
        if (!protocol) return error("protocol", protocol.error().message);
        IpFamily family = IpFamily::v4;
        if (peek() == "ipv6") {
            ++next_;
            family = IpFamily::v6;
        } else if (peek() == "ipv4") {
            ++next_;
        }
        out.step = step::OpenSocket{std::get<HostIndex>(host), std::get<SocketIndex>(socket), *protocol, family};
        return no_more();
    }
    if (word == "set") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        auto name = take("reuseaddr, privileged or linger-zero");
        if (!name) return error("option", name.error().message);
        step::SetOption option{std::get<SocketIndex>(socket)};
        if (*name == "reuseaddr") option.option = step::SocketOption::reuse_address;
        else if (*name == "privileged") option.option = step::SocketOption::privileged;
        else if (*name == "linger-zero") option.option = step::SocketOption::linger_zero;
        else if (*name == "v6only") option.option = step::SocketOption::v6only;
        else if (*name == "ttl") {
            auto ttl_text = take("a TTL from 1 to 255");
            if (!ttl_text) return error("ttl", ttl_text.error().message);
            auto ttl = parse_whole(*ttl_text, 255);
            if (!ttl || *ttl == 0) return error("ttl", "expected a TTL from 1 to 255, not " + quote_for_message(*ttl_text));
            option.option = step::SocketOption::ttl;
            option.ttl = static_cast<std::uint8_t>(*ttl);
            out.step = option;
            return no_more();
        } else return error("option", "unknown socket option " + quote_for_message(*name) + " (reuseaddr, privileged, linger-zero, v6only, ttl)");
        if (more()) {
            const std::string_view on = words_[next_++].text;
            if (on != "on" && on != "off") return error("option", "expected on or off, not " + quote_for_message(on));
            option.on = on == "on";
        }
        out.step = option;
        return no_more();
    }
    if (word == "auto-reply") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        auto reply = payload("reply");
        if (auto e = expect(reply, "reply")) return e;
        out.step = step::SetAutoReply{std::get<SocketIndex>(socket), std::get<Bytes>(std::move(reply))};
        return std::nullopt;
    }
    if (word == "bind" || word == "connect") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        const std::string field = word == "bind" ? "local" : "remote";
        auto text = take("an address and port such as 10.0.0.2:80 or [::]:80");
        if (!text) return error(field, text.error().message);
        auto endpoint = Endpoint::parse(*text);
        if (!endpoint) return error(field, endpoint.error().message);
        if (word == "bind") out.step = step::Bind{std::get<SocketIndex>(socket), *endpoint};
        else out.step = step::Connect{std::get<SocketIndex>(socket), *endpoint};
        return no_more();
    }
    if (word == "listen") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        step::Listen listen{std::get<SocketIndex>(socket)};
        if (more()) {
            auto backlog = parse_whole(words_[next_++].text, 65535);
            if (!backlog) return error("backlog", backlog.error().message + " (a backlog is at most 65535)");
            listen.backlog = static_cast<std::uint32_t>(*backlog);
        }
        out.step = listen;
        return no_more();
    }
    if (word == "accept") {
        const auto listener = socket_field("listener");
        if (auto e = expect(listener, "listener")) return e;
        const auto socket = new_socket("name");
        if (auto e = expect(socket, "name")) return e;
        out.step = step::Accept{std::get<SocketIndex>(listener), std::get<SocketIndex>(socket)};
        return no_more();
    }
    if (word == "send") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        auto data = payload("data");
        if (auto e = expect(data, "data")) return e;
        out.step = step::Send{std::get<SocketIndex>(socket), std::get<Bytes>(std::move(data))};
        return std::nullopt;
    }
    if (word == "sendto") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        auto text = take("an address and port such as 10.0.0.2:53, or sender");
        if (!text) return error("to", text.error().message);
        step::SendTo send;
        send.socket = std::get<SocketIndex>(socket);
        if (*text != "sender") {
            auto endpoint = Endpoint::parse(*text);
            if (!endpoint) return error("to", endpoint.error().message);
            send.to = *endpoint;
        }
        auto data = payload("data");
        if (auto e = expect(data, "data")) return e;
        send.data = std::get<Bytes>(std::move(data));
        out.step = std::move(send);
        return std::nullopt;
    }
    if (word == "recv" || word == "recvfrom" || word == "close") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        const SocketIndex s = std::get<SocketIndex>(socket);
        if (word == "recv") out.step = step::Recv{s};
        else if (word == "recvfrom") out.step = step::RecvFrom{s};
        else out.step = step::Close{s};
        return no_more();
    }
    if (word == "recv-all") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        step::RecvAll recv{std::get<SocketIndex>(socket)};
        if (auto e = within(recv.within)) return e;
        out.step = recv;
        return std::nullopt;
    }
    if (word == "service") {
        const auto socket = new_socket("name");
        if (auto e = expect(socket, "name")) return e;
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        step::Service service;
        service.host = std::get<HostIndex>(host);
        service.socket = std::get<SocketIndex>(socket);
        auto text = take("tcp or udp");
        if (!text) return error("protocol", text.error().message);
        auto protocol = parse_protocol(*text);
        if (!protocol) return error("protocol", protocol.error().message);
        service.protocol = *protocol;
        auto port_text = take("a port number");
        if (!port_text) return error("port", port_text.error().message);
        auto port = parse_port_number(*port_text);
        if (!port || *port == 0) return error("port", port ? "a service needs a port from 1 to 65535" : port.error().message);
        service.port = *port;
        if (peek() == "backlog" && service.protocol == Protocol::tcp) {
            ++next_;
            auto backlog_text = take("a number");
            if (!backlog_text) return error("backlog", backlog_text.error().message);
            auto backlog = parse_whole(*backlog_text, 65535);
            if (!backlog) return error("backlog", backlog.error().message);
            service.backlog = static_cast<std::uint32_t>(*backlog);
        } else if (peek() == "reply" && service.protocol == Protocol::udp) {
            ++next_;
            auto reply = payload("reply");
            if (auto e = expect(reply, "reply")) return e;
            service.reply = std::get<Bytes>(std::move(reply));
        }
        out.step = std::move(service);
        if (more()) return error(std::string(peek()), "unexpected " + quote_for_message(peek()) +
                                                          " (a TCP service takes backlog N, a UDP one reply PAYLOAD)");
        return std::nullopt;
    }
    if (word == "note") {
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        const std::string_view text = rest();
        if (text.empty()) return error("text", "missing: expected the caption's text");
        step::Note note{std::get<HostIndex>(host), {}};
        if (spec_.version < 2) note.parts.emplace_back(std::string(text));  // version 1: plain text
        else if (auto e = note_parts(text, note.parts)) return e;
        out.step = std::move(note);
        return std::nullopt;
    }
    if (word == "scan") {
        const auto host = host_field("scanner");
        if (auto e = expect(host, "scanner")) return e;
        auto type_text = take("syn, connect, ack or udp");
        if (!type_text) return error("type", type_text.error().message);
        auto type = scan::parse_scan_type(*type_text);
        if (!type) return error("type", type.error().message);
        auto target_text = take("the address to scan");
        if (!target_text) return error("target", target_text.error().message);
        auto target = IpAddress::parse(*target_text);
        if (!target) return error("target", target.error().message);
        auto ports_text = take("ports such as 22,23,25 or 20-25");
        if (!ports_text) return error("ports", ports_text.error().message);
        auto ports = parse_port_list(*ports_text);
        if (!ports) return error("ports", ports.error().message);
        scanned_ports_ += ports->size();
        if (scanned_ports_ > max_total_scanned_ports) return error("ports", "the file's scans add up to more than 1048576 ports");
        out.step = step::Scan{std::get<HostIndex>(host), *type, *target, std::move(ports).value()};
        return no_more();
    }
    if (word == "run") {
        if (peek() == "idle") {
            ++next_;
            out.step = step::RunIdle{};
            return no_more();
        }
        const auto time = time_field("duration");
        if (auto e = expect(time, "duration")) return e;
        out.step = step::RunFor{std::get<Time>(time)};
        return no_more();
    }
    if (word == "at") {
        const auto time = time_field("time");
        if (auto e = expect(time, "time")) return e;
        out.step = step::RunUntil{std::get<Time>(time)};
        return no_more();
    }
    if (word == "wait") {
        const auto socket = socket_field("socket");
        if (auto e = expect(socket, "socket")) return e;
        step::Wait wait{std::get<SocketIndex>(socket)};
        auto what = take("a TCP state (ESTABLISHED, CLOSE-WAIT, ...), accept-queue [N] or data");
        if (!what) return error("condition", what.error().message);
        if (*what == "accept-queue") {
            wait.condition = step::Condition::accept_queue;
            if (more() && peek() != "within") {
                auto count = parse_whole(words_[next_++].text, 65535);
                if (!count || *count == 0) return error("condition", "accept-queue N: N from 1 to 65535");
                wait.count = *count;
            }
        } else if (*what == "data") {
            wait.condition = step::Condition::data;
        } else {
            auto state = parse_tcp_state(*what);
            if (!state) return error("condition", "expected a TCP state (ESTABLISHED, CLOSE-WAIT, TIME-WAIT, CLOSED, ...), accept-queue [N] or data, not " + quote_for_message(*what));
            wait.state = *state;
        }
        if (auto e = within(wait.within)) return e;
        out.step = wait;
        return std::nullopt;
    }
    if (word == "router") return router_line(out);
    if (word == "network") {
        const auto host = host_field("host");
        if (auto e = expect(host, "host")) return e;
        auto text = take("a prefix length such as 24 (IPv4) or 64 (IPv6)");
        if (!text) return error("prefix", text.error().message);
        auto prefix = parse_whole(*text, 128);
        if (!prefix) return error("prefix", prefix.error().message);
        step::SetNetwork network{std::get<HostIndex>(host), static_cast<std::uint8_t>(*prefix), std::nullopt,
                                 *prefix > 32 ? IpFamily::v6 : IpFamily::v4};
        if (peek() == "via") {
            ++next_;
            auto gateway = address_field("via");
            if (failed(gateway)) return std::get<LineError>(gateway);
            network.gateway = std::get<IpAddress>(gateway);
            network.family = network.gateway->family();
        }
        if (network.family == IpFamily::v4 && *prefix > 32)
            return error("prefix", "an IPv4 network's prefix is at most 32, not " + quote_for_message(*text));
        const std::string& owner = spec_.hosts[network.host.value];
        const bool has_family = std::any_of(addresses_.begin(), addresses_.end(), [&](const auto& claimed) {
            return claimed.second == owner && claimed.first.family() == network.family;
        });
        if (!has_family)
            return error("prefix", owner + " has no " + (network.family == IpFamily::v4 ? "IPv4" : "IPv6") +
                                       " address for a /" + std::string(*text) + " network");
        out.step = network;
        return no_more();
    }
    if (word == "nat") {
        const auto router = host_field("router");
        if (auto e = expect(router, "router")) return e;
        auto kind = take("masquerade");
        if (!kind) return error("kind", kind.error().message);
        if (*kind != "masquerade") return error("kind", "the only NAT is masquerade, not " + quote_for_message(*kind));
        auto outside = address_field("outside");
        if (failed(outside)) return std::get<LineError>(outside);
        out.step = step::AddNat{std::get<HostIndex>(router), std::get<IpAddress>(outside)};
        return no_more();
    }
    if (word == "forward") {
        const auto router = host_field("router");
        if (auto e = expect(router, "router")) return e;
        auto text = take("tcp or udp");
        if (!text) return error("protocol", text.error().message);
        auto protocol = parse_protocol(*text);
        if (!protocol) return error("protocol", protocol.error().message);
        auto port_text = take("the router's port");
        if (!port_text) return error("port", port_text.error().message);
        auto port = parse_port_number(*port_text);
        if (!port || *port == 0) return error("port", port ? "a forwarded port is 1 to 65535" : port.error().message);
        if (peek() != "to") return error("to", "expected: forward ROUTER tcp PORT to ADDRESS:PORT");
        ++next_;
        auto to_text = take("an address and port such as 198.51.100.2:80");
        if (!to_text) return error("to", to_text.error().message);
        auto to = Endpoint::parse(*to_text);
        if (!to) return error("to", to.error().message);
        step::AddForward forward{std::get<HostIndex>(router), *protocol, *port, *to, std::nullopt};
        if (peek() == "on") {  // iifname: only what arrives on the interface with this address
            ++next_;
            auto on = address_field("on");
            if (failed(on)) return std::get<LineError>(on);
            forward.arriving_on = std::get<IpAddress>(on);
        }
        out.step = forward;
        return no_more();
    }
    if (word == "stateful") {
        const auto router = host_field("router");
        if (auto e = expect(router, "router")) return e;
        auto outside = address_field("outside");
        if (failed(outside)) return std::get<LineError>(outside);
        step::SetStateful stateful{std::get<HostIndex>(router), std::get<IpAddress>(outside), FirewallAction::drop};
        if (more()) {
            const std::string_view action = words_[next_++].text;
            if (action != "drop" && action != "reject")
                return error("action", "new connections from outside are dropped or rejected, not " + quote_for_message(action));
            stateful.new_from_outside = action == "drop" ? FirewallAction::drop : FirewallAction::reject;
        }
        out.step = stateful;
        return no_more();
    }
    return error(std::string(word), "unknown directive " + quote_for_message(word) + " (docs/scenarios.md lists them)");
}

Result<ScenarioSpec> Parser::parse(std::string_view text) {
    std::size_t number = 0;
    std::size_t start = 0;
    bool header_seen = false;
    const auto located = [&](const LineError& e) {
        std::string where = std::string(file_) + ":" + std::to_string(number) + ": ";
        if (!e.field.empty()) where += "field '" + printable(e.field) + "': ";
        return fail(where + e.reason);
    };
    if (text.find('\0') != std::string_view::npos) {
        number = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(text.find('\0')), '\n'));
        return located(error("", "a NUL byte: a scenario file is text"));
    }
    while (start < text.size()) {
        ++number;
        const auto end = text.find('\n', start);
        line_ = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        start = end == std::string_view::npos ? text.size() : end + 1;
        if (!line_.empty() && line_.back() == '\r') line_.remove_suffix(1);
        // A comment is any text: its quotes are not a string's.
        const auto first = line_.find_first_not_of(" \t\v\f");
        if (header_seen && (first == std::string_view::npos || line_[first] == '#')) continue;
        auto words = split_line(line_);
        if (!words) return located(error("", words.error().message));
        words_ = std::move(words).value();
        next_ = 0;
        if (!header_seen) {
            if (words_.size() != 2 || words_[0].text != scenario_magic)
                return located(error("", "expected the header line 'portlab-scenario 1' first"));
            const auto version = parse_whole(words_[1].text, scenario_format_version);
            if (!version || *version < static_cast<std::uint64_t>(oldest_scenario_format_version))
                return located(error("version", "this reader understands versions " + std::to_string(oldest_scenario_format_version) +
                                                    " to " + std::to_string(scenario_format_version) + ", not " +
                                                    quote_for_message(words_[1].text)));
            spec_.version = static_cast<int>(*version);
            header_seen = true;
            continue;
        }
        if (words_.empty()) continue;
        if (spec_.steps.size() >= 100'000) return located(error("", "a scenario has at most 100000 directives"));
        const std::string_view word = words_[next_++].text;
        ScenarioLine line{number, step::RunIdle{}};
        if (auto e = directive(word, line)) return located(*e);
        // name, title, description and define describe; every other directive is a step.
        if (word != "name" && word != "title" && word != "description" && word != "define") spec_.steps.push_back(std::move(line));
    }
    if (!header_seen) {
        number = 1;
        return located(error("", "the file is empty (expected the header line 'portlab-scenario 1')"));
    }
    if (spec_.name.empty()) {
        std::string_view stem = file_.substr(file_.find_last_of('/') == std::string_view::npos ? 0 : file_.find_last_of('/') + 1);
        stem = stem.substr(0, stem.find('.'));
        spec_.name = stem.empty() ? "scenario" : std::string(stem);
    }
    if (spec_.title.empty()) spec_.title = spec_.name;
    spec_.file = std::string(file_);
    return std::move(spec_);
}

// ---- the runner ----------------------------------------------------------------

class Runner {
public:
    Runner(const ScenarioSpec& spec, SimOptions options, RunLimits limits)
        : spec_(spec), sim_(options), limits_(limits), sockets_(spec.sockets.size()), senders_(spec.sockets.size()) {}

    Result<Simulator> run() {
        for (const ScenarioLine& line : spec_.steps) {
            line_ = line.line;
            std::visit([this](const auto& s) { apply(s); }, line.step);
            observe();
            if (over_budget_)
                return fail(spec_.file + ":" + std::to_string(line_) + ": the run passed " +
                            std::to_string(limits_.max_events) + " events without ending; a scenario must end by itself");
        }
        return std::move(sim_);
    }

private:
    const ScenarioSpec& spec_;
    Simulator sim_;
    RunLimits limits_;
    std::vector<std::optional<SocketRef>> sockets_;  // by SocketIndex, once opened
    std::vector<std::optional<Endpoint>> senders_;   // who sent what recvfrom last read
    std::size_t events_ = 0;
    std::size_t line_ = 0;
    bool over_budget_ = false;

    static HostId host(HostIndex h) { return HostId{h.value}; }
    // A socket the file named but that never opened (an accept that failed): a handle
    // no host has, which every call answers with EBADF, as a closed descriptor would.
    SocketRef ref(SocketIndex s) const { return sockets_[s.value].value_or(SocketRef{HostId{0}, trace::SocketId{0}}); }

    bool step() {
        if (events_ >= limits_.max_events) {
            over_budget_ = true;
            return false;
        }
        if (!sim_.step()) return false;
        ++events_;
        observe();
        return true;
    }
    void observe() const {
        if (limits_.observe) limits_.observe(sim_);
    }
    // Runs events until done() holds or `limit` of virtual time has passed: the C++
    // stories' loop, kept as it was so a file tells the same story event for event.
    template <class Done>
    void run_until_true(Done done, Time limit) {
        const Time deadline = sim_.now() + limit;
        while (!done())
            if (sim_.now() > deadline || !step()) return;
    }
    void run_until(Time t) {
        while (true) {
            const auto next = sim_.next_event_time();
            if (!next || *next > t || !step()) break;
        }
        if (!over_budget_ && t > sim_.now()) sim_.run_until(t);  // nothing left before t: just the clock
    }

    void apply(const step::AddHost& s) { sim_.add_host(s.name, s.addresses, s.options); }
    void apply(const step::SetLink& s) { sim_.set_link(host(s.a), host(s.b), s.config); }
    void apply(const step::SetDefaultLink& s) { sim_.set_default_link(s.config); }
    void apply(const step::AddRule& s) { (void)sim_.add_firewall_rule(host(s.host), s.rule); }  // checked when read
    void apply(const step::RemoveRule& s) { (void)sim_.remove_firewall_rule(host(s.host), s.rule_id); }
    void apply(const step::SetPolicy& s) { sim_.set_firewall_policy(host(s.host), s.policy); }
    void apply(const step::SetTcp& s) { sim_.set_tcp_config(s.config); }
    void apply(const step::AddRouter& s) { sim_.add_router(s.name, s.interfaces, s.options); }
    void apply(const step::SetNetwork& s) { sim_.set_network(host(s.host), s.prefix_length, s.gateway, s.family); }
    void apply(const step::AddNat& s) { sim_.add_nat(host(s.router), s.outside); }
    void apply(const step::AddForward& s) { sim_.add_port_forward(host(s.router), s.protocol, s.port, s.to, s.arriving_on); }
    void apply(const step::SetStateful& s) { sim_.set_stateful_firewall(host(s.router), s.outside, s.new_from_outside); }
    void apply(const step::OpenSocket& s) {
        const auto opened = sim_.socket(host(s.host), s.protocol, s.family);
        if (opened) sockets_[s.socket.value] = *opened;
    }
    void apply(const step::SetOption& s) {
        switch (s.option) {
            case step::SocketOption::reuse_address: (void)sim_.set_reuse_address(ref(s.socket), s.on); break;
            case step::SocketOption::privileged: (void)sim_.set_privileged(ref(s.socket), s.on); break;
            case step::SocketOption::linger_zero: (void)sim_.set_linger_zero(ref(s.socket), s.on); break;
            case step::SocketOption::ttl: (void)sim_.set_ttl(ref(s.socket), s.ttl); break;
            case step::SocketOption::v6only: (void)sim_.set_v6only(ref(s.socket), s.on); break;
        }
    }
    void apply(const step::SetAutoReply& s) { (void)sim_.set_auto_reply(ref(s.socket), s.reply); }
    void apply(const step::Bind& s) { (void)sim_.bind(ref(s.socket), s.local); }
    void apply(const step::Listen& s) { (void)sim_.listen(ref(s.socket), s.backlog); }
    void apply(const step::Connect& s) { (void)sim_.connect(ref(s.socket), s.remote); }
    void apply(const step::Accept& s) {
        const SocketRef listener = ref(s.listener);
        const auto accepted = sim_.accept(listener);
        // A failed accept names no socket: later calls on the name fail with EBADF, on the listener's host.
        sockets_[s.socket.value] = accepted ? *accepted : SocketRef{listener.host, trace::SocketId{0}};
    }
    void apply(const step::Send& s) { (void)sim_.send(ref(s.socket), s.data); }
    void apply(const step::SendTo& s) {
        const auto to = s.to ? s.to : senders_[s.socket.value];
        (void)sim_.sendto(ref(s.socket), s.data, to.value_or(Endpoint{}));
    }
    void apply(const step::Recv& s) { (void)sim_.recv(ref(s.socket)); }
    void apply(const step::RecvFrom& s) {
        const auto got = sim_.recvfrom(ref(s.socket));
        if (got) senders_[s.socket.value] = got->from;
    }
    void apply(const step::RecvAll& s) {
        const SocketRef socket = ref(s.socket);
        run_until_true(
            [&] {
                const auto got = sim_.recv(socket);
                if (!got) return got.error() != Errno::eagain;
                return got->empty();
            },
            s.within);
    }
    void apply(const step::Close& s) { (void)sim_.close(ref(s.socket)); }
    void apply(const step::Service& s) {
        const auto opened = sim_.socket(host(s.host), s.protocol);
        if (!opened) return;
        sockets_[s.socket.value] = *opened;
        (void)sim_.set_privileged(*opened);  // a server started as root may take ports below 1024
        if (s.protocol == Protocol::tcp) {
            (void)sim_.set_reuse_address(*opened);
            (void)sim_.bind(*opened, Endpoint{IpAddress::any_v4(), s.port});
            (void)sim_.listen(*opened, s.backlog);
        } else {
            (void)sim_.bind(*opened, Endpoint{IpAddress::any_v4(), s.port});
            if (s.reply) (void)sim_.set_auto_reply(*opened, *s.reply);
        }
    }
    void apply(const step::Note& s) {
        std::string text;
        for (const step::NotePart& part : s.parts) {
            if (const auto* plain = std::get_if<std::string>(&part)) text += *plain;
            else text += field_text(std::get<step::NoteField>(part));
        }
        sim_.note(host(s.host), std::move(text));
    }
    // What a program prints for a note's field at this moment (scenario_file.hpp, NoteField).
    std::string field_text(const step::NoteField& field) {
        const SocketRef socket = ref(field.socket);
        switch (field.value) {
            case step::NoteValue::peer: {
                const auto name = sim_.peer_name(socket);
                return name ? name->to_string() : "nobody";
            }
            case step::NoteValue::local: {
                const auto name = sim_.local_name(socket);
                return name ? name->to_string() : "nothing";
            }
            case step::NoteValue::error: {
                const auto error = sim_.take_error(socket);
                return error ? std::string(errno_name(*error)) : "no error";
            }
            case step::NoteValue::state: {
                const Socket* s = sim_.find_socket(socket);
                return std::string(to_string(s == nullptr ? TcpState::closed : s->state));
            }
        }
        return {};
    }
    void apply(const step::Scan& s) { sim_.start_scan(host(s.scanner), s.type, s.target, s.ports); }
    void apply(const step::RunFor& s) { run_until(sim_.now() + s.duration); }
    void apply(const step::RunUntil& s) { run_until(s.time); }
    void apply(const step::RunIdle&) {
        while (step()) {
        }
    }
    void apply(const step::Wait& s) {
        const SocketRef socket = ref(s.socket);
        run_until_true([&] { return holds(s, sim_.find_socket(socket)); }, s.within);
    }
    static bool holds(const step::Wait& wait, const Socket* socket) {
        switch (wait.condition) {
            case step::Condition::state: return (socket == nullptr ? TcpState::closed : socket->state) == wait.state;
            case step::Condition::accept_queue: return socket != nullptr && socket->accept_queue.size() >= wait.count;
            case step::Condition::data:
                return socket != nullptr && (!socket->tcb.receive_buffer.empty() || !socket->inbox.empty());
        }
        return false;
    }
};

}  // namespace

Result<ScenarioSpec> parse_scenario(std::string_view text, std::string_view file) { return Parser(file).parse(text); }

Result<Simulator> run_scenario_spec(const ScenarioSpec& spec, SimOptions options, RunLimits limits) {
    return Runner(spec, options, limits).run();
}

}  // namespace portlab::sim
