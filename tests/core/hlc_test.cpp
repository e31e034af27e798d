// Hybrid logical clock: monotonic per site, advanced by remote clocks, drift refused.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "common/error.hpp"
#include "common/hlc.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::ThrowsDeltasync;

TEST(Hlc, LayoutIs48BitsMillisAnd16BitsCounter) {
  EXPECT_EQ(kHlcLogicalBits, 16);
  EXPECT_EQ(HlcFromMillis(1), uint64_t{65536});
  EXPECT_EQ(HlcMillis(HlcFromMillis(1700000000123)), uint64_t{1700000000123});
  EXPECT_EQ(HlcMillis(HlcFromMillis(42) | 0xffff), uint64_t{42});
  EXPECT_EQ(kDefaultMaxClockDriftMs, uint64_t{300000});
}

RC_GTEST_PROP(Hlc, MillisRoundTrip, ()) {
  uint64_t ms = *rc::gen::inRange<uint64_t>(0, uint64_t{1} << 48);
  uint16_t logical = *rc::gen::arbitrary<uint16_t>();
  RC_ASSERT(HlcMillis(HlcFromMillis(ms)) == ms);
  RC_ASSERT(HlcMillis(HlcFromMillis(ms) | logical) == ms);
  RC_ASSERT((HlcFromMillis(ms) & 0xffff) == 0u);
}

TEST(Hlc, WallClockIsPlausible) {
  uint64_t a = WallClockMillis();
  uint64_t b = WallClockMillis();
  EXPECT_GT(a, uint64_t{1577836800000});  // after 2020-01-01
  EXPECT_LT(a, uint64_t{1} << 47);          // fits the 48-bit field with room
  EXPECT_GE(b + 1000, a);                   // does not jump back by a second between two reads
}

TEST(Hlc, FreshClockFollowsTheWallClock) {
  HlcClock c;
  EXPECT_EQ(c.Last(), 0u);
  EXPECT_EQ(c.Now(1000), HlcFromMillis(1000));
  EXPECT_EQ(c.Last(), HlcFromMillis(1000));
  EXPECT_EQ(c.Now(1001), HlcFromMillis(1001));  // a moving wall clock resets the counter
  EXPECT_EQ(c.Now(5000), HlcFromMillis(5000));
}

TEST(Hlc, StandingStillCountsOn) {
  HlcClock c;
  uint64_t prev = c.Now(1000);
  for (int k = 1; k < 1000; ++k) {
    uint64_t t = c.Now(1000);
    ASSERT_GT(t, prev);
    EXPECT_EQ(HlcMillis(t), 1000u);
    EXPECT_EQ(t & 0xffff, static_cast<uint64_t>(k));
    prev = t;
  }
}

TEST(Hlc, BackwardsWallClockStaysMonotonic) {
  HlcClock c;
  uint64_t t1 = c.Now(10000);
  uint64_t t2 = c.Now(5000);  // NTP stepped the clock back
  uint64_t t3 = c.Now(1);
  uint64_t t4 = c.Now(0);
  EXPECT_GT(t2, t1);
  EXPECT_GT(t3, t2);
  EXPECT_GT(t4, t3);
  EXPECT_EQ(HlcMillis(t4), 10000u);  // the physical part never goes back
  uint64_t t5 = c.Now(10001);       // wall clock catches up: physical time again
  EXPECT_EQ(t5, HlcFromMillis(10001));
}

TEST(Hlc, CounterCarriesIntoMillis) {
  HlcClock c;
  c.Observe(HlcFromMillis(7) | 0xfffe);
  uint64_t a = c.Now(7);
  EXPECT_EQ(a, HlcFromMillis(7) | 0xffff);
  uint64_t b = c.Now(7);
  EXPECT_GT(b, a);
  EXPECT_EQ(b, HlcFromMillis(8));  // the 16-bit counter overflowed into the millisecond part
  EXPECT_EQ(HlcMillis(b), 8u);
  EXPECT_GT(c.Now(3), b);
}

TEST(Hlc, ObserveAdvancesPastRemote) {
  HlcClock c;
  c.Now(1000);
  uint64_t remote = HlcFromMillis(50000) | 17;
  c.Observe(remote);
  EXPECT_EQ(c.Last(), remote);
  uint64_t t = c.Now(1001);  // our wall clock is behind the remote's
  EXPECT_GT(t, remote);
  EXPECT_EQ(t, remote + 1);
  // An older remote clock does not move us back.
  c.Observe(HlcFromMillis(10));
  EXPECT_EQ(c.Last(), t);
  EXPECT_GT(c.Now(1002), t);
  // Observing exactly our last value is a no-op.
  uint64_t last = c.Last();
  c.Observe(last);
  EXPECT_EQ(c.Last(), last);
}

TEST(Hlc, ObserveThenWallClockAheadUsesWall) {
  HlcClock c;
  c.Observe(HlcFromMillis(100) | 5);
  EXPECT_EQ(c.Now(200), HlcFromMillis(200));
}

