// Backups of a PostgreSQL site with pg_dump (docs/operations.md, "Backups"): a dump restored
// into an empty database — plain SQL through psql, the custom format through pg_restore -j 2,
// and a schema-only then a data-only dump — is the same site: its id, change counter, hub
// cursors, shadow rows and triggers, deltasync_status as before; it syncs on with a real hub
// and a SQLite site sending only what the hub lacked, and every site ends with the same rows.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

// An empty database (no extension) for a restore, dropped at the end.
class EmptyDb {
 public:
  explicit EmptyDb(const std::string& name) : name_(name) {
    PgConn admin("postgres");
    admin.Exec("DROP DATABASE IF EXISTS " + name_);
    admin.Exec("CREATE DATABASE " + name_);
  }
  ~EmptyDb() {
    conn_.reset();
    try {
      PgConn admin("postgres");
      admin.Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PgConn& operator*() {
    if (!conn_) conn_ = std::make_unique<PgConn>(name_);
    return *conn_;
  }
  PgConn* operator->() { return &**this; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unique_ptr<PgConn> conn_;
};

void Shell(const std::string& cmd) {
  ASSERT_EQ(std::system(("set -e; " + cmd).c_str()), 0) << cmd;
}

Json PgCall(PgConn& c, const std::string& fn, const std::string& url) {
  return Json::parse(c.Text("SELECT " + fn + "($1, '{\"timeout_ms\": 60000}'::jsonb)::text", {url}));
}
Json SqliteCall(Site& s, const std::string& fn, const std::string& url) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, '{\"timeout_ms\": 60000}')", {Value::Text(url)}));
}

std::vector<std::string> PgLines(PgConn& c, const std::string& sql) {
  std::vector<std::string> out;
  for (auto& r : c.Rows(sql)) {
    std::string line;
    for (size_t k = 0; k < r.size(); ++k) line += (k ? "|" : "") + r[k];
    out.push_back(line);
  }
  return out;
}
std::vector<std::string> SqliteItems(Site& s) {
  std::vector<std::string> out;
  for (auto& r : s.Rows("SELECT id || ':' || name || ':' || qty FROM item ORDER BY id")) out.push_back(r.at(0).s);
  return out;
}

// What must be the same on a site and its restored copy: identity, counter, cursors,
// deltasync's own tables, every shadow row, the capture triggers, the status.
struct SiteState {
  std::vector<std::string> lines;
  Json status;
};
SiteState StateOf(PgConn& c) {
  SiteState s;
  for (const char* q : {"SELECT deltasync_site_id(), deltasync_db_version()",
                        "SELECT 'hlc', value FROM deltasync.settings WHERE name = 'hlc'",
                        "SELECT ord, encode(site_id, 'hex') FROM deltasync.sites ORDER BY ord",
                        "SELECT id, relid::regclass::text, name, pk, columns, policies FROM deltasync.tables ORDER BY id",
                        "SELECT hub, hub_id, push_cursor, pull_cursor FROM deltasync.hubs ORDER BY hub",
                        "SELECT hub, lo, hi FROM deltasync.hub_echo ORDER BY hub, lo",
                        "SELECT * FROM deltasync.hub_frontier ORDER BY hub",
                        "SELECT k0, cl, ver, hlc, site, encode(clk, 'hex') FROM deltasync.meta_1 ORDER BY k0",
                        "SELECT c.relname, g.tgname, g.tgenabled FROM pg_trigger AS g JOIN pg_class AS c ON c.oid = g.tgrelid"
                        " WHERE g.tgname LIKE 'deltasync%' AND c.relnamespace = 'public'::regnamespace ORDER BY 1, 2",
                        "SELECT id, name, qty FROM item ORDER BY id", "SELECT deltasync_checksum()::text"})
    for (const std::string& l : PgLines(c, q)) s.lines.push_back(l);
  s.status = Json::parse(c.Text("SELECT deltasync_status()::text"));
  for (Json& h : s.status.at("hubs")) h.erase("last_sync_ms");  // a time, the same anyway
  return s;
}

// The restored database is the site: each check against the original's state.
void ExpectSameSite(PgConn& restored, const SiteState& before, const std::string& how) {
  SiteState after = StateOf(restored);
  EXPECT_EQ(after.lines, before.lines) << how;
  EXPECT_EQ(after.status, before.status) << how;
  EXPECT_GT(after.status.at("pending_changes").get<int64_t>(), 0) << how << ": the unpushed write is still pending";
}

}  // namespace

