// deltasync_enable / deltasync_disable: catalog checks, the shadow table and the triggers.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/row_clocks.hpp"
#include "common/update_masks.hpp"
#include "common/schema_rules.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;

// What the catalog says about a table a user names.
struct CatalogTable {
  std::string name;  // as the catalog spells it
  std::vector<std::string> pk;
  std::vector<std::string> pk_collations;
  std::vector<std::string> cols;
  bool rowid_alias = false;  // a single INTEGER PRIMARY KEY: the key is the rowid
  std::vector<ColumnPolicy> policies;  // by column, as deltasync_columns holds them (set before CreateTriggers)
};

bool IsInternalName(const std::string& n) {
  auto lower = n;
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return lower.rfind("sqlite_", 0) == 0 || lower.rfind("deltasync_", 0) == 0 ||
         lower.find("__deltasync_") != std::string::npos;
}

std::optional<CatalogTable> LookUpCatalog(sqlite3* db, const std::string& requested) {
  Stmt s(db, "SELECT name, type, sql FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE"
             " AND type IN ('table', 'view')");
  s.BindText(1, requested);
  if (!s.Step()) return std::nullopt;
  CatalogTable t;
  t.name = std::string(s.Text(0));
  std::string type(s.Text(1)), sql(s.Text(2));
  if (type == "view")
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is a view; only tables can be tracked");
  if (sql.size() >= 14 && sqlite3_strnicmp(sql.c_str(), "CREATE VIRTUAL", 14) == 0)
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is a virtual table; only ordinary tables can be tracked");
  if (IsInternalName(t.name))
    throw Error(ErrorCode::kInvalidArgument, "\"" + t.name + "\" is an internal table and cannot be tracked");

  // table_xinfo lists generated columns too (hidden 2 and 3): they are derived, never synced.
  Stmt cols(db, "SELECT name, pk, hidden, upper(type) FROM pragma_table_xinfo(?1) ORDER BY cid");
  cols.BindText(1, t.name);
  std::vector<std::pair<int64_t, std::string>> pk;
  std::string pk_type;
  while (cols.Step()) {
    std::string col(cols.Text(0));
    int64_t pk_pos = cols.Int(1), hidden = cols.Int(2);
    if (hidden != 0) continue;
    if (pk_pos > 0) {
      pk.emplace_back(pk_pos, col);
      pk_type = std::string(cols.Text(3));
    } else {
      t.cols.push_back(col);
    }
  }
  std::sort(pk.begin(), pk.end());
  for (auto& p : pk) t.pk.push_back(p.second);
  if (t.pk.empty())
    throw Error(ErrorCode::kInvalidArgument, "table \"" + t.name +
                                                 "\" has no primary key; deltasync needs one to tell rows apart across sites");
  for (const auto& c : t.pk) {
    const char* coll = nullptr;
    if (sqlite3_table_column_metadata(db, "main", t.name.c_str(), c.c_str(), nullptr, &coll, nullptr, nullptr,
                                      nullptr) != SQLITE_OK)
      ThrowSqlite(db, "reading the key of \"" + t.name + "\"");
    t.pk_collations.push_back(coll ? coll : "BINARY");
  }
  // An INTEGER PRIMARY KEY is the rowid unless the table is WITHOUT ROWID (which has a
  // primary-key index) or the key is declared DESC (which also gets one).
  if (t.pk.size() == 1 && pk_type == "INTEGER") {
    Stmt idx(db, "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'");
    idx.BindText(1, t.name);
    t.rowid_alias = idx.Step() && idx.Int(0) == 0;
  }
  return t;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) out += (k ? sep : "") + parts[k];
  return out;
}

// The key values of OLD or NEW, as the shadow table's key columns take them. A NULL key
// (which SQLite allows in some rowid tables) is refused with a deltasync error.
std::vector<std::string> KeyValues(const CatalogTable& t, const char* row) {
  std::vector<std::string> v;
  for (const auto& c : t.pk) {
    std::string ref = std::string(row) + "." + QuoteIdent(c);
    v.push_back(t.rowid_alias ? ref : "coalesce(" + ref + ", deltasync__null_key())");
  }
  return v;
}

std::string KeyMatch(const CatalogTable& t, const char* row) {
  std::vector<std::string> parts;
  for (size_t k = 0; k < t.pk.size(); ++k)
    parts.push_back(ShadowKeyColumn(k) + " = " + row + "." + QuoteIdent(t.pk[k]));
  return Join(parts, " AND ");
}

// "deltasync__ne(OLD."a", NEW."a") OR ..." over the key columns.
std::string KeyChangedExpr(const CatalogTable& t) {
  std::vector<std::string> parts;
  for (const auto& c : t.pk) parts.push_back("deltasync__ne(OLD." + QuoteIdent(c) + ", NEW." + QuoteIdent(c) + ")");
  return Join(parts, " OR ");
}

