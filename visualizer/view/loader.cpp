#include "view/loader.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portlab/input_file.hpp"
#include "replay/state.hpp"

namespace portlab::viz {

namespace {

// A small first block puts the first events on screen quickly; then blocks big
// enough to keep every core busy.
constexpr std::size_t first_block_lines = 2000;
constexpr std::size_t block_lines = 50000;

bool looks_like_capture(std::string_view bytes) {
    if (bytes.size() < 4) return false;
    const std::string_view magic = bytes.substr(0, 4);
    // pcap (both byte orders, micro- and nanosecond) and pcapng's section header block.
    for (const std::string_view m : {std::string_view("\xd4\xc3\xb2\xa1", 4), std::string_view("\xa1\xb2\xc3\xd4", 4),
                                     std::string_view("\x4d\x3c\xb2\xa1", 4), std::string_view("\xa1\xb2\x3c\x4d", 4),
                                     std::string_view("\x0a\x0d\x0d\x0a", 4)})
        if (magic == m) return true;
    return false;
}

}  // namespace

TraceLoader::TraceLoader(std::string path, unsigned threads) : path_(std::move(path)) {
    thread_ = std::thread([this, threads] { run(std::max(1u, threads)); });
}

TraceLoader::~TraceLoader() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

std::optional<trace::TraceHeader> TraceLoader::header() const {
    const std::lock_guard lock(mutex_);
    return header_;
}

TraceLoader::Batch TraceLoader::take(std::size_t limit) {
    const std::lock_guard lock(mutex_);
    Batch taken;
    while (!ready_.empty() && taken.events.size() < limit) {
        Pending& block = ready_.front();
        auto& events = block.batch.events;
        const std::size_t size = events.size();
        const std::size_t count = std::min(limit - taken.events.size(), size - block.offset);
        if (taken.events.empty() && block.offset == 0 && count == size) {
            taken.events = std::move(events);  // a whole block: no event moves one by one
        } else {
            const auto from = events.begin() + static_cast<std::ptrdiff_t>(block.offset);
            taken.events.insert(taken.events.end(), std::make_move_iterator(from),
                                std::make_move_iterator(from + static_cast<std::ptrdiff_t>(count)));
        }
        block.offset += count;
        handed_over_ += count;
        // The checkpoints among the events handed over (a checkpoint's applied()
        // counts events from the start of the file).
        auto& checkpoints = block.batch.checkpoints;
        while (block.next_checkpoint < checkpoints.size() && checkpoints[block.next_checkpoint].applied() <= handed_over_)
            taken.checkpoints.push_back(std::move(checkpoints[block.next_checkpoint++]));
        if (block.offset == size) ready_.pop_front();
    }
    return taken;
}

std::optional<Error> TraceLoader::error() const {
    const std::lock_guard lock(mutex_);
    return error_;
}

bool TraceLoader::done() const {
    const std::lock_guard lock(mutex_);
    return done_;
}

bool TraceLoader::finished() const {
    const std::lock_guard lock(mutex_);
    return done_ && (ready_.empty() || error_);
}

void TraceLoader::wait() const {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return done_; });
}

double TraceLoader::progress() const {
    const std::lock_guard lock(mutex_);
    if (done_) return 1.0;
    return total_bytes_ == 0 ? 0.0 : static_cast<double>(read_bytes_) / static_cast<double>(total_bytes_);
}

std::size_t TraceLoader::estimated_events() const {
    const std::lock_guard lock(mutex_);
    if (done_) return parsed_events_;
    if (parsed_events_ == 0 || read_bytes_ <= first_event_byte_) return parsed_events_;
    const double per_event = static_cast<double>(read_bytes_ - first_event_byte_) / static_cast<double>(parsed_events_);
    return static_cast<std::size_t>(static_cast<double>(total_bytes_ - first_event_byte_) / per_event);
}

void TraceLoader::publish(Batch batch, std::size_t bytes_read) {
    const std::lock_guard lock(mutex_);
    read_bytes_ = bytes_read;
    parsed_events_ += batch.events.size();
    if (!batch.events.empty()) ready_.push_back(Pending{std::move(batch), 0, 0});
    changed_.notify_all();
}

void TraceLoader::finish(std::optional<Error> error) {
    const std::lock_guard lock(mutex_);
    error_ = std::move(error);
    done_ = true;
    changed_.notify_all();
}

