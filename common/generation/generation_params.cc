#include "common/generation/generation_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/json/parse.h"

namespace smolserve {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckStops(const std::vector<std::string>& stop, const GenerationLimits& limits) {
  if (static_cast<int>(stop.size()) > limits.max_stop_strings) {
    return Bad("stop", absl::StrCat(stop.size(), " stop strings, at most ",
                                    limits.max_stop_strings, " allowed"));
  }
  for (const std::string& s : stop) {
    if (s.empty()) return Bad("stop", "stop strings must not be empty");
    if (static_cast<int>(s.size()) > limits.max_stop_string_bytes) {
      return Bad("stop", absl::StrCat("a stop string of ", s.size(), " bytes, at most ",
                                      limits.max_stop_string_bytes, " allowed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGenerationParams(const GenerationParams& p, const GenerationLimits& limits) {
  if (p.max_new_tokens && (*p.max_new_tokens < 1 || *p.max_new_tokens > limits.max_new_tokens)) {
    return Bad("max_new_tokens", absl::StrCat("must be in [1, ", limits.max_new_tokens, "], got ",
                                              *p.max_new_tokens));
  }
  if (p.temperature && !(std::isfinite(*p.temperature) && *p.temperature >= 0)) {
    return Bad("temperature", "must be a finite number >= 0");
  }
  if (p.top_p && !(std::isfinite(*p.top_p) && *p.top_p > 0 && *p.top_p <= 1)) {
    return Bad("top_p", "must be in (0, 1]");
  }
  if (p.top_k && *p.top_k < 0) return Bad("top_k", "must be >= 0");
  if (p.repetition_penalty && !(std::isfinite(*p.repetition_penalty) && *p.repetition_penalty > 0)) {
    return Bad("repetition_penalty", "must be a finite number > 0");
  }
  return CheckStops(p.stop, limits);
}

absl::StatusOr<GenerationParams> GenerationParamsFromJson(absl::string_view text) {
  using nlohmann::json;
  absl::StatusOr<json> parsed = ::smolserve::json::Parse(text);
  if (!parsed.ok() || !parsed->is_object()) {
    return absl::InvalidArgumentError("\"generation\" must be a JSON object");
  }
  const json& j = *parsed;
  GenerationParams g;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string field = absl::StrCat("generation.", it.key());
    const json& v = it.value();
    const std::string& k = it.key();
    if (k == "max_new_tokens" || k == "top_k") {
      if (!v.is_number_integer()) return Bad(field, "must be an integer");
      if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t{1} << 62)) return Bad(field, "out of range");
      (k == "top_k" ? g.top_k : g.max_new_tokens) = v.get<int64_t>();
    } else if (k == "temperature" || k == "top_p" || k == "repetition_penalty") {
      if (!v.is_number()) return Bad(field, "must be a number");
      (k == "temperature" ? g.temperature : k == "top_p" ? g.top_p : g.repetition_penalty) = v.get<double>();
    } else if (k == "seed") {
      if (!v.is_number_integer()) return Bad(field, "must be an integer");
      g.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    } else if (k == "ignore_eos" || k == "greedy") {
      if (!v.is_boolean()) return Bad(field, "must be true or false");
      if (k == "ignore_eos") g.ignore_eos = v.get<bool>();
      if (k == "greedy" && v.get<bool>()) g.temperature = 0.0;
    } else if (k == "stop") {
      if (v.is_string()) {
        g.stop.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        for (const json& s : v) {
          if (!s.is_string()) return Bad(field, "must be a string or a list of strings");
          g.stop.push_back(s.get<std::string>());
        }
      } else {
        return Bad(field, "must be a string or a list of strings");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("generation: unknown key \"", k, "\""));
    }
  }
  return g;
}

}  // namespace smolserve
