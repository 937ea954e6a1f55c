// Downloads a SmolVLM2 model from the Hugging Face Hub into the shared Hugging Face cache,
// laid out exactly as huggingface_hub lays it out, so that both tools (and
// model::ResolveModelDir) share one cache:
//
//   $HF_HUB_CACHE/                      (else $HF_HOME/hub, else ~/.cache/huggingface/hub)
//     models--org--name/
//       blobs/<etag>                    each file once; etag = SHA-256 (LFS files) or the git
//                                       blob sha1 (regular files), as the Hub sends it
//       blobs/<etag>.incomplete         a download in progress (resumed from its size)
//       snapshots/<commit>/<file>       relative symlink -> ../../blobs/<etag>
//       refs/<revision>                 the commit, when a branch or tag name was asked for
//     .locks/models--org--name/<etag>.lock   flock'd around each blob download
//
// Only the files a SmolVLM2 model needs are fetched (see IsModelFile), whichever the repo has.
// Every blob is verified (size; SHA-256 for LFS files, git sha1 for regular files) before it is
// renamed into blobs/; the snapshot links and the refs file are written only after every blob
// is there, refs last, so an interrupted download never leaves a ref to a partial snapshot.
//
// Environment (read at each call unless DownloadOptions overrides it): HF_ENDPOINT (default
// https://huggingface.co), HF_TOKEN (else the file $HF_TOKEN_PATH, else $HF_HOME/token, as
// `huggingface-cli login` writes it), HF_HUB_OFFLINE (1/true/yes/on: the cache only),
// HF_HUB_CACHE / HF_HOME / HOME (the cache, as model::ResolveModelDir finds it).
//
// Progress goes to stderr: a progress bar when stderr is a terminal, else one JSON line per
// file: {"event":"hub_download","repo","revision","commit","file","bytes","fetched_bytes",
// "seconds","cached"}. The token is never printed.
//
// Errors:
//   INVALID_ARGUMENT   malformed repo id or revision; a bad HF_ENDPOINT.
//   NOT_FOUND          repo, revision or file unknown to the Hub (404); a repo without
//                      config.json or *.safetensors; offline and not (completely) in the cache
//                      (the message names what is missing).
//   PERMISSION_DENIED  401/403: gated or private repo (hint: HF_TOKEN).
//   UNAVAILABLE        network errors after the retries, the deadline, a lock held too long.
//   DATA_LOSS          a downloaded file whose size or checksum does not match its etag: it is
//                      deleted, never published; the message names the file.
//   INTERNAL           the cache cannot be written (permissions, disk full).
//
// Threads and processes: DownloadModel may run concurrently in any number of threads and
// processes on one cache (e.g. pods sharing a volume): each blob is downloaded by whoever holds
// its lock first; the others wait (polling, up to the deadline) and then find it done. Links
// and refs are replaced atomically (rename), so readers never see a half-written one.
#ifndef SMOLSERVE_COMMON_HUB_HUB_DOWNLOAD_H_
#define SMOLSERVE_COMMON_HUB_HUB_DOWNLOAD_H_

#include <cstdio>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace smolserve::hub {

enum class ProgressMode {
  kAuto,       // a bar when the stream is a terminal, else JSON lines
  kBar,
  kJsonLines,
  kNone,
};

struct DownloadOptions {
  std::string repo_id;            // "org/name" (required)
  std::string revision = "main";  // branch, tag, or 40-hex commit
  std::string endpoint;           // "" -> $HF_ENDPOINT, else https://huggingface.co
  std::string cache_dir;          // "" -> HubCacheDir()
  std::optional<std::string> token;  // nullopt -> HfToken(); "" -> anonymous
  std::optional<bool> offline;       // nullopt -> HfHubOffline()
  absl::Duration timeout = absl::Hours(12);  // the whole call, lock waits included
  int max_attempts = 5;                      // per request (see HubClientOptions)
  absl::Duration initial_backoff = absl::Milliseconds(500);
  ProgressMode progress = ProgressMode::kAuto;
  std::FILE* progress_stream = stderr;
};

// Downloads (or finds, when already cached) `repo_id@revision` and returns its snapshot
// folder, `<cache>/models--org--name/snapshots/<commit>`. Online, the revision is always
// resolved through the Hub's API, and only missing blobs are downloaded. Offline, the cache
// must hold the revision (refs/<revision>, or the commit itself) with a complete snapshot
// (see CheckSnapshotComplete). Errors: see the file comment.
absl::StatusOr<std::string> DownloadModel(const DownloadOptions& options);

// Resolves `model` for the stages and tools:
//  - an existing local directory -> itself;
//  - `org/name[@rev]` -> model::ResolveModelDir (offline); when that is NOT_FOUND, or the
//    snapshot it finds is incomplete, and HF_HUB_OFFLINE is not set -> DownloadModel with the
//    environment's settings (progress on stderr), then ResolveModelDir again.
// NOT_FOUND for a missing path (one starting with '/', './', '../', '~'); INVALID_ARGUMENT
// for anything else that is not a valid repo id; otherwise DownloadModel's errors. Offline,
// a missing or incomplete model is NOT_FOUND naming what is missing.
absl::StatusOr<std::string> ResolveOrDownloadModel(absl::string_view model);

// --- Helpers (exposed for the CLI and tests) ---

struct RepoSpec {
  std::string repo_id;            // "org/name"
  std::string revision = "main";
};

// Parses "org/name" or "org/name@revision". INVALID_ARGUMENT unless each of org and name is
// 1-96 characters of [A-Za-z0-9._-], neither starts nor ends with '-' or '.', and the id has
// no "--" or ".." (huggingface_hub's validate_repo_id); the revision must be non-empty, without
// "..", a leading '/', whitespace or control characters ("refs/pr/1" is fine).
absl::StatusOr<RepoSpec> ParseRepoSpec(absl::string_view spec);

// $HF_HUB_CACHE, else $HF_HOME/hub, else $HOME/.cache/huggingface/hub (ResolveModelDir's rule).
std::string HubCacheDir();
// $HF_ENDPOINT without trailing '/', else https://huggingface.co.
std::string HfEndpoint();
// $HF_TOKEN, else the contents of $HF_TOKEN_PATH, else of $HF_HOME/token (or
// ~/.cache/huggingface/token); "" when none. Whitespace stripped.
std::string HfToken();
// Whether $HF_HUB_OFFLINE is 1, true, yes or on (any case).
bool HfHubOffline();

// "org/name" -> "models--org--name".
std::string RepoFolderName(absl::string_view repo_id);

// Whether a repo file is one a SmolVLM2 model needs: top-level config.json,
// generation_config.json, preprocessor_config.json, processor_config.json, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, added_tokens.json, vocab.json, merges.txt,
// chat_template.json, chat_template.jinja, model.safetensors.index.json, *.safetensors.
bool IsModelFile(absl::string_view name);

// OK when `snapshot_dir` holds config.json and the weights (model.safetensors, or
// model.safetensors.index.json and every shard its weight_map names), all readable (links
// resolve). NOT_FOUND naming the missing files otherwise.
absl::Status CheckSnapshotComplete(absl::string_view snapshot_dir);

}  // namespace smolserve::hub

#endif  // SMOLSERVE_COMMON_HUB_HUB_DOWNLOAD_H_
