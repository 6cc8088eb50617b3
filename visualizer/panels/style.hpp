#pragma once
// Colours and small drawing helpers the panels share, so a state has one colour
// everywhere (slot, table row, state diagram).

#include <imgui.h>

#include <optional>
#include <string>

#include "portlab/text_safety.hpp"
#include "replay/state.hpp"

namespace portlab::viz::style {

// Slot colours: cool for waiting (bound, listening), green for a live
// connection, amber while closing, purple for TIME-WAIT, grey when closed.
inline ImU32 slot_colour(replay::SlotState state) {
    switch (state) {
        case replay::SlotState::created: return IM_COL32(90, 96, 110, 255);
        case replay::SlotState::bound: return IM_COL32(60, 110, 170, 255);
        case replay::SlotState::listening: return IM_COL32(40, 150, 200, 255);
        case replay::SlotState::connecting: return IM_COL32(200, 170, 50, 255);
        case replay::SlotState::established: return IM_COL32(60, 160, 80, 255);
        case replay::SlotState::closing: return IM_COL32(210, 120, 40, 255);
        case replay::SlotState::time_wait: return IM_COL32(150, 90, 180, 255);
        case replay::SlotState::closed: return IM_COL32(110, 110, 110, 255);
    }
    return IM_COL32(255, 0, 255, 255);
}

inline ImU32 packet_colour(replay::PacketLabel label) {
    switch (label) {
        case replay::PacketLabel::syn: return IM_COL32(250, 210, 60, 255);
        case replay::PacketLabel::syn_ack: return IM_COL32(250, 170, 60, 255);
        case replay::PacketLabel::ack: return IM_COL32(170, 220, 250, 255);
        case replay::PacketLabel::data: return IM_COL32(120, 230, 130, 255);
        case replay::PacketLabel::fin: return IM_COL32(230, 140, 230, 255);
        case replay::PacketLabel::rst: return IM_COL32(240, 70, 70, 255);
        case replay::PacketLabel::udp: return IM_COL32(110, 200, 240, 255);
        case replay::PacketLabel::icmp_unreachable: return IM_COL32(255, 110, 110, 255);
        case replay::PacketLabel::icmp:
        case replay::PacketLabel::other: break;
    }
    return IM_COL32(200, 200, 200, 255);
}

inline ImVec4 to_vec4(ImU32 colour) { return ImGui::ColorConvertU32ToFloat4(colour); }

inline constexpr ImU32 firewall_colour = IM_COL32(235, 110, 40, 255);
inline constexpr ImU32 selection_colour = IM_COL32(255, 255, 255, 255);
inline constexpr ImU32 nat_colour = IM_COL32(190, 150, 255, 255);  // a router's address translation
inline constexpr ImU32 timer_colour = IM_COL32(255, 200, 90, 255);  // a timer's countdown bar on its slot
inline constexpr ImU32 highlight_colour = IM_COL32(255, 200, 40, 110);
// Challenge mode: the question, a right answer, a wrong one.
inline constexpr ImU32 question_colour = IM_COL32(120, 200, 255, 255);
inline constexpr ImU32 right_colour = IM_COL32(110, 220, 120, 255);
inline constexpr ImU32 wrong_colour = IM_COL32(255, 110, 100, 255);

// The second font loaded by main (DejaVu Sans Mono), if it was found.
inline ImFont* mono_font() {
    auto& fonts = ImGui::GetIO().Fonts->Fonts;
    return fonts.Size > 1 ? fonts[1] : nullptr;
}

struct MonoScope {
    bool pushed = false;
    MonoScope() {
        if (ImFont* font = mono_font()) {
            ImGui::PushFont(font);
            pushed = true;
        }
    }
    ~MonoScope() {
        if (pushed) ImGui::PopFont();
    }
    MonoScope(const MonoScope&) = delete;
    MonoScope& operator=(const MonoScope&) = delete;
};

// Text helpers for std::string. A trace is anyone's file: what it names (hosts, notes, errors)
// is drawn with control bytes escaped (portlab/text_safety.hpp), one line as written, never a
// '\n' that fakes a second line, nor bytes that are not UTF-8 (ImGui would draw '?').
inline void text(const std::string& s) {
    const std::string shown = portlab::text::printable(s);
    ImGui::TextUnformatted(shown.c_str(), shown.c_str() + shown.size());
}
inline void text_coloured(ImU32 colour, const std::string& s) {
    ImGui::PushStyleColor(ImGuiCol_Text, colour);
    text(s);
    ImGui::PopStyleColor();
}

// "15.25 ms", "60.031 s" from microseconds: the hub's words (portlab/caption.hpp).
inline std::string time_text(std::uint64_t t_us) { return portlab::duration_text(t_us); }

}  // namespace portlab::viz::style
