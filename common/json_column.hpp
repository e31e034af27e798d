#pragma once
// A json column in a row (docs/policies.md), once for both engines: its document read from
// the stored value, its members read from and written to the row's clocks, and the capture
// of a local write (the triggers of both engines call CaptureJsonWrite).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/json_merge.hpp"
#include "common/row_clocks.hpp"
#include "common/site_id.hpp"
#include "common/value.hpp"

namespace deltasync {

using SiteOfFn = std::function<const SiteId&(uint32_t)>;

// The document a json column's stored value holds; NULL or a value that is not a JSON object
// (written before the column was tracked as json) reads as {}.
JsonValue ColumnDocument(const Value& v);

// The document a value written into json column `column` of `table` holds, or a refusal
// (kConstraint) when it is not the text of a JSON object: a json column holds objects only.
JsonValue CheckedDocument(const Value& v, const std::string& table, const std::string& column);

// The members of json column `col`: the stored ones, or (when it has none) one per leaf of
// `doc` at the column's clock. `clocks` in explicit form.
JsonMembers ColumnMembers(const RowClocks& clocks, uint32_t col, const JsonValue& doc, const SiteOfFn& site_of);

// Stores `members` as column `col`'s (their `site` and `ver` fields are the ordinal and version).
void StoreMembers(RowClocks& clocks, uint32_t col, const JsonMembers& members);

// Records a local write of json column `col` from `old_value` to `new_value` (already checked)
// at the writing transaction's clock `hlc` in life `cl`, before the column's clock moves to
// it; `clocks` in explicit form, the members written at version 0 (the row's new one).
// Returns false when the documents are the same.
bool CaptureJsonWrite(RowClocks& clocks, uint32_t col, const Value& old_value, const Value& new_value, uint64_t hlc,
                      int64_t cl, const SiteOfFn& site_of);

}  // namespace deltasync
