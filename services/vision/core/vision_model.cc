#include "services/vision/core/vision_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/linear.h"
#include "common/status/exception_status.h"
#include "common/status/status_macros.h"

namespace smolserve::vision {
namespace {

using model::ModelConfig;
using model::WeightStore;

std::string ShapeStr(at::IntArrayRef s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("vision encoder: ", what));
}

// LayerNorm with float32 parameters. A bf16 input is normalised in float32 and rounded once
// (LibTorch 1.13's own bf16 layer_norm rounds intermediates; torch 2.x does not).
at::Tensor LayerNorm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  if (x.scalar_type() == at::kFloat) return at::layer_norm(x, {x.size(-1)}, w, b, eps);
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, w, b, eps).to(x.scalar_type());
}

// gelu_pytorch_tanh in place; bf16 is computed in float32 and rounded once (as torch 2.x).
void GeluTanh_(at::Tensor& x) {
  if (x.scalar_type() == at::kFloat) {
    at::gelu_(x, "tanh");
  } else {
    x.copy_(at::gelu(x.to(at::kFloat), "tanh"));
  }
}

// Position ids of one chunk, reproducing SmolVLMVisionEmbeddings with the same float32 torch
// ops: arange(0, 1 - 1e-6, 1/nh) bucketised against arange(1/G, 1, 1/G) (right=True).
// patch_mask: CPU bool [n, gh, gw]. Returns int64 [n, gh*gw]; masked patches keep id 0.
absl::StatusOr<at::Tensor> BucketedPositionIds(const at::Tensor& patch_mask, int64_t g) {
  const int64_t n = patch_mask.size(0);
  const int64_t gh = patch_mask.size(1);
  const int64_t gw = patch_mask.size(2);
  const double inv_g = 1.0 / static_cast<double>(g);
  const at::Tensor boundaries = at::arange(inv_g, 1.0, inv_g, at::TensorOptions(at::kFloat));
  at::Tensor ids = at::zeros({n, gh * gw}, at::TensorOptions(at::kLong));
  for (int64_t b = 0; b < n; ++b) {
    const at::Tensor pm = patch_mask[b];
    const int64_t nh = pm.select(1, 0).sum().item<int64_t>();
    const int64_t nw = pm.select(0, 0).sum().item<int64_t>();
    const at::Tensor flat = pm.reshape({-1});
    const int64_t valid = flat.sum().item<int64_t>();
    if (valid != nh * nw) {
      return Invalid(absl::StrCat("pixel_attention_mask of tile ", b,
                                  " is not a top-left rectangle: ", valid, " valid patches but ",
                                  nh, " valid rows x ", nw, " valid columns"));
    }
    if (valid == 0) continue;  // transformers leaves every id at 0
    auto frac = [](int64_t count) {
      // 1 / count as a float32 tensor value, as torch's true division produces it.
      const float step = 1.0f / static_cast<float>(count);
      return at::arange(at::Scalar(static_cast<int64_t>(0)), at::Scalar(1.0 - 1e-6),
                        at::Scalar(static_cast<double>(step)), at::TensorOptions(at::kFloat));
    };
    const at::Tensor bucket_h = at::bucketize(frac(nh), boundaries, false, /*right=*/true);
    const at::Tensor bucket_w = at::bucketize(frac(nw), boundaries, false, /*right=*/true);
    const at::Tensor pos = (bucket_h.unsqueeze(1) * g + bucket_w).reshape({-1});
    if (pos.numel() != valid) {
      return Invalid(absl::StrCat("tile ", b, ": bucketised ", pos.numel(), " positions for ",
                                  valid, " valid patches"));
    }
    ids[b].index_put_({flat}, pos);
  }
  return ids;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VisionModel>> VisionModel::Create(const ModelConfig& config,
                                                                 WeightStore& weights,
                                                                 const VisionOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat("vision encoder: unsupported dtype ",
                                                   c10::toString(options.dtype),
                                                   " (float32 or bfloat16)"));
  }
  if (options.max_tiles_per_batch < 1) {
    return absl::InvalidArgumentError("vision encoder: max_tiles_per_batch must be >= 1");
  }
  const model::VisionConfig& vc = config.vision;
  const int64_t d = vc.hidden_size;
  const int64_t inter = vc.intermediate_size;
  const int64_t c = vc.num_channels;
  const int64_t p = vc.patch_size;
  const int64_t g = vc.patches_per_side();
  if (g < 1 || g % config.scale_factor != 0 || d % vc.num_attention_heads != 0) {
    return absl::InvalidArgumentError("vision encoder: inconsistent vision config");
  }
  std::unique_ptr<VisionModel> m(new VisionModel(config, options));
  const at::ScalarType dt = options.dtype;
  auto take = [&](const std::string& name, std::vector<int64_t> shape,
                  at::Tensor* out) -> absl::Status {
    ASSIGN_OR_RETURN(at::Tensor t, weights.Take(name, std::move(shape), dt));
    // LayerNorm parameters stay float32 (LayerNorm runs in float32; exact for bf16 values).
    if (name.find("layer_norm") != std::string::npos ||
        name.find("layernorm") != std::string::npos) {
      t = t.to(at::kFloat);
    }
    *out = std::move(t);
    return absl::OkStatus();
  };
  try {
    VisionWeights& w = m->w_;
    const std::string e = "model.vision_model.embeddings.";
    RETURN_IF_ERROR(take(e + "patch_embedding.weight", {d, c, p, p}, &w.patch_embedding_weight));
    w.patch_embedding_weight = w.patch_embedding_weight.reshape({d, c * p * p});
    RETURN_IF_ERROR(take(e + "patch_embedding.bias", {d}, &w.patch_embedding_bias));
    RETURN_IF_ERROR(
        take(e + "position_embedding.weight", {g * g, d}, &w.position_embedding_weight));
    for (int64_t i = 0; i < vc.num_hidden_layers; ++i) {
      const std::string l = absl::StrCat("model.vision_model.encoder.layers.", i, ".");
      VisionEncoderLayer layer;
      RETURN_IF_ERROR(take(l + "layer_norm1.weight", {d}, &layer.layer_norm1_weight));
      RETURN_IF_ERROR(take(l + "layer_norm1.bias", {d}, &layer.layer_norm1_bias));
      at::Tensor qw[3], qb[3];
      const char* names[3] = {"q_proj", "k_proj", "v_proj"};
      for (int j = 0; j < 3; ++j) {
        RETURN_IF_ERROR(take(l + "self_attn." + names[j] + ".weight", {d, d}, &qw[j]));
        RETURN_IF_ERROR(take(l + "self_attn." + names[j] + ".bias", {d}, &qb[j]));
      }
      layer.self_attn_qkv_proj_weight = at::cat({qw[0], qw[1], qw[2]}, 0);
      layer.self_attn_qkv_proj_bias = at::cat({qb[0], qb[1], qb[2]}, 0);
      RETURN_IF_ERROR(
          take(l + "self_attn.out_proj.weight", {d, d}, &layer.self_attn_out_proj_weight));
      RETURN_IF_ERROR(take(l + "self_attn.out_proj.bias", {d}, &layer.self_attn_out_proj_bias));
      RETURN_IF_ERROR(take(l + "layer_norm2.weight", {d}, &layer.layer_norm2_weight));
      RETURN_IF_ERROR(take(l + "layer_norm2.bias", {d}, &layer.layer_norm2_bias));
      RETURN_IF_ERROR(take(l + "mlp.fc1.weight", {inter, d}, &layer.mlp_fc1_weight));
      RETURN_IF_ERROR(take(l + "mlp.fc1.bias", {inter}, &layer.mlp_fc1_bias));
      RETURN_IF_ERROR(take(l + "mlp.fc2.weight", {d, inter}, &layer.mlp_fc2_weight));
      RETURN_IF_ERROR(take(l + "mlp.fc2.bias", {d}, &layer.mlp_fc2_bias));
      w.layers.push_back(std::move(layer));
    }
    RETURN_IF_ERROR(
        take("model.vision_model.post_layernorm.weight", {d}, &w.post_layernorm_weight));
    RETURN_IF_ERROR(take("model.vision_model.post_layernorm.bias", {d}, &w.post_layernorm_bias));
    RETURN_IF_ERROR(take("model.connector.modality_projection.proj.weight",
                         {config.text.hidden_size, config.connector_input_size()},
                         &w.connector_modality_projection_proj_weight));

    if (options.device != c10::Device(c10::kCPU)) {
      auto move = [&](at::Tensor& t) { t = t.to(options.device); };
      move(w.patch_embedding_weight);
      move(w.patch_embedding_bias);
      move(w.position_embedding_weight);
      for (VisionEncoderLayer& l : w.layers) {
        for (at::Tensor* t :
             {&l.layer_norm1_weight, &l.layer_norm1_bias, &l.self_attn_qkv_proj_weight,
              &l.self_attn_qkv_proj_bias, &l.self_attn_out_proj_weight, &l.self_attn_out_proj_bias,
              &l.layer_norm2_weight, &l.layer_norm2_bias, &l.mlp_fc1_weight, &l.mlp_fc1_bias,
              &l.mlp_fc2_weight, &l.mlp_fc2_bias}) {
          move(*t);
        }
      }
      move(w.post_layernorm_weight);
      move(w.post_layernorm_bias);
      move(w.connector_modality_projection_proj_weight);
    }
  } catch (const c10::Error& err) {
    return absl::InternalError(
        absl::StrCat("vision encoder: building weights: ", err.what_without_backtrace()));
  }
  return m;
}

