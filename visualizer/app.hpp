#pragma once
// The app around the panels: the windows' fixed arrangement, the menu bar (File:
// open a file or a scenario), the error banner, keys, and dropped files.

#include <optional>
#include <string>
#include <vector>

#include "view/model.hpp"
#include "view/scenarios.hpp"
#include "view/view_state.hpp"

namespace portlab::viz {

enum class LeftTab { events, sockets, connections, firewall, ladder, packets };
enum class RightTab { tcp_state, pool, challenge };

struct AppUi {
    bool open_file_popup = false;
    bool open_scenario_popup = false;
    bool help_popup = false;
    bool quit = false;
    std::string path_input;
    std::string browse_dir;
    std::optional<Result<std::vector<ScenarioInfo>>> scenarios;  // asked for on first use
    std::vector<std::string> dropped;  // filled by the window's drop callback
    std::optional<LeftTab> select_left;  // a tab to bring forward on the next frame
    std::optional<RightTab> select_right;
};

struct App {
    Model model;
    ViewState view;
    AppUi ui;
};

// Space, Left/Right, Home/End, +/-, 1..9 to answer a question; ignored while a text field has the keyboard.
void handle_keys(App& app);
// Opens what was dropped on the window (the last file wins).
void handle_drops(App& app);
// The whole UI for one frame, sized to the display.
void draw_frame(App& app);
[[nodiscard]] std::optional<LeftTab> parse_left_tab(const std::string& name);
[[nodiscard]] std::optional<RightTab> parse_right_tab(const std::string& name);

}  // namespace portlab::viz