// One mask expression per group of kColumnsPerMask non-key columns: bit k set when column k changed.
std::vector<std::string> MaskExprs(const CatalogTable& t) {
  std::vector<std::string> masks;
  for (size_t start = 0; start < t.cols.size(); start += kColumnsPerMask) {
    std::vector<std::string> bits;
    for (size_t k = start; k < t.cols.size() && k < start + kColumnsPerMask; ++k) {
      std::string q = QuoteIdent(t.cols[k]);
      std::string ne = "deltasync__ne(OLD." + q + ", NEW." + q + ")";
      bits.push_back(k == start ? ne : "(" + ne + " << " + std::to_string(k - start) + ")");
    }
    masks.push_back("(" + Join(bits, " | ") + ")");
  }
  return masks;
}

// Upserts the shadow row of a key that (re)appears (the causal length becomes odd, every
// column is written now: shared clock, no extras) or disappears (it becomes even). In a table
// with a counter, an insert over a live row (INSERT OR REPLACE, which runs no delete trigger)
// starts a new life, as the delete and insert it is: the contributions of the old life end.
std::string UpsertBody(const CatalogTable& t, const char* row, bool appears) {
  std::string cl = !appears ? "cl + (cl & 1)" : AnyPolicy(t.policies) ? "cl + 1 + (cl & 1)" : "cl + 1 - (cl & 1)";
  return "INSERT INTO " + QuoteIdent(MetaTableName(t.name)) + "(" + ShadowKeyList(t.pk.size()) +
         ", cl, ver, hlc, site, clk) VALUES (" + Join(KeyValues(t, row), ", ") + ", " + (appears ? "1" : "2") +
         ", deltasync__ver(), deltasync__hlc(), 0, NULL) ON CONFLICT(" + ShadowKeyList(t.pk.size()) +
         ") DO UPDATE SET cl = " + cl + ", ver = excluded.ver, hlc = excluded.hlc, site = 0, clk = NULL;";
}

void CreateShadowTable(sqlite3* db, const CatalogTable& t) {
  std::string cols;
  for (size_t k = 0; k < t.pk.size(); ++k) {
    // The key compares as the base table's key does. BINARY is left implicit: SQLite then
    // compares keys on its fast path.
    std::string coll = t.pk_collations[k];
    cols += ShadowKeyColumn(k) + (t.rowid_alias ? " INTEGER PRIMARY KEY" : " NOT NULL") +
            (t.rowid_alias || sqlite3_stricmp(coll.c_str(), "BINARY") == 0 ? "" : " COLLATE " + QuoteIdent(coll)) + ", ";
  }
  cols += "cl INTEGER NOT NULL, ver INTEGER NOT NULL, hlc INTEGER NOT NULL, site INTEGER NOT NULL, clk BLOB";
  std::string sql = "CREATE TABLE " + QuoteIdent(MetaTableName(t.name)) + "(" + cols;
  sql += t.rowid_alias ? ")" : ", PRIMARY KEY (" + ShadowKeyList(t.pk.size()) + ")) WITHOUT ROWID";
  Exec(db, sql);
}

// A counter holds an integer: a statement writing anything else (NULL included) into one is
// refused whole. "" for a table without counters.
std::string CounterCheck(const CatalogTable& t) {
  std::vector<std::string> bad;
  for (size_t k = 0; k < t.cols.size(); ++k)
    if (PolicyAt(t.policies, k) == ColumnPolicy::kCounter) bad.push_back("typeof(NEW." + QuoteIdent(t.cols[k]) + ") <> 'integer'");
  if (bad.empty()) return "";
  std::string msg = "deltasync: a counter column of table \"" + t.name + "\" holds integers only (not NULL, text or real)";
  std::string literal = "'";
  for (char c : msg) literal += c == '\'' ? std::string("''") : std::string(1, c);
  literal += "'";
  return "SELECT RAISE(ABORT, " + literal + ") WHERE " + Join(bad, " OR ") + "; ";
}

// A SQL string literal.
std::string Literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A json column holds the text of a JSON object: a statement writing anything else into one
// is refused whole (deltasync__json_check). "" for a table without json columns.
std::string JsonCheck(const CatalogTable& t) {
  std::string out;
  for (size_t k = 0; k < t.cols.size(); ++k)
    if (PolicyAt(t.policies, k) == ColumnPolicy::kJson)
      out += "SELECT deltasync__json_check(" + Literal(t.name) + ", " + Literal(t.cols[k]) + ", NEW." +
             QuoteIdent(t.cols[k]) + "); ";
  return out;
}

