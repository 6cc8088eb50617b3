#pragma once
// For the tests that hold a lab (the kernel) and a simulator scenario (the model) to the same
// story: the lab's --json facts, from a run in its own private namespaces, bounded in time.

#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "support.hpp"

namespace portlab::test {

inline nlohmann::json lab_facts(const std::string& lab, const std::string& arguments, int timeout_seconds) {
    REQUIRE(run_command("unshare -rn true", 10).exit_code == 0);  // user + net namespaces without root
    const auto run = run_command(shell_quote(bin_path(lab)) + " --json " + arguments, timeout_seconds);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    return nlohmann::json::parse(run.out);
}

}  // namespace portlab::test
