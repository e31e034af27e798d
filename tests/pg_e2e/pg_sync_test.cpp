// PostgreSQL sites in C++ tests, run under pg_virtualenv (a throwaway cluster) beside real
// hubs (`deltasync serve` on 127.0.0.1) and real SQLite sites (the real deltasync.so):
// - PgApi: both engines register the same SQL API.
// - PgConcurrency (label pg): concurrent writers committing out of order while a reader
//   and a pusher run all along; nothing is skipped; the version counter is never read ahead
//   of the blocks taken.
// - MixedTypes / MixedConvergence (label e2e): every SPEC section 4 type from PostgreSQL
//   through SQLite and back, and a uuid key and timestamptz with SQLite representations;
//   random operations on two SQLite and two PostgreSQL sites, one of which holds t
//   partitioned (writes naming partitions, rows moving between them, TRUNCATE), and all of
//   which write ev, a uuid-keyed table each SQLite site spells its own way.
//
// DELTASYNC_E2E_CASES (default 4) sets the number of mixed property cases and
// DELTASYNC_PROPERTY_SEED the first seed; a failure prints the seed that reproduces it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "common/value_repr.hpp"
#include "e2e/hub_process.hpp"
#include "pg_e2e/pg_site.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::ValueType;
using deltasync::test::HubProcess;
using deltasync::test::PgConn;
using deltasync::test::PgSite;
using deltasync::test::Site;
using Json = nlohmann::json;

namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

const Json kOpts = {{"timeout_ms", 60000}, {"connect_timeout_ms", 10000}};

Json PgCall(PgConn& c, const std::string& fn, const std::string& url, Json opts = kOpts) {
  return Json::parse(c.Text("SELECT " + fn + "($1, $2::jsonb)::text", {url, opts.dump()}));
}
Json SqliteCall(Site& s, const std::string& fn, const std::string& url, Json opts = kOpts) {
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(opts.dump())}));
}

std::string Hex(std::string_view bytes) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += k[c >> 4];
    out += k[c & 15];
  }
  return out;
}

std::string RealBits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(bits));
  return buf;
}

}  // namespace

// The public SQL API is the same set of names on both engines.
TEST(PgApi, BothEnginesRegisterTheSameFunctions) {
  PgSite pg;
  std::set<std::string> pg_names, sqlite_names;
  for (auto& r : pg->Rows("SELECT DISTINCT proname FROM pg_proc WHERE proname LIKE 'deltasync%' AND pronamespace = 'public'::regnamespace"))
    pg_names.insert(r[0]);
  Site s;
  for (auto& r : s.Rows("SELECT DISTINCT name FROM pragma_function_list WHERE name LIKE 'deltasync%' AND name NOT LIKE 'deltasync\\_\\_%' ESCAPE '\\'"))
    sqlite_names.insert(r[0].s);
  EXPECT_EQ(pg_names.size(), 18u);  // SPEC section 5, deltasync_id, deltasync_forget, deltasync_quarantine
  EXPECT_EQ(pg_names, sqlite_names);
}

