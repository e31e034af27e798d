// Hubs with an upstream (SPEC section 6; docs/live-sync.md, "Hub upstream"): a node whose
// config names an upstream hub node is kept in sync with it by the hub itself. SQLite sites
// sync only with their own hub; nobody calls anything on the hubs. Two hubs, a chain of
// three, the upstream killed and restarted while sites on both sides write, random writes
// with random kills, status and metrics, a clean stop. Real `deltasync serve` processes on
// 127.0.0.1 (and, under ctest e2e_hub_suite_on_pg_store, every hub on PostgreSQL).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
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
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL); SELECT deltasync_enable('t');";
constexpr const char* kRowsT = "SELECT id, a FROM t ORDER BY id";

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Json::object()) {
  Json o = {{"timeout_ms", 20000}, {"connect_timeout_ms", 3000}};
  o.update(options);
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(o.dump())}));
}

// A node "<node>" whose upstream is `upstream_url`; backoff short for quick tests.
std::string UpstreamConfig(const std::string& node, const std::string& upstream_url,
                           const std::string& extra = "") {
  return R"({"nodes": {")" + node + R"(": {"upstream": {"url": ")" + upstream_url +
         R"(", "max_backoff_ms": 500, "wait_ms": 5000)" + extra + "}}}}";
}

HubProcess::Options Downstream(const std::string& node, const std::string& upstream_url) {
  HubProcess::Options o;
  o.config_json = UpstreamConfig(node, upstream_url);
  return o;
}

// GET path on the hub: the JSON answer (null on a transport failure).
Json Get(const HubProcess& hub, const std::string& path) {
  httplib::Client cli("127.0.0.1", hub.port());
  cli.set_read_timeout(10, 0);
  auto r = cli.Get(path.c_str());
  if (!r || r->status != 200) return Json();
  return Json::parse(r->body);
}
std::string GetText(const HubProcess& hub, const std::string& path) {
  httplib::Client cli("127.0.0.1", hub.port());
  auto r = cli.Get(path.c_str());
  return r && r->status == 200 ? r->body : "";
}

// The node's upstream link as its status shows it.
Json Link(const HubProcess& hub, const std::string& node) {
  Json s = Get(hub, "/nodes/" + node + "/status");
  return s.is_object() && s.contains("upstream") ? s["upstream"] : Json();
}

// Polls until f() holds or `limit` passes; true when it held.
bool Eventually(const std::function<bool()>& f, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  return f();
}

// Each site syncs with its own hub, again and again, until every site holds the same rows of
// every query (or `limit` passes); true when they do. A sync that fails (a hub down) is retried.
struct Placed {
  Site* site;
  std::string url;
};
bool SyncUntilEqual(const std::vector<Placed>& sites, const std::vector<std::string>& queries,
                    std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  return Eventually(
      [&] {
        for (const Placed& p : sites) {
          try {
            Call(*p.site, "deltasync_sync", p.url);
          } catch (const std::exception&) {
          }
        }
        for (const std::string& q : queries) {
          auto ref = sites[0].site->Rows(q);
          for (size_t k = 1; k < sites.size(); ++k)
            if (sites[k].site->Rows(q) != ref) return false;
        }
        return true;
      },
      limit);
}

// The node sequences stay put: nothing travels back and forth between the hubs.
void ExpectQuiet(const std::vector<std::pair<const HubProcess*, std::string>>& nodes) {
  std::vector<int64_t> before;
  for (auto& [hub, node] : nodes)
    before.push_back(Get(*hub, "/nodes/" + node + "/status").value("seq", int64_t{-1}));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (size_t k = 0; k < nodes.size(); ++k)
    EXPECT_EQ(Get(*nodes[k].first, "/nodes/" + nodes[k].second + "/status").value("seq", int64_t{-2}),
              before[k])
        << "node " << nodes[k].second << " keeps changing with nothing written: an echo between the hubs";
}

