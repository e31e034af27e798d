// PostgreSQL schedules (deltasync_schedule) run by the extension's background workers, with
// real hubs (`deltasync serve` on 127.0.0.1), under pg_virtualenv. No test here calls
// deltasync_sync/push/pull: the workers do. Deadlines are failure bounds, not speed claims
// (bench/latency.sh measures the latency).
// - sites converge while both write, on a schema with NOT NULL columns without defaults, a
//   UNIQUE column and a foreign key;
// - the hub down and back: failures recorded in deltasync_status() by the worker, nothing
//   lost;
// - pg_terminate_backend of a worker in the middle of a large push loses nothing, and
//   deltasync_schedule starts it again; pg_cancel_backend interrupts one call only;
//   deltasync_unschedule stops the workers;
// - with deltasync in shared_preload_libraries the workers come back after a server restart.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"

using deltasync::test::HubProcess;
using deltasync::test::PgConn;
using deltasync::test::PgSite;
using Json = nlohmann::json;

namespace {

// Polls `done` every 50 ms for up to `seconds`; true once it held.
bool WaitFor(const std::function<bool()>& done, int seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

const char* kSchema =
    "CREATE TABLE store (id bigint PRIMARY KEY, name text NOT NULL, code text NOT NULL UNIQUE);"
    "CREATE TABLE item (id bigint PRIMARY KEY, store_id bigint NOT NULL REFERENCES store(id) ON DELETE CASCADE,"
    " qty integer NOT NULL, note text);"
    "SELECT deltasync_enable('store'); SELECT deltasync_enable('item');";

// Every tracked row, in key order, as one text.
std::string Contents(PgConn& c) {
  return c.Text(
      "SELECT coalesce((SELECT string_agg(format('%s|%s|%s', id, name, code), ';' ORDER BY id) FROM store), '') || '#' ||"
      " coalesce((SELECT string_agg(format('%s|%s|%s|%s', id, store_id, qty, coalesce(note, '-')), ';' ORDER BY id)"
      " FROM item), '')");
}

// The pids of this database's schedule workers of one side ("push" or "pull").
std::vector<std::string> Workers(PgConn& c, const std::string& side) {
  std::vector<std::string> out;
  for (auto& r : c.Rows("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = $1",
                        {"deltasync " + side}))
    out.push_back(r[0]);
  return out;
}

std::string Schedule(PgConn& c, const std::string& url, int interval_ms = 1000) {
  return c.Text("SELECT deltasync_schedule($1, $2::jsonb)::text",
                {url, Json{{"interval_ms", interval_ms}, {"timeout_ms", 20000}}.dump()});
}

}  // namespace

TEST(PgSchedule, WorkersKeepSitesInSyncWithoutSyncCalls) {
  HubProcess::Options file_store;
  file_store.db = "";  // a fresh file: the hub keeps its rows across a restart
  HubProcess hub(file_store);
  PgSite a, b;
  a->Exec(kSchema);
  b->Exec(kSchema);
  Json r = Json::parse(Schedule(*a, hub.url("shop")));
  EXPECT_EQ(r["scheduled"], true);
  EXPECT_EQ(r["replaced"], false);
  Schedule(*b, hub.url("shop"));
  ASSERT_TRUE(WaitFor([&] { return Workers(*a, "push").size() == 1 && Workers(*a, "pull").size() == 1; }, 20));
  ASSERT_TRUE(WaitFor([&] { return Workers(*b, "push").size() == 1 && Workers(*b, "pull").size() == 1; }, 20));
  // Scheduling again replaces the schedule and starts no second pair.
  EXPECT_EQ(Json::parse(Schedule(*a, hub.url("shop")))["replaced"], true);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Workers(*a, "push").size(), 1u);
  EXPECT_EQ(Workers(*a, "pull").size(), 1u);

  // One write shows up on the other site with nobody calling anything.
  a->Exec("INSERT INTO store VALUES (1, 'north', 'N1')");
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT count(*) FROM store") == "1"; }, 30)) << hub.log();

  // One write of each kind on each side, each waited for: insert with a foreign key,
  // update of one column, a NOT NULL upsert, a delete that cascades.
  b->Exec("INSERT INTO store VALUES (2, 'south', 'S2'); INSERT INTO item VALUES (10, 2, 5, NULL)");
  ASSERT_TRUE(WaitFor([&] { return Contents(*a) == Contents(*b); }, 30)) << Contents(*a) << "\n" << Contents(*b);
  a->Exec("UPDATE item SET note = 'checked' WHERE id = 10");
  ASSERT_TRUE(WaitFor([&] { return Contents(*a) == Contents(*b); }, 30)) << Contents(*a) << "\n" << Contents(*b);
  b->Exec("INSERT INTO item VALUES (10, 2, 7, NULL) ON CONFLICT (id) DO UPDATE SET qty = excluded.qty");
  ASSERT_TRUE(WaitFor([&] { return Contents(*a) == Contents(*b); }, 30)) << Contents(*a) << "\n" << Contents(*b);
  a->Exec("DELETE FROM store WHERE id = 2");
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT count(*) FROM item") == "0"; }, 30)) << Contents(*b);

