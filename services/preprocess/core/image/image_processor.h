// The slow (PIL-based) SmolVLMImageProcessor of transformers 4.54, uint8 in and uint8 out:
// resize to the longest edge (step A), resize to whole tiles (step B), split into T x T tiles
// plus a global image, then convert every output to RGB. Rescale/normalise is normalize.h
// (NormalizeFormula::kImage).
//
// Resampling happens in the image's own mode, as the reference does: RGB and RGBA with the
// configured filter (RGBA premultiplied, see pil_resample.h), greyscale (kL) and palette (kP)
// images with NEAREST (the reference wraps 1-channel arrays as PIL "P" images before every
// resize). The RGB conversion at the end composites RGBA over opaque white with Pillow's integer
// ImagingAlphaComposite and replicates greyscale.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_PROCESSOR_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_PROCESSOR_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/preprocess/core/image/image.h"
#include "services/preprocess/core/image/pil_resample.h"

namespace smolserve::preprocess {

// Largest grid with dedicated <row_r_col_c> tokens.
inline constexpr int kMaxGridSide = 6;
// transformers' MAX_IMAGE_SIZE: step A never produces a side above this.
inline constexpr int kMaxResizedSide = 4096;

struct ImageProcessorOptions {
  bool do_resize = true;
  int longest_edge = 2048;   // size["longest_edge"] (L)
  int max_image_size = 512;  // max_image_size["longest_edge"] (T)
  bool do_image_splitting = true;
  ResampleFilter resample = ResampleFilter::kLanczos;
};

// INVALID_ARGUMENT unless 0 < T <= 4096, 0 < L <= 65536 and, with do_resize and splitting,
// the largest possible grid ceil(min(L, 4096) / T) is at most 6.
absl::Status ValidateImageProcessorOptions(const ImageProcessorOptions& options);

enum class ResizeStage {
  kLongestEdge,    // step A: size={"longest_edge": L}
  kVisionEncoder,  // step B: resize to multiples of T
  kGlobal,         // split_image's global image: T x T
  kSquare,         // do_image_splitting=False: T x T
};

// One call of the reference's `resize` (recorded even when it is a same-size copy).
struct ResizeCall {
  ResizeStage stage = ResizeStage::kLongestEdge;
  int in_height = 0;
  int in_width = 0;
  int channels = 0;
  int size_longest_edge = 0;  // the size argument: {"longest_edge": ..} for kLongestEdge
  int size_height = 0;        // {"height": .., "width": ..} for the other stages
  int size_width = 0;
  int out_height = 0;
  int out_width = 0;
};

struct ProcessedImage {
  int rows = 0;  // 0 with cols = 0: single image (no grid, no global image)
  int cols = 0;
  // RGB. Row-major tiles, then the global image; a single image when rows = cols = 0.
  std::vector<Image> tiles;
  std::vector<ResizeCall> resize_calls;
};

// Geometry only (no pixels): what ProcessImage will produce for an h x w input.
struct ImageGeometry {
  int resized_height = 0;  // after step A (= input when do_resize is false)
  int resized_width = 0;
  int split_height = 0;  // after step B (0 when splitting is off)
  int split_width = 0;
  int rows = 0;
  int cols = 0;
  int num_tiles = 0;  // rows * cols + 1, or 1
};
absl::StatusOr<ImageGeometry> ComputeImageGeometry(int height, int width,
                                                   const ImageProcessorOptions& options);

// Step A size (`get_resize_output_image_size`): longest edge -> L, short side truncated and
// bumped to even, then scaled below 4096. Python float64 arithmetic.
void LongestEdgeResizeSize(int height, int width, int longest_edge, int* out_height,
                           int* out_width);
// Step B size (`resize_for_vision_encoder`).
void VisionEncoderResizeSize(int height, int width, int max_image_size, int* out_height,
                             int* out_width);

absl::StatusOr<ProcessedImage> ProcessImage(const Image& image,
                                            const ImageProcessorOptions& options);

// The reference's convert_to_rgb for one output: kRGB/kP unchanged (kP is already expanded),
// kL replicated, kRGBA alpha-composited over opaque white (Pillow ImagingAlphaComposite).
Image ConvertToRgb(const Image& image);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_PROCESSOR_H_