// Any interleaving of local ticks (with arbitrary, even backwards wall clocks) and remote
// observations: every Now() exceeds every earlier Now() and every earlier Observe()d clock,
// and never falls below the wall clock.
RC_GTEST_PROP(Hlc, MonotonicUnderAnySchedule, ()) {
  struct Op {
    bool observe;
    uint64_t v;
  };
  auto gen_op = rc::gen::build<Op>(
      rc::gen::set(&Op::observe, rc::gen::arbitrary<bool>()),
      rc::gen::set(&Op::v, rc::gen::weightedOneOf<uint64_t>({
                               {3, rc::gen::inRange<uint64_t>(0, 100)},
                               {1, rc::gen::inRange<uint64_t>(0, uint64_t{1} << 46)},
                           })));
  std::vector<Op> ops = *rc::gen::container<std::vector<Op>>(gen_op);
  HlcClock c;
  uint64_t high = 0;  // the greatest clock issued or observed so far
  bool any = false;
  for (const Op& op : ops) {
    if (op.observe) {
      uint64_t remote = HlcFromMillis(op.v) | (op.v & 0xffff);
      c.Observe(remote);
      if (remote > high) high = remote;
      RC_ASSERT(c.Last() == high);
    } else {
      uint64_t t = c.Now(op.v);
      if (any || high > 0) RC_ASSERT(t > high);
      RC_ASSERT(t >= HlcFromMillis(op.v));
      high = t;
      any = true;
      RC_ASSERT(c.Last() == t);
    }
  }
}

TEST(HlcDrift, AcceptsAtTheLimit) {
  const uint64_t wall = 1700000000000;
  const uint64_t max = kDefaultMaxClockDriftMs;
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(wall + max), wall, max));
  // The logical counter does not count as time.
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(wall + max) | 0xffff, wall, max));
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(wall), wall, max));
  EXPECT_NO_THROW(CheckClockDrift(0, wall, max));                     // no clock at all
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(1), wall, max));      // far in the past is fine
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(wall + 5), wall, 5));
  EXPECT_NO_THROW(CheckClockDrift(HlcFromMillis(wall), wall, 0));
}

TEST(HlcDrift, RefusesBeyondTheLimit) {
  const uint64_t wall = 1700000000000;
  const uint64_t max = kDefaultMaxClockDriftMs;
  EXPECT_TRUE(ThrowsDeltasync([&] { CheckClockDrift(HlcFromMillis(wall + max + 1), wall, max); },
                              ErrorCode::kClockDrift, "clock drift"));
  EXPECT_TRUE(ThrowsDeltasync([&] { CheckClockDrift(HlcFromMillis(wall + 1), wall, 0); }, ErrorCode::kClockDrift));
  EXPECT_TRUE(ThrowsDeltasync([&] { CheckClockDrift(HlcFromMillis(wall + 3600000), wall, max); },
                              ErrorCode::kClockDrift, "3600000 ms ahead"));
  // The message names the limit so the user knows which setting to change.
  EXPECT_TRUE(ThrowsDeltasync([&] { CheckClockDrift(HlcFromMillis(wall + max + 1), wall, max); },
                              ErrorCode::kClockDrift, "300000"));
}

TEST(HlcDrift, HugeLimitAcceptsEverything) {
  // A limit so large that wall + limit overflows must mean "no limit", not "refuse all".
  const uint64_t wall = 1700000000000;
  const uint64_t remote = HlcFromMillis(wall + 1000);
  EXPECT_NO_THROW(CheckClockDrift(remote, wall, std::numeric_limits<uint64_t>::max()));
  EXPECT_NO_THROW(CheckClockDrift(remote, wall, std::numeric_limits<uint64_t>::max() - wall + 1));
  EXPECT_NO_THROW(CheckClockDrift(std::numeric_limits<uint64_t>::max(), wall, std::numeric_limits<uint64_t>::max()));
}

RC_GTEST_PROP(HlcDrift, RefusedExactlyWhenAheadByMoreThanTheLimit, ()) {
  uint64_t wall = *rc::gen::inRange<uint64_t>(0, uint64_t{1} << 45);
  uint64_t max = *rc::gen::inRange<uint64_t>(0, uint64_t{1} << 30);
  int64_t delta = *rc::gen::inRange<int64_t>(-(int64_t{1} << 31), int64_t{1} << 31);
  if (delta < 0 && static_cast<uint64_t>(-delta) > wall) delta = -static_cast<int64_t>(wall);
  uint64_t remote_ms = static_cast<uint64_t>(static_cast<int64_t>(wall) + delta);
  uint64_t remote = HlcFromMillis(remote_ms) | *rc::gen::arbitrary<uint16_t>();
  bool refused = false;
  try {
    CheckClockDrift(remote, wall, max);
  } catch (const Error& e) {
    refused = true;
    RC_ASSERT(std::string(e.what()).rfind("deltasync: ", 0) == 0);
    RC_ASSERT(e.code() == ErrorCode::kClockDrift);
  }
  RC_ASSERT(refused == (delta > 0 && static_cast<uint64_t>(delta) > max));
}

}  // namespace
}  // namespace deltasync
