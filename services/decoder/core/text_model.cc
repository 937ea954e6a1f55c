#include "services/decoder/core/text_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "common/model/linear.h"
#include "common/status/exception_status.h"
#include "common/status/status_macros.h"
#include "services/decoder/core/decode_kernels.h"

namespace smolserve::decoder {
namespace {

// Runs `fn` (returning absl::StatusOr<T> or absl::Status) under InferenceMode, converting
// LibTorch exceptions into statuses.
template <typename Fn>
auto Guarded(absl::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    c10::InferenceMode guard;
    return fn();
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  }
}

std::string ShapeStr(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

// HF LlamaRMSNorm: float32 statistics, cast back to the input dtype, then times the weight.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(var + eps);
  return weight * xf.to(x.scalar_type());
}

// q * cos + rotate_half(q) * sin, rotate_half(v) = cat(-v[half:], v[:half]).
at::Tensor ApplyRope(const at::Tensor& q, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = q.size(-1) / 2;
  at::Tensor rotated = at::cat({-q.narrow(-1, half, half), q.narrow(-1, 0, half)}, -1);
  return q * cos + rotated * sin;
}

// Batched matmul whose reduced-precision result is the float32 product rounded once, as
// oneDNN / current torch compute it. LibTorch 1.13's own bf16 bmm for small shapes (decode,
// last prefill chunk) accumulates in bf16 and is off by several bf16 steps, so bf16 operands
// are multiplied in float32 here.
at::Tensor Bmm(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() == at::kFloat) return at::bmm(a, b);
  return at::bmm(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
}

// SiLU with float op-math for reduced precision (torch >= 2: round(silu(float(x)))); LibTorch
// 1.13's bf16 silu rounds intermediates and differs in ~30% of elements.
at::Tensor Silu(const at::Tensor& x) {
  if (x.scalar_type() == at::kFloat) return at::silu(x);
  return at::silu(x.to(at::kFloat)).to(x.scalar_type());
}

double DtypeLowest(at::ScalarType dtype) {
  if (dtype == at::kBFloat16) {
    return static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest());
  }
  return std::numeric_limits<float>::lowest();
}

// ---- Fast float32 decode kernels (raw loops over contiguous buffers). ----

// out[b] = rmsnorm(x[b]) * w for B rows of D; float32 statistics as HF (accumulated in
// double here, which differs from torch's float sum by rounding only).
void RmsNormRows(const float* x, const float* w, float* out, int64_t rows, int64_t d,
                 double eps) {
  for (int64_t b = 0; b < rows; ++b) {
    const float* xr = x + b * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float var = static_cast<float>(ss / static_cast<double>(d));
    const float r = 1.0f / std::sqrt(var + static_cast<float>(eps));
    float* o = out + b * d;
    for (int64_t i = 0; i < d; ++i) o[i] = w[i] * (xr[i] * r);
  }
}

// Half-split RoPE of one head vector: out = v * cos + rotate_half(v) * sin.
void RopeHead(const float* v, const float* cos, const float* sin, int64_t half, float* out) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    out[i] = a * cos[i] + (-b) * sin[i];
    out[i + half] = b * cos[i] + a * sin[i];
  }
}

float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// y (=, or += when accumulate) x w^T for x [B, K], w [N, K], y [B, N], all contiguous
// (row-major, y rows N apart). One kernel for every B: each row's result is bit-identical
// whatever else shares the step (see GemvRows), and the weights are read once per step.
// With int8 weights defined, their rows are read instead of w's.
void Linear(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, const Int8Rows& w8,
            bool accumulate) {
  const int64_t B = x.size(0), K = x.size(1), N = w.size(0);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (w8.defined()) {
    const int8_t* qp = w8.values.data_ptr<int8_t>();
    const float* sp = w8.scales.data_ptr<float>();
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
      internal::GemvRowsInt8(qp, sp, n0, n1, K, xp, B, yp, N, accumulate);
    });
    return;
  }
  const float* wp = w.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
    internal::GemvRows(wp, n0, n1, K, xp, B, yp, N, accumulate);
  });
}

