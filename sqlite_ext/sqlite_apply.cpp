// deltasync_apply(payload): merges a payload into the tracked tables, all or nothing.
// The loop and the decisions are common/apply_loop's; this file only reads and writes SQLite.
#include <map>
#include <nlohmann/json.hpp>

#include "common/apply_loop.hpp"
#include "common/hlc.hpp"
#include "common/scoped_flag.hpp"
#include "common/payload.hpp"
#include "common/quarantine.hpp"
#include "common/utf8.hpp"
#include "sqlite_ext/sqlite_apply.hpp"
#include "sqlite_ext/sqlite_guard.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

namespace {

#ifdef SQLITE_CONSTRAINT_DATATYPE
constexpr int kConstraintDatatype = SQLITE_CONSTRAINT_DATATYPE;
#else
constexpr int kConstraintDatatype = SQLITE_CONSTRAINT | (12 << 8);
#endif

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

// The statements that write one local table during an apply.
class SqliteApplyTable : public ApplyTable {
 public:
  SqliteApplyTable(Conn& conn, const TableInfo& t)
      : conn_(conn), t_(t), nk_(static_cast<int>(t.pk.size())),
        get_meta_(conn.db(), std::string("SELECT ") + kShadowColumns + " FROM " + t.q_meta + " WHERE " +
                                 ShadowKeyWhere(t.pk.size(), 1)),
        put_meta_(conn.db(), PutMetaSql(t)), repr_(t) {}

  TableNames Names() const override {
    return TableNames{t_.name, t_.pk, t_.cols, t_.policies.empty() ? nullptr : &t_.policies};
  }

  void ReadShadow(const std::vector<Value>& wire_key, ShadowRow& out) override {
    const std::vector<Value>& key = repr_.KeyToLocal(wire_key);
    for (int k = 0; k < nk_; ++k) get_meta_.Bind(k + 1, key[k]);
    if (get_meta_.Step()) out = ReadShadowRow(get_meta_, 0);
    get_meta_.Reset();
  }

  void DeleteRow(const std::vector<Value>& wire_key) override {
    const std::vector<Value>& key = repr_.KeyToLocal(wire_key);
    if (!delete_) {
      std::string w;
      for (size_t k = 0; k < t_.pk.size(); ++k)
        w += (k ? " AND " : "") + QuoteIdent(t_.pk[k]) + " = ?" + std::to_string(k + 1);
      delete_.emplace(conn_.db(), "DELETE FROM " + t_.q_name + " WHERE " + w);
    }
    for (size_t k = 0; k < key.size(); ++k) delete_->Bind(static_cast<int>(k + 1), key[k]);
    RunWrite(*delete_, wire_key);
  }

  // One cached statement per distinct set of columns.
  bool UpdateRow(const std::vector<Value>& wire_key, const std::vector<ColumnWrite>& cols) override {
    Stmt& u = Cached(Signature('u', cols), [&] { return UpdateSql(cols); });
    int n = 0;
    for (const ColumnWrite& c : cols) u.Bind(++n, repr_.ToLocal(c.column, *c.value));
    for (const Value& v : repr_.KeyToLocal(wire_key)) u.Bind(++n, v);
    RunWrite(u, wire_key);
    return sqlite3_changes(conn_.db()) > 0;
  }

  void InsertRow(const std::vector<Value>& wire_key, const std::vector<ColumnWrite>& cols) override {
    Stmt& s = Cached(Signature('i', cols), [&] { return InsertSql(cols); });
    int n = 0;
    for (const Value& v : repr_.KeyToLocal(wire_key)) s.Bind(++n, v);
    for (const ColumnWrite& c : cols) s.Bind(++n, repr_.ToLocal(c.column, *c.value));
    RunWrite(s, wire_key);
  }

  // Each column gets its declared default (the application's schema text), or NULL.
  void ResetColumns(const std::vector<Value>& wire_key, const std::vector<uint32_t>& cols) override {
    std::string set;
    Stmt d(conn_.db(), "SELECT dflt_value FROM pragma_table_xinfo(?1) WHERE name = ?2");
    for (uint32_t c : cols) {
      d.BindText(1, t_.name);
      d.BindText(2, t_.cols[c]);
      std::string dflt = d.Step() && !d.IsNull(0) ? "(" + std::string(d.Text(0)) + ")" : "NULL";
      d.Reset();
      set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[c]) + " = " + dflt;
    }
    Stmt u(conn_.db(), "UPDATE " + t_.q_name + " SET " + set + " WHERE " + KeyWhere(t_.pk, 0));
    const std::vector<Value>& key = repr_.KeyToLocal(wire_key);
    for (size_t k = 0; k < key.size(); ++k) u.Bind(static_cast<int>(k + 1), key[k]);
    RunWrite(u, wire_key);
  }

