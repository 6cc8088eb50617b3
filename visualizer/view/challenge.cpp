// Questions read off a trace (view/challenge.hpp). One pass over the events tells, from
// each event alone (and the rules and flows seen so far), whether it could be a new
// lesson; only then is a replay::State moved to it (Timeline::seek, through the
// checkpoints), so the State is what the viewer shows while it waits before that event
// and a question's context is exactly what the student can see. Each kind of question is
// one small function of (the State before, the event); the answer is always a field of
// the event, never something computed here.
//
// [SECTION] choices from the hub's data
// [SECTION] one function per kind of question
// [SECTION] make_questions
// [SECTION] ChallengeSession

#include "view/challenge.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <set>
#include <utility>

#include "portlab/caption.hpp"
#include "portlab/firewall_rule.hpp"
#include "portlab/icmp.hpp"
#include "portlab/packet.hpp"
#include "portlab/ports.hpp"
#include "portlab/scan.hpp"
#include "portlab/tcp_machine.hpp"
#include "portlab/text.hpp"

namespace portlab::viz {

std::string_view to_string(QuestionKind kind) noexcept {
    switch (kind) {
        case QuestionKind::ephemeral_port: return "ephemeral-port";
        case QuestionKind::tcp_state: return "tcp-state";
        case QuestionKind::scan_result: return "scan-result";
        case QuestionKind::firewall: return "firewall";
        case QuestionKind::reply_tuple: return "reply-tuple";
    }
    return "?";
}

std::size_t question_limit(QuestionKind kind) noexcept {
    return kind == QuestionKind::tcp_state ? tcp_state_questions : questions_per_kind;
}

std::string choice_letter(std::size_t choice) {
    if (choice < 26) return std::string(1, static_cast<char>('a' + choice));
    return std::to_string(choice + 1);
}

std::optional<std::size_t> parse_choice_letter(std::string_view text) {
    if (text.size() == 1 && text[0] >= 'a' && text[0] <= 'z') return static_cast<std::size_t>(text[0] - 'a');
    if (text.size() == 1 && text[0] >= 'A' && text[0] <= 'Z') return static_cast<std::size_t>(text[0] - 'A');
    return std::nullopt;
}

namespace {

// ===========================================================================
// [SECTION] choices from the hub's data
// ===========================================================================

// A question whose answer is `correct` among `choices` (it is added when missing);
// nullopt when fewer than two choices remain, since a question with one answer teaches nothing.
std::optional<Question> with_choices(QuestionKind kind, std::size_t event, std::string prompt, std::vector<std::string> choices,
                                     const std::string& correct) {
    if (std::find(choices.begin(), choices.end(), correct) == choices.end()) choices.push_back(correct);
    std::vector<std::string> unique;
    for (auto& choice : choices)
        if (std::find(unique.begin(), unique.end(), choice) == unique.end()) unique.push_back(std::move(choice));
    if (unique.size() < 2) return std::nullopt;
    Question question;
    question.kind = kind;
    question.event = event;
    question.prompt = std::move(prompt);
    question.answer = static_cast<std::size_t>(std::find(unique.begin(), unique.end(), correct) - unique.begin());
    question.choices = std::move(unique);
    return question;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string parity_text(trace::Parity parity) { return parity == trace::Parity::even ? "even" : "odd"; }

// The states TCP may go to from `from`, in RFC order: the ends of the state machine's
// edges (portlab/tcp_machine.hpp), and staying put when fewer than three remain.
std::vector<std::string> next_states(TcpState from) {
    std::set<TcpState> states;
    for (const auto& edge : tcp_transitions())
        if (edge.from == from) states.insert(edge.to);
    if (states.size() < 3) states.insert(from);
    std::vector<std::string> names;
    for (const auto state : states) names.emplace_back(to_string(state));
    return names;
}

// Every port state nmap can give for a scan type: scan::classify over every kind of answer.
std::vector<std::string> scan_states(scan::ScanType type) {
    using scan::Answer;
    const Answer answers[] = {Answer::syn_ack(),
                              Answer::reset(),
                              Answer::udp_reply(),
                              Answer::nothing(),
                              Answer::unreachable(IcmpUnreachable{IpFamily::v4, icmp_v4::port_unreachable}),
                              Answer::unreachable(IcmpUnreachable{IpFamily::v4, icmp_v4::host_unreachable}),
                              Answer::unreachable(IcmpUnreachable{IpFamily::v4, icmp_v4::admin_prohibited}),
                              Answer::socket_error(0),
                              Answer::socket_error(ECONNREFUSED),
                              Answer::socket_error(ETIMEDOUT),
                              Answer::socket_error(EHOSTUNREACH)};
    std::set<scan::PortState> states;
    for (const auto& answer : answers)
        if (const auto verdict = scan::classify(type, answer)) states.insert(verdict->state);
    std::vector<std::string> names;
    for (const auto state : states) names.emplace_back(scan::to_string(state));
    return names;
}

std::string rule_text(const replay::RuleInForce& rule) {
    const auto text = nft_text(rule.rule);
    return text ? *text : rule.id;
}

std::string rule_choice(const replay::RuleInForce& rule) {
    const std::string verb = rule.rule.action == FirewallAction::reject ? "rejects it" : "drops it";
    return "rule " + rule.id + " (" + rule_text(rule) + ") " + verb;
}

std::string passes_choice(const std::string& host) { return "it gets through to " + host; }

std::string tuple_text(const Endpoint& source, const Endpoint& destination) {
    return source.to_string() + " → " + destination.to_string();
}

// ===========================================================================
// [SECTION] one function per kind of question
// ===========================================================================

struct Context {
    const replay::Timeline& timeline;
    const replay::State& before;  // the world with events [0, index) applied
    std::size_t index;
    const trace::Event& event;
    [[nodiscard]] std::optional<replay::HostIndex> host() const { return before.find_host(event.host); }
    [[nodiscard]] const replay::Socket* socket(trace::SocketId id) const {
        const auto h = host();
        return h ? before.find_socket(replay::SocketRef{*h, id}) : nullptr;
    }
};

std::optional<Question> ephemeral_question(const Context& c, const trace::EphemeralAssigned& body) {
    const PortRange range{body.range_low, body.range_high};
    std::string prompt = c.event.host + "'s socket " + std::to_string(body.socket.value);
    const auto* socket = c.socket(body.socket);
    if (socket && socket->remote) prompt += " calls connect() to " + socket->remote->to_string() + " with no port of its own";
    else prompt += " needs a port and names none";
    prompt += ": the OS picks an ephemeral port. From which range";
    prompt += body.parity ? ", and is it odd or even?" : "?";
    // The range the event names, and the ranges IANA names (RFC 6335 section 6).
    std::vector<PortRange> ranges{range, dynamic_ports, registered_ports};
    std::sort(ranges.begin(), ranges.end(), [](PortRange a, PortRange b) { return std::pair(a.low, a.high) < std::pair(b.low, b.high); });
    ranges.erase(std::unique(ranges.begin(), ranges.end()), ranges.end());
    std::vector<std::string> choices;
    for (const auto r : ranges) {
        if (!body.parity) {
            choices.push_back(r.to_string());
            continue;
        }
        for (const auto parity : {trace::Parity::even, trace::Parity::odd}) choices.push_back(r.to_string() + ", " + parity_text(parity));
    }
    const std::string correct = range.to_string() + (body.parity ? ", " + parity_text(*body.parity) : "");
    auto question = with_choices(QuestionKind::ephemeral_port, c.index, std::move(prompt), std::move(choices), correct);
    if (!question) return question;
    question->explanation = c.timeline.narration(c.index);
    // The host's earlier picks show the pattern (every one even, say) the question is about.
    if (const auto h = c.host(); h && !c.before.hosts()[*h].pool.recent.empty()) {
        question->explanation += "\nEarlier picks on " + c.event.host + ":";
        for (const Port port : c.before.hosts()[*h].pool.recent) question->explanation += " " + std::to_string(port);
        question->explanation += ".";
    }
    return question;
}

std::optional<Question> tcp_state_question(const Context& c, const trace::StateChanged& body) {
    if (body.from == body.to) return std::nullopt;
    // A cause that names the state ("listen() called" for LISTEN) gives the answer away.
    if (lower(body.cause).find(lower(to_string(body.to))) != std::string::npos) return std::nullopt;
    std::string prompt = c.event.host + "'s socket " + std::to_string(body.socket.value);
    const auto* socket = c.socket(body.socket);
    if (socket && socket->local && socket->remote) prompt += " (" + tuple_text(*socket->local, *socket->remote) + ")";
    else if (socket && socket->local) prompt += " (" + socket->local->to_string() + ")";
    prompt += " is in " + std::string(to_string(body.from)) + ".";
    if (!body.cause.empty()) prompt += " Now: " + body.cause + ".";
    prompt += " Which TCP state does it go to?";
    auto question = with_choices(QuestionKind::tcp_state, c.index, std::move(prompt), next_states(body.from), std::string(to_string(body.to)));
    if (!question) return question;
    question->explanation = c.timeline.narration(c.index);
    if (const auto* edge = principal_tcp_transition(body.from, body.to))
        question->explanation += "\n" + std::string(to_string(body.from)) + " → " + std::string(to_string(body.to)) + " on \"" +
                                 edge->cause() + "\" (" + std::string(edge->reference) + ").";
    return question;
}

std::optional<Question> scan_question(const Context& c, const trace::ScanResult& body) {
    std::string prompt = c.event.host + " probed " + body.target.to_string() + "/" + std::string(to_string(scan::protocol_of(body.scan))) +
                         " with nmap " + std::string(scan::nmap_option(body.scan)) + " (scan type " + std::string(scan::to_string(body.scan)) + ")";
    if (const auto h = c.host()) {
        const auto& scanned = c.before.hosts()[*h].scanned;
        if (const auto it = scanned.find({body.scan, body.target}); it != scanned.end())
            prompt += ", " + text::counted(it->second.probes, "probe") + " so far";
    }
    prompt += ". What does the scanner report for this port?";
    auto question = with_choices(QuestionKind::scan_result, c.index, std::move(prompt), scan_states(body.scan),
                                 std::string(scan::to_string(body.state)));
    if (question) question->explanation = c.timeline.narration(c.index);
    return question;
}

// At a packet's delivered or dropped event on a host with rules in force: through, or
// stopped by which rule (each drop or reject rule in force is a choice). A loss on the link or a missing socket is no firewall's verdict.
std::optional<Question> firewall_question(const Context& c, const trace::Packet& body) {
    if (body.kind == trace::PacketKind::sent) return std::nullopt;
    if (body.kind == trace::PacketKind::dropped && body.cause != trace::DropCause::firewall) return std::nullopt;
    const auto h = c.host();
    if (!h || c.before.hosts()[*h].rules.empty()) return std::nullopt;
    const auto* info = c.timeline.packet_info(c.index);
    if (!info || !info->decoded || !info->source || !info->destination) return std::nullopt;
    const auto& rules = c.before.hosts()[*h].rules;
    std::string prompt = "The " + std::string(to_string(info->label)) + " packet " + tuple_text(*info->source, *info->destination) + " reaches " +
                         c.event.host + ", whose input chain holds:";
    std::vector<std::string> choices{passes_choice(c.event.host)};
    for (const auto& rule : rules) {
        prompt += "\n    " + rule.id + ": " + rule_text(rule);
        // An accept rule lets it through: that is the first choice already.
        if (rule.rule.action != FirewallAction::accept) choices.push_back(rule_choice(rule));
    }
    prompt += "\nDoes it get through?";
    std::string correct = passes_choice(c.event.host);
    if (body.kind == trace::PacketKind::dropped) {
        const auto rule = std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return body.rule_id && r.id == *body.rule_id; });
        correct = rule != rules.end() ? rule_choice(*rule) : "a rule stops it";
    }
    auto question = with_choices(QuestionKind::firewall, c.index, std::move(prompt), std::move(choices), correct);
    if (!question) return question;
    question->explanation = c.timeline.narration(c.index);
    if (body.kind == trace::PacketKind::delivered) question->explanation += "\nNone of " + c.event.host + "'s rules stopped it.";
    return question;
}

// The first packet of a flow whose reverse flow has been seen (`request` is the last
// packet of that reverse flow): which 4-tuple does the answer carry? The choices turn the
// request's ends round in every way but the right one.
std::optional<Question> reply_question(const Context& c, std::size_t request) {
    const auto* info = c.timeline.packet_info(c.index);
    const auto* asked = c.timeline.packet_info(request);
    if (!info || !info->source || !info->destination || !asked) return std::nullopt;
    const Endpoint source = *info->source;
    const Endpoint destination = *info->destination;
    // The request as it left: its ends are the reply's, turned round.
    const Endpoint a = destination;  // the request's source
    const Endpoint b = source;       // the request's destination
    std::string prompt = c.event.host + " answers the " + std::string(to_string(asked->label)) + " packet " + tuple_text(a, b) + " (event " +
                         std::to_string(request) + "). Which source → destination does its answer carry?";
    std::vector<std::string> choices{tuple_text(a, b), tuple_text(b, a), tuple_text(Endpoint{b.address, a.port}, Endpoint{a.address, b.port}),
                                     tuple_text(Endpoint{a.address, b.port}, Endpoint{b.address, a.port})};
    std::sort(choices.begin(), choices.end());
    auto question = with_choices(QuestionKind::reply_tuple, c.index, std::move(prompt), std::move(choices), tuple_text(source, destination));
    if (question) question->explanation = c.timeline.narration(c.index) + "\n" + info->summary;
    return question;
}

// ===========================================================================
// [SECTION] make_questions
// ===========================================================================

// A possible question, told from the event alone and what the pass has tracked, before
// any replay::State is made for it: a trace of a million events only seeks the world to
// the few events that become questions.
struct Candidate {
    QuestionKind kind = QuestionKind::tcp_state;
    std::string key;  // what makes two questions of a kind the same lesson
    std::size_t request = 0;  // reply_tuple: the packet answered
};

// What the pass keeps between events: the rules in force per host (a firewall question
// needs some), and the last packet of each flow (a reply is the first packet of a flow
// whose reverse flow was seen). Packets are decoded headers only, and not kept.
struct Tracker {
    std::map<std::string, std::set<std::string>, std::less<>> rules;  // host -> rule ids in force
    std::map<std::pair<Endpoint, Endpoint>, std::size_t> last_sent;   // (source, destination) -> its latest sent event
};

std::optional<Candidate> packet_candidate(const trace::Event& event, const trace::Packet& packet, std::size_t index, Tracker& tracker) {
    if (packet.kind != trace::PacketKind::sent) {
        // Both ends of a verdict: through at a host with rules, or stopped by one of them.
        const auto rules = tracker.rules.find(event.host);
        if (rules == tracker.rules.end() || rules->second.empty()) return std::nullopt;
        if (packet.kind == trace::PacketKind::dropped && packet.cause != trace::DropCause::firewall) return std::nullopt;
        return Candidate{QuestionKind::firewall, event.host + "|" + packet.rule_id.value_or(packet.kind == trace::PacketKind::delivered ? "pass" : "?")};
    }
    const auto decoded = decode_frame_headers(packet.link, packet.bytes);
    if (!decoded || !decoded->protocol()) return std::nullopt;
    const Endpoint source = *decoded->source();
    const Endpoint destination = *decoded->destination();
    const bool first_of_flow = !tracker.last_sent.contains({source, destination});
    const auto request = tracker.last_sent.find({destination, source});
    std::optional<Candidate> candidate;
    if (first_of_flow && request != tracker.last_sent.end())
        candidate = Candidate{QuestionKind::reply_tuple,
                              event.host + "|" + std::string(to_string(*decoded->protocol())) + "|" + std::string(to_string(label_of(*decoded))) +
                                  "|" + source.to_string(),
                              request->second};
    tracker.last_sent[{source, destination}] = index;
    return candidate;
}

std::optional<Candidate> candidate_at(const trace::Event& event, std::size_t index, Tracker& tracker) {
    const auto& body = event.body;
    if (const auto* assigned = std::get_if<trace::EphemeralAssigned>(&body))
        return Candidate{QuestionKind::ephemeral_port, event.host + "|" + PortRange{assigned->range_low, assigned->range_high}.to_string() +
                                                           "|" + (assigned->parity ? parity_text(*assigned->parity) : "-")};
    if (const auto* changed = std::get_if<trace::StateChanged>(&body))
        return Candidate{QuestionKind::tcp_state, std::string(to_string(changed->from)) + ">" + std::string(to_string(changed->to))};
    if (const auto* result = std::get_if<trace::ScanResult>(&body))
        return Candidate{QuestionKind::scan_result, std::string(scan::to_string(result->scan)) + "|" + std::string(scan::to_string(result->state)) +
                                                        "|" + std::string(scan::to_string(result->reason))};
    if (const auto* added = std::get_if<trace::RuleAdded>(&body)) tracker.rules[event.host].insert(added->rule_id);
    if (const auto* removed = std::get_if<trace::RuleRemoved>(&body)) tracker.rules[event.host].erase(removed->rule_id);
    if (const auto* packet = std::get_if<trace::Packet>(&body)) return packet_candidate(event, *packet, index, tracker);
    return std::nullopt;
}

// The lessons asked so far: a key once (a reply's twice, so a second connection to the same
// server port, as two tabs make, is answered on a 4-tuple of its own), up to the kind's limit.
struct Seen {
    std::set<std::string> keys;
    std::map<QuestionKind, std::size_t> per_kind;
    [[nodiscard]] std::optional<std::string> slot(const Candidate& candidate) const {
        const auto count = per_kind.find(candidate.kind);
        if (count != per_kind.end() && count->second >= question_limit(candidate.kind)) return std::nullopt;
        const std::string key = std::string(to_string(candidate.kind)) + "|" + candidate.key;
        const int slots = candidate.kind == QuestionKind::reply_tuple ? 2 : 1;
        for (int n = 1; n <= slots; ++n)
            if (!keys.contains(key + "#" + std::to_string(n))) return key + "#" + std::to_string(n);
        return std::nullopt;
    }
    void take(QuestionKind kind, std::string slot) {
        keys.insert(std::move(slot));
        ++per_kind[kind];
    }
};

std::optional<Question> build(const Context& c, const Candidate& candidate) {
    const auto& body = c.event.body;
    switch (candidate.kind) {
        case QuestionKind::ephemeral_port: return ephemeral_question(c, std::get<trace::EphemeralAssigned>(body));
        case QuestionKind::tcp_state: return tcp_state_question(c, std::get<trace::StateChanged>(body));
        case QuestionKind::scan_result: return scan_question(c, std::get<trace::ScanResult>(body));
        case QuestionKind::firewall: return firewall_question(c, std::get<trace::Packet>(body));
        case QuestionKind::reply_tuple: return reply_question(c, candidate.request);
    }
    return std::nullopt;
}

}  // namespace

