// Several hub processes sharing one PostgreSQL store (SPEC section 6): eight SQLite sites,
// split between two `deltasync serve` processes on the same database, write and sync
// concurrently; PostgreSQL is restarted in the middle; after a full sync every site holds
// the same rows. Runs under pg_virtualenv (ctest e2e_pg_hubs).
#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"
#include "sqlite/random_writes.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

// A database of the cluster for one test's hubs.
std::string FreshDatabase(const std::string& name) {
  if (std::system(("dropdb --if-exists --force " + name + " 2>/dev/null; createdb " + name).c_str()) != 0)
    throw std::runtime_error("createdb " + name + " failed");
  return "postgresql:///" + name;
}

std::string Sync(Site& s, const char* fn, const std::string& url, int batch = 50) {
  Json o = {{"timeout_ms", 20000}, {"connect_timeout_ms", 5000}, {"batch_rows", batch}};
  return s.Text(std::string("SELECT ") + fn + "(?1, ?2)", {Value::Text(url), Value::Text(o.dump())});
}

}  // namespace

TEST(PgHubs, TwoHubsOneDatabaseEightSitesAndARestart) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_multi_hub");
  HubProcess hub1(opts), hub2(opts);
  std::string urls[2] = {hub1.url("shared"), hub2.url("shared")};
  const int kSites = 8, kSteps = 40;
  std::vector<std::unique_ptr<Site>> sites;
  for (int k = 0; k < kSites; ++k) {
    sites.push_back(std::make_unique<Site>());
    sites.back()->Exec(deltasync::test::kRandomWriteSchema);
  }
  std::atomic<int> failures{0}, done{0};
  std::mutex err_mu;
  std::string last_error;
  std::vector<std::thread> threads;
  for (int k = 0; k < kSites; ++k) {
    threads.emplace_back([&, k] {
      std::mt19937_64 rng(1000 + static_cast<uint64_t>(k));
      deltasync::test::RandomWriter writer(rng);
      static const char* kFns[] = {"deltasync_push", "deltasync_pull", "deltasync_sync"};
      for (int step = 0; step < kSteps; ++step) {
        writer.Write(*sites[k]);
        try {
          Sync(*sites[k], kFns[rng() % 3], urls[k % 2], 1 + static_cast<int>(rng() % 20));
        } catch (const std::exception& e) {
          // Expected while PostgreSQL restarts: a 503 or a refused connection; nothing is
          // lost, the next call resumes.
          ++failures;
          std::lock_guard<std::mutex> lock(err_mu);
          last_error = e.what();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
      }
      ++done;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress restart -m fast"), 0) << "restart failed";
  for (auto& t : threads) t.join();
  // While PostgreSQL was down some calls failed, and each said so with a deltasync error.
  if (failures > 0) {
    EXPECT_NE(last_error.find("deltasync: "), std::string::npos) << last_error;
  }
  // Full sync, each site through its own hub, until every site has pushed and pulled twice.
  for (int round = 0; round < 2; ++round) {
    for (int k = 0; k < kSites; ++k) Sync(*sites[k], "deltasync_push", urls[k % 2], 1000);
    for (int k = 0; k < kSites; ++k) Sync(*sites[k], "deltasync_pull", urls[k % 2], 1000);
  }
  for (const char* q : deltasync::test::kRandomWriteTables) {
    auto first = sites[0]->Rows(q);
    for (int k = 1; k < kSites; ++k) EXPECT_EQ(sites[k]->Rows(q), first) << "site " << k << " differs: " << q;
  }
  // Both hubs serve the same store: the same identity and the same node sequence.
  Json s1 = Json::parse(sites[0]->Text("SELECT deltasync_status()"));
  Json s2 = Json::parse(sites[1]->Text("SELECT deltasync_status()"));
  EXPECT_EQ(s1["hubs"][0]["pull_cursor"], s2["hubs"][0]["pull_cursor"]);
  std::cout << "calls that failed during the restart: " << failures << "\n";
}

// Pushes to one node through two hubs, each held for a while between taking its sequence
// numbers and committing them (DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS): a puller paging all
// along never skips a row. Without the node's lock, two pushes take the same numbers (or a
// later push commits first), a page shows one of them, its cursor passes the other's
// numbers, and the reader ends short: this test fails then.
TEST(PgHubs, PushesHeldBeforeTheirCommitAreNeverSkippedByAPuller) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_gap_hub");
  setenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS", "30", 1);
  HubProcess hub1(opts), hub2(opts);
  unsetenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS");
  const int kWriters = 6, kRows = 120, kPerPush = 6;
  std::atomic<int> running{kWriters};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Site>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<Site>());
    writers.back()->Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  }
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::string url = (w % 2 ? hub2 : hub1).url("gap");
      for (int r = 0; r < kRows; ++r) {
        writers[w]->Exec("INSERT INTO g VALUES (" + std::to_string(w * 100000 + r) + ", " + std::to_string(w) + ")");
        if (r % kPerPush == kPerPush - 1) Sync(*writers[w], "deltasync_push", url, kPerPush);
      }
      --running;
    });
  }
  Site reader;
  reader.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  int pulls = 0;
  for (bool last = false; !last; ++pulls) {
    last = running == 0;
    Sync(reader, "deltasync_pull", (pulls % 2 ? hub2 : hub1).url("gap"), 4);
  }
  for (auto& t : threads) t.join();
  Sync(reader, "deltasync_pull", hub2.url("gap"), 1000);  // a no-op if nothing was skipped ...
  EXPECT_EQ(reader.Int("SELECT count(*) FROM g"), kWriters * kRows) << "after " << pulls << " pulls";
  Site fresh;  // ... and a fresh site sees the same through either hub
  fresh.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  Sync(fresh, "deltasync_pull", hub1.url("gap"), 1000);
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM g"), kWriters * kRows);
}

