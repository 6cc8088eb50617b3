#pragma once
// Errors are values at module edges: a Result<T> holds either a T or an Error.
// C++20 has no std::expected (GCC 12 ships it only for C++23), so this is the
// small subset of its interface portlab needs, with the same member names.

#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace portlab {

// What went wrong, in one line a user can read. `code` is set when the cause is
// an errno from the kernel (EADDRINUSE, ECONNREFUSED, ...), so a lab can name it.
struct Error {
    std::string message;
    std::error_code code{};
};

[[nodiscard]] inline Error fail(std::string message, std::error_code code = {}) {
    return Error{std::move(message), code};
}

// Thrown only by value() on an error; main() catches it once.
class BadResultAccess : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

    [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    [[nodiscard]] T& value() & { check(); return std::get<0>(state_); }
    [[nodiscard]] const T& value() const& { check(); return std::get<0>(state_); }
    [[nodiscard]] T&& value() && { check(); return std::get<0>(std::move(state_)); }

    [[nodiscard]] T value_or(T fallback) const& { return has_value() ? std::get<0>(state_) : std::move(fallback); }

    // Precondition: !has_value().
    [[nodiscard]] const Error& error() const& { return std::get<1>(state_); }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    void check() const {
        if (!has_value()) throw BadResultAccess(std::get<1>(state_).message);
    }
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    [[nodiscard]] bool has_value() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return has_value(); }
    void value() const {
        if (failed_) throw BadResultAccess(error_.message);
    }
    [[nodiscard]] const Error& error() const& { return error_; }

private:
    Error error_{};
    bool failed_ = false;
};

}  // namespace portlab
