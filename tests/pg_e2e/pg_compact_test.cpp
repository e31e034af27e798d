// Compaction on PostgreSQL sites (docs/operations.md, "Compaction on sites") through a real
// hub, next to SQLite sites: the rules of tests/e2e/hub_compact_test.cpp's HubSiteCompaction
// with PostgreSQL sites in the node (a PostgreSQL site compacts only once every site of the
// node has seen the delete and it has pushed it; graves travel to a new hub and delete an old
// life there; a pull compacts by itself), and its differential property: the same random
// history run with and without site compaction ends with the same causal length of every key
// on every site, PostgreSQL and SQLite. MixedResync: a returning PostgreSQL site
// re-synchronises ({"resync": true}).
//
// DELTASYNC_E2E_CASES (default 4) sets the number of property worlds (two per case) and
// DELTASYNC_PROPERTY_SEED the first seed.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
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

constexpr const char* kAdmin = "admin-secret";
constexpr const char* kSchema = "CREATE TABLE item(id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);"
                                "SELECT deltasync_enable('item');";

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

// A hub with an admin token and no automatic compaction (the tests compact when they want).
HubProcess::Options HubOptions() {
  HubProcess::Options o;
  o.config_json = std::string("{\"admin_token\": \"") + kAdmin + "\", \"compact_interval_s\": 0}";
  return o;
}

// The hub compacts a node (a node no site reached yet is not there: nothing dropped).
int64_t HubCompact(const HubProcess& hub, const std::string& node) {
  httplib::Client cli("127.0.0.1", hub.port());
  cli.set_read_timeout(60, 0);
  auto r = cli.Post(("/nodes/" + node + "/compact").c_str(), httplib::Headers{{"Authorization", std::string("Bearer ") + kAdmin}},
                    "", "application/json");
  if (!r) throw std::runtime_error("compact: no answer");
  if (r->status == 404) return 0;
  if (r->status != 200) throw std::runtime_error("compact answered " + std::to_string(r->status) + ": " + r->body);
  return Json::parse(r->body).at("dropped").get<int64_t>();
}

// One site of either engine, with the few things these tests do to it.
class AnySite {
 public:
  explicit AnySite(bool pg) {
    if (pg) pg_ = std::make_unique<PgSite>();
    else sqlite_ = std::make_unique<Site>();
    Exec(kSchema);
  }
  bool pg() const { return pg_ != nullptr; }
  void Exec(const std::string& sql) {
    if (pg_) (*pg_)->Exec(sql);
    else sqlite_->Exec(sql);
  }
  Json Call(const std::string& fn, const std::string& url, Json opts = Json::object()) {
    opts["timeout_ms"] = 60000;
    opts["connect_timeout_ms"] = 10000;
    if (pg_) return Json::parse((*pg_)->Text("SELECT " + fn + "($1, $2::jsonb)::text", {url, opts.dump()}));
    return Json::parse(sqlite_->Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(opts.dump())}));
  }
  Json Compact() { return Json::parse(Text(pg_ ? "SELECT deltasync_compact()::text" : "SELECT deltasync_compact()")); }
  Json Status() { return Json::parse(Text(pg_ ? "SELECT deltasync_status()::text" : "SELECT deltasync_status()")); }
  // Rows as text lines, the same spelling on both engines.
  std::vector<std::string> Lines(const std::string& sql) {
    std::vector<std::string> out;
    if (pg_) {
      for (auto& r : (*pg_)->Rows(sql)) out.push_back(r.at(0));
    } else {
      for (auto& r : sqlite_->Rows(sql)) {
        const Value& v = r.at(0);
        out.push_back(v.type == deltasync::ValueType::kInteger ? std::to_string(v.i) : v.s);
      }
    }
    return out;
  }
  std::vector<std::string> Items() { return Lines("SELECT id || ':' || name || ':' || qty FROM item ORDER BY id"); }
  // Every key's causal length, graves included.
  std::vector<std::string> CausalLengths() { return Lines("SELECT k0 || ':' || cl FROM " + Meta() + " ORDER BY k0"); }
  // (graves, tombstones that are not graves) of item.
  std::pair<int64_t, int64_t> Graves() {
    std::string grave = pg_ ? "ver IS NULL AND hlc IS NULL AND site IS NULL" : "ver = 1 AND hlc = 0";
    auto n = [&](const std::string& where) {
      return std::stoll(Text("SELECT count(*) FROM " + Meta() + " WHERE (cl & 1) = 0 AND " + where));
    };
    return {n(grave), n("NOT (" + grave + ")")};
  }
  int64_t Cl(int id) { return std::stoll(Text("SELECT cl FROM " + Meta() + " WHERE k0 = " + std::to_string(id))); }

 private:
  std::string Text(const std::string& sql) {
    std::vector<std::string> l = Lines(sql);
    if (l.empty()) throw std::runtime_error("no result: " + sql);
    return l[0];
  }
  std::string Meta() {
    if (!pg_) return "item__deltasync_meta";
    return "deltasync.meta_" + (*pg_)->Text("SELECT id FROM deltasync.tables WHERE name = 'item'");
  }
  std::unique_ptr<PgSite> pg_;
  std::unique_ptr<Site> sqlite_;
};

}  // namespace

