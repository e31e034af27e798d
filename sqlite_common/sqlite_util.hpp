#pragma once
// Small RAII helpers over the SQLite API: statements, savepoints, value conversion.
// Every file but extension.cpp reaches SQLite through the API table (SQLITE_EXTENSION_INIT3).
#include <sqlite3ext.h>

#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/value.hpp"

SQLITE_EXTENSION_INIT3

namespace deltasync {

// SQLite's own definitions of names PostgreSQL's adapter defines too live in deltasync::sqlite, so
// one binary could link both adapters without a one-definition-rule clash.
namespace sqlite {
// Quotes an identifier (backticks, embedded ones doubled): the only way names reach SQL text.
std::string QuoteIdent(std::string_view name);
}  // namespace sqlite
using sqlite::QuoteIdent;

// Throws Error(kInternal) carrying SQLite's message, prefixed by what we were doing.
[[noreturn]] void ThrowSqlite(sqlite3* db, const std::string& doing);

void Exec(sqlite3* db, const std::string& sql);

Value ValueFromSqlite(sqlite3_value* v);

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }

  // Binds without copying: the bound bytes must outlive the next Step().
  void Bind(int i, const Value& v);
  void BindInt(int i, int64_t v);
  void BindText(int i, std::string_view s);
  void BindBlob(int i, std::string_view b);
  bool Step();  // true when a row is ready; throws on error
  void Reset();
  void Run() { Step(); Reset(); }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string_view Text(int col) const;
  std::string_view Blob(int col) const;
  Value Val(int col) const { return ValueFromSqlite(sqlite3_column_value(stmt_, col)); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A named savepoint that rolls back unless Release()d: all-or-nothing for a function call.
// While a SavepointsSuspended lives on this thread, it does nothing: SQLite refuses to open a
// savepoint while a write statement is running, which is where the capture guard follows a
// schema change (sqlite_ext/sqlite_guard.cpp); that statement's transaction holds it instead.
class Savepoint {
 public:
  Savepoint(sqlite3* db, const char* name);
  ~Savepoint();
  void Release();

 private:
  sqlite3* db_;
  std::string name_;
  bool done_ = false;
  bool own_transaction_ = false;  // begun here (BEGIN IMMEDIATE): committed or rolled back here
};

class SavepointsSuspended {
 public:
  SavepointsSuspended();
  ~SavepointsSuspended();
  SavepointsSuspended(const SavepointsSuspended&) = delete;
  SavepointsSuspended& operator=(const SavepointsSuspended&) = delete;
};

// Keeps sqlite3_last_insert_rowid() what the application last saw across our own inserts.
class LastRowidGuard {
 public:
  explicit LastRowidGuard(sqlite3* db) : db_(db), rowid_(sqlite3_last_insert_rowid(db)) {}
  ~LastRowidGuard() { sqlite3_set_last_insert_rowid(db_, rowid_); }

 private:
  sqlite3* db_;
  sqlite3_int64 rowid_;
};

}  // namespace deltasync