std::pair<at::Tensor, at::Tensor> VisionModel::Forward(const at::Tensor& pixels,
                                                       const at::Tensor& position_ids,
                                                       const at::Tensor& patch_mask) const {
  const model::VisionConfig& vc = config_.vision;
  const int64_t n = pixels.size(0);
  const int64_t c = pixels.size(1);
  const int64_t p = vc.patch_size;
  const int64_t gh = pixels.size(2) / p;
  const int64_t gw = pixels.size(3) / p;
  const int64_t seq = gh * gw;
  const int64_t d = vc.hidden_size;
  const int64_t heads = vc.num_attention_heads;
  const int64_t hd = d / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const double eps = vc.layer_norm_eps;
  const bool fp32 = pixels.scalar_type() == at::kFloat;
  const bool cpu = pixels.device().is_cpu();

  // Patch embedding: a stride-P conv is a matmul over non-overlapping P x P patches
  // (rows/columns beyond gh*P, gw*P are ignored, as by the conv).
  at::Tensor patches = pixels.narrow(2, 0, gh * p)
                           .narrow(3, 0, gw * p)
                           .reshape({n, c, gh, p, gw, p})
                           .permute({0, 2, 4, 1, 3, 5})
                           .reshape({n * seq, c * p * p});
  at::Tensor x = model::Linear(patches, w_.patch_embedding_weight, w_.patch_embedding_bias);
  patches.reset();
  x.add_(at::embedding(w_.position_embedding_weight, position_ids.reshape({-1})));

  // Additive key mask (0 / finfo.min), only when some patch is padding, as transformers.
  at::Tensor key_mask;
  if (!patch_mask.all().item<bool>()) {
    const double minval = fp32 ? static_cast<double>(std::numeric_limits<float>::lowest())
                               : static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    key_mask = at::zeros({n, seq}, x.options())
                   .masked_fill_(patch_mask.reshape({n, seq}).logical_not(), minval);
  }

  at::Tensor attn = at::empty({n * seq, d}, x.options());
  for (const VisionEncoderLayer& l : w_.layers) {
    // --- self attention ---
    at::Tensor h = LayerNorm(x, l.layer_norm1_weight, l.layer_norm1_bias, eps);
    const at::Tensor qkv =
        model::Linear(h, l.self_attn_qkv_proj_weight, l.self_attn_qkv_proj_bias);  // [n*seq, 3d]
    h.reset();
    // One task per (tile, head); tasks run in parallel, each single-threaded, with its own
    // [seq, seq] score/probability buffers (cache-resident, no per-head allocation).
    auto run_tasks = [&](int64_t begin, int64_t end) {
      at::Tensor scores = at::empty({seq, seq}, x.options());
      at::Tensor probs = at::empty({seq, seq}, x.options());
      for (int64_t task = begin; task < end; ++task) {
        const int64_t t = task / heads;
        const int64_t k = task % heads;
        const at::Tensor rows = qkv.narrow(0, t * seq, seq);
        const at::Tensor q = rows.narrow(1, k * hd, hd);
        const at::Tensor kk = rows.narrow(1, d + k * hd, hd);
        const at::Tensor v = rows.narrow(1, 2 * d + k * hd, hd);
        at::Tensor out = attn.narrow(0, t * seq, seq).narrow(1, k * hd, hd);
        if (fp32) {
          // scores = (Q K^T) * scale; softmax in float32; out = P V.
          bool ok = false;
          if (cpu) {
            ok = model::Sgemm(false, true, seq, seq, hd, static_cast<float>(scale),
                              q.data_ptr<float>(), 3 * d, kk.data_ptr<float>(), 3 * d, 0.0f,
                              scores.data_ptr<float>(), seq);
          }
          if (!ok) at::mul_out(scores, at::mm(q, kk.t()), scale);
          if (key_mask.defined()) scores.add_(key_mask[t].unsqueeze(0));
          at::_softmax_out(probs, scores, -1, false);
          ok = cpu && model::Sgemm(false, false, seq, hd, seq, 1.0f, probs.data_ptr<float>(), seq,
                                   v.data_ptr<float>(), 3 * d, 0.0f, out.data_ptr<float>(), d);
          if (!ok) at::mm_out(out, probs, v);
        } else {
          // bf16: (Q K^T) rounded to bf16, times the scale in float32 rounded to bf16 (as
          // torch 2.x; LibTorch 1.13 would round the scalar itself to bf16), mask added,
          // softmax in float32, probabilities rounded to bf16.
          model::MmOut(scores, q, kk.t());
          scores.copy_(scores.to(at::kFloat).mul_(scale));
          if (key_mask.defined()) scores.add_(key_mask[t].unsqueeze(0));
          probs.copy_(at::_softmax(scores.to(at::kFloat), -1, false));
          model::MmOut(out, probs, v);
        }
      }
    };
    if (cpu) {
      // InferenceMode is per thread: the pool's threads need their own.
      at::parallel_for(0, n * heads, 1, [&](int64_t b, int64_t e) {
        c10::InferenceMode guard;
        run_tasks(b, e);
      });
    } else {
      run_tasks(0, n * heads);
    }
    x.add_(model::Linear(attn, l.self_attn_out_proj_weight, l.self_attn_out_proj_bias));

    // --- MLP ---
    h = LayerNorm(x, l.layer_norm2_weight, l.layer_norm2_bias, eps);
    at::Tensor f = model::Linear(h, l.mlp_fc1_weight, l.mlp_fc1_bias);
    h.reset();
    GeluTanh_(f);
    x.add_(model::Linear(f, l.mlp_fc2_weight, l.mlp_fc2_bias));
  }
  at::Tensor last =
      LayerNorm(x, w_.post_layernorm_weight, w_.post_layernorm_bias, eps).reshape({n, seq, d});

  // Connector: pixel shuffle (transformers' exact view/permute chain), then projection.
  const int64_t r = config_.scale_factor;
  const int64_t side = gh;  // gh == gw, checked by Encode
  at::Tensor s = last.view({n, side, side, d})
                     .view({n, side, side / r, d * r})
                     .permute({0, 2, 1, 3})
                     .reshape({n, side / r, side / r, d * r * r})
                     .permute({0, 2, 1, 3})
                     .reshape({n, seq / (r * r), d * r * r});
  at::Tensor features = model::Linear(s, w_.connector_modality_projection_proj_weight);
  return {features, last};
}

