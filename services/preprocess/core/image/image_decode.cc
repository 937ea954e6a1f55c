#include "services/preprocess/core/image/image_decode.h"

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status/status_macros.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "services/preprocess/core/image/exif.h"
#include "services/preprocess/core/image/gif_decode.h"
#include "services/preprocess/core/image/jpeg_decode.h"

namespace smolserve::preprocess {
namespace {

// ---- byte helpers (callers check bounds) ----

inline uint32_t U8At(absl::string_view d, size_t i) { return static_cast<uint8_t>(d[i]); }
inline uint32_t Be16(absl::string_view d, size_t i) { return (U8At(d, i) << 8) | U8At(d, i + 1); }
inline uint32_t Be32(absl::string_view d, size_t i) {
  return (U8At(d, i) << 24) | (U8At(d, i + 1) << 16) | (U8At(d, i + 2) << 8) | U8At(d, i + 3);
}
inline uint32_t Le16(absl::string_view d, size_t i) { return U8At(d, i) | (U8At(d, i + 1) << 8); }
inline uint32_t Le24(absl::string_view d, size_t i) {
  return U8At(d, i) | (U8At(d, i + 1) << 8) | (U8At(d, i + 2) << 16);
}
inline uint32_t Le32(absl::string_view d, size_t i) {
  return U8At(d, i) | (U8At(d, i + 1) << 8) | (U8At(d, i + 2) << 16) | (U8At(d, i + 3) << 24);
}

absl::Status Truncated(ImageFormat f, absl::string_view detail = "") {
  return absl::InvalidArgumentError(absl::StrCat("truncated ", ImageFormatName(f), " data",
                                                 detail.empty() ? "" : " (", detail,
                                                 detail.empty() ? "" : ")"));
}

absl::Status Corrupt(ImageFormat f, absl::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrCat("corrupt ", ImageFormatName(f), " data (", detail, ")"));
}

std::string FirstBytes(absl::string_view d) {
  std::string out;
  for (size_t i = 0; i < d.size() && i < 8; ++i) {
    absl::StrAppend(&out, i ? " " : "", absl::StrFormat("%02x", U8At(d, i)));
  }
  return out;
}

absl::Status CheckDimensions(ImageFormat f, int64_t width, int64_t height,
                             const MediaLimits& limits) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(ImageFormatName(f), " header has an invalid size ", width, "x", height));
  }
  if (width > limits.max_image_side || height > limits.max_image_side) {
    return absl::ResourceExhaustedError(absl::StrCat("image of ", width, "x", height,
                                                     " exceeds the maximum side of ",
                                                     limits.max_image_side, " pixels"));
  }
  if (width * height > limits.max_image_pixels) {
    return absl::ResourceExhaustedError(
        absl::StrCat("image of ", width, "x", height, " (", width * height,
                     " pixels) exceeds the limit of ", limits.max_image_pixels, " pixels"));
  }
  return absl::OkStatus();
}

// Metadata collected by the walk; views into the encoded buffer.
struct Metadata {
  absl::string_view exif;
  absl::string_view xmp;
  bool has_exif = false;
  bool has_xmp = false;
  GifLayout gif;
  int bmp_bits = 0;
  int jpeg_components = 0;
};

// ---- PNG ----

