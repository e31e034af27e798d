#pragma once
// Merging a payload into this site (deltasync_apply, and each page of a pull).
#include <cstdint>
#include <nlohmann/json.hpp>

#include "common/payload.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

struct ApplyResult {
  uint64_t applied = 0, ignored = 0, untracked = 0, rows = 0;
  int64_t first_ver = 0, last_ver = 0;  // the versions this apply gave the rows it changed (0: none)
};

// Validated payload in, all or nothing (one savepoint); throws a deltasync Error.
ApplyResult ApplyPayload(Conn& conn, const Payload& p);
nlohmann::json ApplyResultJson(Conn& conn, const ApplyResult& r);

}  // namespace deltasync
