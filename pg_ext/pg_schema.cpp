// deltasync_enable / deltasync_disable and the sql_drop event trigger: catalog checks, the
// shadow table deltasync.meta_<id>, and the capture triggers.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/schema_rules.hpp"
#include "common/scoped_flag.hpp"
#include "common/utf8.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_functions.hpp"
#include "pg_ext/pg_partitions.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
}

namespace deltasync {

namespace {

using Json = nlohmann::json;

// What the catalog says about a table a user names.
struct CatalogTable {
  Oid relid = InvalidOid;
  std::string schema, name;
  std::vector<std::string> pk, cols;
  Oid owner = InvalidOid;
};

Oid ResolveTable(const std::string& requested) {
  Oid relid = InvalidOid;
  PgTry([&] {
    List* names = stringToQualifiedNameList(requested.c_str());
    RangeVar* rv = makeRangeVarFromNameList(names);
    relid = RangeVarGetRelid(rv, NoLock, true);
  });
  return relid;
}

CatalogTable LookUpCatalog(const std::string& requested) {
  Oid relid = InvalidOid;
  try {
    relid = ResolveTable(requested);
  } catch (const PgError&) {
    throw Error(ErrorCode::kInvalidArgument, "invalid table name: \"" + requested + "\"");
  }
  if (!OidIsValid(relid)) throw Error(ErrorCode::kInvalidArgument, "no such table: \"" + requested + "\"");
  CatalogTable t;
  t.relid = relid;
  char kind = 0, persistence = 0;
  Oid nsp = InvalidOid;
  PgTry([&] {
    kind = get_rel_relkind(relid);
    persistence = get_rel_persistence(relid);
    nsp = get_rel_namespace(relid);
    t.name = get_rel_name(relid);
    t.schema = get_namespace_name(nsp);
  });
  if (kind == RELKIND_VIEW || kind == RELKIND_MATVIEW)
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is a view; only tables can be tracked");
  if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is not a table (foreign tables cannot be tracked)");
  if (persistence == RELPERSISTENCE_TEMP)
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is a temporary table; only permanent tables can be tracked");
  if (t.schema == "deltasync" || t.schema == "pg_catalog" || t.schema == "information_schema")
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is an internal table and cannot be tracked");
  bool owner = false;
  PgTry([&] { owner = pg_class_ownercheck(relid, GetUserId()); });
  if (!owner)
    throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, ErrorCode::kInvalidArgument,
                  "permission denied: only the owner of \"" + t.name + "\" may change whether it is tracked");
  AsOwner as;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  RunSql("SELECT a.attname FROM pg_index AS i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)"
         " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
         " WHERE i.indrelid = $1 AND i.indisprimary AND k.pos <= i.indnkeyatts ORDER BY k.pos", a);  // INCLUDE columns are no key
  for (uint64_t r = 0; r < SPI_processed; ++r) t.pk.push_back(ResultText(r, 0));
  if (t.pk.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "table \"" + t.name + "\" has no primary key; deltasync needs one to tell rows apart across sites");
  // Generated columns are derived on every site, never synced.
  RunSql("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped"
         " AND attgenerated = '' ORDER BY attnum", a);
  for (uint64_t r = 0; r < SPI_processed; ++r) {
    std::string c = ResultText(r, 0);
    if (std::find(t.pk.begin(), t.pk.end(), c) == t.pk.end()) t.cols.push_back(c);
  }
  RunSql("SELECT relowner FROM pg_class WHERE oid = $1", a);
  t.owner = static_cast<Oid>(ResultInt(0, 0));
  return t;
}

void CreateShadowTable(const TableInfo& t) {
  QuietDdl quiet;
  std::string cols;
  for (size_t k = 0; k < t.pk.size(); ++k) {
    Oid coll = InvalidOid;
    std::string collate;
    PgTry([&] {
      AttrNumber att = get_attnum(t.relid, t.pk[k].c_str());
      Oid type = InvalidOid;
      int32 typmod = -1;
      get_atttypetypmodcoll(t.relid, att, &type, &typmod, &coll);
      if (OidIsValid(coll) && coll != get_typcollation(type)) collate = std::string(" COLLATE ") + generate_collation_name(coll);
    });
    cols += ShadowKeyColumn(k) + " " + t.pk_types[k].name + collate + " NOT NULL, ";
  }
  // ver, hlc and site are NULL in a grave only (pg_compact.cpp): a compacted tombstone then
  // costs its key and causal length.
  RunSql("CREATE TABLE " + t.q_meta + " (" + cols +
         "cl bigint NOT NULL, ver bigint, hlc bigint, site integer, clk bytea, PRIMARY KEY (" +
         ShadowKeyList(t.pk.size()) + "))");
  // No member of the extension, so pg_dump dumps it whole (docs/operations.md, "Backups");
  // it lives in the extension's schema, so DROP EXTENSION ... CASCADE takes it along, and the
  // drop event trigger refuses dropping it on its own.
}

namespace {
bool dropping_own_shadow = false;  // while deltasync drops a shadow table itself
}  // namespace

void DropShadowTable(const std::string& q_meta) {
  QuietDdl quiet;
  ScopedFlag own(dropping_own_shadow);
  // A shadow table made before 0.2.0 is still a member until ALTER EXTENSION UPDATE.
  RunSql("DO $$BEGIN IF to_regclass('" + q_meta + "') IS NOT NULL THEN IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend"
         " WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objid = '" + q_meta +
         "'::pg_catalog.regclass AND deptype = 'e') THEN ALTER EXTENSION deltasync DROP TABLE " + q_meta +
         "; END IF; DROP TABLE " + q_meta + "; END IF; END$$");
}

// Existing rows without a shadow row become changes written now by this site.
uint64_t Backfill(const TableInfo& t, uint64_t hlc) {
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  std::vector<std::string> qpk;
  for (const auto& c : t.pk) qpk.push_back(QuoteIdent(c));
  return RunSql("INSERT INTO " + t.q_meta + " (" + ShadowKeyList(t.pk.size()) + ", cl, ver, hlc, site) SELECT " +
                    ColumnList(t.pk, "b.") + ", 1, deltasync.next_version(), $1, 0 FROM " + t.q_name +
                    " AS b WHERE NOT EXISTS (SELECT 1 FROM " + t.q_meta + " AS m WHERE " +
                    KeyEquality(t, "m", ShadowKeyNames(t.pk.size()), "b", qpk) + ")",
                a);
}

// Every live row gets a new clock from this site, as if each were written again now: what
// this site holds wins over every change it has not seen ({"restamp": true}).
uint64_t Restamp(const TableInfo& t, uint64_t hlc) {
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  return RunSql("UPDATE " + t.q_meta + " SET ver = deltasync.next_version(), hlc = $1, site = 0, clk = NULL"
                " WHERE cl % 2 = 1",
                a);
}

// DROP COLUMN of tracked columns `dropped` of table `id`: the tracked list loses them, and
// every shadow row's per-column clocks move to the remaining columns' new positions (their
// clocks were kept by position). Changes other sites send for a dropped column are ignored
// from now on (deltasync.gone_columns).
void FollowDroppedColumns(int32 id, Oid relid, const std::vector<std::string>& cols,
                          const std::vector<std::string>& dropped) {
  std::vector<std::string> kept;
  std::string to = "{";
  for (const std::string& c : cols) {
    bool gone = std::find(dropped.begin(), dropped.end(), c) != dropped.end();
    to += (to.size() > 1 ? "," : "") + (gone ? std::string("-1") : std::to_string(kept.size()));
    if (!gone) kept.push_back(c);
  }
  to += "}";
  Args m;
  m.AddText(to);
  RunSql("UPDATE deltasync." + QuoteIdent("meta_" + std::to_string(id)) +
             " SET clk = deltasync.clk_remap(hlc, site, clk, $1::text::integer[]) WHERE clk IS NOT NULL",
         m);
  Args a;
  a.AddText(Json(kept).dump());
  a.AddInt4(id);
  RunSql("UPDATE deltasync.tables SET columns = $1 WHERE id = $2", a);
  // The policies follow their columns.
  Args p;
  p.AddInt4(id);
  RunSql("SELECT to_jsonb(t) ->> 'policies' FROM deltasync.tables AS t WHERE t.id = $1", p);
  if (SPI_processed == 1 && !Rows().IsNull(0, 0)) {
    std::vector<ColumnPolicy> old = PoliciesFromJson(ResultText(0, 0), cols), now;
    for (size_t k = 0; k < cols.size(); ++k)
      if (std::find(dropped.begin(), dropped.end(), cols[k]) == dropped.end()) now.push_back(PolicyAt(old, k));
    if (!AnyPolicy(now)) now.clear();
    Args u;
    if (now.empty()) u.Add(TEXTOID, 0, true);
    else u.AddText(PoliciesJson(now));
    u.AddInt4(id);
    RunSql("UPDATE deltasync.tables SET policies = $1 WHERE id = $2", u);
  }
  // Remembered as dropped: changes other sites send for it are ignored, not kept.
  Args g;
  g.AddInt4(id);
  g.AddText(Json(dropped).dump());
  RunSql("INSERT INTO deltasync.gone_columns (table_id, name, now_named)"
         " SELECT $1, value, NULL FROM json_array_elements_text($2::json)"
         " ON CONFLICT (table_id, name) DO UPDATE SET now_named = NULL",
         g);
  InvalidateCapture(relid);
}

// What the catalog says about column `column` of `relid` for a policy: its type's name, whether
// it is an integer (int2, int4, int8, or a domain over one) and whether it is NOT NULL.
struct PolicyColumn {
  bool found = false, integer = false, not_null = false;
  std::string type;
};
PolicyColumn LookUpPolicyColumn(Oid relid, const std::string& column) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  a.AddText(column);
  RunSql("SELECT a.atttypid, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute AS a"
         " WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped", a);
  PolicyColumn out;
  if (SPI_processed != 1) return out;
  out.found = true;
  Oid type = static_cast<Oid>(ResultInt(0, 0));
  out.type = ResultText(0, 1);
  out.not_null = ResultInt(0, 2) != 0;
  Oid base = InvalidOid;
  PgTry([&] { base = getBaseType(type); });
  out.integer = base == INT2OID || base == INT4OID || base == INT8OID;
  return out;
}

