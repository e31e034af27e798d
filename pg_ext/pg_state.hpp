#pragma once
// Per-backend state of the PostgreSQL extension: the site's identity and clock, the
// per-transaction write state (clock, writer lock), site ordinals, the catalog of tracked
// tables, and the version horizon that makes reading by version safe under concurrent,
// out-of-order commits (docs/postgresql.md, "Versions under concurrency").
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/column_policy.hpp"
#include "common/hlc.hpp"
#include "common/row_apply.hpp"
#include "common/row_clocks.hpp"
#include "common/shadow_row.hpp"
#include "common/site_id.hpp"
#include "common/site_status.hpp"
#include "pg_ext/pg_spi.hpp"
#include "pg_ext/pg_values.hpp"

namespace deltasync {

// Writers hold, shared, for the rest of their transaction, an advisory lock whose fourth tag
// field is this value (SQL's advisory lock functions only ever use 1 and 2, so no
// application lock can collide with it) and whose second and third fields hold the 64-bit
// version counter the writer saw before its first version.
inline constexpr uint16 kWriterLockTag = 0x4453;  // "DS"
// Versions come from deltasync.db_version in blocks of this many (its INCREMENT).
inline constexpr int64_t kVersionBlock = 256;

namespace pg {
// A tracked table as deltasync.tables records it, resolved against the catalog.
struct TableInfo {
  int32 id = 0;
  Oid relid = InvalidOid;
  std::string name;  // the name in payloads: the relation's name, without schema
  std::vector<std::string> pk;
  std::vector<std::string> cols;  // non-key columns, in table order
  std::vector<ColType> pk_types, col_types;
  // The columns' policies by position of cols (docs/policies.md); empty: all last-writer-wins.
  std::vector<ColumnPolicy> policies;
  std::string q_name;  // schema-qualified, quoted
  std::string q_meta;  // deltasync."meta_<id>"
  Oid owner = InvalidOid;
  bool dropped = false;  // the base table is gone (the drop event trigger removes it)
  // Why deltasync cannot serve the table any more (empty: it can): DDL its event triggers
  // did not see (they do not fire under session_replication_role = replica) changed its key
  // or removed a tracked column.
  std::string broken;
  // Some member's capture triggers are disabled or gone, or partitions were attached, created
  // or detached unseen (as above).
  bool capture_off = false;
  bool Unservable() const { return !broken.empty() || capture_off; }
  // The table's state as both engines report it (common/site_status), from the above.
  TableState State() const {
    if (dropped) return TableState::kDropped;
    return Unservable() ? TableState::kBroken : TableState::kTracked;
  }
  bool rls = false, force_rls = false;
};
}  // namespace pg
using pg::TableInfo;

// A shadow row's version in SQL over alias m: a grave stores NULL, read as kGraveVersion
// (common/compaction), so it is collected by a pass from 0 only.
inline constexpr const char* kPgRowVersion = "coalesce(m.ver, 1)";

// Reads the shadow columns (kShadowColumns) from row `row` of `rows`, starting at column `first`.
// A grave's NULL version and clock read as kGraveVersion and 0.
ShadowRow ReadShadowRow(const Rows& rows, uint64_t row, int first);

std::string ShadowKeyList(size_t n, const char* prefix = "");  // "k0, k1" or "m.k0, m.k1"
// "l.k0 OPERATOR(s.=) r.x AND ...": key equality with each key type's own operator,
// schema-qualified, so no search_path can substitute another.
std::string KeyEquality(const TableInfo& t, const std::string& left, const std::vector<std::string>& left_cols,
                        const std::string& right, const std::vector<std::string>& right_cols);
// "k0 OPERATOR(s.=) $1 AND ...": the same against parameters.
std::string KeyParamEquality(const TableInfo& t, const std::vector<std::string>& cols, int first_param);
std::vector<std::string> ShadowKeyNames(size_t n);

class Backend {
 public:
  static Backend& Get();

  // True while deltasync_apply writes: the capture trigger then records nothing.
  bool applying = false;

  Oid ExtensionOwner();
  const SiteId& LocalSite();

