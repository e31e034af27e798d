// deltasync_enable / deltasync_disable: catalog checks, the shadow table and the triggers.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;

// What the catalog says about a table a user names.
struct CatalogTable {
  std::string name;  // as the catalog spells it
  std::vector<std::string> pk;
  std::vector<std::string> cols;
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
  Stmt cols(db, "SELECT name, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid");
  cols.BindText(1, t.name);
  std::vector<std::pair<int64_t, std::string>> pk;
  while (cols.Step()) {
    std::string col(cols.Text(0));
    int64_t pk_pos = cols.Int(1), hidden = cols.Int(2);
    if (hidden != 0) continue;
    if (pk_pos > 0)
      pk.emplace_back(pk_pos, col);
    else
      t.cols.push_back(col);
  }
  std::sort(pk.begin(), pk.end());
  for (auto& p : pk) t.pk.push_back(p.second);
  if (t.pk.empty())
    throw Error(ErrorCode::kInvalidArgument, "table \"" + t.name +
                                                 "\" has no primary key; deltasync needs one to tell rows apart across sites");
  return t;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) out += (k ? sep : "") + parts[k];
  return out;
}

// "deltasync__key(OLD."a", OLD."b")"
std::string KeyExpr(const CatalogTable& t, const char* row) {
  std::vector<std::string> args;
  for (const auto& c : t.pk) args.push_back(std::string(row) + "." + QuoteIdent(c));
  return "deltasync__key(" + Join(args, ", ") + ")";
}

// "deltasync__ne(OLD."a", NEW."a") OR ..." over the key columns.
std::string KeyChangedExpr(const CatalogTable& t) {
  std::vector<std::string> parts;
  for (const auto& c : t.pk) parts.push_back("deltasync__ne(OLD." + QuoteIdent(c) + ", NEW." + QuoteIdent(c) + ")");
  return Join(parts, " OR ");
}

// One mask expression per group of 62 non-key columns: bit k set when column k changed.
std::vector<std::string> MaskExprs(const CatalogTable& t) {
  std::vector<std::string> masks;
  for (size_t start = 0; start < t.cols.size(); start += 62) {
    std::vector<std::string> bits;
    for (size_t k = start; k < t.cols.size() && k < start + 62; ++k) {
      std::string q = QuoteIdent(t.cols[k]);
      std::string ne = "deltasync__ne(OLD." + q + ", NEW." + q + ")";
      bits.push_back(k == start ? ne : "(" + ne + " << " + std::to_string(k - start) + ")");
    }
    masks.push_back("(" + Join(bits, " | ") + ")");
  }
  return masks;
}

// Upserts the shadow row for a key that (re)appears: the causal length becomes odd and
// every column is written now.
std::string InsertBody(const std::string& q_meta, const std::string& key) {
  return "INSERT INTO " + q_meta + "(pk, cl, ver, clk) VALUES (" + key +
         ", 1, deltasync__ver(), deltasync__clk_new(1)) ON CONFLICT(pk) DO UPDATE SET"
         " cl = cl + 1 - (cl & 1), ver = excluded.ver, clk = deltasync__clk_new(cl + 1 - (cl & 1));";
}

// Upserts the shadow row for a key that disappears: the causal length becomes even.
std::string DeleteBody(const std::string& q_meta, const std::string& key) {
  return "INSERT INTO " + q_meta + "(pk, cl, ver, clk) VALUES (" + key +
         ", 2, deltasync__ver(), deltasync__clk_new(2)) ON CONFLICT(pk) DO UPDATE SET"
         " cl = cl + (cl & 1), ver = excluded.ver, clk = deltasync__clk_new(cl + (cl & 1));";
}

