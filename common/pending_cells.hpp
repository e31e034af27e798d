#pragma once
// Changes for columns a site does not have (yet), once for both engines (SPEC section 8: "a
// change for a column a site does not have yet is kept and applied when the column
// appears"). The apply keeps such a change as a pending cell — one per (table, key,
// column), the newest by (cl, hlc, site) — and applies the cells of a column by the normal
// merge rules at the first apply that finds the column tracked. Columns the site knowingly
// no longer has are not kept: a dropped column's changes are ignored, a renamed column's
// old name lands in its new one (docs/architecture.md, "Schema changes").
#include <cstdint>
#include <string>
#include <vector>

#include "common/payload.hpp"

namespace deltasync {

// A column of a tracked table this site no longer has under that name: dropped
// (`now_named` empty) or renamed to `now_named`.
struct GoneColumn {
  std::string name;
  std::string now_named;
};

// One kept change as an engine stores it: (table, column, key) is its identity.
struct PendingCell {
  std::string table;   // the local table name
  std::string column;  // the column's name as the payload spells it
  std::string key;     // EncodeKey of the row's key
  std::string change;  // the row's causal length and this one change, a one-row JSON payload (EncodeJson)
  int64_t since_ms = 0;  // when the change was first kept (ms since the epoch)
};

// Where a payload column `name` lands here, following `gone` (renames may chain): the local
// name it has now (`name` itself when it is not gone), or "" when it was dropped.
std::string FollowGoneColumn(const std::string& name, const std::vector<GoneColumn>& gone);

// The one-row, one-change payload of change `c` of row `r` of `tc`, whose site indexes
// refer to `sites`.
Payload CellPayload(const TableChanges& tc, const RowChanges& r, const ColumnChange& c,
                    const std::vector<SiteId>& sites);

}  // namespace deltasync
