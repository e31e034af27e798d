// End to end: json columns (docs/policies.md) through the real hub process — two sites edit
// different members of one document offline and both edits survive whichever syncs first; a
// member removed on one site stays removed; a site that joins later gets the document from
// the hub alone; the hub's checksum agrees with the sites'; a site that declares the column
// otherwise is refused by the hub.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kCatalog =
    "CREATE TABLE product(id TEXT PRIMARY KEY, name TEXT NOT NULL, attrs TEXT NOT NULL DEFAULT '{}');"
    "SELECT deltasync_enable('product', '{\"columns\": {\"attrs\": \"json\"}}');";

Json Opts(Json extra = Json::object()) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) o[it.key()] = it.value();
  return o;
}

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(options.dump())}));
}

std::string Attrs(Site& s, const std::string& id = "lamp") {
  return s.Text("SELECT attrs FROM product WHERE id = '" + id + "'");
}

Json HubChecksum(const HubProcess& hub, const std::string& node) {
  httplib::Client c("127.0.0.1", hub.port());
  c.set_read_timeout(30, 0);
  httplib::Result r = c.Get(("/nodes/" + node + "/checksum").c_str());
  EXPECT_TRUE(r && r->status == 200);
  return r ? Json::parse(r->body) : Json();
}

TEST(HubJson, TwoSitesEditDifferentMembersOfflineAndBothEditsSurvive) {
  HubProcess hub;
  std::string url = hub.url("catalog");
  Site a, b;
  a.Exec(kCatalog);
  b.Exec(kCatalog);
  a.Exec("INSERT INTO product VALUES ('lamp', 'Lamp', '{\"color\":\"red\",\"size\":{\"h\":30,\"w\":10},\"tags\":[\"new\"]}')");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  ASSERT_EQ(Attrs(b), "{\"color\":\"red\",\"size\":{\"h\":30,\"w\":10},\"tags\":[\"new\"]}");
  // Offline: A recolours and removes the tags; B changes the height and adds a price; both
  // edit the name (last-writer-wins beside the document).
  a.Exec("UPDATE product SET attrs = json_remove(json_set(attrs, '$.color', 'blue'), '$.tags'), name = 'A lamp'");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // B's writes are the later ones
  b.Exec("UPDATE product SET attrs = json_set(attrs, '$.size.h', 45, '$.price', 9.9), name = 'B lamp'");
  // Back online, B first, pages of one row, each codec.
  Call(b, "deltasync_sync", url, Opts({{"codec", "json"}, {"batch_rows", 1}}));
  Call(a, "deltasync_sync", url, Opts({{"batch_rows", 1}}));
  Call(b, "deltasync_sync", url);
  const std::string merged = "{\"color\":\"blue\",\"price\":9.9,\"size\":{\"h\":45,\"w\":10}}";
  for (Site* s : {&a, &b}) {
    EXPECT_EQ(Attrs(*s), merged);
    EXPECT_EQ(s->Text("SELECT name FROM product"), "B lamp");
  }
  // A site that joins later gets the same document from the hub alone.
  Site c;
  c.Exec(kCatalog);
  Call(c, "deltasync_pull", url, Opts({{"batch_rows", 1}}));
  EXPECT_EQ(Attrs(c), merged);
  // The hub's checksum agrees with every site's.
  Json hub_sum = HubChecksum(hub, "catalog");
  for (Site* s : {&a, &b, &c})
    EXPECT_EQ(Json::parse(s->Text("SELECT deltasync_checksum()"))["tables"]["product"], hub_sum["tables"]["product"]);
  // Concurrent again, the other order: C removes the size object, A sets its width.
  c.Exec("UPDATE product SET attrs = json_remove(attrs, '$.size')");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  a.Exec("UPDATE product SET attrs = json_set(attrs, '$.size.w', 12)");  // later: keeps only its own member
  Call(c, "deltasync_sync", url);
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  Call(c, "deltasync_sync", url);
  for (Site* s : {&a, &b, &c}) EXPECT_EQ(Attrs(*s), "{\"color\":\"blue\",\"price\":9.9,\"size\":{\"w\":12}}");
}

TEST(HubJson, TheHubRefusesAColumnDeclaredAnotherWay) {
  HubProcess hub;
  std::string url = hub.url("catalog");
  Site a, plain;
  a.Exec(kCatalog);
  plain.Exec("CREATE TABLE product(id TEXT PRIMARY KEY, name TEXT NOT NULL, attrs TEXT NOT NULL DEFAULT '{}');"
             "SELECT deltasync_enable('product');");
  a.Exec("INSERT INTO product VALUES ('lamp', 'Lamp', '{\"color\":\"red\"}')");
  Call(a, "deltasync_sync", url);
  plain.Exec("INSERT INTO product VALUES ('lamp', 'Lamp', '{\"color\":\"green\"}')");
  std::string error;
  try {
    Call(plain, "deltasync_push", url);
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("held by this hub both as a json document and as a last-writer-wins value"), std::string::npos)
      << error;
  Site c;
  c.Exec(kCatalog);
  Call(c, "deltasync_pull", url);
  EXPECT_EQ(Attrs(c), "{\"color\":\"red\"}");
}

}  // namespace