// Every site stores a json column's canonical text (common/json_value): a local write in any
// other form is rewritten to it, after capture, so the rows of all sites are the same bytes.
std::string JsonCanonicalize(const CatalogTable& t) {
  std::vector<std::string> sets, differs;
  for (size_t k = 0; k < t.cols.size(); ++k)
    if (PolicyAt(t.policies, k) == ColumnPolicy::kJson) {
      std::string q = QuoteIdent(t.cols[k]);
      sets.push_back(q + " = deltasync__json_canon(" + q + ")");
      differs.push_back("deltasync__ne(" + q + ", deltasync__json_canon(" + q + "))");
    }
  if (sets.empty()) return "";
  std::vector<std::string> key;
  for (const auto& c : t.pk) key.push_back(QuoteIdent(c) + " = NEW." + QuoteIdent(c));
  return " UPDATE " + QuoteIdent(t.name) + " SET " + Join(sets, ", ") + " WHERE " + Join(key, " AND ") + " AND (" +
         Join(differs, " OR ") + ");";
}

void CreateTriggers(sqlite3* db, const CatalogTable& t) {
  std::string q_name = QuoteIdent(t.name), q_meta = QuoteIdent(MetaTableName(t.name));
  auto trig = [&](const char* suffix) { return QuoteIdent(TriggerName(t.name, suffix)); };
  std::string check = CounterCheck(t) + JsonCheck(t), canon = JsonCanonicalize(t);
  // The json columns' (position, OLD, NEW) for deltasync__clk_json.
  std::vector<std::string> json_args;
  for (size_t k = 0; k < t.cols.size(); ++k)
    if (PolicyAt(t.policies, k) == ColumnPolicy::kJson)
      json_args.push_back(std::to_string(k) + ", OLD." + QuoteIdent(t.cols[k]) + ", NEW." + QuoteIdent(t.cols[k]));
  std::string sql;
  sql += "CREATE TRIGGER " + trig("ins") + " AFTER INSERT ON " + q_name +
         " WHEN deltasync__capturing() BEGIN " + check + UpsertBody(t, "NEW", true) + canon + " END;";
  sql += "CREATE TRIGGER " + trig("del") + " AFTER DELETE ON " + q_name +
         " WHEN deltasync__capturing() BEGIN " + UpsertBody(t, "OLD", false) + " END;";
  // A key change is a delete of the old key and an insert of the new one.
  sql += "CREATE TRIGGER " + trig("upk") + " AFTER UPDATE ON " + q_name + " WHEN deltasync__capturing() AND (" +
         KeyChangedExpr(t) + ") BEGIN " + check + UpsertBody(t, "OLD", false) + " " + UpsertBody(t, "NEW", true) +
         canon + " END;";
  if (!t.cols.empty()) {
    std::vector<std::string> masks = MaskExprs(t);
    sql += "CREATE TRIGGER " + trig("upd") + " AFTER UPDATE ON " + q_name +
           " WHEN deltasync__capturing() AND NOT (" + KeyChangedExpr(t) + ") BEGIN " + check + "UPDATE " + q_meta +
           " SET ver = deltasync__ver(), clk = " +
           (json_args.empty() ? "deltasync__clk_set(hlc, site, clk, cl, ver, "
                              : "deltasync__clk_json(hlc, site, clk, cl, ver, " + std::to_string(json_args.size()) +
                                    ", " + Join(json_args, ", ") + ", ") +
           Join(masks, ", ") + ") WHERE " + KeyMatch(t, "NEW") + " AND (" + Join(masks, " | ") + ") <> 0;" + canon +
           " END;";
  }
  Exec(db, sql);
}

void DropTriggers(sqlite3* db, const std::string& table) {
  for (const char* s : {"ins", "del", "upk", "upd"})
    Exec(db, "DROP TRIGGER IF EXISTS " + QuoteIdent(TriggerName(table, s)));
}

// Existing rows become changes: each gets a shadow row written now by this site.
int64_t Backfill(sqlite3* db, const CatalogTable& t) {
  std::vector<std::string> pk;
  for (const auto& c : t.pk) {
    std::string ref = "b." + QuoteIdent(c);
    pk.push_back(t.rowid_alias ? ref : "coalesce(" + ref + ", deltasync__null_key())");
  }
  // Only rows without a shadow row take a version: enabling again changes nothing.
  std::vector<std::string> match;
  for (size_t k = 0; k < t.pk.size(); ++k)
    match.push_back("m." + ShadowKeyColumn(k) + " = b." + QuoteIdent(t.pk[k]));
  Exec(db, "INSERT INTO " + QuoteIdent(MetaTableName(t.name)) + "(" + ShadowKeyList(t.pk.size()) +
               ", cl, ver, hlc, site) SELECT " + Join(pk, ", ") + ", 1, deltasync__ver(), deltasync__hlc(), 0 FROM " +
               QuoteIdent(t.name) + " AS b WHERE NOT EXISTS (SELECT 1 FROM " + QuoteIdent(MetaTableName(t.name)) +
               " AS m WHERE " + Join(match, " AND ") + ")");
  return sqlite3_changes(db);
}