// Group commit on the PostgreSQL store: pushes that reach one node while a group is
// committing go together in the next transaction (one lock, one commit), each answered only
// after that commit, and a push refused in a group leaves the others whole. Every commit is
// held 1 s (DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS) after the numbers are taken, under the
// node's lock: one commit per push would take at least 1 s per push, one after the other,
// so the writers' pushes all done in less proves they shared commits. And each writer, as
// soon as its push is answered, reads the node's committed sequence on a connection of its
// own at or past the one the answer named (an answer sent before its commit would find it
// behind: the commit waits out the delay after the numbers are taken).
TEST(PgHubs, PushesToOneNodeCommitInGroupsEachAnsweredAfterItsCommit) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_group_hub");
  setenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS", "1000", 1);
  HubProcess hub(opts);
  unsetenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS");
  const int kWriters = 8, kPushes = 2, kRows = 5;
  std::vector<std::unique_ptr<Site>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<Site>());
    writers.back()->Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  }
  Site bad;  // same table, other key columns: refused (a 4xx) in whatever group it lands
  bad.Exec("CREATE TABLE g(w INTEGER, id INTEGER, PRIMARY KEY (w, id)); SELECT deltasync_enable('g');");
  Site seed;  // the node and its table exist before the race
  seed.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g'); INSERT INTO g VALUES (-1, -1);");
  Sync(seed, "deltasync_push", hub.url("grp"));
  std::atomic<int> behind{0}, failed{0}, refused{0};
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      deltasync::test::PgConn db("ds_group_hub");
      for (int p = 0; p < kPushes; ++p) {
        for (int k = 0; k < kRows; ++k)
          writers[w]->Exec("INSERT INTO g VALUES (" + std::to_string((w * kPushes + p) * kRows + k) + ", " +
                           std::to_string(w) + ")");
        try {
          int64_t seq = Json::parse(Sync(*writers[w], "deltasync_push", hub.url("grp")))["hub_seq"].get<int64_t>();
          if (std::stoll(db.Text("SELECT seq FROM hub_seqs s JOIN hub_nodes n ON n.id = s.node WHERE n.name = 'grp'")) <
              seq)
            ++behind;
        } catch (const std::exception&) {
          ++failed;
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int p = 0; p < kPushes; ++p) {
      bad.Exec("INSERT INTO g VALUES (-1, " + std::to_string(p) + ")");
      try {
        Sync(bad, "deltasync_push", hub.url("grp"));
      } catch (const std::exception& e) {
        if (std::string(e.what()).find("key columns") != std::string::npos) ++refused;
      }
    }
  });
  for (auto& t : threads) t.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  const int pushes = kWriters * kPushes;
  EXPECT_LT(ms, pushes * 1000) << "pushes to one node did not share commits";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(behind.load(), 0) << "a push was answered before its commit";
  EXPECT_EQ(refused.load(), kPushes);
  deltasync::test::PgConn db("ds_group_hub");
  EXPECT_EQ(std::stoi(db.Text("SELECT count(*) FROM hub_rows")), pushes * kRows + 1);
  EXPECT_EQ(db.Text("SELECT count(DISTINCT seq) = count(*) FROM hub_rows"), "t");
  Site fresh;
  fresh.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  Sync(fresh, "deltasync_pull", hub.url("grp"), 1000);
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM g"), pushes * kRows + 1);
}

