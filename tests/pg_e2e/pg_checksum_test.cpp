// deltasync_checksum across engines: a PostgreSQL site, a SQLite site and the hub (a real
// `deltasync serve`) give the same document for the same rows, for the types that
// round-trip (integers, bool, real, text, bytea, date, uuid as canonical text) and deletes;
// not -0.0, which a SQLite REAL column stores as 0.0 (the checksum shows that difference).
// An unsynced write on PostgreSQL shows until it syncs.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::PgConn;
using deltasync::test::PgSite;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

const Json kOpts = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};

void PgSync(PgConn& c, const std::string& url) { c.Text("SELECT deltasync_sync($1, $2::jsonb)", {url, kOpts.dump()}); }
void SqliteSync(Site& s, const std::string& url) {
  s.Text("SELECT deltasync_sync(?1, ?2)", {Value::Text(url), Value::Text(kOpts.dump())});
}

Json HubChecksum(const HubProcess& hub, const std::string& node) {
  httplib::Client c("127.0.0.1", hub.port());
  c.set_read_timeout(30, 0);
  httplib::Result r = c.Get(("/nodes/" + node + "/checksum").c_str());
  if (!r || r->status != 200) throw std::runtime_error("hub checksum failed");
  return Json::parse(r->body);
}

}  // namespace

TEST(MixedChecksum, PostgresqlSqliteAndTheHubAgree) {
  HubProcess hub;
  std::string url = hub.url("ck");
  PgSite pg;
  pg->Exec("CREATE TABLE m (id bigint PRIMARY KEY, t text, r float8, b bytea, flag bool, n int4, d date, u uuid);"
           "SELECT deltasync_enable('m')");
  Site s;
  s.Exec("CREATE TABLE m (id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, flag INTEGER, n INTEGER, d TEXT, u TEXT);"
         "SELECT deltasync_enable('m')");
  pg->Exec("INSERT INTO m VALUES (1, 'pg', 1.5, '\\x00ff', true, 7, '2026-12-02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),"
           " (2, NULL, -2.5, '\\x', false, -2147483648, NULL, NULL), (3, 'gone', 0, NULL, NULL, NULL, NULL, NULL)");
  s.Exec("INSERT INTO m VALUES (10, 'sqlite é', 2.25, x'01', 1, 3, '1999-01-01', '00000000-0000-0000-0000-000000000000'),"
         " (11, '', 1e300, NULL, 0, NULL, NULL, NULL)");
  PgSync(*pg, url);
  SqliteSync(s, url);
  PgSync(*pg, url);
  pg->Exec("DELETE FROM m WHERE id = 3");
  s.Exec("UPDATE m SET t = 'edited' WHERE id = 1");
  PgSync(*pg, url);
  SqliteSync(s, url);
  PgSync(*pg, url);
  Json from_pg = Json::parse(pg->Text("SELECT deltasync_checksum()"));
  Json from_sqlite = Json::parse(s.Text("SELECT deltasync_checksum()"));
  EXPECT_EQ(from_pg["tables"]["m"]["rows"], 4) << from_pg.dump();
  EXPECT_EQ(from_pg, from_sqlite);
  EXPECT_EQ(HubChecksum(hub, "ck"), from_sqlite);

  // An unsynced write on PostgreSQL: it alone differs, until it syncs.
  pg->Exec("UPDATE m SET r = r + 1 WHERE id = 10");
  Json changed = Json::parse(pg->Text("SELECT deltasync_checksum('m')"));
  EXPECT_NE(changed, from_sqlite);
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_checksum()")), from_sqlite);
  EXPECT_EQ(HubChecksum(hub, "ck"), from_sqlite);
  PgSync(*pg, url);
  SqliteSync(s, url);
  EXPECT_EQ(HubChecksum(hub, "ck"), changed);
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_checksum()")), changed);
}

// A counter: each engine's sales count, and the sum is one digest on both sites and the hub.
TEST(MixedChecksum, CountersAgreeOnTheSum) {
  HubProcess hub;
  std::string url = hub.url("ck_counter");
  PgSite pg;
  pg->Exec("CREATE TABLE stock (id bigint PRIMARY KEY, qty bigint NOT NULL DEFAULT 0);"
           "SELECT deltasync_enable('stock', '{\"columns\": {\"qty\": \"counter\"}}')");
  Site s;
  s.Exec("CREATE TABLE stock (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL DEFAULT 0);"
         "SELECT deltasync_enable('stock', '{\"columns\": {\"qty\": \"counter\"}}')");
  pg->Exec("INSERT INTO stock VALUES (1, 100), (2, 5)");
  PgSync(*pg, url);
  SqliteSync(s, url);
  pg->Exec("UPDATE stock SET qty = qty - 3 WHERE id = 1");
  s.Exec("UPDATE stock SET qty = qty - 4 WHERE id = 1");
  EXPECT_NE(Json::parse(pg->Text("SELECT deltasync_checksum()")), Json::parse(s.Text("SELECT deltasync_checksum()")));
  PgSync(*pg, url);
  SqliteSync(s, url);
  PgSync(*pg, url);
  ASSERT_EQ(pg->Text("SELECT qty FROM stock WHERE id = 1"), "93");
  Json want = Json::parse(s.Text("SELECT deltasync_checksum()"));
  EXPECT_EQ(Json::parse(pg->Text("SELECT deltasync_checksum()")), want);
  EXPECT_EQ(HubChecksum(hub, "ck_counter"), want);
}
