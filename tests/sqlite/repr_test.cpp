// Column representations on SQLite (docs/types.md "Representations"): the enable options,
// their storage and status, the conversion at apply and collect for keys and values, the
// phantom-duplicate scenario of issue 9 item 8, refusals, and a property: sites spelling one
// uuid key and one timestamp column differently (and one spelling them canonically, as
// PostgreSQL sends them) converge on the same rows, one row per key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "common/value_repr.hpp"
#include "sqlite_test_util.hpp"

using deltasync::ReprForm;
using deltasync::Value;
using deltasync::ValueType;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

const char* kDashed = "efbecc1f-dd13-488d-80fa-90d6e48aedea";
const char* kHex = "efbecc1fdd13488d80fa90d6e48aedea";

// Django's shape: UUIDField primary key (char(32)), a NOT NULL field, a DateTimeField.
const char* kCoupon = "CREATE TABLE coupon (id char(32) NOT NULL PRIMARY KEY, code varchar(20) NOT NULL, created datetime);";
const char* kDjangoOptions = R"({"columns": {"id": {"uuid": "hex32"}, "created": {"timestamp": "naive_utc"}}})";

void Enable(Site& s, const std::string& options) {
  s.Text("SELECT deltasync_enable('coupon', ?1)", {Value::Text(options)});
}

// Everything `from` holds, applied to `to`.
void Send(Site& from, Site& to) { to.Apply(from.Changes(0)); }

// The rows of a payload as (key, column, value) lines: what travels, whoever sent it.
std::vector<std::string> PayloadCells(const std::string& payload) {
  std::vector<std::string> out;
  Json p = Json::parse(payload);
  for (const auto& t : p["tables"])
    for (const auto& r : t["rows"]) {
      out.push_back(r["key"].dump() + " cl " + r["cl"].dump());
      for (const auto& c : r["changes"])
        out.push_back(r["key"].dump() + " " + t["columns"][c[0].get<size_t>()].get<std::string>() + " " + c[1].dump());
    }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(Repr, EnableStoresAndShowsTheRepresentation) {
  Site s;
  s.Exec(kCoupon);
  Json r = Json::parse(s.Text("SELECT deltasync_enable('coupon', ?1)", {Value::Text(kDjangoOptions)}));
  Json want = {{"id", {{"uuid", "hex32"}}}, {"created", {{"timestamp", "naive_utc"}}}};
  EXPECT_EQ(r["column_options"], want);
  Json status = Json::parse(s.Text("SELECT deltasync_status()"));
  EXPECT_EQ(status["tables"][0]["column_options"], want);
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_columns"), 2);
  // Enabling again without options (an ORM's connection handler) keeps them; with the same
  // options too.
  s.Exec("SELECT deltasync_enable('coupon')");
  Enable(s, R"({"columns": {"ID": {"uuid": "hex32"}}})");
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["tables"][0]["column_options"], want);
  // Tables without representations show none.
  s.Exec("CREATE TABLE plain (id INTEGER PRIMARY KEY, v TEXT); SELECT deltasync_enable('plain');");
  EXPECT_FALSE(Json::parse(s.Text("SELECT deltasync_status()"))["tables"][1].contains("column_options"));
  // Disable removes them.
  s.Exec("SELECT deltasync_disable('coupon')");
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_columns"), 0);
}

