#pragma once
// A minnow-style script for the simulator's tests: every action is written down as a
// step, and a failed expectation prints the steps taken so far, then
// "should have had X = a, but instead it was b".

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "portlab/sim/simulator.hpp"

namespace portlab::sim::test {

inline std::string text_of(const std::string& value) { return value; }
inline std::string text_of(std::string_view value) { return std::string(value); }
inline std::string text_of(const char* value) { return value; }
inline std::string text_of(bool value) { return value ? "true" : "false"; }
inline std::string text_of(TcpState value) { return std::string(to_string(value)); }
inline std::string text_of(Errno value) { return std::string(errno_name(value)); }
inline std::string text_of(scan::PortState value) { return std::string(scan::to_string(value)); }
inline std::string text_of(const Endpoint& value) { return value.to_string(); }
inline std::string text_of(const FourTuple& value) { return value.to_string(); }
template <class T>
std::string text_of(const std::optional<T>& value) { return value ? text_of(*value) : std::string("(nothing)"); }
template <class T>
    requires std::is_arithmetic_v<T>
std::string text_of(T value) { return std::to_string(value); }

// What a call returned: "ok" or the errno's name.
template <class T>
std::string outcome(const SysResult<T>& result) { return result ? std::string("ok") : text_of(result.error()); }

class Script {
public:
    explicit Script(std::uint64_t seed = 1) : sim(seed) {}
    explicit Script(SimOptions options) : sim(options) {}

    // Writes a step down; returns the simulator so a call can follow.
    Simulator& step(std::string description) {
        steps_.push_back(std::move(description));
        return sim;
    }

    template <class A, class B>
    void expect(const std::string& what, const A& actual, const B& expected) {
        const std::string got = text_of(actual);
        const std::string want = text_of(expected);
        if (got == want) {
            SUCCEED(what + " = " + want);
            return;
        }
        FAIL_CHECK(story() + "should have had " + what + " = " + want + ", but instead it was " + got);
    }

    [[nodiscard]] std::string story() const {
        std::ostringstream out;
        out << "Steps so far:\n";
        for (std::size_t i = 0; i < steps_.size(); ++i) out << "  " << i + 1 << ". " << steps_[i] << "\n";
        return out.str();
    }

    Simulator sim;

private:
    std::vector<std::string> steps_;
};

}  // namespace portlab::sim::test
