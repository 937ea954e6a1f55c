#include "services/preprocess/core/image/gif_decode.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace smolserve::preprocess {
namespace {

absl::Status Truncated() { return absl::InvalidArgumentError("truncated GIF data"); }

class ByteReader {
 public:
  explicit ByteReader(absl::string_view data, size_t pos = 0) : data_(data), pos_(pos) {}
  size_t pos() const { return pos_; }
  bool U8(uint32_t* v) {
    if (pos_ >= data_.size()) return false;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool U16(uint32_t* v) {
    if (data_.size() - pos_ < 2 || pos_ > data_.size()) return false;
    *v = static_cast<uint8_t>(data_[pos_]) | (static_cast<uint8_t>(data_[pos_ + 1]) << 8);
    pos_ += 2;
    return true;
  }
  bool Bytes(size_t n, absl::string_view* out) {
    if (pos_ > data_.size() || data_.size() - pos_ < n) return false;
    *out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  absl::string_view data_;
  size_t pos_;
};

// Pillow's _is_palette_needed: false when entry i is (i, i, i) for every entry.
bool PaletteNeeded(absl::string_view p) {
  for (size_t i = 0; i + 2 < p.size(); i += 3) {
    const int idx = static_cast<int>(i / 3);
    if (static_cast<uint8_t>(p[i]) != idx || static_cast<uint8_t>(p[i + 1]) != idx ||
        static_cast<uint8_t>(p[i + 2]) != idx) {
      return true;
    }
  }
  return false;
}

void SetPalette(absl::string_view p, GifLayout* layout) {
  for (int i = 0; i < 256; ++i) {
    layout->palette[3 * i] = layout->palette[3 * i + 1] = layout->palette[3 * i + 2] =
        static_cast<uint8_t>(i);
  }
  std::memcpy(layout->palette.data(), p.data(), std::min<size_t>(p.size(), 768));
}

// Sub-block byte stream of the image data, read bit by bit (LSB first) for LZW.
class SubBlockBits {
 public:
  SubBlockBits(absl::string_view data, size_t pos) : data_(data), pos_(pos) {}

  // Returns 1 with a code, 0 at the end of the data sub-blocks, -1 if the file ends first.
  int Read(int bits, uint32_t* code) {
    while (nbits_ < bits) {
      if (block_left_ == 0) {
        if (ended_) return 0;
        if (pos_ >= data_.size()) return -1;
        block_left_ = static_cast<uint8_t>(data_[pos_++]);
        if (block_left_ == 0) {
          ended_ = true;
          return 0;
        }
      }
      if (pos_ >= data_.size()) return -1;
      acc_ |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_++])) << nbits_;
      nbits_ += 8;
      --block_left_;
    }
    *code = acc_ & ((1u << bits) - 1);
    acc_ >>= bits;
    nbits_ -= bits;
    return 1;
  }

 private:
  absl::string_view data_;
  size_t pos_;
  uint32_t block_left_ = 0;
  uint32_t acc_ = 0;
  int nbits_ = 0;
  bool ended_ = false;
};

}  // namespace

absl::StatusOr<GifLayout> ReadGifLayout(absl::string_view data) {
  if (data.size() < 13) return Truncated();
  if (data.substr(0, 6) != "GIF87a" && data.substr(0, 6) != "GIF89a") {
    return absl::InvalidArgumentError("not a GIF file");
  }
  ByteReader r(data, 6);
  uint32_t screen_w, screen_h, flags, bg, aspect;
  r.U16(&screen_w);
  r.U16(&screen_h);
  r.U8(&flags);
  r.U8(&bg);
  r.U8(&aspect);
  GifLayout layout;
  absl::string_view global;
  bool global_needed = false;
  if (flags & 0x80) {
    if (!r.Bytes(size_t{3} << ((flags & 7) + 1), &global)) return Truncated();
    global_needed = PaletteNeeded(global);
  }
  int transparency = -1;
  while (true) {
    uint32_t block;
    if (!r.U8(&block)) return Truncated();
    if (block == 0x3B) return absl::InvalidArgumentError("GIF contains no image");
    if (block == 0x21) {
      uint32_t label, size;
      if (!r.U8(&label)) return Truncated();
      bool first = true;
      while (true) {
        if (!r.U8(&size)) return Truncated();
        if (size == 0) break;
        absl::string_view sub;
        if (!r.Bytes(size, &sub)) return Truncated();
        if (label == 0xF9 && first && size >= 4) {
          // Graphic control extension: the last one before the image applies.
          transparency = (static_cast<uint8_t>(sub[0]) & 1) ? static_cast<uint8_t>(sub[3]) : -1;
        }
        first = false;
      }
      continue;
    }
    if (block != 0x2C) continue;  // Pillow skips unknown bytes between blocks.
    uint32_t x0, y0, fw, fh, fflags;
    if (!r.U16(&x0) || !r.U16(&y0) || !r.U16(&fw) || !r.U16(&fh) || !r.U8(&fflags)) {
      return Truncated();
    }
    layout.frame_x = static_cast<int>(x0);
    layout.frame_y = static_cast<int>(y0);
    layout.frame_width = static_cast<int>(fw);
    layout.frame_height = static_cast<int>(fh);
    layout.interlaced = (fflags & 0x40) != 0;
    layout.width = static_cast<int>(std::max(screen_w, x0 + fw));
    layout.height = static_cast<int>(std::max(screen_h, y0 + fh));
    if (fflags & 0x80) {
      absl::string_view local;
      if (!r.Bytes(size_t{3} << ((fflags & 7) + 1), &local)) return Truncated();
      if (PaletteNeeded(local)) {
        layout.has_palette = true;
        SetPalette(local, &layout);
      }
      // A local grey-ramp table makes the frame greyscale even if a global palette exists.
    } else if (global_needed) {
      layout.has_palette = true;
      SetPalette(global, &layout);
    }
    uint32_t min_code_size;
    if (!r.U8(&min_code_size)) return Truncated();
    if (min_code_size < 1 || min_code_size > 11) {
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt GIF data (LZW code size ", min_code_size, ")"));
    }
    layout.lzw_min_code_size = static_cast<int>(min_code_size);
    layout.transparent_index = transparency;
    layout.image_data_offset = r.pos();
    break;
  }
  if (layout.width <= 0 || layout.height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GIF has an empty canvas (", layout.width, "x", layout.height, ")"));
  }
  return layout;
}

