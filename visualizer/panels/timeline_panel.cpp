// The timeline: the current event's caption, play/pause/step buttons, speed,
// "jump to the next event of a kind", and a scrub bar over every event.
#include <imgui.h>

#include <algorithm>
#include <string>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "view/timers.hpp"

namespace portlab::viz::timeline_panel {
namespace {

void draw_caption(const Model& model, const ViewState& view) {
    const auto current = model.current_event();
    std::string caption = current ? model.timeline().narration(*current)
                                  : "Before the first event: press Space to play, Right to step.";
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(250, 240, 200, 255));
    ImGui::TextWrapped("%s", caption.c_str());
    ImGui::PopStyleColor();
    if (const auto open = open_question(model, view)) {
        const auto& question = view.challenge.session.questions()[*open];
        style::text_coloured(style::question_colour, "Challenge: what will event " + std::to_string(question.event) +
                                                         " say? Answer in the Challenge tab (keys 1.." +
                                                         std::to_string(question.choices.size()) + ").");
    }
}

void draw_buttons(const Model& model, ViewState& view) {
    if (ImGui::Button("|<")) view.requests.emplace_back(Command::first);
    ImGui::SameLine();
    if (ImGui::Button("<")) view.requests.emplace_back(Command::step_back);
    ImGui::SameLine();
    if (ImGui::Button(view.playback.playing ? "Pause" : "Play ", ImVec2(ImGui::GetFontSize() * 4, 0)))
        view.requests.emplace_back(Command::toggle_play);
    ImGui::SameLine();
    if (ImGui::Button(">")) view.requests.emplace_back(Command::step_forward);
    ImGui::SameLine();
    if (ImGui::Button(">|")) view.requests.emplace_back(Command::last);
    ImGui::SameLine();
    // One event per beat, or the trace's own time (timers count down on the sockets).
    bool proportional = view.playback.proportional;
    if (ImGui::Checkbox("real time", &proportional)) set_proportional(view, proportional);
    if (ImGui::IsItemHovered())
        ImGui::SetTooltip("Play in proportion to the trace's time: a 60 s TIME-WAIT lasts 60 s at x1, a 5 ms round trip 5 ms.\n"
                          "+ / - change how many trace seconds pass per second.");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7);
    if (view.playback.proportional) {
        float scale = static_cast<float>(view.playback.time_scale);
        if (ImGui::SliderFloat("time", &scale, 0.001f, 1000.0f, time_scale_text(view.playback.time_scale).c_str(), ImGuiSliderFlags_Logarithmic))
            view.playback.time_scale = std::clamp(static_cast<double>(scale), 0.001, 1000.0);
    } else {
        float speed = static_cast<float>(view.playback.speed);
        if (ImGui::SliderFloat("speed", &speed, 0.1f, 10.0f, "%.1fx", ImGuiSliderFlags_Logarithmic))
            view.playback.speed = std::clamp(static_cast<double>(speed), 0.1, 10.0);
    }

    // Jump to the next / previous event of a kind.
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 9);
    if (ImGui::BeginCombo("##kind", std::string(to_string(view.jump_kind)).c_str())) {
        for (std::size_t k = 0; k < replay::event_kind_count; ++k) {
            const auto kind = static_cast<replay::EventKind>(k);
            if (ImGui::Selectable(std::string(to_string(kind)).c_str(), kind == view.jump_kind)) view.jump_kind = kind;
        }
        ImGui::EndCombo();
    }
    ImGui::SameLine();
    if (ImGui::Button("prev") && model.position() >= 2) {
        if (const auto at = previous_of_kind(model.timeline(), model.position() - 2, view.jump_kind))
            view.requests.emplace_back(SeekRequest{*at + 1});
    }
    ImGui::SameLine();
    if (ImGui::Button("next")) {
        if (const auto at = next_of_kind(model.timeline(), model.position(), view.jump_kind))
            view.requests.emplace_back(SeekRequest{*at + 1});
    }

    ImGui::SameLine();
    const auto current = model.current_event();
    std::string where = "event " + std::to_string(model.position()) + " / " + std::to_string(model.size());
    if (current) {
        const auto& event = model.timeline().event(*current);
        where += "   t = " + style::time_text(event.t_us) + "   on " + event.host;
        if (const auto now = cursor_time_us(model, view); now != event.t_us) where += "   now " + style::time_text(now);
    }
    ImGui::TextDisabled("%s", where.c_str());
}

void draw_scrub_bar(const Model& model, ViewState& view) {
    ImGui::SetNextItemWidth(-1);
    std::uint64_t position = model.position();
    const std::uint64_t low = 0;
    const std::uint64_t high = model.size();
    if (ImGui::SliderScalar("##scrub", ImGuiDataType_U64, &position, &low, &high, "%llu")) {
        if (position != model.position()) view.requests.emplace_back(SeekRequest{static_cast<std::size_t>(position)});
    }
}

}  // namespace

void draw(const Model& model, ViewState& view) {
    if (!model.loaded()) {
        ImGui::TextDisabled("Nothing open.");
        return;
    }
    if (model.loading()) {
        const std::string label = "loading: " + std::to_string(model.size()) + " events so far";
        ImGui::ProgressBar(static_cast<float>(model.load_progress()), ImVec2(-1, 0), label.c_str());
    }
    draw_caption(model, view);
    draw_buttons(model, view);
    draw_scrub_bar(model, view);
}

}  // namespace portlab::viz::timeline_panel
