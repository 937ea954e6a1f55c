#include "services/preprocess/core/image/image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace smolserve::preprocess {
namespace {

constexpr int kMaxLongestEdge = 65536;

int64_t CeilToMultiple(int64_t value, int multiple) {
  // Python: math.ceil(value / multiple) * multiple, with float division.
  return static_cast<int64_t>(std::ceil(static_cast<double>(value) / multiple)) * multiple;
}

int CeilDiv(int value, int divisor) {
  // Python: math.ceil(value / divisor).
  return static_cast<int>(std::ceil(static_cast<double>(value) / divisor));
}

// The reference wraps single-channel arrays as PIL "P" images before every resize, and PIL
// resamples "P" with NEAREST.
ResampleFilter FilterForMode(PixelMode mode, ResampleFilter configured) {
  if (mode == PixelMode::kL || mode == PixelMode::kP) return ResampleFilter::kNearest;
  return configured;
}

// Channels as the reference sees them (a palette image is a 2-D index array there).
int ReferenceChannels(const Image& image) {
  return image.mode == PixelMode::kP ? 1 : image.channels();
}

Image Crop(const Image& src, int y0, int x0, int y1, int x1) {
  Image out = MakeImage(y1 - y0, x1 - x0, src.mode);
  const size_t c = static_cast<size_t>(src.channels());
  const size_t row_bytes = static_cast<size_t>(x1 - x0) * c;
  for (int y = y0; y < y1; ++y) {
    std::memcpy(out.row(y - y0), src.row(y) + static_cast<size_t>(x0) * c, row_bytes);
  }
  return out;
}

inline uint32_t ShiftForDiv255(uint32_t a) { return ((a >> 8) + a) >> 8; }

}  // namespace

absl::Status ValidateImageProcessorOptions(const ImageProcessorOptions& options) {
  if (options.max_image_size <= 0 || options.max_image_size > kMaxResizedSide) {
    return absl::InvalidArgumentError(absl::StrCat("max_image_size (tile side) must be in 1..",
                                                   kMaxResizedSide, ", got ",
                                                   options.max_image_size));
  }
  if (options.do_resize && (options.longest_edge <= 0 || options.longest_edge > kMaxLongestEdge)) {
    return absl::InvalidArgumentError(absl::StrCat("longest_edge must be in 1..", kMaxLongestEdge,
                                                   ", got ", options.longest_edge));
  }
  if (!ResampleFilterFromPil(static_cast<int>(options.resample)).ok()) {
    return absl::InvalidArgumentError("unknown resampling filter");
  }
  if (options.do_resize && options.do_image_splitting) {
    // Step A gives a longest side of min(L, 4096), or L + 1 when the even bump applies to a
    // near-square image; step B rounds it up to whole tiles.
    int longest = std::min(options.longest_edge, kMaxResizedSide);
    if (longest % 2 != 0) longest += 1;
    const int grid = CeilDiv(longest, options.max_image_size);
    if (grid > kMaxGridSide) {
      return absl::InvalidArgumentError(absl::StrCat(
          "longest_edge ", options.longest_edge, " with max_image_size ", options.max_image_size,
          " allows a ", grid, "x", grid, " grid; only grids up to ", kMaxGridSide, "x",
          kMaxGridSide, " have row/column tokens"));
    }
  }
  return absl::OkStatus();
}

void LongestEdgeResizeSize(int height, int width, int longest_edge, int* out_height,
                           int* out_width) {
  // _resize_output_size_rescale_to_max_len (min_len = 1).
  int64_t h = height;
  int64_t w = width;
  const double aspect_ratio = static_cast<double>(w) / static_cast<double>(h);
  if (w >= h) {
    w = longest_edge;
    h = static_cast<int64_t>(static_cast<double>(w) / aspect_ratio);
    if (h % 2 != 0) h += 1;
  } else {
    h = longest_edge;
    w = static_cast<int64_t>(static_cast<double>(h) * aspect_ratio);
    if (w % 2 != 0) w += 1;
  }
  h = std::max<int64_t>(h, 1);
  w = std::max<int64_t>(w, 1);
  // _resize_output_size_scale_below_upper_bound(max_len = MAX_IMAGE_SIZE).
  const double aspect_ratio2 = static_cast<double>(w) / static_cast<double>(h);
  if (w >= h && w > kMaxResizedSide) {
    w = kMaxResizedSide;
    h = static_cast<int64_t>(static_cast<double>(w) / aspect_ratio2);
  } else if (h > w && h > kMaxResizedSide) {
    h = kMaxResizedSide;
    w = static_cast<int64_t>(static_cast<double>(h) * aspect_ratio2);
  }
  *out_height = static_cast<int>(std::max<int64_t>(h, 1));
  *out_width = static_cast<int>(std::max<int64_t>(w, 1));
}