// Writers take versions early and commit late, out of order, some roll back; a reader
// pages through deltasync_changes(since) and a pusher pushes to a hub all along. At the end
// the reader saw exactly the committed rows and a SQLite site pulling from the hub holds
// them all.
TEST(PgConcurrency, OutOfOrderCommitsAreNeverSkipped) {
  PgSite pg;
  HubProcess hub;
  std::string url = hub.url("concurrency");
  pg->Exec("CREATE TABLE c (id bigint PRIMARY KEY, writer int, v text); SELECT deltasync_enable('c');");
  const int kWriters = 4, kTxns = 30;
  std::atomic<int> running{kWriters};
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!failed.exchange(true)) first_error = what;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      try {
        PgConn conn(pg.name());
        std::mt19937 rng(static_cast<unsigned>(w * 7919 + 1));
        int64_t next = int64_t{w} * 1000000;
        for (int t = 0; t < kTxns && !failed; ++t) {
          conn.Exec("BEGIN");
          int n = 1 + static_cast<int>(rng() % 4);
          for (int k = 0; k < n; ++k) {
            conn.Exec("INSERT INTO c VALUES (" + std::to_string(next++) + ", " + std::to_string(w) + ", 'v')");
            if (k == 0 && t > 0) conn.Exec("UPDATE c SET v = 'u" + std::to_string(t) + "' WHERE id = " + std::to_string(next - 2));
            conn.Exec("SELECT pg_sleep(" + std::to_string((rng() % 40) / 1000.0) + ")");
          }
          conn.Exec(rng() % 6 == 0 ? "ROLLBACK" : "COMMIT");
        }
      } catch (const std::exception& e) {
        fail(std::string("writer: ") + e.what());
      }
      --running;
    });
  }
  std::set<int64_t> seen;
  int64_t last_until = 0;
  std::thread reader([&] {
    try {
      PgConn conn(pg.name());
      int64_t since = 0;
      for (bool last = false; !failed;) {
        last = running == 0;
        Json p = Json::parse(conn.Text("SELECT deltasync_changes($1::bigint)", {std::to_string(since)}));
        for (const auto& t : p["tables"])
          for (const auto& r : t["rows"])
            if (r["cl"].get<int64_t>() % 2 == 1) seen.insert(r["key"][0].get<int64_t>());
        int64_t until = p["until"].get<int64_t>();
        if (until < since) fail("until went backwards");
        since = until;
        last_until = until;
        if (last) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    } catch (const std::exception& e) {
      fail(std::string("reader: ") + e.what());
    }
  });
  std::thread pusher([&] {
    try {
      PgConn conn(pg.name());
      for (bool last = false; !failed;) {
        last = running == 0;
        PgCall(conn, "deltasync_push", url, {{"batch_rows", 7}, {"timeout_ms", 60000}});
        if (last) break;
      }
    } catch (const std::exception& e) {
      fail(std::string("pusher: ") + e.what());
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  pusher.join();
  ASSERT_FALSE(failed) << first_error;
  std::set<int64_t> committed;
  for (auto& r : pg->Rows("SELECT id FROM c")) committed.insert(std::stoll(r[0]));
  ASSERT_GT(committed.size(), 100u);
  EXPECT_EQ(seen, committed) << "the reader missed or invented rows";
  EXPECT_EQ(last_until, std::stoll(pg->Text("SELECT deltasync_db_version()")));

  Site s;
  s.Exec("CREATE TABLE c (id INTEGER PRIMARY KEY, writer INTEGER, v TEXT); SELECT deltasync_enable('c');");
  SqliteCall(s, "deltasync_pull", url);
  std::set<int64_t> pulled;
  for (auto& r : s.Rows("SELECT id FROM c")) pulled.insert(r[0].i);
  EXPECT_EQ(pulled, committed) << "the pusher skipped rows";
  // And every value, too: the UPDATEs that raced with other writers arrived.
  std::map<int64_t, std::string> pg_v, s_v;
  for (auto& r : pg->Rows("SELECT id, v FROM c")) pg_v[std::stoll(r[0])] = r[1];
  for (auto& r : s.Rows("SELECT id, v FROM c")) s_v[r[0].i] = r[1].s;
  EXPECT_EQ(pg_v, s_v);
}

// The counter is read under the sequence's lock: nextval writes a value 32 blocks ahead into
// the sequence's tuple while it WAL-logs, and a plain SELECT from the sequence can read it.
// With blocks taken as fast as possible next to it (one nextval in 33 logs), neither the
// horizon (deltasync_db_version(), which a push stores as its cursor) may ever go back, nor
// may a writer's lock announce a counter at or above a version it then takes: either would
// let a push's cursor pass a running writer's changes, which no later push sends.
TEST(PgConcurrency, CounterReadsNeverRunAhead) {
  PgSite pg;
  pg->Exec("CREATE TABLE w (id bigint PRIMARY KEY, note text NOT NULL); INSERT INTO w VALUES (1, 'n');"
           " SELECT deltasync_enable('w');");
  const std::string meta = "deltasync.meta_" + pg->Text("SELECT id FROM deltasync.tables WHERE name = 'w'");
  std::atomic<bool> done{false};
  std::string taker_error;
  std::thread taker([&] {
    try {
      PgConn conn(pg.name());
      while (!done)
        conn.Exec("DO $$ BEGIN FOR i IN 1..20000 LOOP PERFORM nextval('deltasync.db_version'); END LOOP; END $$");
    } catch (const std::exception& e) {
      taker_error = e.what();
    }
  });
  int64_t went_back = -1, ahead = -1;
  std::string reader_error;
  try {
    PgConn conn(pg.name());
    went_back = std::stoll(conn.Text(
        "SELECT count(*) FILTER (WHERE v < p) FROM (SELECT v, lag(v) OVER (ORDER BY i) AS p FROM"
        " (SELECT i, deltasync_db_version() AS v FROM generate_series(1, 200000) AS i) AS x) AS y"));
    conn.Exec("CREATE TABLE ahead (n int NOT NULL)");
    conn.Exec("DO $$ DECLARE tag int8; ver int8; n int := 0; BEGIN FOR i IN 1..10000 LOOP"
              " UPDATE w SET note = i::text WHERE id = 1;"
              " SELECT (l.classid::int8 << 32) | l.objid::int8 INTO tag FROM pg_locks AS l"
              " WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.objsubid = 17491;"
              " SELECT m.ver INTO ver FROM " + meta + " AS m WHERE m.k0 = 1;"
              " IF tag IS NULL OR tag >= ver THEN n := n + 1; END IF; COMMIT; END LOOP;"
              " INSERT INTO ahead VALUES (n); END $$");
    ahead = std::stoll(conn.Text("SELECT n FROM ahead"));
  } catch (const std::exception& e) {
    reader_error = e.what();
  }
  done = true;
  taker.join();
  ASSERT_EQ(taker_error, "");
  ASSERT_EQ(reader_error, "");
  EXPECT_EQ(went_back, 0) << "deltasync_db_version() reported versions nobody had taken yet";
  EXPECT_EQ(ahead, 0) << "a writer's lock announced a counter at or above its own versions";
}

// A row whose newest version is above a push's horizon still carries older cells at or
// below it, which that push's cursor passes: they must travel now. Deterministic form of the
// race (an UPDATE committing between the horizon and the read): a push inside the
// transaction that updates a row whose INSERT was not pushed yet — its horizon stops below
// the update, the row's newest version is the update's. The update's own cells must not
// travel (the transaction could still roll back: the hub holds the row without them until
// the next push); a push rolled back with its transaction moves nothing.
TEST(PgConcurrency, APushSendsARowsOlderCellsWhenItsNewestIsBeyondTheHorizon) {
  PgSite pg;
  HubProcess hub;
  std::string url = hub.url("horizon");
  pg->Exec("CREATE TABLE h (id bigint PRIMARY KEY, a text NOT NULL, b text NOT NULL, c int NOT NULL);"
           " SELECT deltasync_enable('h');"
           " INSERT INTO h VALUES (1, 'a1', 'b1', 1), (2, 'a2', 'b2', 2)");
  pg->Exec("BEGIN; UPDATE h SET a = 'A1' WHERE id = 1; DELETE FROM h WHERE id = 2;");
  PgCall(*pg, "deltasync_push", url);
  pg->Exec("COMMIT");
  // Rolled back with its push: the update never existed and the cursor did not move, so the
  // next push sends the whole row.
  pg->Exec("INSERT INTO h VALUES (3, 'a3', 'b3', 3)");
  pg->Exec("BEGIN; UPDATE h SET b = 'never' WHERE id = 3;");
  PgCall(*pg, "deltasync_push", url);
  pg->Exec("ROLLBACK");
  auto rows = [](Site& s) {
    std::vector<std::string> out;
    for (auto& x : s.Rows("SELECT id, a, b, c FROM h ORDER BY id"))
      out.push_back(std::to_string(x[0].i) + "|" + x[1].s + "|" + x[2].s + "|" + std::to_string(x[3].i));
    return out;
  };
  PgCall(*pg, "deltasync_push", url);
  Site s;
  s.Exec("CREATE TABLE h (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, c INTEGER NOT NULL);"
         " SELECT deltasync_enable('h');");
  Json r = SqliteCall(s, "deltasync_pull", url);
  EXPECT_EQ(r.value("quarantined", 0), 0) << r.dump();
  EXPECT_EQ(rows(s), (std::vector<std::string>{"1|A1|b1|1", "3|a3|b3|3"}));
}

// Writers upserting (INSERT … ON CONFLICT DO UPDATE) and updating at full speed beside a
// pusher that never sleeps: every committed value reaches the hub.
TEST(PgConcurrency, UpsertsAndUpdatesAtFullSpeedAreAllPushed) {
  PgSite pg;
  HubProcess hub;
  std::string url = hub.url("upserts");
  pg->Exec("CREATE TABLE u (id bigint PRIMARY KEY, a text NOT NULL, b int NOT NULL, c text NOT NULL);"
           " SELECT deltasync_enable('u');");
  const int kWriters = 2;
  std::atomic<int> running{kWriters};
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!failed.exchange(true)) first_error = what;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      try {
        PgConn conn(pg.name());
        std::mt19937 rng(static_cast<unsigned>(w * 104729 + 3));
        for (int i = 0; i < 1500 && !failed; ++i) {
          std::string id = std::to_string(rng() % 300), n = std::to_string(i);
          if (rng() % 2)
            conn.Exec("INSERT INTO u SELECT " + id + ", 'a" + n + "', " + n + ", 'c" + n +
                      "' ON CONFLICT (id) DO UPDATE SET b = excluded.b");
          else
            conn.Exec("UPDATE u SET " + std::string(rng() % 2 ? "a = 'x" : "c = 'y") + n + "' WHERE id = " + id);
        }
      } catch (const std::exception& e) {
        fail(std::string("writer: ") + e.what());
      }
      --running;
    });
  std::thread pusher([&] {
    try {
      PgConn conn(pg.name());
      for (bool last = false; !failed;) {
        last = running == 0;
        PgCall(conn, "deltasync_push", url);
        if (last) break;
      }
    } catch (const std::exception& e) {
      fail(std::string("pusher: ") + e.what());
    }
  });
  for (auto& t : threads) t.join();
  pusher.join();
  ASSERT_FALSE(failed) << first_error;
  Site s;
  s.Exec("CREATE TABLE u (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL, c TEXT NOT NULL);"
         " SELECT deltasync_enable('u');");
  Json r = SqliteCall(s, "deltasync_pull", url);
  EXPECT_EQ(r.value("quarantined", 0), 0) << r.dump();
  std::vector<std::string> want, got;
  for (auto& x : pg->Rows("SELECT id, a, b, c FROM u ORDER BY id")) want.push_back(x[0] + "|" + x[1] + "|" + x[2] + "|" + x[3]);
  for (auto& x : s.Rows("SELECT id, a, b, c FROM u ORDER BY id"))
    got.push_back(std::to_string(x[0].i) + "|" + x[1].s + "|" + std::to_string(x[2].i) + "|" + x[3].s);
  ASSERT_GT(want.size(), 100u);
  EXPECT_EQ(got, want) << "the pusher skipped cells";
}

