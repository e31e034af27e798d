#pragma once
// The schedules' background workers (pg_schedule.cpp), as the module's callbacks see them.

namespace deltasync {

// deltasync_schedule stored a schedule: the commit of this transaction starts the workers.
void StartScheduleWorkersAtCommit();
// The transaction ended (commit or abort): starts the workers if asked and committed.
// Plain C inside (a commit callback must not throw).
void OnScheduleXactEnd(bool committed);
// From _PG_init under shared_preload_libraries: a launcher that starts, at server start,
// the workers of every database with schedules.
void RegisterScheduleLauncher();

}  // namespace deltasync
