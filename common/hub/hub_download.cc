#include "common/hub/hub_download.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/hub/hub_client.h"
#include "common/json/parse.h"
#include "common/model/config.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace smolserve::hub {
namespace {

// --- environment ----------------------------------------------------------------------------

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

bool IsHex(absl::string_view s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

// --- files ----------------------------------------------------------------------------------

bool Exists(const std::string& path) {  // follows links: a dangling link does not exist
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    const std::string cur = path.substr(0, i);
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create ", cur, ": ", std::strerror(errno)));
    }
  }
  if (!IsDirectory(path)) return absl::InternalError(absl::StrCat(path, " is not a directory"));
  return absl::OkStatus();
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// A name next to `path` that no other thread or process uses.
std::string TempNameFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(path, ".tmp.", getpid(), ".",
                      std::hash<std::thread::id>()(std::this_thread::get_id()) % 100000, ".",
                      counter.fetch_add(1));
}

// Writes `text` to `path` atomically (temp file + rename).
absl::Status WriteFileAtomic(const std::string& path, const std::string& text) {
  RETURN_IF_ERROR(MakeDirs(Dirname(path)));
  const std::string tmp = TempNameFor(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) {
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename to ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

// Makes `link` a symlink holding `target`, replacing whatever was there, atomically.
absl::Status SymlinkAtomic(const std::string& target, const std::string& link) {
  char buf[4096];
  const ssize_t n = readlink(link.c_str(), buf, sizeof(buf));
  if (n >= 0 && absl::string_view(buf, n) == target) return absl::OkStatus();
  RETURN_IF_ERROR(MakeDirs(Dirname(link)));
  const std::string tmp = TempNameFor(link);
  if (symlink(target.c_str(), tmp.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot create link ", tmp, ": ", std::strerror(errno)));
  }
  if (rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename to ", link, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

// --- checksums ------------------------------------------------------------------------------

// Hex digest of `prefix` + the file's bytes with `md` (EVP_sha256(), EVP_sha1()).
absl::StatusOr<std::string> DigestFile(const std::string& path, const EVP_MD* md,
                                       absl::string_view prefix) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot read ", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size()) == 1;
  std::vector<char> buf(1 << 20);
  while (ok) {
    const ssize_t r = read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ok = r == 0;
      break;
    }
    ok = EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(r)) == 1;
  }
  close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ok || EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    return absl::InternalError(absl::StrCat("cannot hash ", path));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

int64_t FileSizeOr(const std::string& path, int64_t fallback) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : fallback;
}

// OK when the downloaded `path` matches `meta`: its size, and the etag when the etag is a
// SHA-256 (LFS) or a git blob sha1 (regular file). DATA_LOSS otherwise.
absl::Status VerifyDownload(const std::string& path, const FileMetadata& meta,
                            absl::string_view what) {
  const int64_t size = FileSizeOr(path, -1);
  if (meta.size >= 0 && size != meta.size) {
    return absl::DataLossError(absl::StrCat(what, ": downloaded ", size,
                                            " bytes, the Hub announced ", meta.size));
  }
  std::string digest;
  absl::string_view kind;
  if (IsHex(meta.etag, 64)) {
    ASSIGN_OR_RETURN(digest, DigestFile(path, EVP_sha256(), ""));
    kind = "SHA-256";
  } else if (!meta.lfs && IsHex(meta.etag, 40)) {
    ASSIGN_OR_RETURN(digest, DigestFile(path, EVP_sha1(), absl::StrCat("blob ", size,
                                                                       absl::string_view("\0", 1))));
    kind = "git sha1";
  } else {
    return absl::OkStatus();  // an etag of unknown form: the size is all we can check
  }
  if (digest != meta.etag) {
    return absl::DataLossError(absl::StrCat(what, ": ", kind, " of the downloaded bytes is ",
                                            digest, ", the Hub's etag is ", meta.etag));
  }
  return absl::OkStatus();
}

// --- locks ----------------------------------------------------------------------------------

// An exclusive flock on a lock file (compatible with huggingface_hub's filelock.FileLock).
class FileLock {
 public:
  // Polls every 50 ms until the lock is free or `deadline` (UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<FileLock>> Acquire(const std::string& path,
                                                           absl::Time deadline) {
    RETURN_IF_ERROR(MakeDirs(Dirname(path)));
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InternalError(absl::StrCat("cannot open lock ", path, ": ",
                                              std::strerror(errno)));
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) {
        const int err = errno;
        close(fd);
        return absl::InternalError(absl::StrCat("flock ", path, ": ", std::strerror(err)));
      }
      if (absl::Now() >= deadline) {
        close(fd);
        return absl::UnavailableError(
            absl::StrCat("deadline passed waiting for ", path, " (another download holds it)"));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() {
    flock(fd_, LOCK_UN);
    close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  const int fd_;
};

// --- progress -------------------------------------------------------------------------------

class Progress {
 public:
  Progress(const DownloadOptions& o, std::string commit) : o_(o), commit_(std::move(commit)) {
    mode_ = o.progress_stream == nullptr ? ProgressMode::kNone : o.progress;
    if (mode_ == ProgressMode::kAuto) {
      mode_ = isatty(fileno(o.progress_stream)) ? ProgressMode::kBar : ProgressMode::kJsonLines;
    }
  }

  void Cached(const std::string& file, int64_t size) { Line(file, size, 0, 0, true); }

  // A callback for HubClient::DownloadFile; Finish() ends the file.
  ProgressFn Start(const std::string& file, int64_t resumed_from) {
    file_ = file;
    start_ = std::chrono::steady_clock::now();
    last_draw_ = {};
    last_size_ = resumed_from;
    fetched_ = 0;
    return [this](int64_t done, int64_t total) { Update(done, total); };
  }

  // Ends the bar's line after a failed download (the caller reports the error).
  void Fail() {
    if (mode_ != ProgressMode::kBar) return;
    std::fputc('\n', o_.progress_stream);
    std::fflush(o_.progress_stream);
  }

  void Finish(int64_t size) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (mode_ == ProgressMode::kBar) {
      Draw(size, size, seconds);
      std::fputc('\n', o_.progress_stream);
      std::fflush(o_.progress_stream);
    }
    Line(file_, size, fetched_, seconds, false);
  }

 private:
  void Update(int64_t done, int64_t total) {
    if (done > last_size_) fetched_ += done - last_size_;
    last_size_ = done;
    if (mode_ != ProgressMode::kBar) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    Draw(done, total, std::chrono::duration<double>(now - start_).count());
  }

  void Draw(int64_t done, int64_t total, double seconds) {
    constexpr int kWidth = 24;
    const double frac = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 0;
    const int filled = static_cast<int>(frac * kWidth);
    const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    const double mb = 1024.0 * 1024.0;
    std::fprintf(o_.progress_stream, "\r%-32.32s %3d%% [%s] %8.1f/%.1f MB %6.1f MB/s ",
                 file_.c_str(), static_cast<int>(frac * 100), bar.c_str(), done / mb,
                 std::max<int64_t>(total, 0) / mb, seconds > 0 ? fetched_ / mb / seconds : 0.0);
    std::fflush(o_.progress_stream);
  }

  void Line(const std::string& file, int64_t size, int64_t fetched, double seconds,
            bool cached) {
    if (mode_ != ProgressMode::kJsonLines) return;
    nlohmann::json j = {{"event", "hub_download"}, {"repo", o_.repo_id},
                        {"revision", o_.revision}, {"commit", commit_},
                        {"file", file},          {"bytes", size},
                        {"fetched_bytes", fetched}, {"seconds", seconds},
                        {"cached", cached}};
    const std::string line = j.dump() + "\n";
    std::fwrite(line.data(), 1, line.size(), o_.progress_stream);
    std::fflush(o_.progress_stream);
  }

  const DownloadOptions& o_;
  const std::string commit_;
  ProgressMode mode_;
  std::string file_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t last_size_ = 0;
  int64_t fetched_ = 0;
};

// --- the download ---------------------------------------------------------------------------

struct CachePaths {
  std::string repo_dir;   // <cache>/models--org--name
  std::string locks_dir;  // <cache>/.locks/models--org--name

  std::string Blob(absl::string_view etag) const { return absl::StrCat(repo_dir, "/blobs/", etag); }
  std::string Snapshot(absl::string_view commit) const {
    return absl::StrCat(repo_dir, "/snapshots/", commit);
  }
  std::string Ref(absl::string_view revision) const {
    return absl::StrCat(repo_dir, "/refs/", revision);
  }
  std::string Lock(absl::string_view etag) const {
    return absl::StrCat(locks_dir, "/", etag, ".lock");
  }
};

CachePaths PathsFor(const DownloadOptions& o) {
  const std::string cache = o.cache_dir.empty() ? HubCacheDir() : o.cache_dir;
  const std::string folder = RepoFolderName(o.repo_id);
  return {absl::StrCat(cache, "/", folder), absl::StrCat(cache, "/.locks/", folder)};
}

// "../../blobs/<etag>" from snapshots/<commit>/<file> (one more "../" per directory in file).
std::string LinkTarget(absl::string_view file, absl::string_view etag) {
  std::string up = "../../";
  for (char c : file) {
    if (c == '/') up += "../";
  }
  return absl::StrCat(up, "blobs/", etag);
}

// Makes blobs/<etag> hold `file`'s verified bytes: downloads it under its lock unless it is
// already there (possibly because another thread or process just finished it).
absl::Status EnsureBlob(const HubClient& client, const CachePaths& paths,
                        const std::string& file, const FileMetadata& meta,
                        const std::string& what, Progress* progress, absl::Time deadline) {
  const std::string blob = paths.Blob(meta.etag);
  if (Exists(blob)) {
    progress->Cached(file, FileSizeOr(blob, meta.size));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock,
                   FileLock::Acquire(paths.Lock(meta.etag), deadline));
  if (Exists(blob)) {
    progress->Cached(file, FileSizeOr(blob, meta.size));
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(MakeDirs(Dirname(blob)));
  const std::string partial = blob + ".incomplete";
  ProgressFn on_bytes = progress->Start(file, FileSizeOr(partial, 0));
  if (absl::Status d = client.DownloadFile(meta, partial, on_bytes, deadline); !d.ok()) {
    progress->Fail();
    return Annotate(d, what);
  }
  if (absl::Status v = VerifyDownload(partial, meta, what); !v.ok()) {
    progress->Fail();
    unlink(partial.c_str());
    return absl::Status(v.code(), absl::StrCat(v.message(), "; the corrupted download was "
                                                            "deleted and nothing published"));
  }
  if (rename(partial.c_str(), blob.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", partial, ": ",
                                            std::strerror(errno)));
  }
  progress->Finish(FileSizeOr(blob, meta.size));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SelectFiles(const RevisionInfo& info,
                                                     absl::string_view what) {
  std::vector<std::string> files;
  bool config = false, weights = false;
  for (const std::string& f : info.files) {
    if (!IsModelFile(f)) continue;
    files.push_back(f);
    config |= f == "config.json";
    weights |= absl::EndsWith(f, ".safetensors");
  }
  if (!config || !weights) {
    return absl::NotFoundError(absl::StrCat(
        what, " has no ", !config ? "config.json" : "*.safetensors weights",
        " (files: ", absl::StrJoin(info.files.begin(),
                                   info.files.begin() + std::min<size_t>(info.files.size(), 20),
                                   ", "),
        info.files.size() > 20 ? ", ..." : "", ")"));
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<std::string> DownloadOffline(const DownloadOptions& o, const CachePaths& paths) {
  const std::string what = absl::StrCat("model '", o.repo_id, "' (revision '", o.revision, "')");
  std::string commit;
  if (auto ref = ReadSmallFile(paths.Ref(o.revision)); ref.ok()) {
    commit = std::string(absl::StripAsciiWhitespace(*ref));
  } else if (IsHex(o.revision, 40)) {
    commit = o.revision;
  }
  if (!IsHex(commit, 40)) {
    return absl::NotFoundError(absl::StrCat(
        "HF_HUB_OFFLINE is set and ", what, " is not in the Hugging Face cache: ",
        paths.Ref(o.revision), " is missing; download it once with network access"));
  }
  const std::string snapshot = paths.Snapshot(commit);
  absl::Status complete = CheckSnapshotComplete(snapshot);
  if (!complete.ok()) {
    return absl::NotFoundError(absl::StrCat("HF_HUB_OFFLINE is set and ", what,
                                            " is not completely in the cache: ",
                                            complete.message()));
  }
  return snapshot;
}

absl::StatusOr<std::unique_ptr<HubClient>> ClientFor(const DownloadOptions& o) {
  HubClientOptions c;
  c.endpoint = o.endpoint.empty() ? HfEndpoint() : o.endpoint;
  c.token = o.token.has_value() ? *o.token : HfToken();
  c.max_attempts = o.max_attempts;
  c.initial_backoff = o.initial_backoff;
  return HubClient::Create(std::move(c));
}

absl::StatusOr<std::string> DownloadOnline(const DownloadOptions& o, const CachePaths& paths) {
  const absl::Time deadline = absl::Now() + o.timeout;
  ASSIGN_OR_RETURN(std::unique_ptr<HubClient> client, ClientFor(o));
  ASSIGN_OR_RETURN(RevisionInfo info, client->GetRevision(o.repo_id, o.revision, deadline));
  const std::string what_repo = absl::StrCat("model '", o.repo_id, "@", info.commit, "'");
  ASSIGN_OR_RETURN(std::vector<std::string> files, SelectFiles(info, what_repo));
  const std::string snapshot = paths.Snapshot(info.commit);
  Progress progress(o, info.commit);

  // 1. Every blob, verified. Files already linked in the snapshot are skipped.
  std::vector<std::pair<std::string, std::string>> links;  // file -> etag
  for (const std::string& file : files) {
    const std::string pointer = absl::StrCat(snapshot, "/", file);
    if (Exists(pointer)) {
      progress.Cached(file, FileSizeOr(pointer, 0));
      continue;
    }
    ASSIGN_OR_RETURN(FileMetadata meta,
                     client->GetFileMetadata(o.repo_id, info.commit, file, deadline));
    const std::string what = absl::StrCat("file '", file, "' of ", what_repo);
    RETURN_IF_ERROR(EnsureBlob(*client, paths, file, meta, what, &progress, deadline));
    links.emplace_back(file, meta.etag);
  }
  // 2. The snapshot's links, then 3. the ref (last: a ref never names a partial snapshot).
  for (const auto& [file, etag] : links) {
    RETURN_IF_ERROR(SymlinkAtomic(LinkTarget(file, etag), absl::StrCat(snapshot, "/", file)));
  }
  RETURN_IF_ERROR(CheckSnapshotComplete(snapshot));
  if (o.revision != info.commit) {
    auto current = ReadSmallFile(paths.Ref(o.revision));
    if (!current.ok() || *current != info.commit) {
      RETURN_IF_ERROR(WriteFileAtomic(paths.Ref(o.revision), info.commit));
    }
  }
  return snapshot;
}

bool LooksLikePath(absl::string_view s) {
  return absl::StartsWith(s, "/") || absl::StartsWith(s, "./") || absl::StartsWith(s, "../") ||
         absl::StartsWith(s, "~");
}

bool ValidRepoPart(absl::string_view p) {
  if (p.empty() || p.size() > 96) return false;
  for (char c : p) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return p.front() != '-' && p.front() != '.' && p.back() != '-' && p.back() != '.';
}

}  // namespace

// --- public helpers -------------------------------------------------------------------------

std::string HubCacheDir() {
  if (std::string v = Env("HF_HUB_CACHE"); !v.empty()) return v;
  if (std::string v = Env("HF_HOME"); !v.empty()) return absl::StrCat(v, "/hub");
  return absl::StrCat(Env("HOME"), "/.cache/huggingface/hub");
}

std::string HfEndpoint() {
  std::string e = Env("HF_ENDPOINT");
  while (absl::EndsWith(e, "/")) e.pop_back();
  return e.empty() ? kDefaultEndpoint : e;
}

std::string HfToken() {
  if (std::string t(absl::StripAsciiWhitespace(Env("HF_TOKEN"))); !t.empty()) return t;
  std::string path = Env("HF_TOKEN_PATH");
  if (path.empty()) {
    const std::string home = Env("HF_HOME");
    path = home.empty() ? absl::StrCat(Env("HOME"), "/.cache/huggingface/token")
                        : absl::StrCat(home, "/token");
  }
  auto text = ReadSmallFile(path);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : "";
}

bool HfHubOffline() {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(Env("HF_HUB_OFFLINE")));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

std::string RepoFolderName(absl::string_view repo_id) {
  std::vector<absl::string_view> parts = absl::StrSplit(repo_id, '/');
  return absl::StrCat("models--", absl::StrJoin(parts, "--"));
}

bool IsModelFile(absl::string_view name) {
  static const std::set<absl::string_view>* kNames = new std::set<absl::string_view>{
      "config.json",           "generation_config.json",  "preprocessor_config.json",
      "processor_config.json", "tokenizer.json",          "tokenizer_config.json",
      "special_tokens_map.json", "added_tokens.json",     "vocab.json",
      "merges.txt",            "chat_template.json",      "chat_template.jinja",
      "model.safetensors.index.json"};
  if (kNames->count(name) > 0) return true;
  if (!absl::EndsWith(name, ".safetensors") || name.size() <= 12 || name.front() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
  });
}

absl::StatusOr<RepoSpec> ParseRepoSpec(absl::string_view spec) {
  RepoSpec r;
  absl::string_view repo = spec;
  if (size_t at = spec.find('@'); at != absl::string_view::npos) {
    repo = spec.substr(0, at);
    r.revision = std::string(spec.substr(at + 1));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || !ValidRepoPart(parts[0]) || !ValidRepoPart(parts[1]) ||
      absl::StrContains(repo, "--") || absl::StrContains(repo, "..")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", spec, "' is not a Hugging Face repo id: expected org/name[@revision], each part "
                   "1-96 characters of letters, digits, '.', '_', '-' (no '--' or '..')"));
  }
  const bool bad_rev =
      r.revision.empty() || absl::StrContains(r.revision, "..") ||
      absl::StartsWith(r.revision, "/") || absl::EndsWith(r.revision, "/") ||
      absl::StrContains(r.revision, "//") ||
      std::any_of(r.revision.begin(), r.revision.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\';
      });
  if (bad_rev) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': invalid revision (a branch, tag or commit is expected)"));
  }
  r.repo_id = std::string(repo);
  return r;
}

