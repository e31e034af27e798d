// deltasync_apply and deltasync_changes: lossless values, counts, idempotence, no echo,
// and every bad input refused with a deltasync: error that leaves the database as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/hlc.hpp"
#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::DecodeJson;
using deltasync::EncodeJson;
using deltasync::Payload;
using deltasync::Value;
using deltasync::test::Site;

namespace {

std::string Dump(Site& s, const std::string& table = "t") {
  std::string out;
  for (auto& r : s.Rows("SELECT * FROM " + table + " ORDER BY 1")) {
    for (auto& v : r) out += deltasync::DebugString(v) + "|";
    out += "\n";
  }
  for (auto& r : s.Rows("SELECT * FROM " + table + "__deltasync_meta ORDER BY 1")) {
    for (auto& v : r) out += deltasync::DebugString(v) + "|";
    out += "\n";
  }
  out += std::to_string(s.Int("SELECT deltasync_db_version()"));
  return out;
}

void Tracked(std::initializer_list<Site*> sites, const std::string& ddl, const std::string& table = "t") {
  for (Site* s : sites) s->Exec(ddl + "; SELECT deltasync_enable('" + table + "');");
}

int64_t Field(Site& s, const std::string& json, const char* path) {
  return s.Int("SELECT json_extract('" + json + "', '" + path + "')");
}

}  // namespace

TEST(Apply, EveryStorageClassIsLossless) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
  std::string big(1 << 20, 'x');
  for (size_t k = 0; k < big.size(); k += 7) big[k] = static_cast<char>('a' + k % 26);
  std::string blob_with_zeros("\0\x01\0\xff\0", 5);
  std::string text_with_nul("a\0b", 3);
  std::vector<Value> values = {
      Value::Null(),
      Value::Integer(std::numeric_limits<int64_t>::min()),
      Value::Integer(std::numeric_limits<int64_t>::max()),
      Value::Integer(0),
      Value::Real(1.0),
      Value::Real(-0.0),
      Value::Real(std::numeric_limits<double>::infinity()),
      Value::Real(-std::numeric_limits<double>::infinity()),
      Value::Real(std::numeric_limits<double>::denorm_min()),
      Value::Real(0.1),
      Value::Real(1e308),
      Value::Text(""),
      Value::Text("héllo wörld ✓ 𝄞 中文 \"quoted\" \\ \n\t"),
      Value::Text(text_with_nul),
      Value::Text(std::string("\xff\xfe not utf-8", 13)),
      Value::Blob(""),
      Value::Blob(blob_with_zeros),
      Value::Text(big),
      Value::Blob(big),
  };
  for (size_t k = 0; k < values.size(); ++k)
    a.Rows("INSERT INTO t VALUES (?1, ?2)", {Value::Integer(static_cast<int64_t>(k)), values[k]});
  b.Apply(a.Changes());
  auto rows = b.Rows("SELECT id, v FROM t ORDER BY id");
  ASSERT_EQ(rows.size(), values.size());
  for (size_t k = 0; k < values.size(); ++k) EXPECT_EQ(rows[k][1], values[k]) << "value #" << k << " " << DebugString(values[k]);
  // And back again, through a third site, unchanged.
  Site c;
  Tracked({&c}, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
  c.Apply(b.Changes());
  EXPECT_EQ(c.Rows("SELECT id, v FROM t ORDER BY id"), a.Rows("SELECT id, v FROM t ORDER BY id"));
}

// SQLite itself stores NaN as NULL; a NaN arriving from another engine does the same here.
TEST(Apply, NaNBecomesNullAsSqliteStoresIt) {
  Site a;
  Tracked({&a}, "CREATE TABLE t(id INTEGER PRIMARY KEY, v REAL)");
  Payload p = DecodeJson(a.Changes());
  p.sites.push_back(deltasync::SiteId::Random());
  deltasync::TableChanges t{"t", {"id"}, {"v"}, {}};
  deltasync::RowChanges r;
  r.key = {Value::Integer(1)};
  r.cl = 1;
  r.changes.push_back({0, Value::Real(std::nan("")), deltasync::HlcFromMillis(deltasync::WallClockMillis()), 0, 1});
  t.rows.push_back(r);
  p.tables = {t};
  a.Apply(EncodeJson(p));
  EXPECT_EQ(a.Rows("SELECT v FROM t")[0][0], Value::Null());
}

