#pragma once
// Reading this site's changes into the payload model (used by deltasync_changes, and by
// push in the network layer).
#include "common/collect_loop.hpp"
#include "common/payload.hpp"
#include "common/sync_client.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

#include <utility>
#include <vector>

namespace deltasync {

namespace sqlite {
// This site's changes newer than `since` (common/collect_loop), leaving out `exclude`.
// Keys and values are in wire form (sqlite_repr), unless `as_stored` (for counting only: a
// value a representation refuses then does not make deltasync_status fail).
Payload CollectChanges(Conn& conn, int64_t since, const VersionRanges& exclude = {}, bool as_stored = false);
// Push's collect (common/collect_loop CollectInBatches): from `from` on, in batches; with
// `until` <= since a new pass up to the current horizon. Returns the pass's until. Each
// batch reads in short statements of its own, none open while `batch` runs.
int64_t CollectBatches(Conn& conn, int64_t since, int64_t until, const CollectPosition& from,
                       const VersionRanges& exclude, const BatchLimits& limits,
                       const std::function<bool(Payload&, const CollectPosition&)>& batch);
}  // namespace sqlite
using sqlite::CollectChanges;

}  // namespace deltasync
