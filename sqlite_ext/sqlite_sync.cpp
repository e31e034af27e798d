// deltasync_push, deltasync_pull and deltasync_sync: this site against a hub, over HTTP.
//
// The protocol side (batches, pages, cursor rules) is common/sync_client's HubLink; this file
// keeps the SQLite records it works on. Per hub (the URL's base and node) the site keeps two
// cursors in deltasync_hubs: how far its own db_version has been pushed, and how far the
// hub's sequence has been pulled. A pull page is applied and its cursor advanced in one
// savepoint; the versions a pull gave to what it applied are remembered (deltasync_hub_echo)
// so that push never sends a hub back what came from it; each call's outcome is kept in
// deltasync_hub_health, written after the call's own writes rolled back. Any failure raises
// "deltasync: <url>: <cause>" and leaves every cursor where it was, so the next call resumes.
#include <nlohmann/json.hpp>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/scoped_flag.hpp"
#include "common/shadow_row.hpp"
#include "common/value_repr.hpp"
#include "common/sync_client.hpp"
#include "sqlite_ext/sqlite_apply.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;

// This SQLite site's records of its hubs (deltasync_hubs, deltasync_hub_echo), each write
// in its own savepoint.
class SqliteSyncSite : public SyncSite {
 public:
  explicit SqliteSyncSite(Conn& conn) : conn_(conn) { conn_.EnsureSchema(); }

  SiteId LocalSite() override { return conn_.LocalSite(); }

  HubRecord LoadHub(const std::string& key) override {
    Stmt add(conn_.db(), "INSERT OR IGNORE INTO deltasync_hubs(hub) VALUES (?1)");
    add.BindText(1, key);
    add.Run();
    Stmt get(conn_.db(), "SELECT hub_id, push_cursor, pull_cursor FROM deltasync_hubs WHERE hub = ?1");
    get.BindText(1, key);
    HubRecord h;
    if (get.Step()) {
      h.hub_id = get.IsNull(0) ? "" : std::string(get.Text(0));
      h.push_cursor = get.Int(1);
      h.pull_cursor = get.Int(2);
    }
    Stmt progress(conn_.db(), "SELECT until, tbl, key FROM deltasync_hub_push WHERE hub = ?1");
    progress.BindText(1, key);
    if (progress.Step()) {
      h.progress.until = progress.Int(0);
      h.progress.at.table = std::string(progress.Text(1));
      h.progress.at.key = DecodeKey(progress.Blob(2));
    }
    return h;
  }

  void SetHubId(const std::string& key, const std::string& id, bool reset) override {
    Savepoint sp(conn_.db(), "deltasync_hub_id");
    Stmt set(conn_.db(), reset ? "UPDATE deltasync_hubs SET hub_id = ?2, push_cursor = 0, pull_cursor = 0 WHERE hub = ?1"
                               : "UPDATE deltasync_hubs SET hub_id = ?2 WHERE hub = ?1");
    set.BindText(1, key);
    set.BindText(2, id);
    set.Run();
    if (reset) {
      // A new store: what the old one's frontier covered says nothing about it.
      for (const char* sql : {"DELETE FROM deltasync_hub_echo WHERE hub = ?1", "DELETE FROM deltasync_hub_push WHERE hub = ?1",
                              "DELETE FROM deltasync_hub_frontier WHERE hub = ?1"}) {
        Stmt drop(conn_.db(), sql);
        drop.BindText(1, key);
        drop.Run();
      }
    }
    sp.Release();
  }

  VersionRanges EchoRanges(const std::string& key, int64_t above) override {
    VersionRanges echo;
    Stmt r(conn_.db(), "SELECT lo, hi FROM deltasync_hub_echo WHERE hub = ?1 AND hi > ?2");
    r.BindText(1, key);
    r.BindInt(2, above);
    while (r.Step()) echo.emplace_back(r.Int(0), r.Int(1));
    return echo;
  }

  // The stored reservation covers every version issued (common/sync_client VersionCeiling).
  int64_t VersionCeiling() override { return conn_.SafeVersion(); }

  int64_t CollectBatches(int64_t since, int64_t until, const CollectPosition& from, const VersionRanges& exclude,
                         const BatchLimits& limits,
                         const std::function<bool(Payload&, const CollectPosition&)>& batch) override {
    return sqlite::CollectBatches(conn_, since, until, from, exclude, limits, batch);
  }

