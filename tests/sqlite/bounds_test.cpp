// A causal length or clock beyond what merge arithmetic can advance is refused by
// deltasync_apply with a deltasync: error, and the database stays exactly as it was; at the
// bound, a later local delete still gives an integer, even causal length.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Every row of every table of the database (internal ones too), in a stable order.
std::string Dump(Site& s) {
  std::string out;
  for (const auto& name : s.Rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) {
    out += "== " + name[0].s + "\n";
    for (const auto& row : s.Rows("SELECT * FROM \"" + name[0].s + "\" ORDER BY 1, 2")) {
      for (const Value& v : row) out += DebugString(v) + " | ";
      out += "\n";
    }
  }
  return out;
}

// The error deltasync_apply(payload) raises ("" when it succeeds).
std::string ApplyError(Site& s, const std::string& payload) {
  try {
    s.Apply(payload);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

struct Pair {
  Pair() {
    for (Site* s : {&a, &b}) {
      s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');");
      // No drift limit in the way: the bound itself must refuse what follows.
      s->Exec("INSERT OR REPLACE INTO deltasync_settings VALUES ('max_clock_drift_ms', 9223372036854775807)");
    }
    a.Exec("INSERT INTO t VALUES (1, 'one'), (2, 'two'); DELETE FROM t WHERE id = 2;");
    b.Exec("INSERT INTO t VALUES (7, 'b''s own');");
  }
  // a's changes as a JSON document (row 1 live, row 2 deleted).
  Json Doc() { return Json::parse(a.Changes(0)); }
  static Json& Row(Json& doc, int64_t id) {
    for (Json& r : doc["tables"][0]["rows"])
      if (r["key"][0] == id) return r;
    throw std::runtime_error("no row " + std::to_string(id));
  }
  Site a, b;
};

TEST(SqliteBounds, ApplyRefusesCausalLengthOrClockBeyondTheBoundAndChangesNothing) {
  Pair w;
  std::string before = Dump(w.b), db_version = w.b.Text("SELECT deltasync_db_version()");
  struct Case {
    std::string what;
    std::function<void(Json&)> mutate;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"deleted row at 2^63 - 1", [](Json& d) { Pair::Row(d, 2)["cl"] = kInt64Max - 1; }, "causal length"},
      {"live row at 2^63 - 1",
       [](Json& d) {
         Json& r = Pair::Row(d, 1);
         r["cl"] = kInt64Max;
         for (Json& c : r["changes"]) c[4] = kInt64Max;
       },
       "causal length"},
      {"row one past 2^62", [](Json& d) { Pair::Row(d, 2)["cl"] = deltasync::kMaxCausalLength + 2; }, "causal length"},
      {"clock one past the bound",
       [](Json& d) {
         for (Json& c : Pair::Row(d, 1)["changes"]) c[2] = deltasync::kMaxHlc + 1;
       },
       "clock"},
      {"clock in the year 4200",
       [](Json& d) {
         for (Json& c : Pair::Row(d, 1)["changes"]) c[2] = ((uint64_t{1} << 46) + 31556952000) << 16;
       },
       "clock"},
  };
  for (const Case& c : cases) {
    Json doc = w.Doc();
    c.mutate(doc);
    std::string err = ApplyError(w.b, doc.dump());
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << c.what << ": " << err;
    EXPECT_NE(err.find(c.needle), std::string::npos) << c.what << ": " << err;
    EXPECT_NE(err.find("beyond the largest accepted"), std::string::npos) << c.what << ": " << err;
    EXPECT_EQ(Dump(w.b), before) << c.what;
    EXPECT_EQ(w.b.Text("SELECT deltasync_db_version()"), db_version) << c.what;
  }
  // The same payload within the bound applies.
  Json ok = w.Doc();
  Json r = Json::parse(w.b.Apply(ok.dump()));
  EXPECT_GT(r["applied"].get<int64_t>(), 0) << r.dump();
  EXPECT_EQ(w.b.Text("SELECT v FROM t WHERE id = 1"), "one");
}

// At the bound, the arithmetic a site does locally stays integer: a delete gives 2^62, a
// re-insert 2^62 + 1 (never the REAL an overflow made). What goes past the bound that way is
// refused by the next site like any other value past it, cleanly.
TEST(SqliteBounds, AtTheBoundLocalDeleteAndReinsertStayIntegers) {
  Pair w;
  Json doc = w.Doc();
  Json& live = Pair::Row(doc, 1);
  live["cl"] = deltasync::kMaxCausalLength - 1;  // the last odd causal length accepted
  for (Json& c : live["changes"]) c[4] = deltasync::kMaxCausalLength - 1;
  w.b.Apply(doc.dump());
  ASSERT_EQ(w.b.Text("SELECT v FROM t WHERE id = 1"), "one");
  w.b.Exec("DELETE FROM t WHERE id = 1");
  auto row_of = [&](Json out, int64_t id) {
    for (Json& t : out["tables"])
      for (Json& r : t["rows"])
        if (r["key"][0] == id) return r;
    return Json();
  };
  Json gone = row_of(Json::parse(w.b.Changes(0)), 1);
  ASSERT_TRUE(gone.is_object());
  ASSERT_TRUE(gone["cl"].is_number_integer()) << gone.dump();
  EXPECT_EQ(gone["cl"].get<int64_t>(), deltasync::kMaxCausalLength);  // even: deleted, exactly
  w.a.Apply(w.b.Changes(0));  // the delete, at the bound, travels
  EXPECT_EQ(w.a.Text("SELECT count(*) FROM t WHERE id = 1"), "0");
  w.b.Exec("INSERT INTO t VALUES (1, 'again')");
  Json back = row_of(Json::parse(w.b.Changes(0)), 1);
  ASSERT_TRUE(back["cl"].is_number_integer()) << back.dump();
  EXPECT_EQ(back["cl"].get<int64_t>(), deltasync::kMaxCausalLength + 1);
  std::string before = Dump(w.a);
  std::string err = ApplyError(w.a, w.b.Changes(0));
  EXPECT_NE(err.find("deltasync: invalid payload: table \"t\": causal length 4611686018427387905"), std::string::npos)
      << err;
  EXPECT_EQ(Dump(w.a), before);
}

}  // namespace
