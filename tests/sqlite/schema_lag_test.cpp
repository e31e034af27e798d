// Sites on different versions of the schema (SPEC section 8): a change for a column a site
// does not have yet is kept and applied when the column appears; a column a site dropped
// keeps nothing; what an added column holds in existing rows was written by no one (a NULL
// has no version, a default the smallest real clock). Each test runs
// sites that exchange payloads directly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

using Json = nlohmann::json;

constexpr const char* kItem = "CREATE TABLE item(id INTEGER PRIMARY KEY, v TEXT NOT NULL); SELECT deltasync_enable('item');";

int64_t Pending(Site& s) { return s.Int("SELECT count(*) FROM deltasync_pending"); }

// An apply that changes nothing of the payload: merges in what the site kept, if it can.
std::string ApplyNothing(Site& s) {
  return s.Apply(R"({"format":"deltasync","version":1,"site":"00000000-0000-0000-0000-000000000001",)"
                 R"("since":0,"until":0,"sites":[],"tables":[]})");
}

}  // namespace

// The site a migration behind keeps the column's changes (newest only per cell) and merges
// them in when it adds the column; its own later write to the column wins over them.
TEST(SchemaLag, ChangesForAColumnNotHereAreKeptAndAppliedWhenItAppears) {
  Site a, b;
  a.Exec(kItem);
  b.Exec(kItem);
  a.Exec("ALTER TABLE item ADD COLUMN w TEXT; SELECT deltasync_status();");
  a.Exec("INSERT INTO item VALUES (1, 'one', 'w1'), (2, 'two', 'w2'), (3, 'three', NULL)");
  Json r = Json::parse(b.Apply(a.Changes(0)));
  EXPECT_EQ(r["kept"], 3);  // w of rows 1, 2 and 3 (NULL is a value too)
  EXPECT_EQ(r["untracked"], 0);
  EXPECT_EQ(b.Int("SELECT count(*) FROM item"), 3);
  a.Exec("UPDATE item SET w = 'w1 again' WHERE id = 1");
  for (int k = 0; k < 3; ++k) b.Apply(a.Changes(0));  // the same changes over and over
  EXPECT_EQ(Pending(b), 3) << "one kept cell per (table, key, column)";
  EXPECT_EQ(b.Int("SELECT json_extract(deltasync_status(), '$.kept')"), 3);
  EXPECT_EQ(b.Int("SELECT count(*) FROM deltasync_pending WHERE change LIKE '%w1 again%'"), 1);

  b.Exec("ALTER TABLE item ADD COLUMN w TEXT");
  b.Exec("UPDATE item SET w = 'B, after migrating' WHERE id = 2");  // before deltasync sees the column
  r = Json::parse(ApplyNothing(b));
  EXPECT_EQ(r["unkept"], 3);
  EXPECT_EQ(Pending(b), 0);
  EXPECT_EQ(b.Int("SELECT json_extract(deltasync_status(), '$.kept')"), 0);
  a.Apply(b.Changes(0));
  b.Apply(a.Changes(0));
  auto rows = a.Rows("SELECT * FROM item ORDER BY id");
  EXPECT_EQ(b.Rows("SELECT * FROM item ORDER BY id"), rows);
  EXPECT_EQ(a.Text("SELECT group_concat(coalesce(w, '-'), '|') FROM (SELECT w FROM item ORDER BY id)"),
            "w1 again|B, after migrating|-");
}

// The review's reproduction (two sites one migration apart: ADD COLUMN and RENAME COLUMN on
// one, a day later on the other) ends with identical rows.
TEST(SchemaLag, SitesOneMigrationApartConverge) {
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'one')");
  b.Apply(a.Changes(0));
  b.Exec("ALTER TABLE t ADD COLUMN w TEXT");
  b.Exec("UPDATE t SET w = 'from B' WHERE id = 1");
  b.Exec("ALTER TABLE t RENAME COLUMN v TO name");
  b.Exec("UPDATE t SET name = 'renamed on B' WHERE id = 1");
  a.Exec("INSERT INTO t VALUES (2, 'A, not migrated')");
  a.Apply(b.Changes(0));
  b.Apply(a.Changes(0));
  // A's change to v, made before A renamed it, lands in B's column name.
  EXPECT_EQ(b.Text("SELECT name FROM t WHERE id = 2"), "A, not migrated");
  a.Exec("ALTER TABLE t ADD COLUMN w TEXT; ALTER TABLE t RENAME COLUMN v TO name");
  a.Apply(b.Changes(0));
  b.Apply(a.Changes(0));
  EXPECT_EQ(a.Rows("SELECT * FROM t ORDER BY id"), b.Rows("SELECT * FROM t ORDER BY id"));
  EXPECT_EQ(a.Text("SELECT name || '/' || w FROM t WHERE id = 1"), "renamed on B/from B");
}

