#include "common/model/config.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace smolserve::model {
namespace {

using Json = nlohmann::json;

absl::Status FieldError(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config field '", path, "' ", what));
}

std::string JoinPath(absl::string_view prefix, absl::string_view key) {
  return prefix.empty() ? std::string(key) : absl::StrCat(prefix, ".", key);
}

// Reads obj[key] into *out when present and non-null; leaves *out untouched otherwise.
absl::Status GetInt(const Json& obj, absl::string_view prefix, const char* key, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return FieldError(JoinPath(prefix, key), "is out of range");
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }
  // Integral floats ("8192.0") are accepted, as Python would after int().
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) {
      *out = static_cast<int64_t>(v);
      return absl::OkStatus();
    }
  }
  return FieldError(JoinPath(prefix, key), absl::StrCat("must be an integer, got ", it->dump()));
}

absl::Status GetOptInt(const Json& obj, absl::string_view prefix, const char* key,
                       std::optional<int64_t>* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::OkStatus();
  if (it->is_null()) {
    out->reset();
    return absl::OkStatus();
  }
  int64_t v = 0;
  RETURN_IF_ERROR(GetInt(obj, prefix, key, &v));
  *out = v;
  return absl::OkStatus();
}

absl::Status GetDouble(const Json& obj, absl::string_view prefix, const char* key, double* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return FieldError(JoinPath(prefix, key), absl::StrCat("must be a number, got ", it->dump()));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status GetOptDouble(const Json& obj, absl::string_view prefix, const char* key,
                          std::optional<double>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  double v = 0;
  RETURN_IF_ERROR(GetDouble(obj, prefix, key, &v));
  *out = v;
  return absl::OkStatus();
}

absl::Status GetBool(const Json& obj, absl::string_view prefix, const char* key, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) {
    return FieldError(JoinPath(prefix, key), absl::StrCat("must be a boolean, got ", it->dump()));
  }
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const Json& obj, absl::string_view prefix, const char* key,
                       std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return FieldError(JoinPath(prefix, key), absl::StrCat("must be a string, got ", it->dump()));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// eos_token_id: an int, a list of ints, or null.
absl::Status GetIdList(const Json& obj, absl::string_view prefix, const char* key,
                       std::vector<int64_t>* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::OkStatus();
  if (it->is_null()) {
    out->clear();
    return absl::OkStatus();
  }
  if (it->is_number_integer()) {
    *out = {it->get<int64_t>()};
    return absl::OkStatus();
  }
  if (it->is_array()) {
    std::vector<int64_t> ids;
    for (const Json& v : *it) {
      if (!v.is_number_integer()) {
        return FieldError(
            JoinPath(prefix, key),
            absl::StrCat("must be an integer or a list of integers, got ", it->dump()));
      }
      ids.push_back(v.get<int64_t>());
    }
    *out = std::move(ids);
    return absl::OkStatus();
  }
  return FieldError(JoinPath(prefix, key),
                    absl::StrCat("must be an integer or a list of integers, got ", it->dump()));
}

absl::StatusOr<Json> ParseJsonObject(absl::string_view text, absl::string_view what) {
  Json j = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions to get the position of the error.
    std::string detail = "malformed JSON";
    try {
      Json unused = Json::parse(text.begin(), text.end());
      (void)unused;
    } catch (const Json::exception& e) {
      detail = absl::StrCat("malformed JSON: ", e.what());
    }
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", detail));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": top level must be a JSON object"));
  }
  return j;
}

absl::Status RequirePositive(absl::string_view path, int64_t v) {
  if (v <= 0) return FieldError(path, absl::StrCat("must be positive, got ", v));
  return absl::OkStatus();
}

// Rejects absurd sizes before anything allocates from them.
absl::Status RequireRange(absl::string_view path, int64_t v, int64_t max) {
  RETURN_IF_ERROR(RequirePositive(path, v));
  if (v > max) return FieldError(path, absl::StrCat("is implausibly large: ", v));
  return absl::OkStatus();
}