  // The first local write of a transaction takes the writer lock and the transaction's
  // clock; later ones reuse them. Returns the transaction's clock.
  uint64_t BeginWrite();
  // The next version of this transaction (BeginWrite first): from its current block, or
  // from a new block of deltasync.db_version.
  int64_t NextVersion();
  // Where NextVersion stands, to take the same versions again after a rolled-back
  // subtransaction (deltasync_apply's redo one row at a time): the blocks the transaction
  // took stay its own and are used again, in order, before new ones are taken.
  struct VersionMark {
    int64_t next = 0, end = -1;
    size_t block = 0;
  };
  VersionMark MarkVersions() const { return VersionMark{next_ver_, block_end_, block_}; }
  void RewindVersions(const VersionMark& m);
  // Makes later local writes in this transaction newer than every clock seen so far.
  void RefreshTxnHlc();
  HlcClock& clock() { return clock_; }
  // Persists a clock floor other backends start their transactions above.
  void PersistClock(uint64_t hlc);

  // The highest version V such that every change with a version <= V is committed or gone:
  // versions held by transactions still running are above it. A safe `since` cursor.
  // include_own = false: also below every version this transaction took (uncommitted).
  int64_t SafeVersion(bool include_own = true);
  // The blocks of versions this transaction took (uncommitted until it ends): a reader that
  // must not send them excludes them cell by cell.
  VersionRanges OwnVersions() const;

  uint32_t SiteOrdinal(const SiteId& site);  // registers unseen sites
  const SiteId& SiteOf(uint32_t ordinal);

  std::vector<TableInfo> LoadTables();
  std::optional<TableInfo> TableByRelid(Oid relid);

  int64_t SettingInt(const char* name, int64_t fallback);

  // Transaction end (xact callback): the per-transaction state ends; after an abort the
  // site ordinals this backend registered may be gone too.
  void EndTxn(bool aborted);
  void ForgetSites() { sites_loaded_ = false; }
  // A relation of the extension's own was invalidated (dropped with the extension, say):
  // identity and catalog caches are read again from the database.
  void OnRelationInvalidated(Oid relid);

 private:
  void LoadSites();
  Oid owner_ = InvalidOid;
  std::optional<SiteId> site_;
  HlcClock clock_;
  bool in_txn_ = false;
  uint64_t txn_hlc_ = 0;
  int64_t next_ver_ = 0, block_end_ = -1;  // the transaction's current block of versions
  int64_t txn_seen_ = 0;                    // the counter seen before its first version
  VersionRanges txn_blocks_;                // every block of versions this transaction took
  size_t block_ = 0;                        // how many of them are (again) in use (RewindVersions)
  Oid version_seq_ = InvalidOid;
  Oid settings_relid_ = InvalidOid;
  bool sites_loaded_ = false;
  std::vector<SiteId> sites_;
  std::unordered_map<SiteId, uint32_t, SiteIdHash> site_ords_;
};

// Runs its scope's statements as the extension's owner (internal tables) ...
class AsOwner : public AsRole {
 public:
  AsOwner() : AsRole(Backend::Get().ExtensionOwner()) {}
};

// "table "t" cannot be served by deltasync any more: <why>; call deltasync_disable('t') and
// deltasync_enable('t') again" for a table that is Unservable().
std::string BrokenMessage(const TableInfo& t);

// deltasync.tables.policies: a JSON array of policy names by position of the tracked columns
// (`cols`), read into the form TableInfo::policies keeps (empty: all last-writer-wins), and
// written back from it.
std::vector<ColumnPolicy> PoliciesFromJson(const std::string& text, const std::vector<std::string>& cols);
std::string PoliciesJson(const std::vector<ColumnPolicy>& policies);
// The column_options object of deltasync_status() and deltasync_enable()'s result: each
// column whose policy is not last-writer-wins, as {"<column>": {"policy": "counter"}}.
nlohmann::json ColumnOptionsJson(const std::vector<std::string>& cols, const std::vector<ColumnPolicy>& policies);
// Raises that as a WARNING (a reader that leaves the table out says so).
void WarnBroken(const TableInfo& t);

// Whether deltasync.members exists: it does from 0.2.0 on. Between installing a newer module
// and ALTER EXTENSION deltasync UPDATE, the module serves the older catalog: capture and DDL
// on ordinary tables keep working there (docs/upgrades.md).
bool CatalogHasMembers();
// Throws, naming the command, when the catalog is older than what `what` needs.
void RequireCurrentCatalog(const char* what);

// Checks the current user's privilege on a tracked table; throws 42501 otherwise.
enum class Access { kRead, kWrite };
void CheckAccess(const TableInfo& t, Access access);

}  // namespace deltasync