absl::Status WalkPng(absl::string_view d, const MediaLimits& limits, ImageHeader* h,
                     Metadata* meta) {
  constexpr ImageFormat kF = ImageFormat::kPng;
  size_t pos = 8;
  bool first = true, idat = false, iend = false, plte = false;
  int color_type = 0;
  while (pos < d.size()) {
    if (d.size() - pos < 8) return Truncated(kF);
    const uint32_t len = Be32(d, pos);
    const absl::string_view type = d.substr(pos + 4, 4);
    if (len > 0x7fffffffu) return Corrupt(kF, "bad chunk length");
    if (d.size() - pos - 8 < static_cast<size_t>(len) + 4) return Truncated(kF);
    const absl::string_view body = d.substr(pos + 8, len);
    if (first) {
      if (type != "IHDR" || len != 13) return Corrupt(kF, "IHDR must be the first chunk");
      const uint32_t width = Be32(body, 0);
      const uint32_t height = Be32(body, 4);
      const int bit_depth = static_cast<int>(U8At(body, 8));
      color_type = static_cast<int>(U8At(body, 9));
      if (width > 0x7fffffffu || height > 0x7fffffffu) return Corrupt(kF, "bad IHDR size");
      RETURN_IF_ERROR(CheckDimensions(kF, width, height, limits));
      bool depth_ok = false;
      switch (color_type) {
        case 0:
          depth_ok = bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8 ||
                     bit_depth == 16;
          break;
        case 3:
          depth_ok = bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8;
          break;
        case 2:
        case 4:
        case 6:
          depth_ok = bit_depth == 8 || bit_depth == 16;
          break;
        default:
          break;
      }
      if (!depth_ok) {
        return Corrupt(kF, absl::StrCat("colour type ", color_type, " with bit depth ", bit_depth));
      }
      h->width = static_cast<int>(width);
      h->height = static_cast<int>(height);
      h->bit_depth = bit_depth;
      h->palette = color_type == 3;
      h->greyscale = color_type == 0 || color_type == 4;
      h->has_alpha = color_type == 4 || color_type == 6;
      first = false;
    } else if (type == "IHDR") {
      return Corrupt(kF, "duplicate IHDR");
    } else if (type == "PLTE") {
      plte = true;
    } else if (type == "IDAT") {
      idat = true;
    } else if (type == "eXIf") {
      meta->exif = body;  // Pillow keeps the last one
      meta->has_exif = true;
    } else if (type == "iTXt" && !meta->has_xmp) {
      // keyword \0 compression_flag compression_method language \0 translated \0 text
      static constexpr absl::string_view kXmpKey("XML:com.adobe.xmp\0", 18);
      if (body.size() > kXmpKey.size() + 2 && body.substr(0, kXmpKey.size()) == kXmpKey &&
          U8At(body, kXmpKey.size()) == 0) {  // uncompressed only
        size_t p = kXmpKey.size() + 2;
        const size_t lang_end = body.find('\0', p);
        const size_t trans_end =
            lang_end == absl::string_view::npos ? lang_end : body.find('\0', lang_end + 1);
        if (trans_end != absl::string_view::npos) {
          meta->xmp = body.substr(trans_end + 1);
          meta->has_xmp = true;
        }
      }
    }
    pos += 12 + static_cast<size_t>(len);
    if (type == "IEND") {
      iend = true;
      break;
    }
  }
  if (first) return Truncated(kF, "no IHDR");
  if (!iend) return Truncated(kF, "no IEND chunk");
  if (!idat) return Corrupt(kF, "no IDAT chunk");
  if (color_type == 3 && !plte) return Corrupt(kF, "palette image without PLTE");
  return absl::OkStatus();
}

// ---- JPEG ----

