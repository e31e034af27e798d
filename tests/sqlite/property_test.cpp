// The heart of the suite: random writes on several sites, random pairwise and relayed
// exchanges, then all-to-all exchange, and every site must hold identical rows.
// DELTASYNC_PROPERTY_CASES (default 200) sets the number of cases, DELTASYNC_PROPERTY_SEED
// the first seed; a failure prints the seed that reproduces it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "random_writes.hpp"
#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::kRandomWriteSchema;
using deltasync::test::RandomWriter;
using deltasync::test::Site;

namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

class World {
 public:
  // With file_backed, each site is a database file written through two connections at
  // random, which exercises the version counter across connections.
  World(uint64_t seed, int n_sites, bool file_backed)
      : rng_(seed), cursors_(n_sites, std::vector<int64_t>(n_sites, 0)) {
    for (int k = 0; k < n_sites; ++k) {
      std::vector<std::unique_ptr<Site>> conns;
      if (file_backed) {
        std::string path = ::testing::TempDir() + "/property_" + std::to_string(seed) + "_" + std::to_string(k) + ".db";
        std::remove(path.c_str());
        files_.push_back(path);
        conns.push_back(std::make_unique<Site>(path));
        conns[0]->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;");
      } else {
        conns.push_back(std::make_unique<Site>());
      }
      conns[0]->Exec(kRandomWriteSchema);
      if (file_backed) {
        conns.push_back(std::make_unique<Site>(files_.back()));
        conns[1]->Exec("PRAGMA synchronous = OFF;");
      }
      sites_.push_back(std::move(conns));
    }
  }
  ~World() {
    sites_.clear();
    for (const auto& f : files_)
      for (const char* suffix : {"", "-wal", "-shm"}) std::remove((f + suffix).c_str());
  }

  void Step() {
    int pick = Pick(100);
    if (pick < 2) {
      // A migration every site runs before the next exchange: RENAME COLUMN.
      std::string next = "a" + std::to_string(++renames_);
      for (auto& conns : sites_) conns[0]->Exec("ALTER TABLE nn RENAME COLUMN " + writer_.nn_a + " TO " + next);
      writer_.nn_a = next;
    } else if (pick < 4) {
      // One site rebuilds nn the way ORMs change SQLite tables (same columns), then makes any
      // deltasync call, which follows the rebuild before the next write.
      Site& s = Conn(Pick(sites_.size()));
      const std::string& a = writer_.nn_a;
      s.Exec("BEGIN; CREATE TABLE new__nn(id INTEGER PRIMARY KEY, " + a + " TEXT NOT NULL, b INTEGER NOT NULL, c NOT NULL);"
             "INSERT INTO new__nn SELECT id, " + a + ", b, c FROM nn; DROP TABLE nn;"
             "ALTER TABLE new__nn RENAME TO nn; COMMIT; SELECT deltasync_status();");
    } else if (pick < 55) {
      writer_.Write(Conn(Pick(sites_.size())));
    } else if (pick < 85) {
      // Incremental exchange from x to y, from where y last heard from x.
      size_t x = Pick(sites_.size()), y = Pick(sites_.size());
      if (x == y) return;
      std::string payload = Conn(x).Changes(cursors_[x][y]);
      Conn(y).Apply(payload);
      cursors_[x][y] = Conn(x).Int("SELECT json_extract('" + EscapeQuotes(payload.substr(0, 400)) + "', '$.until')");
    } else {
      // Full exchange (everything x holds, any origin): the relay path.
      size_t x = Pick(sites_.size()), y = Pick(sites_.size());
      if (x != y) Conn(y).Apply(Conn(x).Changes(0));
    }
  }

  void ExchangeAll() {
    for (int round = 0; round < 2; ++round)
      for (size_t x = 0; x < sites_.size(); ++x)
        for (size_t y = 0; y < sites_.size(); ++y)
          if (x != y) Conn(y).Apply(Conn(x).Changes(0));
  }

  std::vector<std::vector<Value>> Rows(size_t k, const char* sql) { return sites_[k][0]->Rows(sql); }
  std::string Text(size_t k, const char* sql) { return sites_[k][0]->Text(sql); }
  size_t size() const { return sites_.size(); }

