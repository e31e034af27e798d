// deltasync_push, deltasync_pull and deltasync_sync from inside a backend: common/sync_client
// does the protocol, this file keeps the records (deltasync.hubs, deltasync.hub_echo, the
// frontier marks in deltasync.hub_frontier) and removes what a resync found gone.
// A transfer polls for query cancel and statement_timeout, so neither waits on a hub that
// never answers.
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/row_apply.hpp"
#include "common/sync_client.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"
#include "pg_ext/pg_health.hpp"
#include "pg_ext/pg_values.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/backend_status.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace deltasync {

namespace {

using Json = nlohmann::json;

class PgSyncSite : public SyncSite {
 public:
  SiteId LocalSite() override { return Backend::Get().LocalSite(); }

  // Every changed shadow row of the tracked tables in the version range (a count of each
  // table's metadata, done only for a long push).
  uint64_t CountRowsToPush(int64_t since, int64_t until) override {
    AsOwner as;
    uint64_t n = 0;
    for (const TableInfo& t : Backend::Get().LoadTables()) {
      if (t.dropped) continue;
      Args a;
      a.AddInt8(since);
      a.AddInt8(until);
      RunSql("SELECT count(*) FROM " + t.q_meta + " AS m WHERE " + std::string(kPgRowVersion) + " > $1 AND " +
                 kPgRowVersion + " <= $2",
             a);
      if (SPI_processed == 1) n += static_cast<uint64_t>(ResultInt(0, 0));
    }
    return n;
  }

  // A function's writes are seen by others only when its transaction commits, so the
  // progress goes where PostgreSQL shows a running backend's state at once: a NOTICE to the
  // caller, and the backend's pg_stat_activity query text (which deltasync_status() of other
  // sessions reads back), restored when the call ends. The last report of a call that ended
  // well is also kept in deltasync.sync_progress, committed with the call (a failed call's
  // transaction aborts: it keeps nothing, and no statement may run after its error).
  void ReportProgress(const SyncProgress& p) override {
    if (p.state == ProgressState::kDone) {
      AsOwner as;
      Args a;
      a.AddText(p.hub);
      a.AddText(p.direction);
      a.AddText(ProgressStateName(p.state));
      a.AddInt8(p.since_ms);
      a.AddInt8(p.updated_ms);
      a.AddInt8(static_cast<int64_t>(p.done));
      if (p.expected) a.AddInt8(static_cast<int64_t>(p.expected));
      else a.Add(INT8OID, 0, true);
      a.AddInt8(static_cast<int64_t>(p.rows_per_s));
      if (p.eta_ms) a.AddInt8(*p.eta_ms);
      else a.Add(INT8OID, 0, true);
      RunSql("INSERT INTO deltasync.sync_progress(hub, direction, state, since_ms, updated_ms, rows_done, rows_expected,"
             " rows_per_s, eta_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (hub, direction) DO UPDATE"
             " SET state = excluded.state, since_ms = excluded.since_ms, updated_ms = excluded.updated_ms,"
             " rows_done = excluded.rows_done, rows_expected = excluded.rows_expected,"
             " rows_per_s = excluded.rows_per_s, eta_ms = excluded.eta_ms",
             a);
    }
    const std::string line = ProgressLine(p);
    if (!saved_activity_ && MyBEEntry && MyBEEntry->st_activity_raw) saved_activity_ = std::string(MyBEEntry->st_activity_raw);
    const bool running = p.state == ProgressState::kRunning;
    const std::string activity = running ? line : saved_activity_.value_or("");
    if (!running) saved_activity_.reset();
    PgTry([&] {
      ereport(NOTICE, (errmsg("%s", line.c_str())));
      pgstat_report_activity(STATE_RUNNING, activity.c_str());
    });
  }

  // The end of the last block of versions handed out: every version given so far, and every
  // push's `until`, is at or below it (common/sync_client VersionCeiling).
  int64_t VersionCeiling() override {
    AsOwner as;
    RunSql("SELECT coalesce(pg_catalog.pg_sequence_last_value('deltasync.db_version'::pg_catalog.regclass) + " +
           std::to_string(kVersionBlock - 1) + ", 0)");
    return ResultInt(0, 0);
  }

