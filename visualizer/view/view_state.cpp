#include "view/view_state.hpp"

#include "view/dropped.hpp"

#include <algorithm>

#include "view/timers.hpp"

namespace portlab::viz {

Camera fit(const Rect& bounds, Vec2 size, float margin) {
    Camera camera;
    const float w = std::max(bounds.w, 1.0f);
    const float h = std::max(bounds.h, 1.0f);
    const float avail_w = std::max(size.x - 2 * margin, 1.0f);
    const float avail_h = std::max(size.y - 2 * margin, 1.0f);
    camera.zoom = std::clamp(std::min(avail_w / w, avail_h / h), 0.0005f, 1.5f);
    // Centre the bounds.
    camera.pan.x = bounds.x + w / 2 - size.x / 2 / camera.zoom;
    camera.pan.y = bounds.y + h / 2 - size.y / 2 / camera.zoom;
    return camera;
}

void zoom_at(Camera& camera, float factor, Vec2 anchor, Vec2 origin) {
    const Vec2 before = camera.to_canvas(anchor, origin);
    camera.zoom = std::clamp(camera.zoom * factor, 0.0005f, 20.0f);
    const Vec2 after = camera.to_canvas(anchor, origin);
    camera.pan.x += before.x - after.x;
    camera.pan.y += before.y - after.y;
    camera.follow_fit = false;
}

double faster(double speed) noexcept {
    for (const double step : speed_steps)
        if (step > speed + 1e-9) return step;
    return speed_steps.back();
}

double slower(double speed) noexcept {
    for (auto it = speed_steps.rbegin(); it != speed_steps.rend(); ++it)
        if (*it < speed - 1e-9) return *it;
    return speed_steps.front();
}

namespace {

// Where challenge mode lets the cursor go: no further than the first unanswered question.
std::size_t allowed(const Model& model, const ViewState& view, std::size_t n) {
    n = std::min(n, model.size());
    if (!view.challenge.enabled) return n;
    // The questions are made once the source has loaded; until then the cursor waits.
    if (view.challenge.generation != model.generation()) return std::min(n, model.position());
    if (const auto horizon = view.challenge.session.horizon()) n = std::min(n, *horizon);
    return n;
}

}  // namespace

void seek_to(Model& model, ViewState& view, std::size_t n) {
    model.seek(allowed(model, view, n));
    view.playback.phase = 1.0;
    view.playback.virtual_us.reset();
    view.inspected_event.reset();
    view.hovered_field.reset();
    view.hovered_byte.reset();
}

void seek_to_time(Model& model, ViewState& view, std::uint64_t t_us) {
    if (!model.loaded()) return;
    const std::size_t n = events_until(model.timeline(), t_us);
    seek_to(model, view, n);
    // Held at a question before t_us: the cursor's time is that of its event.
    if (model.position() == n) view.playback.virtual_us = std::max(t_us, model.world().now_us());
}

std::uint64_t cursor_time_us(const Model& model, const ViewState& view) noexcept {
    const std::uint64_t now = model.world().now_us();
    const auto& virtual_us = view.playback.virtual_us;
    if (!virtual_us || *virtual_us < now || !model.loaded()) return now;
    // Never past the next event: it would have been applied.
    if (model.position() < model.size() && *virtual_us >= model.timeline().event(model.position()).t_us) return now;
    return *virtual_us;
}

void set_proportional(ViewState& view, bool on) noexcept {
    view.playback.proportional = on;
    view.playback.virtual_us.reset();
    view.playback.phase = 1.0;
}

void apply(Command command, Model& model, ViewState& view) {
    switch (command) {
        case Command::toggle_play:
            if (!view.playback.playing && model.position() >= model.size()) seek_to(model, view, 0);
            view.playback.playing = !view.playback.playing;
            break;
        case Command::step_forward:
            if (allowed(model, view, model.position() + 1) > model.position()) {
                seek_to(model, view, model.position() + 1);
                view.playback.phase = 0.0;  // animate the step
            }
            view.playback.playing = false;
            break;
        case Command::step_back:
            if (model.position() > 0) seek_to(model, view, model.position() - 1);
            view.playback.playing = false;
            break;
        case Command::first:
            seek_to(model, view, 0);
            view.playback.playing = false;
            break;
        case Command::last:
            seek_to(model, view, model.size());
            view.playback.playing = false;
            break;
        case Command::faster:
            if (view.playback.proportional) view.playback.time_scale = faster_time(view.playback.time_scale);
            else view.playback.speed = faster(view.playback.speed);
            break;
        case Command::slower:
            if (view.playback.proportional) view.playback.time_scale = slower_time(view.playback.time_scale);
            else view.playback.speed = slower(view.playback.speed);
            break;
    }
}

namespace {

// Time-proportional play: the cursor's time moves by `seconds * time_scale`, every event
// it passes is applied, and the packet of the event just applied flies over the time
// until the next one (its phase is the share of that gap gone by).
bool advance_in_time(Model& model, ViewState& view, double seconds) {
    auto& playback = view.playback;
    const std::uint64_t from = cursor_time_us(model, view);
    const double step_us = std::max(0.0, seconds * playback.time_scale * 1e6);
    const std::uint64_t to = from + static_cast<std::uint64_t>(std::min(step_us, 1e18));
    const std::size_t before = model.position();
    const std::size_t wanted = std::max(events_until(model.timeline(), to), before);
    const std::size_t reached = allowed(model, view, wanted);
    if (reached != model.position()) {
        model.seek(reached);
        view.inspected_event.reset();
    }
    if (reached < wanted || reached >= model.size()) {
        // The end, or a question waits: stop on the event, at rest.
        playback.playing = false;
        playback.virtual_us.reset();
        playback.phase = 1.0;
        return reached != before;
    }
    playback.virtual_us = to;
    const std::uint64_t start = model.world().now_us();
    const std::uint64_t next = model.timeline().event(model.position()).t_us;
    playback.phase = next > start ? std::min(1.0, static_cast<double>(to - std::min(to, start)) / static_cast<double>(next - start)) : 1.0;
    return reached != before;
}

// Paused in time-proportional play with the cursor between two events: nothing moves.
bool paused_between_events(const ViewState& view) noexcept {
    return view.playback.proportional && !view.playback.playing && view.playback.virtual_us.has_value();
}

}  // namespace

bool advance(Model& model, ViewState& view, double seconds) {
    refresh_challenge(model, view);
    auto& playback = view.playback;
    if (playback.proportional && playback.playing && model.loaded()) return advance_in_time(model, view, seconds);
    if (paused_between_events(view)) return false;  // the packet holds where the pause caught it
    const double step = seconds * playback.speed / seconds_per_event;
    if (!playback.playing) {
        playback.phase = std::min(1.0, playback.phase + step);  // finish a step's animation
        return false;
    }
    playback.phase += step;
    bool moved = false;
    // Bounded: at most 64 events per frame, however long the frame took.
    for (int i = 0; i < 64 && playback.phase >= 1.0; ++i) {
        if (allowed(model, view, model.position() + 1) == model.position()) {  // the end, or a question waits
            playback.playing = false;
            playback.phase = 1.0;
            break;
        }
        if (model.position() >= model.size()) {
            playback.playing = false;
            playback.phase = 1.0;
            break;
        }
        model.seek(model.position() + 1);
        playback.virtual_us.reset();
        view.inspected_event.reset();
        playback.phase -= 1.0;
        moved = true;
    }
    playback.phase = std::min(playback.phase, 1.0);
    return moved;
}

bool moves_by_itself(const Model& model, const ViewState& view) noexcept {
    return view.playback.playing || (view.playback.phase < 1.0 && !paused_between_events(view)) || model.loading() ||
           (view.packets.generation == model.generation() && view.packets.catching_up(model.size()));
}

void perform_requests(Model& model, ViewState& view) {
    // Taken out first: performing one may not add more, but must not invalidate the loop.
    std::vector<Request> requests;
    requests.swap(view.requests);
    for (auto& request : requests) {
        if (const auto* command = std::get_if<Command>(&request)) apply(*command, model, view);
        else if (const auto* seek = std::get_if<SeekRequest>(&request)) seek_to(model, view, seek->n);
        else if (const auto* file = std::get_if<OpenFileRequest>(&request)) model.start_open(file->path);
        else if (const auto* scenario = std::get_if<OpenScenarioRequest>(&request)) (void)model.open_scenario(scenario->name);
        else if (const auto* toggle = std::get_if<ChallengeToggle>(&request)) set_challenge(model, view, toggle->on);
        else if (const auto* answer = std::get_if<ChallengeAnswer>(&request)) (void)answer_challenge(model, view, answer->choice);
        else if (const auto* dropped = std::get_if<OpenDroppedRequest>(&request)) {
            const DropChoice choice = choose_dropped(dropped->paths);
            if (choice.chosen) model.start_open(*choice.chosen);
            view.status = choice.status;
        }
        sync_with_model(model, view);
    }
}

const std::vector<std::size_t>& event_rows(const Model& model, ViewState& view) {
    auto& cache = view.event_list;
    if (!model.loaded()) {
        cache.rows.clear();
        return cache.rows;
    }
    if (cache.generation == model.generation() && cache.filter == view.filter && cache.size < model.size()) {
        // A file still loading grew: filter only the events that came in (an
        // event's protocol comes from its socket's introduction, which precedes it).
        const bool all = view.filter.allows_everything();
        for (std::size_t i = cache.size; i < model.size(); ++i)
            if (all || view.filter.allows(model.timeline(), i)) cache.rows.push_back(i);
        cache.size = model.size();
    } else if (cache.generation != model.generation() || cache.size != model.size() || !(cache.filter == view.filter)) {
        cache.generation = model.generation();
        cache.size = model.size();
        cache.filter = view.filter;
        cache.rows = filter_events(model.timeline(), view.filter);
    }
    return cache.rows;
}

void sync_with_model(const Model& model, ViewState& view) {
    if (view.model_generation == model.generation()) return;
    view.model_generation = model.generation();
    view.playback = Playback{false, view.playback.speed, 1.0, view.playback.proportional, view.playback.time_scale, std::nullopt};
    view.camera = Camera{};
    view.selected_socket.reset();
    view.inspected_event.reset();
    view.hovered_field.reset();
    view.hovered_byte.reset();
    view.selected_field.reset();
    view.reveal_selected_field = false;
    view.reveal_selected_bytes = false;
    view.filter = EventFilter{};
    refresh_challenge(model, view);
}

void refresh_challenge(const Model& model, ViewState& view) {
    auto& challenge = view.challenge;
    if (!challenge.enabled || challenge.generation == model.generation() || !model.loaded() || model.loading()) return;
    challenge.generation = model.generation();
    challenge.session = ChallengeSession(make_questions(model.timeline()));
    challenge.shown_for = static_cast<std::size_t>(-1);
    challenge.scores[model.label()] = challenge.session.score();
}

void set_challenge(Model& model, ViewState& view, bool on) {
    if (view.challenge.enabled == on) return;
    view.challenge.enabled = on;
    view.challenge.generation = static_cast<std::size_t>(-1);  // a fresh go at the questions
    refresh_challenge(model, view);
    if (on) {
        view.playback.playing = false;
        seek_to(model, view, 0);
    }
}

std::optional<std::size_t> open_question(const Model& model, const ViewState& view) noexcept {
    if (!view.challenge.enabled || view.challenge.generation != model.generation()) return std::nullopt;
    return view.challenge.session.open_question(model.position());
}

bool answer_challenge(Model& model, ViewState& view, std::size_t choice) {
    const auto question = open_question(model, view);
    if (!question || !view.challenge.session.answer(*question, choice)) return false;
    view.challenge.scores[model.label()] = view.challenge.session.score();
    apply(Command::step_forward, model, view);  // the event itself tells the answer
    return true;
}

std::size_t shown_events(const Model& model, const ViewState& view) noexcept {
    return view.challenge.enabled ? model.position() : model.size();
}

}  // namespace portlab::viz
