// Per-backend state: identity, clocks, the writer lock and version horizon, site ordinals,
// the tracked-table catalog.
#include "pg_ext/pg_state.hpp"

#include <nlohmann/json.hpp>

#include "common/compaction.hpp"
#include "common/merge.hpp"
#include "common/version.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "catalog/namespace.h"
#include "catalog/pg_operator.h"
#include "commands/sequence.h"
#include "utils/acl.h"
#include "utils/syscache.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/typcache.h"
}

namespace deltasync {

ShadowRow ReadShadowRow(const Rows& rows, uint64_t row, int first) {
  int64_t cl = rows.Int(row, first);
  std::string extras = RowExists(cl) ? rows.Text(row, first + 4) : std::string();  // a deleted row keeps none
  // A grave stores its version and clock as NULL (pg_compact.cpp): version kGraveVersion, clock 0.
  return ShadowRowFromStored(cl, rows.Int(row, first + 1, kGraveVersion), rows.Int(row, first + 2),
                             rows.Int(row, first + 3), extras);
}

std::vector<std::string> ShadowKeyNames(size_t n) {
  std::vector<std::string> out;
  for (size_t k = 0; k < n; ++k) out.push_back(ShadowKeyColumn(k));
  return out;
}

std::string ShadowKeyList(size_t n, const char* prefix) {
  std::string out;
  for (size_t k = 0; k < n; ++k) out += (k ? ", " : "") + std::string(prefix) + ShadowKeyColumn(k);
  return out;
}

namespace {
// The equality operator of a key column's type, as OPERATOR("schema".=).
std::string EqOperator(const TableInfo& t, size_t k) {
  std::string op;
  PgTry([&] {
    TypeCacheEntry* tc = lookup_type_cache(t.pk_types[k].type, TYPECACHE_EQ_OPR);
    if (!OidIsValid(tc->eq_opr)) return;
    HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
    if (!HeapTupleIsValid(tup)) return;
    auto* form = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tup));
    char* nsp = get_namespace_name(form->oprnamespace);
    op = std::string("OPERATOR(") + QuoteIdent(nsp) + "." + NameStr(form->oprname) + ")";
    ReleaseSysCache(tup);
  });
  if (op.empty())
    throw Error(ErrorCode::kInvalidArgument, "key column \"" + t.pk[k] + "\" of \"" + t.name + "\" has a type without equality");
  return op;
}
}  // namespace

std::string KeyEquality(const TableInfo& t, const std::string& left, const std::vector<std::string>& left_cols,
                        const std::string& right, const std::vector<std::string>& right_cols) {
  std::string out;
  for (size_t k = 0; k < t.pk.size(); ++k)
    out += (k ? " AND " : "") + left + "." + left_cols[k] + " " + EqOperator(t, k) + " " + right + "." + right_cols[k];
  return out;
}

std::string KeyParamEquality(const TableInfo& t, const std::vector<std::string>& cols, int first_param) {
  std::string out;
  for (size_t k = 0; k < t.pk.size(); ++k)
    out += (k ? " AND " : "") + cols[k] + " " + EqOperator(t, k) + " $" + std::to_string(first_param + static_cast<int>(k));
  return out;
}

Backend& Backend::Get() {
  static Backend* b = new Backend();  // lives as long as the backend process
  return *b;
}

Oid Backend::ExtensionOwner() {
  if (OidIsValid(owner_)) return owner_;
  RunSql("SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'deltasync'");
  if (SPI_processed != 1) throw Error(ErrorCode::kInternal, "the deltasync extension is not installed in this database");
  owner_ = static_cast<Oid>(ResultInt(0, 0));
  PgTry([&] { settings_relid_ = get_relname_relid("settings", get_namespace_oid("deltasync", false)); });
  return owner_;
}

const SiteId& Backend::LocalSite() {
  if (site_) return *site_;
  AsOwner as;
  RunSql("SELECT value FROM deltasync.settings WHERE name = 'site_id'");
  if (SPI_processed != 1) throw Error(ErrorCode::kInternal, "deltasync.settings has no site_id");
  site_ = SiteId::Parse(ResultText(0, 0));
  return *site_;
}

int64_t Backend::SettingInt(const char* name, int64_t fallback) {
  AsOwner as;
  Args a;
  a.AddText(name);
  RunSql("SELECT value FROM deltasync.settings WHERE name = $1", a);
  if (SPI_processed != 1) return fallback;
  try {
    return std::stoll(ResultText(0, 0));
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, std::string("setting ") + name + " in deltasync.settings is not an integer");
  }
}

