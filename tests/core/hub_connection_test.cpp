// The hub's per-address connection counting (server/hub_connection.cpp): which addresses
// count as one, and the bound itself. The connections themselves are tested against a real
// `deltasync serve` (tests/e2e/hub_limits_test.cpp).
#include "server/hub_connection.hpp"

#include <gtest/gtest.h>

using deltasync::hub::AddressCounts;
using deltasync::hub::AddressKey;

TEST(HubConnections, AnIpv6ClientCountsByItsSlash64AndIpv4ByItsAddress) {
  EXPECT_EQ(AddressKey("203.0.113.7"), "203.0.113.7");
  EXPECT_NE(AddressKey("203.0.113.7"), AddressKey("203.0.113.8"));
  // An IPv4 client of a dual-stack socket is its IPv4 address.
  EXPECT_EQ(AddressKey("::ffff:203.0.113.7"), "203.0.113.7");
  // One subscriber's /64 is one address, whatever its interface identifiers.
  EXPECT_EQ(AddressKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  EXPECT_EQ(AddressKey("2001:db8:1:2::1"), AddressKey("2001:db8:1:2:ffff::9"));
  EXPECT_NE(AddressKey("2001:db8:1:2::1"), AddressKey("2001:db8:1:3::1"));
}

TEST(HubConnections, TheBoundCountsConnectionsBeingServed) {
  AddressCounts counts;
  EXPECT_TRUE(counts.Enter("a", 2));
  EXPECT_TRUE(counts.Enter("a", 2));
  EXPECT_FALSE(counts.Enter("a", 2));  // the third at once
  EXPECT_TRUE(counts.Enter("b", 2));   // another address is not affected
  EXPECT_EQ(counts.Count("a"), 2u);
  counts.Leave("a");
  EXPECT_TRUE(counts.Enter("a", 2));  // a slot freed is taken again
  counts.Leave("a");
  counts.Leave("a");
  EXPECT_EQ(counts.Count("a"), 0u);
  EXPECT_TRUE(counts.Enter("c", 0));  // 0: no bound
  EXPECT_FALSE(counts.Enter("z", 1) && counts.Enter("z", 1));
}
