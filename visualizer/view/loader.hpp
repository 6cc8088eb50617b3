#pragma once
// Opens a big file without making the window wait: a thread reads the file and
// parses its lines in blocks (on every core), checks the rules that span lines,
// applies them to a world to take the timeline's checkpoints, and hands events
// and checkpoints over in order; the app appends what is ready each frame,
// so the first events are on screen while the rest still load. Captures are
// converted in one piece (they are small next to a million-event trace).

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "portlab/result.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"

namespace portlab::viz {

class TraceLoader {
public:
    explicit TraceLoader(std::string path, unsigned threads = std::thread::hardware_concurrency());
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
    // The first bad line ("PATH: line N: reason") or unreadable file; events before it are still handed over.
    [[nodiscard]] std::optional<Error> error() const;
    // Every event has been parsed (or an error stopped the reading).
    [[nodiscard]] bool done() const;
    // Every event has been parsed and taken, or an error stopped the reading.
    [[nodiscard]] bool finished() const;
    // Blocks until done().
    void wait() const;
    // Share of the file's bytes parsed, 0..1.
    [[nodiscard]] double progress() const;
    // How many events the whole file holds, judged from the lines parsed so far
    // (0 before any): enough to reserve the timeline's memory once.
    [[nodiscard]] std::size_t estimated_events() const;

private:
    void run(unsigned threads);
    void publish(Batch batch, std::size_t bytes_read);
    void finish(std::optional<Error> error);

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
    bool done_ = false;
    std::size_t total_bytes_ = 0;
    std::size_t read_bytes_ = 0;
    std::size_t handed_over_ = 0;  // events taken so far
    std::size_t parsed_events_ = 0;
    std::size_t first_event_byte_ = 0;  // where the line after the header starts
    std::atomic<bool> stop_{false};
    std::thread thread_;  // last: started when everything above exists
};

}  // namespace portlab::viz