void VisionEncoderResizeSize(int height, int width, int max_image_size, int* out_height,
                             int* out_width) {
  const double aspect_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t h;
  int64_t w;
  if (width >= height) {
    w = CeilToMultiple(width, max_image_size);
    const int64_t h_tmp = static_cast<int64_t>(static_cast<double>(w) / aspect_ratio);
    h = CeilToMultiple(h_tmp, max_image_size);
  } else {
    h = CeilToMultiple(height, max_image_size);
    const int64_t w_tmp = static_cast<int64_t>(static_cast<double>(h) * aspect_ratio);
    w = CeilToMultiple(w_tmp, max_image_size);
  }
  *out_height = static_cast<int>(std::min<int64_t>(h, INT32_MAX));
  *out_width = static_cast<int>(std::min<int64_t>(w, INT32_MAX));
}

absl::StatusOr<ImageGeometry> ComputeImageGeometry(int height, int width,
                                                   const ImageProcessorOptions& options) {
  RETURN_IF_ERROR(ValidateImageProcessorOptions(options));
  if (height <= 0 || width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size must be positive, got ", height, "x", width));
  }
  ImageGeometry g;
  g.resized_height = height;
  g.resized_width = width;
  if (options.do_resize) {
    LongestEdgeResizeSize(height, width, options.longest_edge, &g.resized_height, &g.resized_width);
  }
  const int t = options.max_image_size;
  if (!options.do_image_splitting) {
    g.num_tiles = 1;
    return g;
  }
  VisionEncoderResizeSize(g.resized_height, g.resized_width, t, &g.split_height, &g.split_width);
  if (g.split_height <= 0 || g.split_width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("image of ", height, "x", width,
                                                   " resizes to an empty ", g.split_height, "x",
                                                   g.split_width, " tile grid"));
  }
  if (g.split_height > t || g.split_width > t) {
    g.rows = CeilDiv(g.split_height, t);
    g.cols = CeilDiv(g.split_width, t);
    if (g.rows > kMaxGridSide || g.cols > kMaxGridSide) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image of ", height, "x", width, " would be split into a ", g.rows, "x", g.cols,
          " grid; at most ", kMaxGridSide, "x", kMaxGridSide, " is supported"));
    }
    g.num_tiles = g.rows * g.cols + 1;
  } else {
    g.num_tiles = 1;
  }
  return g;
}

Image ConvertToRgb(const Image& image) {
  switch (image.mode) {
    case PixelMode::kRGB:
      return image;
    case PixelMode::kP: {
      Image out = image;
      out.mode = PixelMode::kRGB;
      return out;
    }
    case PixelMode::kL: {
      Image out = MakeImage(image.height, image.width, PixelMode::kRGB);
      const size_t n = static_cast<size_t>(image.height) * image.width;
      const uint8_t* s = image.pixels.data();
      uint8_t* d = out.pixels.data();
      for (size_t i = 0; i < n; ++i, d += 3) d[0] = d[1] = d[2] = s[i];
      return out;
    }
    case PixelMode::kRGBA: {
      // Image.alpha_composite(white opaque RGBA, image) then convert("RGB"):
      // Pillow ImagingAlphaComposite with 7 extra bits of precision.
      constexpr uint32_t kPrecision = 7;
      constexpr uint32_t kDst = 255;   // background colour channels
      constexpr uint32_t kDstA = 255;  // background alpha
      Image out = MakeImage(image.height, image.width, PixelMode::kRGB);
      const size_t n = static_cast<size_t>(image.height) * image.width;
      const uint8_t* s = image.pixels.data();
      uint8_t* d = out.pixels.data();
      for (size_t i = 0; i < n; ++i, s += 4, d += 3) {
        const uint32_t sa = s[3];
        if (sa == 0) {
          d[0] = d[1] = d[2] = static_cast<uint8_t>(kDst);
          continue;
        }
        const uint32_t blend = kDstA * (255 - sa);
        const uint32_t outa255 = sa * 255 + blend;
        const uint32_t coef1 = sa * 255 * 255 * (1u << kPrecision) / outa255;
        const uint32_t coef2 = 255 * (1u << kPrecision) - coef1;
        for (int c = 0; c < 3; ++c) {
          const uint32_t tmp = s[c] * coef1 + kDst * coef2;
          d[c] = static_cast<uint8_t>(ShiftForDiv255(tmp + (0x80u << kPrecision)) >> kPrecision);
        }
      }
      return out;
    }
  }
  return image;
}

