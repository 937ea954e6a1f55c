#include "common/hub/hub_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/json/parse.h"
#include "common/status/status_macros.h"

namespace smolserve::hub {
namespace {

constexpr int kMaxRedirects = 10;
constexpr int64_t kMaxApiBody = int64_t{32} << 20;   // a revision answer with many siblings
constexpr int64_t kMaxErrorBody = int64_t{64} << 10;

absl::Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return absl::InternalError(absl::StrCat("curl_global_init: ", curl_easy_strerror(result)));
  }
  return absl::OkStatus();
}

bool HasControlChars(absl::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool IsCommitSha(absl::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

// A server-sent text made safe to put in a status message.
std::string Printable(absl::string_view s, size_t max_len = 200) {
  std::string out;
  for (char c : s.substr(0, max_len)) {
    out.push_back(absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?');
  }
  return out;
}

long Millis(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 1;
  return static_cast<long>(std::min<int64_t>(absl::ToInt64Milliseconds(d), 1L << 30));
}

// Where the body of one HTTP answer goes.
struct Sink {
  // Error and API bodies are kept in memory up to this many bytes.
  int64_t max_memory = kMaxErrorBody;
  // Download mode: 2xx bodies are appended to `fd` (opened O_APPEND).
  int fd = -1;
  int64_t range_from = 0;     // the Range start that was asked for (0: none)
  int64_t expected_size = -1; // the whole file's size, when known
  const ProgressFn* progress = nullptr;
};

// One HTTP exchange, no redirects followed.
struct Exchange {
  CURL* curl = nullptr;
  const Sink* sink = nullptr;
  std::map<std::string, std::string> headers;  // lowercase names; of the last answer
  std::string body;                            // non-download bodies (bounded)
  bool prepared = false;                       // download mode: first body byte seen
  bool direct_to_file = false;                 // this answer's body goes to the file
  int64_t file_size = 0;                       // download mode: bytes in the file
  int64_t received = 0;                        // body bytes of this answer
  absl::Status local_error;                    // why a callback aborted the transfer
};

long ResponseCode(CURL* curl) {
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    ex->headers.clear();  // a new answer (e.g. after "100 Continue")
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    ex->headers[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

// Decides, on the first body byte, whether a download answer is appended to the file, and
// truncates the file when the server restarts from byte 0.
absl::Status PrepareDownload(Exchange* ex) {
  ex->prepared = true;
  const long code = ResponseCode(ex->curl);
  if (ex->sink->fd < 0 || code < 200 || code >= 300) return absl::OkStatus();
  ex->direct_to_file = true;
  bool restart = ex->sink->range_from > 0 && code != 206;
  if (code == 206) {
    // "bytes START-END/TOTAL": the answer must start where the file ends.
    absl::string_view range = ex->headers["content-range"];
    int64_t start = -1;
    if (absl::ConsumePrefix(&range, "bytes ")) {
      absl::SimpleAtoi(range.substr(0, range.find('-')), &start);
    }
    if (start != ex->sink->range_from) {
      return absl::UnavailableError(absl::StrCat("server answered range '",
                                                 Printable(ex->headers["content-range"]),
                                                 "' to a request from byte ",
                                                 ex->sink->range_from));
    }
  }
  if (restart) {
    if (ftruncate(ex->sink->fd, 0) != 0) {
      return absl::InternalError(absl::StrCat("truncate: ", std::strerror(errno)));
    }
    ex->file_size = 0;
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return absl::InternalError(absl::StrCat("write: ", std::strerror(errno)));
    data += w;
    len -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (!ex->prepared) {
    ex->local_error = PrepareDownload(ex);
    if (!ex->local_error.ok()) return 0;
  }
  ex->received += static_cast<int64_t>(len);
  if (!ex->direct_to_file) {
    if (ex->received > ex->sink->max_memory) {
      ex->local_error = absl::UnavailableError(
          absl::StrCat("answer larger than ", ex->sink->max_memory, " bytes"));
      return 0;
    }
    ex->body.append(data, len);
    return len;
  }
  const int64_t expected = ex->sink->expected_size;
  if (expected >= 0 && ex->file_size + static_cast<int64_t>(len) > expected) {
    ex->local_error = absl::DataLossError(
        absl::StrCat("server sent more than the announced ", expected, " bytes"));
    return 0;
  }
  ex->local_error = WriteAll(ex->sink->fd, data, len);
  if (!ex->local_error.ok()) return 0;
  ex->file_size += static_cast<int64_t>(len);
  if (ex->sink->progress != nullptr && *ex->sink->progress) {
    (*ex->sink->progress)(ex->file_size, expected);
  }
  return len;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// What one hop needs.
struct Hop {
  const char* method = "GET";  // "GET" or "HEAD"
  std::string url;
  bool with_token = false;
  absl::Duration timeout = absl::InfiniteDuration();  // on top of the deadline
  bool low_speed = false;
};

struct HopResult {
  long code = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string redirect_url;  // absolute, for 3xx with a Location
  int64_t received = 0;
};

bool IsRetryableCurl(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_OUT_OF_MEMORY:
      return false;
    default:
      return true;
  }
}

}  // namespace

std::string NormalizeEtag(absl::string_view etag) {
  absl::string_view e = absl::StripAsciiWhitespace(etag);
  absl::ConsumePrefix(&e, "W/");
  while (!e.empty() && e.front() == '"') e.remove_prefix(1);
  while (!e.empty() && e.back() == '"') e.remove_suffix(1);
  return std::string(e);
}

std::string OriginOf(absl::string_view url) {
  CURLU* u = curl_url();
  if (u == nullptr) return "";
  std::string origin;
  const std::string s(url);
  if (curl_url_set(u, CURLUPART_URL, s.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      const std::string sc = absl::AsciiStrToLower(scheme);
      if (sc == "http" || sc == "https") {
        origin = absl::StrCat(sc, "://", absl::AsciiStrToLower(host), ":", port);
      }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return origin;
}

std::string UrlEncode(absl::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::Status HttpErrorStatus(long code, absl::string_view error_code, absl::string_view what,
                             bool had_token) {
  const std::string http = absl::StrCat(" (HTTP ", code,
                                        error_code.empty() ? "" : ", ", Printable(error_code), ")");
  if (code == 404 || error_code == "RepoNotFound" || error_code == "RevisionNotFound" ||
      error_code == "EntryNotFound") {
    std::string hint;
    if (error_code == "RepoNotFound" || error_code.empty()) {
      hint = had_token ? "" : "; if it is a private repo, set HF_TOKEN";
    }
    return absl::NotFoundError(absl::StrCat(what, " not found on the Hub", http, hint));
  }
  if (code == 401 || code == 403) {
    return absl::PermissionDeniedError(absl::StrCat(
        "access to ", what, " denied", http, ": the repo is gated or private; ",
        had_token ? "the token in HF_TOKEN is not accepted or has not been granted access "
                    "(accept the model's terms on its Hub page)"
                  : "set HF_TOKEN to a token that has access (and accept the model's terms on "
                    "its Hub page)"));
  }
  if (code == 408 || code == 429 || code >= 500) {
    return absl::UnavailableError(absl::StrCat("the Hub could not answer for ", what, http));
  }
  return absl::InvalidArgumentError(absl::StrCat("the Hub refused the request for ", what, http));
}

absl::StatusOr<std::unique_ptr<HubClient>> HubClient::Create(HubClientOptions options) {
  RETURN_IF_ERROR(InitCurlOnce());
  while (absl::EndsWith(options.endpoint, "/")) options.endpoint.pop_back();
  std::string origin = OriginOf(options.endpoint);
  if (origin.empty() || HasControlChars(options.endpoint) ||
      absl::StrContains(options.endpoint, '?') || absl::StrContains(options.endpoint, '#') ||
      absl::StrContains(options.endpoint, '@')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Hub endpoint '", Printable(options.endpoint),
        "' is not an http(s)://host[:port][/path] URL (check HF_ENDPOINT)"));
  }
  if (HasControlChars(options.token) || absl::StrContains(options.token, ' ')) {
    return absl::InvalidArgumentError("the Hub token contains spaces or control characters");
  }
  if (options.max_attempts < 1 || !(options.connect_timeout_s > 0) ||
      !(options.metadata_timeout_s > 0) || options.initial_backoff < absl::ZeroDuration() ||
      options.max_backoff < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "HubClientOptions: max_attempts must be >= 1, timeouts positive, backoffs >= 0");
  }
  return std::unique_ptr<HubClient>(new HubClient(std::move(options), std::move(origin)));
}

bool HubClient::SendsTokenTo(absl::string_view url) const {
  return !options_.token.empty() && OriginOf(url) == origin_;
}

namespace {

// Runs one HTTP exchange without following redirects.
absl::StatusOr<HopResult> PerformHop(const HubClientOptions& o, const Hop& hop, const Sink& sink,
                                     absl::Time deadline, int64_t* file_size) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return absl::UnavailableError(absl::StrCat("deadline passed before fetching ", hop.url));
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const std::string& h) {
    headers.reset(curl_slist_append(headers.release(), h.c_str()));
  };
  add_header("Accept-Encoding: identity");
  if (hop.with_token) add_header(absl::StrCat("Authorization: Bearer ", o.token));
  Exchange ex;
  ex.curl = c;
  ex.sink = &sink;
  ex.file_size = file_size != nullptr ? *file_size : 0;
  const std::string range = absl::StrCat(sink.range_from, "-");
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, hop.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, o.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   Millis(std::min(absl::Seconds(o.connect_timeout_s), left)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, Millis(std::min(hop.timeout, left)));
  if (hop.low_speed && o.low_speed_bytes > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(std::max<double>(
                         1, o.low_speed_bytes / std::max(1.0, o.low_speed_window_s))));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(std::max(1.0, o.low_speed_window_s)));
  }
  if (std::string(hop.method) == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (sink.range_from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ex);

  const CURLcode rc = curl_easy_perform(c);
  if (file_size != nullptr) *file_size = ex.file_size;
  if (!ex.local_error.ok()) return Annotate(ex.local_error, hop.url);
  if (rc != CURLE_OK) {
    const std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    const std::string msg = absl::StrCat("cannot fetch ", hop.url, ": ", why);
    return IsRetryableCurl(rc) ? absl::UnavailableError(msg) : absl::InvalidArgumentError(msg);
  }
  HopResult r;
  r.code = ResponseCode(c);
  r.headers = std::move(ex.headers);
  r.body = std::move(ex.body);
  r.received = ex.received;
  if (r.code >= 300 && r.code < 400) {
    char* target = nullptr;
    if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &target) == CURLE_OK && target != nullptr) {
      r.redirect_url = target;
    }
  }
  return r;
}

std::string HeaderOr(const HopResult& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

absl::Status ErrorFor(const HopResult& r, absl::string_view what, bool had_token) {
  absl::Status s = HttpErrorStatus(r.code, HeaderOr(r, "x-error-code"), what, had_token);
  const std::string detail = HeaderOr(r, "x-error-message");
  if (detail.empty()) return s;
  return absl::Status(s.code(), absl::StrCat(s.message(), ": ", Printable(detail)));
}

// Sleeps the backoff for attempt `attempt` (1-based), never past the deadline.
void Backoff(const HubClientOptions& o, int attempt, absl::Time deadline) {
  absl::Duration d = o.initial_backoff;
  for (int i = 1; i < attempt && d < o.max_backoff; ++i) d *= 2;
  d = std::min({d, o.max_backoff, deadline - absl::Now()});
  if (d > absl::ZeroDuration()) absl::SleepFor(d);
}

// Retries `fn` while it returns UNAVAILABLE, up to max_attempts and the deadline.
template <typename Fn>
auto WithRetries(const HubClientOptions& o, absl::Time deadline, Fn fn) -> decltype(fn()) {
  for (int attempt = 1;; ++attempt) {
    auto r = fn();
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= o.max_attempts || absl::Now() >= deadline) {
      return r;
    }
    Backoff(o, attempt, deadline);
  }
}

}  // namespace