  HubRecord LoadHub(const std::string& key) override {
    AsOwner as;
    Args a;
    a.AddText(key);
    RunSql("INSERT INTO deltasync.hubs(hub) VALUES ($1) ON CONFLICT DO NOTHING", a);
    RunSql("SELECT hub_id, push_cursor, pull_cursor FROM deltasync.hubs WHERE hub = $1", a);
    HubRecord h;
    if (SPI_processed == 1) {
      h.hub_id = ResultText(0, 0);
      h.push_cursor = ResultInt(0, 1);
      h.pull_cursor = ResultInt(0, 2);
    }
    return h;
  }

  void SetHubId(const std::string& key, const std::string& id, bool reset) override {
    AsOwner as;
    Args a;
    a.AddText(key);
    a.AddText(id);
    RunSql(reset ? "UPDATE deltasync.hubs SET hub_id = $2, push_cursor = 0, pull_cursor = 0 WHERE hub = $1"
                 : "UPDATE deltasync.hubs SET hub_id = $2 WHERE hub = $1",
           a);
    if (reset) {
      Args k;
      k.AddText(key);
      RunSql("DELETE FROM deltasync.hub_echo WHERE hub = $1", k);
      // A new store: what the old one's frontier covered says nothing about it.
      RunSql("DELETE FROM deltasync.hub_frontier WHERE hub = $1", k);
      frontiers_.erase(key);
    }
  }

  VersionRanges EchoRanges(const std::string& key, int64_t above) override {
    AsOwner as;
    Args a;
    a.AddText(key);
    a.AddInt8(above);
    RunSql("SELECT lo, hi FROM deltasync.hub_echo WHERE hub = $1 AND hi > $2", a);
    VersionRanges echo;
    for (uint64_t r = 0; r < SPI_processed; ++r) echo.emplace_back(ResultInt(r, 0), ResultInt(r, 1));
    return echo;
  }

  // Never this transaction's own uncommitted changes: a later push sends them once committed.
  int64_t CollectBatches(int64_t since, int64_t until, const CollectPosition& from, const VersionRanges& exclude,
                         const BatchLimits& limits,
                         const std::function<bool(Payload&, const CollectPosition&)>& batch) override {
    return pg::CollectBatches(since, until, from, exclude, limits, batch);
  }

  // A push is one transaction here (a function cannot commit): a failure rolls its progress
  // back with it, so none is kept and an interrupted push starts its pass again.
  void PushProgressed(const std::string&, int64_t, const CollectPosition&) override {}

  void PushDone(const std::string& key, int64_t until) override {
    AsOwner as;
    Args a;
    a.AddText(key);
    a.AddInt8(until);
    a.AddInt8(static_cast<int64_t>(WallClockMillis()));
    // Two backends pushing at once: the cursor never moves back.
    RunSql("UPDATE deltasync.hubs SET push_cursor = GREATEST(push_cursor, $2), last_sync_ms = $3 WHERE hub = $1", a);
    Args prune;
    prune.AddText(key);
    prune.AddInt8(until);
    RunSql("DELETE FROM deltasync.hub_echo WHERE hub = $1 AND hi <= $2", prune);
  }

  ApplyResult ApplyPage(const std::string& key, const Payload& page, bool move_cursor) override {
    ApplyResult r = ApplyPayload(page);
    AsOwner as;
    // One echo range per contiguous run: versions between the runs are other transactions'
    // own changes, which must still be pushed.
    for (const auto& [lo, hi] : r.ranges) {
      Args e;
      e.AddText(key);
      e.AddInt8(lo);
      e.AddInt8(hi);
      RunSql("INSERT INTO deltasync.hub_echo(hub, lo, hi) VALUES ($1, $2, $3)", e);
    }
    if (move_cursor) {
      Args c;
      c.AddText(key);
      c.AddInt8(page.until);
      c.AddInt8(static_cast<int64_t>(WallClockMillis()));
      RunSql("UPDATE deltasync.hubs SET pull_cursor = GREATEST(pull_cursor, $2), last_sync_ms = $3 WHERE hub = $1", c);
    }
    return r;
  }

