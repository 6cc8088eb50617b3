#pragma once
// A value kept on the heap but copied and compared as a value. A std::variant is as big as
// its largest alternative, so a rare, big member (a packet in the simulator's event queue,
// a NAT event's two flows in a trace) goes in a Boxed and stops making every other
// alternative, timers and small events included, as big as itself.

#include <memory>
#include <utility>

namespace portlab {

template <class T>
class Boxed {
public:
    Boxed() = default;  // empty: only a default-constructed (or moved-from) holder
    explicit Boxed(T value) : value_(std::make_unique<T>(std::move(value))) {}
    Boxed(const Boxed& other) : value_(other.value_ ? std::make_unique<T>(*other.value_) : nullptr) {}
    Boxed(Boxed&&) noexcept = default;
    Boxed& operator=(const Boxed& other) {
        if (this != &other) value_ = other.value_ ? std::make_unique<T>(*other.value_) : nullptr;
        return *this;
    }
    Boxed& operator=(Boxed&&) noexcept = default;
    ~Boxed() = default;

    [[nodiscard]] bool has_value() const noexcept { return value_ != nullptr; }
    [[nodiscard]] T& operator*() noexcept { return *value_; }
    [[nodiscard]] const T& operator*() const noexcept { return *value_; }
    [[nodiscard]] const T* operator->() const noexcept { return value_.get(); }

    friend bool operator==(const Boxed& a, const Boxed& b) {
        if (!a.value_ || !b.value_) return !a.value_ && !b.value_;
        return *a.value_ == *b.value_;
    }

private:
    std::unique_ptr<T> value_;
};

}  // namespace portlab