// Refuses a counter column the catalog no longer fits: not an integer, or NULL allowed (a
// counter holds integers only; NULL would read as 0 on every other site).
void CheckCounterColumn(const std::string& table, const std::string& column, const PolicyColumn& c) {
  CheckColumnPolicy(table, column, ColumnPolicy::kCounter, false, c.integer, c.type);
  if (!c.not_null)
    throw Error(ErrorCode::kInvalidArgument,
                "counter column \"" + column + "\" of table \"" + table +
                    "\" must be NOT NULL on PostgreSQL (a counter holds integers only; declare it NOT NULL DEFAULT 0)");
}

// deltasync_enable's part for policies (docs/policies.md): the columns the options name keep
// the policy they ask for, the others the one they have. Refused: an unknown column, a key
// column, a counter that is not a NOT NULL integer column, and a change of policy once the
// table tracks rows. Returns the policies by position of `cat.cols` (empty: all lww).
std::vector<ColumnPolicy> ResolvePolicies(const CatalogTable& cat, const std::optional<TableInfo>& known,
                                          const std::vector<ColumnOption>& requested) {
  std::vector<ColumnPolicy> p(cat.cols.size(), ColumnPolicy::kLww);
  if (known)  // its columns are a prefix of the catalog's (checked by the caller)
    for (size_t k = 0; k < known->cols.size() && k < p.size(); ++k) p[k] = PolicyAt(known->policies, k);
  int64_t rows = -1;  // counted at the first change
  for (const ColumnOption& c : requested) {
    if (!c.has_policy) continue;
    bool is_key = std::find(cat.pk.begin(), cat.pk.end(), c.column) != cat.pk.end();
    auto it = std::find(cat.cols.begin(), cat.cols.end(), c.column);
    if (!is_key && it == cat.cols.end())
      throw Error(ErrorCode::kInvalidArgument, "deltasync_enable options name column \"" + c.column + "\", which table \"" +
                                                   cat.name + "\" does not have (or does not track)");
    PolicyColumn col = LookUpPolicyColumn(cat.relid, c.column);
    if (c.policy == ColumnPolicy::kJson)
      throw Error(ErrorCode::kInvalidArgument,
                  "column \"" + c.column + "\" of table \"" + cat.name +
                      "\": the json policy is not available on PostgreSQL yet (SQLite sites and the hub have it; "
                      "docs/policies.md)");
    CheckColumnPolicy(cat.name, c.column, c.policy, is_key, col.integer, col.type);
    if (is_key) continue;
    if (c.policy == ColumnPolicy::kCounter) CheckCounterColumn(cat.name, c.column, col);
    ColumnPolicy& slot = p[static_cast<size_t>(it - cat.cols.begin())];
    if (slot == c.policy) continue;
    if (known && rows < 0) {
      RunSql("SELECT count(*) FROM " + known->q_meta);
      rows = ResultInt(0, 0);
    }
    CheckPolicyChange(cat.name, c.column, slot, c.policy, rows < 0 ? 0 : rows);
    slot = c.policy;
  }
  if (!AnyPolicy(p)) p.clear();
  return p;
}

