// deltasync_schedule / deltasync_unschedule and the background workers that run the
// schedules (SPEC section 7, docs/live-sync.md, "PostgreSQL").
//
// A schedule is a row of deltasync.schedules (hub, url, options with the token, interval_ms,
// the role that scheduled it). The commit of a transaction that stored one starts the
// database's two workers (dynamic background workers: no shared_preload_libraries needed):
//   - the push worker reads the site's safe version (the version counter, held back by every
//     writer still running: it moves when a transaction that wrote a tracked table ends)
//     every kPollMs and calls deltasync_push when it moved, when interval_ms passed, or to
//     retry a failure;
//   - the pull worker long-polls: deltasync_pull with wait_ms, which the hub answers as soon
//     as it holds news for this site.
// Each call runs in a transaction of its own as the role that scheduled it (the worker
// connects as the bootstrap superuser and switches to that role for the call, as a
// SECURITY DEFINER function would, so the call has that role's privileges and no more).
// Failures are retried with exponential backoff and jitter, logged, and recorded in
// deltasync.hubs by the worker itself after the call's abort. Only one worker per side runs
// per database (a session advisory lock); a worker exits when no schedule is left, on
// SIGTERM (pg_terminate_backend) at once, and a statement cancel (pg_cancel_backend)
// interrupts the call under way, which is retried. When deltasync is in
// shared_preload_libraries a launcher starts them at server start for every database that
// has schedules.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/hlc.hpp"
#include "common/schedule.hpp"
#include "common/sync_client.hpp"
#include "pg_ext/pg_functions.hpp"
#include "pg_ext/pg_health.hpp"
#include "pg_ext/pg_schedule.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

PGDLLEXPORT void deltasync_schedule_worker(Datum arg);
PGDLLEXPORT void deltasync_schedule_launcher(Datum arg);
}

namespace deltasync {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kPush = 0;
constexpr int kPull = 1;
constexpr int kProbe = 2;  // at server start: starts the two if the database has schedules
constexpr long kPollMs = 25;
constexpr long kRescanMs = 2000;
constexpr int64_t kMaxBackoffMs = 10000;
// The advisory lock space of the workers (one key per side and database).
constexpr int64_t kWorkerLockSpace = 0x64736368;  // "dsch"

const char* SideName(int side) { return side == kPush ? "push" : side == kPull ? "pull" : "probe"; }

bool g_start_at_commit = false;

// Registers one worker of `side` for database `db`; false when no slot was free.
bool StartWorker(Oid db, int side, pid_t notify_pid, BackgroundWorkerHandle** handle) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  snprintf(w.bgw_name, BGW_MAXLEN, "deltasync %s worker for database %u", SideName(side), db);
  snprintf(w.bgw_type, BGW_MAXLEN, "deltasync %s", SideName(side));
  snprintf(w.bgw_library_name, BGW_MAXLEN, "deltasync");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "deltasync_schedule_worker");
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  w.bgw_main_arg = Int32GetDatum(side);
  memcpy(w.bgw_extra, &db, sizeof(db));
  w.bgw_notify_pid = notify_pid;
  return RegisterDynamicBackgroundWorker(&w, handle);
}

// Starts the push and pull workers of database `db` (a running one keeps running: the new
// one finds its lock taken and exits). Plain C: called from a commit callback.
void StartScheduleWorkers(Oid db) {
  for (int side : {kPush, kPull})
    if (!StartWorker(db, side, 0, nullptr))
      ereport(WARNING, (errmsg("deltasync: no background worker slot for the schedule's %s worker", SideName(side)),
                        errhint("Raise max_worker_processes; the schedule runs once a worker can start "
                                "(deltasync_schedule again starts it).")));
}

// One stored schedule, as the workers read it.
struct StoredSchedule {
  std::string hub, url, options;
  int64_t interval_ms = kDefaultScheduleIntervalMs;
  Oid role = InvalidOid;
};

// Per schedule, what its worker remembers between passes.
struct LinkState {
  StoredSchedule s;
  int64_t seen_version = -1;  // the safe version before the last successful push
  Clock::time_point last_ok{};
  Clock::time_point retry_at{};
  Backoff backoff{kMaxBackoffMs};
  bool failed = false;
};

long MillisSince(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// The steps of a worker's own transaction (plain PostgreSQL calls, run through PgTry).
void BeginTxn() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
}
void CommitTxn() {
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
}
void AbortTxn() { AbortCurrentTransaction(); }