// Symmetric per-row int8 quantisation of a float32 [N, K] weight: scale = max|row| / 127
// (1 for an all-zero row), values = round(w / scale). `w` becomes the dequantised weight.
Int8Rows QuantizeRows(at::Tensor& w) {
  Int8Rows r;
  const at::Tensor amax = w.abs().amax(1);
  r.scales = at::where(amax > 0, amax / 127.0, at::ones_like(amax)).contiguous();
  r.values = (w / r.scales.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar).contiguous();
  w = (r.values.to(at::kFloat) * r.scales.unsqueeze(1)).contiguous();
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TextModel>> TextModel::Create(const model::ModelConfig& config,
                                                             model::WeightStore& weights,
                                                             const TextModelOptions& options) {
  const model::TextConfig& tc = config.text;
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError("decoder dtype must be float32 or bfloat16");
  }
  if (options.int8_weights && !(options.dtype == at::kFloat && options.fast_decode)) {
    return absl::InvalidArgumentError("int8 weights need dtype float32 and the fast decode path");
  }
  if (options.prefill_query_chunk < 1) {
    return absl::InvalidArgumentError("prefill_query_chunk must be >= 1");
  }
  if (tc.attention_bias || tc.mlp_bias) {
    return absl::UnimplementedError("text_config: attention_bias / mlp_bias are not supported");
  }
  if (tc.hidden_act != "silu") {
    return absl::UnimplementedError(
        absl::StrCat("text_config.hidden_act '", tc.hidden_act, "' is not supported"));
  }
  TextModelDims d;
  d.hidden_size = tc.hidden_size;
  d.intermediate_size = tc.intermediate_size;
  d.num_layers = tc.num_hidden_layers;
  d.num_heads = tc.num_attention_heads;
  d.num_kv_heads = tc.num_key_value_heads > 0 ? tc.num_key_value_heads : tc.num_attention_heads;
  d.head_dim = tc.head_dim > 0 ? tc.head_dim
                               : (tc.num_attention_heads > 0
                                      ? tc.hidden_size / tc.num_attention_heads
                                      : 0);
  d.vocab_size = tc.vocab_size;
  d.rms_norm_eps = tc.rms_norm_eps;
  d.rope_theta = tc.rope_theta;
  d.max_positions = tc.max_position_embeddings;
  d.image_token_id = config.image_token_id;
  d.image_seq_len = config.image_seq_len();
  d.tie_word_embeddings = config.tie_word_embeddings;
  auto bad = [](absl::string_view field) {
    return absl::InvalidArgumentError(absl::StrCat("text_config.", field, " is invalid"));
  };
  if (d.hidden_size < 1) return bad("hidden_size");
  if (d.intermediate_size < 1) return bad("intermediate_size");
  if (d.num_layers < 0) return bad("num_hidden_layers");
  if (d.num_heads < 1) return bad("num_attention_heads");
  if (d.num_kv_heads < 1 || d.num_heads % d.num_kv_heads != 0) {
    return bad("num_key_value_heads (must divide num_attention_heads)");
  }
  if (d.head_dim < 2 || d.head_dim % 2 != 0) return bad("head_dim (must be even)");
  if (d.vocab_size < 1) return bad("vocab_size");
  if (!(d.rms_norm_eps > 0)) return bad("rms_norm_eps");
  if (!(d.rope_theta > 0)) return bad("rope_theta");
  if (d.max_positions < 1 || d.max_positions > (int64_t{1} << 20)) {
    return bad("max_position_embeddings (1 .. 2^20)");
  }
  if (d.image_seq_len < 1) {
    return absl::InvalidArgumentError("image_seq_len (vision image/patch size, scale_factor)");
  }

  std::unique_ptr<TextModel> m(new TextModel());
  m->dims_ = d;
  m->options_ = options;
  const at::ScalarType dt = options.dtype;
  const int64_t D = d.hidden_size, I = d.intermediate_size, hd = d.head_dim;
  const int64_t qd = d.num_heads * hd, kvd = d.num_kv_heads * hd;
  const std::string p = "model.text_model.";
  auto take = [&](const std::string& name, std::vector<int64_t> shape) {
    return weights.Take(name, std::move(shape), dt);
  };
  ASSIGN_OR_RETURN(m->weights_.embed_tokens, take(p + "embed_tokens.weight", {d.vocab_size, D}));
  ASSIGN_OR_RETURN(m->weights_.norm, take(p + "norm.weight", {D}));
  if (d.tie_word_embeddings) {
    if (weights.Contains("lm_head.weight")) {
      RETURN_IF_ERROR(take("lm_head.weight", {d.vocab_size, D}).status());
    }
    m->weights_.lm_head = m->weights_.embed_tokens;
  } else {
    ASSIGN_OR_RETURN(m->weights_.lm_head, take("lm_head.weight", {d.vocab_size, D}));
  }
  absl::Status st = Guarded("loading decoder weights", [&]() -> absl::Status {
    m->weights_.layers.resize(d.num_layers);
    for (int64_t i = 0; i < d.num_layers; ++i) {
      const std::string lp = absl::StrCat(p, "layers.", i, ".");
      TextLayerWeights& w = m->weights_.layers[i];
      ASSIGN_OR_RETURN(w.input_layernorm, take(lp + "input_layernorm.weight", {D}));
      ASSIGN_OR_RETURN(w.post_attention_layernorm,
                       take(lp + "post_attention_layernorm.weight", {D}));
      ASSIGN_OR_RETURN(at::Tensor q, take(lp + "self_attn.q_proj.weight", {qd, D}));
      ASSIGN_OR_RETURN(at::Tensor k, take(lp + "self_attn.k_proj.weight", {kvd, D}));
      ASSIGN_OR_RETURN(at::Tensor v, take(lp + "self_attn.v_proj.weight", {kvd, D}));
      ASSIGN_OR_RETURN(w.o_proj, take(lp + "self_attn.o_proj.weight", {D, qd}));
      ASSIGN_OR_RETURN(at::Tensor gate, take(lp + "mlp.gate_proj.weight", {I, D}));
      ASSIGN_OR_RETURN(at::Tensor up, take(lp + "mlp.up_proj.weight", {I, D}));
      ASSIGN_OR_RETURN(w.down_proj, take(lp + "mlp.down_proj.weight", {D, I}));
      w.qkv_proj = at::cat({q, k, v}, 0).contiguous();
      w.gate_up_proj = at::cat({gate, up}, 0).contiguous();
      if (options.int8_weights) {
        w.qkv_proj_int8 = QuantizeRows(w.qkv_proj);
        w.o_proj_int8 = QuantizeRows(w.o_proj);
        w.gate_up_proj_int8 = QuantizeRows(w.gate_up_proj);
        w.down_proj_int8 = QuantizeRows(w.down_proj);
      }
    }
    if (options.int8_weights) {
      if (d.tie_word_embeddings) m->weights_.lm_head = m->weights_.lm_head.clone();
      m->weights_.lm_head_int8 = QuantizeRows(m->weights_.lm_head);
    }
    // RoPE tables in float32, as HF's default rope: inv_freq = 1 / theta^(arange(0,hd,2)/hd),
    // freqs = position * inv_freq.
    at::Tensor exponent =
        at::arange(0, hd, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
        static_cast<double>(hd);
    at::Tensor inv_freq = at::reciprocal(at::pow(at::Scalar(d.rope_theta), exponent));
    at::Tensor pos = at::arange(d.max_positions, at::TensorOptions().dtype(at::kLong))
                         .to(at::kFloat);
    at::Tensor freqs = pos.unsqueeze(1) * inv_freq.unsqueeze(0);
    m->rope_cos_ = freqs.cos().contiguous();
    m->rope_sin_ = freqs.sin().contiguous();
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(st);
  return m;
}

int64_t TextModel::CacheBytes(int64_t batch, int64_t capacity) const {
  const int64_t elt = options_.dtype == at::kFloat ? 4 : 2;
  return 2 * dims_.num_layers * batch * dims_.num_kv_heads * capacity * dims_.head_dim * elt +
         batch * capacity;
}

int64_t TextModel::PrefixBytes(int64_t length) const {
  return CacheBytes(1, length) - length;  // no validity mask
}

absl::StatusOr<KvPrefix> TextModel::CopyPrefix(const KvCache& cache, int64_t length) const {
  if (cache.batch_ != 1 || length < 1 || length > cache.length_ || cache.next_pos_[0] != cache.length_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot copy a prefix of ", length, " columns from a cache of batch ", cache.batch_,
        " holding ", cache.length_));
  }
  return Guarded("copying a KV prefix", [&]() -> absl::StatusOr<KvPrefix> {
    KvPrefix p;
    p.length = length;
    for (int64_t l = 0; l < dims_.num_layers; ++l) {
      p.keys.push_back(cache.keys_[l].narrow(2, 0, length).clone());
      p.values.push_back(cache.values_[l].narrow(2, 0, length).clone());
    }
    p.bytes = PrefixBytes(length);
    return p;
  });
}

absl::Status TextModel::LoadPrefix(const KvPrefix& prefix, int64_t length, KvCache& cache) const {
  if (cache.batch_ != 1 || cache.length_ != 0 || length < 1 || length > prefix.length ||
      length > cache.capacity_ || static_cast<int64_t>(prefix.keys.size()) != dims_.num_layers) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load ", length, " prefix columns (of ", prefix.length, ") into a cache of batch ",
        cache.batch_, ", capacity ", cache.capacity_, ", holding ", cache.length_));
  }
  return Guarded("loading a KV prefix", [&]() -> absl::Status {
    for (int64_t l = 0; l < dims_.num_layers; ++l) {
      cache.keys_[l].narrow(2, 0, length).copy_(prefix.keys[l].narrow(2, 0, length));
      cache.values_[l].narrow(2, 0, length).copy_(prefix.values[l].narrow(2, 0, length));
    }
    cache.key_valid_.narrow(1, 0, length).fill_(true);
    cache.length_ = length;
    cache.next_pos_[0] = length;
    return absl::OkStatus();
  });
}

