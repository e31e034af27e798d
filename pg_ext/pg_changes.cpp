// deltasync_changes(since): shadow rows by version, joined to the current values they
// stand for, into the payload model.
#include <unordered_map>

#include "common/merge.hpp"
#include "common/row_apply.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
}

namespace deltasync {

namespace {

// Maps local site ordinals to indexes in the payload's site list.
class SiteIndex {
 public:
  explicit SiteIndex(Payload& p) : p_(p) {}
  uint32_t Of(uint32_t ord) {
    auto it = map_.find(ord);
    if (it != map_.end()) return it->second;
    auto idx = static_cast<uint32_t>(p_.sites.size());
    p_.sites.push_back(Backend::Get().SiteOf(ord));
    map_[ord] = idx;
    return idx;
  }

 private:
  Payload& p_;
  std::unordered_map<uint32_t, uint32_t> map_;
};

}  // namespace

Payload CollectChanges(int64_t since, const VersionRanges& exclude, bool include_own) {
  // The horizon is computed now; an older transaction snapshot could miss what committed
  // between the two (docs/postgresql.md, "Versions under concurrency").
  // A standby has no writer locks to look at, and its copy of the counter runs ahead.
  if (RecoveryInProgress())
    throw Error(ErrorCode::kInvalidArgument, "changes cannot be read on a standby: read them on the primary");
  if (IsolationUsesXactSnapshot())
    throw Error(ErrorCode::kInvalidArgument,
                "reading changes needs READ COMMITTED isolation: a REPEATABLE READ or SERIALIZABLE snapshot "
                "could miss changes committed after it was taken");
  Backend& b = Backend::Get();
  Payload p;
  p.site = b.LocalSite();
  p.since = since;
  int64_t until = b.SafeVersion(include_own);
  p.until = std::max(since, until);  // a cursor from the future stays put
  SiteIndex sites(p);
  std::vector<TableInfo> tables = b.LoadTables();
  for (const TableInfo& t : tables)
    if (!t.dropped) CheckAccess(t, Access::kRead);
  AsOwner as;
  for (const TableInfo& t : tables) {
    if (t.dropped) continue;
    TableChanges tc;
    tc.name = t.name;
    tc.pk = t.pk;
    tc.columns = t.cols;
    const int nk = static_cast<int>(t.pk.size());
    std::vector<std::string> qpk;
    for (const auto& c : t.pk) qpk.push_back(QuoteIdent(c));
    // found: whether the base row is there (a live shadow row whose base row is missing
    // carries no column change).
    std::string sql = "SELECT " + ShadowKeyList(t.pk.size(), "m.") + ", m.cl, m.ver, m.hlc, m.site, m.clk, b." +
                      qpk[0] + " IS NOT NULL" + (t.cols.empty() ? "" : ", " + ColumnList(t.cols, "b.")) + " FROM " +
                      t.q_meta + " AS m LEFT JOIN " + t.q_name + " AS b ON " +
                      KeyEquality(t, "b", qpk, "m", ShadowKeyNames(t.pk.size())) + " WHERE m.ver > $1 AND m.ver <= $2";
    Args a;
    a.AddInt8(since);
    a.AddInt8(p.until);
    RunSql(sql, a);
    Rows rows;
    uint64_t n = rows.size();
    tc.rows.reserve(n);
    for (uint64_t row = 0; row < n; ++row) {
      RowChanges r;
      bool isnull = false;
      for (int k = 0; k < nk; ++k) {
        Datum d = rows.Get(row, k, &isnull);
        r.key.push_back(ToValue(t.pk_types[k], d, isnull));
      }
      ShadowRow shadow = ReadShadowRow(rows, row, nk);
      r.cl = shadow.cl;
      bool found = rows.Int(row, nk + 5) != 0;
      if (RowExists(r.cl) && found)
        CollectRowChanges(r, shadow.clocks, t.cols.size(), since, exclude,
                          [&](uint32_t c) {
                            bool null = false;
                            Datum d = rows.Get(row, nk + 6 + static_cast<int>(c), &null);
                            return ToValue(t.col_types[c], d, null);
                          },
                          [&](uint32_t ord) { return sites.Of(ord); });
      // A row whose latest change came from the excluded ranges and that carries no other
      // column change holds nothing the receiver lacks.
      if (r.changes.empty() && InRanges(exclude, shadow.ver)) continue;
      tc.rows.push_back(std::move(r));
    }
    if (!tc.rows.empty()) p.tables.push_back(std::move(tc));
  }
  return p;
}

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_changes) {
  int64_t since = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
  if (since < 0) throw Error(ErrorCode::kInvalidArgument, "deltasync_changes(since): since must be >= 0");
  SpiSession spi;
  std::string out = EncodeJson(CollectChanges(since));
  spi.Finish();
  return TextResult(out);
}
