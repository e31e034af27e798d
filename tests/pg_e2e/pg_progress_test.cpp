// Progress of long pushes and pulls on PostgreSQL, against a real `deltasync serve`: the
// calling session gets NOTICEs, and other sessions see the call under way in
// deltasync_status() (from the backend's pg_stat_activity text). Reports must be of one
// call, monotone, within bounds, and end with done = expected = the call's own total.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/sync_progress.hpp"
#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"

using deltasync::ParseProgressLine;
using deltasync::ProgressState;
using deltasync::SyncProgress;
using deltasync::test::HubProcess;
using deltasync::test::PgConn;
using deltasync::test::PgSite;
using Json = nlohmann::json;

namespace {

constexpr int kRows = 30000;
// Batches of 5 rows: 6,000 round trips each way, well over the second before the first report
// even on a quiet machine (with 25, a quiet machine finished the push in under a second).
const char* kOpts = R"({"batch_rows": 5, "timeout_ms": 60000})";

void CollectNotice(void* arg, const char* message) {
  std::string m = message;
  const std::string prefix = "NOTICE:  ";
  if (m.rfind(prefix, 0) != 0) return;
  m = m.substr(prefix.size());
  while (!m.empty() && m.back() == '\n') m.pop_back();
  static_cast<std::vector<std::string>*>(arg)->push_back(m);
}

// Runs `sql` on a session of `db` collecting its NOTICEs, while another session reads
// deltasync_status()->'syncs' every 20 ms (once more after the call).
struct Observed {
  Json result;
  std::vector<SyncProgress> notices;
  std::vector<Json> status;
};
Observed Observe(const std::string& db, const std::string& sql) {
  Observed out;
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    PgConn other(db);
    for (;;) {
      const bool last = stop;
      for (const Json& e : Json::parse(other.Text("SELECT deltasync_status()->'syncs'")))
        if (out.status.empty() || out.status.back() != e) out.status.push_back(e);
      if (last) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<std::string> lines;
  {
    PgConn conn(db);
    conn.Exec("SET client_min_messages = notice");
    PQsetNoticeProcessor(conn.raw(), CollectNotice, &lines);
    out.result = Json::parse(conn.Text(sql));
  }
  stop = true;
  watcher.join();
  for (const std::string& l : lines) {
    auto p = ParseProgressLine(l, 0);
    EXPECT_TRUE(p) << "a notice in the documented form: " << l;
    if (p) out.notices.push_back(*p);
  }
  return out;
}

void ExpectConsistent(const Observed& o, const std::string& hub, const std::string& direction, uint64_t total) {
  ASSERT_GE(o.notices.size(), 2u) << "a call of more than a second reports while it runs";
  for (size_t k = 0; k < o.notices.size(); ++k) {
    const SyncProgress& p = o.notices[k];
    SCOPED_TRACE(deltasync::ProgressLine(p));
    EXPECT_EQ(p.hub, hub);
    EXPECT_EQ(p.direction, direction);
    EXPECT_GE(p.elapsed_ms(), 1000) << "nothing in the first second";
    if (p.expected) {
      EXPECT_LE(p.done, p.expected);
    }
    if (k + 1 < o.notices.size()) {
      EXPECT_EQ(p.state, ProgressState::kRunning);
    }
    if (k > 0) {
      EXPECT_GE(p.done, o.notices[k - 1].done);
      // Running reports are 500 ms apart at least; the last one (done) comes when the call
      // ends, which may be the same millisecond as the report before it.
      if (k + 1 < o.notices.size()) EXPECT_GE(p.elapsed_ms(), o.notices[k - 1].elapsed_ms() + 500);
      else EXPECT_GE(p.elapsed_ms(), o.notices[k - 1].elapsed_ms());
    }
  }
  EXPECT_EQ(o.notices.back().state, ProgressState::kDone);
  EXPECT_EQ(o.notices.back().done, total);
  EXPECT_EQ(o.notices.back().expected, total);
  // Another session saw it under way, and once it ended (its transaction committed) its last
  // report, kept in deltasync.sync_progress.
  ASSERT_GE(o.status.size(), 2u) << "deltasync_status() of another session shows the call, then its end";
  uint64_t before = 0;
  for (size_t k = 0; k < o.status.size(); ++k) {
    const Json& e = o.status[k];
    SCOPED_TRACE(e.dump());
    EXPECT_EQ(e["hub"], hub);
    EXPECT_EQ(e["direction"], direction);
    EXPECT_EQ(e["state"], k + 1 < o.status.size() ? "running" : "done");
    const uint64_t done = e["rows_done"];
    EXPECT_GE(done, before);
    before = done;
    if (!e["rows_expected"].is_null()) {
      EXPECT_LE(done, e["rows_expected"].get<uint64_t>());
      EXPECT_EQ(e["rows_expected"], total);
    }
  }
  // The kept report is the call's last notice.
  const Json& last = o.status.back();
  const SyncProgress& n = o.notices.back();
  EXPECT_EQ(last["rows_done"], total);
  EXPECT_EQ(last["rows_expected"], total);
  EXPECT_TRUE(last["eta_ms"].is_null());
  EXPECT_EQ(last["updated_ms"].get<int64_t>() - last["since_ms"].get<int64_t>(), n.elapsed_ms());
  EXPECT_NEAR(last["rows_per_s"].get<double>(), n.rows_per_s, 1.0);
  EXPECT_GE(last["updated_ms"].get<int64_t>() - last["since_ms"].get<int64_t>(), 1000);
}

}  // namespace

TEST(PgProgress, ALongPushAndPullSendNoticesAndShowInOtherSessionsStatus) {
  HubProcess hub;
  const std::string url = hub.url("pgprogress");
  PgSite a, b;
  for (PgSite* s : {&a, &b})
    (*s)->Exec("CREATE TABLE t (id bigint PRIMARY KEY, a text NOT NULL, b bigint NOT NULL); SELECT deltasync_enable('t');");
  a->Exec("INSERT INTO t SELECT x, 'row ' || x, x * 7 FROM generate_series(1, " + std::to_string(kRows) + ") x");

  Observed push = Observe(a.name(), "SELECT deltasync_push('" + url + "', '" + kOpts + "')");
  ASSERT_EQ(push.result["rows"], kRows);
  ExpectConsistent(push, url, "push", kRows);
  // The session itself sees the kept push too, and a short call leaves it as it was.
  const Json kept = Json::parse(a->Text("SELECT deltasync_status()->'syncs'"));
  ASSERT_EQ(kept.size(), 1u) << kept.dump();
  EXPECT_EQ(kept[0], push.status.back());
  a->Exec("INSERT INTO t VALUES (0, 'one more', 0)");
  EXPECT_EQ(Json::parse(a->Text("SELECT deltasync_push('" + url + "')"))["rows"], 1);
  EXPECT_EQ(Json::parse(a->Text("SELECT deltasync_status()->'syncs'")), kept);

  Observed pull = Observe(b.name(), "SELECT deltasync_pull('" + url + "', '" + kOpts + "')");
  ASSERT_EQ(pull.result["cursor"], kRows + 1);
  ExpectConsistent(pull, url, "pull", kRows + 1);
  EXPECT_EQ(b->Text("SELECT count(*) FROM t"), std::to_string(kRows + 1));
  // The session's pg_stat_activity text is its query again once the call ended.
  EXPECT_EQ(b->Text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'deltasync p%'"), "0");
  // deltasync_forget drops what was kept of the hub.
  a->Exec("SELECT deltasync_forget('" + url + "')");
  EXPECT_EQ(Json::parse(a->Text("SELECT deltasync_status()->'syncs'")), Json::array());
  EXPECT_EQ(Json::parse(b->Text("SELECT deltasync_status()->'syncs'")).size(), 1u);
}

