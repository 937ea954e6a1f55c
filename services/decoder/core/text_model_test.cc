// TextModel construction, input merging, cache handling and error paths (the numerics are
// checked against the fixtures in text_model_golden_test.cc).
#include "services/decoder/core/text_model.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/model/config.h"
#include "common/model/weights.h"
#include "services/decoder/core/golden_case.h"

namespace smolserve::decoder {
namespace {

// A small random Llama: D 16, 2 layers, 4 heads / 2 KV heads of 4, MLP 24, vocab 50,
// image token 7, 2 features per image.
model::ModelConfig SmallConfig() {
  model::ModelConfig c;
  c.image_token_id = 7;
  c.vision.image_size = 32;
  c.vision.patch_size = 8;
  c.scale_factor = 2;  // (32 / 8 / 2)^2 = 4 features per image
  model::TextConfig& t = c.text;
  t.hidden_size = 16;
  t.intermediate_size = 24;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 4;
  t.num_key_value_heads = 2;
  t.head_dim = 4;
  t.vocab_size = 50;
  t.rms_norm_eps = 1e-5;
  t.rope_theta = 10000;
  t.max_position_embeddings = 64;
  return c;
}

std::map<std::string, at::Tensor> SmallWeights(const model::ModelConfig& c, bool with_lm_head) {
  at::manual_seed(1);
  const auto& t = c.text;
  const int64_t D = t.hidden_size, I = t.intermediate_size, hd = t.head_dim;
  std::map<std::string, at::Tensor> w;
  w["model.text_model.embed_tokens.weight"] = at::randn({t.vocab_size, D});
  w["model.text_model.norm.weight"] = at::rand({D}) + 0.5;
  if (with_lm_head) w["lm_head.weight"] = at::randn({t.vocab_size, D});
  for (int64_t l = 0; l < t.num_hidden_layers; ++l) {
    const std::string p = "model.text_model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = at::rand({D}) + 0.5;
    w[p + "post_attention_layernorm.weight"] = at::rand({D}) + 0.5;
    w[p + "self_attn.q_proj.weight"] = at::randn({t.num_attention_heads * hd, D}) * 0.3;
    w[p + "self_attn.k_proj.weight"] = at::randn({t.num_key_value_heads * hd, D}) * 0.3;
    w[p + "self_attn.v_proj.weight"] = at::randn({t.num_key_value_heads * hd, D}) * 0.3;
    w[p + "self_attn.o_proj.weight"] = at::randn({D, t.num_attention_heads * hd}) * 0.3;
    w[p + "mlp.gate_proj.weight"] = at::randn({I, D}) * 0.3;
    w[p + "mlp.up_proj.weight"] = at::randn({I, D}) * 0.3;
    w[p + "mlp.down_proj.weight"] = at::randn({D, I}) * 0.3;
  }
  return w;
}

std::unique_ptr<TextModel> SmallModel(TextModelOptions options = {}) {
  const model::ModelConfig c = SmallConfig();
  auto store = model::WeightStore::FromTensors(SmallWeights(c, true));
  auto m = TextModel::Create(c, *store, options);
  EXPECT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(store->CheckAllUsed().ok());
  return m.ok() ? std::move(*m) : nullptr;
}

at::Tensor Ids(std::vector<std::vector<int64_t>> rows) {
  at::Tensor t = at::empty({static_cast<int64_t>(rows.size()),
                            static_cast<int64_t>(rows[0].size())},
                           at::TensorOptions().dtype(at::kLong));
  for (size_t b = 0; b < rows.size(); ++b) {
    for (size_t i = 0; i < rows[b].size(); ++i) t[b][i] = rows[b][i];
  }
  return t;
}

TEST(TextModelTest, LoadsTheTinyCheckpointAndUsesAllTextTensors) {
  auto config = model::LoadModelConfig(testing::kTinyModelDir);
  ASSERT_TRUE(config.ok()) << config.status();
  auto store = model::WeightStore::Open(testing::kTinyModelDir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto m = TextModel::Create(*config, **store);
  ASSERT_TRUE(m.ok()) << m.status();
  const TextModelDims& d = (*m)->dims();
  EXPECT_EQ(d.hidden_size, 32);
  EXPECT_EQ(d.num_layers, 2);
  EXPECT_EQ(d.num_heads, 4);
  EXPECT_EQ(d.num_kv_heads, 2);
  EXPECT_EQ(d.head_dim, 8);
  EXPECT_EQ(d.image_seq_len, 64);
  EXPECT_EQ(d.image_token_id, 49190);
  EXPECT_DOUBLE_EQ(d.rope_theta, 100000);
  EXPECT_EQ((*m)->weights().layers[0].qkv_proj.sizes(), (at::IntArrayRef{64, 32}));
  EXPECT_EQ((*m)->weights().layers[0].gate_up_proj.sizes(), (at::IntArrayRef{128, 32}));
  for (const std::string& name : (*store)->Names()) {
    if (name.rfind("model.text_model.", 0) == 0 || name == "lm_head.weight") continue;
    ASSERT_TRUE((*store)->Take(name, *(*store)->ShapeOf(name), at::kFloat).ok());
  }
  EXPECT_TRUE((*store)->CheckAllUsed().ok()) << (*store)->CheckAllUsed();
}

TEST(TextModelTest, FusedWeightsAreTheCheckpointTensors) {
  const model::ModelConfig c = SmallConfig();
  auto w = SmallWeights(c, true);
  auto store = model::WeightStore::FromTensors(w);
  auto m = TextModel::Create(c, *store);
  ASSERT_TRUE(m.ok()) << m.status();
  const TextLayerWeights& l1 = (*m)->weights().layers[1];
  const std::string p = "model.text_model.layers.1.";
  EXPECT_TRUE(l1.qkv_proj.narrow(0, 0, 16).equal(w[p + "self_attn.q_proj.weight"]));
  EXPECT_TRUE(l1.qkv_proj.narrow(0, 16, 8).equal(w[p + "self_attn.k_proj.weight"]));
  EXPECT_TRUE(l1.qkv_proj.narrow(0, 24, 8).equal(w[p + "self_attn.v_proj.weight"]));
  EXPECT_TRUE(l1.gate_up_proj.narrow(0, 0, 24).equal(w[p + "mlp.gate_proj.weight"]));
  EXPECT_TRUE(l1.gate_up_proj.narrow(0, 24, 24).equal(w[p + "mlp.up_proj.weight"]));
  EXPECT_TRUE((*m)->weights().lm_head.equal(w["lm_head.weight"]));
}

TEST(TextModelTest, TiedEmbeddings) {
  model::ModelConfig c = SmallConfig();
  c.tie_word_embeddings = true;
  auto store = model::WeightStore::FromTensors(SmallWeights(c, false));
  auto m = TextModel::Create(c, *store);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(store->CheckAllUsed().ok());
  EXPECT_TRUE((*m)->weights().lm_head.is_same((*m)->weights().embed_tokens));
  // An lm_head.weight present anyway is consumed (HF ties it to the embeddings).
  auto store2 = model::WeightStore::FromTensors(SmallWeights(c, true));
  ASSERT_TRUE(TextModel::Create(c, *store2).ok());
  EXPECT_TRUE(store2->CheckAllUsed().ok());
}

TEST(TextModelTest, CreateErrors) {
  model::ModelConfig c = SmallConfig();
  {
    auto w = SmallWeights(c, true);
    w.erase("model.text_model.layers.1.mlp.up_proj.weight");
    auto store = model::WeightStore::FromTensors(std::move(w));
    auto m = TextModel::Create(c, *store);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  }
  {
    auto w = SmallWeights(c, true);
    w["model.text_model.layers.0.self_attn.k_proj.weight"] = at::randn({16, 16});
    auto store = model::WeightStore::FromTensors(std::move(w));
    auto m = TextModel::Create(c, *store);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  }
  {
    auto w = SmallWeights(c, false);  // untied config without lm_head
    auto store = model::WeightStore::FromTensors(std::move(w));
    EXPECT_EQ(TextModel::Create(c, *store).status().code(), absl::StatusCode::kNotFound);
  }
  auto create = [&](const model::ModelConfig& cc, TextModelOptions o = {}) {
    auto store = model::WeightStore::FromTensors(SmallWeights(SmallConfig(), true));
    return TextModel::Create(cc, *store, o).status().code();
  };
  model::ModelConfig bad = c;
  bad.text.num_key_value_heads = 3;
  EXPECT_EQ(create(bad), absl::StatusCode::kInvalidArgument);
  bad = c;
  bad.text.head_dim = 3;
  EXPECT_EQ(create(bad), absl::StatusCode::kInvalidArgument);
  bad = c;
  bad.text.attention_bias = true;
  EXPECT_EQ(create(bad), absl::StatusCode::kUnimplemented);
  bad = c;
  bad.text.hidden_act = "gelu";
  EXPECT_EQ(create(bad), absl::StatusCode::kUnimplemented);
  TextModelOptions o;
  o.dtype = at::kHalf;
  EXPECT_EQ(create(c, o), absl::StatusCode::kInvalidArgument);
}

TEST(TextModelTest, ImageFeaturesGoToImageTokensInOrder) {
  auto m = SmallModel();
  ASSERT_NE(m, nullptr);
  // Row 0: one image (4 tokens); row 1: two images (8 tokens).
  at::Tensor ids = Ids({{1, 7, 7, 7, 7, 3, 4, 5, 6, 2, 2, 8, 9},
                        {7, 7, 7, 7, 3, 7, 7, 7, 7, 4, 5, 6, 8}});
  at::Tensor feats = at::randn({3, 4, 16});
  auto emb = m->EmbedInputs(ids, feats);
  ASSERT_TRUE(emb.ok()) << emb.status();
  const at::Tensor flat = feats.view({12, 16});
  const at::Tensor table = m->weights().embed_tokens;
  int64_t j = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 13; ++i) {
      const int64_t id = ids[b][i].item<int64_t>();
      const at::Tensor expect = id == 7 ? flat[j++] : table[id];
      EXPECT_TRUE((*emb)[b][i].equal(expect)) << b << "," << i;
    }
  }
  EXPECT_EQ(j, 12);
  // Count mismatches.
  EXPECT_EQ(m->EmbedInputs(ids, at::randn({2, 4, 16})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->EmbedInputs(ids, at::Tensor()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->EmbedInputs(ids, at::randn({3, 4, 8})).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A row whose count is not a multiple of S.
  at::Tensor odd = Ids({{7, 7, 7, 1, 1}, {7, 7, 7, 7, 7}});
  EXPECT_EQ(m->EmbedInputs(odd, at::randn({2, 4, 16})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->EmbedInputs(Ids({{1, 50}}), at::Tensor()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Left padding must not change a row's result, and fully padded query rows must not produce
// NaN anywhere (the padded row's logits stay finite).
TEST(TextModelTest, LeftPaddingIsInvisibleAndNanFree) {
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    TextModelOptions o;
    o.dtype = dt;
    auto m = SmallModel(o);
    ASSERT_NE(m, nullptr);
    at::Tensor ids = Ids({{2, 2, 2, 2, 2, 2, 2, 2, 2, 11}, {1, 12, 13, 14, 15, 16, 17, 18, 19, 20}});
    at::Tensor mask = Ids({{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}});
    auto cache = m->NewCache(2, 14);
    ASSERT_TRUE(cache.ok());
    auto logits = m->Prefill(ids, mask, at::Tensor(), *cache);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_TRUE(at::isfinite(*logits).all().item<bool>());
    EXPECT_EQ(cache->next_position(0), 1);
    EXPECT_EQ(cache->next_position(1), 10);

    auto single = m->NewCache(1, 14);
    auto alone = m->Prefill(Ids({{11}}), at::Tensor(), at::Tensor(), *single);
    ASSERT_TRUE(alone.ok());
    const double tol = dt == at::kFloat ? 1e-5 : 0.0;
    EXPECT_LE(((*logits)[0] - (*alone)[0]).abs().max().item<double>(), tol);

    // Decoding continues both rows consistently.
    auto step = m->DecodeStep({21, 22}, *cache);
    auto step_alone = m->DecodeStep({21}, *single);
    ASSERT_TRUE(step.ok() && step_alone.ok());
    EXPECT_LE(((*step)[0] - (*step_alone)[0]).abs().max().item<double>(), tol);
  }
}

// The fast float32 decode path and the generic path agree.
TEST(TextModelTest, FastDecodeMatchesGenericDecode) {
  TextModelOptions generic;
  generic.fast_decode = false;
  auto fast_model = SmallModel();
  auto slow_model = SmallModel(generic);
  ASSERT_NE(fast_model, nullptr);
  ASSERT_NE(slow_model, nullptr);
  at::Tensor ids = Ids({{2, 2, 1, 7, 7, 7, 7, 5}, {1, 3, 4, 5, 6, 8, 9, 10}});
  at::Tensor mask = Ids({{0, 0, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1}});
  at::Tensor feats = at::randn({1, 4, 16});
  auto a = fast_model->NewCache(2, 20);
  auto b = slow_model->NewCache(2, 20);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(fast_model->Prefill(ids, mask, feats, *a).ok());
  ASSERT_TRUE(slow_model->Prefill(ids, mask, feats, *b).ok());
  for (int64_t s = 0; s < 12; ++s) {
    std::vector<int64_t> next = {(s * 7) % 50, (s * 13 + 5) % 50};
    auto la = fast_model->DecodeStep(next, *a);
    auto lb = slow_model->DecodeStep(next, *b);
    ASSERT_TRUE(la.ok() && lb.ok());
    // Same math, different float32 summation orders (16-lane register tiles vs BLAS): the
    // logits (magnitude ~1-10) agree to a few 1e-6 with occasional 1e-5.
    EXPECT_LE((*la - *lb).abs().max().item<double>(), 5e-5) << "step " << s;
  }
  EXPECT_EQ(a->length(), 20);
  // Full cache.
  EXPECT_EQ(fast_model->DecodeStep({1, 1}, *a).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(slow_model->DecodeStep({1, 1}, *b).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// int8 weights: the decode steps (int8 rows in the fast kernels) give the logits the generic
// path gives with the dequantised float32 weights, and the weights are within half a
// quantisation step of the checkpoint's.
TEST(TextModelTest, Int8DecodeStepsMatchTheDequantisedWeights) {
  TextModelOptions o;
  o.int8_weights = true;
  auto m = SmallModel(o);
  ASSERT_NE(m, nullptr);
  const model::ModelConfig c = SmallConfig();
  const std::map<std::string, at::Tensor> raw = SmallWeights(c, true);
  const TextLayerWeights& l0 = m->weights().layers[0];
  ASSERT_TRUE(l0.qkv_proj_int8.defined() && l0.down_proj_int8.defined());
  ASSERT_TRUE(m->weights().lm_head_int8.defined());
  EXPECT_EQ(l0.down_proj_int8.values.scalar_type(), at::kChar);
  const at::Tensor down = raw.at("model.text_model.layers.0.mlp.down_proj.weight");
  const at::Tensor half_step = l0.down_proj_int8.scales.unsqueeze(1) * 0.5 + 1e-7;
  EXPECT_TRUE(((l0.down_proj - down).abs() <= half_step).all().item<bool>());
  // Embeddings stay exact.
  EXPECT_TRUE(at::equal(m->weights().embed_tokens, raw.at("model.text_model.embed_tokens.weight")));

  const std::vector<int64_t> ids = {1, 3, 4, 5, 6, 8, 9, 10, 11, 12};
  const int64_t n = ids.size();
  for (int64_t split = 4; split < n; ++split) {
    std::vector<int64_t> head(ids.begin(), ids.begin() + split);
    auto a = m->NewCache(1, n);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(m->Prefill(Ids({head}), Ids({std::vector<int64_t>(split, 1)}), at::Tensor(), *a).ok());
    at::Tensor stepped;
    for (int64_t i = split; i < n; ++i) {
      auto l = m->DecodeStep({ids[i]}, *a);
      ASSERT_TRUE(l.ok()) << l.status();
      stepped = *l;
    }
    auto b = m->NewCache(1, n);
    ASSERT_TRUE(b.ok());
    auto whole = m->Prefill(Ids({ids}), Ids({std::vector<int64_t>(n, 1)}), at::Tensor(), *b);
    ASSERT_TRUE(whole.ok()) << whole.status();
    EXPECT_LE((stepped - *whole).abs().max().item<double>(), 5e-5) << "split " << split;
  }
  // int8 needs the float32 fast path.
  TextModelOptions bad = o;
  bad.fast_decode = false;
  auto store = model::WeightStore::FromTensors(SmallWeights(c, true));
  EXPECT_EQ(TextModel::Create(c, *store, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TextModelTest, CacheAndInputErrors) {
  auto m = SmallModel();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->NewCache(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->NewCache(1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->NewCache(1, 65).status().code(), absl::StatusCode::kInvalidArgument);
  auto cache = m->NewCache(1, 4);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(m->DecodeStep({1}, *cache).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->Prefill(Ids({{1, 2, 3, 4, 5}}), at::Tensor(), at::Tensor(), *cache)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // longer than the cache
  EXPECT_EQ(m->Prefill(Ids({{1, 2}, {3, 4}}), at::Tensor(), at::Tensor(), *cache)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // batch mismatch
  EXPECT_EQ(m->Prefill(Ids({{1, 2, 3}}), Ids({{1, 0, 1}}), at::Tensor(), *cache)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // not left-padded
  EXPECT_EQ(m->Prefill(Ids({{1, 2, 3}}), Ids({{0, 0, 0}}), at::Tensor(), *cache)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // no real token
  ASSERT_TRUE(m->Prefill(Ids({{1, 2, 3}}), at::Tensor(), at::Tensor(), *cache).ok());
  EXPECT_EQ(m->Prefill(Ids({{1, 2, 3}}), at::Tensor(), at::Tensor(), *cache).status().code(),
            absl::StatusCode::kFailedPrecondition);  // not empty
  EXPECT_EQ(m->DecodeStep({1, 2}, *cache).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->DecodeStep({50}, *cache).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(m->DecodeStep({4}, *cache).ok());
  EXPECT_EQ(m->DecodeStep({4}, *cache).status().code(), absl::StatusCode::kFailedPrecondition);
  // Float ids are rejected, not cast.
  EXPECT_EQ(m->EmbedInputs(at::ones({1, 2}), at::Tensor()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace smolserve::decoder
