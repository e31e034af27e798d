#pragma once
// The capture guard (sqlite_guard.cpp): the connection's authorizer and statement trace,
// through which a tracked table that lost its capture triggers to a schema change is
// followed before a write to it runs. An application that sets its own authorizer or
// sqlite3_trace_v2 callback on a connection replaces them (docs/applications.md).
#include <memory>

#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

void InstallCaptureGuard(sqlite3* db, Conn* conn);
void RemoveCaptureGuard(sqlite3* db);

// Lifts the guard's trace callback while deltasync itself runs statements (an apply): SQLite
// formats a copy of every nested statement's text for a trace callback (about a tenth of an
// apply's instructions). Only if the callback set is still the guard's (a probe statement
// tells); restored at the end.
class GuardTracePause {
 public:
  explicit GuardTracePause(Conn& conn);
  ~GuardTracePause();
  GuardTracePause(const GuardTracePause&) = delete;
  GuardTracePause& operator=(const GuardTracePause&) = delete;

 private:
  Conn& conn_;
  bool paused_ = false;
};

// Registers deltasync's functions, module and guard on `db` (the extension's entry point,
// also used for the guard's second connection). `out` receives the connection's state.
int RegisterExtension(sqlite3* db, char** err, std::shared_ptr<Conn>* out);

}  // namespace deltasync