absl::StatusOr<RevisionInfo> HubClient::GetRevision(absl::string_view repo_id,
                                                    absl::string_view revision,
                                                    absl::Time deadline) const {
  const std::string what = absl::StrCat("revision '", revision, "' of model '", repo_id, "'");
  const std::string first_url =
      absl::StrCat(options_.endpoint, "/api/models/", UrlEncode(repo_id, true), "/revision/",
                   UrlEncode(revision, false));
  auto once = [&]() -> absl::StatusOr<RevisionInfo> {
    Sink sink;
    sink.max_memory = kMaxApiBody;
    std::string url = first_url;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      Hop h{"GET", url, SendsTokenTo(url), absl::Seconds(options_.metadata_timeout_s), false};
      ASSIGN_OR_RETURN(HopResult r, PerformHop(options_, h, sink, deadline, nullptr));
      if (r.code >= 300 && r.code < 400 && !r.redirect_url.empty()) {
        url = r.redirect_url;
        continue;
      }
      if (r.code != 200) return ErrorFor(r, what, h.with_token);
      auto j = json::Parse(r.body);
      if (!j.ok() || !j->is_object() || !(*j)["sha"].is_string() ||
          !IsCommitSha((*j)["sha"].get<std::string>())) {
        return absl::UnavailableError(
            absl::StrCat("the Hub's answer for ", what, " has no commit sha (", url, ")"));
      }
      RevisionInfo info;
      info.commit = (*j)["sha"].get<std::string>();
      if (auto s = j->find("siblings"); s != j->end() && s->is_array()) {
        for (const auto& f : *s) {
          if (f.is_object() && f.contains("rfilename") && f["rfilename"].is_string()) {
            info.files.push_back(f["rfilename"].get<std::string>());
          }
        }
      }
      return info;
    }
    return absl::UnavailableError(absl::StrCat("too many redirects for ", what));
  };
  return WithRetries(options_, deadline, once);
}