// A PostgreSQL site turns a tombstone into a grave only once every site of the node has seen
// the delete (its hub's frontier covers a mark past the delete's version): a SQLite site that
// has not pulled holds it back, its late update still loses; then every site compacts; a
// re-insert on a compacted PostgreSQL site starts a life above the delete everywhere; a grave
// still travels to a new hub and deletes an old life another site holds there.
TEST(MixedSiteCompaction, APostgresqlSiteCompactsOnlyOnceEverySiteHasSeenTheDelete) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("pgcompact");
  AnySite a(true), b(false), c(false), e(true);
  std::vector<AnySite*> all = {&a, &b, &c, &e};
  a.Exec("INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
  for (int round = 0; round < 2; ++round)
    for (AnySite* s : all) s->Call("deltasync_sync", url);
  c.Exec("UPDATE item SET qty = 99 WHERE id = 1");  // c goes offline with this update
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int round = 0; round < 4; ++round)
    for (AnySite* s : {&a, &b, &e}) s->Call("deltasync_sync", url);
  for (AnySite* s : {&a, &e}) {
    Json r = s->Compact();
    EXPECT_EQ(r.at("graves"), 0) << "c has not pulled the delete: " << r.dump();
    EXPECT_EQ(r.at("held_by"), url) << r.dump();
    EXPECT_EQ(s->Graves(), std::make_pair(int64_t{0}, int64_t{1}));
  }
  c.Call("deltasync_sync", url);  // the late update loses at the hub; c pulls the delete
  for (int round = 0; round < 3; ++round)
    for (AnySite* s : all) s->Call("deltasync_sync", url);
  EXPECT_EQ(HubCompact(hub, "pgcompact"), 1);
  for (AnySite* s : all) {
    Json r = s->Compact();
    EXPECT_EQ(r.at("graves"), 1) << r.dump();
    EXPECT_EQ(s->Graves(), std::make_pair(int64_t{1}, int64_t{0}));
    EXPECT_EQ(s->Items(), a.Items());
  }
  EXPECT_EQ(a.Items().size(), 2u) << "the late update brought the deleted row back";
  Json h = a.Status().at("hubs").at(0);
  EXPECT_GT(h.at("frontier").get<int64_t>(), 0) << h.dump();
  EXPECT_GT(h.at("compactable_to").get<int64_t>(), 0) << h.dump();
  EXPECT_LE(h.at("compactable_to").get<int64_t>(), h.at("push_cursor").get<int64_t>()) << h.dump();

  // e (PostgreSQL, compacted) inserts 1 again: cl 3, which every site takes; b updates it.
  e.Exec("INSERT INTO item VALUES (1, 'again', 5)");
  EXPECT_EQ(e.Cl(1), 3);
  for (AnySite* s : {&e, &a, &b, &c}) s->Call("deltasync_sync", url);
  b.Exec("UPDATE item SET qty = 6 WHERE id = 1");
  for (int round = 0; round < 2; ++round)
    for (AnySite* s : {&b, &a, &c, &e}) s->Call("deltasync_sync", url);
  AnySite d(true);  // a PostgreSQL site joining now
  d.Call("deltasync_pull", url);
  for (AnySite* s : {&b, &c, &d, &e}) EXPECT_EQ(s->Items(), a.Items());
  EXPECT_EQ(a.Lines("SELECT name || ' ' || qty FROM item WHERE id = 1"), std::vector<std::string>{"again 6"});

  // Deleted on PostgreSQL, compacted; a second hub (a new store: the push starts from 0)
  // where f holds the old life of 2, never having seen a delete: a's grave deletes it there.
  a.Exec("DELETE FROM item WHERE id = 2");
  for (int round = 0; round < 4; ++round)
    for (AnySite* s : {&a, &b, &c, &d, &e}) s->Call("deltasync_sync", url);
  EXPECT_EQ(a.Compact().at("graves"), 1);
  EXPECT_EQ(a.Graves(), std::make_pair(int64_t{1}, int64_t{0})) << "1 lives again; 2 is a grave";
  HubProcess hub2(HubOptions());
  std::string url2 = hub2.url("fresh");
  AnySite f(false);
  f.Exec("INSERT INTO item VALUES (2, 'old life on f', 7)");
  f.Call("deltasync_sync", url2);
  a.Call("deltasync_sync", url2);
  f.Call("deltasync_sync", url2);
  EXPECT_EQ(f.Items(), a.Items());
  EXPECT_EQ(f.Lines("SELECT count(*) FROM item WHERE id = 2"), std::vector<std::string>{"0"});
}