// Reconciles the keys of a table whose triggers were gone (it was dropped and created
// again, or rebuilt): shadow rows of keys the base table no longer holds become deletes.
// Rows it still holds keep their clocks: written again with a new clock, each would
// overwrite every later write other sites made to it. Returns the rows turned into deletes.
int64_t Reconcile(sqlite3* db, const CatalogTable& t) {
  std::string q_meta = QuoteIdent(MetaTableName(t.name));
  std::vector<std::string> match;  // no alias on the UPDATE target: SQLite before 3.33 has none
  for (size_t k = 0; k < t.pk.size(); ++k)
    match.push_back("b." + QuoteIdent(t.pk[k]) + " = " + q_meta + "." + ShadowKeyColumn(k));
  std::string held = "EXISTS (SELECT 1 FROM " + QuoteIdent(t.name) + " AS b WHERE " + Join(match, " AND ") + ")";
  Exec(db, "UPDATE " + q_meta +
               " SET cl = cl + 1, ver = deltasync__ver(), hlc = deltasync__hlc(), site = 0, clk = NULL"
               " WHERE (cl & 1) = 1 AND NOT " + held);
  return sqlite3_changes(db);
}

// Every live row gets a new clock from this site, as if each were written again now: what
// this site holds wins over every change it has not seen. For a table replaced by new
// content (its old rows' clocks describe values it no longer holds).
int64_t Restamp(sqlite3* db, const CatalogTable& t) {
  Exec(db, "UPDATE " + QuoteIdent(MetaTableName(t.name)) +
               " SET ver = deltasync__ver(), hlc = deltasync__hlc(), site = 0, clk = NULL WHERE (cl & 1) = 1");
  return sqlite3_changes(db);
}

// Moves the per-column clocks of every shadow row from the old column positions to the
// new ones (to[i]: the new position of old column i, or -1 when it is gone).
void RemapClocks(sqlite3* db, const CatalogTable& t, const std::vector<int>& to) {
  std::string q_meta = QuoteIdent(MetaTableName(t.name));
  std::vector<std::pair<std::vector<Value>, std::string>> rewrites;
  {
    Stmt s(db, "SELECT " + ShadowKeyList(t.pk.size()) + ", hlc, site, clk FROM " + q_meta + " WHERE clk IS NOT NULL");
    int nk = static_cast<int>(t.pk.size());
    std::vector<int64_t> to64(to.begin(), to.end());
    while (s.Step()) {
      RowClocks old = RowClocks::Decode(static_cast<uint64_t>(s.Int(nk)), static_cast<uint32_t>(s.Int(nk + 1)),
                                        s.Blob(nk + 2));
      RowClocks moved = RemapColumns(old, to64);
      std::vector<Value> key;
      for (int k = 0; k < nk; ++k) key.push_back(s.Val(k));
      rewrites.emplace_back(std::move(key), moved.EncodeExtras());
    }
  }
  Stmt put(db, "UPDATE " + q_meta + " SET clk = ?1 WHERE " + ShadowKeyWhere(t.pk.size(), 2));
  for (auto& [key, extras] : rewrites) {
    if (extras.empty()) put.Bind(1, Value::Null());
    else put.BindBlob(1, extras);
    for (size_t k = 0; k < key.size(); ++k) put.Bind(static_cast<int>(k + 2), key[k]);
    put.Run();
  }
}

// Records that this site no longer has column `name` of table `table_id`: dropped
// (`now_named` empty) or renamed to `now_named`.
void RecordGoneColumn(sqlite3* db, int64_t table_id, const std::string& name, const std::string& now_named) {
  Stmt s(db, "INSERT OR REPLACE INTO deltasync_gone_columns(table_id, name, now_named) VALUES (?1, ?2, ?3)");
  s.BindInt(1, table_id);
  s.BindText(2, name);
  if (!now_named.empty()) s.BindText(3, now_named);
  s.Run();
}

// Column `name` of table `table_id` is here (again): it is no longer gone.
void ForgetGoneColumn(sqlite3* db, int64_t table_id, const std::string& name) {
  Stmt s(db, "DELETE FROM deltasync_gone_columns WHERE table_id = ?1 AND name = ?2");
  s.BindInt(1, table_id);
  s.BindText(2, name);
  s.Run();
}

