#include "sqlite_common/sqlite_util.hpp"

namespace deltasync {

// Backticks, not double quotes: SQLite reads an unknown "name" as a string literal (its
// double-quoted-string fallback), so a stale column name would select its own spelling;
// `name` is always an identifier and fails loudly when unknown.
std::string sqlite::QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('`');
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

void ThrowSqlite(sqlite3* db, const std::string& doing) {
  int code = sqlite3_extended_errcode(db);
  ErrorCode ec = (code & 0xff) == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH ? ErrorCode::kConstraint
                                                                                : ErrorCode::kInternal;
  throw Error(ec, doing + ": " + sqlite3_errmsg(db));
}

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error(ErrorCode::kInternal, msg);
  }
}

Value ValueFromSqlite(sqlite3_value* v) {
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return Value::Integer(sqlite3_value_int64(v));
    case SQLITE_FLOAT: return Value::Real(sqlite3_value_double(v));
    case SQLITE_TEXT: {
      auto p = reinterpret_cast<const char*>(sqlite3_value_text(v));
      return Value::Text(std::string_view(p ? p : "", sqlite3_value_bytes(v)));
    }
    case SQLITE_BLOB: {
      auto p = static_cast<const char*>(sqlite3_value_blob(v));
      return Value::Blob(std::string_view(p ? p : "", sqlite3_value_bytes(v)));
    }
    default: return Value::Null();
  }
}

Stmt::Stmt(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK)
    ThrowSqlite(db, "preparing internal statement");
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

void Stmt::Bind(int i, const Value& v) {
  switch (v.type) {
    case ValueType::kNull: sqlite3_bind_null(stmt_, i); break;
    case ValueType::kInteger: sqlite3_bind_int64(stmt_, i, v.i); break;
    case ValueType::kReal: sqlite3_bind_double(stmt_, i, v.r); break;
    case ValueType::kText: BindText(i, v.s); break;
    case ValueType::kBlob: BindBlob(i, v.s); break;
  }
}

void Stmt::BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }

void Stmt::BindText(int i, std::string_view s) {
  sqlite3_bind_text64(stmt_, i, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
}

void Stmt::BindBlob(int i, std::string_view b) {
  // A zero-length blob must stay a blob, not become NULL: give SQLite a non-null pointer.
  sqlite3_bind_blob64(stmt_, i, b.empty() ? "" : b.data(), b.size(), SQLITE_STATIC);
}

bool Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string msg = sqlite3_errmsg(db_);
  int code = sqlite3_extended_errcode(db_);
  sqlite3_reset(stmt_);
  ErrorCode ec = (code & 0xff) == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH ? ErrorCode::kConstraint
                                                                                : ErrorCode::kInternal;
  throw Error(ec, msg);
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string_view Stmt::Text(int col) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return std::string_view(p ? p : "", sqlite3_column_bytes(stmt_, col));
}

std::string_view Stmt::Blob(int col) const {
  auto p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  return std::string_view(p ? p : "", sqlite3_column_bytes(stmt_, col));
}

namespace {
thread_local int savepoints_suspended = 0;
}  // namespace

SavepointsSuspended::SavepointsSuspended() { ++savepoints_suspended; }
SavepointsSuspended::~SavepointsSuspended() { --savepoints_suspended; }

Savepoint::Savepoint(sqlite3* db, const char* name) : db_(db), name_(name) {
  if (savepoints_suspended > 0) {
    done_ = true;
    return;
  }
  // Outside a transaction a savepoint would begin a deferred one: its first write after a
  // read then has to upgrade a read lock, which SQLite refuses at once with SQLITE_BUSY while
  // another connection writes (the busy handler is not called for an upgrade, so a pull page
  // failed "database is locked" beside a long push). Begun IMMEDIATE, the write lock is taken
  // first and the connection's busy timeout applies.
  if (sqlite3_get_autocommit(db_)) {
    Exec(db_, "BEGIN IMMEDIATE");
    own_transaction_ = true;
  }
  try {
    Exec(db_, "SAVEPOINT " + name_);
  } catch (...) {
    if (own_transaction_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);  // nothing written yet
    throw;
  }
}

Savepoint::~Savepoint() {
  if (done_) return;
  sqlite3_exec(db_, ("ROLLBACK TO " + name_).c_str(), nullptr, nullptr, nullptr);
  sqlite3_exec(db_, ("RELEASE " + name_).c_str(), nullptr, nullptr, nullptr);
  // Rolled back to the savepoint taken just after BEGIN, the transaction holds nothing: end it
  // as a RELEASE of the outermost savepoint did (ROLLBACK only if that fails).
  if (own_transaction_ && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Savepoint::Release() {
  if (done_) return;
  Exec(db_, "RELEASE " + name_);
  if (own_transaction_) Exec(db_, "COMMIT");
  done_ = true;
}

}  // namespace deltasync