// A delete a PostgreSQL site has not pushed yet is never compacted, whatever the frontier;
// and a pull compacts by itself once 10,000 versions became compactable since the last
// compaction (here an explicit one, which found nothing to do).
TEST(MixedSiteCompaction, UnpushedDeletesAreKeptAndAPullCompactsByItself) {
  HubProcess hub(HubOptions());
  std::string url = hub.url("pgauto");
  AnySite a(true), b(false);
  a.Exec("INSERT INTO item SELECT g, 'n' || g, g FROM generate_series(1, 12000) AS g");
  for (int r = 0; r < 2; ++r)
    for (AnySite* s : {&a, &b}) s->Call("deltasync_sync", url);
  a.Exec("DELETE FROM item WHERE id = 1");
  for (int r = 0; r < 3; ++r)
    for (AnySite* s : {&a, &b}) s->Call("deltasync_pull", url);  // pulls only
  EXPECT_EQ(a.Compact().at("graves"), 0);
  EXPECT_EQ(a.Graves(), std::make_pair(int64_t{0}, int64_t{1}));
  a.Exec("DELETE FROM item WHERE id > 10");
  std::map<AnySite*, int64_t> automatic;
  for (int r = 0; r < 5; ++r)
    for (AnySite* s : {&a, &b}) {
      Json res = s->Call("deltasync_sync", url);
      if (res["pull"].contains("compacted")) automatic[s] += res["pull"]["compacted"]["graves"].get<int64_t>();
    }
  EXPECT_EQ(automatic[&a], 11991);
  EXPECT_EQ(automatic[&b], 11991);
  for (AnySite* s : {&a, &b}) {
    EXPECT_EQ(s->Compact().at("graves"), 0);
    EXPECT_EQ(s->Graves(), std::make_pair(int64_t{11991}, int64_t{0}));
  }
  EXPECT_EQ(b.Items(), a.Items());
  EXPECT_EQ(a.Items().size(), 9u);
}

