#include "common/model/config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace smolserve::model {
namespace {

using ::testing::HasSubstr;

constexpr char kTinyDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";
constexpr char k500mDir[] = "models/SmolVLM2-500M-Video-Instruct";

TEST(ModelConfigTest, TinyConfig) {
  auto c = LoadModelConfig(kTinyDir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision.hidden_size, 32);
  EXPECT_EQ(c->vision.intermediate_size, 64);
  EXPECT_EQ(c->vision.num_hidden_layers, 2);
  EXPECT_EQ(c->vision.num_attention_heads, 4);
  EXPECT_EQ(c->vision.num_channels, 3);
  EXPECT_EQ(c->vision.image_size, 512);
  EXPECT_EQ(c->vision.patch_size, 16);
  EXPECT_EQ(c->vision.patches_per_side(), 32);
  EXPECT_DOUBLE_EQ(c->vision.layer_norm_eps, 1e-6);
  EXPECT_EQ(c->vision.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c->text.hidden_size, 32);
  EXPECT_EQ(c->text.intermediate_size, 64);
  EXPECT_EQ(c->text.num_hidden_layers, 2);
  EXPECT_EQ(c->text.num_attention_heads, 4);
  EXPECT_EQ(c->text.num_key_value_heads, 2);
  EXPECT_EQ(c->text.head_dim, 8);
  EXPECT_EQ(c->text.vocab_size, 49280);
  EXPECT_DOUBLE_EQ(c->text.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->text.rope_theta, 100000.0);
  EXPECT_EQ(c->text.max_position_embeddings, 8192);
  EXPECT_EQ(c->text.pad_token_id, 2);
  EXPECT_EQ(c->text.hidden_act, "silu");
  EXPECT_FALSE(c->text.attention_bias);
  EXPECT_FALSE(c->text.mlp_bias);
  EXPECT_EQ(c->scale_factor, 4);
  EXPECT_EQ(c->image_token_id, 49190);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "float32");
  EXPECT_EQ(c->image_seq_len(), 64);
  EXPECT_EQ(c->connector_input_size(), 512);
}

// The real 500M config omits many vision keys; they take SmolVLMVisionConfig defaults.
TEST(ModelConfigTest, SmolVLM2_500M_DefaultsFilled) {
  auto c = LoadModelConfig(k500mDir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision.hidden_size, 768);
  EXPECT_EQ(c->vision.intermediate_size, 3072);  // absent -> default
  EXPECT_EQ(c->vision.num_hidden_layers, 12);    // absent -> default
  EXPECT_EQ(c->vision.num_attention_heads, 12);
  EXPECT_EQ(c->vision.image_size, 512);
  EXPECT_EQ(c->vision.patch_size, 16);
  EXPECT_EQ(c->vision.num_channels, 3);              // absent -> default
  EXPECT_DOUBLE_EQ(c->vision.layer_norm_eps, 1e-6);  // absent -> default (not 1e-5)
  EXPECT_EQ(c->vision.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c->text.hidden_size, 960);
  EXPECT_EQ(c->text.intermediate_size, 2560);
  EXPECT_EQ(c->text.num_hidden_layers, 32);
  EXPECT_EQ(c->text.num_attention_heads, 15);
  EXPECT_EQ(c->text.num_key_value_heads, 5);
  EXPECT_EQ(c->text.head_dim, 64);
  EXPECT_EQ(c->text.vocab_size, 49280);
  EXPECT_DOUBLE_EQ(c->text.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->text.rope_theta, 100000.0);
  EXPECT_EQ(c->text.max_position_embeddings, 8192);
  EXPECT_EQ(c->text.pad_token_id, 2);
  EXPECT_EQ(c->text.hidden_act, "silu");  // absent -> default
  EXPECT_FALSE(c->text.attention_bias);
  EXPECT_EQ(c->scale_factor, 4);
  EXPECT_EQ(c->image_token_id, 49190);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "float32");
  EXPECT_EQ(c->connector_input_size(), 12288);
  EXPECT_EQ(c->image_seq_len(), 64);
}

