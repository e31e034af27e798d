// Constraint conflicts (docs/applications.md, "Constraints"): a row a constraint refuses is
// held in quarantine and retried, the rest of the page applies; a child whose parent was
// deleted concurrently is removed (the delete wins), on every site, with foreign_keys on.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

constexpr const char* kShop =
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE product(id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, price INTEGER NOT NULL CHECK (price >= 0));"
    "CREATE TABLE tag(name TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, note TEXT NOT NULL);"
    "CREATE TABLE line(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,"
    " qty INTEGER NOT NULL);"
    "CREATE TABLE memo(id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id) ON DELETE SET NULL, body TEXT);"
    "SELECT deltasync_enable('product'), deltasync_enable('tag'), deltasync_enable('orders'),"
    " deltasync_enable('line'), deltasync_enable('memo');";

constexpr const char* kTables[] = {"SELECT * FROM product ORDER BY id", "SELECT * FROM tag ORDER BY name",
                                   "SELECT * FROM orders ORDER BY id", "SELECT * FROM line ORDER BY id",
                                   "SELECT * FROM memo ORDER BY id"};

class Constraints : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Site* s : All()) s->Exec(kShop);
  }
  std::vector<Site*> All() { return {&A, &B, &C}; }
  static std::string Send(Site& from, Site& to) { return to.Apply(from.Changes(0)); }
  void SyncAll() {
    for (int round = 0; round < 2; ++round)
      for (Site* x : All())
        for (Site* y : All())
          if (x != y) Send(*x, *y);
  }
  void ExpectConverged() {
    for (const char* q : kTables) {
      auto ref = A.Rows(q);
      EXPECT_EQ(B.Rows(q), ref) << q;
      EXPECT_EQ(C.Rows(q), ref) << q;
    }
    for (Site* s : All()) {
      EXPECT_TRUE(s->Rows("PRAGMA foreign_key_check").empty()) << "an orphan is left";
      EXPECT_EQ(s->Int("SELECT json_extract(deltasync_quarantine(), '$.held')"), 0);
    }
  }
  static void Later() { std::this_thread::sleep_for(std::chrono::milliseconds(3)); }
  static int64_t Field(Site& s, const std::string& json, const char* path) {
    return s.Int("SELECT json_extract('" + json + "', '" + path + "')");
  }

  Site A, B, C;
};

TEST_F(Constraints, TwoSitesWithOneSkuHoldTheOtherRowAndTheRestSyncs) {
  A.Exec("INSERT INTO product VALUES (1, 'NEW-1', 10)");
  B.Exec("INSERT INTO product VALUES (2, 'NEW-1', 20); INSERT INTO tag VALUES ('sale')");

  std::string r = Send(B, A);
  EXPECT_EQ(Field(A, r, "$.quarantined"), 1) << r;
  EXPECT_EQ(Field(A, r, "$.held"), 1) << r;
  EXPECT_EQ(A.Text("SELECT name FROM tag"), "sale") << "the rest of the page applies";
  EXPECT_EQ(A.Int("SELECT count(*) FROM product"), 1);

  std::string q = A.Text("SELECT deltasync_quarantine()");
  EXPECT_EQ(A.Text("SELECT json_extract(?1, '$.rows[0].table')", {Value::Text(q)}), "product") << q;
  EXPECT_EQ(A.Text("SELECT json_extract(?1, '$.rows[0].key')", {Value::Text(q)}), "[2]") << q;
  std::string error = A.Text("SELECT json_extract(?1, '$.rows[0].error')", {Value::Text(q)});
  EXPECT_NE(error.find("UNIQUE constraint failed: product.sku"), std::string::npos) << error;
  EXPECT_NE(error.find("product"), std::string::npos) << error;
  EXPECT_FALSE(A.Text("SELECT json_extract(?1, '$.rows[0].since')", {Value::Text(q)}).empty());
  EXPECT_EQ(A.Int("SELECT json_extract(deltasync_status(), '$.quarantined')"), 1);
  // Nothing of the held row was adopted: its changes are not served onward from here.
  EXPECT_EQ(A.Int("SELECT count(*) FROM product__deltasync_meta"), 1);

  // Every later apply retries it, and it keeps failing until the data is fixed.
  Send(B, A);
  EXPECT_EQ(A.Int("SELECT json_extract(deltasync_quarantine(), '$.held')"), 1);

  SyncAll();  // B and C hold theirs too: C holds one of the two, B holds A's
  EXPECT_EQ(B.Int("SELECT json_extract(deltasync_quarantine(), '$.held')"), 1);

  // The user renames one sku; the next sync everywhere releases the held rows.
  Later();
  A.Exec("UPDATE product SET sku = 'NEW-2' WHERE id = 1");
  SyncAll();
  ExpectConverged();
  EXPECT_EQ(A.Rows("SELECT id, sku FROM product ORDER BY id"),
            (std::vector<std::vector<Value>>{{Value::Integer(1), Value::Text("NEW-2")},
                                             {Value::Integer(2), Value::Text("NEW-1")}}));
}