absl::StatusOr<VisionModel::Prepared> VisionModel::Prepare(
    const at::Tensor& pixel_values, const at::Tensor& pixel_attention_mask) const {
  const model::VisionConfig& vc = config_.vision;
  const int64_t p = vc.patch_size;
  const int64_t r = config_.scale_factor;
  if (!pixel_values.defined()) return Invalid("pixel_values is undefined");
  if (pixel_values.scalar_type() != at::kFloat) {
    return Invalid(absl::StrCat("pixel_values must be float32, got ",
                                c10::toString(pixel_values.scalar_type())));
  }
  if (pixel_values.dim() != 4 && pixel_values.dim() != 5) {
    return Invalid(absl::StrCat("pixel_values must be [N, C, H, W] or [B, N, C, H, W], got ",
                                ShapeStr(pixel_values.sizes())));
  }
  const int64_t lead = pixel_values.dim() - 3;  // number of leading (tile) dims
  const int64_t c = pixel_values.size(lead);
  const int64_t hgt = pixel_values.size(lead + 1);
  const int64_t wid = pixel_values.size(lead + 2);
  int64_t num = 1;
  for (int64_t i = 0; i < lead; ++i) num *= pixel_values.size(i);
  if (num < 1) return Invalid("pixel_values holds no tiles");
  if (c != vc.num_channels) {
    return Invalid(absl::StrCat("pixel_values has ", c, " channels, expected ", vc.num_channels));
  }
  const int64_t gh = hgt / p;
  const int64_t gw = wid / p;
  if (gh < 1 || gw < 1 || gh != gw || gh % r != 0) {
    return Invalid(absl::StrCat("tile size ", hgt, "x", wid, " gives a ", gh, "x", gw,
                                " patch grid (patch ", p,
                                "); it must be square and divisible by scale_factor ", r));
  }
  if (pixel_attention_mask.defined()) {
    const at::ScalarType mt = pixel_attention_mask.scalar_type();
    if (mt != at::kBool && !at::isIntegralType(mt, /*includeBool=*/false)) {
      return Invalid(
          absl::StrCat("pixel_attention_mask must be bool or integer, got ", c10::toString(mt)));
    }
    std::vector<int64_t> want(pixel_values.sizes().begin(), pixel_values.sizes().begin() + lead);
    want.push_back(hgt);
    want.push_back(wid);
    if (pixel_attention_mask.sizes().vec() != want) {
      return Invalid(absl::StrCat("pixel_attention_mask has shape ",
                                  ShapeStr(pixel_attention_mask.sizes()), ", expected ",
                                  ShapeStr(want)));
    }
  }

  try {
    const at::ScalarType dt = options_.dtype;
    const c10::Device dev = options_.device;
    Prepared out;
    at::Tensor pv = pixel_values.reshape({num, c, hgt, wid});
    if (!at::isfinite(pv).all().item<bool>()) {
      return Invalid("pixel_values contains NaN or infinity");
    }
    pv = pv.to(dev, dt);  // the bf16 cast is part of the reference numerics

    // Real tiles: not every value exactly 0.0 (in the model dtype). Keep the first if none.
    const at::Tensor real = pv.reshape({num, -1}).ne(0).any(1).to(at::kCPU);
    const bool* real_ptr = real.data_ptr<bool>();
    std::vector<int64_t>& indices = out.plan.real_tile_indices;
    for (int64_t i = 0; i < num; ++i) {
      if (real_ptr[i]) indices.push_back(i);
    }
    if (indices.empty()) {
      indices.push_back(0);
      out.plan.no_real_tile = true;
    }
    const int64_t n_real = static_cast<int64_t>(indices.size());
    const at::Tensor idx_cpu = at::tensor(indices, at::TensorOptions(at::kLong));

    // Patch mask [n_real, gh, gw]: a patch is valid if any pixel in it is (sum > 0).
    if (pixel_attention_mask.defined()) {
      at::Tensor m = pixel_attention_mask.reshape({num, hgt, wid}).to(at::kCPU);
      if (n_real != num) m = m.index_select(0, idx_cpu);
      out.patch_mask = m.narrow(1, 0, gh * p)
                           .narrow(2, 0, gw * p)
                           .reshape({n_real, gh, p, gw, p})
                           .sum({2, 4})
                           .gt(0);
    } else {
      out.patch_mask = at::ones({n_real, gh, gw}, at::TensorOptions(at::kBool));
    }
    ASSIGN_OR_RETURN(out.position_ids,
                     BucketedPositionIds(out.patch_mask, vc.patches_per_side()));

    if (n_real != num) pv = pv.index_select(0, idx_cpu.to(dev));
    out.pixels = pv.contiguous();
    return out;
  } catch (const std::exception& err) {
    return StatusFromException(err, "vision encoder");
  }
}