TEST(Apply, CountsAppliedIgnoredAndUntracked) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x, y)");
  a.Exec("CREATE TABLE other(id INTEGER PRIMARY KEY, z); SELECT deltasync_enable('other');"
         "INSERT INTO t VALUES (1, 'a', 'b'), (2, 'c', 'd'); INSERT INTO other VALUES (1, 'q'); DELETE FROM t WHERE id = 2;");
  std::string payload = a.Changes();
  std::string first = b.Apply(payload);
  // Row 1: two column changes; row 2: a delete, one existence change; other: one column change.
  EXPECT_EQ(Field(b, first, "$.applied"), 3);
  EXPECT_EQ(Field(b, first, "$.ignored"), 0);
  EXPECT_EQ(Field(b, first, "$.untracked"), 1);
  std::string before = Dump(b);
  std::string second = b.Apply(payload);
  EXPECT_EQ(Field(b, second, "$.applied"), 0);
  EXPECT_EQ(Field(b, second, "$.ignored"), 3);
  EXPECT_EQ(Dump(b), before);
}

TEST(Apply, AppliedChangesAreNotRecapturedButAreRelayed) {
  Site a, b, c;
  Tracked({&a, &b, &c}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'from a')");
  b.Apply(a.Changes());
  Payload p = DecodeJson(b.Changes());
  ASSERT_EQ(p.tables.size(), 1u);
  const auto& ch = p.tables[0].rows[0].changes[0];
  // Relayed with its original origin and clock, not as b's own change.
  EXPECT_EQ(p.sites[ch.site].ToString(), a.Text("SELECT deltasync_site_id()"));
  EXPECT_EQ(ch.hlc, DecodeJson(a.Changes()).tables[0].rows[0].changes[0].hlc);
  c.Apply(b.Changes());
  EXPECT_EQ(c.Text("SELECT x FROM t"), "from a");
}

