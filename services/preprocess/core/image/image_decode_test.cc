#include "services/preprocess/core/image/image_decode.h"

#include <zlib.h>

#include <cstdio>
// clang-format off
#include <jpeglib.h>
// clang-format on

#include <chrono>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "services/preprocess/core/image/exif.h"
#include "services/preprocess/core/image/image.h"

namespace smolserve::preprocess {
namespace {

using absl::StatusCode;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Media(const std::string& name) { return ReadFile("tests/golden/media/" + name); }

ImageDecodeOptions Rgb() { return ImageDecodeOptions{}; }
ImageDecodeOptions Pil() {
  ImageDecodeOptions o;
  o.convert_to_rgb = false;
  return o;
}

// ---- byte builders ----

void PutBe32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutLe16(std::string* s, uint32_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>((v >> 8) & 0xff));
}
void PutLe32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string PngChunk(const std::string& type, const std::string& body) {
  std::string out;
  PutBe32(&out, static_cast<uint32_t>(body.size()));
  out += type + body;
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type.data()), 4);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  PutBe32(&out, static_cast<uint32_t>(crc));
  return out;
}

const std::string kPngSig("\x89PNG\r\n\x1a\n", 8);

std::string Ihdr(uint32_t w, uint32_t h, int depth, int color_type) {
  std::string b;
  PutBe32(&b, w);
  PutBe32(&b, h);
  b += static_cast<char>(depth);
  b += static_cast<char>(color_type);
  b += std::string(3, '\0');
  return PngChunk("IHDR", b);
}

// A non-interlaced PNG from raw rows (filter byte 0 added here). `extra` chunks go before IDAT.
std::string MakePng(int w, int h, int depth, int color_type, const std::string& raw_rows,
                    const std::string& extra = "") {
  const size_t row_bytes = raw_rows.size() / h;
  std::string filtered;
  for (int y = 0; y < h; ++y) {
    filtered += '\0';
    filtered += raw_rows.substr(y * row_bytes, row_bytes);
  }
  uLongf len = compressBound(filtered.size());
  std::string z(len, '\0');
  compress(reinterpret_cast<Bytef*>(&z[0]), &len, reinterpret_cast<const Bytef*>(filtered.data()),
           filtered.size());
  z.resize(len);
  return kPngSig + Ihdr(w, h, depth, color_type) + extra + PngChunk("IDAT", z) +
         PngChunk("IEND", "");
}

// Little-endian TIFF with one IFD0 entry: Orientation (SHORT).
std::string ExifTiff(int orientation) {
  std::string t("II*\0", 4);
  PutLe32(&t, 8);
  PutLe16(&t, 1);
  PutLe16(&t, 0x0112);
  PutLe16(&t, 3);
  PutLe32(&t, 1);
  PutLe16(&t, static_cast<uint32_t>(orientation));
  PutLe16(&t, 0);
  PutLe32(&t, 0);
  return t;
}

std::string WithJpegApp1(const std::string& jpeg, const std::string& payload) {
  std::string seg("\xff\xe1", 2);
  seg += static_cast<char>(((payload.size() + 2) >> 8) & 0xff);
  seg += static_cast<char>((payload.size() + 2) & 0xff);
  seg += payload;
  return jpeg.substr(0, 2) + seg + jpeg.substr(2);
}

std::string Encode(const cv::Mat& m, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf, params));
  return std::string(buf.begin(), buf.end());
}

// Distinct values per pixel so that any misplacement shows.
cv::Mat Pattern(int h, int w, int channels) {
  cv::Mat m(h, w, CV_MAKETYPE(CV_8U, channels));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        m.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(y * 37 + x * 11 + c * 71);
      }
    }
  }
  return m;
}

// RGB(A) Image from a BGR(A) Mat.
std::vector<uint8_t> RgbFromBgr(const cv::Mat& m, bool keep_alpha) {
  std::vector<uint8_t> out;
  for (int y = 0; y < m.rows; ++y) {
    for (int x = 0; x < m.cols; ++x) {
      const uint8_t* p = m.ptr<uint8_t>(y) + x * m.channels();
      out.push_back(p[2]);
      out.push_back(p[1]);
      out.push_back(p[0]);
      if (keep_alpha) out.push_back(p[3]);
    }
  }
  return out;
}