// ---------------------------------------------------------------------------------------

namespace {

// The SPEC section 4 matrix: (column, type, values of rows 1..3 as SQL literals).
const char* kTypesDdl =
    "CREATE TABLE tm (id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool, n numeric,"
    " n2 numeric(12, 4), t text, vc varchar(20), c char(5), by bytea, u uuid, d date, tm time, ttz timetz,"
    " ts timestamp, tsz timestamptz, iv interval, j json, jb jsonb, ai int[], at text[], e mood)";
const char* kTypesRows =
    "SET TimeZone = 'Asia/Kolkata';"
    "INSERT INTO tm VALUES"
    " (1, 32767, -2147483648, 9223372036854775807, '-0', 'Infinity', true, 123456789012345678901234567890.123456789000,"
    "  1.5, 'unicode: żółć 漢字 🙂 \"q\" \\b', 'varchar', 'ab', '\\x00ff00'::bytea, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',"
    "  '2024-02-29', '23:59:59.999999', '12:00+05:30', '1999-12-31 23:59:59.5', '2024-06-01 12:00:00+02',"
    "  '1 year 2 mons -3 days 04:05:06.7', '{\"b\": 1,  \"a\": [1, 2]}', '{\"b\": 1,  \"a\": [1, 2]}', '{1,NULL,3}',"
    "  '{\"x,y\",\"z\"}', 'happy'),"
    " (2, -32768, 0, -9223372036854775808, '-Infinity', '-0', false, 0.000, -0.0001, '', '', '', ''::bytea, NULL,"
    "  'infinity', '00:00', '00:00+00', '-infinity', 'infinity', '0', 'null', '[]', '{}', '{}', 'sad'),"
    " (3, NULL, NULL, NULL, 3.4028235e38, 1e308, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, '1970-01-01 00:00:00+14', '-178000000 years', NULL, NULL, NULL, NULL, NULL),"
    " (4, 1, 1, 1, 'NaN', 'NaN', true, 1, 1, 'x', 'x', 'x', '\\x00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL);"
    "RESET TimeZone;";

std::vector<std::string> RowsAsText(PgConn& c) {
  c.Exec("SET TimeZone = 'UTC'; SET extra_float_digits = 3");
  std::vector<std::string> out;
  for (auto& r : c.Rows("SELECT t::text FROM tm AS t ORDER BY id")) out.push_back(r[0]);
  return out;
}

}  // namespace

