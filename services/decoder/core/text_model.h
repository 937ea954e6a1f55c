// The SmolVLM2 text decoder (Llama / SmolLM2) over LibTorch, without torch::nn.
//
// Math follows transformers' LlamaModel (eager attention) as used by SmolVLMModel, see the
// reference doc §6:
//  - token embeddings, with the connector's image features written, in order, at the
//    `<image>` (config.image_token_id) positions (§6.1);
//  - per layer: RMSNorm (float32 statistics, cast back, then times the weight), fused q/k/v
//    projection, half-split RoPE computed in float32 with rope_theta, GQA (kv head j serves
//    query heads j*G .. j*G+G-1, i.e. repeat_interleave), causal + padding additive mask with
//    finfo(dtype).min, float32 softmax, o_proj, residual, RMSNorm, SiLU-gated MLP, residual;
//  - final RMSNorm and lm_head (tied to embed_tokens when config.tie_word_embeddings),
//    evaluated for the last position only; logits are returned as float32 (bf16 logits are
//    upcast, as generate() does).
//
// Batches are left-padded: position ids are cumsum(attention_mask) - 1 with padded positions
// set to 1 (HF generate), padded keys are masked. Fully masked (padding) query rows produce
// finite garbage that no real token ever reads.
//
// Thread-safety: a TextModel is immutable after Create() and may be shared by threads; each
// KvCache must be used by one thread at a time. All methods run under c10::InferenceMode and
// return inference tensors (read them freely; do not modify them in place outside
// InferenceMode).
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_TEXT_MODEL_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_TEXT_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/config.h"
#include "common/model/weights.h"

namespace smolserve::decoder {

struct TextModelOptions {
  // Compute (and weight) dtype: at::kFloat or at::kBFloat16. Checkpoint weights are converted.
  at::ScalarType dtype = at::kFloat;
  // float32 only: decode steps use the fast path (gemv / small GEMMs into preallocated
  // buffers with the residual fused, hand-written RMSNorm / RoPE / SiLU loops and a vectorised
  // per-head attention kernel over the cache). false = the generic ATen path used for prefill
  // and for bf16 (tests compare the two).
  bool fast_decode = true;
  // float32 with fast_decode only: the linear layers (q/k/v, o, gate/up, down, lm_head) are
  // quantised at load to symmetric per-output-channel int8 (scale = max|row| / 127) and the
  // decode steps read the int8 rows (a quarter of the bytes). The float32 tensors are replaced
  // by the dequantised values, so the generic path computes with the same weights. Embeddings
  // and norms stay float32.
  bool int8_weights = false;
  // Prefill computes attention for this many queries at a time (bounds the scores buffer to
  // heads x chunk x keys). Must be >= 1.
  int64_t prefill_query_chunk = 256;
};

// Shapes and constants of the decoder, resolved from the model config.
struct TextModelDims {
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // I
  int64_t num_layers = 0;
  int64_t num_heads = 0;     // H
  int64_t num_kv_heads = 0;  // KV (H % KV == 0)
  int64_t head_dim = 0;      // hd (even)
  int64_t vocab_size = 0;    // V
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t max_positions = 0;   // max_position_embeddings: positions must stay below it
  int64_t image_token_id = -1;
  int64_t image_seq_len = 0;   // S: image features per image (tile)
  bool tie_word_embeddings = false;

  int64_t group_size() const { return num_heads / num_kv_heads; }
};

// A linear layer's weights as int8 rows [N, K] and one float32 scale per row [N]
// (TextModelOptions::int8_weights); undefined tensors otherwise.
struct Int8Rows {
  at::Tensor values;  // int8 [N, K]
  at::Tensor scales;  // float32 [N]
  bool defined() const { return values.defined(); }
};

// Weights of one decoder layer, named after the checkpoint keys
// `model.text_model.layers.{i}.<name>.weight`; q/k/v and gate/up are fused at load time.
struct TextLayerWeights {
  at::Tensor input_layernorm;           // [D]
  at::Tensor qkv_proj;                  // cat(self_attn.{q,k,v}_proj) [(H + 2 KV) hd, D]
  at::Tensor o_proj;                    // self_attn.o_proj [D, H hd]
  at::Tensor post_attention_layernorm;  // [D]
  at::Tensor gate_up_proj;              // cat(mlp.gate_proj, mlp.up_proj) [2 I, D]
  at::Tensor down_proj;                 // mlp.down_proj [D, I]
  // int8 copies of the four linear layers (TextModelOptions::int8_weights).
  Int8Rows qkv_proj_int8, o_proj_int8, gate_up_proj_int8, down_proj_int8;
};

struct TextModelWeights {
  at::Tensor embed_tokens;  // model.text_model.embed_tokens.weight [V, D]
  std::vector<TextLayerWeights> layers;
  at::Tensor norm;     // model.text_model.norm.weight [D]
  at::Tensor lm_head;  // lm_head.weight [V, D]; the embed_tokens tensor itself when tied
  // (with int8_weights, a dequantised copy: embed_tokens stays exact)
  Int8Rows lm_head_int8;
};

// Per-sequence-batch key/value cache with all memory allocated up front: per layer
// K (after RoPE) and V of shape [B, KV, capacity, hd], which keys are valid (the prompt's
// attention mask, then every generated position), the next position id of each row, and the
// scratch buffers of the fast decode path. Created by TextModel::NewCache.
class KvCache {
 public:
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  int64_t batch_size() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  // Columns written so far (prompt length incl. left padding, plus decode steps).
  int64_t length() const { return length_; }
  // Position id the next token of `row` gets (= real tokens of that row so far).
  int64_t next_position(int64_t row) const { return next_pos_[row]; }

