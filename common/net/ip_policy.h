// Which hosts and addresses an outbound fetch of a stranger's URL may reach (SSRF defence).
//
// The rule has two levels:
//  - Address level, checked on the exact address a socket is about to connect to: globally
//    routable unicast addresses are always allowed; every other range (private, loopback,
//    link-local, CGNAT, multicast, reserved, documentation, benchmarking, unspecified,
//    broadcast, unique-local, discard, 6to4, Teredo/IETF...) only when a CIDR entry of the
//    allow-list contains the address. IPv6 forms that embed an IPv4 address (IPv4-mapped
//    ::ffff:0:0/96, IPv4-compatible ::/96 and NAT64 64:ff9b::/96) are judged by the embedded
//    IPv4 address, and an IPv4 CIDR entry contains them when it contains that address.
//  - Host level, checked on the host of every URL before connecting: host entries of the
//    allow-list ("images.example.com", "*.example.com") name hosts that may connect to any
//    address, private ones included (the operator trusts DNS for those names). When the list
//    has at least one host entry it is also a restriction: only hosts matching a host entry,
//    or IP literals inside a CIDR entry, may be contacted. Without host entries every host may
//    be contacted, subject to the address level.
//
// Threads: an AddressPolicy is immutable after Create; every method is const and may be called
// from any thread concurrently.
#ifndef SMOLSERVE_COMMON_NET_IP_POLICY_H_
#define SMOLSERVE_COMMON_NET_IP_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smolserve::net {

// A parsed allow-list: host names ("images.example.com", or "*.example.com" for any subdomain,
// not the bare domain) and CIDRs ("10.0.0.0/8", "127.0.0.1/32", "::1/128"; a bare address is
// the same as a full-length prefix).
class AddressPolicy {
 public:
  // A CIDR entry: an IPv4 (first 4 bytes used) or IPv6 network, host bits zero.
  struct Cidr {
    bool v4 = true;
    std::array<uint8_t, 16> bytes{};
    int prefix = 0;
  };

  // An empty policy: public addresses only, every host may be contacted.
  AddressPolicy() = default;

  // Parses entries as given on the command line (--media_url_allow). Host names are matched
  // case-insensitively, a trailing dot is ignored. INVALID_ARGUMENT naming the bad entry for:
  // an empty entry, a scheme/port/path/userinfo in it, an invalid host name or wildcard
  // ("*", "*.", "a.*.com"), a bad prefix length or an address with bits set beyond its prefix
  // ("10.0.0.1/8").
  static absl::StatusOr<AddressPolicy> Create(const std::vector<std::string>& allow);

  // Whether a connection to this resolved address is allowed: public unicast addresses always;
  // the other ranges (see the file comment) only when a CIDR entry contains it. False for a
  // null address, a family other than AF_INET/AF_INET6, or a `len` too short for the family.
  bool AddressAllowed(const struct sockaddr* addr, socklen_t len) const;

  // Whether the URL host `host` matches a host entry, which opens every address (private ones
  // included) to connections made for that host. `host` is a URL host as written (case and a
  // trailing dot ignored; an IP literal never matches a host entry).
  bool HostAllowsPrivate(absl::string_view host) const;

  // Whether the URL host `host` may be contacted at all: always when there are no host
  // entries; otherwise only when it matches a host entry or is an IP literal ("10.1.2.3",
  // "[fd00::1]") that a CIDR entry contains. Connections still pass AddressAllowed unless
  // HostAllowsPrivate(host).
  bool HostAllowed(absl::string_view host) const;

  // Whether the list has at least one host entry (and so restricts the hosts contacted).
  bool has_host_entries() const { return !hosts_.empty(); }

 private:
  // Lower-case names; "*.example.com" is stored as ".example.com".
  std::vector<std::string> hosts_;
  std::vector<Cidr> cidrs_;
};

// True for globally routable unicast addresses: IPv4 outside the special ranges, IPv6 inside
// 2000::/3 outside its special ranges, and embedded-IPv4 IPv6 forms whose IPv4 address is
// public. False for null or an unknown family. `addr` must point at a sockaddr_in (AF_INET)
// or sockaddr_in6 (AF_INET6).
bool IsPublicAddress(const struct sockaddr* addr);

}  // namespace smolserve::net

#endif  // SMOLSERVE_COMMON_NET_IP_POLICY_H_