// PostgreSQL -> hub -> SQLite -> hub -> PostgreSQL: every value comes back equal under its
// column's type, except float NaN, which SQLite stores as NULL (docs/types.md).
TEST(MixedTypes, EveryTypeThroughSqliteAndBack) {
  HubProcess hub;
  PgSite a, b;
  for (PgSite* s : {&a, &b}) {
    (*s)->Exec("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    (*s)->Exec(kTypesDdl);
    (*s)->Exec("SELECT deltasync_enable('tm')");
  }
  a->Exec(kTypesRows);
  Site s;
  s.Exec("CREATE TABLE tm (id INTEGER PRIMARY KEY, i2, i4, i8, f4, f8, b, n, n2, t, vc, c, by, u, d, tm, ttz, ts, tsz,"
         " iv, j, jb, ai, at, e); SELECT deltasync_enable('tm');");
  PgCall(*a, "deltasync_push", hub.url("types_in"));
  SqliteCall(s, "deltasync_pull", hub.url("types_in"));
  // On SQLite, each value in its SPEC section 4 class.
  auto row1 = s.Rows("SELECT i2, f8, b, by, tsz, n, typeof(u), f4 FROM tm WHERE id = 1");
  ASSERT_EQ(row1.size(), 1u);
  EXPECT_EQ(row1[0][0].type, ValueType::kInteger);
  EXPECT_EQ(row1[0][0].i, 32767);
  EXPECT_EQ(row1[0][1].type, ValueType::kReal);
  EXPECT_TRUE(std::isinf(row1[0][1].r));
  EXPECT_EQ(row1[0][2].i, 1);  // bool as integer 1
  EXPECT_EQ(row1[0][3].type, ValueType::kBlob);
  EXPECT_EQ(row1[0][3].s, std::string("\0\xff\0", 3));
  EXPECT_EQ(row1[0][4].s, "2024-06-01 10:00:00+00");  // timestamptz in UTC
  EXPECT_EQ(row1[0][5].s, "123456789012345678901234567890.123456789000");  // numeric keeps its digits
  EXPECT_EQ(row1[0][6].s, "text");
  EXPECT_EQ(row1[0][7].type, ValueType::kReal);
  EXPECT_TRUE(std::signbit(row1[0][7].r));  // -0.0 travels bit-exact
  EXPECT_EQ(s.Rows("SELECT f4 FROM tm WHERE id = 4")[0][0].type, ValueType::kNull);  // SQLite stores NaN as NULL

  SqliteCall(s, "deltasync_push", hub.url("types_out"));
  PgCall(*b, "deltasync_pull", hub.url("types_out"));
  std::vector<std::string> want = RowsAsText(*a), got = RowsAsText(*b);
  ASSERT_EQ(want.size(), 4u);
  ASSERT_EQ(got.size(), 4u);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(got[k], want[k]) << "row " << k + 1;
  // Row 4: NaN came back as NULL (both float columns), everything else equal.
  EXPECT_EQ(b->Text("SELECT (f4 IS NULL AND f8 IS NULL)::text FROM tm WHERE id = 4"), "true");
  EXPECT_EQ(b->Text("SELECT (ROW(i2, i4, i8, b, n, t, by) IS NOT DISTINCT FROM (SELECT ROW(1::int2, 1, 1::int8, true, 1::numeric, 'x'::text, '\\x00'::bytea)))::text FROM tm WHERE id = 4"), "true");
  // And a value that does not fit its column on the way back is refused whole.
  s.Exec("UPDATE tm SET i2 = 70000, t = 'changed' WHERE id = 1");
  SqliteCall(s, "deltasync_push", hub.url("types_out"));
  std::string err;
  try {
    PgCall(*b, "deltasync_pull", hub.url("types_out"));
  } catch (const std::runtime_error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("deltasync: cannot apply a change to column \"i2\" of table \"tm\""), std::string::npos) << err;
  EXPECT_EQ(RowsAsText(*b)[0], want[0]) << "nothing of the refused page was applied";
}

// A uuid key and a timestamptz column, represented on SQLite as Django spells them (32 hex
// digits, naive UTC text; docs/types.md "Representations"): PostgreSQL -> hub -> SQLite ->
// hub -> PostgreSQL is equal, SQLite holds (and the ORM finds) its own spelling, PostgreSQL
// writes SQLite-origin rows and sends back the same bytes, and one key written on both
// engines is one row everywhere.
TEST(MixedTypes, RepresentedColumnsThroughPostgresql) {
  HubProcess hub;
  std::string url = hub.url("repr");
  PgSite a, b;
  for (PgSite* p : {&a, &b})
    (*p)->Exec("CREATE TABLE cp (id uuid PRIMARY KEY, code text NOT NULL, created timestamptz);"
               "SELECT deltasync_enable('cp')");
  Site s;
  s.Exec("CREATE TABLE cp (id char(32) NOT NULL PRIMARY KEY, code varchar(20) NOT NULL, created datetime);");
  s.Text("SELECT deltasync_enable('cp', ?1)",
         {Value::Text(R"({"columns": {"id": {"uuid": "hex32"}, "created": {"timestamp": "naive_utc"}}})")});
  a->Exec("SET TimeZone = 'Asia/Kolkata';"
          "INSERT INTO cp VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'P1', '2026-12-01 21:39:58.037039+00'),"
          " ('{efbecc1f-dd13-488d-80fa-90d6e48aedea}', 'P2', '2024-06-01 12:00:00.5+02'),"
          " ('00000000-0000-0000-0000-000000000000', 'P3', '1970-01-01 00:00:00+00'),"
          " ('ffffffff-ffff-4fff-bfff-ffffffffffff', 'P4', NULL);"
          "RESET TimeZone");
  PgCall(*a, "deltasync_sync", url);
  SqliteCall(s, "deltasync_sync", url);
  auto rows = s.Rows("SELECT code, id, created FROM cp ORDER BY code");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0][1].s, "a0eebc999c0b4ef8bb6d6bb9bd380a11");
  EXPECT_EQ(rows[0][2].s, "2026-12-01 21:39:58.037039");
  EXPECT_EQ(rows[1][1].s, "efbecc1fdd13488d80fa90d6e48aedea");
  EXPECT_EQ(rows[1][2].s, "2024-06-01 10:00:00.500000");
  EXPECT_EQ(rows[2][2].s, "1970-01-01 00:00:00");
  EXPECT_EQ(rows[3][2].type, ValueType::kNull);
  // What Django on SQLite queries with finds the rows: filter(pk=…), filter(created=…).
  EXPECT_EQ(s.Text("SELECT code FROM cp WHERE id = 'a0eebc999c0b4ef8bb6d6bb9bd380a11'"), "P1");
  EXPECT_EQ(s.Text("SELECT code FROM cp WHERE created = '2024-06-01 10:00:00.500000'"), "P2");

  // SQLite writes in its spelling: an update of a PostgreSQL-origin row, a new row.
  s.Exec("UPDATE cp SET code = 'P1s' WHERE id = 'a0eebc999c0b4ef8bb6d6bb9bd380a11';"
         "INSERT INTO cp VALUES ('39feeb81ec324caa846fb2edcd854cce', 'S1', '2026-12-01 21:39:57.064800')");
  SqliteCall(s, "deltasync_sync", url);
  PgCall(*a, "deltasync_sync", url);
  PgCall(*b, "deltasync_sync", url);
  const char* q = "SELECT id::text, code, created::text FROM cp ORDER BY id";
  for (PgSite* p : {&a, &b}) (*p)->Exec("SET TimeZone = 'UTC'");
  std::vector<std::vector<std::string>> want = {
      {"00000000-0000-0000-0000-000000000000", "P3", "1970-01-01 00:00:00+00"},
      {"39feeb81-ec32-4caa-846f-b2edcd854cce", "S1", "2026-12-01 21:39:57.0648+00"},
      {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "P1s", "2026-12-01 21:39:58.037039+00"},
      {"efbecc1f-dd13-488d-80fa-90d6e48aedea", "P2", "2024-06-01 10:00:00.5+00"},
      {"ffffffff-ffff-4fff-bfff-ffffffffffff", "P4", "\\N"}};
  EXPECT_EQ(a->Rows(q), want);
  EXPECT_EQ(b->Rows(q), want);
  // PostgreSQL serves the SQLite-origin row in exactly the bytes SQLite sent.
  Json from_b = Json::parse(b->Text("SELECT deltasync_changes(0)"));
  Json from_s = Json::parse(s.Text("SELECT deltasync_changes(0)"));
  auto cells = [](const Json& p, const std::string& key) {
    std::map<std::string, Json> out;
    for (const auto& t : p["tables"])
      for (const auto& r : t["rows"])
        if (r["key"][0] == key)
          for (const auto& c : r["changes"]) out[t["columns"][c[0].get<size_t>()].get<std::string>()] = c[1];
    return out;
  };
  auto s1 = cells(from_s, "39feeb81-ec32-4caa-846f-b2edcd854cce");
  ASSERT_EQ(s1.size(), 2u) << from_s.dump();
  EXPECT_EQ(s1["created"], "2026-12-01 21:39:57.0648+00");
  EXPECT_EQ(cells(from_b, "39feeb81-ec32-4caa-846f-b2edcd854cce"), s1);

  // The same key written on both engines before either saw the other: one row everywhere.
  a->Exec("INSERT INTO cp VALUES ('5d0c4a3e-7f1b-4c2a-9e8d-1a2b3c4d5e6f', 'from pg', '2026-12-02 00:00:00+00')");
  s.Exec("INSERT INTO cp VALUES ('5d0c4a3e7f1b4c2a9e8d1a2b3c4d5e6f', 'from sqlite', '2026-12-02 00:00:01')");
  for (int round = 0; round < 2; ++round) {
    PgCall(*a, "deltasync_sync", url);
    SqliteCall(s, "deltasync_sync", url);
    PgCall(*b, "deltasync_sync", url);
  }
  EXPECT_EQ(s.Int("SELECT count(*) FROM cp"), 6);
  std::string winner = s.Text("SELECT code FROM cp WHERE id = '5d0c4a3e7f1b4c2a9e8d1a2b3c4d5e6f'");
  EXPECT_TRUE(winner == "from pg" || winner == "from sqlite") << winner;
  for (PgSite* p : {&a, &b}) {
    EXPECT_EQ((*p)->Text("SELECT count(*) FROM cp"), "6");
    EXPECT_EQ((*p)->Text("SELECT code FROM cp WHERE id = '5d0c4a3e-7f1b-4c2a-9e8d-1a2b3c4d5e6f'"), winner);
  }
  // A delete on PostgreSQL of the SQLite-origin row removes it on SQLite; the ORM's delete of
  // a PostgreSQL-origin row removes that one on PostgreSQL (no phantom left to delete).
  b->Exec("DELETE FROM cp WHERE code = 'S1'");
  s.Exec("DELETE FROM cp WHERE id = 'efbecc1fdd13488d80fa90d6e48aedea'");
  for (int round = 0; round < 2; ++round) {
    PgCall(*b, "deltasync_sync", url);
    SqliteCall(s, "deltasync_sync", url);
    PgCall(*a, "deltasync_sync", url);
  }
  EXPECT_EQ(s.Int("SELECT count(*) FROM cp"), 4);
  EXPECT_EQ(s.Int("SELECT count(*) FROM cp WHERE code IN ('S1', 'P2')"), 0);
  for (PgSite* p : {&a, &b}) EXPECT_EQ((*p)->Text("SELECT count(*) FROM cp WHERE code IN ('S1', 'P2')"), "0");
  EXPECT_EQ(a->Text("SELECT count(*) FROM cp"), "4");
}

