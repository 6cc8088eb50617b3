#include "view/script.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace portlab::viz {
namespace {

// How many frames each kind of step takes: a click hovers, presses, then releases, so
// ImGui sees the item under the pointer before the button goes down.
int frames_of(const ScriptStep& step) {
    switch (step.kind) {
        case ScriptStep::Kind::move: return 1;
        case ScriptStep::Kind::click: return 3;
        case ScriptStep::Kind::key: return 2;
        case ScriptStep::Kind::type: return 1;
        case ScriptStep::Kind::wait: return step.frames;
        case ScriptStep::Kind::drop: return 1;
    }
    return 1;
}

std::optional<float> number(std::string_view word) {
    float value = 0;
    const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (error != std::errc() || end != word.data() + word.size() || !std::isfinite(value) || value < 0 || value > 16384) return std::nullopt;
    return value;
}

std::vector<std::string_view> words_of(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) words.push_back(line.substr(start, i - start));
    }
    return words;
}

}  // namespace

bool is_script_key(std::string_view name) noexcept {
    if (name.size() == 1 && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return true;
    constexpr std::array<std::string_view, 13> named{"space", "enter", "escape", "tab", "backspace", "left", "right",
                                                     "up",    "down",  "home",   "end", "plus",      "minus"};
    for (const auto n : named)
        if (n == name) return true;
    return false;
}

Result<std::vector<ScriptStep>> parse_script(std::string_view text, const std::string& name) {
    std::vector<ScriptStep> steps;
    std::size_t line_number = 0;
    std::size_t frames = 0;
    for (std::size_t start = 0; start < text.size();) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const auto words = words_of(line);
        if (words.empty() || words[0].front() == '#') continue;
        const auto bad = [&](const std::string& why) {
            return fail(name + ": line " + std::to_string(line_number) + ": " + why);
        };
        ScriptStep step;
        step.line = line_number;
        const std::string_view verb = words[0];
        if (verb == "click" || verb == "move") {
            if (words.size() != 3) return bad(std::string(verb) + " takes two numbers, x and y");
            const auto x = number(words[1]);
            const auto y = number(words[2]);
            if (!x || !y) return bad("x and y are pixels, 0..16384");
            step.kind = verb == "click" ? ScriptStep::Kind::click : ScriptStep::Kind::move;
            step.at = Vec2{*x, *y};
        } else if (verb == "key") {
            if (words.size() != 2) return bad("key takes one key name");
            std::string_view key = words[1];
            if (key.rfind("ctrl+", 0) == 0) {
                step.ctrl = true;
                key.remove_prefix(5);
            }
            if (!is_script_key(key)) return bad("unknown key (a-z, 0-9, space, enter, escape, tab, backspace, arrows, home, end, plus, minus)");
            step.kind = ScriptStep::Kind::key;
            step.text = std::string(key);
        } else if (verb == "type") {
            const auto at = line.find("type") + 4;
            std::string_view rest = line.substr(std::min(at + 1, line.size()));
            if (rest.empty()) return bad("type takes the text to type");
            for (const char c : rest)
                if (static_cast<unsigned char>(c) < 0x20) return bad("type takes printable text");
            step.kind = ScriptStep::Kind::type;
            step.text = std::string(rest);
        } else if (verb == "wait") {
            int count = 0;
            const auto [end_of, error] = words.size() == 2 ? std::from_chars(words[1].data(), words[1].data() + words[1].size(), count)
                                                           : std::from_chars_result{nullptr, std::errc::invalid_argument};
            if (error != std::errc() || end_of != words[1].data() + words[1].size() || count < 1 || count > 1000)
                return bad("wait takes a number of frames, 1..1000");
            step.kind = ScriptStep::Kind::wait;
            step.frames = count;
        } else if (verb == "drop") {
            if (words.size() < 2) return bad("drop takes one path or more");
            step.kind = ScriptStep::Kind::drop;
            for (std::size_t w = 1; w < words.size(); ++w) step.paths.emplace_back(words[w]);
        } else {
            return bad("unknown step '" + std::string(verb.substr(0, 32)) + "' (click, move, key, type, wait, drop)");
        }
        frames += static_cast<std::size_t>(frames_of(step));
        if (frames > 100000) return bad("the script is longer than 100,000 frames");
        steps.push_back(std::move(step));
    }
    return steps;
}

ScriptInput ScriptPlayer::next_frame() {
    ScriptInput input;
    if (done()) {
        input.mouse = mouse_;
        return input;
    }
    const ScriptStep& step = steps_[step_];
    switch (step.kind) {
        case ScriptStep::Kind::move:
        case ScriptStep::Kind::click:
            mouse_ = step.at;
            input.mouse_down = step.kind == ScriptStep::Kind::click && frame_in_step_ == 1;
            break;
        case ScriptStep::Kind::key:
            if (frame_in_step_ == 0) input.key = step.text;
            input.ctrl = step.ctrl;
            break;
        case ScriptStep::Kind::type: input.characters = step.text; break;
        case ScriptStep::Kind::wait: break;
        case ScriptStep::Kind::drop: input.dropped = step.paths; break;
    }
    input.mouse = mouse_;
    if (++frame_in_step_ >= frames_of(step)) {
        ++step_;
        frame_in_step_ = 0;
    }
    return input;
}

std::size_t ScriptPlayer::frame_count() const noexcept {
    std::size_t frames = 0;
    for (const auto& step : steps_) frames += static_cast<std::size_t>(frames_of(step));
    return frames;
}

}  // namespace portlab::viz