  // Its own savepoint, no read open: in autocommit each acknowledged batch is durable at once.
  void PushProgressed(const std::string& key, int64_t until, const CollectPosition& at) override {
    Savepoint sp(conn_.db(), "deltasync_push_progress");
    Stmt put(conn_.db(), "INSERT INTO deltasync_hub_push(hub, until, tbl, key) VALUES (?1, ?2, ?3, ?4)"
                         " ON CONFLICT(hub) DO UPDATE SET until = excluded.until, tbl = excluded.tbl, key = excluded.key");
    std::string k = EncodeKey(at.key);
    put.BindText(1, key);
    put.BindInt(2, until);
    put.BindText(3, at.table);
    put.BindBlob(4, k);
    put.Run();
    sp.Release();
  }

  void PushDone(const std::string& key, int64_t until) override {
    Savepoint sp(conn_.db(), "deltasync_push");
    {
      Stmt s(conn_.db(), "UPDATE deltasync_hubs SET push_cursor = max(push_cursor, ?2), last_sync_ms = ?3 WHERE hub = ?1");
      s.BindText(1, key);
      s.BindInt(2, until);
      s.BindInt(3, static_cast<int64_t>(WallClockMillis()));
      s.Run();
      Stmt done(conn_.db(), "DELETE FROM deltasync_hub_push WHERE hub = ?1");
      done.BindText(1, key);
      done.Run();
    }
    Stmt prune(conn_.db(), "DELETE FROM deltasync_hub_echo WHERE hub = ?1 AND hi <= ?2");
    prune.BindText(1, key);
    prune.BindInt(2, until);
    prune.Run();
    sp.Release();
  }

  ApplyResult ApplyPage(const std::string& key, const Payload& page, bool move_cursor) override {
    // The page and the cursor that records it commit together.
    Savepoint sp(conn_.db(), "deltasync_pull");
    ApplyResult r = ApplyPayload(conn_, page);
    // The apply's versions, as ranges: local changes it made in between (the foreign-key
    // policy's removals) are pushed to this hub too.
    if (!r.ranges.empty()) {
      Stmt echo(conn_.db(), "INSERT INTO deltasync_hub_echo(hub, lo, hi) VALUES (?1, ?2, ?3)");
      for (const auto& [lo, hi] : r.ranges) {
        echo.BindText(1, key);
        echo.BindInt(2, lo);
        echo.BindInt(3, hi);
        echo.Run();
      }
    }
    if (move_cursor) SetCursor(key, "pull_cursor", page.until);
    sp.Release();
    return r;
  }

  // Every changed shadow row of the tracked tables in the version range, as the collect
  // reads them (a scan of each table's metadata, done only for a long push).
  uint64_t CountRowsToPush(int64_t since, int64_t until) override {
    uint64_t n = 0;
    for (const TableInfo& t : conn_.LoadTables()) {
      if (t.state == TableState::kDropped) continue;
      Stmt c(conn_.db(), "SELECT count(*) FROM " + t.q_meta + " WHERE ver > ?1 AND ver <= ?2");
      c.BindInt(1, since);
      c.BindInt(2, until);
      if (c.Step()) n += static_cast<uint64_t>(c.Int(0));
    }
    return n;
  }

