// Capture: every kind of write to a tracked table becomes exactly the changes it should,
// and deltasync_enable / deltasync_disable check their input and change nothing on error.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::DecodeJson;
using deltasync::Payload;
using deltasync::RowChanges;
using deltasync::Value;
using deltasync::test::Site;

namespace {

Payload Since(Site& s, int64_t since) { return DecodeJson(s.Changes(since)); }

// Column names changed in a row of the payload's only table, in column order.
std::vector<std::string> ChangedColumns(const Payload& p, const RowChanges& r) {
  std::vector<std::string> out;
  for (const auto& c : r.changes) out.push_back(p.tables[0].columns[c.column]);
  return out;
}

const RowChanges* FindRow(const Payload& p, const Value& key0) {
  if (p.tables.empty()) return nullptr;
  for (const auto& r : p.tables[0].rows)
    if (r.key[0] == key0) return &r;
  return nullptr;
}

// Everything a database holds, for checking that a failed call changed nothing.
std::string Snapshot(Site& s) {
  std::string out;
  for (auto& row : s.Rows("SELECT type || ':' || name || ':' || coalesce(sql, '') FROM sqlite_schema ORDER BY name"))
    out += row[0].s + "\n";
  for (auto& row : s.Rows("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")) {
    for (auto& r : s.Rows("SELECT * FROM \"" + row[0].s + "\"")) {
      for (auto& v : r) out += deltasync::DebugString(v) + "|";
      out += "\n";
    }
  }
  return out;
}

}  // namespace

TEST(Capture, InsertRecordsEveryColumn) {
  Site s;
  s.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');"
         "INSERT INTO t VALUES ('k', 'x', 1);");
  Payload p = Since(s, 0);
  ASSERT_EQ(p.tables.size(), 1u);
  const RowChanges* r = FindRow(p, Value::Text("k"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cl, 1);
  EXPECT_EQ(ChangedColumns(p, *r), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->changes[0].value, Value::Text("x"));
  EXPECT_EQ(r->changes[1].value, Value::Integer(1));
  EXPECT_EQ(p.sites[r->changes[0].site].ToString(), s.Text("SELECT deltasync_site_id()"));
}

TEST(Capture, UpdateRecordsOnlyChangedColumns) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c); SELECT deltasync_enable('t');"
         "INSERT INTO t VALUES (1, 'x', 1, 'z');");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("UPDATE t SET a = 'y', b = 1 WHERE id = 1");  // b is set to the value it had
  Payload p = Since(s, v);
  const RowChanges* r = FindRow(p, Value::Integer(1));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(ChangedColumns(p, *r), (std::vector<std::string>{"a"}));
  EXPECT_EQ(r->changes[0].value, Value::Text("y"));
}

TEST(Capture, NoOpUpdateRecordsNothing) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("UPDATE t SET a = 'x'");
  EXPECT_TRUE(Since(s, v).tables.empty());
}

// 1 and 1.0 are different values (SPEC section 4), and so are 'A' and 'a' under NOCASE.
TEST(Capture, UpdateSeesTypeAndCaseChanges) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a BLOB, b TEXT COLLATE NOCASE); SELECT deltasync_enable('t');"
         "INSERT INTO t VALUES (1, 1, 'A');");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("UPDATE t SET a = 1.0, b = 'a'");
  Payload p = Since(s, v);
  const RowChanges* r = FindRow(p, Value::Integer(1));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(ChangedColumns(p, *r), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->changes[0].value, Value::Real(1.0));
}

TEST(Capture, DeleteMakesCausalLengthEvenAndCarriesNoColumns) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');"
         "DELETE FROM t WHERE id = 1;");
  Payload p = Since(s, 0);
  const RowChanges* r = FindRow(p, Value::Integer(1));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cl, 2);
  EXPECT_TRUE(r->changes.empty());
}

TEST(Capture, ReinsertAfterDeleteMakesCausalLengthOddAgain) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');"
         "DELETE FROM t; INSERT INTO t VALUES (1, 'y');");
  Payload p = Since(s, 0);
  const RowChanges* r = FindRow(p, Value::Integer(1));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cl, 3);
  ASSERT_EQ(r->changes.size(), 1u);
  EXPECT_EQ(r->changes[0].cl, 3);
  EXPECT_EQ(r->changes[0].value, Value::Text("y"));
}

