// Every program checks that what it printed reached its standard output: with stdout on
// /dev/full (ENOSPC) or closed (EBADF) it exits non-zero with one line on stderr instead of
// 0 (issue 12, item 3).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "support.hpp"

using portlab::test::bin_path;
using portlab::test::run_command;
using portlab::test::shell_quote;

namespace {

// Every lab the build made (build/bin/labNN_*), so a new lab is checked without a list to keep.
std::vector<std::string> lab_programs_built() {
    std::vector<std::string> labs;
    for (const auto& entry : std::filesystem::directory_iterator(PORTLAB_BIN_DIR)) {
        const auto name = entry.path().filename().string();
        if (name.size() > 6 && name.rfind("lab", 0) == 0 && std::isdigit(static_cast<unsigned char>(name[3])) &&
            std::isdigit(static_cast<unsigned char>(name[4])) && name[5] == '_')
            labs.push_back(name);
    }
    std::sort(labs.begin(), labs.end());
    return labs;
}
const std::vector<std::string> lab_programs = lab_programs_built();

void check_write_failure_reported(const std::string& command, const std::string& redirect) {
    CAPTURE(command, redirect);
    const auto run = run_command(command + " " + redirect, 60);
    CHECK(run.exit_code != 0);
    CHECK(run.exit_code != 124);  // not a timeout
    const auto lines = portlab::test::lines_of(run.err);
    CHECK(lines.size() == 1);
    CHECK_THAT(run.err, Catch::Contains("standard output"));
}

}  // namespace

TEST_CASE("every lab's --help on a full or closed stdout exits non-zero with one line", "[stdout][labs]") {
    REQUIRE(lab_programs.size() >= 15);  // labs 01-15 at least
    for (const auto& lab : lab_programs) {
        check_write_failure_reported(shell_quote(bin_path(lab)) + " --help", ">/dev/full");
        check_write_failure_reported(shell_quote(bin_path(lab)) + " --help", ">&-");
    }
}

TEST_CASE("lab01's narration and --json on /dev/full exit non-zero with one line", "[stdout][lab01]") {
    const auto lab = shell_quote(bin_path("lab01_ports_and_services"));
    check_write_failure_reported(lab + " 22", ">/dev/full");
    check_write_failure_reported(lab + " --json 22", ">/dev/full");
    check_write_failure_reported(lab + " 22", ">&-");
}

TEST_CASE("lab01 with a failed stdout leaves --trace's old file in place", "[stdout][lab01]") {
    const portlab::test::TempFile keep("keep");
    std::ofstream(keep.path) << "precious\n";
    check_write_failure_reported(shell_quote(bin_path("lab01_ports_and_services")) + " 22 --trace " + shell_quote(keep.path),
                                 ">/dev/full");
    std::ifstream in(keep.path);
    std::string line;
    std::getline(in, line);
    CHECK(line == "precious");
}

TEST_CASE("portlab-sim's listing on a full or closed stdout exits non-zero with one line", "[stdout][sim]") {
    const auto sim = shell_quote(bin_path("portlab-sim"));
    check_write_failure_reported(sim + " --scenario web", ">/dev/full");
    check_write_failure_reported(sim + " --scenario web --json", ">/dev/full");
    check_write_failure_reported(sim + " --list", ">&-");
}