absl::StatusOr<DecodeScratch> TextModel::NewDecodeScratch(int64_t max_rows,
                                                          int64_t max_logit_rows) const {
  if (max_rows < 1) return absl::InvalidArgumentError("decode scratch needs max_rows >= 1");
  if (max_logit_rows < 1 || max_logit_rows > max_rows) max_logit_rows = max_rows;
  return Guarded("allocating decode scratch", [&]() -> absl::StatusOr<DecodeScratch> {
    DecodeScratch s;
    s.max_rows_ = max_rows;
    s.max_logit_rows_ = max_logit_rows;
    if (options_.dtype == at::kFloat && options_.fast_decode) {
      const auto f = at::TensorOptions().dtype(at::kFloat);
      const int64_t D = dims_.hidden_size, I = dims_.intermediate_size, H = dims_.num_heads;
      const int64_t KV = dims_.num_kv_heads, hd = dims_.head_dim;
      s.x_ = at::empty({max_rows, D}, f);
      s.xn_ = at::empty({max_rows, D}, f);
      s.qkv_ = at::empty({max_rows, (H + 2 * KV) * hd}, f);
      s.q_ = at::empty({max_rows, H, hd}, f);
      s.attn_ = at::empty({max_rows, H * hd}, f);
      s.gate_up_ = at::empty({max_rows, 2 * I}, f);
      s.act_ = at::empty({max_rows, I}, f);
      s.logits_ = at::empty({max_logit_rows, dims_.vocab_size}, f);
    }
    return s;
  });
}

absl::StatusOr<KvCache> TextModel::NewCache(int64_t batch, int64_t capacity,
                                            bool with_scratch) const {
  if (batch < 1) return absl::InvalidArgumentError("batch size must be >= 1");
  if (capacity < 1) return absl::InvalidArgumentError("cache capacity must be >= 1");
  if (capacity > dims_.max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length ", capacity, " (prompt + new tokens) exceeds ",
                     "max_position_embeddings ", dims_.max_positions));
  }
  return Guarded("allocating KV cache", [&]() -> absl::StatusOr<KvCache> {
    KvCache c;
    c.batch_ = batch;
    c.capacity_ = capacity;
    const auto opts = at::TensorOptions().dtype(options_.dtype);
    const int64_t KV = dims_.num_kv_heads, hd = dims_.head_dim, H = dims_.num_heads;
    c.keys_.reserve(dims_.num_layers);
    c.values_.reserve(dims_.num_layers);
    // Zeroed, not empty: positions that are never written (left padding) are still read by
    // the decode kernels with weight 0, and 0 * uninitialised memory can be NaN.
    for (int64_t l = 0; l < dims_.num_layers; ++l) {
      c.keys_.push_back(at::zeros({batch, KV, capacity, hd}, opts));
      c.values_.push_back(at::zeros({batch, KV, capacity, hd}, opts));
    }
    c.key_valid_ = at::zeros({batch, capacity}, at::TensorOptions().dtype(at::kBool));
    c.next_pos_.assign(batch, 0);
    if (with_scratch && options_.dtype == at::kFloat && options_.fast_decode) {
      const auto f = at::TensorOptions().dtype(at::kFloat);
      const int64_t D = dims_.hidden_size, I = dims_.intermediate_size;
      c.x_ = at::empty({batch, D}, f);
      c.xn_ = at::empty({batch, D}, f);
      c.qkv_ = at::empty({batch, (H + 2 * KV) * hd}, f);
      c.q_ = at::empty({batch, H, hd}, f);
      c.attn_ = at::empty({batch, H * hd}, f);
      c.gate_up_ = at::empty({batch, 2 * I}, f);
      c.act_ = at::empty({batch, I}, f);
      c.scores_ = at::zeros({batch * H * capacity}, f);
      c.logits_ = at::empty({batch, dims_.vocab_size}, f);
    }
    return c;
  });
}

