// Hub health that outlives the failing call. A failed deltasync_push/_pull/_sync raises an
// error, which aborts the caller's transaction and every write the call made, so the failure
// is written by someone else: a short-lived dynamic background worker (no
// shared_preload_libraries needed) that connects to this database and records it in
// deltasync.hubs in a transaction of its own. The failing backend hands it the hub and the
// message through a pinned dynamic shared memory segment. A success is recorded by the
// call itself, in its own transaction. docs/postgresql.md, "Hub health".
#include <cstring>
#include <string>

#include "pg_ext/pg_health.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void deltasync_health_worker(Datum arg);
}

namespace {

// What the backend hands the worker, followed by the hub key and the message (no NULs).
struct HealthNote {
  int64_t at_ms;
  uint32_t key_len;
  uint32_t msg_len;
};

// Which database, and as whom, the worker writes (bgw_extra).
struct HealthTarget {
  Oid database;
  Oid role;
};

// The statement that records a failure ($1 hub, $2 message, $3 when): a success recorded
// after the failure happened wins, since the failure is older news.
constexpr const char* kRecordFailureSql =
    "INSERT INTO deltasync.hubs AS h (hub, last_error, last_error_ms, failing_since_ms, failures)"
    " VALUES ($1, $2, $3, $3, 1) ON CONFLICT (hub) DO UPDATE SET last_error = excluded.last_error,"
    " last_error_ms = excluded.last_error_ms,"
    " failing_since_ms = coalesce(h.failing_since_ms, excluded.failing_since_ms), failures = h.failures + 1"
    " WHERE coalesce(h.last_success_ms, 0) <= excluded.last_error_ms";

bool g_defer = false;
deltasync::HubFailure g_deferred;
bool g_has_deferred = false;

}  // namespace

namespace deltasync {

void DeferHubFailures(bool on) { g_defer = on; }

bool TakeDeferredHubFailure(HubFailure& out) {
  if (!g_has_deferred) return false;
  out = std::move(g_deferred);
  g_deferred = HubFailure{};
  g_has_deferred = false;
  return true;
}

void WriteHubFailure(const HubFailure& f) {
  Args a;
  a.AddText(f.key);
  a.AddText(f.message);
  a.AddInt8(f.at_ms);
  RunSql(kRecordFailureSql, a);
}

void RecordHubFailure(const std::string& key, const std::string& message, int64_t at_ms) {
  if (g_defer) {
    g_deferred = HubFailure{key, message, at_ms};
    g_has_deferred = true;
    return;
  }
  const Oid role = Backend::Get().ExtensionOwner();
  const Oid database = MyDatabaseId;
  const char* k = key.data();
  const char* m = message.data();
  const auto key_len = static_cast<uint32_t>(key.size());
  const auto msg_len = static_cast<uint32_t>(message.size());
  // Plain values only from here: PgTry's lambda owns nothing with a destructor.
  PgTry([&] {
    dsm_segment* seg = dsm_create(sizeof(HealthNote) + key_len + msg_len, DSM_CREATE_NULL_IF_MAXSEGMENTS);
    if (seg == nullptr) return;
    auto* note = static_cast<HealthNote*>(dsm_segment_address(seg));
    note->at_ms = at_ms;
    note->key_len = key_len;
    note->msg_len = msg_len;
    memcpy(reinterpret_cast<char*>(note + 1), k, key_len);
    memcpy(reinterpret_cast<char*>(note + 1) + key_len, m, msg_len);
    // The segment outlives this backend's mapping (the abort that follows detaches it);
    // the worker unpins it once read.
    dsm_pin_segment(seg);
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    snprintf(w.bgw_name, BGW_MAXLEN, "deltasync hub health");
    snprintf(w.bgw_type, BGW_MAXLEN, "deltasync hub health");
    snprintf(w.bgw_library_name, BGW_MAXLEN, "deltasync");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "deltasync_health_worker");
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
    HealthTarget target{database, role};
    memcpy(w.bgw_extra, &target, sizeof(target));
    w.bgw_notify_pid = 0;
    if (!RegisterDynamicBackgroundWorker(&w, nullptr)) dsm_unpin_segment(dsm_segment_handle(seg));
    dsm_detach(seg);
  });
}

}  // namespace deltasync

// The worker: plain PostgreSQL C style (an error exits the process; no C++ object lives).
void deltasync_health_worker(Datum arg) {
  HealthTarget target;
  memcpy(&target, MyBgworkerEntry->bgw_extra, sizeof(target));
  BackgroundWorkerUnblockSignals();

  // The note is copied and its segment unpinned before connecting: a connection that fails
  // (a NOLOGIN owner, a database that refuses connections) exits the process, and must not
  // leave the segment pinned until the server restarts.
  dsm_handle handle = DatumGetUInt32(arg);
  dsm_segment* seg = dsm_attach(handle);
  if (seg == nullptr) proc_exit(0);
  const auto* note = static_cast<const HealthNote*>(dsm_segment_address(seg));
  const char* data = reinterpret_cast<const char*>(note + 1);
  int64_t at_ms = note->at_ms;
  text* key = cstring_to_text_with_len(data, static_cast<int>(note->key_len));
  text* msg = cstring_to_text_with_len(data + note->key_len, static_cast<int>(note->msg_len));
  dsm_unpin_segment(handle);
  dsm_detach(seg);

  BackgroundWorkerInitializeConnectionByOid(target.database, target.role, 0);

  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "deltasync: recording a hub failure");
  // The failing call's transaction may still hold the hub's row for a moment.
  // Not for long: a worker waiting holds one of max_worker_processes' slots.
  SPI_execute("SET LOCAL lock_timeout = '5s'", false, 0);
  Oid types[3] = {TEXTOID, TEXTOID, INT8OID};
  Datum values[3] = {PointerGetDatum(key), PointerGetDatum(msg), Int64GetDatum(at_ms)};
  SPI_execute_with_args(kRecordFailureSql, 3, types, values, nullptr, false, 0);
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
  proc_exit(0);
}
