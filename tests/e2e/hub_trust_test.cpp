// End to end: what a valid site may not do to the others through a real hub
// (`deltasync serve` on 127.0.0.1) — overflow a causal length or a clock, spoof another
// site's origin, flood the hub with site ids — and what a hostile hub may not do to a site.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/site_id.hpp"
#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

namespace deltasync {
// Readable values in failure messages (found by GoogleTest through ADL).
inline void PrintTo(const Value& v, std::ostream* os) { *os << DebugString(v); }
}  // namespace deltasync

using deltasync::Payload;
using deltasync::SiteId;
using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr const char* kJson = "application/json";

Json Opts(Json extra = Json::object()) {
  Json o = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) o[it.key()] = it.value();
  return o;
}

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(options.dump())}));
}

std::string CallError(Site& s, const std::string& fn, const std::string& url, const Json& options = Opts()) {
  try {
    Call(s, fn, url, options);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Raw HTTP to a hub (no token: the hubs of these tests serve loopback without one).
struct Raw {
  explicit Raw(int port) : cli("127.0.0.1", port) {
    cli.set_connection_timeout(10, 0);
    cli.set_read_timeout(120, 0);
    cli.set_write_timeout(120, 0);
  }
  std::pair<int, std::string> Get(const std::string& path) {
    auto r = cli.Get(path.c_str());
    return r ? std::make_pair(r->status, r->body) : std::make_pair(-1, std::string());
  }
  std::pair<int, std::string> Post(const std::string& path, const std::string& body,
                                   const std::string& type = kJson) {
    auto r = cli.Post(path.c_str(), body, type.c_str());
    return r ? std::make_pair(r->status, r->body) : std::make_pair(-1, std::string());
  }
  httplib::Client cli;
};

// A hub whose clock-drift limit is out of the way, so the causal-length and clock bounds are
// what refuses.
HubProcess::Options NoDriftLimit() {
  HubProcess::Options o;
  o.config_json = R"({"max_clock_drift_ms": 4000000000000000})";
  return o;
}

std::string SiteIdOf(Site& s) { return s.Text("SELECT deltasync_site_id()"); }

// A payload from `pusher` of one row of table t(id INTEGER PRIMARY KEY, v TEXT): v written
// at hlc by `origin` (no column change when v is empty: a delete or a bare row).
Payload OneRow(const SiteId& pusher, const SiteId& origin, int64_t id, const std::string& v, int64_t cl,
               uint64_t hlc) {
  Payload p;
  p.site = pusher;
  p.sites = {origin};
  deltasync::TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"v"};
  deltasync::RowChanges r;
  r.key = {Value::Integer(id)};
  r.cl = cl;
  if (!v.empty()) r.changes.push_back(deltasync::ColumnChange{0, Value::Text(v), hlc, 0, cl | 1});
  t.rows.push_back(r);
  p.tables.push_back(t);
  return p;
}

uint64_t Now() { return deltasync::HlcFromMillis(deltasync::WallClockMillis()); }

constexpr const char* kSchema = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('t');";

// ---------------------------------------------------------------------------------------
// Item 9: causal lengths and clocks bounded where they enter.

TEST(HubBounds, PushWithACausalLengthOrClockBeyondTheBoundIsRefusedWith400) {
  HubProcess hub(NoDriftLimit());
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'one')");
  Call(a, "deltasync_sync", hub.url("n"));
  Raw raw(hub.port());
  std::string status_before = raw.Get("/nodes/n/status").second;
  SiteId sa = SiteId::Parse(SiteIdOf(a));
  struct Case {
    std::string what;
    Payload p;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"deleted row at 2^63 - 2", OneRow(sa, sa, 1, "", kInt64Max - 1, 0), "causal length"},
      {"live row at 2^63 - 1", OneRow(sa, sa, 1, "x", kInt64Max, Now()), "causal length"},
      {"row just past 2^62", OneRow(sa, sa, 2, "", deltasync::kMaxCausalLength + 2, 0), "causal length"},
      {"clock past the bound", OneRow(sa, sa, 1, "x", 1, deltasync::kMaxHlc + 1), "clock"},
      {"clock of the year 4200", OneRow(sa, sa, 3, "x", 1, ((uint64_t{1} << 46) + 31556952000) << 16), "clock"},
  };
  for (const Case& c : cases) {
    for (bool binary : {false, true}) {
      SCOPED_TRACE(c.what + (binary ? " (binary)" : " (JSON)"));
      auto [code, body] = binary ? raw.Post("/nodes/n/push", deltasync::EncodeBinary(c.p),
                                            "application/vnd.deltasync.payload")
                                 : raw.Post("/nodes/n/push", deltasync::EncodeJson(c.p));
      EXPECT_EQ(code, 400) << body;
      std::string error = Json::parse(body).value("error", "");
      EXPECT_EQ(error.rfind("deltasync: ", 0), 0u) << error;
      EXPECT_NE(error.find(c.needle), std::string::npos) << error;
      EXPECT_NE(error.find("beyond the largest accepted"), std::string::npos) << error;
      EXPECT_EQ(raw.Get("/nodes/n/status").second, status_before) << "the store changed";
    }
  }
  // At the bound the hub takes it, and a site that then deletes the row still converges
  // with the others.
  auto [code, body] =
      raw.Post("/nodes/n/push", deltasync::EncodeJson(OneRow(sa, sa, 5, "edge", deltasync::kMaxCausalLength - 1, Now())));
  ASSERT_EQ(code, 200) << body;
  Site b;
  b.Exec(kSchema);
  Call(b, "deltasync_sync", hub.url("n"));
  ASSERT_EQ(b.Text("SELECT v FROM t WHERE id = 5"), "edge");
  b.Exec("DELETE FROM t WHERE id = 5");
  Call(b, "deltasync_sync", hub.url("n"));
  Call(a, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(a.Text("SELECT count(*) FROM t WHERE id = 5"), "0");
  EXPECT_EQ(a.Rows("SELECT * FROM t ORDER BY id"), b.Rows("SELECT * FROM t ORDER BY id"));
}

