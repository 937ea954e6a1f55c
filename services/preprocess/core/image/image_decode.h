// Decoding of encoded images (PNG, JPEG, WebP, BMP, GIF first frame) into Image, with the two
// loading semantics of the reference:
//
//  convert_to_rgb = true   transformers `load_image` (path / URL / base64): PIL open ->
//                          ImageOps.exif_transpose -> convert("RGB"). Alpha is dropped without
//                          compositing, greyscale and palette images are expanded to RGB.
//                          The result is always PixelMode::kRGB.
//  convert_to_rgb = false  a PIL image handed directly to the processor: the mode is kept
//                          (greyscale -> kL, RGBA -> kRGBA, palette -> kP with the palette
//                          expanded to RGB) and EXIF orientation is NOT applied.
//
// Safety: the encoded size is checked first, then the image structure is walked and the
// width/height are read from the header (PNG IHDR, JPEG SOFn, WebP VP8/VP8L/VP8X, BMP info
// header, GIF screen + first frame) and checked against MediaLimits before any decoder runs or
// any pixel memory is allocated. Truncated data (missing PNG IEND / JPEG EOI, chunks running
// past the end) is rejected up front; decoder failures are reported, never a partial image
// (JPEG: libjpeg's corrupt-data warnings are errors; PNG: libpng errors on bad CRCs, bad zlib
// data and missing image data). JPEG has no checksum, so garbage that keeps the entropy-coded
// data syntactically valid still decodes (to damaged pixels), as it does in Pillow.
//
// Decoders: JPEG with libjpeg-turbo (Pillow's settings), PNG / WebP / BMP with OpenCV
// imdecode(IMREAD_UNCHANGED) (libpng / libwebp; EXIF orientation is applied here, not by
// OpenCV), GIF with a built-in LZW decoder (Debian's OpenCV has no GIF reader).
//
// Status codes: INVALID_ARGUMENT for empty, unrecognised, truncated or corrupt data and for
// unsupported variants (animated WebP, JPEGs whose height comes from a DNL marker, ...);
// RESOURCE_EXHAUSTED when the encoded size or the header's dimensions exceed the limits.
//
// Deviations from Pillow, all outside the golden fixtures:
//  - 16-bit PNGs are reduced to their high byte. This is exactly what Pillow does for 16-bit
//    RGB/RGBA/grey+alpha; for 16-bit greyscale Pillow's "I;16" -> "RGB" conversion instead
//    clips every value above 255 to 255 (an almost white image), which is not reproduced.
//  - CMYK/YCCK JPEGs are converted like Pillow's convert("RGB") (inverted "CMYK;I" + cmyk2rgb)
//    also when convert_to_rgb = false, where the reference would misread them as RGBA.
//  - Greyscale+alpha ("LA") passed as a PIL object makes the reference processor raise; here it
//    becomes kRGBA (grey replicated) when convert_to_rgb = false.
//  - 16-bit-per-pixel BMPs use OpenCV's 5-bit expansion, not Pillow's.
//  - PNG orientation from "Raw profile type exif" text chunks and from zlib-compressed iTXt XMP
//    is not read (eXIf chunks and uncompressed XMP are).
//  - 1-bit greyscale images become kL with values 0/255 when convert_to_rgb = false (Pillow mode
//    "1"; the reference's numpy path would see booleans).
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_DECODE_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_DECODE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"
#include "services/preprocess/core/limits.h"

namespace smolserve::preprocess {

enum class ImageFormat { kUnknown, kPng, kJpeg, kWebp, kBmp, kGif };

absl::string_view ImageFormatName(ImageFormat format);

// From the magic bytes only.
ImageFormat SniffImageFormat(absl::string_view encoded);

struct ImageDecodeOptions {
  // true: transformers load_image semantics; false: PIL object handed to the processor.
  bool convert_to_rgb = true;
  MediaLimits limits;
};

// What the header walk found, before any pixel decoding.
struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;  // as stored, before EXIF orientation
  int height = 0;
  // EXIF orientation 1..8 (XMP fallback included, as Pillow's getexif); 1 when absent.
  int orientation = 1;
  bool has_alpha = false;
  bool palette = false;  // PNG colour type 3, BMP <= 8 bpp, GIF with a colour table
  bool greyscale = false;
  int bit_depth = 8;
};

// Validates the size and structure and reads the header. Cheap (no decoding); enforces
// limits.max_encoded_bytes, max_image_pixels and max_image_side.
absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view encoded, const MediaLimits& limits);

absl::StatusOr<Image> DecodeImage(absl::string_view encoded, const ImageDecodeOptions& options);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_IMAGE_DECODE_H_