// The link's counts of changes sent up and received down reach these and stay there (they
// are counted when a push or pull call ends, a moment after its rows are visible).
void ExpectCounts(const HubProcess& hub, const std::string& node, int64_t pushed, int64_t pulled) {
  auto at = [&] {
    Json l = Link(hub, node);
    return l.is_object() && l["pushed"] == pushed && l["pulled"] == pulled;
  };
  EXPECT_TRUE(Eventually(at, std::chrono::seconds(5)))
      << "want pushed " << pushed << ", pulled " << pulled << ": " << Link(hub, node).dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(at()) << "want pushed " << pushed << ", pulled " << pulled << ": " << Link(hub, node).dump();
}

// What a node holds, per table (rows, deleted, cells): the same on hubs that converged.
Json Holdings(const HubProcess& hub, const std::string& node) {
  Json s = Get(hub, "/nodes/" + node + "/status");
  return s.is_object() ? s["tables"] : Json();
}

}  // namespace

TEST(HubUpstream, TwoHubsConvergeWithNoSyncCallOnTheHubs) {
  HubProcess hq;
  HubProcess shop(Downstream("shop", hq.url("hq")));
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  office.Exec("INSERT INTO t VALUES (1, 'from the office')");
  Call(office, "deltasync_sync", hq.url("hq"));
  ASSERT_TRUE(Eventually([&] {
    Call(till, "deltasync_sync", shop.url("shop"));
    return till.Text("SELECT a FROM t WHERE id = 1") == "from the office";
  })) << "the office's row never reached the shop's till\n--- shop log ---\n"
      << shop.log();
  ExpectCounts(shop, "shop", 0, 1);  // the office's row came down, and did not go back up

  till.Exec(
      "INSERT INTO t VALUES (2, 'sold at the till'); UPDATE t SET a = 'edited at the till' WHERE id = 1");
  Call(till, "deltasync_sync", shop.url("shop"));
  ASSERT_TRUE(Eventually([&] {
    Call(office, "deltasync_sync", hq.url("hq"));
    return office.Rows(kRowsT) == till.Rows(kRowsT);
  })) << "the till's writes never reached the office\n--- shop log ---\n"
      << shop.log();

  Json link = Link(shop, "shop");
  ASSERT_TRUE(link.is_object()) << "the status has no upstream link";
  EXPECT_EQ(link["url"], hq.url("hq"));
  EXPECT_TRUE(link["connected"].get<bool>()) << link.dump();
  EXPECT_EQ(link["state"], "connected");
  EXPECT_EQ(link["upstream_hub_id"], Get(hq, "/nodes/hq/status")["hub_id"]);
  EXPECT_TRUE(link["last_error"].is_null()) << link.dump();
  EXPECT_TRUE(Eventually([&] { return Link(shop, "shop")["lag"] == 0; })) << Link(shop, "shop").dump();
  EXPECT_TRUE(Link(hq, "hq").is_null()) << "a node without an upstream shows a link";
  // Each change crossed once: the till's insert and update up, the office's insert down,
  // nothing came back the way it went.
  ExpectCounts(shop, "shop", 2, 1);
  // /metrics without an admin token: totals only.
  std::string metrics = GetText(shop, "/metrics");
  EXPECT_NE(metrics.find("deltasync_upstream_links 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("deltasync_upstream_links_connected 1\n"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("deltasync_upstream_connected{"), std::string::npos)
      << "per-node series without an admin";

  ExpectQuiet({{&hq, "hq"}, {&shop, "shop"}});
  EXPECT_EQ(Holdings(hq, "hq"), Holdings(shop, "shop"));
}

TEST(HubUpstream, ThreeHubsInAChainConverge) {
  HubProcess top;
  HubProcess mid(Downstream("region", top.url("world")));
  HubProcess leaf(Downstream("shop", mid.url("region")));
  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kSchema);
  std::vector<Placed> sites = {{&a, top.url("world")}, {&b, mid.url("region")}, {&c, leaf.url("shop")}};
  a.Exec("INSERT INTO t VALUES (1, 'top'), (10, 'shared')");
  b.Exec("INSERT INTO t VALUES (2, 'middle')");
  c.Exec("INSERT INTO t VALUES (3, 'leaf')");
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT})) << "--- mid log ---\n"
                                               << mid.log() << "\n--- leaf log ---\n"
                                               << leaf.log();
  EXPECT_EQ(c.Rows(kRowsT).size(), 4u);
  // Concurrent edits of one row at both ends, and a delete in the middle.
  a.Exec("UPDATE t SET a = 'edited on top' WHERE id = 10");
  c.Exec("UPDATE t SET a = 'edited at the leaf' WHERE id = 10");
  b.Exec("DELETE FROM t WHERE id = 2");
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT}));
  EXPECT_EQ(a.Text("SELECT count(*) FROM t WHERE id = 2"), "0");
  EXPECT_EQ(a.Text("SELECT a FROM t WHERE id = 10"), c.Text("SELECT a FROM t WHERE id = 10"));
  EXPECT_TRUE(Eventually([&] { return Link(mid, "region")["lag"] == 0 && Link(leaf, "shop")["lag"] == 0; }));
  ExpectQuiet({{&top, "world"}, {&mid, "region"}, {&leaf, "shop"}});
  EXPECT_EQ(Holdings(top, "world"), Holdings(leaf, "shop"));
  EXPECT_EQ(Holdings(top, "world"), Holdings(mid, "region"));
}

