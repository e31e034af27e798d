#pragma once
// Merging a payload into this site (deltasync_apply, and each page of a pull).
#include <cstdint>

#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/sync_client.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

// Validated payload in, all or nothing (one savepoint), through common/apply_loop; throws a
// deltasync Error.
namespace sqlite {
ApplyResult ApplyPayload(Conn& conn, const Payload& p);
}  // namespace sqlite
using sqlite::ApplyPayload;

}  // namespace deltasync
