// End to end: compaction of the hub's tombstones below the frontier, and retention
// (docs/operations.md, "Compaction"). Real SQLite sites and the real hub process.
//
// DELTASYNC_E2E_CASES (default 20) sets the number of property cases and
// DELTASYNC_PROPERTY_SEED the first seed.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_process.hpp"
#include "sqlite/random_writes.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr const char* kAdmin = "admin-secret";

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

Json Opts(Json extra = Json::object()) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) o[it.key()] = it.value();
  return o;
}

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(options.dump())}));
}

std::string CallError(Site& s, const std::string& fn, const std::string& url) {
  try {
    Call(s, fn, url);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// A hub with an admin token and no automatic compaction (the tests compact when they want).
HubProcess::Options HubOptions(const std::string& extra_config = "") {
  HubProcess::Options o;
  o.config_json = std::string("{\"admin_token\": \"") + kAdmin + "\", \"compact_interval_s\": 0" + extra_config + "}";
  return o;
}

// POST to an admin endpoint: (status, parsed body or null).
std::pair<int, Json> Admin(const HubProcess& hub, const std::string& path, const std::string& token = kAdmin) {
  httplib::Client cli("127.0.0.1", hub.port());
  cli.set_read_timeout(60, 0);
  httplib::Headers h{{"Authorization", "Bearer " + token}};
  auto r = cli.Post(path.c_str(), h, "", "application/json");
  if (!r) return {-1, Json()};
  Json body = Json::parse(r->body, nullptr, false);
  return {r->status, body};
}

// Compacts a node; a node no site has reached yet is not there to compact (404): nothing dropped.
Json Compact(const HubProcess& hub, const std::string& node) {
  auto [status, body] = Admin(hub, "/nodes/" + node + "/compact");
  if (status == 404) return Json{{"dropped", 0}};
  if (status != 200) throw std::runtime_error("compact answered " + std::to_string(status) + ": " + body.dump());
  return body;
}

// The node's deleted-row count across tables, from its status.
int64_t Deleted(const HubProcess& hub, const std::string& node) {
  httplib::Client cli("127.0.0.1", hub.port());
  auto r = cli.Get(("/nodes/" + node + "/status").c_str());
  if (!r || r->status != 200) throw std::runtime_error("status failed");
  int64_t n = 0;
  Json status = Json::parse(r->body);
  for (const Json& t : status.at("tables")) n += t.at("deleted").get<int64_t>();
  return n;
}

constexpr const char* kSchema = "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL);"
                                "SELECT deltasync_enable('item');";
constexpr const char* kItems = "SELECT id, name, qty FROM item ORDER BY id";

}  // namespace

// Random writes, random partial syncs and compactions at random moments; then full syncs:
// every site holds the same rows, and so does a site that joins afterwards and pulls the
// hub's (compacted) state alone — a tombstone dropped too early would show there or as a
// divergence.
TEST(HubCompaction, ConvergenceWithCompactionInterleaved) {
  int64_t cases = EnvInt("DELTASYNC_E2E_CASES", 20);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261202);
  HubProcess hub(HubOptions());
  uint64_t dropped = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_E2E_CASES=1");
    std::string node = "compact" + std::to_string(seed);
    std::string url = hub.url(node);
    std::mt19937_64 rng(seed);
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    deltasync::test::RandomWriter writer(rng);
    std::vector<std::unique_ptr<Site>> sites;
    for (int k = 0; k < 3 + static_cast<int>(seed % 2); ++k) {
      sites.push_back(std::make_unique<Site>());
      sites.back()->Exec(deltasync::test::kRandomWriteSchema);
    }
    int steps = 30 + static_cast<int>(pick(60));
    try {
      for (int s = 0; s < steps; ++s) {
        size_t what = pick(100);
        if (what < 50) {
          writer.Write(*sites[pick(sites.size())]);
        } else if (what < 85) {
          static const char* kFns[] = {"deltasync_push", "deltasync_pull", "deltasync_sync"};
          static const int kBatch[] = {1, 3, 1000};
          Json o = Opts({{"batch_rows", kBatch[pick(3)]}});
          if (pick(5) == 0) o["tables"] = {"t", "nn"};  // a subset pull: does not move the frontier
          Call(*sites[pick(sites.size())], kFns[pick(3)], url, o);
        } else {
          dropped += Compact(hub, node).at("dropped").get<uint64_t>();
        }
      }
      for (int round = 0; round < 2; ++round) {
        for (auto& s : sites) Call(*s, "deltasync_push", url);
        for (auto& s : sites) Call(*s, "deltasync_pull", url);
        dropped += Compact(hub, node).at("dropped").get<uint64_t>();
      }
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what() << "\n--- hub log ---\n" << hub.log();
    }
    Site late;
    late.Exec(deltasync::test::kRandomWriteSchema);
    Call(late, "deltasync_pull", url);
    for (const char* q : deltasync::test::kRandomWriteTables) {
      auto ref = sites[0]->Rows(q);
      for (size_t k = 1; k < sites.size(); ++k) ASSERT_EQ(sites[k]->Rows(q), ref) << "sites 0 and " << k << ": " << q;
      ASSERT_EQ(late.Rows(q), ref) << "a site joining after compaction differs: " << q;
    }
    // The late site writes too, keys of dropped tombstones among them (the key space is
    // small); everyone converges again.
    try {
      for (int w = 0; w < 10; ++w) writer.Write(late);
      sites.push_back(std::make_unique<Site>());
      sites.back()->Exec(deltasync::test::kRandomWriteSchema);
      for (int w = 0; w < 5; ++w) writer.Write(*sites.back());  // written before its first sync
      for (int round = 0; round < 2; ++round) {
        for (Site* s : {&late, sites.back().get()}) Call(*s, "deltasync_push", url);
        for (auto& s : sites) Call(*s, "deltasync_sync", url);
        Call(late, "deltasync_sync", url);
        dropped += Compact(hub, node).at("dropped").get<uint64_t>();
      }
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what() << "\n--- hub log ---\n" << hub.log();
    }
    for (const char* q : deltasync::test::kRandomWriteTables) {
      auto ref = late.Rows(q);
      for (size_t k = 0; k < sites.size(); ++k)
        ASSERT_EQ(sites[k]->Rows(q), ref) << "site " << k << " and the late site differ after it wrote: " << q;
    }
  }
  EXPECT_GT(dropped, 0u) << "no case dropped a tombstone: the property tested nothing";
}

