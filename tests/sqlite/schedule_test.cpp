// deltasync_schedule / deltasync_unschedule on SQLite: stored in the database, replaced by a
// second call, shown in deltasync_status() without the token, bad input refused with nothing
// stored.
#include <gtest/gtest.h>

#include <cstdio>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

int64_t ScheduleCount(Site& s) { return s.Int("SELECT count(*) FROM deltasync_schedules"); }

std::string Field(Site& s, const std::string& doc, const std::string& path) {
  return s.Text("SELECT json_extract(?1, ?2)", {Value::Text(doc), Value::Text(path)});
}

}  // namespace

TEST(Schedule, StoredAndReplacedAndShownWithoutToken) {
  std::string path = ::testing::TempDir() + "/schedule_test.db";
  std::remove(path.c_str());
  {
    Site s(path);
    std::string r = s.Text(
        "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/shop', '{\"token\": \"s3cret\", \"interval_ms\": 500}')");
    EXPECT_EQ(Field(s, r, "$.hub"), "http://127.0.0.1:9/nodes/shop");
    EXPECT_EQ(Field(s, r, "$.interval_ms"), "500");
    EXPECT_EQ(Field(s, r, "$.replaced"), "0");
    r = s.Text("SELECT deltasync_schedule('http://127.0.0.1:9/nodes/shop', '{\"token\": \"other\", \"tables\": [\"t\"]}')");
    EXPECT_EQ(Field(s, r, "$.replaced"), "1");
    EXPECT_EQ(Field(s, r, "$.interval_ms"), "10000");  // the default, not the old value
    EXPECT_EQ(ScheduleCount(s), 1);
    // The options are stored as given, minus interval_ms: that is what an agent runs.
    EXPECT_EQ(s.Text("SELECT options FROM deltasync_schedules"), "{\"tables\":[\"t\"],\"token\":\"other\"}");
    s.Text("SELECT deltasync_schedule('http://127.0.0.1:9/nodes/other')");
  }
  Site again(path);  // another connection sees what was stored
  std::string st = again.Text("SELECT deltasync_status()");
  EXPECT_EQ(Field(again, st, "$.schedules[0].hub"), "http://127.0.0.1:9/nodes/other");
  EXPECT_EQ(Field(again, st, "$.schedules[1].url"), "http://127.0.0.1:9/nodes/shop");
  EXPECT_EQ(Field(again, st, "$.schedules[1].interval_ms"), "10000");
  EXPECT_EQ(st.find("s3cret"), std::string::npos);
  EXPECT_EQ(st.find("token"), std::string::npos);
  std::string u = again.Text("SELECT deltasync_unschedule('http://127.0.0.1:9/nodes/shop')");
  EXPECT_EQ(Field(again, u, "$.unscheduled"), "1");
  u = again.Text("SELECT deltasync_unschedule('http://127.0.0.1:9/nodes/shop')");
  EXPECT_EQ(Field(again, u, "$.unscheduled"), "0");
  EXPECT_EQ(ScheduleCount(again), 1);
  std::remove(path.c_str());
}

TEST(Schedule, BadInputIsRefusedAndStoresNothing) {
  Site s;
  s.Text("SELECT deltasync_status()");  // creates the internal tables
  const char* bad[] = {
      "SELECT deltasync_schedule('ftp://x/nodes/n')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/')",
      "SELECT deltasync_schedule(NULL)",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', 'not json')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '[1]')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '{\"bogus\": 1}')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '{\"token\": 7}')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '{\"interval_ms\": 10}')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '{\"interval_ms\": \"1s\"}')",
      "SELECT deltasync_schedule('http://127.0.0.1:9/nodes/n', '{\"batch_rows\": 0}')",
      "SELECT deltasync_unschedule('nonsense')",
  };
  for (const char* sql : bad) {
    std::string err = s.ExecError(sql);
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << sql << " -> " << err;
  }
  EXPECT_EQ(ScheduleCount(s), 0);
  EXPECT_EQ(Field(s, s.Text("SELECT deltasync_status()"), "$.schedules"), "[]");
}
