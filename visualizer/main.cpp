// portlab-viz: watch ports, sockets, packets and 4-tuples, event by event.
//
//   portlab-viz [FILE | --scenario NAME] [--at N | --find TEXT] [--screenshot OUT.png] [--size WxH]
//               [--bench-frames N] [--left-tab T] [--right-tab T] [--keep-going]
//               [--challenge [--challenge-answers a,b,...]] [--dump-state OUT.json]
//               [--export-ladder-svg OUT.svg] [--time-proportional] [--time-scale X] [--at-us T]
//
// main is one straight line (Dear ImGui's example_glfw_opengl3 shape): arguments,
// source, window, context, backends, style, fonts, loop, cleanup in reverse.
// Exit status: 0 done, 1 no window could be opened, 2 bad arguments or input.

#include <GLFW/glfw3.h>
#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
#include <link.h>
#endif
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "app.hpp"
#include "screenshot.hpp"
#include "view/dump.hpp"
#include "view/ladder_svg.hpp"
#include "portlab/input_file.hpp"
#include "view/script.hpp"

namespace {

using namespace portlab::viz;

struct Options {
    std::string file;
    std::string scenario;
    std::optional<std::size_t> at;
    std::string find;
    std::string screenshot;
    bool force = false;
    std::string size = "1600x1000";
    std::size_t bench_frames = 0;
    std::string left_tab;
    std::string right_tab;
    bool bench_open = false;
    bool keep_going = false;  // a bad file: show the message in the window instead of exiting 2
    bool list_scenarios = false;
    std::string dump_state;  // write what is drawn at --at as JSON, no window
    std::string export_ladder_svg;  // write the ladder diagram as SVG, no window
    bool challenge = false;
    std::optional<std::string> challenge_answers;  // answer challenge questions in a hidden window, then exit
    bool time_proportional = false;
    std::optional<double> time_scale;
    std::optional<std::uint64_t> at_us;  // start at this virtual time (microseconds)
    std::string script;  // scripted mouse and keys (view/script.hpp), in a hidden window
};

// --dump-state: the JSON written to a temporary file beside `path`, renamed into place
// once every byte is written.
int write_state(const std::string& path, const portlab::OutputRules& rules, const Model& model, const ViewState& view) {
    const std::string text = dump_state(model, view).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (auto written = write_text_output(path, text, rules); !written) {
        std::fprintf(stderr, "portlab-viz: --dump-state: %s\n", written.error().message.c_str());
        return 1;
    }
    return 0;
}

// --export-ladder-svg: the whole ladder (or the rows sent before --at), every packet, columns
// as the Ladder tab's "auto" picks them.
int write_ladder_svg(const std::string& path, const portlab::OutputRules& rules, const Model& model, std::size_t position) {
    PacketLadder ladder;
    ladder.extend(model.timeline());
    const LadderView view = make_ladder_view(ladder, {}, ColumnMode::automatic);
    const std::string svg = ladder_svg(ladder, view, model.timeline(), {.position = position, .relative = true, .title = model.label()});
    if (auto written = write_text_output(path, svg, rules); !written) {
        std::fprintf(stderr, "portlab-viz: --export-ladder-svg: %s\n", written.error().message.c_str());
        return 1;
    }
    return 0;
}

// How long a frame may spend moving events from a background load into the
// timeline, so the window stays responsive while a million events come in. The
// loader has parsed them and taken the checkpoints already, so 20,000 events are
// a few milliseconds of moving them into place.
constexpr double load_budget_ms = 8.0;

void poll_load(App& app) {
    const auto start = std::chrono::steady_clock::now();
    while (app.model.poll(20000) &&
           std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() < load_budget_ms) {
    }
}

struct Size {
    int width = 1600;
    int height = 1000;
};

std::optional<Size> parse_size(const std::string& text) {
    Size size;
    char x = 0;
    char extra = 0;
    if (std::sscanf(text.c_str(), "%d%c%d%c", &size.width, &x, &size.height, &extra) != 3 || (x != 'x' && x != 'X')) return std::nullopt;
    if (size.width < 320 || size.height < 240 || size.width > 8192 || size.height > 8192) return std::nullopt;
    return size;
}

void on_glfw_error(int code, const char* description) { std::fprintf(stderr, "portlab-viz: GLFW error %d: %s\n", code, description); }

void on_drop(GLFWwindow* window, int count, const char** paths) {
    auto* app = static_cast<App*>(glfwGetWindowUserPointer(window));
    for (int i = 0; i < count; ++i) app->ui.dropped.emplace_back(paths[i]);
}

// While a file loads in the background the window redraws at most this often:
// on llvmpipe a frame costs both cores ~40 ms, which the parser needs more.
constexpr double loading_frame_ms = 100.0;

// After a frame that started at `start`, while loading: until the next frame is
// due, move parsed events into the timeline as they come (whole blocks of the
// loader's 50,000 lines, so none is moved twice), else wait for more or for input.
void pace_while_loading(App& app, std::chrono::steady_clock::time_point start) {
    while (app.model.loading()) {
        const double spent = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        if (spent >= loading_frame_ms) return;
        if (!app.model.poll(50000)) glfwWaitEventsTimeout(std::min(loading_frame_ms - spent, 4.0) / 1000.0);
    }
}

// A script key's GLFW key code (ImGui 1.86's GLFW backend indexes io.KeysDown by them).
int glfw_key(const std::string& name) {
    if (name.size() == 1 && name[0] >= 'a' && name[0] <= 'z') return GLFW_KEY_A + (name[0] - 'a');
    if (name.size() == 1 && name[0] >= '0' && name[0] <= '9') return GLFW_KEY_0 + (name[0] - '0');
    const std::pair<const char*, int> named[] = {{"space", GLFW_KEY_SPACE},   {"enter", GLFW_KEY_ENTER}, {"escape", GLFW_KEY_ESCAPE},
                                                 {"tab", GLFW_KEY_TAB},       {"backspace", GLFW_KEY_BACKSPACE},
                                                 {"left", GLFW_KEY_LEFT},     {"right", GLFW_KEY_RIGHT}, {"up", GLFW_KEY_UP},
                                                 {"down", GLFW_KEY_DOWN},     {"home", GLFW_KEY_HOME},   {"end", GLFW_KEY_END},
                                                 {"plus", GLFW_KEY_KP_ADD},   {"minus", GLFW_KEY_MINUS}};
    for (const auto& [n, key] : named)
        if (name == n) return key;
    return GLFW_KEY_UNKNOWN;
}

// This frame's scripted input, over what the backend read from the (hidden) window.
void feed_script(ImGuiIO& io, const ScriptInput& input, int& held_key) {
    if (input.mouse) io.MousePos = ImVec2(input.mouse->x, input.mouse->y);
    io.MouseDown[0] = input.mouse_down;
    if (held_key >= 0) io.KeysDown[held_key] = false;
    held_key = input.key ? glfw_key(*input.key) : -1;
    if (held_key >= 0) io.KeysDown[held_key] = true;
    io.KeyCtrl = input.ctrl;
    io.KeysDown[GLFW_KEY_LEFT_CONTROL] = input.ctrl;
    if (!input.characters.empty()) io.AddInputCharactersUTF8(input.characters.c_str());
}

// One frame: events, UI, draw; then the commands the panels asked for, then playback.
// `script`: scripted input for this frame, instead of the window's.
struct ScriptRun {
    ScriptPlayer player;
    int held_key = -1;  // the key pressed on the frame before, released on this one
};

void run_frame(GLFWwindow* window, App& app, double seconds, ScriptRun* script = nullptr) {
    glfwPollEvents();
    poll_load(app);
    const std::optional<ScriptInput> scripted = script ? std::optional(script->player.next_frame()) : std::nullopt;
    if (scripted) app.ui.dropped.insert(app.ui.dropped.end(), scripted->dropped.begin(), scripted->dropped.end());
    handle_drops(app);
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    if (scripted) feed_script(ImGui::GetIO(), *scripted, script->held_key);
    ImGui::NewFrame();
    handle_keys(app);
    draw_frame(app);
    ImGui::Render();
    int width = 0;
    int height = 0;
    glfwGetFramebufferSize(window, &width, &height);
    glViewport(0, 0, width, height);
    glClearColor(0.07f, 0.08f, 0.10f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    save_pending_png(app, width, height);
    perform_requests(app.model, app.view);
    advance(app.model, app.view, seconds);
    if (!app.model.error().empty() && app.model.error() != app.view.requests_error_shown) {
        std::fprintf(stderr, "portlab-viz: %s\n", app.model.error().c_str());
        app.view.requests_error_shown = app.model.error();
    }
}

// --challenge-answers "a,c,b": the choice each question gets, in order.
std::optional<std::vector<std::size_t>> parse_answers(const std::string& text) {
    std::vector<std::size_t> answers;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto choice = portlab::viz::parse_choice_letter(std::string_view(text).substr(start, comma - start));
        if (!choice) return std::nullopt;
        answers.push_back(*choice);
        start = comma + 1;
    }
    return answers;
}

// --challenge-answers: plays in the (hidden) window and answers each question from the
// list when the Challenge tab shows it, as a student's clicks would; stops at the end of
// the trace, or at the first question the list has no answer for.
int answer_from_script(GLFWwindow* window, App& app, const std::vector<std::size_t>& answers) {
    std::size_t next = 0;
    constexpr int frame_limit = 100000;  // a bound, never reached by a trace the app can hold
    for (int frame = 0; frame < frame_limit; ++frame) {
        if (const auto open = open_question(app.model, app.view)) {
            if (next == answers.size()) break;
            const auto& question = app.view.challenge.session.questions()[*open];
            if (answers[next] >= question.choices.size()) {
                std::fprintf(stderr, "portlab-viz: --challenge-answers: question %zu has %zu choices, '%s' is not one of them\n", next + 1,
                             question.choices.size(), choice_letter(answers[next]).c_str());
                return 2;
            }
            app.view.requests.emplace_back(ChallengeAnswer{answers[next++]});
        } else if (!app.view.playback.playing) {
            if (app.model.position() >= app.model.size()) break;
            app.view.requests.emplace_back(Command::toggle_play);
        }
        run_frame(window, app, 60.0);  // a minute of playing a frame: as fast as the questions allow
        glfwSwapBuffers(window);
    }
    if (next < answers.size())
        std::fprintf(stderr, "portlab-viz: warning: --challenge-answers: %zu answers given, %zu questions asked\n", answers.size(), next);
    return 0;
}

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

}  // namespace