// Minimal GIF writer: literal LZW codes with a clear code every 250 codes, so the code width
// never grows.
std::string GifLzw(const std::vector<uint8_t>& indices, int min_code_size) {
  const uint32_t clear = 1u << min_code_size;
  const int width = min_code_size + 1;
  std::string bytes;
  uint32_t acc = 0;
  int nbits = 0;
  auto put = [&](uint32_t code) {
    acc |= code << nbits;
    nbits += width;
    while (nbits >= 8) {
      bytes += static_cast<char>(acc & 0xff);
      acc >>= 8;
      nbits -= 8;
    }
  };
  const size_t chunk = std::min<uint32_t>(250, clear - 3);
  for (size_t i = 0; i < indices.size(); ++i) {
    if (i % chunk == 0) put(clear);
    put(indices[i]);
  }
  put(clear + 1);
  if (nbits > 0) bytes += static_cast<char>(acc & 0xff);
  std::string out;
  out += static_cast<char>(min_code_size);
  for (size_t p = 0; p < bytes.size(); p += 255) {
    const size_t n = std::min<size_t>(255, bytes.size() - p);
    out += static_cast<char>(n);
    out += bytes.substr(p, n);
  }
  out += '\0';
  return out;
}

struct GifSpec {
  int screen_w = 4, screen_h = 3;
  int x0 = 0, y0 = 0, w = 4, h = 3;
  std::string global_palette;  // 3 * 2^k bytes or empty
  std::string local_palette;
  int transparency = -1;
  bool interlaced = false;
  std::vector<uint8_t> indices;  // w * h in stored (possibly interlaced) order
};

std::string MakeGif(const GifSpec& s) {
  auto bits_for = [](size_t palette_bytes) {
    int k = 0;
    while ((size_t{3} << (k + 1)) < palette_bytes) ++k;
    return k;
  };
  std::string g = "GIF89a";
  PutLe16(&g, s.screen_w);
  PutLe16(&g, s.screen_h);
  g += static_cast<char>(s.global_palette.empty() ? 0 : 0x80 | bits_for(s.global_palette.size()));
  g += '\0';
  g += '\0';
  g += s.global_palette;
  if (s.transparency >= 0) {
    g += std::string("\x21\xf9\x04\x01\x00\x00", 6);
    g += static_cast<char>(s.transparency);
    g += '\0';
  }
  g += '\x2c';
  PutLe16(&g, s.x0);
  PutLe16(&g, s.y0);
  PutLe16(&g, s.w);
  PutLe16(&g, s.h);
  int flags = s.interlaced ? 0x40 : 0;
  if (!s.local_palette.empty()) flags |= 0x80 | bits_for(s.local_palette.size());
  g += static_cast<char>(flags);
  g += s.local_palette;
  g += GifLzw(s.indices, 8);
  g += '\x3b';
  return g;
}

std::string Palette(const std::vector<std::array<uint8_t, 3>>& colours, size_t entries) {
  std::string p;
  for (size_t i = 0; i < entries; ++i) {
    const auto c = i < colours.size() ? colours[i] : std::array<uint8_t, 3>{0, 0, 0};
    p += static_cast<char>(c[0]);
    p += static_cast<char>(c[1]);
    p += static_cast<char>(c[2]);
  }
  return p;
}

// ---- real files ----

TEST(DecodeImage, JpegMatchesLibjpegViaOpenCv) {
  const std::string data = Media("fruits.jpg");
  auto img = DecodeImage(data, Rgb());
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->mode, PixelMode::kRGB);
  EXPECT_EQ(img->height, 480);
  EXPECT_EQ(img->width, 512);
  cv::Mat ref = cv::imdecode(cv::Mat(1, data.size(), CV_8UC1, const_cast<char*>(data.data())),
                             cv::IMREAD_UNCHANGED);
  EXPECT_EQ(img->pixels, RgbFromBgr(ref, false));
  auto pil = DecodeImage(data, Pil());
  ASSERT_TRUE(pil.ok());
  EXPECT_EQ(pil->mode, PixelMode::kRGB);
  EXPECT_EQ(pil->pixels, img->pixels);
}

// A 4-component (CMYK) JPEG written with libjpeg.
std::string CmykJpeg(int w, int h, const std::vector<uint8_t>& cmyk) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(&cmyk[static_cast<size_t>(c.next_scanline) * w * 4]);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  free(buf);
  return out;
}

std::vector<uint8_t> RawCmyk(const std::string& jpeg, int* w, int* h) {
  jpeg_decompress_struct d;
  jpeg_error_mgr err;
  d.err = jpeg_std_error(&err);
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size());
  jpeg_read_header(&d, TRUE);
  d.out_color_space = JCS_CMYK;
  jpeg_start_decompress(&d);
  *w = d.output_width;
  *h = d.output_height;
  std::vector<uint8_t> out(static_cast<size_t>(*w) * *h * 4);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = &out[static_cast<size_t>(d.output_scanline) * *w * 4];
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  return out;
}

