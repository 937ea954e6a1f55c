// SmolVLM vision tower (SigLIP-style encoder) + connector (pixel shuffle + projection).
//
// Reproduces transformers' SmolVLMModel.get_image_features (reference doc §4, §5): padding
// tiles (all values exactly 0.0, in the model dtype) are dropped, the pixel attention mask
// becomes a patch mask (unfold, remainder dropped), position ids are bucketised with the
// same torch ops in float32, then conv patch embedding, pre-LN encoder layers, post
// LayerNorm, pixel shuffle and the bias-free modality projection.
//
// Weights are plain tensors named after the checkpoint keys; q/k/v are fused into one matrix
// at load time; float32 GEMMs go through oneDNN (common/model/linear.h).
//
// Threads: the library never changes the ATen/OpenMP thread count; call at::set_num_threads
// in the thread that calls Encode (OpenMP thread counts are per calling thread); tiles use
// intra-op parallelism. Encode is const and may be called concurrently.
#ifndef SMOLSERVE_SERVICES_VISION_CORE_VISION_MODEL_H_
#define SMOLSERVE_SERVICES_VISION_CORE_VISION_MODEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/config.h"
#include "common/model/weights.h"

namespace smolserve::vision {

struct VisionOptions {
  // Compute dtype: at::kFloat or at::kBFloat16. With bf16, pixel_values are cast to bf16
  // before the encoder (as transformers does); LayerNorm statistics and the attention
  // softmax are computed in float32.
  at::ScalarType dtype = at::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  // Each thread encodes its tiles in chunks of at most this many (bounds activation memory,
  // about 30 MB per 512x512 tile at the 256M shapes in float32).
  int64_t max_tiles_per_batch = 1;
};

struct EncodeOptions {
  bool return_last_hidden_state = false;  // fill VisionOutput::last_hidden_state
  bool return_position_ids = false;       // fill VisionOutput::position_ids
};

struct VisionOutput {
  // Connector output [n_real, (G/r)^2, D_t] in the model dtype, one row per real tile in
  // input order: what replaces the <image> tokens.
  at::Tensor image_hidden_states;
  // Debug taps (undefined unless requested): the tower's output after post_layernorm
  // [n_real, Hp/P * Wp/P, D_v] (model dtype) and the position ids fed to the position
  // embedding [n_real, Hp/P * Wp/P] (int64, CPU).
  at::Tensor last_hidden_state;
  at::Tensor position_ids;
  // Indices (into the flattened input tiles) of the tiles that were encoded.
  std::vector<int64_t> real_tile_indices;
};

// Weights of one encoder layer (model dtype, except LayerNorm parameters: float32); names follow
// model.vision_model.encoder.layers.{i}.{layer_norm1, self_attn.*, layer_norm2, mlp.*}.
struct VisionEncoderLayer {
  at::Tensor layer_norm1_weight, layer_norm1_bias;  // [D_v]
  // self_attn.{q,k,v}_proj fused along the output dim: weight [3*D_v, D_v], bias [3*D_v].
  at::Tensor self_attn_qkv_proj_weight, self_attn_qkv_proj_bias;
  at::Tensor self_attn_out_proj_weight, self_attn_out_proj_bias;  // [D_v, D_v], [D_v]
  at::Tensor layer_norm2_weight, layer_norm2_bias;                // [D_v]
  at::Tensor mlp_fc1_weight, mlp_fc1_bias;                        // [I_v, D_v], [I_v]
  at::Tensor mlp_fc2_weight, mlp_fc2_bias;                        // [D_v, I_v], [D_v]
};

struct VisionWeights {
  // model.vision_model.embeddings.patch_embedding: conv weight [D_v, C, P, P] stored
  // flattened as [D_v, C*P*P] (a stride-P conv is a matmul over patches), bias [D_v].
  at::Tensor patch_embedding_weight, patch_embedding_bias;
  at::Tensor position_embedding_weight;  // [G^2, D_v]
  std::vector<VisionEncoderLayer> layers;
  at::Tensor post_layernorm_weight, post_layernorm_bias;  // [D_v], float32
  at::Tensor connector_modality_projection_proj_weight;   // [D_t, D_v*r^2]
};

// What Encode would do with an input, without running the encoder (see PlanTiles).
struct TilePlan {
  // As VisionOutput::real_tile_indices.
  std::vector<int64_t> real_tile_indices;
  // No tile has a non-zero value: real_tile_indices is {0} only because the first tile is
  // kept (such a tile must be encoded without real tiles next to it, or Encode drops it).
  bool no_real_tile = false;
};

class VisionModel {
 public:
  // Takes every model.vision_model.* and model.connector.* tensor from `weights` (exact
  // shapes checked). Does not call weights.CheckAllUsed(): the text decoder takes the rest.
  static absl::StatusOr<std::unique_ptr<VisionModel>> Create(const model::ModelConfig& config,
                                                             model::WeightStore& weights,
                                                             const VisionOptions& options = {});

  // pixel_values: float32 [N, C, H, W] (or [B, N, C, H, W], flattened sample-major).
  // pixel_attention_mask: [N, H, W] (or [B, N, H, W]) bool/integer, or undefined (all ones).
  // H/P must equal W/P and be divisible by the scale factor. INVALID_ARGUMENT on bad input.
  absl::StatusOr<VisionOutput> Encode(const at::Tensor& pixel_values,
                                      const at::Tensor& pixel_attention_mask,
                                      const EncodeOptions& options = {}) const;

  // Runs every input check of Encode (INVALID_ARGUMENT exactly where Encode would return
  // it for these inputs, NaN/infinity and mask rectangles included) and finds the padding
  // tiles the same way (in the model dtype).
  absl::StatusOr<TilePlan> PlanTiles(const at::Tensor& pixel_values,
                                     const at::Tensor& pixel_attention_mask) const;

  const model::ModelConfig& config() const { return config_; }
  const VisionOptions& options() const { return options_; }
  const VisionWeights& weights() const { return w_; }

 private:
  VisionModel(const model::ModelConfig& config, const VisionOptions& options)
      : config_(config), options_(options) {}

  // Checked inputs of Encode: real tiles in model dtype on the device, their patch mask
  // (CPU bool [n_real, g, g]) and position ids (CPU int64 [n_real, g*g]).
  struct Prepared {
    at::Tensor pixels;
    at::Tensor patch_mask;
    at::Tensor position_ids;
    TilePlan plan;
  };
  absl::StatusOr<Prepared> Prepare(const at::Tensor& pixel_values,
                                   const at::Tensor& pixel_attention_mask) const;

  // Encoder + connector for one chunk of real tiles (already in model dtype, on device).
  // Returns {image_hidden_states, last_hidden_state}.
  std::pair<at::Tensor, at::Tensor> Forward(const at::Tensor& pixels,
                                            const at::Tensor& position_ids,
                                            const at::Tensor& patch_mask) const;

  model::ModelConfig config_;
  VisionOptions options_;
  VisionWeights w_;
};

}  // namespace smolserve::vision

#endif  // SMOLSERVE_SERVICES_VISION_CORE_VISION_MODEL_H_
