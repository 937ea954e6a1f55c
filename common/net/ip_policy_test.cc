#include "common/net/ip_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace smolserve::net {
namespace {

// A sockaddr_in or sockaddr_in6 for an address literal.
struct Addr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Addr MakeAddr(const std::string& text) {
  Addr a;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (inet_pton(AF_INET, text.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(80);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr), 1) << text;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(80);
  a.len = sizeof(sockaddr_in6);
  return a;
}

struct Case {
  const char* address;
  bool is_public;
};

// Each special range at (or next to) its edges, and public neighbours.
constexpr Case kCases[] = {
    // IPv4 public
    {"8.8.8.8", true},
    {"1.1.1.1", true},
    {"9.255.255.255", true},      // just below 10/8
    {"11.0.0.0", true},           // just above 10/8
    {"100.63.255.255", true},     // just below CGNAT
    {"100.128.0.0", true},        // just above CGNAT
    {"172.15.255.255", true},     // just below 172.16/12
    {"172.32.0.0", true},         // just above 172.16/12
    {"192.0.1.0", true},          // between 192.0.0/24 and 192.0.2/24
    {"192.167.255.255", true},    // just below 192.168/16
    {"198.17.255.255", true},     // just below 198.18/15
    {"198.20.0.0", true},         // just above 198.18/15
    {"223.255.255.255", true},    // last before multicast
    // IPv4 non-public
    {"0.0.0.0", false},           // unspecified
    {"0.255.255.255", false},     // "this network"
    {"10.0.0.0", false},
    {"10.255.255.255", false},
    {"100.64.0.0", false},        // CGNAT
    {"100.127.255.255", false},
    {"127.0.0.1", false},         // loopback
    {"127.255.255.254", false},
    {"169.254.169.254", false},   // link-local (cloud metadata)
    {"172.16.0.0", false},
    {"172.31.255.255", false},
    {"192.0.0.0", false},         // IETF protocol assignments
    {"192.0.2.1", false},         // TEST-NET-1
    {"192.88.99.1", false},       // 6to4 relay anycast
    {"192.168.0.1", false},
    {"192.168.255.255", false},
    {"198.18.0.0", false},        // benchmarking
    {"198.19.255.255", false},
    {"198.51.100.7", false},      // TEST-NET-2
    {"203.0.113.255", false},     // TEST-NET-3
    {"224.0.0.1", false},         // multicast
    {"239.255.255.255", false},
    {"240.0.0.1", false},         // reserved
    {"255.255.255.255", false},   // broadcast
    // IPv6 public
    {"2606:4700::1111", true},
    {"2001:4860:4860::8888", true},
    {"2001:200::1", true},        // just above 2001::/23
    {"2003::1", true},            // just above 6to4
    {"3ffe:ffff::1", true},       // just below 3fff::/20
    {"3fff:1000::", true},        // just above 3fff::/20
    // IPv6 non-public
    {"::", false},                // unspecified
    {"::1", false},               // loopback
    {"fe80::1", false},           // link-local
    {"febf:ffff::1", false},      // end of link-local
    {"fec0::1", false},           // site-local (deprecated)
    {"fc00::1", false},           // unique local
    {"fdff:ffff::1", false},
    {"ff02::1", false},           // multicast
    {"100::1", false},            // discard-only
    {"2001::1", false},           // Teredo
    {"2001:1ff:ffff::1", false},  // end of 2001::/23
    {"2001:db8::1", false},       // documentation
    {"2002:808:808::1", false},   // 6to4 (even of a public IPv4)
    {"3fff::1", false},           // documentation (RFC 9637)
    {"4000::1", false},           // outside 2000::/3
    {"1fff:ffff::1", false},      // just below 2000::/3
    {"64:ff9b:1::1", false},      // local-use NAT64
    // Embedded IPv4: judged by the IPv4 address
    {"::ffff:8.8.8.8", true},     // IPv4-mapped
    {"::ffff:127.0.0.1", false},
    {"::ffff:10.1.2.3", false},
    {"::ffff:169.254.169.254", false},
    {"::8.8.8.8", true},          // IPv4-compatible (deprecated)
    {"::127.0.0.1", false},
    {"::0.0.0.2", false},
    {"64:ff9b::8.8.8.8", true},   // NAT64
    {"64:ff9b::7f00:1", false},   // NAT64 of 127.0.0.1
    {"64:ff9b::192.168.1.1", false},
};

TEST(IsPublicAddressTest, Table) {
  for (const Case& c : kCases) {
    const Addr a = MakeAddr(c.address);
    EXPECT_EQ(IsPublicAddress(a.get()), c.is_public) << c.address;
  }
}

TEST(IsPublicAddressTest, NullAndOtherFamilies) {
  EXPECT_FALSE(IsPublicAddress(nullptr));
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(IsPublicAddress(reinterpret_cast<const sockaddr*>(&unix_addr)));
}

TEST(AddressPolicyTest, EmptyPolicyAllowsExactlyThePublicAddresses) {
  const auto policy = AddressPolicy::Create({});
  ASSERT_TRUE(policy.ok()) << policy.status();
  for (const Case& c : kCases) {
    const Addr a = MakeAddr(c.address);
    EXPECT_EQ(policy->AddressAllowed(a.get(), a.len), c.is_public) << c.address;
  }
}

TEST(AddressPolicyTest, ShortLengthOrNullIsRefused) {
  const AddressPolicy policy;
  const Addr a = MakeAddr("8.8.8.8");
  EXPECT_TRUE(policy.AddressAllowed(a.get(), a.len));
  EXPECT_FALSE(policy.AddressAllowed(a.get(), a.len - 1));
  EXPECT_FALSE(policy.AddressAllowed(nullptr, a.len));
  const Addr b = MakeAddr("2606:4700::1111");
  EXPECT_FALSE(policy.AddressAllowed(b.get(), sizeof(sockaddr_in)));
}

bool Allowed(const AddressPolicy& p, const std::string& address) {
  const Addr a = MakeAddr(address);
  return p.AddressAllowed(a.get(), a.len);
}

TEST(AddressPolicyTest, CidrAllowsLoopback) {
  const auto policy = AddressPolicy::Create({"127.0.0.1/32"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(Allowed(*policy, "127.0.0.1"));
  EXPECT_TRUE(Allowed(*policy, "::ffff:127.0.0.1"));  // same address, mapped
  EXPECT_TRUE(Allowed(*policy, "64:ff9b::127.0.0.1"));  // judged by the embedded IPv4
  EXPECT_FALSE(Allowed(*policy, "127.0.0.2"));
  EXPECT_FALSE(Allowed(*policy, "::1"));
  EXPECT_FALSE(Allowed(*policy, "10.0.0.1"));
  EXPECT_TRUE(Allowed(*policy, "8.8.8.8"));  // public addresses stay allowed
  EXPECT_FALSE(policy->has_host_entries());
}

TEST(AddressPolicyTest, CidrRanges) {
  const auto policy = AddressPolicy::Create({"10.0.0.0/8", "::1/128", "fd00::/8", "192.168.1.7"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(Allowed(*policy, "10.0.0.0"));
  EXPECT_TRUE(Allowed(*policy, "10.255.255.255"));
  EXPECT_TRUE(Allowed(*policy, "::ffff:10.9.9.9"));
  EXPECT_TRUE(Allowed(*policy, "::1"));
  EXPECT_TRUE(Allowed(*policy, "fd12:3456::1"));
  EXPECT_TRUE(Allowed(*policy, "192.168.1.7"));  // a bare address is a /32
  EXPECT_FALSE(Allowed(*policy, "192.168.1.8"));
  EXPECT_FALSE(Allowed(*policy, "fc00::1"));
  EXPECT_FALSE(Allowed(*policy, "127.0.0.1"));
  EXPECT_FALSE(Allowed(*policy, "172.16.0.1"));
}

TEST(AddressPolicyTest, OddPrefixLengths) {
  const auto policy = AddressPolicy::Create({"100.64.0.0/10", "fe80::/10", "0.0.0.0/0"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(Allowed(*policy, "100.127.1.1"));
  EXPECT_TRUE(Allowed(*policy, "febf::1"));
  EXPECT_FALSE(Allowed(*policy, "fec0::1"));
  EXPECT_TRUE(Allowed(*policy, "255.255.255.255"));  // 0.0.0.0/0: every IPv4 address
  EXPECT_FALSE(Allowed(*policy, "::1"));             // ... but not IPv6 loopback
}

TEST(AddressPolicyTest, BadEntriesAreRefusedByName) {
  const std::vector<std::string> bad = {
      "",           " ",           "10.0.0.0/33",     "::1/129",       "10.0.0.1/8",
      "10.0.0.0/",  "10.0.0.0/-1", "10.0.0.0/+8",     "10.0.0/8",      "1.2.3.4.5/32",
      "*",          "*.",          "a.*.example.com", "*example.com",  "exa mple.com",
      "host:8080",  "user@host",   "http://a.com",    "a.com/path",    "-bad.com",
      "a..b.com",   "[::1]:80",    "::1/12a",         "10.0.0.0/8/8",
  };
  for (const std::string& entry : bad) {
    const auto policy = AddressPolicy::Create({"127.0.0.1/32", entry});
    ASSERT_FALSE(policy.ok()) << "accepted \"" << entry << "\"";
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << entry;
    EXPECT_NE(policy.status().message().find("\"" + entry + "\""), std::string::npos)
        << policy.status();
  }
}

TEST(AddressPolicyTest, HostEntries) {
  const auto policy =
      AddressPolicy::Create({"images.example.com", "*.cdn.example.org", "Localhost.", "10.0.0.0/8"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->has_host_entries());
  EXPECT_TRUE(policy->HostAllowsPrivate("images.example.com"));
  EXPECT_TRUE(policy->HostAllowsPrivate("IMAGES.Example.COM."));
  EXPECT_TRUE(policy->HostAllowsPrivate("localhost"));
  EXPECT_TRUE(policy->HostAllowsPrivate("a.cdn.example.org"));
  EXPECT_TRUE(policy->HostAllowsPrivate("a.b.cdn.example.org"));
  EXPECT_FALSE(policy->HostAllowsPrivate("cdn.example.org"));  // wildcard: subdomains only
  EXPECT_FALSE(policy->HostAllowsPrivate("xcdn.example.org"));
  EXPECT_FALSE(policy->HostAllowsPrivate("example.com"));
  EXPECT_FALSE(policy->HostAllowsPrivate("images.example.com.evil.net"));
  EXPECT_FALSE(policy->HostAllowsPrivate("10.1.2.3"));  // IP literals never match host entries
  EXPECT_FALSE(policy->HostAllowsPrivate(""));

  // With host entries the list also restricts which hosts may be contacted.
  EXPECT_TRUE(policy->HostAllowed("images.example.com"));
  EXPECT_TRUE(policy->HostAllowed("x.cdn.example.org"));
  EXPECT_TRUE(policy->HostAllowed("10.1.2.3"));  // IP literal inside a CIDR entry
  EXPECT_FALSE(policy->HostAllowed("11.1.2.3"));
  EXPECT_FALSE(policy->HostAllowed("127.0.0.1"));
  EXPECT_FALSE(policy->HostAllowed("other.example.com"));
  EXPECT_FALSE(policy->HostAllowed("[::1]"));
}

TEST(AddressPolicyTest, WithoutHostEntriesEveryHostMayBeContacted) {
  const auto policy = AddressPolicy::Create({"127.0.0.1/32"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->HostAllowed("example.com"));
  EXPECT_TRUE(policy->HostAllowed("127.0.0.2"));  // the address check happens at connect time
  EXPECT_FALSE(policy->HostAllowsPrivate("example.com"));
  EXPECT_FALSE(policy->HostAllowsPrivate("localhost"));
}

TEST(AddressPolicyTest, BracketedIpv6LiteralHost) {
  const auto policy = AddressPolicy::Create({"images.example.com", "::1/128"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->HostAllowed("[::1]"));
  EXPECT_FALSE(policy->HostAllowed("[::2]"));
  EXPECT_FALSE(policy->HostAllowsPrivate("[::1]"));
}

}  // namespace
}  // namespace smolserve::net
