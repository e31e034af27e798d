// deltasync_apply(payload): merges a payload into the tracked tables, all or nothing (one
// subtransaction). The decisions come from common/merge; this file reads and writes.
//
// While it applies, the tracked tables it touches are locked SHARE ROW EXCLUSIVE (local
// writers wait, readers do not): the shadow rows it reads cannot change under it, so its
// merge decisions stand. Writes run with session_replication_role = replica, as
// PostgreSQL's own logical replication applies: foreign keys between tracked tables do not
// depend on the order rows arrive in, and the application's ordinary triggers do not fire.
#include <map>
#include <optional>

#include "common/hlc.hpp"
#include "common/merge.hpp"
#include "common/row_apply.hpp"
#include "common/scoped_flag.hpp"
#include "common/utf8.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace deltasync {

namespace {

// The statements that apply one payload table into one local table.
class TableApplier {
 public:
  TableApplier(const TableInfo& t, const TableChanges& tc, const std::vector<uint32_t>& site_ords)
      : t_(t), nk_(static_cast<int>(t.pk.size())),
        // Payload names are matched against the local catalog; only local names reach SQL.
        map_(MapTable(t.name, t.pk, t.cols, tc, site_ords)) {
    std::vector<Oid> key_types;
    for (const ColType& c : t_.pk_types) key_types.push_back(c.type);
    std::string where = KeyParamEquality(t_, ShadowKeyNames(t_.pk.size()), 1);
    get_meta_.Prepare(std::string("SELECT ") + kShadowColumns + " FROM " + t_.q_meta + " WHERE " + where, key_types, false);
    std::vector<Oid> put_types = key_types;
    for (Oid o : {INT8OID, INT8OID, INT8OID, INT4OID, BYTEAOID}) put_types.push_back(o);
    std::string keys = ShadowKeyList(t_.pk.size()), params;
    for (size_t k = 0; k < put_types.size(); ++k) params += (k ? ", $" : "$") + std::to_string(k + 1);
    put_meta_.Prepare("INSERT INTO " + t_.q_meta + " (" + keys + ", cl, ver, hlc, site, clk) VALUES (" + params +
                          ") ON CONFLICT (" + keys + ") DO UPDATE SET cl = excluded.cl, ver = excluded.ver,"
                          " hlc = excluded.hlc, site = excluded.site, clk = excluded.clk",
                      put_types, false);
  }

  void Apply(const RowChanges& r, ApplyResult& counts) {
    Backend& b = Backend::Get();
    Args key;
    for (int k = 0; k < nk_; ++k) {
      bool isnull = false;
      Datum d = Convert(t_.pk_types[k], r.key[k], t_.pk[k], &isnull);
      key.Add(t_.pk_types[k].type, d, isnull);
    }
    ShadowRow shadow;  // cl 0, no clocks: this site never saw the row
    if (get_meta_.Run(key, 1) == 1) shadow = ReadShadowRow(Rows(), 0, 0);
    RowClocks& clocks = shadow.clocks;
    RowDecision d = DecideRow(shadow.cl, clocks, r, map_, [&](uint32_t ord) -> const SiteId& { return b.SiteOf(ord); });
    const RowMerge& m = d.merge;
    if (!CountRow(d, counts)) return;

    if (m.existed && !m.exists) DeleteRow(key);
    if (m.exists) UpsertRow(r, key, d.winners, !m.existed);

    int64_t ver = b.NextVersion();
    counts.AddVersion(ver);
    AdoptWinners(clocks, d, r, map_, t_.cols.size(), ver);
    std::string extras = clocks.EncodeExtras();
    Args put = key;
    put.AddInt8(m.cl);
    put.AddInt8(ver);
    put.AddInt8(static_cast<int64_t>(clocks.Base().hlc));
    put.AddInt4(static_cast<int32>(clocks.Base().site));
    if (extras.empty()) put.Add(BYTEAOID, 0, true);
    else put.AddBytea(extras);
    put_meta_.Run(put);
  }

