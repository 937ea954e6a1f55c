// Bit-exact port of Pillow's Image.resize for 8-bit images (Pillow 11.1 semantics).
//
// What is reproduced (see Pillow src/libImaging/Resample.c, Geometry.c, Convert.c and
// PIL/Image.py `Image.resize`):
//  - Separable convolution (BOX, BILINEAR, HAMMING, BICUBIC, LANCZOS): coefficients computed in
//    double precision over the full-image box, normalised, converted to 22-bit fixed point
//    (round half away from zero); the accumulator starts at 1 << 21 and each output is
//    clip8(acc >> 22). Horizontal pass first, into a uint8 intermediate holding only the source
//    rows the vertical pass reads, then the vertical pass. A pass whose dimension is unchanged
//    is skipped.
//  - NEAREST: Pillow's ImagingScaleAffine (source coordinate = (out + 0.5) * in / out, with the
//    position accumulated by repeated addition in double precision, truncated).
//  - A same-size resize is a copy.
//  - Mode rules of Image.resize: PixelMode::kP is always resampled with NEAREST; kRGBA with any
//    other filter goes RGBA -> premultiplied RGBa (MULDIV255) -> resample -> RGBA (integer
//    255 * c / a, clipped). kL and kRGB are resampled as they are.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_PIL_RESAMPLE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_PIL_RESAMPLE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

// Values are PIL's Image.Resampling numbers (as stored in preprocessor_config.json "resample").
enum class ResampleFilter {
  kNearest = 0,
  kLanczos = 1,
  kBilinear = 2,
  kBicubic = 3,
  kBox = 4,
  kHamming = 5,
};

// PIL's integer resampling id -> filter; INVALID_ARGUMENT for anything else.
absl::StatusOr<ResampleFilter> ResampleFilterFromPil(int pil_value);
absl::string_view ResampleFilterName(ResampleFilter filter);

// Pillow `image.resize((out_width, out_height), filter)` for an image in `in.mode` (note the
// argument order here is height, width like the rest of this package). INVALID_ARGUMENT for an
// empty/inconsistent input or a non-positive output size, RESOURCE_EXHAUSTED if the output
// would exceed 2^31 bytes.
absl::StatusOr<Image> PilResize(const Image& in, int out_height, int out_width,
                                ResampleFilter filter);

// PIL's premultiply / unpremultiply (Convert.c rgbA2rgba / rgba2rgbA), in place on kRGBA data.
void PremultiplyRgba(Image& image);
void UnpremultiplyRgba(Image& image);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_PIL_RESAMPLE_H_