TEST(HubUpstream, UpstreamKilledAndRestartedWhileBothSidesWrite) {
  HubProcess::Options hq_options;
  hq_options.db = "";  // a file: it survives the kill
  HubProcess hq(hq_options);
  HubProcess shop(Downstream("shop", hq.url("hq")));
  Site office, till1, till2;
  for (Site* s : {&office, &till1, &till2}) s->Exec(kSchema);
  std::vector<Placed> sites = {
      {&office, hq.url("hq")}, {&till1, shop.url("shop")}, {&till2, shop.url("shop")}};
  office.Exec("INSERT INTO t VALUES (1, 'before')");
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT}));

  hq.Kill();
  // The shop keeps serving its tills: they sync with each other through it.
  till1.Exec("INSERT INTO t VALUES (100, 'offline sale 1')");
  Call(till1, "deltasync_sync", shop.url("shop"));
  Call(till2, "deltasync_sync", shop.url("shop"));
  EXPECT_EQ(till2.Text("SELECT a FROM t WHERE id = 100"), "offline sale 1");
  till2.Exec("INSERT INTO t VALUES (101, 'offline sale 2'); UPDATE t SET a = 'till edit' WHERE id = 1");
  Call(till2, "deltasync_sync", shop.url("shop"));
  office.Exec("INSERT INTO t VALUES (200, 'office while down')");
  EXPECT_TRUE(Eventually([&] { return Link(shop, "shop")["state"] == "failing"; }, std::chrono::seconds(10)))
      << Link(shop, "shop").dump();
  Json failing = Link(shop, "shop");
  EXPECT_FALSE(failing["connected"].get<bool>());
  EXPECT_TRUE(failing["failing_since_ms"].is_number()) << failing.dump();
  EXPECT_TRUE(failing["last_error"].is_string()) << failing.dump();
  EXPECT_GT(failing["lag"].get<int64_t>(), 0) << "writes the upstream lacks show no lag: " << failing.dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // a few retries, backed off

  hq.Restart();
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT})) << "--- shop log ---\n" << shop.log();
  EXPECT_EQ(office.Rows(kRowsT).size(), 4u);
  EXPECT_EQ(office.Text("SELECT a FROM t WHERE id = 1"), "till edit");
  EXPECT_TRUE(Eventually([&] { return Link(shop, "shop")["connected"] == true; }))
      << Link(shop, "shop").dump();
  EXPECT_TRUE(Link(shop, "shop")["failing_since_ms"].is_null());
  EXPECT_NE(shop.log().find("works again"), std::string::npos) << shop.log();
  ExpectQuiet({{&hq, "hq"}, {&shop, "shop"}});
}