TEST(Repr, BadOptionsAreRefusedAndChangeNothing) {
  Site s;
  s.Exec(kCoupon);
  auto err = [&](const std::string& options) {
    return s.ExecError("SELECT deltasync_enable('coupon', '" + options + "')");
  };
  EXPECT_EQ(err(R"({"columns": {"id": {"uuid": "hex"}}})"),
            "deltasync: unknown uuid representation \"hex\" (known: dashed, hex32, blob)");
  EXPECT_EQ(err(R"({"columns": {"nope": {"uuid": "hex32"}}})"),
            "deltasync: deltasync_enable options name column \"nope\", which table \"coupon\" does not have");
  EXPECT_NE(err(R"({"columns": {"id": "hex32"}})").find("unknown policy \"hex32\" for column \"id\""), std::string::npos);
  EXPECT_NE(err(R"({"columns": {"id": {"uuid": "hex32", "timestamp": "naive_utc"}}})").find("one representation"),
            std::string::npos);
  EXPECT_NE(err(R"({"columns": []})").find("option columns must be an object"), std::string::npos);
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_tables"), 0);
  // A table that already holds a value in another spelling is refused before anything is tracked.
  s.Exec(std::string("INSERT INTO coupon VALUES ('") + kHex + "', 'A', NULL), ('" + kDashed + "', 'B', NULL)");
  EXPECT_NE(err(kDjangoOptions).find("deltasync: column \"id\" of table \"coupon\" is declared {\"uuid\":\"hex32\"} (32 "
                                     "lowercase hex digits) but holds 'efbecc1f-dd13-488d-80fa-90d6e48aedea'"),
            std::string::npos);
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_tables"), 0);
  EXPECT_EQ(s.Int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'coupon__deltasync%'"), 0);
}

TEST(Repr, ChangingARepresentationIsRefusedOnceRowsAreTracked) {
  Site s;
  s.Exec(kCoupon);
  Enable(s, R"({"columns": {"id": {"uuid": "hex32"}}})");
  // Nothing stored yet: a change is safe.
  Enable(s, R"({"columns": {"id": {"uuid": "blob"}}})");
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["tables"][0]["column_options"]["id"]["uuid"], "blob");
  s.Exec("INSERT INTO coupon VALUES (randomblob(16), 'A', NULL)");
  std::string e = s.ExecError(R"(SELECT deltasync_enable('coupon', '{"columns": {"id": {"uuid": "hex32"}}}'))");
  EXPECT_NE(e.find("deltasync: column \"id\" of table \"coupon\" is represented as {\"uuid\":\"blob\"}; changing it to "
                   "{\"uuid\":\"hex32\"} would leave the 1 rows"),
            std::string::npos)
      << e;
  // Adding one to a column that had none changes how tracked rows travel: refused as well.
  e = s.ExecError(R"(SELECT deltasync_enable('coupon', '{"columns": {"created": {"timestamp": "naive_utc"}}}'))");
  EXPECT_NE(e.find("is represented as {}; changing it to {\"timestamp\":\"naive_utc\"}"), std::string::npos) << e;
  EXPECT_EQ(Json::parse(s.Text("SELECT deltasync_status()"))["tables"][0]["column_options"],
            (Json{{"id", {{"uuid", "blob"}}}}));
}

// Keys and values travel in canonical form and are stored in the local one, both ways.
TEST(Repr, ApplyAndCollectConvertKeysAndValues) {
  Site django, canonical;
  django.Exec(kCoupon);
  Enable(django, kDjangoOptions);
  canonical.Exec("CREATE TABLE coupon (id TEXT NOT NULL PRIMARY KEY, code TEXT NOT NULL, created TEXT);"
                 "SELECT deltasync_enable('coupon');");
  django.Exec(std::string("INSERT INTO coupon VALUES ('") + kHex + "', 'A', '2026-12-01 21:39:57.500000')");
  Send(django, canonical);
  auto rows = canonical.Rows("SELECT id, code, created FROM coupon");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], Value::Text(kDashed));
  EXPECT_EQ(rows[0][2], Value::Text("2026-12-01 21:39:57.5+00"));
  canonical.Exec("INSERT INTO coupon VALUES ('0a0eebc9-9c0b-4ef8-bb6d-6bb9bd380a11', 'B', '2026-12-01 21:39:58+00')");
  Send(canonical, django);
  rows = django.Rows("SELECT id, code, created FROM coupon ORDER BY code");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1][0], Value::Text("0a0eebc99c0b4ef8bb6d6bb9bd380a11"));
  EXPECT_EQ(rows[1][2], Value::Text("2026-12-01 21:39:58"));
  // What the ORM queries finds it; the shadow table keys it in the local spelling too.
  EXPECT_EQ(django.Text("SELECT code FROM coupon WHERE id = '0a0eebc99c0b4ef8bb6d6bb9bd380a11' AND created = "
                        "'2026-12-01 21:39:58'"),
            "B");
  EXPECT_EQ(django.Int("SELECT count(*) FROM coupon__deltasync_meta WHERE k0 IN ('0a0eebc99c0b4ef8bb6d6bb9bd380a11', '" +
                       std::string(kHex) + "')"),
            2);
  // Both sites serve identical payload cells.
  EXPECT_EQ(PayloadCells(django.Changes(0)), PayloadCells(canonical.Changes(0)));
}