TEST(DecodeImage, CmykJpegConvertedLikePillow) {
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 16 * 8; ++i) {
    cmyk.insert(cmyk.end(), {static_cast<uint8_t>(i * 2), static_cast<uint8_t>(255 - i),
                             static_cast<uint8_t>(i * 3), static_cast<uint8_t>(i)});
  }
  const std::string jpeg = CmykJpeg(16, 8, cmyk);
  int w, h;
  const std::vector<uint8_t> raw = RawCmyk(jpeg, &w, &h);
  auto img = DecodeImage(jpeg, Rgb());
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->mode, PixelMode::kRGB);
  ASSERT_EQ(img->pixels.size(), static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    // Pillow: "CMYK;I" inverts every channel, then cmyk2rgb.
    const int k = 255 - raw[4 * i + 3];
    const int nk = 255 - k;
    for (int c = 0; c < 3; ++c) {
      const int v = 255 - raw[4 * i + c];
      const int tmp = v * nk + 128;
      const int want = std::max(0, nk - (((tmp >> 8) + tmp) >> 8));
      ASSERT_EQ(img->pixels[3 * i + c], want) << i;
    }
  }
}

TEST(DecodeImage, GreyscaleJpeg) {
  const cv::Mat grey = Pattern(9, 14, 1);
  const std::string jpeg = Encode(grey, ".jpg");
  auto l = DecodeImage(jpeg, Pil());
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->mode, PixelMode::kL);
  cv::Mat ref = cv::imdecode(cv::Mat(1, jpeg.size(), CV_8UC1, const_cast<char*>(jpeg.data())),
                             cv::IMREAD_UNCHANGED);
  EXPECT_EQ(l->pixels, std::vector<uint8_t>(ref.data, ref.data + ref.total()));
  auto rgb = DecodeImage(jpeg, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  EXPECT_EQ(rgb->pixels[3 * 5 + 1], l->pixels[5]);
}

TEST(DecodeImage, GreyscalePng) {
  const std::string data = Media("camera.png");
  auto l = DecodeImage(data, Pil());
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->mode, PixelMode::kL);
  ASSERT_EQ(l->pixels.size(), 512u * 512u);
  auto rgb = DecodeImage(data, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  for (size_t i = 0; i < l->pixels.size(); ++i) {
    ASSERT_EQ(rgb->pixels[3 * i], l->pixels[i]);
    ASSERT_EQ(rgb->pixels[3 * i + 1], l->pixels[i]);
    ASSERT_EQ(rgb->pixels[3 * i + 2], l->pixels[i]);
  }
}

TEST(DecodeImage, RgbaPngKeepsOrDropsAlphaWithoutCompositing) {
  const std::string data = Media("opencv-logo-white.png");
  auto rgba = DecodeImage(data, Pil());
  ASSERT_TRUE(rgba.ok()) << rgba.status();
  EXPECT_EQ(rgba->mode, PixelMode::kRGBA);
  auto rgb = DecodeImage(data, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  const size_t n = static_cast<size_t>(rgba->height) * rgba->width;
  size_t transparent = 0;
  for (size_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) ASSERT_EQ(rgb->pixels[3 * i + c], rgba->pixels[4 * i + c]);
    transparent += rgba->pixels[4 * i + 3] == 0;
  }
  EXPECT_GT(transparent, 0u);  // the file really has transparency
}

// ---- formats through OpenCV's encoders ----

TEST(DecodeImage, WebpLosslessRgbAndRgba) {
  const cv::Mat bgr = Pattern(23, 31, 3);
  auto rgb = DecodeImage(Encode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}), Pil());
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  EXPECT_EQ(rgb->pixels, RgbFromBgr(bgr, false));

  cv::Mat bgra = Pattern(23, 31, 4);
  // No fully transparent pixels: the lossless encoder need not keep their colour.
  for (int y = 0; y < bgra.rows; ++y) {
    for (int x = 0; x < bgra.cols; ++x) bgra.ptr<uint8_t>(y)[4 * x + 3] |= 1;
  }
  auto rgba = DecodeImage(Encode(bgra, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}), Pil());
  ASSERT_TRUE(rgba.ok()) << rgba.status();
  EXPECT_EQ(rgba->mode, PixelMode::kRGBA);
  EXPECT_EQ(rgba->pixels, RgbFromBgr(bgra, true));
  auto dropped = DecodeImage(Encode(bgra, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}), Rgb());
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->mode, PixelMode::kRGB);
  EXPECT_EQ(dropped->pixels, RgbFromBgr(bgra, false));
}

TEST(DecodeImage, Bmp24AndGreyPalette) {
  const cv::Mat bgr = Pattern(17, 13, 3);
  auto rgb = DecodeImage(Encode(bgr, ".bmp"), Pil());
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  EXPECT_EQ(rgb->pixels, RgbFromBgr(bgr, false));
  const cv::Mat grey = Pattern(17, 13, 1);  // OpenCV writes an 8-bit grey-palette BMP
  auto l = DecodeImage(Encode(grey, ".bmp"), Pil());
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->mode, PixelMode::kL);
  EXPECT_EQ(l->pixels, std::vector<uint8_t>(grey.data, grey.data + grey.total()));
}

