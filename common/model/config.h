// SmolVLM2 model / generation configuration, parsed from a Hugging Face model directory.
//
// Hugging Face serialises configs "diff-only": keys equal to the class default are omitted.
// Every missing key below therefore takes the default of the transformers class it belongs
// to (SmolVLMConfig, SmolVLMVisionConfig, LlamaConfig; see the reference doc §9.1).
// Parsing validates the architecture-relevant fields and reports the offending field by its
// JSON path (e.g. "text_config.num_attention_heads") in an INVALID_ARGUMENT status.
#ifndef SMOLSERVE_COMMON_MODEL_CONFIG_H_
#define SMOLSERVE_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::model {

// `vision_config` (SmolVLMVisionConfig; SigLIP-style encoder).
struct VisionConfig {
  int64_t hidden_size = 1152;        // D_v.
  int64_t intermediate_size = 3072;  // MLP width.
  int64_t num_hidden_layers = 12;    // Encoder layers.
  int64_t num_attention_heads = 16;  // Heads; head dim = hidden_size / num_attention_heads.
  int64_t num_channels = 3;          // Input channels (RGB).
  int64_t image_size = 224;          // Tile edge the position table is built for.
  int64_t patch_size = 32;           // P: conv kernel and stride.
  double layer_norm_eps = 1e-6;      // LayerNorm eps (SmolVLM2 configs omit it; 1e-6).
  std::string hidden_act = "gelu_pytorch_tanh";  // Only gelu_pytorch_tanh is supported.

  // G = image_size / patch_size: patches per side of a full tile.
  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// `text_config` (LlamaConfig; SmolLM2 decoder). Defaults are LlamaConfig's.
struct TextConfig {
  int64_t hidden_size = 4096;                // D_t.
  int64_t intermediate_size = 11008;         // MLP width (gate/up/down).
  int64_t num_hidden_layers = 32;            // Decoder layers.
  int64_t num_attention_heads = 32;          // Query heads.
  int64_t num_key_value_heads = 0;           // KV heads (GQA); = num_attention_heads if absent.
  int64_t head_dim = 0;                      // = hidden_size / num_attention_heads if absent/null.
  int64_t vocab_size = 32000;                // Rows of embed_tokens / lm_head.
  double rms_norm_eps = 1e-6;                // RMSNorm eps (SmolVLM2 configs say 1e-5).
  double rope_theta = 10000.0;               // RoPE base (SmolVLM2: 100000 or 130000).
  int64_t max_position_embeddings = 2048;    // Longest supported sequence.
  std::optional<int64_t> pad_token_id;       // text_config.pad_token_id (2 for SmolVLM2).
  std::optional<int64_t> bos_token_id = 1;   // LlamaConfig default 1.
  std::vector<int64_t> eos_token_ids = {2};  // LlamaConfig eos_token_id (int or list).
  std::string hidden_act = "silu";           // Only silu is supported.
  bool attention_bias = false;               // q/k/v/o projections carry a bias.
  bool mlp_bias = false;                     // gate/up/down projections carry a bias.
  // rope_scaling must be absent or null (anything else is UNIMPLEMENTED).
};

// Top-level `config.json` (SmolVLMConfig).
struct ModelConfig {
  VisionConfig vision;
  TextConfig text;
  int64_t scale_factor = 2;          // Connector pixel-shuffle factor r.
  int64_t image_token_id = 128257;   // Id of the <image> placeholder token.
  bool tie_word_embeddings = false;  // Top-level flag: lm_head shares embed_tokens.
  std::string torch_dtype;           // "float32", "bfloat16", ... ("" when absent).

  // Visual tokens per tile: (G / r)^2.
  int64_t image_seq_len() const {
    const int64_t g = vision.patches_per_side() / scale_factor;
    return g * g;
  }
  // Connector input width D_v * r^2.
  int64_t connector_input_size() const { return vision.hidden_size * scale_factor * scale_factor; }
};

// Parses the contents of a SmolVLM `config.json`. Errors: INVALID_ARGUMENT for malformed
// JSON, wrong types or inconsistent values (message names the field); UNIMPLEMENTED for
// features this implementation does not support (rope_scaling, other activations, a text
// model_type other than "llama").
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json);

// Reads `<model_dir>/config.json` (NOT_FOUND if absent) and parses it.
absl::StatusOr<ModelConfig> LoadModelConfig(absl::string_view model_dir);

// `generation_config.json`. Sampling fields are optional: absent means "library default"
// (greedy decoding, temperature 1, top_p 1, top_k 50, repetition_penalty 1).
struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;  // eos_token_id: an int or a list (may be empty).
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_length;
};

// Parses generation_config.json contents (INVALID_ARGUMENT on malformed JSON / types).
absl::StatusOr<GenerationConfig> ParseGenerationConfig(absl::string_view json);

// Reads `<model_dir>/generation_config.json`; NOT_FOUND if the file is absent (callers may
// then fall back to the text config's eos/pad ids).
absl::StatusOr<GenerationConfig> LoadGenerationConfig(absl::string_view model_dir);

// Resolves `model` to a local directory, offline:
//  - an existing local directory is returned as is;
//  - otherwise `org/name` or `org/name@revision` is looked up in the Hugging Face cache
//    ($HF_HUB_CACHE, else $HF_HOME/hub, else $HOME/.cache/huggingface/hub):
//    `models--org--name/snapshots/<commit>`, where a revision (default "main") is first
//    read through `refs/<revision>`, and a 40-hex commit hash may be given directly.
// NOT_FOUND (with the paths tried and a hint) when nothing matches; INVALID_ARGUMENT for a
// malformed repo id.
absl::StatusOr<std::string> ResolveModelDir(absl::string_view model);

}  // namespace smolserve::model

#endif  // SMOLSERVE_COMMON_MODEL_CONFIG_H_
