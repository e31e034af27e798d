// Concurrent pushes into one hub (the SQLite store commits them in groups: one transaction,
// one fsync, a savepoint per push): every push that was acknowledged is there, in full; a
// push refused in the middle of a group takes nothing with it and spoils no other; the node's
// sequence numbers stay distinct. Runs on the PostgreSQL store too (e2e_hub_suite_on_pg_store).
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

std::string Push(Site& s, const std::string& url) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}, {"batch_rows", 5}};
  return s.Text("SELECT deltasync_push(?1, ?2)", {Value::Text(url), Value::Text(o.dump())});
}

}  // namespace

TEST(HubGroupCommit, ConcurrentPushesAllLandAndARefusedOneSpoilsNone) {
  HubProcess::Options opts;
  opts.db = "";  // a file: commits go to disk
  HubProcess hub(opts);
  std::string url = hub.url("grp");
  const int kWriters = 10, kRounds = 12, kRows = 7;
  std::vector<std::unique_ptr<Site>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<Site>());
    writers.back()->Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER, v TEXT); SELECT deltasync_enable('g');");
  }
  // Same table name, other key columns: the hub refuses each of its pushes (a 4xx), in
  // whatever group it lands.
  Site bad;
  bad.Exec("CREATE TABLE g(w INTEGER, id INTEGER, v TEXT, PRIMARY KEY (w, id)); SELECT deltasync_enable('g');");
  std::atomic<int> refused{0}, accepted_bad{0};
  std::atomic<bool> declared{false};  // a writer's push gave the node its key columns
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int r = 0; r < kRounds; ++r) {
        for (int k = 0; k < kRows; ++k) {
          int id = (w * kRounds + r) * kRows + k;
          writers[w]->Exec("INSERT INTO g VALUES (" + std::to_string(id) + ", " + std::to_string(w) + ", 'r" +
                           std::to_string(r) + "')");
        }
        Push(*writers[w], url);
        declared = true;
      }
    });
  }
  std::atomic<bool> writing{true};
  std::thread spoiler([&] {
    // Only after the node holds the writers' declaration: pushed first, the spoiler's
    // key would be the node's and every writer refused (it failed so in a CI rehearsal).
    while (!declared) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int r = 0; writing || r < 3; ++r) {
      bad.Exec("INSERT INTO g VALUES (-1, " + std::to_string(r) + ", 'bad')");
      try {
        Push(bad, url);
        ++accepted_bad;
      } catch (const std::exception& e) {
        if (std::string(e.what()).find("key columns") != std::string::npos) ++refused;
      }
    }
  });
  for (auto& t : threads) t.join();
  writing = false;
  spoiler.join();
  EXPECT_GE(refused.load(), 3);
  EXPECT_EQ(accepted_bad.load(), 0);
  Site fresh;
  fresh.Exec("CREATE TABLE g(id INTEGER PRIMARY KEY, w INTEGER, v TEXT); SELECT deltasync_enable('g');");
  Json o = {{"timeout_ms", 60000}, {"batch_rows", 100000}};
  fresh.Text("SELECT deltasync_pull(?1, ?2)", {Value::Text(url), Value::Text(o.dump())});
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM g"), kWriters * kRounds * kRows);
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM g WHERE v = 'bad' OR w < 0"), 0);
  for (int w = 0; w < kWriters; ++w)
    EXPECT_EQ(fresh.Int("SELECT count(*) FROM g WHERE w = " + std::to_string(w) + " AND v = 'r" +
                        std::to_string(kRounds - 1) + "'"),
              kRows)
        << "writer " << w;
  // Every changed row took its own number: the node's sequence is the count of rows.
  httplib::Client cli("127.0.0.1", hub.port());
  auto status = cli.Get("/nodes/grp/status");
  ASSERT_TRUE(status);
  ASSERT_EQ(status->status, 200) << status->body;
  EXPECT_EQ(Json::parse(status->body)["seq"], kWriters * kRounds * kRows);
}
