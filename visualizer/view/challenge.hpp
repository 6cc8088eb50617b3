#pragma once
// Challenge mode, as Packet Tracer has it: at events chosen from the trace, the viewer
// stops before the event, hides what comes after it, and asks the student to predict
// what the event will say; the event itself then reveals the answer, and its caption
// (the hub's sentence, the one portlab-sim prints) explains it.
//
// Nothing here knows how TCP, a firewall or a scanner behaves. A question is read off
// the trace: the answer is a field of the event asked about, the choices are the other
// values that field could take, as the hub lists them (the TCP state machine's edges out
// of the current state, the port states scan::classify can give for the scan type, the
// rules in force on the host, the port ranges IANA names), and the context of the
// question is the replay model's state just before the event. So every scenario and
// every lab trace gets its questions without anyone writing them.
//
//   make_questions(timeline)   the questions of a trace, a pure function of its events
//   ChallengeSession           which ones were answered, how, and the score; where the
//                              cursor may go (no further than the first unanswered one)

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replay/state.hpp"

namespace portlab::viz {

enum class QuestionKind : std::uint8_t {
    ephemeral_port,    // an ephemeral_assigned: from which range, odd or even
    tcp_state,         // a state_changed: the state it goes to
    scan_result,       // a scan_result: the port state nmap reports
    firewall,          // a packet's delivered or dropped, at a host with rules: through, or which rule stops it
    reply_tuple,       // the first packet back on a flow: the 4-tuple it carries
};
inline constexpr std::size_t question_kind_count = 5;
// "ephemeral-port", "tcp-state", "scan-result", "firewall", "reply-tuple"
[[nodiscard]] std::string_view to_string(QuestionKind kind) noexcept;

struct Question {
    QuestionKind kind = QuestionKind::tcp_state;
    // The event whose outcome is asked: the viewer stops with `event` events applied
    // (this one not yet), and applying it reveals the answer.
    std::size_t event = 0;
    std::string prompt;                // what is happening, and what to predict
    std::vector<std::string> choices;  // at least two, all different
    std::size_t answer = 0;            // index into choices: what the trace says
    // The narration of the revealing event (its caption and note), then what the
    // hub's data adds (the RFC's transition, the rule that matched).
    std::string explanation;
    friend bool operator==(const Question&, const Question&) = default;
};

// At most this many questions of each kind per trace: a scan of a thousand ports asks
// about each kind of answer once, not a thousand times. TCP has more to ask: a
// connection's life is about ten transitions, and the close's are the lesson as much
// as the handshake's.
inline constexpr std::size_t questions_per_kind = 6;
inline constexpr std::size_t tcp_state_questions = 12;
[[nodiscard]] std::size_t question_limit(QuestionKind kind) noexcept;

// The questions of a trace, ordered by event, at most one per event: the first event of
// each kind of lesson (each TCP transition, each scan verdict, each firewall verdict per
// rule, each host's first ephemeral port and each change of range or parity, the first
// reply of each kind of exchange), up to questions_per_kind of each.
[[nodiscard]] std::vector<Question> make_questions(const replay::Timeline& timeline);

// "a", "b", ... for choice 0, 1, ...: how the UI labels choices and --challenge-answers names them.
[[nodiscard]] std::string choice_letter(std::size_t choice);
// The choice a letter names ("a" -> 0), if it is one.
[[nodiscard]] std::optional<std::size_t> parse_choice_letter(std::string_view text);

struct ChallengeScore {
    std::size_t asked = 0;  // questions answered
    std::size_t correct = 0;
    friend bool operator==(const ChallengeScore&, const ChallengeScore&) = default;
};

// One student's go at one source's questions. The cursor may not pass the first
// unanswered question (the horizon): playing stops there, and seeking further lands there.
class ChallengeSession {
public:
    ChallengeSession() = default;
    explicit ChallengeSession(std::vector<Question> questions);

    [[nodiscard]] const std::vector<Question>& questions() const noexcept { return questions_; }
    [[nodiscard]] const std::vector<std::optional<std::size_t>>& answers() const noexcept { return answers_; }
    // The furthest position the cursor may take: the event of the first unanswered
    // question, or none when every question is answered.
    [[nodiscard]] std::optional<std::size_t> horizon() const noexcept;
    // The question waiting at `position` (its event is `position`, it is unanswered).
    [[nodiscard]] std::optional<std::size_t> open_question(std::size_t position) const noexcept;
    // The last question answered at or before `position` whose event has been applied,
    // while the cursor is still on it (position == its event + 1) or waiting before it:
    // what the reveal panel explains.
    [[nodiscard]] std::optional<std::size_t> revealed_question(std::size_t position) const noexcept;
    // Answers question `question` with `choice`; false (and nothing changes) when it is
    // already answered or either index is out of range.
    bool answer(std::size_t question, std::size_t choice);
    [[nodiscard]] ChallengeScore score() const noexcept;

private:
    std::vector<Question> questions_;
    std::vector<std::optional<std::size_t>> answers_;
};

}  // namespace portlab::viz