// Requests for a node that exists write nothing: many pushes and pulls through two hubs (one
// started after the node was made, so it knows nothing in memory) take no node id and no
// table id; only the first request for each node and table does.
TEST(PgHubs, ARequestForAnExistingNodeWritesNothing) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_quiet_hub");
  HubProcess hub1(opts);
  Site s;
  s.Exec("CREATE TABLE q(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('q');");
  s.Exec("INSERT INTO q VALUES (0, 'first')");
  Sync(s, "deltasync_push", hub1.url("quiet"));
  HubProcess hub2(opts);
  deltasync::test::PgConn db("ds_quiet_hub");
  std::string nodes_before = db.Text("SELECT last_value FROM hub_nodes_id_seq");
  std::string tables_before = db.Text("SELECT last_value FROM hub_tables_id_seq");
  std::string node_row = db.Text("SELECT xmin::text || ':' || id FROM hub_nodes WHERE name = 'quiet'");
  for (int k = 1; k <= 10; ++k) {
    s.Exec("INSERT INTO q VALUES (" + std::to_string(k) + ", 'v')");
    Sync(s, "deltasync_sync", (k % 2 ? hub2 : hub1).url("quiet"));
  }
  Site other;
  other.Exec("CREATE TABLE q(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('q');");
  for (int k = 0; k < 5; ++k) Sync(other, "deltasync_pull", (k % 2 ? hub2 : hub1).url("quiet"));
  EXPECT_EQ(other.Int("SELECT count(*) FROM q"), 11);
  EXPECT_EQ(db.Text("SELECT last_value FROM hub_nodes_id_seq"), nodes_before) << "a request took a node id";
  EXPECT_EQ(db.Text("SELECT last_value FROM hub_tables_id_seq"), tables_before) << "a push took a table id";
  EXPECT_EQ(db.Text("SELECT xmin::text || ':' || id FROM hub_nodes WHERE name = 'quiet'"), node_row);
  EXPECT_EQ(db.Text("SELECT count(*) FROM hub_nodes"), "1");
  EXPECT_EQ(db.Text("SELECT seq FROM hub_seqs s JOIN hub_nodes n ON n.id = s.node WHERE n.name = 'quiet'"), "11");
}

// One node's lock, held by someone else, stops no other node: a push to another node and a
// pull of the held node go through at once, /metrics answers, and a push to the held node
// gets a 503 after the hub's bound (20 s), not a hang; it goes through once the lock is gone.
TEST(PgHubs, NodesNeverWaitForEachOtherAndALockWaitIsBounded) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_apart_hub");
  opts.config_json = R"({"admin_token": "adm"})";  // per-node series in /metrics
  HubProcess hub(opts);
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('p');");
  a.Exec("INSERT INTO p VALUES (1, 'a')");
  b.Exec("INSERT INTO p VALUES (1, 'b')");
  Sync(a, "deltasync_push", hub.url("held"));
  Sync(b, "deltasync_push", hub.url("free"));
  deltasync::test::PgConn holder("ds_apart_hub");
  holder.Exec("BEGIN");
  holder.Exec("SELECT seq FROM hub_seqs WHERE node = (SELECT id FROM hub_nodes WHERE name = 'held') FOR UPDATE");
  b.Exec("INSERT INTO p VALUES (2, 'b')");
  auto t0 = std::chrono::steady_clock::now();
  Sync(b, "deltasync_push", hub.url("free"));
  Site reader;
  reader.Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('p');");
  Sync(reader, "deltasync_pull", hub.url("held"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 3000) << "another node's push or a pull waited for the held node";
  EXPECT_EQ(reader.Int("SELECT count(*) FROM p"), 1);
  httplib::Client cli("127.0.0.1", hub.port());
  auto metrics = cli.Get("/metrics", httplib::Headers{{"Authorization", "Bearer adm"}});
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200) << metrics->body;
  EXPECT_NE(metrics->body.find("deltasync_node_seq{node=\"free\"} 2"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("deltasync_node_rows{node=\"held\"} 1"), std::string::npos) << metrics->body;
  a.Exec("INSERT INTO p VALUES (2, 'a')");
  t0 = std::chrono::steady_clock::now();
  std::string err;
  try {
    Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 5000}};
    a.Text("SELECT deltasync_push(?1, ?2)", {Value::Text(hub.url("held")), Value::Text(o.dump())});
  } catch (const std::exception& e) {
    err = e.what();
  }
  ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("503"), std::string::npos) << err;
  EXPECT_GE(ms, 15000);
  EXPECT_LT(ms, 40000);
  holder.Exec("ROLLBACK");
  EXPECT_EQ(Json::parse(Sync(a, "deltasync_push", hub.url("held")))["rows"], 1);
}

