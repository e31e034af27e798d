// Entry point of the SQLite extension: registers the function table and the deltasync_txn
// module (which scopes the per-transaction clock state) on a connection.
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <memory>

#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_guard.hpp"
#include "sqlite_ext/sqlite_txn.hpp"

#ifndef SQLITE_INNOCUOUS
#define SQLITE_INNOCUOUS 0
#endif
#ifndef SQLITE_DIRECTONLY
#define SQLITE_DIRECTONLY 0
#endif

namespace deltasync {
namespace {

constexpr int kPure = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
// Functions that read or write the database: callable from top-level SQL only, never
// from a view or a trigger someone else wrote into the schema.
constexpr int kDirect = SQLITE_UTF8 | SQLITE_DIRECTONLY;
// Trigger callbacks: usable in schema (our triggers), but with side effects.
constexpr int kTrigger = SQLITE_UTF8;

struct FunctionDef {
  const char* name;
  int nargs;
  int flags;
  void (*fn)(sqlite3_context*, int, sqlite3_value**);
};

constexpr FunctionDef kFunctions[] = {
    {"deltasync_version", 0, kPure, FnVersion},
    {"deltasync_site_id", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, FnSiteId},
    {"deltasync_db_version", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, FnDbVersion},
    // Not DIRECTONLY: it is meant for column DEFAULTs, which are part of the schema.
    {"deltasync_id", 0, SQLITE_UTF8, FnId},
    {"deltasync_enable", 1, kDirect, FnEnable},
    {"deltasync_enable", 2, kDirect, FnEnable},
    {"deltasync_disable", 1, kDirect, FnDisable},
    {"deltasync_changes", 1, kDirect, FnChanges},
    {"deltasync_apply", 1, kDirect, FnApply},
    {"deltasync_quarantine", 0, kDirect, FnQuarantine},
    {"deltasync_status", 0, kDirect, FnStatus},
    {"deltasync_checksum", 0, kDirect, FnChecksum},
    {"deltasync_checksum", 1, kDirect, FnChecksum},
    {"deltasync_forget", 1, kDirect, FnForget},
    {"deltasync_push", 1, kDirect, FnPush},
    {"deltasync_push", 2, kDirect, FnPush},
    {"deltasync_pull", 1, kDirect, FnPull},
    {"deltasync_pull", 2, kDirect, FnPull},
    {"deltasync_sync", 1, kDirect, FnSync},
    {"deltasync_sync", 2, kDirect, FnSync},
    {"deltasync_schedule", 1, kDirect, FnSchedule},
    {"deltasync_schedule", 2, kDirect, FnSchedule},
    {"deltasync_unschedule", 1, kDirect, FnUnschedule},
    {"deltasync_compact", 0, kDirect, FnCompact},
    {"deltasync_compact", 1, kDirect, FnCompact},
    {"deltasync__capturing", 0, kTrigger, FnCapturing},
    {"deltasync__null_key", 0, kTrigger, FnNullKey},
    {"deltasync__ver", 0, kTrigger, FnVer},
    {"deltasync__hlc", 0, kTrigger, FnHlc},
    {"deltasync__clk_set", -1, kTrigger, FnClkSet},
    {"deltasync__clk_json", -1, kTrigger, FnClkJson},
    {"deltasync__json_check", 3, kTrigger, FnJsonCheck},
    {"deltasync__json_canon", 1, kPure, FnJsonCanon},
    {"deltasync__ne", 2, kPure, FnNe},
};

// Each registered function holds a reference; the connection state dies with the last.
void ReleaseConn(void* p) { delete static_cast<std::shared_ptr<Conn>*>(p); }

}  // namespace
}  // namespace deltasync

int deltasync::RegisterExtension(sqlite3* db, char** pzErrMsg, std::shared_ptr<Conn>* out) {
  std::shared_ptr<Conn> conn;
  try {
    conn = std::make_shared<Conn>(db);
  } catch (...) {
    return SQLITE_NOMEM;
  }
  // Before the functions: re-registering them on a second load frees the previous Conn,
  // which the guard must no longer point to.
  InstallCaptureGuard(db, conn.get());
  for (const FunctionDef& f : kFunctions) {
    auto* holder = new (std::nothrow) std::shared_ptr<Conn>(conn);
    if (!holder) {
      RemoveCaptureGuard(db);
      return SQLITE_NOMEM;
    }
    // On failure SQLite itself calls ReleaseConn on the holder.
    int rc = sqlite3_create_function_v2(db, f.name, f.nargs, f.flags, holder, f.fn, nullptr, nullptr, ReleaseConn);
    if (rc != SQLITE_OK) {
      RemoveCaptureGuard(db);
      *pzErrMsg = sqlite3_mprintf("deltasync: cannot register %s: %s", f.name, sqlite3_errmsg(db));
      return rc;
    }
  }
  int rc = RegisterTxnModule(db, conn);
  if (rc != SQLITE_OK) {
    *pzErrMsg = sqlite3_mprintf("deltasync: cannot register deltasync_txn: %s", sqlite3_errmsg(db));
    return rc;
  }
  if (out) *out = conn;
  return SQLITE_OK;
}

extern "C" __attribute__((visibility("default"))) int sqlite3_deltasync_init(sqlite3* db, char** pzErrMsg,
                                                                              const sqlite3_api_routines* pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  // 3.26.0 brought pragma_table_xinfo; UPSERT (3.24.0) is older.
  if (sqlite3_libversion_number() < 3026000) {
    *pzErrMsg = sqlite3_mprintf("deltasync: SQLite 3.26.0 or newer is required (this is %s)", sqlite3_libversion());
    return SQLITE_ERROR;
  }
  return deltasync::RegisterExtension(db, pzErrMsg, nullptr);
}