 private:
  static std::string EscapeQuotes(std::string s) {
    // The head of a payload holds "until"; cut it to a well-formed object for json_extract.
    size_t end = s.find(",\"sites\"");
    s = s.substr(0, end) + "}";
    return s;
  }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  Site& Conn(size_t site) { return *sites_[site][Pick(sites_[site].size())]; }

  std::mt19937_64 rng_;
  RandomWriter writer_{rng_};
  std::vector<std::vector<std::unique_ptr<Site>>> sites_;  // per site: its connections
  std::vector<std::string> files_;
  std::vector<std::vector<int64_t>> cursors_;
  int renames_ = 0;
};

}  // namespace

TEST(Convergence, RandomOperationsAndExchangesConverge) {
  int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 200);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261122);
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_PROPERTY_CASES=1");
    World w(seed, 4 + static_cast<int>(seed % 2), /*file_backed=*/seed % 4 == 3);
    std::mt19937_64 len(seed);
    int steps = 20 + static_cast<int>(len() % 60);
    // deltasync_checksum of two sites agrees exactly when their tracked rows do: before the
    // full exchange (sites differing or not, by chance) and after it.
    auto check_digests = [&](const char* when) {
      std::string ref = w.Text(0, "SELECT deltasync_checksum()");
      for (size_t k = 1; k < w.size(); ++k) {
        bool same_rows = true;
        for (const char* q : deltasync::test::kRandomWriteTables) same_rows &= w.Rows(k, q) == w.Rows(0, q);
        ASSERT_EQ(w.Text(k, "SELECT deltasync_checksum()") == ref, same_rows)
            << "checksums of sites 0 and " << k << " disagree with their rows " << when << ", seed " << seed;
      }
    };
    try {
      for (int s = 0; s < steps; ++s) w.Step();
      check_digests("before the full exchange");
      w.ExchangeAll();
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what();
    }
    for (const char* q : deltasync::test::kRandomWriteTables) {
      auto ref = w.Rows(0, q);
      for (size_t k = 1; k < w.size(); ++k) {
        ASSERT_EQ(w.Rows(k, q), ref) << "sites 0 and " << k << " differ after full exchange, seed " << seed << ": " << q;
      }
    }
    check_digests("after the full exchange");
  }
}

namespace {

// Sites on kConstraintSchema: random writes, random incremental and full exchanges.
class ConstraintWorld {
 public:
  ConstraintWorld(uint64_t seed, int n_sites) : rng_(seed), cursors_(n_sites, std::vector<int64_t>(n_sites, 0)) {
    for (int k = 0; k < n_sites; ++k) {
      sites_.push_back(std::make_unique<Site>());
      sites_.back()->Exec(deltasync::test::kConstraintSchema);
    }
  }

  void Step() {
    size_t x = Pick(sites_.size()), y = Pick(sites_.size());
    int pick = static_cast<int>(Pick(100));
    if (pick < 55) {
      writer_.WriteConstrained(*sites_[x]);
    } else if (x == y) {
      return;
    } else if (pick < 85) {
      int64_t until = sites_[x]->Int("SELECT deltasync_db_version()");
      Count(*sites_[y], sites_[y]->Apply(sites_[x]->Changes(cursors_[x][y])));
      cursors_[x][y] = until;
    } else {
      Count(*sites_[y], sites_[y]->Apply(sites_[x]->Changes(0)));
    }
  }

  void ExchangeAll() {
    for (int round = 0; round < 2; ++round)
      for (size_t x = 0; x < sites_.size(); ++x)
        for (size_t y = 0; y < sites_.size(); ++y)
          if (x != y) Count(*sites_[y], sites_[y]->Apply(sites_[x]->Changes(0)));
  }

  // What the applies reported: rows set aside, children the delete-wins policy removed.
  uint64_t quarantined = 0, orphans = 0;

  // What a user does about held rows: makes every sku it sees unique, on every site.
  void FixConflicts() {
    for (auto& s : sites_) s->Exec("UPDATE prod SET sku = 'S' || id WHERE sku <> 'S' || id");
  }

