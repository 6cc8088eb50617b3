// Challenge mode's questions (view/challenge.hpp), without a window, on traces the
// simulator makes here. Each question's answer is held to a judge of its own: the port
// the simulator assigned (its range and parity from the number itself), the TCP state
// the replay model holds after the event and the hub's state machine, the simulator's
// firewall evaluating the packet's decoded bytes against the rules in force, the
// packet's own bytes for a reply's 4-tuple, the scanner's scan_result. Then the session:
// the cursor stops at each question, nothing passes it unanswered, the score counts.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "portlab/caption.hpp"
#include "portlab/packet.hpp"
#include "portlab/sim/firewall.hpp"
#include "portlab/tcp_machine.hpp"
#include "view/challenge.hpp"
#include "view/dump.hpp"
#include "view/model.hpp"
#include "view/scenarios.hpp"
#include "view/view_state.hpp"

using namespace portlab;
using namespace portlab::viz;

namespace {

replay::Timeline scenario(const std::string& name) {
    auto trace = run_scenario(name);
    REQUIRE(trace.has_value());
    return replay::Timeline::of(std::move(*trace));
}

const std::string& chosen_answer(const Question& q) { return q.choices.at(q.answer); }

DecodedPacket decoded(const trace::Event& event) {
    const auto* packet = std::get_if<trace::Packet>(&event.body);
    REQUIRE(packet != nullptr);
    auto result = decode_frame(packet->link, packet->bytes);
    REQUIRE(result.has_value());
    return *result;
}

// "32768-60999, even" holds `port` when the port lies in the range and has the parity.
void check_ephemeral(const Question& q, const trace::Event& event) {
    const auto* assigned = std::get_if<trace::EphemeralAssigned>(&event.body);
    REQUIRE(assigned != nullptr);
    const std::string& answer = chosen_answer(q);
    const auto dash = answer.find('-');
    const auto comma = answer.find(',');
    const auto low = std::stoul(answer.substr(0, dash));
    const auto high = std::stoul(answer.substr(dash + 1, comma - dash - 1));
    INFO("port " << assigned->port << ", answer " << answer);
    CHECK(low <= assigned->port);
    CHECK(assigned->port <= high);
    if (comma != std::string::npos) CHECK(answer.substr(comma + 2) == (assigned->port % 2 == 0 ? "even" : "odd"));
}

// The state the replay model holds for the socket once the event is applied, and an edge
// of the hub's state machine from the state it held before.
void check_tcp_state(const Question& q, const replay::Timeline& timeline, const trace::Event& event) {
    const auto* changed = std::get_if<trace::StateChanged>(&event.body);
    REQUIRE(changed != nullptr);
    const auto before = timeline.state_at(q.event);
    const auto after = timeline.state_at(q.event + 1);
    const auto host = after.find_host(event.host);
    REQUIRE(host.has_value());
    const replay::SocketRef ref{*host, changed->socket};
    const auto parsed = parse_tcp_state(chosen_answer(q));
    REQUIRE(parsed.has_value());
    if (const auto* socket = after.find_socket(ref)) CHECK(to_string(socket->tcp_state) == chosen_answer(q));
    if (const auto* socket = before.find_socket(ref); socket && socket->state_reported)
        CHECK(is_tcp_transition(socket->tcp_state, *parsed));
    CHECK(*parsed == changed->to);
}

// The simulator's own firewall, given the rules in force and the packet's bytes, decides.
void check_firewall(const Question& q, const replay::Timeline& timeline, const trace::Event& event) {
    const auto before = timeline.state_at(q.event);
    const auto host = before.find_host(event.host);
    REQUIRE(host.has_value());
    sim::Firewall firewall;
    for (const auto& rule : before.hosts()[*host].rules) firewall.input.push_back(sim::NamedRule{rule.id, rule.rule});
    const auto packet = decoded(event);
    REQUIRE(packet.source().has_value());
    const sim::PacketMatch match{packet.protocol(), packet.source()->address, packet.destination()->address, packet.source()->port,
                                 packet.destination()->port};
    const auto verdict = sim::evaluate(firewall, match);
    INFO(q.prompt << "\nanswer: " << chosen_answer(q));
    if (verdict.action == FirewallAction::accept) {
        CHECK(chosen_answer(q).rfind("it gets through", 0) == 0);
    } else {
        REQUIRE(verdict.rule_index.has_value());
        CHECK(chosen_answer(q).rfind("rule " + firewall.input[*verdict.rule_index].id + " ", 0) == 0);
    }
}

void check_reply(const Question& q, const trace::Event& event) {
    const auto packet = decoded(event);
    REQUIRE(packet.source().has_value());
    CHECK(chosen_answer(q) == packet.source()->to_string() + " → " + packet.destination()->to_string());
}

void check_scan(const Question& q, const trace::Event& event) {
    const auto* result = std::get_if<trace::ScanResult>(&event.body);
    REQUIRE(result != nullptr);
    CHECK(chosen_answer(q) == scan::to_string(result->state));
}

// Every question well formed, and its answer what its judge says.
std::map<QuestionKind, std::vector<Question>> checked_questions(const std::string& name) {
    const auto timeline = scenario(name);
    const auto questions = make_questions(timeline);
    std::map<QuestionKind, std::vector<Question>> by_kind;
    std::optional<std::size_t> previous;
    for (const auto& q : questions) {
        CAPTURE(name, q.event, to_string(q.kind), q.prompt, q.choices, q.answer);
        REQUIRE(q.event < timeline.size());
        if (previous) CHECK(q.event > *previous);  // in order, one a event
        previous = q.event;
        REQUIRE(q.choices.size() >= 2);
        REQUIRE(q.answer < q.choices.size());
        CHECK(std::set<std::string>(q.choices.begin(), q.choices.end()).size() == q.choices.size());
        const auto& event = timeline.event(q.event);
        // The reveal is the hub's caption of the event asked about.
        CHECK(q.explanation.find(caption(event, &timeline.services())) != std::string::npos);
        switch (q.kind) {
            case QuestionKind::ephemeral_port: check_ephemeral(q, event); break;
            case QuestionKind::tcp_state: check_tcp_state(q, timeline, event); break;
            case QuestionKind::firewall: check_firewall(q, timeline, event); break;
            case QuestionKind::reply_tuple: check_reply(q, event); break;
            case QuestionKind::scan_result: check_scan(q, event); break;
        }
        by_kind[q.kind].push_back(q);
    }
    CHECK(make_questions(timeline) == questions);  // a pure function of the trace
    return by_kind;
}

std::set<std::string> answers_of(const std::vector<Question>& questions) {
    std::set<std::string> answers;
    for (const auto& q : questions) answers.insert(chosen_answer(q));
    return answers;
}

}  // namespace