 private:
  // Input functions run as the table's owner: a domain's CHECK may call the owner's own
  // functions, which must not run with the extension owner's rights.
  Datum Convert(const ColType& type, const Value& v, const std::string& column, bool* isnull) {
    try {
      AsTableOwner as(t_.owner);
      return FromValue(type, v, isnull);
    } catch (const PgError& e) {
      throw PgError(e.sqlstate(), ErrorCode::kConstraint,
                    "cannot apply a change to column \"" + column + "\" of table \"" + t_.name + "\": " + (e.what() + 11));
    }
  }

  // Base-table statements run as the table's owner (the caller holds its privileges).
  uint64_t RunAsTableOwner(const Plan& p, const Args& a) {
    AsTableOwner as(t_.owner);
    try {
      return p.Run(a);
    } catch (const PgError& e) {
      throw PgError(e.sqlstate(), ErrorCode::kConstraint,
                    "cannot apply a change to table \"" + t_.name + "\": " + (e.what() + 11));
    }
  }

  void DeleteRow(const Args& key) {
    if (!delete_.Ready()) {
      std::vector<std::string> qpk;
      for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
      std::string w = KeyParamEquality(t_, qpk, 1);
      delete_.Prepare("DELETE FROM " + t_.q_name + " WHERE " + w, key.types, false);
    }
    RunAsTableOwner(delete_, key);
  }

  // Writes exactly the winning columns; one statement per distinct set of winners. A row
  // this site holds is UPDATEd, so columns that did not change are never needed (NOT NULL
  // columns without a default stay as they are); a row new here is INSERTed, and an UPDATE
  // that finds no base row (metadata ahead of the table) falls back to the insert.
  void UpsertRow(const RowChanges& r, const Args& key, const std::vector<size_t>& winners, bool create) {
    if (winners.empty() && !create) return;
    std::string sig;
    for (size_t k : winners) sig += std::to_string(map_.columns[r.changes[k].column]) + ",";
    Args a = key;
    for (size_t k : winners) {
      uint32_t c = map_.columns[r.changes[k].column];
      bool isnull = false;
      Datum d = Convert(t_.col_types[c], r.changes[k].value, t_.cols[c], &isnull);
      a.Add(t_.col_types[c].type, d, isnull);
    }
    if (!create) {
      auto it = updates_.find(sig);
      if (it == updates_.end()) it = updates_.emplace(sig, PrepareUpdate(r, winners, a)).first;
      if (RunAsTableOwner(it->second, a) > 0) return;
    }
    auto it = inserts_.find(sig);
    if (it == inserts_.end()) it = inserts_.emplace(sig, PrepareInsert(r, winners, a)).first;
    RunAsTableOwner(it->second, a);
  }

  // UPDATE t SET <winners> = $(nk+1).. WHERE <key> = $1..
  Plan PrepareUpdate(const RowChanges& r, const std::vector<size_t>& winners, const Args& a) const {
    std::vector<std::string> qpk;
    for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
    std::string set;
    int n = static_cast<int>(t_.pk.size());
    for (size_t k : winners)
      set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[map_.columns[r.changes[k].column]]) + " = $" +
             std::to_string(++n);
    Plan p;
    p.Prepare("UPDATE " + t_.q_name + " SET " + set + " WHERE " + KeyParamEquality(t_, qpk, 1), a.types, false);
    return p;
  }

  // INSERT INTO t (<key>, <winners>) VALUES ($1..) ON CONFLICT (<key>) DO UPDATE SET <winners>.
  Plan PrepareInsert(const RowChanges& r, const std::vector<size_t>& winners, const Args& a) const {
    std::string cols = ColumnList(t_.pk, ""), vals, set;
    for (size_t k = 0; k < t_.pk.size(); ++k) vals += (k ? ", $" : "$") + std::to_string(k + 1);
    int n = static_cast<int>(t_.pk.size());
    for (size_t k : winners) {
      std::string q = QuoteIdent(t_.cols[map_.columns[r.changes[k].column]]);
      cols += ", " + q;
      vals += ", $" + std::to_string(++n);
      set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
    }
    Plan p;
    p.Prepare("INSERT INTO " + t_.q_name + " (" + cols + ") VALUES (" + vals + ") ON CONFLICT (" +
                  ColumnList(t_.pk, "") + ") DO " + (set.empty() ? "NOTHING" : "UPDATE SET " + set),
              a.types, false);
    return p;
  }