TEST(Capture, PrimaryKeyChangeIsDeleteOfOldAndInsertOfNew) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');"
         "UPDATE t SET id = 2 WHERE id = 1;");
  Payload p = Since(s, 0);
  const RowChanges* old_row = FindRow(p, Value::Integer(1));
  const RowChanges* new_row = FindRow(p, Value::Integer(2));
  ASSERT_NE(old_row, nullptr);
  ASSERT_NE(new_row, nullptr);
  EXPECT_EQ(old_row->cl, 2);
  EXPECT_EQ(new_row->cl, 1);
  EXPECT_EQ(ChangedColumns(p, *new_row), (std::vector<std::string>{"a"}));
}

TEST(Capture, InsertOrReplaceAndUpsert) {
  Site s;
  s.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a, b); SELECT deltasync_enable('t'); INSERT INTO t VALUES ('k', 1, 2);");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("INSERT OR REPLACE INTO t VALUES ('k', 5, 6)");
  Payload p = Since(s, v);
  const RowChanges* r = FindRow(p, Value::Text("k"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cl, 1);  // replaced in place: the row never stopped existing
  EXPECT_EQ(ChangedColumns(p, *r), (std::vector<std::string>{"a", "b"}));
  v = s.Int("SELECT deltasync_db_version()");
  s.Exec("INSERT INTO t VALUES ('k', 7, 6) ON CONFLICT(id) DO UPDATE SET a = excluded.a, b = excluded.b");
  p = Since(s, v);
  r = FindRow(p, Value::Text("k"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(ChangedColumns(p, *r), (std::vector<std::string>{"a"}));
  EXPECT_EQ(r->changes[0].value, Value::Integer(7));
}

TEST(Capture, CompositeKeysAndWithoutRowid) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE t(k1 TEXT, k2 BLOB, k3 REAL, v, PRIMARY KEY (k2, k1, k3)) WITHOUT ROWID;"
            "SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES ('a', x'00ff', 1.5, 'one'), ('a', x'00', 1.5, 'two'); UPDATE t SET v = 'three' WHERE k2 = x'00'");
  Payload p = Since(a, 0);
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_EQ(p.tables[0].pk, (std::vector<std::string>{"k2", "k1", "k3"}));  // declared key order
  b.Apply(a.Changes());
  EXPECT_EQ(b.Rows("SELECT * FROM t ORDER BY k2"), a.Rows("SELECT * FROM t ORDER BY k2"));
  EXPECT_EQ(b.Text("SELECT v FROM t WHERE k2 = x'00'"), "three");
}

TEST(Capture, ExistingRowsBecomeChangesOnEnable) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t VALUES (1, 'x'), (2, 'y');");
  std::string r = s.Text("SELECT deltasync_enable('t')");
  EXPECT_NE(r.find("\"backfilled\":2"), std::string::npos) << r;
  Payload p = Since(s, 0);
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_EQ(p.tables[0].rows.size(), 2u);
}

TEST(Capture, EnableTwiceIsHarmless) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');");
  std::string before = s.Changes();
  std::string r = s.Text("SELECT deltasync_enable('t')");
  EXPECT_NE(r.find("\"changed\":false"), std::string::npos) << r;
  EXPECT_EQ(s.Changes(), before);
  s.Exec("INSERT INTO t VALUES (2, 'y')");  // still captured exactly once
  EXPECT_EQ(Since(s, 0).tables[0].rows.size(), 2u);
  EXPECT_EQ(s.Int("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 4);
}

TEST(Capture, EnableAfterAddColumnTracksTheNewColumn) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');"
         "ALTER TABLE t ADD COLUMN b;");
  // Any call that reads the tracked tables follows the new column (enable included).
  std::string r = s.Text("SELECT deltasync_enable('t')");
  EXPECT_NE(r.find("\"columns\":[\"a\",\"b\"]"), std::string::npos) << r;
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("UPDATE t SET b = 42");
  Payload p = Since(s, v);
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_EQ(ChangedColumns(p, p.tables[0].rows[0]), (std::vector<std::string>{"b"}));
}

TEST(Capture, GeneratedColumnsAreNotTracked) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, g INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL);"
         "SELECT deltasync_enable('t'); INSERT INTO t(id, a) VALUES (1, 2);");
  Payload p = Since(s, 0);
  EXPECT_EQ(p.tables[0].columns, (std::vector<std::string>{"a"}));
}

