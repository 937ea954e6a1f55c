// Plain decoded image: interleaved 8-bit pixels, row-major, height x width x channels.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_H_

#include <cstdint>
#include <vector>

namespace smolserve::preprocess {

// Colour layout of an Image's channels.
enum class PixelMode {
  kL,     // 1 channel, greyscale
  kP,     // 3 channels, RGB expanded from a palette; resampled with NEAREST like PIL "P"
  kRGB,   // 3 channels
  kRGBA,  // 4 channels, straight (not premultiplied) alpha
};

struct Image {
  int height = 0;
  int width = 0;
  PixelMode mode = PixelMode::kRGB;
  std::vector<uint8_t> pixels;  // height * width * channels()

  int channels() const {
    switch (mode) {
      case PixelMode::kL: return 1;
      case PixelMode::kRGBA: return 4;
      default: return 3;
    }
  }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * channels(); }
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * channels(); }
};

inline Image MakeImage(int height, int width, PixelMode mode) {
  Image img;
  img.height = height;
  img.width = width;
  img.mode = mode;
  img.pixels.assign(static_cast<size_t>(height) * width * img.channels(), 0);
  return img;
}

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_H_
