#include "common/net/url_fetcher.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace smolserve::net {
namespace {

constexpr size_t kShownUrlChars = 100;
constexpr size_t kMaxUrlChars = 8192;
constexpr int kPollIntervalMs = 50;  // cancellation/deadline checks at least this often
constexpr int kMaxRedirectsLimit = 20;

// ---- messages ---------------------------------------------------------------------------

// At most kShownUrlChars characters of `url`, control and non-ASCII bytes as '?'.
std::string ShownUrl(absl::string_view url) {
  std::string out;
  for (char ch : url.substr(0, kShownUrlChars)) {
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  }
  if (url.size() > kShownUrlChars) out += "...";
  return out;
}

// The subject of every error message: the URL asked for and, after a redirect, the hop.
struct Subject {
  std::string requested;
  std::string hop;  // empty on the first hop

  std::string Text() const {
    std::string s = absl::StrCat("media URL \"", ShownUrl(requested), "\"");
    if (!hop.empty()) absl::StrAppend(&s, " (redirected to \"", ShownUrl(hop), "\")");
    return s;
  }
};

// ---- curl handles -------------------------------------------------------------------------

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct UrlDeleter {
  void operator()(CURLU* h) const { curl_url_cleanup(h); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

absl::Status GlobalInit() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return absl::InternalError(absl::StrCat("libcurl initialisation failed: ",
                                            curl_easy_strerror(result)));
  }
  return absl::OkStatus();
}

// ---- URLs ---------------------------------------------------------------------------------

std::optional<std::string> UrlPart(CURLU* url, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, 0) != CURLUE_OK || text == nullptr) return std::nullopt;
  std::string out(text);
  curl_free(text);
  return out;
}

// One hop's URL, parsed once: curl fetches exactly what was checked (CURLOPT_CURLU).
struct HopUrl {
  UrlPtr handle;
  std::string url;   // normalized by curl
  std::string host;  // as in the URL ("[::1]" for IPv6 literals)
};

absl::StatusOr<HopUrl> ParseHopUrl(const std::string& url, const AddressPolicy& addresses,
                                   const Subject& subject) {
  if (url.size() > kMaxUrlChars) {
    return absl::InvalidArgumentError(absl::StrCat(subject.Text(), " is too long"));
  }
  HopUrl hop{UrlPtr(curl_url()), "", ""};
  if (!hop.handle) return absl::InternalError("out of memory parsing a media URL");
  if (curl_url_set(hop.handle.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    return absl::InvalidArgumentError(absl::StrCat(subject.Text(), " is not a valid URL"));
  }
  const std::string scheme =
      absl::AsciiStrToLower(UrlPart(hop.handle.get(), CURLUPART_SCHEME).value_or(""));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat(
        subject.Text(), " has scheme \"", ShownUrl(scheme), "\"; only http and https are allowed"));
  }
  if (UrlPart(hop.handle.get(), CURLUPART_USER) || UrlPart(hop.handle.get(), CURLUPART_PASSWORD) ||
      UrlPart(hop.handle.get(), CURLUPART_OPTIONS)) {
    return absl::InvalidArgumentError(
        absl::StrCat(subject.Text(), " must not contain user credentials (user@host)"));
  }
  hop.host = UrlPart(hop.handle.get(), CURLUPART_HOST).value_or("");
  hop.url = UrlPart(hop.handle.get(), CURLUPART_URL).value_or(url);
  if (hop.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(subject.Text(), " has no host"));
  }
  if (!addresses.HostAllowed(hop.host)) {
    return absl::PermissionDeniedError(
        absl::StrCat(subject.Text(), ": host is not on the allow-list; refused"));
  }
  return hop;
}

// ---- one transfer ---------------------------------------------------------------------------

// Why a callback stopped the transfer.
enum class Abort { kNone, kNotSuccess, kTooBig, kNotMedia, kCancelled, kDeadline };

