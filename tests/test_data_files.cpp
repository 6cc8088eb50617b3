// portlab::find_data_file: share/portlab beside the program's bin/. This test runs from
// build/bin, whose build/share/portlab mirrors an install (cmake/PortlabInstall.cmake).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "portlab/data_files.hpp"

namespace fs = std::filesystem;

namespace {
// The source tree's docs/, found from the fixtures folder (tests/fixtures).
fs::path source_docs() { return fs::path(PORTLAB_FIXTURES).parent_path().parent_path() / "docs"; }
}  // namespace

TEST_CASE("a lab's page is found under share/portlab beside this program's bin/", "[data_files]") {
    const auto page = portlab::find_data_file("docs/labs/01_ports_and_services.md");
    REQUIRE(page);
    const auto bin = fs::read_symlink("/proc/self/exe").parent_path();
    CHECK(*page == (bin.parent_path() / "share/portlab/docs/labs/01_ports_and_services.md").lexically_normal());
    // The build tree's docs/ is the source tree's: the very same file, not a copy.
    CHECK(fs::equivalent(*page, source_docs() / "labs/01_ports_and_services.md"));
}

TEST_CASE("a file that is not there, or a folder, is nullopt", "[data_files]") {
    CHECK_FALSE(portlab::find_data_file("docs/labs/99_no_such_lab.md"));
    CHECK_FALSE(portlab::find_data_file("docs/labs"));
    CHECK_FALSE(portlab::find_data_file(""));
}
