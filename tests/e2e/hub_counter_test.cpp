// End to end: counter columns (docs/policies.md) through the real hub process — shops
// selling offline whose sales all count once synced, a delete and re-insert, a joining site,
// a site whose declaration disagrees, and random sales with random syncs that must add up.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kShop =
    "CREATE TABLE item(id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL);"
    "SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}');";

Json Opts(Json extra = Json::object()) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) o[it.key()] = it.value();
  return o;
}

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(options.dump())}));
}

std::string CallError(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  try {
    Call(s, fn, url, options);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

int64_t Stock(Site& s, const std::string& id = "apple") {
  return s.Int("SELECT stock FROM item WHERE id = '" + id + "'");
}

TEST(HubCounters, TwoShopsSellOfflineAndEverySaleCounts) {
  HubProcess hub;
  std::string url = hub.url("shops");
  Site a, b;
  a.Exec(kShop);
  b.Exec(kShop);
  a.Exec("INSERT INTO item VALUES ('apple', 'Apple', 100), ('pear', 'Pear', 20)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  EXPECT_EQ(Stock(b), 100);
  // Offline: A sells 2 then 1, B sells 4 (by counting what is left) and one pear by UPSERT.
  a.Exec("UPDATE item SET stock = stock - 2 WHERE id = 'apple'");
  a.Exec("UPDATE item SET stock = stock - 1 WHERE id = 'apple'");
  b.Exec("UPDATE item SET stock = 96 WHERE id = 'apple'");
  b.Exec("INSERT INTO item VALUES ('pear', 'Pear', 1) ON CONFLICT(id) DO UPDATE SET stock = stock - excluded.stock");
  // Back online, in both orders, each codec, pages of one row.
  Call(b, "deltasync_sync", url, Opts({{"codec", "json"}, {"batch_rows", 1}}));
  Call(a, "deltasync_sync", url, Opts({{"batch_rows", 1}}));
  Call(b, "deltasync_sync", url);
  for (Site* s : {&a, &b}) {
    EXPECT_EQ(Stock(*s), 100 - 3 - 4);
    EXPECT_EQ(Stock(*s, "pear"), 19);
  }
  // A site that joins later gets the same sums from the hub alone.
  Site c;
  c.Exec(kShop);
  Call(c, "deltasync_pull", url, Opts({{"batch_rows", 1}}));
  EXPECT_EQ(Stock(c), 93);
  EXPECT_EQ(Stock(c, "pear"), 19);
  // And its own sales count too.
  c.Exec("UPDATE item SET stock = stock - 10 WHERE id = 'pear'");
  for (int round = 0; round < 2; ++round)
    for (Site* s : {&c, &a, &b}) Call(*s, "deltasync_sync", url);
  for (Site* s : {&a, &b, &c}) EXPECT_EQ(Stock(*s, "pear"), 9);
  EXPECT_EQ(a.Rows("SELECT * FROM item ORDER BY id"), b.Rows("SELECT * FROM item ORDER BY id"));
  EXPECT_EQ(a.Rows("SELECT * FROM item ORDER BY id"), c.Rows("SELECT * FROM item ORDER BY id"));
}

TEST(HubCounters, ADeleteAndReinsertStartAFreshCountOnTheHubToo) {
  HubProcess hub;
  std::string url = hub.url("life");
  Site a, b, late;
  for (Site* s : {&a, &b, &late}) s->Exec(kShop);
  a.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  b.Exec("UPDATE item SET stock = stock - 3");  // the old life
  a.Exec("DELETE FROM item WHERE id = 'apple'");
  a.Exec("INSERT INTO item VALUES ('apple', 'Apple', 50)");
  Call(b, "deltasync_sync", url);
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  Call(late, "deltasync_pull", url);
  for (Site* s : {&a, &b, &late}) EXPECT_EQ(Stock(*s), 50);
}

TEST(HubCounters, ASiteThatDeclaresTheColumnOtherwiseGetsAClearError) {
  HubProcess hub;
  std::string url = hub.url("clash");
  Site a, plain;
  a.Exec(kShop);
  plain.Exec("CREATE TABLE item(id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL);"
             "SELECT deltasync_enable('item');");
  a.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10)");
  Call(a, "deltasync_push", url);
  std::string err = CallError(plain, "deltasync_pull", url);
  EXPECT_NE(err.find("deltasync: table \"item\": column \"stock\" merges as counter where the changes come from but "
                     "as lww here"),
            std::string::npos)
      << err;
  EXPECT_EQ(plain.Int("SELECT count(*) FROM item"), 0);
  plain.Exec("INSERT INTO item VALUES ('apple', 'Apple', 7)");
  err = CallError(plain, "deltasync_push", url);
  EXPECT_NE(err.find("column \"stock\" is held by this hub both as a counter and as a last-writer-wins value"),
            std::string::npos)
      << err;
  // Nothing of it was stored: the counter site still pulls its own sum.
  Site b;
  b.Exec(kShop);
  Call(b, "deltasync_pull", url);
  EXPECT_EQ(Stock(b), 10);
}

// Random sales, counts and UPSERTs on three shops with random partial syncs; after full
// syncs every count is the exact sum of every committed change made anywhere.
TEST(HubCounters, RandomSalesAndSyncsAddUp) {
  const char* env = std::getenv("DELTASYNC_E2E_CASES");
  int cases = env && *env ? std::atoi(env) : 10;
  HubProcess hub;
  for (int c = 0; c < cases; ++c) {
    uint64_t seed = 7000 + static_cast<uint64_t>(c);
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    std::string url = hub.url("rand" + std::to_string(seed));
    std::vector<std::unique_ptr<Site>> shops;
    for (int k = 0; k < 3; ++k) {
      shops.push_back(std::make_unique<Site>());
      shops.back()->Exec(kShop);
    }
    std::map<std::string, int64_t> expected;
    static const char* kIds[] = {"a", "b", "c"};
    for (int step = 0; step < 40; ++step) {
      Site& s = *shops[static_cast<size_t>(pick(3))];
      if (pick(3) == 0) {
        Call(s, pick(2) ? "deltasync_sync" : (pick(2) ? "deltasync_push" : "deltasync_pull"), url,
             Opts({{"batch_rows", 1 + pick(3)}}));
        continue;
      }
      std::string id = kIds[pick(3)];
      Value n = Value::Integer(pick(21) - 10);
      auto qty = [&] {
        auto rows = s.Rows("SELECT stock FROM item WHERE id = ?1", {Value::Text(id)});
        return rows.empty() ? int64_t{0} : rows[0][0].i;
      };
      int64_t before = qty();
      switch (pick(4)) {
        case 0: s.Rows("INSERT OR IGNORE INTO item VALUES (?1, 'x', ?2)", {Value::Text(id), n}); break;
        case 1: s.Rows("UPDATE item SET stock = stock + ?2 WHERE id = ?1", {Value::Text(id), n}); break;
        case 2: s.Rows("UPDATE item SET stock = ?2 WHERE id = ?1", {Value::Text(id), n}); break;
        default:
          s.Rows("INSERT INTO item VALUES (?1, 'u', ?2) ON CONFLICT(id) DO UPDATE SET stock = stock + excluded.stock",
                 {Value::Text(id), n});
      }
      expected[id] += qty() - before;
    }
    for (int round = 0; round < 2; ++round)
      for (auto& s : shops) Call(*s, "deltasync_sync", url);
    auto ref = shops[0]->Rows("SELECT * FROM item ORDER BY id");
    for (auto& s : shops) ASSERT_EQ(s->Rows("SELECT * FROM item ORDER BY id"), ref);
    for (const auto& row : ref) EXPECT_EQ(row[2].i, expected[row[0].s]) << row[0].s;
  }
}

}  // namespace
