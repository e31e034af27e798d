#pragma once
// Reading this site's changes into the payload model, and merging a payload into it.
#include <functional>

#include "common/collect_loop.hpp"
#include "common/payload.hpp"
#include "common/sync_client.hpp"
#include "pg_ext/pg_state.hpp"

namespace deltasync {

// Every change with db_version in (since, SafeVersion()], any origin, leaving out column
// changes whose versions fall in `exclude`. The payload's until is that safe version, so
// a change committed later by a transaction that started earlier is never skipped.
// include_own: whether the calling transaction's own (uncommitted) writes count
// (deltasync_changes: yes, as on SQLite; push: no, they are not committed yet).
namespace pg {
Payload CollectChanges(int64_t since, const VersionRanges& exclude = {}, bool include_own = true);
// Push's collect: committed changes only, in batches (common/collect_loop CollectInBatches);
// with `until` <= since a new pass up to the safe version. Returns the pass's until. A
// position other than the start is refused: a push on PostgreSQL is one transaction, so no
// pass is ever left half done.
int64_t CollectBatches(int64_t since, int64_t until, const CollectPosition& from, const VersionRanges& exclude,
                       const BatchLimits& limits, const std::function<bool(Payload&, const CollectPosition&)>& batch);
}  // namespace pg
using pg::CollectChanges;

// Validated payload in, all or nothing (one subtransaction), through common/apply_loop;
// throws a deltasync Error.
namespace pg {
ApplyResult ApplyPayload(const Payload& p);
}  // namespace pg
using pg::ApplyPayload;

}  // namespace deltasync