  // Then random writes on both sites at once, autocommit, while both workers push every
  // 25 ms: upserts, updates of one column, deletes that cascade (this found the push that
  // passed a row's older cells, PgConcurrency.APushSendsARowsOlderCellsWhenItsNewestIsBeyondTheHorizon).
  std::mt19937 rng(1301);
  for (int i = 0; i < 150; ++i) {
    PgConn& c = (rng() % 2) ? *a : *b;
    int64_t id = 2 + static_cast<int64_t>(rng() % 20);
    int64_t item = 100 + static_cast<int64_t>(rng() % 60);
    switch (rng() % 5) {
      case 0:
        c.Exec("INSERT INTO store VALUES (" + std::to_string(id) + ", 'store " + std::to_string(i) + "', 'C" +
               std::to_string(i) + "_" + std::to_string(rng() % 1000) + "') ON CONFLICT (id) DO UPDATE SET name = excluded.name");
        break;
      case 1:
      case 2:
        c.Exec("INSERT INTO item SELECT " + std::to_string(item) + ", 1, " + std::to_string(rng() % 50) +
               ", NULL ON CONFLICT (id) DO UPDATE SET qty = excluded.qty");
        break;
      case 3:
        c.Exec("UPDATE item SET note = 'n" + std::to_string(i) + "' WHERE id = " + std::to_string(item));
        break;
      default:
        c.Exec("DELETE FROM store WHERE id = " + std::to_string(id));
    }
  }
  bool same = WaitFor([&] { return Contents(*a) == Contents(*b); }, 60);
  std::string at_hub;
  if (!same) {
    PgSite c;
    c->Exec(kSchema);
    c->Text("SELECT deltasync_pull($1)::text", {hub.url("shop")});
    at_hub = Contents(*c);
    for (PgConn* s : {&**&a, &**&b}) {
      std::string id = s->Text("SELECT id FROM deltasync.tables WHERE name = 'item'");
      at_hub += "\nshadow: " + s->Text("SELECT string_agg(format('%s:cl%s:v%s:s%s', k0, cl, ver, site), ' ' ORDER BY ver) FROM deltasync.meta_" + id) +
                "\necho: " + s->Text("SELECT coalesce(string_agg(format('[%s,%s]', lo, hi), ' ' ORDER BY lo), '') FROM deltasync.hub_echo") +
                "\npush_cursor: " + s->Text("SELECT string_agg(push_cursor::text, ',') FROM deltasync.hubs");
    }
  }
  ASSERT_TRUE(same) << "hub: " << at_hub << "\n"
      << "a: " << Contents(*a) << "\nb: " << Contents(*b) << "\n" << hub.log() << "\nstatus a: "
      << a->Text("SELECT deltasync_status()::text") << "\nstatus b: " << b->Text("SELECT deltasync_status()::text")
      << "\nquarantine a: " << a->Text("SELECT deltasync_quarantine()::text") << "\nquarantine b: " << b->Text("SELECT deltasync_quarantine()::text");
  EXPECT_NE(Contents(*a), "#");
  // Nothing is missing at the hub either: a new site pulling it holds the same rows.
  {
    PgSite c;
    c->Exec(kSchema);
    c->Text("SELECT deltasync_pull($1)::text", {hub.url("shop")});
    EXPECT_EQ(Contents(*c), Contents(*a));
  }

  // Status lists the schedule without its options.
  Json st = Json::parse(a->Text("SELECT deltasync_status()::text"));
  ASSERT_EQ(st["schedules"].size(), 1u);
  EXPECT_EQ(st["schedules"][0]["url"], hub.url("shop"));
  EXPECT_EQ(st["schedules"][0]["interval_ms"], 1000);
  EXPECT_FALSE(st["schedules"][0].contains("options"));

  // Unscheduling stops the workers.
  EXPECT_EQ(Json::parse(a->Text("SELECT deltasync_unschedule($1)::text", {hub.url("shop")}))["unscheduled"], true);
  EXPECT_TRUE(WaitFor([&] { return Workers(*a, "push").empty() && Workers(*a, "pull").empty(); }, 30));
  EXPECT_EQ(Workers(*b, "push").size(), 1u);
}

