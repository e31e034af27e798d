// deltasync_apply(payload): merges a payload into the tracked tables, all or nothing.
// The decisions come from common/merge; this file only reads and writes SQLite.
#include <map>
#include <nlohmann/json.hpp>

#include "common/hlc.hpp"
#include "common/merge.hpp"
#include "common/row_apply.hpp"
#include "common/scoped_flag.hpp"
#include "common/payload.hpp"
#include "common/row_clocks.hpp"
#include "common/utf8.hpp"
#include "sqlite_ext/sqlite_apply.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {


// Foreign keys between tracked tables are checked at commit, so rows may arrive in any order.
class DeferForeignKeys {
 public:
  explicit DeferForeignKeys(sqlite3* db) : db_(db) {
    Stmt s(db, "PRAGMA defer_foreign_keys");
    old_ = s.Step() && s.Int(0) != 0;
    Exec(db, "PRAGMA defer_foreign_keys = ON");
  }
  ~DeferForeignKeys() {
    if (!old_) sqlite3_exec(db_, "PRAGMA defer_foreign_keys = OFF", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  bool old_ = false;
};

// The statements that apply one payload table into one local table.
class TableApplier {
 public:
  TableApplier(Conn& conn, const TableInfo& t, const TableChanges& tc, const std::vector<uint32_t>& site_ords)
      : conn_(conn), t_(t),
        nk_(static_cast<int>(t.pk.size())),
        get_meta_(conn.db(), std::string("SELECT ") + kShadowColumns + " FROM " + t.q_meta + " WHERE " +
                                 ShadowKeyWhere(t.pk.size(), 1)),
        put_meta_(conn.db(), PutMetaSql(t)),
        // Payload names are matched against the local catalog; only local names reach SQL.
        map_(MapTable(t.name, t.pk, t.cols, tc, site_ords)) {}

  void Apply(const RowChanges& r, ApplyResult& counts) {
    for (int k = 0; k < nk_; ++k) get_meta_.Bind(k + 1, r.key[k]);
    ShadowRow shadow;  // cl 0, no clocks: this site never saw the row
    if (get_meta_.Step()) shadow = ReadShadowRow(get_meta_, 0);
    get_meta_.Reset();
    RowClocks& clocks = shadow.clocks;
    RowDecision d = DecideRow(shadow.cl, clocks, r, map_, [&](uint32_t ord) -> const SiteId& { return conn_.SiteOf(ord); });
    const RowMerge& m = d.merge;
    if (!CountRow(d, counts)) return;

    if (m.existed && !m.exists) DeleteRow(r);
    if (m.exists) UpsertRow(r, d.winners, !m.existed);

    int64_t ver = conn_.NextVersion();
    counts.AddVersion(ver);
    AdoptWinners(clocks, d, r, map_, t_.cols.size(), ver);
    std::string extras = clocks.EncodeExtras();
    for (int k = 0; k < nk_; ++k) put_meta_.Bind(k + 1, r.key[k]);
    put_meta_.BindInt(nk_ + 1, m.cl);
    put_meta_.BindInt(nk_ + 2, ver);
    put_meta_.BindInt(nk_ + 3, static_cast<int64_t>(clocks.Base().hlc));
    put_meta_.BindInt(nk_ + 4, clocks.Base().site);
    if (!extras.empty()) put_meta_.BindBlob(nk_ + 5, extras);  // else NULL (cleared by Reset)
    put_meta_.Run();
  }

 private:
  static std::string PutMetaSql(const TableInfo& t) {
    std::string keys = ShadowKeyList(t.pk.size()), params;
    for (size_t k = 0; k < t.pk.size() + 5; ++k) params += (k ? ", ?" : "?") + std::to_string(k + 1);
    return "INSERT INTO " + t.q_meta + "(" + keys + ", cl, ver, hlc, site, clk) VALUES (" + params +
           ") ON CONFLICT(" + keys + ") DO UPDATE SET cl = excluded.cl, ver = excluded.ver, hlc = excluded.hlc,"
           " site = excluded.site, clk = excluded.clk";
  }

  void DeleteRow(const RowChanges& r) {
    if (!delete_) {
      std::string w;
      for (size_t k = 0; k < t_.pk.size(); ++k)
        w += (k ? " AND " : "") + QuoteIdent(t_.pk[k]) + " = ?" + std::to_string(k + 1);
      delete_.emplace(conn_.db(), "DELETE FROM " + t_.q_name + " WHERE " + w);
    }
    for (size_t k = 0; k < r.key.size(); ++k) delete_->Bind(static_cast<int>(k + 1), r.key[k]);
    delete_->Run();
  }

  // Writes exactly the winning columns; one cached statement per distinct set of winners.
  // A row this site holds is UPDATEd, so columns that did not change are never needed
  // (NOT NULL columns without a default stay as they are); a row new here is INSERTed, and
  // an UPDATE that finds no base row (metadata ahead of the table) falls back to the insert.
  void UpsertRow(const RowChanges& r, const std::vector<size_t>& winners, bool create) {
    if (winners.empty() && !create) return;
    std::string sig = create ? "i" : "u";
    for (size_t k : winners) sig += std::to_string(map_.columns[r.changes[k].column]) + ",";
    if (!create) {
      Stmt& u = Cached(sig, [&] { return UpdateSql(r, winners); });
      int n = 0;
      for (size_t k : winners) u.Bind(++n, r.changes[k].value);
      for (const Value& v : r.key) u.Bind(++n, v);
      RunWrite(u);
      if (sqlite3_changes(conn_.db()) > 0) return;
      sig[0] = 'i';
    }
    Stmt& s = Cached(sig, [&] { return InsertSql(r, winners); });
    int n = 0;
    for (const Value& v : r.key) s.Bind(++n, v);
    for (size_t k : winners) s.Bind(++n, r.changes[k].value);
    RunWrite(s);
  }

  template <typename MakeSql>
  Stmt& Cached(const std::string& sig, MakeSql make_sql) {
    auto it = writes_.find(sig);
    if (it == writes_.end()) it = writes_.emplace(sig, Stmt(conn_.db(), make_sql())).first;
    return it->second;
  }

  // UPDATE t SET <winners> = ?1.. WHERE <key> = ?n..
  std::string UpdateSql(const RowChanges& r, const std::vector<size_t>& winners) const {
    std::string set, where;
    int n = 0;
    for (size_t k : winners)
      set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[map_.columns[r.changes[k].column]]) + " = ?" +
             std::to_string(++n);
    for (const auto& c : t_.pk) where += (where.empty() ? "" : " AND ") + QuoteIdent(c) + " = ?" + std::to_string(++n);
    return "UPDATE " + t_.q_name + " SET " + set + " WHERE " + where;
  }

  // INSERT INTO t(<key>, <winners>) VALUES (...) ON CONFLICT(<key>) DO UPDATE SET <winners>.
  std::string InsertSql(const RowChanges& r, const std::vector<size_t>& winners) const {
    std::string cols, vals, conflict, set;
    int n = 0;
    for (const auto& c : t_.pk) {
      cols += (n ? ", " : "") + QuoteIdent(c);
      vals += (n ? ", ?" : "?") + std::to_string(n + 1);
      conflict += (conflict.empty() ? "" : ", ") + QuoteIdent(c);
      ++n;
    }
    for (size_t k : winners) {
      std::string q = QuoteIdent(t_.cols[map_.columns[r.changes[k].column]]);
      cols += ", " + q;
      vals += ", ?" + std::to_string(++n);
      set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
    }
    return "INSERT INTO " + t_.q_name + "(" + cols + ") VALUES (" + vals + ") ON CONFLICT(" + conflict + ") DO " +
           (set.empty() ? "NOTHING" : "UPDATE SET " + set);
  }

  void RunWrite(Stmt& s) {
    try {
      s.Run();
    } catch (const Error& e) {
      throw Error(e.code() == ErrorCode::kConstraint ? ErrorCode::kConstraint : e.code(),
                  std::string("cannot apply a change to table \"") + t_.name + "\": " + (e.what() + 11));
    }
  }

  Conn& conn_;
  const TableInfo& t_;
  int nk_;  // number of key columns
  Stmt get_meta_, put_meta_;
  TableMapping map_;
  std::optional<Stmt> delete_;
  std::map<std::string, Stmt> writes_;  // by signature: i/u and the winning columns
};

}  // namespace

