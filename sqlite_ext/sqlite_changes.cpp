// deltasync_changes(since): reads shadow rows by version and the current values they
// stand for, and builds the payload model.
#include <algorithm>
#include <unordered_map>

#include "common/merge.hpp"
#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/row_clocks.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

std::string WhereKey(const TableInfo& t) {
  std::string w;
  for (size_t k = 0; k < t.pk.size(); ++k)
    w += (k ? " AND " : "") + QuoteIdent(t.pk[k]) + " = ?" + std::to_string(k + 1);
  return w;
}

// Maps local site ordinals to indexes in the payload's site list.
class SiteIndex {
 public:
  SiteIndex(Conn& conn, Payload& p) : conn_(conn), p_(p) {}
  uint32_t Of(uint32_t ord) {
    auto it = map_.find(ord);
    if (it != map_.end()) return it->second;
    auto idx = static_cast<uint32_t>(p_.sites.size());
    p_.sites.push_back(conn_.SiteOf(ord));
    map_[ord] = idx;
    return idx;
  }

 private:
  Conn& conn_;
  Payload& p_;
  std::unordered_map<uint32_t, uint32_t> map_;
};

}  // namespace

Payload CollectChanges(Conn& conn, int64_t since, const VersionRanges& exclude) {
  sqlite3* db = conn.db();
  Payload p;
  p.site = conn.LocalSite();
  p.since = since;
  p.until = std::max(since, conn.CurrentDbVersion());  // a cursor from the future stays put
  SiteIndex sites(conn, p);
  for (const TableInfo& t : conn.LoadTables()) {
    if (t.state == TableState::kDropped) continue;  // a dropped table stops syncing
    t.RequireCaptured();
    TableChanges tc;
    tc.name = t.name;
    tc.pk = t.pk;
    tc.columns = t.cols;
    // Without an index on ver this is a scan of the shadow table: it keeps every write
    // one b-tree insert cheaper, and a scan is a few ms per 100,000 rows.
    const int nk = static_cast<int>(t.pk.size());
    Stmt meta(db, "SELECT " + ShadowKeyList(t.pk.size()) + ", " + kShadowColumns + " FROM " + t.q_meta + " WHERE ver > ?1");
    std::string select = "SELECT ";
    for (size_t k = 0; k < t.cols.size(); ++k) select += (k ? ", " : "") + QuoteIdent(t.cols[k]);
    std::optional<Stmt> row;
    if (!t.cols.empty()) row.emplace(db, select + " FROM " + t.q_name + " WHERE " + WhereKey(t));
    meta.BindInt(1, since);
    while (meta.Step()) {
      RowChanges r;
      for (int k = 0; k < nk; ++k) r.key.push_back(meta.Val(k));
      ShadowRow shadow = ReadShadowRow(meta, nk);
      r.cl = shadow.cl;
      if (RowExists(r.cl) && row) {
        const RowClocks& clocks = shadow.clocks;
        for (size_t k = 0; k < r.key.size(); ++k) row->Bind(static_cast<int>(k + 1), r.key[k]);
        if (row->Step())
          CollectRowChanges(r, clocks, t.cols.size(), since, exclude,
                            [&](uint32_t c) { return row->Val(static_cast<int>(c)); },
                            [&](uint32_t ord) { return sites.Of(ord); });
        row->Reset();
      }
      // A row whose latest change came from the excluded ranges and that carries no other
      // column change holds nothing the receiver lacks.
      if (r.changes.empty() && InRanges(exclude, shadow.ver)) continue;
      tc.rows.push_back(std::move(r));
    }
    if (!tc.rows.empty()) p.tables.push_back(std::move(tc));
  }
  return p;
}

void FnChanges(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    int type = sqlite3_value_type(argv[0]);
    if (type != SQLITE_INTEGER && type != SQLITE_NULL)
      throw Error(ErrorCode::kInvalidArgument, "deltasync_changes(since) expects an integer db_version");
    int64_t since = type == SQLITE_NULL ? 0 : sqlite3_value_int64(argv[0]);
    if (since < 0) throw Error(ErrorCode::kInvalidArgument, "deltasync_changes(since): since must be >= 0");
    ResultText(ctx, EncodeJson(CollectChanges(ConnOf(ctx), since)));
  });
}

}  // namespace deltasync