namespace {
// The last value of deltasync.db_version and whether it was ever taken (columns, source),
// read under the sequence's buffer lock. A plain SELECT from the sequence reads its tuple
// without that lock, and nextval writes a value 32 increments ahead there while it WAL-logs
// (PostgreSQL pre-logs sequence values), so such a read may see blocks nobody has taken
// yet: a writer's lock tag or a reader's horizon above a running writer's versions.
constexpr const char* kLastVersionCols = "coalesce(v.last, 0), v.last IS NOT NULL";
constexpr const char* kLastVersionFrom =
    " FROM (SELECT pg_catalog.pg_sequence_last_value('deltasync.db_version'::pg_catalog.regclass) AS last) AS v";
}  // namespace

uint64_t Backend::BeginWrite() {
  if (in_txn_) return txn_hlc_;
  int64_t seen = 0;
  uint64_t floor = 0;
  {
    AsOwner as;
    RunSql(std::string("SELECT ") + kLastVersionCols + ", (SELECT value FROM deltasync.settings WHERE name = 'hlc')" +
           kLastVersionFrom);
    // Every version up to the end of the last block handed out belongs to someone else.
    seen = ResultInt(0, 1) ? ResultInt(0, 0) + kVersionBlock - 1 : 0;
    std::string f = ResultText(0, 2);
    floor = f.empty() ? 0 : std::stoull(f);
  }
  // The lock belongs to the top transaction, so a subtransaction's abort does not drop it
  // while versions taken before it are still uncommitted.
  PgTry([&] {
    LOCKTAG tag;
    auto seen64 = static_cast<uint64_t>(seen);
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(seen64 >> 32), static_cast<uint32>(seen64), kWriterLockTag);
    ResourceOwner saved = CurrentResourceOwner;
    CurrentResourceOwner = TopTransactionResourceOwner;
    (void)LockAcquire(&tag, ShareLock, false, false);
    CurrentResourceOwner = saved;
  });
  clock_.Observe(floor);
  txn_hlc_ = clock_.Now(WallClockMillis());
  in_txn_ = true;
  txn_seen_ = seen;
  next_ver_ = 0;
  block_end_ = -1;  // blocks are per transaction: all of them lie above `seen`
  txn_blocks_.clear();
  block_ = 0;
  return txn_hlc_;
}

int64_t Backend::NextVersion() {
  if (!in_txn_) throw Error(ErrorCode::kInternal, "a version was asked for outside a write");
  if (next_ver_ > block_end_) {
    if (!OidIsValid(version_seq_))
      PgTry([&] { version_seq_ = get_relname_relid("db_version", get_namespace_oid("deltasync", false)); });
    int64_t start = 0;
    if (block_ < txn_blocks_.size()) {
      start = txn_blocks_[block_].first;  // taken before a rewind
    } else {
      AsOwner as;
      PgTry([&] { start = nextval_internal(version_seq_, true); });
      txn_blocks_.emplace_back(start, start + kVersionBlock - 1);
    }
    ++block_;
    next_ver_ = start;
    block_end_ = start + kVersionBlock - 1;
  }
  return next_ver_++;
}

void Backend::RewindVersions(const VersionMark& m) {
  if (!in_txn_ || m.block > txn_blocks_.size()) return;
  next_ver_ = m.next;
  block_end_ = m.end;
  block_ = m.block;
}

void Backend::RefreshTxnHlc() {
  if (in_txn_) txn_hlc_ = clock_.Now(WallClockMillis());
}

void Backend::PersistClock(uint64_t hlc) {
  AsOwner as;
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  RunSql("UPDATE deltasync.settings SET value = GREATEST(value::int8, $1)::text WHERE name = 'hlc'", a);
}

