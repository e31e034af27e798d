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
Payload CollectChanges(Conn& conn, int64_t since, const VersionRanges& exclude = {});
}  // namespace sqlite
using sqlite::CollectChanges;

}  // namespace deltasync