  void WriteShadow(const std::vector<Value>& wire_key, int64_t cl, int64_t ver, const RowClocks& clocks) override {
    const std::vector<Value>& key = repr_.KeyToLocal(wire_key);
    std::string extras = clocks.EncodeExtras();
    for (int k = 0; k < nk_; ++k) put_meta_.Bind(k + 1, key[k]);
    put_meta_.BindInt(nk_ + 1, cl);
    put_meta_.BindInt(nk_ + 2, ver);
    put_meta_.BindInt(nk_ + 3, static_cast<int64_t>(clocks.Base().hlc));
    put_meta_.BindInt(nk_ + 4, clocks.Base().site);
    if (!extras.empty()) put_meta_.BindBlob(nk_ + 5, extras);  // else NULL (cleared by Reset)
    put_meta_.Run();
  }

  // Keys and values in wire form, as the loop has them; the base row holds local forms.
  bool ReadColumns(const std::vector<Value>& wire_key, const std::vector<std::string>& cols,
                   std::vector<Value>& out) override {
    std::string sig = "r";
    for (const std::string& c : cols) sig += c + ",";
    Stmt& s = Cached(sig, [&] {
      std::string list = "1";
      for (const std::string& c : cols) list += ", " + QuoteIdent(c);
      return "SELECT " + list + " FROM " + t_.q_name + " WHERE " + KeyWhere(t_.pk, 0);
    });
    const std::vector<Value>& key = repr_.KeyToLocal(wire_key);
    for (size_t k = 0; k < key.size(); ++k) s.Bind(static_cast<int>(k + 1), key[k]);
    bool found = s.Step();
    out.clear();
    for (size_t c = 0; found && c < cols.size(); ++c) {
      int pk = KeyIndex(cols[c]);
      if (pk >= 0) {
        out.push_back(wire_key[pk]);
        continue;
      }
      Value v = s.Val(static_cast<int>(c + 1));
      repr_.ToWire(ColumnIndex(cols[c]), v);
      out.push_back(std::move(v));
    }
    s.Reset();
    return found;
  }

  std::vector<std::vector<Value>> FindRows(const std::vector<std::string>& cols,
                                           const std::vector<Value>& values) override {
    std::string sig = "f";
    for (const std::string& c : cols) sig += c + ",";
    Stmt& s = Cached(sig, [&] {
      std::string list;
      for (const std::string& c : t_.pk) list += (list.empty() ? "" : ", ") + QuoteIdent(c);
      return "SELECT " + list + " FROM " + t_.q_name + " WHERE " + KeyWhere(cols, 0);
    });
    std::vector<Value> local;
    for (size_t k = 0; k < values.size(); ++k) {
      int pk = KeyIndex(cols[k]);
      Value v;
      if (pk >= 0) {
        if (!ToLocalOrThrow(t_.reprs.Pk(static_cast<size_t>(pk)), values[k], v, t_.name, cols[k])) v = values[k];
      } else {
        v = repr_.ToLocal(ColumnIndex(cols[k]), values[k]);
      }
      local.push_back(std::move(v));
    }
    for (size_t k = 0; k < local.size(); ++k) s.Bind(static_cast<int>(k + 1), local[k]);
    std::vector<std::vector<Value>> keys;
    while (s.Step()) {
      std::vector<Value> key;
      for (int k = 0; k < nk_; ++k) key.push_back(s.Val(k));
      keys.push_back(std::move(key));
    }
    s.Reset();
    for (std::vector<Value>& key : keys) repr_.KeyToWire(key, true);
    return keys;
  }

 private:
  // The position of a key column, or -1.
  int KeyIndex(const std::string& col) const {
    for (size_t k = 0; k < t_.pk.size(); ++k)
      if (EqualsIgnoreAsciiCase(t_.pk[k], col)) return static_cast<int>(k);
    return -1;
  }
  // The index of a non-key tracked column (the table's column count when it is none).
  uint32_t ColumnIndex(const std::string& col) const {
    uint32_t c = 0;
    while (c < t_.cols.size() && !EqualsIgnoreAsciiCase(t_.cols[c], col)) ++c;
    return c;
  }

