#pragma once
// The per-row steps every site runs around the merge rules, once for both engines: deciding
// an incoming row against the local clocks, recording what won, and choosing which column
// changes of a local row to send. The engines only read and write their storage.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/column_policy.hpp"
#include "common/json_merge.hpp"
#include "common/merge.hpp"
#include "common/payload.hpp"
#include "common/row_clocks.hpp"

namespace deltasync {

// Version ranges [lo, hi] to leave out of a push: what this site applied from the hub it
// is pushing to, which must not travel back there.
using VersionRanges = std::vector<std::pair<int64_t, int64_t>>;
bool InRanges(const VersionRanges& ranges, int64_t ver);

// What one apply did, counted as deltasync_apply reports it (common/merge's RowMerge).
struct ApplyResult {
  uint64_t applied = 0, ignored = 0, untracked = 0, rows = 0;
  // The quarantine: rows of the payload set aside (their changes are counted here only),
  // held rows that applied, rows held after the apply, and children the foreign-key policy
  // removed (or set NULL) as local changes.
  uint64_t quarantined = 0, released = 0, held = 0, orphans = 0;
  // Changes of columns this site does not have, kept as pending cells, and kept cells
  // applied because their column is here now (common/pending_cells).
  uint64_t kept = 0, unkept = 0;
  int64_t first_ver = 0, last_ver = 0;  // the versions this apply gave the rows it changed (0: none)
  // Those versions as contiguous ranges, where they need not be contiguous (PostgreSQL's
  // per-transaction blocks: versions between them belong to other transactions).
  VersionRanges ranges;
  void AddVersion(int64_t ver) {
    if (first_ver == 0) first_ver = ver;
    last_ver = ver;
    if (!ranges.empty() && ranges.back().second + 1 == ver) ranges.back().second = ver;
    else ranges.emplace_back(ver, ver);
  }
};

// How one payload table's names map onto a local tracked table, and its sites onto local
// ordinals. Checked against the local catalog: throws kInvalidPayload on a key mismatch or
// an unknown column.
// The payload's column policies must equal the local ones (`local_policies` by local column,
// nullptr: all last-writer-wins): throws kInvalidPayload naming the column otherwise.
struct TableMapping {
  std::vector<uint32_t> columns;    // payload column index -> local column index
  const std::vector<uint32_t>* sites = nullptr;  // payload site index -> local ordinal
  const std::vector<ColumnPolicy>* policies = nullptr;  // by local column; nullptr: no counter
  bool Counter(uint32_t local_column) const {
    return policies && PolicyAt(*policies, local_column) == ColumnPolicy::kCounter;
  }
  bool Json(uint32_t local_column) const {
    return policies && PolicyAt(*policies, local_column) == ColumnPolicy::kJson;
  }
};
TableMapping MapTable(const std::string& table, const std::vector<std::string>& local_pk,
                      const std::vector<std::string>& local_cols, const TableChanges& tc,
                      const std::vector<uint32_t>& site_ords,
                      const std::vector<ColumnPolicy>* local_policies = nullptr);

// One incoming row decided against the local row (cl 0 and no clocks: never seen here).
// A counter column's contributions (common/counter.hpp) are decided apart from the
// last-writer-wins columns: `winners` holds only the latter.
// A json column's members are decided apart as well, against the local member of their path
// (common/json_merge.hpp): `members` holds the winners, `json` each json column the row
// changes with its members before the merge.
struct JsonColumnState {
  uint32_t column = 0;  // local column
  JsonMembers local;    // the row's members of the column before the merge
};
struct RowDecision {
  RowMerge merge;
  std::vector<size_t> winners;  // indexes into the row's changes that replace the local ones
  std::vector<size_t> contributions;  // indexes of the counter contributions that win
  struct JsonWin {
    size_t change;    // index into the row's changes
    uint32_t column;  // local column
    JsonMember member;
  };
  std::vector<JsonWin> members;  // the json member changes that win, decoded
  std::vector<JsonColumnState> json;                   // the json columns of the local row
};
// Refuses (kClockDrift) a payload whose newest clock is more than `max_drift_setting` ms
// (the site's max_clock_drift_ms) ahead of this site's wall clock; a negative setting counts
// as 0, never as "no limit". Returns that newest clock (0 when the payload has none).
uint64_t CheckPayloadClock(const Payload& p, int64_t max_drift_setting);

// Adds one decided row to the counts; false when nothing of it applies (nothing to write).
bool CountRow(const RowDecision& d, ApplyResult& counts);

// `base(c)` reads local column c of the base row: a json column's document, when its members
// are the implicit ones (nullptr: a table without json columns).
RowDecision DecideRow(int64_t local_cl, const RowClocks& local, const RowChanges& r, const TableMapping& map,
                      const std::function<const SiteId&(uint32_t)>& site_of,
                      const std::function<Value(uint32_t)>* base = nullptr);

// The local clocks after the winners were written at local version `ver`, in stored form
// (Normalize()d): a deleted row keeps none; a whole row from one origin becomes the shared
// clock alone; winning contributions are stored, those of an ended life dropped.
void AdoptWinners(RowClocks& clocks, const RowDecision& d, const RowChanges& r, const TableMapping& map,
                  size_t ncols, int64_t ver);

// The column changes of a local live row to send: clocks newer than `since` whose version is
// not in `exclude` and that were written at the row's current causal length or before.
// value_of(c) reads local column c; site_index maps a local ordinal to the payload's list.
// A counter column (`policies`, by local column; nullptr: none) sends the contributions of
// the row's current life instead: this site's own (its value minus the others') when this
// site wrote it after `since`, and the others' adopted after `since`.
void CollectRowChanges(RowChanges& r, const RowClocks& clocks, size_t ncols, int64_t since,
                       const VersionRanges& exclude, const std::function<Value(uint32_t)>& value_of,
                       const std::function<uint32_t(uint32_t)>& site_index,
                       const std::vector<ColumnPolicy>* policies = nullptr, const std::string* table = nullptr,
                       const std::vector<std::string>* cols = nullptr);

// The counter values an applied row writes, by local column: each counter column of a row that
// is live after decision `d` whose sum may have moved (a new row here, a new life, a winning
// contribution) gets its new sum — this site's own contribution (base(c) - the others' in the
// old life, when the row lives on in the same life; 0 otherwise) plus the others' after the
// merge. base(c) reads local column c of the base row; `local_cl` is the row's causal length
// before. Throws kConstraint when a sum leaves 64 bits.
struct CounterWrite {
  uint32_t column;
  Value value;
};
void CounterWrites(std::vector<CounterWrite>& out, const RowDecision& d, const RowClocks& local, int64_t local_cl,
                   const RowChanges& r, const TableMapping& map, const std::vector<std::string>& cols,
                   const std::string& table, const std::function<Value(uint32_t)>& base);

// The json documents an applied row writes, by local column: each json column of a row that is
// live after decision `d` whose members may have moved (a new row here, a new life, a winning
// member) gets the document its merged members show (the members of older lives dropped), and
// the members to store (winners at version 0: the row's new one).
struct JsonWrite {
  uint32_t column;
  Value value;
  JsonMembers members;
};
void JsonWrites(std::vector<JsonWrite>& out, RowDecision& d, int64_t local_cl, const TableMapping& map, size_t ncols);

}  // namespace deltasync