int64_t Backend::SafeVersion(bool include_own) {
  int64_t last = 0;
  {
    AsOwner as;
    RunSql(std::string("SELECT ") + kLastVersionCols + kLastVersionFrom);
    last = ResultInt(0, 1) ? ResultInt(0, 0) + kVersionBlock - 1 : 0;  // the end of the last block
  }
  // Every writer still running holds the writer lock with the counter it saw before its
  // first version (docs/postgresql.md): versions at or below the smallest such counter
  // all belong to finished transactions.
  int64_t safe = last;
  PgTry([&] {
    LockData* locks = GetLockStatusData();
    for (int k = 0; k < locks->nelements; ++k) {
      const LockInstanceData& l = locks->locks[k];
      if (l.locktag.locktag_type != LOCKTAG_ADVISORY || l.locktag.locktag_field1 != MyDatabaseId ||
          l.locktag.locktag_field4 != kWriterLockTag || l.pid == MyProcPid)
        continue;
      auto seen = static_cast<int64_t>((static_cast<uint64_t>(l.locktag.locktag_field2) << 32) |
                                       static_cast<uint64_t>(l.locktag.locktag_field3));
      if (seen < safe) safe = seen;
    }
  });
  // Inside this backend's own write, the versions it will take next come from its current
  // block: the cursor is the last one it issued, so it does not skip them.
  if (in_txn_ && next_ver_ <= block_end_ && next_ver_ - 1 < safe) safe = next_ver_ - 1;
  if (in_txn_ && !include_own && txn_seen_ < safe) safe = txn_seen_;
  return safe < 0 ? 0 : safe;
}

void Backend::LoadSites() {
  AsOwner as;
  RunSql("SELECT ord, site_id FROM deltasync.sites ORDER BY ord");
  sites_.clear();
  site_ords_.clear();
  for (uint64_t r = 0; r < SPI_processed; ++r) {
    auto ord = static_cast<uint32_t>(ResultInt(r, 0));
    SiteId s = SiteId::FromBytes(ResultText(r, 1));
    if (sites_.size() <= ord) sites_.resize(ord + 1);
    sites_[ord] = s;
    site_ords_[s] = ord;
  }
  sites_loaded_ = true;
}

uint32_t Backend::SiteOrdinal(const SiteId& site) {
  if (!sites_loaded_) LoadSites();
  auto it = site_ords_.find(site);
  if (it != site_ords_.end()) return it->second;
  {
    AsOwner as;
    Args a;
    a.AddBytea(site.View());
    RunSql("INSERT INTO deltasync.sites(ord, site_id) VALUES (nextval('deltasync.site_ord'), $1)"
           " ON CONFLICT (site_id) DO NOTHING", a);
  }
  LoadSites();
  it = site_ords_.find(site);
  if (it == site_ords_.end()) throw Error(ErrorCode::kInternal, "cannot register site " + site.ToString());
  return it->second;
}

const SiteId& Backend::SiteOf(uint32_t ordinal) {
  if (!sites_loaded_ || ordinal >= sites_.size()) LoadSites();
  if (ordinal >= sites_.size()) throw Error(ErrorCode::kInternal, "unknown site ordinal " + std::to_string(ordinal));
  return sites_[ordinal];
}

void Backend::OnRelationInvalidated(Oid relid) {
  if (relid != InvalidOid && relid != settings_relid_ && relid != version_seq_) return;
  owner_ = InvalidOid;
  settings_relid_ = InvalidOid;
  version_seq_ = InvalidOid;
  site_.reset();
  sites_loaded_ = false;
}

VersionRanges Backend::OwnVersions() const { return in_txn_ ? txn_blocks_ : VersionRanges{}; }

void Backend::EndTxn(bool aborted) {
  in_txn_ = false;
  txn_blocks_.clear();
  block_ = 0;
  if (aborted) sites_loaded_ = false;
}

namespace {

std::vector<std::string> JsonNames(const std::string& text) {
  return nlohmann::json::parse(text).get<std::vector<std::string>>();
}

}  // namespace

std::vector<ColumnPolicy> PoliciesFromJson(const std::string& text, const std::vector<std::string>& cols) {
  std::vector<ColumnPolicy> out;
  for (const auto& name : JsonNames(text)) {
    if (out.size() >= cols.size()) break;
    out.push_back(ParsePolicy(name, cols[out.size()]));
  }
  if (!AnyPolicy(out)) out.clear();
  return out;
}

std::string PoliciesJson(const std::vector<ColumnPolicy>& policies) {
  nlohmann::json out = nlohmann::json::array();
  for (ColumnPolicy p : policies) out.push_back(PolicyName(p));
  return out.dump();
}

nlohmann::json ColumnOptionsJson(const std::vector<std::string>& cols, const std::vector<ColumnPolicy>& policies) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t k = 0; k < cols.size(); ++k)
    if (PolicyAt(policies, k) != ColumnPolicy::kLww) out[cols[k]]["policy"] = PolicyName(PolicyAt(policies, k));
  return out;
}