bool IsSof(uint32_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

absl::Status WalkJpeg(absl::string_view d, const MediaLimits& limits, ImageHeader* h,
                      Metadata* meta) {
  constexpr ImageFormat kF = ImageFormat::kJpeg;
  static constexpr absl::string_view kExif("Exif\0\0", 6);
  static constexpr absl::string_view kXmp("http://ns.adobe.com/xap/1.0/\0", 29);
  size_t pos = 2;
  bool sof = false, eoi = false;
  const size_t n = d.size();
  while (pos < n) {
    // Find the next marker (libjpeg skips stray bytes before it, with a warning).
    while (pos < n && U8At(d, pos) != 0xFF) ++pos;
    while (pos < n && U8At(d, pos) == 0xFF) ++pos;
    if (pos >= n) break;
    const uint32_t marker = U8At(d, pos++);
    if (marker == 0xD9) {
      eoi = true;
      break;
    }
    if (marker == 0xD8) return Corrupt(kF, "unexpected SOI marker");
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (marker == 0x00) return Corrupt(kF, "invalid marker");
    if (n - pos < 2) return Truncated(kF);
    const uint32_t len = Be16(d, pos);
    if (len < 2) return Corrupt(kF, "bad segment length");
    if (n - pos < len) return Truncated(kF);
    const absl::string_view seg = d.substr(pos + 2, len - 2);
    pos += len;
    if (IsSof(marker)) {
      if (sof) return Corrupt(kF, "more than one frame header");
      if (seg.size() < 6) return Corrupt(kF, "short frame header");
      const int precision = static_cast<int>(U8At(seg, 0));
      const uint32_t height = Be16(seg, 1);
      const uint32_t width = Be16(seg, 3);
      const int components = static_cast<int>(U8At(seg, 5));
      if (height == 0) {
        return absl::InvalidArgumentError(
            "unsupported JPEG: height defined by a DNL marker (0 in the frame header)");
      }
      RETURN_IF_ERROR(CheckDimensions(kF, width, height, limits));
      if (components != 1 && components != 3 && components != 4) {
        return Corrupt(kF, absl::StrCat(components, " colour components"));
      }
      h->width = static_cast<int>(width);
      h->height = static_cast<int>(height);
      h->bit_depth = precision;
      h->greyscale = components == 1;
      meta->jpeg_components = components;
      sof = true;
    } else if (marker == 0xE1) {
      if (!meta->has_exif && seg.substr(0, kExif.size()) == kExif) {
        meta->exif = seg;
        meta->has_exif = true;
      } else if (!meta->has_xmp && seg.substr(0, kXmp.size()) == kXmp) {
        meta->xmp = seg.substr(kXmp.size());
        meta->has_xmp = true;
      }
    } else if (marker == 0xDA) {
      if (!sof) return Corrupt(kF, "scan before frame header");
      // Entropy-coded data: runs to the next marker that is not a stuffed 0xFF00 or RSTn.
      while (true) {
        const void* ff = std::memchr(d.data() + pos, 0xFF, n - pos);
        if (ff == nullptr) return Truncated(kF, "no EOI marker");
        pos = static_cast<const char*>(ff) - d.data();
        if (pos + 1 >= n) return Truncated(kF, "no EOI marker");
        const uint32_t next = U8At(d, pos + 1);
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
          pos += 2;
        } else if (next == 0xFF) {
          pos += 1;  // fill byte
        } else {
          break;  // a real marker at pos
        }
      }
    }
  }
  if (!sof) return eoi ? Corrupt(kF, "no frame header") : Truncated(kF, "no frame header");
  if (!eoi) return Truncated(kF, "no EOI marker");
  return absl::OkStatus();
}

// ---- WebP ----

absl::Status WalkWebp(absl::string_view d, const MediaLimits& limits, ImageHeader* h,
                      Metadata* meta) {
  constexpr ImageFormat kF = ImageFormat::kWebp;
  if (d.size() < 20) return Truncated(kF);
  const uint64_t riff_end = uint64_t{Le32(d, 4)} + 8;
  if (riff_end > d.size()) return Truncated(kF, "RIFF size exceeds the data");
  const size_t end = static_cast<size_t>(riff_end);
  size_t pos = 12;
  bool first = true, extended = false, have_image = false, animated = false;
  while (pos < end) {
    if (end - pos < 8) return Truncated(kF);
    const absl::string_view fourcc = d.substr(pos, 4);
    const uint32_t size = Le32(d, pos + 4);
    if (end - pos - 8 < size) return Truncated(kF);
    const absl::string_view body = d.substr(pos + 8, size);
    if (fourcc == "VP8 " && !have_image) {
      if (body.size() < 10) return Truncated(kF);
      if ((U8At(body, 0) & 1) != 0) return Corrupt(kF, "VP8 frame is not a key frame");
      if (U8At(body, 3) != 0x9d || U8At(body, 4) != 0x01 || U8At(body, 5) != 0x2a) {
        return Corrupt(kF, "bad VP8 start code");
      }
      if (!extended) {
        RETURN_IF_ERROR(
            CheckDimensions(kF, Le16(body, 6) & 0x3fff, Le16(body, 8) & 0x3fff, limits));
        h->width = static_cast<int>(Le16(body, 6) & 0x3fff);
        h->height = static_cast<int>(Le16(body, 8) & 0x3fff);
      }
      have_image = true;
    } else if (fourcc == "VP8L" && !have_image) {
      if (body.size() < 5) return Truncated(kF);
      if (U8At(body, 0) != 0x2f) return Corrupt(kF, "bad VP8L signature");
      const uint32_t bits = Le32(body, 1);
      if (!extended) {
        const uint32_t w = (bits & 0x3fff) + 1;
        const uint32_t hh = ((bits >> 14) & 0x3fff) + 1;
        RETURN_IF_ERROR(CheckDimensions(kF, w, hh, limits));
        h->width = static_cast<int>(w);
        h->height = static_cast<int>(hh);
        h->has_alpha = ((bits >> 28) & 1) != 0;
      }
      have_image = true;
    } else if (fourcc == "VP8X" && first) {
      if (body.size() < 10) return Truncated(kF);
      const uint32_t flags = U8At(body, 0);
      const uint32_t w = Le24(body, 4) + 1;
      const uint32_t hh = Le24(body, 7) + 1;
      RETURN_IF_ERROR(CheckDimensions(kF, w, hh, limits));
      h->width = static_cast<int>(w);
      h->height = static_cast<int>(hh);
      h->has_alpha = (flags & 0x10) != 0;
      animated = (flags & 0x02) != 0;
      extended = true;
    } else if (fourcc == "ANIM" || fourcc == "ANMF") {
      animated = true;
    } else if (fourcc == "EXIF" && !meta->has_exif) {
      meta->exif = body;
      meta->has_exif = true;
    } else if (fourcc == "XMP " && !meta->has_xmp) {
      meta->xmp = body;
      meta->has_xmp = true;
    } else if (first) {
      return Corrupt(kF, "first chunk is not VP8, VP8L or VP8X");
    }
    first = false;
    pos += 8 + static_cast<size_t>(size) + (size & 1);
  }
  if (animated) return absl::InvalidArgumentError("animated WebP images are not supported");
  if (!have_image) return Truncated(kF, "no image chunk");
  return absl::OkStatus();
}

