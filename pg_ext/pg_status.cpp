// deltasync_version, deltasync_site_id, deltasync_db_version and deltasync_status.
#include "common/merge.hpp"
#include "common/version.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_version) { return TextResult(kVersion); }

DELTASYNC_PG_FUNCTION(deltasync_site_id) {
  SpiSession spi;
  std::string id = Backend::Get().LocalSite().ToString();
  spi.Finish();
  return TextResult(id);
}

DELTASYNC_PG_FUNCTION(deltasync_db_version) {
  SpiSession spi;
  int64_t v = Backend::Get().SafeVersion();
  spi.Finish();
  PG_RETURN_INT64(v);
}

DELTASYNC_PG_FUNCTION(deltasync_status) {
  using Json = nlohmann::json;
  SpiSession spi;
  Backend& b = Backend::Get();
  Json tables = Json::array();
  uint64_t pending = 0;
  std::vector<TableInfo> infos = b.LoadTables();
  {
    AsOwner as;
    for (const TableInfo& t : infos) {
      if (t.dropped) {
        tables.push_back({{"table", t.name}, {"state", "dropped"}});
        continue;
      }
      RunSql(std::string("SELECT ") + kShadowColumns + " FROM " + t.q_meta, {});
      Rows rows;
      uint64_t live = 0, deleted = 0;
      for (uint64_t r = 0; r < rows.size(); ++r) {
        ShadowRow shadow = ReadShadowRow(rows, r, 0);
        if (!RowExists(shadow.cl)) {
          ++deleted;
          ++pending;
          continue;
        }
        ++live;
        uint64_t cols = 0;
        for (uint32_t c = 0; c < t.cols.size(); ++c) cols += shadow.clocks.Get(c).Present() ? 1 : 0;
        pending += cols ? cols : 1;
      }
      tables.push_back({{"table", t.name}, {"state", "ok"}, {"pk", t.pk}, {"columns", t.cols}, {"rows", live},
                        {"deleted", deleted}});
    }
  }
  // Per hub: cursors and last sync from deltasync.hubs, last error from this backend.
  Json hubs = Json::array();
  int64_t min_push = -1;
  {
    AsOwner as;
    RunSql("SELECT hub, push_cursor, pull_cursor, last_sync_ms FROM deltasync.hubs ORDER BY hub");
    Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) {
      std::string hub = rows.Text(r, 0);
      Json e = {{"hub", hub}, {"push_cursor", rows.Int(r, 1)}, {"pull_cursor", rows.Int(r, 2)},
                {"last_sync_ms", rows.IsNull(r, 3) ? Json() : Json(rows.Int(r, 3))}, {"last_error", nullptr}};
      auto err = b.hub_errors().find(hub);
      if (err != b.hub_errors().end() && !err->second.second.empty()) {
        e["last_error"] = err->second.second;
        e["last_error_ms"] = err->second.first;
      }
      hubs.push_back(e);
      if (min_push < 0 || rows.Int(r, 1) < min_push) min_push = rows.Int(r, 1);
    }
  }
  // pending_changes: what the least advanced hub has not received yet (every change when
  // no hub is known).
  if (min_push > 0) {
    pending = 0;
    for (const TableChanges& t : CollectChanges(min_push).tables) pending += CountChanges(t);
  }
  Json status = {{"version", kVersion}, {"site_id", b.LocalSite().ToString()}, {"db_version", b.SafeVersion()},
                 {"tables", tables},    {"pending_changes", pending},         {"hubs", hubs}};
  spi.Finish();
  return JsonbResult(status);
}