  Site& site(size_t k) { return *sites_[k]; }
  size_t size() const { return sites_.size(); }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  void Count(Site& s, const std::string& result) {
    auto row = s.Rows("SELECT json_extract(?1, '$.quarantined'), json_extract(?1, '$.orphans')", {Value::Text(result)});
    quarantined += static_cast<uint64_t>(row[0][0].i);
    orphans += static_cast<uint64_t>(row[0][1].i);
  }

  std::mt19937_64 rng_;
  RandomWriter writer_{rng_};
  std::vector<std::unique_ptr<Site>> sites_;
  std::vector<std::vector<int64_t>> cursors_;
};

}  // namespace

// Constraint conflicts (UNIQUE skus, lines of deleted orders) never stop an exchange; after
// the user fixes the skus and the sites exchange again, every site holds the same rows, no
// orphan and nothing held.
TEST(Convergence, ConstraintConflictsConvergeOnceTheDataIsFixed) {
  int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 200);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261122);
  uint64_t quarantined = 0, orphans = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_PROPERTY_CASES=1");
    ConstraintWorld w(seed, 3 + static_cast<int>(seed % 2));
    std::mt19937_64 len(seed);
    int steps = 20 + static_cast<int>(len() % 80);
    try {
      for (int s = 0; s < steps; ++s) w.Step();
      w.ExchangeAll();
      w.FixConflicts();
      w.ExchangeAll();
      quarantined += w.quarantined;
      orphans += w.orphans;
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what();
    }
    for (const char* q : deltasync::test::kConstraintTables) {
      auto ref = w.site(0).Rows(q);
      for (size_t k = 1; k < w.size(); ++k)
        ASSERT_EQ(w.site(k).Rows(q), ref) << "sites 0 and " << k << " differ, seed " << seed << ": " << q;
    }
    for (size_t k = 0; k < w.size(); ++k) {
      ASSERT_TRUE(w.site(k).Rows("PRAGMA foreign_key_check").empty()) << "orphan on site " << k << ", seed " << seed;
      ASSERT_EQ(w.site(k).Int("SELECT json_extract(deltasync_quarantine(), '$.held')"), 0)
          << "site " << k << " still holds rows, seed " << seed << ": " << w.site(k).Text("SELECT deltasync_quarantine()");
    }
  }
  // The histories must reach the cases under test, or the property says nothing.
  EXPECT_GT(quarantined, 0u);
  EXPECT_GT(orphans, 0u);
  std::printf("constraint property: %llu rows set aside, %llu children removed by the delete-wins policy\n",
              static_cast<unsigned long long>(quarantined), static_cast<unsigned long long>(orphans));
}

namespace {

// Sites one or more migrations apart: a global list of migrations, each adding a column to
// table m (by ALTER TABLE ADD COLUMN, or by the ORM rebuild), that every site runs in order
// at its own time; writes reach the new columns on the sites that have them, and their
// changes arrive at sites that do not have them yet.
class MigratingWorld {
 public:
  MigratingWorld(uint64_t seed, int n_sites)
      : rng_(seed), levels_(n_sites, 0), cursors_(n_sites, std::vector<int64_t>(n_sites, 0)) {
    for (int k = 0; k < n_sites; ++k) {
      sites_.push_back(std::make_unique<Site>());
      sites_.back()->Exec("CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('m');");
    }
  }

  void Step() {
    size_t x = Pick(sites_.size()), y = Pick(sites_.size());
    int pick = static_cast<int>(Pick(100));
    if (pick < 8) {
      Migrate(x);
    } else if (pick < 60) {
      Write(x);
    } else if (x == y) {
      return;
    } else if (pick < 85) {
      int64_t until = sites_[x]->Int("SELECT deltasync_db_version()");
      Count(sites_[y]->Apply(sites_[x]->Changes(cursors_[x][y])));
      cursors_[x][y] = until;
    } else {
      Count(sites_[y]->Apply(sites_[x]->Changes(0)));
    }
  }

