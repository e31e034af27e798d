// The capture guard: a write to a tracked table whose triggers a schema change dropped (an
// ORM's table rebuild: CREATE new, copy, DROP old, RENAME new) is captured, not lost, even
// when no deltasync function runs between the migration and the write.
//
// While a statement is prepared, the authorizer sees every table it writes, and the bodies
// of the triggers compiled into it are authorized under the trigger's name: a write to a
// table whose capture triggers were not compiled in is noted. When a write statement then
// starts (the trace callback runs at its first instruction, before it opens a transaction
// or touches a row), deltasync follows the schema change as its next call would. The new
// triggers change the schema, so SQLite prepares the statement again, with them, before it
// writes. What cannot be followed (a new key) stops the statement instead (sqlite3_interrupt:
// it fails before writing anything; the reason goes to sqlite3_log and the next deltasync
// call's error says what to run).
//
// Inside a transaction the change is followed on this connection, without savepoints (SQLite
// opens none while a write statement runs; the transaction keeps it atomic with the write).
// Outside one, a statement's implicit transaction would roll the change back with the
// statement's first attempt, so another connection to the same file follows it and commits.
#include <cstring>
#include <optional>
#include <memory>
#include <string>

#include "common/utf8.hpp"
#include "common/scoped_flag.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_guard.hpp"

