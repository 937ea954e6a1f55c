#include "common/model/weights.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors/safetensors.h"
#include "common/safetensors/torch_tensors.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace smolserve::model {

// Where one tensor lives: a view into a mapped file, or an in-memory tensor.
struct WeightStore::Entry {
  const safetensors::TensorView* view = nullptr;
  at::Tensor tensor;
  std::string source;  // file path, for messages
  std::vector<int64_t> shape;
};

namespace {

std::string ShapeStr(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsFloating(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}

}  // namespace

WeightStore::WeightStore() = default;
WeightStore::~WeightStore() = default;

absl::StatusOr<std::unique_ptr<WeightStore>> WeightStore::OpenFiles(
    const std::vector<std::string>& paths) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(std::unique_ptr<safetensors::File> file, safetensors::File::Open(path));
    for (const safetensors::TensorView& v : file->tensors()) {
      auto [it, inserted] = store->entries_.try_emplace(v.name);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", v.name, "' appears in both ",
                                                       it->second->source, " and ", path));
      }
      auto e = std::make_unique<Entry>();
      e->view = &v;
      e->source = path;
      e->shape = v.shape;
      it->second = std::move(e);
    }
    store->files_.push_back(std::move(file));
  }
  return store;
}

absl::StatusOr<std::unique_ptr<WeightStore>> WeightStore::Open(absl::string_view model_dir) {
  const std::string single = absl::StrCat(model_dir, "/model.safetensors");
  if (FileExists(single)) return OpenFiles({single});

  const std::string index_path = absl::StrCat(model_dir, "/model.safetensors.index.json");
  if (!FileExists(index_path)) {
    return absl::NotFoundError(absl::StrCat("no weights in '", model_dir,
                                            "': neither model.safetensors nor "
                                            "model.safetensors.index.json exists"));
  }
  std::ifstream in(index_path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", index_path, ": ", std::strerror(errno)));
  }
  const std::string text = ss.str();
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": ", what));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("malformed JSON");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return bad("missing or invalid 'weight_map' object");

  // Shards in first-appearance order; every name must be in the shard the index names.
  std::vector<std::string> shards;
  std::map<std::string, std::string> expected;  // tensor -> shard
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      return bad(absl::StrCat("weight_map['", it.key(), "'] is not a file name"));
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || absl::StrContains(shard, '/') || shard == "." || shard == "..") {
      return bad(absl::StrCat("weight_map['", it.key(), "'] names an invalid shard '", shard, "'"));
    }
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    expected[it.key()] = shard;
  }
  if (shards.empty()) return bad("weight_map is empty");
  std::vector<std::string> paths;
  for (const std::string& s : shards) {
    const std::string p = absl::StrCat(model_dir, "/", s);
    if (!FileExists(p)) return bad(absl::StrCat("shard '", s, "' does not exist"));
    paths.push_back(p);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<WeightStore> store, OpenFiles(paths));
  for (const auto& [name, shard] : expected) {
    auto it = store->entries_.find(name);
    const std::string want = absl::StrCat(model_dir, "/", shard);
    if (it == store->entries_.end() || it->second->source != want) {
      return bad(absl::StrCat("tensor '", name, "' is listed in shard '", shard,
                              "' but is not in that file"));
    }
  }
  return store;
}

std::unique_ptr<WeightStore> WeightStore::FromTensors(std::map<std::string, at::Tensor> tensors) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  for (auto& [name, t] : tensors) {
    auto e = std::make_unique<Entry>();
    e->shape = t.sizes().vec();
    e->tensor = std::move(t);
    e->source = "<memory>";
    store->entries_[name] = std::move(e);
  }
  return store;
}

absl::StatusOr<at::Tensor> WeightStore::Take(absl::string_view name,
                                             std::vector<int64_t> expected_shape,
                                             at::ScalarType dtype) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("missing tensor '", name, "'"));
  }
  const Entry& e = *it->second;
  if (e.shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ",
                                                   ShapeStr(e.shape), ", expected ",
                                                   ShapeStr(expected_shape)));
  }
  try {
    at::Tensor t;
    if (e.view != nullptr) {
      ASSIGN_OR_RETURN(t, safetensors::ToTensor(*e.view));
    } else {
      t = e.tensor;
    }
    const at::ScalarType src = t.scalar_type();
    if (src != dtype && !(IsFloating(src) && IsFloating(dtype))) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ",
                                                     c10::toString(src), ", cannot convert to ",
                                                     c10::toString(dtype)));
    }
    if (e.view != nullptr) {
      if (src != dtype) t = t.to(dtype);
    } else {
      // Never hand out the caller-owned in-memory tensor itself.
      t = t.to(at::kCPU, dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
    }
    used_.insert(it->first);
    return t;
  } catch (const c10::Error& err) {
    return absl::InternalError(
        absl::StrCat("loading tensor '", name, "': ", err.what_without_backtrace()));
  }
}

bool WeightStore::Contains(absl::string_view name) const {
  return entries_.find(name) != entries_.end();
}

std::optional<std::vector<int64_t>> WeightStore::ShapeOf(absl::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return it->second->shape;
}

std::vector<std::string> WeightStore::Names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, e] : entries_) names.push_back(name);
  return names;
}

absl::Status WeightStore::CheckAllUsed() const {
  std::vector<std::string> unused;
  for (const auto& [name, e] : entries_) {
    if (used_.find(name) == used_.end()) unused.push_back(name);
  }
  if (unused.empty()) return absl::OkStatus();
  const size_t n = unused.size();
  std::string listed;
  if (n > 20) {
    unused.resize(20);
    listed = absl::StrCat(absl::StrJoin(unused, ", "), ", ...");
  } else {
    listed = absl::StrJoin(unused, ", ");
  }
  return absl::InvalidArgumentError(absl::StrCat(n, " unused tensor(s) in checkpoint: ", listed));
}

}  // namespace smolserve::model