// The trap: a site that dropped a column keeps receiving other sites' cells of it (a hub
// keeps them forever). They are ignored, not kept: nothing grows.
TEST(SchemaLag, ADroppedColumnKeepsNothing) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, old TEXT); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'one', 'x')");
  b.Apply(a.Changes(0));
  // A drops column old the way ORMs do it on SQLite (a rebuild).
  a.Exec("BEGIN; CREATE TABLE new__t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO new__t SELECT id, v FROM t;"
         "DROP TABLE t; ALTER TABLE new__t RENAME TO t; COMMIT; SELECT deltasync_status();");
  for (int k = 0; k < 5; ++k) {
    b.Exec("UPDATE t SET old = 'o" + std::to_string(k) + "', v = 'v" + std::to_string(k) + "' WHERE id = 1");
    Json r = Json::parse(a.Apply(b.Changes(0)));
    EXPECT_EQ(r["kept"], 0);
    EXPECT_GE(r["untracked"], 1);
  }
  EXPECT_EQ(Pending(a), 0);
  EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 1"), "v4");
  // Adding the column again: it is not gone any more, and later changes of it apply.
  a.Exec("ALTER TABLE t ADD COLUMN old TEXT; SELECT deltasync_status();");
  b.Exec("UPDATE t SET old = 'back' WHERE id = 1");
  a.Apply(b.Changes(0));
  EXPECT_EQ(a.Text("SELECT old FROM t WHERE id = 1"), "back");
}

// What an added column holds in existing rows (its default, or NULL) was written by no one:
// it does not tie with the value a site ahead wrote under the row's clock, so the kept
// value wins; a site adding the column later sends the default under the smallest clock.
TEST(AddedColumn, ExistingRowsHoldTheNewColumnUnderTheSmallestClock) {
  Site ahead, behind;
  ahead.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT DEFAULT 'dflt'); SELECT deltasync_enable('t');");
  behind.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');");
  ahead.Exec("INSERT INTO t VALUES (1, 'one', 'real')");  // one insert: one clock for v and w
  behind.Apply(ahead.Changes(0));
  behind.Exec("INSERT INTO t VALUES (2, 'two')");
  behind.Exec("ALTER TABLE t ADD COLUMN w TEXT DEFAULT 'dflt'; SELECT deltasync_status();");
  // Before the kept cell is merged in, w travels for the rows that existed under hlc 1.
  Json changes = Json::parse(behind.Changes(0));
  int sent = 0;
  for (const auto& row : changes["tables"][0]["rows"])
    for (const auto& c : row["changes"])
      if (c[0] == 1) {
        EXPECT_EQ(c[1], "dflt") << row.dump();
        EXPECT_EQ(c[2], 65536) << row.dump();  // kAddedValueHlc
        ++sent;
      }
  EXPECT_EQ(sent, 2) << changes.dump();
  ApplyNothing(behind);
  EXPECT_EQ(behind.Text("SELECT w FROM t WHERE id = 1"), "real");
  ahead.Apply(behind.Changes(0));
  EXPECT_EQ(ahead.Rows("SELECT * FROM t ORDER BY id"), behind.Rows("SELECT * FROM t ORDER BY id"));
  // DROP COLUMN then ADD COLUMN of the same name: the re-added column does not inherit the
  // row's old clock either, so the value a site that kept the column holds wins.
  behind.Exec("BEGIN; CREATE TABLE new__t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO new__t SELECT id, v FROM t;"
              "DROP TABLE t; ALTER TABLE new__t RENAME TO t; COMMIT; SELECT deltasync_status();");
  behind.Exec("ALTER TABLE t ADD COLUMN w TEXT DEFAULT 'dflt'; SELECT deltasync_status();");
  EXPECT_EQ(behind.Text("SELECT w FROM t WHERE id = 1"), "dflt");
  behind.Apply(ahead.Changes(0));
  EXPECT_EQ(behind.Text("SELECT w FROM t WHERE id = 1"), "real");
  EXPECT_EQ(ahead.Rows("SELECT * FROM t ORDER BY id"), behind.Rows("SELECT * FROM t ORDER BY id"));
}

