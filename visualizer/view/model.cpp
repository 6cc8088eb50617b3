#include "view/model.hpp"

#include <algorithm>

#include "view/scenarios.hpp"

namespace portlab::viz {

namespace {

std::string file_name(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<void> Model::open_file(const std::string& path) {
    return open_read(is_scenario_file(path) ? run_scenario_file(path) : replay::read_any_file(path), path);
}

Result<void> Model::open_scenario(const std::string& name) {
    auto trace = run_scenario(name);
    if (!trace) {
        error_ = trace.error().message;
        return trace.error();
    }
    open_trace(std::move(trace).value(), "scenario " + name);
    return {};
}

Result<void> Model::open_read(Result<trace::Trace> trace, const std::string& path) {
    if (!trace) {
        error_ = trace.error().message;
        return trace.error();
    }
    open_trace(std::move(trace).value(), file_name(path));
    source_path_ = path;
    return {};
}

void Model::start_open(const std::string& path, bool hold_first_block) {
    // A scenario file is a story to run, not events to read: it runs here, at once
    // (a scenario is small), and opens as the trace its run made.
    if (is_scenario_file(path)) {
        (void)open_read(run_scenario_file(path), path);
        return;
    }
    loader_.reset();  // a load in progress is abandoned
    TraceLoader::Options options;
    options.hold_first_block = hold_first_block;
    loader_ = std::make_unique<TraceLoader>(path, options);
    loader_adopted_ = false;
}

void Model::adopt(trace::TraceHeader header, std::string label) {
    timeline_ = std::make_unique<replay::Timeline>(std::move(header));
    world_ = replay::State{};
    label_ = std::move(label);
    source_path_.clear();
    error_.clear();
    warning_.clear();
    ++generation_;
    connections_at_.reset();
    layout_at_.reset();
    ports_at_.reset();
    slot_plan_.reset();
    conversations_.clear();
}

bool Model::poll(std::size_t budget) {
    if (!loader_) return false;
    const bool done = loader_->done();
    if (!loader_adopted_) {
        auto header = loader_->header();
        auto batch = loader_->take(budget);
        if (done && batch.events.empty() && loader_->error()) {  // nothing readable: keep what was shown
            error_ = loader_->error()->message;
            loader_.reset();
            return true;
        }
        if (!header || (batch.events.empty() && !done)) return false;
        adopt(std::move(*header), file_name(loader_->path()));
        source_path_ = loader_->path();
        loader_adopted_ = true;
        // A tenth more than the first lines suggest: one allocation for the whole
        // file unless its later lines are much shorter.
        const std::size_t estimate = loader_->estimated_events();
        timeline_->reserve(std::max(batch.events.size(), estimate + estimate / 10));
        timeline_->append(std::move(batch.events), std::move(batch.checkpoints));
    } else {
        auto batch = loader_->take(budget);
        if (batch.events.empty() && !done) return false;
        timeline_->append(std::move(batch.events), std::move(batch.checkpoints));
    }
    if (loader_->finished()) {
        warning_ = loader_->warning().value_or("");
        // A bad line after good ones: what came before it is shown, as tshark shows the packets
        // before a cut (the file opened; it is a warning, not a failure to open).
        if (const auto error = loader_->error())
            warning_ = error->message + " (the " + std::to_string(timeline_->size()) + (timeline_->size() == 1 ? " event" : " events") +
                       " before it are shown)" + (warning_.empty() ? "" : "; " + warning_);
        if (is_capture()) conversations_ = loader_->take_conversations();
        loader_.reset();
    }
    return true;
}

void Model::wait_for_load() {
    while (loader_) {
        loader_->wait();
        (void)poll(static_cast<std::size_t>(-1));
    }
}

void Model::open_trace(trace::Trace trace, std::string label) {
    loader_.reset();
    timeline_ = std::make_unique<replay::Timeline>(replay::Timeline::of(std::move(trace)));
    world_ = replay::State{};
    label_ = std::move(label);
    source_path_.clear();
    error_.clear();
    warning_.clear();
    ++generation_;
    connections_at_.reset();
    layout_at_.reset();
    ports_at_.reset();
    slot_plan_.reset();
    conversations_ = is_capture() ? replay::find_conversations(*timeline_) : std::vector<Conversation>{};
}

std::optional<std::size_t> Model::current_event() const noexcept {
    if (position() == 0) return std::nullopt;
    return position() - 1;
}

void Model::seek(std::size_t n) {
    if (!timeline_) return;
    timeline_->seek(world_, n);
}

const std::vector<replay::Connection>& Model::connections() const {
    if (connections_at_ != position() || !connections_at_) {
        connections_ = world_.connections();
        connections_at_ = position();
    }
    return connections_;
}

void Model::drop_stale_caches() const {
    if (ports_at_ == position() && ports_at_) return;
    ports_.clear();
    ss_tables_.clear();
    state_paths_.clear();
    ports_at_ = position();
}

const std::vector<Port>& Model::ports_in_use(replay::HostIndex host, Protocol protocol) const {
    drop_stale_caches();
    const auto [found, fresh] = ports_.try_emplace({host, protocol});
    if (fresh) found->second = world_.ports_in_use(host, protocol);
    return found->second;
}

Model::PoolUse Model::pool_use(replay::HostIndex host) const {
    PoolUse use;
    if (host >= world_.hosts().size() || !world_.hosts()[host].pool.range) return use;
    const PortRange range = *world_.hosts()[host].pool.range;
    use.size = range.size();
    const auto in_range = [&](Protocol protocol) {
        const auto& ports = ports_in_use(host, protocol);
        return static_cast<std::size_t>(std::count_if(ports.begin(), ports.end(), [&](Port p) { return range.contains(p); }));
    };
    use.tcp = in_range(Protocol::tcp);
    use.udp = in_range(Protocol::udp);
    return use;
}

const std::vector<SsRow>& Model::ss_table(replay::HostIndex host) const {
    drop_stale_caches();
    const auto [found, fresh] = ss_tables_.try_emplace(host);
    if (fresh) found->second = ss_rows(world_, host);
    return found->second;
}

const std::vector<std::size_t>& Model::state_path(replay::SocketRef socket) const {
    drop_stale_caches();
    const auto [found, fresh] = state_paths_.try_emplace(socket);
    if (fresh && timeline_ && socket.host < world_.hosts().size())
        found->second = timeline_->state_path(world_.hosts()[socket.host].name, socket.socket, position());
    return found->second;
}

const Layout& Model::layout() const {
    if (layout_at_ != position() || !layout_at_) {
        // The plan is made once the whole trace is in (a capture's slots are its conversations').
        if (!slot_plan_ && !loading() && !is_capture()) slot_plan_ = make_slot_plan(*timeline_);
        layout_ = compute_layout(world_, conversations_, position(), {}, slot_plan_ ? &*slot_plan_ : nullptr);
        layout_at_ = position();
    }
    return layout_;
}

}  // namespace portlab::viz