absl::StatusOr<FileMetadata> HubClient::GetFileMetadata(absl::string_view repo_id,
                                                        absl::string_view revision,
                                                        absl::string_view file,
                                                        absl::Time deadline) const {
  const std::string what = absl::StrCat("file '", file, "' of model '", repo_id, "@", revision, "'");
  const std::string first_url =
      absl::StrCat(options_.endpoint, "/", UrlEncode(repo_id, true), "/resolve/",
                   UrlEncode(revision, false), "/", UrlEncode(file, true));
  auto once = [&]() -> absl::StatusOr<FileMetadata> {
    std::string url = first_url;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      Hop h{"HEAD", url, SendsTokenTo(url), absl::Seconds(options_.metadata_timeout_s), false};
      ASSIGN_OR_RETURN(HopResult r, PerformHop(options_, h, Sink(), deadline, nullptr));
      const bool redirect = r.code >= 300 && r.code < 400 && !r.redirect_url.empty();
      const std::string linked_etag = HeaderOr(r, "x-linked-etag");
      // Same-origin redirects without a linked etag (a renamed repo) are followed.
      if (redirect && linked_etag.empty() && OriginOf(r.redirect_url) == OriginOf(url)) {
        url = r.redirect_url;
        continue;
      }
      if (!redirect && r.code != 200) return ErrorFor(r, what, h.with_token);
      FileMetadata m;
      m.commit = HeaderOr(r, "x-repo-commit");
      m.lfs = !linked_etag.empty();
      m.etag = NormalizeEtag(m.lfs ? linked_etag : HeaderOr(r, "etag"));
      const std::string size = HeaderOr(r, m.lfs ? "x-linked-size" : "content-length");
      if (!absl::SimpleAtoi(size, &m.size) || m.size < 0) m.size = -1;
      m.download_url = redirect ? r.redirect_url : url;
      const bool etag_ok = !m.etag.empty() && m.etag.size() <= 128 &&
                           std::all_of(m.etag.begin(), m.etag.end(), [](char c) {
                             return absl::ascii_isalnum(c) || c == '-' || c == '_';
                           });
      if (m.commit.empty() || !etag_ok) {
        return absl::UnavailableError(absl::StrCat(
            "the answer for ", what, " lacks X-Repo-Commit or a usable ETag: is ",
            options_.endpoint, " a Hugging Face Hub?"));
      }
      return m;
    }
    return absl::UnavailableError(absl::StrCat("too many redirects for ", what));
  };
  return WithRetries(options_, deadline, once);
}

