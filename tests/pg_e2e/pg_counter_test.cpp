// Counter columns (docs/policies.md) across engines through a real hub (`deltasync serve`):
// two SQLite shops and a PostgreSQL shop sell stock offline, sync in random order, and all
// show the same stock, equal to the start minus every sale. Label e2e (MixedCounters.*).
//
// DELTASYNC_E2E_CASES (default 4) sets the number of random cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::PgConn;
using deltasync::test::PgSite;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kSqliteShop =
    "CREATE TABLE item(id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL DEFAULT 0);"
    "SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}');";
constexpr const char* kPgShop =
    "CREATE TABLE item(id text PRIMARY KEY, name text NOT NULL, stock bigint NOT NULL DEFAULT 0);"
    "SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}');";

const Json kOpts = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};

// Three shops: 0 and 1 SQLite files, 2 a PostgreSQL database.
struct Shops {
  Site a, b;
  PgSite pg;
  std::string url;

  explicit Shops(std::string hub_url) : url(std::move(hub_url)) {
    a.Exec(kSqliteShop);
    b.Exec(kSqliteShop);
    pg->Exec(kPgShop);
  }

  void Call(int shop, const std::string& fn, Json opts = kOpts) {
    if (shop < 2) {
      Site& s = shop == 0 ? a : b;
      s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(opts.dump())});
    } else {
      pg->Text("SELECT " + fn + "($1, $2::jsonb)::text", {url, opts.dump()});
    }
  }

  // Runs a write statement ($1 the id, $2 a number) on a shop.
  void Write(int shop, const std::string& sqlite_sql, const std::string& pg_sql, const std::string& id, int64_t n) {
    if (shop < 2) (shop == 0 ? a : b).Rows(sqlite_sql, {Value::Text(id), Value::Integer(n)});
    else pg->Rows(pg_sql, {id, std::to_string(n)});
  }

  // The stock of row `id` on a shop (0 when there is no row).
  int64_t Stock(int shop, const std::string& id) {
    if (shop < 2) {
      auto rows = (shop == 0 ? a : b).Rows("SELECT stock FROM item WHERE id = ?1", {Value::Text(id)});
      return rows.empty() ? 0 : rows[0][0].i;
    }
    auto rows = pg->Rows("SELECT stock FROM item WHERE id = $1", {id});
    return rows.empty() ? 0 : std::stoll(rows[0][0]);
  }

  // Every row as "id|name|stock", in id order.
  std::vector<std::string> Rows(int shop) {
    std::vector<std::string> out;
    if (shop < 2) {
      for (const auto& r : (shop == 0 ? a : b).Rows("SELECT id, name, stock FROM item ORDER BY id"))
        out.push_back(r[0].s + "|" + r[1].s + "|" + std::to_string(r[2].i));
    } else {
      for (const auto& r : pg->Rows("SELECT id, name, stock FROM item ORDER BY id COLLATE \"C\""))
        out.push_back(r[0] + "|" + r[1] + "|" + r[2]);
    }
    return out;
  }
};

int64_t Cases() {
  const char* env = std::getenv("DELTASYNC_E2E_CASES");
  return env && *env ? std::atoll(env) : 4;
}

