// Every program checks that what it printed reached its standard output: with stdout on
// /dev/full (ENOSPC) or closed (EBADF) it exits non-zero with one line on stderr instead of
// 0 (issue 12, item 3).
#include <catch2/catch.hpp>

#include "support.hpp"

using portlab::test::bin_path;
using portlab::test::run_command;
using portlab::test::shell_quote;

namespace {

const std::vector<std::string> lab_programs{"lab01_ports_and_services", "lab02_tcp_listen_connect", "lab03_ephemeral_ports",
                                    "lab04_four_tuple",         "lab05_udp_datagrams",      "lab06_bind_errors",
                                    "lab07_who_is_listening",   "lab08_port_scanner",       "lab09_firewall",
                                    "lab10_packet_headers",     "lab11_tcp_states",         "lab12_tcp_vs_udp",
                                    "lab13_myths"};

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
