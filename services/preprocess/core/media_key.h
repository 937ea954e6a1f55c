// Cache keys of media items: SHA-256 over a domain string, the tenant, the media kind, the resolved
// processor options that shape its preprocessing, the model's identity, and either the
// encoded bytes (a content address) or the client's id, each in its own namespace so an id
// can never produce the key of some content.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_KEY_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_KEY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/cache/sha256.h"
#include "services/preprocess/core/media_info.h"

namespace smolserve::preprocess {

// The model as far as cached media are concerned: SHA-256 of the folder's config.json,
// preprocessor_config.json and processor_config.json (a missing file counts as absent,
// distinctly from an empty one). Errors: a file that exists but cannot be read.
absl::StatusOr<cache::Digest> ModelIdentity(const std::string& model_dir);

// `options`: canonical bytes of the resolved options for this kind (the preprocessor's).
// `tenant`: whose request it is: one tenant's keys never equal another's, so neither a media
// id nor cached content of one tenant can be reached (or timed) by another.
cache::Digest MediaContentKey(const cache::Digest& model, absl::string_view tenant,
                              MediaInfo::Kind kind, absl::string_view options,
                              absl::string_view encoded);
cache::Digest MediaIdKey(const cache::Digest& model, absl::string_view tenant,
                         MediaInfo::Kind kind, absl::string_view options, absl::string_view id);

// Builds the canonical options bytes: named, typed, length-prefixed fields; doubles by
// their exact bit pattern.
class KeyOptions {
 public:
  KeyOptions& Add(absl::string_view name, int64_t value);
  KeyOptions& Add(absl::string_view name, double value);
  KeyOptions& Add(absl::string_view name, bool value) { return Add(name, int64_t{value}); }
  KeyOptions& Add(absl::string_view name, int value) { return Add(name, int64_t{value}); }
  const std::string& bytes() const { return bytes_; }

 private:
  void AddField(absl::string_view name, char type, uint64_t bits);
  std::string bytes_;
};

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_MEDIA_KEY_H_