// Runs `body` in a transaction of its own with SPI connected; commits on success. A
// PostgreSQL or C++ error aborts the transaction and is returned in `error`.
template <typename Body>
bool InTransaction(Body&& body, std::string& error) {
  error.clear();
  try {
    PgTry(BeginTxn);
    body();
    PgTry(CommitTxn);
    return true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  // After a failed start too: AbortCurrentTransaction copes with any state.
  try {
    PgTry(AbortTxn);
  } catch (const std::exception&) {
  }
  return false;
}

// The extension's schema, quoted (the API functions live there), or "" when the database
// has no deltasync or no schedules table (a catalog from before 0.2.0).
std::string ApiSchema() {
  RunSql("SELECT quote_ident(n.nspname), to_regclass('deltasync.schedules') IS NOT NULL FROM pg_extension e"
         " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'deltasync'");
  if (SPI_processed != 1 || ResultText(0, 1) != "t") return "";
  return ResultText(0, 0);
}

// The schedules whose role still exists, ordered by hub.
std::vector<StoredSchedule> ReadSchedules() {
  RunSql("SELECT s.hub, s.url, s.options, s.interval_ms, s.role::int8 FROM deltasync.schedules s"
         " WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = s.role) ORDER BY s.hub");
  std::vector<StoredSchedule> out;
  for (uint64_t r = 0; r < SPI_processed; ++r)
    out.push_back(StoredSchedule{ResultText(r, 0), ResultText(r, 1), ResultText(r, 2), ResultInt(r, 3),
                                 static_cast<Oid>(ResultInt(r, 4))});
  return out;
}

// The worker's loop for one side; returns when it should exit (no schedule left, the
// extension gone, or a stop asked).
class ScheduleWorker {
 public:
  explicit ScheduleWorker(int side) : side_(side) {}

  void Run() {
    DeferHubFailures(true);
    if (!TakeLock()) return;
    ereport(LOG, (errmsg("deltasync: %s worker started", SideName(side_))));
    auto last_scan = Clock::now() - std::chrono::hours(1);
    while (!Stopping()) {
      if (MillisSince(last_scan) >= kRescanMs) {
        if (!Rescan()) break;
        last_scan = Clock::now();
      }
      long wait = side_ == kPush ? PushPass() : PullPass();
      if (Stopping()) break;
      Sleep(wait);
    }
    ereport(LOG, (errmsg("deltasync: %s worker stopped", SideName(side_))));
  }

 private:
  static bool Stopping() { return ProcDiePending; }

  static void Sleep(long ms) {
    if (ms <= 0) return;
    PgTry([ms] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
    });
  }

  // One worker per side and database: the session advisory lock is held until exit.
  bool TakeLock() {
    bool got = false;
    std::string error;
    InTransaction(
        [&] {
          Args a;
          a.AddInt8(kWorkerLockSpace + side_);
          RunSql("SELECT pg_try_advisory_lock($1)", a);
          got = ResultText(0, 0) == "t";
        },
        error);
    return got;
  }

  // Reads the schedules again; false when none is left (or deltasync is gone).
  bool Rescan() {
    std::vector<StoredSchedule> now;
    std::string schema, error;
    if (!InTransaction(
            [&] {
              schema = ApiSchema();
              if (!schema.empty()) now = ReadSchedules();
            },
            error)) {
      ereport(WARNING, (errmsg("deltasync: %s worker cannot read the schedules: %s", SideName(side_), error.c_str())));
      return true;  // keep what it had; try again at the next scan
    }
    if (schema.empty() || now.empty()) return false;
    schema_ = schema;
    std::map<std::string, LinkState> next;
    for (StoredSchedule& s : now) {
      auto it = links_.find(s.hub);
      LinkState st = it == links_.end() ? LinkState{} : std::move(it->second);
      st.s = std::move(s);
      next.emplace(st.s.hub, std::move(st));
    }
    links_ = std::move(next);
    return true;
  }

  // The safe version: below it every transaction that wrote a tracked table has ended.
  bool SafeVersion(int64_t& out) {
    std::string error;
    return InTransaction([&] { out = Backend::Get().SafeVersion(); }, error);
  }

  // Pushes every schedule that has news or is due; the wait until the next pass.
  long PushPass() {
    int64_t safe = -1;
    if (!SafeVersion(safe)) return kPollMs;
    for (auto& [hub, st] : links_) {
      bool due = st.failed || safe != st.seen_version || MillisSince(st.last_ok) >= st.s.interval_ms;
      if (!due || Clock::now() < st.retry_at) continue;
      if (Call(st, "deltasync_push", st.s.options)) st.seen_version = safe;
      if (Stopping()) break;
    }
    return kPollMs;
  }

  // Long-polls each schedule in turn (the hub answers at once when it has news); the wait
  // until the next pass is the shortest backoff of those that failed.
  long PullPass() {
    long wait = kRescanMs;
    bool called = false;
    for (auto& [hub, st] : links_) {
      if (Clock::now() < st.retry_at) {
        wait = std::min(wait, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    st.retry_at - Clock::now()).count()));
        continue;
      }
      called = true;
      Call(st, "deltasync_pull", LongPollOptions(st.s.options, st.s.interval_ms, 0));
      if (Stopping()) break;
    }
    return called ? 0 : std::max(wait, 1L);
  }

  // One call of `fn`(url, options) as the schedule's role; the outcome logged, a failure
  // recorded in deltasync.hubs and backed off.
  bool Call(LinkState& st, const char* fn, const std::string& options) {
    const std::string sql = "SELECT " + schema_ + "." + fn + "($1, $2::jsonb)::text";
    std::string result, error;
    auto t0 = Clock::now();
    bool ok = InTransaction(
        [&] {
          Oid saved_user = InvalidOid;
          int saved_context = 0;
          PgTry([&] {
            GetUserIdAndSecContext(&saved_user, &saved_context);
            SetUserIdAndSecContext(st.s.role, saved_context | SECURITY_LOCAL_USERID_CHANGE);
            pgstat_report_activity(STATE_RUNNING, fn);
          });
          Args a;
          a.AddText(st.s.url);
          a.AddText(options);
          RunSql(sql, a);
          if (SPI_processed == 1) result = ResultText(0, 0);
          PgTry([&] {
            SetUserIdAndSecContext(saved_user, saved_context);
            pgstat_report_activity(STATE_IDLE, nullptr);
          });
        },
        error);
    // A cancel (pg_cancel_backend) interrupted this call only: it is retried.
    QueryCancelPending = false;
    long ms = MillisSince(t0);
    if (ok) {
      st.failed = false;
      st.backoff.Reset();
      st.retry_at = Clock::now();
      st.last_ok = Clock::now();
      Json r = Json::parse(result, nullptr, false);
      int64_t moved = r.is_object() ? r.value(side_ == kPush ? "pushed" : "pulled", int64_t{0}) : 0;
      ereport(moved > 0 ? DEBUG1 : DEBUG2,
              (errmsg("deltasync: %s %s: %s in %ld ms", fn, st.s.hub.c_str(), result.c_str(), ms)));
      return true;
    }
    if (Stopping()) return false;
    st.failed = true;
    int64_t wait = st.backoff.Next();
    st.retry_at = Clock::now() + std::chrono::milliseconds(wait);
    ereport(LOG, (errmsg("deltasync: %s %s failed (%d in a row, retry in %lld ms): %s", fn, st.s.hub.c_str(),
                         st.backoff.failures(), static_cast<long long>(wait), error.c_str())));
    HubFailure f;
    if (!TakeDeferredHubFailure(f)) f = HubFailure{st.s.hub, error, static_cast<int64_t>(WallClockMillis())};
    std::string ignored;
    InTransaction(
        [&] {
          AsOwner as;
          WriteHubFailure(f);
        },
        ignored);
    return false;
  }

  int side_;
  std::string schema_;
  std::map<std::string, LinkState> links_;
};

