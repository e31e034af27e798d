// deltasync_checksum on SQLite: its document, the digest of common/checksum over each tracked
// table's rows in wire form (independent of row order, insertion history and column order),
// equal on synced sites and different after an unsynced write; storage classes, column
// representations and counters; bad arguments.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/checksum.hpp"
#include "sqlite_test_util.hpp"

using deltasync::DigestColumn;
using deltasync::TableDigest;
using deltasync::Value;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

Json Checksum(Site& s, const std::string& arg = "") {
  return Json::parse(s.Text("SELECT deltasync_checksum(" + arg + ")"));
}

std::string Digest(Site& s, const std::string& table) {
  return Checksum(s)["tables"][table]["digest"].get<std::string>();
}

}  // namespace

TEST(Checksum, DocumentAndEmptyTables) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE u(k TEXT PRIMARY KEY, n);"
         "CREATE TABLE plain(x); SELECT deltasync_enable('t'), deltasync_enable('u');");
  Json zero = {{"rows", 0}, {"digest", std::string(64, '0')}};
  EXPECT_EQ(Checksum(s), Json({{"tables", {{"t", zero}, {"u", zero}}}}));
  s.Exec("INSERT INTO t VALUES (1, 'x'); INSERT INTO plain VALUES (1)");
  // The digest is common/checksum's over the key and the named non-key values.
  TableDigest want;
  Value x = Value::Text("x");
  std::vector<DigestColumn> cols = {{"v", &x}};
  want.AddRow({Value::Integer(1)}, cols);
  EXPECT_EQ(Checksum(s, "'t'"), Json({{"tables", {{"t", {{"rows", 1}, {"digest", want.Hex()}}}}}}));
  EXPECT_EQ(Checksum(s, "'T'")["tables"].begin().key(), "t");  // names as SQLite resolves them
  EXPECT_EQ(Checksum(s, "NULL"), Checksum(s));
}

TEST(Checksum, BadArgumentsAreRefused) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY); CREATE TABLE plain(x)");
  EXPECT_EQ(s.ExecError("SELECT deltasync_checksum('plain')"),
            "deltasync: table \"plain\" is not tracked (deltasync_enable tracks it)");
  EXPECT_EQ(s.ExecError("SELECT deltasync_checksum('nope')"),
            "deltasync: table \"nope\" is not tracked (deltasync_enable tracks it)");
  EXPECT_EQ(s.ExecError("SELECT deltasync_checksum(1)"), "deltasync: deltasync_checksum(table) expects a table name as text");
}

TEST(Checksum, SameRowsAnyHistoryAnyColumnOrder) {
  Site a, b;
  a.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w REAL); SELECT deltasync_enable('t');"
         "INSERT INTO t VALUES (1, 'x', 1.5), (2, 'y', NULL), (3, 'z', 3.0)");
  // Other column order, other insertion order, rows that came and went, values rewritten.
  b.Exec("CREATE TABLE t(w REAL, v TEXT, id INTEGER PRIMARY KEY); SELECT deltasync_enable('t');"
         "INSERT INTO t(id, v, w) VALUES (9, 'gone', 0), (3, 'z', 3), (2, 'q', 7), (1, 'x', 1.5);"
         "DELETE FROM t WHERE id = 9; UPDATE t SET v = 'y', w = NULL WHERE id = 2");
  EXPECT_EQ(Checksum(a), Checksum(b));
  EXPECT_EQ(Checksum(a)["tables"]["t"]["rows"], 3);
  b.Exec("UPDATE t SET w = 3.5 WHERE id = 3");
  EXPECT_NE(Digest(a, "t"), Digest(b, "t"));
}

TEST(Checksum, SyncedSitesAgreeAndAnUnsyncedWriteShows) {
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'x', 1), (2, 'y', x'00ff'), (3, NULL, 2.5)");
  b.Exec("INSERT INTO t VALUES (4, 'b', 'text')");
  b.Apply(a.Changes());
  a.Apply(b.Changes());
  EXPECT_EQ(Checksum(a), Checksum(b));
  EXPECT_EQ(Checksum(a)["tables"]["t"]["rows"], 4);
  std::string synced = Digest(a, "t");
  a.Exec("DELETE FROM t WHERE id = 2");
  EXPECT_NE(Digest(a, "t"), synced);
  EXPECT_EQ(Digest(b, "t"), synced);
  b.Apply(a.Changes());
  EXPECT_EQ(Checksum(a), Checksum(b));
}

TEST(Checksum, StorageClassesDiffer) {
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, n); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 1)");
  b.Exec("INSERT INTO t VALUES (1, 1.0)");
  EXPECT_NE(Digest(a, "t"), Digest(b, "t"));
  b.Exec("UPDATE t SET n = '1'");
  EXPECT_NE(Digest(a, "t"), Digest(b, "t"));
  b.Exec("UPDATE t SET n = 1");
  EXPECT_EQ(Digest(a, "t"), Digest(b, "t"));
}

// A uuid held as 32 hex digits on one site and canonically on another is one value on the
// wire, and one digest.
TEST(Checksum, RepresentationsCountInWireForm) {
  Site hex, dashed;
  hex.Exec("CREATE TABLE c(id TEXT PRIMARY KEY, owner TEXT)");
  hex.Exec(R"(SELECT deltasync_enable('c', '{"columns": {"id": {"uuid": "hex32"}, "owner": {"uuid": "hex32"}}}'))");
  dashed.Exec("CREATE TABLE c(id TEXT PRIMARY KEY, owner TEXT); SELECT deltasync_enable('c');");
  hex.Exec("INSERT INTO c VALUES ('0123456789abcdef0123456789abcdef', 'fedcba9876543210fedcba9876543210')");
  dashed.Exec("INSERT INTO c VALUES ('01234567-89ab-cdef-0123-456789abcdef', 'fedcba98-7654-3210-fedc-ba9876543210')");
  EXPECT_EQ(Checksum(hex), Checksum(dashed));
  EXPECT_EQ(Checksum(hex)["tables"]["c"]["rows"], 1);
}

// A counter's value is the sum every site shows: two sites that sold offline agree once synced.
TEST(Checksum, CountersAgreeOnTheSum) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec(R"(CREATE TABLE item(id INTEGER PRIMARY KEY, stock INTEGER NOT NULL DEFAULT 0);
               SELECT deltasync_enable('item', '{"columns": {"stock": "counter"}}');)");
  a.Exec("INSERT INTO item VALUES (1, 10)");
  b.Apply(a.Changes());
  a.Exec("UPDATE item SET stock = stock - 2");
  b.Exec("UPDATE item SET stock = stock - 1");
  EXPECT_NE(Digest(a, "item"), Digest(b, "item"));
  b.Apply(a.Changes());
  a.Apply(b.Changes());
  EXPECT_EQ(a.Int("SELECT stock FROM item"), 7);
  EXPECT_EQ(Checksum(a), Checksum(b));
  TableDigest want;
  Value seven = Value::Integer(7);
  std::vector<DigestColumn> cols = {{"stock", &seven}};
  want.AddRow({Value::Integer(1)}, cols);
  EXPECT_EQ(Digest(a, "item"), want.Hex());
}
