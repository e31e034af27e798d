// End to end: compaction of the hub's tombstones below the frontier, and retention
// (docs/operations.md, "Compaction"). Real SQLite sites and the real hub process.
//
// DELTASYNC_E2E_CASES (default 20) sets the number of property cases and
// DELTASYNC_PROPERTY_SEED the first seed.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <map>
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

// deltasync_compact() on a site (docs/operations.md, "Compaction on sites").
Json SiteCompact(Site& s) { return Json::parse(s.Text("SELECT deltasync_compact()")); }

// How many of a site's tombstones of table `meta` are graves, and how many are not.
std::pair<int64_t, int64_t> Graves(Site& s, const std::string& meta) {
  return {s.Int("SELECT count(*) FROM \"" + meta + "\" WHERE (cl & 1) = 0 AND ver = 1 AND hlc = 0"),
          s.Int("SELECT count(*) FROM \"" + meta + "\" WHERE (cl & 1) = 0 AND NOT (ver = 1 AND hlc = 0)")};
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
  uint64_t dropped = 0, graves = 0;
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
        } else if (what < 93) {
          dropped += Compact(hub, node).at("dropped").get<uint64_t>();
        } else {
          graves += SiteCompact(*sites[pick(sites.size())]).at("graves").get<uint64_t>();
        }
      }
      for (int round = 0; round < 3; ++round) {
        for (auto& s : sites) Call(*s, "deltasync_push", url);
        for (auto& s : sites) Call(*s, "deltasync_pull", url);
        dropped += Compact(hub, node).at("dropped").get<uint64_t>();
        for (auto& s : sites) graves += SiteCompact(*s).at("graves").get<uint64_t>();
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
        for (auto& s : sites) graves += SiteCompact(*s).at("graves").get<uint64_t>();
      }
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what() << "\n--- hub log ---\n" << hub.log();
    }
    for (const char* q : deltasync::test::kRandomWriteTables) {
      auto ref = late.Rows(q);
      for (size_t k = 0; k < sites.size(); ++k)
        ASSERT_EQ(sites[k]->Rows(q), ref) << "site " << k << " and the late site differ after it wrote: " << q;
    }
    // Then the compacted sites write again (re-inserting, updating and deleting keys whose
    // tombstones are graves now), with syncs and compactions of sites and hub at random.
    try {
      sites.push_back(std::make_unique<Site>());
      sites.back()->Exec(deltasync::test::kRandomWriteSchema);
      for (int s = 0; s < 40; ++s) {
        size_t what = pick(100);
        if (what < 50) {
          writer.Write(*sites[pick(sites.size())]);
        } else if (what < 80) {
          Call(*sites[pick(sites.size())], "deltasync_sync", url);
        } else if (what < 90) {
          dropped += Compact(hub, node).at("dropped").get<uint64_t>();
        } else {
          graves += SiteCompact(*sites[pick(sites.size())]).at("graves").get<uint64_t>();
        }
      }
      for (int round = 0; round < 3; ++round) {
        for (auto& s : sites) Call(*s, "deltasync_sync", url);
        Call(late, "deltasync_sync", url);
        graves += SiteCompact(late).at("graves").get<uint64_t>();
      }
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what() << "\n--- hub log ---\n" << hub.log();
    }
    for (const char* q : deltasync::test::kRandomWriteTables) {
      auto ref = late.Rows(q);
      for (size_t k = 0; k < sites.size(); ++k)
        ASSERT_EQ(sites[k]->Rows(q), ref) << "site " << k << " differs after writes over graves: " << q;
    }
  }
  EXPECT_GT(dropped, 0u) << "no case dropped a tombstone: the property tested nothing";
  EXPECT_GT(graves, 0u) << "no site compacted a tombstone: the property tested nothing";
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