// ---------------------------------------------------------------------------------------
// Property: random writes on two SQLite and two PostgreSQL sites, random partial syncs
// through one hub, then full syncs: every site holds the same rows, compared through
// canonical values (integers as digits, reals as their bits, blobs as hex).

namespace {

constexpr const char* kMixedPg =
    "CREATE TABLE t (k1 bigint, k2 text, i bigint, r float8, s text, b bytea, PRIMARY KEY (k1, k2));"
    "CREATE TABLE tags (tag text PRIMARY KEY);"
    "SELECT deltasync_enable('t'), deltasync_enable('tags');";
// The second PostgreSQL site holds t partitioned, a range partition partitioned again: key
// changes move rows between partitions, and some writes name a partition directly.
constexpr const char* kMixedPgPartitioned =
    "CREATE TABLE t (k1 bigint, k2 text, i bigint, r float8, s text, b bytea, PRIMARY KEY (k1, k2)) PARTITION BY RANGE (k1);"
    "CREATE TABLE t_lo PARTITION OF t FOR VALUES FROM (MINVALUE) TO (2);"
    "CREATE TABLE t_hi PARTITION OF t FOR VALUES FROM (2) TO (MAXVALUE) PARTITION BY LIST (k2);"
    "CREATE TABLE t_hi_a PARTITION OF t_hi FOR VALUES IN ('a');"
    "CREATE TABLE t_hi_rest PARTITION OF t_hi DEFAULT;"
    "CREATE TABLE tags (tag text PRIMARY KEY);"
    "SELECT deltasync_enable('t'), deltasync_enable('tags');";
constexpr const char* kMixedSqlite =
    "CREATE TABLE t (k1 INTEGER, k2 TEXT, i INTEGER, r REAL, s TEXT, b BLOB, PRIMARY KEY (k1, k2));"
    "CREATE TABLE tags (tag TEXT PRIMARY KEY);"
    "SELECT deltasync_enable('t'); SELECT deltasync_enable('tags');";
// ev: a uuid key and a timestamptz, which each SQLite site spells its own way (docs/types.md
// "Representations"): 32 hex digits and naive UTC text on the first, a 16-byte blob and
// six-digit naive UTC on the second.
constexpr const char* kMixedPgEv =
    "CREATE TABLE ev (id uuid PRIMARY KEY, at timestamptz, n bigint); SELECT deltasync_enable('ev');";
struct EvSpelling {
  const char* ddl;
  deltasync::ReprForm id, at;
};
const EvSpelling kMixedSqliteEv[] = {
    {"CREATE TABLE ev (id char(32) PRIMARY KEY, at datetime, n INTEGER);"
     "SELECT deltasync_enable('ev', '{\"columns\": {\"id\": {\"uuid\": \"hex32\"}, \"at\": {\"timestamp\": \"naive_utc\"}}}');",
     deltasync::ReprForm::kUuidHex32, deltasync::ReprForm::kTimestampNaiveUtc},
    {"CREATE TABLE ev (id BLOB PRIMARY KEY, at TEXT, n INTEGER);"
     "SELECT deltasync_enable('ev', '{\"columns\": {\"id\": {\"uuid\": \"blob\"}, \"at\": {\"timestamp\": \"naive_utc_us\"}}}');",
     deltasync::ReprForm::kUuidBlob, deltasync::ReprForm::kTimestampNaiveUtcUs},
};

class MixedWorld {
 public:
  MixedWorld(uint64_t seed, std::string url) : rng_(seed), url_(std::move(url)) {
    for (int k = 0; k < 2; ++k) {
      sqlite_.push_back(std::make_unique<Site>());
      sqlite_.back()->Exec(kMixedSqlite);
      sqlite_.back()->Exec(kMixedSqliteEv[k].ddl);
      pg_.push_back(std::make_unique<PgSite>());
      (*pg_.back())->Exec(k == 0 ? kMixedPg : kMixedPgPartitioned);
      (*pg_.back())->Exec(kMixedPgEv);
      (*pg_.back())->Exec("SET TimeZone = 'Asia/Kolkata'");  // canonical text is UTC whatever the session says
    }
  }