TEST_F(Constraints, AHeldRowMergesByTheNormalRulesWhenItFinallyApplies) {
  A.Exec("INSERT INTO product VALUES (1, 'X', 10)");
  B.Exec("INSERT INTO product VALUES (2, 'X', 20)");
  Send(B, A);  // A holds B's row 2
  Later();
  B.Exec("UPDATE product SET price = 25 WHERE id = 2");  // a later change of the held row
  Send(B, A);
  EXPECT_EQ(A.Int("SELECT json_extract(deltasync_quarantine(), '$.held')"), 1);
  Later();
  A.Exec("DELETE FROM product WHERE id = 1");
  std::string r = Send(B, A);
  EXPECT_EQ(Field(A, r, "$.released"), 1) << r;
  EXPECT_EQ(A.Rows("SELECT * FROM product"),
            (std::vector<std::vector<Value>>{{Value::Integer(2), Value::Text("X"), Value::Integer(25)}}));
  SyncAll();
  ExpectConverged();
}

TEST_F(Constraints, ACheckConstraintHoldsTheRowUntilALaterValuePasses) {
  // A site a migration ahead: its CHECK refuses what B writes.
  A.Exec("CREATE TABLE strict(id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v < 100), w TEXT NOT NULL);"
         "SELECT deltasync_enable('strict');");
  B.Exec("CREATE TABLE strict(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, w TEXT NOT NULL);"
         "SELECT deltasync_enable('strict'); INSERT INTO strict VALUES (1, 500, 'w')");
  std::string r = Send(B, A);
  EXPECT_EQ(Field(A, r, "$.quarantined"), 1) << r;
  std::string error = A.Text("SELECT json_extract(deltasync_quarantine(), '$.rows[0].error')");
  EXPECT_NE(error.find("CHECK constraint failed"), std::string::npos) << error;
  Later();
  int64_t before = B.Int("SELECT deltasync_db_version()");
  B.Exec("UPDATE strict SET v = 5 WHERE id = 1");
  // The update alone is a partial row here (w is NOT NULL): merged with the held changes it
  // is a whole row, and it applies.
  r = A.Apply(B.Changes(before));
  EXPECT_EQ(Field(A, r, "$.held"), 0) << r;
  EXPECT_EQ(A.Rows("SELECT * FROM strict"), B.Rows("SELECT * FROM strict"));
}

TEST_F(Constraints, AConcurrentDeleteOfTheParentRemovesTheNewChildEverywhere) {
  A.Exec("INSERT INTO orders VALUES (1, 'o'); INSERT INTO line VALUES (10, 1, 1); INSERT INTO memo VALUES (7, 1, 'm')");
  SyncAll();
  Later();
  A.Exec("DELETE FROM orders WHERE id = 1");  // cascades to line 10, sets memo 7's order NULL
  B.Exec("INSERT INTO line VALUES (11, 1, 2); INSERT INTO memo VALUES (8, 1, 'n')");

  // B learns of the delete while it holds line 11: the delete wins, and B's removal of line
  // 11 is a change of its own that reaches every site.
  std::string r = Send(A, B);
  EXPECT_GE(Field(B, r, "$.orphans"), 2) << r;
  EXPECT_EQ(B.Int("SELECT count(*) FROM line"), 0);
  EXPECT_EQ(B.Rows("SELECT id, order_id FROM memo ORDER BY id"),
            (std::vector<std::vector<Value>>{{Value::Integer(7), Value::Null()}, {Value::Integer(8), Value::Null()}}));
  SyncAll();
  ExpectConverged();
  EXPECT_EQ(C.Int("SELECT count(*) FROM line"), 0);
  EXPECT_EQ(C.Int("SELECT count(*) FROM memo WHERE order_id IS NULL"), 2);
}

