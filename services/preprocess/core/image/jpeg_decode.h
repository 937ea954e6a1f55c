// JPEG decoding with libjpeg(-turbo) directly, with the settings Pillow uses (ISLOW DCT, fancy
// upsampling, RGB / greyscale / CMYK output) and strict error handling: libjpeg's
// corrupt-data warnings (premature end of data, bad Huffman/arithmetic codes, resync, invalid
// scan parameters) are errors, so a truncated or damaged file never yields a partial image.
// Progressive files with more than kMaxJpegScans scans are rejected (decode-time bomb).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_JPEG_DECODE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_JPEG_DECODE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

inline constexpr int kMaxJpegScans = 500;

// `width`, `height`, `components` (1, 3 or 4) come from the already validated frame header.
// Output: kL for 1 component, kRGB for 3; 4-component (CMYK/YCCK) files are read the way
// Pillow does (rawmode "CMYK;I", i.e. inverted) and converted with Pillow's cmyk2rgb to kRGB.
absl::StatusOr<Image> DecodeJpegPixels(absl::string_view data, int width, int height,
                                       int components);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_JPEG_DECODE_H_
