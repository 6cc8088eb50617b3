#pragma once
// What the visualizer shows: one opened source (a trace file, a capture, a
// simulator scenario) as a replay::Timeline, the cursor (the State after the
// first `position()` events), and what the panels derive from it (connections,
// the canvas layout, a capture's conversations), computed once per position.
// No window here: the panels read a Model and the app sends it commands.

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portlab/result.hpp"
#include "replay/state.hpp"
#include "view/layout.hpp"
#include "view/loader.hpp"
#include "view/ss_table.hpp"

namespace portlab::viz {

class Model {
public:
    // Opening replaces what is shown only on success; on failure the message (with
    // the file and line) is kept in error() and the previous source stays open.
    // A scenario file (view/scenarios.hpp's is_scenario_file) is run, and its trace shown.
    Result<void> open_file(const std::string& path);
    // Starts opening a file in the background (view/loader.hpp); poll() brings its
    // events in. The file replaces what is shown once its first events have parsed;
    // an error before that leaves the previous source shown (the message in error()),
    // an error later keeps the events read so far (the message in warning()).
    // `hold_first_block`: the loader waits after its first block until
    // release_load() (a window being made gets the CPU meanwhile). A scenario file
    // is run at once instead (a story is small), as open_file does.
    void start_open(const std::string& path, bool hold_first_block = false);
    void release_load() {
        if (loader_) loader_->release();
    }
    // Moves up to `budget` loaded events into the timeline; true when anything changed.
    bool poll(std::size_t budget);
    // Polls until the background open is over (headless runs draw the whole file).
    void wait_for_load();
    [[nodiscard]] bool loading() const noexcept { return loader_ != nullptr; }
    [[nodiscard]] double load_progress() const { return loader_ ? loader_->progress() : 1.0; }
    Result<void> open_scenario(const std::string& name);
    void open_trace(trace::Trace trace, std::string label);
    void set_error(std::string message) { error_ = std::move(message); }
    void clear_error() { error_.clear(); }
    // What the file shown lacks though it opened (a capture cut short: its whole
    // packets are shown; a trace with a bad line: the events before it are shown, and
    // the line and its reason are here); empty when nothing is amiss.
    [[nodiscard]] const std::string& warning() const noexcept { return warning_; }
    void clear_warning() { warning_.clear(); }

    [[nodiscard]] bool loaded() const noexcept { return timeline_ != nullptr; }
    [[nodiscard]] const replay::Timeline& timeline() const { return *timeline_; }
    [[nodiscard]] std::size_t size() const noexcept { return timeline_ ? timeline_->size() : 0; }
    [[nodiscard]] std::size_t position() const noexcept { return world_.applied(); }
    // The event just applied (position() - 1), the one the caption and animation show.
    [[nodiscard]] std::optional<std::size_t> current_event() const noexcept;
    void seek(std::size_t n);

    [[nodiscard]] const replay::State& world() const noexcept { return world_; }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    [[nodiscard]] const std::string& label() const noexcept { return label_; }
    // The file shown, as it was named when opened; empty for a scenario or a trace given in memory.
    [[nodiscard]] const std::string& source_path() const noexcept { return source_path_; }
    [[nodiscard]] bool is_capture() const noexcept { return timeline_ && timeline_->header().source == "pcap"; }
    // Bumped by every successful open, so views can drop what they cached.
    [[nodiscard]] std::size_t generation() const noexcept { return generation_; }

    [[nodiscard]] const std::vector<replay::Connection>& connections() const;
    // world().ports_in_use(host, protocol), kept until the cursor moves (the
    // canvas and the pool panel ask every frame; 10,000 sockets take a sort).
    [[nodiscard]] const std::vector<Port>& ports_in_use(replay::HostIndex host, Protocol protocol) const;
    // A host's ephemeral pool: its ports held now, per protocol (TCP and UDP each
    // have their own, as Linux's port tables do).
    struct PoolUse {
        std::size_t size = 0;  // ports in the range; 0 when no range was reported
        std::size_t tcp = 0;
        std::size_t udp = 0;
        [[nodiscard]] std::size_t in_use() const noexcept { return tcp + udp; }
        // Every port of the range held by one protocol: its next connect() or sendto() finds none.
        [[nodiscard]] bool full() const noexcept { return size > 0 && (tcp >= size || udp >= size); }
    };
    [[nodiscard]] PoolUse pool_use(replay::HostIndex host) const;
    // ss_rows(world(), host), kept until the cursor moves: 20,000 rows of text.
    [[nodiscard]] const std::vector<SsRow>& ss_table(replay::HostIndex host) const;
    // timeline().state_path(host, socket, position()), kept until the cursor moves
    // (a listener opened at event 0 would otherwise be a scan of every event each frame).
    [[nodiscard]] const std::vector<std::size_t>& state_path(replay::SocketRef socket) const;
    [[nodiscard]] const Layout& layout() const;
    [[nodiscard]] const std::vector<Conversation>& conversations() const noexcept { return conversations_; }

private:
    void adopt(trace::TraceHeader header, std::string label);
    void drop_stale_caches() const;  // the per-position caches below, when the cursor moved

    // Shows a file read (or a scenario file run) whole, or keeps its error.
    Result<void> open_read(Result<trace::Trace> trace, const std::string& path);
    std::unique_ptr<TraceLoader> loader_;
    bool loader_adopted_ = false;
    std::unique_ptr<replay::Timeline> timeline_;
    replay::State world_;
    std::string error_;
    std::string warning_;
    std::string label_;
    std::string source_path_;
    std::size_t generation_ = 0;
    std::vector<Conversation> conversations_;

    mutable std::optional<std::size_t> connections_at_;
    mutable std::vector<replay::Connection> connections_;
    mutable std::optional<std::size_t> layout_at_;
    mutable std::optional<std::size_t> ports_at_;
    mutable std::map<std::pair<replay::HostIndex, Protocol>, std::vector<Port>> ports_;
    mutable std::map<replay::HostIndex, std::vector<SsRow>> ss_tables_;   // at ports_at_
    mutable std::map<replay::SocketRef, std::vector<std::size_t>> state_paths_;  // at ports_at_
    mutable Layout layout_;
    mutable std::optional<SlotPlan> slot_plan_;  // for the whole trace, made on first use once it has loaded
};

}  // namespace portlab::viz