  void Step() {
    if (Pick(100) < 60) Write();
    else SyncOne();
  }

  void SyncAll() {
    for (int round = 0; round < 2; ++round) {
      for (size_t k = 0; k < 4; ++k) Call(k, "deltasync_push", kOpts);
      for (size_t k = 0; k < 4; ++k) Call(k, "deltasync_pull", kOpts);
    }
  }

  // Canonical rows of site k (0, 1: SQLite; 2, 3: PostgreSQL).
  std::vector<std::string> Canonical(size_t k) {
    std::vector<std::string> out;
    if (k < 2) {
      for (auto& r : sqlite_[k]->Rows("SELECT k1, k2, i, r, s, b FROM t ORDER BY k1, k2")) {
        std::string line;
        for (const Value& v : r) line += Canon(v) + "|";
        out.push_back(line);
      }
      for (auto& r : sqlite_[k]->Rows("SELECT tag FROM tags ORDER BY tag")) out.push_back("tag " + r[0].s);
      std::vector<std::string> ev;
      for (auto& r : sqlite_[k]->Rows("SELECT id, at, n FROM ev"))
        ev.push_back("ev " + Canon(Wire(kMixedSqliteEv[k].id, r[0])) + "|" + Canon(Wire(kMixedSqliteEv[k].at, r[1])) +
                     "|" + Canon(r[2]));
      std::sort(ev.begin(), ev.end());
      out.insert(out.end(), ev.begin(), ev.end());
    } else {
      PgConn& c = **pg_[k - 2];
      for (auto& r : c.Rows("SELECT k1::text, k2, i::text, encode(float8send(r), 'hex'), s, encode(b, 'hex')"
                            " FROM t ORDER BY k1, k2 COLLATE \"C\"")) {
        std::string line;
        for (size_t j = 0; j < r.size(); ++j) line += (r[j] == "\\N" ? "NULL" : (j == 5 ? "x" : "") + r[j]) + "|";
        out.push_back(line);
      }
      for (auto& r : c.Rows("SELECT tag FROM tags ORDER BY tag COLLATE \"C\"")) out.push_back("tag " + r[0]);
      c.Exec("SET TimeZone = 'UTC'");
      std::vector<std::string> ev;
      for (auto& r : c.Rows("SELECT id::text, at::text, n::text FROM ev"))
        ev.push_back("ev " + (r[0] == "\\N" ? "NULL" : r[0]) + "|" + (r[1] == "\\N" ? "NULL" : r[1]) + "|" +
                     (r[2] == "\\N" ? "NULL" : r[2]));
      c.Exec("SET TimeZone = 'Asia/Kolkata'");
      std::sort(ev.begin(), ev.end());
      out.insert(out.end(), ev.begin(), ev.end());
    }
    return out;
  }

 private:
  static std::string Canon(const Value& v) {
    switch (v.type) {
      case ValueType::kNull: return "NULL";
      case ValueType::kInteger: return std::to_string(v.i);
      case ValueType::kReal: return RealBits(v.r);
      case ValueType::kText: return v.s;
      case ValueType::kBlob: return "x" + Hex(v.s);
    }
    return "?";
  }

  // A SQLite site's stored value in canonical form (as its representation sends it).
  static Value Wire(deltasync::ReprForm f, const Value& local) {
    Value out;
    return deltasync::LocalToWire(f, local, out) == deltasync::ReprOutcome::kConverted ? out : local;
  }
  static Value Local(deltasync::ReprForm f, const Value& canonical) {
    Value out;
    return deltasync::WireToLocal(f, canonical, out) == deltasync::ReprOutcome::kConverted ? out : canonical;
  }

