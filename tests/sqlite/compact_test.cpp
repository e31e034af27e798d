// deltasync_compact() on a SQLite site without a hub (docs/operations.md, "Compaction on
// sites"): nothing is compacted unless direct_up_to says what the peers have; a grave keeps
// the causal length, so a late old-life change still loses and a re-insert here still wins;
// live rows keep every clock; bad options change nothing. The frontier with real hubs is
// tested end to end (tests/e2e/site_compact_test.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE item(id TEXT PRIMARY KEY, name TEXT, qty INTEGER);"
    "SELECT deltasync_enable('item');";
constexpr const char* kItems = "SELECT id, name, qty FROM item ORDER BY id";
constexpr const char* kMeta = "SELECT k0, cl, ver, hlc, site, clk FROM item__deltasync_meta ORDER BY k0";

Json Compact(Site& s, const std::string& options = "") {
  return Json::parse(options.empty() ? s.Text("SELECT deltasync_compact()")
                                     : s.Text("SELECT deltasync_compact(?1)", {Value::Text(options)}));
}

}  // namespace

TEST(SiteCompaction, NothingWithoutAHubUnlessAsked) {
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES ('x', 'one', 1), ('y', 'two', 2); DELETE FROM item WHERE id = 'x'");
  auto before = a.Rows(kMeta);
  Json r = Compact(a);
  EXPECT_EQ(r.at("graves"), 0);
  EXPECT_EQ(r.at("up_to"), 0);
  EXPECT_EQ(r.at("held_by"), "no hub");
  EXPECT_EQ(a.Rows(kMeta), before);
}

TEST(SiteCompaction, DirectUpToTurnsTombstonesAtOrBelowItIntoGraves) {
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES ('x', 'one', 1), ('y', 'two', 2), ('z', 'three', 3)");
  a.Exec("DELETE FROM item WHERE id = 'x'");
  int64_t first_delete = a.Int("SELECT deltasync_db_version()");
  a.Exec("DELETE FROM item WHERE id = 'z'");
  int64_t x_ver = a.Int("SELECT ver FROM item__deltasync_meta WHERE k0 = 'x'");
  ASSERT_LE(x_ver, first_delete);
  auto live = a.Rows("SELECT * FROM item__deltasync_meta WHERE k0 = 'y'");
  Json r = Compact(a, "{\"direct_up_to\": " + std::to_string(x_ver) + "}");
  EXPECT_EQ(r.at("graves"), 1) << r.dump();
  EXPECT_EQ(r.at("tables").at("item"), 1);
  EXPECT_EQ(r.at("held_by"), "direct_up_to");
  // x is a grave: causal length kept, clock gone; z (above the bound) and y (live) unchanged.
  EXPECT_EQ(a.Text("SELECT cl || ',' || ver || ',' || hlc || ',' || site || ',' || quote(clk) FROM "
                   "item__deltasync_meta"
                   " WHERE k0 = 'x'"),
            "2,1,0,0,NULL");
  EXPECT_GT(a.Int("SELECT ver FROM item__deltasync_meta WHERE k0 = 'z'"), 1);
  EXPECT_GT(a.Int("SELECT hlc FROM item__deltasync_meta WHERE k0 = 'z'"), 0);
  EXPECT_EQ(a.Rows("SELECT * FROM item__deltasync_meta WHERE k0 = 'y'"), live);
  // Again: nothing left to do.
  EXPECT_EQ(Compact(a, "{\"direct_up_to\": 1000000}").at("graves"), 1);  // z now
  EXPECT_EQ(Compact(a, "{\"direct_up_to\": 1000000}").at("graves"), 0);
}