  // The page, its cursor and the hub's frontier as this answer told it (common/compaction
  // AdvanceFrontier), in the pull's one transaction. The record is read once per call and
  // written when it changes (most pages of a pull leave it as it was).
  ApplyResult ApplyPulledPage(const std::string& key, const Payload& page, const PulledPage& facts) override {
    ApplyResult r = ApplyPage(key, page, true);
    if (facts.frontier < 0) return r;
    AsOwner as;
    auto known = frontiers_.find(key);
    if (known == frontiers_.end()) {
      Args k;
      k.AddText(key);
      RunSql("SELECT frontier, mark_ver, mark_seq, safe_ver FROM deltasync.hub_frontier WHERE hub = $1", k);
      std::optional<HubFrontier> stored;
      if (SPI_processed == 1) stored = HubFrontier{ResultInt(0, 0), ResultInt(0, 1), ResultInt(0, 2), ResultInt(0, 3)};
      known = frontiers_.emplace(key, stored).first;
    }
    const HubFrontier before = known->second.value_or(HubFrontier{});
    const HubFrontier f = AdvanceFrontier(before, facts, page.until);
    if (known->second && f.frontier == before.frontier && f.mark_ver == before.mark_ver &&
        f.mark_seq == before.mark_seq && f.safe_ver == before.safe_ver)
      return r;
    known->second = f;
    Args put;
    put.AddText(key);
    put.AddInt8(f.frontier);
    put.AddInt8(f.mark_ver);
    put.AddInt8(f.mark_seq);
    put.AddInt8(f.safe_ver);
    RunSql("INSERT INTO deltasync.hub_frontier (hub, frontier, mark_ver, mark_seq, safe_ver) VALUES ($1, $2, $3, $4, $5)"
           " ON CONFLICT (hub) DO UPDATE SET frontier = excluded.frontier, mark_ver = excluded.mark_ver,"
           " mark_seq = excluded.mark_seq, safe_ver = excluded.safe_ver",
           put);
    return r;
  }

  // In a subtransaction of the pull's: a compaction that fails (a lock timeout, say) is
  // reported in the pull's result and undone alone, and the next pull tries again. A cancel
  // or shutdown still ends the call.
  Json CompactIfDue() override {
    try {
      SubTransaction sub;
      Json r = pg::CompactSite(CompactOptions{}, true);
      sub.Commit();
      return r;
    } catch (const PgError& e) {
      if (ERRCODE_TO_CATEGORY(e.sqlstate()) == ERRCODE_OPERATOR_INTERVENTION) throw;
      return Json{{"error", e.Joined()}};
    } catch (const Error& e) {
      return Json{{"error", e.Joined()}};
    }
  }

  // A success commits with the call; a failure aborts the call's transaction, so a worker
  // records it (pg_health.cpp).
  void RecordOutcome(const std::string& key, const std::string& error, int64_t at_ms) override {
    if (!error.empty()) {
      RecordHubFailure(key, error, at_ms);
      return;
    }
    AsOwner as;
    Args a;
    a.AddText(key);
    a.AddInt8(at_ms);
    RunSql("UPDATE deltasync.hubs SET last_success_ms = $2, failures = 0, failing_since_ms = NULL,"
           " last_error = NULL, last_error_ms = NULL WHERE hub = $1",
           a);
  }

  bool ForgetHub(const std::string& key) override {
    AsOwner as;
    Args a;
    a.AddText(key);
    RunSql("DELETE FROM deltasync.hub_echo WHERE hub = $1", a);
    RunSql("DELETE FROM deltasync.hub_frontier WHERE hub = $1", a);
    frontiers_.erase(key);
    RunSql("DELETE FROM deltasync.sync_progress WHERE hub = $1", a);
    return RunSql("DELETE FROM deltasync.hubs WHERE hub = $1", a) > 0;
  }

