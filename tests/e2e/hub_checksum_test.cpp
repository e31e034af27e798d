// End to end: GET /nodes/<node>/checksum against a real `deltasync serve` — two SQLite sites
// and the hub give the same document after sync (every storage class, a counter, a deleted
// row, rows across several chunks) and a different one after an unsynced write; the
// tables parameter; the node's token is required; a node's tables are its own.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, r REAL, b BLOB, n);"
    "CREATE TABLE item(id TEXT PRIMARY KEY, stock INTEGER NOT NULL DEFAULT 0);"
    "SELECT deltasync_enable('t'); SELECT deltasync_enable('item', '{\"columns\": {\"stock\": \"counter\"}}');";

struct Answer {
  int status = -1;
  std::string body;
};

Answer Get(const HubProcess& hub, const std::string& path, const std::string& token) {
  httplib::Client c("127.0.0.1", hub.port());
  c.set_read_timeout(30, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  httplib::Result r = c.Get(path.c_str(), h);
  if (!r) return {};
  return {r->status, r->body};
}

Json HubChecksum(const HubProcess& hub, const std::string& node, const std::string& token, const std::string& query = "") {
  Answer a = Get(hub, "/nodes/" + node + "/checksum" + query, token);
  EXPECT_EQ(a.status, 200) << a.body;
  return Json::parse(a.body);
}

Json SiteChecksum(Site& s, const std::string& arg = "") { return Json::parse(s.Text("SELECT deltasync_checksum(" + arg + ")")); }

void Sync(Site& s, const std::string& url, const std::string& token) {
  s.Text("SELECT deltasync_sync(?1, ?2)",
         {Value::Text(url), Value::Text(Json({{"timeout_ms", 60000}, {"token", token}, {"batch_rows", 700}}).dump())});
}

const char* kConfig = R"({"nodes": {"shop": {"tokens": ["tok"]}, "other": {"tokens": ["tok2"]}}})";

}  // namespace

TEST(HubChecksum, SitesAndHubAgreeAfterSyncAndDifferAfterAnUnsyncedWrite) {
  HubProcess::Options o;
  o.config_json = kConfig;
  HubProcess hub(o);
  std::string url = hub.url("shop");
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec(kSchema);
  // 2,500 rows: the hub reads them in chunks of 1,000.
  a.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
         " INSERT INTO t SELECT i, 'row ' || i, i * 0.25, CASE WHEN i % 3 = 0 THEN x'00ff' END,"
         " CASE i % 4 WHEN 0 THEN i WHEN 1 THEN i * 1.0 WHEN 2 THEN 'x' || i END FROM n");
  a.Exec("INSERT INTO item VALUES ('apple', 100), ('pear', 5)");
  b.Exec("INSERT INTO t VALUES (-1, NULL, -0.0, x'', 'from b')");
  Sync(a, url, "tok");
  Sync(b, url, "tok");
  Sync(a, url, "tok");
  // Both sites sell; one row is deleted.
  a.Exec("UPDATE item SET stock = stock - 3 WHERE id = 'apple'; DELETE FROM t WHERE id = 7");
  b.Exec("UPDATE item SET stock = stock - 4 WHERE id = 'apple'");
  for (Site* s : {&a, &b, &a}) Sync(*s, url, "tok");
  ASSERT_EQ(a.Int("SELECT stock FROM item WHERE id = 'apple'"), 93);
  Json want = SiteChecksum(a);
  EXPECT_EQ(want["tables"]["t"]["rows"], 2500);
  EXPECT_EQ(want["tables"]["item"]["rows"], 2);
  EXPECT_EQ(SiteChecksum(b), want);
  EXPECT_EQ(HubChecksum(hub, "shop", "tok"), want);

  // An unsynced write: its site differs from the hub and the other site until it syncs.
  b.Exec("UPDATE t SET n = 'changed' WHERE id = 2000");
  EXPECT_EQ(SiteChecksum(a), want);
  EXPECT_EQ(HubChecksum(hub, "shop", "tok"), want);
  EXPECT_NE(SiteChecksum(b)["tables"]["t"], want["tables"]["t"]);
  EXPECT_EQ(SiteChecksum(b)["tables"]["item"], want["tables"]["item"]);
  Sync(b, url, "tok");
  Json after = SiteChecksum(b);
  EXPECT_NE(after, want);
  EXPECT_EQ(HubChecksum(hub, "shop", "tok"), after);
  Sync(a, url, "tok");
  EXPECT_EQ(SiteChecksum(a), after);

  // ?tables= narrows it; a table the node does not hold counts 0 rows.
  EXPECT_EQ(HubChecksum(hub, "shop", "tok", "?tables=item"), SiteChecksum(a, "'item'"));
  Json some = HubChecksum(hub, "shop", "tok", "?tables=t,nosuch");
  EXPECT_EQ(some["tables"]["t"], after["tables"]["t"]);
  EXPECT_EQ(some["tables"]["nosuch"], Json({{"rows", 0}, {"digest", std::string(64, '0')}}));
  EXPECT_EQ(some["tables"].size(), 2u);
}

TEST(HubChecksum, NeedsTheNodesTokenAndShowsOnlyItsRows) {
  HubProcess::Options o;
  o.config_json = kConfig;
  o.auto_create_nodes = false;
  HubProcess hub(o);
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'x', NULL, NULL, NULL)");
  Sync(a, hub.url("shop"), "tok");
  EXPECT_EQ(Get(hub, "/nodes/shop/checksum", "").status, 401);
  EXPECT_EQ(Get(hub, "/nodes/shop/checksum", "tok2").status, 401);
  EXPECT_EQ(Get(hub, "/nodes/nosuch/checksum", "tok").status, 401);
  EXPECT_EQ(HubChecksum(hub, "shop", "tok")["tables"]["t"]["rows"], 1);
  EXPECT_EQ(HubChecksum(hub, "other", "tok2"), Json({{"tables", Json::object()}}));
}