// At server start: starts the database's workers if it has schedules.
void Probe() {
  bool any = false;
  std::string error;
  InTransaction(
      [&] {
        if (!ApiSchema().empty()) any = !ReadSchedules().empty();
      },
      error);
  if (any) StartScheduleWorkers(MyDatabaseId);
}

// The databases a launcher visits: those that allow connections, templates left out.
std::vector<Oid> ConnectableDatabases() {
  std::vector<Oid> out;
  PgTry([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    (void)GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
      auto* d = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
      if (d->datallowconn && !d->datistemplate) out.push_back(d->oid);
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
  });
  return out;
}

}  // namespace

void StartScheduleWorkersAtCommit() { g_start_at_commit = true; }

void OnScheduleXactEnd(bool committed) {
  if (!g_start_at_commit) return;
  g_start_at_commit = false;
  if (committed) StartScheduleWorkers(MyDatabaseId);
}

void RegisterScheduleLauncher() {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  snprintf(w.bgw_name, BGW_MAXLEN, "deltasync schedule launcher");
  snprintf(w.bgw_type, BGW_MAXLEN, "deltasync launcher");
  snprintf(w.bgw_library_name, BGW_MAXLEN, "deltasync");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "deltasync_schedule_launcher");
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  RegisterBackgroundWorker(&w);
}

}  // namespace deltasync

