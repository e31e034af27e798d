// Hub health in deltasync_status(): kept in the database (deltasync_hub_health), so a
// connection that never called the hub sees that the site has been failing, and since when;
// deltasync_forget drops a hub the site no longer uses.
#include <gtest/gtest.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "sqlite_test_util.hpp"

using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

// A hub URL on a port nothing listens on.
const char* kDeadHub = "http://127.0.0.1:1/nodes/n1";

// The status entry of hub `key`, or null when status does not list it.
Json HubEntry(Site& s, const std::string& key) {
  Json st = Json::parse(s.Text("SELECT deltasync_status()"));
  for (const Json& h : st["hubs"])
    if (h["hub"] == key) return h;
  return nullptr;
}

std::string TempDb(const char* name) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-journal").c_str());
  return path;
}

TEST(HubHealth, AFailedPullIsSeenByANewConnection) {
  std::string path = TempDb("health_new_conn.db");
  {
    Site a(path);
    a.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    a.Text("SELECT deltasync_enable('t')");
    a.Exec("INSERT INTO t VALUES (1, 'x')");
    std::string err = a.ExecError(std::string("SELECT deltasync_pull('") + kDeadHub + "', '{\"timeout_ms\": 2000}')");
    ASSERT_NE(err.find("deltasync: http://127.0.0.1:1/nodes/n1"), std::string::npos) << err;
    err = a.ExecError(std::string("SELECT deltasync_push('") + kDeadHub + "', '{\"timeout_ms\": 2000}')");
    ASSERT_FALSE(err.empty());
  }
  Site b(path);
  Json h = HubEntry(b, kDeadHub);
  ASSERT_FALSE(h.is_null()) << "a hub that only ever failed is listed";
  ASSERT_TRUE(h["last_error"].is_string());
  EXPECT_NE(h["last_error"].get<std::string>().find("127.0.0.1:1"), std::string::npos) << h.dump();
  EXPECT_EQ(h["failures"], 2);
  ASSERT_TRUE(h["failing_since_ms"].is_number_integer());
  ASSERT_TRUE(h["last_error_ms"].is_number_integer());
  EXPECT_LE(h["failing_since_ms"].get<int64_t>(), h["last_error_ms"].get<int64_t>());
  EXPECT_TRUE(h["last_success_ms"].is_null());
  // The failure is recorded, but nothing else moved: the change is still pending.
  EXPECT_EQ(h["push_cursor"], 0);
  EXPECT_EQ(Json::parse(b.Text("SELECT deltasync_status()"))["pending_changes"], 1);
}

TEST(HubHealth, TheStreakKeepsItsFirstFailureTime) {
  Site s;
  s.ExecError(std::string("SELECT deltasync_pull('") + kDeadHub + "')");
  Json first = HubEntry(s, kDeadHub);
  // A push with nothing to send asks the hub nothing: no news about its health.
  EXPECT_EQ(s.ExecError(std::string("SELECT deltasync_push('") + kDeadHub + "')"), "");
  EXPECT_EQ(HubEntry(s, kDeadHub)["failures"], 1);
  s.ExecError(std::string("SELECT deltasync_sync('") + kDeadHub + "')");
  Json second = HubEntry(s, kDeadHub);
  EXPECT_EQ(second["failures"], 2);
  EXPECT_EQ(second["failing_since_ms"], first["failing_since_ms"]);
  EXPECT_GE(second["last_error_ms"].get<int64_t>(), first["last_error_ms"].get<int64_t>());
}

TEST(HubHealth, ForgetRemovesTheHubAndItsBookkeeping) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  s.Text("SELECT deltasync_enable('t')");
  s.Exec("INSERT INTO t VALUES (1, 'x')");
  s.ExecError(std::string("SELECT deltasync_pull('") + kDeadHub + "')");
  // Bookkeeping as a past sync would have left it: cursors and an echo range.
  s.Exec("UPDATE deltasync_hubs SET push_cursor = 1 WHERE hub = 'http://127.0.0.1:1/nodes/n1'");
  s.Exec("INSERT INTO deltasync_hub_echo VALUES ('http://127.0.0.1:1/nodes/n1', 5, 9)");
  s.Exec("INSERT INTO deltasync_hubs(hub) VALUES ('http://other/nodes/n1')");
  Json forgot = Json::parse(s.Text("SELECT deltasync_forget('http://127.0.0.1:1/nodes/n1')"));
  EXPECT_EQ(forgot, (Json{{"hub", kDeadHub}, {"forgotten", true}}));
  EXPECT_TRUE(HubEntry(s, kDeadHub).is_null());
  EXPECT_EQ(s.Text("SELECT count(*) FROM deltasync_hub_echo"), "0");
  EXPECT_EQ(s.Text("SELECT count(*) FROM deltasync_hub_health"), "0");
  EXPECT_FALSE(HubEntry(s, "http://other/nodes/n1").is_null()) << "other hubs stay";
  // Unknown hub: nothing to forget; bad input: a deltasync error.
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_forget('http://127.0.0.1:1/nodes/n1')"))["forgotten"], false);
  EXPECT_NE(s.ExecError("SELECT deltasync_forget(1)").find("deltasync:"), std::string::npos);
  EXPECT_NE(s.ExecError("SELECT deltasync_forget('not a url')").find("deltasync:"), std::string::npos);
}

TEST(HubHealth, ForgettingTheLeastAdvancedHubStopsItCountingPending) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  s.Text("SELECT deltasync_enable('t')");
  s.Exec("INSERT INTO t VALUES (1, 'x')");
  int64_t v = std::stoll(s.Text("SELECT deltasync_db_version()"));
  s.Exec("INSERT INTO deltasync_hubs(hub, push_cursor) VALUES ('http://old/nodes/n', 0), ('http://new/nodes/n', " +
         std::to_string(v) + ")");
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["pending_changes"], 1);
  s.Text("SELECT deltasync_forget('http://old/nodes/n')");
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["pending_changes"], 0);
}

}  // namespace