namespace {

#if defined(__SANITIZE_ADDRESS__)
// Built with AddressSanitizer only. glfwTerminate() and Mesa dlclose() the GL stack they
// loaded (libGL, libGLX_mesa, the swrast DRI driver), and memory those libraries keep until
// exit (by design: the process is ending) is then reported by LeakSanitizer from an
// "<unknown module>" that tests/sanitizers/lsan_gl.supp cannot name. Marking every loaded
// library RTLD_NODELETE keeps them mapped, so each report names its library and only the GL
// stack's are suppressed; a leak of portlab's own is still reported.
void keep_libraries_for_leak_reports() {
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void*) {
            if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0')
                (void)dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
            return 0;
        },
        nullptr);
}
#else
void keep_libraries_for_leak_reports() {}
#endif

}  // namespace

int main(int argc, char** argv) {
    const auto started = std::chrono::steady_clock::now();
    // ---- arguments ----------------------------------------------------------
    Options options;
    CLI::App cli{"portlab-viz: watch ports, sockets, packets and 4-tuples, step by step"};
    cli.add_option("file", options.file, "a trace (.jsonl), a capture (.pcap, .pcapng) or a scenario file (.scenario, docs/scenarios.md)");
    cli.add_option("--scenario", options.scenario, "a simulator scenario (see --list-scenarios)");
    cli.add_option("--at", options.at, "start at event N (N events applied)");
    cli.add_option("--find", options.find, "start just after the first event whose caption (or the note shown for it) contains TEXT");
    cli.add_option("--screenshot", options.screenshot, "render once, save a PNG and exit");
    cli.add_flag("--force", options.force, "replace a symbolic link given as an output file: --screenshot, --dump-state, --export-ladder-svg (the link, not its target)");
    cli.add_option("--size", options.size, "window size WxH")->capture_default_str();
    cli.add_option("--bench-frames", options.bench_frames, "render N frames, print frame times (ms) and exit");
    cli.add_flag("--bench-open", options.bench_open,
                 "time opening FILE: first frame with events, whole file loaded, frame times meanwhile; then exit");
    cli.add_option("--left-tab", options.left_tab, "events, sockets, connections, firewall, ladder, packets or nat");
    cli.add_option("--right-tab", options.right_tab, "tcp, pool or challenge");
    cli.add_flag("--keep-going", options.keep_going, "on a bad file, show the error in the window instead of exiting");
    cli.add_flag("--list-scenarios", options.list_scenarios, "print the simulator's scenarios and exit");
    cli.add_option("--dump-state", options.dump_state,
                   "write what is drawn at --at (hosts, slots, connections, pool, rules, packets in flight, timers) "
                   "as JSON to FILE and exit, without a window");
    cli.add_option("--export-ladder-svg", options.export_ladder_svg,
                   "write the ladder diagram (every packet, or those sent before --at) as SVG to FILE and exit, without a window");
    cli.add_flag("--challenge", options.challenge,
                 "challenge mode: stop before chosen events and ask what they will say (Challenge menu)");
    cli.add_option("--challenge-answers", options.challenge_answers,
                   "answer the questions with these choices (a,b,...) in a hidden window, then exit; "
                   "with --dump-state the score is in the dump (implies --challenge)");
    cli.add_flag("--time-proportional", options.time_proportional,
                 "play in proportion to the trace's time (a 60 s TIME-WAIT lasts 60 s at x1), timers counting down on the sockets");
    cli.add_option("--time-scale", options.time_scale,
                   "trace seconds per second of play in time-proportional play, 0.001..1000 (implies --time-proportional)");
    cli.add_option("--script", options.script,
                   "play the mouse clicks and keys of FILE (click X Y, move X Y, key K, type TEXT, wait N) in a hidden "
                   "window, then write --dump-state and --screenshot if given, and exit");
    cli.add_option("--at-us", options.at_us,
                   "start at virtual time T microseconds: every event until then applied, timers counted down to T");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int code = cli.exit(error);
        return code == 0 ? 0 : 2;
    }
    const auto size = parse_size(options.size);
    if (!size) {
        std::fprintf(stderr, "portlab-viz: --size '%s': expected WxH, each 320..8192 by 240..8192 (e.g. 1600x1000)\n",
                     options.size.c_str());
        return 2;
    }
    if (options.time_scale && !(*options.time_scale >= 0.001 && *options.time_scale <= 1000)) {
        std::fprintf(stderr, "portlab-viz: --time-scale %g: expected 0.001..1000 trace seconds per second\n", *options.time_scale);
        return 2;
    }
    if (options.at_us && (options.at || !options.find.empty())) {
        std::fprintf(stderr, "portlab-viz: give one of --at, --at-us and --find\n");
        return 2;
    }
    if (!options.file.empty() && !options.scenario.empty()) {
        std::fprintf(stderr, "portlab-viz: give a file or --scenario, not both\n");
        return 2;
    }
    // Before any work: a screenshot may not replace the file it shows, a device or a link.
    const portlab::OutputRules screenshot_rules{{options.file}, options.force};
    if (!options.dump_state.empty()) {
        if (const auto allowed = portlab::check_output_path(options.dump_state, screenshot_rules); !allowed) {
            std::fprintf(stderr, "portlab-viz: --dump-state: %s\n", allowed.error().message.c_str());
            return 2;
        }
    }
    if (!options.screenshot.empty()) {
        if (const auto allowed = portlab::check_output_path(options.screenshot, screenshot_rules); !allowed) {
            std::fprintf(stderr, "portlab-viz: --screenshot: %s\n", allowed.error().message.c_str());
            return 2;
        }
    }
    if (!options.export_ladder_svg.empty()) {
        if (const auto allowed = portlab::check_output_path(options.export_ladder_svg, screenshot_rules); !allowed) {
            std::fprintf(stderr, "portlab-viz: --export-ladder-svg: %s\n", allowed.error().message.c_str());
            return 2;
        }
    }

    // ---- source (before any window, so bad input fails fast from the command line)
    App app;
    if (options.list_scenarios) {
        const auto scenarios = list_scenarios();
        if (!scenarios) {
            std::fprintf(stderr, "portlab-viz: %s\n", scenarios.error().message.c_str());
            return 2;
        }
        for (const auto& s : *scenarios) std::printf("%-24s %s\n", s.name.c_str(), s.description.c_str());
        return 0;
    }
    std::optional<std::vector<std::size_t>> scripted_answers;
    if (options.challenge_answers) {
        scripted_answers = parse_answers(*options.challenge_answers);
        if (!scripted_answers) {
            std::fprintf(stderr, "portlab-viz: --challenge-answers '%s': expected letters separated by commas (a,c,b)\n",
                         options.challenge_answers->c_str());
            return 2;
        }
        options.challenge = true;
    }
    std::optional<ScriptRun> script;
    if (!options.script.empty()) {
        auto text = portlab::read_input_file(options.script, 1 << 20);
        if (!text) {
            std::fprintf(stderr, "portlab-viz: --script: %s\n", text.error().message.c_str());
            return 2;
        }
        auto steps = parse_script(*text, options.script);
        if (!steps) {
            std::fprintf(stderr, "portlab-viz: --script: %s\n", steps.error().message.c_str());
            return 2;
        }
        script.emplace(ScriptRun{ScriptPlayer(std::move(steps).value())});
    }
    const bool headless = !options.screenshot.empty() || options.bench_frames > 0 || options.bench_open ||
                          !options.dump_state.empty() || !options.export_ladder_svg.empty() || scripted_answers || script;
    if (!options.file.empty()) {
        // A big file loads in the background; the window opens on its first events,
        // the loader holding after them until the first frame is drawn (making the
        // window is CPU work too). Headless runs and --at need the whole file (and
        // its errors) first.
        const bool whole_file_first = (headless && !options.bench_open) || options.at || options.at_us || !options.find.empty();
        app.model.start_open(options.file, !whole_file_first);
        if (whole_file_first) app.model.wait_for_load();
        while (app.model.loading() && !app.model.loaded()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            poll_load(app);
        }
    } else if (!options.scenario.empty()) {
        (void)app.model.open_scenario(options.scenario);
    }
    if (!app.model.warning().empty()) std::fprintf(stderr, "portlab-viz: warning: %s\n", app.model.warning().c_str());
    if (!app.model.error().empty()) {
        std::fprintf(stderr, "portlab-viz: %s\n", app.model.error().c_str());
        if (!options.keep_going) return 2;
        app.view.requests_error_shown = app.model.error();
    }
    sync_with_model(app.model, app.view);
    if (options.time_proportional || options.time_scale) set_proportional(app.view, true);
    if (options.time_scale) app.view.playback.time_scale = *options.time_scale;
    if (options.challenge) set_challenge(app.model, app.view, true);
    if (options.at) {
        if (*options.at > app.model.size()) {
            std::fprintf(stderr, "portlab-viz: --at %zu: the trace has %zu events\n", *options.at, app.model.size());
            return 2;
        }
        seek_to(app.model, app.view, *options.at);
    }
    if (options.at_us) {
        if (!app.model.loaded()) {
            std::fprintf(stderr, "portlab-viz: --at-us: give a trace, a capture or --scenario\n");
            return 2;
        }
        seek_to_time(app.model, app.view, *options.at_us);
    }
    if (!options.find.empty()) {
        std::optional<std::size_t> found;
        for (std::size_t i = 0; i < app.model.size() && !found; ++i)
            // The caption shown (a note may speak for the event) or the event's own.
            if (app.model.timeline().caption(i).find(options.find) != std::string::npos ||
                portlab::caption(app.model.timeline().event(i), &app.model.timeline().services()).find(options.find) !=
                    std::string::npos)
                found = i;
        if (!found) {
            std::fprintf(stderr, "portlab-viz: --find '%s': no event's caption contains it\n", options.find.c_str());
            return 2;
        }
        seek_to(app.model, app.view, *found + 1);
    }
    if (!options.left_tab.empty() && !(app.ui.select_left = parse_left_tab(options.left_tab))) {
        std::fprintf(stderr, "portlab-viz: --left-tab '%s': expected events, sockets, connections, firewall, ladder, packets or nat\n", options.left_tab.c_str());
        return 2;
    }
    if (!options.right_tab.empty() && !(app.ui.select_right = parse_right_tab(options.right_tab))) {
        std::fprintf(stderr, "portlab-viz: --right-tab '%s': expected tcp, pool or challenge\n", options.right_tab.c_str());
        return 2;
    }

    // The files made without a window: the ladder's SVG, then the state dump.
    if (!options.export_ladder_svg.empty()) {
        if (!app.model.loaded()) {
            std::fprintf(stderr, "portlab-viz: --export-ladder-svg: give a trace, a capture or --scenario\n");
            return 2;
        }
        const std::size_t position = options.at || options.at_us || !options.find.empty() ? app.model.position() : app.model.size();
        if (const int status = write_ladder_svg(options.export_ladder_svg, screenshot_rules, app.model, position); status != 0) return status;
        if (options.dump_state.empty() && options.screenshot.empty() && options.bench_frames == 0 && !options.bench_open && !scripted_answers)
            return 0;
    }
    if (!options.dump_state.empty() && !scripted_answers && !script)
        return write_state(options.dump_state, screenshot_rules, app.model, app.view);

    // ---- window ---------------------------------------------------------------
    glfwSetErrorCallback(on_glfw_error);
    if (!glfwInit()) {
        std::fprintf(stderr, "portlab-viz: cannot open a window (no display? headless: run under xvfb-run -a)\n");
        return 1;
    }
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_VISIBLE, headless ? GLFW_FALSE : GLFW_TRUE);
    std::string title = "portlab-viz";
    if (app.model.loaded()) title += " - " + app.model.label();
    GLFWwindow* window = glfwCreateWindow(size->width, size->height, title.c_str(), nullptr, nullptr);
    if (window == nullptr) {
        std::fprintf(stderr, "portlab-viz: cannot create an OpenGL 3.3 window\n");
        glfwTerminate();
        return 1;
    }
    glfwMakeContextCurrent(window);
    glfwSwapInterval(headless ? 0 : 1);  // vsync when a person watches
    glfwSetWindowUserPointer(window, &app);
    glfwSetDropCallback(window, on_drop);

    // ---- context ----------------------------------------------------------------
    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // the layout is fixed; nothing to remember

    // ---- backends -------------------------------------------------------------------
    ImGui_ImplGlfw_InitForOpenGL(window, true);
    ImGui_ImplOpenGL3_Init("#version 330");

    // ---- style ------------------------------------------------------------------------
    ImGui::StyleColorsDark();
    ImGuiStyle& style = ImGui::GetStyle();
    style.WindowRounding = 0;
    style.FrameRounding = 3;
    style.TabRounding = 3;

    // ---- fonts (DejaVu when installed; ImGui's built-in font otherwise) ----------------
    const std::string dejavu = "/usr/share/fonts/truetype/dejavu/";
    std::error_code missing;
    // Latin plus the arrow and the cross Wireshark's Info column and the ladder write (→ ✗);
    // the atlas reads the ranges when it is built, so they live as long as main.
    ImVector<ImWchar> glyphs;
    ImFontGlyphRangesBuilder glyph_builder;
    glyph_builder.AddRanges(io.Fonts->GetGlyphRangesDefault());
    glyph_builder.AddText("→✗");
    glyph_builder.BuildRanges(&glyphs);
    if (std::filesystem::exists(dejavu + "DejaVuSans.ttf", missing)) {
        io.Fonts->AddFontFromFileTTF((dejavu + "DejaVuSans.ttf").c_str(), 15.0f, nullptr, glyphs.Data);
        if (std::filesystem::exists(dejavu + "DejaVuSansMono.ttf", missing))
            io.Fonts->AddFontFromFileTTF((dejavu + "DejaVuSansMono.ttf").c_str(), 14.0f, nullptr, glyphs.Data);
    }

    // ---- loop ---------------------------------------------------------------------------
    int status = 0;
    if (scripted_answers) status = answer_from_script(window, app, *scripted_answers);
    if (script) {
        // The script's frames, then three more so what it started (an export's PNG) finishes.
        const std::size_t frames = script->player.frame_count() + 3;
        for (std::size_t frame = 0; frame < frames && !app.ui.quit; ++frame) {
            run_frame(window, app, 1.0 / 60, &*script);
            glfwSwapBuffers(window);
        }
        app.model.wait_for_load();  // a file the script dropped is dumped whole
        if (!app.ui.export_message.empty()) std::fprintf(stderr, "portlab-viz: %s\n", app.ui.export_message.c_str());
        if (app.ui.export_failed) status = 1;
    }
    if (status != 0) {
        // the script was refused: no picture, no dump
    } else if (!options.screenshot.empty()) {
        // A few frames so tables and windows settle their sizes, then read the last one back,
        // the way File > Export view as PNG... does (save_pending_png, after the render).
        app.ui.pending_png = PendingPng{options.screenshot, 3, screenshot_rules};
        for (int frame = 0; frame < 4 && app.ui.pending_png; ++frame) {
            run_frame(window, app, 0.0);
            glfwSwapBuffers(window);
        }
        if (app.ui.export_failed) {
            std::fprintf(stderr, "portlab-viz: %s\n", app.ui.export_message.c_str());
            status = 1;
        }
    } else if (options.bench_open) {
        // What a person sees after `portlab-viz FILE`: when the first events are
        // drawn, when the whole file is in, and how long frames take meanwhile.
        const auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(); };
        std::optional<double> first_frame;
        std::vector<double> frame_ms;
        while (app.model.loading() || !first_frame) {
            const auto start = std::chrono::steady_clock::now();
            run_frame(window, app, 1.0 / 60);
            glFinish();
            glfwSwapBuffers(window);
            app.model.release_load();
            frame_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
            if (!first_frame && app.model.size() > 0) first_frame = ms();
            pace_while_loading(app, start);
            if (!app.model.loaded() && !app.model.loading()) break;
        }
        // CPU time too: on a shared machine the wall clock also counts other programs' turns.
        timespec cpu{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
        std::printf("events %zu\nfirst frame with events: %.0f ms after start\nwhole file loaded: %.0f ms after start "
                    "(CPU of every thread, llvmpipe's included: %.0f ms)\n",
                    app.model.size(), first_frame.value_or(-1), ms(), static_cast<double>(cpu.tv_sec) * 1e3 + static_cast<double>(cpu.tv_nsec) / 1e6);
        std::printf("frames while loading: %zu, median %.1f ms, p99 %.1f ms, max %.1f ms\n", frame_ms.size(), percentile(frame_ms, 0.5),
                    percentile(frame_ms, 0.99), percentile(frame_ms, 1.0));
    } else if (options.bench_frames > 0) {
        // CPU time per frame: building the UI, and the whole frame including
        // rasterisation (llvmpipe draws on the CPU; glFinish waits for it).
        std::vector<double> ui_ms;
        std::vector<double> frame_ms;
        for (std::size_t frame = 0; frame < options.bench_frames + 3; ++frame) {
            const auto start = std::chrono::steady_clock::now();
            run_frame(window, app, 1.0 / 60);
            const auto built = std::chrono::steady_clock::now();
            glFinish();
            const auto done = std::chrono::steady_clock::now();
            glfwSwapBuffers(window);
            if (frame < 3) continue;  // warm-up: font atlas, first layout
            ui_ms.push_back(std::chrono::duration<double, std::milli>(built - start).count());
            frame_ms.push_back(std::chrono::duration<double, std::milli>(done - start).count());
        }
        std::printf("frames %zu  sockets %zu  connections %zu  (%dx%d)\n", options.bench_frames, app.model.world().socket_count(),
                    app.model.connections().size(), size->width, size->height);
        std::printf("frame ms (UI + GL + glFinish): min %.2f  median %.2f  p99 %.2f\n", percentile(frame_ms, 0), percentile(frame_ms, 0.5),
                    percentile(frame_ms, 0.99));
        std::printf("UI build ms (NewFrame..Render + GL submit): min %.2f  median %.2f  p99 %.2f\n", percentile(ui_ms, 0),
                    percentile(ui_ms, 0.5), percentile(ui_ms, 0.99));
    } else if (!scripted_answers && !script) {
        // A bad line found later in a file named on the command line still exits 2.
        bool command_line_load = app.model.loading();
        auto last = std::chrono::steady_clock::now();
        // Idle when nothing moves: after a few frames at rest (ImGui settles hover and
        // layout in two or three), sleep until input arrives instead of redrawing.
        constexpr int frames_to_settle = 3;
        int settling = frames_to_settle;
        while (!glfwWindowShouldClose(window) && !app.ui.quit) {
            if (moves_by_itself(app.model, app.view)) {
                settling = frames_to_settle;
            } else if (settling > 0) {
                --settling;
            } else {
                glfwWaitEventsTimeout(5.0);  // input wakes it at once; the timeout only bounds the sleep
                settling = frames_to_settle;
                last = std::chrono::steady_clock::now();  // the sleep is no animation time
            }
            const auto now = std::chrono::steady_clock::now();
            const double seconds = std::chrono::duration<double>(now - last).count();
            last = now;
            run_frame(window, app, std::min(seconds, 0.25));
            glfwSwapBuffers(window);
            app.model.release_load();
            pace_while_loading(app, now);
            if (command_line_load && !app.model.error().empty() && !options.keep_going) {
                status = 2;
                break;
            }
            command_line_load = command_line_load && app.model.loading();
        }
    }

    if (status == 0 && (scripted_answers || script) && !options.dump_state.empty())
        status = write_state(options.dump_state, screenshot_rules, app.model, app.view);

    // ---- cleanup, in reverse ------------------------------------------------------------
    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
    glfwDestroyWindow(window);
    keep_libraries_for_leak_reports();
    glfwTerminate();
    return status;
}
