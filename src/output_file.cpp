#include "portlab/output_file.hpp"

#include "portlab/input_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

namespace portlab {
namespace {

std::string errno_text(int error) { return std::strerror(error); }

// The same file: one inode when both exist, else one path once normalised.
bool same_file(const std::string& a, const std::string& b) {
    struct stat first {}, second {};
    if (::stat(a.c_str(), &first) == 0 && ::stat(b.c_str(), &second) == 0)
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
    std::error_code ignored;
    const auto left = std::filesystem::weakly_canonical(std::filesystem::absolute(a, ignored), ignored);
    const auto right = std::filesystem::weakly_canonical(std::filesystem::absolute(b, ignored), ignored);
    return !left.empty() && left == right;
}

// The process's umask, read without changing it (umask(2) can only set it; proc(5)'s
// "Umask:" line, Linux 4.7+). 022 when it cannot be read.
mode_t current_umask() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
    }
    return 022;
}

std::filesystem::path folder_of(const std::string& path) {
    const auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

Result<void> check_output_path(const std::string& path, const OutputRules& rules) {
    if (path.empty()) return fail("an empty file name");
    for (const auto& other : rules.others) {
        if (!other.empty() && same_file(path, other))
            return fail(path + ": the same file as " + other + ", which this run also uses; choose another name");
    }
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
        if (errno == ENOENT) return {};  // a new file; its folder is checked when it is created
        return fail(path + ": " + errno_text(errno));
    }
    if (S_ISLNK(info.st_mode)) {
        if (rules.force) return {};
        return fail(path + ": a symbolic link; refusing to replace it (add --force to replace the link itself)");
    }
    if (!S_ISREG(info.st_mode)) return fail(path + ": " + describe_file_type(info.st_mode) + "; refusing to write there, give a file");
    return {};
}

std::string partial_prefix(const std::string& path) {
    return (folder_of(path) / ("." + std::filesystem::path(path).filename().string() + ".partial-")).string();
}

namespace {

// Temporary files of earlier runs for `path` whose writer is gone: a run killed with SIGKILL
// (which nothing can catch) leaves its ".NAME.partial-PID-XXXXXX"; the next run for the same
// NAME removes it. A writer still running (kill(PID, 0) finds it, or it belongs to another
// user: EPERM) keeps its file.
void remove_abandoned_partials(const std::string& path) {
    const auto prefix = std::filesystem::path(partial_prefix(path)).filename().string();
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(folder_of(path), ignored)) {
        const auto name = entry.path().filename().string();
        if (!name.starts_with(prefix)) continue;
        const auto rest = std::string_view(name).substr(prefix.size());
        const auto dash = rest.find('-');
        if (dash == std::string_view::npos || dash == 0) continue;
        pid_t pid = 0;
        const auto [end, error] = std::from_chars(rest.data(), rest.data() + dash, pid);
        if (error != std::errc() || end != rest.data() + dash || pid <= 0) continue;
        if (::kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove(entry.path(), ignored);
    }
}

}  // namespace

Result<OutputFile> OutputFile::create(const std::string& path, const OutputRules& rules) {
    if (auto allowed = check_output_path(path, rules); !allowed) return allowed.error();
    remove_abandoned_partials(path);
    std::string temp = partial_prefix(path) + std::to_string(::getpid()) + "-XXXXXX";
    const int fd = ::mkstemp(temp.data());
    if (fd < 0) return fail(path + ": cannot create a file in " + folder_of(path).string() + ": " + errno_text(errno));
    ::fchmod(fd, 0666 & ~current_umask());
    ::close(fd);
    return OutputFile(path, std::move(temp));
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)), temp_path_(std::exchange(other.temp_path_, {})) {}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
    if (this != &other) {
        discard();
        path_ = std::move(other.path_);
        temp_path_ = std::exchange(other.temp_path_, {});
    }
    return *this;
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::discard() noexcept {
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
}

Result<void> OutputFile::commit() {
    if (temp_path_.empty()) return fail(path_ + ": already written");
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
        const int error = errno;
        discard();
        return fail(path_ + ": cannot put the file in place: " + errno_text(error));
    }
    temp_path_.clear();
    return {};
}

}  // namespace portlab