// The heart of it: random writes on sites of both hubs (and a third in a chain), random syncs,
// random kills and restarts of the upstream, and in the end identical rows everywhere.
TEST(HubUpstream, RandomWritesAndUpstreamKillsConverge) {
  const char* env = std::getenv("DELTASYNC_PROPERTY_SEED");
  uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  deltasync::test::RandomWriter writer(rng);

  HubProcess::Options hq_options;
  hq_options.db = "";
  HubProcess hq(hq_options);
  HubProcess shop(Downstream("shop", hq.url("hq")));
  HubProcess kiosk(Downstream("kiosk", shop.url("shop")));
  std::vector<std::unique_ptr<Site>> owned;
  std::vector<Placed> sites;
  const std::string urls[] = {hq.url("hq"), hq.url("hq"), shop.url("shop"), shop.url("shop"),
                              kiosk.url("kiosk")};
  for (const std::string& url : urls) {
    owned.push_back(std::make_unique<Site>());
    owned.back()->Exec(deltasync::test::kRandomWriteSchema);
    sites.push_back({owned.back().get(), url});
  }
  int kills = 0;
  for (int step = 0; step < 80; ++step) {
    Placed& p = sites[pick(sites.size())];
    writer.Write(*p.site);
    if (pick(2) == 0) {
      Placed& s = sites[pick(sites.size())];
      try {
        Call(*s.site, "deltasync_sync", s.url, {{"batch_rows", 1 + static_cast<int>(pick(20))}});
      } catch (const std::exception&) {
        // Only a site of the killed upstream may fail.
        EXPECT_FALSE(hq.running() || s.url != hq.url("hq")) << "a sync failed with its hub up";
      }
    }
    if (pick(12) == 0) {
      if (hq.running()) {
        hq.Kill();
        ++kills;
      } else {
        hq.Restart();
      }
    }
    if (pick(10) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(pick(300)));
  }
  if (!hq.running()) hq.Restart();
  std::vector<std::string> queries(std::begin(deltasync::test::kRandomWriteTables),
                                   std::end(deltasync::test::kRandomWriteTables));
  ASSERT_TRUE(SyncUntilEqual(sites, queries))
      << "seed " << seed << ", " << kills << " kills\n--- shop log ---\n"
      << shop.log() << "\n--- kiosk log ---\n"
      << kiosk.log();
  EXPECT_GT(sites[0].site->Rows(queries[0]).size() + sites[0].site->Rows(queries[1]).size(), 0u);
  EXPECT_TRUE(Eventually([&] { return Holdings(hq, "hq") == Holdings(shop, "shop"); })) << "seed " << seed;
  EXPECT_TRUE(Eventually([&] { return Holdings(shop, "shop") == Holdings(kiosk, "kiosk"); }))
      << "seed " << seed;
  ExpectQuiet({{&hq, "hq"}, {&shop, "shop"}, {&kiosk, "kiosk"}});
}

// A downstream hub whose upstream never answers serves its own sites, shows the link failing,
// and stops at once on SIGTERM; one with a running long-poll stops as quickly.
TEST(HubUpstream, UnreachableUpstreamAndCleanStop) {
  HubProcess hq;
  int dead_port = hq.port();
  hq.Kill();  // nobody listens there now
  HubProcess shop(Downstream("shop", "http://127.0.0.1:" + std::to_string(dead_port) + "/nodes/hq"));
  Site till1, till2;
  till1.Exec(kSchema);
  till2.Exec(kSchema);
  till1.Exec("INSERT INTO t VALUES (1, 'local')");
  Call(till1, "deltasync_sync", shop.url("shop"));
  Call(till2, "deltasync_sync", shop.url("shop"));
  EXPECT_EQ(till2.Rows(kRowsT), till1.Rows(kRowsT));
  ASSERT_TRUE(Eventually([&] { return Link(shop, "shop")["state"] == "failing"; }, std::chrono::seconds(10)));
  EXPECT_NE(Link(shop, "shop")["last_error"].get<std::string>().find(std::to_string(dead_port)),
            std::string::npos)
      << "the error does not name the upstream";
  auto start = Clock::now();
  EXPECT_EQ(shop.Stop(), 0);
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(), 3000);

  HubProcess hq2;
  HubProcess shop2(Downstream("shop", hq2.url("hq")));
  ASSERT_TRUE(Eventually([&] { return Link(shop2, "shop")["connected"] == true; })) << shop2.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the link's long-poll is waiting now
  start = Clock::now();
  EXPECT_EQ(shop2.Stop(), 0);
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(), 3000)
      << "the stop waited for the link's long-poll";
}