absl::Status CheckSnapshotComplete(absl::string_view snapshot_dir) {
  const std::string dir(snapshot_dir);
  if (!IsDirectory(dir)) return absl::NotFoundError(absl::StrCat(dir, " does not exist"));
  std::vector<std::string> missing;
  if (!Exists(dir + "/config.json")) missing.push_back("config.json");
  if (!Exists(dir + "/model.safetensors")) {
    const std::string index_path = dir + "/model.safetensors.index.json";
    auto text = ReadSmallFile(index_path);
    auto index = text.ok() ? json::Parse(*text) : absl::StatusOr<nlohmann::json>(text.status());
    if (!index.ok()) {
      missing.push_back("model.safetensors (or model.safetensors.index.json and its shards)");
    } else if (!index->is_object() || !(*index)["weight_map"].is_object()) {
      return absl::NotFoundError(absl::StrCat(index_path, " has no weight_map"));
    } else {
      std::set<std::string> shards;
      for (const auto& [name, shard] : (*index)["weight_map"].items()) {
        if (shard.is_string()) shards.insert(shard.get<std::string>());
      }
      for (const std::string& s : shards) {
        if (!IsModelFile(s) || !Exists(absl::StrCat(dir, "/", s))) missing.push_back(s);
      }
    }
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::NotFoundError(
      absl::StrCat("snapshot ", dir, " is missing ", absl::StrJoin(missing, ", ")));
}

absl::StatusOr<std::string> DownloadModel(const DownloadOptions& options) {
  ASSIGN_OR_RETURN(RepoSpec spec, ParseRepoSpec(absl::StrCat(options.repo_id, "@",
                                                             options.revision)));
  (void)spec;
  const CachePaths paths = PathsFor(options);
  const bool offline = options.offline.has_value() ? *options.offline : HfHubOffline();
  if (offline) return DownloadOffline(options, paths);
  return DownloadOnline(options, paths);
}

absl::StatusOr<std::string> ResolveOrDownloadModel(absl::string_view model) {
  absl::StatusOr<std::string> found = model::ResolveModelDir(model);
  if (found.ok()) {
    if (IsDirectory(std::string(model))) return found;  // a local directory: as is
    absl::Status complete = CheckSnapshotComplete(*found);
    if (complete.ok()) return found;
    if (HfHubOffline()) {
      return absl::NotFoundError(absl::StrCat("HF_HUB_OFFLINE is set and model '", model,
                                              "' is incomplete in the cache: ",
                                              complete.message()));
    }
  } else if (found.status().code() != absl::StatusCode::kNotFound || LooksLikePath(model)) {
    return found.status();
  }
  absl::StatusOr<RepoSpec> spec = ParseRepoSpec(model);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no directory '", model, "' exists, and ", spec.status().message()));
  }
  if (HfHubOffline()) {
    return absl::NotFoundError(absl::StrCat(found.status().message(),
                                            "; HF_HUB_OFFLINE is set, so it was not downloaded"));
  }
  DownloadOptions o;
  o.repo_id = spec->repo_id;
  o.revision = spec->revision;
  RETURN_IF_ERROR(DownloadModel(o).status());
  return model::ResolveModelDir(model);
}

}  // namespace smolserve::hub
