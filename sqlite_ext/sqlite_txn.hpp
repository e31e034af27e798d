#pragma once
// The deltasync_txn virtual table: tells a connection when its write transaction ends or
// rolls back to a savepoint (see sqlite_txn.cpp).
#include <memory>

#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

int RegisterTxnModule(sqlite3* db, const std::shared_ptr<Conn>& conn);

// Makes the current write transaction report its end to the connection's state.
void JoinTxn(sqlite3* db);

}  // namespace deltasync