namespace {

absl::StatusOr<int64_t> FileSize(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::InternalError(std::strerror(errno));
  return static_cast<int64_t>(st.st_size);
}

// One GET of the body (following redirects) from byte *size of the file; *size is updated
// with what was written even when the transfer fails.
absl::Status DownloadOnce(const HubClient& client, const FileMetadata& meta, int fd,
                          int64_t* size, const ProgressFn& progress, absl::Time deadline) {
  const HubClientOptions& o = client.options();
  std::string url = meta.download_url;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    Sink sink;
    sink.fd = fd;
    sink.range_from = *size;
    sink.expected_size = meta.size;
    sink.progress = &progress;
    Hop h{"GET", url, client.SendsTokenTo(url), absl::InfiniteDuration(), true};
    ASSIGN_OR_RETURN(HopResult r, PerformHop(o, h, sink, deadline, size));
    if (r.code >= 300 && r.code < 400 && !r.redirect_url.empty()) {
      url = r.redirect_url;
      continue;
    }
    if (r.code == 416 && meta.size >= 0 && *size == meta.size) return absl::OkStatus();
    if (r.code == 416) {  // our partial file does not fit what the server has: start over
      if (ftruncate(fd, 0) != 0) return absl::InternalError(std::strerror(errno));
      *size = 0;
      return absl::UnavailableError(absl::StrCat(url, " answered 416 to a resumed download"));
    }
    if (r.code != 200 && r.code != 206) {
      return ErrorFor(r, absl::StrCat("download ", url), h.with_token);
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("too many redirects downloading ", url));
}

}  // namespace

absl::Status HubClient::DownloadFile(const FileMetadata& meta, const std::string& partial_path,
                                     const ProgressFn& progress, absl::Time deadline) const {
  const int fd = open(partial_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", partial_path, ": ",
                                            std::strerror(errno)));
  }
  absl::Status result;
  int failures = 0;
  while (true) {
    auto size = FileSize(fd);
    if (!size.ok()) {
      result = size.status();
      break;
    }
    if (meta.size >= 0 && *size > meta.size) {
      if (ftruncate(fd, 0) != 0) {
        result = absl::InternalError(std::strerror(errno));
        break;
      }
      *size = 0;
    }
    if (meta.size >= 0 && *size == meta.size) break;  // nothing left to fetch
    const int64_t before = *size;
    int64_t now_size = before;
    result = DownloadOnce(*this, meta, fd, &now_size, progress, deadline);
    if (result.ok() || result.code() != absl::StatusCode::kUnavailable ||
        absl::Now() >= deadline) {
      break;
    }
    if (now_size > before) failures = 0;  // progress: a cut connection, not a dead server
    if (++failures >= options_.max_attempts) break;
    Backoff(options_, failures, deadline);
  }
  close(fd);
  return result;
}

}  // namespace smolserve::hub