// A hostile hub: answers every pull with one page of the given payload.
class FakeHub {
 public:
  explicit FakeHub(std::string page) : page_(std::move(page)) {
    server_.Get(R"(/nodes/([^/]+)/pull)", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Deltasync-More", "false");
      res.set_content(page_, kJson);
    });
    server_.set_keep_alive_max_count(1);  // no idle connection for stop() to wait for
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/nodes/n"; }

 private:
  std::string page_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST(HubBounds, PullOfAPageBeyondTheBoundFailsAndChangesNothing) {
  SiteId hub_id = SiteId::Random(), other = SiteId::Random();
  std::vector<std::pair<std::string, Payload>> pages = {
      {"cl 2^63 - 1", OneRow(hub_id, other, 1, "x", kInt64Max, Now())},
      {"deleted at 2^63 - 2", OneRow(hub_id, other, 2, "", kInt64Max - 1, 0)},
      {"clock past the bound", OneRow(hub_id, other, 1, "x", 1, deltasync::kMaxHlc + 1)},
  };
  for (auto& [what, page] : pages) {
    SCOPED_TRACE(what);
    page.until = 3;
    FakeHub fake(deltasync::EncodeJson(page));
    Site s;
    s.Exec(kSchema);
    s.Exec("INSERT OR REPLACE INTO deltasync_settings VALUES ('max_clock_drift_ms', 9223372036854775807)");
    s.Exec("INSERT INTO t VALUES (2, 'mine')");
    auto rows = s.Rows("SELECT * FROM t ORDER BY id");
    std::string err = CallError(s, "deltasync_pull", fake.url());
    EXPECT_EQ(err.rfind("deltasync: ", 0), 0u) << err;
    EXPECT_NE(err.find("beyond the largest accepted"), std::string::npos) << err;
    EXPECT_EQ(s.Rows("SELECT * FROM t ORDER BY id"), rows);
    Json st = Json::parse(s.Text("SELECT deltasync_status()"));
    for (const Json& h : st["hubs"]) EXPECT_EQ(h["pull_cursor"], 0) << st.dump();
  }
}

// ---------------------------------------------------------------------------------------
// Item 8: echo filtering by the pushing site, not by origin id.

TEST(HubOrigins, AChangeNamingAnotherSiteAsOriginReachesItAndNeverReturnsToItsPusher) {
  HubProcess hub;
  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'by a')");
  Call(a, "deltasync_sync", hub.url("n"));
  Call(b, "deltasync_sync", hub.url("n"));
  ASSERT_EQ(b.Text("SELECT v FROM t WHERE id = 1"), "by a");
  SiteId sa = SiteId::Parse(SiteIdOf(a)), sb = SiteId::Parse(SiteIdOf(b));

