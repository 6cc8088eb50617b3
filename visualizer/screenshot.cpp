#include "screenshot.hpp"

#include <GL/gl.h>
#include <stb_image_write.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace portlab::viz {

namespace {

// stb_image_write's own file writer ignores fwrite's and fclose's answers; this one keeps them.
void write_to_file(void* context, void* data, int size) {
    std::fwrite(data, 1, static_cast<std::size_t>(size), static_cast<std::FILE*>(context));
}

Result<void> write_png(const std::string& path, const OutputRules& rules, int width, int height,
                       const std::vector<unsigned char>& pixels) {
    auto output = OutputFile::create(path, rules);
    if (!output) return fail("screenshot: " + output.error().message);
    std::FILE* file = std::fopen(output->temp_path().c_str(), "wb");
    if (file == nullptr) return fail("screenshot: cannot write '" + path + "': " + std::strerror(errno));
    const int encoded = stbi_write_png_to_func(write_to_file, file, width, height, 3, pixels.data(), width * 3);
    const bool written = encoded != 0 && std::fflush(file) == 0 && std::ferror(file) == 0;
    const int error = errno;
    if (std::fclose(file) != 0 || !written)
        return fail("screenshot: cannot write '" + path + "': " + std::strerror(written ? errno : error));
    auto committed = output->commit();
    if (!committed) return fail("screenshot: " + committed.error().message);
    return {};
}

}  // namespace

Result<void> write_text_output(const std::string& path, const std::string& text, const OutputRules& rules) {
    auto output = OutputFile::create(path, rules);
    if (!output) return fail(output.error().message);
    std::FILE* file = std::fopen(output->temp_path().c_str(), "w");
    if (file == nullptr) return fail("cannot write '" + path + "': " + std::strerror(errno));
    const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size() && std::fflush(file) == 0;
    const int error = errno;
    if (std::fclose(file) != 0 || !written) return fail("cannot write '" + path + "': " + std::strerror(written ? errno : error));
    return output->commit();
}

Result<void> save_back_buffer_png(const std::string& path, int width, int height, const OutputRules& rules) {
    if (width <= 0 || height <= 0) return fail("screenshot: the framebuffer is empty");
    std::vector<unsigned char> pixels(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadBuffer(GL_BACK);
    // RGB: the back buffer's alpha is whatever blending left there, not opacity.
    glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, pixels.data());
    if (glGetError() != GL_NO_ERROR) return fail("screenshot: glReadPixels failed");
    // OpenGL's rows start at the bottom; PNG's at the top.
    stbi_flip_vertically_on_write(1);
    return write_png(path, rules, width, height, pixels);
}

}  // namespace portlab::viz
