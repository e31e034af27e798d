// deltasync_checksum([table]) on SQLite: each tracked table's live rows read once, in wire
// form (keys and values through the column representations, as a collect sends them), into
// common/checksum's digest. One statement per table, stepped: memory holds one row.
#include <string>
#include <utility>
#include <vector>

#include "common/checksum.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

namespace {

// The digest of one tracked table's rows as they are now.
TableDigest DigestTable(Conn& conn, const TableInfo& t) {
  std::string sql = "SELECT ";
  for (size_t k = 0; k < t.pk.size(); ++k) sql += (k ? ", " : "") + QuoteIdent(t.pk[k]);
  for (const std::string& c : t.cols) sql += ", " + QuoteIdent(c);
  sql += " FROM " + t.q_name;
  Stmt q(conn.db(), sql);
  SqliteRepr repr(t);
  const int nk = static_cast<int>(t.pk.size());
  std::vector<Value> key, values(t.cols.size());
  std::vector<DigestColumn> cols;
  TableDigest digest;
  while (q.Step()) {
    key.clear();
    for (int k = 0; k < nk; ++k) key.push_back(q.Val(k));
    // A key in another spelling than its representation's was never sent anywhere (collect
    // cannot convert it): it counts as stored, so the digest still differs from other sites'.
    if (repr.AnyKey()) {
      std::vector<Value> wire = key;
      if (repr.KeyToWire(wire, false)) key = std::move(wire);
    }
    cols.clear();
    for (size_t c = 0; c < t.cols.size(); ++c) {
      values[c] = q.Val(nk + static_cast<int>(c));
      repr.ToWire(static_cast<uint32_t>(c), values[c]);
      cols.push_back(DigestColumn{t.cols[c], &values[c]});
    }
    digest.AddRow(key, cols);
  }
  return digest;
}

}  // namespace

void FnChecksum(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    conn.EnsureSchema();
    std::vector<std::pair<std::string, TableDigest>> out;
    if (argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
      std::string requested = TableArg(argv[0], "deltasync_checksum");
      auto t = conn.FindTable(requested);
      if (!t || t->state == TableState::kDropped)
        throw Error(ErrorCode::kInvalidArgument, "table \"" + requested + "\" is not tracked (deltasync_enable tracks it)");
      out.emplace_back(t->name, DigestTable(conn, *t));
    } else {
      for (const TableInfo& t : conn.LoadTables())
        if (t.state != TableState::kDropped) out.emplace_back(t.name, DigestTable(conn, t));
    }
    ResultText(ctx, ChecksumDocument(out).dump());
  });
}

}  // namespace deltasync