namespace {

std::vector<TableInfo> ReadTables(const char* where, const Args& args) {
  std::vector<TableInfo> out;
  std::vector<std::vector<std::pair<Oid, int32>>> shadow_keys;  // per table: the shadow's (type, typmod) of k0, k1, ...
  {
    AsOwner as;
    RunSql(std::string("SELECT t.id, t.relid, t.name, t.pk, t.columns, c.oid IS NULL, n.nspname, c.relowner,"
                       // policies by to_jsonb: a catalog older than the module has no such column
                       " c.relrowsecurity, c.relforcerowsecurity, to_jsonb(t) ->> 'policies' FROM deltasync.tables AS t"
                       " LEFT JOIN pg_class AS c ON c.oid = t.relid LEFT JOIN pg_namespace AS n ON n.oid = c.relnamespace ") +
               where + " ORDER BY t.id",
           args);
    for (uint64_t r = 0; r < SPI_processed; ++r) {
      TableInfo t;
      t.id = static_cast<int32>(ResultInt(r, 0));
      t.relid = static_cast<Oid>(ResultInt(r, 1));
      t.name = ResultText(r, 2);
      t.pk = JsonNames(ResultText(r, 3));
      t.cols = JsonNames(ResultText(r, 4));
      t.dropped = ResultInt(r, 5) != 0;
      t.q_name = t.dropped ? "" : QuoteIdent(ResultText(r, 6)) + "." + QuoteIdent(t.name);
      t.owner = static_cast<Oid>(ResultInt(r, 7));
      t.rls = ResultInt(r, 8) != 0;
      t.force_rls = ResultInt(r, 9) != 0;
      t.q_meta = "deltasync." + QuoteIdent("meta_" + std::to_string(t.id));
      if (!Rows().IsNull(r, 10)) t.policies = PoliciesFromJson(ResultText(r, 10), t.cols);
      out.push_back(std::move(t));
    }
    // The key as the catalog has it now, and the shadow table's key types.
    const bool members = CatalogHasMembers();
    RunSql(std::string("SELECT (SELECT coalesce(json_agg(a.attname ORDER BY k.pos), '[]') FROM pg_index AS i"
                       " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)"
                       " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                       " WHERE i.indrelid = t.relid AND i.indisprimary AND k.pos <= i.indnkeyatts)::text,"
                       " (SELECT coalesce(json_agg(json_build_array(a.atttypid::int8, a.atttypmod) ORDER BY a.attnum), '[]')"
                       " FROM pg_attribute AS a WHERE a.attrelid = to_regclass('deltasync.meta_' || t.id)"
                       " AND a.attnum > 0 AND a.attname ~ '^k[0-9]+$')::text,"
                       // Capture triggers dropped or disabled (under replica role, unseen): four on the
                       // table, three on each partition; partitions attached, created or detached unseen.
                       " (SELECT count(*) FROM pg_trigger AS g WHERE g.tgrelid = t.relid AND g.tgenabled = 'O'"
                       " AND g.tgname LIKE 'deltasync\\_capture\\_%') < 4") +
                       std::string(members ? " OR EXISTS (SELECT 1 FROM deltasync.members AS m"
                                             " WHERE m.table_id = t.id AND (SELECT count(*) FROM pg_trigger AS g WHERE g.tgrelid = m.relid"
                                             " AND g.tgenabled = 'O' AND g.tgname IN ('deltasync_capture_ins', 'deltasync_capture_del',"
                                             " 'deltasync_capture_upd')) < 3)"
                                             " OR EXISTS (SELECT 1 FROM pg_partition_tree(t.relid::regclass) AS p WHERE p.level > 0 AND p.relid"
                                             " NOT IN (SELECT m.relid FROM deltasync.members AS m WHERE m.table_id = t.id))"
                                             " OR EXISTS (SELECT 1 FROM deltasync.members AS m WHERE m.table_id = t.id AND m.relid"
                                             " NOT IN (SELECT p.relid FROM pg_partition_tree(t.relid::regclass) AS p))"
                                           : "") +
                       " FROM deltasync.tables AS t " +
               where + " ORDER BY t.id",
           args);
    Rows keys;
    shadow_keys.resize(out.size());
    for (uint64_t r = 0; r < keys.size() && r < out.size(); ++r) {
      TableInfo& t = out[r];
      if (t.dropped) continue;
      t.capture_off = keys.Int(r, 2) != 0;
      if (JsonNames(keys.Text(r, 0)) != t.pk) {
        t.broken = "its primary key is no longer (" + nlohmann::json(t.pk).dump() + ")";
        continue;
      }
      for (const auto& kt : nlohmann::json::parse(keys.Text(r, 1))) shadow_keys[r].emplace_back(kt[0].get<Oid>(), kt[1].get<int32>());
    }
  }
  for (size_t n = 0; n < out.size(); ++n) {
    TableInfo& t = out[n];
    if (t.dropped) continue;
    auto type_of = [&](const std::string& col) {
      Oid type = InvalidOid, coll = InvalidOid;
      int32 typmod = -1;
      PgTry([&] {
        AttrNumber att = get_attnum(t.relid, col.c_str());
        if (att != InvalidAttrNumber) get_atttypetypmodcoll(t.relid, att, &type, &typmod, &coll);
      });
      if (!OidIsValid(type)) {
        if (t.broken.empty()) t.broken = "its column \"" + col + "\" is gone";
        return ColType{};
      }
      return MakeColType(type, typmod);
    };
    if (!t.broken.empty()) continue;
    for (const auto& c : t.pk) t.pk_types.push_back(type_of(c));
    for (const auto& c : t.cols) t.col_types.push_back(type_of(c));
    for (size_t k = 0; t.broken.empty() && k < t.pk.size() && k < shadow_keys[n].size(); ++k)
      if (t.pk_types[k].type != shadow_keys[n][k].first || t.pk_types[k].typmod != shadow_keys[n][k].second)
        t.broken = "the type of its key column \"" + t.pk[k] + "\" changed";
  }
  return out;
}

}  // namespace