void CreateTriggers(sqlite3* db, const CatalogTable& t) {
  std::string q_name = QuoteIdent(t.name), q_meta = QuoteIdent(MetaTableName(t.name));
  auto trig = [&](const char* suffix) { return QuoteIdent(TriggerName(t.name, suffix)); };
  std::string sql;
  sql += "CREATE TRIGGER " + trig("ins") + " AFTER INSERT ON " + q_name +
         " WHEN deltasync__capturing() BEGIN " + InsertBody(q_meta, KeyExpr(t, "NEW")) + " END;";
  sql += "CREATE TRIGGER " + trig("del") + " AFTER DELETE ON " + q_name +
         " WHEN deltasync__capturing() BEGIN " + DeleteBody(q_meta, KeyExpr(t, "OLD")) + " END;";
  // A key change is a delete of the old key and an insert of the new one.
  sql += "CREATE TRIGGER " + trig("upk") + " AFTER UPDATE ON " + q_name + " WHEN deltasync__capturing() AND (" +
         KeyChangedExpr(t) + ") BEGIN " + DeleteBody(q_meta, KeyExpr(t, "OLD")) + " " +
         InsertBody(q_meta, KeyExpr(t, "NEW")) + " END;";
  if (!t.cols.empty()) {
    std::vector<std::string> masks = MaskExprs(t);
    std::string any = "(" + Join(masks, " | ") + ") <> 0";
    sql += "CREATE TRIGGER " + trig("upd") + " AFTER UPDATE ON " + q_name +
           " WHEN deltasync__capturing() AND NOT (" + KeyChangedExpr(t) + ") BEGIN INSERT INTO " + q_meta +
           "(pk, cl, ver, clk) VALUES (" + KeyExpr(t, "NEW") +
           ", 1, deltasync__ver(), deltasync__clk_new(1)) ON CONFLICT(pk) DO UPDATE SET ver = excluded.ver,"
           " clk = deltasync__clk_set(clk, cl, ver, " + Join(masks, ", ") + ") WHERE " + any + "; END;";
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
  for (const auto& c : t.pk) pk.push_back(QuoteIdent(c));
  Exec(db, "INSERT INTO " + QuoteIdent(MetaTableName(t.name)) +
               "(pk, cl, ver, clk) SELECT deltasync__key(" + Join(pk, ", ") +
               "), 1, deltasync__ver(), deltasync__clk_new(1) FROM " + QuoteIdent(t.name) +
               " WHERE true ON CONFLICT(pk) DO NOTHING");
  return sqlite3_changes(db);
}

Json TablesJsonList(const std::vector<std::string>& v) { return Json(v); }

}  // namespace

std::string TableArg(sqlite3_value* v, const char* fn) {
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, std::string(fn) + "(table) expects a table name as text");
  return std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)), sqlite3_value_bytes(v));
}

void FnEnable(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    sqlite3* db = conn.db();
    std::string requested = TableArg(argv[0], "deltasync_enable");
    conn.EnsureSchema();
    conn.LocalSite();
    auto cat = LookUpCatalog(db, requested);
    if (!cat) throw Error(ErrorCode::kInvalidArgument, "no such table: \"" + requested + "\"");
    LastRowidGuard rowid(db);
    Savepoint sp(db, "deltasync_enable");
    Json result = {{"table", cat->name}};
    if (auto known = conn.FindTable(cat->name)) {
      bool prefix = known->pk == cat->pk && known->cols.size() <= cat->cols.size() &&
                    std::equal(known->cols.begin(), known->cols.end(), cat->cols.begin());
      if (!prefix)
        throw Error(ErrorCode::kInvalidArgument,
                    "table \"" + cat->name +
                        "\" changed in a way deltasync cannot follow (key or existing columns differ from "
                        "when it was enabled); call deltasync_disable and deltasync_enable again");
      bool added = known->cols.size() < cat->cols.size();
      if (added) {
        Stmt up(db, "UPDATE deltasync_tables SET columns = ?1 WHERE id = ?2");
        std::string cols = TablesJsonList(cat->cols).dump();
        up.BindText(1, cols);
        up.BindInt(2, known->id);
        up.Run();
      }
      // Re-creating the triggers also repairs a table whose triggers were dropped.
      DropTriggers(db, cat->name);
      CreateTriggers(db, *cat);
      result["changed"] = added;
      result["backfilled"] = Backfill(db, *cat);
    } else {
      Stmt ins(db, "INSERT INTO deltasync_tables(name, pk, columns) VALUES (?1, ?2, ?3)");
      std::string pk = TablesJsonList(cat->pk).dump(), cols = TablesJsonList(cat->cols).dump();
      ins.BindText(1, cat->name);
      ins.BindText(2, pk);
      ins.BindText(3, cols);
      ins.Run();
      std::string meta = MetaTableName(cat->name);
      Exec(db, "CREATE TABLE " + QuoteIdent(meta) +
                   "(pk BLOB NOT NULL PRIMARY KEY, cl INTEGER NOT NULL, ver INTEGER NOT NULL, clk BLOB NOT NULL)"
                   " WITHOUT ROWID;"
                   "CREATE INDEX " + QuoteIdent(meta + "_ver") + " ON " + QuoteIdent(meta) + "(ver);");
      CreateTriggers(db, *cat);
      result["changed"] = true;
      result["backfilled"] = Backfill(db, *cat);
    }
    sp.Release();
    result["pk"] = cat->pk;
    result["columns"] = cat->cols;
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
    // Keep db_version monotonic after this table's versions are gone.
    conn.SetSetting("db_version_floor", conn.CurrentDbVersion());
    DropTriggers(db, known->name);
    Exec(db, "DROP TABLE IF EXISTS " + known->q_meta);
    Stmt del(db, "DELETE FROM deltasync_tables WHERE id = ?1");
    del.BindInt(1, known->id);
    del.Run();
    sp.Release();
    ResultText(ctx, Json({{"table", known->name}, {"changed", true}}).dump());
  });
}

}  // namespace deltasync