// Shared with the curl callbacks of one transfer (all run on the Fetch thread).
struct TransferState {
  const AddressPolicy* addresses = nullptr;
  bool any_address = false;  // the host matches a host entry
  int64_t max_bytes = 0;
  absl::Time stop_at;
  const std::function<bool()>* cancelled = nullptr;
  CURL* easy = nullptr;

  int refused_addresses = 0;
  bool status_checked = false;
  std::string body;
  std::string kind;
  Abort abort = Abort::kNone;
};

// CURLOPT_OPENSOCKETFUNCTION: the policy check on the exact address curl will connect to.
curl_socket_t OpenSocket(void* clientp, curlsocktype /*purpose*/, struct curl_sockaddr* a) {
  auto* st = static_cast<TransferState*>(clientp);
  if (!st->any_address && !st->addresses->AddressAllowed(&a->addr, a->addrlen)) {
    ++st->refused_addresses;
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

// CURLOPT_WRITEFUNCTION: keeps a 2xx body within max_bytes, sniffs its first bytes; stops at
// once on any other status (redirect and error bodies are never read).
size_t OnBody(char* data, size_t size, size_t count, void* userp) {
  auto* st = static_cast<TransferState*>(userp);
  const size_t len = size * count;
  if (!st->status_checked) {
    long code = 0;
    curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &code);
    st->status_checked = true;
    if (code < 200 || code > 299) {
      st->abort = Abort::kNotSuccess;
      return 0;
    }
  }
  if (len > static_cast<uint64_t>(st->max_bytes) - st->body.size()) {
    st->abort = Abort::kTooBig;
    return 0;
  }
  st->body.append(data, len);
  if (st->kind.empty() && st->body.size() >= kMediaMagicBytes) {
    st->kind = MediaKindFromMagic(st->body);
    if (st->kind.empty()) {
      st->abort = Abort::kNotMedia;
      return 0;
    }
  }
  return len;
}

// True (and the reason recorded) when the caller cancelled or the deadline passed.
bool ShouldStop(TransferState* st) {
  bool cancelled = false;
  try {
    cancelled = *st->cancelled && (*st->cancelled)();
  } catch (...) {
    cancelled = true;  // no exception crosses libcurl
  }
  if (cancelled) {
    st->abort = Abort::kCancelled;
  } else if (absl::Now() >= st->stop_at) {
    st->abort = Abort::kDeadline;
  }
  return st->abort == Abort::kCancelled || st->abort == Abort::kDeadline;
}

// CURLOPT_XFERINFOFUNCTION: polls cancellation and the deadline during the transfer.
int OnProgress(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return ShouldStop(static_cast<TransferState*>(clientp)) ? 1 : 0;
}

long Millis(absl::Duration d) {
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)));
  return static_cast<long>(std::clamp<int64_t>(ms, 1, int64_t{24} * 3600 * 1000));
}

CURLcode Configure(CURL* e, const UrlFetchPolicy& p, TransferState* st, CURLU* url) {
  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, value);
  };
  const absl::Duration left = st->stop_at - absl::Now();
  set(CURLOPT_CURLU, url);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_PROXY, "");     // no proxy, environment variables ignored
  set(CURLOPT_NOPROXY, "*");
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_HTTP_CONTENT_DECODING, 0L);  // and no Accept-Encoding is sent
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  set(CURLOPT_USERAGENT, p.user_agent.c_str());
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(st->max_bytes));
  set(CURLOPT_CONNECTTIMEOUT_MS, Millis(std::min(absl::Seconds(p.connect_timeout_s), left)));
  set(CURLOPT_TIMEOUT_MS, Millis(left));
  if (p.low_speed_bytes > 0) {
    const double window_s = std::max(1.0, std::ceil(p.low_speed_window_s));
    set(CURLOPT_LOW_SPEED_TIME, static_cast<long>(window_s));
    const double rate = std::ceil(static_cast<double>(p.low_speed_bytes) / p.low_speed_window_s);
    set(CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(std::min(rate, 1e12)));
  }
  set(CURLOPT_OPENSOCKETFUNCTION, &OpenSocket);
  set(CURLOPT_OPENSOCKETDATA, st);
  set(CURLOPT_WRITEFUNCTION, &OnBody);
  set(CURLOPT_WRITEDATA, st);
  set(CURLOPT_XFERINFOFUNCTION, &OnProgress);
  set(CURLOPT_XFERINFODATA, st);
  set(CURLOPT_NOPROGRESS, 0L);
  return rc;
}