// A write to an added column made before any deltasync call saw the column is not lost: it
// becomes a local change when deltasync follows the ADD COLUMN.
TEST(AddedColumn, AWriteBeforeDeltasyncSawTheColumnIsSent) {
  Site a, b;
  for (Site* s : {&a, &b}) {
    s->Exec(kItem);
    s->Exec("ALTER TABLE item ADD COLUMN qty INTEGER DEFAULT '5'");  // a numeric default written as text
  }
  a.Exec("INSERT INTO item(id, v) VALUES (1, 'one'), (2, 'two')");
  b.Apply(a.Changes(0));
  int64_t cursor = a.Int("SELECT deltasync_db_version()");
  a.Exec("ALTER TABLE item ADD COLUMN note TEXT");
  a.Exec("UPDATE item SET note = 'written at once' WHERE id = 1");
  Json delta = Json::parse(a.Changes(cursor));
  ASSERT_EQ(delta["tables"][0]["rows"].size(), 1u) << delta.dump();
  EXPECT_EQ(delta["tables"][0]["rows"][0]["key"][0], 1);
  b.Apply(delta.dump());
  b.Exec("ALTER TABLE item ADD COLUMN note TEXT");
  ApplyNothing(b);
  EXPECT_EQ(b.Rows("SELECT * FROM item ORDER BY id"), a.Rows("SELECT * FROM item ORDER BY id"));
  EXPECT_EQ(b.Text("SELECT note FROM item WHERE id = 1"), "written at once");
}

// Issue 9 (gap C): ADD COLUMN ... DEFAULT on one site, without the default on another (NULL
// there), and with another default on a third: every site ends with the same values, a NULL
// nobody wrote loses to a default, two defaults tie-break by site, and a real write later
// wins over all of them, in any order of exchange.
TEST(AddedColumn, SitesThatAddedTheColumnWithDifferentDefaultsConverge) {
  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kItem);
  a.Exec("INSERT INTO item VALUES (1, 'one'), (2, 'two')");
  b.Apply(a.Changes(0));
  c.Apply(a.Changes(0));
  a.Exec("ALTER TABLE item ADD COLUMN qty INTEGER NOT NULL DEFAULT 100; SELECT deltasync_status();");
  b.Exec("ALTER TABLE item ADD COLUMN qty INTEGER; SELECT deltasync_status();");
  auto all = [&] {
    for (int round = 0; round < 2; ++round)
      for (Site* from : {&a, &b, &c})
        for (Site* to : {&a, &b, &c})
          if (from != to) to->Apply(from->Changes(0));
  };
  b.Apply(a.Changes(0));
  EXPECT_EQ(b.Text("SELECT group_concat(qty) FROM (SELECT qty FROM item ORDER BY id)"), "100,100");
  c.Exec("ALTER TABLE item ADD COLUMN qty INTEGER DEFAULT 5; SELECT deltasync_status();");
  all();
  std::string qa = a.Text("SELECT group_concat(qty) FROM (SELECT qty FROM item ORDER BY id)");
  EXPECT_TRUE(qa == "100,100" || qa == "5,5") << qa;
  for (Site* s : {&b, &c}) EXPECT_EQ(s->Rows("SELECT * FROM item ORDER BY id"), a.Rows("SELECT * FROM item ORDER BY id"));
  b.Exec("UPDATE item SET qty = 7 WHERE id = 2");
  all();
  for (Site* s : {&a, &b, &c}) EXPECT_EQ(s->Text("SELECT qty FROM item WHERE id = 2"), "7");
  for (Site* s : {&b, &c}) EXPECT_EQ(s->Rows("SELECT * FROM item ORDER BY id"), a.Rows("SELECT * FROM item ORDER BY id"));
}
