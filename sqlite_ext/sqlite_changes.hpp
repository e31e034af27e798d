#pragma once
// Reading this site's changes into the payload model (used by deltasync_changes, and by
// push in the network layer).
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
}  // namespace sqlite
using sqlite::CollectChanges;

}  // namespace deltasync