// With an admin token, /metrics has the link's per-node series.
TEST(HubUpstream, MetricsShowTheLink) {
  HubProcess hq;
  HubProcess::Options o;
  o.config_json = R"({"admin_token": "adm", "nodes": {"shop": {"upstream": {"url": ")" + hq.url("hq") +
                  R"(", "max_backoff_ms": 500}}}})";
  HubProcess shop(o);
  Site till;
  till.Exec(kSchema);
  till.Exec("INSERT INTO t VALUES (1, 'x'), (2, 'y')");
  Call(till, "deltasync_sync", shop.url("shop"));
  httplib::Client cli("127.0.0.1", shop.port());
  std::string m;
  ASSERT_TRUE(Eventually([&] {
    auto r = cli.Get("/metrics", {{"Authorization", "Bearer adm"}});
    m = r && r->status == 200 ? r->body : "";
    // Connected once a push and a pull both succeeded: the pull may end a moment after the
    // push is counted (on a PostgreSQL store, seen in CI).
    return m.find("deltasync_upstream_changes_total{node=\"shop\",direction=\"up\"} 2\n") != std::string::npos &&
           m.find("deltasync_upstream_connected{node=\"shop\"} 1\n") != std::string::npos &&
           m.find("deltasync_upstream_lag{node=\"shop\"} 0\n") != std::string::npos;
  })) << m;
  EXPECT_NE(m.find("deltasync_upstream_failing_seconds{node=\"shop\"} 0.000\n"), std::string::npos) << m;
  EXPECT_NE(m.find("deltasync_upstream_last_success_timestamp_seconds{node=\"shop\"}"), std::string::npos)
      << m;
}