TEST(DecodeImage, Png16BitUsesHighByte) {
  cv::Mat m16(5, 6, CV_16UC3);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 18; ++x)
      m16.ptr<uint16_t>(y)[x] = static_cast<uint16_t>(y * 9000 + x * 1111 + 255);
  }
  auto img = DecodeImage(Encode(m16, ".png"), Pil());
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->mode, PixelMode::kRGB);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 6; ++x) {
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(img->row(y)[3 * x + c], m16.ptr<uint16_t>(y)[3 * x + 2 - c] >> 8);
      }
    }
  }
}

// ---- hand-built PNGs (palette, tRNS, grey+alpha, EXIF, XMP) ----

TEST(DecodeImage, PalettePngIsPModeAndIgnoresTransparency) {
  const std::string plte = Palette({{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {9, 8, 7}}, 4);
  const std::string raw = {0, 1, 2, 3, 3, 2, 1, 0};  // 4 x 2, one index per byte
  const std::string png =
      MakePng(4, 2, 8, 3, raw, PngChunk("PLTE", plte) + PngChunk("tRNS", std::string("\0", 1)));
  auto p = DecodeImage(png, Pil());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode, PixelMode::kP);
  const std::vector<uint8_t> want = {255, 0, 0, 0, 255, 0,   0, 0,   255, 9,   8, 7,
                                     9,   8, 7, 0, 0,   255, 0, 255, 0,   255, 0, 0};
  EXPECT_EQ(p->pixels, want);
  auto rgb = DecodeImage(png, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  EXPECT_EQ(rgb->pixels, want);  // index 0 is transparent, its colour is kept (no composite)
}

TEST(DecodeImage, GreyAlphaPng) {
  const std::string raw("\x0a\x00\x14\x80\x1e\xff", 6);  // 3 x 1 grey+alpha
  const std::string png = MakePng(3, 1, 8, 4, raw);
  auto rgba = DecodeImage(png, Pil());
  ASSERT_TRUE(rgba.ok()) << rgba.status();
  EXPECT_EQ(rgba->mode, PixelMode::kRGBA);
  EXPECT_EQ(rgba->pixels, (std::vector<uint8_t>{10, 10, 10, 0, 20, 20, 20, 128, 30, 30, 30, 255}));
  auto rgb = DecodeImage(png, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->pixels, (std::vector<uint8_t>{10, 10, 10, 20, 20, 20, 30, 30, 30}));
}

TEST(DecodeImage, LowBitDepthGreyIsScaled) {
  // 2-bit grey: values 0..3 -> 0, 85, 170, 255 (libpng and Pillow agree).
  const std::string raw(1, static_cast<char>(0b00011011));  // 4 pixels: 0 1 2 3
  auto img = DecodeImage(MakePng(4, 1, 2, 0, raw), Pil());
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->mode, PixelMode::kL);
  EXPECT_EQ(img->pixels, (std::vector<uint8_t>{0, 85, 170, 255}));
}

TEST(DecodeImage, PngExifAndXmpOrientation) {
  // 3 x 2 RGB with distinct pixels.
  std::string raw;
  for (int i = 0; i < 6; ++i) raw += std::string(3, static_cast<char>(10 * (i + 1)));
  auto value_at = [](const Image& img, int y, int x) { return img.row(y)[3 * x]; };

  const std::string exif6 = MakePng(3, 2, 8, 2, raw, PngChunk("eXIf", ExifTiff(6)));
  auto rotated = DecodeImage(exif6, Rgb());
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  ASSERT_EQ(rotated->height, 3);
  ASSERT_EQ(rotated->width, 2);
  // Orientation 6 = rotate 90 degrees clockwise: the bottom-left pixel comes to the top-left.
  EXPECT_EQ(value_at(*rotated, 0, 0), 40);
  EXPECT_EQ(value_at(*rotated, 0, 1), 10);
  EXPECT_EQ(value_at(*rotated, 2, 0), 60);
  auto kept = DecodeImage(exif6, Pil());  // PIL object path: no transpose
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->height, 2);

  const std::string xmp_key("XML:com.adobe.xmp\0\0\0\0\0", 22);
  const std::string xmp3 =
      MakePng(3, 2, 8, 2, raw,
              PngChunk("iTXt", xmp_key + "<x:xmpmeta><tiff:Orientation>3</tiff:Orientation>"));
  auto r180 = DecodeImage(xmp3, Rgb());
  ASSERT_TRUE(r180.ok()) << r180.status();
  EXPECT_EQ(value_at(*r180, 0, 0), 60);
  EXPECT_EQ(value_at(*r180, 1, 2), 10);

  // An EXIF orientation (even 1) takes precedence over XMP.
  const std::string both = MakePng(
      3, 2, 8, 2, raw,
      PngChunk("eXIf", ExifTiff(1)) + PngChunk("iTXt", xmp_key + "<rdf tiff:Orientation=\"3\"/>"));
  auto plain = DecodeImage(both, Rgb());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(value_at(*plain, 0, 0), 10);
}

