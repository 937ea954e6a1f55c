#include "common/safetensors/safetensors.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace smolserve::safetensors {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), bytes.size());
}

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out;
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  return out + json + data;
}

TEST(Safetensors, RoundTrip) {
  Writer w;
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint8_t b[3] = {7, 8, 9};
  ASSERT_TRUE(w.Add("a", DType::kF32, {2, 3}, a, sizeof(a)).ok());
  ASSERT_TRUE(w.Add("b", DType::kU8, {3}, b, sizeof(b)).ok());
  EXPECT_FALSE(w.Add("a", DType::kU8, {1}, b, 1).ok());
  EXPECT_FALSE(w.Add("c", DType::kF32, {2}, a, 4).ok());
  w.SetMetadata("format", "pt");
  const std::string path = TempPath("rt.safetensors");
  ASSERT_TRUE(w.WriteFile(path).ok());
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->tensors()[0].name, "a");
  const TensorView* va = (*f)->Find("a");
  ASSERT_NE(va, nullptr);
  EXPECT_EQ(va->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(va->data, a, sizeof(a)), 0);
  EXPECT_EQ((*f)->Find("b")->data[2], 9);
  EXPECT_EQ((*f)->Find("zzz"), nullptr);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
}

TEST(Safetensors, ReadsGoldenModel) {
  auto f = File::Open("tests/golden/models/tiny-smolvlm2-256m-geometry/model.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  const TensorView* v = (*f)->Find("lm_head.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::kF32);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{49280, 32}));
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* expect;
};

TEST(Safetensors, RejectsMalformedFiles) {
  const std::string good_json =
      R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<BadCase> cases = {
      {"empty", "", "shorter than"},
      {"short", "abc", "shorter than"},
      {"huge_header", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "not sane"},
      {"header_past_end", std::string("\x40\x00\x00\x00\x00\x00\x00\x00", 8) + "{}",
       "past the end"},
      {"not_json", WithHeader("{not json", ""), "corrupt header"},
      {"not_object", WithHeader("[1,2]", ""), "not a JSON object"},
      {"truncated_data", WithHeader(good_json, std::string(4, '\0')), "outside"},
      {"size_mismatch",
       WithHeader(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                  std::string(8, '\0')),
       "expected 12"},
      {"bad_dtype",
       WithHeader(R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})",
                  std::string(8, '\0')),
       "unsupported dtype"},
      {"overlap",
       WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  std::string(8, '\0')),
       "overlap"},
      {"missing_fields", WithHeader(R"({"t":{"dtype":"F32"}})", ""), "lacks"},
      {"negative_dim",
       WithHeader(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
       "bad dimension"},
      // Found with tests/fuzz/safetensors_fuzzer: 2^61 F64 elements are 2^64 bytes, which
      // wrapped to 0 and matched an empty range (ToTensor then allocated the shape).
      {"byte_size_overflow",
       WithHeader(R"({"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})",
                  ""),
       "shape overflows"},
      {"byte_size_overflow_2d",
       WithHeader(R"({"t":{"dtype":"I32","shape":[4294967296,1073741824],"data_offsets":[0,0]}})",
                  ""),
       "shape overflows"},
  };
  for (const auto& c : cases) {
    const std::string path = TempPath(std::string(c.name) + ".safetensors");
    WriteBytes(path, c.bytes);
    auto f = File::Open(path);
    ASSERT_FALSE(f.ok()) << c.name;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(std::string(f.status().message()).find(c.expect), std::string::npos)
        << c.name << ": " << f.status();
  }
  EXPECT_EQ(File::Open(TempPath("does_not_exist")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace smolserve::safetensors
