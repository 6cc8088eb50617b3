#pragma once
// Writing a file a user named (a trace, a capture, a screenshot) without clobbering anything.
//
//   auto out = OutputFile::create("run.jsonl", {.others = {services_path}, .force = false});
//   ... write to out->temp_path() ...
//   out->commit();   // rename(2) into place: the reader of run.jsonl sees the old or the new file
//
// The rules, checked by create() (and check_output_path(), which a program calls before it
// does any work, so a usage error never touches the file):
// - an existing regular file is replaced; anything else (a directory, a device such as
//   /dev/full, a FIFO, a socket) is refused;
// - a symbolic link is refused unless `force`; with it, the link itself is replaced (rename(2)
//   never writes through a link), never the file it points to;
// - a path that names the same file as one of `others` (a file the run reads, or its other
//   output) is refused: `--read in.pcap --trace in.pcap` must not destroy the capture.
// The data goes to a temporary file beside the target (same folder, so rename(2) is atomic:
// ".NAME.partial-PID-XXXXXX", mkstemp(3)); commit() renames it onto the target. An OutputFile
// dropped without commit() removes its temporary file: a failed run leaves the old file as
// it was. A run killed outright (SIGKILL) leaves the old file untouched too, and the
// temporary file beside it, which holds the run so far; the next create() for the same
// path removes it once no process PID is left to write it.

#include <string>
#include <vector>

#include "portlab/result.hpp"

namespace portlab {

struct OutputRules {
    std::vector<std::string> others;  // files this run also reads or writes ("" entries ignored)
    bool force = false;               // replace a symbolic link at the path (--force)
};

// Whether `path` may be written under `rules`; one line saying why not.
[[nodiscard]] Result<void> check_output_path(const std::string& path, const OutputRules& rules);

// The prefix of the temporary file for `path` (".NAME.partial-"), in its folder: tools that
// watch a run in progress (a --step pause) look for a file that starts with it.
[[nodiscard]] std::string partial_prefix(const std::string& path);

class OutputFile {
public:
    // check_output_path, then a temporary file beside `path` (permissions 0666 less the umask,
    // as open(2) would give a new file).
    [[nodiscard]] static Result<OutputFile> create(const std::string& path, const OutputRules& rules);

    OutputFile(OutputFile&& other) noexcept;
    OutputFile& operator=(OutputFile&& other) noexcept;
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;
    ~OutputFile();  // removes the temporary file unless committed

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] const std::string& temp_path() const noexcept { return temp_path_; }

    // Renames the temporary file onto the path. Call once the writer has closed it and
    // seen every write succeed.
    [[nodiscard]] Result<void> commit();

private:
    OutputFile(std::string path, std::string temp_path) : path_(std::move(path)), temp_path_(std::move(temp_path)) {}
    void discard() noexcept;

    std::string path_;
    std::string temp_path_;  // "" once committed or moved from
};

}  // namespace portlab