std::vector<Question> make_questions(const replay::Timeline& timeline) {
    std::vector<Question> questions;
    Seen seen;
    Tracker tracker;
    replay::State world;  // moved to each question's event only, through the timeline's checkpoints
    for (std::size_t i = 0; i < timeline.size(); ++i) {
        const auto& event = timeline.event(i);
        const auto candidate = candidate_at(event, i, tracker);
        if (!candidate) continue;
        const auto slot = seen.slot(*candidate);
        if (!slot) continue;
        timeline.seek(world, i);
        auto question = build(Context{timeline, world, i, event}, *candidate);
        if (!question) continue;
        seen.take(candidate->kind, *slot);
        questions.push_back(std::move(*question));
    }
    return questions;
}

// ===========================================================================
// [SECTION] ChallengeSession
// ===========================================================================

ChallengeSession::ChallengeSession(std::vector<Question> questions)
    : questions_(std::move(questions)), answers_(questions_.size()) {}

std::optional<std::size_t> ChallengeSession::horizon() const noexcept {
    for (std::size_t q = 0; q < questions_.size(); ++q)
        if (!answers_[q]) return questions_[q].event;
    return std::nullopt;
}

std::optional<std::size_t> ChallengeSession::open_question(std::size_t position) const noexcept {
    for (std::size_t q = 0; q < questions_.size(); ++q)
        if (!answers_[q] && questions_[q].event == position) return q;
    return std::nullopt;
}

std::optional<std::size_t> ChallengeSession::revealed_question(std::size_t position) const noexcept {
    std::optional<std::size_t> last;
    for (std::size_t q = 0; q < questions_.size() && questions_[q].event < position; ++q)
        if (answers_[q]) last = q;
    return last;
}

bool ChallengeSession::answer(std::size_t question, std::size_t choice) {
    if (question >= questions_.size() || answers_[question] || choice >= questions_[question].choices.size()) return false;
    answers_[question] = choice;
    return true;
}

ChallengeScore ChallengeSession::score() const noexcept {
    ChallengeScore score;
    for (std::size_t q = 0; q < questions_.size(); ++q) {
        if (!answers_[q]) continue;
        ++score.asked;
        if (*answers_[q] == questions_[q].answer) ++score.correct;
    }
    return score;
}

}  // namespace portlab::viz
