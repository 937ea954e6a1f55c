#include "services/preprocess/core/image/exif.h"

#include <cstdint>
#include <cstring>

namespace smolserve::preprocess {
namespace {

class TiffReader {
 public:
  TiffReader(absl::string_view data, bool big_endian) : data_(data), big_endian_(big_endian) {}

  bool U16(size_t offset, uint32_t* out) const {
    if (offset > data_.size() || data_.size() - offset < 2) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data()) + offset;
    *out = big_endian_ ? (p[0] << 8) | p[1] : (p[1] << 8) | p[0];
    return true;
  }
  bool U32(size_t offset, uint32_t* out) const {
    if (offset > data_.size() || data_.size() - offset < 4) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data()) + offset;
    *out = big_endian_
               ? (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]
               : (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
    return true;
  }
  bool U8(size_t offset, uint32_t* out) const {
    if (offset >= data_.size()) return false;
    *out = static_cast<uint8_t>(data_[offset]);
    return true;
  }

 private:
  absl::string_view data_;
  bool big_endian_;
};

constexpr uint32_t kOrientationTag = 0x0112;

}  // namespace

int ParseExifOrientation(absl::string_view exif) {
  static constexpr char kPrefix[] = {'E', 'x', 'i', 'f', '\0', '\0'};
  while (exif.size() >= sizeof(kPrefix) &&
         std::memcmp(exif.data(), kPrefix, sizeof(kPrefix)) == 0) {
    exif.remove_prefix(sizeof(kPrefix));
  }
  if (exif.size() < 8) return 0;
  bool big_endian;
  if (exif.substr(0, 4) == absl::string_view("II*\0", 4)) {
    big_endian = false;
  } else if (exif.substr(0, 4) == absl::string_view("MM\0*", 4)) {
    big_endian = true;
  } else {
    return 0;
  }
  const TiffReader r(exif, big_endian);
  uint32_t ifd = 0;
  uint32_t count = 0;
  if (!r.U32(4, &ifd) || !r.U16(ifd, &count)) return 0;
  int orientation = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = static_cast<size_t>(ifd) + 2 + 12 * static_cast<size_t>(i);
    uint32_t tag, type, n;
    if (!r.U16(entry, &tag) || !r.U16(entry + 2, &type) || !r.U32(entry + 4, &n)) break;
    if (tag != kOrientationTag) continue;
    // Pillow turns a single integer value into an int; anything else (several values, text,
    // rationals) never matches an orientation.
    if (n != 1) {
      orientation = 1;
      continue;
    }
    uint32_t v = 0;
    bool ok = true;
    switch (type) {
      case 1:  // BYTE
      case 6:  // SBYTE
        ok = r.U8(entry + 8, &v);
        if (type == 6) v = static_cast<uint32_t>(static_cast<int8_t>(v));
        break;
      case 3:  // SHORT
      case 8:  // SSHORT
        ok = r.U16(entry + 8, &v);
        if (type == 8) v = static_cast<uint32_t>(static_cast<int16_t>(v));
        break;
      case 4:  // LONG
      case 9:  // SLONG
        ok = r.U32(entry + 8, &v);
        break;
      default:
        ok = false;
        break;
    }
    const int32_t value = static_cast<int32_t>(v);
    // A present but unusable tag means "no transpose" (and no XMP fallback).
    orientation = (ok && value >= 1 && value <= 8) ? value : 1;
    // Pillow keeps the last occurrence of a repeated tag.
  }
  return orientation;
}

int ParseXmpOrientation(absl::string_view xmp) {
  static constexpr absl::string_view kKey = "tiff:Orientation";
  auto is_digit = [](char ch) { return ch >= '0' && ch <= '9'; };
  for (size_t pos = xmp.find(kKey); pos != absl::string_view::npos; pos = xmp.find(kKey, pos + 1)) {
    const absl::string_view rest = xmp.substr(pos + kKey.size());
    if (rest.size() >= 3 && rest[0] == '=' && rest[1] == '"' && is_digit(rest[2])) {
      return rest[2] - '0';
    }
    if (rest.size() >= 2 && rest[0] == '>' && is_digit(rest[1])) return rest[1] - '0';
  }
  return 0;
}

Image ApplyExifOrientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int h = image.height;
  const int w = image.width;
  const size_t c = static_cast<size_t>(image.channels());
  const bool swaps = orientation >= 5;  // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90
  Image out = MakeImage(swaps ? w : h, swaps ? h : w, image.mode);
  for (int y = 0; y < h; ++y) {
    const uint8_t* src = image.row(y);
    for (int x = 0; x < w; ++x) {
      int oy, ox;  // output row, column
      switch (orientation) {
        case 2:
          oy = y;
          ox = w - 1 - x;
          break;  // FLIP_LEFT_RIGHT
        case 3:
          oy = h - 1 - y;
          ox = w - 1 - x;
          break;  // ROTATE_180
        case 4:
          oy = h - 1 - y;
          ox = x;
          break;  // FLIP_TOP_BOTTOM
        case 5:
          oy = x;
          ox = y;
          break;  // TRANSPOSE
        case 6:
          oy = x;
          ox = h - 1 - y;
          break;  // ROTATE_270 (clockwise)
        case 7:
          oy = w - 1 - x;
          ox = h - 1 - y;
          break;  // TRANSVERSE
        default:
          oy = w - 1 - x;
          ox = y;
          break;  // 8: ROTATE_90 (counter-clockwise)
      }
      std::memcpy(out.row(oy) + static_cast<size_t>(ox) * c, src + static_cast<size_t>(x) * c, c);
    }
  }
  return out;
}

}  // namespace smolserve::preprocess