// The value a column added to `table` gives existing rows, read from its declared default
// (nullopt: a default deltasync cannot evaluate alone, so every value counts as it).
std::optional<Value> AddedColumnDefault(sqlite3* db, const std::string& table, const std::string& column) {
  Stmt s(db, "SELECT dflt_value FROM pragma_table_xinfo(?1) WHERE name = ?2");
  s.BindText(1, table);
  s.BindText(2, column);
  if (!s.Step() || s.IsNull(0)) return Value::Null();
  std::string expr(s.Text(0));
  try {
    Stmt e(db, "SELECT (" + expr + ")");  // the application's own schema text, as its CREATE TABLE has it
    if (e.Step()) return e.Val(0);
  } catch (const Error&) {
  }
  return std::nullopt;
}

// Columns `added` (positions in t.cols) were added to tracked table `t`: in every live row
// the value they hold was written by no one (common/row_clocks MarkAddedColumns): a NULL gets
// no version, a value the smallest real clock and a new local version, so it travels. After ALTER
// TABLE ADD COLUMN (not `rebuilt`), a value other than the column's default can only come
// from a local write made before deltasync saw the column: it becomes a local change now,
// so it is not lost. After a rebuild the copy put whatever the migration chose there, so
// every value is taken as written by no one (a real clock would overwrite other sites'
// later writes).
void FollowAddedColumns(Conn& conn, const CatalogTable& t, const std::vector<uint32_t>& added, bool rebuilt) {
  sqlite3* db = conn.db();
  // A numeric value read back for a default written as text ('5' in an INTEGER column).
  Stmt same(db, "SELECT typeof(?1) IN ('integer', 'real') AND typeof(?2) = 'text' AND ?1 = CAST(?2 AS NUMERIC)");
  auto is_default = [&](const Value& v, const std::optional<Value>& d) {
    if (rebuilt || !d || v == *d) return true;
    same.Bind(1, v);
    same.Bind(2, *d);
    bool eq = same.Step() && same.Int(0) != 0;
    same.Reset();
    return eq;
  };
  std::vector<std::optional<Value>> dflt;
  std::string select = "SELECT " + ShadowKeyList(t.pk.size()) + ", cl, ver, hlc, site, clk";
  for (uint32_t c : added) {
    dflt.push_back(AddedColumnDefault(db, t.name, t.cols[c]));
    select += ", (SELECT b." + QuoteIdent(t.cols[c]) + " FROM " + QuoteIdent(t.name) + " AS b WHERE ";
    for (size_t k = 0; k < t.pk.size(); ++k)
      select += (k ? " AND b." : "b.") + QuoteIdent(t.pk[k]) + " = m." + ShadowKeyColumn(k);
    select += ")";
  }
  select += " FROM " + QuoteIdent(MetaTableName(t.name)) + " AS m WHERE (m.cl & 1) = 1";
  struct Rewrite {
    std::vector<Value> key;
    int64_t ver;
    std::string extras;
  };
  std::vector<Rewrite> rewrites;
  {
    Stmt s(db, select);
    int nk = static_cast<int>(t.pk.size());
    while (s.Step()) {
      int64_t cl = s.Int(nk), ver = s.Int(nk + 1);
      RowClocks clocks = RowClocks::Decode(static_cast<uint64_t>(s.Int(nk + 2)), static_cast<uint32_t>(s.Int(nk + 3)),
                                           s.Blob(nk + 4));
      clocks.Resolve(ver, cl);
      std::vector<uint32_t> untouched, valued, written;
      for (size_t a = 0; a < added.size(); ++a) {
        Value v = s.Val(nk + 5 + static_cast<int>(a));
        if (!is_default(v, dflt[a])) {
          written.push_back(added[a]);
        } else {
          untouched.push_back(added[a]);
          if (!v.IsNull()) valued.push_back(added[a]);
        }
      }
      int64_t new_ver = written.empty() && valued.empty() ? ver : conn.NextVersion();
      MarkAddedColumns(clocks, untouched, valued, new_ver, cl);
      if (!written.empty()) {
        for (uint32_t c : written)
          clocks.Set(c, ColClock{std::max<uint64_t>(conn.TxnHlc(), clocks.Get(c).hlc + 1), 0, new_ver, cl});
      }
      clocks.Normalize(new_ver, cl);
      std::vector<Value> key;
      for (int k = 0; k < nk; ++k) key.push_back(s.Val(k));
      rewrites.push_back(Rewrite{std::move(key), new_ver, clocks.EncodeExtras()});
    }
  }
  Stmt put(db, "UPDATE " + QuoteIdent(MetaTableName(t.name)) + " SET ver = ?1, clk = ?2 WHERE " +
                   ShadowKeyWhere(t.pk.size(), 3));
  for (Rewrite& r : rewrites) {
    put.BindInt(1, r.ver);
    if (r.extras.empty()) put.Bind(2, Value::Null());
    else put.BindBlob(2, r.extras);
    for (size_t k = 0; k < r.key.size(); ++k) put.Bind(static_cast<int>(k + 3), r.key[k]);
    put.Run();
  }
}

}  // namespace