// ---- BMP ----

absl::Status WalkBmp(absl::string_view d, const MediaLimits& limits, ImageHeader* h,
                     Metadata* meta) {
  constexpr ImageFormat kF = ImageFormat::kBmp;
  if (d.size() < 26) return Truncated(kF);
  const uint32_t data_offset = Le32(d, 10);
  const uint32_t dib_size = Le32(d, 14);
  int64_t width, height;
  uint32_t bits, compression = 0;
  if (dib_size == 12) {
    width = Le16(d, 18);
    height = Le16(d, 20);
    bits = Le16(d, 24);
  } else if (dib_size >= 40 && dib_size <= 1024) {
    if (d.size() < 14 + 40) return Truncated(kF);
    width = static_cast<int32_t>(Le32(d, 18));
    height = static_cast<int32_t>(Le32(d, 22));
    bits = Le16(d, 28);
    compression = Le32(d, 30);
    if (height < 0) height = -height;  // top-down rows
  } else {
    return Corrupt(kF, absl::StrCat("unsupported info header size ", dib_size));
  }
  RETURN_IF_ERROR(CheckDimensions(kF, width, height, limits));
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32) {
    return Corrupt(kF, absl::StrCat(bits, " bits per pixel"));
  }
  h->width = static_cast<int>(width);
  h->height = static_cast<int>(height);
  h->bit_depth = static_cast<int>(bits);
  h->palette = bits <= 8;
  meta->bmp_bits = static_cast<int>(bits);
  if (compression == 0 || compression == 3 || compression == 6) {
    const uint64_t row = ((static_cast<uint64_t>(width) * bits + 31) / 32) * 4;
    if (data_offset > d.size() || row * static_cast<uint64_t>(height) > d.size() - data_offset) {
      return Truncated(kF);
    }
    if ((compression == 3 || compression == 6) && bits == 32 && dib_size >= 56 &&
        d.size() >= 14 + 56) {
      h->has_alpha = Le32(d, 14 + 52) != 0;  // alpha mask
    }
  } else if (compression == 1 || compression == 2) {
    if (data_offset >= d.size()) return Truncated(kF);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported BMP compression ", compression));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageHeader> WalkImage(absl::string_view encoded, const MediaLimits& limits,
                                      Metadata* meta) {
  if (encoded.empty()) return absl::InvalidArgumentError("empty image data (0 bytes)");
  if (static_cast<int64_t>(encoded.size()) > limits.max_encoded_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("encoded image of ", encoded.size(),
                                                     " bytes exceeds the limit of ",
                                                     limits.max_encoded_bytes, " bytes"));
  }
  ImageHeader h;
  h.format = SniffImageFormat(encoded);
  switch (h.format) {
    case ImageFormat::kPng:
      RETURN_IF_ERROR(WalkPng(encoded, limits, &h, meta));
      break;
    case ImageFormat::kJpeg:
      RETURN_IF_ERROR(WalkJpeg(encoded, limits, &h, meta));
      break;
    case ImageFormat::kWebp:
      RETURN_IF_ERROR(WalkWebp(encoded, limits, &h, meta));
      break;
    case ImageFormat::kBmp:
      RETURN_IF_ERROR(WalkBmp(encoded, limits, &h, meta));
      break;
    case ImageFormat::kGif: {
      ASSIGN_OR_RETURN(meta->gif, ReadGifLayout(encoded));
      RETURN_IF_ERROR(CheckDimensions(h.format, meta->gif.width, meta->gif.height, limits));
      h.width = meta->gif.width;
      h.height = meta->gif.height;
      h.palette = meta->gif.has_palette;
      h.greyscale = !meta->gif.has_palette;
      break;
    }
    case ImageFormat::kUnknown:
      return absl::InvalidArgumentError(absl::StrCat("unrecognised image format (first bytes ",
                                                     FirstBytes(encoded),
                                                     "); supported: PNG, JPEG, WebP, BMP, GIF"));
  }
  int orientation = meta->has_exif ? ParseExifOrientation(meta->exif) : 0;
  if (orientation == 0 && meta->has_xmp) orientation = ParseXmpOrientation(meta->xmp);
  h.orientation = (orientation >= 1 && orientation <= 8) ? orientation : 1;
  return h;
}