  // One row per hub and direction, in its own savepoint: in autocommit every report is
  // visible at once to the site's other connections (deltasync_status(), the agent).
  void ReportProgress(const SyncProgress& p) override {
    Savepoint sp(conn_.db(), "deltasync_progress");
    Stmt put(conn_.db(),
             "INSERT OR REPLACE INTO deltasync_sync_progress(hub, direction, state, since_ms, updated_ms, rows_done,"
             " rows_expected, rows_per_s, eta_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    put.BindText(1, p.hub);
    put.BindText(2, p.direction);
    put.BindText(3, ProgressStateName(p.state));
    put.BindInt(4, p.since_ms);
    put.BindInt(5, p.updated_ms);
    put.BindInt(6, static_cast<int64_t>(p.done));
    if (p.expected) put.BindInt(7, static_cast<int64_t>(p.expected));
    put.BindInt(8, static_cast<int64_t>(p.rows_per_s));
    if (p.eta_ms) put.BindInt(9, *p.eta_ms);
    put.Run();
    sp.Release();
  }

  // The page, its cursor and the hub's frontier as this answer told it, in one savepoint.
  ApplyResult ApplyPulledPage(const std::string& key, const Payload& page, const PulledPage& facts) override {
    Savepoint sp(conn_.db(), "deltasync_pull_frontier");
    ApplyResult r = ApplyPage(key, page, true);
    if (facts.frontier >= 0) {
      HubFrontier f;
      Stmt get(conn_.db(), "SELECT frontier, mark_ver, mark_seq, safe_ver FROM deltasync_hub_frontier WHERE hub = ?1");
      get.BindText(1, key);
      if (get.Step()) f = HubFrontier{get.Int(0), get.Int(1), get.Int(2), get.Int(3)};
      get.Reset();
      f = AdvanceFrontier(f, facts, page.until);
      Stmt put(conn_.db(), "INSERT OR REPLACE INTO deltasync_hub_frontier(hub, frontier, mark_ver, mark_seq, safe_ver)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)");
      put.BindText(1, key);
      put.BindInt(2, f.frontier);
      put.BindInt(3, f.mark_ver);
      put.BindInt(4, f.mark_seq);
      put.BindInt(5, f.safe_ver);
      put.Run();
    }
    sp.Release();
    return r;
  }

  // The pull has committed by now: a compaction that fails (the database busy, the call
  // interrupted) is reported in the pull's result, and the next pull tries again.
  Json CompactIfDue() override {
    try {
      return CompactSite(conn_, CompactOptions{}, true);
    } catch (const Error& e) {
      return Json{{"error", e.Joined()}};
    }
  }

  // Its own savepoint, after the failing call's savepoints rolled back: in autocommit it
  // commits at once, whatever the call did.
  void RecordOutcome(const std::string& key, const std::string& error, int64_t at_ms) override {
    Savepoint sp(conn_.db(), "deltasync_health");
    Stmt add(conn_.db(), "INSERT OR IGNORE INTO deltasync_hubs(hub) VALUES (?1)");
    add.BindText(1, key);
    add.Run();
    Stmt put(conn_.db(), error.empty()
                             ? "INSERT INTO deltasync_hub_health(hub, last_success_ms, failures) VALUES (?1, ?2, 0)"
                               " ON CONFLICT(hub) DO UPDATE SET last_success_ms = excluded.last_success_ms,"
                               " failures = 0, failing_since_ms = NULL, last_error = NULL, last_error_ms = NULL"
                             : "INSERT INTO deltasync_hub_health(hub, last_error, last_error_ms, failing_since_ms, failures)"
                               " VALUES (?1, ?3, ?2, ?2, 1) ON CONFLICT(hub) DO UPDATE SET last_error = excluded.last_error,"
                               " last_error_ms = excluded.last_error_ms,"
                               " failing_since_ms = coalesce(failing_since_ms, excluded.failing_since_ms),"
                               " failures = failures + 1");
    put.BindText(1, key);
    put.BindInt(2, at_ms);
    if (!error.empty()) put.BindText(3, error);
    put.Run();
    sp.Release();
  }

  // The keys a resync saw, by lower-case table name and canonical key encoding, in a
  // temporary table of this connection.
  void BeginResync() override {
    Exec(conn_.db(),
         "CREATE TEMP TABLE IF NOT EXISTS deltasync_resync_seen(tbl TEXT NOT NULL, key BLOB NOT NULL,"
         " PRIMARY KEY (tbl, key)) WITHOUT ROWID; DELETE FROM temp.deltasync_resync_seen;");
  }
  void NoteSeen(const Payload& page) override {
    Stmt put(conn_.db(), "INSERT OR IGNORE INTO temp.deltasync_resync_seen(tbl, key) VALUES (lower(?1), ?2)");
    for (const TableChanges& t : page.tables)
      for (const RowChanges& r : t.rows) {
        put.BindText(1, t.name);
        put.BindBlob(2, EncodeKey(r.key));
        put.Run();
      }
  }
  uint64_t RemoveUnseen(const std::string& key) override {
    HubRecord h = LoadHub(key);
    VersionRanges echo = EchoRanges(key, 0);
    Savepoint sp(conn_.db(), "deltasync_resync");
    uint64_t removed = 0;
    {
      ScopedFlag applying(conn_.applying);  // the triggers record nothing: no change to send
      Stmt seen(conn_.db(), "SELECT 1 FROM temp.deltasync_resync_seen WHERE tbl = lower(?1) AND key = ?2");
      for (const TableInfo& t : conn_.LoadTables()) {
        if (t.state != TableState::kTracked) continue;
        size_t n = t.pk.size();
        std::vector<std::vector<Value>> gone;  // local key values of the rows to remove
        Stmt rows(conn_.db(), "SELECT " + ShadowKeyList(n) + ", " + kShadowColumns + " FROM " + t.q_meta + " WHERE (cl & 1) = 1");
        while (rows.Step()) {
          ShadowRow sr = ReadShadowRow(rows, static_cast<int>(n));
          sr.clocks.Resolve(sr.ver, sr.cl);
          int64_t life = sr.clocks.Base().ver;  // where this life's whole row was written here
          if (life > h.push_cursor && !InRanges(echo, life)) continue;  // a row of this site's own, unsent
          std::vector<Value> local, wire;
          for (size_t k = 0; k < n; ++k) {
            local.push_back(rows.Val(static_cast<int>(k)));
            Value v = local.back();
            if (t.reprs.any) ToWireOrThrow(t.reprs.Pk(k), v, t.name, t.pk[k]);
            wire.push_back(std::move(v));
          }
          seen.BindText(1, t.name);
          seen.BindBlob(2, EncodeKey(wire));
          bool was_seen = seen.Step();
          seen.Reset();
          if (!was_seen) gone.push_back(std::move(local));
        }
        rows.Reset();
        if (gone.empty()) continue;
        std::string where;
        for (size_t k = 0; k < n; ++k)
          where += (k ? " AND " : "") + QuoteIdent(t.pk[k]) + " = ?" + std::to_string(k + 1);
        Stmt drop(conn_.db(), "DELETE FROM " + t.q_name + " WHERE " + where);
        // Remembered as deleted (the causal length one past the life it ended), so a later
        // re-insert here starts a newer life than any site still holding that delete.
        Stmt bury(conn_.db(), "UPDATE " + t.q_meta + " SET cl = cl + 1, clk = NULL WHERE " + ShadowKeyWhere(n, 1));
        for (const auto& k : gone) {
          for (Stmt* st : {&drop, &bury}) {
            for (size_t i = 0; i < n; ++i) st->Bind(static_cast<int>(i + 1), k[i]);
            st->Run();
          }
          ++removed;
        }
      }
    }
    Exec(conn_.db(), "DELETE FROM temp.deltasync_resync_seen");
    sp.Release();
    return removed;
  }
  bool ForgetHub(const std::string& key) override {
    Savepoint sp(conn_.db(), "deltasync_forget");
    bool known = false;
    for (const char* sql : {"DELETE FROM deltasync_hub_echo WHERE hub = ?1", "DELETE FROM deltasync_hub_health WHERE hub = ?1",
                            "DELETE FROM deltasync_hub_frontier WHERE hub = ?1",
                            "DELETE FROM deltasync_hub_push WHERE hub = ?1", "DELETE FROM deltasync_sync_progress WHERE hub = ?1",
                            "DELETE FROM deltasync_hubs WHERE hub = ?1"}) {
      Stmt d(conn_.db(), sql);
      d.BindText(1, key);
      d.Run();
      known = sqlite3_changes(conn_.db()) > 0;
    }
    sp.Release();
    return known;
  }

 private:
  void SetCursor(const std::string& key, const char* column, int64_t value) {
    Stmt s(conn_.db(), std::string("UPDATE deltasync_hubs SET ") + column + " = ?2, last_sync_ms = ?3 WHERE hub = ?1");
    s.BindText(1, key);
    s.BindInt(2, value);
    s.BindInt(3, static_cast<int64_t>(WallClockMillis()));
    s.Run();
  }

  Conn& conn_;
};

std::string UrlArg(sqlite3_value* v, const char* fn) {
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, std::string(fn) + "(url) expects the hub URL as text");
  return reinterpret_cast<const char*>(sqlite3_value_text(v));
}