// A config whose upstream is unusable is refused at start, with a clear message.
TEST(HubUpstream, BadUpstreamConfigIsRefused) {
  for (const std::string& upstream :
       {std::string(R"({"token": "t"})"), std::string(R"({"url": "ftp://x/nodes/a"})"),
        std::string(R"({"url": "http://127.0.0.1:1/nodes/a", "tables": ["t"]})"),
        std::string(R"({"url": "http://127.0.0.1:1/nodes/a", "bogus": 1})"),
        std::string(R"("http://x/nodes/a")")}) {
    HubProcess::Options o;
    o.config_json = R"({"nodes": {"shop": {"upstream": )" + upstream + "}}}";
    try {
      HubProcess shop(o);
      ADD_FAILURE() << "a hub started with upstream " << upstream;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("upstream"), std::string::npos) << upstream << ": " << e.what();
    }
  }
}

// The upstream node needs a token: the link sends the configured one; with a wrong one it
// fails (401 in its status) and the token shows in no log.
TEST(HubUpstream, TheLinkSendsItsTokenAndAWrongOneFails) {
  HubProcess::Options hq_options;
  hq_options.config_json = R"({"nodes": {"hq": {"tokens": ["hq-s3cret-token"]}}})";
  HubProcess hq(hq_options);
  HubProcess::Options good, bad;
  good.config_json = UpstreamConfig("shop", hq.url("hq"), R"(, "token": "hq-s3cret-token")");
  bad.config_json = UpstreamConfig("shop", hq.url("hq"), R"(, "token": "not-the-token")");
  HubProcess shop(good), rogue(bad);
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  till.Exec("INSERT INTO t VALUES (1, 'till')");
  Call(till, "deltasync_sync", shop.url("shop"));
  ASSERT_TRUE(Eventually([&] {
    Call(office, "deltasync_sync", hq.url("hq"), {{"token", "hq-s3cret-token"}});
    return office.Rows(kRowsT) == till.Rows(kRowsT);
  })) << shop.log();
  ASSERT_TRUE(
      Eventually([&] { return Link(rogue, "shop")["state"] == "failing"; }, std::chrono::seconds(10)));
  EXPECT_NE(Link(rogue, "shop")["last_error"].get<std::string>().find("401"), std::string::npos)
      << Link(rogue, "shop").dump();
  for (const std::string& log : {hq.log(), shop.log(), rogue.log()}) {
    EXPECT_EQ(log.find("hq-s3cret-token"), std::string::npos) << log;
    EXPECT_EQ(log.find("not-the-token"), std::string::npos) << log;
  }
}

// The downstream's max_row_bytes holds for what its upstream sends, as for a push (issue 11):
// a page bringing a larger row fails whole and changes nothing; the link says why.
TEST(HubUpstream, APageWithARowOverTheRowMaximumIsRefused) {
  HubProcess hq;
  HubProcess::Options o;
  o.config_json = R"({"max_row_bytes": 65536, "nodes": {"shop": {"upstream": {"url": ")" + hq.url("hq") +
                  R"(", "max_backoff_ms": 500, "wait_ms": 5000}}}})";
  HubProcess shop(o);
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  // 100 KB: under the upstream's default maximum, over the downstream's.
  office.Exec("INSERT INTO t VALUES (1, replace(hex(zeroblob(50000)), '0', 'x')), (2, 'small')");
  Call(office, "deltasync_sync", hq.url("hq"));
  ASSERT_TRUE(Eventually([&] {
    Json l = Link(shop, "shop");
    return l.is_object() && l["last_error"].is_string();
  })) << Link(shop, "shop").dump() << shop.log();
  std::string err = Link(shop, "shop")["last_error"].get<std::string>();
  EXPECT_NE(err.find("larger than max_row_bytes (65536)"), std::string::npos) << err;
  Json status = Get(shop, "/nodes/shop/status");
  EXPECT_EQ(status.value("seq", int64_t{-1}), 0) << status.dump();
  Call(till, "deltasync_sync", shop.url("shop"));
  EXPECT_EQ(till.Text("SELECT count(*) FROM t"), "0");
  // Once the upstream's row is small again, the link goes on and both rows come down.
  office.Exec("UPDATE t SET a = 'shrunk' WHERE id = 1");
  Call(office, "deltasync_sync", hq.url("hq"));
  EXPECT_TRUE(Eventually([&] {
    Call(till, "deltasync_sync", shop.url("shop"));
    return till.Rows(kRowsT) == office.Rows(kRowsT);
  })) << Link(shop, "shop").dump();
}

// The downstream hub killed and restarted: its link goes on from its stored cursors with the
// same site id, sending nothing again and pulling only what is new.
TEST(HubUpstream, DownstreamRestartGoesOnFromItsCursors) {
  HubProcess hq;
  HubProcess::Options shop_options = Downstream("shop", hq.url("hq"));
  shop_options.db = "";  // a file: it survives the kill
  HubProcess shop(shop_options);
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  std::vector<Placed> sites = {{&office, hq.url("hq")}, {&till, shop.url("shop")}};
  office.Exec("INSERT INTO t VALUES (1, 'office'), (2, 'office')");
  till.Exec("INSERT INTO t VALUES (3, 'till'), (4, 'till')");
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT}));
  ASSERT_TRUE(Eventually([&] { return Link(shop, "shop")["lag"] == 0; }));
  Json before = Link(shop, "shop");

  shop.Kill();
  office.Exec("INSERT INTO t VALUES (5, 'office while the shop was down')");
  Call(office, "deltasync_sync", hq.url("hq"));
  shop.Restart();
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT})) << shop.log();
  EXPECT_EQ(till.Rows(kRowsT).size(), 5u);
  Json after = Link(shop, "shop");
  EXPECT_EQ(after["site_id"], before["site_id"]) << "the link has a new site id after a restart";
  // Nothing pushed again that the upstream had, nothing pulled again that was here: only row 5.
  ExpectCounts(shop, "shop", 0, 1);
  EXPECT_GE(after["pull_cursor"].get<int64_t>(), before["pull_cursor"].get<int64_t>());
}