absl::Status ParseVision(const Json& j, VisionConfig* v) {
  constexpr absl::string_view p = "vision_config";
  if (!j.is_object()) return FieldError(p, "must be an object");
  RETURN_IF_ERROR(GetInt(j, p, "hidden_size", &v->hidden_size));
  RETURN_IF_ERROR(GetInt(j, p, "intermediate_size", &v->intermediate_size));
  RETURN_IF_ERROR(GetInt(j, p, "num_hidden_layers", &v->num_hidden_layers));
  RETURN_IF_ERROR(GetInt(j, p, "num_attention_heads", &v->num_attention_heads));
  RETURN_IF_ERROR(GetInt(j, p, "num_channels", &v->num_channels));
  RETURN_IF_ERROR(GetInt(j, p, "image_size", &v->image_size));
  RETURN_IF_ERROR(GetInt(j, p, "patch_size", &v->patch_size));
  RETURN_IF_ERROR(GetDouble(j, p, "layer_norm_eps", &v->layer_norm_eps));
  RETURN_IF_ERROR(GetString(j, p, "hidden_act", &v->hidden_act));

  constexpr int64_t kMaxDim = 1 << 20;
  RETURN_IF_ERROR(RequireRange("vision_config.hidden_size", v->hidden_size, kMaxDim));
  RETURN_IF_ERROR(RequireRange("vision_config.intermediate_size", v->intermediate_size, kMaxDim));
  RETURN_IF_ERROR(RequireRange("vision_config.num_hidden_layers", v->num_hidden_layers, 1024));
  RETURN_IF_ERROR(
      RequireRange("vision_config.num_attention_heads", v->num_attention_heads, v->hidden_size));
  RETURN_IF_ERROR(RequireRange("vision_config.num_channels", v->num_channels, 64));
  RETURN_IF_ERROR(RequireRange("vision_config.image_size", v->image_size, 1 << 16));
  RETURN_IF_ERROR(RequireRange("vision_config.patch_size", v->patch_size, v->image_size));
  if (v->hidden_size % v->num_attention_heads != 0) {
    return FieldError(
        "vision_config.num_attention_heads",
        absl::StrCat("(", v->num_attention_heads, ") must divide vision_config.hidden_size (",
                     v->hidden_size, ")"));
  }
  if (!(v->layer_norm_eps > 0) || !std::isfinite(v->layer_norm_eps)) {
    return FieldError("vision_config.layer_norm_eps",
                      absl::StrCat("must be a positive number, got ", v->layer_norm_eps));
  }
  if (v->hidden_act != "gelu_pytorch_tanh") {
    return absl::UnimplementedError(absl::StrCat("vision_config.hidden_act '", v->hidden_act,
                                                 "' is not supported (only gelu_pytorch_tanh)"));
  }
  return absl::OkStatus();
}

