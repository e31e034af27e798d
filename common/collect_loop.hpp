#pragma once
// Collecting this site's changes into the payload model, once for both engines
// (deltasync_changes and push): per table and per changed shadow row, the column changes to
// send, with local site ordinals mapped onto the payload's site list. The engine implements
// the port below with its storage reads only.
#include <cstdint>
#include <functional>
#include <vector>

#include "common/apply_loop.hpp"
#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/shadow_row.hpp"

namespace deltasync {

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
  // Reads the current row's base row; false when it is missing.
  virtual bool ReadBase() = 0;
  // Non-key column `column` of the base row ReadBase found.
  virtual Value Column(uint32_t column) = 0;
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
};

// Every change with a version in (since, Horizon()], any origin, leaving out column changes
// whose versions fall in `exclude`.
Payload CollectChanges(CollectPort& port, int64_t since, const VersionRanges& exclude);

}  // namespace deltasync
