// Outputs a user names are written through one door (portlab/output_file.hpp): to a temporary
// file beside the target, renamed into place only when the run succeeds; never over an input,
// a device or (without --force) a symbolic link; checked before any work (issue 12, item 2).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "portlab/output_file.hpp"
#include "portlab/pcap.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using portlab::OutputFile;
using portlab::OutputRules;
using portlab::test::bin_path;
using portlab::test::run_command;
using portlab::test::shell_quote;
using portlab::test::TempDir;

namespace {

const std::string precious = "precious: not to be touched\n";

std::string contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// The names in a folder: a run must leave no ".NAME.partial-XXXXXX" behind.
std::set<std::string> names_in(const TempDir& dir) {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) names.insert(entry.path().filename().string());
    return names;
}

std::string program(const std::string& name) { return shell_quote(bin_path(name)); }

// A refused output: a usage error (exit 2, one line on stderr) that left `path` as it was
// and nothing else in its folder.
void check_refused(const std::string& command, const TempDir& dir, const std::string& path, const std::string& before) {
    CAPTURE(command);
    const auto names = names_in(dir);
    const auto run = run_command(command, 30);
    CHECK(run.exit_code == 2);
    CHECK(portlab::test::lines_of(run.err).size() == 1);
    CHECK(contents(path) == before);
    CHECK(names_in(dir) == names);
}

portlab::trace::TraceHeader test_header() {
    portlab::trace::TraceHeader header;
    header.source = "test";
    header.generator = "test_output_file";
    return header;
}

}  // namespace

TEST_CASE("an output file appears only when committed, and dropped it leaves the old file and no litter", "[output_file]") {
    const TempDir dir;
    const auto path = dir.file("out.txt");
    write_text(path, precious);
    {
        auto out = OutputFile::create(path, {});
        REQUIRE(out.has_value());
        write_text(out->temp_path(), "half a run");
        CHECK(contents(path) == precious);
    }
    CHECK(contents(path) == precious);
    CHECK(names_in(dir) == std::set<std::string>{"out.txt"});
    auto out = OutputFile::create(path, {});
    REQUIRE(out.has_value());
    write_text(out->temp_path(), "the whole run");
    REQUIRE(out->commit().has_value());
    CHECK(contents(path) == "the whole run");
    CHECK(names_in(dir) == std::set<std::string>{"out.txt"});
}

TEST_CASE("outputs refused: a device, a directory, a FIFO, an input, a symbolic link without --force", "[output_file]") {
    const TempDir dir;
    const auto input = dir.file("in.pcap");
    write_text(input, precious);
    CHECK_THAT(portlab::check_output_path("/dev/full", {}).error().message, Catch::Contains("character device"));
    CHECK_THAT(portlab::check_output_path(dir.path().string(), {}).error().message, Catch::Contains("directory"));
    REQUIRE(mkfifo(dir.file("fifo").c_str(), 0600) == 0);
    CHECK_THAT(portlab::check_output_path(dir.file("fifo"), {}).error().message, Catch::Contains("FIFO"));
    CHECK_THAT(portlab::check_output_path(input, {{input}}).error().message, Catch::Contains("same file"));
    // The same file by another name: a hard link, and a path with "./" in it.
    REQUIRE(link(input.c_str(), dir.file("also.pcap").c_str()) == 0);
    CHECK_FALSE(portlab::check_output_path(dir.file("also.pcap"), {{input}}).has_value());
    CHECK_FALSE(portlab::check_output_path(dir.file("./new"), {{dir.file("new")}}).has_value());
    REQUIRE(symlink(input.c_str(), dir.file("link").c_str()) == 0);
    CHECK_THAT(portlab::check_output_path(dir.file("link"), {}).error().message, Catch::Contains("--force"));
    CHECK(portlab::check_output_path(dir.file("new"), {{input}}).has_value());
}

TEST_CASE("with --force a symbolic link is replaced itself, never the file it points to", "[output_file]") {
    const TempDir dir;
    write_text(dir.file("target"), precious);
    REQUIRE(symlink(dir.file("target").c_str(), dir.file("link").c_str()) == 0);
    auto out = OutputFile::create(dir.file("link"), {.others = {}, .force = true});
    REQUIRE(out.has_value());
    write_text(out->temp_path(), "new");
    REQUIRE(out->commit().has_value());
    struct stat info {};
    REQUIRE(lstat(dir.file("link").c_str(), &info) == 0);
    CHECK(S_ISREG(info.st_mode));
    CHECK(contents(dir.file("link")) == "new");
    CHECK(contents(dir.file("target")) == precious);
}

TEST_CASE("trace and pcap writers dropped without close() leave the old file untouched", "[output_file]") {
    const TempDir dir;
    const auto path = dir.file("keep");
    write_text(path, precious);
    {
        auto writer = portlab::trace::TraceWriter::to_file(path, test_header());
        REQUIRE(writer.has_value());
        REQUIRE(writer->flush().has_value());
    }
    {
        auto writer = portlab::pcap::Writer::create(path, portlab::LinkType::raw);
        REQUIRE(writer.has_value());
        REQUIRE(writer->flush().has_value());
    }
    CHECK(contents(path) == precious);
    CHECK(names_in(dir) == std::set<std::string>{"keep"});
}

