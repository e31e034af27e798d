// Loading a newer SQLite module keeps a site's metadata (SPEC section 8): a database file
// written by deltasync 0.1.0 (commit 3a93a47, schema_version 1; tests/fixtures/sqlite_v1.db,
// made by tests/fixtures/make_sqlite_v1.sql) opened with the extension as built now.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A private copy of the fixture: the test writes to it.
std::string CopyOfFixture(const std::string& name) {
  std::string from = std::string(DELTASYNC_FIXTURES) + "/" + name;
  std::string to = testing::TempDir() + "/deltasync_upgrade_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(to, std::ios::binary) << Slurp(from);
  return to;
}

// A payload in one canonical text, whatever its producer's spelling of it.
std::string Canonical(const std::string& payload) {
  return deltasync::EncodeJson(deltasync::DecodeJson(payload));
}

TEST(SqliteUpgrade, AVersion1FileKeepsItsMetadataAndKeepsTracking) {
  std::string path = CopyOfFixture("sqlite_v1.db");
  const std::string before = Slurp(std::string(DELTASYNC_FIXTURES) + "/sqlite_v1.changes.json");
  {
    Site s(path);
    // Every change, clock, causal length and origin reads back exactly as 0.1.0 wrote them.
    EXPECT_EQ(Canonical(s.Changes(0)), Canonical(before));
    Json status = Json::parse(s.Text("SELECT deltasync_status()"));
    ASSERT_EQ(status["tables"].size(), 3u) << status.dump();
    for (const Json& t : status["tables"]) EXPECT_EQ(t["state"], "tracked") << t.dump();
    ASSERT_EQ(status["hubs"].size(), 1u) << status.dump();
    EXPECT_EQ(status["hubs"][0]["push_cursor"], 640);
    EXPECT_EQ(status["hubs"][0]["pull_cursor"], 8);
    EXPECT_EQ(status["pending_changes"], 0);
    EXPECT_EQ(status["site_id"], Json::parse(before)["site"]);

    // New writes are captured on top, with versions past the old ones.
    s.Exec("UPDATE product SET stock = stock - 1 WHERE id = 1");
    s.Exec("INSERT INTO line VALUES ('o1', 3, 4)");
    s.Exec("DELETE FROM product WHERE id = 2");
    deltasync::Payload news = deltasync::DecodeJson(s.Changes(640));
    size_t rows = 0;
    for (const auto& t : news.tables) rows += t.rows.size();
    EXPECT_EQ(rows, 3u);
    EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["pending_changes"].get<int64_t>(), 3);
  }
  // Reopened (a second connection, as an application has many), and synced into a fresh
  // site of today's version: the same rows.
  Site s(path);
  Site fresh;
  fresh.Exec(
      "CREATE TABLE product (id BIGINT PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, price REAL, "
      "stock INTEGER NOT NULL);"
      "CREATE TABLE \"order\" (id TEXT PRIMARY KEY, note TEXT);"
      "CREATE TABLE line (order_id TEXT NOT NULL, n INTEGER NOT NULL, qty INTEGER NOT NULL, PRIMARY KEY (order_id, n));"
      "SELECT deltasync_enable('product'); SELECT deltasync_enable('order'); SELECT deltasync_enable('line');");
  fresh.Apply(s.Changes(0));
  for (const char* q : {"SELECT * FROM product ORDER BY id", "SELECT * FROM \"order\" ORDER BY id",
                        "SELECT * FROM line ORDER BY order_id, n"})
    EXPECT_EQ(fresh.Rows(q), s.Rows(q)) << q;
  EXPECT_EQ(fresh.Int("SELECT stock FROM product WHERE id = 1"), 7);
  EXPECT_EQ(fresh.Int("SELECT count(*) FROM product WHERE id = 2"), 0);
  // And back: the old file takes the fresh site's write.
  fresh.Exec("UPDATE product SET name = 'crab apple' WHERE id = 1");
  s.Apply(fresh.Changes(0));
  EXPECT_EQ(s.Text("SELECT name FROM product WHERE id = 1"), "crab apple");
  std::remove(path.c_str());
}

}  // namespace
