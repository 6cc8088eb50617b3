#pragma once
// Saves what the current OpenGL context's back buffer holds as a PNG
// (glReadPixels, then stb_image_write), for --screenshot. The file is written through an
// OutputFile (portlab/output_file.hpp): put in place only when every byte was written.

#include <string>

#include "portlab/output_file.hpp"
#include "portlab/result.hpp"

namespace portlab::viz {

[[nodiscard]] Result<void> save_back_buffer_png(const std::string& path, int width, int height,
                                                const OutputRules& rules = {});

}  // namespace portlab::viz