  const TableInfo& t_;
  int nk_;
  TableMapping map_;
  Plan get_meta_, put_meta_, delete_;
  std::map<std::string, Plan> updates_, inserts_;  // by the winning columns
};

// Apply runs with session_replication_role = replica, a superuser's setting: a table whose
// triggers or rules fire in that mode (ENABLE ALWAYS / ENABLE REPLICA) would run its owner's
// code with foreign keys elsewhere unchecked. Only a superuser may apply into such a table.
void RefuseForeignReplicaCode(const TableInfo& t) {
  bool super = false;
  PgTry([&] { super = superuser(); });
  if (super) return;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(t.relid));
  AsOwner as;
  RunSql("SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgenabled IN ('A', 'R') AND NOT tgisinternal"
         " UNION ALL SELECT 1 FROM pg_rewrite WHERE ev_class = $1 AND ev_enabled IN ('A', 'R') AND rulename <> '_RETURN'",
         a);
  if (SPI_processed > 0)
    throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, ErrorCode::kInvalidArgument,
                  "table \"" + t.name + "\" has triggers or rules enabled ALWAYS or REPLICA; only a superuser may "
                  "apply changes into it (they would run during the apply)");
}

}  // namespace

ApplyResult ApplyPayload(const Payload& p) {
  Backend& b = Backend::Get();
  uint64_t max_hlc =
      CheckPayloadClock(p, b.SettingInt("max_clock_drift_ms", static_cast<int64_t>(kDefaultMaxClockDriftMs)));

  ApplyResult counts;
  std::vector<TableInfo> tables = b.LoadTables();
  std::vector<std::pair<const TableChanges*, const TableInfo*>> work;
  std::vector<const TableInfo*> touched;
  for (const TableChanges& tc : p.tables) {
    const TableInfo* t = nullptr;
    for (const TableInfo& cand : tables)
      if (EqualsIgnoreAsciiCase(cand.name, tc.name)) t = &cand;
    if (!t || t->dropped) {
      counts.untracked += CountChanges(tc);
      continue;
    }
    CheckAccess(*t, Access::kWrite);
    RefuseForeignReplicaCode(*t);
    work.emplace_back(&tc, t);
    if (std::find(touched.begin(), touched.end(), t) == touched.end()) touched.push_back(t);
  }
  std::sort(touched.begin(), touched.end(), [](const TableInfo* x, const TableInfo* y) { return x->id < y->id; });
  b.BeginWrite();

  ScopedFlag applying(b.applying);
  SubTransaction sub;
  try {
    AsOwner as;
    PgTry([] {
      (void)set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                              0, false);
    });
    for (const TableInfo* t : touched) {
      RunSql("LOCK TABLE " + t->q_name + " IN SHARE ROW EXCLUSIVE MODE");
      RunSql("LOCK TABLE " + t->q_meta + " IN SHARE ROW EXCLUSIVE MODE");
    }
    std::vector<uint32_t> site_ords;
    for (const SiteId& s : p.sites) site_ords.push_back(b.SiteOrdinal(s));
    for (const auto& [tc, t] : work) {
      TableApplier applier(*t, *tc, site_ords);
      for (const RowChanges& r : tc->rows) applier.Apply(r, counts);
    }
    if (max_hlc != 0) {
      b.clock().Observe(max_hlc);
      b.PersistClock(max_hlc);
      b.RefreshTxnHlc();
    }
  } catch (...) {
    b.ForgetSites();  // site rows inserted above are rolled back with the subtransaction
    throw;
  }
  sub.Commit();
  return counts;
}

nlohmann::json ApplyResultJson(const ApplyResult& r) {
  return {{"applied", r.applied},
          {"ignored", r.ignored},
          {"untracked", r.untracked},
          {"rows", r.rows},
          {"db_version", Backend::Get().SafeVersion()}};
}

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_apply) {
  std::string text = TextArg(fcinfo, 0, "deltasync_apply(payload)");
  Payload p = DecodeJson(text);  // fully validated before anything is touched
  SpiSession spi;
  nlohmann::json result = ApplyResultJson(ApplyPayload(p));
  spi.Finish();
  return JsonbResult(result);
}
