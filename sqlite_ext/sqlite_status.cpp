// deltasync_version, deltasync_site_id, deltasync_db_version and deltasync_status.
#include <nlohmann/json.hpp>

#include "common/merge.hpp"
#include "common/row_clocks.hpp"
#include "common/version.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

void FnVersion(sqlite3_context* ctx, int, sqlite3_value**) {
  sqlite3_result_text(ctx, kVersion, -1, SQLITE_STATIC);
}

void FnSiteId(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { ResultText(ctx, ConnOf(ctx).LocalSite().ToString()); });
}

void FnDbVersion(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { sqlite3_result_int64(ctx, ConnOf(ctx).CurrentDbVersion()); });
}

namespace {
// Changes newer than `since`, counted as deltasync_apply counts them.
uint64_t CountPending(Conn& conn, int64_t since) {
  uint64_t n = 0;
  for (const TableChanges& t : CollectChanges(conn, since).tables) n += CountChanges(t);
  return n;
}
}  // namespace

void FnStatus(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    nlohmann::json tables = nlohmann::json::array();
    uint64_t pending = 0;
    for (const TableInfo& t : conn.LoadTables()) {
      uint64_t live = 0, deleted = 0;
      if (t.state == TableInfo::State::kDropped) {
        tables.push_back({{"table", t.name}, {"state", t.StateName()}});
        continue;
      }
      Stmt s(conn.db(), std::string("SELECT ") + kShadowColumns + " FROM " + t.q_meta);
      while (s.Step()) {
        ShadowRow shadow = ReadShadowRow(s, 0);
        if (!RowExists(shadow.cl)) {
          ++deleted;
          ++pending;
          continue;
        }
        ++live;
        const RowClocks& clocks = shadow.clocks;
        uint64_t cols = 0;
        for (uint32_t c = 0; c < t.cols.size(); ++c) cols += clocks.Get(c).Present() ? 1 : 0;
        pending += cols ? cols : 1;
      }
      tables.push_back({{"table", t.name}, {"state", t.StateName()}, {"pk", t.pk}, {"columns", t.cols},
                        {"rows", live}, {"deleted", deleted}});
    }
    // Per hub: cursors and last sync from deltasync_hubs, last error from this connection.
    nlohmann::json hubs = nlohmann::json::array();
    int64_t min_push = -1;
    Stmt h(conn.db(), "SELECT hub, push_cursor, pull_cursor, last_sync_ms FROM deltasync_hubs ORDER BY hub");
    while (h.Step()) {
      std::string hub(h.Text(0));
      nlohmann::json e = {{"hub", hub}, {"push_cursor", h.Int(1)}, {"pull_cursor", h.Int(2)},
                          {"last_sync_ms", h.IsNull(3) ? nlohmann::json() : nlohmann::json(h.Int(3))},
                          {"last_error", nullptr}};
      auto err = conn.hub_errors().find(hub);
      if (err != conn.hub_errors().end() && !err->second.second.empty()) {
        e["last_error"] = err->second.second;
        e["last_error_ms"] = err->second.first;
      }
      hubs.push_back(e);
      if (min_push < 0 || h.Int(1) < min_push) min_push = h.Int(1);
    }
    // pending_changes: what the least advanced hub has not received yet (every change when
    // no hub is known).
    if (min_push > 0) pending = CountPending(conn, min_push);
    nlohmann::json status = {{"version", kVersion},
                             {"site_id", conn.LocalSite().ToString()},
                             {"db_version", conn.CurrentDbVersion()},
                             {"tables", tables},
                             {"pending_changes", pending},
                             {"hubs", hubs}};
    ResultText(ctx, status.dump());
  });
}

}  // namespace deltasync
