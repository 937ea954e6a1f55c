#include "common/tokenizer/tokenizer_json.h"

#include <algorithm>
#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"
#include <nlohmann/json.hpp>

namespace smolserve::tokenizer::internal {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", what));
}
absl::Status Unsupported(absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat("tokenizer.json: unsupported ", what));
}

// Reads an optional boolean member; absent or null gives `dflt`.
absl::StatusOr<bool> OptBool(const Json& obj, const char* key, bool dflt, absl::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return Invalid(absl::StrCat(where, ".", key, " must be a boolean"));
  return it->get<bool>();
}

// The "type" member of a component object.
absl::StatusOr<std::string> TypeOf(const Json& obj, absl::string_view where) {
  if (!obj.is_object()) return Invalid(absl::StrCat(where, " must be an object or null"));
  auto it = obj.find("type");
  if (it == obj.end() || !it->is_string()) {
    return Invalid(absl::StrCat(where, " has no string \"type\""));
  }
  return it->get<std::string>();
}

absl::Status ParseByteLevel(const Json& pt, absl::string_view where) {
  auto prefix = pt.find("add_prefix_space");
  if (prefix == pt.end() || !prefix->is_boolean()) {
    return Invalid(absl::StrCat(where, ".add_prefix_space must be a boolean"));
  }
  if (prefix->get<bool>()) return Unsupported(absl::StrCat(where, ": add_prefix_space=true"));
  ASSIGN_OR_RETURN(bool use_regex, OptBool(pt, "use_regex", true, where));
  if (!use_regex) return Unsupported(absl::StrCat(where, ": use_regex=false"));
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const Json& root, PreTokenizerOptions* options) {
  auto it = root.find("pre_tokenizer");
  if (it == root.end() || it->is_null()) {
    return Unsupported("pre_tokenizer: null (a ByteLevel pre-tokenizer is required)");
  }
  const Json& pt = *it;
  ASSIGN_OR_RETURN(std::string type, TypeOf(pt, "pre_tokenizer"));
  if (type == "ByteLevel") {
    options->split_digits = false;
    return ParseByteLevel(pt, "pre_tokenizer");
  }
  if (type != "Sequence") return Unsupported(absl::StrCat("pre_tokenizer type \"", type, "\""));
  auto list = pt.find("pretokenizers");
  if (list == pt.end() || !list->is_array()) {
    return Invalid("pre_tokenizer.pretokenizers must be an array");
  }
  if (list->size() != 2) {
    return Unsupported(
        "pre_tokenizer Sequence (only [Digits, ByteLevel] or a lone ByteLevel are supported)");
  }
  ASSIGN_OR_RETURN(std::string first, TypeOf((*list)[0], "pre_tokenizer.pretokenizers[0]"));
  ASSIGN_OR_RETURN(std::string second, TypeOf((*list)[1], "pre_tokenizer.pretokenizers[1]"));
  if (first != "Digits" || second != "ByteLevel") {
    return Unsupported(absl::StrCat("pre_tokenizer Sequence [", first, ", ", second,
                                    "] (only [Digits, ByteLevel] is supported)"));
  }
  options->split_digits = true;
  ASSIGN_OR_RETURN(options->individual_digits,
                   OptBool((*list)[0], "individual_digits", false, "pre_tokenizer.pretokenizers[0]"));
  return ParseByteLevel((*list)[1], "pre_tokenizer.pretokenizers[1]");
}

// Checks the components that must be absent or of a harmless kind.
absl::Status CheckPipeline(const Json& root) {
  auto is_null = [&](const char* key) {
    auto it = root.find(key);
    return it == root.end() || it->is_null();
  };
  if (!is_null("normalizer")) return Unsupported("normalizer (only null is supported)");
  if (!is_null("truncation")) return Unsupported("truncation (only null is supported)");
  if (!is_null("post_processor")) {
    ASSIGN_OR_RETURN(std::string type, TypeOf(root.at("post_processor"), "post_processor"));
    // ByteLevel post-processing only trims offsets; it adds no tokens.
    if (type != "ByteLevel") {
      return Unsupported(absl::StrCat("post_processor type \"", type, "\""));
    }
  }
  if (is_null("decoder")) return Unsupported("decoder: null (a ByteLevel decoder is required)");
  ASSIGN_OR_RETURN(std::string decoder, TypeOf(root.at("decoder"), "decoder"));
  if (decoder != "ByteLevel") return Unsupported(absl::StrCat("decoder type \"", decoder, "\""));
  return absl::OkStatus();
}

absl::StatusOr<int32_t> TokenId(const Json& v, absl::string_view where) {
  if (!v.is_number_integer()) return Invalid(absl::StrCat(where, " must be an integer id"));
  const int64_t id = v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(
                                                  v.get<uint64_t>(), uint64_t{1} << 62))
                                            : v.get<int64_t>();
  if (id < 0 || id > kMaxTokenId) {
    return Invalid(absl::StrCat(where, ": id ", id, " is out of range [0, ", kMaxTokenId, "]"));
  }
  return static_cast<int32_t>(id);
}

