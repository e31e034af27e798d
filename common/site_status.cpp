#include "common/site_status.hpp"

#include "common/merge.hpp"
#include "common/version.hpp"

namespace deltasync {

const char* TableStateName(TableState state) {
  switch (state) {
    case TableState::kTracked: return "tracked";
    case TableState::kDropped: return "dropped";
    case TableState::kNeedsEnable: return "needs_enable";
    case TableState::kBroken: return "broken";
  }
  return "?";
}

nlohmann::json StatusDocument(StatusPort& port) {
  using Json = nlohmann::json;
  Json tables = Json::array();
  uint64_t pending = 0;
  std::vector<StatusPort::Table> infos = port.Tables();
  for (size_t k = 0; k < infos.size(); ++k) {
    const StatusPort::Table& t = infos[k];
    if (t.state == TableState::kDropped) {
      tables.push_back({{"table", t.name}, {"state", TableStateName(t.state)}});
      continue;
    }
    // A deleted row is one existence change; a live one a change per column with a clock
    // (one existence change when it has none), as deltasync_apply counts them.
    uint64_t live = 0, deleted = 0;
    port.ScanShadowRows(k, [&](const ShadowRow& shadow) {
      if (!RowExists(shadow.cl)) {
        ++deleted;
        ++pending;
        return;
      }
      ++live;
      uint64_t cols = 0;
      for (uint32_t c = 0; c < t.cols.size(); ++c) cols += shadow.clocks.Get(c).Present() ? 1 : 0;
      pending += cols ? cols : 1;
    });
    tables.push_back({{"table", t.name}, {"state", TableStateName(t.state)}, {"pk", t.pk}, {"columns", t.cols},
                      {"rows", live}, {"deleted", deleted}});
    if (!t.column_options.empty()) tables.back()["column_options"] = t.column_options;
    if (!t.error.empty()) tables.back()["error"] = t.error;
  }
  // Per hub: cursors, last sync and health as stored.
  Json hubs = Json::array();
  int64_t min_push = -1;
  auto opt = [](const std::optional<int64_t>& v) { return v ? Json(*v) : Json(); };
  for (const StatusPort::Hub& h : port.Hubs()) {
    const HubHealth& hh = h.health;
    Json e = {{"hub", h.hub},
              {"push_cursor", h.push_cursor},
              {"pull_cursor", h.pull_cursor},
              {"last_sync_ms", opt(h.last_sync_ms)},
              {"last_success_ms", opt(hh.last_success_ms)},
              {"last_error", hh.last_error.empty() ? Json() : Json(hh.last_error)},
              {"last_error_ms", hh.last_error.empty() ? Json() : opt(hh.last_error_ms)},
              {"failing_since_ms", hh.failures > 0 ? opt(hh.failing_since_ms) : Json()},
              {"failures", hh.failures},
              {"frontier", opt(h.frontier)},
              {"compactable_to", opt(h.compactable_to)}};
    hubs.push_back(e);
    if (min_push < 0 || h.push_cursor < min_push) min_push = h.push_cursor;
  }
  // pending_changes: what the least advanced hub has not received yet (every change when
  // no hub is known).
  if (min_push > 0) pending = port.CountChangesSince(min_push);
  Json schedules = Json::array();
  for (const StatusPort::Schedule& s : port.Schedules())
    schedules.push_back({{"hub", s.hub}, {"url", s.url}, {"interval_ms", s.interval_ms}});
  Json syncs = Json::array();
  for (const SyncProgress& p : port.Syncs()) syncs.push_back(ProgressJson(p));
  return Json{{"version", kVersion},   {"site_id", port.SiteIdText()}, {"db_version", port.DbVersion()},
              {"tables", tables},      {"pending_changes", pending},   {"hubs", hubs},
              {"schedules", schedules},  {"quarantined", port.QuarantinedRows()}, {"kept", port.KeptChanges()},
              {"syncs", syncs}};
}

}  // namespace deltasync