TEST_CASE("a web fetch asks the client's ephemeral port, the handshake's and the close's states, and the reply's 4-tuple",
          "[viz][challenge]") {
    auto questions = checked_questions("web");
    REQUIRE(questions[QuestionKind::ephemeral_port].size() >= 1);
    CHECK(questions[QuestionKind::ephemeral_port][0].choices.size() >= 4);  // ranges times parities
    CHECK(questions[QuestionKind::tcp_state].size() >= 4);
    // The handshake's and the close's: the side that closes first waits in TIME-WAIT.
    const auto states = answers_of(questions[QuestionKind::tcp_state]);
    for (const auto* state : {"SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "CLOSE-WAIT", "TIME-WAIT"}) CHECK(states.count(state) == 1);
    REQUIRE(questions[QuestionKind::reply_tuple].size() >= 1);
    CHECK(questions[QuestionKind::reply_tuple][0].choices.size() == 4);
}

TEST_CASE("two tabs to one server port ask the reply's 4-tuple of each connection, and the answers differ", "[viz][challenge]") {
    auto questions = checked_questions("two-tabs");
    const auto& replies = questions[QuestionKind::reply_tuple];
    REQUIRE(replies.size() >= 2);
    CHECK(answers_of(replies).size() == replies.size());  // each its own 4-tuple
}

TEST_CASE("a scan asks what nmap reports, and the answers differ from port to port", "[viz][challenge][scan]") {
    auto questions = checked_questions("scan");
    const auto& scans = questions[QuestionKind::scan_result];
    REQUIRE(scans.size() >= 3);
    CHECK(answers_of(scans).size() >= 3);  // open, closed, filtered, ...
    for (const auto& q : scans) CHECK(q.choices.size() >= 2);
}

TEST_CASE("a firewall's SYN asks whether it gets through, and the rule that stops it is the answer",
          "[viz][challenge][firewall]") {
    const auto name = GENERATE(as<std::string>{}, "firewall-drop", "firewall-reject");
    CAPTURE(name);
    auto questions = checked_questions(name);
    const auto& verdicts = questions[QuestionKind::firewall];
    REQUIRE(verdicts.size() >= 1);
    bool stopped = false;
    for (const auto& q : verdicts) stopped = stopped || chosen_answer(q).rfind("rule ", 0) == 0;
    CHECK(stopped);
}

TEST_CASE("an accept rule is no choice of its own: a packet it lets in gets through, and the drop rule after it is the other choice",
          "[viz][challenge][firewall]") {
    // A trace written here: a server with "tcp dport 80 accept" then "drop", and a SYN to port 80 that is delivered.
    const auto address = [](const char* text) { return *IpAddress::parse(text); };
    trace::Trace trace;
    trace.header.source = "test";
    trace.events.push_back({0, "server", trace::HostAdded{{address("192.0.2.2")}, "server"}});
    trace.events.push_back({0, "server", trace::RuleAdded{"r1", accept_port(Protocol::tcp, 80)}});
    trace.events.push_back({0, "server", trace::RuleAdded{"r2", drop_all()}});
    TcpHeader syn;
    syn.source_port = 40000;
    syn.destination_port = 80;
    syn.flags = tcp_flag::syn;
    const auto bytes = encode_tcp(IpHeader{address("192.0.2.1"), address("192.0.2.2")}, syn);
    REQUIRE(bytes.has_value());
    trace::Packet packet;
    packet.bytes = *bytes;
    packet.from_host = "client";
    packet.to_host = "server";
    trace.events.push_back({1, "client", packet});
    packet.kind = trace::PacketKind::delivered;
    trace.events.push_back({2, "server", packet});
    const auto timeline = replay::Timeline::of(std::move(trace));
    const auto questions = make_questions(timeline);
    REQUIRE(questions.size() == 1);
    const auto& q = questions[0];
    CAPTURE(q.prompt, q.choices);
    CHECK(q.kind == QuestionKind::firewall);
    CHECK(q.event == 4);
    REQUIRE(q.choices.size() == 2);  // through, or r2 drops it: r1 is in the question, not a choice
    CHECK(chosen_answer(q).rfind("it gets through", 0) == 0);
    CHECK(q.choices[1].rfind("rule r2 ", 0) == 0);
    CHECK(q.prompt.find("tcp dport 80 accept") != std::string::npos);
}

TEST_CASE("every scenario gets questions, and together they ask every kind", "[viz][challenge]") {
    std::set<QuestionKind> kinds;
    for (const auto& name : {"web", "two-tabs", "dns-udp", "closed-port", "udp-closed-port", "firewall-drop", "firewall-reject",
                             "bind-conflict", "ephemeral-exhaustion", "scan", "time-wait", "lossy-link"}) {
        CAPTURE(name);
        const auto questions = checked_questions(name);
        std::size_t count = 0;
        for (const auto& [kind, list] : questions) {
            kinds.insert(kind);
            count += list.size();
            CHECK(list.size() <= question_limit(kind));
        }
        CHECK(count >= 1);
    }
    CHECK(kinds.size() == question_kind_count);
}

TEST_CASE("challenge mode stops the cursor at each question, lets nothing pass it, and keeps the score",
          "[viz][challenge][playback]") {
    Model model;
    REQUIRE(model.open_scenario("web").has_value());
    ViewState view;
    sync_with_model(model, view);
    set_challenge(model, view, true);
    const auto& questions = view.challenge.session.questions();
    REQUIRE(questions.size() >= 3);
    CHECK(model.position() == 0);

    // Playing runs up to the first question and pauses there, idle.
    apply(Command::toggle_play, model, view);
    for (int frame = 0; frame < 200 && view.playback.playing; ++frame) advance(model, view, 1.0);
    CHECK(model.position() == questions[0].event);
    CHECK(open_question(model, view) == std::size_t{0});
    CHECK_FALSE(moves_by_itself(model, view));
    CHECK(shown_events(model, view) == questions[0].event);  // the panels show nothing past the cursor

    // Neither a step, nor a seek, nor the end key passes an unanswered question.
    apply(Command::step_forward, model, view);
    CHECK(model.position() == questions[0].event);
    seek_to(model, view, model.size());
    CHECK(model.position() == questions[0].event);
    apply(Command::last, model, view);
    CHECK(model.position() == questions[0].event);

    // A right answer, then a wrong one: each steps onto its event, which reveals it.
    REQUIRE(answer_challenge(model, view, questions[0].answer));
    CHECK(model.position() == questions[0].event + 1);
    CHECK(view.challenge.session.revealed_question(model.position()) == std::size_t{0});
    CHECK_FALSE(answer_challenge(model, view, 0));  // nothing is open here
    seek_to(model, view, model.size());
    CHECK(model.position() == questions[1].event);
    REQUIRE(answer_challenge(model, view, (questions[1].answer + 1) % questions[1].choices.size()));
    CHECK(view.challenge.session.score() == ChallengeScore{2, 1});
    CHECK(view.challenge.scores.at(model.label()) == ChallengeScore{2, 1});

    // Going back and over an answered question does not ask it again.
    seek_to(model, view, 0);
    seek_to(model, view, model.size());
    CHECK(model.position() == questions[2].event);

    const auto dumped = dump_state(model, &view.challenge);
    CHECK(dumped.at("challenge").at("asked") == 2);
    CHECK(dumped.at("challenge").at("correct") == 1);
    CHECK(dumped.at("challenge").at("open") == 2);

    // Off: the cursor is free again.
    set_challenge(model, view, false);
    seek_to(model, view, model.size());
    CHECK(model.position() == model.size());
    CHECK(shown_events(model, view) == model.size());
}

TEST_CASE("choice letters name choices: a is the first, and anything else is refused", "[viz][challenge]") {
    CHECK(choice_letter(0) == "a");
    CHECK(choice_letter(3) == "d");
    CHECK(parse_choice_letter("a") == std::size_t{0});
    CHECK(parse_choice_letter("C") == std::size_t{2});
    CHECK_FALSE(parse_choice_letter(""));
    CHECK_FALSE(parse_choice_letter("ab"));
    CHECK_FALSE(parse_choice_letter("1"));
}
