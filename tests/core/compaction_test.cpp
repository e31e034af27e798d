// common/compaction: how a site ties a hub's frontier to its own versions (marks), and the
// bound every hub (and direct_up_to) leaves for compaction.
#include "common/compaction.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

using namespace deltasync;

TEST(CompactionMarks, AMarkIsConfirmedOnlyByAFrontierAtOrPastItsSequence) {
  HubFrontier h;
  // Not the last page: no mark.
  h = AdvanceFrontier(h, PulledPage{0, false, 50}, 10);
  EXPECT_EQ(h.mark_ver, 0);
  EXPECT_EQ(h.frontier, 0);
  // The last page of a pull that started with push cursor 50, ending at sequence 20.
  h = AdvanceFrontier(h, PulledPage{5, true, 50}, 20);
  EXPECT_EQ(h.mark_ver, 50);
  EXPECT_EQ(h.mark_seq, 20);
  EXPECT_EQ(h.safe_ver, 0);
  // A later pull does not replace the pending mark (it would never be reached) ...
  h = AdvanceFrontier(h, PulledPage{19, true, 80}, 30);
  EXPECT_EQ(h.mark_ver, 50);
  EXPECT_EQ(h.mark_seq, 20);
  EXPECT_EQ(h.safe_ver, 0);
  EXPECT_EQ(h.frontier, 19);
  // ... until a frontier reaches 20: confirmed, and this last page makes the next mark.
  h = AdvanceFrontier(h, PulledPage{20, true, 90}, 40);
  EXPECT_EQ(h.safe_ver, 50);
  EXPECT_EQ(h.mark_ver, 90);
  EXPECT_EQ(h.mark_seq, 40);
  // A frontier that falls (a new site joined at 0) confirms nothing more, keeps what was.
  h = AdvanceFrontier(h, PulledPage{0, true, 95}, 41);
  EXPECT_EQ(h.safe_ver, 50);
  EXPECT_EQ(h.frontier, 0);
  // An answer without a frontier (an older hub) changes nothing.
  HubFrontier same = AdvanceFrontier(h, PulledPage{-1, true, 200}, 300);
  EXPECT_EQ(same.safe_ver, h.safe_ver);
  EXPECT_EQ(same.mark_ver, h.mark_ver);
  EXPECT_EQ(same.frontier, h.frontier);
}

TEST(CompactionMarks, AnAnswerCanConfirmItsOwnMark) {
  // Every other site already past the end, and this page empty: the frontier is its since.
  HubFrontier h = AdvanceFrontier(HubFrontier{}, PulledPage{40, true, 12}, 40);
  EXPECT_EQ(h.safe_ver, 12);
  EXPECT_EQ(h.mark_ver, 0);
  // A push cursor not past what is safe makes no mark.
  h = AdvanceFrontier(h, PulledPage{40, true, 12}, 40);
  EXPECT_EQ(h.mark_ver, 0);
}

TEST(CompactionBound, EveryHubAndDirectUpToHoldIt) {
  EXPECT_EQ(CompactionBound({}, {}).up_to, 0);
  EXPECT_EQ(CompactionBound({}, {}).held_by, "no hub");
  CompactOptions direct;
  direct.direct_up_to = 70;
  EXPECT_EQ(CompactionBound({}, direct).up_to, 70);
  std::vector<HubCoverage> hubs = {{"h1", 100, HubFrontier{5, 0, 0, 60}},
                                   {"h2", 40, HubFrontier{5, 0, 0, 90}}};
  CompactBound b = CompactionBound(hubs, {});
  EXPECT_EQ(b.up_to, 40);  // h2's push cursor went back (a new store): held there
  EXPECT_EQ(b.held_by, "h2");
  hubs[1].push_cursor = 100;
  b = CompactionBound(hubs, {});
  EXPECT_EQ(b.up_to, 60);
  EXPECT_EQ(b.held_by, "h1");
  direct.direct_up_to = 30;
  EXPECT_EQ(CompactionBound(hubs, direct).up_to, 30);
  EXPECT_EQ(CompactionBound(hubs, direct).held_by, "direct_up_to");
  // A hub never heard a frontier from: nothing.
  hubs.push_back({"h3", 100, HubFrontier{}});
  EXPECT_EQ(CompactionBound(hubs, {}).up_to, 0);
  EXPECT_EQ(CompactionBound(hubs, {}).held_by, "h3");
}

TEST(CompactionOptions, ParsesAndRefuses) {
  EXPECT_FALSE(ParseCompactOptions("").direct_up_to);
  EXPECT_FALSE(ParseCompactOptions("{}").direct_up_to);
  EXPECT_EQ(*ParseCompactOptions("{\"direct_up_to\": 9}").direct_up_to, 9);
  for (const char* bad : {"{\"direct_up_to\": 1.5}", "{\"direct_up_to\": -2}", "{\"x\": 1}", "3", "{"})
    EXPECT_THROW(ParseCompactOptions(bad), Error) << bad;
}