  // Re-synchronisation (docs/operations.md, "A site that comes back after the retention
  // period"): the keys the hub sent, by lower-case table name and canonical key encoding, in
  // this call's memory (the call is one transaction: a failure leaves nothing to clean up).
  void BeginResync() override { seen_.clear(); }
  void NoteSeen(const Payload& page) override {
    for (const TableChanges& t : page.tables) {
      std::unordered_set<std::string>& keys = seen_[LowerName(t.name)];
      for (const RowChanges& r : t.rows) keys.insert(EncodeKey(r.key));
    }
  }
  // Every live row the hub did not send whose life had reached it (its shared clock at or
  // below the push cursor, or applied from it) goes, without recording a change: the base
  // row is deleted with session_replication_role = replica (no capture, no application
  // trigger, as an apply writes), and its shadow row becomes a tombstone one causal length
  // past the life it ended, at its old version (sent by no incremental pass), so a later
  // re-insert here starts a newer life than any site holding the delete. The tables are
  // locked as an apply locks them, so the rows read are the rows removed.
  uint64_t RemoveUnseen(const std::string& key) override {
    HubRecord h = LoadHub(key);
    VersionRanges echo = EchoRanges(key, 0);
    AsOwner as;
    uint64_t removed = 0;
    for (const TableInfo& t : Backend::Get().LoadTables()) {
      if (t.State() != TableState::kTracked) continue;
      const int n = static_cast<int>(t.pk.size());
      auto seen = seen_.find(LowerName(t.name));
      RunSql("LOCK TABLE " + t.q_name + ", " + t.q_meta + " IN SHARE ROW EXCLUSIVE MODE");
      RunSql("SELECT " + ShadowKeyList(t.pk.size()) + ", " + kShadowColumns + ", ctid::text FROM " + t.q_meta +
             " WHERE (cl & 1) = 1");
      std::string gone;  // the shadow rows' ctids, as the elements of a tid[] literal
      uint64_t count = 0;
      {
        Rows rows;
        for (uint64_t r = 0; r < rows.size(); ++r) {
          ShadowRow sr = ReadShadowRow(rows, r, n);
          int64_t life = sr.clocks.Base().ver;  // where this life's whole row was written here
          if (life > h.push_cursor && !InRanges(echo, life)) continue;  // a row of this site's own, unsent
          std::vector<Value> wire;
          bool isnull = false;
          for (int k = 0; k < n; ++k) wire.push_back(ToValue(t.pk_types[k], rows.Get(r, k, &isnull), isnull));
          if (seen != seen_.end() && seen->second.count(EncodeKey(wire))) continue;
          gone += (gone.empty() ? "\"" : ",\"") + rows.Text(r, n + 5) + "\"";
          ++count;
        }
      }
      if (count == 0) continue;
      Args a;
      a.AddText("{" + gone + "}");
      std::vector<std::string> qpk;
      for (const auto& c : t.pk) qpk.push_back(QuoteIdent(c));
      {
        QuietDdl replica;  // session_replication_role = replica for these statements
        RunSql("DELETE FROM " + t.q_name + " AS b USING " + t.q_meta + " AS m WHERE m.ctid = ANY ($1::text::tid[]) AND " +
                   KeyEquality(t, "b", qpk, "m", ShadowKeyNames(t.pk.size())),
               a);
      }
      RunSql("UPDATE " + t.q_meta + " SET cl = cl + 1, clk = NULL WHERE ctid = ANY ($1::text::tid[])", a);
      removed += count;
    }
    seen_.clear();
    return removed;
  }

 private:
  // A payload's table name as resync compares it (ASCII lower case, as SQLite's lower()).
  static std::string LowerName(std::string s) {
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  }
  std::optional<std::string> saved_activity_;  // the query text the progress replaced
  std::unordered_map<std::string, std::unordered_set<std::string>> seen_;  // resync: table -> keys
  // Each hub's frontier record as this call last read or wrote it (none stored: nullopt).
  std::unordered_map<std::string, std::optional<HubFrontier>> frontiers_;
};

SyncOptions OptionsArg(FunctionCallInfo fcinfo) { return ParseSyncOptions(JsonbArgText(fcinfo, 1)); }

template <typename Body>
Datum RunSync(FunctionCallInfo fcinfo, const char* fn, Body&& body) {
  std::string url = TextArg(fcinfo, 0, (std::string(fn) + "(url)").c_str());
  SyncOptions options = OptionsArg(fcinfo);
  // libcurl polls this; a cancel or statement_timeout sets QueryCancelPending.
  options.http.should_abort = [] { return QueryCancelPending || ProcDiePending; };
  SpiSession spi;
  RequireCurrentCatalog(fn);  // the hubs table's health columns came with 0.2.0
  PgSyncSite site;
  HubLink link(site, url, std::move(options));
  Json result = body(link);
  spi.Finish();
  return JsonbResult(result);
}

}  // namespace

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_push) {
  return RunSync(fcinfo, "deltasync_push", [](HubLink& l) { return l.Push(); });
}

DELTASYNC_PG_FUNCTION(deltasync_pull) {
  return RunSync(fcinfo, "deltasync_pull", [](HubLink& l) { return l.Pull(); });
}

DELTASYNC_PG_FUNCTION(deltasync_forget) {
  std::string url = TextArg(fcinfo, 0, "deltasync_forget(url)");
  SpiSession spi;
  RequireCurrentCatalog("deltasync_forget");
  Json result;
  {
    PgSyncSite site;
    result = ForgetHub(site, url);
  }
  spi.Finish();
  return JsonbResult(result);
}

DELTASYNC_PG_FUNCTION(deltasync_sync) {
  return RunSync(fcinfo, "deltasync_sync", [](HubLink& l) { return l.Sync(); });
}