bool SamePolicies(const std::vector<ColumnPolicy>& a, const std::vector<ColumnPolicy>& b) {
  for (size_t k = 0; k < std::max(a.size(), b.size()); ++k)
    if (PolicyAt(a, k) != PolicyAt(b, k)) return false;
  return true;
}

void SavePolicies(int32 id, const std::vector<ColumnPolicy>& policies) {
  RequireCurrentCatalog("column policies");
  Args a;
  if (policies.empty()) a.Add(TEXTOID, 0, true);
  else a.AddText(PoliciesJson(policies));
  a.AddInt4(id);
  RunSql("UPDATE deltasync.tables SET policies = $1 WHERE id = $2", a);
}

}  // namespace

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_enable) {
  std::string requested = TextArg(fcinfo, 0, "deltasync_enable(table)");
  EnableOptions options = ParseEnableOptions(JsonbArgText(fcinfo, 1));
  for (const ColumnOption& c : options.columns) {
    if (c.has_repr)  // a PostgreSQL column's type is its representation (docs/types.md)
      throw Error(ErrorCode::kInvalidArgument, "column representations (\"columns\": {\"" + c.column +
                                                   "\": …}) are for SQLite columns; on PostgreSQL the column's type "
                                                   "(uuid, timestamptz) already gives the canonical form");
  }
  SpiSession spi;
  CatalogTable cat = LookUpCatalog(requested);
  {
    AsOwner as;
    RefuseUncoverable(cat.relid, cat.name);
  }
  Backend& b = Backend::Get();
  uint64_t hlc = b.BeginWrite();
  Json result = {{"table", cat.name}};
  {
    AsOwner as;
    // No write may slip between the backfill and the triggers.
    PgTry([&] {  // the table checked, by OID, and every partition below it
      LockRelationOid(cat.relid, ShareRowExclusiveLock);
      (void)find_all_inheritors(cat.relid, ShareRowExclusiveLock, nullptr);
    });
    std::optional<TableInfo> known = b.TableByRelid(cat.relid);
    Args a;
    if (known) {
      bool prefix = known->pk == cat.pk && known->cols.size() <= cat.cols.size() &&
                    std::equal(known->cols.begin(), known->cols.end(), cat.cols.begin());
      if (!prefix)
        throw Error(ErrorCode::kInvalidArgument,
                    "table \"" + cat.name +
                        "\" changed in a way deltasync cannot follow (key or existing columns differ from when it was "
                        "enabled); call deltasync_disable and deltasync_enable again");
      bool added = known->cols.size() < cat.cols.size();
      if (added) {
        a.AddText(Json(cat.cols).dump());
        a.AddInt4(known->id);
        RunSql("UPDATE deltasync.tables SET columns = $1 WHERE id = $2", a);
      }
      result["changed"] = added;
    } else {
      RefuseBookkeepingTable(cat.name, options);
      RunSql("SELECT 1 FROM deltasync.tables WHERE lower(name) = lower($1)", [&] {
        Args n;
        n.AddText(cat.name);
        return n;
      }());
      if (SPI_processed > 0)
        throw Error(ErrorCode::kInvalidArgument, "another table named \"" + cat.name +
                                                     "\" (in another schema, or differing only in case) is already tracked; payloads name "
                                                     "tables without schema and match them ignoring case, so tracked names must differ");
      RunSql("SELECT nextval('deltasync.table_id')");
      int32 id = static_cast<int32>(ResultInt(0, 0));
      a.AddInt4(id);
      a.Add(OIDOID, ObjectIdGetDatum(cat.relid));
      a.AddText(cat.name);
      a.AddText(Json(cat.pk).dump());
      a.AddText(Json(cat.cols).dump());
      RunSql("INSERT INTO deltasync.tables(id, relid, name, pk, columns) VALUES ($1, $2, $3, $4, $5)", a);
      result["changed"] = true;
    }
    std::optional<TableInfo> t = b.TableByRelid(cat.relid);
    if (!t) throw Error(ErrorCode::kInternal, "table \"" + cat.name + "\" vanished while being enabled");
    std::vector<ColumnPolicy> policies = ResolvePolicies(cat, known, options.columns);
    if (!SamePolicies(policies, t->policies)) {
      SavePolicies(t->id, policies);
      t->policies = policies;
      result["changed"] = true;
    }
    if (options.restamp && AnyPolicy(policies))
      throw Error(ErrorCode::kInvalidArgument,
                  "table \"" + cat.name + "\" has a counter column: restamp would make this site's values "
                  "whole contributions on top of every other site's (docs/policies.md)");
    if (AnyPolicy(policies)) result["column_options"] = ColumnOptionsJson(cat.cols, policies);
    // (A new table has no triggers yet: they come next.)
    if (!t->broken.empty() || (known && t->capture_off)) throw Error(ErrorCode::kInvalidArgument, BrokenMessage(*t));
    if (!known) CreateShadowTable(*t);
    InstallTriggers(*t, t->relid);
    result["backfilled"] = Backfill(*t, hlc);
    if (options.restamp) result["restamped"] = Restamp(*t, hlc);
  }
  InvalidateCapture(cat.relid);
  spi.Finish();
  result["pk"] = cat.pk;
  result["columns"] = cat.cols;
  return JsonbResult(result);
}

