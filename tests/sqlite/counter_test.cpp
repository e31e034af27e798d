// The counter policy on SQLite (SPEC section 3, rule 8; docs/policies.md): declaration and
// its refusals, shops selling offline whose sales all count, deletes and re-inserts, UPSERT
// and INSERT OR REPLACE, overflow, and a receiver whose declaration disagrees.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

constexpr const char* kShopSchema =
    "CREATE TABLE item(id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, price REAL NOT NULL);";

class Shops : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Site* s : All()) {
      s->Exec(kShopSchema);
      s->Exec("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}')");
    }
  }
  std::vector<Site*> All() { return {&A, &B, &C}; }
  static void Send(Site& from, Site& to) { to.Apply(from.Changes(0)); }
  void SyncAll() {
    for (int round = 0; round < 2; ++round)
      for (Site* x : All())
        for (Site* y : All())
          if (x != y) Send(*x, *y);
  }
  int64_t Stock(Site& s, const std::string& id = "apple") {
    return s.Int("SELECT stock FROM item WHERE id = '" + id + "'");
  }
  void ExpectAllEqual() {
    auto ref = A.Rows("SELECT * FROM item ORDER BY id");
    EXPECT_EQ(B.Rows("SELECT * FROM item ORDER BY id"), ref);
    EXPECT_EQ(C.Rows("SELECT * FROM item ORDER BY id"), ref);
  }
  Site A, B, C;
};

TEST_F(Shops, EverySaleMadeOfflineCountsWhateverTheWriteLooksLike) {
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 100, 1.5)");
  SyncAll();
  // Offline: A sells 2, B sells 1 then counts 95 left, C takes one back through an UPSERT.
  A.Exec("UPDATE item SET stock = stock - 2 WHERE id = 'apple'");
  B.Exec("UPDATE item SET stock = stock - 1 WHERE id = 'apple'");
  B.Exec("UPDATE item SET stock = 95 WHERE id = 'apple'");
  C.Exec("INSERT INTO item VALUES ('apple', 'Apple', 1, 1.5) ON CONFLICT(id) DO UPDATE SET stock = stock + excluded.stock");
  C.Exec("UPDATE item SET price = 2.0 WHERE id = 'apple'");  // a last-writer-wins column beside it
  // Exchanged in an odd order, some payloads twice, relayed through another site.
  Send(C, B);
  Send(B, A);
  Send(A, C);
  Send(B, A);
  SyncAll();
  for (Site* s : All()) {
    EXPECT_EQ(Stock(*s), 100 - 2 - 5 + 1);
    EXPECT_EQ(s->Rows("SELECT price FROM item")[0][0], Value::Real(2.0));
  }
  ExpectAllEqual();
  // Further sales go on adding up.
  A.Exec("UPDATE item SET stock = stock - 10");
  C.Exec("UPDATE item SET stock = stock - 1");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Stock(*s), 94 - 11);
}

TEST_F(Shops, ADeleteEndsTheRowsLifeAndTheReinsertStartsAFreshCount) {
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  SyncAll();
  B.Exec("UPDATE item SET stock = stock - 3");  // not yet seen by A
  A.Exec("DELETE FROM item WHERE id = 'apple'");
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 40, 1.0)");  // the new life: A's 40 alone
  Send(A, B);
  Send(B, C);
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Stock(*s), 40);
  C.Exec("UPDATE item SET stock = stock - 4");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Stock(*s), 36);
  // A delete that wins leaves no row anywhere.
  B.Exec("DELETE FROM item WHERE id = 'apple'");
  A.Exec("UPDATE item SET stock = stock - 1");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(s->Int("SELECT count(*) FROM item"), 0);
  ExpectAllEqual();
}

TEST_F(Shops, InsertOrReplaceIsADeleteAndAnInsert) {
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  SyncAll();
  B.Exec("UPDATE item SET stock = stock - 2");
  SyncAll();
  // Stock taken: A replaces the row with what it counted. B's earlier sale belongs to the old life.
  A.Exec("INSERT OR REPLACE INTO item VALUES ('apple', 'Apple', 7, 1.0)");
  C.Exec("UPDATE item SET stock = stock - 1");  // concurrent with the replace: the old life
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Stock(*s), 7);
  ExpectAllEqual();
}

