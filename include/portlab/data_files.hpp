#pragma once
// Where portlab's shared files are: the docs (docs/labs/NN_name.md, ...) and the example
// traces (examples/SCENARIO.jsonl). One rule for every program, installed or not:
//
//   PREFIX/bin/PROGRAM  ->  PREFIX/share/portlab/   (cmake --install, the Debian package)
//   build/bin/PROGRAM   ->  build/share/portlab/    (the build tree mirrors the install:
//                                                   docs is a link to the source tree's docs/,
//                                                   examples are generated there at build time)
//
// as the FHS puts architecture-independent data in /usr/share/PACKAGE, found from where the
// program is (/proc/self/exe, proc(5)), so a prefix chosen at install time needs no rebuild.

#include <filesystem>
#include <optional>
#include <string_view>

namespace portlab {

// PREFIX/share/portlab/RELATIVE for the running program ("docs/labs/01_ports_and_services.md"),
// normalised; nullopt when that file does not exist.
[[nodiscard]] std::optional<std::filesystem::path> find_data_file(std::string_view relative);

}  // namespace portlab