  // "<c1> = ?<n+1> AND <c2> = ?<n+2> ..."
  static std::string KeyWhere(const std::vector<std::string>& cols, int n) {
    std::string w;
    for (const std::string& c : cols) w += (w.empty() ? "" : " AND ") + QuoteIdent(c) + " = ?" + std::to_string(++n);
    return w;
  }

  static std::string PutMetaSql(const TableInfo& t) {
    std::string keys = ShadowKeyList(t.pk.size()), params;
    for (size_t k = 0; k < t.pk.size() + 5; ++k) params += (k ? ", ?" : "?") + std::to_string(k + 1);
    return "INSERT INTO " + t.q_meta + "(" + keys + ", cl, ver, hlc, site, clk) VALUES (" + params +
           ") ON CONFLICT(" + keys + ") DO UPDATE SET cl = excluded.cl, ver = excluded.ver, hlc = excluded.hlc,"
           " site = excluded.site, clk = excluded.clk";
  }

  // The cache key of a write: u (update) or i (insert), then the local column indexes.
  static std::string Signature(char kind, const std::vector<ColumnWrite>& cols) {
    std::string sig(1, kind);
    for (const ColumnWrite& c : cols) sig += std::to_string(c.column) + ",";
    return sig;
  }

  template <typename MakeSql>
  Stmt& Cached(const std::string& sig, MakeSql make_sql) {
    auto it = writes_.find(sig);
    if (it == writes_.end()) it = writes_.emplace(sig, Stmt(conn_.db(), make_sql())).first;
    return it->second;
  }

  // UPDATE t SET <cols> = ?1.. WHERE <key> = ?n..
  std::string UpdateSql(const std::vector<ColumnWrite>& cols) const {
    std::string set, where;
    int n = 0;
    for (const ColumnWrite& c : cols)
      set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[c.column]) + " = ?" + std::to_string(++n);
    for (const auto& c : t_.pk) where += (where.empty() ? "" : " AND ") + QuoteIdent(c) + " = ?" + std::to_string(++n);
    return "UPDATE " + t_.q_name + " SET " + set + " WHERE " + where;
  }

  // INSERT INTO t(<key>, <cols>) VALUES (...) ON CONFLICT(<key>) DO UPDATE SET <cols>.
  std::string InsertSql(const std::vector<ColumnWrite>& cols) const {
    std::string names, vals, conflict, set;
    int n = 0;
    for (const auto& c : t_.pk) {
      names += (n ? ", " : "") + QuoteIdent(c);
      vals += (n ? ", ?" : "?") + std::to_string(n + 1);
      conflict += (conflict.empty() ? "" : ", ") + QuoteIdent(c);
      ++n;
    }
    for (const ColumnWrite& c : cols) {
      std::string q = QuoteIdent(t_.cols[c.column]);
      names += ", " + q;
      vals += ", ?" + std::to_string(++n);
      set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
    }
    return "INSERT INTO " + t_.q_name + "(" + names + ") VALUES (" + vals + ") ON CONFLICT(" + conflict + ") DO " +
           (set.empty() ? "NOTHING" : "UPDATE SET " + set);
  }

  // Runs a base-table write, naming the table in its error: a constraint's refusal (SQLite
  // has rolled back only the failing statement) sets the row aside, naming its key too.
  void RunWrite(Stmt& s, const std::vector<Value>& key) {
    try {
      s.Run();
    } catch (const Error& e) {
      std::string what = std::string("cannot apply a change to table \"") + t_.name + "\"";
      int code = sqlite3_extended_errcode(conn_.db());
      // A value of the wrong type for a STRICT column does not fit its column: the whole
      // apply is refused, as for any invalid input.
      if ((code & 0xff) == SQLITE_CONSTRAINT && code != kConstraintDatatype)
        throw RowRefused(what + ", key " + KeyText(key) + ": " + e.message());
      throw Error(e.code(), what + ": " + e.message(), e.detail(), e.hint());
    }
  }

  Conn& conn_;
  const TableInfo& t_;
  int nk_;  // number of key columns
  Stmt get_meta_, put_meta_;
  std::optional<Stmt> delete_;
  std::map<std::string, Stmt> writes_;  // by signature: i/u and the columns
  SqliteRepr repr_;  // keys and values arrive in wire form; the table and shadow keys hold local form
};

// The apply loop's port on one SQLite connection.
class SqliteApply : public ApplyPort {
 public:
  explicit SqliteApply(Conn& conn) : conn_(conn) {}

  int64_t MaxClockDriftSetting() override {
    return conn_.SettingInt("max_clock_drift_ms", static_cast<int64_t>(kDefaultMaxClockDriftMs));
  }