absl::StatusOr<at::Tensor> TextModel::EmbedInputs(const at::Tensor& input_ids,
                                                  const at::Tensor& image_hidden_states) const {
  return Guarded("embedding inputs", [&]() -> absl::StatusOr<at::Tensor> {
    if (!input_ids.defined() || input_ids.dim() != 2 ||
        !at::isIntegralType(input_ids.scalar_type(), /*includeBool=*/false)) {
      return absl::InvalidArgumentError("input_ids must be an integer tensor [batch, length]");
    }
    const int64_t B = input_ids.size(0), L = input_ids.size(1), D = dims_.hidden_size;
    if (B < 1 || L < 1) return absl::InvalidArgumentError("input_ids is empty");
    at::Tensor ids = input_ids.to(at::kLong).contiguous();
    const int64_t* id = ids.data_ptr<int64_t>();
    std::vector<int64_t> counts(B, 0);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < L; ++i) {
        const int64_t t = id[b * L + i];
        if (t < 0 || t >= dims_.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("input_ids[", b, "][", i, "] = ", t,
                                                         " is outside the vocabulary [0, ",
                                                         dims_.vocab_size, ")"));
        }
        if (t == dims_.image_token_id) ++counts[b];
      }
    }
    const int64_t S = dims_.image_seq_len;
    int64_t total = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (counts[b] % S != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", b, " has ", counts[b], " <image> tokens, not a multiple of ",
                         "image_seq_len ", S));
      }
      total += counts[b];
    }
    int64_t n_features = 0;
    if (image_hidden_states.defined()) {
      if (image_hidden_states.dim() != 3 || image_hidden_states.size(1) != S ||
          image_hidden_states.size(2) != D ||
          !at::isFloatingType(image_hidden_states.scalar_type())) {
        return absl::InvalidArgumentError(
            absl::StrCat("image_hidden_states must be floating [n_images, ", S, ", ", D,
                         "], got ", ShapeStr(image_hidden_states.sizes())));
      }
      n_features = image_hidden_states.size(0) * S;
    }
    if (total != n_features) {
      return absl::InvalidArgumentError(
          absl::StrCat("the prompt has ", total, " <image> tokens but ", n_features / S,
                       " images x ", S, " = ", n_features, " image features were given"));
    }
    at::Tensor emb = weights_.embed_tokens.index_select(0, ids.view({-1}));
    if (total > 0) {
      at::Tensor positions = (ids.view({-1}) == dims_.image_token_id).nonzero().view({-1});
      at::Tensor feats =
          image_hidden_states.reshape({-1, D}).to(options_.dtype).to(at::kCPU).contiguous();
      emb.index_copy_(0, positions, feats);
    }
    return emb.view({B, L, D});
  });
}

absl::StatusOr<at::Tensor> TextModel::Prefill(const at::Tensor& input_ids,
                                              const at::Tensor& attention_mask,
                                              const at::Tensor& image_hidden_states,
                                              KvCache& cache) const {
  ASSIGN_OR_RETURN(at::Tensor embeds, EmbedInputs(input_ids, image_hidden_states));
  return Guarded("prefill", [&]() -> absl::StatusOr<at::Tensor> {
    const int64_t B = input_ids.size(0), L = input_ids.size(1);
    if (cache.batch_ != B) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache batch ", cache.batch_, " != input batch ", B));
    }
    if (cache.length_ != 0) return absl::FailedPreconditionError("prefill needs an empty cache");
    if (L > cache.capacity_) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt length ", L, " exceeds cache capacity ", cache.capacity_));
    }
    at::Tensor mask;
    if (attention_mask.defined()) {
      if (attention_mask.dim() != 2 || attention_mask.size(0) != B ||
          attention_mask.size(1) != L) {
        return absl::InvalidArgumentError(absl::StrCat(
            "attention_mask shape ", ShapeStr(attention_mask.sizes()), " != input_ids shape ",
            ShapeStr(input_ids.sizes())));
      }
      if (!at::isIntegralType(attention_mask.scalar_type(), /*includeBool=*/true)) {
        return absl::InvalidArgumentError("attention_mask must be an integer or bool tensor");
      }
      mask = attention_mask.to(at::kLong).contiguous();
    } else {
      mask = at::ones({B, L}, at::TensorOptions().dtype(at::kLong));
    }
    const int64_t* mp = mask.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t prev = 0;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t v = mp[b * L + i];
        if (v != 0 && v != 1) {
          return absl::InvalidArgumentError("attention_mask values must be 0 or 1");
        }
        if (v < prev) {
          return absl::InvalidArgumentError(absl::StrCat(
              "attention_mask row ", b, " is not left-padded (zeros must precede ones)"));
        }
        prev = v;
      }
      if (prev != 1) {
        return absl::InvalidArgumentError(absl::StrCat("row ", b, " has no real tokens"));
      }
    }
    at::Tensor positions = mask.cumsum(1) - 1;
    positions.masked_fill_(mask == 0, 1);
    cache.key_valid_.narrow(1, 0, L).copy_(mask.to(at::kBool));
    at::Tensor logits = ForwardGeneric(embeds, positions, cache);
    const at::Tensor real = mask.sum(1);
    for (int64_t b = 0; b < B; ++b) cache.next_pos_[b] = real[b].item<int64_t>();
    return logits;
  });
}

