// Downloads one http(s) URL given by a stranger into memory, under a strict policy (libcurl).
//
// Safety: every hop's URL must be http or https without userinfo, and its host must pass
// AddressPolicy::HostAllowed. Every address curl is about to connect to is checked by an
// open-socket callback (AddressPolicy::AddressAllowed, or any address for a host that
// AddressPolicy::HostAllowsPrivate opens); the socket is then connected to exactly that address,
// so a DNS answer that changes between check and connect (DNS rebinding) cannot slip through.
// Redirects (301/302/303/307/308) are followed by this class, not by curl, with the same checks
// on every hop and a fresh connection for each. No proxy (environment proxies ignored), no
// cookies, no credentials, no Accept-Encoding and no content decoding (no decompression bombs).
// Size, time and rate limits are enforced while the bytes arrive, and the body must start like
// an image or video (checked on its first bytes, before the rest is downloaded).
//
// Errors (messages are meant for API users: they name the requested URL, truncated to about
// 100 characters, and never internal names or the addresses a host resolved to):
//   INVALID_ARGUMENT   malformed URL; scheme other than http/https; userinfo in the URL;
//                      unknown host; the origin answered 4xx/5xx ("... answered HTTP 404") or a
//                      non-redirect 3xx; a redirect without a usable Location; more than
//                      max_redirects redirects ("too many redirects"); content that is not a
//                      recognised image or video.
//   PERMISSION_DENIED  the host, or a redirect's host, is not allowed by the allow-list, or it
//                      resolves to an address outside the policy ("... resolves to a private
//                      address; refused").
//   RESOURCE_EXHAUSTED the body is larger than max_bytes (by Content-Length or while arriving).
//   DEADLINE_EXCEEDED  connect timeout, total timeout or deadline, or a too slow transfer.
//   UNAVAILABLE        connection refused or reset, TLS failure, malformed HTTP answer.
//   CANCELLED          the `cancelled` callback returned true (or threw).
//   INTERNAL           libcurl could not be set up (out of memory).
//
// Threads: UrlFetcher is immutable after Create; Fetch may be called from any number of threads
// at once (each call has its own curl handles and blocks its calling thread).
#ifndef SMOLSERVE_COMMON_NET_URL_FETCHER_H_
#define SMOLSERVE_COMMON_NET_URL_FETCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/ip_policy.h"

namespace smolserve::net {

struct UrlFetchPolicy {
  std::vector<std::string> allow;  // --media_url_allow entries (hosts or CIDRs), AddressPolicy
  int max_redirects = 3;           // redirects followed per Fetch (0: none)
  double connect_timeout_s = 5;    // per connection (DNS + TCP + TLS)
  double total_timeout_s = 30;     // whole transfer, redirects included
  // Abort when fewer than low_speed_bytes arrive in low_speed_window_s seconds, i.e. the average
  // rate stays under low_speed_bytes / low_speed_window_s bytes per second for a whole window
  // (curl's LOW_SPEED_LIMIT/TIME; the window is rounded up to whole seconds). Defeats
  // slow-loris servers. low_speed_bytes <= 0 turns the check off.
  int64_t low_speed_bytes = 1024;
  double low_speed_window_s = 10;
  std::string user_agent = "smolserve-media-fetch/1";
};

struct FetchedMedia {
  std::string bytes;
  std::string content_type;  // as the server sent it (informative only)
  std::string final_url;     // after redirects
  std::string kind;          // MediaKindFromMagic(bytes): "jpeg", "png", "mp4", ...
};

class UrlFetcher {
 public:
  // Validates the policy and initialises libcurl once per process (curl_global_init under
  // std::call_once). INVALID_ARGUMENT for a bad allow-list entry (naming it), max_redirects
  // outside 0..20, non-positive or infinite timeouts, a low-speed window outside (0, 1 day)
  // while the check is on, or a user agent with control characters; INTERNAL when libcurl
  // cannot be initialised.
  static absl::StatusOr<std::unique_ptr<UrlFetcher>> Create(UrlFetchPolicy policy);

  // Downloads `url` (following up to max_redirects redirects) and returns the body of the
  // final 2xx answer. `max_bytes` (> 0) bounds the body: a larger Content-Length is refused
  // before any body byte is read, and without one the transfer stops as soon as a received
  // chunk would exceed it; never more than max_bytes are held. `deadline` is absolute; the
  // transfer stops at min(deadline, start + total_timeout_s). `cancelled` (may be empty) is
  // polled on the calling thread at least every 100 ms while the transfer runs; when it returns
  // true the transfer is aborted with CANCELLED. Errors: see the file comment; INVALID_ARGUMENT
  // also for max_bytes <= 0. Thread-safe; blocks until done.
  absl::StatusOr<FetchedMedia> Fetch(const std::string& url, int64_t max_bytes,
                                     absl::Time deadline,
                                     const std::function<bool()>& cancelled) const;

  const UrlFetchPolicy& policy() const { return policy_; }

 private:
  UrlFetcher(UrlFetchPolicy policy, AddressPolicy addresses)
      : policy_(std::move(policy)), addresses_(std::move(addresses)) {}

  const UrlFetchPolicy policy_;
  const AddressPolicy addresses_;
};

// The media kind of a body from its first bytes (up to 12 are looked at): "jpeg", "png",
// "gif", "webp", "bmp", "tiff", "avif", "heif" (still images in ISO base media), "mp4" (other
// ISO base media, incl. 3gp/m4v), "mov" (QuickTime), "avi", "matroska" (also WebM); "" when
// none matches (also when too few bytes are given). Whether a kind can be decoded is the
// caller's business.
std::string MediaKindFromMagic(absl::string_view head);

// How many leading bytes MediaKindFromMagic needs to decide.
inline constexpr size_t kMediaMagicBytes = 12;

}  // namespace smolserve::net

#endif  // SMOLSERVE_COMMON_NET_URL_FETCHER_H_
