#pragma once
// The apply loop, once for both engines: the payload's clock check, each payload table
// mapped onto a local one, and per row: read the local clocks, decide (common/merge),
// write the base row, write the clocks, count. The engine implements the port below with
// its storage operations only.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/shadow_row.hpp"

namespace deltasync {

// A tracked table's names as the loops match payload names against them.
struct TableNames {
  const std::string& name;
  const std::vector<std::string>& pk;
  const std::vector<std::string>& cols;  // non-key columns, in table order
};

// One base-row column an apply writes: its local index and the winning value.
struct ColumnWrite {
  uint32_t column;
  const Value* value;
};

// One local table as an apply writes it. Each row starts with ReadShadow; the row's later
// calls name the same key, so an engine may reuse what it prepared for it there.
class ApplyTable {
 public:
  virtual ~ApplyTable() = default;
  virtual TableNames Names() const = 0;
  // Reads the row's shadow row into `out`; leaves `out` as it is when there is none.
  virtual void ReadShadow(const std::vector<Value>& key, ShadowRow& out) = 0;
  virtual void DeleteRow(const std::vector<Value>& key) = 0;
  // UPDATEs exactly `cols` of the row; false when no base row was there.
  virtual bool UpdateRow(const std::vector<Value>& key, const std::vector<ColumnWrite>& cols) = 0;
  // INSERTs the row with its key and `cols` (ON CONFLICT of the key: sets `cols`).
  virtual void InsertRow(const std::vector<Value>& key, const std::vector<ColumnWrite>& cols) = 0;
  // Writes the row's shadow row: causal length, version and clocks in stored form.
  virtual void WriteShadow(const std::vector<Value>& key, int64_t cl, int64_t ver, const RowClocks& clocks) = 0;
};

// What the apply loop asks of an engine.
class ApplyPort {
 public:
  virtual ~ApplyPort() = default;
  // The site's max_clock_drift_ms setting.
  virtual int64_t MaxClockDriftSetting() = 0;
  // Resolves a payload table name (in payload order, before anything is written): a handle
  // >= 0 for a tracked table this apply may write, -1 when its changes are untracked here
  // (no such tracked table, or its base table is gone). Throws to refuse the whole apply.
  virtual int FindTable(const std::string& name) = 0;
  // Runs `body` all or nothing (the engine's savepoint or subtransaction); rethrows its error.
  virtual void Atomically(const std::function<void()>& body) = 0;
  // Inside Atomically: the writer of a table FindTable returned.
  virtual std::unique_ptr<ApplyTable> OpenTable(int handle) = 0;
  virtual uint32_t SiteOrdinal(const SiteId& site) = 0;  // registers unseen sites
  virtual const SiteId& SiteOf(uint32_t ordinal) = 0;
  virtual int64_t NextVersion() = 0;
  // Inside Atomically, after the rows: later local writes must be newer than `max_hlc`,
  // the payload's newest clock (0 when it has none).
  virtual void ObserveClock(uint64_t max_hlc) = 0;
};

// Applies a validated payload through the port; throws a deltasync Error.
ApplyResult ApplyPayload(ApplyPort& port, const Payload& p);

// The deltasync_apply() result document; db_version is the site's after the apply.
nlohmann::json ApplyResultJson(const ApplyResult& r, int64_t db_version);

}  // namespace deltasync
