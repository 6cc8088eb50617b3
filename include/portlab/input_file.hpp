#pragma once
// Opening a file a user named (a services file, a trace, a capture) for reading, safely.
//
// A path on a command line can name anything: /dev/zero never ends, /dev/urandom never
// ends either, a FIFO blocks open(2) until a writer comes, a directory opens but cannot be
// read. So every reader of a user-named file opens it here first: open(2) with O_NONBLOCK
// (a FIFO opens at once instead of waiting for a writer), fstat(2) on the descriptor it got
// (no race between the check and the read), and only a regular file no larger than the
// caller's limit is let through. O_NONBLOCK is cleared again: it means nothing for a
// regular file's reads (open(2)), but a reader should not depend on that.

#include <cstdint>
#include <cstdio>
#include <string>

#include "portlab/result.hpp"

namespace portlab {

// A regular file open for reading; closes its descriptor when it goes.
class InputFile {
public:
    InputFile(InputFile&& other) noexcept;
    InputFile& operator=(InputFile&& other) noexcept;
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;
    ~InputFile();

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // The whole file as bytes (at most the limit it was opened with).
    [[nodiscard]] Result<std::string> read_all();
    // A stdio stream that now owns the descriptor (for libpcap's pcap_fopen_offline);
    // this InputFile gives it up. nullptr when fdopen(3) fails.
    [[nodiscard]] std::FILE* release_as_stream();

private:
    friend Result<InputFile> open_input_file(const std::string& path, std::uint64_t max_bytes);
    InputFile(int fd, std::uint64_t size, std::string path) noexcept : fd_(fd), size_(size), path_(std::move(path)) {}

    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::string path_;
};

// Opens `path` for reading when it is a regular file (symbolic links followed) of at most
// max_bytes. Otherwise one line that names the path and the reason:
//   "/dev/zero: not a regular file (a character device); give a file"
//   "big.jsonl: 20.0 GiB is more than the 1.0 GiB this reader accepts"
[[nodiscard]] Result<InputFile> open_input_file(const std::string& path, std::uint64_t max_bytes);

// open_input_file, then the whole file as bytes.
[[nodiscard]] Result<std::string> read_input_file(const std::string& path, std::uint64_t max_bytes);

// "a directory", "a character device", "a FIFO": a stat(2) st_mode's file type (inode(7)).
[[nodiscard]] std::string describe_file_type(unsigned mode);

// "512 B", "3.0 KiB", "1.0 GiB": a size for a message.
[[nodiscard]] std::string describe_size(std::uint64_t bytes);

}  // namespace portlab