absl::Status ParseModel(const Json& root, TokenizerSpec* spec) {
  auto mit = root.find("model");
  if (mit == root.end() || !mit->is_object()) return Invalid("\"model\" object is missing");
  const Json& model = *mit;
  auto type = model.find("type");
  if (type != model.end()) {
    if (!type->is_string()) return Invalid("model.type must be a string");
    if (type->get<std::string>() != "BPE") {
      return Unsupported(absl::StrCat("model type \"", type->get<std::string>(),
                                      "\" (only BPE is supported)"));
    }
  }
  if (auto d = model.find("dropout"); d != model.end() && !d->is_null()) {
    if (!d->is_number()) return Invalid("model.dropout must be a number or null");
    if (d->get<double>() != 0.0) return Unsupported("model.dropout (BPE dropout is random)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it == model.end() || it->is_null()) continue;
    if (!it->is_string()) return Invalid(absl::StrCat("model.", key, " must be a string or null"));
    if (!it->get<std::string>().empty()) return Unsupported(absl::StrCat("model.", key));
  }
  ASSIGN_OR_RETURN(spec->ignore_merges, OptBool(model, "ignore_merges", false, "model"));
  ASSIGN_OR_RETURN(spec->byte_fallback, OptBool(model, "byte_fallback", false, "model"));
  ASSIGN_OR_RETURN(spec->fuse_unk, OptBool(model, "fuse_unk", false, "model"));
  if (auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return Invalid("model.unk_token must be a string or null");
    spec->unk_token = unk->get<std::string>();
  }

  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) return Invalid("model.vocab object is missing");
  spec->vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    ASSIGN_OR_RETURN(int32_t id, TokenId(it.value(), absl::StrCat("model.vocab[\"", it.key(), "\"]")));
    spec->vocab.emplace_back(it.key(), id);
  }

  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    return Invalid("model.merges array is missing");
  }
  spec->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& m = (*merges)[i];
    if (m.is_string()) {
      // Legacy "a b" form; byte-level tokens never contain U+0020.
      std::vector<std::string> parts = absl::StrSplit(m.get_ref<const std::string&>(), ' ');
      if (parts.size() != 2) {
        return Invalid(absl::StrCat("model.merges[", i, "] is not \"left right\""));
      }
      spec->merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return Invalid(absl::StrCat("model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseAddedTokens(const Json& root, TokenizerSpec* spec) {
  auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return absl::OkStatus();
  if (!list->is_array()) return Invalid("added_tokens must be an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& t = (*list)[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    if (!t.is_object()) return Invalid(absl::StrCat(where, " must be an object"));
    AddedTokenSpec token;
    auto id = t.find("id");
    if (id == t.end()) return Invalid(absl::StrCat(where, " has no id"));
    ASSIGN_OR_RETURN(token.id, TokenId(*id, absl::StrCat(where, ".id")));
    auto content = t.find("content");
    if (content == t.end() || !content->is_string() || content->get_ref<const std::string&>().empty()) {
      return Invalid(absl::StrCat(where, ".content must be a non-empty string"));
    }
    token.content = content->get<std::string>();
    ASSIGN_OR_RETURN(token.special, OptBool(t, "special", false, where));
    for (const char* key : {"lstrip", "rstrip", "single_word"}) {
      ASSIGN_OR_RETURN(bool set, OptBool(t, key, false, where));
      if (set) return Unsupported(absl::StrCat(where, " (\"", token.content, "\"): ", key, "=true"));
    }
    // "normalized" does not matter: there is no normalizer.
    spec->added_tokens.push_back(std::move(token));
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenizerSpec> ParseRoot(const Json& root) {
  if (!root.is_object()) return Invalid("top level must be a JSON object");
  TokenizerSpec spec;
  RETURN_IF_ERROR(ParseModel(root, &spec));
  RETURN_IF_ERROR(CheckPipeline(root));
  RETURN_IF_ERROR(ParsePreTokenizer(root, &spec.pre_tokenizer));
  RETURN_IF_ERROR(ParseAddedTokens(root, &spec));
  return spec;
}

}  // namespace

absl::StatusOr<TokenizerSpec> ParseTokenizerJson(std::string_view json) {
  try {
    const Json root = Json::parse(json.begin(), json.end());
    return ParseRoot(root);
  } catch (const Json::parse_error& e) {
    return Invalid(absl::StrCat("not valid JSON: ", e.what()));
  } catch (const Json::exception& e) {
    return Invalid(e.what());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

}  // namespace smolserve::tokenizer::internal
