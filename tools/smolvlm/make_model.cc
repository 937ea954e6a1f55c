#include "tools/smolvlm/make_model.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/safetensors/safetensors.h"
#include "common/safetensors/torch_tensors.h"

namespace smolserve::cli {
namespace {

absl::Status CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", from, "'"));
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", to, "'"));
  out << in.rdbuf();
  return out ? absl::OkStatus() : absl::InternalError(absl::StrCat("short write to '", to, "'"));
}

absl::Status MakeDirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      const std::string p = dir.substr(0, i);
      if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::PermissionDeniedError(absl::StrCat("cannot create '", p, "': ", std::strerror(errno)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<TensorSpec> CheckpointLayout(const model::ModelConfig& c) {
  std::vector<TensorSpec> out;
  auto normal = [&](std::string name, std::vector<int64_t> shape, double std = 0.02) {
    out.push_back({std::move(name), std::move(shape), TensorSpec::Init::kNormal, std});
  };
  auto ones = [&](std::string name, std::vector<int64_t> shape) {
    out.push_back({std::move(name), std::move(shape), TensorSpec::Init::kOnes, 0});
  };
  auto zeros = [&](std::string name, std::vector<int64_t> shape) {
    out.push_back({std::move(name), std::move(shape), TensorSpec::Init::kZeros, 0});
  };
  const auto& v = c.vision;
  const int64_t dv = v.hidden_size, g = v.patches_per_side();
  const std::string vp = "model.vision_model.";
  normal(vp + "embeddings.patch_embedding.weight", {dv, v.num_channels, v.patch_size, v.patch_size});
  zeros(vp + "embeddings.patch_embedding.bias", {dv});
  normal(vp + "embeddings.position_embedding.weight", {g * g, dv});
  for (int64_t i = 0; i < v.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat(vp, "encoder.layers.", i, ".");
    ones(p + "layer_norm1.weight", {dv});
    zeros(p + "layer_norm1.bias", {dv});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      normal(absl::StrCat(p, "self_attn.", proj, ".weight"), {dv, dv});
      zeros(absl::StrCat(p, "self_attn.", proj, ".bias"), {dv});
    }
    ones(p + "layer_norm2.weight", {dv});
    zeros(p + "layer_norm2.bias", {dv});
    normal(p + "mlp.fc1.weight", {v.intermediate_size, dv});
    zeros(p + "mlp.fc1.bias", {v.intermediate_size});
    normal(p + "mlp.fc2.weight", {dv, v.intermediate_size});
    zeros(p + "mlp.fc2.bias", {dv});
  }
  ones(vp + "post_layernorm.weight", {dv});
  zeros(vp + "post_layernorm.bias", {dv});

  const auto& t = c.text;
  const int64_t dt = t.hidden_size;
  const int64_t head_dim = t.head_dim > 0 ? t.head_dim : dt / t.num_attention_heads;
  const int64_t kv = t.num_key_value_heads > 0 ? t.num_key_value_heads : t.num_attention_heads;
  normal("model.connector.modality_projection.proj.weight", {dt, c.connector_input_size()});
  normal("model.text_model.embed_tokens.weight", {t.vocab_size, dt});
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.text_model.layers.", i, ".");
    ones(p + "input_layernorm.weight", {dt});
    normal(p + "self_attn.q_proj.weight", {t.num_attention_heads * head_dim, dt});
    normal(p + "self_attn.k_proj.weight", {kv * head_dim, dt});
    normal(p + "self_attn.v_proj.weight", {kv * head_dim, dt});
    normal(p + "self_attn.o_proj.weight", {dt, t.num_attention_heads * head_dim});
    ones(p + "post_attention_layernorm.weight", {dt});
    normal(p + "mlp.gate_proj.weight", {t.intermediate_size, dt});
    normal(p + "mlp.up_proj.weight", {t.intermediate_size, dt});
    normal(p + "mlp.down_proj.weight", {dt, t.intermediate_size});
  }
  ones("model.text_model.norm.weight", {dt});
  if (!c.tie_word_embeddings) normal("lm_head.weight", {t.vocab_size, dt});
  return out;
}

absl::Status MakeModel(const MakeModelOptions& o) {
  const std::string preset_dir = absl::StrCat(o.presets_dir, "/", o.preset);
  auto config = model::LoadModelConfig(preset_dir);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("preset '", o.preset, "': ", config.status().message()));
  }
  if (auto s = MakeDirs(o.out_dir); !s.ok()) return s;
  for (const char* f : {"config.json", "preprocessor_config.json", "processor_config.json",
                        "generation_config.json", "chat_template.json"}) {
    if (auto s = CopyFile(absl::StrCat(preset_dir, "/", f), absl::StrCat(o.out_dir, "/", f)); !s.ok()) return s;
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "added_tokens.json"}) {
    if (auto s = CopyFile(absl::StrCat(o.tokenizer_dir, "/", f), absl::StrCat(o.out_dir, "/", f)); !s.ok()) return s;
  }
  // One generator, tensors drawn in layout order: the same bytes for a given seed.
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  safetensors::Writer writer;
  writer.SetMetadata("format", "pt");
  writer.SetMetadata("smolserve", absl::StrCat("make-model preset=", o.preset, " seed=", o.seed,
                                               " (random weights)"));
  for (const TensorSpec& spec : CheckpointLayout(*config)) {
    at::Tensor t;
    switch (spec.init) {
      case TensorSpec::Init::kOnes: t = at::ones(spec.shape); break;
      case TensorSpec::Init::kZeros: t = at::zeros(spec.shape); break;
      case TensorSpec::Init::kNormal:
        t = at::normal(0.0, spec.std, spec.shape, gen);
        break;
    }
    if (o.bf16) t = t.to(at::kBFloat16);
    if (auto s = safetensors::AddTensor(writer, spec.name, t); !s.ok()) return s;
  }
  return writer.WriteFile(o.out_dir + "/model.safetensors");
}

}  // namespace smolserve::cli
