#pragma once
// The UI's own state, kept apart from the model (imgui_club style): playback,
// the canvas camera, what is selected and hovered, the event filter. Commands
// (step, seek, play, speed) are plain functions over (Model, ViewState), so the
// keys and buttons do the same thing and tests can drive them without a window.

#include <array>
#include <cstdint>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "view/challenge.hpp"
#include "view/filters.hpp"
#include "view/hexmap.hpp"
#include "view/ladder.hpp"
#include "view/layout.hpp"
#include "view/model.hpp"

namespace portlab::viz {

// Speeds a press of +/- steps through, 0.1x to 10x.
inline constexpr std::array<double, 9> speed_steps{0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0};
// How long one event's animation lasts at 1x.
inline constexpr double seconds_per_event = 0.9;

struct Playback {
    bool playing = false;
    double speed = 1.0;
    double phase = 1.0;  // 0..1 through the current event's animation; 1 = at rest
    // Time-proportional play (view/timers.hpp): the cursor moves through the trace's own
    // time, `time_scale` virtual seconds per wall second, instead of one event per beat.
    bool proportional = false;
    double time_scale = 1.0;
    // The cursor's virtual time while it sits between two events (proportional play, or
    // --at-us); unset: the time of the event just applied. Only cursor_time_us() reads it.
    std::optional<std::uint64_t> virtual_us;
};

// Canvas units to screen pixels: screen = origin + (p - pan) * zoom.
struct Camera {
    Vec2 pan;
    float zoom = 1.0f;
    bool follow_fit = true;  // refit when the layout grows, until the user pans or zooms