// A SQLite site restored from a backup taken earlier (docs/operations.md, "A site restored
// from a backup"): it reuses its site id and versions the hub has seen, and what it wrote
// after the backup is on the hub only (a pull never sends a site its own pushes). Its first
// pull, and its first push after a write, say so and change nothing here; a resync brings
// those writes back, keeps what it wrote since the restore, and it syncs on with no error.
TEST(HubBackups, ASiteRestoredFromAnEarlierBackupIsToldAndResynchronises) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("restored");
  std::string path = deltasync::test::UniqueTempPath("site", ".db"), backup = path + ".backup";
  Site b;
  b.Exec(kSchema);
  {
    Site a(path);
    a.Exec(kSchema);
    a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
    Call(a, "deltasync_sync", url);
    a.Exec("VACUUM INTO '" + backup + "'");  // the backup
    // Three transactions after the backup (each reserves its versions), pushed.
    a.Exec("INSERT INTO item VALUES (3, 'after the backup', 3)");
    a.Exec("UPDATE item SET qty = 20 WHERE id = 2");
    a.Exec("UPDATE item SET name = 'three' WHERE id = 3");
    Call(a, "deltasync_sync", url);
  }
  Call(b, "deltasync_sync", url);
  ASSERT_EQ(b.Text("SELECT group_concat(id || ':' || qty) FROM item"), "1:1,2:20,3:3");
  // The file is lost; the backup comes back in its place.
  ASSERT_EQ(std::rename(backup.c_str(), path.c_str()), 0);
  Site a(path);
  std::string site_id = a.Text("SELECT deltasync_site_id()");
  for (const char* fn : {"deltasync_pull", "deltasync_sync"}) {
    std::string before = a.Text("SELECT group_concat(id || ':' || qty) FROM item");
    std::string err = CallError(a, fn, url);
    EXPECT_NE(err.find("restored from an earlier backup or copied"), std::string::npos) << fn << ": " << err;
    EXPECT_NE(err.find("\"resync\": true"), std::string::npos) << err;
    EXPECT_EQ(a.Text("SELECT group_concat(id || ':' || qty) FROM item"), before) << fn << " changed the restored site";
    // One transaction since the restore: the push now carries a change, and the versions it
    // has given are still below those the hub holds from the lost file.
    if (std::string(fn) == "deltasync_pull") a.Exec("INSERT INTO item VALUES (4, 'written after the restore', 4)");
  }
  Json status = Json::parse(a.Text("SELECT deltasync_status()"));
  EXPECT_NE(status.at("hubs").at(0).at("last_error").get<std::string>().find("restored"), std::string::npos) << status.dump();
  Json r = Call(a, "deltasync_sync", url, Opts({{"resync", true}}));
  EXPECT_EQ(r.at("pull").at("resync").at("removed"), 0) << r.dump();
  EXPECT_EQ(a.Text("SELECT deltasync_site_id()"), site_id);
  a.Exec("UPDATE item SET qty = 5 WHERE id = 1");
  for (Site* s : {&a, &b, &a}) Call(*s, "deltasync_sync", url);
  EXPECT_EQ(a.Text("SELECT group_concat(id || ':' || qty) FROM item"), "1:5,2:20,3:3,4:4");
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(Call(a, "deltasync_push", url).at("pushed"), 0);
  std::remove(path.c_str());
}