TEST(Apply, MalformedPayloadsAreRefusedAndChangeNothing) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x NOT NULL)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  b.Exec("INSERT INTO t VALUES (5, 'b')");
  std::string good = a.Changes();
  std::string before = Dump(b);
  std::string site = a.Text("SELECT deltasync_site_id()");
  std::string head = "{\"format\":\"deltasync\",\"version\":1,\"site\":\"" + site + "\",\"since\":0,\"until\":1,\"sites\":[\"" + site + "\"],";
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "not a JSON object"},
      {good.substr(0, good.size() / 2), "not valid JSON"},
      {good + "garbage", "not valid JSON"},
      {"{\"format\":\"other\"}", "not a deltasync payload"},
      {"{\"format\":\"deltasync\",\"version\":99}", "unsupported payload version 99"},
      {head + "\"tables\":{}}", "must be an array"},
      {head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\"],\"rows\":[{\"key\":[1],\"cl\":1,\"changes\":[[5,\"v\",281474976710656,0,1]]}]}]}", "column index out of range"},
      {head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\"],\"rows\":[{\"key\":[null],\"cl\":1,\"changes\":[]}]}]}", "NULL in a primary key"},
      {head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\"],\"rows\":[{\"key\":[1],\"cl\":1,\"changes\":[[0,\"v\",281474976710656,3,1]]}]}]}", "site index out of range"},
      {head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\"],\"rows\":[{\"key\":[1],\"cl\":1,\"changes\":[[0,{\"blob\":\"!!\"},281474976710656,0,1]]}]}]}", "invalid base64"},
      // Names in payloads are checked against the catalog, never spliced into SQL.
      {head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"x\"],\"columns\":[],\"rows\":[]}]}", "primary key does not match"},
  };
  for (const auto& [payload, message] : cases) {
    std::string err;
    try {
      b.Apply(payload);
    } catch (const std::runtime_error& e) {
      err = e.what();
    }
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << payload.substr(0, 200) << " -> " << err;
    EXPECT_NE(err.find(message), std::string::npos) << payload.substr(0, 200) << " -> " << err;
    EXPECT_EQ(Dump(b), before) << payload.substr(0, 200);
  }
  // A row a constraint refuses (NOT NULL), in the second row: it is held in quarantine, the
  // first row applies (tests/sqlite/constraints_test.cpp has the rest).
  std::string held = b.Apply(head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\"],\"rows\":[{\"key\":[7],\"cl\":1,\"changes\":[[0,\"ok\",281474976710656,0,1]]},{\"key\":[8],\"cl\":1,\"changes\":[[0,null,281474976710656,0,1]]}]}]}");
  EXPECT_NE(held.find("\"quarantined\":1"), std::string::npos) << held;
  EXPECT_EQ(b.Text("SELECT x FROM t WHERE id = 7"), "ok");
  EXPECT_EQ(b.Int("SELECT count(*) FROM t WHERE id = 8"), 0);
  EXPECT_NE(b.Text("SELECT json_extract(deltasync_quarantine(), '$.rows[0].error')").find("NOT NULL"), std::string::npos);
  b.Exec("DELETE FROM t WHERE id = 7");
  // A column this site does not have (here one named to break out of quoting) is kept as a
  // pending cell until a column of that name appears; its name never reaches SQL.
  std::string r = b.Apply(head + "\"tables\":[{\"name\":\"t\",\"pk\":[\"id\"],\"columns\":[\"x\\\" = 1; DROP TABLE t; --\",\"x\"],\"rows\":[{\"key\":[9],\"cl\":1,\"changes\":[[0,\"v\",281474976710656,0,1],[1,\"ok\",281474976710656,0,1]]}]}]}");
  EXPECT_NE(r.find("\"kept\":1"), std::string::npos) << r;
  EXPECT_EQ(b.Int("SELECT count(*) FROM sqlite_schema WHERE name = 't'"), 1);
  EXPECT_EQ(b.Text("SELECT x FROM t WHERE id = 9"), "ok");
  EXPECT_NE(b.ExecError("SELECT deltasync_apply(42)").find("deltasync: "), std::string::npos);
  EXPECT_NE(b.ExecError("SELECT deltasync_changes('x')").find("deltasync: "), std::string::npos);
  EXPECT_NE(b.ExecError("SELECT deltasync_changes(-1)").find("deltasync: "), std::string::npos);
  // The good payload still applies afterwards.
  b.Apply(good);
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 3);  // its two rows and row 9
}

TEST(Apply, ClockTooFarAheadIsRefusedWhole) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  Payload p = DecodeJson(a.Changes());
  uint64_t now = deltasync::WallClockMillis();
  p.tables[0].rows[1].changes[0].hlc = deltasync::HlcFromMillis(now + 10 * 60 * 1000);  // 10 minutes ahead
  std::string before = Dump(b);
  std::string err;
  try {
    b.Apply(EncodeJson(p));
  } catch (const std::runtime_error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("deltasync: clock drift"), std::string::npos) << err;
  EXPECT_EQ(Dump(b), before);
  // The limit is configurable: with 15 minutes allowed, the same batch goes through.
  for (Site* s : {&a, &b}) s->Exec("INSERT OR REPLACE INTO deltasync_settings VALUES ('max_clock_drift_ms', 900000)");
  b.Apply(EncodeJson(p));
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 2);
  // The receiver's clock moved past what it saw: its next local write wins over it
  // (and so carries a clock as far ahead, which a has to accept as well).
  int64_t v = b.Int("SELECT deltasync_db_version()");
  b.Exec("UPDATE t SET x = 'local' WHERE id = 2");
  a.Apply(b.Changes(v));
  EXPECT_EQ(a.Text("SELECT x FROM t WHERE id = 2"), "local");
}

TEST(Apply, ForeignKeysBetweenTrackedTablesInAnyOrder) {
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("PRAGMA foreign_keys = ON; CREATE TABLE child(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id));"
            "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);"
            "SELECT deltasync_enable('child'); SELECT deltasync_enable('parent');");
  a.Exec("INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (10, 1);");
  // The payload lists child (enabled first) before parent.
  b.Apply(a.Changes());
  EXPECT_EQ(b.Int("SELECT count(*) FROM child"), 1);
  EXPECT_EQ(b.Int("SELECT count(*) FROM parent"), 1);
}