std::vector<TableInfo> Backend::LoadTables() {
  // Text values travel as UTF-8 and are stored as they are.
  if (GetDatabaseEncoding() != PG_UTF8)
    throw Error(ErrorCode::kInvalidArgument, "the database encoding must be UTF8 for deltasync");
  return ReadTables("", Args{});
}

std::optional<TableInfo> Backend::TableByRelid(Oid relid) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  auto v = ReadTables("WHERE t.relid = $1", a);
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

std::string BrokenMessage(const TableInfo& t) {
  std::string why = !t.broken.empty() ? t.broken
                                      : "its capture triggers or partitions changed (a trigger disabled or gone, a "
                                        "partition without them), so writes may have escaped capture";
  return "table \"" + t.name + "\" cannot be served by deltasync any more: " + why +
         " (a change its event triggers did not see, e.g. under session_replication_role = replica); call "
         "deltasync_disable('" + t.name + "') and deltasync_enable('" + t.name + "') again";
}

bool CatalogHasMembers() {
  // From the catalog itself: to_regclass would answer NULL to a role without USAGE on the schema.
  RunSql("SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
         " WHERE n.nspname = 'deltasync' AND c.relname = 'members'");
  return SPI_processed > 0;
}

void RequireCurrentCatalog(const char* what) {
  if (CatalogHasMembers()) return;
  throw Error(ErrorCode::kInvalidArgument,
              std::string(what) + " needs the catalog of deltasync " + kVersion +
                  ", and this database still has an older one; run ALTER EXTENSION deltasync UPDATE");
}

void WarnBroken(const TableInfo& t) {
  std::string message = "deltasync: " + BrokenMessage(t) + "; its changes are left out";
  PgTry([&] { ereport(WARNING, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("%s", message.c_str()))); });
}

void CheckAccess(const TableInfo& t, Access access) {
  Oid user = GetUserId();
  bool ok = false, owner = false, bypass = false;
  PgTry([&] {
    owner = has_privs_of_role(user, t.owner);
    bypass = has_bypassrls_privilege(user);
    ok = access == Access::kWrite ? owner : pg_class_aclcheck(t.relid, user, ACL_SELECT) == ACLCHECK_OK;
  });
  if (!ok)
    throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, ErrorCode::kInvalidArgument,
                  access == Access::kWrite
                      ? "permission denied: applying changes to \"" + t.name + "\" needs the privileges of its owner"
                      : "permission denied: reading the changes of \"" + t.name + "\" needs SELECT on it");
  if (t.force_rls || (t.rls && !owner && !bypass))
    throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, ErrorCode::kInvalidArgument,
                  "table \"" + t.name + "\" has row-level security: only its owner (without FORCE ROW LEVEL SECURITY) "
                  "or a role with BYPASSRLS may sync it, since a site must hold every row");
}

}  // namespace deltasync