absl::StatusOr<at::Tensor> TextModel::DecodeStep(absl::Span<const int64_t> token_ids,
                                                 KvCache& cache) const {
  const int64_t B = cache.batch_;
  if (static_cast<int64_t>(token_ids.size()) != B) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode step got ", token_ids.size(), " tokens for ", B, " rows"));
  }
  if (cache.length_ == 0) return absl::FailedPreconditionError("decode before prefill");
  if (cache.length_ >= cache.capacity_) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV cache is full (capacity ", cache.capacity_, ")"));
  }
  for (int64_t b = 0; b < B; ++b) {
    if (token_ids[b] < 0 || token_ids[b] >= dims_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", token_ids[b], " is outside the vocabulary"));
    }
    if (cache.next_pos_[b] >= dims_.max_positions) {
      return absl::InvalidArgumentError("position exceeds max_position_embeddings");
    }
  }
  return Guarded("decode step", [&]() -> absl::StatusOr<at::Tensor> {
    if (options_.dtype == at::kFloat && options_.fast_decode && cache.x_.defined()) {
      std::vector<FastRow> rows;
      for (int64_t b = 0; b < B; ++b) {
        rows.push_back(FastRow{&cache, b, cache.length_, cache.next_pos_[b], token_ids[b],
                               nullptr, true});
      }
      FastBuffers buf{cache.x_,    cache.xn_,     cache.qkv_, cache.q_,
                      cache.attn_, cache.gate_up_, cache.act_, cache.logits_,
                      cache.scores_.data_ptr<float>(), cache.capacity_};
      DecodeFastRows(rows, buf);
      return cache.logits_.clone();
    }
    at::Tensor ids = at::tensor(std::vector<int64_t>(token_ids.begin(), token_ids.end()),
                                at::TensorOptions().dtype(at::kLong))
                         .view({B, 1});
    at::Tensor embeds = weights_.embed_tokens.index_select(0, ids.view({-1})).view({B, 1, -1});
    at::Tensor positions = at::tensor(cache.next_pos_, at::TensorOptions().dtype(at::kLong))
                               .view({B, 1});
    cache.key_valid_.select(1, cache.length_).fill_(true);
    at::Tensor logits = ForwardGeneric(embeds, positions, cache);
    for (int64_t b = 0; b < B; ++b) ++cache.next_pos_[b];
    return logits;
  });
}