// ---- pixel conversion ----

absl::StatusOr<cv::Mat> DecodeWithOpenCv(absl::string_view encoded, ImageFormat format) {
  if (encoded.size() > static_cast<size_t>(INT_MAX)) {
    return absl::ResourceExhaustedError("encoded image too large for the decoder");
  }
  try {
    const cv::Mat buffer(1, static_cast<int>(encoded.size()), CV_8UC1,
                         const_cast<char*>(encoded.data()));
    cv::Mat decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
    if (decoded.empty()) return Corrupt(format, "the decoder rejected the data");
    return decoded;
  } catch (const cv::Exception& e) {
    return Corrupt(format, e.what());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while decoding the image");
  }
}

// 8-bit, interleaved, OpenCV channel order (BGR / BGRA / grey).
cv::Mat To8Bit(const cv::Mat& m) {
  if (m.depth() == CV_8U) return m;
  cv::Mat out(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
  const int n = m.cols * m.channels();
  for (int y = 0; y < m.rows; ++y) {
    const uint16_t* s = m.ptr<uint16_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(s[i] >> 8);  // high byte
  }
  return out;
}

// Image in the mode a PIL object would have (LA -> kRGBA, see header).
absl::StatusOr<Image> MatToImage(const cv::Mat& decoded, const ImageHeader& h) {
  if (decoded.depth() != CV_8U && decoded.depth() != CV_16U) {
    return Corrupt(h.format, "unexpected sample type from the decoder");
  }
  const cv::Mat m = To8Bit(decoded);
  const int ch = m.channels();
  PixelMode mode;
  int code = -1;  // cvtColor code, -1 = plain copy
  switch (ch) {
    case 1:
      mode = PixelMode::kL;
      break;
    case 3:
      mode = h.palette ? PixelMode::kP : PixelMode::kRGB;
      code = cv::COLOR_BGR2RGB;
      break;
    case 4:
      if (h.has_alpha) {
        mode = PixelMode::kRGBA;
        code = cv::COLOR_BGRA2RGBA;
      } else {
        // tRNS on an RGB or palette PNG, 32-bit BMP without alpha mask: PIL keeps RGB / P.
        mode = h.palette ? PixelMode::kP : PixelMode::kRGB;
        code = cv::COLOR_BGRA2RGB;
      }
      break;
    default:
      return Corrupt(h.format, absl::StrCat(ch, " channels from the decoder"));
  }
  Image img = MakeImage(m.rows, m.cols, mode);
  try {
    cv::Mat dst(m.rows, m.cols, CV_MAKETYPE(CV_8U, img.channels()), img.pixels.data());
    if (code < 0) {
      m.copyTo(dst);
    } else {
      cv::cvtColor(m, dst, code);
    }
    if (dst.data != img.pixels.data()) {
      return absl::InternalError("colour conversion reallocated its output");
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("colour conversion failed: ", e.what()));
  }
  return img;
}

Image GifToImage(const std::vector<uint8_t>& indices, const GifLayout& layout) {
  if (!layout.has_palette) {
    Image img = MakeImage(layout.height, layout.width, PixelMode::kL);
    img.pixels = indices;
    return img;
  }
  Image img = MakeImage(layout.height, layout.width, PixelMode::kP);
  uint8_t* d = img.pixels.data();
  for (size_t i = 0; i < indices.size(); ++i, d += 3) {
    std::memcpy(d, &layout.palette[3 * static_cast<size_t>(indices[i])], 3);
  }
  return img;
}

// convert("RGB") of the PIL-object image: replicate grey, keep palette colours, drop alpha.
Image DropToRgb(Image img) {
  switch (img.mode) {
    case PixelMode::kRGB:
      return img;
    case PixelMode::kP:
      img.mode = PixelMode::kRGB;
      return img;
    case PixelMode::kL: {
      Image out = MakeImage(img.height, img.width, PixelMode::kRGB);
      const size_t n = img.pixels.size();
      for (size_t i = 0; i < n; ++i) {
        out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = img.pixels[i];
      }
      return out;
    }
    case PixelMode::kRGBA: {
      Image out = MakeImage(img.height, img.width, PixelMode::kRGB);
      const size_t n = static_cast<size_t>(img.height) * img.width;
      for (size_t i = 0; i < n; ++i) std::memcpy(&out.pixels[3 * i], &img.pixels[4 * i], 3);
      return out;
    }
  }
  return img;
}

}  // namespace