TEST(MixedBackup, APgDumpRestoredIntoAnEmptyDatabaseIsTheSameSiteAndSyncsOn) {
  HubProcess hub;
  std::string url = hub.url("dumped");
  PgSite a;
  Site b;
  const char* schema = "CREATE TABLE item(id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);";
  a->Exec(schema);
  a->Exec("SELECT deltasync_enable('item', '{\"columns\": {\"qty\": \"counter\"}}')");
  b.Exec(schema);
  b.Exec("SELECT deltasync_enable('item', '{\"columns\": {\"qty\": \"counter\"}}')");
  a->Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
  b.Exec("INSERT INTO item VALUES (10, 'ten', 10)");
  PgCall(*a, "deltasync_sync", url);
  SqliteCall(b, "deltasync_sync", url);
  PgCall(*a, "deltasync_sync", url);
  a->Exec("UPDATE item SET qty = qty + 5 WHERE id = 10; DELETE FROM item WHERE id = 2");
  PgCall(*a, "deltasync_sync", url);
  SqliteCall(b, "deltasync_sync", url);
  a->Exec("UPDATE item SET name = 'uno' WHERE id = 1");  // not pushed when the dump is taken
  SiteState before = StateOf(*a);
  ASSERT_EQ(before.status.at("hubs").size(), 1u);

  std::string dir = ::testing::TempDir();
  std::string plain = dir + "/" + a.name() + ".sql", custom = dir + "/" + a.name() + ".dump";
  std::string schema_only = dir + "/" + a.name() + ".schema.sql", data_only = dir + "/" + a.name() + ".data.sql";
  Shell("pg_dump -d " + a.name() + " -f " + plain);
  Shell("pg_dump -Fc -d " + a.name() + " -f " + custom);
  Shell("pg_dump --schema-only -d " + a.name() + " -f " + schema_only);
  Shell("pg_dump --data-only -d " + a.name() + " -f " + data_only);

  EmptyDb p(a.name() + "_plain"), c(a.name() + "_custom"), d(a.name() + "_split");
  Shell("psql -X -q -v ON_ERROR_STOP=1 -d " + p.name() + " -f " + plain + " >/dev/null");
  ExpectSameSite(*p, before, "pg_dump | psql");
  Shell("pg_restore -j 2 --exit-on-error -d " + c.name() + " " + custom);
  ExpectSameSite(*c, before, "pg_restore -j 2");
  // A data-only restore runs with session_replication_role = replica, so the capture
  // triggers the schema-only restore made do not record the restored rows as new writes.
  Shell("psql -X -q -v ON_ERROR_STOP=1 -d " + d.name() + " -f " + schema_only + " >/dev/null");
  Shell("PGOPTIONS='-c session_replication_role=replica' psql -X -q -v ON_ERROR_STOP=1 -d " + d.name() + " -f " + data_only +
        " >/dev/null");
  ExpectSameSite(*d, before, "pg_dump --schema-only, then --data-only");

  // The original is retired (it stays as it was); the pg_restore copy goes on as the site.
  PgConn& r = *c;
  Json push = PgCall(r, "deltasync_push", url);
  EXPECT_EQ(push.at("rows"), 1) << "only the unpushed update travels: " << push.dump();
  Json pull = PgCall(r, "deltasync_pull", url);
  EXPECT_EQ(pull.at("applied"), 0) << pull.dump();
  r.Exec("INSERT INTO item VALUES (4, 'four', 4); UPDATE item SET qty = qty + 2 WHERE id = 3");
  b.Exec("UPDATE item SET qty = qty + 1 WHERE id = 3");
  for (int round = 0; round < 2; ++round) {
    SqliteCall(b, "deltasync_sync", url);
    PgCall(r, "deltasync_sync", url);
  }
  std::vector<std::string> items = PgLines(r, "SELECT id || ':' || name || ':' || qty FROM item ORDER BY id");
  EXPECT_EQ(items, (std::vector<std::string>{"1:uno:1", "3:three:6", "4:four:4", "10:ten:15"}));
  EXPECT_EQ(SqliteItems(b), items);
  EXPECT_EQ(r.Text("SELECT deltasync_status()->>'pending_changes'"), "0");

  // Its shadow table is no extension member, yet it cannot be dropped on its own; disabling
  // drops it, and DROP EXTENSION ... CASCADE leaves nothing of deltasync.
  try {
    r.Exec("DROP TABLE deltasync.meta_1");
    ADD_FAILURE() << "a shadow table of a tracked table was dropped";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("deltasync_disable('item')"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.Text("SELECT count(*) FROM pg_depend WHERE deptype = 'e' AND objid = 'deltasync.meta_1'::regclass"), "0");
  p->Exec("SELECT deltasync_disable('item')");
  EXPECT_EQ(p->Text("SELECT to_regclass('deltasync.meta_1') IS NULL"), "t");
  r.Exec("DROP EXTENSION deltasync CASCADE");
  EXPECT_EQ(r.Text("SELECT count(*) FROM pg_namespace WHERE nspname = 'deltasync'"), "0");
  EXPECT_EQ(r.Text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'deltasync%'"), "0");
}

namespace {

std::string PgCallError(PgConn& c, const std::string& fn, const std::string& url) {
  try {
    PgCall(c, fn, url);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// A PostgreSQL site restored from a dump taken earlier (docs/operations.md, "A site restored
// from a backup"): what its original wrote and pushed after the dump is on the hub only. Its
// first pull, and its first push after a write, say so and change nothing; a resync brings
// those writes back and keeps what it wrote since the restore; it syncs on with a SQLite site.
TEST(MixedBackup, APostgresqlSiteRestoredFromAnEarlierDumpIsToldAndResynchronises) {
  HubProcess hub;
  std::string url = hub.url("pgrestored");
  PgSite a;
  Site b;
  const char* schema = "CREATE TABLE item(id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);"
                       "SELECT deltasync_enable('item');";
  a->Exec(schema);
  b.Exec(schema);
  a->Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
  PgCall(*a, "deltasync_sync", url);
  std::string dump = ::testing::TempDir() + "/" + a.name() + ".earlier.dump";
  Shell("pg_dump -Fc -d " + a.name() + " -f " + dump);
  // Three transactions after the dump (a block of versions each), pushed.
  a->Exec("INSERT INTO item VALUES (3, 'after the dump', 3)");
  a->Exec("UPDATE item SET qty = 20 WHERE id = 2");
  a->Exec("UPDATE item SET name = 'three' WHERE id = 3");
  PgCall(*a, "deltasync_sync", url);
  SqliteCall(b, "deltasync_sync", url);
  ASSERT_EQ(b.Text("SELECT group_concat(id || ':' || qty) FROM item"), "1:1,2:20,3:3");

  EmptyDb r(a.name() + "_earlier");
  Shell("pg_restore --exit-on-error -d " + r.name() + " " + dump);
  std::string site_id = r->Text("SELECT deltasync_site_id()");
  EXPECT_EQ(site_id, a->Text("SELECT deltasync_site_id()"));
  const std::string items = "SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM item";
  for (const char* fn : {"deltasync_pull", "deltasync_sync"}) {
    std::string before = r->Text(items);
    std::string err = PgCallError(*r, fn, url);
    EXPECT_NE(err.find("restored from an earlier backup or copied"), std::string::npos) << fn << ": " << err;
    EXPECT_NE(err.find("\"resync\": true"), std::string::npos) << err;
    EXPECT_EQ(r->Text(items), before) << fn << " changed the restored site";
    if (std::string(fn) == "deltasync_pull") r->Exec("INSERT INTO item VALUES (4, 'written after the restore', 4)");
  }
  Json done = Json::parse(r->Text("SELECT deltasync_sync($1, '{\"timeout_ms\": 60000, \"resync\": true}'::jsonb)::text", {url}));
  EXPECT_EQ(done.at("pull").at("resync").at("removed"), 0) << done.dump();
  r->Exec("UPDATE item SET qty = 5 WHERE id = 1");
  PgCall(*r, "deltasync_sync", url);
  SqliteCall(b, "deltasync_sync", url);
  PgCall(*r, "deltasync_sync", url);
  EXPECT_EQ(r->Text(items), "1:5,2:20,3:3,4:4");
  EXPECT_EQ(SqliteItems(b), PgLines(*r, "SELECT id || ':' || name || ':' || qty FROM item ORDER BY id"));
  EXPECT_EQ(PgCall(*r, "deltasync_push", url).at("pushed"), 0);
  EXPECT_EQ(r->Text("SELECT deltasync_site_id()"), site_id);
}

// A hub restored from a backup taken earlier, with a PostgreSQL site (docs/operations.md,
// "Backups", as HubBackups.ARestoreFromAnEarlierBackupWithANewIdLosesNothing for SQLite
// sites): started once with --new-hub-id, every site pushes and pulls everything again and
// nothing is lost; the restored hub does not take the sites for restored ones.
TEST(MixedBackup, AHubRestoredFromAnEarlierBackupLosesNothingOfAPostgresqlSite) {
  HubProcess::Options o;
  o.db = "";  // a store file, copied as the backup
  HubProcess hub(o);
  std::string url = hub.url("hubbk");
  PgSite a;
  Site b;
  const char* schema = "CREATE TABLE item(id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);"
                       "SELECT deltasync_enable('item');";
  a->Exec(schema);
  b.Exec(schema);
  a->Exec("INSERT INTO item VALUES (1, 'before the backup', 1), (2, 'two', 2)");
  PgCall(*a, "deltasync_sync", url);
  SqliteCall(b, "deltasync_sync", url);
  hub.Stop();
  std::string backup = hub.db() + ".backup";
  Shell("cp '" + hub.db() + "' '" + backup + "'");
  hub.Restart();
  a->Exec("INSERT INTO item VALUES (3, 'after the backup', 3)");
  a->Exec("DELETE FROM item WHERE id = 2");
  PgCall(*a, "deltasync_sync", url);
  b.Exec("UPDATE item SET qty = 10 WHERE id = 1");
  SqliteCall(b, "deltasync_sync", url);
  PgCall(*a, "deltasync_sync", url);
  hub.Stop();
  for (const char* suffix : {"-wal", "-shm"}) std::remove((hub.db() + suffix).c_str());
  ASSERT_EQ(std::rename(backup.c_str(), hub.db().c_str()), 0);
  hub.options().extra_args = {"--new-hub-id"};
  hub.Restart();
  for (int round = 0; round < 2; ++round) {
    PgCall(*a, "deltasync_sync", url);
    SqliteCall(b, "deltasync_sync", url);
  }
  PgSite c;
  c->Exec(schema);
  PgCall(*c, "deltasync_pull", url);
  const std::string items = "SELECT id || ':' || name || ':' || qty FROM item ORDER BY id";
  EXPECT_EQ(PgLines(*a, items), (std::vector<std::string>{"1:before the backup:10", "3:after the backup:3"}));
  EXPECT_EQ(SqliteItems(b), PgLines(*a, items));
  EXPECT_EQ(PgLines(*c, items), PgLines(*a, items));
}