namespace {

// The file mapped read-only: its pages are read as the parser reaches them, so
// the first events are on screen before a 200 MB file has been read through.
class MappedFile {
public:
    // open_input_file refuses a FIFO (which would block open(2)), a device and a file
    // larger than a trace may be, with a message that says which.
    explicit MappedFile(const std::string& path) {
        auto file = open_input_file(path, trace::max_trace_file_bytes);
        if (!file) {
            problem_ = file.error().message;
            return;
        }
        size_ = static_cast<std::size_t>(file->size());
        opened_ = true;
        if (size_ > 0) {
            void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file->fd(), 0);
            if (data == MAP_FAILED) opened_ = false;
            else data_ = static_cast<const char*>(data);
        }
    }
    ~MappedFile() {
        if (data_) ::munmap(const_cast<char*>(data_), size_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    [[nodiscard]] bool opened() const noexcept { return opened_; }
    [[nodiscard]] const std::string& problem() const noexcept { return problem_; }
    [[nodiscard]] std::string_view text() const noexcept { return data_ ? std::string_view(data_, size_) : std::string_view{}; }

private:
    const char* data_ = nullptr;
    std::size_t size_ = 0;
    bool opened_ = false;
    std::string problem_;  // why it did not open, when open_input_file said
};

}  // namespace

void TraceLoader::run(unsigned threads) {
    const MappedFile file(path_);
    if (!file.opened()) {
        if (!file.problem().empty()) return finish(fail(file.problem()));
        return finish(fail(path_ + ": cannot open the file (does it exist, is it a regular file, is it readable?)"));
    }
    const std::string_view text = file.text();

    if (looks_like_capture(text)) {
        auto trace = replay::read_any_file(path_);  // libpcap reads the file itself
        if (!trace) return finish(trace.error());
        {
            const std::lock_guard lock(mutex_);
            header_ = trace->header;
            total_bytes_ = text.size();
        }
        replay::Checkpointer checkpointer;
        auto checkpoints = checkpointer.add(trace->events);
        publish(Batch{std::move(trace->events), std::move(checkpoints)}, text.size());
        return finish(std::nullopt);
    }
    if (text.empty()) return finish(fail(path_ + ": line 1: the file is empty (expected a trace header line)"));

    // The header line, then the events a block of lines at a time (each block
    // parsed on every core, and checked against the lines before it).
    replay::TraceTextReader reader;
    // Looked for within the longest line a trace may have: a file whose first "line" is
    // gigabytes long is refused after 1 MiB (parse_header_line says why), not scanned through.
    const auto first_end = text.substr(0, trace::max_trace_line_bytes + 1).find('\n');
    auto header = reader.header(text.substr(0, first_end == std::string_view::npos ? trace::max_trace_line_bytes + 1 : first_end));
    if (!header) return finish(fail(path_ + ": " + header.error().message));
    {
        const std::lock_guard lock(mutex_);
        header_ = *header;
        total_bytes_ = text.size();
    }
    // The timeline's checkpoints are taken here rather than on the window's
    // thread, and on a thread of their own: block k's while block k+1 parses.
    // Block k is published once its checkpoints are in (the first at once, so
    // the window shows it without waiting for the second).
    replay::Checkpointer checkpointer;
    std::thread checkpointing;
    Batch pending;
    std::size_t pending_end = 0;
    const auto publish_pending = [&] {
        if (!checkpointing.joinable()) return;
        checkpointing.join();
        publish(std::move(pending), pending_end);
        pending = Batch{};
    };
    std::size_t offset = first_end == std::string_view::npos ? text.size() : first_end + 1;
    {
        const std::lock_guard lock(mutex_);
        first_event_byte_ = offset;
    }
    while (offset < text.size() && !stop_) {
        std::size_t end = offset;
        const std::size_t lines_wanted = reader.next_line() == 2 ? first_block_lines : block_lines;
        for (std::size_t count = 0; end < text.size() && count < lines_wanted; ++count) {
            const auto next = text.find('\n', end);
            end = next == std::string_view::npos ? text.size() : next + 1;
        }
        const bool first_block = reader.next_line() == 2;
        auto events = reader.block(text.substr(offset, end - offset), threads);
        publish_pending();  // the block before, whose checkpoints were taken meanwhile
        if (!events) return finish(fail(path_ + ": " + events.error().message));
        if (first_block) {
            auto checkpoints = checkpointer.add(*events);
            publish(Batch{std::move(events).value(), std::move(checkpoints)}, end);
        } else {
            pending.events = std::move(events).value();
            pending_end = end;
            checkpointing = std::thread([&] { pending.checkpoints = checkpointer.add(pending.events); });
        }
        offset = end;
    }
    publish_pending();
    finish(std::nullopt);
}

}  // namespace portlab::viz