// The stock is loaded on the PostgreSQL shop; each shop sells offline in its own way (stock -
// n, a count of what is left, an UPSERT); then they sync in a random order, twice round.
TEST(MixedCounters, ThreeShopsOnTwoEnginesSellOfflineAndEverySaleCounts) {
  HubProcess hub;
  for (int64_t c = 0; c < Cases(); ++c) {
    uint64_t seed = 14000 + static_cast<uint64_t>(c);
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Shops shops(hub.url("shops" + std::to_string(seed)));
    shops.pg->Exec("INSERT INTO item VALUES ('apple', 'Apple', 100), ('pear', 'Pear', 20)");
    shops.Call(2, "deltasync_sync");
    shops.Call(0, "deltasync_sync");
    shops.Call(1, "deltasync_sync");
    for (int s = 0; s < 3; ++s) ASSERT_EQ(shops.Stock(s, "apple"), 100) << "shop " << s;
    // Offline.
    shops.a.Exec("UPDATE item SET stock = stock - 2 WHERE id = 'apple'");
    shops.a.Exec("UPDATE item SET stock = stock - 1 WHERE id = 'apple'");
    shops.b.Exec("UPDATE item SET stock = 96 WHERE id = 'apple'");  // a count: 4 sold here
    shops.b.Exec("INSERT INTO item VALUES ('pear', 'Pear', 2) ON CONFLICT(id) DO UPDATE SET stock = stock - excluded.stock");
    shops.pg->Exec("UPDATE item SET stock = stock - 5 WHERE id = 'apple'");
    shops.pg->Exec("INSERT INTO item VALUES ('apple', 'Apple', 1) ON CONFLICT (id) DO UPDATE SET stock = item.stock - excluded.stock");
    shops.pg->Exec("UPDATE item SET stock = 17 WHERE id = 'pear'");  // a count: 3 pears sold here
    std::vector<int> order = {0, 1, 2};
    for (int round = 0; round < 2; ++round) {
      std::shuffle(order.begin(), order.end(), rng);
      for (int s : order) shops.Call(s, "deltasync_sync", {{"timeout_ms", 60000}, {"batch_rows", 1 + rng() % 3}});
    }
    for (int s = 0; s < 3; ++s) {
      EXPECT_EQ(shops.Stock(s, "apple"), 100 - 3 - 4 - 6) << "shop " << s;
      EXPECT_EQ(shops.Stock(s, "pear"), 20 - 2 - 3) << "shop " << s;
      EXPECT_EQ(shops.Rows(s), shops.Rows(0)) << "shop " << s;
    }
  }
}

// Random sales, counts, inserts and UPSERTs on the three shops with random partial syncs
// (push, pull or both, small pages); after full syncs every shop holds the same rows and each
// stock is the exact sum of every change made anywhere.
TEST(MixedCounters, RandomSalesAndSyncsOnBothEnginesAddUp) {
  HubProcess hub;
  for (int64_t c = 0; c < Cases(); ++c) {
    uint64_t seed = 14100 + static_cast<uint64_t>(c);
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    Shops shops(hub.url("rand" + std::to_string(seed)));
    std::map<std::string, int64_t> expected;
    static const char* kIds[] = {"a", "b", "c"};
    for (int step = 0; step < 45; ++step) {
      int s = pick(3);
      if (pick(3) == 0) {
        const char* fn = pick(2) ? "deltasync_sync" : (pick(2) ? "deltasync_push" : "deltasync_pull");
        shops.Call(s, fn, {{"timeout_ms", 60000}, {"batch_rows", 1 + pick(3)}});
        continue;
      }
      std::string id = kIds[pick(3)];
      int64_t n = pick(21) - 10;
      int64_t before = shops.Stock(s, id);
      switch (pick(4)) {
        case 0:
          shops.Write(s, "INSERT OR IGNORE INTO item VALUES (?1, 'x', ?2)",
                      "INSERT INTO item VALUES ($1, 'x', $2::bigint) ON CONFLICT (id) DO NOTHING", id, n);
          break;
        case 1:
          shops.Write(s, "UPDATE item SET stock = stock + ?2 WHERE id = ?1",
                      "UPDATE item SET stock = stock + $2::bigint WHERE id = $1", id, n);
          break;
        case 2:
          shops.Write(s, "UPDATE item SET stock = ?2 WHERE id = ?1", "UPDATE item SET stock = $2::bigint WHERE id = $1",
                      id, n);
          break;
        default:
          shops.Write(s,
                      "INSERT INTO item VALUES (?1, 'u', ?2) ON CONFLICT(id) DO UPDATE SET stock = stock + excluded.stock",
                      "INSERT INTO item VALUES ($1, 'u', $2::bigint) ON CONFLICT (id) DO UPDATE SET stock = item.stock + "
                      "excluded.stock",
                      id, n);
      }
      expected[id] += shops.Stock(s, id) - before;
    }
    for (int round = 0; round < 2; ++round)
      for (int s = 0; s < 3; ++s) shops.Call(s, "deltasync_sync");
    std::vector<std::string> ref = shops.Rows(0);
    for (int s = 1; s < 3; ++s) ASSERT_EQ(shops.Rows(s), ref) << "shop " << s;
    for (const auto& [id, sum] : expected) EXPECT_EQ(shops.Stock(0, id), sum) << id;
    EXPECT_FALSE(ref.empty());
  }
}

}  // namespace
