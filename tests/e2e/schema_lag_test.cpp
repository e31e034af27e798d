// End to end through a real hub: SQLite sites a migration apart (SPEC section 8). The hub
// keeps every column's cells, so a site that has not migrated yet keeps what it cannot apply
// and merges it in after its migration; a site that dropped a column keeps nothing of it,
// however often the hub sends it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

// deltasync_sync with generous limits (a loaded 2-core machine).
Json Sync(Site& s, const std::string& url) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};
  return Json::parse(s.Text("SELECT deltasync_sync(?1, ?2)", {Value::Text(url), Value::Text(o.dump())}));
}

std::string Rows(Site& s) {
  return s.Text("SELECT group_concat(quote(id) || ' ' || quote(name) || ' ' || quote(w), char(10))"
                " FROM (SELECT * FROM t ORDER BY id)");
}

}  // namespace

// The review's reproduction: B migrates first (ADD COLUMN w, RENAME v TO name, writes to
// both), A a day later; in between both keep syncing; afterwards both hold the same rows.
TEST(HubSchemaLag, SitesOneMigrationApartConverge) {
  HubProcess hub;
  std::string url = hub.url("lag");
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');");
  a.Exec("INSERT INTO t VALUES (1, 'one')");
  Sync(a, url);
  Sync(b, url);
  b.Exec("ALTER TABLE t ADD COLUMN w TEXT");
  b.Exec("UPDATE t SET w = 'from B' WHERE id = 1");
  b.Exec("ALTER TABLE t RENAME COLUMN v TO name");
  b.Exec("UPDATE t SET name = 'renamed on B' WHERE id = 1");
  b.Exec("INSERT INTO t VALUES (2, 'two', 'w2')");
  Sync(b, url);
  a.Exec("INSERT INTO t VALUES (3, 'A, not migrated')");
  Json pulled = Sync(a, url);
  // A has neither w nor name: B's changes of both are kept (rows 1 and 2), v keeps A's value.
  EXPECT_EQ(pulled["pull"]["kept"], 4) << pulled.dump();
  EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 1"), "one");
  Sync(b, url);
  EXPECT_EQ(b.Text("SELECT name FROM t WHERE id = 3"), "A, not migrated");

  a.Exec("ALTER TABLE t ADD COLUMN w TEXT; ALTER TABLE t RENAME COLUMN v TO name");
  Sync(a, url);
  Sync(b, url);
  Sync(a, url);
  EXPECT_EQ(Rows(a), Rows(b));
  EXPECT_EQ(Rows(a), "1 'renamed on B' 'from B'\n2 'two' 'w2'\n3 'A, not migrated' NULL");
  EXPECT_EQ(a.Int("SELECT count(*) FROM deltasync_pending"), 0);
}

// The trap: a dropped column's cells stay on the hub forever; a site pulling from the
// beginning again (a new hub node id, a reset) receives them every time and keeps none.
TEST(HubSchemaLag, ADroppedColumnsCellsOnTheHubKeepNothing) {
  HubProcess hub;
  std::string url = hub.url("drop");
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, w TEXT, old TEXT); SELECT deltasync_enable('t');");
  for (int k = 0; k < 20; ++k)
    a.Exec("INSERT INTO t VALUES (" + std::to_string(k) + ", 'n', 'w', 'old " + std::to_string(k) + "')");
  Sync(a, url);
  Sync(b, url);
  b.Exec("BEGIN; CREATE TABLE new__t(id INTEGER PRIMARY KEY, name TEXT, w TEXT); INSERT INTO new__t SELECT id, name, w"
         " FROM t; DROP TABLE t; ALTER TABLE new__t RENAME TO t; COMMIT; SELECT deltasync_status();");
  a.Exec("UPDATE t SET old = 'later', name = 'n2'");
  Sync(a, url);
  for (int round = 0; round < 3; ++round) {
    b.Exec("UPDATE deltasync_hubs SET pull_cursor = 0");  // pull everything the hub holds again
    Json r = Sync(b, url);
    EXPECT_EQ(r["pull"]["kept"], 0) << r.dump();
    EXPECT_GE(r["pull"]["untracked"].get<int64_t>(), 1) << r.dump();
  }
  EXPECT_EQ(b.Int("SELECT count(*) FROM deltasync_pending"), 0);
  EXPECT_EQ(b.Text("SELECT group_concat(DISTINCT name) FROM t"), "n2");
}

