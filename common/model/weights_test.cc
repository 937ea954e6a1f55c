#include "common/model/weights.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/safetensors/safetensors.h"
#include "common/safetensors/torch_tensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace smolserve::model {
namespace {

using ::testing::HasSubstr;

constexpr char kTinyDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";
constexpr char kTinyBf16Dir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry-bf16";

std::string TmpDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
  mkdir(dir.c_str(), 0755);
  return dir;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A small checkpoint: a [2, 3] float, a [4] bf16, a [3] f16 and an int64 tensor.
std::string SmallCheckpoint() {
  safetensors::Writer w;
  EXPECT_TRUE(
      safetensors::AddTensor(w, "a.weight", at::arange(6, at::kFloat).reshape({2, 3})).ok());
  EXPECT_TRUE(safetensors::AddTensor(w, "b.bias", at::full({4}, 1.5, at::kBFloat16)).ok());
  EXPECT_TRUE(safetensors::AddTensor(w, "c.half", at::full({3}, -2.25, at::kHalf)).ok());
  EXPECT_TRUE(safetensors::AddTensor(w, "ids", at::arange(5, at::kLong)).ok());
  return w.Serialize();
}

std::unique_ptr<WeightStore> OpenSmall(const std::string& name) {
  const std::string dir = TmpDir(name);
  WriteFile(dir + "/model.safetensors", SmallCheckpoint());
  auto s = WeightStore::Open(dir);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(WeightStoreTest, TakeConvertsAndTracksUse) {
  auto s = OpenSmall("take");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Names(), (std::vector<std::string>{"a.weight", "b.bias", "c.half", "ids"}));
  EXPECT_TRUE(s->Contains("a.weight"));
  EXPECT_EQ(s->ShapeOf("a.weight"), (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(s->ShapeOf("zzz").has_value());

  auto a = s->Take("a.weight", {2, 3}, at::kFloat);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(at::equal(*a, at::arange(6, at::kFloat).reshape({2, 3})));
  auto b = s->Take("b.bias", {4}, at::kFloat);  // BF16 -> F32
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(*b, at::full({4}, 1.5, at::kFloat)));
  auto c = s->Take("c.half", {3}, at::kBFloat16);  // F16 -> BF16
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scalar_type(), at::kBFloat16);
  EXPECT_EQ(c->to(at::kFloat)[0].item<float>(), -2.25f);

  // Integer tensors only load as their own dtype.
  auto bad = s->Take("ids", {5}, at::kFloat);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'ids'"));

  // 'ids' is still unused.
  absl::Status st = s->CheckAllUsed();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("1 unused tensor(s) in checkpoint: ids"));
  ASSERT_TRUE(s->Take("ids", {5}, at::kLong).ok());
  EXPECT_TRUE(s->CheckAllUsed().ok());
  // Taking twice is allowed (tied embeddings).
  EXPECT_TRUE(s->Take("a.weight", {2, 3}, at::kFloat).ok());
}

TEST(WeightStoreTest, MissingTensor) {
  auto s = OpenSmall("missing");
  ASSERT_NE(s, nullptr);
  auto t = s->Take("model.norm.weight", {4}, at::kFloat);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t.status().message(), "missing tensor 'model.norm.weight'");
}

TEST(WeightStoreTest, WrongShape) {
  auto s = OpenSmall("shape");
  ASSERT_NE(s, nullptr);
  auto t = s->Take("a.weight", {3, 2}, at::kFloat);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message(), "tensor 'a.weight' has shape [2, 3], expected [3, 2]");
  // A failed Take does not count as use.
  EXPECT_THAT(std::string(s->CheckAllUsed().message()), HasSubstr("a.weight"));
}

TEST(WeightStoreTest, ExtraTensorIsAnError) {
  auto s = OpenSmall("extra");
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Take("a.weight", {2, 3}, at::kFloat).ok());
  ASSERT_TRUE(s->Take("b.bias", {4}, at::kFloat).ok());
  absl::Status st = s->CheckAllUsed();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "2 unused tensor(s) in checkpoint: c.half, ids");
}

TEST(WeightStoreTest, TruncatedFile) {
  const std::string dir = TmpDir("truncated");
  const std::string bytes = SmallCheckpoint();
  WriteFile(dir + "/model.safetensors", bytes.substr(0, bytes.size() - 7));
  auto s = WeightStore::Open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("model.safetensors"));
}