absl::StatusOr<std::vector<uint8_t>> DecodeGifIndices(absl::string_view data,
                                                      const GifLayout& layout) {
  const size_t canvas = static_cast<size_t>(layout.width) * layout.height;
  std::vector<uint8_t> out(
      canvas, static_cast<uint8_t>(layout.transparent_index >= 0 ? layout.transparent_index : 0));
  const int fw = layout.frame_width;
  const int fh = layout.frame_height;
  const size_t total = static_cast<size_t>(fw) * fh;
  if (total == 0) return out;

  // Row order of the frame (interlaced: rows 0,8,..; 4,12,..; 2,6,..; 1,3,..).
  std::vector<int> rows;
  rows.reserve(fh);
  if (layout.interlaced) {
    static constexpr int kStart[4] = {0, 4, 2, 1};
    static constexpr int kStep[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass) {
      for (int y = kStart[pass]; y < fh; y += kStep[pass]) rows.push_back(y);
    }
  } else {
    for (int y = 0; y < fh; ++y) rows.push_back(y);
  }

  constexpr int kMaxCodes = 4096;
  const int min_size = layout.lzw_min_code_size;
  const uint32_t clear = 1u << min_size;
  const uint32_t eoi = clear + 1;
  std::vector<uint16_t> prefix(kMaxCodes);
  std::vector<uint8_t> suffix(kMaxCodes), first_char(kMaxCodes);
  std::vector<uint8_t> stack(kMaxCodes + 1);
  for (uint32_t i = 0; i < clear; ++i) {
    suffix[i] = static_cast<uint8_t>(i);
    first_char[i] = static_cast<uint8_t>(i);
  }
  uint32_t next = clear + 2;
  int code_size = min_size + 1;
  int prev = -1;

  size_t written = 0;
  auto emit = [&](uint8_t v) {
    if (written >= total) return;
    const size_t row = static_cast<size_t>(rows[written / fw]);
    const size_t col = written % fw;
    out[(layout.frame_y + row) * layout.width + layout.frame_x + col] = v;
    ++written;
  };

  SubBlockBits bits(data, layout.image_data_offset);
  while (written < total) {
    uint32_t code;
    const int got = bits.Read(code_size, &code);
    if (got < 0) return Truncated();
    if (got == 0) break;  // data ended early: the rest keeps the fill value
    if (code == clear) {
      next = clear + 2;
      code_size = min_size + 1;
      prev = -1;
      continue;
    }
    if (code == eoi) break;
    if (prev < 0) {
      if (code >= clear) {
        return absl::InvalidArgumentError("corrupt GIF data (bad LZW code)");
      }
      emit(static_cast<uint8_t>(code));
      prev = static_cast<int>(code);
      continue;
    }
    uint32_t cur;
    uint8_t first;
    int sp = 0;
    if (code < next) {
      cur = code;
      first = first_char[code];
    } else if (code == next && next < kMaxCodes) {
      // KwKwK: the previous string plus its own first character.
      first = first_char[prev];
      stack[sp++] = first;
      cur = static_cast<uint32_t>(prev);
    } else {
      return absl::InvalidArgumentError("corrupt GIF data (bad LZW code)");
    }
    while (cur >= clear) {
      if (sp >= kMaxCodes) return absl::InvalidArgumentError("corrupt GIF data (LZW loop)");
      stack[sp++] = suffix[cur];
      cur = prefix[cur];
    }
    stack[sp++] = static_cast<uint8_t>(cur);
    while (sp > 0) emit(stack[--sp]);
    if (next < kMaxCodes) {
      prefix[next] = static_cast<uint16_t>(prev);
      suffix[next] = first;
      first_char[next] = first_char[prev];
      ++next;
      if (next == (1u << code_size) && code_size < 12) ++code_size;
    }
    prev = static_cast<int>(code);
  }
  return out;
}

}  // namespace smolserve::preprocess