// A version 2 store (the node's sequence in hub_nodes) opened by this hub: the sequence moves
// to hub_seqs, the old column goes (a version 2 hub left running fails instead of handing
// out numbers), and the node's next push continues from where it was.
TEST(PgHubs, AVersion2StoreKeepsEachNodesSequence) {
  std::string url = FreshDatabase("ds_v2_hub");
  {
    deltasync::test::PgConn db("ds_v2_hub");
    db.Exec("CREATE TABLE hub_settings (name text PRIMARY KEY, value text NOT NULL);"
            "INSERT INTO hub_settings VALUES ('schema_version', '2'), ('hub_id', 'a1000000-0000-4000-8000-000000000001');"
            "CREATE TABLE hub_nodes (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, seq bigint NOT NULL DEFAULT 0);"
            "INSERT INTO hub_nodes (name, seq) VALUES ('old', 7);");
  }
  HubProcess::Options opts;
  opts.db = url;
  HubProcess hub(opts);
  deltasync::test::PgConn db("ds_v2_hub");
  EXPECT_EQ(db.Text("SELECT value FROM hub_settings WHERE name = 'schema_version'"), "4");
  EXPECT_EQ(db.Text("SELECT count(*) FROM hub_site_contacts"), "0") << "a store with no rows has no site to seed";
  EXPECT_EQ(db.Text("SELECT count(*) FROM information_schema.columns WHERE table_name = 'hub_nodes' AND column_name = 'seq'"), "0");
  EXPECT_EQ(db.Text("SELECT seq FROM hub_seqs JOIN hub_nodes ON id = node WHERE name = 'old'"), "7");
  Site s;
  s.Exec("CREATE TABLE o(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('o'); INSERT INTO o VALUES (1, 'x');");
  Sync(s, "deltasync_push", hub.url("old"));
  EXPECT_EQ(db.Text("SELECT seq FROM hub_seqs JOIN hub_nodes ON id = node WHERE name = 'old'"), "8");
}

// PostgreSQL down for longer than the hub's retries: the hub answers 503 (the site gets a
// deltasync error naming the URL, its pending changes stay), keeps running, and serves again
// once PostgreSQL is back.
TEST(PgHubs, DatabaseDownIsA503ThenServiceResumes) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_down_hub");
  HubProcess hub(opts);
  Site s;
  s.Exec("CREATE TABLE d(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('d'); INSERT INTO d VALUES (1, 'a');");
  Sync(s, "deltasync_push", hub.url("down"));
  s.Exec("INSERT INTO d VALUES (2, 'b')");
  ASSERT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress stop -m fast"), 0);
  std::string err;
  try {
    Sync(s, "deltasync_push", hub.url("down"));
  } catch (const std::exception& e) {
    err = e.what();
  }
  ASSERT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress start"), 0);
  EXPECT_NE(err.find("deltasync: " + hub.url("down") + "/push: hub answered 503"), std::string::npos) << err;
  EXPECT_TRUE(hub.running());
  EXPECT_EQ(Json::parse(Sync(s, "deltasync_push", hub.url("down")))["rows"], 1) << "the pending row is sent now";
  Site other;
  other.Exec("CREATE TABLE d(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('d');");
  Sync(other, "deltasync_pull", hub.url("down"));
  EXPECT_EQ(other.Int("SELECT count(*) FROM d"), 2);
}

