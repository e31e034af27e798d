#pragma once
// deltasync_status(), once for both engines (docs/protocol.md): the engine reports facts
// through a StatusPort, this file turns them into the one document with one vocabulary.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/shadow_row.hpp"
#include "common/sync_progress.hpp"

namespace deltasync {

// A tracked table's state. kDropped: the base table is gone; its changes are no longer
// served or applied. kNeedsEnable: the base table exists but its capture triggers do not
// (it was dropped and created again): writes escape capture until deltasync_enable.
enum class TableState { kTracked, kDropped, kNeedsEnable, kBroken };
// The state's name in the status document: tracked, dropped, needs_enable, broken (changed
// in a way deltasync cannot serve; its "error" says how).
const char* TableStateName(TableState state);

// A hub's health as the site stores it (persisted, so every connection sees it): the
// current failure streak and the last success. A success ends the streak.
struct HubHealth {
  std::string last_error;               // empty when the last call succeeded
  std::optional<int64_t> last_error_ms;  // when the last failure happened
  std::optional<int64_t> failing_since_ms;  // first failure of the current streak
  std::optional<int64_t> last_success_ms;
  int64_t failures = 0;  // consecutive failed calls, 0 after a success
};

// What the status document asks of an engine: its storage, read only.
class StatusPort {
 public:
  struct Table {
    std::string name;
    TableState state = TableState::kTracked;
    std::vector<std::string> pk, cols;
    nlohmann::json column_options = nlohmann::json::object();  // {"<column>": {"uuid": "hex32"}}: shown when not empty
    std::string error = std::string();  // kBroken: why
  };
  struct Hub {
    std::string hub;
    int64_t push_cursor = 0, pull_cursor = 0;
    std::optional<int64_t> last_sync_ms;
    HubHealth health;
    // Compaction on sites (common/compaction): the hub's frontier as last heard, and the
    // version up to which this hub lets tombstones become graves; none where not kept.
    std::optional<int64_t> frontier, compactable_to;
  };
  // A stored schedule (deltasync_schedule): never its options, which hold the token.
  struct Schedule {
    std::string hub, url;
    int64_t interval_ms = 0;
  };
  virtual ~StatusPort() = default;
  // The tracked tables, in catalog order.
  virtual std::vector<Table> Tables() = 0;
  // Calls `row` with each shadow row of Tables()[table] (a table that exists).
  virtual void ScanShadowRows(size_t table, const std::function<void(const ShadowRow&)>& row) = 0;
  // The hubs this site has synced with, ordered by URL.
  virtual std::vector<Hub> Hubs() = 0;
  // The stored schedules, ordered by hub; none on an engine that does not keep them yet.
  virtual std::vector<Schedule> Schedules() { return {}; }
  // The last long push and pull with each hub, under way or ended (common/sync_progress),
  // ordered by hub then direction; none on an engine that keeps no progress.
  virtual std::vector<SyncProgress> Syncs() { return {}; }
  // Changes newer than `since`, counted as deltasync_apply counts them.
  virtual uint64_t CountChangesSince(int64_t since) = 0;
  // Rows in quarantine (common/quarantine.hpp).
  virtual uint64_t QuarantinedRows() = 0;
  // Changes kept for columns this site does not have yet (common/pending_cells).
  virtual uint64_t KeptChanges() = 0;
  virtual std::string SiteIdText() = 0;
  virtual int64_t DbVersion() = 0;
};

// The deltasync_status() document.
nlohmann::json StatusDocument(StatusPort& port);

}  // namespace deltasync
