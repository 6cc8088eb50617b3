#pragma once
// Several files dropped on the window at once (GLFW's drop callback hands over every
// path): the first that can be opened is, and the status line says which one and why
// each other one was not. Judged by each file's first bytes, as the loader judges them,
// so a dropped 2 GB capture is not read to be chosen.

#include <optional>
#include <span>
#include <string>

namespace portlab::viz {

// Why `path` cannot be opened, judged by its first bytes: "PATH: cannot open the file",
// "PATH: neither a trace nor a capture: it begins with bytes ...", a bad header line;
// none when it is a scenario file, a capture (pcap, pcapng) or a trace whose header reads.
[[nodiscard]] std::optional<std::string> why_not_loadable(const std::string& path);

struct DropChoice {
    std::optional<std::string> chosen;  // the path to open
    // "opened b.jsonl; not opened: a.txt (neither a trace nor a capture: ...), c.pcap (one
    // file is shown at a time; drop it alone to open it)"; when none can be opened, why each not.
    std::string status;
};
[[nodiscard]] DropChoice choose_dropped(std::span<const std::string> paths);

}  // namespace portlab::viz
