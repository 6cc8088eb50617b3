#pragma once
// Opens a big file without making the window wait: a thread reads the file and
// parses its lines in blocks (on every core), checks the rules that span lines,
// and hands the events over in order; the app appends what is ready each frame,
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
    // Up to `limit` of the events parsed so far, in file order, handed over once each.
    [[nodiscard]] std::vector<trace::Event> take(std::size_t limit);
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

private:
    void run(unsigned threads);
    void publish(std::vector<trace::Event> events, std::size_t bytes_read);
    void finish(std::optional<Error> error);

    std::string path_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::optional<trace::TraceHeader> header_;
    std::deque<trace::Event> ready_;
    std::optional<Error> error_;
    bool done_ = false;
    std::size_t total_bytes_ = 0;
    std::size_t read_bytes_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;  // last: started when everything above exists
};

}  // namespace portlab::viz
