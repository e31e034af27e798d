// deltasync_apply a page at a time (deltasync.apply_page_rows, docs/postgresql.md "Apply")
// against one statement per row: the same random payloads applied into databases that
// differ only in the page size end with the same base tables, shadow tables, quarantine,
// kept cells, sequences and db_version, and each apply reports the same counts (or fails
// with the same error).
//
// The payloads are made here, not collected: random keys from small pools (rows met again
// within and across payloads), causal lengths (deletes, new lives), clocks from three sites,
// subsets of columns (defaults, a serial column no payload writes), values a NOT NULL or
// CHECK constraint refuses (the quarantine, and the redo one row at a time), a table with a
// second unique index (applied one row at a time on both), parent and child tables with a
// foreign key (children held for a missing parent, removed with a deleted one), and now and
// then a column this site does not have (kept cells). Clocks run ahead of the wall clock,
// so the local changes an apply makes (removed children) get the same clock everywhere.
//
// DELTASYNC_PROPERTY_CASES (default 3) sets the number of cases and DELTASYNC_PROPERTY_SEED
// the first seed; a failure names the seed that reproduces it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "pg_e2e/pg_site.hpp"

using deltasync::test::PgConn;
using deltasync::test::PgSite;
using Json = nlohmann::json;

namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

const char* kSchema =
    "CREATE TABLE t1 (id bigint PRIMARY KEY, a text, b integer, c bytea, n bigserial);"
    "CREATE TABLE t2 (k1 text, k2 integer, v text NOT NULL DEFAULT 'd', w integer CHECK (w >= 0),"
    " PRIMARY KEY (k1, k2));"
    "CREATE TABLE t3 (id integer PRIMARY KEY, u text UNIQUE, n integer);"
    "CREATE TABLE p (id integer PRIMARY KEY, name text);"
    "CREATE TABLE c (id integer PRIMARY KEY, pid integer REFERENCES p (id) ON DELETE CASCADE, x text);"
    "SELECT deltasync_enable('t1'); SELECT deltasync_enable('t2'); SELECT deltasync_enable('t3');"
    "SELECT deltasync_enable('p'); SELECT deltasync_enable('c');";