DELTASYNC_PG_FUNCTION(deltasync_disable) {
  std::string requested = TextArg(fcinfo, 0, "deltasync_disable(table)");
  SpiSession spi;
  CatalogTable cat = LookUpCatalog(requested);
  Backend& b = Backend::Get();
  std::optional<TableInfo> known = b.TableByRelid(cat.relid);
  Json result = {{"table", cat.name}, {"changed", known.has_value()}};
  if (known) {
    AsOwner as;
    RemoveTriggers(known->relid);
    // Tables that left the tree unseen (detached under replica role) keep triggers too.
    Args m;
    m.AddInt4(known->id);
    std::vector<Oid> strays;
    if (CatalogHasMembers()) {
      RunSql("SELECT m.relid FROM deltasync.members AS m JOIN pg_class AS c ON c.oid = m.relid WHERE m.table_id = $1", m);
      for (uint64_t r = 0; r < SPI_processed; ++r) strays.push_back(static_cast<Oid>(ResultInt(r, 0)));
    }
    for (Oid relid : strays) RemoveTriggers(relid);
    DropShadowTable(known->q_meta);
    Args a;
    a.AddInt4(known->id);
    RunSql("DELETE FROM deltasync.tables WHERE id = $1", a);
    RunSql("DELETE FROM deltasync.gone_columns WHERE table_id = $1", a);
    Args n;
    n.AddText(known->name);
    RunSql("DELETE FROM deltasync.pending WHERE tbl = $1", n);
  }
  InvalidateCapture(cat.relid);
  spi.Finish();
  return JsonbResult(result);
}

