#pragma once
// The apply loop, once for both engines: the payload's clock check, each payload table
// mapped onto a local one, and per row: read the local clocks, decide (common/merge),
// write the base row, write the clocks, count. The engine implements the port below with
// its storage operations only.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/payload.hpp"
#include "common/pending_cells.hpp"
#include "common/quarantine.hpp"
#include "common/row_apply.hpp"
#include "common/shadow_row.hpp"

namespace deltasync {

// A tracked table's names as the loops match payload names against them.
struct TableNames {
  const std::string& name;
  const std::vector<std::string>& pk;
  const std::vector<std::string>& cols;  // non-key columns, in table order
  // The columns' policies, by column (common/column_policy); nullptr: all last-writer-wins.
  const std::vector<ColumnPolicy>* policies = nullptr;
};

// One base-row column an apply writes: its local index and the winning value.
struct ColumnWrite {
  uint32_t column;
  const Value* value;
};

// A foreign key the apply follows (docs/applications.md, "Constraints"): from columns of a
// tracked table onto the whole primary key of a tracked table.
struct ForeignKey {
  int child = -1, parent = -1;       // table handles (ApplyPort::FindTable)
  std::vector<std::string> columns;  // the child's columns, in the order of the parent's key
  bool set_null = false;             // ON DELETE SET NULL; any other action deletes the child
  std::string name;                  // as reports name it: child(columns) -> parent
};

// One local table as an apply writes it. Each row starts with ReadShadow; the row's later
// calls (all but FindRows) name the same key, so an engine may reuse what it prepared there.
// A base write the engine refuses on a constraint throws RowRefused.
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
  // Sets `cols` of the row to what a new row gets there (the column's default, or NULL): the
  // values of an older life of the row that the new life's changes do not replace.
  virtual void ResetColumns(const std::vector<Value>& key, const std::vector<uint32_t>& cols) = 0;
  // Writes the row's shadow row: causal length, version and clocks in stored form.
  virtual void WriteShadow(const std::vector<Value>& key, int64_t cl, int64_t ver, const RowClocks& clocks) = 0;
  // Reads the base row's `cols` (local column names, key columns allowed) into `out`;
  // false when there is no base row.
  virtual bool ReadColumns(const std::vector<Value>& key, const std::vector<std::string>& cols,
                           std::vector<Value>& out) = 0;
  // The keys of the base rows whose `cols` equal `values` (the children of a parent row).
  virtual std::vector<std::vector<Value>> FindRows(const std::vector<std::string>& cols,
                                                   const std::vector<Value>& values) = 0;
  // An engine that applies a page of rows at a time (ApplyPort::PageRows): the keys of the
  // page's rows about to be applied, whose shadow rows it may read in one go ...
  virtual void Prefetch(const std::vector<const std::vector<Value>*>& keys) { (void)keys; }
  // ... and, after the page, the writes it deferred; a refused one throws RowRefused (the
  // apply is then redone one row at a time, so which row it was does not matter). Between
  // the two, outside RowAtomically, an engine may defer the rows' writes: UpdateRow then
  // answers true, and an update that finds no row inserts it when done, as its caller would.
  virtual void Flush() {}
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
  // After FindTable, before Atomically: the foreign keys between tracked tables the apply
  // follows (none when the engine does not enforce them); may resolve more tables.
  virtual std::vector<ForeignKey> ForeignKeys() = 0;
  // The rows in quarantine (read before Atomically).
  virtual std::vector<HeldRow> HeldRows() = 0;
  // Runs `body` all or nothing (the engine's savepoint or subtransaction); rethrows its error.
  virtual void Atomically(const std::function<void()>& body) = 0;
  // True when a refused statement spoils the enclosing Atomically (PostgreSQL: the
  // subtransaction is aborted), so a page with a refused row is redone one row at a time.
  virtual bool RefusalAbortsAtomically() = 0;
  // Inside Atomically: runs `body` all or nothing on its own (savepoint, subtransaction).
  virtual void RowAtomically(const std::function<void()>& body) = 0;
  // Rows per page for an engine whose tables defer writes (ApplyTable::Prefetch, Flush); 0:
  // one row at a time, no pages. Asked inside Atomically.
  virtual size_t PageRows() { return 0; }
  // Kept changes of columns this site does not have (common/pending_cells). The columns
  // with kept cells, as (local table name, column name) — read before Atomically ...
  virtual std::vector<std::pair<std::string, std::string>> PendingColumns() = 0;
  // ... and inside Atomically: the cells of one, the cell of (table, column, key) if any,
  // storing one (insert or replace by its identity), forgetting a column's cells.
  virtual std::vector<PendingCell> PendingCells(const std::string& table, const std::string& column) = 0;
  virtual std::optional<PendingCell> FindPending(const std::string& table, const std::string& column,
                                                 const std::string& key) = 0;
  virtual void Keep(const PendingCell& cell) = 0;
  virtual void DropPending(const std::string& table, const std::string& column) = 0;
  // Inside Atomically: the columns of table `handle` this site dropped or renamed.
  virtual std::vector<GoneColumn> GoneColumns(int handle) = 0;
  // Inside Atomically: stores (insert or replace by table and key) or drops a held row.
  virtual void Hold(const HeldRow& row) = 0;
  virtual void Release(const std::string& table, const std::string& key) = 0;
  // Inside Atomically, after ObserveClock: the clock of a local change the apply makes.
  virtual uint64_t LocalHlc() = 0;
  // Inside Atomically: the writer of a table FindTable returned.
  virtual std::unique_ptr<ApplyTable> OpenTable(int handle) = 0;
  virtual uint32_t SiteOrdinal(const SiteId& site) = 0;  // registers unseen sites
  virtual const SiteId& SiteOf(uint32_t ordinal) = 0;
  virtual int64_t NextVersion() = 0;
  // Inside Atomically, before the rows: later local writes must be newer than `max_hlc`,
  // the payload's newest clock (0 when it has none).
  virtual void ObserveClock(uint64_t max_hlc) = 0;
};

// Applies a validated payload through the port; throws a deltasync Error.
ApplyResult ApplyPayload(ApplyPort& port, const Payload& p);

// The deltasync_apply() result document; db_version is the site's after the apply.
nlohmann::json ApplyResultJson(const ApplyResult& r, int64_t db_version);

}  // namespace deltasync