// Compaction on sites (docs/operations.md, "Compaction on sites"): a site turns a tombstone
// into a grave only once its hub's frontier, as the site last heard it, covers a mark at or
// past the delete's version. A site that has not pulled the delete holds every site back; its
// late update of the old life still loses; a compacted site re-inserting the key starts a life
// above the delete everywhere, and updates of that life merge as usual.
TEST(HubSiteCompaction, EverySiteCompactsADeleteOnlyOnceEverySiteHasSeenIt) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("sitecompact");
  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
  for (int round = 0; round < 2; ++round)
    for (Site* s : {&a, &b, &c}) Call(*s, "deltasync_sync", url);
  c.Exec("UPDATE item SET qty = 99 WHERE id = 1");  // c goes offline with this update
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int round = 0; round < 4; ++round)
    for (Site* s : {&a, &b}) Call(*s, "deltasync_sync", url);
  for (Site* s : {&a, &b}) {
    Json r = SiteCompact(*s);
    EXPECT_EQ(r.at("graves"), 0) << "c has not pulled the delete: " << r.dump();
    EXPECT_EQ(r.at("held_by"), url) << r.dump();
    EXPECT_EQ(Graves(*s, "item__deltasync_meta"), std::make_pair(int64_t{0}, int64_t{1}));
  }
  Call(c, "deltasync_sync", url);  // the late update loses at the hub; c pulls the delete
  for (int round = 0; round < 3; ++round)
    for (Site* s : {&a, &b, &c}) Call(*s, "deltasync_sync", url);
  EXPECT_EQ(Compact(hub, "sitecompact").at("dropped"), 1);
  for (Site* s : {&a, &b, &c}) {
    Json r = SiteCompact(*s);
    EXPECT_EQ(r.at("graves"), 1) << r.dump();
    EXPECT_EQ(Graves(*s, "item__deltasync_meta"), std::make_pair(int64_t{1}, int64_t{0}));
    EXPECT_EQ(s->Rows(kItems), a.Rows(kItems));
  }
  EXPECT_EQ(a.Rows(kItems).size(), 2u) << "the late update brought the deleted row back";
  // deltasync_status shows the hub's frontier and how far it lets this site compact.
  Json hub_status = Json::parse(a.Text("SELECT deltasync_status()")).at("hubs").at(0);
  EXPECT_GT(hub_status.at("frontier").get<int64_t>(), 0) << hub_status.dump();
  EXPECT_GE(hub_status.at("compactable_to").get<int64_t>(), a.Int("SELECT ver FROM item__deltasync_meta WHERE k0 = 2"))
      << hub_status.dump();

  // b, compacted, inserts 1 again: a new life (cl 3) that every site and the hub take; c
  // updates it; a site joining now sees the same.
  b.Exec("INSERT INTO item VALUES (1, 'again', 5)");
  EXPECT_EQ(b.Int("SELECT cl FROM item__deltasync_meta WHERE k0 = 1"), 3);
  for (Site* s : {&b, &a, &c}) Call(*s, "deltasync_sync", url);
  c.Exec("UPDATE item SET qty = 6 WHERE id = 1");
  for (int round = 0; round < 2; ++round)
    for (Site* s : {&c, &a, &b}) Call(*s, "deltasync_sync", url);
  Site d;
  d.Exec(kSchema);
  Call(d, "deltasync_pull", url);
  for (Site* s : {&b, &c, &d}) EXPECT_EQ(s->Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Text("SELECT name || ' ' || qty FROM item WHERE id = 1"), "again 6");
  // Deleted again and compacted everywhere: cl 4 in every grave.
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int round = 0; round < 4; ++round)
    for (Site* s : {&a, &b, &c, &d}) Call(*s, "deltasync_sync", url);
  for (Site* s : {&a, &b, &c, &d}) {
    EXPECT_EQ(SiteCompact(*s).at("graves"), 1);
    EXPECT_EQ(s->Int("SELECT cl FROM item__deltasync_meta WHERE k0 = 1"), 4);
    EXPECT_EQ(s->Rows(kItems), a.Rows(kItems));
  }
}

// A delete this site has not pushed yet is never compacted, whatever the frontier.
TEST(HubSiteCompaction, AnUnpushedDeleteIsKept) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("unpushed");
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
  for (int round = 0; round < 3; ++round)
    for (Site* s : {&a, &b}) Call(*s, "deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int round = 0; round < 3; ++round)
    for (Site* s : {&a, &b}) Call(*s, "deltasync_pull", url);  // pulls only
  EXPECT_EQ(SiteCompact(a).at("graves"), 0);
  for (int round = 0; round < 3; ++round)
    for (Site* s : {&a, &b}) Call(*s, "deltasync_sync", url);
  EXPECT_EQ(SiteCompact(a).at("graves"), 1);
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(b.Rows(kItems).size(), 1u);
}