std::string TableArg(sqlite3_value* v, const char* fn) {
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, std::string(fn) + "(table) expects a table name as text");
  return std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)), sqlite3_value_bytes(v));
}

void FnEnable(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    sqlite3* db = conn.db();
    std::string requested = TableArg(argv[0], "deltasync_enable");
    EnableOptions options;
    if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL) {
      if (sqlite3_value_type(argv[1]) != SQLITE_TEXT)
        throw Error(ErrorCode::kInvalidArgument, "deltasync_enable(table, options) expects the options as JSON text");
      options = ParseEnableOptions(
          std::string_view(reinterpret_cast<const char*>(sqlite3_value_text(argv[1])), sqlite3_value_bytes(argv[1])));
    }
    conn.EnsureSchema();
    conn.LocalSite();
    auto cat = LookUpCatalog(db, requested);
    if (!cat) throw Error(ErrorCode::kInvalidArgument, "no such table: \"" + requested + "\"");
    LastRowidGuard rowid(db);
    Savepoint sp(db, "deltasync_enable");
    Json result = {{"table", cat->name}};
    TableReprs reprs;
    if (auto known = conn.FindTable(cat->name)) {
      bool prefix = known->pk == cat->pk && known->cols.size() <= cat->cols.size() &&
                    std::equal(known->cols.begin(), known->cols.end(), cat->cols.begin());
      if (!prefix)
        throw Error(ErrorCode::kInvalidArgument,
                    "table \"" + cat->name +
                        "\" changed in a way deltasync cannot follow (key or existing columns differ from "
                        "when it was enabled); call deltasync_disable and deltasync_enable again");
      bool added = known->cols.size() < cat->cols.size();
      if (added || known->renamed) {
        Stmt up(db, "UPDATE deltasync_tables SET pk = ?1, columns = ?2 WHERE id = ?3");
        std::string pk = Json(cat->pk).dump(), cols = Json(cat->cols).dump();
        up.BindText(1, pk);
        up.BindText(2, cols);
        up.BindInt(3, known->id);
        up.Run();
        SaveTableReprs(db, known->id, cat->pk, cat->cols, known->reprs, known->policies);  // under the new names
      }
      reprs = EnableTableReprs(db, cat->name, cat->pk, cat->cols, &*known, options.columns);
      cat->policies = EnableTablePolicies(db, cat->name, cat->pk, cat->cols, &*known, options.columns, reprs);
      if (options.restamp && AnyPolicy(cat->policies))
        throw Error(ErrorCode::kInvalidArgument,
                    "table \"" + cat->name + "\" has a counter column: restamp would make this site's values "
                    "whole contributions on top of every other site's (docs/policies.md)");
      // Re-creating the triggers also repairs a table whose triggers were dropped; rows
      // that vanished while nothing was capturing become deletes.
      DropTriggers(db, cat->name);
      CreateTriggers(db, *cat);
      result["changed"] = added || known->renamed || known->state != TableState::kTracked;
      result["reconciled"] = known->state == TableState::kNeedsEnable ? Reconcile(db, *cat) : 0;
      if (options.restamp) result["restamped"] = Restamp(db, *cat);
      result["backfilled"] = Backfill(db, *cat);
    } else {
      RefuseBookkeepingTable(cat->name, options);
      Stmt ins(db, "INSERT INTO deltasync_tables(name, pk, columns) VALUES (?1, ?2, ?3)");
      std::string pk = Json(cat->pk).dump(), cols = Json(cat->cols).dump();
      ins.BindText(1, cat->name);
      ins.BindText(2, pk);
      ins.BindText(3, cols);
      ins.Run();
      reprs = EnableTableReprs(db, cat->name, cat->pk, cat->cols, nullptr, options.columns);
      cat->policies = EnableTablePolicies(db, cat->name, cat->pk, cat->cols, nullptr, options.columns, reprs);
      CreateShadowTable(db, *cat);
      CreateTriggers(db, *cat);
      result["changed"] = true;
      result["backfilled"] = Backfill(db, *cat);
    }
    sp.Release();
    result["pk"] = cat->pk;
    result["columns"] = cat->cols;
    if (reprs.any || AnyPolicy(cat->policies))
      result["column_options"] = ColumnOptionsJson(cat->pk, cat->cols, reprs, cat->policies);
    ResultText(ctx, result.dump());
  });
}