TEST(WeightStoreTest, CorruptHeader) {
  const std::string dir = TmpDir("corrupt");
  std::string bytes = SmallCheckpoint();
  bytes[8] = '#';  // first byte of the JSON header
  WriteFile(dir + "/model.safetensors", bytes);
  auto s = WeightStore::Open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);

  // Header length far beyond the file.
  bytes = SmallCheckpoint();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(0x7f);
  WriteFile(dir + "/model.safetensors", bytes);
  s = WeightStore::Open(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);

  WriteFile(dir + "/model.safetensors", "abc");
  EXPECT_EQ(WeightStore::Open(dir).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightStoreTest, NoWeights) {
  auto s = WeightStore::Open(TmpDir("empty"));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("model.safetensors.index.json"));
}

std::string Shard(const std::vector<std::string>& names) {
  safetensors::Writer w;
  for (const auto& n : names) {
    EXPECT_TRUE(safetensors::AddTensor(w, n, at::ones({2}, at::kFloat)).ok());
  }
  return w.Serialize();
}

TEST(WeightStoreTest, Sharded) {
  const std::string dir = TmpDir("sharded");
  WriteFile(dir + "/model-00001-of-00002.safetensors", Shard({"x", "y"}));
  WriteFile(dir + "/model-00002-of-00002.safetensors", Shard({"z"}));
  WriteFile(dir + "/model.safetensors.index.json", R"({"metadata": {"total_size": 24},
    "weight_map": {"x": "model-00001-of-00002.safetensors",
                   "y": "model-00001-of-00002.safetensors",
                   "z": "model-00002-of-00002.safetensors"}})");
  auto s = WeightStore::Open(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Names(), (std::vector<std::string>{"x", "y", "z"}));
  for (const char* n : {"x", "y", "z"}) ASSERT_TRUE((*s)->Take(n, {2}, at::kFloat).ok());
  EXPECT_TRUE((*s)->CheckAllUsed().ok());
}

TEST(WeightStoreTest, ShardedErrors) {
  const std::string dir = TmpDir("sharded_bad");
  WriteFile(dir + "/s1.safetensors", Shard({"x", "y"}));
  WriteFile(dir + "/s2.safetensors", Shard({"y"}));
  auto expect_bad = [&](const std::string& index, absl::StatusCode code,
                        const std::string& substr) {
    WriteFile(dir + "/model.safetensors.index.json", index);
    auto s = WeightStore::Open(dir);
    ASSERT_FALSE(s.ok()) << index;
    EXPECT_EQ(s.status().code(), code) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(substr));
  };
  using C = absl::StatusCode;
  expect_bad("{", C::kInvalidArgument, "malformed JSON");
  expect_bad(R"({"metadata": {}})", C::kInvalidArgument, "weight_map");
  expect_bad(R"({"weight_map": {"x": "missing.safetensors"}})", C::kInvalidArgument,
             "shard 'missing.safetensors' does not exist");
  expect_bad(R"({"weight_map": {"x": "../s1.safetensors"}})", C::kInvalidArgument, "invalid shard");
  expect_bad(R"({"weight_map": {"q": "s1.safetensors"}})", C::kInvalidArgument,
             "tensor 'q' is listed in shard 's1.safetensors' but is not in that file");
  expect_bad(R"({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}})",
             C::kInvalidArgument, "appears in both");
}

TEST(WeightStoreTest, TinyModelBf16MatchesRoundedFp32) {
  auto f = WeightStore::Open(kTinyDir);
  auto b = WeightStore::Open(kTinyBf16Dir);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*f)->Names(), (*b)->Names());
  const std::string name = "model.vision_model.encoder.layers.0.mlp.fc1.weight";
  auto w32 = (*f)->Take(name, {64, 32}, at::kFloat);
  auto w16 = (*b)->Take(name, {64, 32}, at::kFloat);
  ASSERT_TRUE(w32.ok() && w16.ok());
  EXPECT_TRUE(at::equal(w32->to(at::kBFloat16).to(at::kFloat), *w16));
}

TEST(WeightStoreTest, FromTensorsCopies) {
  at::Tensor t = at::zeros({3});
  auto s = WeightStore::FromTensors({{"t", t}});
  auto got = s->Take("t", {3}, at::kFloat);
  ASSERT_TRUE(got.ok());
  got->fill_(7);
  EXPECT_EQ(t.sum().item<float>(), 0.0f);
  EXPECT_TRUE(s->CheckAllUsed().ok());
}

}  // namespace
}  // namespace smolserve::model
