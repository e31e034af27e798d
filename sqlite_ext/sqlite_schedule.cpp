// deltasync_schedule and deltasync_unschedule: the schedules `deltasync agent` runs (SPEC
// section 7), kept in the site's own database (deltasync_schedules) so that whatever runs
// them needs nothing but the file. One schedule per hub (its URL's base and node); the
// options are stored as given, token included, so anyone who can read the file can read
// the token (docs/live-sync.md).
#include <nlohmann/json.hpp>

#include "common/hlc.hpp"
#include "common/schedule.hpp"
#include "common/sync_client.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;

std::string TextArg(sqlite3_value* v, const char* what) {
  if (sqlite3_value_type(v) != SQLITE_TEXT) throw Error(ErrorCode::kInvalidArgument, std::string(what));
  return std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)), sqlite3_value_bytes(v));
}

// The schedule's options: those of deltasync_sync (checked by the same parser) and interval_ms,
// which is taken out. Throws kInvalidArgument on anything deltasync_sync would refuse.
ScheduleOptions OptionsArg(int argc, sqlite3_value** argv) {
  if (argc < 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) return SplitScheduleOptions("", "deltasync_schedule");
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, "deltasync_schedule: options must be a JSON object (text)");
  if (sqlite3_value_bytes(argv[1]) == 0) throw Error(ErrorCode::kInvalidArgument, "deltasync_schedule: options are not valid JSON");
  ScheduleOptions o = SplitScheduleOptions(
      std::string_view(reinterpret_cast<const char*>(sqlite3_value_text(argv[1])), sqlite3_value_bytes(argv[1])),
      "deltasync_schedule");
  ParseSyncOptions(o.sync_options.dump());  // throws on what deltasync_sync would refuse
  return o;
}

}  // namespace

void FnSchedule(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    std::string url = TextArg(argv[0], "deltasync_schedule(url) expects the hub URL as text");
    std::string key = HubKey(url);  // throws on a URL deltasync_sync would refuse
    ScheduleOptions so = OptionsArg(argc, argv);
    const int64_t interval_ms = so.interval_ms;
    conn.EnsureSchema();
    Savepoint sp(conn.db(), "deltasync_schedule");
    Stmt had(conn.db(), "SELECT 1 FROM deltasync_schedules WHERE hub = ?1");
    had.BindText(1, key);
    bool replaced = had.Step();
    had.Reset();
    Stmt put(conn.db(),
             "INSERT INTO deltasync_schedules(hub, url, options, interval_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
             " ON CONFLICT(hub) DO UPDATE SET url = excluded.url, options = excluded.options,"
             " interval_ms = excluded.interval_ms, updated_ms = excluded.updated_ms");
    std::string stored = so.sync_options.dump();
    put.BindText(1, key);
    put.BindText(2, url);
    put.BindText(3, stored);
    put.BindInt(4, interval_ms);
    put.BindInt(5, static_cast<int64_t>(WallClockMillis()));
    put.Run();
    sp.Release();
    ResultText(ctx, Json{{"hub", key}, {"url", url}, {"interval_ms", interval_ms}, {"scheduled", true},
                         {"replaced", replaced}}
                        .dump());
  });
}

void FnUnschedule(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    std::string key = HubKey(TextArg(argv[0], "deltasync_unschedule(url) expects the hub URL as text"));
    conn.EnsureSchema();
    Stmt del(conn.db(), "DELETE FROM deltasync_schedules WHERE hub = ?1");
    del.BindText(1, key);
    del.Run();
    bool removed = sqlite3_changes(conn.db()) > 0;
    ResultText(ctx, Json{{"hub", key}, {"unscheduled", removed}}.dump());
  });
}

}  // namespace deltasync