// A site that joins after a tombstone was dropped and inserts that key: its insert loses to
// the delete, as it would have had the tombstone stayed (it was made without seeing the
// delete), and every site converges on that. A key the node never had is inserted as usual.
TEST(HubCompaction, ANewSiteInsertingADroppedKeyConvergesOnTheDelete) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("graves");
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id = 1");
  Call(a, "deltasync_sync", url);
  for (Site* s : {&b, &a, &b, &a}) Call(*s, "deltasync_pull", url);
  ASSERT_EQ(Compact(hub, "graves").at("dropped"), 1);
  Site c;
  c.Exec(kSchema);
  Call(c, "deltasync_pull", url);
  c.Exec("INSERT INTO item VALUES (1, 'again by c', 5), (2, 'two', 2)");
  Call(c, "deltasync_sync", url);
  Call(c, "deltasync_pull", url);
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  Site d;
  d.Exec(kSchema);
  Call(d, "deltasync_pull", url);
  EXPECT_EQ(c.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(d.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Text("SELECT group_concat(id) FROM item"), "2");
  // Inserted again after c saw the delete: a new life, everywhere.
  c.Exec("INSERT INTO item VALUES (1, 'third time', 3)");
  Call(c, "deltasync_sync", url);
  for (Site* s : {&a, &b, &d}) Call(*s, "deltasync_sync", url);
  EXPECT_EQ(a.Text("SELECT name FROM item WHERE id = 1"), "third time");
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(d.Rows(kItems), a.Rows(kItems));
}