namespace {
size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}
// Syncs each (site, url) until all hold the same rows of `query`, for up to 30 s.
bool ConvergeThrough(const std::vector<std::pair<Site*, std::string>>& sites, const char* query) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    for (auto& [site, url] : sites) {
      try {
        Sync(*site, "deltasync_sync", url);
      } catch (const std::exception&) {
      }
    }
    bool same = true;
    for (auto& [site, url] : sites) same = same && site->Rows(query) == sites[0].first->Rows(query);
    if (same) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}
}  // namespace

// Two hub processes on one PostgreSQL store, both configured with the node's upstream: one
// runs the link (its lease: a session advisory lock), the other stands by; when the runner is
// killed the other takes over, and when PostgreSQL restarts under the link it resumes. Sites
// on both sides converge throughout (hub upstream, docs/live-sync.md).
TEST(PgHubs, UpstreamLinkRunsInOneProcessAndMovesOnAKill) {
  HubProcess::Options up_opts;
  up_opts.db = FreshDatabase("ds_upstream_top");
  HubProcess hq(up_opts);
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_upstream_shop");
  opts.config_json = R"({"nodes": {"shop": {"upstream": {"url": ")" + hq.url("hq") +
                     R"(", "max_backoff_ms": 500, "wait_ms": 5000}}}})";
  HubProcess shop1(opts), shop2(opts);
  const char* kTable = "CREATE TABLE d(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('d');";
  const char* kRows = "SELECT id, v FROM d ORDER BY id";
  Site office, till1, till2;
  for (Site* s : {&office, &till1, &till2}) s->Exec(kTable);
  std::vector<std::pair<Site*, std::string>> sites = {
      {&office, hq.url("hq")}, {&till1, shop1.url("shop")}, {&till2, shop2.url("shop")}};
  office.Exec("INSERT INTO d VALUES (1, 'office')");
  till1.Exec("INSERT INTO d VALUES (2, 'till 1')");
  till2.Exec("INSERT INTO d VALUES (3, 'till 2')");
  ASSERT_TRUE(ConvergeThrough(sites, kRows)) << shop1.log() << shop2.log();
  const std::string kRuns = "keeping it in sync with", kStandby = "standing by";
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Count(shop1.log() + shop2.log(), kStandby) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Count(shop1.log() + shop2.log(), kRuns), 1u) << shop1.log() << shop2.log();
  EXPECT_EQ(Count(shop1.log() + shop2.log(), kStandby), 1u) << shop1.log() << shop2.log();
  bool first_runs = Count(shop1.log(), kRuns) == 1;
  HubProcess& runner = first_runs ? shop1 : shop2;
  HubProcess& standby = first_runs ? shop2 : shop1;
  auto link_state = [](const HubProcess& hub) {
    httplib::Client cli("127.0.0.1", hub.port());
    auto r = cli.Get("/nodes/shop/status");
    return r && r->status == 200 ? Json::parse(r->body)["upstream"].value("state", std::string()) : std::string("?");
  };
  EXPECT_EQ(link_state(standby), "standby");
  EXPECT_EQ(link_state(runner), "connected");

  runner.Kill();
  Site& survivor_till = first_runs ? till2 : till1;
  std::vector<std::pair<Site*, std::string>> left = {{&office, hq.url("hq")}, {&survivor_till, standby.url("shop")}};
  office.Exec("INSERT INTO d VALUES (4, 'office after the kill')");
  survivor_till.Exec("INSERT INTO d VALUES (5, 'till after the kill')");
  ASSERT_TRUE(ConvergeThrough(left, kRows)) << standby.log();
  EXPECT_EQ(Count(standby.log(), kRuns), 1u) << "the standby did not take the link over\n" << standby.log();

  // PostgreSQL restarts under the link: its lease is lost with the session, then taken again.
  ASSERT_EQ(std::system("pg_ctlcluster \"${PGVERSION:-15}\" regress restart -m fast"), 0);
  office.Exec("INSERT INTO d VALUES (6, 'office after the restart')");
  survivor_till.Exec("INSERT INTO d VALUES (7, 'till after the restart')");
  ASSERT_TRUE(ConvergeThrough(left, kRows)) << standby.log();
  EXPECT_EQ(office.Rows(kRows).size(), 7u);
  EXPECT_GE(Count(standby.log(), kRuns), 2u) << standby.log();
}
