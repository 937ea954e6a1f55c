// HTTP client for the Hugging Face Hub (libcurl): revision lookup, file metadata and
// resumable downloads of one file. The cache layout (blobs, snapshots, refs, locks) is
// hub_download.h's business; this layer only talks HTTP and writes bytes to a file.
//
// Requests (as huggingface_hub makes them):
//   GET  {endpoint}/api/models/{repo}/revision/{rev}      -> commit sha + file list
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}        -> X-Repo-Commit, ETag/X-Linked-Etag,
//        Content-Length/X-Linked-Size; a redirect to another origin (the CDN for LFS files)
//        is not followed but becomes the download URL; same-origin relative redirects (a
//        renamed repo) are followed.
//   GET  {download url} with "Range: bytes=N-"            -> the body, appended to a file
//
// Credentials: the token is sent as "Authorization: Bearer ..." only to URLs with the
// endpoint's scheme, host and port; never to a redirect target on another origin (the CDN),
// never logged, never part of an error message. Redirects are followed by this class, not by
// curl, so that rule holds for every hop. Environment proxies (https_proxy, no_proxy) are
// honoured as curl does; no content decoding (Accept-Encoding is not sent).
//
// Errors (messages name the repo, revision, file or URL, never the token):
//   NOT_FOUND          HTTP 404 (repo, revision or file unknown; X-Error-Code says which), or
//                      401/403 with X-Error-Code RepoNotFound (how the Hub hides private repos).
//   PERMISSION_DENIED  other 401/403: gated or private repo; the message hints at HF_TOKEN.
//   UNAVAILABLE        connection refused/reset/cut, timeouts, TLS errors, HTTP 429 and 5xx,
//                      answers missing the headers the Hub always sends; also when the
//                      deadline passes. Retried (see HubClientOptions) before being returned.
//   INVALID_ARGUMENT   other HTTP 4xx; a bad endpoint in Create.
//   DATA_LOSS          the server sent more bytes than the announced size.
//   INTERNAL           local I/O errors (writing the file) or libcurl set-up failures.
//
// Threads: a HubClient is immutable after Create; every method may be called from any number
// of threads at once (each call uses its own curl handle and blocks its thread).
#ifndef SMOLSERVE_COMMON_HUB_HUB_CLIENT_H_
#define SMOLSERVE_COMMON_HUB_HUB_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace smolserve::hub {

inline constexpr char kDefaultEndpoint[] = "https://huggingface.co";

struct HubClientOptions {
  std::string endpoint = kDefaultEndpoint;  // scheme://host[:port][/prefix], no trailing '/'
  std::string token;                        // bearer token; "" = anonymous
  std::string user_agent = "smolserve-hub/1";
  double connect_timeout_s = 10;    // per connection (DNS + TCP + TLS)
  double metadata_timeout_s = 30;   // one API or HEAD request
  // A body transfer is aborted (then retried, resuming) when fewer than low_speed_bytes
  // arrive in low_speed_window_s seconds (curl's LOW_SPEED_LIMIT/TIME).
  int64_t low_speed_bytes = 1024;
  double low_speed_window_s = 30;
  // Attempts per request for retryable failures (UNAVAILABLE). For a download, an attempt that
  // received bytes resets the count, so a flaky link makes progress until the deadline.
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(500);  // doubled after each failure
  absl::Duration max_backoff = absl::Seconds(8);
};

// What the revision API says about `{repo}@{rev}`.
struct RevisionInfo {
  std::string commit;               // "sha": 40 lowercase hex digits
  std::vector<std::string> files;   // siblings[].rfilename, as listed
};

// What a HEAD of `/resolve/{commit}/{file}` says about one file.
struct FileMetadata {
  std::string commit;        // X-Repo-Commit
  std::string etag;          // X-Linked-Etag, else ETag; without W/ and quotes
  int64_t size = -1;         // X-Linked-Size, else Content-Length; -1 when unknown
  std::string download_url;  // absolute: the redirect target (CDN), else the resolve URL
  bool lfs = false;          // X-Linked-Etag was present: etag is the SHA-256 of the bytes
};

// Called on the downloading thread as bytes arrive: (bytes in the file, total size or -1).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

class HubClient {
 public:
  // INVALID_ARGUMENT for an endpoint that is not http(s)://host[:port][/path] or a token with
  // control characters, max_attempts < 1, non-positive timeouts; INTERNAL when libcurl cannot
  // be initialised (curl_global_init runs once per process).
  static absl::StatusOr<std::unique_ptr<HubClient>> Create(HubClientOptions options);

  // GET /api/models/{repo_id}/revision/{revision} (revision url-encoded, so "refs/pr/1"
  // works). UNAVAILABLE when the answer is not JSON with a 40-hex "sha".
  absl::StatusOr<RevisionInfo> GetRevision(absl::string_view repo_id,
                                           absl::string_view revision,
                                           absl::Time deadline) const;

  // HEAD /{repo_id}/resolve/{revision}/{file}. UNAVAILABLE when the answer lacks
  // X-Repo-Commit or an ETag (not a Hub), or the etag is not a safe file name.
  absl::StatusOr<FileMetadata> GetFileMetadata(absl::string_view repo_id,
                                               absl::string_view revision,
                                               absl::string_view file,
                                               absl::Time deadline) const;

  // Downloads `meta.download_url` into `partial_path`, resuming from the file's current size
  // with "Range: bytes=N-" (created when absent; restarted from 0 when it is longer than
  // meta.size or the server ignores the range). Retries cut or failed transfers with backoff
  // until max_attempts or `deadline`. Returns OK once the server has sent the whole body; the
  // caller verifies size and checksum. `progress` may be empty.
  absl::Status DownloadFile(const FileMetadata& meta, const std::string& partial_path,
                            const ProgressFn& progress, absl::Time deadline) const;

  // Whether a request to `url` carries the token (same scheme, host and port as the endpoint).
  bool SendsTokenTo(absl::string_view url) const;

  const HubClientOptions& options() const { return options_; }

 private:
  explicit HubClient(HubClientOptions options, std::string origin)
      : options_(std::move(options)), origin_(std::move(origin)) {}

  const HubClientOptions options_;
  const std::string origin_;  // "scheme://host:port" of the endpoint, lowercase
};

// Helpers, exposed for tests.

// "W/\"abc\"" -> "abc" (huggingface_hub's _normalize_etag).
std::string NormalizeEtag(absl::string_view etag);

// "scheme://host:port" (lowercase, default port filled in) of an absolute http(s) URL, or ""
// when it is not one.
std::string OriginOf(absl::string_view url);

// Percent-encodes everything but unreserved characters; with keep_slash, '/' too is kept.
std::string UrlEncode(absl::string_view s, bool keep_slash);

// The status for an HTTP error answer: `code` >= 400, `error_code` = the X-Error-Code header
// ("" if absent), `what` names the thing asked for, `had_token` whether a token was sent.
absl::Status HttpErrorStatus(long code, absl::string_view error_code, absl::string_view what,
                             bool had_token);

}  // namespace smolserve::hub

#endif  // SMOLSERVE_COMMON_HUB_HUB_CLIENT_H_
