// deltasync_version, deltasync_site_id, deltasync_db_version and deltasync_status.
#include <nlohmann/json.hpp>

#include "common/site_status.hpp"
#include "common/version.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

void FnVersion(sqlite3_context* ctx, int, sqlite3_value**) {
  sqlite3_result_text(ctx, kVersion, -1, SQLITE_STATIC);
}

void FnSiteId(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { ResultText(ctx, ConnOf(ctx).LocalSite().ToString()); });
}

void FnDbVersion(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { sqlite3_result_int64(ctx, ConnOf(ctx).SafeVersion()); });
}

namespace {

// The facts of deltasync_status() on SQLite (common/site_status.hpp builds the document).
class SqliteStatus : public StatusPort {
 public:
  explicit SqliteStatus(Conn& conn) : conn_(conn) {}

  std::vector<Table> Tables() override {
    infos_ = conn_.LoadTables();
    std::vector<Table> out;
    for (const TableInfo& t : infos_)
      out.push_back(Table{t.name, t.state, t.pk, t.cols, ColumnOptionsJson(t.pk, t.cols, t.reprs, t.policies)});
    return out;
  }

  void ScanShadowRows(size_t table, const std::function<void(const ShadowRow&)>& row) override {
    Stmt s(conn_.db(), std::string("SELECT ") + kShadowColumns + " FROM " + infos_[table].q_meta);
    while (s.Step()) row(ReadShadowRow(s, 0));
  }

  std::vector<Hub> Hubs() override {
    std::vector<Hub> out;
    Stmt h(conn_.db(),
           "SELECT h.hub, h.push_cursor, h.pull_cursor, h.last_sync_ms, x.last_error, x.last_error_ms,"
           " x.failing_since_ms, x.last_success_ms, coalesce(x.failures, 0), f.frontier, min(f.safe_ver, h.push_cursor)"
           " FROM deltasync_hubs h LEFT JOIN deltasync_hub_health x ON x.hub = h.hub"
           " LEFT JOIN deltasync_hub_frontier f ON f.hub = h.hub ORDER BY h.hub");
    auto opt = [&](int c) { return h.IsNull(c) ? std::nullopt : std::optional<int64_t>(h.Int(c)); };
    while (h.Step()) {
      Hub hub{std::string(h.Text(0)), h.Int(1), h.Int(2), opt(3), {}, opt(9), opt(10)};
      hub.health.last_error = h.IsNull(4) ? "" : std::string(h.Text(4));
      hub.health.last_error_ms = opt(5);
      hub.health.failing_since_ms = opt(6);
      hub.health.last_success_ms = opt(7);
      hub.health.failures = h.Int(8);
      out.push_back(std::move(hub));
    }
    return out;
  }

  std::vector<Schedule> Schedules() override {
    std::vector<Schedule> out;
    Stmt s(conn_.db(), "SELECT hub, url, interval_ms FROM deltasync_schedules ORDER BY hub");
    while (s.Step()) out.push_back(Schedule{std::string(s.Text(0)), std::string(s.Text(1)), s.Int(2)});
    return out;
  }

  std::vector<SyncProgress> Syncs() override {
    conn_.EnsureSchema();
    std::vector<SyncProgress> out;
    Stmt s(conn_.db(),
           "SELECT hub, direction, state, since_ms, updated_ms, rows_done, rows_expected, rows_per_s, eta_ms"
           " FROM deltasync_sync_progress ORDER BY hub, direction");
    while (s.Step()) {
      SyncProgress p;
      p.hub = std::string(s.Text(0));
      p.direction = std::string(s.Text(1));
      std::string state(s.Text(2));
      p.state = state == "done" ? ProgressState::kDone : state == "failed" ? ProgressState::kFailed : ProgressState::kRunning;
      p.since_ms = s.Int(3);
      p.updated_ms = s.Int(4);
      p.done = static_cast<uint64_t>(s.Int(5));
      p.expected = s.IsNull(6) ? 0 : static_cast<uint64_t>(s.Int(6));
      p.rows_per_s = static_cast<double>(s.Int(7));
      if (!s.IsNull(8)) p.eta_ms = s.Int(8);
      out.push_back(std::move(p));
    }
    return out;
  }

  uint64_t CountChangesSince(int64_t since) override {
    uint64_t n = 0;
    for (const TableChanges& t : CollectChanges(conn_, since, {}, true).tables) n += CountChanges(t);
    return n;
  }

  uint64_t QuarantinedRows() override {
    conn_.EnsureSchema();
    Stmt s(conn_.db(), "SELECT count(*) FROM deltasync_quarantine");
    return s.Step() ? static_cast<uint64_t>(s.Int(0)) : 0;
  }

  uint64_t KeptChanges() override {
    conn_.EnsureSchema();
    Stmt s(conn_.db(), "SELECT count(*) FROM deltasync_pending");
    return s.Step() ? static_cast<uint64_t>(s.Int(0)) : 0;
  }

  std::string SiteIdText() override { return conn_.LocalSite().ToString(); }
  int64_t DbVersion() override { return conn_.SafeVersion(); }

 private:
  Conn& conn_;
  std::vector<TableInfo> infos_;
};

}  // namespace

void FnStatus(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] {
    SqliteStatus port(ConnOf(ctx));
    ResultText(ctx, StatusDocument(port).dump());
  });
}

}  // namespace deltasync
