#include "common/net/ip_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace smolserve::net {
namespace {

// An address in network byte order; IPv4 uses the first 4 bytes.
struct Ip {
  bool v4 = true;
  std::array<uint8_t, 16> b{};
};

struct V4Range {
  uint8_t a, b, c, d;
  int prefix;
};

// IPv4 ranges that are not globally routable unicast (IANA special-purpose registry, plus
// multicast and the reserved class E that ends with the broadcast address).
constexpr V4Range kNonPublicV4[] = {
    {0, 0, 0, 0, 8},        // "this network", incl. 0.0.0.0 (unspecified)
    {10, 0, 0, 0, 8},       // private
    {100, 64, 0, 0, 10},    // CGNAT (shared address space)
    {127, 0, 0, 0, 8},      // loopback
    {169, 254, 0, 0, 16},   // link-local (cloud metadata lives here)
    {172, 16, 0, 0, 12},    // private
    {192, 0, 0, 0, 24},     // IETF protocol assignments
    {192, 0, 2, 0, 24},     // documentation TEST-NET-1
    {192, 88, 99, 0, 24},   // 6to4 relay anycast (deprecated)
    {192, 168, 0, 0, 16},   // private
    {198, 18, 0, 0, 15},    // benchmarking
    {198, 51, 100, 0, 24},  // documentation TEST-NET-2
    {203, 0, 113, 0, 24},   // documentation TEST-NET-3
    {224, 0, 0, 0, 4},      // multicast
    {240, 0, 0, 0, 4},      // reserved, incl. 255.255.255.255 (broadcast)
};

struct V6Range {
  uint16_t g0, g1;  // the first two 16-bit groups
  int prefix;
};

// Non-public ranges inside 2000::/3 (everything outside 2000::/3 is non-public, apart from
// the embedded-IPv4 forms handled first).
constexpr V6Range kNonPublicV6InGlobal[] = {
    {0x2001, 0x0000, 23},  // IETF protocol assignments, incl. Teredo 2001::/32
    {0x2001, 0x0db8, 32},  // documentation
    {0x2002, 0x0000, 16},  // 6to4 (deprecated; embeds arbitrary IPv4)
    {0x3fff, 0x0000, 20},  // documentation (RFC 9637)
};

bool PrefixMatch(const uint8_t* a, const uint8_t* b, int prefix) {
  const int full = prefix / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool IsPublicV4(const uint8_t* b) {
  for (const V4Range& r : kNonPublicV4) {
    const uint8_t base[4] = {r.a, r.b, r.c, r.d};
    if (PrefixMatch(b, base, r.prefix)) return false;
  }
  return true;
}

bool IsPublicV6Native(const uint8_t* b) {
  if ((b[0] & 0xe0) != 0x20) return false;  // outside 2000::/3
  for (const V6Range& r : kNonPublicV6InGlobal) {
    const uint8_t base[4] = {static_cast<uint8_t>(r.g0 >> 8), static_cast<uint8_t>(r.g0),
                             static_cast<uint8_t>(r.g1 >> 8), static_cast<uint8_t>(r.g1)};
    if (PrefixMatch(b, base, r.prefix)) return false;
  }
  return true;
}

// The IPv4 address embedded in an IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96, but
// not :: or ::1) or NAT64 (64:ff9b::/96) IPv6 address.
std::optional<Ip> EmbeddedV4(const Ip& ip) {
  if (ip.v4) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kCompatible[12] = {};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  const uint8_t* b = ip.b.data();
  const bool compatible = std::memcmp(b, kCompatible, 12) == 0 &&
                          (b[12] | b[13] | b[14] | (b[15] & 0xfe)) != 0;
  if (!compatible && std::memcmp(b, kMapped, 12) != 0 && std::memcmp(b, kNat64, 12) != 0) {
    return std::nullopt;
  }
  Ip v4;
  std::memcpy(v4.b.data(), b + 12, 4);
  return v4;
}

bool IsPublicIp(const Ip& ip) {
  if (ip.v4) return IsPublicV4(ip.b.data());
  if (auto v4 = EmbeddedV4(ip)) return IsPublicV4(v4->b.data());
  return IsPublicV6Native(ip.b.data());
}

std::optional<Ip> FromSockaddr(const struct sockaddr* addr, socklen_t len) {
  if (addr == nullptr) return std::nullopt;
  Ip ip;
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(ip.b.data(), &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
    return ip;
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    ip.v4 = false;
    std::memcpy(ip.b.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    return ip;
  }
  return std::nullopt;
}

// "1.2.3.4", "::1", "[::1]" or "[fe80::1%eth0]" (the zone is ignored).
std::optional<Ip> ParseIpLiteral(absl::string_view s) {
  const bool bracketed = absl::ConsumePrefix(&s, "[");
  if (bracketed && !absl::ConsumeSuffix(&s, "]")) return std::nullopt;
  const size_t zone = s.find('%');
  const std::string text(s.substr(0, zone));
  Ip ip;
  if (!bracketed && inet_pton(AF_INET, text.c_str(), ip.b.data()) == 1) return ip;
  ip.v4 = false;
  if (inet_pton(AF_INET6, text.c_str(), ip.b.data()) == 1) return ip;
  return std::nullopt;
}

bool InCidr(const AddressPolicy::Cidr& c, const Ip& ip) {
  return c.v4 == ip.v4 && PrefixMatch(ip.b.data(), c.bytes.data(), c.prefix);
}

bool AnyCidrContains(const std::vector<AddressPolicy::Cidr>& cidrs, const Ip& ip) {
  const std::optional<Ip> embedded = EmbeddedV4(ip);
  for (const AddressPolicy::Cidr& c : cidrs) {
    if (InCidr(c, ip) || (embedded && InCidr(c, *embedded))) return true;
  }
  return false;
}

absl::Status BadEntry(absl::string_view entry, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("allow-list entry \"", entry, "\": ", why));
}

// A DNS name: labels of letters, digits, '-' and '_', 1-63 chars, no leading/trailing '-'.
bool IsHostName(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char ch : label) {
      if (!absl::ascii_isalnum(ch) && ch != '-' && ch != '_') return false;
    }
  }
  return true;
}