// The frontier waits for every site: a site that has not pulled past a delete keeps its
// tombstone on the hub, and its late update of the deleted row still loses to the delete.
TEST(HubCompaction, ALateUpdateFromASiteBehindTheFrontierStillLoses) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("late");
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  b.Exec("UPDATE item SET qty = 99 WHERE id = 1");  // offline, not yet pushed
  a.Exec("DELETE FROM item WHERE id = 1");
  Call(a, "deltasync_sync", url);
  Json r = Compact(hub, "late");
  EXPECT_EQ(r.at("dropped"), 0) << "b has not pulled the delete, yet its tombstone was dropped: " << r.dump();
  EXPECT_EQ(r.at("sites"), 2);
  EXPECT_EQ(Deleted(hub, "late"), 1);

  Call(b, "deltasync_sync", url);  // pushes the late update (it loses), then pulls the delete
  Call(a, "deltasync_sync", url);
  EXPECT_EQ(a.Rows(kItems), b.Rows(kItems));
  EXPECT_EQ(a.Rows(kItems).size(), 1u) << "the late update brought the deleted row back";

  Call(b, "deltasync_pull", url);  // both cursors now past the delete
  Call(a, "deltasync_pull", url);
  r = Compact(hub, "late");
  EXPECT_EQ(r.at("dropped"), 1) << r.dump();
  EXPECT_EQ(Deleted(hub, "late"), 0);

  // A re-insert after the dropped tombstone: the re-inserting site still holds its
  // tombstone, so the new life has a higher causal length everywhere.
  b.Exec("INSERT INTO item VALUES (1, 'again', 3)");
  Call(b, "deltasync_sync", url);
  Call(a, "deltasync_sync", url);
  Site c;
  c.Exec(kSchema);
  Call(c, "deltasync_pull", url);
  EXPECT_EQ(a.Rows(kItems), b.Rows(kItems));
  EXPECT_EQ(c.Rows(kItems), b.Rows(kItems));
  EXPECT_EQ(a.Text("SELECT name FROM item WHERE id = 1"), "again");

  // And a delete of the new life reaches every site, including one that never saw the old.
  a.Exec("DELETE FROM item WHERE id = 1");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  Call(c, "deltasync_sync", url);
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(c.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Rows(kItems).size(), 1u);
}

// A pull of some tables only passes rows of others without applying them: it does not move
// the site's place in the frontier.
TEST(HubCompaction, ASubsetPullDoesNotMoveTheFrontier) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("subset");
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id = 1");
  Call(a, "deltasync_sync", url);
  Call(a, "deltasync_pull", url);
  Call(b, "deltasync_pull", url, Opts({{"tables", {"other"}}}));
  Call(b, "deltasync_pull", url, Opts({{"tables", {"other"}}}));
  EXPECT_EQ(Compact(hub, "subset").at("dropped"), 0);
  Call(b, "deltasync_pull", url);
  Call(b, "deltasync_pull", url);
  EXPECT_EQ(Compact(hub, "subset").at("dropped"), 1);
}