    [[nodiscard]] Vec2 to_screen(Vec2 p, Vec2 origin) const noexcept {
        return {origin.x + (p.x - pan.x) * zoom, origin.y + (p.y - pan.y) * zoom};
    }
    [[nodiscard]] Vec2 to_canvas(Vec2 s, Vec2 origin) const noexcept {
        return {pan.x + (s.x - origin.x) / zoom, pan.y + (s.y - origin.y) / zoom};
    }
};
// The whole of `bounds` inside a canvas of `size` pixels, with a margin.
[[nodiscard]] Camera fit(const Rect& bounds, Vec2 size, float margin = 24.0f);
// Zoom by `factor` keeping the canvas point under `anchor` (screen) still.
void zoom_at(Camera& camera, float factor, Vec2 anchor, Vec2 origin);

enum class Command {
    toggle_play,
    step_forward,
    step_back,
    first,
    last,
    faster,
    slower,
};

// What panels ask for while they draw; the app performs them after the frame's
// panels are done, so every panel of one frame reads the same model state.
struct SeekRequest {
    std::size_t n = 0;  // events applied
};
struct OpenFileRequest {
    std::string path;
};
struct OpenScenarioRequest {
    std::string name;
};
// Challenge mode on or off (the menu's toggle); on rewinds to the first event.
struct ChallengeToggle {
    bool on = false;
};
// The student's answer to the question open at the cursor: choice 0 is "a".
struct ChallengeAnswer {
    std::size_t choice = 0;
};
// Files dropped on the window together: the first that can be opened is (view/dropped.hpp).
struct OpenDroppedRequest {
    std::vector<std::string> paths;
};
using Request = std::variant<Command, SeekRequest, OpenFileRequest, OpenScenarioRequest, ChallengeToggle, ChallengeAnswer, OpenDroppedRequest>;

// The event list's filtered rows, recomputed only when the filter or source changes.
struct EventListCache {
    std::size_t generation = static_cast<std::size_t>(-1);
    std::size_t size = 0;
    EventFilter filter;
    std::vector<std::size_t> rows;
    std::size_t scrolled_for = static_cast<std::size_t>(-1);  // the event the list last scrolled to
    float event_column_width = 0;  // the widest of event_column_texts(), in pixels, measured once
};

// Challenge mode (view/challenge.hpp): the questions of the source shown and the
// answers so far; while it is on, the cursor stops at each unanswered question and the
// panels show nothing past the cursor.
struct ChallengeView {
    bool enabled = false;
    std::size_t generation = static_cast<std::size_t>(-1);  // the Model::generation() the session was made for
    ChallengeSession session;
    // Every source tried in this run, by its label: the score per scenario.
    std::map<std::string, ChallengeScore> scores;
    std::size_t shown_for = static_cast<std::size_t>(-1);  // the question the app last brought forward
};

// Where the last frame drew what a click can pick, in window pixels: the hex dump's
// cells, the field tree's rows, the menus' items. The panels fill it as they draw; a
// scripted test (--script) reads it from --dump-state's "drawn" to know where to click.
struct DrawnPlaces {
    struct HexDump {
        std::size_t event = 0;
        Vec2 origin;  // of the dump's first row, as HexGeometry's cells are relative to it
        HexGeometry geometry;
        Rect visible;  // the part of the dump window on screen
        std::size_t size = 0;
    };
    struct TreeRow {
        std::size_t event = 0;
        FieldRef field;
        std::string name;
        Rect rect;
    };
    std::optional<HexDump> hex;
    std::vector<TreeRow> tree;
    std::map<std::string, Rect> items;  // "File", "File/Export view as PNG...", ...: menus and buttons
};

struct ViewState {
    Playback playback;
    Camera camera;
    EventFilter filter;
    std::optional<replay::SocketRef> selected_socket;
    std::optional<std::size_t> inspected_event;  // unset: the current event
    std::optional<FieldRef> hovered_field;       // set by the tree or the hex dump, read next frame
    std::optional<std::size_t> hovered_byte;
    std::optional<FieldSelection> selected_field;  // clicked in the tree or the hex dump, lit in both
    bool reveal_selected_field = false;            // the tree opens the field's layer and scrolls to it, once
    bool reveal_selected_bytes = false;            // the hex dump scrolls to the field's first byte, once
    bool follow_current = true;  // the event list scrolls to the current event
    replay::EventKind jump_kind = replay::EventKind::packet_sent;
    std::size_t model_generation = 0;  // which open the state belongs to
    std::vector<Request> requests;
    EventListCache event_list;
    PacketViews packets;  // the ladder and the packet list
    std::string requests_error_shown;  // the last open error already written to stderr
    ChallengeView challenge;
    DrawnPlaces drawn;  // this frame's, cleared as the frame starts
    std::string status;  // the status line: which dropped file opened, and why the others did not
};

// Performs and clears view.requests, in order. Opening a file or scenario that
// fails leaves the message in model.error().
void perform_requests(Model& model, ViewState& view);
// The filtered event list rows, refreshed when needed.
[[nodiscard]] const std::vector<std::size_t>& event_rows(const Model& model, ViewState& view);

void apply(Command command, Model& model, ViewState& view);
// Moves to n events, at rest (the scrub bar, the event list, Home/End).
void seek_to(Model& model, ViewState& view, std::size_t n);
// Moves the cursor to virtual time t_us: every event at or before it applied, the
// countdowns read at t_us (challenge mode may hold the cursor at a question).
void seek_to_time(Model& model, ViewState& view, std::uint64_t t_us);
// The cursor's virtual time: between the event just applied and the next one in
// time-proportional play, else the time of the event just applied.
[[nodiscard]] std::uint64_t cursor_time_us(const Model& model, const ViewState& view) noexcept;
// Time-proportional play on or off; the cursor stays where it is.
void set_proportional(ViewState& view, bool on) noexcept;
// Plays the time forward by `seconds` of wall time: one event per beat (seconds_per_event
// at 1x), or in time-proportional play `seconds * time_scale` of the trace's time;
// returns whether the position changed.
bool advance(Model& model, ViewState& view, double seconds);
// Whether the picture changes by itself: playing, a step still animating, or a file still
// loading. When not, the app sleeps until input comes (issue 10: no redraw while paused).
[[nodiscard]] bool moves_by_itself(const Model& model, const ViewState& view) noexcept;
// Resets what belonged to the previous source after an open.
void sync_with_model(const Model& model, ViewState& view);
// Challenge mode: turning it on makes the questions (once the source is loaded) and
// rewinds; the cursor then never passes the first unanswered question.
void set_challenge(Model& model, ViewState& view, bool on);
// Makes the questions of a source that finished loading or was opened while challenge
// mode is on; cheap when nothing changed (the app calls it every frame).
void refresh_challenge(const Model& model, ViewState& view);
// Answers the question open at the cursor and steps onto its event, which reveals the
// answer; false when no question is open there.
bool answer_challenge(Model& model, ViewState& view, std::size_t choice);
// The question open at the cursor, when challenge mode is on.
[[nodiscard]] std::optional<std::size_t> open_question(const Model& model, const ViewState& view) noexcept;
// How many events the panels may show: all of them, or in challenge mode those applied
// (what comes after the cursor is what the student is asked to predict).
[[nodiscard]] std::size_t shown_events(const Model& model, const ViewState& view) noexcept;
[[nodiscard]] double faster(double speed) noexcept;
[[nodiscard]] double slower(double speed) noexcept;

}  // namespace portlab::viz