at::Tensor TextModel::ForwardGeneric(const at::Tensor& embeds, const at::Tensor& positions,
                                     KvCache& cache) const {
  const at::ScalarType dt = options_.dtype;
  const bool fp32 = dt == at::kFloat;
  const int64_t B = embeds.size(0), L = embeds.size(1), D = dims_.hidden_size;
  const int64_t H = dims_.num_heads, KV = dims_.num_kv_heads, G = dims_.group_size();
  const int64_t hd = dims_.head_dim, half = hd / 2, I = dims_.intermediate_size;
  const int64_t start = cache.length_, T = start + L;
  const double scaling = 1.0 / std::sqrt(static_cast<double>(hd));

  // RoPE tables for these positions: [B, 1, L, hd] in the activation dtype.
  at::Tensor pos = positions.reshape({-1});
  at::Tensor c = rope_cos_.index_select(0, pos).view({B, 1, L, half});
  at::Tensor s = rope_sin_.index_select(0, pos).view({B, 1, L, half});
  at::Tensor cos = at::cat({c, c}, -1).to(dt);
  at::Tensor sin = at::cat({s, s}, -1).to(dt);

  // Left padding: the invalid keys of a row are a prefix of its columns.
  int64_t max_pad = 0;
  {
    const bool* valid = cache.key_valid_.data_ptr<bool>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t pad = 0;
      for (int64_t j = 0; j < T; ++j) pad += valid[b * cache.capacity_ + j] ? 0 : 1;
      max_pad = std::max(max_pad, pad);
    }
  }
  // Additive mask for queries [i0, i0 + n) and keys [c0, c0 + nc), [B, 1, 1, n, nc]:
  // 0 where key j is valid and j <= start + i, else finfo(dtype).min (HF's eager mask).
  const at::Tensor key_valid = cache.key_valid_.narrow(1, 0, T);
  auto mask_block = [&](int64_t i0, int64_t n, int64_t c0, int64_t nc) {
    const auto opts = at::TensorOptions().dtype(at::kLong);
    at::Tensor keys = at::arange(c0, c0 + nc, opts);
    at::Tensor queries = at::arange(start + i0, start + i0 + n, opts);
    at::Tensor allowed = (keys.unsqueeze(0) <= queries.unsqueeze(1)).unsqueeze(0) &
                         key_valid.narrow(1, c0, nc).unsqueeze(1);  // [B, n, nc]
    at::Tensor mask = at::zeros({B, n, nc}, at::TensorOptions().dtype(dt));
    mask.masked_fill_(allowed.logical_not(), DtypeLowest(dt));
    return mask.view({B, 1, 1, n, nc});
  };
  // Per query chunk: float32 needs the mask only on the causal diagonal block and on the
  // padding columns; bf16 adds the whole mask as HF does.
  const int64_t chunk = options_.prefill_query_chunk;
  struct ChunkMasks {
    at::Tensor full, diagonal, padding;
  };
  std::vector<ChunkMasks> chunk_masks;
  for (int64_t i0 = 0; i0 < L; i0 += chunk) {
    const int64_t n = std::min(chunk, L - i0), Tc = start + i0 + n;
    ChunkMasks cm;
    if (fp32) {
      cm.diagonal = mask_block(i0, n, start + i0, n);
      const int64_t pad_cols = std::min(max_pad, start + i0);
      if (pad_cols > 0) cm.padding = mask_block(i0, n, 0, pad_cols);
    } else {
      cm.full = mask_block(i0, n, 0, Tc);
    }
    chunk_masks.push_back(std::move(cm));
  }

  at::Tensor x = embeds.reshape({B * L, D});
  if (fp32) x = x.clone();  // updated in place below
  for (int64_t l = 0; l < dims_.num_layers; ++l) {
    const TextLayerWeights& w = weights_.layers[l];
    at::Tensor h = RmsNorm(x, w.input_layernorm, dims_.rms_norm_eps);
    at::Tensor qkv = model::Mm(h, w.qkv_proj.t());  // [B L, (H + 2 KV) hd]
    at::Tensor q = qkv.narrow(1, 0, H * hd).view({B, L, H, hd}).transpose(1, 2);
    at::Tensor k = qkv.narrow(1, H * hd, KV * hd).view({B, L, KV, hd}).transpose(1, 2);
    at::Tensor v = qkv.narrow(1, (H + KV) * hd, KV * hd).view({B, L, KV, hd}).transpose(1, 2);
    q = ApplyRope(q, cos, sin).contiguous();  // [B, H, L, hd]
    k = ApplyRope(k, cos, sin);
    cache.keys_[l].narrow(2, start, L).copy_(k);
    cache.values_[l].narrow(2, start, L).copy_(v);

    // Attention by chunks of queries; chunk [i0, i0 + n) only needs keys [0, start + i0 + n)
    // (later keys are causally masked and contribute exact zeros).
    at::Tensor attn = at::empty({B, L, H, hd}, at::TensorOptions().dtype(dt));
    at::Tensor q5 = q.view({B, KV, G, L, hd});
    for (int64_t i0 = 0, c = 0; i0 < L; i0 += chunk, ++c) {
      const int64_t n = std::min(chunk, L - i0), Tc = start + i0 + n;
      const ChunkMasks& cm = chunk_masks[c];
      at::Tensor qc = q5.narrow(3, i0, n).reshape({B * KV, G * n, hd});
      at::Tensor kc = cache.keys_[l].narrow(2, 0, Tc).reshape({B * KV, Tc, hd});
      at::Tensor vc = cache.values_[l].narrow(2, 0, Tc).reshape({B * KV, Tc, hd});
      at::Tensor probs;
      if (fp32) {
        // scaling * q k^T straight from the GEMM, then the mask where it can be non-zero for
        // a real query: the causal diagonal block [start + i0, Tc) and the left-padding
        // columns. (Padding queries, entirely masked in HF, then see some keys instead:
        // finite garbage that no real query reads.)
        // Zeroed, not empty: with beta = 0 the product must not depend on what the buffer held
        // (a generic-path decode step produced NaN logits once in a fresh-clone CI run; this
        // uninitialised read is the suspected cause).
        at::Tensor scores = at::zeros({B * KV, G * n, Tc}, at::TensorOptions().dtype(dt));
        scores.baddbmm_(qc, kc.transpose(1, 2), /*beta=*/0, /*alpha=*/scaling);
        at::Tensor s5 = scores.view({B, KV, G, n, Tc});
        s5.narrow(4, start + i0, n).add_(cm.diagonal);
        if (cm.padding.defined()) s5.narrow(4, 0, cm.padding.size(4)).add_(cm.padding);
        probs = at::softmax(scores, -1);
      } else {
        at::Tensor scores = Bmm(qc, kc.transpose(1, 2));  // [B KV, G n, Tc]
        // times scaling with float op-math (torch >= 2 semantics; LibTorch 1.13 would round
        // the scalar to bf16 first), then the whole additive mask, as HF.
        scores = (scores.to(at::kFloat) * scaling).to(dt);
        scores = scores.view({B, KV, G, n, Tc}) + cm.full;
        probs = at::softmax(scores, -1, at::kFloat).to(dt);
      }
      at::Tensor out = Bmm(probs.view({B * KV, G * n, Tc}), vc);  // [B KV, G n, hd]
      attn.narrow(1, i0, n).copy_(out.view({B, H, n, hd}).transpose(1, 2));
    }
    at::Tensor attn2 = attn.view({B * L, H * hd});
    if (fp32) {
      x.addmm_(attn2, w.o_proj.t());
    } else {
      x = x + model::Mm(attn2, w.o_proj.t());
    }
    h = RmsNorm(x, w.post_attention_layernorm, dims_.rms_norm_eps);
    at::Tensor gu = model::Mm(h, w.gate_up_proj.t());  // [B L, 2 I]
    at::Tensor act = Silu(gu.narrow(1, 0, I)) * gu.narrow(1, I, I);
    if (fp32) {
      x.addmm_(act, w.down_proj.t());
    } else {
      x = x + model::Mm(act, w.down_proj.t());
    }
  }
  cache.length_ = T;
  at::Tensor last = x.view({B, L, D}).select(1, L - 1);
  at::Tensor hn = RmsNorm(last, weights_.norm, dims_.rms_norm_eps);
  return model::Mm(hn, weights_.lm_head.t()).to(at::kFloat);
}