CURLcode DoneResult(CURLM* multi) {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg == CURLMSG_DONE) return msg->data.result;
  }
  return CURLE_FAILED_INIT;
}

// Runs the transfer on this thread, waking at least every kPollIntervalMs to poll
// cancellation and the deadline (curl_easy_perform would sleep up to a second).
CURLcode RunTransfer(CURL* easy, TransferState* st) {
  MultiPtr multi(curl_multi_init());
  if (!multi) return CURLE_OUT_OF_MEMORY;
  if (curl_multi_add_handle(multi.get(), easy) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode result = CURLE_FAILED_INIT;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(multi.get(), &running) != CURLM_OK) break;
    if (running == 0) {
      result = DoneResult(multi.get());
      break;
    }
    if (ShouldStop(st)) {
      result = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    if (curl_multi_poll(multi.get(), nullptr, 0, kPollIntervalMs, nullptr) != CURLM_OK) break;
  }
  curl_multi_remove_handle(multi.get(), easy);
  return result;
}

// ---- interpreting the outcome ------------------------------------------------------------------

// A finished hop: either a redirect to follow or the fetched media.
struct HopResult {
  std::optional<std::string> redirect;
  FetchedMedia media;
};

bool IsRedirect(long code) {
  return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

absl::Status NotMedia(const Subject& s) {
  return absl::InvalidArgumentError(
      absl::StrCat(s.Text(), " is not an image or video (unrecognised content)"));
}

absl::Status Timeout(CURL* e, const TransferState& st, const UrlFetchPolicy& p,
                     const Subject& s) {
  curl_off_t connect_us = 0;
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect_us);
  if (connect_us == 0) {
    return absl::DeadlineExceededError(absl::StrCat(s.Text(), ": timed out connecting"));
  }
  if (absl::Now() >= st.stop_at - absl::Milliseconds(50)) {
    return absl::DeadlineExceededError(
        absl::StrCat(s.Text(), ": timed out (total time limit or request deadline)"));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(s.Text(), ": download too slow (fewer than ", p.low_speed_bytes,
                   " bytes in ", p.low_speed_window_s, " s)"));
}

absl::Status CurlError(CURLcode rc, CURL* e, const TransferState& st, const UrlFetchPolicy& p,
                       const Subject& s) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return absl::InvalidArgumentError(absl::StrCat(s.Text(), ": unknown host"));
    case CURLE_COULDNT_CONNECT:
      if (st.refused_addresses > 0) {
        return absl::PermissionDeniedError(
            absl::StrCat(s.Text(), " resolves to a private address; refused"));
      }
      return absl::UnavailableError(absl::StrCat(s.Text(), ": could not connect"));
    case CURLE_OPERATION_TIMEDOUT:
      return Timeout(e, st, p, s);
    case CURLE_FILESIZE_EXCEEDED: {
      curl_off_t length = -1;
      curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      return absl::ResourceExhaustedError(
          absl::StrCat(s.Text(), " is ", length, " bytes, over the ", st.max_bytes,
                       "-byte limit"));
    }
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
      return absl::InternalError(absl::StrCat(s.Text(), ": ", curl_easy_strerror(rc)));
    default:
      return absl::UnavailableError(
          absl::StrCat(s.Text(), " could not be fetched: ", curl_easy_strerror(rc)));
  }
}

