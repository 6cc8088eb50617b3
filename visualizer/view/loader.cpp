#include "view/loader.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portlab/input_file.hpp"
#include "portlab/pcap.hpp"
#include "replay/state.hpp"

namespace portlab::viz {

namespace {

// A small first block puts the first events on screen quickly; then blocks big
// enough to keep every parsing thread busy (lines for a trace, records for a capture).
constexpr std::size_t first_block_events = 2000;
constexpr std::size_t block_events = 50000;

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

TraceLoader::TraceLoader(std::string path, Options options) : path_(std::move(path)), options_(std::move(options)) {
    thread_ = std::thread([this] { run(std::max(1u, options_.threads)); });
}

TraceLoader::~TraceLoader() {
    {
        const std::lock_guard lock(mutex_);
        stop_ = true;
    }
    changed_.notify_all();  // a loader held after its first block
    if (thread_.joinable()) thread_.join();
}

void TraceLoader::release() {
    {
        const std::lock_guard lock(mutex_);
        released_ = true;
    }
    changed_.notify_all();
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

std::optional<std::string> TraceLoader::warning() const {
    const std::lock_guard lock(mutex_);
    return warning_;
}

std::vector<Conversation> TraceLoader::take_conversations() {
    const std::lock_guard lock(mutex_);
    return std::move(conversations_);
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
    {
        const std::lock_guard lock(mutex_);
        read_bytes_ = bytes_read;
        parsed_events_ += batch.events.size();
        if (!batch.events.empty()) ready_.push_back(Pending{std::move(batch), 0, 0});
        changed_.notify_all();
    }
    ++blocks_;
    if (options_.after_block) options_.after_block(blocks_);
    if (blocks_ == 1 && options_.hold_first_block) {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, options_.hold_limit, [this] { return released_ || stop_; });
    }
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

namespace {

// Whether the file starts with a capture's magic number (what read_any_file checks).
Result<bool> is_capture_file(const std::string& path) {
    auto file = open_input_file(path, pcap::max_capture_file_bytes);
    if (!file) return file.error();
    std::array<char, 4> magic{};
    const ssize_t got = ::pread(file->fd(), magic.data(), magic.size(), 0);
    return got == 4 && looks_like_capture(std::string_view(magic.data(), magic.size()));
}

std::string file_name(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Takes the checkpoints of block k on a thread of its own while the loader reads
// block k+1, and publishes the blocks in order, each once its checkpoints are in.
class CheckpointStage {
public:
    using Publish = std::function<void(TraceLoader::Batch, std::size_t)>;
    explicit CheckpointStage(Publish publish) : publish_(std::move(publish)) {}
    ~CheckpointStage() {
        if (thread_.joinable()) thread_.join();
    }
    CheckpointStage(const CheckpointStage&) = delete;
    CheckpointStage& operator=(const CheckpointStage&) = delete;

    // A block read up to byte `end`; the first is published at once, so the
    // window shows it without waiting for the second.
    void add(std::vector<trace::Event> events, std::size_t end, bool at_once) {
        flush();  // the block before, whose checkpoints were taken meanwhile
        if (at_once) {
            auto checkpoints = checkpointer_.add(events);
            publish_(TraceLoader::Batch{std::move(events), std::move(checkpoints)}, end);
            return;
        }
        pending_.events = std::move(events);
        pending_end_ = end;
        thread_ = std::thread([this] { pending_.checkpoints = checkpointer_.add(pending_.events); });
    }
    // Publishes the block still being checkpointed, if any.
    void flush() {
        if (!thread_.joinable()) return;
        thread_.join();
        publish_(std::move(pending_), pending_end_);
        pending_ = TraceLoader::Batch{};
    }

private:
    Publish publish_;
    replay::Checkpointer checkpointer_;
    TraceLoader::Batch pending_;
    std::size_t pending_end_ = 0;
    std::thread thread_;
};

}  // namespace

void TraceLoader::start(trace::TraceHeader header, std::size_t total_bytes, std::size_t first_event_byte) {
    const std::lock_guard lock(mutex_);
    header_ = std::move(header);
    total_bytes_ = total_bytes;
    first_event_byte_ = first_event_byte;
}

void TraceLoader::run(unsigned threads) {
    auto capture = is_capture_file(path_);
    if (!capture) return finish(capture.error());
    if (*capture) return run_capture();
    const MappedFile file(path_);
    if (!file.opened()) {
        if (!file.problem().empty()) return finish(fail(file.problem()));
        return finish(fail(path_ + ": cannot open the file (does it exist, is it a regular file, is it readable?)"));
    }
    run_trace(file.text(), threads);
}

// Records read and decoded a block at a time on this thread (libpcap reads the
// file), so a capture of a million packets shows its first ones at once.
void TraceLoader::run_capture() {
    auto reader = pcap::Reader::open(path_);
    if (!reader) return finish(reader.error());
    std::error_code ignored;
    const auto size = std::filesystem::file_size(path_, ignored);
    start(replay::capture_header(file_name(path_)), size == static_cast<std::uintmax_t>(-1) ? 0 : size,
          reader->position());
    replay::CaptureConverter converter(reader->link_type());
    CheckpointStage stage([this](Batch batch, std::size_t end) { publish(std::move(batch), end); });
    std::optional<Error> error;
    std::optional<std::string> warning;
    std::size_t records = 0;
    bool at_end = false;
    for (bool first = true; !at_end && !stop_; first = false) {
        const std::size_t wanted = first ? first_block_events : block_events;
        std::vector<trace::Event> events;
        events.reserve(wanted);
        while (events.size() < wanted) {
            auto record = reader->next();
            if (!record && reader->cut_short()) {
                warning = path_ + ": the file ends inside a record (a capture cut short, as a killed tcpdump leaves it); "
                                  "the " + std::to_string(records + events.size()) + " whole packets before it are shown";
            } else if (!record) {
                error = record.error();
            }
            if (!record || !record->has_value()) {
                at_end = true;
                break;
            }
            events.push_back(converter.event(std::move(**record)));
        }
        records += events.size();
        if (!events.empty()) stage.add(std::move(events), reader->position(), first);
    }
    stage.flush();
    {
        const std::lock_guard lock(mutex_);
        warning_ = std::move(warning);
        conversations_ = converter.take_conversations();
    }
    finish(std::move(error));
}

// The header line, then the events a block of lines at a time (each block
// parsed on a thread per core once it has 20,000 lines, and checked against the
// lines before it).
void TraceLoader::run_trace(std::string_view text, unsigned threads) {
    if (text.empty()) return finish(fail(path_ + ": line 1: the file is empty (expected a trace header line)"));
    if (auto binary = replay::binary_not_trace(text, path_)) return finish(fail(std::move(*binary)));
    replay::TraceTextReader reader;
    // Looked for within the longest line a trace may have: a file whose first "line" is
    // gigabytes long is refused after 1 MiB (parse_header_line says why), not scanned through.
    const auto first_end = text.substr(0, trace::max_trace_line_bytes + 1).find('\n');
    auto header = reader.header(text.substr(0, first_end == std::string_view::npos ? trace::max_trace_line_bytes + 1 : first_end));
    if (!header) return finish(fail(path_ + ": " + header.error().message));
    std::size_t offset = first_end == std::string_view::npos ? text.size() : first_end + 1;
    start(*header, text.size(), offset);
    // The timeline's checkpoints are taken here rather than on the window's
    // thread, and on a thread of their own: block k's while block k+1 parses.
    CheckpointStage stage([this](Batch batch, std::size_t end) { publish(std::move(batch), end); });
    while (offset < text.size() && !stop_) {
        std::size_t end = offset;
        const bool first_block = reader.next_line() == 2;
        const std::size_t lines_wanted = first_block ? first_block_events : block_events;
        for (std::size_t count = 0; end < text.size() && count < lines_wanted; ++count) {
            const auto next = text.find('\n', end);
            end = next == std::string_view::npos ? text.size() : next + 1;
        }
        auto [events, error] = reader.block_until_error(text.substr(offset, end - offset), threads);
        if (error) {
            // The lines before the bad one are shown (Model says how many), as tshark shows a cut capture's packets.
            if (!events.empty()) stage.add(std::move(events), end, first_block);
            stage.flush();
            return finish(fail(path_ + ": " + error->message));
        }
        stage.add(std::move(events), end, first_block);
        offset = end;
    }
    stage.flush();
    finish(std::nullopt);
}

}  // namespace portlab::viz
