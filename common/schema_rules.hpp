#pragma once
// What deltasync_enable accepts, the same on both engines: its options, and the tables an
// ORM or migration tool keeps for each database itself, which are never to be synced.
#include <string>
#include <string_view>
#include <vector>

#include "common/column_policy.hpp"
#include "common/value_repr.hpp"

namespace deltasync {

// One column's options: {"columns": {"<column>": {"uuid": "hex32"}}} (docs/types.md
// "Representations"), {"<column>": "counter"} or {"<column>": {"policy": "counter"}}
// (docs/policies.md), or a representation and a policy in one object.
struct ColumnOption {
  std::string column;  // as the options spell it
  ReprForm repr = ReprForm::kNone;
  bool has_repr = false;    // the options name a representation (kNone otherwise: left as it is)
  ColumnPolicy policy = ColumnPolicy::kLww;
  bool has_policy = false;  // the options name a policy
};

// The options argument of deltasync_enable(table, options): a JSON object (empty text: the
// defaults). Unknown keys and wrongly typed values are refused with kInvalidArgument.
struct EnableOptions {
  bool force = false;    // track a table the bookkeeping rule below refuses
  bool restamp = false;  // give every live row a new clock now: this site's values win (a table replaced by new content)
  std::vector<ColumnOption> columns;
};
EnableOptions ParseEnableOptions(std::string_view json);

// Throws kInvalidArgument, saying why and how to override, when `table` is a migration or
// ORM bookkeeping table (django_migrations, alembic_version, ...) and `options.force` is not
// set: each database must keep its own (docs/applications.md).
void RefuseBookkeepingTable(const std::string& table, const EnableOptions& options);

}  // namespace deltasync
