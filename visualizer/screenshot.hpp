#pragma once
// Saves what the current OpenGL context's back buffer holds as a PNG
// (glReadPixels, then stb_image_write), for --screenshot.

#include <string>

#include "portlab/result.hpp"

namespace portlab::viz {

[[nodiscard]] Result<void> save_back_buffer_png(const std::string& path, int width, int height);

}  // namespace portlab::viz