TEST(Capture, TableAndColumnNamesNeedingQuotes) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE \"we\"\"ird tab\"(\"key col\" TEXT PRIMARY KEY, \"sel\"\"ect\" TEXT, \"order\" INT);"
            "SELECT deltasync_enable('we\"ird tab');");
  a.Exec("INSERT INTO \"we\"\"ird tab\" VALUES ('k', 'v', 1); UPDATE \"we\"\"ird tab\" SET \"order\" = 2;");
  b.Apply(a.Changes());
  EXPECT_EQ(b.Rows("SELECT * FROM \"we\"\"ird tab\""), a.Rows("SELECT * FROM \"we\"\"ird tab\""));
}

TEST(Capture, EnableRefusesBadTablesAndChangesNothing) {
  Site s;
  s.Exec("CREATE TABLE nopk(a, b); CREATE TABLE t(id INTEGER PRIMARY KEY, a); CREATE VIEW v AS SELECT * FROM t;"
         "INSERT INTO t VALUES (1, 2);");
  s.Text("SELECT deltasync_site_id()");  // internal tables exist before the snapshot
  std::string before = Snapshot(s);
  struct Case {
    const char* arg;
    const char* message;
  } cases[] = {
      {"'nopk'", "has no primary key"},
      {"'v'", "is a view"},
      {"'missing'", "no such table"},
      {"'t; DROP TABLE t; --'", "no such table"},
      {"'t\" ; DROP TABLE t; --'", "no such table"},
      {"'deltasync_settings'", "internal table"},
      {"NULL", "expects a table name"},
      {"42", "expects a table name"},
  };
  for (const auto& c : cases) {
    std::string err = s.ExecError(std::string("SELECT deltasync_enable(") + c.arg + ")");
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << c.arg << ": " << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.arg << ": " << err;
    EXPECT_EQ(Snapshot(s), before) << c.arg;
  }
  // Virtual tables cannot be tracked either.
  s.Exec("CREATE VIRTUAL TABLE vt USING fts5(x)");
  EXPECT_NE(s.ExecError("SELECT deltasync_enable('vt')").find("virtual table"), std::string::npos);
}

TEST(Capture, NullPrimaryKeyIsRefusedAndNothingIsWritten) {
  Site s;
  s.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a); SELECT deltasync_enable('t');");
  std::string err = s.ExecError("INSERT INTO t VALUES (NULL, 1)");
  EXPECT_NE(err.find("deltasync: "), std::string::npos) << err;
  EXPECT_EQ(s.Int("SELECT count(*) FROM t"), 0);
}

TEST(Capture, DisableRemovesTriggersAndMetadataButKeepsRows) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  std::string r = s.Text("SELECT deltasync_disable('t')");
  EXPECT_NE(r.find("\"changed\":true"), std::string::npos);
  EXPECT_EQ(s.Int("SELECT count(*) FROM t"), 1);
  EXPECT_EQ(s.Int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 't\\_\\_deltasync%' ESCAPE '\\'"), 0);
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_tables"), 0);
  EXPECT_GE(s.Int("SELECT deltasync_db_version()"), v);  // never goes back
  s.Exec("INSERT INTO t VALUES (2, 'y')");                 // no longer captured
  EXPECT_TRUE(Since(s, 0).tables.empty());
  EXPECT_NE(s.Text("SELECT deltasync_disable('t')").find("\"changed\":false"), std::string::npos);
  EXPECT_NE(s.ExecError("SELECT deltasync_disable('nope')").find("deltasync: no such table"), std::string::npos);
}

// A connection that did not load the extension cannot write a tracked table: its write
// fails before changing anything, because the triggers call deltasync functions.
TEST(Capture, WriteFromConnectionWithoutExtensionFailsClearly) {
  std::string path = ::testing::TempDir() + "/unloaded_test.db";
  std::remove(path.c_str());
  {
    Site s(path);
    s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');");
  }
  Site plain(path, /*load=*/false);
  for (const char* sql : {"INSERT INTO t VALUES (2, 'y')", "UPDATE t SET a = 'z'", "DELETE FROM t"}) {
    std::string err = plain.ExecError(sql);
    EXPECT_NE(err.find("no such function: deltasync_"), std::string::npos) << sql << ": " << err;
  }
  EXPECT_EQ(plain.Int("SELECT count(*) FROM t"), 1);
  EXPECT_EQ(plain.Text("SELECT a FROM t"), "x");
  // Reading is fine without the extension.
  plain.Load();
  plain.Exec("INSERT INTO t VALUES (2, 'y')");
  EXPECT_EQ(Since(plain, 0).tables[0].rows.size(), 2u);
  std::remove(path.c_str());
}

