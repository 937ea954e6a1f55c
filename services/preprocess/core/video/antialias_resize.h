// Antialiased bicubic resize of uint8 images, bit-exact with PyTorch >= 2.1's uint8 kernel
// (`F.interpolate(uint8, mode="bicubic", antialias=True, align_corners=False)` on CPU).
//
// Why not ATen: torchvision.transforms.v2.functional.resize (used by transformers'
// SmolVLMVideoProcessor) sends uint8 CPU tensors with BICUBIC straight to that uint8 kernel
// (`_do_native_uint8_resize_on_cpu` returns True for BICUBIC). The kernel works in fixed
// point: PIL-style weights (Keys cubic, a = -0.5, support 2 * max(scale, 1)) computed in
// double, normalised, scaled to int16 with a per-axis precision chosen from the largest
// weight, integer dot products with a half-LSB rounding term, shift and clamp, and a uint8
// intermediate between the horizontal (first) and the vertical pass. Debian's LibTorch 1.13
// has no uint8 antialiased kernel; its float32 kernel (convert, resize, round) differs by
// rounding. This file ports the arithmetic of UpSampleKernel.cpp
// (HelperInterpBase::_compute_indices_min_size_weights_aa, _compute_index_ranges_int16_weights,
// basic_loop_aa_{horizontal,vertical}<uint8_t>); the AVX2 path there does the same integer
// arithmetic and gives identical results. All sums are exact integers, so the evaluation
// order used here (chosen for speed) cannot change a result.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_ANTIALIAS_RESIZE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_ANTIALIAS_RESIZE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

// Fixed-point filter taps for one axis.
struct AntialiasAxisWeights {
  int64_t in_size = 0;
  int64_t out_size = 0;
  int taps = 0;                     // row length of `weights` (max_interp_size)
  unsigned int precision = 0;       // fractional bits of `weights`
  std::vector<int64_t> first;       // first input index per output index
  std::vector<int64_t> count;       // number of taps used per output index
  std::vector<int16_t> weights;     // out_size * taps
};

// Weights of torch's uint8 antialiased bicubic for resizing one axis in -> out
// (align_corners=False, no explicit scale factor). INVALID_ARGUMENT for sizes < 1.
absl::StatusOr<AntialiasAxisWeights> BicubicAntialiasWeights(int64_t in_size, int64_t out_size);

// Reusable resizer: keeps scratch buffers and axis weights between calls (frames of a video
// share both). Not thread-safe; use one per thread.
class BicubicAntialiasResizer {
 public:
  // Resizes an interleaved `channels`-channel image (height x width) to out_height x out_width
  // into `dst` (out_height * out_width * channels bytes). Width is resampled first, then
  // height; an axis whose size does not change is skipped, as in torch.
  absl::Status Resize(const uint8_t* src, int height, int width, int channels, int out_height,
                      int out_width, uint8_t* dst);

 private:
  absl::StatusOr<const AntialiasAxisWeights*> Weights(int64_t in_size, int64_t out_size);
  uint8_t* Scratch(size_t bytes);

  std::vector<std::unique_ptr<AntialiasAxisWeights>> weights_cache_;
  std::unique_ptr<uint8_t[]> scratch_;
  size_t scratch_size_ = 0;
  std::vector<int32_t> acc_;
};

// Convenience wrapper: resizes `src` (any PixelMode; channels are processed independently).
// The result keeps src.mode.
absl::StatusOr<Image> ResizeBicubicAntialias(const Image& src, int out_height, int out_width);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_VIDEO_ANTIALIAS_RESIZE_H_
