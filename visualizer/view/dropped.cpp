#include "view/dropped.hpp"

#include <array>
#include <filesystem>
#include <fstream>

#include "replay/state.hpp"
#include "view/scenarios.hpp"

namespace portlab::viz {

namespace {

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// "PATH: reason" made "reason", since the status line names the file itself.
std::string without_path(const std::string& message, const std::string& path) {
    const std::string prefix = path + ": ";
    return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

bool capture_magic(std::string_view head) {
    if (head.size() < 4) return false;
    const std::array<std::string_view, 5> magics{"\xa1\xb2\xc3\xd4", "\xd4\xc3\xb2\xa1", "\xa1\xb2\x3c\x4d", "\x4d\x3c\xb2\xa1",
                                                 std::string_view("\x0a\x0d\x0d\x0a", 4)};
    for (const auto magic : magics)
        if (head.substr(0, 4) == magic) return true;
    return false;
}

}  // namespace

std::optional<std::string> why_not_loadable(const std::string& path) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) return path + ": not a file that can be opened (a folder, or missing)";
    if (is_scenario_file(path)) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in) return path + ": cannot open the file (is it readable?)";
    std::string head(64 * 1024, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
    if (head.empty()) return path + ": the file is empty";
    if (capture_magic(head)) return std::nullopt;
    if (auto binary = replay::binary_not_trace(head, path)) return binary;
    std::string_view first_line = std::string_view(head).substr(0, head.find('\n'));
    if (!first_line.empty() && first_line.back() == '\r') first_line.remove_suffix(1);
    replay::TraceTextReader reader;
    if (const auto header = reader.header(first_line); !header) return path + ": line 1: " + header.error().message;
    return std::nullopt;
}

DropChoice choose_dropped(std::span<const std::string> paths) {
    DropChoice choice;
    std::string others;
    for (const auto& path : paths) {
        std::string why;
        if (const auto problem = why_not_loadable(path)) why = without_path(*problem, path);
        else if (!choice.chosen) choice.chosen = path;
        else why = "one file is shown at a time; drop it alone to open it";
        if (choice.chosen && *choice.chosen == path && why.empty()) continue;
        others += (others.empty() ? "" : ", ") + file_name(path) + " (" + why + ")";
    }
    if (choice.chosen) choice.status = "opened " + file_name(*choice.chosen) + (others.empty() ? "" : "; not opened: " + others);
    else choice.status = "none of the dropped files opened: " + others;
    return choice;
}

}  // namespace portlab::viz