// The link's push cursor is its place in its node's frontier: a delete the upstream has not
// received yet is not compacted away while the upstream is down, and is once it crossed.
TEST(HubUpstream, ATombstoneWaitsForTheLinkBeforeCompaction) {
  HubProcess::Options hq_options;
  hq_options.db = "";
  HubProcess hq(hq_options);
  HubProcess::Options o;
  o.config_json =
      R"({"admin_token": "adm", "compact_interval_s": 0, "nodes": {"shop": {"upstream": {"url": ")" +
      hq.url("hq") + R"(", "max_backoff_ms": 300, "wait_ms": 5000}}}})";
  HubProcess shop(o);
  auto compact = [&] {
    httplib::Client cli("127.0.0.1", shop.port());
    auto r = cli.Post("/nodes/shop/compact", {{"Authorization", "Bearer adm"}}, "", "application/json");
    return r && r->status == 200 ? Json::parse(r->body) : Json();
  };
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  std::vector<Placed> sites = {{&office, hq.url("hq")}, {&till, shop.url("shop")}};
  office.Exec("INSERT INTO t VALUES (1, 'doomed'), (2, 'kept')");
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT}));

  hq.Kill();
  till.Exec("DELETE FROM t WHERE id = 1");
  Call(till, "deltasync_sync", shop.url("shop"));
  Call(till, "deltasync_sync",
       shop.url("shop"));  // the till has applied everything: only the link holds back
  Json r = compact();
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["dropped"], 0) << "the tombstone the upstream lacks was compacted: " << r.dump();

  hq.Restart();
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT})) << shop.log();
  EXPECT_EQ(office.Text("SELECT count(*) FROM t WHERE id = 1"), "0") << "the delete never reached the office";
  EXPECT_TRUE(Eventually([&] {
    Call(till, "deltasync_sync", shop.url("shop"));
    Json c = compact();
    return c.is_object() && c["dropped"] == 1;
  })) << "the tombstone stays once the upstream has it: "
      << compact().dump();
}

// The downstream hub killed in the middle of pushing pages up and merging pages down: after a
// restart nothing is missing on either side.
TEST(HubUpstream, DownstreamKilledMidTransferLosesNothing) {
  HubProcess::Options hq_options;
  hq_options.db = "";
  HubProcess hq(hq_options);
  HubProcess::Options shop_options;
  shop_options.db = "";
  shop_options.config_json = UpstreamConfig("shop", hq.url("hq"), R"(, "batch_rows": 40)");
  HubProcess shop(shop_options);
  Site office, till;
  office.Exec(kSchema);
  till.Exec(kSchema);
  office.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
      " INSERT INTO t SELECT i, 'office ' || i FROM n");
  till.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
      " INSERT INTO t SELECT 10000 + i, 'till ' || i FROM n");
  Call(till, "deltasync_sync", shop.url("shop"));
  Call(office, "deltasync_sync", hq.url("hq"));
  Json mid;  // killed once some pages crossed (the cursors move page by page)
  for (auto until = Clock::now() + std::chrono::seconds(5); Clock::now() < until;) {
    mid = Link(shop, "shop");
    if (mid.is_object() && (mid["push_cursor"] > 0 || mid["pull_cursor"] > 0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  shop.Kill();
  shop.Restart();
  std::vector<Placed> sites = {{&office, hq.url("hq")}, {&till, shop.url("shop")}};
  ASSERT_TRUE(SyncUntilEqual(sites, {kRowsT})) << shop.log();
  EXPECT_EQ(office.Rows(kRowsT).size(), 4000u);
  std::cout << "at the kill: push cursor " << mid.value("push_cursor", -1) << ", lag " << mid.value("lag", -1)
            << ", pull cursor " << mid.value("pull_cursor", -1) << " (2000 rows each way)\n";
}