void FnDisable(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    sqlite3* db = conn.db();
    std::string requested = TableArg(argv[0], "deltasync_disable");
    conn.EnsureSchema();
    auto known = conn.FindTable(requested);
    if (!known) {
      Stmt s(db, "SELECT name FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE AND type = 'table'");
      s.BindText(1, requested);
      if (!s.Step()) throw Error(ErrorCode::kInvalidArgument, "no such table: \"" + requested + "\"");
      ResultText(ctx, Json({{"table", std::string(s.Text(0))}, {"changed", false}}).dump());
      return;
    }
    Savepoint sp(db, "deltasync_disable");
    DropTriggers(db, known->name);
    Exec(db, "DROP TABLE IF EXISTS " + known->q_meta);
    DropTableReprs(db, known->id);
    Stmt del(db, "DELETE FROM deltasync_tables WHERE id = ?1");
    del.BindInt(1, known->id);
    del.Run();
    Stmt gone(db, "DELETE FROM deltasync_gone_columns WHERE table_id = ?1");
    gone.BindInt(1, known->id);
    gone.Run();
    Stmt kept(db, "DELETE FROM deltasync_pending WHERE tbl = ?1");
    kept.BindText(1, known->name);
    kept.Run();
    sp.Release();
    ResultText(ctx, Json({{"table", known->name}, {"changed", true}}).dump());
  });
}

bool RepairRebuiltTable(Conn& conn, const TableInfo& known) {
  sqlite3* db = conn.db();
  std::optional<CatalogTable> cat;
  try {
    cat = LookUpCatalog(db, known.name);
  } catch (const Error&) {
    return false;  // no longer a table deltasync can track: the caller reports it
  }
  if (!cat || cat->pk != known.pk) return false;  // a new key: only disable + enable can follow
  std::vector<int> to(known.cols.size(), -1);
  if (!known.policies.empty()) cat->policies.assign(cat->cols.size(), ColumnPolicy::kLww);
  bool same = known.cols == cat->cols;
  for (size_t i = 0; i < known.cols.size(); ++i)
    for (size_t j = 0; j < cat->cols.size(); ++j)
      if (known.cols[i] == cat->cols[j]) {
        to[i] = static_cast<int>(j);
        if (!known.policies.empty()) cat->policies[j] = PolicyAt(known.policies, i);  // policies follow their columns
      }
  if (!AnyPolicy(cat->policies)) cat->policies.clear();
  // Columns only appended (ADD COLUMN, or a rebuild that added some at the end): every
  // stored clock keeps its position, so no shadow row needs rewriting.
  bool moved = false;
  for (size_t i = 0; i < to.size(); ++i) moved |= to[i] != static_cast<int>(i);
  LastRowidGuard rowid(db);
  Savepoint sp(db, "deltasync_repair");
  if (!same) {
    if (moved) RemapClocks(db, *cat, to);
    // Dropped columns are remembered (their changes are ignored from now on, not kept);
    // added ones are no longer gone, and what existing rows hold there has no version.
    std::vector<uint32_t> added;
    for (size_t i = 0; i < to.size(); ++i)
      if (to[i] < 0) RecordGoneColumn(db, known.id, known.cols[i], "");
    for (size_t j = 0; j < cat->cols.size(); ++j)
      if (std::find(to.begin(), to.end(), static_cast<int>(j)) == to.end()) {
        ForgetGoneColumn(db, known.id, cat->cols[j]);
        added.push_back(static_cast<uint32_t>(j));
      }
    if (!added.empty()) FollowAddedColumns(conn, *cat, added, known.state == TableState::kNeedsEnable);
    Stmt up(db, "UPDATE deltasync_tables SET columns = ?1 WHERE id = ?2");
    std::string cols = Json(cat->cols).dump();
    up.BindText(1, cols);
    up.BindInt(2, known.id);
    up.Run();
    TableReprs moved_reprs = known.reprs;  // representations follow their columns
    moved_reprs.cols.assign(cat->cols.size(), ReprForm::kNone);
    for (size_t i = 0; i < to.size(); ++i)
      if (to[i] >= 0) moved_reprs.cols[static_cast<size_t>(to[i])] = known.reprs.Col(i);
    SaveTableReprs(db, known.id, cat->pk, cat->cols, moved_reprs, cat->policies);
  }
  DropTriggers(db, cat->name);
  CreateTriggers(db, *cat);
  Reconcile(db, *cat);
  Backfill(db, *cat);
  sp.Release();
  return true;
}

