#pragma once
// Merging a payload into this site (deltasync_apply, and each page of a pull).
#include <cstdint>
#include <nlohmann/json.hpp>

#include "common/payload.hpp"
#include "common/sync_client.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

// Validated payload in, all or nothing (one savepoint); throws a deltasync Error.
ApplyResult ApplyPayload(Conn& conn, const Payload& p);
nlohmann::json ApplyResultJson(Conn& conn, const ApplyResult& r);

}  // namespace deltasync
