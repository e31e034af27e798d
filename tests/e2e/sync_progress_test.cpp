// Progress of long pushes and pulls against a real `deltasync serve`: while a push (then a
// pull) of tens of thousands of rows in small batches runs on one connection, another
// connection to the same file reads deltasync_status() over and over; what it sees must be
// consistent (rows done never go back, never pass rows expected, the clock moves on) and the
// last report must be the call's own total. Also the hub's Deltasync-Seq header.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using deltasync::test::UniqueTempPath;
using Json = nlohmann::json;

namespace {

constexpr int kRows = 30000;

// A site file in WAL mode, as an application holds it.
struct SiteFile {
  std::string path = UniqueTempPath("progress", ".db");
  Site site{path};
  SiteFile() {
    sqlite3_busy_timeout(site.db(), 10000);
    site.Exec("PRAGMA journal_mode=WAL");
    site.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL); SELECT deltasync_enable('t')");
  }
  ~SiteFile() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  }
};

// Reads deltasync_status() on its own connection every 20 ms while a call runs, keeping
// each report of `direction` it sees.
class StatusWatcher {
 public:
  StatusWatcher(const std::string& path, std::string direction) : direction_(std::move(direction)) {
    thread_ = std::thread([this, path] {
      Site s(path);
      sqlite3_busy_timeout(s.db(), 10000);
      for (;;) {
        const bool last = stop_;  // one more read after the call returned
        Json st = Json::parse(s.Text("SELECT deltasync_status()"));
        for (const Json& e : st["syncs"])
          if (e["direction"] == direction_ && (seen_.empty() || seen_.back() != e)) seen_.push_back(e);
        if (last) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  std::vector<Json> Stop() {
    stop_ = true;
    thread_.join();
    return seen_;
  }

 private:
  std::string direction_;
  std::atomic<bool> stop_{false};
  std::vector<Json> seen_;
  std::thread thread_;
};

// The reports one call made, in the order seen: monotone and within bounds.
void ExpectConsistent(const std::vector<Json>& seen, const std::string& hub) {
  ASSERT_GE(seen.size(), 2u) << "a call of more than a second reports while it runs";
  for (size_t k = 0; k < seen.size(); ++k) {
    const Json& e = seen[k];
    SCOPED_TRACE(e.dump());
    EXPECT_EQ(e["hub"], hub);
    const uint64_t done = e["rows_done"];
    if (!e["rows_expected"].is_null()) {
      EXPECT_LE(done, e["rows_expected"].get<uint64_t>());
    }
    EXPECT_GE(e["updated_ms"].get<int64_t>() - e["since_ms"].get<int64_t>(), 1000) << "no report in the first second";
    if (k + 1 < seen.size()) {
      EXPECT_EQ(e["state"], "running");
    }
    if (e["state"] == "running" && !e["rows_expected"].is_null()) {
      EXPECT_TRUE(e["eta_ms"].is_number());
    }
    if (k == 0) continue;
    const Json& before = seen[k - 1];
    EXPECT_EQ(e["since_ms"], before["since_ms"]) << "one call";
    EXPECT_GE(done, before["rows_done"].get<uint64_t>());
    EXPECT_GT(e["updated_ms"].get<int64_t>(), before["updated_ms"].get<int64_t>());
  }
}

}  // namespace

TEST(SyncProgress, ALongPushAndPullReportConsistentProgressInStatus) {
  // Small batches: many requests, so each call takes a few seconds on loopback. On a
  // PostgreSQL store (ctest e2e_hub_suite_on_pg_store) the push is long by construction:
  // 60 batches of 500, each commit held 30 ms (DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS) - with
  // group commit a push there is no longer slow on its own.
  const char* store = std::getenv("DELTASYNC_TEST_HUB_STORE");
  const bool pg_store = store && std::string(store) == "postgresql";
  if (pg_store) setenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS", "30", 1);
  HubProcess hub;
  unsetenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS");
  const std::string url = hub.url("progress");
  SiteFile a, b;
  a.site.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " + std::to_string(kRows) +
              ") INSERT INTO t SELECT x, 'row ' || x, x * 7 FROM c");
  const std::string opts = pg_store ? R"({"batch_rows": 500, "timeout_ms": 60000})" : R"({"batch_rows": 25, "timeout_ms": 60000})";
  const std::string pull_opts = pg_store ? R"({"batch_rows": 100, "timeout_ms": 60000})" : opts;

  StatusWatcher push_watch(a.path, "push");
  auto t0 = std::chrono::steady_clock::now();
  Json pushed = Json::parse(a.site.Text("SELECT deltasync_push(?1, ?2)", {Value::Text(url), Value::Text(opts)}));
  double push_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Json> push_seen = push_watch.Stop();
  ASSERT_EQ(pushed["rows"], kRows);
  ASSERT_GT(push_s, 1.2) << "the push must be long enough to report";
  ExpectConsistent(push_seen, url);
  const Json& push_last = push_seen.back();
  EXPECT_EQ(push_last["state"], "done");
  EXPECT_EQ(push_last["rows_done"], kRows);
  EXPECT_EQ(push_last["rows_expected"], kRows);
  // While running, what was expected was every row of the pass, counted once it was long.
  for (const Json& e : push_seen) EXPECT_EQ(e["rows_expected"], kRows) << e.dump();

  StatusWatcher pull_watch(b.path, "pull");
  t0 = std::chrono::steady_clock::now();
  Json pulled = Json::parse(b.site.Text("SELECT deltasync_pull(?1, ?2)", {Value::Text(url), Value::Text(pull_opts)}));
  std::vector<Json> pull_seen = pull_watch.Stop();
  double pull_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("push %.2f s, %zu reports seen; pull %.2f s, %zu reports seen\n", push_s, push_seen.size(), pull_s,
              pull_seen.size());
  ASSERT_EQ(b.site.Int("SELECT count(*) FROM t"), kRows);
  ExpectConsistent(pull_seen, url);
  const Json& pull_last = pull_seen.back();
  EXPECT_EQ(pull_last["state"], "done");
  // A pull counts positions of the node's sequence: from 0 to the cursor it reached, which
  // here is one per row (each row was written once).
  EXPECT_EQ(pull_last["rows_done"], pulled["cursor"]);
  EXPECT_EQ(pull_last["rows_expected"], pulled["cursor"]);
  EXPECT_EQ(pulled["cursor"], kRows);
  for (const Json& e : pull_seen) EXPECT_EQ(e["rows_expected"], kRows) << e.dump();

  // The last report stays in the status; a short call does not replace it.
  a.site.Exec("INSERT INTO t VALUES (0, 'zero', 0)");
  a.site.Text("SELECT deltasync_push(?1, ?2)", {Value::Text(url), Value::Text(opts)});
  Json syncs = Json::parse(a.site.Text("SELECT deltasync_status()"))["syncs"];
  ASSERT_EQ(syncs.size(), 1u);
  EXPECT_EQ(syncs[0], push_last);
  // Forgetting the hub forgets its progress.
  a.site.Text("SELECT deltasync_forget(?1)", {Value::Text(url)});
  EXPECT_TRUE(Json::parse(a.site.Text("SELECT deltasync_status()"))["syncs"].empty());
}

TEST(SyncProgress, APullAnswerCarriesTheNodeSequence) {
  HubProcess hub;
  const std::string url = hub.url("seq");
  SiteFile a;
  a.site.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50)"
              " INSERT INTO t SELECT x, 'r', x FROM c");
  a.site.Text("SELECT deltasync_push(?1)", {Value::Text(url)});
  a.site.Exec("UPDATE t SET b = b + 1 WHERE id <= 10");  // rows that move: gaps in the sequence
  a.site.Text("SELECT deltasync_push(?1)", {Value::Text(url)});
  httplib::Client cli("127.0.0.1", hub.port());
  auto status = cli.Get("/nodes/seq/status");
  ASSERT_TRUE(status && status->status == 200);
  const int64_t seq = Json::parse(status->body)["seq"];
  EXPECT_EQ(seq, 60);
  for (const char* q : {"since=0&limit=5", "since=0", "since=60", "since=30&limit=2&tables=nope"}) {
    auto r = cli.Get((std::string("/nodes/seq/pull?") + q).c_str());
    ASSERT_TRUE(r && r->status == 200) << q;
    EXPECT_EQ(r->get_header_value("Deltasync-Seq"), std::to_string(seq)) << q;
  }
}