// The heart of it: a peer that never saw the delete sends its old-life update later; the
// grave still makes it lose. A re-insert here starts a life above the delete, and wins on the
// peer; a grave is still sent by a payload from 0, so a fresh peer learns the delete.
TEST(SiteCompaction, AGraveStillDecidesLikeTheTombstone) {
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES ('x', 'one', 1), ('y', 'two', 2)");
  b.Apply(a.Changes());
  int64_t b_seen = b.Int("SELECT deltasync_db_version()");
  b.Exec("UPDATE item SET qty = 99 WHERE id = 'x'");  // made without seeing the delete
  a.Exec("DELETE FROM item WHERE id = 'x'");
  ASSERT_EQ(Compact(a, "{\"direct_up_to\": 1000000}").at("graves"), 1);

  a.Apply(b.Changes(b_seen));  // the late update of the old life
  EXPECT_EQ(a.Rows(kItems).size(), 1u) << "the late update brought the deleted row back";
  EXPECT_EQ(a.Int("SELECT cl FROM item__deltasync_meta WHERE k0 = 'x'"), 2);
  // A fresh peer reads everything from 0: the grave is a delete there.
  Site c;
  c.Exec(kSchema);
  c.Apply(b.Changes());  // c first holds b's old life of x
  ASSERT_EQ(c.Rows(kItems).size(), 2u);
  c.Apply(a.Changes());
  EXPECT_EQ(c.Rows(kItems), a.Rows(kItems));
  b.Apply(a.Changes());
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));

  // Re-inserted here after compaction: cl 3, above every site holding the delete.
  int64_t a_at = a.Int("SELECT deltasync_db_version()");
  a.Exec("INSERT INTO item VALUES ('x', 'again', 7)");
  EXPECT_EQ(a.Int("SELECT cl FROM item__deltasync_meta WHERE k0 = 'x'"), 3);
  b.Apply(a.Changes(a_at));
  c.Apply(a.Changes(a_at));
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(c.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Text("SELECT name FROM item WHERE id = 'x'"), "again");
  // An update of the new life after it merges as usual, and a delete of it compacts again.
  b.Exec("UPDATE item SET qty = 8 WHERE id = 'x'");
  a.Apply(b.Changes());
  EXPECT_EQ(a.Int("SELECT qty FROM item WHERE id = 'x'"), 8);
  a.Exec("DELETE FROM item WHERE id = 'x'");
  EXPECT_EQ(Compact(a, "{\"direct_up_to\": 1000000}").at("graves"), 1);
  EXPECT_EQ(a.Int("SELECT cl FROM item__deltasync_meta WHERE k0 = 'x'"), 4);
  b.Apply(a.Changes());
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
}

// Many tombstones, more than one batch, in a rowid table and a composite-key table.
TEST(SiteCompaction, BatchesCoverEveryTombstoneOfEveryTable) {
  Site a;
  a.Exec(
      "CREATE TABLE r(id INTEGER PRIMARY KEY, v); CREATE TABLE c(a TEXT, b INTEGER, v, PRIMARY KEY (a, b));"
      "SELECT deltasync_enable('r'), deltasync_enable('c');");
  a.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
      " INSERT INTO r SELECT i, i FROM n;"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
      " INSERT INTO c SELECT 'k' || (i % 7), i, i FROM n;"
      "DELETE FROM r WHERE id % 3 <> 0; DELETE FROM c WHERE b % 5 <> 0;");
  Json r = Compact(a, "{\"direct_up_to\": 100000000}");
  EXPECT_EQ(r.at("tables").at("r"), 2500 - 833);
  EXPECT_EQ(r.at("tables").at("c"), 2000);
  EXPECT_EQ(a.Int("SELECT count(*) FROM r__deltasync_meta WHERE (cl & 1) = 0 AND ver <> 1"), 0);
  EXPECT_EQ(a.Int("SELECT count(*) FROM c__deltasync_meta WHERE (cl & 1) = 0 AND hlc <> 0"), 0);
  EXPECT_EQ(a.Int("SELECT count(*) FROM c__deltasync_meta WHERE (cl & 1) = 1 AND hlc = 0"), 0);
  // Re-inserting every deleted key gives each a new life.
  a.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
      " INSERT INTO r SELECT i, -i FROM n WHERE i % 3 <> 0");
  EXPECT_EQ(a.Int("SELECT count(*) FROM r__deltasync_meta WHERE cl <> 1 AND cl <> 3"), 0);
  EXPECT_EQ(a.Int("SELECT count(*) FROM r__deltasync_meta WHERE cl = 3"), 2500 - 833);
}

TEST(SiteCompaction, BadOptionsAreRefusedChangingNothing) {
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES ('x', 'one', 1); DELETE FROM item");
  auto before = a.Rows(kMeta);
  for (const char* bad :
       {"{\"direct_up_to\": -1}", "{\"direct_up_to\": \"5\"}", "{\"up_to\": 5}", "[1]", "{"}) {
    std::string err = a.ExecError(std::string("SELECT deltasync_compact('") + bad + "')");
    EXPECT_EQ(err.rfind("deltasync:", 0), 0u) << bad << ": " << err;
  }
  EXPECT_EQ(a.ExecError("SELECT deltasync_compact(5)").rfind("deltasync:", 0), 0u);
  EXPECT_EQ(a.Rows(kMeta), before);
}