// The differential property of HubSiteCompaction, with PostgreSQL sites: one random history
// of writes (inserts, upserts, updates, deletes, key changes over a small key space, so
// re-inserts land on graves), syncs and hub compactions, drawn from one seed, run twice —
// with sites compacting at random and without — ends with the same causal length of every key
// on every site; each run converges on its own, a site joining late included.
TEST(MixedSiteCompaction, CausalLengthsAreThoseOfTheSameHistoryWithoutSiteCompaction) {
  int64_t cases = EnvInt("DELTASYNC_E2E_CASES", 4) / 2;  // each case runs two worlds
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261202);
  HubProcess hubs[2] = {HubProcess(HubOptions()), HubProcess(HubOptions())};
  uint64_t graves = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_E2E_CASES=1");
    std::vector<std::vector<std::string>> lengths[2];
    for (int world = 0; world < 2; ++world) {
      const bool compacting = world == 0;
      std::string node = "pgcl" + std::to_string(seed);
      std::string url = hubs[world].url(node);
      std::mt19937_64 rng(seed);
      auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
      std::vector<std::unique_ptr<AnySite>> sites;
      for (bool pg : {true, false, true}) sites.push_back(std::make_unique<AnySite>(pg));
      auto write = [&](AnySite& s) {
        std::string k = std::to_string(pick(6)), n = std::to_string(pick(100));
        switch (pick(6)) {
          case 0: s.Exec("INSERT INTO item VALUES (" + k + ", 'w" + n + "', " + n + ") ON CONFLICT DO NOTHING"); break;
          case 1:
            s.Exec("INSERT INTO item VALUES (" + k + ", 'u" + n + "', " + n +
                   ") ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            break;
          case 2: s.Exec("UPDATE item SET qty = qty + " + n + " WHERE id = " + k); break;
          case 3:
          case 4: s.Exec("DELETE FROM item WHERE id = " + k); break;
          default: {
            std::string to = std::to_string(pick(6));
            s.Exec("UPDATE item SET id = " + to + " WHERE id = " + k + " AND NOT EXISTS (SELECT 1 FROM item AS o WHERE o.id = " +
                   to + ")");
          }
        }
      };
      auto site_compact = [&](AnySite& s) {
        if (compacting) graves += s.Compact().at("graves").get<uint64_t>();
      };
      auto random_steps = [&](int steps) {
        for (int s = 0; s < steps; ++s) {
          size_t what = pick(100);
          AnySite& at = *sites[pick(sites.size())];
          if (what < 45) {
            write(at);
          } else if (what < 80) {
            static const char* kFns[] = {"deltasync_push", "deltasync_pull", "deltasync_sync"};
            at.Call(kFns[pick(3)], url, Json{{"batch_rows", pick(2) ? 2 : 1000}});
          } else if (what < 88) {
            HubCompact(hubs[world], node);
          } else {
            site_compact(at);
          }
        }
      };
      auto rounds = [&](int n) {
        for (int r = 0; r < n; ++r)
          for (auto& s : sites) {
            s->Call("deltasync_sync", url);
            site_compact(*s);
          }
      };
      try {
        random_steps(60);
        rounds(3);
        random_steps(60);  // writes over graves: re-inserts, updates and deletes of their keys
        sites.push_back(std::make_unique<AnySite>(true));  // a PostgreSQL site joining late, writing first
        for (int w = 0; w < 4; ++w) write(*sites.back());
        random_steps(30);
        rounds(3);
      } catch (const std::exception& e) {
        FAIL() << "seed " << seed << " world " << world << ": " << e.what() << "\n--- hub log ---\n" << hubs[world].log();
      }
      for (size_t k = 1; k < sites.size(); ++k)
        ASSERT_EQ(sites[k]->Items(), sites[0]->Items()) << "world " << world << ", sites 0 and " << k;
      for (auto& s : sites) lengths[world].push_back(s->CausalLengths());
    }
    ASSERT_EQ(lengths[0], lengths[1]) << "site compaction changed a causal length";
  }
  EXPECT_GT(graves, 0u) << "no site compacted a tombstone: the property tested nothing";
}