 private:
  friend class TextModel;
  KvCache() = default;

  int64_t batch_ = 0;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  std::vector<at::Tensor> keys_;    // per layer [B, KV, capacity, hd]
  std::vector<at::Tensor> values_;  // per layer [B, KV, capacity, hd]
  at::Tensor key_valid_;            // [B, capacity] bool
  std::vector<int64_t> next_pos_;   // per row
  // Fast-decode scratch (float32 models only; absent in caches made for Step).
  at::Tensor x_, xn_, qkv_, q_, attn_, gate_up_, act_, scores_, logits_;
};

// Activation buffers of the fast decode path for up to `max_rows` sequences decoded together
// by TextModel::Step (one per engine thread). Created by TextModel::NewDecodeScratch.
class DecodeScratch {
 public:
  DecodeScratch(DecodeScratch&&) = default;
  DecodeScratch& operator=(DecodeScratch&&) = default;
  int64_t max_rows() const { return max_rows_; }

 private:
  friend class TextModel;
  DecodeScratch() = default;
  int64_t max_rows_ = 0;
  int64_t max_logit_rows_ = 0;
  std::vector<float> scores_;  // attention scores, grown on demand
  at::Tensor x_, xn_, qkv_, q_, attn_, gate_up_, act_, logits_;
};

// One row of TextModel::Step: the next input of a sequence (a generated token, or a prompt
// position of a prefill chunk).
// A copy of the first `length` columns of a batch-1 cache (keys after RoPE and values of every
// layer): a later sequence whose first rows are the same inputs starts from it instead of
// prefilling them again (prefix caching). Immutable once made; made by TextModel::CopyPrefix.
struct KvPrefix {
  int64_t length = 0;
  std::vector<at::Tensor> keys, values;  // per layer [1, KV, length, hd], the model's dtype
  int64_t bytes = 0;                     // the tensors' bytes
};

struct StepRow {
  KvCache* cache = nullptr;            // the sequence's batch-1 cache
  int64_t token = -1;                  // input token id, or
  const float* embedding = nullptr;    // input embedding [D] (float32; e.g. image features)
  bool logits = true;                  // return this row's logits
};

class TextModel {
 public:
  // Takes `model.text_model.*` and `lm_head.weight` (only embed_tokens when tied; an
  // `lm_head.weight` present in a tied checkpoint is taken and ignored, as HF ties it) from
  // `weights`, converted to options.dtype. Errors: INVALID_ARGUMENT for inconsistent config
  // values or options, UNIMPLEMENTED for biases / activations other than silu, and the
  // WeightStore's NOT_FOUND / INVALID_ARGUMENT for missing or mis-shaped tensors.
  static absl::StatusOr<std::unique_ptr<TextModel>> Create(const model::ModelConfig& config,
                                                           model::WeightStore& weights,
                                                           const TextModelOptions& options = {});

  const TextModelDims& dims() const { return dims_; }
  const TextModelOptions& options() const { return options_; }
  at::ScalarType dtype() const { return options_.dtype; }
  const TextModelWeights& weights() const { return weights_; }

  // A cache for `batch` rows and up to `capacity` columns (prompt incl. padding plus new
  // tokens). INVALID_ARGUMENT when batch < 1, capacity < 1 or capacity > max_positions;
  // RESOURCE_EXHAUSTED when the memory cannot be allocated.
  // `with_scratch` = false leaves out the fast-decode scratch (caches only ever used
  // through Step / PrefillChunk, which bring their own).
  absl::StatusOr<KvCache> NewCache(int64_t batch, int64_t capacity,
                                   bool with_scratch = true) const;
  // Bytes NewCache(batch, capacity, false) allocates (keys, values, validity).
  int64_t CacheBytes(int64_t batch, int64_t capacity) const;
  // Bytes CopyPrefix(cache, length) allocates.
  int64_t PrefixBytes(int64_t length) const;

