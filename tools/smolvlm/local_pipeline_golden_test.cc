// The whole pipeline in one process (preprocessing -> vision -> decoder: the front's chat
// pipeline over in-process stage clients, generating on the decoder's BatchEngine, each
// conversation of a batch as its own sequence) on every fixture case, against transformers: image_hidden_states and last-position logits within 1e-4
// (fp32; the fixtures' own kernel-to-kernel spread is ~2e-5) and all 16 greedy ids equal.
// The bf16 model is compared with the bf16 fixtures at bf16 tolerances.
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/safetensors/safetensors.h"
#include "common/safetensors/torch_tensors.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_case.h"
#include "tools/smolvlm/local_pipeline.h"

namespace smolserve::cli {
namespace {

at::Tensor GoldenTensor(const std::string& file, const std::string& name) {
  auto f = safetensors::File::Open(file);
  if (!f.ok()) return {};
  const auto* v = (*f)->Find(name);
  if (v == nullptr) return {};
  auto t = safetensors::ToTensor(*v);
  return t.ok() ? t->to(at::kFloat) : at::Tensor();
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// Largest difference in units of the last place of bfloat16 at the tensor's scale (its
// largest magnitude): bf16 has 8 significant bits, ulp(x) = 2^(floor(log2|x|) - 7).
double MaxBf16Ulps(const at::Tensor& a, const at::Tensor& golden) {
  const double scale = golden.to(at::kFloat).abs().max().item<double>();
  const double ulp = std::pow(2.0, std::floor(std::log2(scale)) - 7);
  return MaxAbsDiff(a, golden) / ulp;
}

struct Loaded {
  std::unique_ptr<LocalPipeline> fp32, bf16;
};

Loaded& Pipelines() {
  static Loaded* loaded = [] {
    at::set_num_threads(2);
    auto* l = new Loaded();
    LocalPipelineOptions o;
    o.model = golden::kTinyModel;
    o.decoder.dtype = at::kFloat;
    auto p = LocalPipeline::Load(o);
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) l->fp32 = *std::move(p);
    o.model = golden::kTinyModelBf16;
    o.decoder.dtype = at::kBFloat16;
    auto q = LocalPipeline::Load(o);
    EXPECT_TRUE(q.ok()) << q.status();
    if (q.ok()) l->bf16 = *std::move(q);
    return l;
  }();
  return *loaded;
}

preprocess::ChatRequest Greedy16(const nlohmann::json& c) {
  preprocess::ChatRequest r;
  r.prepare = golden::CaseRequest(c);
  r.generation.max_new_tokens = 16;
  r.generation.ignore_eos = true;
  return r;
}

std::vector<int64_t> Ids(const preprocess::ChatChoice& c) {
  return std::vector<int64_t>(c.token_ids.begin(), c.token_ids.end());
}

class EndToEnd : public ::testing::TestWithParam<std::string> {};

TEST_P(EndToEnd, Fp32MatchesTransformers) {
  auto& p = Pipelines();
  ASSERT_NE(p.fp32, nullptr);
  const auto c = golden::ReadCase(GetParam());
  preprocess::MediaAccess access;
  access.base_dir = golden::kGoldenDir;
  auto run = p.fp32->Run(Greedy16(c), access);
  ASSERT_TRUE(run.ok()) << run.status();
  const std::string file = std::string(golden::kGoldenDir) + "cases/" + GetParam() + "/tensors_fp32.safetensors";
  const at::Tensor ihs = GoldenTensor(file, "image_hidden_states");
  if (ihs.defined()) {
    ASSERT_TRUE(run->image_hidden_states.defined());
    ASSERT_EQ(run->image_hidden_states.sizes(), ihs.sizes());
    const double d = MaxAbsDiff(run->image_hidden_states, ihs);
    EXPECT_LT(d, 1e-4) << "image_hidden_states max |diff| " << d;
    RecordProperty("image_hidden_states_max_abs_diff", std::to_string(d));
  } else {
    EXPECT_FALSE(run->image_hidden_states.defined());
  }
  const at::Tensor logits = GoldenTensor(file, "logits_last");
  ASSERT_TRUE(logits.defined());
  ASSERT_EQ(run->logits_last.sizes(), logits.sizes());
  const double d = MaxAbsDiff(run->logits_last, logits);
  EXPECT_LT(d, 1e-4) << "logits_last max |diff| " << d;
  RecordProperty("logits_last_max_abs_diff", std::to_string(d));
  const auto golden_ids = c["generated_ids"].get<std::vector<std::vector<int64_t>>>();
  ASSERT_EQ(run->result.choices.size(), golden_ids.size());
  for (size_t b = 0; b < golden_ids.size(); ++b) {
    EXPECT_EQ(Ids(run->result.choices[b]), golden_ids[b]) << "row " << b;
    EXPECT_EQ(run->result.choices[b].text, c["generated_text_skip_special"][b].get<std::string>())
        << "row " << b;
    EXPECT_EQ(run->text_with_special[b], c["generated_text"][b].get<std::string>()) << "row " << b;
  }
}

// bf16 runs the same weights rounded to bf16; our kernels accumulate in a different order
// than PyTorch's, so values agree to bf16 precision, not bit for bit. Tolerance: within
// kMaxUlps units in the last place of bf16 at the tensor's scale (the outputs are
// themselves rounded to bf16, so one ulp is the smallest possible disagreement). For scale, the fixtures' own bf16-vs-fp32 gap is
// up to 0.44 on the logits (|logits| up to ~38, where one bf16 ulp is 0.25) and 0.031 on
// the features.
constexpr double kMaxUlps = 2;
TEST_P(EndToEnd, Bf16WithinBf16Spread) {
  auto& p = Pipelines();
  ASSERT_NE(p.bf16, nullptr);
  const auto c = golden::ReadCase(GetParam());
  preprocess::MediaAccess access;
  access.base_dir = golden::kGoldenDir;
  auto run = p.bf16->Run(Greedy16(c), access);
  ASSERT_TRUE(run.ok()) << run.status();
  const std::string file =
      std::string(golden::kGoldenDir) + "cases/" + GetParam() + "/tensors_bf16model.safetensors";
  const at::Tensor ihs = GoldenTensor(file, "image_hidden_states");
  if (ihs.defined()) {
    const double d = MaxAbsDiff(run->image_hidden_states, ihs);
    const double u = MaxBf16Ulps(run->image_hidden_states, ihs);
    EXPECT_LE(u, kMaxUlps) << "bf16 image_hidden_states max |diff| " << d << " (" << u << " ulps)";
    RecordProperty("bf16_image_hidden_states_max_abs_diff", std::to_string(d));
    RecordProperty("bf16_image_hidden_states_max_ulps", std::to_string(u));
  }
  const at::Tensor logits = GoldenTensor(file, "logits_last");
  ASSERT_TRUE(logits.defined());
  const double d = MaxAbsDiff(run->logits_last, logits);
  const double u = MaxBf16Ulps(run->logits_last, logits);
  EXPECT_LE(u, kMaxUlps) << "bf16 logits_last max |diff| " << d << " (" << u << " ulps)";
  RecordProperty("bf16_logits_last_max_abs_diff", std::to_string(d));
  RecordProperty("bf16_logits_last_max_ulps", std::to_string(u));
  // Greedy ids: report agreement (the fixtures' bf16 ids flip where top-2 gaps are below
  // bf16 resolution; the first token is required to match).
  const auto golden_ids = c["bf16"]["generated_ids"].get<std::vector<std::vector<int64_t>>>();
  for (size_t b = 0; b < golden_ids.size(); ++b) {
    const std::vector<int64_t> ids = Ids(run->result.choices.at(b));
    EXPECT_EQ(ids.at(0), golden_ids[b].at(0)) << "row " << b;
    int same = 0;
    for (size_t i = 0; i < golden_ids[b].size(); ++i) same += ids.at(i) == golden_ids[b][i];
    RecordProperty("bf16_row" + std::to_string(b) + "_ids_equal", std::to_string(same));
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, EndToEnd, ::testing::ValuesIn(golden::ConversationCases()));

}  // namespace
}  // namespace smolserve::cli