  int FindTable(const std::string& name) override {
    if (!loaded_) {
      tables_ = conn_.LoadTables();
      loaded_ = true;
    }
    int found = -1;
    for (size_t k = 0; k < tables_.size(); ++k)
      if (EqualsIgnoreAsciiCase(tables_[k].name, name)) found = static_cast<int>(k);
    return found >= 0 && tables_[found].state == TableState::kDropped ? -1 : found;
  }

  // Foreign keys are followed only where SQLite enforces them (PRAGMA foreign_keys).
  std::vector<ForeignKey> ForeignKeys() override {
    std::vector<ForeignKey> out;
    Stmt on(conn_.db(), "PRAGMA foreign_keys");
    if (!on.Step() || on.Int(0) == 0) return out;
    Stmt list(conn_.db(), "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq");
    for (size_t child = 0; child < tables_.size(); ++child) {
      if (tables_[child].state != TableState::kTracked) continue;
      list.BindText(1, tables_[child].name);
      struct Raw {
        std::string parent, on_delete;
        std::vector<std::string> from, to;
        bool implicit = false;
      };
      std::map<int64_t, Raw> raw;
      while (list.Step()) {
        Raw& r = raw[list.Int(0)];
        r.parent = std::string(list.Text(1));
        r.from.emplace_back(list.Text(2));
        r.implicit |= list.IsNull(3);
        r.to.emplace_back(list.Text(3));
        r.on_delete = std::string(list.Text(4));
      }
      list.Reset();
      for (auto& [id, r] : raw) {
        int parent = FindTable(r.parent);
        if (parent < 0) continue;
        const std::vector<std::string>& pk = tables_[parent].pk;
        if (r.implicit) r.to = pk;
        if (r.to.size() != pk.size()) continue;  // not onto the parent's key: SQLite checks it
        ForeignKey fk;
        fk.child = static_cast<int>(child);
        fk.parent = parent;
        for (const std::string& p : pk)
          for (size_t k = 0; k < r.to.size(); ++k)
            if (EqualsIgnoreAsciiCase(r.to[k], p)) fk.columns.push_back(r.from[k]);
        if (fk.columns.size() != pk.size()) continue;
        fk.set_null = EqualsIgnoreAsciiCase(r.on_delete, "SET NULL");
        std::string cols;
        for (const std::string& c : fk.columns) cols += (cols.empty() ? "" : ", ") + c;
        fk.name = tables_[child].name + "(" + cols + ") -> " + tables_[parent].name;
        out.push_back(std::move(fk));
      }
    }
    return out;
  }

  std::vector<HeldRow> HeldRows() override {
    std::vector<HeldRow> rows;
    Stmt s(conn_.db(), "SELECT tbl, key, changes, error, since_ms FROM deltasync_quarantine ORDER BY since_ms, tbl, key");
    while (s.Step())
      rows.push_back(HeldRow{std::string(s.Text(0)), std::string(s.Blob(1)), std::string(s.Text(2)),
                             std::string(s.Text(3)), s.Int(4)});
    return rows;
  }

  bool RefusalAbortsAtomically() override { return false; }  // SQLite undoes the failing statement only

  void RowAtomically(const std::function<void()>& body) override {
    Savepoint sp(conn_.db(), "deltasync_apply_row");
    body();
    sp.Release();
  }

  void Hold(const HeldRow& row) override {
    Stmt s(conn_.db(), "INSERT OR REPLACE INTO deltasync_quarantine(tbl, key, changes, error, since_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)");
    s.BindText(1, row.table);
    s.BindBlob(2, row.key);
    s.BindText(3, row.changes);
    s.BindText(4, row.error);
    s.BindInt(5, row.since_ms);
    s.Run();
  }

  void Release(const std::string& table, const std::string& key) override {
    Stmt s(conn_.db(), "DELETE FROM deltasync_quarantine WHERE tbl = ?1 AND key = ?2");
    s.BindText(1, table);
    s.BindBlob(2, key);
    s.Run();
  }

  std::vector<std::pair<std::string, std::string>> PendingColumns() override {
    std::vector<std::pair<std::string, std::string>> out;
    Stmt s(conn_.db(), "SELECT DISTINCT tbl, col FROM deltasync_pending");
    while (s.Step()) out.emplace_back(std::string(s.Text(0)), std::string(s.Text(1)));
    return out;
  }