// Issue 9 item 8: a row created on one engine, updated and deleted on the other, stays one row.
TEST(Repr, TheSameKeyFromBothSidesIsOneRow) {
  Site django, canonical;
  django.Exec(kCoupon);
  Enable(django, kDjangoOptions);
  canonical.Exec("CREATE TABLE coupon (id TEXT NOT NULL PRIMARY KEY, code TEXT NOT NULL, created TEXT);"
                 "SELECT deltasync_enable('coupon');");
  django.Exec(std::string("INSERT INTO coupon VALUES ('") + kHex + "', 'A', '2026-12-01 21:39:57.064847')");
  Send(django, canonical);
  // The canonical site (as PostgreSQL does) updates the row under its dashed key.
  canonical.Exec(std::string("UPDATE coupon SET code = 'A2' WHERE id = '") + kDashed + "'");
  Send(canonical, django);
  auto rows = django.Rows("SELECT id, code FROM coupon");
  ASSERT_EQ(rows.size(), 1u) << "a phantom row under the dashed key";
  EXPECT_EQ(rows[0][0], Value::Text(kHex));
  EXPECT_EQ(rows[0][1], Value::Text("A2"));
  // The ORM updates it by its own key; the canonical site gets it as one row.
  django.Exec(std::string("UPDATE coupon SET code = 'A3' WHERE id = '") + kHex + "'");
  Send(django, canonical);
  EXPECT_EQ(canonical.Int("SELECT count(*) FROM coupon"), 1);
  EXPECT_EQ(canonical.Text("SELECT code FROM coupon"), "A3");
  // Deleting it on either side deletes the one row everywhere.
  canonical.Exec("DELETE FROM coupon");
  Send(canonical, django);
  EXPECT_EQ(django.Int("SELECT count(*) FROM coupon"), 0);
  EXPECT_EQ(django.Int("SELECT count(*) FROM coupon__deltasync_meta"), 1);
  EXPECT_EQ(django.Int("SELECT cl FROM coupon__deltasync_meta"), 2);
}