// On sql_drop: a dropped tracked table leaves no metadata behind; dropping a tracked
// column is refused (its clocks are kept by position), as is anything that would drop a
// shadow table on its own.
DELTASYNC_PG_FUNCTION(deltasync_on_sql_drop) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) throw Error(ErrorCode::kInvalidArgument, "deltasync.on_sql_drop() is an event trigger");
  SpiSession spi;
  AsOwner as;
  RunSql("SELECT to_regclass('deltasync.tables') IS NULL");
  if (ResultInt(0, 0) != 0) {  // the extension itself is being dropped
    spi.Finish();
    return PointerGetDatum(nullptr);
  }
  RunSql("SELECT t.id, t.name, d.objsubid, d.address_names[array_upper(d.address_names, 1)], t.pk, t.columns, t.relid"
         " FROM pg_event_trigger_dropped_objects() AS d JOIN deltasync.tables AS t ON t.relid = d.objid"
         " WHERE d.classid = 'pg_class'::regclass");
  struct Dropped {
    int32 id;
    Oid relid;
    std::string name;
    std::vector<std::string> pk, cols, columns;  // columns: the tracked ones dropped
  };
  std::vector<Dropped> gone, narrowed;
  for (uint64_t r = 0; r < SPI_processed; ++r) {
    int32 id = static_cast<int32>(ResultInt(r, 0));
    if (ResultInt(r, 2) == 0) {
      gone.push_back(Dropped{id, InvalidOid, ResultText(r, 1), {}, {}, {}});
      continue;
    }
    std::string column = ResultText(r, 3);
    auto it = std::find_if(narrowed.begin(), narrowed.end(), [&](const Dropped& d) { return d.id == id; });
    if (it == narrowed.end()) {
      narrowed.push_back(Dropped{id, static_cast<Oid>(ResultInt(r, 6)), ResultText(r, 1),
                                 Json::parse(ResultText(r, 4)).get<std::vector<std::string>>(),
                                 Json::parse(ResultText(r, 5)).get<std::vector<std::string>>(), {}});
      it = narrowed.end() - 1;
    }
    if (std::find(it->pk.begin(), it->pk.end(), column) != it->pk.end())
      throw Error(ErrorCode::kInvalidArgument, "column \"" + column + "\" is part of the primary key of tracked table \"" +
                                                   it->name + "\" and cannot be dropped; call deltasync_disable('" +
                                                   it->name + "') first (and deltasync_enable afterwards)");
    if (std::find(it->cols.begin(), it->cols.end(), column) != it->cols.end()) it->columns.push_back(column);
  }
  // deltasync's triggers dropped from a table that stays tracked: its writes would escape.
  if (!DroppingOwnTriggers()) {
    RunSql("SELECT d.address_names[3], c.oid FROM pg_event_trigger_dropped_objects() AS d"
           " JOIN pg_namespace AS n ON n.nspname = d.address_names[1]"
           " JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = d.address_names[2]"
           " WHERE d.classid = 'pg_trigger'::regclass AND d.address_names[3] LIKE 'deltasync\\_capture\\_%'");
    Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) {
      Oid relid = static_cast<Oid>(rows.Int(r, 1));
      std::optional<TableInfo> t = Backend::Get().TableByRelid(TreeRoot(relid));
      if (t)
        throw Error(ErrorCode::kInvalidArgument, "dropping the capture trigger " + rows.Text(r, 0) + " of tracked table \"" +
                                                     t->name + "\" would let writes escape capture; call deltasync_disable('" +
                                                     t->name + "') instead");
    }
  }
  // A shadow table dropped on its own while its table stays tracked: its clocks would be lost.
  if (!dropping_own_shadow) {
    RunSql("SELECT t.name FROM pg_event_trigger_dropped_objects() AS d JOIN deltasync.tables AS t"
           " ON d.address_names[1] = 'deltasync' AND d.address_names[2] = 'meta_' || t.id"
           " WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.object_type = 'table'");
    Rows rows;
    for (uint64_t r = 0; r < rows.size(); ++r) {
      std::string name = rows.Text(r, 0);
      if (std::none_of(gone.begin(), gone.end(), [&](const Dropped& g) { return g.name == name; }))
        throw Error(ErrorCode::kInvalidArgument, "deltasync.meta_* of tracked table \"" + name +
                                                     "\" holds its clocks and cannot be dropped on its own; call "
                                                     "deltasync_disable('" + name + "') instead");
    }
  }
  // Partitions dropped from a tracked table's tree: their rows left the tracked table.
  std::vector<Oid> shrunk;
  if (CatalogHasMembers()) {
    RunSql("SELECT DISTINCT t.relid FROM pg_event_trigger_dropped_objects() AS d JOIN deltasync.members AS m"
           " ON m.relid = d.objid JOIN deltasync.tables AS t ON t.id = m.table_id"
           " WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0");
    for (uint64_t r = 0; r < SPI_processed; ++r) shrunk.push_back(static_cast<Oid>(ResultInt(r, 0)));
    RunSql("DELETE FROM deltasync.members WHERE relid IN (SELECT objid FROM pg_event_trigger_dropped_objects()"
           " WHERE classid = 'pg_class'::regclass AND objsubid = 0)");
  }
  for (const Dropped& d : gone) {
    DropShadowTable("deltasync." + QuoteIdent("meta_" + std::to_string(d.id)));
    Args a;
    a.AddInt4(d.id);
    RunSql("DELETE FROM deltasync.tables WHERE id = $1", a);
    RunSql("DELETE FROM deltasync.gone_columns WHERE table_id = $1", a);
    Args n;
    n.AddText(d.name);
    RunSql("DELETE FROM deltasync.pending WHERE tbl = $1", n);
  }
  for (const Dropped& d : narrowed)
    if (!d.columns.empty() && std::none_of(gone.begin(), gone.end(), [&](const Dropped& g) { return g.id == d.id; }))
      FollowDroppedColumns(d.id, d.relid, d.cols, d.columns);
  for (Oid relid : shrunk) {
    std::optional<TableInfo> t = Backend::Get().TableByRelid(relid);
    if (t && !t->dropped && t->broken.empty()) ReconcileRows(*t, Backend::Get().BeginWrite());
  }
  InvalidateCapture(InvalidOid);
  spi.Finish();
  return PointerGetDatum(nullptr);
}

namespace {

// The tracked lists of table `relid`, as deltasync.tables holds them (nullopt: not tracked).
struct TrackedLists {
  int32 id = 0;
  std::string name;
  std::vector<std::string> pk, cols;
  std::vector<ColumnPolicy> policies;  // by position of cols (empty: all lww)
};
std::optional<TrackedLists> ReadTracked(Oid relid) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  RunSql("SELECT id, name, pk, columns, to_jsonb(t) ->> 'policies' FROM deltasync.tables AS t WHERE relid = $1", a);
  if (SPI_processed != 1) return std::nullopt;
  TrackedLists t;
  t.id = static_cast<int32>(ResultInt(0, 0));
  t.name = ResultText(0, 1);
  t.pk = Json::parse(ResultText(0, 2)).get<std::vector<std::string>>();
  t.cols = Json::parse(ResultText(0, 3)).get<std::vector<std::string>>();
  if (!Rows().IsNull(0, 4)) t.policies = PoliciesFromJson(ResultText(0, 4), t.cols);
  return t;
}

// The key of a table as the catalog has it now: names and type names, INCLUDE columns left out.
std::vector<std::pair<std::string, std::string>> CatalogKey(Oid relid) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  RunSql("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index AS i"
         " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)"
         " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
         " WHERE i.indrelid = $1 AND i.indisprimary AND k.pos <= i.indnkeyatts ORDER BY k.pos", a);
  std::vector<std::pair<std::string, std::string>> out;
  for (uint64_t r = 0; r < SPI_processed; ++r) out.emplace_back(ResultText(r, 0), ResultText(r, 1));
  return out;
}