// An error recorded by a callback, if any.
std::optional<absl::Status> AbortStatus(const TransferState& st, const Subject& s) {
  switch (st.abort) {
    case Abort::kCancelled:
      return absl::CancelledError(absl::StrCat(s.Text(), ": fetch cancelled"));
    case Abort::kDeadline:
      return absl::DeadlineExceededError(
          absl::StrCat(s.Text(), ": timed out (total time limit or request deadline)"));
    case Abort::kTooBig:
      return absl::ResourceExhaustedError(
          absl::StrCat(s.Text(), " is larger than the ", st.max_bytes, "-byte limit"));
    case Abort::kNotMedia:
      return NotMedia(s);
    case Abort::kNone:
    case Abort::kNotSuccess:
      break;
  }
  return std::nullopt;
}

// The next hop of a redirect: the Location header, resolved against the hop's URL. Read from
// the stored headers (not CURLINFO_REDIRECT_URL, which curl only fills in for a transfer that
// ran to its end: the redirect's body is never read).
absl::StatusOr<HopResult> Redirect(CURL* e, long code, const HopUrl& hop, const Subject& s) {
  struct curl_header* location = nullptr;
  UrlPtr target(curl_url_dup(hop.handle.get()));
  if (curl_easy_header(e, "Location", 0, CURLH_HEADER, -1, &location) != CURLHE_OK ||
      location == nullptr || location->value == nullptr || *location->value == '\0' || !target ||
      curl_url_set(target.get(), CURLUPART_URL, location->value,
                   CURLU_NON_SUPPORT_SCHEME | CURLU_URLENCODE) != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.Text(), " answered HTTP ", code, " without a usable Location"));
  }
  HopResult result;
  result.redirect = UrlPart(target.get(), CURLUPART_URL);
  if (!result.redirect) return absl::InternalError("out of memory following a redirect");
  return result;
}

absl::StatusOr<HopResult> Interpret(CURL* e, CURLcode rc, TransferState* st,
                                    const UrlFetchPolicy& p, const HopUrl& hop,
                                    const Subject& s) {
  if (auto status = AbortStatus(*st, s)) return *status;
  long code = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  if (IsRedirect(code)) return Redirect(e, code, hop, s);
  if (code >= 300) {
    return absl::InvalidArgumentError(absl::StrCat(s.Text(), " answered HTTP ", code));
  }
  if (rc != CURLE_OK) return CurlError(rc, e, *st, p, s);
  if (code < 200) {
    return absl::UnavailableError(absl::StrCat(s.Text(), ": no valid HTTP answer"));
  }
  if (st->kind.empty()) st->kind = MediaKindFromMagic(st->body);
  if (st->kind.empty()) return NotMedia(s);
  HopResult result;
  char* content_type = nullptr;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &content_type);
  result.media.content_type = content_type ? content_type : "";
  result.media.bytes = std::move(st->body);
  result.media.final_url = hop.url;
  result.media.kind = st->kind;
  return result;
}

struct FetchContext {
  const UrlFetchPolicy& policy;
  const AddressPolicy& addresses;
  int64_t max_bytes;
  absl::Time stop_at;
  const std::function<bool()>& cancelled;
};

absl::StatusOr<HopResult> FetchHop(const FetchContext& ctx, const std::string& url,
                                   const Subject& s) {
  ASSIGN_OR_RETURN(HopUrl hop, ParseHopUrl(url, ctx.addresses, s));
  TransferState st;
  st.addresses = &ctx.addresses;
  st.any_address = ctx.addresses.HostAllowsPrivate(hop.host);
  st.max_bytes = ctx.max_bytes;
  st.stop_at = ctx.stop_at;
  st.cancelled = &ctx.cancelled;
  if (ShouldStop(&st)) return *AbortStatus(st, s);
  EasyPtr easy(curl_easy_init());
  if (!easy) return absl::InternalError("out of memory starting a media fetch");
  st.easy = easy.get();
  const CURLcode set = Configure(easy.get(), ctx.policy, &st, hop.handle.get());
  if (set != CURLE_OK) {
    return absl::InternalError(absl::StrCat("libcurl refused an option: ", curl_easy_strerror(set)));
  }
  const CURLcode rc = RunTransfer(easy.get(), &st);
  return Interpret(easy.get(), rc, &st, ctx.policy, hop, s);
}