SyncOptions OptionsArg(int argc, sqlite3_value** argv) {
  if (argc < 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) return SyncOptions{};
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, "options must be a JSON object (text)");
  return ParseSyncOptions(
      std::string_view(reinterpret_cast<const char*>(sqlite3_value_text(argv[1])), sqlite3_value_bytes(argv[1])));
}

// True once sqlite3_interrupt was called on the connection during this call (from any
// thread, e.g. `deltasync agent` stopping): a statement started now fails with
// SQLITE_INTERRUPT. sqlite3_is_interrupted is 3.41+, this works on every version we support.
bool Interrupted(sqlite3* db) {
  sqlite3_stmt* probe = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT 1", -1, &probe, nullptr);
  if (rc != SQLITE_OK) return rc == SQLITE_INTERRUPT;
  rc = sqlite3_step(probe);
  sqlite3_finalize(probe);
  return rc == SQLITE_INTERRUPT;
}

// Runs one network operation; HubLink records its outcome in deltasync_hub_health. A
// request in flight is cancelled by sqlite3_interrupt on the connection.
template <typename Body>
void RunSync(sqlite3_context* ctx, int argc, sqlite3_value** argv, const char* fn, Body&& body) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    std::string url = UrlArg(argv[0], fn);
    SyncOptions options = OptionsArg(argc, argv);
    options.http.should_abort = [db = conn.db()] { return Interrupted(db); };
    SqliteSyncSite site(conn);
    HubLink link(site, url, std::move(options));
    ResultText(ctx, body(link).dump());
  });
}

}  // namespace

void FnPush(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_push", [](HubLink& l) { return l.Push(); });
}

void FnPull(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_pull", [](HubLink& l) { return l.Pull(); });
}

void FnForget(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    std::string url = UrlArg(argv[0], "deltasync_forget");
    SqliteSyncSite site(conn);
    ResultText(ctx, ForgetHub(site, url).dump());
  });
}

void FnSync(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_sync", [](HubLink& l) { return l.Sync(); });
}

}  // namespace deltasync