TEST(Repr, OtherSpellingsAreRefusedWithNothingChanged) {
  Site django, plain;
  django.Exec(kCoupon);
  Enable(django, kDjangoOptions);
  // A site that does not declare the column sends Django's 32 hex digits as they are.
  plain.Exec(kCoupon);
  plain.Exec("SELECT deltasync_enable('coupon')");
  plain.Exec(std::string("INSERT INTO coupon VALUES ('") + kHex + "', 'A', NULL)");
  std::string payload = plain.Changes(0);
  int64_t before = django.Int("SELECT deltasync_db_version()");
  std::string e = django.ExecError("SELECT deltasync_apply('" + payload + "')");
  EXPECT_NE(e.find("deltasync: cannot apply a change to column \"id\" of table \"coupon\": '" + std::string(kHex) +
                   "' is a uuid but not in the canonical form"),
            std::string::npos)
      << e;
  EXPECT_EQ(django.Int("SELECT count(*) FROM coupon"), 0);
  EXPECT_EQ(django.Int("SELECT count(*) FROM coupon__deltasync_meta"), 0);
  EXPECT_EQ(django.Int("SELECT deltasync_db_version()"), before);
  // A timestamp without a zone (PostgreSQL `timestamp`) into a naive_utc column: refused.
  plain.Exec(std::string("UPDATE coupon SET id = '") + kDashed + "', created = '2026-12-01 21:39:57'");
  e = django.ExecError("SELECT deltasync_apply('" + plain.Changes(0) + "')");
  EXPECT_NE(e.find("cannot apply a change to column \"created\" of table \"coupon\""), std::string::npos) << e;
  // Locally, a uuid in another spelling is refused when it would be sent, naming it; status still answers.
  django.Exec(std::string("INSERT INTO coupon VALUES ('") + kDashed + "', 'B', NULL)");
  e = django.ExecError("SELECT deltasync_changes(0)");
  EXPECT_NE(e.find("deltasync: column \"id\" of table \"coupon\" is declared {\"uuid\":\"hex32\"}"), std::string::npos)
      << e;
  EXPECT_EQ(Json::parse(django.Text("SELECT deltasync_status()"))["tables"][0]["rows"], 1);
  // Values that are no uuid at all travel as they are; the delete of the misspelled key
  // (never sent anywhere) is not sent either.
  django.Exec("UPDATE coupon SET id = 'not-a-uuid'");
  std::string changes = django.Changes(0);
  EXPECT_NE(changes.find("\"not-a-uuid\""), std::string::npos);
  EXPECT_EQ(changes.find(kDashed), std::string::npos) << changes;
}

