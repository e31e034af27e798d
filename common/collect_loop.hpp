#pragma once
// Collecting this site's changes into the payload model, once for both engines
// (deltasync_changes and push): per table and per changed shadow row, the column changes to
// send, with local site ordinals mapped onto the payload's site list. The engine implements
// the port below with its storage reads only.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/apply_loop.hpp"
#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/shadow_row.hpp"

namespace deltasync {

// One changed row as an engine's cursor buffers it (a chunk read ahead): its key, shadow
// row, whether the base row is there, and its non-key column values.
struct BufferedChange {
  std::vector<Value> key;
  ShadowRow shadow;
  bool base = false;
  std::vector<Value> cols;
};

// One local table's changed shadow rows, in storage order, with their base rows.
class ChangeCursor {
 public:
  virtual ~ChangeCursor() = default;
  virtual TableNames Names() const = 0;
  // How many rows Next will yield, when the engine knows it up front (0: unknown).
  virtual size_t RowCountHint() const { return 0; }
  // Moves to the next changed shadow row: its key into `key` (empty on entry), its shadow
  // row into `shadow`. False after the last.
  virtual bool Next(std::vector<Value>& key, ShadowRow& shadow) = 0;
  // The current row's key as the engine stores it, when that differs from the one Next gave
  // (a key with a local representation): what a position records. nullptr: the same.
  virtual const std::vector<Value>* LocalKey() const { return nullptr; }
  // Reads the current row's base row; false when it is missing.
  virtual bool ReadBase() = 0;
  // Non-key column `column` of the base row ReadBase found.
  virtual Value Column(uint32_t column) = 0;
};

// Where a collect in batches stands: after the row with key `key` of table `table`, in
// catalog then key order (an empty table name: at the start).
struct CollectPosition {
  std::string table;
  std::vector<Value> key;
};

// What collecting asks of an engine.
class CollectPort {
 public:
  virtual ~CollectPort() = default;
  virtual const SiteId& LocalSite() = 0;
  virtual const SiteId& SiteOf(uint32_t ordinal) = 0;
  // The highest version whose changes may be read now (the payload's until, at least since).
  virtual int64_t Horizon() = 0;
  // Calls `table` with a cursor over each tracked table whose base table exists (catalog
  // order) over its shadow rows with a version in (since, until]. Throws to refuse.
  virtual void ForEachTable(int64_t since, int64_t until, const std::function<void(ChangeCursor&)>& table) = 0;
  // As ForEachTable, in key order, from `from` on: tables before from.table and its rows up
  // to from.key are skipped; no further table once `table` returned false. The default
  // cannot seek: it refuses a position other than the start.
  virtual void ForEachTableFrom(int64_t since, int64_t until, const CollectPosition& from,
                                const std::function<bool(ChangeCursor&)>& table);
};

// Every change with a version in (since, Horizon()], any origin, leaving out column changes
// whose versions fall in `exclude`.
Payload CollectChanges(CollectPort& port, int64_t since, const VersionRanges& exclude);

// How big one batch of a collect in batches may grow: rows, and about this many bytes of
// values (a row larger than that travels alone).
struct BatchLimits {
  size_t max_rows = 1000;
  size_t max_bytes = size_t{4} << 20;
};

// The changes CollectChanges(port, since, exclude) would return with `until` as the
// horizon, from `from` on, as a sequence of self-contained payloads (each with its own
// site list; since and until those of the whole) of whole rows within `limits`: `batch` gets
// each one and the position after its last row, and returns false to stop. Only one batch
// is held at a time.
void CollectInBatches(CollectPort& port, int64_t since, int64_t until, const VersionRanges& exclude,
                      const CollectPosition& from, const BatchLimits& limits,
                      const std::function<bool(Payload& batch, const CollectPosition& after)>& batch);

}  // namespace deltasync
