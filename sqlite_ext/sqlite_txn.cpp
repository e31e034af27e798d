// Transaction tracking without taking the application's commit or rollback hook.
//
// The eponymous virtual table deltasync_txn does nothing but join write transactions: at
// its first change a transaction writes one (discarded) row into it, and from then on
// SQLite tells it about the transaction's end (xCommit, xRollback) and about every
// ROLLBACK TO (xRollbackTo), which may have undone the transaction's clock reservation.
// Each of these ends the connection's per-transaction state; the next change starts it
// again from what the database then holds.
#include "sqlite_ext/sqlite_txn.hpp"

#include <memory>

namespace deltasync {

namespace {

struct TxnVtab {
  sqlite3_vtab base;  // must come first: SQLite sees only this
  Conn* conn;
};

struct TxnCursor {
  sqlite3_vtab_cursor base;
};

Conn* ConnOfVtab(sqlite3_vtab* v) { return reinterpret_cast<TxnVtab*>(v)->conn; }

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) {
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(touched)");
  if (rc != SQLITE_OK) return rc;
#ifdef SQLITE_VTAB_DIRECTONLY
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);  // never reachable from a view or trigger
#endif
  auto* v = static_cast<TxnVtab*>(sqlite3_malloc(sizeof(TxnVtab)));
  if (!v) return SQLITE_NOMEM;
  *v = TxnVtab{};
  v->conn = static_cast<std::shared_ptr<Conn>*>(aux)->get();
  *out = &v->base;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
  info->estimatedCost = 1;
  info->estimatedRows = 0;
  return SQLITE_OK;
}

int Open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* c = static_cast<TxnCursor*>(sqlite3_malloc(sizeof(TxnCursor)));
  if (!c) return SQLITE_NOMEM;
  *c = TxnCursor{};
  *out = &c->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* c) {
  sqlite3_free(c);
  return SQLITE_OK;
}

// The table is always empty to readers.
int Filter(sqlite3_vtab_cursor*, int, const char*, int, sqlite3_value**) { return SQLITE_OK; }
int Next(sqlite3_vtab_cursor*) { return SQLITE_OK; }
int Eof(sqlite3_vtab_cursor*) { return 1; }
int Column(sqlite3_vtab_cursor*, sqlite3_context* ctx, int) {
  sqlite3_result_null(ctx);
  return SQLITE_OK;
}
int Rowid(sqlite3_vtab_cursor*, sqlite3_int64* rowid) {
  *rowid = 0;
  return SQLITE_OK;
}

// Writing is how a transaction joins; the row itself is dropped.
int Update(sqlite3_vtab*, int, sqlite3_value**, sqlite3_int64*) { return SQLITE_OK; }

int Begin(sqlite3_vtab*) { return SQLITE_OK; }
int Sync(sqlite3_vtab*) { return SQLITE_OK; }
int Commit(sqlite3_vtab* v) {
  ConnOfVtab(v)->EndTxn(false);
  return SQLITE_OK;
}
int Rollback(sqlite3_vtab* v) {
  ConnOfVtab(v)->EndTxn(true);
  return SQLITE_OK;
}
int Savepoint(sqlite3_vtab*, int) { return SQLITE_OK; }
int Release(sqlite3_vtab*, int) { return SQLITE_OK; }
int RollbackTo(sqlite3_vtab* v, int) {
  ConnOfVtab(v)->EndTxn(true);
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.iVersion = 2;  // with xSavepoint, xRelease, xRollbackTo
  m.xCreate = nullptr;  // eponymous only: it exists on every connection that loaded us
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = Column;
  m.xRowid = Rowid;
  m.xUpdate = Update;
  m.xBegin = Begin;
  m.xSync = Sync;
  m.xCommit = Commit;
  m.xRollback = Rollback;
  m.xSavepoint = Savepoint;
  m.xRelease = Release;
  m.xRollbackTo = RollbackTo;
  return m;
}

const sqlite3_module kTxnModule = MakeModule();

void ReleaseHolder(void* p) { delete static_cast<std::shared_ptr<Conn>*>(p); }

}  // namespace

int RegisterTxnModule(sqlite3* db, const std::shared_ptr<Conn>& conn) {
  auto* holder = new (std::nothrow) std::shared_ptr<Conn>(conn);
  if (!holder) return SQLITE_NOMEM;
  return sqlite3_create_module_v2(db, "deltasync_txn", &kTxnModule, holder, ReleaseHolder);
}

void JoinTxn(sqlite3* db) { Exec(db, "INSERT INTO deltasync_txn VALUES (NULL)"); }

}  // namespace deltasync
