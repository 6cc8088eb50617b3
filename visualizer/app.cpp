// The frame: menu bar, error banner, and the panels' windows in a fixed
// arrangement (topology top-left, tables below it, inspector top-right, state
// diagram and pool below it, the timeline along the bottom), so a screenshot of
// event N always looks the same.
//
// [SECTION] keys and drops
// [SECTION] menu and popups
// [SECTION] windows

#include "app.hpp"

#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "panels/panels.hpp"
#include "panels/style.hpp"
#include "portlab/text_safety.hpp"
#include "screenshot.hpp"
#include "view/ladder_svg.hpp"
#include "view/tcp_diagram.hpp"

namespace portlab::viz {

// ===========================================================================
// [SECTION] keys and drops
// ===========================================================================

void handle_keys(App& app) {
    const ImGuiIO& io = ImGui::GetIO();
    if (io.WantTextInput || !app.model.loaded()) return;
    auto& requests = app.view.requests;
    // ImGui 1.86's GLFW backend indexes keys by GLFW key code.
    if (ImGui::IsKeyPressed(GLFW_KEY_SPACE, false)) requests.emplace_back(Command::toggle_play);
    if (ImGui::IsKeyPressed(GLFW_KEY_RIGHT)) requests.emplace_back(Command::step_forward);
    if (ImGui::IsKeyPressed(GLFW_KEY_LEFT)) requests.emplace_back(Command::step_back);
    if (ImGui::IsKeyPressed(GLFW_KEY_HOME, false)) requests.emplace_back(Command::first);
    if (ImGui::IsKeyPressed(GLFW_KEY_END, false)) requests.emplace_back(Command::last);
    // '+' is Shift+'=' on most layouts; accept both, and the keypad's.
    if (ImGui::IsKeyPressed(GLFW_KEY_EQUAL) || ImGui::IsKeyPressed(GLFW_KEY_KP_ADD)) requests.emplace_back(Command::faster);
    if (ImGui::IsKeyPressed(GLFW_KEY_MINUS) || ImGui::IsKeyPressed(GLFW_KEY_KP_SUBTRACT)) requests.emplace_back(Command::slower);
    if (open_question(app.model, app.view))
        for (int digit = 1; digit <= 9; ++digit)
            if (ImGui::IsKeyPressed(GLFW_KEY_0 + digit, false)) requests.emplace_back(ChallengeAnswer{static_cast<std::size_t>(digit - 1)});
}

void handle_drops(App& app) {
    if (app.ui.dropped.empty()) return;
    app.view.requests.emplace_back(OpenDroppedRequest{app.ui.dropped});
    app.ui.dropped.clear();
}

std::optional<LeftTab> parse_left_tab(const std::string& name) {
    if (name == "events") return LeftTab::events;
    if (name == "sockets") return LeftTab::sockets;
    if (name == "connections") return LeftTab::connections;
    if (name == "firewall") return LeftTab::firewall;
    if (name == "ladder") return LeftTab::ladder;
    if (name == "packets") return LeftTab::packets;
    if (name == "nat") return LeftTab::nat;
    return std::nullopt;
}

std::optional<RightTab> parse_right_tab(const std::string& name) {
    if (name == "tcp" || name == "tcp-state") return RightTab::tcp_state;
    if (name == "pool") return RightTab::pool;
    if (name == "challenge") return RightTab::challenge;
    return std::nullopt;
}

// ===========================================================================
// [SECTION] menu and popups
// ===========================================================================

namespace {

// Notes where the item just drawn is, under `name` (view_state.hpp's DrawnPlaces).
void note_item(App& app, const std::string& name) {
    const ImVec2 min = ImGui::GetItemRectMin();
    const ImVec2 max = ImGui::GetItemRectMax();
    app.view.drawn.items[name] = Rect{min.x, min.y, max.x - min.x, max.y - min.y};
}

bool is_openable(const std::filesystem::path& path) {
    const auto ext = path.extension().string();
    return ext == ".jsonl" || ext == ".pcap" || ext == ".pcapng" || ext == ".cap";
}

void draw_open_file_popup(App& app) {
    if (app.ui.open_file_popup) {
        ImGui::OpenPopup("Open a trace or capture");
        app.ui.open_file_popup = false;
        if (app.ui.browse_dir.empty()) app.ui.browse_dir = std::filesystem::current_path().string();
    }
    ImGui::SetNextWindowSize(ImVec2(640, 460), ImGuiCond_Appearing);
    if (!ImGui::BeginPopupModal("Open a trace or capture")) return;
    ImGui::TextWrapped("A trace (.jsonl) from portlab-sim or a lab's --trace, or a capture (.pcap, .pcapng).");
    ImGui::SetNextItemWidth(-80);
    const bool entered = ImGui::InputText("##path", &app.ui.path_input, ImGuiInputTextFlags_EnterReturnsTrue);
    ImGui::SameLine();
    if ((ImGui::Button("Open") || entered) && !app.ui.path_input.empty()) {
        app.view.requests.emplace_back(OpenFileRequest{app.ui.path_input});
        ImGui::CloseCurrentPopup();
    }
    style::text(app.ui.browse_dir);
    ImGui::BeginChild("listing", ImVec2(0, -ImGui::GetFrameHeightWithSpacing()), true);
    std::error_code error;
    const std::filesystem::path dir(app.ui.browse_dir);
    if (ImGui::Selectable("../")) app.ui.browse_dir = dir.parent_path().string();
    std::vector<std::filesystem::directory_entry> entries;
    for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end && entries.size() < 2000; it.increment(error))
        entries.push_back(*it);
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
    for (const auto& entry : entries) {
        std::error_code kind_error;
        const bool directory = entry.is_directory(kind_error);
        if (!directory && !is_openable(entry.path())) continue;
        const std::string name = entry.path().filename().string() + (directory ? "/" : "");
        if (ImGui::Selectable(name.c_str(), app.ui.path_input == entry.path().string(), ImGuiSelectableFlags_AllowDoubleClick)) {
            if (directory) app.ui.browse_dir = entry.path().string();
            else app.ui.path_input = entry.path().string();
            if (!directory && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) {
                app.view.requests.emplace_back(OpenFileRequest{entry.path().string()});
                ImGui::CloseCurrentPopup();
            }
        }
    }
    if (error) style::text_coloured(IM_COL32(255, 110, 110, 255), error.message());
    ImGui::EndChild();
    if (ImGui::Button("Cancel")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
}

void draw_scenario_popup(App& app) {
    if (app.ui.open_scenario_popup) {
        ImGui::OpenPopup("Open a simulator scenario");
        app.ui.open_scenario_popup = false;
        if (!app.ui.scenarios) app.ui.scenarios = list_scenarios();
    }
    ImGui::SetNextWindowSize(ImVec2(640, 420), ImGuiCond_Appearing);
    if (!ImGui::BeginPopupModal("Open a simulator scenario")) return;
    if (app.ui.scenarios && !app.ui.scenarios->has_value()) {
        style::text_coloured(IM_COL32(255, 110, 110, 255), app.ui.scenarios->error().message);
        if (ImGui::Button("Retry")) app.ui.scenarios = list_scenarios();
    } else if (app.ui.scenarios) {
        ImGui::BeginChild("scenarios", ImVec2(0, -ImGui::GetFrameHeightWithSpacing()), true);
        if (ImGui::BeginTable("list", 2, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit)) {
            for (const auto& scenario : app.ui.scenarios->value()) {
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                if (ImGui::Selectable(scenario.name.c_str(), false, ImGuiSelectableFlags_SpanAllColumns)) {
                    app.view.requests.emplace_back(OpenScenarioRequest{scenario.name});
                    ImGui::CloseCurrentPopup();
                }
                ImGui::TableNextColumn();
                style::text(scenario.description);
            }
            ImGui::EndTable();
        }
        ImGui::EndChild();
    }
    if (ImGui::Button("Cancel")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
}

// The rules every file the app writes follows (portlab/output_file.hpp): never the file shown,
// never through a symbolic link or onto a device; a temporary file renamed into place.
OutputRules export_rules(const App& app) { return OutputRules{{app.model.source_path()}, false}; }

void open_export_dialog(App& app, ExportKind kind) {
    auto& dialog = app.ui.export_dialog;
    dialog.open_popup = true;
    dialog.kind = kind;
    const bool png = kind == ExportKind::view_png;
    dialog.path = suggested_export_path(app.model.source_path(), app.model.label(), app.model.position(), png ? "event" : "ladder",
                                        png ? ".png" : ".svg");
}

void draw_export_popup(App& app) {
    auto& dialog = app.ui.export_dialog;
    const char* title = "Export";
    if (dialog.open_popup) {
        ImGui::OpenPopup(title);
        dialog.open_popup = false;
    }
    ImGui::SetNextWindowSize(ImVec2(640, 0), ImGuiCond_Appearing);
    if (!ImGui::BeginPopupModal(title, nullptr, ImGuiWindowFlags_AlwaysAutoResize)) return;
    const bool png = dialog.kind == ExportKind::view_png;
    ImGui::TextWrapped("%s", png ? "The window as it is now, as a PNG." : "The ladder diagram as the Ladder tab shows it (filter, columns, packets up to the cursor), as SVG.");
    ImGui::TextDisabled("An existing file is replaced; a symbolic link, a device or the file shown is refused.");
    ImGui::SetNextItemWidth(600);
    if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
    const bool entered = ImGui::InputText("##export path", &dialog.path, ImGuiInputTextFlags_EnterReturnsTrue);
    const bool save = ImGui::Button("Save");
    note_item(app, "Export/Save");
    if ((save || entered) && !dialog.path.empty()) {
        if (png) {
            app.ui.pending_png = PendingPng{dialog.path, 2, export_rules(app)};
        } else {
            const auto written = export_ladder_svg(app, dialog.path);
            app.ui.export_message = written ? "wrote " + dialog.path : "export: " + written.error().message;
            app.ui.export_failed = !written;
        }
        ImGui::CloseCurrentPopup();
    }
    ImGui::SameLine();
    if (ImGui::Button("Cancel")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
}

void draw_help_popup(App& app) {
    if (app.ui.help_popup) {
        ImGui::OpenPopup("Keys");
        app.ui.help_popup = false;
    }
    if (!ImGui::BeginPopupModal("Keys", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) return;
    const char* keys[][2] = {{"Space", "play / pause"},         {"Right", "one event forward"},
                             {"Left", "one event back"},        {"Home / End", "first / last event"},
                             {"+ / -", "faster / slower (0.1x to 10x)"}, {"1 .. 9", "answer a challenge question"},
                             {"mouse drag", "pan the canvas"},
                             {"mouse wheel", "zoom the canvas"}, {"double-click", "fit the canvas"},
                             {"drop files", "open the first that opens; the status line says which"}};
    if (ImGui::BeginTable("keys", 2, ImGuiTableFlags_SizingFixedFit)) {
        for (const auto& row : keys) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(row[0]);
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(row[1]);
        }
        ImGui::EndTable();
    }
    if (ImGui::Button("Close")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
}

float draw_menu(App& app) {
    if (!ImGui::BeginMainMenuBar()) return 0;
    const bool file = ImGui::BeginMenu("File");
    note_item(app, "File");
    if (file) {
        if (ImGui::MenuItem("Open trace or capture...")) app.ui.open_file_popup = true;
        if (ImGui::MenuItem("Open simulator scenario...")) app.ui.open_scenario_popup = true;
        ImGui::Separator();
        if (ImGui::MenuItem("Export view as PNG...", nullptr, false, app.model.loaded())) open_export_dialog(app, ExportKind::view_png);
        note_item(app, "File/Export view as PNG...");
        if (ImGui::MenuItem("Export ladder as SVG...", nullptr, false, app.model.loaded())) open_export_dialog(app, ExportKind::ladder_svg);
        note_item(app, "File/Export ladder as SVG...");
        ImGui::Separator();
        if (ImGui::MenuItem("Quit")) app.ui.quit = true;
        ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("Challenge")) {
        if (ImGui::MenuItem("Challenge mode", nullptr, app.view.challenge.enabled, app.model.loaded()))
            app.view.requests.emplace_back(ChallengeToggle{!app.view.challenge.enabled});
        if (ImGui::IsItemHovered())
            ImGui::SetTooltip("Stop before chosen events and predict them (starts again from the first event)");
        ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("Help")) {
        if (ImGui::MenuItem("Keys")) app.ui.help_popup = true;
        ImGui::EndMenu();
    }
    if (app.model.loaded()) {
        const auto& header = app.model.timeline().header();
        std::string title = app.model.label();
        if (header.title) title += "  -  " + *header.title;
        title += "   [" + header.source + "]";
        ImGui::TextDisabled("  %s", title.c_str());
    }
    if (!app.ui.export_message.empty()) ImGui::TextDisabled("   %s", text::printable(app.ui.export_message).c_str());
    if (!app.view.status.empty()) ImGui::TextDisabled("   %s", text::printable(app.view.status).c_str());
    const float height = ImGui::GetWindowSize().y;
    ImGui::EndMainMenuBar();
    return height;
}

// ===========================================================================
// [SECTION] windows
// ===========================================================================

constexpr ImGuiWindowFlags fixed = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus;

bool begin_fixed(const char* name, ImVec2 pos, ImVec2 size, ImGuiWindowFlags extra = 0) {
    ImGui::SetNextWindowPos(pos, ImGuiCond_Always);
    ImGui::SetNextWindowSize(size, ImGuiCond_Always);
    return ImGui::Begin(name, nullptr, fixed | extra);
}

// An error (red) or, when there is none, a warning about the file shown (amber).
float draw_error_banner(App& app, float top, float width) {
    const bool error = !app.model.error().empty();
    if (!error && app.model.warning().empty()) return 0;
    const float height = ImGui::GetTextLineHeightWithSpacing() * 2.4f + 8;
    ImGui::PushStyleColor(ImGuiCol_WindowBg, error ? IM_COL32(90, 25, 25, 255) : IM_COL32(90, 70, 20, 255));
    if (begin_fixed("##error", ImVec2(0, top), ImVec2(width, height), ImGuiWindowFlags_NoTitleBar)) {
        if (error) ImGui::TextWrapped("Could not open: %s", app.model.error().c_str());
        else ImGui::TextWrapped("Warning: %s", app.model.warning().c_str());
        if (ImGui::SmallButton("dismiss")) error ? app.model.clear_error() : app.model.clear_warning();
    }
    ImGui::End();
    ImGui::PopStyleColor();
    return height;
}

template <class Tab>
ImGuiTabItemFlags tab_flags(std::optional<Tab>& wanted, Tab tab) {
    if (wanted != tab) return 0;
    return ImGuiTabItemFlags_SetSelected;
}

}  // namespace

void draw_frame(App& app) {
    app.view.drawn = DrawnPlaces{};
    const ImVec2 display = ImGui::GetIO().DisplaySize;
    const float top = draw_menu(app);
    const float banner = draw_error_banner(app, top, display.x);
    // A line more in challenge mode, for the question's prompt under the caption.
    const float caption_lines = app.view.challenge.enabled ? 3.0f : 2.0f;
    const float timeline_h = ImGui::GetTextLineHeightWithSpacing() * caption_lines + ImGui::GetFrameHeightWithSpacing() * 2 + 24;
    const float line_h = ImGui::GetTextLineHeightWithSpacing();
    const float frame_h = ImGui::GetFrameHeightWithSpacing();
    const WindowRects windows = window_layout(Vec2{display.x, display.y},
                                              {.top = top + banner,
                                               .timeline_h = timeline_h,
                                               .inspector_min_h = inspector_min_height(line_h, frame_h),
                                               .states_min_h = state_panel_min_height(line_h, frame_h)});
    const auto pos = [](const Rect& r) { return ImVec2(r.x, r.y); };
    const auto size = [](const Rect& r) { return ImVec2(r.w, r.h); };
    Model& model = app.model;
    ViewState& view = app.view;

    if (begin_fixed("Topology", pos(windows.topology), size(windows.topology), ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse))
        topology_panel::draw(model, view);
    ImGui::End();

    if (begin_fixed("Tables", pos(windows.tables), size(windows.tables))) {
        if (ImGui::BeginTabBar("left")) {
            if (ImGui::BeginTabItem("Events", nullptr, tab_flags(app.ui.select_left, LeftTab::events))) {
                events_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Sockets (ss)", nullptr, tab_flags(app.ui.select_left, LeftTab::sockets))) {
                sockets_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Connections", nullptr, tab_flags(app.ui.select_left, LeftTab::connections))) {
                connections_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Firewall", nullptr, tab_flags(app.ui.select_left, LeftTab::firewall))) {
                firewall_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Ladder", nullptr, tab_flags(app.ui.select_left, LeftTab::ladder))) {
                ladder_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Packets", nullptr, tab_flags(app.ui.select_left, LeftTab::packets))) {
                packets_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("NAT", nullptr, tab_flags(app.ui.select_left, LeftTab::nat))) {
                nat_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            ImGui::EndTabBar();
        }
        app.ui.select_left.reset();
    }
    ImGui::End();

    if (begin_fixed("Packet inspector", pos(windows.inspector), size(windows.inspector))) inspector_panel::draw(model, view);
    ImGui::End();

    // A question that has just opened brings its tab forward, once.
    if (const auto open = open_question(model, view); open && view.challenge.shown_for != *open) {
        view.challenge.shown_for = *open;
        app.ui.select_right = RightTab::challenge;
    }
    if (begin_fixed("Ports and states", pos(windows.states), size(windows.states))) {
        if (ImGui::BeginTabBar("right")) {
            if (view.challenge.enabled &&
                ImGui::BeginTabItem("Challenge", nullptr, tab_flags(app.ui.select_right, RightTab::challenge))) {
                challenge_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("TCP state", nullptr, tab_flags(app.ui.select_right, RightTab::tcp_state))) {
                tcp_state_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            if (ImGui::BeginTabItem("Ephemeral pool", nullptr, tab_flags(app.ui.select_right, RightTab::pool))) {
                pool_panel::draw(model, view);
                ImGui::EndTabItem();
            }
            ImGui::EndTabBar();
        }
        app.ui.select_right.reset();
    }
    ImGui::End();

    if (begin_fixed("Timeline", pos(windows.timeline), size(windows.timeline), ImGuiWindowFlags_NoScrollbar))
        timeline_panel::draw(model, view);
    ImGui::End();

    draw_open_file_popup(app);
    draw_scenario_popup(app);
    draw_help_popup(app);
    draw_export_popup(app);
}

void save_pending_png(App& app, int width, int height) {
    auto& pending = app.ui.pending_png;
    if (!pending || pending->frames-- > 0) return;
    const auto saved = save_back_buffer_png(pending->path, width, height, pending->rules);
    app.ui.export_message = saved ? "wrote " + pending->path : saved.error().message;
    app.ui.export_failed = !saved;
    pending.reset();
}

Result<void> export_ladder_svg(App& app, const std::string& path) {
    if (!app.model.loaded()) return fail("nothing is open");
    auto& packets = app.view.packets;
    (void)refresh(packets, app.model.timeline(), app.model.generation(), static_cast<std::size_t>(-1));
    const std::string svg = ladder_svg(packets.ladder, packets.view, app.model.timeline(),
                                       {.position = app.model.position(), .relative = packets.relative, .title = app.model.label()});
    return write_text_output(path, svg, export_rules(app));
}

}  // namespace portlab::viz