absl::Status ParseText(const Json& j, TextConfig* t) {
  constexpr absl::string_view p = "text_config";
  if (!j.is_object()) return FieldError(p, "must be an object");
  std::string model_type = "llama";
  RETURN_IF_ERROR(GetString(j, p, "model_type", &model_type));
  if (model_type != "llama") {
    return absl::UnimplementedError(
        absl::StrCat("text_config.model_type '", model_type, "' is not supported (only llama)"));
  }
  RETURN_IF_ERROR(GetInt(j, p, "hidden_size", &t->hidden_size));
  RETURN_IF_ERROR(GetInt(j, p, "intermediate_size", &t->intermediate_size));
  RETURN_IF_ERROR(GetInt(j, p, "num_hidden_layers", &t->num_hidden_layers));
  RETURN_IF_ERROR(GetInt(j, p, "num_attention_heads", &t->num_attention_heads));
  t->num_key_value_heads = t->num_attention_heads;
  RETURN_IF_ERROR(GetInt(j, p, "num_key_value_heads", &t->num_key_value_heads));
  RETURN_IF_ERROR(RequireRange("text_config.hidden_size", t->hidden_size, 1 << 20));
  RETURN_IF_ERROR(
      RequireRange("text_config.num_attention_heads", t->num_attention_heads, t->hidden_size));
  t->head_dim = t->hidden_size / t->num_attention_heads;
  RETURN_IF_ERROR(GetInt(j, p, "head_dim", &t->head_dim));
  RETURN_IF_ERROR(GetInt(j, p, "vocab_size", &t->vocab_size));
  RETURN_IF_ERROR(GetDouble(j, p, "rms_norm_eps", &t->rms_norm_eps));
  RETURN_IF_ERROR(GetDouble(j, p, "rope_theta", &t->rope_theta));
  RETURN_IF_ERROR(GetInt(j, p, "max_position_embeddings", &t->max_position_embeddings));
  RETURN_IF_ERROR(GetOptInt(j, p, "pad_token_id", &t->pad_token_id));
  RETURN_IF_ERROR(GetOptInt(j, p, "bos_token_id", &t->bos_token_id));
  RETURN_IF_ERROR(GetIdList(j, p, "eos_token_id", &t->eos_token_ids));
  RETURN_IF_ERROR(GetString(j, p, "hidden_act", &t->hidden_act));
  RETURN_IF_ERROR(GetBool(j, p, "attention_bias", &t->attention_bias));
  RETURN_IF_ERROR(GetBool(j, p, "mlp_bias", &t->mlp_bias));
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    return absl::UnimplementedError(
        absl::StrCat("text_config.rope_scaling is not supported (must be null), got ", it->dump()));
  }

  RETURN_IF_ERROR(RequireRange("text_config.intermediate_size", t->intermediate_size, 1 << 20));
  RETURN_IF_ERROR(RequireRange("text_config.num_hidden_layers", t->num_hidden_layers, 1024));
  RETURN_IF_ERROR(RequireRange("text_config.num_key_value_heads", t->num_key_value_heads,
                               t->num_attention_heads));
  RETURN_IF_ERROR(RequireRange("text_config.head_dim", t->head_dim, 1 << 16));
  RETURN_IF_ERROR(RequireRange("text_config.vocab_size", t->vocab_size, 1 << 24));
  RETURN_IF_ERROR(
      RequireRange("text_config.max_position_embeddings", t->max_position_embeddings, 1 << 26));
  if (t->num_attention_heads % t->num_key_value_heads != 0) {
    return FieldError(
        "text_config.num_key_value_heads",
        absl::StrCat("(", t->num_key_value_heads, ") must divide text_config.num_attention_heads (",
                     t->num_attention_heads, ")"));
  }
  if (!j.contains("head_dim") || j["head_dim"].is_null()) {
    if (t->hidden_size % t->num_attention_heads != 0) {
      return FieldError(
          "text_config.num_attention_heads",
          absl::StrCat("(", t->num_attention_heads, ") must divide text_config.hidden_size (",
                       t->hidden_size, ") when head_dim is not given"));
    }
  }
  if (t->head_dim % 2 != 0) {
    return FieldError("text_config.head_dim",
                      absl::StrCat("must be even for rotary embeddings, got ", t->head_dim));
  }
  if (!(t->rms_norm_eps > 0) || !std::isfinite(t->rms_norm_eps)) {
    return FieldError("text_config.rms_norm_eps",
                      absl::StrCat("must be a positive number, got ", t->rms_norm_eps));
  }
  if (!(t->rope_theta > 0) || !std::isfinite(t->rope_theta)) {
    return FieldError("text_config.rope_theta",
                      absl::StrCat("must be a positive number, got ", t->rope_theta));
  }
  if (t->hidden_act != "silu") {
    return absl::UnimplementedError(
        absl::StrCat("text_config.hidden_act '", t->hidden_act, "' is not supported (only silu)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such file: ", path));
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("error reading ", path));
  return ss.str();
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsCommitHash(absl::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) || absl::ascii_isupper(c)) {
      return false;
    }
  }
  return true;
}

// A path component that cannot escape its directory.
bool IsSafeComponent(absl::string_view s) {
  return !s.empty() && s != "." && s != ".." && !absl::StrContains(s, '/') &&
         !absl::StrContains(s, '\0');
}