absl::StatusOr<TilePlan> VisionModel::PlanTiles(const at::Tensor& pixel_values,
                                                const at::Tensor& pixel_attention_mask) const {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(pixel_values, pixel_attention_mask));
  return std::move(prepared.plan);
}

absl::StatusOr<VisionOutput> VisionModel::Encode(const at::Tensor& pixel_values,
                                                 const at::Tensor& pixel_attention_mask,
                                                 const EncodeOptions& options) const {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(pixel_values, pixel_attention_mask));
  try {
    const model::VisionConfig& vc = config_.vision;
    const c10::Device dev = options_.device;
    const at::Tensor& pv = prepared.pixels;
    const at::Tensor& patch_mask = prepared.patch_mask;
    const at::Tensor& position_ids = prepared.position_ids;
    VisionOutput result;
    result.real_tile_indices = std::move(prepared.plan.real_tile_indices);
    const int64_t n_real = pv.size(0);
    const int64_t gh = pv.size(2) / vc.patch_size;
    const int64_t gw = pv.size(3) / vc.patch_size;
    const int64_t r = config_.scale_factor;

    // Tiles go through the encoder in chunks with intra-op parallelism (multi-threaded GEMMs,
    // attention heads spread over the threads). Spreading whole tiles over the threads with
    // single-threaded kernels measured slower on this class of machine (786 vs 750 ms per
    // tile at 4 tiles, 1254 at 8; vision_bench, 2 threads).
    const int64_t side = gh / r;
    at::Tensor features = at::empty({n_real, side * side, config_.text.hidden_size}, pv.options());
    at::Tensor lasts;
    if (options.return_last_hidden_state) {
      lasts = at::empty({n_real, gh * gw, vc.hidden_size}, pv.options());
    }
    const int64_t chunk = options_.max_tiles_per_batch;
    auto encode_range = [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; s += chunk) {
        const int64_t len = std::min(chunk, end - s);
        auto [f, last] = Forward(pv.narrow(0, s, len), position_ids.narrow(0, s, len).to(dev),
                                 patch_mask.narrow(0, s, len).to(dev));
        features.narrow(0, s, len).copy_(f);
        if (lasts.defined()) lasts.narrow(0, s, len).copy_(last);
      }
    };
    encode_range(0, n_real);
    result.image_hidden_states = std::move(features);
    if (lasts.defined()) result.last_hidden_state = std::move(lasts);
    if (options.return_position_ids) result.position_ids = position_ids;
    return result;
  } catch (const std::exception& err) {
    return StatusFromException(err, "vision encoder");
  }
}

}  // namespace smolserve::vision