  // Every site runs every migration any site ran, then all exchange everything.
  void MigrateAllAndExchange() {
    int top = *std::max_element(levels_.begin(), levels_.end());
    for (size_t k = 0; k < sites_.size(); ++k)
      while (levels_[k] < top) Migrate(k);
    for (int round = 0; round < 2; ++round)
      for (size_t x = 0; x < sites_.size(); ++x)
        for (size_t y = 0; y < sites_.size(); ++y)
          if (x != y) Count(sites_[y]->Apply(sites_[x]->Changes(0)));
  }

  // The rows of m on site k, one line each, every value quoted (storage class visible).
  std::string Rows(size_t k) {
    std::string row = "quote(id) || ' ' || quote(v)";
    for (int l = 1; l <= levels_[k]; ++l) row += " || ' ' || quote(" + Col(l) + ")";
    return sites_[k]->Text("SELECT group_concat(" + row + ", char(10)) FROM (SELECT * FROM m ORDER BY id)");
  }
  size_t size() const { return sites_.size(); }
  Site& site(size_t k) { return *sites_[k]; }
  uint64_t kept = 0, unkept = 0;

 private:
  static constexpr int kMigrations = 4;
  static std::string Col(int level) { return "c" + std::to_string(level); }
  // Migration k adds column c<k>; even ones with a default every site declares alike.
  static std::string ColDecl(int level) { return Col(level) + (level % 2 ? " TEXT" : " TEXT DEFAULT 'd'"); }

  void Migrate(size_t k) {
    if (levels_[k] >= kMigrations) return;
    Site& s = *sites_[k];
    int next = ++levels_[k];
    if (Pick(2) == 0) {
      s.Exec("ALTER TABLE m ADD COLUMN " + ColDecl(next));
    } else {
      std::string decl = "id INTEGER PRIMARY KEY, v TEXT", cols = "id, v";
      for (int l = 1; l < next; ++l) {
        decl += ", " + ColDecl(l);
        cols += ", " + Col(l);
      }
      // A rebuild cannot tell the values its copy put into columns deltasync has not seen
      // yet from writes made there before: writes to a column added by ALTER TABLE need a
      // deltasync call before the next rebuild (docs/architecture.md, "Schema changes").
      s.Exec("SELECT deltasync_status()");
      std::string fill = next % 2 ? "NULL" : "'d'";  // what the migration copies into the new column
      s.Exec("BEGIN; CREATE TABLE new__m(" + decl + ", " + ColDecl(next) + "); INSERT INTO new__m SELECT " + cols +
             ", " + fill + " FROM m; DROP TABLE m; ALTER TABLE new__m RENAME TO m; COMMIT;");
      s.Exec("SELECT deltasync_status()");  // deltasync follows a rebuild before the next write
    }
  }

  void Write(size_t k) {
    Site& s = *sites_[k];
    Value id = Value::Integer(static_cast<int64_t>(Pick(6)));
    Value val = Value::Text("s" + std::to_string(k) + "-" + std::to_string(++writes_));
    int what = static_cast<int>(Pick(10));
    if (what == 0) {
      s.Rows("DELETE FROM m WHERE id = ?1", {id});
    } else if (what < 4) {
      s.Rows("INSERT INTO m(id, v) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET v = excluded.v", {id, val});
    } else {
      // The newest columns most often: those that other sites may not have yet.
      std::string col = levels_[k] == 0 || Pick(3) == 0 ? "v" : Col(levels_[k] - static_cast<int>(Pick(levels_[k]) / 2));
      s.Rows("INSERT INTO m(id, " + col + ") VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET " + col + " = excluded." + col,
             {id, val});
    }
  }

  void Count(const std::string& result) {
    nlohmann::json r = nlohmann::json::parse(result);
    kept += r["kept"].get<uint64_t>();
    unkept += r["unkept"].get<uint64_t>();
  }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Site>> sites_;
  std::vector<int> levels_;  // migrations each site ran
  std::vector<std::vector<int64_t>> cursors_;
  int writes_ = 0;
};

}  // namespace