using namespace deltasync;

namespace {

// The schedule's options: those of deltasync_sync (checked by the same parser) and interval_ms.
ScheduleOptions OptionsArg(FunctionCallInfo fcinfo) {
  ScheduleOptions o = SplitScheduleOptions(JsonbArgText(fcinfo, 1), "deltasync_schedule");
  ParseSyncOptions(o.sync_options.dump());  // throws on what deltasync_sync would refuse
  return o;
}

}  // namespace

DELTASYNC_PG_FUNCTION(deltasync_schedule) {
  std::string url = TextArg(fcinfo, 0, "deltasync_schedule(url)");
  std::string key = HubKey(url);  // throws on a URL deltasync_sync would refuse
  ScheduleOptions so = OptionsArg(fcinfo);
  SpiSession spi;
  RequireCurrentCatalog("deltasync_schedule");
  const Oid role = GetUserId();
  bool replaced = false;
  {
    AsOwner as;
    Args k;
    k.AddText(key);
    RunSql("SELECT 1 FROM deltasync.schedules WHERE hub = $1", k);
    replaced = SPI_processed > 0;
    Args a;
    a.AddText(key);
    a.AddText(url);
    a.AddText(so.sync_options.dump());
    a.AddInt8(so.interval_ms);
    a.Add(OIDOID, ObjectIdGetDatum(role));
    a.AddInt8(static_cast<int64_t>(WallClockMillis()));
    RunSql("INSERT INTO deltasync.schedules (hub, url, options, interval_ms, role, updated_ms)"
           " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hub) DO UPDATE SET url = excluded.url,"
           " options = excluded.options, interval_ms = excluded.interval_ms, role = excluded.role,"
           " updated_ms = excluded.updated_ms",
           a);
  }
  StartScheduleWorkersAtCommit();
  spi.Finish();
  return JsonbResult(Json{{"hub", key}, {"url", url}, {"interval_ms", so.interval_ms}, {"scheduled", true},
                          {"replaced", replaced}});
}

DELTASYNC_PG_FUNCTION(deltasync_unschedule) {
  std::string key = HubKey(TextArg(fcinfo, 0, "deltasync_unschedule(url)"));
  SpiSession spi;
  RequireCurrentCatalog("deltasync_unschedule");
  bool removed = false;
  {
    AsOwner as;
    Args k;
    k.AddText(key);
    removed = RunSql("DELETE FROM deltasync.schedules WHERE hub = $1", k) > 0;
  }
  spi.Finish();
  return JsonbResult(Json{{"hub", key}, {"unscheduled", removed}});
}

// The workers: C++ inside, every PostgreSQL call through PgTry, so an error never longjmps
// over a C++ object; a stop (SIGTERM) ends the loop and the process exits 0.
void deltasync_schedule_worker(Datum arg) {
  const int side = DatumGetInt32(arg);
  Oid db = InvalidOid;
  memcpy(&db, MyBgworkerEntry->bgw_extra, sizeof(db));
  pqsignal(SIGTERM, die);
  pqsignal(SIGINT, StatementCancelHandler);
  BackgroundWorkerUnblockSignals();
  // No user named: the bootstrap superuser, which needs no LOGIN; each call runs as the
  // role that scheduled it.
  BackgroundWorkerInitializeConnectionByOid(db, InvalidOid, 0);
  try {
    if (side == kProbe) {
      Probe();
    } else {
      ScheduleWorker w(side);
      w.Run();
    }
  } catch (const std::exception& e) {
    ereport(LOG, (errmsg("deltasync: %s worker stopped: %s", SideName(side), e.what())));
  }
  proc_exit(0);
}

// The launcher (shared_preload_libraries only): one probe per database, one at a time, so
// a server with many databases never holds more than one extra worker slot.
void deltasync_schedule_launcher(Datum) {
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  std::vector<Oid> dbs;
  try {
    dbs = ConnectableDatabases();
  } catch (const std::exception& e) {
    ereport(LOG, (errmsg("deltasync: schedule launcher cannot list databases: %s", e.what())));
  }
  for (Oid db : dbs) {
    if (ProcDiePending) break;
    BackgroundWorkerHandle* handle = nullptr;
    if (!StartWorker(db, kProbe, MyProcPid, &handle)) {
      ereport(WARNING, (errmsg("deltasync: no background worker slot to start the schedules of database %u", db)));
      continue;
    }
    (void)WaitForBackgroundWorkerShutdown(handle);
  }
  proc_exit(0);
}