  std::vector<PendingCell> PendingCells(const std::string& table, const std::string& column) override {
    std::vector<PendingCell> out;
    Stmt s(conn_.db(), "SELECT key, change, since_ms FROM deltasync_pending WHERE tbl = ?1 AND col = ?2 ORDER BY key");
    s.BindText(1, table);
    s.BindText(2, column);
    while (s.Step()) out.push_back(PendingCell{table, column, std::string(s.Blob(0)), std::string(s.Text(1)), s.Int(2)});
    return out;
  }

  std::optional<PendingCell> FindPending(const std::string& table, const std::string& column,
                                         const std::string& key) override {
    if (!find_pending_)
      find_pending_.emplace(conn_.db(), "SELECT change, since_ms FROM deltasync_pending WHERE tbl = ?1 AND col = ?2 AND key = ?3");
    Stmt& s = *find_pending_;
    s.BindText(1, table);
    s.BindText(2, column);
    s.BindBlob(3, key);
    std::optional<PendingCell> out;
    if (s.Step()) out = PendingCell{table, column, key, std::string(s.Text(0)), s.Int(1)};
    s.Reset();
    return out;
  }

  void Keep(const PendingCell& cell) override {
    if (!keep_)
      keep_.emplace(conn_.db(), "INSERT OR REPLACE INTO deltasync_pending(tbl, col, key, change, since_ms)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)");
    Stmt& s = *keep_;
    s.BindText(1, cell.table);
    s.BindText(2, cell.column);
    s.BindBlob(3, cell.key);
    s.BindText(4, cell.change);
    s.BindInt(5, cell.since_ms);
    s.Run();
  }

  void DropPending(const std::string& table, const std::string& column) override {
    Stmt s(conn_.db(), "DELETE FROM deltasync_pending WHERE tbl = ?1 AND col = ?2");
    s.BindText(1, table);
    s.BindText(2, column);
    s.Run();
  }

  std::vector<GoneColumn> GoneColumns(int handle) override { return ReadGoneColumns(conn_.db(), tables_[handle].id); }

  uint64_t LocalHlc() override { return conn_.TxnHlc(); }

  void Atomically(const std::function<void()>& body) override {
    sqlite3* db = conn_.db();
    LastRowidGuard rowid(db);
    ScopedFlag applying(conn_.applying);
    Savepoint sp(db, "deltasync_apply");
    try {
      DeferForeignKeys fk(db);
      body();
      sp.Release();
    } catch (...) {
      conn_.ForgetSites();  // site rows inserted by the body were rolled back
      throw;
    }
  }

  std::unique_ptr<ApplyTable> OpenTable(int handle) override {
    const TableInfo& t = tables_[handle];
    t.RequireCaptured();
    return std::make_unique<SqliteApplyTable>(conn_, t);
  }

  uint32_t SiteOrdinal(const SiteId& site) override { return conn_.SiteOrdinal(site); }
  const SiteId& SiteOf(uint32_t ordinal) override { return conn_.SiteOf(ordinal); }
  int64_t NextVersion() override { return conn_.NextVersion(); }

  void ObserveClock(uint64_t max_hlc) override {
    conn_.clock().Observe(max_hlc);
    if (conn_.InTxn()) conn_.RefreshTxnHlc();  // else the next transaction starts past it
  }

 private:
  Conn& conn_;
  bool loaded_ = false;
  std::vector<TableInfo> tables_;
  std::optional<Stmt> find_pending_, keep_;  // per kept cell
};

}  // namespace

ApplyResult sqlite::ApplyPayload(Conn& conn, const Payload& p) {
  conn.EnsureSchema();
  GuardTracePause pause(conn);  // a statement or two per row, each traced otherwise
  SqliteApply port(conn);
  return deltasync::ApplyPayload(port, p);
}

void FnApply(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    int type = sqlite3_value_type(argv[0]);
    if (type != SQLITE_TEXT && type != SQLITE_BLOB)
      throw Error(ErrorCode::kInvalidArgument, "deltasync_apply(payload) expects the payload as text");
    std::string_view text(static_cast<const char*>(sqlite3_value_blob(argv[0])), sqlite3_value_bytes(argv[0]));
    Payload p = DecodeJson(text);  // fully validated before anything is touched
    ApplyResult r = ApplyPayload(conn, p);
    ResultText(ctx, ApplyResultJson(r, conn.SafeVersion()).dump());
  });
}

// deltasync_quarantine(): the rows set aside because a constraint refused them.
void FnQuarantine(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    conn.EnsureSchema();
    SqliteApply port(conn);
    ResultText(ctx, QuarantineDocument(port.HeldRows()).dump());
  });
}

}  // namespace deltasync
