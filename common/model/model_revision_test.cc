#include "common/model/model_revision.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/cache/sha256.h"
#include "gtest/gtest.h"

namespace smolserve::model {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class ModelRevisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = fs::path(tmp != nullptr ? tmp : "/tmp") /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Larger than the 4 MiB read chunk, so the streaming path crosses chunk boundaries.
    weights_.assign((size_t{9} << 20) + 123, '\0');
    for (size_t i = 0; i < weights_.size(); ++i) weights_[i] = static_cast<char>(i * 131 % 251);
    Write(dir_ / "config.json", R"({"model_type": "smolvlm"})");
    Write(dir_ / "model.safetensors", weights_);
    Write(dir_ / "tokenizer.json", "{}");
  }
  std::string Revision() {
    auto r = ComputeModelRevision(dir_.string());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : "";
  }
  fs::path dir_;
  std::string weights_;
};

TEST_F(ModelRevisionTest, IsTheDocumentedDigest) {
  cache::Sha256 h;
  h.UpdateField("smolserve.model_revision.v1");
  h.UpdateInt(2);
  const std::string config = R"({"model_type": "smolvlm"})";
  h.UpdateField("config.json").UpdateInt(static_cast<int64_t>(config.size())).Update(config);
  h.UpdateField("model.safetensors").UpdateInt(static_cast<int64_t>(weights_.size())).Update(weights_);
  const std::string want = cache::DigestHex(h.Final());
  EXPECT_EQ(Revision(), want);
  EXPECT_EQ(Revision(), want);  // deterministic
  EXPECT_EQ(want.size(), 64u);
}

TEST_F(ModelRevisionTest, ChangesWithWeightsAndConfigOnly) {
  const std::string base = Revision();
  Write(dir_ / "tokenizer.json", R"({"x": 1})");  // not part of the revision
  EXPECT_EQ(Revision(), base);

  std::string changed = weights_;
  changed[(size_t{5} << 20) + 7] ^= 1;  // one bit in the second chunk
  Write(dir_ / "model.safetensors", changed);
  const std::string weights_changed = Revision();
  EXPECT_NE(weights_changed, base);
  Write(dir_ / "model.safetensors", weights_);
  EXPECT_EQ(Revision(), base);

  Write(dir_ / "config.json", R"({"model_type": "smolvlm", "scale_factor": 4})");
  const std::string config_changed = Revision();
  EXPECT_NE(config_changed, base);
  EXPECT_NE(config_changed, weights_changed);
}

TEST_F(ModelRevisionTest, ShardsAndIndexCount) {
  const std::string single = Revision();
  fs::remove(dir_ / "model.safetensors");
  Write(dir_ / "model-00001-of-00002.safetensors", weights_.substr(0, 1000));
  Write(dir_ / "model-00002-of-00002.safetensors", weights_.substr(1000));
  Write(dir_ / "model.safetensors.index.json", R"({"weight_map": {}})");
  const std::string sharded = Revision();
  EXPECT_NE(sharded, single);
  Write(dir_ / "model-00002-of-00002.safetensors", weights_.substr(1000) + "x");
  EXPECT_NE(Revision(), sharded);
  Write(dir_ / "model-00002-of-00002.safetensors", weights_.substr(1000));
  Write(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a": "b"}})");
  EXPECT_NE(Revision(), sharded);
}

TEST_F(ModelRevisionTest, MissingFilesAreNotFound) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_EQ(ComputeModelRevision(dir_.string()).status().code(), absl::StatusCode::kNotFound);
  Write(dir_ / "model.safetensors", weights_);
  fs::remove(dir_ / "config.json");
  EXPECT_EQ(ComputeModelRevision(dir_.string()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ComputeModelRevision((dir_ / "absent").string()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace smolserve::model