absl::StatusOr<ProcessedImage> ProcessImage(const Image& image,
                                            const ImageProcessorOptions& options) {
  if (image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.height) * image.width * image.channels()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid input image ", image.height, "x",
                                                   image.width, " with ", image.pixels.size(),
                                                   " bytes"));
  }
  ASSIGN_OR_RETURN(const ImageGeometry geometry,
                   ComputeImageGeometry(image.height, image.width, options));
  const ResampleFilter filter = FilterForMode(image.mode, options.resample);
  const int t = options.max_image_size;

  ProcessedImage result;
  Image holder;
  const Image* current = &image;

  auto resize = [&](ResizeStage stage, int out_h, int out_w) -> absl::Status {
    ResizeCall call;
    call.stage = stage;
    call.in_height = current->height;
    call.in_width = current->width;
    call.channels = ReferenceChannels(*current);
    if (stage == ResizeStage::kLongestEdge) {
      call.size_longest_edge = options.longest_edge;
    } else {
      call.size_height = out_h;
      call.size_width = out_w;
    }
    call.out_height = out_h;
    call.out_width = out_w;
    result.resize_calls.push_back(call);
    if (current->height == out_h && current->width == out_w) return absl::OkStatus();  // copy
    ASSIGN_OR_RETURN(Image resized, PilResize(*current, out_h, out_w, filter));
    holder = std::move(resized);
    current = &holder;
    return absl::OkStatus();
  };

  if (options.do_resize) {
    RETURN_IF_ERROR(
        resize(ResizeStage::kLongestEdge, geometry.resized_height, geometry.resized_width));
  }

  std::vector<Image> outputs;
  if (options.do_image_splitting) {
    RETURN_IF_ERROR(
        resize(ResizeStage::kVisionEncoder, geometry.split_height, geometry.split_width));
    const int height = current->height;
    const int width = current->width;
    if (height > t || width > t) {
      result.rows = geometry.rows;
      result.cols = geometry.cols;
      const int optimal_height = CeilDiv(height, result.rows);
      const int optimal_width = CeilDiv(width, result.cols);
      outputs.reserve(static_cast<size_t>(result.rows) * result.cols + 1);
      for (int r = 0; r < result.rows; ++r) {
        for (int c = 0; c < result.cols; ++c) {
          const int x0 = c * optimal_width;
          const int y0 = r * optimal_height;
          const int x1 = std::min(x0 + optimal_width, width);
          const int y1 = std::min(y0 + optimal_height, height);
          outputs.push_back(Crop(*current, y0, x0, y1, x1));
        }
      }
      if (height != t || width != t) {
        RETURN_IF_ERROR(resize(ResizeStage::kGlobal, t, t));
      }
    }
    outputs.push_back(current == &holder ? std::move(holder) : *current);
  } else {
    RETURN_IF_ERROR(resize(ResizeStage::kSquare, t, t));
    outputs.push_back(current == &holder ? std::move(holder) : *current);
  }

  result.tiles.reserve(outputs.size());
  for (Image& out : outputs) {
    if (out.mode == PixelMode::kRGB) {
      result.tiles.push_back(std::move(out));
    } else {
      result.tiles.push_back(ConvertToRgb(out));
    }
  }
  return result;
}

}  // namespace smolserve::preprocess