// Retention: a site away longer than its node's retention is retired (it no longer holds
// the frontier back) and then refused with 410 and a deltasync: error saying what to do; an
// admin can readmit it.
TEST(HubCompaction, RetentionRetiresASiteThatStaysAwayAndRefusesIt) {
  // 0.00002 days = 1.7 s.
  HubProcess hub(HubOptions(", \"nodes\": {\"ret\": {\"retention_days\": 0.00002}}"));
  std::string url = hub.url("ret");
  Site a, away;
  a.Exec(kSchema);
  away.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
  Call(a, "deltasync_sync", url);
  Call(away, "deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id = 1");
  Call(a, "deltasync_sync", url);
  Call(a, "deltasync_pull", url);
  Json r = Compact(hub, "ret");
  EXPECT_EQ(r.at("dropped"), 0) << "the away site is still inside the retention: " << r.dump();
  EXPECT_EQ(r.at("retired"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  Call(a, "deltasync_pull", url);  // a stays in touch
  r = Compact(hub, "ret");
  EXPECT_EQ(r.at("retired"), 1) << r.dump();
  EXPECT_EQ(r.at("sites"), 1);
  EXPECT_EQ(r.at("dropped"), 1) << r.dump();

  away.Exec("UPDATE item SET qty = 50 WHERE id = 1");  // an offline write to a row deleted meanwhile
  for (const char* fn : {"deltasync_push", "deltasync_pull", "deltasync_sync"}) {
    std::string err = CallError(away, fn, url);
    EXPECT_NE(err.find("hub answered 410"), std::string::npos) << fn << ": " << err;
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << err;
    EXPECT_NE(err.find("this site was retired from node \"ret\""), std::string::npos) << err;
    EXPECT_NE(err.find("re-synchronise it"), std::string::npos) << err;
  }
  // Nothing it sent was merged: the deleted row did not come back.
  Site fresh;
  fresh.Exec(kSchema);
  Call(fresh, "deltasync_pull", url);
  EXPECT_EQ(fresh.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(fresh.Rows(kItems).size(), 1u);

  std::string id = away.Text("SELECT deltasync_site_id()");
  EXPECT_EQ(Admin(hub, "/nodes/ret/sites/" + id + "/readmit", "wrong").first, 401);
  auto [status, body] = Admin(hub, "/nodes/ret/sites/" + id + "/readmit");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body.at("readmitted"), true) << body.dump();
  EXPECT_EQ(Admin(hub, "/nodes/ret/sites/" + id + "/readmit").second.at("readmitted"), false);
  EXPECT_EQ(CallError(away, "deltasync_pull", url), "");
}

// The admin endpoints need the admin token; a pull answer carries the frontier.
TEST(HubCompaction, AdminEndpointsAndTheFrontierHeader) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("adm");
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1)");
  Call(a, "deltasync_sync", url);
  EXPECT_EQ(Admin(hub, "/nodes/adm/compact", "nope").first, 401);
  EXPECT_EQ(Admin(hub, "/nodes/unknown/compact").first, 404);
  EXPECT_EQ(Admin(hub, "/nodes/adm/sites/not-a-uuid/readmit").first, 400);
  Call(a, "deltasync_pull", url);
  httplib::Client cli("127.0.0.1", hub.port());
  std::string site = a.Text("SELECT deltasync_site_id()");
  auto r = cli.Get(("/nodes/adm/pull?since=1&site=" + site).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Deltasync-Frontier"), "1");
  EXPECT_EQ(Compact(hub, "adm").at("frontier"), 1);
}

// The frontier is the smallest `since` of the active sites' latest full pulls: raw pull
// requests as three sites; a pull of some tables, or one that names no site, counts for
// nothing; a site known only by its push holds the frontier at 0.
TEST(HubCompaction, TheFrontierIsTheSmallestFullPullCursorOfTheActiveSites) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("fr");
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
  Call(a, "deltasync_push", url, Opts({{"batch_rows", 1}}));  // three pushes: sequence 3
  httplib::Client cli("127.0.0.1", hub.port());
  auto frontier_after = [&](const std::string& query) {
    auto r = cli.Get(("/nodes/fr/pull?" + query).c_str());
    if (!r || r->status != 200) throw std::runtime_error("pull " + query + " failed");
    return std::stoll(r->get_header_value("Deltasync-Frontier"));
  };
  std::string s1 = "00000000-0000-4000-8000-000000000001", s2 = "00000000-0000-4000-8000-000000000002";
  std::string a_id = a.Text("SELECT deltasync_site_id()");
  EXPECT_EQ(frontier_after("since=0"), 0) << "a, known by its push, has pulled nothing";
  EXPECT_EQ(frontier_after("since=3&site=" + a_id), 3);
  EXPECT_EQ(frontier_after("since=2&site=" + s1), 2);
  EXPECT_EQ(frontier_after("since=1&site=" + s2 + "&tables=item"), 0) << "a subset pull registers the site at 0";
  EXPECT_EQ(Compact(hub, "fr").at("frontier"), 0);
  EXPECT_EQ(frontier_after("since=3&site=" + s2), 2);
  EXPECT_EQ(frontier_after("since=1&site=" + s1), 2) << "a cursor never moves back";
  EXPECT_EQ(frontier_after("since=3&site=" + s1), 3);
  Json r = Compact(hub, "fr");
  EXPECT_EQ(r.at("frontier"), 3);
  EXPECT_EQ(r.at("sites"), 3);
  // A new site joining holds it at 0 until it has pulled.
  EXPECT_EQ(frontier_after("since=0&site=00000000-0000-4000-8000-000000000003"), 0);
}