TEST(DecodeImage, JpegExifOrientationAppliedOnlyForLoadImagePath) {
  const cv::Mat bgr = Pattern(24, 40, 3);
  const std::string jpeg = Encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  auto plain = DecodeImage(jpeg, Rgb());
  ASSERT_TRUE(plain.ok());
  for (int orientation = 1; orientation <= 8; ++orientation) {
    const std::string tagged =
        WithJpegApp1(jpeg, std::string("Exif\0\0", 6) + ExifTiff(orientation));
    auto img = DecodeImage(tagged, Rgb());
    ASSERT_TRUE(img.ok()) << img.status();
    const Image want = ApplyExifOrientation(*plain, orientation);
    EXPECT_EQ(img->height, want.height) << orientation;
    EXPECT_EQ(img->pixels, want.pixels) << orientation;
    auto pil = DecodeImage(tagged, Pil());
    ASSERT_TRUE(pil.ok());
    EXPECT_EQ(pil->pixels, plain->pixels) << orientation;
  }
}

TEST(Exif, TransposeDefinitions) {
  // 2 x 3 L image:  a b c / d e f
  Image img = MakeImage(2, 3, PixelMode::kL);
  img.pixels = {'a', 'b', 'c', 'd', 'e', 'f'};
  auto str = [](const Image& i) { return std::string(i.pixels.begin(), i.pixels.end()); };
  EXPECT_EQ(str(ApplyExifOrientation(img, 1)), "abcdef");
  EXPECT_EQ(str(ApplyExifOrientation(img, 2)), "cbafed");  // mirror
  EXPECT_EQ(str(ApplyExifOrientation(img, 3)), "fedcba");  // 180
  EXPECT_EQ(str(ApplyExifOrientation(img, 4)), "defabc");  // flip
  EXPECT_EQ(str(ApplyExifOrientation(img, 5)), "adbecf");  // transpose (3 x 2)
  EXPECT_EQ(str(ApplyExifOrientation(img, 6)), "daebfc");  // 90 clockwise
  EXPECT_EQ(str(ApplyExifOrientation(img, 7)), "fcebda");  // transverse
  EXPECT_EQ(str(ApplyExifOrientation(img, 8)), "cfbead");  // 90 counter-clockwise
  EXPECT_EQ(ApplyExifOrientation(img, 6).height, 3);
}

TEST(Exif, ParsesBigEndianAndRejectsJunk) {
  std::string mm("MM\0*", 4);
  PutBe32(&mm, 8);
  mm += std::string("\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08\x00\x00", 14);
  PutBe32(&mm, 0);
  EXPECT_EQ(ParseExifOrientation(mm), 8);
  EXPECT_EQ(ParseExifOrientation(std::string("Exif\0\0", 6) + ExifTiff(5)), 5);
  EXPECT_EQ(ParseExifOrientation("garbage"), 0);
  EXPECT_EQ(ParseExifOrientation(ExifTiff(9)), 1);  // present but invalid: no transpose
  std::string truncated = ExifTiff(6);
  truncated.resize(12);
  EXPECT_EQ(ParseExifOrientation(truncated), 0);
  EXPECT_EQ(ParseXmpOrientation("<a tiff:Orientation=\"6\"/>"), 6);
  EXPECT_EQ(ParseXmpOrientation("tiff:Orientation>7<"), 7);
  EXPECT_EQ(ParseXmpOrientation("tiff:Orientation=6"), 0);
}

TEST(DecodeImage, WebpExifOrientation) {
  // Wrap a lossless WebP bitstream in an extended (VP8X) container with an EXIF chunk.
  const cv::Mat bgr = Pattern(6, 10, 3);
  const std::string simple = Encode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});
  ASSERT_EQ(simple.substr(12, 4), "VP8L");
  const std::string image_chunk = simple.substr(12);
  std::string vp8x("VP8X", 4);
  PutLe32(&vp8x, 10);
  vp8x += static_cast<char>(0x08);  // EXIF flag
  vp8x += std::string(3, '\0');
  for (uint32_t v : {10u - 1, 6u - 1}) {
    vp8x += static_cast<char>(v & 0xff);
    vp8x += static_cast<char>((v >> 8) & 0xff);
    vp8x += static_cast<char>((v >> 16) & 0xff);
  }
  std::string exif_chunk("EXIF", 4);
  const std::string tiff = ExifTiff(3);
  PutLe32(&exif_chunk, static_cast<uint32_t>(tiff.size()));
  exif_chunk += tiff;
  if (tiff.size() % 2) exif_chunk += '\0';
  const std::string body = "WEBP" + vp8x + image_chunk + exif_chunk;
  std::string webp("RIFF", 4);
  PutLe32(&webp, static_cast<uint32_t>(body.size()));
  webp += body;
  auto plain = DecodeImage(simple, Rgb());
  auto img = DecodeImage(webp, Rgb());
  ASSERT_TRUE(plain.ok() && img.ok()) << img.status();
  EXPECT_EQ(img->pixels, ApplyExifOrientation(*plain, 3).pixels);
}