TEST_F(Shops, AKeyChangeMovesTheCountToANewRow) {
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  SyncAll();
  B.Exec("UPDATE item SET stock = stock - 1");
  SyncAll();
  A.Exec("UPDATE item SET id = 'pomme' WHERE id = 'apple'");
  SyncAll();
  for (Site* s : All()) {
    EXPECT_EQ(Stock(*s, "pomme"), 9);
    EXPECT_EQ(s->Int("SELECT count(*) FROM item WHERE id = 'apple'"), 0);
  }
}

TEST_F(Shops, ASumBeyond64BitsIsRefusedAndChangesNothing) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  A.Rows("INSERT INTO item VALUES ('apple', 'Apple', ?1, 1.0)", {Value::Integer(max - 1)});
  SyncAll();
  A.Exec("UPDATE item SET stock = stock + 1");
  B.Exec("UPDATE item SET stock = stock + 1");
  int64_t version = A.Int("SELECT deltasync_db_version()");
  std::string err = A.ExecError("SELECT deltasync_apply('" + B.Changes(0) + "')");
  EXPECT_NE(err.find("deltasync: counter \"stock\" of table \"item\" would leave the 64-bit integer range"),
            std::string::npos)
      << err;
  EXPECT_EQ(Stock(A), max);
  EXPECT_EQ(A.Int("SELECT deltasync_db_version()"), version);
  // Selling one again brings the sum back into range: the next exchange applies.
  A.Exec("UPDATE item SET stock = stock - 1");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Stock(*s), max);
}

TEST_F(Shops, ACounterHoldsIntegersOnly) {
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  for (const char* v : {"'ten'", "1.5", "x'00'"}) {
    std::string err = A.ExecError(std::string("UPDATE item SET stock = ") + v);
    EXPECT_NE(err.find("deltasync: a counter column of table \"item\" holds integers only"), std::string::npos) << err;
    err = A.ExecError(std::string("INSERT INTO item VALUES ('pear', 'Pear', ") + v + ", 1.0)");
    EXPECT_NE(err.find("holds integers only"), std::string::npos) << err;
  }
  EXPECT_EQ(Stock(A), 10);
  EXPECT_EQ(A.Int("SELECT count(*) FROM item"), 1);
  // An integer held in text form by affinity ('12' into an INTEGER column) is an integer.
  A.Exec("UPDATE item SET stock = '12'");
  EXPECT_EQ(Stock(A), 12);
  // A column that allows NULL still refuses it as a count.
  A.Exec("CREATE TABLE loose(id INTEGER PRIMARY KEY, n INTEGER)");
  A.Exec("SELECT deltasync_enable('loose', '{\"columns\": {\"n\": \"counter\"}}')");
  std::string err = A.ExecError("INSERT INTO loose(id) VALUES (1)");
  EXPECT_NE(err.find("deltasync: a counter column of table \"loose\" holds integers only"), std::string::npos) << err;
  A.Exec("INSERT INTO loose VALUES (1, 0)");
  err = A.ExecError("UPDATE loose SET n = NULL");
  EXPECT_NE(err.find("holds integers only"), std::string::npos) << err;
  EXPECT_EQ(A.Int("SELECT n FROM loose"), 0);
}

TEST_F(Shops, AReceiverThatDeclaresTheColumnOtherwiseRefusesTheChanges) {
  Site lww;
  lww.Exec(kShopSchema);
  lww.Exec("SELECT deltasync_enable('item')");
  A.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  std::string err = lww.ExecError("SELECT deltasync_apply('" + A.Changes(0) + "')");
  EXPECT_NE(err.find("deltasync: table \"item\": column \"stock\" merges as counter where the "
                     "changes come from but as lww here"),
            std::string::npos)
      << err;
  EXPECT_EQ(lww.Int("SELECT count(*) FROM item"), 0);
  lww.Exec("INSERT INTO item VALUES ('pear', 'Pear', 3, 1.0)");
  err = A.ExecError("SELECT deltasync_apply('" + lww.Changes(0) + "')");
  EXPECT_NE(err.find("merges as lww where the changes come from but as counter here"), std::string::npos) << err;
  EXPECT_EQ(A.Int("SELECT count(*) FROM item"), 1);
}

