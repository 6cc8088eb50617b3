#include "view/model.hpp"

#include "view/scenarios.hpp"

namespace portlab::viz {

namespace {

std::string file_name(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<void> Model::open_file(const std::string& path) {
    auto trace = world::read_any_file(path);
    if (!trace) {
        error_ = trace.error().message;
        return trace.error();
    }
    open_trace(std::move(trace).value(), file_name(path));
    return {};
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

void Model::start_open(const std::string& path) {
    loader_.reset();  // a load in progress is abandoned
    loader_ = std::make_unique<TraceLoader>(path);
    loader_adopted_ = false;
}

void Model::adopt(trace::TraceHeader header, std::string label) {
    timeline_ = std::make_unique<world::Timeline>(std::move(header));
    world_ = world::World{};
    label_ = std::move(label);
    error_.clear();
    ++generation_;
    connections_at_.reset();
    layout_at_.reset();
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
        loader_adopted_ = true;
        timeline_->append(std::move(batch.events), std::move(batch.checkpoints));
    } else {
        auto batch = loader_->take(budget);
        if (batch.events.empty() && !done) return false;
        timeline_->append(std::move(batch.events), std::move(batch.checkpoints));
    }
    if (loader_->finished()) {
        if (const auto error = loader_->error()) error_ = "stopped reading at the first bad line: " + error->message;
        if (is_capture()) conversations_ = world::find_conversations(*timeline_);
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
    timeline_ = std::make_unique<world::Timeline>(world::Timeline::of(std::move(trace)));
    world_ = world::World{};
    label_ = std::move(label);
    error_.clear();
    ++generation_;
    connections_at_.reset();
    layout_at_.reset();
    conversations_ = is_capture() ? world::find_conversations(*timeline_) : std::vector<world::Conversation>{};
}

std::optional<std::size_t> Model::current_event() const noexcept {
    if (position() == 0) return std::nullopt;
    return position() - 1;
}

void Model::seek(std::size_t n) {
    if (!timeline_) return;
    timeline_->seek(world_, n);
}

const std::vector<world::Connection>& Model::connections() const {
    if (connections_at_ != position() || !connections_at_) {
        connections_ = world_.connections();
        connections_at_ = position();
    }
    return connections_;
}

const Layout& Model::layout() const {
    if (layout_at_ != position() || !layout_at_) {
        layout_ = compute_layout(world_, conversations_, position());
        layout_at_ = position();
    }
    return layout_;
}

}  // namespace portlab::viz