TEST(PgSchedule, HubDownThenBackNothingLostAndFailuresRecorded) {
  HubProcess::Options file_store;
  file_store.db = "";  // a fresh file: the hub keeps its rows across a restart
  HubProcess hub(file_store);
  PgSite a, b;
  a->Exec(kSchema);
  b->Exec(kSchema);
  Schedule(*a, hub.url("n"), 500);
  Schedule(*b, hub.url("n"), 500);
  a->Exec("INSERT INTO store VALUES (1, 'one', 'A')");
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT count(*) FROM store") == "1"; }, 30));

  hub.Kill();
  a->Exec("INSERT INTO store VALUES (2, 'two', 'B')");
  b->Exec("INSERT INTO store VALUES (3, 'three', 'C'); INSERT INTO item VALUES (10, 3, 5, 'offline')");
  // The push worker's failures reach deltasync_status(), written by the worker itself.
  ASSERT_TRUE(WaitFor(
      [&] {
        Json h = Json::parse(a->Text("SELECT deltasync_status()::text"))["hubs"][0];
        return h.value("failures", 0) >= 1 && h["last_error"].is_string();
      },
      30));
  Json h = Json::parse(a->Text("SELECT deltasync_status()::text"))["hubs"][0];
  EXPECT_NE(h["last_error"].get<std::string>().find("deltasync:"), std::string::npos) << h.dump();

  hub.Restart();
  ASSERT_TRUE(WaitFor([&] { return Contents(*a) == Contents(*b) && b->Text("SELECT count(*) FROM store") == "3"; }, 60))
      << "a: " << Contents(*a) << "\nb: " << Contents(*b);
  // A success ends the failure streak.
  ASSERT_TRUE(WaitFor(
      [&] { return Json::parse(a->Text("SELECT deltasync_status()::text"))["hubs"][0].value("failures", -1) == 0; }, 30));
}

TEST(PgSchedule, TerminateAndCancelLoseNothing) {
  HubProcess hub;
  PgSite a, b;
  a->Exec(kSchema);
  b->Exec(kSchema);
  Schedule(*b, hub.url("n"));
  // A large push under way when its worker is terminated: the push is one transaction, so
  // nothing of it is recorded as sent; the next worker sends it all.
  a->Exec("INSERT INTO store SELECT g, 'store ' || g, 'code' || g FROM generate_series(1, 20000) g");
  Schedule(*a, hub.url("n"));
  ASSERT_TRUE(WaitFor([&] { return Workers(*a, "push").size() == 1; }, 20));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  for (const std::string& pid : Workers(*a, "push")) a->Exec("SELECT pg_terminate_backend(" + pid + ")");
  ASSERT_TRUE(WaitFor([&] { return Workers(*a, "push").empty(); }, 20));
  // deltasync_schedule starts it again.
  Schedule(*a, hub.url("n"));
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT count(*) FROM store") == "20000"; }, 90))
      << b->Text("SELECT count(*) FROM store");
  EXPECT_EQ(Contents(*a), Contents(*b));

  // A cancel interrupts the call under way (the pull worker's long-poll) and nothing else.
  std::vector<std::string> pull = Workers(*b, "pull");
  ASSERT_EQ(pull.size(), 1u);
  b->Exec("SELECT pg_cancel_backend(" + pull[0] + ")");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Workers(*b, "pull"), pull);
  a->Exec("UPDATE store SET name = 'after cancel' WHERE id = 7");
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT name FROM store WHERE id = 7") == "after cancel"; }, 30));
}

TEST(PgSchedule, WorkersComeBackAfterAServerRestartWhenPreloaded) {
  HubProcess hub;
  PgSite a, b;
  a->Exec(kSchema);
  b->Exec(kSchema);
  Schedule(*a, hub.url("n"));
  Schedule(*b, hub.url("n"));
  a->Exec("INSERT INTO store VALUES (1, 'before', 'A')");
  ASSERT_TRUE(WaitFor([&] { return b->Text("SELECT count(*) FROM store") == "1"; }, 30));
  {
    PgConn admin("postgres");
    admin.Exec("ALTER SYSTEM SET shared_preload_libraries = 'deltasync'");
  }
  ASSERT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress restart -m fast"), 0);
  // New connections: the old ones went with the restart. Nobody calls deltasync here.
  PgConn a2(a.name()), b2(b.name());
  ASSERT_TRUE(WaitFor([&] { return Workers(a2, "push").size() == 1 && Workers(b2, "pull").size() == 1; }, 30));
  a2.Exec("INSERT INTO store VALUES (2, 'after restart', 'B')");
  bool arrived = WaitFor([&] { return b2.Text("SELECT count(*) FROM store") == "2"; }, 30);
  {
    PgConn admin("postgres");
    admin.Exec("ALTER SYSTEM RESET shared_preload_libraries");
  }
  EXPECT_TRUE(arrived);
  EXPECT_EQ(Contents(a2), Contents(b2));
  EXPECT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress restart -m fast"), 0);
}