TEST(ModelConfigTest, TextDefaults) {
  auto c = ParseModelConfig(R"({
    "scale_factor": 3, "image_token_id": 7,
    "vision_config": {"image_size": 384, "patch_size": 14},
    "text_config": {"hidden_size": 2048, "vocab_size": 49280}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision.hidden_size, 1152);
  EXPECT_EQ(c->vision.num_attention_heads, 16);
  EXPECT_EQ(c->vision.patches_per_side(), 27);
  EXPECT_EQ(c->image_seq_len(), 81);
  EXPECT_EQ(c->text.num_attention_heads, 32);   // LlamaConfig default
  EXPECT_EQ(c->text.num_key_value_heads, 32);   // = heads when absent
  EXPECT_EQ(c->text.head_dim, 64);              // = hidden / heads when absent
  EXPECT_EQ(c->text.intermediate_size, 11008);  // LlamaConfig default
  EXPECT_DOUBLE_EQ(c->text.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->text.rope_theta, 10000.0);
  EXPECT_FALSE(c->text.pad_token_id.has_value());
  EXPECT_EQ(c->text.bos_token_id, 1);
  EXPECT_EQ(c->text.eos_token_ids, std::vector<int64_t>({2}));
  EXPECT_TRUE(c->torch_dtype.empty());
  // head_dim: null also means "derive".
  c = ParseModelConfig(R"({"scale_factor": 1, "image_token_id": 7,
    "text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": null}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text.head_dim, 16);
}

void ExpectError(absl::string_view json, absl::StatusCode code, absl::string_view substr) {
  auto c = ParseModelConfig(json);
  ASSERT_FALSE(c.ok()) << json;
  EXPECT_EQ(c.status().code(), code) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(std::string(substr)));
}

constexpr char kValidText[] =
    R"("text_config": {"hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100})";

TEST(ModelConfigTest, Errors) {
  using C = absl::StatusCode;
  ExpectError("{not json", C::kInvalidArgument, "malformed JSON");
  ExpectError("", C::kInvalidArgument, "malformed JSON");
  ExpectError("[1, 2]", C::kInvalidArgument, "JSON object");
  ExpectError(absl::StrCat(R"({"image_token_id": 5, )", kValidText,
                           R"(, "vision_config": {"hidden_size": 30, "num_attention_heads": 4}})"),
              C::kInvalidArgument, "vision_config.num_attention_heads");
  ExpectError(absl::StrCat(R"({"image_token_id": 5, "scale_factor": 3, )", kValidText,
                           R"(, "vision_config": {"image_size": 512, "patch_size": 16}})"),
              C::kInvalidArgument, "scale_factor");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": 64,
      "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 100}})",
              C::kInvalidArgument, "text_config.num_key_value_heads");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": 60,
      "num_attention_heads": 8, "vocab_size": 100}})",
              C::kInvalidArgument, "text_config.num_attention_heads");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": "big"}})",
              C::kInvalidArgument, "text_config.hidden_size");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": -64}})",
              C::kInvalidArgument, "text_config.hidden_size");
  ExpectError(absl::StrCat(R"({"image_token_id": 500, "scale_factor": 1, )", kValidText, "}"),
              C::kInvalidArgument, "image_token_id");
  ExpectError(absl::StrCat(R"({"image_token_id": 5, "scale_factor": 1, "tie_word_embeddings": 1, )",
                           kValidText, "}"),
              C::kInvalidArgument, "tie_word_embeddings");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": 64,
      "num_attention_heads": 4, "vocab_size": 100, "rope_scaling": {"type": "linear"}}})",
              C::kUnimplemented, "rope_scaling");
  ExpectError(R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"hidden_size": 64,
      "num_attention_heads": 4, "vocab_size": 100, "hidden_act": "gelu"}})",
              C::kUnimplemented, "hidden_act");
  ExpectError(
      R"({"image_token_id": 5, "scale_factor": 1, "text_config": {"model_type": "mistral"}})",
      C::kUnimplemented, "model_type");
  ExpectError(absl::StrCat(R"({"image_token_id": 5, "scale_factor": 1, )", kValidText,
                           R"(, "vision_config": {"hidden_act": "relu"}})"),
              C::kUnimplemented, "vision_config.hidden_act");
  ExpectError(absl::StrCat(R"({"image_token_id": 5, "scale_factor": 1, )", kValidText,
                           R"(, "vision_config": {"layer_norm_eps": 0}})"),
              C::kInvalidArgument, "vision_config.layer_norm_eps");
  // transformers' own class defaults are inconsistent for pixel shuffle (224/32 = 7, r = 2).
  ExpectError(absl::StrCat(R"({"image_token_id": 5, )", kValidText, "}"), C::kInvalidArgument,
              "scale_factor");
}

TEST(ModelConfigTest, LoadMissing) {
  auto c = LoadModelConfig("/nonexistent/dir");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("config.json"));
}