std::string HubCacheDir() {
  const char* v = std::getenv("HF_HUB_CACHE");
  if (v != nullptr && *v != '\0') return v;
  v = std::getenv("HF_HOME");
  if (v != nullptr && *v != '\0') return absl::StrCat(v, "/hub");
  v = std::getenv("HOME");
  std::string home = (v != nullptr && *v != '\0') ? v : "";
  return absl::StrCat(home, "/.cache/huggingface/hub");
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(json, "config.json"));
  ModelConfig c;
  if (auto it = j.find("vision_config"); it != j.end() && !it->is_null()) {
    RETURN_IF_ERROR(ParseVision(*it, &c.vision));
  } else {
    RETURN_IF_ERROR(ParseVision(Json::object(), &c.vision));
  }
  if (auto it = j.find("text_config"); it != j.end() && !it->is_null()) {
    RETURN_IF_ERROR(ParseText(*it, &c.text));
  } else {
    // SmolVLMConfig's fallback text config: LlamaConfig(rms_norm_eps=1e-5,
    // pad_token_id=<top-level pad_token_id>, tie_word_embeddings=False).
    Json t = Json::object();
    t["rms_norm_eps"] = 1e-5;
    t["pad_token_id"] = j.contains("pad_token_id") ? j["pad_token_id"] : Json(128002);
    RETURN_IF_ERROR(ParseText(t, &c.text));
  }
  RETURN_IF_ERROR(GetInt(j, "", "scale_factor", &c.scale_factor));
  RETURN_IF_ERROR(GetInt(j, "", "image_token_id", &c.image_token_id));
  RETURN_IF_ERROR(GetBool(j, "", "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(GetString(j, "", "torch_dtype", &c.torch_dtype));
  if (c.torch_dtype.empty()) RETURN_IF_ERROR(GetString(j, "", "dtype", &c.torch_dtype));

  RETURN_IF_ERROR(RequireRange("scale_factor", c.scale_factor, 64));
  const int64_t g = c.vision.patches_per_side();
  if (g % c.scale_factor != 0) {
    return FieldError(
        "scale_factor",
        absl::StrCat("(", c.scale_factor, ") must divide vision_config.image_size / patch_size (",
                     c.vision.image_size, " / ", c.vision.patch_size, " = ", g, ")"));
  }
  if (c.image_token_id < 0 || c.image_token_id >= c.text.vocab_size) {
    return FieldError("image_token_id",
                      absl::StrCat("(", c.image_token_id, ") must be inside the vocabulary [0, ",
                                   c.text.vocab_size, ")"));
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(absl::string_view model_dir) {
  const std::string path = absl::StrCat(model_dir, "/config.json");
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto c = ParseModelConfig(text);
  if (!c.ok()) return Annotate(c.status(), path);
  return c;
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(absl::string_view json) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(json, "generation_config.json"));
  GenerationConfig g;
  RETURN_IF_ERROR(GetIdList(j, "", "eos_token_id", &g.eos_token_ids));
  RETURN_IF_ERROR(GetOptInt(j, "", "pad_token_id", &g.pad_token_id));
  RETURN_IF_ERROR(GetOptInt(j, "", "bos_token_id", &g.bos_token_id));
  if (auto it = j.find("do_sample"); it != j.end() && !it->is_null()) {
    bool b = false;
    RETURN_IF_ERROR(GetBool(j, "", "do_sample", &b));
    g.do_sample = b;
  }
  RETURN_IF_ERROR(GetOptDouble(j, "", "temperature", &g.temperature));
  RETURN_IF_ERROR(GetOptDouble(j, "", "top_p", &g.top_p));
  RETURN_IF_ERROR(GetOptInt(j, "", "top_k", &g.top_k));
  RETURN_IF_ERROR(GetOptDouble(j, "", "repetition_penalty", &g.repetition_penalty));
  RETURN_IF_ERROR(GetOptInt(j, "", "max_new_tokens", &g.max_new_tokens));
  RETURN_IF_ERROR(GetOptInt(j, "", "max_length", &g.max_length));
  if (g.temperature && (!(*g.temperature >= 0) || !std::isfinite(*g.temperature))) {
    return FieldError("temperature", "must be a non-negative number");
  }
  if (g.top_p && !(*g.top_p >= 0 && *g.top_p <= 1)) {
    return FieldError("top_p", "must be in [0, 1]");
  }
  if (g.top_k && *g.top_k < 0) return FieldError("top_k", "must not be negative");
  if (g.repetition_penalty && !(*g.repetition_penalty > 0)) {
    return FieldError("repetition_penalty", "must be positive");
  }
  if (g.max_new_tokens && *g.max_new_tokens < 0) {
    return FieldError("max_new_tokens", "must not be negative");
  }
  if (g.max_length && *g.max_length < 0) return FieldError("max_length", "must not be negative");
  return g;
}

absl::StatusOr<GenerationConfig> LoadGenerationConfig(absl::string_view model_dir) {
  const std::string path = absl::StrCat(model_dir, "/generation_config.json");
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto g = ParseGenerationConfig(text);
  if (!g.ok()) return Annotate(g.status(), path);
  return g;
}

absl::StatusOr<std::string> ResolveModelDir(absl::string_view model) {
  if (model.empty()) return absl::InvalidArgumentError("empty model name");
  const std::string as_path(model);
  if (IsDirectory(as_path)) return as_path;

  // A path-looking argument that does not exist is a local-path error, not a repo id.
  if (absl::StartsWith(model, "/") || absl::StartsWith(model, "./") ||
      absl::StartsWith(model, "../") || absl::StartsWith(model, "~")) {
    return absl::NotFoundError(absl::StrCat("model directory '", model, "' does not exist"));
  }

  absl::string_view repo = model;
  std::string revision = "main";
  if (size_t at = model.find('@'); at != absl::string_view::npos) {
    repo = model.substr(0, at);
    revision = std::string(model.substr(at + 1));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || !IsSafeComponent(parts[0]) || !IsSafeComponent(parts[1]) ||
      revision.empty() || absl::StrContains(revision, "..") || absl::StrContains(revision, '\0')) {
    return absl::NotFoundError(
        absl::StrCat("'", model,
                     "' is neither an existing directory nor a Hugging Face repo id of the form "
                     "org/name or org/name@revision"));
  }

  const std::string cache = HubCacheDir();
  const std::string repo_dir = absl::StrCat(cache, "/models--", parts[0], "--", parts[1]);
  const std::string hint =
      absl::StrCat(" (offline lookup only; download it first, e.g. `huggingface-cli download ",
                   repo, "`, or set HF_HUB_CACHE / HF_HOME, or pass a local directory)");
  if (!IsDirectory(repo_dir)) {
    return absl::NotFoundError(absl::StrCat("model '", repo, "' is not in the Hugging Face cache: ",
                                            repo_dir, " does not exist", hint));
  }

  std::string commit;
  const std::string ref_path = absl::StrCat(repo_dir, "/refs/", revision);
  auto ref = ReadFile(ref_path);
  if (ref.ok()) {
    commit = std::string(absl::StripAsciiWhitespace(*ref));
    if (!IsSafeComponent(commit)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ref file ", ref_path, " does not hold a commit hash"));
    }
  } else if (IsCommitHash(revision)) {
    commit = revision;
  } else {
    return absl::NotFoundError(absl::StrCat("revision '", revision, "' of model '", repo,
                                            "' is not in the Hugging Face cache: ", ref_path,
                                            " does not exist", hint));
  }
  const std::string snapshot = absl::StrCat(repo_dir, "/snapshots/", commit);
  if (!IsDirectory(snapshot)) {
    return absl::NotFoundError(absl::StrCat("snapshot ", snapshot, " of model '", repo,
                                            "' (revision '", revision, "') does not exist", hint));
  }
  return snapshot;
}

}  // namespace smolserve::model
