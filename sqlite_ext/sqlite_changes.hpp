#pragma once
// Reading this site's changes into the payload model (used by deltasync_changes, and by
// push in the network layer).
#include "common/payload.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

#include <utility>
#include <vector>

namespace deltasync {

// Version ranges [lo, hi] to leave out: what this site applied from the hub it is pushing
// to, which must not travel back there.
using VersionRanges = std::vector<std::pair<int64_t, int64_t>>;

Payload CollectChanges(Conn& conn, int64_t since, const VersionRanges& exclude = {});

}  // namespace deltasync