// A site back after its node's retention re-synchronises: refused (410) until it does, then
// `"resync": true` reads the hub's whole state, removes the rows the hub dropped while it was
// away, keeps and pushes its own unsent writes. What happens to each kind of offline write is
// exactly what docs/operations.md promises.
TEST(HubCompaction, AReturningSiteResynchronisesKeepingItsOwnWrites) {
  HubProcess hub(HubOptions(", \"nodes\": {\"back\": {\"retention_days\": 0.00002}}"));
  std::string url = hub.url("back");
  Site a, away;
  a.Exec(kSchema);
  away.Exec(kSchema);
  a.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 9)"
         " INSERT INTO item SELECT x, 'v' || x, x FROM c");
  Call(a, "deltasync_sync", url);
  // A row only `away` ever wrote: a resync must not mistake it for one the hub dropped.
  away.Exec("INSERT INTO item VALUES (12, 'by away', 12)");
  Call(away, "deltasync_sync", url);
  Call(a, "deltasync_sync", url);
  ASSERT_EQ(away.Rows(kItems).size(), 10u);

  // While `away` is offline: a deletes 1, 3 and 9, updates 4, inserts 7 again... and 10.
  a.Exec("DELETE FROM item WHERE id IN (1, 3, 9); UPDATE item SET qty = 40 WHERE id = 4;"
         "INSERT INTO item VALUES (10, 'new on a', 10)");
  Call(a, "deltasync_sync", url);
  Call(a, "deltasync_pull", url);
  // Offline on `away`: an update of 1 (deleted elsewhere), an update of 5 (live), a delete of
  // 6, a new row 11, an update of 2 (which a deletes later), and 9 deleted and inserted again.
  away.Exec("UPDATE item SET qty = 100 WHERE id = 1; UPDATE item SET name = 'away' WHERE id = 5;"
            "DELETE FROM item WHERE id = 6; INSERT INTO item VALUES (11, 'new on away', 11);"
            "UPDATE item SET qty = 200 WHERE id = 2; DELETE FROM item WHERE id = 9;"
            "INSERT INTO item VALUES (9, 'nine again', 9)");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  Call(a, "deltasync_pull", url);
  Json r = Compact(hub, "back");
  ASSERT_EQ(r.at("retired"), 1) << r.dump();
  EXPECT_EQ(r.at("dropped"), 3) << r.dump();  // the tombstones of 1, 3 and 9
  a.Exec("DELETE FROM item WHERE id = 2");   // this tombstone stays on the hub
  Call(a, "deltasync_sync", url);

  EXPECT_NE(CallError(away, "deltasync_sync", url).find("hub answered 410"), std::string::npos);
  EXPECT_EQ(away.Text("SELECT qty FROM item WHERE id = 1"), "100") << "a refused call changed the site";
  Json back = Call(away, "deltasync_sync", url, Opts({{"resync", true}}));
  EXPECT_EQ(back["pull"]["resync"]["removed"], 2) << back.dump();  // 1 and 3
  EXPECT_GT(back["push"]["pushed"].get<int64_t>(), 0) << back.dump();
  Call(a, "deltasync_sync", url);
  Call(away, "deltasync_sync", url);  // an ordinary sync works again
  Site fresh;
  fresh.Exec(kSchema);
  Call(fresh, "deltasync_pull", url);
  EXPECT_EQ(away.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(fresh.Rows(kItems), a.Rows(kItems));
  // 1: its offline update is lost (the delete wins; its tombstone was dropped); 2: the same,
  // through the tombstone the hub still held; 3: deleted elsewhere, gone here too; 4: a's
  // update; 5: away's update; 6: away's delete; 7, 8: untouched; 9: deleted and inserted again
  // offline, a new life that wins; 10, 11: new rows from each side; 12: away's, kept.
  EXPECT_EQ(a.Rows("SELECT id FROM item ORDER BY id"),
            (std::vector<std::vector<Value>>{{Value::Integer(4)}, {Value::Integer(5)}, {Value::Integer(7)},
                                             {Value::Integer(8)}, {Value::Integer(9)}, {Value::Integer(10)},
                                             {Value::Integer(11)}, {Value::Integer(12)}}));
  EXPECT_EQ(a.Text("SELECT qty FROM item WHERE id = 4"), "40");
  EXPECT_EQ(a.Text("SELECT name FROM item WHERE id = 5"), "away");
  EXPECT_EQ(a.Text("SELECT name FROM item WHERE id = 9"), "nine again");
  // The removal recorded no change of its own: nothing more to push.
  EXPECT_EQ(Call(away, "deltasync_push", url)["pushed"], 0);
}

