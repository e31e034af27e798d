// deltasync_version, deltasync_site_id, deltasync_db_version and deltasync_status.
#include <algorithm>
#include <tuple>

#include "common/site_status.hpp"
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

namespace {

// The facts of deltasync_status() on PostgreSQL (common/site_status.hpp builds the
// document). Internal tables are read as the extension's owner.
class PgStatus : public StatusPort {
 public:
  std::vector<Table> Tables() override {
    infos_ = Backend::Get().LoadTables();
    std::vector<Table> out;
    // What is tracked, its row counts and the hubs' URLs are for roles that may read every
    // tracked table (as deltasync_changes is), not for anyone who can connect.
    for (const TableInfo& t : infos_)
      if (!t.dropped) CheckAccess(t, Access::kRead);
    for (const TableInfo& t : infos_) {
      out.push_back(Table{t.name, t.State(), t.pk, t.cols, ColumnOptionsJson(t.cols, t.policies)});
      if (t.State() == TableState::kBroken) out.back().error = BrokenMessage(t);
    }
    return out;
  }

  void ScanShadowRows(size_t table, const std::function<void(const ShadowRow&)>& row) override {
    AsOwner as;
    RunSql(std::string("SELECT ") + kShadowColumns + " FROM " + infos_[table].q_meta, {});
    Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) row(ReadShadowRow(rows, r, 0));
  }

  std::vector<Hub> Hubs() override {
    std::vector<Hub> out;
    AsOwner as;
    RunSql("SELECT h.hub, h.push_cursor, h.pull_cursor, h.last_sync_ms, h.last_error, h.last_error_ms,"
           " h.failing_since_ms, h.last_success_ms, h.failures, f.frontier,"
           " CASE WHEN f.hub IS NOT NULL THEN LEAST(f.safe_ver, h.push_cursor) END"
           " FROM deltasync.hubs AS h LEFT JOIN deltasync.hub_frontier AS f ON f.hub = h.hub ORDER BY h.hub");
    Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) {
      auto opt = [&](int c) { return rows.IsNull(r, c) ? std::nullopt : std::optional<int64_t>(rows.Int(r, c)); };
      Hub hub{rows.Text(r, 0), rows.Int(r, 1), rows.Int(r, 2), opt(3), {}, opt(9), opt(10)};
      hub.health.last_error = rows.IsNull(r, 4) ? "" : rows.Text(r, 4);
      hub.health.last_error_ms = opt(5);
      hub.health.failing_since_ms = opt(6);
      hub.health.last_success_ms = opt(7);
      hub.health.failures = rows.Int(r, 8);
      out.push_back(std::move(hub));
    }
    return out;
  }

  uint64_t CountChangesSince(int64_t since) override {
    uint64_t n = 0;
    for (const TableChanges& t : CollectChanges(since).tables) n += CountChanges(t);
    return n;
  }

  uint64_t QuarantinedRows() override {
    AsOwner as;
    RunSql("SELECT count(*) FROM deltasync.quarantine");
    return static_cast<uint64_t>(ResultInt(0, 0));
  }

  uint64_t KeptChanges() override {
    AsOwner as;
    RunSql("SELECT count(*) FROM deltasync.pending");
    return static_cast<uint64_t>(ResultInt(0, 0));
  }

  std::vector<Schedule> Schedules() override {
    AsOwner as;
    RunSql("SELECT hub, url, interval_ms FROM deltasync.schedules ORDER BY hub");
    std::vector<Schedule> out;
    for (uint64_t r = 0; r < SPI_processed; ++r) out.push_back(Schedule{ResultText(r, 0), ResultText(r, 1), ResultInt(r, 2)});
    return out;
  }

  // The pushes and pulls under way in other backends of this database (sessions and the
  // schedule workers): a long call shows its progress as its pg_stat_activity query text
  // (pg_sync.cpp), read here as the extension's owner; and for each hub and direction with
  // none under way, the last long call that ended well (deltasync.sync_progress).
  std::vector<SyncProgress> Syncs() override {
    AsOwner as;
    RunSql("SELECT query, (extract(epoch FROM state_change) * 1000)::int8 FROM pg_stat_activity"
           " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"
           " AND (query LIKE 'deltasync push %' OR query LIKE 'deltasync pull %')");
    std::vector<SyncProgress> out;
    for (uint64_t r = 0; r < SPI_processed; ++r)
      if (auto p = ParseProgressLine(ResultText(r, 0), ResultInt(r, 1))) out.push_back(std::move(*p));
    const size_t running = out.size();
    RunSql("SELECT hub, direction, state, since_ms, updated_ms, rows_done, rows_expected, rows_per_s, eta_ms"
           " FROM deltasync.sync_progress");
    const Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) {
      SyncProgress p;
      p.hub = rows.Text(r, 0);
      p.direction = rows.Text(r, 1);
      const std::string state = rows.Text(r, 2);
      p.state = state == "done" ? ProgressState::kDone : state == "failed" ? ProgressState::kFailed : ProgressState::kRunning;
      p.since_ms = rows.Int(r, 3);
      p.updated_ms = rows.Int(r, 4);
      p.done = static_cast<uint64_t>(rows.Int(r, 5));
      p.expected = rows.IsNull(r, 6) ? 0 : static_cast<uint64_t>(rows.Int(r, 6));
      p.rows_per_s = static_cast<double>(rows.Int(r, 7));
      if (!rows.IsNull(r, 8)) p.eta_ms = rows.Int(r, 8);
      bool under_way = std::any_of(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(running), [&](const SyncProgress& q) {
        return q.hub == p.hub && q.direction == p.direction;
      });
      if (!under_way) out.push_back(std::move(p));
    }
    std::sort(out.begin(), out.end(), [](const SyncProgress& a, const SyncProgress& b) {
      return std::tie(a.hub, a.direction, a.since_ms) < std::tie(b.hub, b.direction, b.since_ms);
    });
    return out;
  }

  std::string SiteIdText() override { return Backend::Get().LocalSite().ToString(); }
  int64_t DbVersion() override { return Backend::Get().SafeVersion(); }

 private:
  std::vector<TableInfo> infos_;
};

}  // namespace

DELTASYNC_PG_FUNCTION(deltasync_status) {
  SpiSession spi;
  RequireCurrentCatalog("deltasync_status");
  nlohmann::json status;
  {
    PgStatus port;
    status = StatusDocument(port);
  }
  spi.Finish();
  return JsonbResult(status);
}