  // A write of ev on either engine, a SQLite site binding its own spelling of a shared key.
  std::string EvWrite(size_t site) {
    static const char* kIds[] = {"efbecc1f-dd13-488d-80fa-90d6e48aedea", "0a0eebc9-9c0b-4ef8-bb6d-6bb9bd380a11",
                                 "ffffffff-ffff-4fff-bfff-ffffffffffff"};
    static const char* kAts[] = {"2026-12-01 21:39:58.037039+00", "2024-02-29 23:59:59.5+00", "1970-01-01 00:00:00+00"};
    std::string id = kIds[Pick(3)];
    std::pair<Value, std::string> key = {Value::Text(id), "'" + id + "'"};
    std::pair<Value, std::string> at = {Value::Text(kAts[Pick(3)]), ""};
    at.second = "'" + at.first.s + "'";
    if (Pick(5) == 0) at = {Value::Null(), "NULL"};
    if (site < 2) {
      key.first = Local(kMixedSqliteEv[site].id, key.first);
      at.first = Local(kMixedSqliteEv[site].at, at.first);
    }
    std::string n;
    switch (Pick(3)) {
      case 0: return Sql(site, "INSERT INTO ev VALUES (", {key, at, Int()}) + ") ON CONFLICT (id) DO UPDATE SET at = excluded.at";
      case 1:
        n = std::to_string(Pick(100));
        bound_.push_back(site < 2 ? std::vector<Value>{at.first, key.first} : std::vector<Value>{});
        return "UPDATE ev SET n = " + n + ", at = " + (site < 2 ? std::string("?1") : at.second) +
               " WHERE id = " + (site < 2 ? std::string("?2") : key.second);
      default: return Sql(site, "DELETE FROM ev WHERE id = ", {key});
    }
  }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // One value per column kind, as a Value (SQLite) and as a SQL literal (PostgreSQL).
  std::pair<Value, std::string> Int() {
    switch (Pick(5)) {
      case 0: return {Value::Null(), "NULL"};
      case 1: return {Value::Integer(std::numeric_limits<int64_t>::min()), "(-9223372036854775807 - 1)"};
      case 2: return {Value::Integer(std::numeric_limits<int64_t>::max()), "9223372036854775807"};
      default: {
        int64_t i = static_cast<int64_t>(Pick(5));
        return {Value::Integer(i), std::to_string(i)};
      }
    }
  }
  std::pair<Value, std::string> Real() {
    switch (Pick(5)) {
      case 0: return {Value::Null(), "NULL"};
      case 1: return {Value::Real(std::numeric_limits<double>::infinity()), "'Infinity'::float8"};
      case 2: return {Value::Real(1e308), "1e308::float8"};
      default: {
        double d = 0.1 * static_cast<double>(Pick(5));
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.17g::float8", d);
        return {Value::Real(d), buf};
      }
    }
  }
  std::pair<Value, std::string> Str() {
    switch (Pick(4)) {
      case 0: return {Value::Null(), "NULL"};
      case 1: return {Value::Text(""), "''"};
      case 2: {
        std::string s = "ü✓" + std::to_string(Pick(3));
        return {Value::Text(s), "'" + s + "'"};
      }
      default: {
        std::string s = "q'\"" + std::to_string(Pick(3));
        return {Value::Text(s), "'q''\"" + s.substr(3) + "'"};
      }
    }
  }
  std::pair<Value, std::string> Blob() {
    switch (Pick(3)) {
      case 0: return {Value::Null(), "NULL"};
      case 1: return {Value::Blob(""), "''::bytea"};
      default: {
        std::string b = std::string("\0\xff", 2) + std::string(Pick(3), '\0');
        return {Value::Blob(b), "'\\x" + Hex(b) + "'::bytea"};
      }
    }
  }
  std::pair<Value, std::string> Column(int c) {
    switch (c) {
      case 0: return Int();
      case 1: return Real();
      case 2: return Str();
      default: return Blob();
    }
  }

  // The same kind of random write on either engine.
  void Write() {
    size_t site = Pick(4);
    static const char* kCols[] = {"i", "r", "s", "b"};
    static const char* k2s[] = {"a", "b", "c"};
    int64_t k1 = static_cast<int64_t>(Pick(4));
    std::string k2 = k2s[Pick(3)];
    std::string where = " WHERE k1 = " + std::to_string(k1) + " AND k2 = '" + k2 + "'";
    std::vector<std::string> stmts;
    bool txn = Pick(4) == 0;
    int writes = txn ? 1 + static_cast<int>(Pick(3)) : 1;
    for (int w = 0; w < writes; ++w) {
      switch (Pick(9)) {
        case 7:
          stmts.push_back(EvWrite(site));
          break;
        case 0:
        case 1: {
          auto i = Int(), r = Real(), s = Str(), b = Blob();
          stmts.push_back(Sql(site, "INSERT INTO t VALUES (" + std::to_string(k1) + ", '" + k2 + "', ", {i, r, s, b}) +
                          ") ON CONFLICT DO NOTHING");
          break;
        }
        case 2: {
          auto s = Str();
          stmts.push_back(Sql(site, "INSERT INTO t (k1, k2, s) VALUES (" + std::to_string(k1) + ", '" + k2 + "', ", {s}) +
                          ") ON CONFLICT (k1, k2) DO UPDATE SET s = excluded.s");
          break;
        }
        case 3:
        case 4: {
          int c = static_cast<int>(Pick(4));
          stmts.push_back(Sql(site, std::string("UPDATE ") + Target(site) + " SET " + kCols[c] + " = ", {Column(c)}) + where);
          break;
        }
        case 5:
          if (site == 3 && Pick(6) == 0) stmts.push_back(Pick(2) ? "TRUNCATE t_hi_a" : "TRUNCATE t_hi");
          else stmts.push_back("DELETE FROM " + Target(site) + where);
          break;
        case 6: {
          std::string to = std::to_string(Pick(4));
          stmts.push_back("UPDATE t SET k1 = " + to + where + " AND NOT EXISTS (SELECT 1 FROM t AS o WHERE o.k1 = " + to +
                          " AND o.k2 = '" + k2 + "')");
          break;
        }
        default:
          stmts.push_back(Pick(2) ? "INSERT INTO tags VALUES ('" + k2 + "') ON CONFLICT DO NOTHING"
                                  : "DELETE FROM tags WHERE tag = '" + k2 + "'");
      }
      bound_.resize(stmts.size());  // statements without parameters bind nothing
    }
    std::string end = txn && Pick(5) == 0 ? "ROLLBACK" : "COMMIT";
    if (site < 2) {
      Site& s = *sqlite_[site];
      if (txn) s.Exec("BEGIN");
      for (size_t k = 0; k < stmts.size(); ++k) s.Rows(stmts[k], bound_[k]);
      if (txn) s.Exec(end);
    } else {
      PgConn& c = **pg_[site - 2];
      if (txn) c.Exec("BEGIN");
      for (const auto& sql : stmts) c.Exec(sql);
      if (txn) c.Exec(end);
    }
    bound_.clear();
  }

