#pragma once
// The quarantine, once for both engines: rows an apply could not write because the engine
// refused them on a constraint (UNIQUE, CHECK, NOT NULL, a foreign key), kept with their
// changes in the site's database and retried by every later apply (docs/applications.md,
// "Constraints"). A held row is one row of a one-table payload, so a retry is an apply.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/payload.hpp"

namespace deltasync {

// A base-row write the engine refused on a constraint (or an application trigger's RAISE):
// the apply sets the row aside instead of failing. The message names table and constraint.
class RowRefused : public Error {
 public:
  explicit RowRefused(const std::string& message) : Error(ErrorCode::kConstraint, message) {}
};

// One held row as an engine stores it: (table, key) is its identity.
struct HeldRow {
  std::string table;    // the local table name
  std::string key;      // EncodeKey of the row's key
  std::string changes;  // the row and its changes, a one-row JSON payload (EncodeJson)
  std::string error;    // why the last attempt failed: table, key and constraint
  int64_t since_ms = 0; // when the row was first set aside (ms since the epoch)
};

// The one-row payload of row `r` of `tc`, whose site indexes refer to `sites`.
Payload HeldPayload(const TableChanges& tc, const RowChanges& r, const std::vector<SiteId>& sites);

// Adds `more` (a one-row payload of the same table and key) to `held`: the greater causal
// length, and per column the newer change by (cl, hlc, site) — what a merge would keep.
void MergeHeld(Payload& held, const Payload& more);

// The row's key as the quarantine shows it: the payload's JSON value form.
std::string KeyText(const std::vector<Value>& key);

// The deltasync_quarantine() document: {"held": N, "rows": [{table, key, error, since}]}.
nlohmann::json QuarantineDocument(const std::vector<HeldRow>& rows);

}  // namespace deltasync
