#pragma once
// deltasync_status(), once for both engines (docs/protocol.md): the engine reports facts
// through a StatusPort, this file turns them into the one document with one vocabulary.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/shadow_row.hpp"

namespace deltasync {

// A tracked table's state. kDropped: the base table is gone; its changes are no longer
// served or applied. kNeedsEnable: the base table exists but its capture triggers do not
// (it was dropped and created again): writes escape capture until deltasync_enable.
enum class TableState { kTracked, kDropped, kNeedsEnable };
// The state's name in the status document: tracked, dropped, needs_enable.
const char* TableStateName(TableState state);

// The last error of a network call per hub URL, with its time (a success clears it).
class HubErrors {
 public:
  struct Entry {
    int64_t at_ms = 0;
    std::string message;  // empty after a success
  };
  // Records a call's outcome: an empty message clears the hub's error.
  void Record(const std::string& hub, const std::string& message);
  // The hub's last error, or nullptr when it has none.
  const Entry* Find(const std::string& hub) const;

 private:
  std::map<std::string, Entry> by_hub_;
};

// What the status document asks of an engine: its storage, read only.
class StatusPort {
 public:
  struct Table {
    std::string name;
    TableState state = TableState::kTracked;
    std::vector<std::string> pk, cols;
  };
  struct Hub {
    std::string hub;
    int64_t push_cursor = 0, pull_cursor = 0;
    std::optional<int64_t> last_sync_ms;
  };
  virtual ~StatusPort() = default;
  // The tracked tables, in catalog order.
  virtual std::vector<Table> Tables() = 0;
  // Calls `row` with each shadow row of Tables()[table] (a table that exists).
  virtual void ScanShadowRows(size_t table, const std::function<void(const ShadowRow&)>& row) = 0;
  // The hubs this site has synced with, ordered by URL.
  virtual std::vector<Hub> Hubs() = 0;
  virtual const HubErrors& Errors() = 0;
  // Changes newer than `since`, counted as deltasync_apply counts them.
  virtual uint64_t CountChangesSince(int64_t since) = 0;
  virtual std::string SiteIdText() = 0;
  virtual int64_t DbVersion() = 0;
};

// The deltasync_status() document.
nlohmann::json StatusDocument(StatusPort& port);

}  // namespace deltasync