// After an ALTER TABLE of tracked table `relid`: refuses (the error undoes the statement)
// what capture cannot follow — its triggers disabled, its primary key dropped, changed or
// retyped — and follows ADD COLUMN: new columns are tracked at once, so no write to them
// escapes capture.
void AuditAlteredTable(Oid relid) {
  std::optional<TrackedLists> tracked = ReadTracked(relid);
  if (!tracked) return;
  auto& [id, name, pk, cols, policies] = *tracked;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  // A counter stays a NOT NULL integer column (ALTER COLUMN TYPE, DROP NOT NULL are refused).
  for (size_t k = 0; k < cols.size(); ++k)
    if (PolicyAt(policies, k) == ColumnPolicy::kCounter) {
      PolicyColumn c = LookUpPolicyColumn(relid, cols[k]);
      if (c.found) CheckCounterColumn(name, cols[k], c);
    }
  auto refuse = [&](const std::string& what) {
    throw Error(ErrorCode::kInvalidArgument, what + " of tracked table \"" + name +
                                                 "\" cannot be followed by deltasync; call deltasync_disable('" + name +
                                                 "') first (and deltasync_enable afterwards)");
  };
  Args tree;
  tree.Add(OIDOID, ObjectIdGetDatum(relid));
  tree.AddInt4(id);
  // On the table and on every partition below it; ENABLE REPLICA or ALWAYS counts too (a
  // REPLICA trigger does not fire for ordinary writes).
  RunSql(std::string("SELECT g.tgname, c.relname FROM pg_trigger AS g JOIN pg_class AS c ON c.oid = g.tgrelid"
                     " WHERE (g.tgrelid = $1") +
             (CatalogHasMembers() ? " OR g.tgrelid IN (SELECT relid FROM deltasync.members WHERE table_id = $2)" : "") +
             ") AND g.tgname LIKE 'deltasync\\_capture\\_%' AND g.tgenabled <> 'O'",
         tree);
  if (SPI_processed > 0)
    refuse("disabling the capture trigger " + ResultText(0, 0) +
           (ResultText(0, 1) == name ? std::string() : " of partition \"" + ResultText(0, 1) + "\"") +
           " (writes would escape capture)");
  auto key = CatalogKey(relid);
  if (key.size() != pk.size()) refuse("changing the primary key");
  Args m;
  m.AddText("meta_" + std::to_string(id));
  RunSql("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a JOIN pg_class AS c"
         " ON c.oid = a.attrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace"
         " WHERE n.nspname = 'deltasync' AND c.relname = $1 AND a.attname ~ '^k[0-9]+$' ORDER BY a.attnum", m);
  std::vector<std::string> shadow_types;
  for (uint64_t r = 0; r < SPI_processed; ++r) shadow_types.push_back(ResultText(r, 1));
  for (size_t k = 0; k < key.size(); ++k) {
    if (key[k].first != pk[k]) refuse("changing the primary key");
    if (k < shadow_types.size() && key[k].second != shadow_types[k])
      refuse("changing the type of key column \"" + pk[k] + "\" (" + shadow_types[k] + " to " + key[k].second + ")");
  }
  RunSql("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped"
         " AND attgenerated = '' ORDER BY attnum", a);
  std::vector<std::string> now;
  for (uint64_t r = 0; r < SPI_processed; ++r) {
    std::string c = ResultText(r, 0);
    if (std::find(pk.begin(), pk.end(), c) == pk.end()) now.push_back(c);
  }
  bool prefix = now.size() > cols.size() && std::equal(cols.begin(), cols.end(), now.begin());
  if (!prefix) return;
  Args u;
  u.AddText(Json(now).dump());
  u.AddInt4(id);
  RunSql("UPDATE deltasync.tables SET columns = $1 WHERE id = $2", u);
  // What existing rows hold in the added columns was written by no one (MarkAddedColumns): a
  // NULL has no version; a value (the default) gets the smallest real clock and a new local
  // version, so it is sent — a site that added the column without that default gets it —
  // and loses to any real write. Neither ties with a value other sites hold under the row's
  // clock. The added names are no longer gone.
  std::string positions = "{", added, valued, any_value;
  for (size_t k = cols.size(); k < now.size(); ++k) {
    bool first = k == cols.size();
    std::string col = "b." + QuoteIdent(now[k]);
    positions += (first ? "" : ",") + std::to_string(k);
    added += (first ? "" : ",") + Json(now[k]).dump();
    valued += std::string(first ? "" : ", ") + "CASE WHEN " + col + " IS NOT NULL THEN " + std::to_string(k) + " END";
    any_value += std::string(first ? "" : " OR ") + col + " IS NOT NULL";
  }
  Args c;
  c.AddText(positions + "}");
  std::string meta = "deltasync." + QuoteIdent("meta_" + std::to_string(id));
  RunSql("UPDATE " + meta + " SET clk = deltasync.clk_added(hlc, site, clk, ver, cl, ver, $1::text::integer[], '{}')"
             " WHERE cl % 2 = 1",
         c);
  std::string key_match;
  for (size_t k = 0; k < pk.size(); ++k)
    key_match += " AND b." + QuoteIdent(pk[k]) + " = m.k" + std::to_string(k);
  // One new version per row (the sub-select names the row); the write begins here, not by
  // deltasync.next_version() inside the UPDATE's scan (SPI).
  Backend::Get().BeginWrite();
  RunSql("UPDATE " + meta + " AS m SET (ver, clk) = (SELECT x.n, deltasync.clk_added(m.hlc, m.site, m.clk, m.ver, m.cl,"
             " x.n, $1::text::integer[], array_remove(ARRAY[" + valued + "]::integer[], NULL))"
             " FROM (SELECT deltasync.next_version() AS n, m.cl) AS x) FROM " + QualifiedName(relid) +
             " AS b WHERE m.cl % 2 = 1" + key_match + " AND (" + any_value + ")",
         c);
  Args g;
  g.AddInt4(id);
  g.AddText("[" + added + "]");
  RunSql("DELETE FROM deltasync.gone_columns WHERE table_id = $1 AND name IN (SELECT json_array_elements_text($2::json))",
         g);
  InvalidateCapture(relid);
}