namespace deltasync {
namespace {

constexpr std::string_view kTriggerInfix = "__deltasync_";

bool IsInternal(const char* table) {
  return std::strncmp(table, "sqlite_", 7) == 0 || std::strncmp(table, "deltasync_", 10) == 0 ||
         std::string_view(table).find(kTriggerInfix) != std::string_view::npos;
}

bool Contains(const std::vector<std::string>& v, std::string_view name) {
  for (const std::string& t : v)
    if (EqualsIgnoreAsciiCase(t, name)) return true;
  return false;
}

int Progress(void* p);

void SetProgress(Conn& conn, bool on) {
  if (conn.guard_progress == on) return;
  sqlite3_progress_handler(conn.db(), on ? 1 : 0, on ? Progress : nullptr, on ? &conn : nullptr);
  conn.guard_progress = on;
}

// A statement SQLite prepares again after SQLITE_SCHEMA (another connection rebuilt the table
// while this one's schema was cached) runs again without a trace (SQLite traces a statement
// once) and so without the follow: a write to a table this connection saw captured, prepared
// without its triggers, sets the progress handler, which stops that run at its first jump,
// before it writes (SQLITE_INTERRUPT). The statement's next run is traced and followed.
int Progress(void* p) {
  Conn& conn = *static_cast<Conn*>(p);
  if (conn.guarding) return 0;
  if (conn.guard_refusing) return 1;
  if (conn.unproven_writes.empty()) {
    SetProgress(conn, false);
    return 0;
  }
  if (!conn.guard_last_write) return 0;  // a read runs; the write is followed when it starts
  sqlite3_log(SQLITE_INTERRUPT, "deltasync: a write to tracked table \"%s\" was stopped: its capture triggers are "
                                "gone (another connection changed the table) and SQLite reran the statement without "
                                "letting deltasync follow the change first; run it again",
              conn.unproven_writes[0].c_str());
  return 1;
}

void Note(Conn& conn, const char* table) {
  if (Contains(conn.unproven_writes, table)) return;
  conn.unproven_writes.emplace_back(table);
  if (Contains(conn.guard_known, table)) SetProgress(conn, true);
}

// `trigger` (one of ours, "<table>__deltasync_<kind>") was compiled in: its table is captured.
void Prove(Conn& conn, std::string_view trigger) {
  size_t at = trigger.rfind(kTriggerInfix);
  std::string_view table = trigger.substr(0, at);
  auto& v = conn.unproven_writes;
  for (size_t i = v.size(); i-- > 0;)
    if (EqualsIgnoreAsciiCase(v[i], table)) {
      if (!Contains(conn.guard_known, table)) conn.guard_known.emplace_back(table);
      v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
    }
  if (v.empty()) SetProgress(conn, false);
}

int Authorize(void* p, int action, const char* a1, const char*, const char* schema, const char* trigger) {
  Conn& conn = *static_cast<Conn*>(p);
  if (conn.guarding) return SQLITE_OK;
  if (trigger) {
    std::string_view name(trigger);
    if (name.find(kTriggerInfix) != std::string_view::npos) {
      if (!conn.unproven_writes.empty()) Prove(conn, name);
      return SQLITE_OK;  // our own trigger's body: it writes the shadow table
    }
  }
  // DROP TABLE authorizes a DELETE of the table right after the DROP itself: not a write
  // that needs capturing (the next deltasync call sees the table gone).
  bool dropping = conn.guard_dropping;
  conn.guard_dropping = action == SQLITE_DROP_TABLE;
  if ((action == SQLITE_INSERT || action == SQLITE_UPDATE || (action == SQLITE_DELETE && !dropping)) && a1 &&
      schema && std::strcmp(schema, "main") == 0 && !IsInternal(a1))
    Note(conn, a1);
  return SQLITE_OK;
}

// Whether `table` may be tracked, from the connection's schema in memory (no read, so no
// lock: outside a transaction a lock taken now would outlive this call and block the other
// connection below): tracked tables have a shadow table. Without the column-metadata API
// (SQLite built without it), every table may be.
bool MayBeTracked(sqlite3* db, const std::string& table) {
  if (!sqlite3_api->table_column_metadata) return true;
  std::string shadow = MetaTableName(table);
  return sqlite3_table_column_metadata(db, "main", shadow.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr,
                                       nullptr) == SQLITE_OK;
}

// Follows the schema change on `conn` if one of `tables` is tracked and lost its capture
// triggers; returns those still without them (the change could not be followed).
std::vector<std::string> Follow(Conn& conn, const std::vector<std::string>& tables) {
  std::vector<std::string> lost;
  {
    std::optional<Stmt> s;
    try {
      s.emplace(conn.db(),
                "SELECT 1 FROM deltasync_tables AS d WHERE d.name = ?1 COLLATE NOCASE AND NOT EXISTS"
                " (SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND name = d.name || '__deltasync_ins')");
    } catch (const Error&) {
      // No deltasync_tables: nothing is tracked here (and none is created). Anything else (a
      // lock: SQLITE_BUSY) is a failure to follow, which stops the write.
      if (sqlite3_errcode(conn.db()) == SQLITE_ERROR && std::strstr(sqlite3_errmsg(conn.db()), "no such table"))
        return lost;
      throw;
    }
    for (const std::string& t : tables) {
      s->BindText(1, t);
      if (s->Step()) lost.push_back(t);
      s->Reset();
    }
  }
  if (lost.empty()) return lost;
  std::vector<std::string> still;
  for (const TableInfo& t : conn.LoadTables())
    for (const std::string& name : lost)
      if (EqualsIgnoreAsciiCase(t.name, name) && t.state == TableState::kNeedsEnable) still.push_back(t.name);
  return still;
}

// Follows it on a second connection to the same file, which commits it.
// The application connection's busy timeout (PRAGMA busy_timeout reads a setting, no lock).
int BusyTimeoutOf(sqlite3* db) {
  try {
    Stmt s(db, "PRAGMA busy_timeout");
    return s.Step() ? static_cast<int>(s.Int(0)) : 0;
  } catch (const Error&) {
    return 0;
  }
}

std::vector<std::string> FollowOnAnotherConnection(sqlite3* db, const std::vector<std::string>& tables) {
  const char* path = sqlite3_db_filename(db, "main");
  if (!path || !*path)
    throw Error(ErrorCode::kInvalidArgument,
                "an in-memory or temporary database has no file another connection can open; write inside a "
                "transaction or call a deltasync function after the schema change");
  sqlite3* other = nullptr;
  int rc = sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> close(other, sqlite3_close);
  if (rc != SQLITE_OK) throw Error(ErrorCode::kInternal, std::string("cannot open the database again: ") + sqlite3_errstr(rc));
  sqlite3_busy_timeout(other, BusyTimeoutOf(db));  // waits for a lock as long as the application's write would
  std::shared_ptr<Conn> conn;
  char* err = nullptr;
  if (RegisterExtension(other, &err, &conn) != SQLITE_OK) {
    std::string msg = err ? err : "cannot register deltasync";
    sqlite3_free(err);
    throw Error(ErrorCode::kInternal, msg);
  }
  ScopedFlag busy(conn->guarding);
  return Follow(*conn, tables);
}

// Stops the statement about to run. sqlite3_interrupt alone is not enough: if the statement
// then meets SQLITE_SCHEMA (a lock holder changed the schema while it waited), SQLite prepares
// it again, clears the interrupt and reruns it untraced; the progress handler stops that too.
void Refuse(Conn& conn, const std::string& why) {
  sqlite3_log(SQLITE_ERROR, "%s", why.c_str());
  conn.guard_refusing = true;
  SetProgress(conn, true);
  sqlite3_interrupt(conn.db());
}

// Whether a statement other than `current` runs on the connection (a read cursor the
// application iterates while it writes): its lock keeps a second connection from committing
// (rollback journal), or its snapshot would be older than what that one commits (WAL).
bool OtherStatementRuns(sqlite3* db, sqlite3_stmt* current) {
  for (sqlite3_stmt* s = sqlite3_next_stmt(db, nullptr); s; s = sqlite3_next_stmt(db, s))
    if (s != current && sqlite3_stmt_busy(s)) return true;
  return false;
}

void FollowBeforeWrite(Conn& conn, sqlite3_stmt* current) {
  sqlite3* db = conn.db();
  std::vector<std::string> tables;
  for (std::string& t : conn.unproven_writes)
    if (MayBeTracked(db, t)) tables.push_back(std::move(t));
  conn.unproven_writes.clear();
  if (tables.empty()) return;
  ScopedFlag busy(conn.guarding);
  LastRowidGuard rowid(db);
  try {
    std::vector<std::string> lost;
    if (!sqlite3_get_autocommit(db)) {
      SavepointsSuspended inside_the_write;
      lost = Follow(conn, tables);
    } else if (OtherStatementRuns(db, current)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "another statement of this connection is still running (a cursor being read), so the change can "
                  "be followed neither here nor on a second connection; finish it, write inside a transaction, or "
                  "call a deltasync function after the schema change");
    } else {
      lost = FollowOnAnotherConnection(db, tables);
    }
    if (!lost.empty())
      Refuse(conn, "deltasync: a write to tracked table \"" + lost[0] +
                     "\" was stopped: a schema change removed its capture triggers and cannot be followed (was its "
                     "key changed?); call deltasync_disable('" + lost[0] + "') then deltasync_enable('" + lost[0] +
                     "')");
  } catch (const std::exception& e) {
    Refuse(conn, std::string("deltasync: a write to a tracked table was stopped: its capture triggers are gone and "
                           "following the schema change failed: ") + e.what());
  }
}

int Trace(unsigned type, void* p, void* stmt, void* sql) {
  if (type != SQLITE_TRACE_STMT) return 0;
  Conn& conn = *static_cast<Conn*>(p);
  ++conn.guard_trace_calls;
  auto* s = static_cast<sqlite3_stmt*>(stmt);
  const char* text = static_cast<const char*>(sql);
  bool top = text == sqlite3_sql(s);  // not a trigger's program, nor a statement run inside one
  if (top) {
    conn.guard_last_write = !sqlite3_stmt_readonly(s);
    conn.guard_refusing = false;  // a new run: what stopped the last one is looked at again
  }
  if (conn.unproven_writes.empty() || conn.guarding) return 0;
  // A trigger's program starting inside a statement: not a statement of its own.
  if (!top && text && std::strncmp(text, "-- TRIGGER ", 11) == 0) return 0;
  if (sqlite3_stmt_readonly(s)) return 0;
  FollowBeforeWrite(conn, s);
  if (conn.unproven_writes.empty() && !conn.guard_refusing) SetProgress(conn, false);
  return 0;
}

}  // namespace

void InstallCaptureGuard(sqlite3* db, Conn* conn) {
  sqlite3_set_authorizer(db, Authorize, conn);
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT, Trace, conn);
}

GuardTracePause::GuardTracePause(Conn& conn) : conn_(conn) {
  uint64_t before = conn.guard_trace_calls;
  sqlite3_exec(conn.db(), "SELECT 1", nullptr, nullptr, nullptr);  // starts a statement: traced if ours is set
  if (conn.guard_trace_calls == before) return;  // the application replaced it: leave its own alone
  sqlite3_trace_v2(conn.db(), 0, nullptr, nullptr);
  paused_ = true;
}

GuardTracePause::~GuardTracePause() {
  if (paused_) sqlite3_trace_v2(conn_.db(), SQLITE_TRACE_STMT, Trace, &conn_);
}

void RemoveCaptureGuard(sqlite3* db) {
  sqlite3_progress_handler(db, 0, nullptr, nullptr);
  sqlite3_set_authorizer(db, nullptr, nullptr);
  sqlite3_trace_v2(db, 0, nullptr, nullptr);
}

}  // namespace deltasync