absl::StatusOr<at::Tensor> TextModel::PrefillChunk(const at::Tensor& embeds,
                                                   KvCache& cache) const {
  return Guarded("prefill chunk", [&]() -> absl::StatusOr<at::Tensor> {
    if (cache.batch_ != 1) {
      return absl::InvalidArgumentError("PrefillChunk needs a batch-1 cache");
    }
    if (!embeds.defined() || embeds.dim() != 3 || embeds.size(0) != 1 ||
        embeds.size(2) != dims_.hidden_size || embeds.size(1) < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefill chunk embeddings must be [1, n, ", dims_.hidden_size, "]"));
    }
    const int64_t n = embeds.size(1), start = cache.length_;
    if (start + n > cache.capacity_) {
      return absl::InvalidArgumentError(absl::StrCat("prefill chunk of ", n, " at ", start,
                                                     " exceeds cache capacity ",
                                                     cache.capacity_));
    }
    if (cache.next_pos_[0] != start) {
      return absl::FailedPreconditionError("PrefillChunk needs an unpadded cache");
    }
    at::Tensor positions =
        at::arange(start, start + n, at::TensorOptions().dtype(at::kLong)).view({1, n});
    cache.key_valid_.narrow(1, start, n).fill_(true);
    at::Tensor x = embeds.to(options_.dtype).contiguous();
    at::Tensor logits = ForwardGeneric(x, positions, cache);
    cache.next_pos_[0] = start + n;
    return logits;
  });
}

absl::StatusOr<at::Tensor> TextModel::Step(absl::Span<const StepRow> rows,
                                           DecodeScratch& scratch) const {
  const int64_t n = rows.size();
  if (n < 1) return absl::InvalidArgumentError("a step needs at least one row");
  if (n > scratch.max_rows_) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " rows exceed the scratch's ", scratch.max_rows_));
  }
  // Validate; assign columns and positions (rows of one cache are consecutive).
  std::vector<FastRow> fast;
  fast.reserve(n);
  int64_t max_t = 0, logit_rows = 0;
  for (int64_t i = 0; i < n; ++i) {
    const StepRow& r = rows[i];
    logit_rows += r.logits ? 1 : 0;
    KvCache* c = r.cache;
    if (c == nullptr || c->batch_ != 1) return absl::InvalidArgumentError("Step needs batch-1 caches");
    int64_t offset = 0;
    if (i > 0 && rows[i - 1].cache == c) {
      offset = fast.back().column - c->length_ + 1;
    } else {
      for (int64_t j = 0; j < i; ++j) {
        if (rows[j].cache == c) {
          return absl::InvalidArgumentError("the rows of a sequence must be consecutive");
        }
      }
    }
    const int64_t column = c->length_ + offset, position = c->next_pos_[0] + offset;
    if (column >= c->capacity_) {
      return absl::FailedPreconditionError(
          absl::StrCat("KV cache is full (capacity ", c->capacity_, ")"));
    }
    if (position >= dims_.max_positions) {
      return absl::InvalidArgumentError("position exceeds max_position_embeddings");
    }
    if (r.embedding == nullptr && (r.token < 0 || r.token >= dims_.vocab_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", r.token, " is outside the vocabulary"));
    }
    fast.push_back(FastRow{c, 0, column, position, r.token, r.embedding, r.logits});
    max_t = std::max(max_t, column + 1);
  }
  if (logit_rows > scratch.max_logit_rows_) {
    return absl::InvalidArgumentError(absl::StrCat(logit_rows, " rows want logits, the scratch holds ",
                                                   scratch.max_logit_rows_));
  }
  return Guarded("decode step", [&]() -> absl::StatusOr<at::Tensor> {
    const int64_t D = dims_.hidden_size;
    if (!(options_.dtype == at::kFloat && options_.fast_decode)) {
      // Generic path (bf16): one sequence at a time.
      std::vector<at::Tensor> out;
      for (int64_t i = 0; i < n;) {
        int64_t e = i + 1;
        while (e < n && rows[e].cache == rows[i].cache) ++e;
        for (int64_t j = i; j + 1 < e; ++j) {
          if (rows[j].logits) {
            return absl::UnimplementedError("the generic path gives logits for a sequence's last row only");
          }
        }
        at::Tensor emb = at::empty({1, e - i, D}, at::TensorOptions().dtype(at::kFloat));
        for (int64_t j = i; j < e; ++j) {
          float* dst = emb.data_ptr<float>() + (j - i) * D;
          if (rows[j].embedding != nullptr) {
            std::memcpy(dst, rows[j].embedding, sizeof(float) * D);
          } else {
            emb[0][j - i].copy_(weights_.embed_tokens[rows[j].token].to(at::kFloat));
          }
        }
        ASSIGN_OR_RETURN(at::Tensor l, PrefillChunk(emb, *rows[i].cache));
        if (rows[e - 1].logits) out.push_back(l);
        i = e;
      }
      if (out.empty()) return at::empty({0, dims_.vocab_size}, at::TensorOptions().dtype(at::kFloat));
      return at::cat(out, 0);
    }
    const int64_t H = dims_.num_heads;
    if (static_cast<int64_t>(scratch.scores_.size()) < n * H * max_t) {
      scratch.scores_.assign(n * H * max_t, 0.0f);
    }
    FastBuffers buf{scratch.x_.narrow(0, 0, n),      scratch.xn_.narrow(0, 0, n),
                    scratch.qkv_.narrow(0, 0, n),    scratch.q_.narrow(0, 0, n),
                    scratch.attn_.narrow(0, 0, n),   scratch.gate_up_.narrow(0, 0, n),
                    scratch.act_.narrow(0, 0, n),    scratch.logits_,
                    scratch.scores_.data(),          max_t};
    const int64_t k = DecodeFastRows(fast, buf);
    return scratch.logits_.narrow(0, 0, k);
  });
}