TEST_CASE("a lab's usage error leaves --trace's file untouched (lab01 70000, lab08 8.8.8.8)", "[output_file][lab01][lab08]") {
    const TempDir dir;
    const auto keep = dir.file("keep");
    write_text(keep, precious);
    check_refused(program("lab01_ports_and_services") + " 70000 --trace " + shell_quote(keep), dir, keep, precious);
    check_refused(program("lab08_port_scanner") + " 8.8.8.8 --trace " + shell_quote(keep), dir, keep, precious);
}

TEST_CASE("an output equal to an input is refused before anything is read or written", "[output_file][lab01][lab10]") {
    const TempDir dir;
    const auto services = dir.file("services");
    write_text(services, "http 80/tcp www\n");
    check_refused(program("lab01_ports_and_services") + " --services " + shell_quote(services) + " --trace " +
                      shell_quote(services) + " 80",
                  dir, services, "http 80/tcp www\n");
    const auto capture = dir.file("in.pcap");
    write_text(capture, precious);
    check_refused(program("lab10_packet_headers") + " --read " + shell_quote(capture) + " --trace " + shell_quote(capture),
                  dir, capture, precious);
}

TEST_CASE("a lab's --trace refuses a symbolic link unless --force, which replaces the link only", "[output_file][lab01]") {
    const TempDir dir;
    const auto target = dir.file("target");
    write_text(target, precious);
    const auto link_path = dir.file("link");
    REQUIRE(symlink(target.c_str(), link_path.c_str()) == 0);
    const auto lab = program("lab01_ports_and_services");
    check_refused(lab + " 22 --trace " + shell_quote(link_path), dir, target, precious);
    const auto forced = run_command(lab + " 22 --force --trace " + shell_quote(link_path), 30);
    CHECK(forced.exit_code == 0);
    CHECK(contents(target) == precious);
    CHECK(portlab::trace::read_trace_file(link_path).has_value());  // a regular file now
    CHECK(names_in(dir) == std::set<std::string>{"link", "target"});
}

TEST_CASE("a lab that succeeds puts its trace in place and leaves nothing else", "[output_file][lab01]") {
    const TempDir dir;
    const auto trace_path = dir.file("run.jsonl");
    write_text(trace_path, precious);
    const auto run = run_command(program("lab01_ports_and_services") + " 22 --trace " + shell_quote(trace_path), 30);
    CHECK(run.exit_code == 0);
    const auto trace = portlab::trace::read_trace_file(trace_path);
    REQUIRE(trace.has_value());
    CHECK(trace->header.source == "lab");
    CHECK(names_in(dir) == std::set<std::string>{"run.jsonl"});
}

TEST_CASE("portlab-sim refuses --trace and --pcap naming one file, and a link, before it runs", "[output_file][sim]") {
    const TempDir dir;
    const auto keep = dir.file("keep");
    write_text(keep, precious);
    const auto sim = program("portlab-sim") + " --scenario web";
    check_refused(sim + " --trace " + shell_quote(keep) + " --pcap " + shell_quote(keep), dir, keep, precious);
    REQUIRE(symlink(keep.c_str(), dir.file("link").c_str()) == 0);
    check_refused(sim + " --pcap " + shell_quote(dir.file("link")), dir, keep, precious);
}

TEST_CASE("portlab-viz refuses an output file (--screenshot, --dump-state, --export-ladder-svg) over its input or a device, before any window",
          "[output_file][viz]") {
    const auto option = GENERATE(as<std::string>{}, "--screenshot", "--dump-state", "--export-ladder-svg");
    CAPTURE(option);
    const TempDir dir;
    const auto input = dir.file("in.jsonl");
    write_text(input, precious);
    check_refused(program("portlab-viz") + " " + shell_quote(input) + " " + option + " " + shell_quote(input), dir, input, precious);
    const auto run = run_command(program("portlab-viz") + " " + shell_quote(input) + " " + option + " /dev/full", 30);
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("/dev/full"));
    CHECK_THAT(run.err, Catch::Contains(option));
}

// Issue 12, item 8: SIGKILL cannot be caught, so a killed writer leaves its temporary file; the
// next run for the same name removes it once the kernel says its writer is gone (kill(PID, 0)
// answers ESRCH), and leaves a running writer's file alone.
TEST_CASE("a temporary file whose writer is gone is removed by the next run for that name", "[output][safety]") {
    const TempDir dir;
    const std::string path = dir.file("run.jsonl");
    const pid_t gone = fork();
    REQUIRE(gone >= 0);
    if (gone == 0) _exit(0);
    REQUIRE(waitpid(gone, nullptr, 0) == gone);
    REQUIRE(kill(gone, 0) == -1);  // the kernel no longer knows it
    const std::string abandoned = ".run.jsonl.partial-" + std::to_string(gone) + "-aaaaaa";
    const std::string running = ".run.jsonl.partial-" + std::to_string(getpid()) + "-bbbbbb";
    const std::string other = ".other.partial-" + std::to_string(gone) + "-cccccc";
    for (const auto& name : {abandoned, running, other}) std::ofstream(dir.file(name)) << "x\n";
    {
        auto output = OutputFile::create(path, {});
        REQUIRE(output.has_value());
        const auto names = names_in(dir);
        CHECK(names.count(abandoned) == 0);
        CHECK(names.count(running) == 1);
        CHECK(names.count(other) == 1);  // another file's: not ours to judge
    }
}
