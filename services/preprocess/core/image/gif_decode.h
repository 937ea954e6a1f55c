// First frame of a GIF, decoded the way Pillow's GifImagePlugin presents frame 0: a palette
// ("P") image, or greyscale ("L") when there is no palette or the palette is the identity grey
// ramp; the canvas is the logical screen enlarged to cover the frame; pixels outside the frame
// hold the frame's transparent index if it has one, else index 0. Transparency does not affect
// the colours (Pillow's convert("RGB") of a "P" image ignores it).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_GIF_DECODE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_GIF_DECODE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::preprocess {

struct GifLayout {
  int width = 0;  // canvas (logical screen, enlarged to the first frame)
  int height = 0;
  int frame_x = 0, frame_y = 0, frame_width = 0, frame_height = 0;
  bool interlaced = false;
  bool has_palette = false;            // false: indices are grey levels (mode "L")
  std::array<uint8_t, 768> palette{};  // RGB; entries past the colour table are a grey ramp
  int transparent_index = -1;
  int lzw_min_code_size = 0;
  size_t image_data_offset = 0;  // first data sub-block (after the LZW code size byte)
};

// Walks the header and extension blocks up to the first image descriptor. Cheap: no LZW
// decoding. INVALID_ARGUMENT for malformed or truncated headers.
absl::StatusOr<GifLayout> ReadGifLayout(absl::string_view data);

// Decodes the first frame's indices into a width * height canvas. INVALID_ARGUMENT for corrupt
// LZW data or a file that ends before every pixel was decoded.
absl::StatusOr<std::vector<uint8_t>> DecodeGifIndices(absl::string_view data,
                                                      const GifLayout& layout);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_GIF_DECODE_H_
