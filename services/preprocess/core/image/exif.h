// EXIF / XMP orientation (as Pillow's Image.getexif reads it) and ImageOps.exif_transpose.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_EXIF_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_EXIF_H_

#include "absl/strings/string_view.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {

// Orientation tag (0x0112) of IFD0 in an EXIF blob (a TIFF structure, optionally prefixed by
// "Exif\0\0" as in JPEG APP1). Returns 0 when the blob is malformed or has no orientation tag
// (Pillow then looks at XMP), 1..8 for a single integer value in range, and 1 (no transpose)
// for a tag that is present but unusable. Never reads outside `exif`.
int ParseExifOrientation(absl::string_view exif);

// Pillow's XMP fallback: the digit of the first match of `tiff:Orientation(="|>)([0-9])`,
// or 0 when there is none.
int ParseXmpOrientation(absl::string_view xmp);

// ImageOps.exif_transpose: orientation 2..8 -> FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM,
// TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90 (Pillow's transpose definitions). Any other
// value returns the image unchanged.
Image ApplyExifOrientation(const Image& image, int orientation);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_IMAGE_EXIF_H_
