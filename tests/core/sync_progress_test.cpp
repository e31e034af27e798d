// The progress meter of long pushes and pulls (common/sync_progress): when it reports, what
// it reports, and the one-line form PostgreSQL shows in pg_stat_activity read back.
#include <gtest/gtest.h>

#include "common/sync_progress.hpp"

using deltasync::ParseProgressLine;
using deltasync::ProgressLine;
using deltasync::ProgressMeter;
using deltasync::ProgressState;
using deltasync::SyncProgress;

TEST(SyncProgress, ReportsOnlyAfterASecondThenEveryHalfSecond) {
  ProgressMeter m("http://h/nodes/n", "push", 10'000);
  EXPECT_FALSE(m.Advance(100, 10'200));
  EXPECT_FALSE(m.Advance(400, 10'999));
  EXPECT_FALSE(m.reporting());
  ASSERT_TRUE(m.Advance(500, 11'000));
  EXPECT_EQ(m.progress().done, 500u);
  EXPECT_DOUBLE_EQ(m.progress().rows_per_s, 500.0);
  EXPECT_FALSE(m.progress().eta_ms);  // nothing expected known
  m.Expect(2000);
  ASSERT_TRUE(m.progress().eta_ms);
  EXPECT_EQ(*m.progress().eta_ms, 3000);  // 1500 left at 500 rows/s
  EXPECT_FALSE(m.Advance(600, 11'400));
  EXPECT_TRUE(m.Advance(700, 11'500));
  EXPECT_FALSE(m.Advance(650, 12'000) && m.progress().done < 700);  // done never goes back
  EXPECT_EQ(m.progress().done, 700u);
  ASSERT_TRUE(m.Finish(true, 12'100));
  EXPECT_EQ(m.progress().state, ProgressState::kDone);
  EXPECT_EQ(m.progress().expected, 700u);  // the end: what was done is the total
  EXPECT_FALSE(m.progress().eta_ms);
}

TEST(SyncProgress, AShortCallReportsNothingNotEvenItsEnd) {
  ProgressMeter m("http://h/nodes/n", "pull", 0);
  EXPECT_FALSE(m.Advance(1000, 900));
  EXPECT_FALSE(m.Finish(true, 950));
  ProgressMeter f("http://h/nodes/n", "pull", 0);
  EXPECT_FALSE(f.Finish(false, 5000));
}

TEST(SyncProgress, ExpectedOnlyGrowsAndIsNeverBelowDone) {
  ProgressMeter m("h", "pull", 0);
  m.Expect(100);
  m.Expect(50);
  EXPECT_EQ(m.progress().expected, 100u);
  m.Advance(150, 2000);
  EXPECT_EQ(m.progress().expected, 150u);
  ASSERT_TRUE(m.Finish(false, 2100));
  EXPECT_EQ(m.progress().state, ProgressState::kFailed);
  EXPECT_EQ(m.progress().done, 150u);
}

TEST(SyncProgress, TheLineReadsBack) {
  ProgressMeter m("http://127.0.0.1:8080/nodes/shop1", "pull", 1'000'000);
  m.Expect(100'000);
  ASSERT_TRUE(m.Advance(40'000, 1'001'600));
  std::string line = ProgressLine(m.progress());
  EXPECT_EQ(line, "deltasync pull http://127.0.0.1:8080/nodes/shop1: 40000 of 100000 rows, 1600 ms, 25000 rows/s, ETA 2400 ms");
  auto back = ParseProgressLine(line, 1'001'600);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->hub, "http://127.0.0.1:8080/nodes/shop1");
  EXPECT_EQ(back->direction, "pull");
  EXPECT_EQ(back->done, 40'000u);
  EXPECT_EQ(back->expected, 100'000u);
  EXPECT_EQ(back->since_ms, 1'000'000);
  EXPECT_EQ(back->state, ProgressState::kRunning);
  EXPECT_EQ(back->eta_ms, 2400);
  ASSERT_TRUE(m.Finish(true, 1'002'000));
  auto done = ParseProgressLine(ProgressLine(m.progress()), 1'002'000);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, ProgressState::kDone);
  EXPECT_EQ(done->expected, 40'000u);
  SyncProgress unknown;
  unknown.hub = "h";
  unknown.direction = "push";
  unknown.done = 7;
  EXPECT_EQ(ProgressLine(unknown), "deltasync push h: 7 of ? rows, 0 ms, 0 rows/s");
  EXPECT_EQ(ParseProgressLine(ProgressLine(unknown), 0)->expected, 0u);
  for (const char* bad : {"", "SELECT deltasync_pull('x')", "deltasync push h: 1 of 2 rows",
                          "deltasync push h: 99999999999999999999 of 2 rows, 1 ms, 1 rows/s"})
    EXPECT_FALSE(ParseProgressLine(bad, 0)) << bad;
}