// A site that syncs with two hubs compacts only what both frontiers cover: a site of the
// second hub's node that has not pulled holds it back, though every site of the first has.
// A grave is still sent to a hub that starts from 0 (a new store), where it deletes an old
// life another site holds.
TEST(HubSiteCompaction, EveryHubsFrontierMustCoverADelete) {
  HubProcess h1(HubOptions()), h2(HubOptions());
  std::string u1 = h1.url("one"), u2 = h2.url("two");
  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kSchema);
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
  auto round = [&](bool with_c) {
    Call(a, "deltasync_sync", u1);
    Call(a, "deltasync_sync", u2);
    Call(b, "deltasync_sync", u1);
    if (with_c) Call(c, "deltasync_sync", u2);
  };
  for (int r = 0; r < 2; ++r) round(true);
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int r = 0; r < 4; ++r) round(false);
  Json r = SiteCompact(a);
  EXPECT_EQ(r.at("graves"), 0) << r.dump();
  EXPECT_EQ(r.at("held_by"), u2) << r.dump();
  EXPECT_EQ(SiteCompact(b).at("graves"), 1) << "b syncs with the first hub only, whose sites all saw it";
  for (int k = 0; k < 3; ++k) round(true);
  EXPECT_EQ(SiteCompact(a).at("graves"), 1);
  EXPECT_EQ(SiteCompact(c).at("graves"), 1);
  for (Site* s : {&b, &c}) EXPECT_EQ(s->Rows(kItems), a.Rows(kItems));

  // A third hub, where d holds the old life of 1 (d never saw the delete): a's first push
  // there starts from 0 and carries the grave, which deletes it.
  HubProcess h3(HubOptions());
  std::string u3 = h3.url("three");
  Site d;
  d.Exec(kSchema);
  d.Exec("INSERT INTO item VALUES (1, 'old life on d', 7)");
  Call(d, "deltasync_sync", u3);
  Call(a, "deltasync_sync", u3);
  Call(d, "deltasync_sync", u3);
  EXPECT_EQ(d.Rows(kItems), a.Rows(kItems));
  EXPECT_EQ(a.Rows(kItems).size(), 1u);
}

// After a pull, a site compacts by itself once enough became compactable
// (kAutoCompactVersions, 10,000 versions); then nothing is left for deltasync_compact().
TEST(HubSiteCompaction, APullCompactsByItselfWhenEnoughIsCompactable) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("auto");
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec(kSchema);
  a.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)"
         " INSERT INTO item SELECT i, 'n' || i, i FROM n");
  for (int r = 0; r < 2; ++r)
    for (Site* s : {&a, &b}) Call(*s, "deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id > 10");
  std::map<Site*, int64_t> automatic;
  for (int r = 0; r < 5; ++r)
    for (Site* s : {&a, &b}) {
      Json res = Call(*s, "deltasync_sync", url);
      if (res["pull"].contains("compacted")) automatic[s] += res["pull"]["compacted"]["graves"].get<int64_t>();
    }
  EXPECT_EQ(automatic[&a], 5990);
  EXPECT_EQ(automatic[&b], 5990);
  for (Site* s : {&a, &b}) {
    EXPECT_EQ(SiteCompact(*s).at("graves"), 0);
    EXPECT_EQ(Graves(*s, "item__deltasync_meta"), std::make_pair(int64_t{5990}, int64_t{0}));
  }
  EXPECT_EQ(b.Rows(kItems), a.Rows(kItems));
}

