#include "services/preprocess/core/image/jpeg_decode.h"

#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

namespace smolserve::preprocess {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void ErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings that mean the pixel data is damaged or incomplete become errors; the others
// (unknown JFIF revision, extraneous bytes between markers, ...) are ignored like Pillow does.
void EmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  switch (cinfo->err->msg_code) {
    case JWRN_ARITH_BAD_CODE:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      ErrorExit(cinfo);
    default:
      cinfo->err->num_warnings++;
      break;
  }
}

void Progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    std::snprintf(err->message, sizeof(err->message), "more than %d progressive scans",
                  kMaxJpegScans);
    std::longjmp(err->jump, 1);
  }
}

// C-style core so that no object with a destructor lives across setjmp/longjmp. Returns
// nullptr on success, else a message (pointing into `err`).
const char* DecodeInto(const unsigned char* data, unsigned long size, int width, int height,
                       int components, unsigned char* out, ErrorManager* err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = ErrorExit;
  err->pub.emit_message = EmitMessage;
  err->message[0] = '\0';
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err->message;
  }
  jpeg_create_decompress(&cinfo);
  err->progress.progress_monitor = Progress;
  cinfo.progress = &err->progress;
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<int>(cinfo.image_width) != width ||
      static_cast<int>(cinfo.image_height) != height || cinfo.num_components != components) {
    std::snprintf(err->message, sizeof(err->message), "frame header mismatch");
    jpeg_destroy_decompress(&cinfo);
    return err->message;
  }
  cinfo.out_color_space = components == 1 ? JCS_GRAYSCALE : components == 4 ? JCS_CMYK : JCS_RGB;
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  if (static_cast<int>(cinfo.output_width) != width ||
      static_cast<int>(cinfo.output_height) != height || cinfo.output_components != components) {
    std::snprintf(err->message, sizeof(err->message), "unexpected output geometry");
    jpeg_destroy_decompress(&cinfo);
    return err->message;
  }
  const size_t stride = static_cast<size_t>(width) * components;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(cinfo.output_scanline) * stride;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      std::snprintf(err->message, sizeof(err->message), "decoder stalled");
      jpeg_destroy_decompress(&cinfo);
      return err->message;
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return nullptr;
}

}  // namespace

absl::StatusOr<Image> DecodeJpegPixels(absl::string_view data, int width, int height,
                                       int components) {
  if (components != 1 && components != 3 && components != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported JPEG with ", components, " components"));
  }
  std::vector<uint8_t> raw(static_cast<size_t>(width) * height * components);
  ErrorManager err;
  const char* failure = DecodeInto(reinterpret_cast<const unsigned char*>(data.data()),
                                   static_cast<unsigned long>(data.size()), width, height,
                                   components, raw.data(), &err);
  if (failure != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG data (", failure, ")"));
  }
  if (components == 1) {
    Image img;
    img.height = height;
    img.width = width;
    img.mode = PixelMode::kL;
    img.pixels = std::move(raw);
    return img;
  }
  if (components == 3) {
    Image img;
    img.height = height;
    img.width = width;
    img.mode = PixelMode::kRGB;
    img.pixels = std::move(raw);
    return img;
  }
  // Pillow: rawmode "CMYK;I" (every channel inverted), then cmyk2rgb:
  // nk = 255 - k; channel = CLIP8(nk - MULDIV255(c, nk)).
  Image img = MakeImage(height, width, PixelMode::kRGB);
  const size_t n = static_cast<size_t>(width) * height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* s = &raw[4 * i];
    const int nk = 255 - (255 - s[3]);
    for (int c = 0; c < 3; ++c) {
      const int v = 255 - s[c];
      const unsigned tmp = static_cast<unsigned>(v * nk) + 128;
      const int muldiv = static_cast<int>(((tmp >> 8) + tmp) >> 8);
      const int r = nk - muldiv;
      img.pixels[3 * i + c] = static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
    }
  }
  return img;
}

}  // namespace smolserve::preprocess