// ---- GIF ----

TEST(DecodeImage, GifPaletteFrameInterlaceAndFill) {
  GifSpec s;
  s.screen_w = 5;
  s.screen_h = 4;
  s.x0 = 1;
  s.y0 = 1;
  s.w = 3;
  s.h = 3;
  s.global_palette = Palette({{1, 2, 3}, {100, 0, 0}, {0, 100, 0}, {0, 0, 100}}, 4);
  s.transparency = 3;
  s.interlaced = true;
  // Frame rows stored in interlace order: row 0 (pass 1), row 2 (pass 3), row 1 (pass 4).
  s.indices = {1, 1, 1, 2, 2, 2, 0, 1, 2};
  const std::string gif = MakeGif(s);
  auto p = DecodeImage(gif, Pil());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode, PixelMode::kP);
  ASSERT_EQ(p->height, 4);
  ASSERT_EQ(p->width, 5);
  auto px = [&](int y, int x) {
    const uint8_t* q = p->row(y) + 3 * x;
    return std::vector<int>{q[0], q[1], q[2]};
  };
  EXPECT_EQ(px(0, 0), (std::vector<int>{0, 0, 100}));  // outside the frame: transparent index
  EXPECT_EQ(px(1, 1), (std::vector<int>{100, 0, 0}));  // frame row 0
  EXPECT_EQ(px(2, 1), (std::vector<int>{1, 2, 3}));    // frame row 1 (stored last)
  EXPECT_EQ(px(2, 3), (std::vector<int>{0, 100, 0}));
  EXPECT_EQ(px(3, 2), (std::vector<int>{0, 100, 0}));  // frame row 2
  auto rgb = DecodeImage(gif, Rgb());
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->mode, PixelMode::kRGB);
  EXPECT_EQ(rgb->pixels, p->pixels);
}

TEST(DecodeImage, GifGreyRampPaletteIsL) {
  GifSpec s;
  std::string ramp;
  for (int i = 0; i < 256; ++i) ramp += std::string(3, static_cast<char>(i));
  s.global_palette = ramp;
  s.indices = {0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6};
  auto img = DecodeImage(MakeGif(s), Pil());
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->mode, PixelMode::kL);
  EXPECT_EQ(img->pixels, s.indices);
}

TEST(DecodeImage, GifLongImageAcrossClearCodes) {
  GifSpec s;
  s.screen_w = s.w = 40;
  s.screen_h = s.h = 30;
  std::vector<std::array<uint8_t, 3>> colours;
  for (int i = 0; i < 256; ++i) {
    colours.push_back({static_cast<uint8_t>(i), static_cast<uint8_t>(255 - i), 7});
  }
  s.local_palette = Palette(colours, 256);
  for (int i = 0; i < 1200; ++i) s.indices.push_back(static_cast<uint8_t>((i * 7) % 256));
  auto img = DecodeImage(MakeGif(s), Pil());
  ASSERT_TRUE(img.ok()) << img.status();
  ASSERT_EQ(img->pixels.size(), 3600u);
  for (int i = 0; i < 1200; ++i) {
    ASSERT_EQ(img->pixels[3 * i], s.indices[i]);
    ASSERT_EQ(img->pixels[3 * i + 1], 255 - s.indices[i]);
  }
}

// ---- bad input ----

void ExpectCode(const absl::StatusOr<Image>& r, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), fragment)) << r.status();
}

TEST(DecodeErrors, EmptyAndUnknown) {
  ExpectCode(DecodeImage("", Rgb()), StatusCode::kInvalidArgument, "empty image data");
  ExpectCode(DecodeImage("<html><body>nope</body></html>", Rgb()), StatusCode::kInvalidArgument,
             "unrecognised image format (first bytes 3c 68 74 6d 6c 3e 3c 62)");
  ExpectCode(DecodeImage(std::string("\x89PN", 3), Rgb()), StatusCode::kInvalidArgument,
             "unrecognised image format");
}

TEST(DecodeErrors, TruncatedJpeg) {
  const std::string data = Media("fruits.jpg");
  for (size_t keep : {size_t{4}, size_t{200}, data.size() / 2, data.size() - 2}) {
    ExpectCode(DecodeImage(data.substr(0, keep), Rgb()), StatusCode::kInvalidArgument,
               "truncated JPEG data");
  }
}