  // The table an UPDATE or DELETE names: on the partitioned site, sometimes a partition
  // (rows of other partitions are then left alone).
  std::string Target(size_t site) {
    static const char* kParts[] = {"t", "t_lo", "t_hi", "t_hi_a", "t_hi_rest"};
    return site == 3 ? kParts[Pick(5)] : "t";
  }

  // PostgreSQL gets literals; SQLite gets bound values (one parameter list per statement).
  std::string Sql(size_t site, const std::string& head, const std::vector<std::pair<Value, std::string>>& vals) {
    std::string sql = head;
    std::vector<Value> params;
    for (size_t k = 0; k < vals.size(); ++k) {
      sql += (k ? ", " : "") + (site < 2 ? "?" + std::to_string(k + 1) : vals[k].second);
      params.push_back(vals[k].first);
    }
    bound_.push_back(site < 2 ? params : std::vector<Value>{});
    return sql;
  }

  void SyncOne() {
    static const char* kFns[] = {"deltasync_push", "deltasync_pull", "deltasync_sync"};
    static const int kBatch[] = {1, 3, 1000};
    Json o = kOpts;
    o["batch_rows"] = kBatch[Pick(3)];
    if (Pick(4) == 0) o["codec"] = "json";
    if (Pick(5) == 0) o["tables"] = {"t"};
    Call(Pick(4), kFns[Pick(3)], o);
  }

  void Call(size_t site, const char* fn, const Json& o) {
    if (site < 2) SqliteCall(*sqlite_[site], fn, url_, o);
    else PgCall(**pg_[site - 2], fn, url_, o);
  }

  std::mt19937_64 rng_;
  std::string url_;
  std::vector<std::unique_ptr<Site>> sqlite_;
  std::vector<std::unique_ptr<PgSite>> pg_;
  std::vector<std::vector<Value>> bound_;
};

}  // namespace

TEST(MixedConvergence, TwoSqliteAndTwoPostgresSitesConvergeThroughTheHub) {
  HubProcess hub;
  int64_t cases = EnvInt("DELTASYNC_E2E_CASES", 4);
  auto seed = static_cast<uint64_t>(EnvInt("DELTASYNC_PROPERTY_SEED", 20261201));
  int64_t ev_rows = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t s = seed + static_cast<uint64_t>(c);
    SCOPED_TRACE("DELTASYNC_PROPERTY_SEED=" + std::to_string(s));
    MixedWorld world(s, hub.url("mixed" + std::to_string(s)));
    for (int step = 0; step < 120; ++step) world.Step();
    world.SyncAll();
    std::vector<std::string> first = world.Canonical(0);
    for (size_t k = 1; k < 4; ++k) ASSERT_EQ(world.Canonical(k), first) << "site " << k << " differs";
    if (HasFatalFailure()) return;
    ev_rows += std::count_if(first.begin(), first.end(), [](const std::string& l) { return l.rfind("ev ", 0) == 0; });
  }
  EXPECT_GT(ev_rows, 0) << "no represented row survived to be compared";
}

// Issue 9 across engines. (1) ADD COLUMN ... DEFAULT 100 on PostgreSQL (what a migration
// does there) while the SQLite sites add the column without a default (NULL): the default
// reaches them, and a real write on SQLite still wins. (2) A key column renamed on
// PostgreSQL, not on SQLite: both keep syncing (keys match by position).
TEST(MixedSchema, ADefaultAddedOnPostgresqlReachesSqliteAndARenamedKeyKeepsSyncing) {
  HubProcess hub;
  std::string url = hub.url("mixedschema");
  PgSite pg;
  pg->Exec("CREATE TABLE item (id bigint PRIMARY KEY, name text NOT NULL); SELECT deltasync_enable('item')");
  Site a, b;
  for (Site* s : {&a, &b})
    s->Exec("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL); SELECT deltasync_enable('item')");
  pg->Exec("INSERT INTO item SELECT x, 'item ' || x FROM generate_series(1, 20) x");
  PgCall(*pg, "deltasync_sync", url);
  for (Site* s : {&a, &b}) SqliteCall(*s, "deltasync_sync", url);
  pg->Exec("ALTER TABLE item ADD COLUMN stock int NOT NULL DEFAULT 100");
  for (Site* s : {&a, &b}) s->Exec("ALTER TABLE item ADD COLUMN stock INTEGER");
  a.Exec("UPDATE item SET stock = 7 WHERE id = 3");
  for (int round = 0; round < 2; ++round) {
    PgCall(*pg, "deltasync_sync", url);
    for (Site* s : {&a, &b}) SqliteCall(*s, "deltasync_sync", url);
  }
  const std::string q = "SELECT count(*) FILTER (WHERE stock = 100) || '/' || sum(stock) FROM item";
  EXPECT_EQ(pg->Text(q), "19/1907");
  const std::string sq = "SELECT sum(stock = 100) || '/' || sum(stock) FROM item";
  for (Site* s : {&a, &b}) EXPECT_EQ(s->Text(sq), "19/1907");

  pg->Exec("ALTER TABLE item RENAME COLUMN id TO item_id");
  pg->Exec("UPDATE item SET name = 'renamed on pg' WHERE item_id = 1; INSERT INTO item VALUES (21, 'pg 21', 5)");
  a.Exec("UPDATE item SET name = 'from sqlite' WHERE id = 2; INSERT INTO item VALUES (22, 'sqlite 22', 6)");
  for (int round = 0; round < 2; ++round) {
    PgCall(*pg, "deltasync_sync", url);
    for (Site* s : {&a, &b}) SqliteCall(*s, "deltasync_sync", url);
  }
  const std::string names = "SELECT string_agg(name, ',' ORDER BY item_id) FROM item WHERE item_id IN (1, 2, 21, 22)";
  EXPECT_EQ(pg->Text(names), "renamed on pg,from sqlite,pg 21,sqlite 22");
  for (Site* s : {&a, &b})
    EXPECT_EQ(s->Text("SELECT group_concat(name) FROM (SELECT name FROM item WHERE id IN (1, 2, 21, 22) ORDER BY id)"),
              "renamed on pg,from sqlite,pg 21,sqlite 22");
}