// Issue 9 (audit B): a renamed column's history follows the new name on the hub. Sites A
// and B rename name -> title (Django's RenameField) after their rows reached the hub; a
// site created after the migration (title NOT NULL, it never knew "name") pulls everything
// and must get complete rows, with nothing kept under the old name's values for long.
TEST(HubSchemaLag, ARenamedColumnsValuesReachASiteCreatedAfterTheRename) {
  HubProcess hub;
  std::string url = hub.url("rename");
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL);"
            " SELECT deltasync_enable('p');");
  for (int k = 1; k <= 30; ++k)
    (k % 2 ? a : b).Exec("INSERT INTO p VALUES (" + std::to_string(k) + ", 'item " + std::to_string(k) + "', " +
                         std::to_string(k) + ")");
  Sync(a, url);
  Sync(b, url);
  Sync(a, url);
  b.Exec("UPDATE p SET stock = 100 WHERE id = 2");  // a column clock of its own, after the first push
  Sync(b, url);
  for (Site* s : {&a, &b}) {
    s->Exec("ALTER TABLE p RENAME COLUMN name TO title");
    Sync(*s, url);
  }
  a.Exec("UPDATE p SET title = 'renamed later' WHERE id = 3");
  Sync(a, url);
  Site c;
  c.Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, title TEXT NOT NULL, stock INTEGER NOT NULL);"
         " SELECT deltasync_enable('p');");
  Json r = Sync(c, url);
  EXPECT_EQ(c.Int("SELECT count(*) FROM p"), 30) << r.dump();
  EXPECT_EQ(c.Int("SELECT count(*) FROM deltasync_quarantine"), 0);
  auto rows = [](Site& s) {
    return s.Text("SELECT group_concat(id || ' ' || title || ' ' || stock, char(10)) FROM (SELECT * FROM p ORDER BY id)");
  };
  EXPECT_EQ(rows(c), rows(a));
  Sync(b, url);
  EXPECT_EQ(rows(b), rows(a));
  EXPECT_EQ(c.Text("SELECT title || '/' || (SELECT stock FROM p WHERE id = 2) FROM p WHERE id = 3"), "renamed later/100");
  // The re-sent values keep their clocks: on the sites that had them nothing changed.
  Json ra = Sync(a, url);
  EXPECT_EQ(ra["pull"]["quarantined"].get<int64_t>(), 0) << ra.dump();
}

// Issue 9: a renamed key column (Django's RenameField on the primary key, followed locally
// on SQLite). Keys match by position: B renames pid -> id and keeps syncing with A, which
// has not migrated, in both directions; a site created after the rename pulls everything;
// a site declaring the table with another key is still refused by the hub.
TEST(HubSchemaLag, ARenamedKeyColumnKeepsTheTableSyncing) {
  HubProcess hub;
  std::string url = hub.url("keyrename");
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE p(pid INTEGER PRIMARY KEY, name TEXT NOT NULL); SELECT deltasync_enable('p');");
  for (int k = 1; k <= 5; ++k) a.Exec("INSERT INTO p VALUES (" + std::to_string(k) + ", 'item " + std::to_string(k) + "')");
  Sync(a, url);
  Sync(b, url);
  b.Exec("ALTER TABLE p RENAME COLUMN pid TO id");
  b.Exec("UPDATE p SET name = 'from B' WHERE id = 1; INSERT INTO p VALUES (6, 'six'); DELETE FROM p WHERE id = 2");
  Json rb = Sync(b, url);
  EXPECT_EQ(rb["push"]["rows"], 3) << rb.dump();
  a.Exec("UPDATE p SET name = 'from A' WHERE pid = 3; INSERT INTO p VALUES (7, 'seven')");
  Sync(a, url);
  Sync(b, url);
  auto rows = [](Site& s, const char* key) {
    return s.Text(std::string("SELECT group_concat(") + key + " || ' ' || name, char(10)) FROM (SELECT * FROM p ORDER BY " +
                  key + ")");
  };
  EXPECT_EQ(rows(a, "pid"), "1 from B\n3 from A\n4 item 4\n5 item 5\n6 six\n7 seven");
  EXPECT_EQ(rows(b, "id"), rows(a, "pid"));

  Site c;
  c.Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT NOT NULL); SELECT deltasync_enable('p');");
  c.Exec("INSERT INTO p VALUES (8, 'from C')");
  Sync(c, url);
  Sync(a, url);
  EXPECT_EQ(rows(c, "id"), rows(a, "pid"));
  EXPECT_EQ(a.Text("SELECT name FROM p WHERE pid = 8"), "from C");

  Site d;  // p keyed by name, pid an ordinary column: not the same table
  d.Exec("CREATE TABLE p(name TEXT PRIMARY KEY, pid INTEGER); SELECT deltasync_enable('p');"
         " INSERT INTO p VALUES ('x', 1)");
  std::string err = d.ExecError("SELECT deltasync_sync('" + url + "')");
  EXPECT_NE(err.find("differ from those this node holds"), std::string::npos) << err;
  EXPECT_NE(err.find("non-key column"), std::string::npos) << err;
  EXPECT_EQ(rows(c, "id"), rows(a, "pid"));
}
