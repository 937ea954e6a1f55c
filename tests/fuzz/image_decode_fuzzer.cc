// Image bytes as a client sends them (base64, data: URL, gRPC bytes) -> DecodeImage, the call
// the preprocessor makes for every image, in both loading modes, plus ReadImageHeader.
// Invariants: refusals are client errors; a decoded image has the header's size (swapped by
// EXIF orientations 5-8 in RGB mode) and exactly height * width * channels bytes.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "services/preprocess/core/image/image_decode.h"
#include "tests/fuzz/fuzz_util.h"

namespace smolserve::preprocess {
namespace {

MediaLimits Limits() {
  MediaLimits limits;  // the service's defaults, with a smaller pixel budget for speed
  limits.max_image_pixels = 4'000'000;
  limits.max_image_side = 8192;
  return limits;
}

void CheckImage(const Image& image, int height, int width, bool rgb) {
  FUZZ_CHECK(image.height == height && image.width == width,
             absl::StrCat("decoded ", image.height, "x", image.width, ", expected ", height, "x",
                          width));
  FUZZ_CHECK(!rgb || image.mode == PixelMode::kRGB, "convert_to_rgb gave a non-RGB image");
  FUZZ_CHECK(image.pixels.size() ==
                 static_cast<size_t>(image.height) * image.width * image.channels(),
             "pixel buffer size");
}

}  // namespace
}  // namespace smolserve::preprocess

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smolserve::preprocess;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const MediaLimits limits = Limits();
  absl::StatusOr<ImageHeader> header = ReadImageHeader(bytes, limits);
  if (!header.ok()) {
    FUZZ_CHECK(smolserve::fuzz::IsClientError(header.status()), header.status().ToString());
  } else {
    FUZZ_CHECK(header->format == SniffImageFormat(bytes), "format");
    FUZZ_CHECK(header->orientation >= 1 && header->orientation <= 8, "orientation");
  }
  for (const bool rgb : {true, false}) {
    ImageDecodeOptions options;
    options.convert_to_rgb = rgb;
    options.limits = limits;
    absl::StatusOr<Image> image = DecodeImage(bytes, options);
    if (!image.ok()) {
      FUZZ_CHECK(smolserve::fuzz::IsClientError(image.status()), image.status().ToString());
      continue;
    }
    FUZZ_CHECK(header.ok(), "DecodeImage accepted what ReadImageHeader refused");
    const bool swaps = rgb && header->orientation >= 5;
    CheckImage(*image, swaps ? header->width : header->height,
               swaps ? header->height : header->width, rgb);
  }
  return 0;
}
