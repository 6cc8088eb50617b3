#pragma once
// Saves what the current OpenGL context's back buffer holds as a PNG
// (glReadPixels, then stb_image_write), for --screenshot and File > Export view as PNG,
// and a text document (--dump-state, the ladder's SVG). The file is written through an
// OutputFile (portlab/output_file.hpp): put in place only when every byte was written.

#include <string>

#include "portlab/output_file.hpp"
#include "portlab/result.hpp"

namespace portlab::viz {

// `text` written to `path` the same way (a temporary file beside it, renamed into place once
// every byte is written; the rules refuse a symbolic link, a device, the input itself).
[[nodiscard]] Result<void> write_text_output(const std::string& path, const std::string& text, const OutputRules& rules = {});

[[nodiscard]] Result<void> save_back_buffer_png(const std::string& path, int width, int height,
                                                const OutputRules& rules = {});

}  // namespace portlab::viz