// RENAME COLUMN of a tracked column, RENAME of a tracked table: the tracked lists and name
// follow (clocks are kept by position, so a column's history follows its new name).
void FollowRename(const RenameStmt& stmt, Oid relid) {
  std::optional<TrackedLists> tracked = ReadTracked(relid);
  if (!tracked) return;
  auto& [id, name, pk, cols, policies] = *tracked;
  if (stmt.renameType == OBJECT_TABLE) {
    std::string new_name = stmt.newname;
    Args n;
    n.AddText(new_name);
    n.AddInt4(id);
    RunSql("SELECT name FROM deltasync.tables WHERE lower(name) = lower($1) AND id <> $2", n);
    if (SPI_processed > 0)
      throw Error(ErrorCode::kInvalidArgument, "cannot rename tracked table \"" + name + "\" to \"" + new_name +
                                                   "\": another tracked table has that name");
    RunSql("UPDATE deltasync.tables SET name = $1 WHERE id = $2", n);
    InvalidateCapture(relid);
    return;
  }
  std::string old_name = stmt.subname, new_name = stmt.newname;
  bool changed = false;
  for (auto* names : {&pk, &cols})
    for (std::string& c : *names)
      if (c == old_name) {
        c = new_name;
        changed = true;
      }
  if (!changed) return;
  Args u;
  u.AddText(Json(pk).dump());
  u.AddText(Json(cols).dump());
  u.AddInt4(id);
  RunSql("UPDATE deltasync.tables SET pk = $1, columns = $2 WHERE id = $3", u);
  // Changes other sites send under the old name land in the new one.
  Args g;
  g.AddInt4(id);
  g.AddText(old_name);
  g.AddText(new_name);
  RunSql("DELETE FROM deltasync.gone_columns WHERE table_id = $1 AND name = $3", g);
  RunSql("INSERT INTO deltasync.gone_columns (table_id, name, now_named) VALUES ($1, $2, $3)"
         " ON CONFLICT (table_id, name) DO UPDATE SET now_named = excluded.now_named",
         g);
  // A non-key column's values are sent again under the new name, with their clocks (a site
  // created after the rename never knew the old name the hub holds them under).
  for (size_t k = 0; k < cols.size(); ++k) {
    if (cols[k] != new_name) continue;
    Args r;
    r.AddText("{" + std::to_string(k) + "}");
    std::string meta = "deltasync." + QuoteIdent("meta_" + std::to_string(id));
    // The sub-select names the row (m.cl), so it runs per row: one new version each. The write
    // begins here: deltasync.next_version() must not start it (SPI) inside the UPDATE's scan.
    Backend::Get().BeginWrite();
    RunSql("UPDATE " + meta + " AS m SET (ver, clk) = (SELECT x.n, deltasync.clk_readopt(m.hlc, m.site, m.clk, m.ver,"
               " m.cl, x.n, $1::text::integer[]) FROM (SELECT deltasync.next_version() AS n, m.cl) AS x)"
               " WHERE m.cl % 2 = 1",
           r);
  }
  InvalidateCapture(relid);
}

// The relations a finished statement names besides its target, resolved with the caller's
// search_path (before AsOwner pins another one).
using ResolvedNames = std::vector<std::pair<const RangeVar*, Oid>>;

Oid Resolve(const RangeVar* rv) {
  Oid relid = InvalidOid;
  if (rv != nullptr) PgTry([&] { relid = RangeVarGetRelid(rv, NoLock, true); });
  return relid;
}

ResolvedNames ResolveNames(const CreateStmt* create, const AlterTableStmt* alter) {
  ResolvedNames out;
  ListCell* lc = nullptr;
  if (create != nullptr) {
    foreach (lc, create->inhRelations) {
      auto* rv = lfirst_node(RangeVar, lc);
      out.emplace_back(rv, Resolve(rv));
    }
  }
  if (alter != nullptr) {
    foreach (lc, alter->cmds) {
      auto* cmd = lfirst_node(AlterTableCmd, lc);
      const RangeVar* rv = nullptr;
      if (cmd->subtype == AT_AddInherit) rv = reinterpret_cast<const RangeVar*>(cmd->def);
      else if (cmd->subtype == AT_AttachPartition || cmd->subtype == AT_DetachPartition ||
               cmd->subtype == AT_DetachPartitionFinalize)
        rv = reinterpret_cast<const PartitionCmd*>(cmd->def)->name;
      if (rv != nullptr) out.emplace_back(rv, Resolve(rv));
    }
  }
  return out;
}

// The relation a RangeVar of the statement names (InvalidOid: none).
Oid RelidOf(const ResolvedNames& names, const RangeVar* rv) {
  for (const auto& [r, relid] : names)
    if (r == rv) return relid;
  return InvalidOid;
}

// The tracked table whose tree `relid` belongs to.
std::optional<TableInfo> TrackedTreeOf(Oid relid) {
  if (!OidIsValid(relid)) return std::nullopt;
  return Backend::Get().TableByRelid(TreeRoot(relid));
}

// CREATE TABLE ... PARTITION OF a member of a tracked tree: the new partition is covered at
// once. CREATE TABLE ... INHERITS a tracked table: refused.
void OnCreatedTable(const CreateStmt& stmt, Oid relid, const ResolvedNames& names) {
  ListCell* lc = nullptr;
  if (stmt.partbound == nullptr) {
    foreach (lc, stmt.inhRelations) {
      std::optional<TableInfo> t = TrackedTreeOf(RelidOf(names, lfirst_node(RangeVar, lc)));
      if (t)
        throw Error(ErrorCode::kInvalidArgument,
                    "a table cannot inherit from tracked table \"" + t->name +
                        "\": a statement on an inheritance parent fires no trigger of its children, so their changes "
                        "would escape capture; use declarative partitioning (PARTITION BY) instead");
    }
    return;
  }
  std::optional<TableInfo> t = TrackedTreeOf(relid);
  if (t) InstallTriggers(*t, relid);
}