TEST(DecodeErrors, TruncatedPng) {
  const std::string data = Media("coffee.png");
  for (size_t keep : {size_t{8}, size_t{30}, data.size() / 2, data.size() - 12, data.size() - 1}) {
    ExpectCode(DecodeImage(data.substr(0, keep), Rgb()), StatusCode::kInvalidArgument,
               "truncated PNG data");
  }
}

TEST(DecodeErrors, CorruptPngMiddle) {
  std::string data = Media("coffee.png");
  const size_t idat = data.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (size_t i = 0; i < 64; ++i) data[idat + 1000 + i] ^= 0x5a;  // CRC no longer matches
  ExpectCode(DecodeImage(data, Rgb()), StatusCode::kInvalidArgument, "corrupt PNG data");

  // Valid CRCs but a deflate stream that ends early: libpng reports missing image data.
  const std::string raw(4 * 4 * 3, 'x');
  std::string png = MakePng(4, 4, 8, 2, raw);
  std::string filtered;
  for (int y = 0; y < 2; ++y) filtered += '\0' + raw.substr(0, 12);
  uLongf len = compressBound(filtered.size());
  std::string z(len, '\0');
  compress(reinterpret_cast<Bytef*>(&z[0]), &len, reinterpret_cast<const Bytef*>(filtered.data()),
           filtered.size());
  z.resize(len);
  const std::string short_png =
      kPngSig + Ihdr(4, 4, 8, 2) + PngChunk("IDAT", z) + PngChunk("IEND", "");
  ExpectCode(DecodeImage(short_png, Rgb()), StatusCode::kInvalidArgument, "corrupt PNG data");
}

TEST(DecodeErrors, CorruptJpegMiddle) {
  const std::string data = Media("fruits.jpg");
  const size_t sos = data.find("\xff\xda");
  ASSERT_NE(sos, std::string::npos);
  const size_t mid = sos + (data.size() - sos) / 2;
  // A restart marker in a file without restart intervals.
  std::string rst = data;
  rst[mid] = '\xff';
  rst[mid + 1] = '\xd3';
  ExpectCode(DecodeImage(rst, Rgb()), StatusCode::kInvalidArgument, "corrupt JPEG data");
  // An EOI in the middle of the scan: the header walk sees a complete file, libjpeg does not.
  std::string early_eoi = data;
  early_eoi[mid] = '\xff';
  early_eoi[mid + 1] = '\xd9';
  ExpectCode(DecodeImage(early_eoi, Rgb()), StatusCode::kInvalidArgument, "corrupt JPEG data");
  // JPEG has no checksum: garbage that keeps the entropy-coded data syntactically valid decodes
  // to damaged pixels in every decoder, Pillow's included. Pinned here so that the limit of the
  // check is explicit.
  std::string garbage = data;
  std::mt19937 rng(0);
  for (size_t i = 0; i < 400; ++i) garbage[mid + i] = static_cast<char>(rng() % 255);  // no 0xFF
  EXPECT_TRUE(DecodeImage(garbage, Rgb()).ok());
}

TEST(DecodeErrors, CorruptWebpBmpGif) {
  const cv::Mat bgr = Pattern(40, 40, 3);
  std::string webp = Encode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});
  ExpectCode(DecodeImage(webp.substr(0, webp.size() / 2), Rgb()), StatusCode::kInvalidArgument,
             "truncated WebP data");
  for (size_t i = 30; i < webp.size(); i += 3) webp[i] = static_cast<char>(i * 13);
  ExpectCode(DecodeImage(webp, Rgb()), StatusCode::kInvalidArgument, "WebP");

  const std::string bmp = Encode(bgr, ".bmp");
  ExpectCode(DecodeImage(bmp.substr(0, bmp.size() - 100), Rgb()), StatusCode::kInvalidArgument,
             "truncated BMP data");

  GifSpec s;
  s.global_palette = Palette({{1, 2, 3}, {4, 5, 6}}, 2);
  s.indices = std::vector<uint8_t>(12, 1);
  const std::string gif = MakeGif(s);
  ExpectCode(DecodeImage(gif.substr(0, gif.size() - 8), Rgb()), StatusCode::kInvalidArgument,
             "truncated GIF data");
  std::string bad_code = gif;
  // First code after the clear code: a code that is not yet in the table.
  const size_t lzw = gif.size() - 1 - 1 - GifLzw(s.indices, 8).size() + 2;
  bad_code[lzw + 1] = '\xff';
  bad_code[lzw + 2] = '\xff';
  auto r = DecodeImage(bad_code, Rgb());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(DecodeErrors, DecompressionBombHeadersRejectedBeforeDecoding) {
  // PNG: signature + IHDR claiming 60000 x 60000, nothing else.
  const std::string png = kPngSig + Ihdr(60000, 60000, 8, 2);
  // JPEG: SOI + SOF0 claiming 60000 x 60000.
  const std::string jpeg(
      "\xff\xd8\xff\xc0\x00\x11\x08\xea\x60\xea\x60\x03\x01\x22\x00\x02\x11"
      "\x01\x03\x11\x01",
      21);
  // GIF: logical screen 60000 x 60000 and a 1x1 frame.
  std::string gif = "GIF89a";
  PutLe16(&gif, 60000);
  PutLe16(&gif, 60000);
  gif += std::string("\0\0\0,\0\0\0\0\1\0\1\0\0\2", 14);
  // WebP VP8X canvas 16384 x 16384 (pixel limit) and BMP 60000 x 60000.
  std::string webp("RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0\xff\x3f\0\xff\x3f\0", 30);
  webp[4] = 22;
  std::string bmp("BM", 2);
  PutLe32(&bmp, 54);
  PutLe32(&bmp, 0);
  PutLe32(&bmp, 54);
  PutLe32(&bmp, 40);
  PutLe32(&bmp, 60000);
  PutLe32(&bmp, 60000);
  PutLe16(&bmp, 1);
  PutLe16(&bmp, 24);
  PutLe32(&bmp, 0);
  bmp += std::string(20, '\0');

  for (const std::string& data : {png, jpeg, gif, webp, bmp}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = DecodeImage(data, Rgb());
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status();
    EXPECT_LT(us, 5000.0) << r.status();
  }
  // One side over max_image_side (default 16384) with few pixels.
  ExpectCode(DecodeImage(kPngSig + Ihdr(20000, 2, 8, 2), Rgb()), StatusCode::kResourceExhausted,
             "maximum side");
  // Zero width is invalid, not a limit.
  ExpectCode(DecodeImage(kPngSig + Ihdr(0, 2, 8, 2), Rgb()), StatusCode::kInvalidArgument,
             "invalid size");
}

