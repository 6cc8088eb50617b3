#include "portlab/data_files.hpp"

#include <system_error>

namespace portlab {

std::optional<std::filesystem::path> find_data_file(std::string_view relative) {
    std::error_code error;
    const auto program = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) return std::nullopt;
    const auto path = (program.parent_path().parent_path() / "share" / "portlab" / relative).lexically_normal();
    if (!std::filesystem::is_regular_file(path, error)) return std::nullopt;
    return path;
}

}  // namespace portlab