ApplyResult ApplyPayload(Conn& conn, const Payload& p) {
  sqlite3* db = conn.db();
  conn.EnsureSchema();
  uint64_t max_hlc =
      CheckPayloadClock(p, conn.SettingInt("max_clock_drift_ms", static_cast<int64_t>(kDefaultMaxClockDriftMs)));

  ApplyResult counts;
  std::vector<TableInfo> tables = conn.LoadTables();
  LastRowidGuard rowid(db);
  ScopedFlag applying(conn.applying);
  Savepoint sp(db, "deltasync_apply");
  try {
    DeferForeignKeys fk(db);
    std::vector<uint32_t> site_ords;
    for (const SiteId& s : p.sites) site_ords.push_back(conn.SiteOrdinal(s));
    for (const TableChanges& tc : p.tables) {
      const TableInfo* t = nullptr;
      for (const TableInfo& cand : tables)
        if (EqualsIgnoreAsciiCase(cand.name, tc.name)) t = &cand;
      if (!t || t->state == TableState::kDropped) {
        counts.untracked += CountChanges(tc);
        continue;
      }
      t->RequireCaptured();
      TableApplier applier(conn, *t, tc, site_ords);
      for (const RowChanges& r : tc.rows) applier.Apply(r, counts);
    }
    conn.clock().Observe(max_hlc);
    if (conn.InTxn()) conn.RefreshTxnHlc();  // else the next transaction starts past it
    sp.Release();
  } catch (...) {
    conn.ForgetSites();  // site rows inserted above were rolled back
    throw;
  }
  return counts;
}

nlohmann::json ApplyResultJson(Conn& conn, const ApplyResult& r) {
  return {{"applied", r.applied},
          {"ignored", r.ignored},
          {"untracked", r.untracked},
          {"rows", r.rows},
          {"db_version", conn.CurrentDbVersion()}};
}

void FnApply(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    int type = sqlite3_value_type(argv[0]);
    if (type != SQLITE_TEXT && type != SQLITE_BLOB)
      throw Error(ErrorCode::kInvalidArgument, "deltasync_apply(payload) expects the payload as text");
    std::string_view text(static_cast<const char*>(sqlite3_value_blob(argv[0])), sqlite3_value_bytes(argv[0]));
    Payload p = DecodeJson(text);  // fully validated before anything is touched
    ResultText(ctx, ApplyResultJson(conn, ApplyPayload(conn, p)).dump());
  });
}

}  // namespace deltasync