TEST(DecodeErrors, LimitsComeFromOptions) {
  const std::string data = Media("fruits.jpg");
  ImageDecodeOptions o;
  o.limits.max_encoded_bytes = 1000;
  ExpectCode(DecodeImage(data, o), StatusCode::kResourceExhausted, "exceeds the limit");
  o = ImageDecodeOptions{};
  o.limits.max_image_pixels = 480 * 512 - 1;
  ExpectCode(DecodeImage(data, o), StatusCode::kResourceExhausted, "pixels");
  o.limits.max_image_pixels = 480 * 512;
  o.limits.max_image_side = 511;
  ExpectCode(DecodeImage(data, o), StatusCode::kResourceExhausted, "maximum side");
  o.limits.max_image_side = 512;
  EXPECT_TRUE(DecodeImage(data, o).ok());

  auto header = ReadImageHeader(data, MediaLimits{});
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->format, ImageFormat::kJpeg);
  EXPECT_EQ(header->width, 512);
  EXPECT_EQ(header->height, 480);
}

TEST(DecodeErrors, RandomMutationsNeverCrash) {
  // Every outcome is acceptable except a crash or an image whose size disagrees with itself.
  const std::vector<std::string> seeds = {
      Media("fruits.jpg"),
      Media("camera.png"),
      Media("synthetic_rgba_97x64.png"),
      Encode(Pattern(20, 30, 4), ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}),
      Encode(Pattern(20, 30, 3), ".webp", {cv::IMWRITE_WEBP_QUALITY, 80}),
      Encode(Pattern(20, 30, 3), ".bmp")};
  GifSpec s;
  s.global_palette = Palette({{1, 2, 3}, {4, 5, 6}}, 2);
  s.indices = std::vector<uint8_t>(12, 1);
  std::vector<std::string> all = seeds;
  all.push_back(MakeGif(s));
  std::mt19937 rng(1234);
  int ok = 0, failed = 0;
  for (const std::string& seed : all) {
    for (int round = 0; round < 60; ++round) {
      std::string m = seed;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        const size_t pos = rng() % m.size();
        switch (rng() % 3) {
          case 0:
            m[pos] = static_cast<char>(rng());
            break;
          case 1:
            m.erase(pos, 1 + rng() % 16);
            break;
          default:
            m.insert(pos, std::string(1 + rng() % 16, static_cast<char>(rng())));
            break;
        }
        if (m.empty()) m = "x";
      }
      for (bool rgb : {true, false}) {
        ImageDecodeOptions o;
        o.convert_to_rgb = rgb;
        auto r = DecodeImage(m, o);
        if (r.ok()) {
          ++ok;
          ASSERT_EQ(r->pixels.size(), static_cast<size_t>(r->height) * r->width * r->channels());
        } else {
          ++failed;
          const auto code = r.status().code();
          ASSERT_TRUE(code == StatusCode::kInvalidArgument ||
                      code == StatusCode::kResourceExhausted)
              << r.status();
        }
      }
    }
  }
  std::printf("mutations: %d decoded, %d rejected\n", ok, failed);
}

}  // namespace
}  // namespace smolserve::preprocess