TEST_F(Constraints, TheNewChildReachingTheDeletingSiteIsRemovedThere) {
  A.Exec("INSERT INTO orders VALUES (1, 'o')");
  SyncAll();
  Later();
  A.Exec("DELETE FROM orders WHERE id = 1");
  B.Exec("INSERT INTO line VALUES (11, 1, 2)");
  std::string r = Send(B, A);  // A sees a line for an order it deleted
  EXPECT_EQ(Field(A, r, "$.orphans"), 1) << r;
  EXPECT_EQ(A.Int("SELECT count(*) FROM line"), 0);
  EXPECT_TRUE(A.Rows("PRAGMA foreign_key_check").empty());
  SyncAll();
  ExpectConverged();
}

TEST_F(Constraints, AChildWhoseParentHasNotArrivedWaitsForIt) {
  A.Exec("INSERT INTO orders VALUES (1, 'o')");
  int64_t v = A.Int("SELECT deltasync_db_version()");
  A.Exec("INSERT INTO line VALUES (10, 1, 3)");
  // C gets the line first (the later changes only): it is held, not orphaned.
  std::string r = C.Apply(A.Changes(v));
  EXPECT_EQ(Field(C, r, "$.held"), 1) << r;
  EXPECT_EQ(C.Int("SELECT count(*) FROM line"), 0);
  std::string error = C.Text("SELECT json_extract(deltasync_quarantine(), '$.rows[0].error')");
  EXPECT_NE(error.find("foreign key line(order_id) -> orders"), std::string::npos) << error;
  r = C.Apply(A.Changes(0));
  EXPECT_EQ(Field(C, r, "$.released"), 1) << r;
  EXPECT_EQ(C.Rows("SELECT * FROM line"), A.Rows("SELECT * FROM line"));
  SyncAll();
  ExpectConverged();
}

TEST_F(Constraints, ACascadeInsideAnApplyIsRecordedAsALocalChange) {
  // Without the policy SQLite's own cascade would delete B's line during the apply without
  // recording it: B would lack a row its shadow says it has, and never tell anyone.
  A.Exec("INSERT INTO orders VALUES (1, 'o')");
  SyncAll();
  Later();
  B.Exec("INSERT INTO line VALUES (11, 1, 2)");
  Send(B, C);
  Later();
  A.Exec("DELETE FROM orders WHERE id = 1");
  Send(A, B);
  EXPECT_EQ(B.Int("SELECT cl FROM line__deltasync_meta WHERE k0 = 11"), 2);
  Send(B, C);  // C hears of the removal from B alone
  EXPECT_EQ(C.Int("SELECT count(*) FROM line"), 0);
}

TEST_F(Constraints, ForeignKeysOffLeavesChildrenAlone) {
  for (Site* s : All()) s->Exec("PRAGMA foreign_keys = OFF");
  A.Exec("INSERT INTO orders VALUES (1, 'o')");
  SyncAll();
  Later();
  A.Exec("DELETE FROM orders WHERE id = 1");
  B.Exec("INSERT INTO line VALUES (11, 1, 2)");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(s->Int("SELECT count(*) FROM line"), 1);
}

// Keys in another local spelling (a Django UUIDField on SQLite: 32 hex digits) follow the
// policy too: the child's reference is compared with its parent's key in wire form.
TEST_F(Constraints, TheDeleteWinsThroughColumnRepresentations) {
  const char* schema =
      "CREATE TABLE box(id TEXT PRIMARY KEY, label TEXT NOT NULL);"
      "CREATE TABLE item(id INTEGER PRIMARY KEY, box_id TEXT NOT NULL REFERENCES box(id) ON DELETE CASCADE);"
      "SELECT deltasync_enable('box', '{\"columns\": {\"id\": {\"uuid\": \"hex32\"}}}'),"
      " deltasync_enable('item', '{\"columns\": {\"box_id\": {\"uuid\": \"hex32\"}}}');";
  A.Exec(schema);
  B.Exec(schema);
  A.Exec("INSERT INTO box VALUES ('0123456789abcdef0123456789abcdef', 'b')");
  Send(A, B);
  Later();
  A.Exec("DELETE FROM box");
  B.Exec("INSERT INTO item VALUES (1, '0123456789abcdef0123456789abcdef')");
  std::string r = Send(A, B);
  EXPECT_EQ(Field(B, r, "$.orphans"), 1) << r;
  r = Send(B, A);
  EXPECT_EQ(A.Int("SELECT count(*) FROM item"), 0) << r;
  EXPECT_EQ(B.Int("SELECT count(*) FROM item"), 0);
  EXPECT_TRUE(A.Rows("PRAGMA foreign_key_check").empty());
}

}  // namespace