TEST(CounterDeclaration, StatusAndEnableShowThePolicy) {
  Site s;
  s.Exec(kShopSchema);
  std::string r = s.Text("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": {\"policy\": \"counter\"}}}')");
  EXPECT_NE(r.find("\"column_options\":{\"stock\":{\"policy\":\"counter\"}}"), std::string::npos) << r;
  std::string st = s.Text("SELECT deltasync_status()");
  EXPECT_NE(st.find("\"column_options\":{\"stock\":{\"policy\":\"counter\"}}"), std::string::npos) << st;
  // Enabling again without options, or with the same policy, keeps it.
  s.Exec("SELECT deltasync_enable('item')");
  s.Exec("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}')");
  EXPECT_NE(s.Text("SELECT deltasync_status()").find("{\"policy\":\"counter\"}"), std::string::npos);
}

TEST(CounterDeclaration, BadDeclarationsAreRefusedAndChangeNothing) {
  Site s;
  s.Exec(kShopSchema);
  auto enable = [&](const std::string& options) {
    return s.ExecError("SELECT deltasync_enable('item', '" + options + "')");
  };
  EXPECT_NE(enable(R"({"columns": {"stock": "sum"}})").find("deltasync: unknown policy \"sum\" for column \"stock\""),
            std::string::npos);
  EXPECT_NE(enable(R"({"columns": {"name": "counter"}})")
                .find("column \"name\" of table \"item\" is declared \"TEXT\"; a counter must be an integer column"),
            std::string::npos);
  EXPECT_NE(enable(R"({"columns": {"price": "counter"}})").find("is declared \"REAL\""), std::string::npos);
  EXPECT_NE(enable(R"({"columns": {"id": "counter"}})").find("is part of the primary key"), std::string::npos);
  EXPECT_NE(enable(R"({"columns": {"nope": "counter"}})").find("name column \"nope\", which table \"item\" does not have"), std::string::npos);
  EXPECT_NE(enable(R"({"columns": {"stock": {"policy": "counter", "x": "y"}}})").find("deltasync: "), std::string::npos);
  // None of them tracked the table.
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_tables"), 0);
  EXPECT_EQ(s.Int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'item__deltasync%'"), 0);
}

TEST(CounterDeclaration, APolicyChangesOnlyWhileNoRowIsTracked) {
  Site s;
  s.Exec(kShopSchema);
  s.Exec("SELECT deltasync_enable('item')");
  // No row yet: safe.
  s.Exec("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}')");
  s.Exec("INSERT INTO item VALUES ('apple', 'Apple', 10, 1.0)");
  std::string err = s.ExecError("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"lww\"}}')");
  EXPECT_NE(err.find("column \"stock\" of table \"item\" merges as counter; changing it to lww would merge the 1 rows"),
            std::string::npos)
      << err;
  EXPECT_NE(s.Text("SELECT deltasync_status()").find("{\"policy\":\"counter\"}"), std::string::npos);
  err = s.ExecError("SELECT deltasync_enable('item', '{\"restamp\": true}')");
  EXPECT_NE(err.find("has a counter column: restamp"), std::string::npos) << err;
  // The same policy again is no change.
  s.Exec("SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}')");
}

TEST(CounterDeclaration, ARepresentationAndAPolicyLiveSideBySide) {
  Site s;
  s.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, u TEXT, n INTEGER NOT NULL DEFAULT 0)");
  s.Exec("SELECT deltasync_enable('t', '{\"columns\": {\"u\": {\"uuid\": \"hex32\"}, \"n\": \"counter\"}}')");
  std::string st = s.Text("SELECT deltasync_status()");
  EXPECT_NE(st.find("\"column_options\":{\"n\":{\"policy\":\"counter\"},\"u\":{\"uuid\":\"hex32\"}}"), std::string::npos)
      << st;
  // Naming only the policy again leaves the representation as it is.
  s.Exec("SELECT deltasync_enable('t', '{\"columns\": {\"n\": \"counter\"}}')");
  EXPECT_EQ(s.Text("SELECT deltasync_status()"), st);
}

}  // namespace