std::string NormalizeHost(absl::string_view host) {
  std::string h = absl::AsciiStrToLower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();
  return h;
}

absl::StatusOr<AddressPolicy::Cidr> ParseCidr(absl::string_view entry) {
  const size_t slash = entry.rfind('/');
  const absl::string_view addr_text = entry.substr(0, slash);
  const std::optional<Ip> ip = ParseIpLiteral(addr_text);
  if (!ip) return BadEntry(entry, "not an IP address or CIDR");
  const int max_prefix = ip->v4 ? 32 : 128;
  int prefix = max_prefix;
  if (slash != absl::string_view::npos) {
    const absl::string_view len_text = entry.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 3 || !absl::ascii_isdigit(len_text[0]) ||
        !absl::SimpleAtoi(len_text, &prefix) || prefix < 0 || prefix > max_prefix) {
      return BadEntry(entry, absl::StrCat("prefix length must be 0..", max_prefix));
    }
  }
  AddressPolicy::Cidr cidr{ip->v4, ip->b, prefix};
  AddressPolicy::Cidr network = cidr;
  network.bytes = {};
  for (int bit = 0; bit < prefix; ++bit) {
    network.bytes[bit / 8] |= cidr.bytes[bit / 8] & (0x80 >> (bit % 8));
  }
  if (network.bytes != cidr.bytes) {
    return BadEntry(entry, "address has bits set beyond the prefix length");
  }
  return cidr;
}

// Host entries are stored normalized; "*.example.com" becomes ".example.com".
absl::StatusOr<std::string> ParseHostEntry(absl::string_view entry) {
  std::string host = NormalizeHost(entry);
  std::string stored = host;
  if (absl::StartsWith(host, "*.")) {
    host = host.substr(2);
    stored = host.empty() ? "" : "." + host;
  }
  if (!IsHostName(host)) {
    return BadEntry(entry, "not a host name (\"images.example.com\", \"*.example.com\"), "
                           "IP address or CIDR");
  }
  return stored;
}

}  // namespace

absl::StatusOr<AddressPolicy> AddressPolicy::Create(const std::vector<std::string>& allow) {
  AddressPolicy policy;
  for (const std::string& raw : allow) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) return BadEntry(raw, "empty");
    if (absl::StrContains(entry, "://")) return BadEntry(entry, "a URL; give a host or a CIDR");
    if (entry.find('/') != absl::string_view::npos || ParseIpLiteral(entry)) {
      absl::StatusOr<Cidr> cidr = ParseCidr(entry);
      if (!cidr.ok()) return cidr.status();
      policy.cidrs_.push_back(*cidr);
      continue;
    }
    absl::StatusOr<std::string> host = ParseHostEntry(entry);
    if (!host.ok()) return host.status();
    policy.hosts_.push_back(*std::move(host));
  }
  return policy;
}

bool AddressPolicy::AddressAllowed(const struct sockaddr* addr, socklen_t len) const {
  const std::optional<Ip> ip = FromSockaddr(addr, len);
  if (!ip) return false;
  return IsPublicIp(*ip) || AnyCidrContains(cidrs_, *ip);
}

bool AddressPolicy::HostAllowsPrivate(absl::string_view host) const {
  if (ParseIpLiteral(host)) return false;
  const std::string h = NormalizeHost(host);
  if (h.empty()) return false;
  for (const std::string& entry : hosts_) {
    if (entry.front() == '.') {
      if (h.size() > entry.size() && absl::EndsWith(h, entry)) return true;
    } else if (h == entry) {
      return true;
    }
  }
  return false;
}

bool AddressPolicy::HostAllowed(absl::string_view host) const {
  if (hosts_.empty() || HostAllowsPrivate(host)) return true;
  const std::optional<Ip> ip = ParseIpLiteral(host);
  return ip && AnyCidrContains(cidrs_, *ip);
}

bool IsPublicAddress(const struct sockaddr* addr) {
  if (addr == nullptr) return false;
  const socklen_t len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const std::optional<Ip> ip = FromSockaddr(addr, len);
  return ip && IsPublicIp(*ip);
}

}  // namespace smolserve::net