// The strongest check of site compaction: whether a row exists is decided by causal lengths
// alone (no clock enters them), so one random history — the same writes, syncs and hub
// compactions, drawn from the same seed — run twice, once with sites compacting at random
// and once without, must end with the same causal length for every key on every site, graves
// included. A compaction that lost a causal length (a re-insert starting over at 1) or a
// delete (a tombstone not sent) shows here even where the sites still converge. Each world
// also converges on its own.
TEST(HubSiteCompaction, CausalLengthsAreThoseOfTheSameHistoryWithoutSiteCompaction) {
  int64_t cases = EnvInt("DELTASYNC_E2E_CASES", 20) / 2 + 1;
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261202);
  HubProcess hubs[2] = {HubProcess(HubOptions()), HubProcess(HubOptions())};
  uint64_t graves = 0;
  static const char* kMetas[] = {"SELECT k0, k1, cl FROM t__deltasync_meta ORDER BY k0, k1",
                                 "SELECT k0, cl FROM tags__deltasync_meta ORDER BY k0",
                                 "SELECT k0, cl FROM nn__deltasync_meta ORDER BY k0"};
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_E2E_CASES=1");
    std::vector<std::vector<std::vector<Value>>> lengths[2];
    for (int world = 0; world < 2; ++world) {
      const bool compacting = world == 0;
      HubProcess& hub = hubs[world];
      std::string node = "cl" + std::to_string(seed);
      std::string url = hub.url(node);
      std::mt19937_64 rng(seed);
      auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
      deltasync::test::RandomWriter writer(rng);
      std::vector<std::unique_ptr<Site>> sites;
      for (int k = 0; k < 3; ++k) {
        sites.push_back(std::make_unique<Site>());
        sites.back()->Exec(deltasync::test::kRandomWriteSchema);
      }
      auto site_compact = [&](Site& s) {
        if (compacting) graves += SiteCompact(s).at("graves").get<uint64_t>();
      };
      auto random_steps = [&](int steps) {
        for (int s = 0; s < steps; ++s) {
          size_t what = pick(100);
          Site& at = *sites[pick(sites.size())];
          if (what < 45) {
            writer.Write(at);
          } else if (what < 80) {
            static const char* kFns[] = {"deltasync_push", "deltasync_pull", "deltasync_sync"};
            Call(at, kFns[pick(3)], url, Opts({{"batch_rows", pick(2) ? 2 : 1000}}));
          } else if (what < 88) {
            Compact(hub, node);
          } else {
            site_compact(at);
          }
        }
      };
      auto rounds = [&](int n) {
        for (int r = 0; r < n; ++r)
          for (auto& s : sites) {
            Call(*s, "deltasync_sync", url);
            site_compact(*s);
          }
      };
      try {
        random_steps(60);
        rounds(3);
        random_steps(60);  // writes over graves: re-inserts, updates and deletes of their keys
        sites.push_back(std::make_unique<Site>());  // a site joining late, writing before it syncs
        sites.back()->Exec(deltasync::test::kRandomWriteSchema);
        for (int w = 0; w < 5; ++w) writer.Write(*sites.back());
        random_steps(30);
        rounds(3);
      } catch (const std::exception& e) {
        FAIL() << "seed " << seed << " world " << world << ": " << e.what() << "\n--- hub log ---\n" << hub.log();
      }
      for (const char* q : deltasync::test::kRandomWriteTables)
        for (size_t k = 1; k < sites.size(); ++k)
          ASSERT_EQ(sites[k]->Rows(q), sites[0]->Rows(q)) << "world " << world << ", sites 0 and " << k << ": " << q;
      for (auto& s : sites)
        for (const char* q : kMetas) lengths[world].push_back(s->Rows(q));
    }
    ASSERT_EQ(lengths[0], lengths[1]) << "site compaction changed a causal length";
  }
  EXPECT_GT(graves, 0u) << "no site compacted a tombstone: the property tested nothing";
}
