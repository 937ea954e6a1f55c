#include "services/preprocess/core/media_key.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace smolserve::preprocess {
namespace {

constexpr absl::string_view kDomain = "smolserve/preprocess/media-cache/v1";

cache::Digest Key(const cache::Digest& model, absl::string_view tenant, MediaInfo::Kind kind,
                  absl::string_view options, absl::string_view space, absl::string_view value) {
  cache::Sha256 h;
  h.UpdateField(kDomain);
  h.UpdateField(tenant);
  h.UpdateField(kind == MediaInfo::Kind::kImage ? "image" : "video");
  h.UpdateField(options);
  h.UpdateField(model.data(), model.size());
  h.UpdateField(space);
  h.UpdateField(value);
  return h.Final();
}

}  // namespace

absl::StatusOr<cache::Digest> ModelIdentity(const std::string& model_dir) {
  cache::Sha256 h;
  h.UpdateField(kDomain);
  for (const char* name : {"config.json", "preprocessor_config.json", "processor_config.json"}) {
    const std::string path = absl::StrCat(model_dir, "/", name);
    h.UpdateField(name);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      h.UpdateInt(-1);  // absent
      continue;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f.is_open()) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
    std::stringstream ss;
    if (st.st_size > 0) ss << f.rdbuf();
    h.UpdateInt(1);
    h.UpdateField(ss.str());
  }
  return h.Final();
}

cache::Digest MediaContentKey(const cache::Digest& model, absl::string_view tenant,
                              MediaInfo::Kind kind, absl::string_view options,
                              absl::string_view encoded) {
  return Key(model, tenant, kind, options, "content", encoded);
}

cache::Digest MediaIdKey(const cache::Digest& model, absl::string_view tenant,
                         MediaInfo::Kind kind, absl::string_view options, absl::string_view id) {
  return Key(model, tenant, kind, options, "id", id);
}

void KeyOptions::AddField(absl::string_view name, char type, uint64_t bits) {
  const uint64_t n = name.size();
  bytes_.append(reinterpret_cast<const char*>(&n), sizeof(n));
  bytes_.append(name.data(), name.size());
  bytes_.push_back(type);
  bytes_.append(reinterpret_cast<const char*>(&bits), sizeof(bits));
}

KeyOptions& KeyOptions::Add(absl::string_view name, int64_t value) {
  AddField(name, 'i', static_cast<uint64_t>(value));
  return *this;
}

KeyOptions& KeyOptions::Add(absl::string_view name, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  AddField(name, 'd', bits);
  return *this;
}

}  // namespace smolserve::preprocess