// Sites migrate at different times (ADD COLUMN or a rebuild, no deltasync_enable), changes of
// new columns arrive at sites that do not have them yet; once every site migrated and all
// exchanged, every site holds the same rows and keeps nothing.
TEST(Convergence, SitesMigratingAtDifferentTimesConverge) {
  int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 200);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261122);
  uint64_t kept = 0, unkept = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_PROPERTY_CASES=1");
    MigratingWorld w(seed, 3 + static_cast<int>(seed % 2));
    std::mt19937_64 len(seed);
    int steps = 30 + static_cast<int>(len() % 60);
    try {
      for (int s = 0; s < steps; ++s) w.Step();
      w.MigrateAllAndExchange();
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what();
    }
    auto ref = w.Rows(0);
    for (size_t k = 1; k < w.size(); ++k) ASSERT_EQ(w.Rows(k), ref) << "sites 0 and " << k << " differ, seed " << seed;
    for (size_t k = 0; k < w.size(); ++k)
      ASSERT_EQ(w.site(k).Int("SELECT count(*) FROM deltasync_pending"), 0) << "site " << k << ", seed " << seed;
    kept += w.kept;
    unkept += w.unkept;
  }
  // The histories must reach the case under test, or the property says nothing.
  EXPECT_GT(kept, 0u);
  EXPECT_GT(unkept, 0u);
  std::printf("migration property: %llu changes kept for columns a site lacked, %llu applied when they appeared\n",
              static_cast<unsigned long long>(kept), static_cast<unsigned long long>(unkept));
}

namespace {

// Sites with counter columns (docs/policies.md): `stock` is never deleted, so its counts
// must end as the exact sum of every committed change any site made (each measured on the
// writing site as after - before); `life` is also deleted, replaced and re-inserted, and
// must end identical everywhere.
constexpr const char* kCounterSchema =
    "CREATE TABLE stock(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL);"
    "CREATE TABLE life(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL DEFAULT 0, note TEXT);"
    "SELECT deltasync_enable('stock', '{\"columns\": {\"qty\": \"counter\"}}');"
    "SELECT deltasync_enable('life', '{\"columns\": {\"qty\": {\"policy\": \"counter\"}}}');";
constexpr const char* kCounterTables[] = {"SELECT * FROM stock ORDER BY id", "SELECT * FROM life ORDER BY id"};

class CounterWorld {
 public:
  CounterWorld(uint64_t seed, int n_sites) : rng_(seed), cursors_(n_sites, std::vector<int64_t>(n_sites, 0)) {
    for (int k = 0; k < n_sites; ++k) {
      sites_.push_back(std::make_unique<Site>());
      sites_.back()->Exec(kCounterSchema);
    }
  }

  void Step() {
    size_t x = Pick(sites_.size()), y = Pick(sites_.size());
    int pick = static_cast<int>(Pick(100));
    if (pick < 55) {
      Write(*sites_[x]);
    } else if (x == y) {
      return;
    } else if (pick < 85) {
      int64_t until = sites_[x]->Int("SELECT deltasync_db_version()");
      sites_[y]->Apply(sites_[x]->Changes(cursors_[x][y]));
      cursors_[x][y] = until;
    } else {
      sites_[y]->Apply(sites_[x]->Changes(0));
    }
  }

  void ExchangeAll() {
    for (int round = 0; round < 2; ++round)
      for (size_t x = 0; x < sites_.size(); ++x)
        for (size_t y = 0; y < sites_.size(); ++y)
          if (x != y) sites_[y]->Apply(sites_[x]->Changes(0));
  }

  // id -> the sum of every committed change of stock.qty, on any site.
  std::map<int64_t, int64_t> expected;
  uint64_t writes = 0;

  Site& site(size_t k) { return *sites_[k]; }
  size_t size() const { return sites_.size(); }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  int64_t Num() { return static_cast<int64_t>(Pick(21)) - 10; }

  int64_t StockQty(Site& s, int64_t id) {
    auto rows = s.Rows("SELECT qty FROM stock WHERE id = ?1", {Value::Integer(id)});
    return rows.empty() ? 0 : rows[0][0].i;
  }