// A hub restored from a backup taken earlier (docs/operations.md, "Backups"): with
// --new-hub-id every site sees a new store and pushes and pulls everything again, so what
// reached the hub after the backup comes back and nothing is lost; a site that joins after
// the restore gets it all.
TEST(HubBackups, ARestoreFromAnEarlierBackupWithANewIdLosesNothing) {
  if (const char* s = std::getenv("DELTASYNC_TEST_HUB_STORE"); s && std::string(s) == "postgresql")
    GTEST_SKIP() << "copies a SQLite hub store file as its backup";
  HubProcess::Options o = HubOptions();
  o.db = "";  // a store file
  HubProcess hub(o);
  std::string url = hub.url("bk");
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'before the backup', 1), (2, 'two', 2)");
  Call(a, "deltasync_sync", url);
  Call(b, "deltasync_sync", url);
  hub.Stop();
  std::string backup = hub.db() + ".backup";
  ASSERT_EQ(std::system(("cp '" + hub.db() + "' '" + backup + "'").c_str()), 0);
  hub.Restart();
  a.Exec("INSERT INTO item VALUES (3, 'after the backup', 3); DELETE FROM item WHERE id = 2");
  Call(a, "deltasync_sync", url);
  b.Exec("UPDATE item SET qty = 10 WHERE id = 1");
  Call(b, "deltasync_sync", url);
  Call(a, "deltasync_sync", url);
  hub.Stop();
  for (const char* suffix : {"-wal", "-shm"}) std::remove((hub.db() + suffix).c_str());
  ASSERT_EQ(std::rename(backup.c_str(), hub.db().c_str()), 0);
  hub.options().extra_args = {"--new-hub-id"};
  hub.Restart();
  EXPECT_NE(hub.log().find("the store has a new identity"), std::string::npos);
  for (Site* s : {&a, &b, &a, &b}) Call(*s, "deltasync_sync", url);
  Site c;
  c.Exec(kSchema);
  Call(c, "deltasync_pull", url);
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(c.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Text("SELECT group_concat(id || ':' || qty) FROM item"), "1:10,3:3");
}