const std::vector<std::string> kSites = {"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                                         "33333333-3333-4333-8333-333333333333"};

class PayloadMaker {
 public:
  explicit PayloadMaker(uint32_t seed) : rng_(seed) {
    using namespace std::chrono;
    now_ms_ = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }

  Json Make() {
    Json tables = Json::array();
    std::vector<int> order = {0, 1, 2, 3, 4};
    std::shuffle(order.begin(), order.end(), rng_);
    for (int t : order)
      if (Pick(4) != 0) tables.push_back(Table(t));
    return {{"format", "deltasync"}, {"version", 1},   {"site", kSites[0]}, {"since", 0},
            {"until", 0},            {"sites", kSites}, {"tables", tables}};
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  // A clock 10 to 60 s ahead of the wall clock at the start.
  int64_t Hlc() { return ((now_ms_ + 10000 + Pick(50000)) << 16) | Pick(4); }

  Json Text(const char* prefix, int pool) {
    if (Pick(8) == 0) return nullptr;
    return std::string(prefix) + std::to_string(Pick(pool)) + (Pick(5) == 0 ? " \xc3\xa9t\xc3\xa9" : "");
  }

  Json Value(int table, const std::string& col) {
    if (table == 0) {
      if (col == "a") return Text("a", 50);
      if (col == "b") return Pick(6) == 0 ? Json(nullptr) : Json(Pick(1000) - 500);
      if (col == "c") return Pick(6) == 0 ? Json(nullptr) : Json{{"blob", Pick(2) ? "AP8=" : ""}};
      return "not a column here";  // zz
    }
    if (table == 1) {
      if (col == "v") return Pick(10) == 0 ? Json(nullptr) : Text("v", 9);  // NULL: refused (NOT NULL)
      return Pick(8) == 0 ? Json(-1) : Json(Pick(100));                      // w; -1: refused (CHECK)
    }
    if (table == 2) return col == "u" ? Text("u", 12) : Json(Pick(100));
    if (table == 3) return Text("name", 20);
    if (col == "pid") return Pick(6) == 0 ? Json(nullptr) : Json(1 + Pick(8));
    return Text("x", 30);
  }

  Json Table(int table) {
    static const char* names[] = {"t1", "t2", "t3", "p", "c"};
    std::vector<std::string> pk, cols;
    switch (table) {
      case 0: pk = {"id"}, cols = {"a", "b", "c"}; break;
      case 1: pk = {"k1", "k2"}, cols = {"v", "w"}; break;
      case 2: pk = {"id"}, cols = {"u", "n"}; break;
      case 3: pk = {"id"}, cols = {"name"}; break;
      default: pk = {"id"}, cols = {"pid", "x"}; break;
    }
    if (table == 0 && Pick(10) == 0) cols.push_back("zz");  // kept as pending cells
    Json rows = Json::array();
    int n = 1 + Pick(table == 0 ? 60 : 15);
    for (int r = 0; r < n; ++r) {
      Json key;
      if (table == 0) key = Json::array({1 + Pick(80)});
      else if (table == 1) key = Json::array({"k" + std::to_string(Pick(5)), Pick(4)});
      else key = Json::array({1 + Pick(table == 2 ? 20 : 8)});
      int cl = 1 + Pick(5);
      Json changes = Json::array();
      if (cl % 2 == 1)
        for (size_t c = 0; c < cols.size(); ++c) {
          if (Pick(3) == 0) continue;
          int ccl = cl > 2 && Pick(4) == 0 ? cl - 2 : cl;
          changes.push_back(Json::array({c, Value(table, cols[c]), Hlc(), Pick(3), ccl}));
        }
      rows.push_back({{"key", key}, {"cl", cl}, {"changes", changes}});
    }
    return {{"name", names[table]}, {"pk", pk}, {"columns", cols}, {"rows", rows}};
  }

  std::mt19937 rng_;
  int64_t now_ms_ = 0;
};

// Everything an apply leaves in a database, as text.
std::string State(PgConn& db) {
  std::string out;
  auto add = [&](const std::string& what, const std::string& sql) {
    out += "== " + what + "\n";
    for (const auto& row : db.Rows(sql)) {
      for (const auto& v : row) out += v + "|";
      out += "\n";
    }
  };
  add("t1", "SELECT * FROM t1 ORDER BY id");
  add("t2", "SELECT * FROM t2 ORDER BY k1, k2");
  add("t3", "SELECT * FROM t3 ORDER BY id");
  add("p", "SELECT * FROM p ORDER BY id");
  add("c", "SELECT * FROM c ORDER BY id");
  for (const auto& t : db.Rows("SELECT id, name FROM deltasync.tables ORDER BY id"))
    add("shadow " + t[1], "SELECT m::text FROM deltasync.meta_" + t[0] + " AS m ORDER BY 1");
  add("quarantine", "SELECT tbl, encode(key, 'hex'), changes, error FROM deltasync.quarantine ORDER BY 1, 2");
  add("pending", "SELECT tbl, col, encode(key, 'hex'), change FROM deltasync.pending ORDER BY 1, 2, 3");
  add("sequences", "SELECT last_value, is_called FROM t1_n_seq");
  add("db_version", "SELECT deltasync_db_version()");
  return out;
}

std::string Apply(PgConn& db, const std::string& payload) {
  try {
    return db.Text("SELECT deltasync_apply($1)::text", {payload});
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace

TEST(PgApplyPages, RandomPayloadsEndTheSameByPageAndByRow) {
  const int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 3);
  const auto first = static_cast<uint32_t>(EnvInt("DELTASYNC_PROPERTY_SEED", 20261202));
  std::map<std::string, int64_t> reached = {{"applied", 0}, {"ignored", 0},  {"quarantined", 0}, {"released", 0},
                                            {"held", 0},    {"orphans", 0}, {"kept", 0}};
  for (int64_t k = 0; k < cases; ++k) {
    const uint32_t seed = first + static_cast<uint32_t>(k);
    SCOPED_TRACE("DELTASYNC_PROPERTY_SEED=" + std::to_string(seed));
    // One statement per row; pages of 3 (runs and pages end mid-table, keys meet again
    // across pages); pages of the default size.
    PgSite by_row, small, large;
    std::vector<std::pair<PgSite*, std::string>> sites = {{&by_row, "0"}, {&small, "3"}, {&large, "1000"}};
    for (auto& [site, rows] : sites) {
      (*site)->Exec(kSchema);
      (*site)->Exec("SET deltasync.apply_page_rows = " + rows);
      ASSERT_EQ((*site)->Text("SHOW deltasync.apply_page_rows"), rows);
    }
    PayloadMaker maker(seed);
    for (int n = 0; n < 25; ++n) {
      std::string payload = maker.Make().dump();
      std::string want = Apply(*by_row, payload);
      ASSERT_EQ(Apply(*small, payload), want) << "payload " << n << ": " << payload;
      ASSERT_EQ(Apply(*large, payload), want) << "payload " << n << ": " << payload;
      if (want.rfind("error: ", 0) == 0) continue;
      Json r = Json::parse(want);
      for (auto& [what, count] : reached) count += r[what].get<int64_t>();
    }
    std::string want = State(*by_row);
    EXPECT_EQ(State(*small), want);
    EXPECT_EQ(State(*large), want);
  }
  // The payloads reach what they are meant to.
  for (const auto& [what, count] : reached) EXPECT_GT(count, 0) << what;
}
