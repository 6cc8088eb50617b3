// Inputs a user names are opened through one door (portlab/input_file.hpp): a regular file
// under the caller's limit gets through; a device, a FIFO, a directory or an oversized file
// is refused at once with one line that says which (issue 12, item 1).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

#include "portlab/input_file.hpp"
#include "portlab/pcap.hpp"
#include "portlab/services.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using portlab::open_input_file;
using portlab::read_input_file;

TEST_CASE("a regular file under the limit is read whole", "[input_file]") {
    const portlab::test::TempFile file("small.txt");
    std::ofstream(file.path) << "http 80/tcp\n";
    const auto text = read_input_file(file.path, 1024);
    REQUIRE(text.has_value());
    CHECK(*text == "http 80/tcp\n");
}

TEST_CASE("devices, FIFOs, directories and oversized files are refused with one line", "[input_file]") {
    const portlab::test::TempDir dir;
    SECTION("/dev/zero, which never ends") {
        const auto file = open_input_file("/dev/zero", 1 << 20);
        REQUIRE_FALSE(file.has_value());
        CHECK_THAT(file.error().message, Catch::Contains("/dev/zero") && Catch::Contains("character device"));
    }
    SECTION("a FIFO, whose open(2) would wait for a writer") {
        const auto fifo = dir.file("fifo");
        REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
        const auto file = open_input_file(fifo, 1 << 20);  // returns: a blocking open would hang here
        REQUIRE_FALSE(file.has_value());
        CHECK_THAT(file.error().message, Catch::Contains("FIFO"));
    }
    SECTION("a directory") {
        const auto file = open_input_file(dir.path().string(), 1 << 20);
        REQUIRE_FALSE(file.has_value());
        CHECK_THAT(file.error().message, Catch::Contains("directory"));
    }
    SECTION("a file larger than the caller's limit") {
        std::ofstream(dir.file("big")) << std::string(2048, 'x');
        const auto file = open_input_file(dir.file("big"), 1024);
        REQUIRE_FALSE(file.has_value());
        CHECK_THAT(file.error().message, Catch::Contains("2.0 KiB") && Catch::Contains("1.0 KiB"));
    }
    SECTION("a missing file names the errno's text") {
        const auto file = open_input_file(dir.file("absent"), 1024);
        REQUIRE_FALSE(file.has_value());
        CHECK_THAT(file.error().message, Catch::Contains("No such file"));
    }
}

TEST_CASE("every hub reader of user-named files refuses a device and a FIFO", "[input_file]") {
    const portlab::test::TempDir dir;
    const auto fifo = dir.file("fifo");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    for (const std::string& path : {std::string("/dev/zero"), fifo}) {
        CAPTURE(path);
        CHECK_FALSE(portlab::ServiceTable::load(path).has_value());
        CHECK_FALSE(portlab::trace::read_trace_file(path).has_value());
        CHECK_FALSE(portlab::pcap::Reader::open(path).has_value());
    }
}

namespace {

// Fails fast: a non-zero exit within the 10 s bound, one line on stderr naming the path.
void check_refused_quickly(const std::string& command, const std::string& path) {
    CAPTURE(command);
    const auto run = portlab::test::run_command(command, 10);
    CHECK(run.exit_code != 0);
    CHECK(run.exit_code != 124);  // timeout(1): it hung or read without end
    CHECK(portlab::test::lines_of(run.err).size() == 1);
    CHECK_THAT(run.err, Catch::Contains(path));
}

}  // namespace

TEST_CASE("lab01 --services /dev/zero and /dev/urandom fail fast with one line", "[input_file][lab01]") {
    const auto lab = portlab::test::shell_quote(portlab::test::bin_path("lab01_ports_and_services"));
    check_refused_quickly(lab + " --services /dev/zero 22", "/dev/zero");
    check_refused_quickly(lab + " --services /dev/urandom 22", "/dev/urandom");
}

TEST_CASE("lab10 --read of a FIFO or a device fails fast with one line", "[input_file][lab10]") {
    const portlab::test::TempDir dir;
    const auto fifo = dir.file("fifo");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const auto lab = portlab::test::shell_quote(portlab::test::bin_path("lab10_packet_headers"));
    check_refused_quickly(lab + " --read " + portlab::test::shell_quote(fifo), fifo);
    check_refused_quickly(lab + " --read /dev/zero", "/dev/zero");
}

TEST_CASE("portlab-viz given a FIFO refuses it instead of hanging on open", "[input_file][viz][xvfb]") {
    const portlab::test::TempDir dir;
    const auto fifo = dir.file("fifo");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const auto run = portlab::test::run_command(
        portlab::test::viz_command(portlab::test::shell_quote(fifo) + " --screenshot " + dir.file("x.png")), 60);
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("FIFO"));
}