// Keys and timestamps survive representation-aware schema follow: a table rebuilt the
// ORM way keeps its representations.
TEST(Repr, RepresentationsFollowARebuiltTable) {
  Site s;
  s.Exec(kCoupon);
  Enable(s, kDjangoOptions);
  s.Exec(std::string("INSERT INTO coupon VALUES ('") + kHex + "', 'A', '2026-12-01 21:39:57')");
  s.Exec("CREATE TABLE new__coupon (id char(32) NOT NULL PRIMARY KEY, note TEXT, code varchar(20) NOT NULL,"
         " created datetime);"
         "INSERT INTO new__coupon (id, code, created) SELECT id, code, created FROM coupon;"
         "DROP TABLE coupon; ALTER TABLE new__coupon RENAME TO coupon;");
  Json status = Json::parse(s.Text("SELECT deltasync_status()"));
  EXPECT_EQ(status["tables"][0]["column_options"],
            (Json{{"id", {{"uuid", "hex32"}}}, {"created", {{"timestamp", "naive_utc"}}}}))
      << status.dump();
  EXPECT_NE(s.Changes(0).find("\"2026-12-01 21:39:57+00\""), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// Property: three sites declare one table with a uuid key and a timestamp column, spelled
// 32 hex + naive UTC, 16-byte blob + ISO milliseconds, and canonically (no representation,
// as the values arrive from PostgreSQL). Random writes of a few shared keys, each in the
// site's own spelling, random exchanges, then a full one: every site holds the same rows
// in canonical form, one row per key.

namespace {

struct Spelling {
  const char* ddl;
  const char* options;
  ReprForm id, at;
};

const Spelling kSpellings[] = {
    {"CREATE TABLE ev (id char(32) PRIMARY KEY, at datetime, n INTEGER);",
     R"({"columns": {"id": {"uuid": "hex32"}, "at": {"timestamp": "naive_utc"}}})", ReprForm::kUuidHex32,
     ReprForm::kTimestampNaiveUtc},
    {"CREATE TABLE ev (id BLOB PRIMARY KEY, at TEXT, n INTEGER);",
     R"({"columns": {"id": {"uuid": "blob"}, "at": {"timestamp": "iso_utc_ms"}}})", ReprForm::kUuidBlob,
     ReprForm::kTimestampIsoUtcMs},
    {"CREATE TABLE ev (id TEXT PRIMARY KEY, at TEXT, n INTEGER);", "{}", ReprForm::kNone, ReprForm::kNone},
};

// `canonical` in form `f` (unchanged for kNone or a value not of the type).
Value Spell(ReprForm f, const Value& canonical) {
  Value out;
  return deltasync::WireToLocal(f, canonical, out) == deltasync::ReprOutcome::kConverted ? out : canonical;
}
Value Canon(ReprForm f, const Value& local) {
  Value out;
  return deltasync::LocalToWire(f, local, out) == deltasync::ReprOutcome::kConverted ? out : local;
}

class ReprWorld {
 public:
  explicit ReprWorld(uint64_t seed) : rng_(seed) {
    for (const Spelling& sp : kSpellings) {
      sites_.push_back(std::make_unique<Site>());
      sites_.back()->Exec(sp.ddl);
      sites_.back()->Text("SELECT deltasync_enable('ev', ?1)", {Value::Text(sp.options)});
    }
  }

  void Step() {
    size_t k = Pick(3);
    if (Pick(100) < 35) {
      size_t to = Pick(3);
      if (to != k) Send(*sites_[k], *sites_[to]);
      return;
    }
    const Spelling& sp = kSpellings[k];
    Value id = Spell(sp.id, Value::Text(kKeys[Pick(4)]));
    Value at = Spell(sp.at, Value::Text(Timestamp()));
    int op = static_cast<int>(Pick(10));
    if (op < 5)
      sites_[k]->Rows("INSERT INTO ev VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET at = excluded.at, n = excluded.n",
                      {id, at, Value::Integer(static_cast<int64_t>(Pick(1000)))});
    else if (op < 8)
      sites_[k]->Rows("UPDATE ev SET n = n + 1 WHERE id = ?1", {id});
    else
      sites_[k]->Rows("DELETE FROM ev WHERE id = ?1", {id});
  }

  void SyncAll() {
    for (int round = 0; round < 2; ++round)
      for (size_t a = 0; a < 3; ++a)
        for (size_t b = 0; b < 3; ++b)
          if (a != b) Send(*sites_[a], *sites_[b]);
  }

  // Site k's rows in canonical form, by canonical key.
  std::map<std::string, std::string> Canonical(size_t k) {
    std::map<std::string, std::string> out;
    for (auto& r : sites_[k]->Rows("SELECT id, at, n FROM ev")) {
      std::string key = DebugString(Canon(kSpellings[k].id, r[0]));
      EXPECT_EQ(out.count(key), 0u) << "two rows for key " << key;
      out[key] = DebugString(Canon(kSpellings[k].at, r[1])) + " " + DebugString(r[2]);
    }
    return out;
  }

  std::vector<std::string> Payload(size_t k) { return PayloadCells(sites_[k]->Changes(0)); }

 private:
  static constexpr const char* kKeys[] = {"efbecc1f-dd13-488d-80fa-90d6e48aedea", "0a0eebc9-9c0b-4ef8-bb6d-6bb9bd380a11",
                                          "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"};

  // A canonical timestamptz with millisecond precision (every form above holds it).
  std::string Timestamp() {
    static const char* kTimes[] = {"2026-12-01 21:39:57+00", "2026-12-01 21:39:57.5+00", "2024-02-29 23:59:59.999+00",
                                   "1970-01-01 00:00:00.001+00", "2026-12-01 21:39:57.12+00"};
    return kTimes[Pick(5)];
  }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Site>> sites_;
};

}  // namespace

TEST(ReprProperty, SitesSpellingKeysDifferentlyConverge) {
  const char* env = std::getenv("DELTASYNC_PROPERTY_CASES");
  int cases = env && *env ? std::atoi(env) / 4 : 50;
  for (int c = 0; c < std::max(cases, 5); ++c) {
    uint64_t seed = 9000 + static_cast<uint64_t>(c);
    ReprWorld w(seed);
    for (int s = 0; s < 40; ++s) w.Step();
    w.SyncAll();
    auto want = w.Canonical(2);
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(w.Canonical(k), want) << "seed " << seed << " site " << k;
      EXPECT_EQ(w.Payload(k), w.Payload(2)) << "seed " << seed << " site " << k;
    }
    if (::testing::Test::HasFailure()) return;
  }
}