bool FollowTableRename(Conn& conn, const TableInfo& known, const std::string& new_name) {
  sqlite3* db = conn.db();
  {
    Stmt clash(db, "SELECT 1 FROM deltasync_tables WHERE name = ?1 COLLATE NOCASE AND id <> ?2");
    clash.BindText(1, new_name);
    clash.BindInt(2, known.id);
    if (clash.Step()) return false;
  }
  std::optional<CatalogTable> cat;
  try {
    cat = LookUpCatalog(db, new_name);
  } catch (const Error&) {
    return false;
  }
  if (!cat || cat->pk != known.pk) return false;
  LastRowidGuard rowid(db);
  Savepoint sp(db, "deltasync_rename");
  DropTriggers(db, known.name);
  Exec(db, "ALTER TABLE " + QuoteIdent(MetaTableName(known.name)) + " RENAME TO " + QuoteIdent(MetaTableName(cat->name)));
  Stmt up(db, "UPDATE deltasync_tables SET name = ?1 WHERE id = ?2");
  up.BindText(1, cat->name);
  up.BindInt(2, known.id);
  up.Run();
  sp.Release();
  // Columns added or moved by the same migration are followed as after a rebuild.
  TableInfo moved = known;
  moved.name = cat->name;
  return RepairRebuiltTable(conn, moved);
}

std::vector<GoneColumn> ReadGoneColumns(sqlite3* db, int64_t table_id) {
  std::vector<GoneColumn> out;
  Stmt s(db, "SELECT name, coalesce(now_named, '') FROM deltasync_gone_columns WHERE table_id = ?1");
  s.BindInt(1, table_id);
  while (s.Step()) out.push_back(GoneColumn{std::string(s.Text(0)), std::string(s.Text(1))});
  return out;
}

// The renamed non-key columns `cols` (positions) of every live row are sent again under
// their new names (RowClocks::Readopt): same clocks, a new local version. Without it a site
// that never knew the old name (created after the migration) would find the values only
// under it on the hub — kept forever, the rows incomplete.
void ResendColumns(Conn& conn, const TableInfo& t, const std::vector<uint32_t>& cols) {
  sqlite3* db = conn.db();
  std::vector<std::pair<std::vector<Value>, std::pair<int64_t, std::string>>> rewrites;
  {
    int nk = static_cast<int>(t.pk.size());
    Stmt s(db, "SELECT " + ShadowKeyList(t.pk.size()) + ", cl, ver, hlc, site, clk FROM " + t.q_meta +
                   " WHERE (cl & 1) = 1");
    while (s.Step()) {
      int64_t cl = s.Int(nk), ver = s.Int(nk + 1);
      RowClocks clocks = RowClocks::Decode(static_cast<uint64_t>(s.Int(nk + 2)), static_cast<uint32_t>(s.Int(nk + 3)),
                                           s.Blob(nk + 4));
      clocks.Resolve(ver, cl);
      int64_t now = conn.NextVersion();
      for (uint32_t c : cols) clocks.Readopt(c, now);
      clocks.Normalize(now, cl);
      std::vector<Value> key;
      for (int k = 0; k < nk; ++k) key.push_back(s.Val(k));
      rewrites.emplace_back(std::move(key), std::make_pair(now, clocks.EncodeExtras()));
    }
  }
  Stmt put(db, "UPDATE " + t.q_meta + " SET ver = ?1, clk = ?2 WHERE " + ShadowKeyWhere(t.pk.size(), 3));
  for (auto& [key, row] : rewrites) {
    put.BindInt(1, row.first);
    if (row.second.empty()) put.Bind(2, Value::Null());
    else put.BindBlob(2, row.second);
    for (size_t k = 0; k < key.size(); ++k) put.Bind(static_cast<int>(k + 3), key[k]);
    put.Run();
  }
}

bool PersistColumnRenames(Conn& conn, const TableInfo& known) {
  sqlite3* db = conn.db();
  LastRowidGuard rowid(db);
  Savepoint sp(db, "deltasync_renames");
  Stmt up(db, "UPDATE deltasync_tables SET pk = ?1, columns = ?2 WHERE id = ?3");
  std::string pk = Json(known.pk).dump(), cols = Json(known.cols).dump();
  up.BindText(1, pk);
  up.BindText(2, cols);
  up.BindInt(3, known.id);
  up.Run();
  SaveTableReprs(db, known.id, known.pk, known.cols, known.reprs, known.policies);  // under the new names
  std::vector<uint32_t> resend;
  for (const auto& [old_name, now] : known.renames) {
    ForgetGoneColumn(db, known.id, now);
    RecordGoneColumn(db, known.id, old_name, now);
    for (size_t c = 0; c < known.cols.size(); ++c)
      if (known.cols[c] == now) resend.push_back(static_cast<uint32_t>(c));
  }
  if (!resend.empty()) ResendColumns(conn, known, resend);
  sp.Release();
  return true;
}

}  // namespace deltasync