  // B pushes, with A's id as the origin, a new row and a newer value of A's row.
  Payload spoof = OneRow(sb, sa, 2, "origin a, pushed by b", 1, Now() + 1000);
  spoof.tables[0].rows.push_back(OneRow(sb, sa, 1, "newer, origin a, pushed by b", 1, Now() + 2000).tables[0].rows[0]);
  auto [code, body] = Raw(hub.port()).Post("/nodes/n/push", deltasync::EncodeJson(spoof));
  ASSERT_EQ(code, 200) << body;
  EXPECT_EQ(Json::parse(body)["applied"], 2) << body;

  // A receives both: the hub does not take them for A's own (by origin it would have).
  Json pa = Call(a, "deltasync_pull", hub.url("n"));
  EXPECT_EQ(pa["applied"], 2) << pa.dump();
  EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 2"), "origin a, pushed by b");
  EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 1"), "newer, origin a, pushed by b");
  // B gets back nothing it pushed (its own database never had these values: a pull that
  // returned them would write them).
  Json pb = Call(b, "deltasync_pull", hub.url("n"));
  EXPECT_EQ(pb["pulled"], 0) << pb.dump();
  EXPECT_EQ(b.Text("SELECT count(*) FROM t WHERE id = 2"), "0");
  EXPECT_EQ(b.Text("SELECT v FROM t WHERE id = 1"), "by a");
  // A third site gets everything.
  Call(c, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(c.Rows("SELECT * FROM t ORDER BY id"), a.Rows("SELECT * FROM t ORDER BY id"));

  // Ordinary writes: each site's own pushes never come back to it, the others get them.
  b.Exec("INSERT INTO t VALUES (3, 'by b')");
  a.Exec("INSERT INTO t VALUES (4, 'by a')");
  Json sb_sync = Call(b, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(sb_sync["pull"]["pulled"], 0) << sb_sync.dump();
  Json sa_sync = Call(a, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(sa_sync["pull"]["pulled"], 1) << sa_sync.dump();  // row 3 only, not its own row 4
  EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 3"), "by b");
  Json sb_again = Call(b, "deltasync_pull", hub.url("n"));
  EXPECT_EQ(sb_again["pulled"], 1) << sb_again.dump();  // row 4 only
  EXPECT_EQ(b.Text("SELECT v FROM t WHERE id = 4"), "by a");
  // And A relays nothing back: what it received from the hub stays out of its pushes.
  EXPECT_EQ(sa_sync["push"]["pushed"], 1) << sa_sync.dump();  // row 4, not the two it received
}

// A hub store that deltasync 0.1 left (schema version 1, no pusher column) keeps working:
// its cells are served to every site (who pushed them is unknown), new pushes are filtered.
TEST(HubOrigins, AStoreOfSchemaVersionOneIsUpgradedInPlace) {
  if (const char* s = std::getenv("DELTASYNC_TEST_HUB_STORE"); s && std::string(s) == "postgresql")
    GTEST_SKIP() << "writes a SQLite hub store by hand";
  std::string path = deltasync::test::UniqueTempPath("hub_v1", ".db");
  SiteId old_site = SiteId::Random(), hub_id = SiteId::Random();
  {
    Site db(path, false);
    db.Exec(
        "CREATE TABLE hub_settings(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "CREATE TABLE hub_nodes(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE hub_sites(ord INTEGER PRIMARY KEY, site_id BLOB NOT NULL UNIQUE);"
        "CREATE TABLE hub_tables(id INTEGER PRIMARY KEY, node INTEGER NOT NULL REFERENCES hub_nodes(id),"
        " name TEXT NOT NULL, pk TEXT NOT NULL, UNIQUE (node, name));"
        "CREATE TABLE hub_rows(node INTEGER NOT NULL, tbl INTEGER NOT NULL, key BLOB NOT NULL,"
        " cl INTEGER NOT NULL, seq INTEGER NOT NULL, writer INTEGER NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID;"
        "CREATE INDEX hub_rows_seq ON hub_rows(node, seq);"
        "CREATE TABLE hub_cells(tbl INTEGER NOT NULL, key BLOB NOT NULL, col TEXT NOT NULL,"
        " value BLOB NOT NULL, hlc INTEGER NOT NULL, site INTEGER NOT NULL, cl INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " PRIMARY KEY (tbl, key, col)) WITHOUT ROWID;"
        "INSERT INTO hub_settings VALUES ('schema_version', 1);"
        "INSERT INTO hub_nodes(id, name, seq) VALUES (1, 'n', 1);"
        "INSERT INTO hub_tables(id, node, name, pk) VALUES (1, 1, 't', '[\"id\"]');");
    std::string value;
    deltasync::EncodeValue(Value::Text("from the old hub"), value);
    std::string key = deltasync::EncodeKey({Value::Integer(9)});
    db.Rows("INSERT INTO hub_settings VALUES ('hub_id', ?1)", {Value::Blob(std::string(hub_id.View()))});
    db.Rows("INSERT INTO hub_sites VALUES (0, ?1)", {Value::Blob(std::string(old_site.View()))});
    db.Rows("INSERT INTO hub_rows VALUES (1, 1, ?1, 1, 1, 0)", {Value::Blob(key)});
    db.Rows("INSERT INTO hub_cells VALUES (1, ?1, 'v', ?2, ?3, 0, 1, 1)",
            {Value::Blob(key), Value::Blob(value), Value::Integer(static_cast<int64_t>(Now()))});
  }
  {
    HubProcess::Options o;
    o.db = path;
    HubProcess hub(o);
    Site a, b;
    for (Site* s : {&a, &b}) s->Exec(kSchema);
    Json r = Call(a, "deltasync_sync", hub.url("n"));
    EXPECT_EQ(r["pull"]["applied"], 1) << r.dump();
    EXPECT_EQ(a.Text("SELECT v FROM t WHERE id = 9"), "from the old hub");
    a.Exec("INSERT INTO t VALUES (10, 'new')");
    Call(a, "deltasync_sync", hub.url("n"));
    Json rb = Call(b, "deltasync_sync", hub.url("n"));
    EXPECT_EQ(rb["pull"]["applied"], 2) << rb.dump();
    EXPECT_EQ(b.Rows("SELECT * FROM t ORDER BY id"), a.Rows("SELECT * FROM t ORDER BY id"));
    Json ra = Call(a, "deltasync_pull", hub.url("n"));
    EXPECT_EQ(ra["pulled"], 0) << ra.dump();
    hub.Stop();
  }
  Site db(path, false);
  EXPECT_EQ(db.Text("SELECT value FROM hub_settings WHERE name = 'schema_version'"), "3");
  // The old store's writer holds the frontier until it is seen again (docs/operations.md).
  EXPECT_EQ(db.Rows("SELECT pulled FROM hub_site_contacts WHERE site = ?1", {Value::Blob(std::string(old_site.View()))}),
            (std::vector<std::vector<Value>>{{Value::Integer(0)}}));
  EXPECT_EQ(db.Text("SELECT count(*) FROM hub_cells WHERE pusher = -1"), "1");  // the old cell
  EXPECT_EQ(db.Text("SELECT count(*) FROM hub_cells WHERE pusher >= 0"), "1");  // row 10, pushed by a
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

// ---------------------------------------------------------------------------------------
// Item 7: site-id flood.

// The rows of hub_sites in a hub's store (a SQLite file, or the PostgreSQL database).
int64_t HubSites(const HubProcess& hub) {
  if (hub.db().rfind("postgresql://", 0) == 0) {
    std::string cmd = "psql -XAtqc 'SELECT count(*) FROM hub_sites' '" + hub.db() + "'";
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) throw std::runtime_error("cannot run psql");
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    pclose(f);
    buf[n] = 0;
    return std::strtoll(buf, nullptr, 10);
  }
  Site db("file:" + hub.db() + "?mode=ro", false);
  return db.Int("SELECT count(*) FROM hub_sites");
}

// One row written by `origin`, pushed by `pusher`, with `unused` more site ids listed that
// no change uses.
Payload Flood(const SiteId& pusher, const SiteId& origin, int64_t id, int unused) {
  Payload p = OneRow(pusher, origin, id, "flood " + std::to_string(id), 1, Now());
  std::vector<SiteId> sites;
  for (int k = 0; k < unused / 2; ++k) sites.push_back(SiteId::Random());
  sites.push_back(origin);  // the used one in the middle of the list
  for (int k = unused / 2; k < unused; ++k) sites.push_back(SiteId::Random());
  p.sites = sites;
  p.tables[0].rows[0].changes[0].site = static_cast<uint32_t>(unused / 2);
  return p;
}

TEST(HubSiteFlood, UnusedSiteIdsAreNeverRegistered) {
  HubProcess::Options o;
  o.db = "";  // a store file this test can count in
  HubProcess hub(o);
  Site a, b;
  for (Site* s : {&a, &b}) s->Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'by a')");
  Call(a, "deltasync_sync", hub.url("n"));
  ASSERT_EQ(HubSites(hub), 1);  // a
  SiteId x = SiteId::Random(), origin = SiteId::Random();
  Raw raw(hub.port());
  for (int push = 0; push < 3; ++push) {
    SCOPED_TRACE("flood push " + std::to_string(push));
    Payload p = Flood(x, origin, 10 + push, 30000);
    bool binary = push == 1;
    auto [code, body] = binary ? raw.Post("/nodes/n/push", deltasync::EncodeBinary(p), "application/vnd.deltasync.payload")
                               : raw.Post("/nodes/n/push", deltasync::EncodeJson(p));
    ASSERT_EQ(code, 200) << body.substr(0, 300);
    EXPECT_EQ(Json::parse(body)["applied"], 1) << body;
    EXPECT_EQ(HubSites(hub), 3) << "a, the pusher x and the one origin a change uses";
  }
  // A push whose only change loses (an older clock): the SQLite store registers neither its
  // origin nor its pusher; the PostgreSQL store registers the two before merging (in their
  // own statements, outside the node's lock), never the 1,000 ids only listed.
  Payload stale = Flood(SiteId::Random(), SiteId::Random(), 10, 1000);
  stale.tables[0].rows[0].changes[0].hlc = deltasync::HlcFromMillis(1);
  auto [code, body] = raw.Post("/nodes/n/push", deltasync::EncodeJson(stale));
  ASSERT_EQ(code, 200) << body;
  EXPECT_EQ(Json::parse(body)["applied"], 0) << body;
  const int64_t sites = hub.db().rfind("postgresql://", 0) == 0 ? 5 : 3;
  EXPECT_EQ(HubSites(hub), sites);
  // The node goes on: the next pushes and pulls carry what they should.
  a.Exec("INSERT INTO t VALUES (2, 'after the flood')");
  Json ra = Call(a, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(ra["push"]["pushed"], 1) << ra.dump();
  EXPECT_EQ(ra["pull"]["pulled"], 3) << ra.dump();  // the three flood rows
  Json rb = Call(b, "deltasync_sync", hub.url("n"));
  EXPECT_EQ(rb["pull"]["pulled"], 5) << rb.dump();
  EXPECT_EQ(b.Rows("SELECT * FROM t ORDER BY id"), a.Rows("SELECT * FROM t ORDER BY id"));
  EXPECT_EQ(HubSites(hub), sites);  // b pushed nothing
}

TEST(HubSiteFlood, APageListingUnusedSiteIdsRegistersNoneOnTheSite) {
  SiteId hub_id = SiteId::Random(), origin = SiteId::Random();
  Payload page = Flood(hub_id, origin, 1, 30000);
  page.until = 1;
  FakeHub fake(deltasync::EncodeJson(page));
  Site s;
  s.Exec(kSchema);
  Json r = Call(s, "deltasync_pull", fake.url());
  EXPECT_EQ(r["applied"], 1) << r.dump();
  EXPECT_EQ(s.Text("SELECT v FROM t WHERE id = 1"), "flood 1");
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_sites"), 2);  // itself and the one origin
}

}  // namespace
