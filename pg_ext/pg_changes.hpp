#pragma once
// Reading this site's changes into the payload model, and merging a payload into it.
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
}  // namespace pg
using pg::CollectChanges;

// Validated payload in, all or nothing (one subtransaction), through common/apply_loop;
// throws a deltasync Error.
namespace pg {
ApplyResult ApplyPayload(const Payload& p);
}  // namespace pg
using pg::ApplyPayload;

}  // namespace deltasync