absl::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat SniffImageFormat(absl::string_view d) {
  if (d.size() >= 8 && d.substr(0, 8) == absl::string_view("\x89PNG\r\n\x1a\n", 8)) {
    return ImageFormat::kPng;
  }
  if (d.size() >= 3 && U8At(d, 0) == 0xFF && U8At(d, 1) == 0xD8 && U8At(d, 2) == 0xFF) {
    return ImageFormat::kJpeg;
  }
  if (d.size() >= 12 && d.substr(0, 4) == "RIFF" && d.substr(8, 4) == "WEBP") {
    return ImageFormat::kWebp;
  }
  if (d.size() >= 6 && (d.substr(0, 6) == "GIF87a" || d.substr(0, 6) == "GIF89a")) {
    return ImageFormat::kGif;
  }
  if (d.size() >= 2 && d.substr(0, 2) == "BM") return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view encoded, const MediaLimits& limits) {
  Metadata meta;
  return WalkImage(encoded, limits, &meta);
}

absl::StatusOr<Image> DecodeImage(absl::string_view encoded, const ImageDecodeOptions& options) {
  Metadata meta;
  ASSIGN_OR_RETURN(const ImageHeader header, WalkImage(encoded, options.limits, &meta));
  Image image;
  if (header.format == ImageFormat::kGif) {
    ASSIGN_OR_RETURN(const std::vector<uint8_t> indices, DecodeGifIndices(encoded, meta.gif));
    image = GifToImage(indices, meta.gif);
  } else if (header.format == ImageFormat::kJpeg) {
    ASSIGN_OR_RETURN(image,
                     DecodeJpegPixels(encoded, header.width, header.height, meta.jpeg_components));
  } else {
    ASSIGN_OR_RETURN(const cv::Mat decoded, DecodeWithOpenCv(encoded, header.format));
    if (decoded.rows != header.height || decoded.cols != header.width) {
      return Corrupt(header.format,
                     absl::StrCat("decoded ", decoded.rows, "x", decoded.cols,
                                  " but the header says ", header.height, "x", header.width));
    }
    ASSIGN_OR_RETURN(image, MatToImage(decoded, header));
  }
  if (!options.convert_to_rgb) return image;
  Image rgb = DropToRgb(std::move(image));
  if (header.orientation == 1) return rgb;
  return ApplyExifOrientation(rgb, header.orientation);
}

}  // namespace smolserve::preprocess
