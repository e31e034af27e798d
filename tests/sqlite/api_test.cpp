// The API surface and the identity functions of the SQLite extension.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "common/version.hpp"
#include "sqlite_test_util.hpp"

using deltasync::test::Site;

// The exact set of deltasync functions a connection gets: the public API of SPEC section 5
// and the trigger callbacks.
TEST(ApiSurface, ExactFunctionSet) {
  Site s;
  std::set<std::string> names;
  for (auto& row : s.Rows("SELECT DISTINCT name FROM pragma_function_list WHERE name LIKE 'deltasync%'"))
    names.insert(row[0].s);
  std::set<std::string> expected = {
      "deltasync_version", "deltasync_site_id", "deltasync_db_version", "deltasync_enable",
      "deltasync_disable", "deltasync_changes", "deltasync_apply",      "deltasync_status",
      "deltasync_push",    "deltasync_pull",    "deltasync_sync",      "deltasync_id",
      "deltasync_forget",  "deltasync_schedule", "deltasync_unschedule", "deltasync_quarantine",
      "deltasync_checksum",
      "deltasync_compact",
      "deltasync__capturing", "deltasync__null_key", "deltasync__ver",       "deltasync__hlc",
      "deltasync__clk_set", "deltasync__ne", "deltasync__clk_json", "deltasync__json_check",
      "deltasync__json_canon"};
  EXPECT_EQ(names, expected);
}

TEST(ApiSurface, VersionMatchesBuild) {
  Site s;
  EXPECT_EQ(s.Text("SELECT deltasync_version()"), deltasync::kVersion);
}

TEST(ApiSurface, SiteIdIsCanonicalUuidAndStableAcrossConnections) {
  std::string path = ::testing::TempDir() + "/site_id_test.db";
  std::remove(path.c_str());
  std::string first;
  {
    Site s(path);
    first = s.Text("SELECT deltasync_site_id()");
    EXPECT_EQ(first, s.Text("SELECT deltasync_site_id()"));
  }
  ASSERT_EQ(first.size(), 36u);
  EXPECT_EQ(first[8], '-');
  EXPECT_EQ(first[14], '4');  // version-4 random UUID
  Site again(path);
  EXPECT_EQ(again.Text("SELECT deltasync_site_id()"), first);
  Site other;
  EXPECT_NE(other.Text("SELECT deltasync_site_id()"), first);
  std::remove(path.c_str());
}

TEST(ApiSurface, DbVersionGrowsWithLocalAndAppliedChanges) {
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');");
  EXPECT_EQ(a.Int("SELECT deltasync_db_version()"), 0);
  a.Exec("INSERT INTO t VALUES (1, 'x')");
  int64_t v1 = a.Int("SELECT deltasync_db_version()");
  EXPECT_GT(v1, 0);
  a.Exec("UPDATE t SET v = 'y' WHERE id = 1");
  EXPECT_GT(a.Int("SELECT deltasync_db_version()"), v1);
  int64_t b0 = b.Int("SELECT deltasync_db_version()");
  b.Apply(a.Changes());
  EXPECT_GT(b.Int("SELECT deltasync_db_version()"), b0);
}

TEST(ApiSurface, StatusReportsSiteTablesAndPending) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); INSERT INTO t VALUES (1, 2, 3), (2, 3, 4);"
         "SELECT deltasync_enable('t'); DELETE FROM t WHERE id = 2;");
  std::string st = s.Text("SELECT deltasync_status()");
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.site_id')", {deltasync::Value::Text(st)}),
            s.Text("SELECT deltasync_site_id()"));
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.tables[0].table')", {deltasync::Value::Text(st)}), "t");
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.tables[0].rows')", {deltasync::Value::Text(st)}), "1");
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.tables[0].deleted')", {deltasync::Value::Text(st)}), "1");
  // Row 1: two column changes; row 2: one delete.
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.pending_changes')", {deltasync::Value::Text(st)}), "3");
  EXPECT_EQ(s.Text("SELECT json_type(?1, '$.hubs')", {deltasync::Value::Text(st)}), "array");
  EXPECT_EQ(s.Text("SELECT json_extract(?1, '$.db_version')", {deltasync::Value::Text(st)}),
            std::to_string(s.Int("SELECT deltasync_db_version()")));
}

// Closing a connection must work right after using every function (no statement left open).
TEST(ApiSurface, ConnectionClosesCleanly) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  sqlite3_enable_load_extension(db, 1);
  ASSERT_EQ(sqlite3_load_extension(db, DELTASYNC_SQLITE_EXT, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE t(id PRIMARY KEY, v); SELECT deltasync_enable('t');"
                         "INSERT INTO t VALUES (1, 2); SELECT deltasync_apply(deltasync_changes(0));"
                         "SELECT deltasync_status();",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(sqlite3_close(db), SQLITE_OK);
}