TEST(Apply, InsideAnOpenTransactionAndRolledBackWithIt) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  std::string payload = a.Changes();
  b.Exec("BEGIN");
  b.Apply(payload);
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 1);
  b.Exec("ROLLBACK");
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 0);
  b.Apply(payload);
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 1);
}

TEST(Apply, ChangesSinceReturnsOnlyNewerAndReportsUntil) {
  Site a;
  Tracked({&a}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  Payload p1 = DecodeJson(a.Changes(0));
  EXPECT_EQ(p1.until, a.Int("SELECT deltasync_db_version()"));
  a.Exec("INSERT INTO t VALUES (2, 'b')");
  Payload p2 = DecodeJson(a.Changes(p1.until));
  ASSERT_EQ(p2.tables.size(), 1u);
  ASSERT_EQ(p2.tables[0].rows.size(), 1u);
  EXPECT_EQ(p2.tables[0].rows[0].key[0], Value::Integer(2));
  EXPECT_EQ(p2.since, p1.until);
  EXPECT_TRUE(DecodeJson(a.Changes(p2.until)).tables.empty());
}

// A cursor taken inside a write transaction must not skip what that transaction writes next.
TEST(Apply, CursorInsideAWriteTransactionMissesNothing) {
  Site a;
  Tracked({&a}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("BEGIN; INSERT INTO t VALUES (1, 'a')");
  Payload p1 = DecodeJson(a.Changes(0));
  a.Exec("INSERT INTO t VALUES (2, 'b'); COMMIT");
  Payload p2 = DecodeJson(a.Changes(p1.until));
  ASSERT_EQ(p2.tables.size(), 1u);
  ASSERT_EQ(p2.tables[0].rows.size(), 1u);
  EXPECT_EQ(p2.tables[0].rows[0].key[0], Value::Integer(2));
}

// A cursor beyond this site's counter yields an empty payload that still applies.
TEST(Apply, CursorFromTheFutureGivesAnApplicablePayload) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  std::string payload = a.Changes(1000000);
  Payload p = DecodeJson(payload);
  EXPECT_TRUE(p.tables.empty());
  EXPECT_EQ(p.until, 1000000);
  EXPECT_NO_THROW(b.Apply(payload));
}


// A negative max_clock_drift_ms means no drift at all is tolerated, not "no limit".
TEST(Apply, NegativeDriftSettingRefusesFutureClocks) {
  Site a, b;
  Tracked({&a, &b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  Payload p = DecodeJson(a.Changes());
  p.tables[0].rows[0].changes[0].hlc = deltasync::HlcFromMillis(deltasync::WallClockMillis() + 60 * 1000);
  b.Exec("INSERT OR REPLACE INTO deltasync_settings VALUES ('max_clock_drift_ms', -1)");
  EXPECT_THROW(b.Apply(EncodeJson(p)), std::runtime_error);
  EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 0);
}

// An apply rolled back by the application's ROLLBACK TO takes its registration of new
// origin sites with it; applying again later must register them again.
TEST(Apply, RolledBackApplyLeavesNoDanglingOrigin) {
  std::string path = ::testing::TempDir() + "/rolled_back_apply_test.db";
  std::remove(path.c_str());
  Site a;
  Tracked({&a}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  a.Exec("INSERT INTO t VALUES (1, 'a')");
  std::string payload = a.Changes();
  {
    Site b(path);
    Tracked({&b}, "CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
    b.Exec("BEGIN; SAVEPOINT s;");
    b.Apply(payload);
    b.Exec("ROLLBACK TO s; RELEASE s; COMMIT;");
    EXPECT_EQ(b.Int("SELECT count(*) FROM t"), 0);
    b.Apply(payload);
  }
  Site fresh(path);  // a new connection sees only what is stored
  Payload p = DecodeJson(fresh.Changes());
  ASSERT_EQ(p.tables.size(), 1u);
  EXPECT_EQ(p.sites[p.tables[0].rows[0].changes[0].site].ToString(), a.Text("SELECT deltasync_site_id()"));
  std::remove(path.c_str());
}
