#include "portlab/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace portlab {
namespace {

Error errno_error(const std::string& path, const char* what, int error) {
    return fail(path + ": " + what + ": " + std::strerror(error), std::error_code(error, std::generic_category()));
}

}  // namespace

std::string describe_file_type(unsigned mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

std::string describe_size(std::uint64_t bytes) {
    if (bytes < 1024) return std::to_string(bytes) + " B";
    const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes) / 1024.0;
    std::size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < std::size(units)) {
        value /= 1024.0;
        ++unit;
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
    return text;
}

InputFile::InputFile(InputFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(other.size_), path_(std::move(other.path_)) {}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        size_ = other.size_;
        path_ = std::move(other.path_);
    }
    return *this;
}

InputFile::~InputFile() {
    if (fd_ >= 0) ::close(fd_);
}

Result<std::string> InputFile::read_all() {
    if (fd_ < 0) return fail(path_ + ": the file was already handed on");
    std::string bytes(static_cast<std::size_t>(size_), '\0');
    std::size_t have = 0;
    // read(2) may return less than asked; a file that shrank meanwhile ends early.
    while (have < bytes.size()) {
        const auto count = ::read(fd_, bytes.data() + have, bytes.size() - have);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) return errno_error(path_, "read error", errno);
        if (count == 0) break;
        have += static_cast<std::size_t>(count);
    }
    bytes.resize(have);
    return bytes;
}

std::FILE* InputFile::release_as_stream() {
    std::FILE* stream = fd_ >= 0 ? ::fdopen(fd_, "rb") : nullptr;
    if (stream != nullptr) fd_ = -1;
    return stream;
}

Result<InputFile> open_input_file(const std::string& path, std::uint64_t max_bytes) {
    if (path.empty()) return fail("an empty file name");
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (fifo(7)).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return errno_error(path, "cannot open", errno);
    InputFile file(fd, 0, path);
    struct stat info {};
    if (::fstat(fd, &info) != 0) return errno_error(path, "cannot stat", errno);
    if (!S_ISREG(info.st_mode))
        return fail(path + ": not a regular file (" + describe_file_type(info.st_mode) + "); give a file");
    const auto size = static_cast<std::uint64_t>(info.st_size);
    if (size > max_bytes)
        return fail(path + ": " + describe_size(size) + " is more than the " + describe_size(max_bytes) +
                    " this reader accepts");
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    file.size_ = size;
    return file;
}

Result<std::string> read_input_file(const std::string& path, std::uint64_t max_bytes) {
    auto file = open_input_file(path, max_bytes);
    if (!file) return file.error();
    return file->read_all();
}

}  // namespace portlab