// A PostgreSQL site that comes back after the retention period (docs/operations.md, "A site
// that comes back after the retention period") re-synchronises with {"resync": true}, as a
// SQLite site does (HubCompaction.AReturningSiteResynchronisesKeepingItsOwnWrites): it keeps
// and pushes its own unsent writes, receives the hub's state, and rows deleted elsewhere
// whose tombstones the hub dropped do not come back; the removal records no change.
TEST(MixedResync, AReturningPostgresqlSiteResynchronisesKeepingItsOwnWrites) {
  HubProcess::Options o;
  // 0.00002 days = 1.7 s.
  o.config_json = std::string("{\"admin_token\": \"") + kAdmin +
                  "\", \"compact_interval_s\": 0, \"nodes\": {\"back\": {\"retention_days\": 0.00002}}}";
  HubProcess hub(o);
  std::string url = hub.url("back");
  AnySite a(false), away(true);
  for (int i = 1; i <= 9; ++i)
    a.Exec("INSERT INTO item VALUES (" + std::to_string(i) + ", 'v" + std::to_string(i) + "', " + std::to_string(i) + ")");
  a.Call("deltasync_sync", url);
  // A row only `away` ever wrote: a resync must not mistake it for one the hub dropped.
  away.Exec("INSERT INTO item VALUES (12, 'by away', 12)");
  away.Call("deltasync_sync", url);
  a.Call("deltasync_sync", url);
  ASSERT_EQ(away.Items().size(), 10u);

  // While `away` is offline: a deletes 1, 3 and 9, updates 4, inserts 10.
  a.Exec("DELETE FROM item WHERE id IN (1, 3, 9)");
  a.Exec("UPDATE item SET qty = 40 WHERE id = 4");
  a.Exec("INSERT INTO item VALUES (10, 'new on a', 10)");
  a.Call("deltasync_sync", url);
  a.Call("deltasync_pull", url);
  // Offline on `away`: an update of 1 (deleted elsewhere), an update of 5 (live), a delete of
  // 6, a new row 11, an update of 2 (which a deletes later), and 9 deleted and inserted again.
  away.Exec("UPDATE item SET qty = 100 WHERE id = 1; UPDATE item SET name = 'away' WHERE id = 5;"
            "DELETE FROM item WHERE id = 6; INSERT INTO item VALUES (11, 'new on away', 11);"
            "UPDATE item SET qty = 200 WHERE id = 2; DELETE FROM item WHERE id = 9;"
            "INSERT INTO item VALUES (9, 'nine again', 9)");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  a.Call("deltasync_pull", url);
  httplib::Client cli("127.0.0.1", hub.port());
  auto r = cli.Post("/nodes/back/compact", httplib::Headers{{"Authorization", std::string("Bearer ") + kAdmin}}, "",
                    "application/json");
  ASSERT_TRUE(r && r->status == 200);
  Json c = Json::parse(r->body);
  ASSERT_EQ(c.at("retired"), 1) << c.dump();
  EXPECT_EQ(c.at("dropped"), 3) << c.dump();  // the tombstones of 1, 3 and 9
  a.Exec("DELETE FROM item WHERE id = 2");    // this tombstone stays on the hub
  a.Call("deltasync_sync", url);

  std::string refused;
  try {
    away.Call("deltasync_sync", url);
  } catch (const std::runtime_error& e) {
    refused = e.what();
  }
  EXPECT_NE(refused.find("hub answered 410"), std::string::npos) << refused;
  EXPECT_EQ(away.Lines("SELECT qty FROM item WHERE id = 1"), std::vector<std::string>{"100"})
      << "a refused call changed the site";
  Json back = away.Call("deltasync_sync", url, Json{{"resync", true}});
  EXPECT_EQ(back["pull"]["resync"]["removed"], 2) << back.dump();  // 1 and 3
  EXPECT_GT(back["push"]["pushed"].get<int64_t>(), 0) << back.dump();
  a.Call("deltasync_sync", url);
  away.Call("deltasync_sync", url);  // an ordinary sync works again
  AnySite fresh(true);
  fresh.Call("deltasync_pull", url);
  EXPECT_EQ(away.Items(), a.Items());
  EXPECT_EQ(fresh.Items(), a.Items());
  // 1: its offline update is lost (the delete wins; its tombstone was dropped); 2: the same,
  // through the tombstone the hub still held; 3: deleted elsewhere, gone here too; 4: a's
  // update; 5: away's update; 6: away's delete; 7, 8: untouched; 9: deleted and inserted again
  // offline, a new life that wins; 10, 11: new rows from each side; 12: away's, kept.
  EXPECT_EQ(a.Items(), (std::vector<std::string>{"4:v4:40", "5:away:5", "7:v7:7", "8:v8:8", "9:nine again:9",
                                                 "10:new on a:10", "11:new on away:11", "12:by away:12"}));
  // The removal recorded no change of its own: nothing more to push; 1 and 3 are tombstones
  // one causal length past the life they ended.
  EXPECT_EQ(away.Call("deltasync_push", url)["pushed"], 0);
  EXPECT_EQ(away.Cl(1), 2);
  EXPECT_EQ(away.Cl(3), 2);
}