TEST(Capture, RolledBackTransactionLeavesNoChange) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t'); INSERT INTO t VALUES (1, 'x');");
  std::string before = s.Changes();
  s.Exec("BEGIN; INSERT INTO t VALUES (2, 'y'); UPDATE t SET a = 'z'; ROLLBACK;");
  EXPECT_EQ(s.Changes(), before);
  // A savepoint rolled back inside a committed transaction: what it undid never travels,
  // what survived it does, and a reader that uses db_version as its cursor misses nothing.
  s.Exec("BEGIN; SAVEPOINT x; INSERT INTO t VALUES (3, 'c'); ROLLBACK TO x; INSERT INTO t VALUES (4, 'd'); COMMIT;");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  Payload all = Since(s, 0);
  ASSERT_EQ(all.tables.size(), 1u);
  std::vector<int64_t> keys;
  for (const auto& r : all.tables[0].rows) keys.push_back(r.key[0].i);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<int64_t>{1, 4}));
  s.Exec("INSERT INTO t VALUES (5, 'e')");
  Payload p = Since(s, v);
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_NE(FindRow(p, Value::Integer(5)), nullptr);
  EXPECT_EQ(FindRow(p, Value::Integer(3)), nullptr);
}

// Two connections writing the same file take turns: whatever one reads as db_version, the
// other's later writes come above it, so a cursor never skips them.
TEST(Capture, VersionsStayOrderedAcrossConnections) {
  std::string path = ::testing::TempDir() + "/two_connections_test.db";
  std::remove(path.c_str());
  Site a(path);
  a.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x); SELECT deltasync_enable('t');");
  Site b(path);
  for (int round = 0; round < 3; ++round) {
    a.Exec("INSERT INTO t VALUES (" + std::to_string(10 * round + 1) + ", 'a')");
    int64_t cursor = b.Int("SELECT deltasync_db_version()");
    b.Exec("INSERT INTO t VALUES (" + std::to_string(10 * round + 2) + ", 'b')");
    a.Exec("UPDATE t SET x = 'a again' WHERE id = " + std::to_string(10 * round + 1));
    Payload p = Since(b, cursor);
    ASSERT_EQ(p.tables.size(), 1u) << "round " << round;
    EXPECT_NE(FindRow(p, Value::Integer(10 * round + 1)), nullptr) << "round " << round;
    EXPECT_NE(FindRow(p, Value::Integer(10 * round + 2)), nullptr) << "round " << round;
  }
  std::remove(path.c_str());
}

// A ROLLBACK TO that undoes a transaction's first change also undoes its clock state;
// the rest of the transaction starts it again, so db_version still covers every change.
TEST(Capture, RollbackToKeepsDbVersionExact) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t');");
  s.Exec("BEGIN; SAVEPOINT x; INSERT INTO t VALUES (3, 'c'); ROLLBACK TO x; INSERT INTO t VALUES (4, 'd'); COMMIT;");
  int64_t v = s.Int("SELECT deltasync_db_version()");
  EXPECT_TRUE(Since(s, v).tables.empty());
  s.Exec("BEGIN; INSERT INTO t VALUES (5, 'e'); SAVEPOINT y; INSERT INTO t VALUES (6, 'f'); ROLLBACK TO y; COMMIT;");
  Payload p = Since(s, v);
  ASSERT_EQ(p.tables.size(), 1u);
  ASSERT_EQ(p.tables[0].rows.size(), 1u);
  EXPECT_EQ(p.tables[0].rows[0].key[0], Value::Integer(5));
  EXPECT_TRUE(Since(s, s.Int("SELECT deltasync_db_version()")).tables.empty());
}

// deltasync leaves the connection's commit and rollback hooks to the application.
TEST(Capture, ApplicationKeepsItsCommitHook) {
  Site s;
  int commits = 0;
  sqlite3_commit_hook(
      s.db(), [](void* p) { ++*static_cast<int*>(p); return 0; }, &commits);
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a); SELECT deltasync_enable('t');");
  int before = commits;
  s.Exec("INSERT INTO t VALUES (1, 'x')");
  EXPECT_EQ(commits, before + 1);
  // ...and capture still scopes clocks per transaction with the application's hook in place.
  int64_t v = s.Int("SELECT deltasync_db_version()");
  s.Exec("INSERT INTO t VALUES (2, 'y')");
  EXPECT_GT(s.Int("SELECT deltasync_db_version()"), v);
  sqlite3_commit_hook(s.db(), nullptr, nullptr);
}

