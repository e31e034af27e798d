#pragma once
// Per-connection state: the site's identity, its clock, the transaction-scoped version
// counter, and the catalog of tracked tables. One Conn lives as long as its connection.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/hlc.hpp"
#include "common/row_clocks.hpp"
#include "common/shadow_row.hpp"
#include "common/site_id.hpp"
#include "common/site_status.hpp"
#include "common/column_policy.hpp"
#include "common/value_repr.hpp"
#include "sqlite_common/sqlite_util.hpp"

namespace deltasync {

namespace sqlite {
// A tracked table as deltasync_tables records it, with its names ready for SQL.
struct TableInfo {
  int64_t id = 0;
  std::string name;
  std::vector<std::string> pk;
  std::vector<std::string> cols;  // non-key columns, in table order
  bool renamed = false;           // pk/cols follow a RENAME COLUMN the stored lists do not know yet
  std::vector<std::pair<std::string, std::string>> renames;  // those renames: (stored name, name now)
  std::string q_name;             // quoted table name
  std::string q_meta;             // quoted shadow table name
  TableReprs reprs;               // column representations, by position of pk and cols (sqlite_repr)
  std::vector<ColumnPolicy> policies;  // by position of cols; empty: all last-writer-wins (sqlite_repr)
  // kDropped: the base table is gone (DROP TABLE). kNeedsEnable: it was dropped and created
  // again, so its triggers are gone (common/site_status.hpp).
  TableState state = TableState::kTracked;

  // Throws unless kTracked: reading or merging an uncaptured table would be wrong.
  void RequireCaptured() const;
};
}  // namespace sqlite
using sqlite::TableInfo;

// Reads the shadow columns (kShadowColumns) of the statement's current row from `first_column` on.
ShadowRow ReadShadowRow(const Stmt& s, int first_column);

// The shadow table's key columns are k0, k1, ... holding the base row's key values as stored.
std::string ShadowKeyList(size_t n);                 // "k0, k1"
std::string ShadowKeyWhere(size_t n, int first_param);  // "k0 = ?1 AND k1 = ?2"

// Names of the objects deltasync creates for a tracked table.
std::string MetaTableName(const std::string& table);
std::string TriggerName(const std::string& table, const char* suffix);

class Conn {
 public:
  explicit Conn(sqlite3* db) : db_(db) {}
  sqlite3* db() const { return db_; }

  // True while deltasync_apply writes: triggers then record nothing.
  bool applying = false;

  // The capture guard (sqlite_guard.cpp): tables that statements prepared since the last
  // check write without their capture triggers compiled in, and whether a check is running.
  std::vector<std::string> unproven_writes;
  bool guarding = false;
  bool guard_dropping = false;  // the authorizer's last action was a DROP TABLE
  uint64_t guard_trace_calls = 0;  // statements the guard's trace callback saw start
  std::vector<std::string> guard_known;  // tables whose capture triggers a prepare compiled in
  bool guard_progress = false;    // the guard's progress handler is set
  bool guard_last_write = false;  // the last top-level statement the trace saw start writes
  bool guard_refusing = false;    // the guard stopped the statement that started last

  // Creates the internal tables if missing; refuses a database from a newer deltasync.
  void EnsureSchema();
  const SiteId& LocalSite();

  // Version and clock of the current write transaction, established on first use.
  int64_t NextVersion();
  uint64_t TxnHlc();
  // Makes later local writes in this transaction newer than everything seen so far.
  void RefreshTxnHlc();
  bool InTxn() const { return in_txn_; }
  // Called when the write transaction commits, or rolls back wholly or to a savepoint
  // (`aborted`: what it registered may be gone too) — sqlite_txn.cpp; as PostgreSQL's Backend.
  void EndTxn(bool aborted) {
    in_txn_ = false;
    if (aborted) sites_loaded_ = false;
  }

  // This site's db_version: every version issued so far is <= it, every later one > it. With
  // one writer at a time every version at or below it is committed or rolled back, so it is
  // also what PostgreSQL's Backend::SafeVersion computes from its running writers.
  int64_t SafeVersion();

  uint32_t SiteOrdinal(const SiteId& site);  // registers unseen sites
  const SiteId& SiteOf(uint32_t ordinal);
  void ForgetSites() { sites_loaded_ = false; }

  std::vector<TableInfo> LoadTables();
  std::optional<TableInfo> FindTable(const std::string& name);  // case-insensitive, as SQLite

  int64_t SettingInt(const char* name, int64_t fallback);
  void SetSetting(const char* name, int64_t value);

  HlcClock& clock() { return clock_; }

 private:
  void BeginTxn();
  void LoadSites();
  void WriteClockState();

  sqlite3* db_;
  bool schema_ready_ = false;
  bool repairing_ = false;  // LoadTables is repairing a rebuilt table (no recursion)
  std::optional<SiteId> site_;
  HlcClock clock_;

  bool in_txn_ = false;
  int64_t next_ver_ = 0;
  int64_t reserved_ = 0;       // versions up to here are promised to this transaction
  int64_t reserve_size_ = 64;  // grows for connections that write large transactions
  int64_t last_issued_ = 0;    // survives ROLLBACK TO, so this connection never reuses one
  uint64_t txn_hlc_ = 0;

  bool sites_loaded_ = false;
  std::vector<SiteId> sites_;
  std::unordered_map<SiteId, uint32_t, SiteIdHash> site_ords_;
};

}  // namespace deltasync
