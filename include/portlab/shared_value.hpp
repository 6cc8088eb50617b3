#pragma once
// An immutable value shared by every copy of its handle: one pointer wide, copying
// it counts a reference instead of copying the value. Traces use it for what events
// carry and rarely change: a packet's bytes (the `sent` and `delivered` events of one
// packet hold the same bytes), host names, drop reasons (issue 13: a smaller event).
// The count is atomic because a viewer's loader builds events on one thread and the
// window copies them on another; the value itself is never written after it is made.

#include <atomic>
#include <cstdint>
#include <utility>

namespace portlab {

template <class Value>
class SharedValue {
public:
    SharedValue() noexcept = default;  // holds nothing
    explicit SharedValue(Value value) : rep_(new Rep{std::move(value)}) {}
    SharedValue(const SharedValue& other) noexcept : rep_(other.rep_) {
        if (rep_ != nullptr) rep_->count.fetch_add(1, std::memory_order_relaxed);
    }
    SharedValue(SharedValue&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
    SharedValue& operator=(SharedValue other) noexcept {
        std::swap(rep_, other.rep_);
        return *this;
    }
    ~SharedValue() { release(); }

    [[nodiscard]] bool holds() const noexcept { return rep_ != nullptr; }
    // The value; only when holds().
    [[nodiscard]] const Value& get() const noexcept { return rep_->value; }
    void reset() noexcept {
        release();
        rep_ = nullptr;
    }

private:
    struct Rep {
        Value value;
        std::atomic<std::uint32_t> count{1};
    };
    void release() noexcept {
        // acq_rel: the last owner must see every other owner's reads done before it frees.
        if (rep_ != nullptr && rep_->count.fetch_sub(1, std::memory_order_acq_rel) == 1) delete rep_;
    }
    Rep* rep_ = nullptr;
};

}  // namespace portlab