int64_t TextModel::DecodeFastRows(absl::Span<const FastRow> rows, const FastBuffers& bf) const {
  const int64_t B = rows.size(), D = dims_.hidden_size, H = dims_.num_heads;
  const int64_t KV = dims_.num_kv_heads, G = dims_.group_size(), hd = dims_.head_dim;
  const int64_t half = hd / 2, I = dims_.intermediate_size;
  const int64_t N = (H + 2 * KV) * hd;
  const float eps = static_cast<float>(dims_.rms_norm_eps);
  const float scaling = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));

  at::Tensor x_t = bf.x, xn_t = bf.xn, qkv_t = bf.qkv, attn_t = bf.attn, gu_t = bf.gate_up;
  at::Tensor act_t = bf.act, logits_t = bf.logits;
  float* x = x_t.data_ptr<float>();
  float* xn = xn_t.data_ptr<float>();
  const float* emb = weights_.embed_tokens.data_ptr<float>();
  int64_t max_T = 0;
  for (int64_t b = 0; b < B; ++b) {
    const FastRow& fr = rows[b];
    std::memcpy(x + b * D, fr.embedding != nullptr ? fr.embedding : emb + fr.token * D,
                sizeof(float) * D);
    KvCache& c = *fr.cache;
    c.key_valid_.data_ptr<bool>()[fr.row * c.capacity_ + fr.column] = true;
    max_T = std::max(max_T, fr.column + 1);
  }
  const float* cos_table = rope_cos_.data_ptr<float>();
  const float* sin_table = rope_sin_.data_ptr<float>();
  float* sc = bf.scores;
  const int64_t heads = B * H;
  // Heads per task: keep short contexts (little work per head) on one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / (max_T * hd));

  for (int64_t l = 0; l < dims_.num_layers; ++l) {
    const TextLayerWeights& w = weights_.layers[l];
    RmsNormRows(x, w.input_layernorm.data_ptr<float>(), xn, B, D, eps);
    Linear(qkv_t, xn_t, w.qkv_proj, w.qkv_proj_int8, /*accumulate=*/false);
    const float* qkv = qkv_t.data_ptr<float>();
    float* q = bf.q.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      KvCache& c = *rows[b].cache;
      const int64_t pos = rows[b].position, t = rows[b].column, cap = c.capacity_;
      const float* cs = cos_table + pos * half;
      const float* sn = sin_table + pos * half;
      const float* row = qkv + b * N;
      float* kc = c.keys_[l].data_ptr<float>();
      float* vc = c.values_[l].data_ptr<float>();
      for (int64_t h = 0; h < H; ++h) RopeHead(row + h * hd, cs, sn, half, q + (b * H + h) * hd);
      for (int64_t j = 0; j < KV; ++j) {
        const int64_t slot = ((rows[b].row * KV + j) * cap + t) * hd;
        RopeHead(row + (H + j) * hd, cs, sn, half, kc + slot);
        std::memcpy(vc + slot, row + (H + KV + j) * hd, sizeof(float) * hd);
      }
    }
    float* attn = attn_t.data_ptr<float>();
    at::parallel_for(0, heads, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {  // r = b * H + h; kv head h / G
        const int64_t b = r / H, j = (r % H) / G;
        const KvCache& c = *rows[b].cache;
        const int64_t cap = c.capacity_, row = rows[b].row;
        const int64_t base = (row * KV + j) * cap * hd;
        internal::AttendOneHead(q + r * hd, c.keys_[l].data_ptr<float>() + base,
                                c.values_[l].data_ptr<float>() + base,
                                c.key_valid_.data_ptr<bool>() + row * cap, rows[b].column + 1, hd,
                                scaling, sc + r * bf.scores_stride, attn + r * hd);
      }
    });
    Linear(x_t, attn_t, w.o_proj, w.o_proj_int8, /*accumulate=*/true);  // residual fused
    RmsNormRows(x, w.post_attention_layernorm.data_ptr<float>(), xn, B, D, eps);
    Linear(gu_t, xn_t, w.gate_up_proj, w.gate_up_proj_int8, /*accumulate=*/false);
    const float* gu = gu_t.data_ptr<float>();
    float* act = act_t.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < I; ++i) {
        act[b * I + i] = Silu(gu[b * 2 * I + i]) * gu[b * 2 * I + I + i];
      }
    }
    Linear(x_t, act_t, w.down_proj, w.down_proj_int8, /*accumulate=*/true);
  }
  // Final norm and lm_head for the rows that want logits only, packed to the front.
  int64_t k = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (!rows[b].logits) continue;
    RmsNormRows(x + b * D, weights_.norm.data_ptr<float>(), xn + k * D, 1, D, eps);
    ++k;
  }
  if (k > 0) {
    at::Tensor xk = xn_t.narrow(0, 0, k), lk = logits_t.narrow(0, 0, k);
    Linear(lk, xk, weights_.lm_head, weights_.lm_head_int8, /*accumulate=*/false);
  }
  // Advance the caches past their rows.
  for (int64_t b = 0; b < B; ++b) {
    KvCache& c = *rows[b].cache;
    c.next_pos_[rows[b].row] = std::max(c.next_pos_[rows[b].row], rows[b].position + 1);
    c.length_ = std::max(c.length_, rows[b].column + 1);
  }
  return k;
}

}  // namespace smolserve::decoder
