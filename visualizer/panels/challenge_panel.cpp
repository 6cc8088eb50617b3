// Challenge mode (view/challenge.hpp): the score for this source, then either the
// question open at the cursor with a button per choice, or the last answer revealed
// with the event's own words, or where the next question waits. Answers go through
// view.requests, as every command does; keys 1..9 and a..z answer too (app.cpp).
#include <imgui.h>

#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::challenge_panel {
namespace {

void draw_score(const Model& model, const ViewState& view) {
    const auto& session = view.challenge.session;
    const auto score = session.score();
    style::text("Score for " + model.label() + ": " + std::to_string(score.correct) + " of " + std::to_string(score.asked) +
                " right (" + std::to_string(session.questions().size()) + " questions in this trace)");
    for (const auto& [label, other] : view.challenge.scores)
        if (label != model.label())
            ImGui::TextDisabled("%s: %zu of %zu", label.c_str(), other.correct, other.asked);
    ImGui::Separator();
}

void draw_open(const Question& question, std::size_t index, ViewState& view) {
    style::text_coloured(style::question_colour, "Question " + std::to_string(index + 1) + " (" + std::string(to_string(question.kind)) +
                                                     "), before event " + std::to_string(question.event) + ":");
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(question.prompt.c_str());
    ImGui::PopTextWrapPos();
    ImGui::Spacing();
    for (std::size_t c = 0; c < question.choices.size(); ++c) {
        const std::string label = choice_letter(c) + ")  " + question.choices[c];
        if (ImGui::Button(label.c_str())) view.requests.emplace_back(ChallengeAnswer{c});
    }
}

void draw_revealed(const Question& question, std::size_t chosen) {
    const bool right = chosen == question.answer;
    style::text_coloured(right ? style::right_colour : style::wrong_colour,
                         right ? "Right: " + question.choices[question.answer]
                               : "You said " + question.choices[chosen] + "; the trace says " + question.choices[question.answer]);
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(question.explanation.c_str());
    ImGui::PopTextWrapPos();
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) return;
    if (view.challenge.generation != model.generation()) {
        ImGui::TextDisabled("Waiting for the whole trace before asking...");
        return;
    }
    draw_score(model, view);
    const auto& session = view.challenge.session;
    if (const auto open = open_question(model, view)) {
        draw_open(session.questions()[*open], *open, view);
        return;
    }
    if (const auto revealed = session.revealed_question(model.position())) {
        draw_revealed(session.questions()[*revealed], *session.answers()[*revealed]);
        ImGui::Spacing();
    }
    if (const auto horizon = session.horizon())
        ImGui::TextDisabled("Play or step on: the next question waits before event %zu.", *horizon);
    else
        ImGui::TextDisabled("Every question of this trace is answered.");
}

}  // namespace portlab::viz::challenge_panel
