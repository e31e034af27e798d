// Several hub processes sharing one PostgreSQL store (SPEC section 6): eight SQLite sites,
// split between two `deltasync serve` processes on the same database, write and sync
// concurrently; PostgreSQL is restarted in the middle; after a full sync every site holds
// the same rows. Runs under pg_virtualenv (ctest e2e_pg_hubs).
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

// Concurrent pushes to one node through two hubs commit out of order; a puller paging all
// along never skips a row (the node row lock makes commits follow the sequence).
TEST(PgHubs, ConcurrentPushesThroughTwoHubsAreNeverSkippedByAPuller) {
  HubProcess::Options opts;
  opts.db = FreshDatabase("ds_gap_hub");
  HubProcess hub1(opts), hub2(opts);
  const int kWriters = 6, kRows = 200, kPerPush = 10;
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
  for (bool last = false; !last;) {
    last = running == 0;
    Sync(reader, "deltasync_pull", hub1.url("gap"), 3);
  }
  for (auto& t : threads) t.join();
  Sync(reader, "deltasync_pull", hub2.url("gap"), 1000);  // a no-op if nothing was skipped ...
  EXPECT_EQ(reader.Int("SELECT count(*) FROM g"), kWriters * kRows);
  Site fresh;  // ... and a fresh site sees the same through either hub
  fresh.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER); SELECT deltasync_enable('g');");
  Sync(fresh, "deltasync_pull", hub2.url("gap"), 1000);
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM g"), kWriters * kRows);
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
