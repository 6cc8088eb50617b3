#include "screenshot.hpp"

#include <GL/gl.h>
#include <stb_image_write.h>

#include <vector>

namespace portlab::viz {

Result<void> save_back_buffer_png(const std::string& path, int width, int height) {
    if (width <= 0 || height <= 0) return fail("screenshot: the framebuffer is empty");
    std::vector<unsigned char> pixels(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadBuffer(GL_BACK);
    // RGB: the back buffer's alpha is whatever blending left there, not opacity.
    glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, pixels.data());
    if (glGetError() != GL_NO_ERROR) return fail("screenshot: glReadPixels failed");
    // OpenGL's rows start at the bottom; PNG's at the top.
    stbi_flip_vertically_on_write(1);
    if (stbi_write_png(path.c_str(), width, height, 3, pixels.data(), width * 3) == 0)
        return fail("screenshot: cannot write '" + path + "'");
    return {};
}

}  // namespace portlab::viz
