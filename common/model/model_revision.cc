#include "common/model/model_revision.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/cache/sha256.h"

namespace smolserve::model {
namespace {

namespace fs = std::filesystem;

// Adds (name, size, bytes) of `path`: the name and the content as length-prefixed fields.
absl::Status HashFile(const fs::path& path, cache::Sha256& hash) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("model revision: cannot open ", path.string(), ": ", std::strerror(errno)));
  }
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("model revision: cannot stat ", path.string(), ": ", ec.message()));
  }
  hash.UpdateField(path.filename().string());
  hash.UpdateInt(static_cast<int64_t>(size));
  std::vector<char> buf(size_t{4} << 20);
  uintmax_t total = 0;
  for (;;) {
    const size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0) hash.Update(buf.data(), n);
    total += n;
    if (n < buf.size()) break;
  }
  if (std::ferror(f.get()) || total != size) {
    return absl::UnavailableError(absl::StrCat("model revision: reading ", path.string(),
                                               " gave ", total, " of ", size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ComputeModelRevision(absl::string_view model_dir) {
  const fs::path dir{std::string(model_dir)};
  std::error_code ec;
  std::vector<fs::path> weights;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::EndsWith(name, ".safetensors") && fs::is_regular_file(it->path())) {
      weights.push_back(it->path());  // is_regular_file follows links (HF cache snapshots)
    }
  }
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("model revision: cannot list ", dir.string(), ": ", ec.message()));
  }
  if (!fs::is_regular_file(dir / "config.json")) {
    return absl::NotFoundError(absl::StrCat("model revision: no config.json in ", dir.string()));
  }
  if (weights.empty()) {
    return absl::NotFoundError(
        absl::StrCat("model revision: no *.safetensors file in ", dir.string()));
  }
  std::sort(weights.begin(), weights.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  cache::Sha256 hash;
  hash.UpdateField("smolserve.model_revision.v1");
  std::vector<fs::path> files = {dir / "config.json"};
  if (fs::is_regular_file(dir / "model.safetensors.index.json")) {
    files.push_back(dir / "model.safetensors.index.json");
  }
  files.insert(files.end(), weights.begin(), weights.end());
  hash.UpdateInt(static_cast<int64_t>(files.size()));
  for (const fs::path& f : files) {
    if (absl::Status s = HashFile(f, hash); !s.ok()) return s;
  }
  return cache::DigestHex(hash.Final());
}

}  // namespace smolserve::model