TEST(GenerationConfigTest, TinyAndVariants) {
  auto g = LoadGenerationConfig(kTinyDir);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->eos_token_ids, std::vector<int64_t>({49279}));
  EXPECT_EQ(g->pad_token_id, 2);
  EXPECT_EQ(g->bos_token_id, 1);
  EXPECT_FALSE(g->do_sample.has_value());
  EXPECT_FALSE(g->temperature.has_value());

  g = ParseGenerationConfig(R"({"eos_token_id": [49279, 2], "do_sample": true,
      "temperature": 0.7, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.1,
      "max_new_tokens": 64, "pad_token_id": null})");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->eos_token_ids, std::vector<int64_t>({49279, 2}));
  EXPECT_FALSE(g->pad_token_id.has_value());
  EXPECT_EQ(g->do_sample, true);
  EXPECT_DOUBLE_EQ(*g->temperature, 0.7);
  EXPECT_DOUBLE_EQ(*g->top_p, 0.9);
  EXPECT_EQ(g->top_k, 20);
  EXPECT_DOUBLE_EQ(*g->repetition_penalty, 1.1);
  EXPECT_EQ(g->max_new_tokens, 64);

  g = ParseGenerationConfig("{}");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->eos_token_ids.empty());

  EXPECT_EQ(ParseGenerationConfig(R"({"eos_token_id": "x"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGenerationConfig(R"({"eos_token_id": [1, "x"]})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGenerationConfig(R"({"top_p": 2})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGenerationConfig("{").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadGenerationConfig("/nonexistent").status().code(), absl::StatusCode::kNotFound);
}

// --- ResolveModelDir with a fake Hugging Face cache ---

void MakeDirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty()) mkdir(cur.c_str(), 0755);
    }
    if (i < path.size()) cur += path[i];
  }
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class ResolveModelDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/hf_resolve_test");
    cache_ = root_ + "/cache";
    repo_ = cache_ + "/models--HuggingFaceTB--SmolVLM2-500M-Video-Instruct";
    MakeDirs(repo_ + "/refs");
    MakeDirs(repo_ + "/snapshots/" + kMain);
    MakeDirs(repo_ + "/snapshots/" + kOther);
    WriteFile(repo_ + "/refs/main", std::string(kMain) + "\n");
    WriteFile(repo_ + "/refs/v1", kOther);
    setenv("HF_HUB_CACHE", cache_.c_str(), 1);
    unsetenv("HF_HOME");
  }
  void TearDown() override {
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HOME");
  }
  static constexpr char kMain[] = "0123456789abcdef0123456789abcdef01234567";
  static constexpr char kOther[] = "fedcba9876543210fedcba9876543210fedcba98";
  std::string root_, cache_, repo_;
};

TEST_F(ResolveModelDirTest, LocalDirectory) {
  auto d = ResolveModelDir(kTinyDir);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, kTinyDir);
}

TEST_F(ResolveModelDirTest, RepoIdDefaultRevisionMain) {
  auto d = ResolveModelDir("HuggingFaceTB/SmolVLM2-500M-Video-Instruct");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, repo_ + "/snapshots/" + kMain);
}

TEST_F(ResolveModelDirTest, RevisionThroughRefAndCommitHash) {
  auto d = ResolveModelDir("HuggingFaceTB/SmolVLM2-500M-Video-Instruct@v1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, repo_ + "/snapshots/" + kOther);
  d = ResolveModelDir(absl::StrCat("HuggingFaceTB/SmolVLM2-500M-Video-Instruct@", kOther));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, repo_ + "/snapshots/" + kOther);
}

TEST_F(ResolveModelDirTest, HfHomeFallback) {
  unsetenv("HF_HUB_CACHE");
  const std::string home = root_ + "/hfhome";
  MakeDirs(home + "/hub/models--a--b/refs");
  MakeDirs(home + "/hub/models--a--b/snapshots/" + kMain);
  WriteFile(home + "/hub/models--a--b/refs/main", kMain);
  setenv("HF_HOME", home.c_str(), 1);
  auto d = ResolveModelDir("a/b");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, home + "/hub/models--a--b/snapshots/" + kMain);
}

TEST_F(ResolveModelDirTest, NotFound) {
  auto d = ResolveModelDir("HuggingFaceTB/NoSuchModel");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("models--HuggingFaceTB--NoSuchModel"));
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("offline"));
  d = ResolveModelDir("HuggingFaceTB/SmolVLM2-500M-Video-Instruct@nosuchbranch");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("nosuchbranch"));
  // A commit hash with no snapshot.
  d = ResolveModelDir(
      "HuggingFaceTB/SmolVLM2-500M-Video-Instruct@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveModelDir("/no/such/dir").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveModelDir("a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveModelDir("justaname").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveModelDir("../x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveModelDir("").status().code(), absl::StatusCode::kInvalidArgument);
  // A ref pointing outside snapshots/ is rejected.
  WriteFile(repo_ + "/refs/evil", "../../x");
  EXPECT_FALSE(ResolveModelDir("HuggingFaceTB/SmolVLM2-500M-Video-Instruct@evil").ok());
}

}  // namespace
}  // namespace smolserve::model
