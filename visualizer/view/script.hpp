#pragma once
// Scripted input for tests of the real app (there is no xdotool here): a file of steps
// fed to Dear ImGui's input one frame at a time, as a person's mouse and keyboard would,
//
//   # comments and blank lines are skipped
//   click 512 300      move there, press the left button, release it (three frames)
//   move 512 300       move there (one frame)
//   key right          press and release a key: a letter, a digit, space, enter, escape,
//   key ctrl+a         tab, backspace, left, right, up, down, home, end; ctrl+ for Ctrl
//   type /tmp/x.png    the characters, as typed into the focused text field
//   wait 3             frames with no input
//   drop A B ...       files dropped on the window together, as GLFW's drop callback
//                      hands them over (paths without spaces)
//
// Coordinates are the window's pixels. Parsing and playing are window-free; the app
// turns each frame's ScriptInput into ImGui IO (main.cpp).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portlab/result.hpp"
#include "view/layout.hpp"

namespace portlab::viz {

struct ScriptStep {
    enum class Kind { move, click, key, type, wait, drop };
    Kind kind = Kind::wait;
    Vec2 at;           // move, click
    std::string text;  // key: its name ("a", "enter"); type: the characters
    bool ctrl = false; // key: with Ctrl held
    int frames = 1;    // wait
    std::vector<std::string> paths;  // drop
    std::size_t line = 0;
};

// "FILE: line N: reason" for the first bad line.
[[nodiscard]] Result<std::vector<ScriptStep>> parse_script(std::string_view text, const std::string& name);
// The key names a script may use.
[[nodiscard]] bool is_script_key(std::string_view name) noexcept;

// What one frame gets: where the mouse is (it stays where it was last put), whether the
// left button is down, a key held this frame, characters typed.
struct ScriptInput {
    std::optional<Vec2> mouse;
    bool mouse_down = false;
    std::optional<std::string> key;
    bool ctrl = false;
    std::string characters;
    std::vector<std::string> dropped;  // files dropped on the window this frame
};

class ScriptPlayer {
public:
    explicit ScriptPlayer(std::vector<ScriptStep> steps) : steps_(std::move(steps)) {}
    // The input of the next frame; after the last step, frames with no input.
    [[nodiscard]] ScriptInput next_frame();
    [[nodiscard]] bool done() const noexcept { return step_ >= steps_.size(); }
    // The frames the whole script takes.
    [[nodiscard]] std::size_t frame_count() const noexcept;

private:
    std::vector<ScriptStep> steps_;
    std::size_t step_ = 0;
    int frame_in_step_ = 0;
    std::optional<Vec2> mouse_;
};

}  // namespace portlab::viz