absl::Status ValidatePolicy(const UrlFetchPolicy& p) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("media URL fetch policy: ", what));
  };
  if (p.max_redirects < 0 || p.max_redirects > kMaxRedirectsLimit) {
    return bad(absl::StrCat("max_redirects must be 0..", kMaxRedirectsLimit));
  }
  if (!(p.connect_timeout_s > 0) || !(p.total_timeout_s > 0) || std::isinf(p.total_timeout_s) ||
      std::isinf(p.connect_timeout_s)) {
    return bad("timeouts must be positive and finite");
  }
  if (p.low_speed_bytes > 0 && !(p.low_speed_window_s > 0 && p.low_speed_window_s < 86400)) {
    return bad("low_speed_window_s must be positive (below a day)");
  }
  for (char ch : p.user_agent) {
    if (ch < 0x20 || ch == 0x7f) return bad("user_agent has a control character");
  }
  return absl::OkStatus();
}

}  // namespace

std::string MediaKindFromMagic(absl::string_view head) {
  auto at = [head](size_t offset, absl::string_view magic) {
    return head.size() >= offset + magic.size() && head.substr(offset, magic.size()) == magic;
  };
  if (at(0, "\xFF\xD8\xFF")) return "jpeg";
  if (at(0, "\x89PNG\r\n\x1a\n")) return "png";
  if (at(0, "GIF87a") || at(0, "GIF89a")) return "gif";
  if (at(0, "RIFF") && at(8, "WEBP")) return "webp";
  if (at(0, "RIFF") && at(8, "AVI ")) return "avi";
  if (at(0, "BM") && at(6, absl::string_view("\0\0\0\0", 4))) return "bmp";
  if (at(0, absl::string_view("II*\0", 4)) || at(0, absl::string_view("MM\0*", 4))) return "tiff";
  if (at(0, "\x1a\x45\xdf\xa3")) return "matroska";
  if (at(4, "ftyp")) {
    if (at(8, "qt  ")) return "mov";
    if (at(8, "avif") || at(8, "avis")) return "avif";
    if (at(8, "heic") || at(8, "heix") || at(8, "mif1") || at(8, "msf1")) return "heif";
    return "mp4";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<UrlFetcher>> UrlFetcher::Create(UrlFetchPolicy policy) {
  RETURN_IF_ERROR(ValidatePolicy(policy));
  ASSIGN_OR_RETURN(AddressPolicy addresses, AddressPolicy::Create(policy.allow));
  RETURN_IF_ERROR(GlobalInit());
  return std::unique_ptr<UrlFetcher>(new UrlFetcher(std::move(policy), std::move(addresses)));
}

absl::StatusOr<FetchedMedia> UrlFetcher::Fetch(const std::string& url, int64_t max_bytes,
                                               absl::Time deadline,
                                               const std::function<bool()>& cancelled) const {
  Subject subject{url, ""};
  if (max_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(subject.Text(), ": max_bytes must be > 0"));
  }
  const absl::Time stop_at =
      std::min(deadline, absl::Now() + absl::Seconds(policy_.total_timeout_s));
  const FetchContext ctx{policy_, addresses_, max_bytes, stop_at, cancelled};
  for (int redirects = 0;; ++redirects) {
    ASSIGN_OR_RETURN(HopResult hop, FetchHop(ctx, subject.hop.empty() ? url : subject.hop,
                                             subject));
    if (!hop.redirect) return std::move(hop.media);
    if (redirects >= policy_.max_redirects) {
      return absl::InvalidArgumentError(absl::StrCat(
          Subject{url, ""}.Text(), ": too many redirects (more than ", policy_.max_redirects, ")"));
    }
    subject.hop = *std::move(hop.redirect);
  }
}

}  // namespace smolserve::net
