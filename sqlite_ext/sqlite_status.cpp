// deltasync_version, deltasync_site_id, deltasync_db_version and deltasync_status.
#include <nlohmann/json.hpp>

#include "common/merge.hpp"
#include "common/row_clocks.hpp"
#include "common/version.hpp"
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
    // No hub has been configured on this site yet, so every change it holds is unpushed.
    nlohmann::json status = {{"version", kVersion},
                             {"site_id", conn.LocalSite().ToString()},
                             {"db_version", conn.CurrentDbVersion()},
                             {"tables", tables},
                             {"pending_changes", pending},
                             {"hubs", nlohmann::json::array()}};
    ResultText(ctx, status.dump());
  });
}

}  // namespace deltasync