// ALTER TABLE of a member of a tracked tree, or one that would bring a table into one:
// INHERIT is refused, ATTACH and DETACH PARTITION are followed, then the tracked table is
// audited (AuditAlteredTable).
void OnAlteredTable(const AlterTableStmt& stmt, Oid relid, const ResolvedNames& names) {
  std::optional<TableInfo> t = TrackedTreeOf(relid);
  ListCell* lc = nullptr;
  foreach (lc, stmt.cmds) {
    auto* cmd = lfirst_node(AlterTableCmd, lc);
    if (cmd->subtype == AT_AddInherit) {
      std::optional<TableInfo> parent = TrackedTreeOf(RelidOf(names, reinterpret_cast<const RangeVar*>(cmd->def)));
      if (t || parent)
        throw Error(ErrorCode::kInvalidArgument,
                    "tracked table \"" + (t ? t->name : parent->name) +
                        "\" cannot take part in table inheritance: a statement on an inheritance parent fires no "
                        "trigger of its children, so their changes would escape capture");
    } else if (cmd->subtype == AT_AttachPartition) {
      Oid attached = RelidOf(names, reinterpret_cast<const PartitionCmd*>(cmd->def)->name);
      if (t) {
        FollowAttach(*t, attached, Backend::Get().BeginWrite());
      } else {
        for (const TreeMember& m : TreeMembers(attached))
          if (Backend::Get().TableByRelid(m.relid))
            throw Error(ErrorCode::kInvalidArgument,
                        "tracked table " + m.q_name + " cannot become a partition of an untracked table: writes "
                        "through the partitioned table would escape capture; call deltasync_disable on it and track "
                        "the partitioned table instead");
      }
    } else if ((cmd->subtype == AT_DetachPartition || cmd->subtype == AT_DetachPartitionFinalize) && t) {
      FollowDetach(*t, RelidOf(names, reinterpret_cast<const PartitionCmd*>(cmd->def)->name), Backend::Get().BeginWrite());
    }
  }
  if (t) AuditAlteredTable(t->relid);
}

// CREATE SCHEMA s CREATE TABLE ... PARTITION OF / INHERITS ...: each such element as the
// CREATE TABLE it is (the statement's tag is CREATE SCHEMA, so nothing else sees them).
void OnCreatedSchema(const CreateSchemaStmt& schema) {
  std::vector<const CreateStmt*> creates;
  ListCell* lc = nullptr;
  foreach (lc, schema.schemaElts) {
    Node* elt = static_cast<Node*>(lfirst(lc));
    if (IsA(elt, CreateStmt) && reinterpret_cast<const CreateStmt*>(elt)->inhRelations != NIL)
      creates.push_back(reinterpret_cast<const CreateStmt*>(elt));
  }
  if (creates.empty()) return;
  SpiSession spi;
  AsOwner as;
  RunSql("SELECT to_regclass('deltasync.tables') IS NULL");
  if (ResultInt(0, 0) == 0) {
    for (const CreateStmt* create : creates) {
      RangeVar rv = *create->relation;
      // Elements without a schema name were created in the new schema.
      if (rv.schemaname == nullptr) rv.schemaname = schema.schemaname;
      Oid relid = InvalidOid;
      PgTry([&] { relid = RangeVarGetRelid(&rv, NoLock, true); });
      if (OidIsValid(relid)) OnCreatedTable(*create, relid, ResolveNames(create, nullptr));
    }
  }
  spi.Finish();
}

}  // namespace

// On ddl_command_end of ALTER TABLE and CREATE TABLE, in the same transaction as the
// statement: renames are followed, what capture cannot follow is refused (the error undoes
// the statement), added columns and new partitions are covered. Other backends re-read the
// tracked lists on the relcache invalidation the statement sends.
DELTASYNC_PG_FUNCTION(deltasync_on_ddl_end) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) throw Error(ErrorCode::kInvalidArgument, "deltasync.on_ddl_end() is an event trigger");
  auto* ev = reinterpret_cast<EventTriggerData*>(fcinfo->context);
  Node* tree = ev->parsetree;
  if (tree != nullptr && IsA(tree, CreateSchemaStmt)) {
    OnCreatedSchema(*reinterpret_cast<const CreateSchemaStmt*>(tree));
    return PointerGetDatum(nullptr);
  }
  const RangeVar* relation = nullptr;
  const RenameStmt* rename = nullptr;
  const AlterTableStmt* alter = nullptr;
  const CreateStmt* create = nullptr;
  if (tree != nullptr && IsA(tree, CreateStmt)) {
    create = reinterpret_cast<const CreateStmt*>(tree);
    if (create->inhRelations == NIL) return PointerGetDatum(nullptr);
    relation = create->relation;
  } else if (tree != nullptr && IsA(tree, RenameStmt)) {
    rename = reinterpret_cast<const RenameStmt*>(tree);
    if ((rename->renameType != OBJECT_COLUMN && rename->renameType != OBJECT_TABLE) || rename->newname == nullptr ||
        (rename->renameType == OBJECT_COLUMN && rename->subname == nullptr))
      return PointerGetDatum(nullptr);
    relation = rename->relation;
  } else if (tree != nullptr && IsA(tree, AlterTableStmt)) {
    alter = reinterpret_cast<const AlterTableStmt*>(tree);
    relation = alter->relation;
  }
  if (relation == nullptr) return PointerGetDatum(nullptr);
  RangeVar rv = *relation;
  // After RENAME TO, the table answers to its new name.
  if (rename && rename->renameType == OBJECT_TABLE) rv.relname = rename->newname;
  Oid relid = InvalidOid;
  PgTry([&] { relid = RangeVarGetRelid(&rv, NoLock, true); });
  if (!OidIsValid(relid)) return PointerGetDatum(nullptr);
  ResolvedNames names = ResolveNames(create, alter);
  SpiSession spi;
  AsOwner as;
  RunSql("SELECT to_regclass('deltasync.tables') IS NULL");
  if (ResultInt(0, 0) != 0) {
    spi.Finish();
    return PointerGetDatum(nullptr);
  }
  if (rename) FollowRename(*rename, relid);
  else if (create) OnCreatedTable(*create, relid, names);
  else if (alter) OnAlteredTable(*alter, relid, names);
  spi.Finish();
  return PointerGetDatum(nullptr);
}