  // One transaction (or statement) of random writes; the stock deltas count once committed.
  void Write(Site& s) {
    bool txn = Pick(4) == 0;
    if (txn) s.Exec("BEGIN");
    std::map<int64_t, int64_t> pending;
    int n = txn ? 1 + static_cast<int>(Pick(4)) : 1;
    for (int w = 0; w < n; ++w) {
      Value id = Value::Integer(static_cast<int64_t>(Pick(4)));
      Value num = Value::Integer(Num());
      int64_t before = StockQty(s, id.i);
      switch (Pick(12)) {
        case 0: s.Rows("INSERT OR IGNORE INTO stock VALUES (?1, 'item', ?2)", {id, num}); break;
        case 1: s.Rows("UPDATE stock SET qty = qty + ?2 WHERE id = ?1", {id, num}); break;
        case 2: s.Rows("UPDATE stock SET qty = ?2 WHERE id = ?1", {id, num}); break;
        case 3:
          s.Rows("INSERT INTO stock VALUES (?1, 'up', ?2) ON CONFLICT(id) DO UPDATE SET qty = qty + excluded.qty",
                 {id, num});
          break;
        case 4:
          s.Rows("INSERT INTO stock VALUES (?1, 'set', ?2) ON CONFLICT(id) DO UPDATE SET qty = excluded.qty, "
                 "name = 'set'",
                 {id, num});
          break;
        case 5: s.Rows("UPDATE stock SET name = ?2 WHERE id = ?1", {id, Value::Text("n" + std::to_string(Pick(3)))}); break;
        case 6: s.Rows("INSERT OR IGNORE INTO life VALUES (?1, ?2, 'x')", {id, num}); break;
        case 7: s.Rows("INSERT OR REPLACE INTO life VALUES (?1, ?2, 'r')", {id, num}); break;
        case 8: s.Rows("UPDATE life SET qty = qty + ?2 WHERE id = ?1", {id, num}); break;
        case 9: s.Rows("UPDATE life SET qty = ?2, note = 'u' WHERE id = ?1", {id, num}); break;
        case 10: s.Rows("DELETE FROM life WHERE id = ?1", {id}); break;
        default:
          s.Rows("INSERT INTO life VALUES (?1, ?2, 'up') ON CONFLICT(id) DO UPDATE SET qty = qty - excluded.qty",
                 {id, num});
      }
      pending[id.i] += StockQty(s, id.i) - before;
    }
    bool commit = !txn || Pick(5) != 0;
    if (txn) s.Exec(commit ? "COMMIT" : "ROLLBACK");
    if (!commit) return;
    ++writes;
    for (const auto& [id, d] : pending) expected[id] += d;
  }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Site>> sites_;
  std::vector<std::vector<int64_t>> cursors_;
};

}  // namespace

// Counters: random sales and counts on every site, random incremental, full and relayed
// exchanges; every site ends with identical rows, and each never-deleted count equals the
// exact sum of every change made to it anywhere.
TEST(Convergence, CountersAddUpEveryChangeOnEverySite) {
  int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 200);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261122);
  uint64_t checked = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_PROPERTY_CASES=1");
    CounterWorld w(seed, 3 + static_cast<int>(seed % 3));
    std::mt19937_64 len(seed);
    int steps = 20 + static_cast<int>(len() % 80);
    try {
      for (int s = 0; s < steps; ++s) w.Step();
      w.ExchangeAll();
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what();
    }
    for (const char* q : kCounterTables) {
      auto ref = w.site(0).Rows(q);
      for (size_t k = 1; k < w.size(); ++k)
        ASSERT_EQ(w.site(k).Rows(q), ref) << "sites 0 and " << k << " differ, seed " << seed << ": " << q;
    }
    for (const auto& row : w.site(0).Rows("SELECT id, qty FROM stock ORDER BY id")) {
      ASSERT_EQ(row[1].i, w.expected[row[0].i]) << "stock " << row[0].i << " is not the sum of its changes, seed " << seed;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);  // the histories must create rows, or the sum says nothing
}
