#pragma once
// Capture: the statement-level trigger every tracked table gets (deltasync.capture()), and
// the per-backend cache of the statements it runs.
#include <string>
#include <vector>

#include "pg_ext/pg_state.hpp"

namespace deltasync {

// Forgets the cached capture statements of a relation (InvalidOid: of all), on relcache
// invalidation: a table altered or re-enabled gets statements built anew.
void InvalidateCapture(Oid relid);

// The upsert that makes the shadow rows of `source`'s keys appear (causal length odd,
// every column written now by this site) or disappear (even). `source` is a FROM item
// whose key columns are named as the base table's; `where` filters it (may be empty).
// $1 is the transaction's clock.
std::string ShadowUpsertSql(const TableInfo& t, const std::string& source, const std::string& where, bool appears);

// Installs the ExecutorFinish hook that completes the capture of a MERGE whose UPDATE action
// moves rows between partitions of a tracked partitioned table (docs/postgresql.md,
// "Partitioned tables"). Called once, from _PG_init.
void InstallMergeCapture();

// "a.x, a.y": quoted column names with a prefix.
std::string ColumnList(const std::vector<std::string>& names, const std::string& prefix);

}  // namespace deltasync