  // Copies columns [0, length) of a batch-1 unpadded `cache` (FAILED_PRECONDITION unless it
  // holds at least `length` columns; RESOURCE_EXHAUSTED when memory runs out).
  absl::StatusOr<KvPrefix> CopyPrefix(const KvCache& cache, int64_t length) const;
  // Writes the first `length` columns of `prefix` into an empty batch-1 `cache`, which then
  // continues (PrefillChunk, Step) exactly as if those rows had been prefilled into it.
  // FAILED_PRECONDITION for a non-empty cache, a wrong batch, or length beyond the prefix or
  // the cache's capacity.
  absl::Status LoadPrefix(const KvPrefix& prefix, int64_t length, KvCache& cache) const;

  // Scratch for Step over up to `max_rows` rows, of which up to `max_logit_rows` (default:
  // all) return logits.
  absl::StatusOr<DecodeScratch> NewDecodeScratch(int64_t max_rows,
                                                 int64_t max_logit_rows = 0) const;

  // Token embeddings [B, L, D] (model dtype) with image features merged: the j-th `<image>`
  // token in row-major order receives image_hidden_states.view(-1, D)[j].
  // `image_hidden_states`: [N, S, D] (any floating dtype; cast to the model dtype), or an
  // undefined tensor when there are no images. INVALID_ARGUMENT when an id is out of range,
  // a row's `<image>` count is not a multiple of S, or the total count != N * S.
  absl::StatusOr<at::Tensor> EmbedInputs(const at::Tensor& input_ids,
                                         const at::Tensor& image_hidden_states) const;

  // Runs the prompt through the decoder, filling `cache` (which must be empty and have
  // batch_size() == B and capacity >= L). `input_ids`: [B, L] integer; `attention_mask`:
  // [B, L] of 0/1, each row left-padded (zeros then ones, at least one 1), or undefined for
  // all ones. Returns the float32 logits of the last position, [B, V].
  absl::StatusOr<at::Tensor> Prefill(const at::Tensor& input_ids,
                                     const at::Tensor& attention_mask,
                                     const at::Tensor& image_hidden_states, KvCache& cache) const;

  // Appends one token per row (every row's new key is valid, as HF appends 1 to the mask)
  // and returns the float32 logits for it, [B, V]. FAILED_PRECONDITION when the cache is
  // empty or full; INVALID_ARGUMENT for a wrong count or an out-of-range id.
  absl::StatusOr<at::Tensor> DecodeStep(absl::Span<const int64_t> token_ids,
                                        KvCache& cache) const;

  // Chunked prefill of one unpadded sequence: runs `embeds` [1, n, D] (rows of EmbedInputs'
  // output) at columns [length, length + n) of a batch-1 `cache`, positions continuing from
  // length. Returns the float32 logits of the chunk's last position, [1, V]. Splitting a
  // prompt into chunks gives the same cache contents as one Prefill up to float rounding.
  absl::StatusOr<at::Tensor> PrefillChunk(const at::Tensor& embeds, KvCache& cache) const;

  // One forward pass over rows of several independent sequences, each with its own batch-1
  // cache: every row is appended to its cache at the next column and position (rows of one
  // sequence must be consecutive, in order: a prefill chunk), then attends to its cache up to
  // itself. Returns the float32 logits [k, V] of the rows with `logits` set, in row order (a
  // view into `scratch`, valid until its next use). Decode tokens and prefill chunks of
  // different sequences thus share one pass over the weights. With the float32 fast path
  // every row's result is bit-identical whatever else shares the pass (batch-invariant
  // kernels). The generic path (bf16) runs each sequence on its own and gives logits only for
  // a sequence's last row.
  absl::StatusOr<at::Tensor> Step(absl::Span<const StepRow> rows, DecodeScratch& scratch) const;

 private:
  TextModel() = default;

  // Generic path (any dtype): runs `embeds` [B, L, D] at cache columns [length, length+L)
  // with position ids `positions` [B, L]; returns the last position's float32 logits.
  at::Tensor ForwardGeneric(const at::Tensor& embeds, const at::Tensor& positions,
                            KvCache& cache) const;
  // Fast float32 decode step (L = 1) over rows (cache, row index) with the given buffers;
  // token ids and capacities already validated.
  struct FastRow {
    KvCache* cache;
    int64_t row;       // row of the cache
    int64_t column;    // cache column this input is written to
    int64_t position;  // its position id
    int64_t token;     // input token, or
    const float* embedding;
    bool logits;
  };
  struct FastBuffers {
    at::Tensor x, xn, qkv, q, attn, gate_up, act, logits;  // >= rows() rows each
    float* scores;                                         // [rows * H, scores_stride]
    int64_t scores_stride;
  };
  // Writes the logits of the rows with `logits` set to buffers.logits rows 0.., in order;
  // returns how many.
  int64_t DecodeFastRows(absl::Span<const FastRow> rows, const FastBuffers& buffers) const;

  TextModelDims dims_;
  TextModelOptions options_;
  TextModelWeights weights_;
  at::Tensor rope_cos_;  // [max_positions, hd / 2] float32: cos(p * inv_freq)
  at::Tensor rope_sin_;  // [max_positions, hd / 2] float32
};

}  // namespace smolserve::decoder

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_TEXT_MODEL_H_
