#pragma once
// Opens a big file without making the window wait: a thread reads the file in
// blocks, turns each block into events (a trace's lines parsed on a thread per core when
// the block is big enough, a capture's records decoded), checks the rules that
// span lines, applies the events to a world on a second thread to take the
// timeline's checkpoints (block k's while block k+1 is read), and hands events
// and checkpoints over in order; the app appends what is ready each frame, so the
// first events are on screen while the rest still load.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "portlab/conversation.hpp"
#include "portlab/result.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"

namespace portlab::viz {

// How a TraceLoader reads (outside the class so it can be a default argument).
struct LoaderOptions {
    unsigned threads = std::thread::hardware_concurrency();
    // Wait after the first block until TraceLoader::release() (at most hold_limit):
    // a window that is still being made (a GL context, fonts) gets the CPU, so the
    // first frame with events comes as soon as for a small file.
    bool hold_first_block = false;
    std::chrono::milliseconds hold_limit{2000};
    // Called on the loader's thread after each block is handed over, with the
    // number of blocks so far: a test holds the loader there to see a block
    // arrive before the file is read through.
    std::function<void(std::size_t blocks)> after_block;
};

class TraceLoader {
public:
    using Options = LoaderOptions;
    explicit TraceLoader(std::string path, Options options = {});
    ~TraceLoader();  // stops the thread (at the next block) and waits for it
    TraceLoader(const TraceLoader&) = delete;
    TraceLoader& operator=(const TraceLoader&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    // Set once the header line (or the capture) has been read.
    [[nodiscard]] std::optional<trace::TraceHeader> header() const;
    // Events parsed so far, in file order, handed over once each, with the
    // timeline checkpoints the loader took among them (replay::Checkpointer with
    // default options): append both with replay::Timeline::append(events, checkpoints).
    struct Batch {
        std::vector<trace::Event> events;
        std::vector<replay::State> checkpoints;
    };
    // Up to `limit` events (whole parsed blocks when they fit).
    [[nodiscard]] Batch take(std::size_t limit);
    // The first bad line ("PATH: line N: reason"), corrupt record or unreadable file;
    // events before it are still handed over.
    [[nodiscard]] std::optional<Error> error() const;
    // Set when a capture ends inside a record (cut short, as a killed tcpdump leaves
    // it): every whole packet before it is handed over, and this says how many.
    [[nodiscard]] std::optional<std::string> warning() const;
    // A capture's conversations (replay::CaptureConverter), counted on the loader's
    // thread; complete once finished(). Empty for a trace.
    [[nodiscard]] std::vector<Conversation> take_conversations();
    // Every event has been parsed (or an error stopped the reading).
    [[nodiscard]] bool done() const;
    // Every event has been parsed and taken, or an error stopped the reading.
    [[nodiscard]] bool finished() const;
    // Blocks until done().
    void wait() const;
    // Lets a loader held after its first block carry on.
    void release();
    // Share of the file's bytes parsed, 0..1.
    [[nodiscard]] double progress() const;
    // How many events the whole file holds, judged from the lines parsed so far
    // (0 before any): enough to reserve the timeline's memory once.
    [[nodiscard]] std::size_t estimated_events() const;

private:
    void run(unsigned threads);
    void run_trace(std::string_view text, unsigned threads);
    void run_capture();
    void publish(Batch batch, std::size_t bytes_read);
    void finish(std::optional<Error> error);
    void start(trace::TraceHeader header, std::size_t total_bytes, std::size_t first_event_byte);

    std::string path_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::optional<trace::TraceHeader> header_;
    struct Pending {
        Batch batch;
        std::size_t offset = 0;           // events before it were handed over
        std::size_t next_checkpoint = 0;  // checkpoints before it were handed over
    };
    std::deque<Pending> ready_;  // blocks as parsed; take() may hand the first over in parts
    std::optional<Error> error_;
    std::optional<std::string> warning_;
    std::vector<Conversation> conversations_;
    bool done_ = false;
    std::size_t total_bytes_ = 0;
    std::size_t read_bytes_ = 0;
    std::size_t handed_over_ = 0;  // events taken so far
    std::size_t parsed_events_ = 0;
    std::size_t first_event_byte_ = 0;  // where the line after the header starts
    Options options_;
    std::size_t blocks_ = 0;  // handed over so far (the loader's thread only)
    bool released_ = false;
    std::atomic<bool> stop_{false};
    std::thread thread_;  // last: started when everything above exists
};

}  // namespace portlab::viz