// Dropping a tracked table stops its sync without breaking the others.
TEST(Capture, DroppedTableStopsSyncingAndOthersGoOn) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x); CREATE TABLE u(id INTEGER PRIMARY KEY, y);"
            "SELECT deltasync_enable('t'); SELECT deltasync_enable('u');");
  a.Exec("INSERT INTO t VALUES (1, 'a'); INSERT INTO u VALUES (1, 'b');");
  b.Apply(a.Changes());
  b.Exec("DROP TABLE t");
  Payload p = Since(b, 0);
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_EQ(p.tables[0].name, "u");
  std::string st = b.Text("SELECT deltasync_status()");
  EXPECT_NE(st.find("\"state\":\"dropped\""), std::string::npos) << st;
  a.Exec("INSERT INTO t VALUES (2, 'c')");
  std::string r = b.Apply(a.Changes());
  EXPECT_NE(r.find("\"untracked\":"), std::string::npos);
  EXPECT_NE(b.Text("SELECT deltasync_disable('t')").find("\"changed\":true"), std::string::npos);
  EXPECT_EQ(b.Int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 't\\_\\_deltasync%' ESCAPE '\\'"), 0);
}

// A tracked table dropped and created again has no triggers: the next deltasync call makes
// them again; vanished rows become deletes, new rows are backfilled, and rows it still holds
// keep their clocks (so a rebuild by an ORM re-stamps nothing). Content written while
// nothing captured (here by a connection without the extension, which the capture guard
// cannot see: sqlite_guard.cpp) is sent once the table is enabled with {"restamp": true}.
TEST(Capture, RecreatedTableIsRepairedByTheNextCall) {
  std::string path = ::testing::TempDir() + "/recreated_test.db";
  std::remove(path.c_str());
  Site a(path), b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  b.Apply(a.Changes());
  int64_t before = a.Int("SELECT deltasync_db_version()");
  Site(path, /*load=*/false)
      .Exec("DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, x); INSERT INTO t VALUES (2, 'two again'), (3, 'three');");
  Payload p = Since(a, before);  // the first call repairs
  ASSERT_EQ(p.tables.size(), 1u);
  ASSERT_EQ(p.tables[0].rows.size(), 2u);  // row 1 deleted, row 3 new; row 2 keeps its clock
  EXPECT_NE(a.Text("SELECT deltasync_status()").find("\"state\":\"tracked\""), std::string::npos);
  EXPECT_EQ(a.Int("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 't'"), 4);
  b.Apply(a.Changes());
  EXPECT_EQ(b.Text("SELECT group_concat(id) FROM t"), "2,3");
  EXPECT_EQ(b.Text("SELECT x FROM t WHERE id = 2"), "two");
  // Captured again: a write right after the repair travels.
  a.Exec("UPDATE t SET x = 'three!' WHERE id = 3");
  b.Apply(a.Changes());
  EXPECT_EQ(b.Text("SELECT x FROM t WHERE id = 3"), "three!");
  // The replaced content is sent when asked for.
  std::string r = a.Text(R"(SELECT deltasync_enable('t', '{"restamp": true}'))");
  EXPECT_NE(r.find("\"restamped\":2"), std::string::npos) << r;
  b.Apply(a.Changes());
  EXPECT_EQ(b.Rows("SELECT * FROM t ORDER BY id"), a.Rows("SELECT * FROM t ORDER BY id"));
  std::remove(path.c_str());
}

// The same on a connection with the extension, in one transaction: the capture guard makes
// the triggers before the first INSERT, so the rows written are changes like any other.
TEST(Capture, RecreatedTableWrittenInATransactionIsCapturedAtOnce) {
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  b.Apply(a.Changes());
  a.Exec("BEGIN; DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, x);"
         " INSERT INTO t VALUES (2, 'two again'), (3, 'three'); COMMIT;");
  b.Apply(a.Changes());
  EXPECT_EQ(b.Text("SELECT group_concat(id || x) FROM t"), "2two again,3three");
  // Outside a transaction an in-memory database cannot have the change followed first (no
  // second connection can open it): the write is stopped, not run uncaptured.
  a.Exec("DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, x);");
  EXPECT_NE(a.ExecError("INSERT INTO t VALUES (4, 'four')").find("interrupt"), std::string::npos);
  EXPECT_EQ(a.Int("SELECT count(*) FROM t"), 0);
}
