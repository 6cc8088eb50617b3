#pragma once
// The app around the panels: the windows' fixed arrangement, the menu bar (File:
// open a file or a scenario), the error banner, keys, and dropped files.

#include <optional>
#include <string>
#include <vector>

#include "portlab/output_file.hpp"
#include "view/model.hpp"
#include "view/scenarios.hpp"
#include "view/view_state.hpp"

namespace portlab::viz {

enum class LeftTab { events, sockets, connections, firewall, ladder, packets, nat };
enum class RightTab { tcp_state, pool, challenge };

// File > Export: the dialog's path (suggested next to the file shown) and what it writes.
enum class ExportKind { view_png, ladder_svg };
struct ExportDialog {
    bool open_popup = false;
    ExportKind kind = ExportKind::view_png;
    std::string path;
};
// A PNG of the view is read from the back buffer after a frame without the dialog on it:
// `frames` more frames are drawn first (the dialog closes on the frame it is confirmed).
// --screenshot goes the same way, after the frames that let tables settle their sizes.
struct PendingPng {
    std::string path;
    int frames = 2;
    OutputRules rules;
};

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
    ExportDialog export_dialog;
    std::optional<PendingPng> pending_png;
    std::string export_message;  // the last export's outcome, shown in the menu bar
    bool export_failed = false;  // and whether it failed (--screenshot exits 1)
};

struct App {
    Model model;
    ViewState view;
    AppUi ui;
};

// Space, Left/Right, Home/End, +/-, 1..9 to answer a question; ignored while a text field has the keyboard.
void handle_keys(App& app);
// Opens what was dropped on the window: the first file that can be opened, the status
// line saying which and why the others were not (view/dropped.hpp).
void handle_drops(App& app);
// The whole UI for one frame, sized to the display.
void draw_frame(App& app);
// After a frame is rendered, before it is shown: saves the PNG the Export dialog asked for
// once its frames have passed (the back buffer holds the frame just drawn).
void save_pending_png(App& app, int width, int height);
// File > Export ladder as SVG: the ladder as the Ladder tab shows it (its filter, columns,
// seq/ack mode, the packets sent up to the cursor), written through the output-file rules.
[[nodiscard]] Result<void> export_ladder_svg(App& app, const std::string& path);
[[nodiscard]] std::optional<LeftTab> parse_left_tab(const std::string& name);
[[nodiscard]] std::optional<RightTab> parse_right_tab(const std::string& name);

}  // namespace portlab::viz
