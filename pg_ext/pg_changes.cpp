// deltasync_changes(since): shadow rows by version, joined to the current values they
// stand for; the loop that builds the payload model is common/collect_loop's.
#include "common/collect_loop.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
}

namespace deltasync {

namespace {

// The changed shadow rows of one table joined to its base rows, read by one statement.
// Columns: the shadow key, the shadow columns, whether the base row is there, the base
// row's non-key columns.
class PgChangeCursor : public ChangeCursor {
 public:
  PgChangeCursor(const TableInfo& t, int64_t since, int64_t until) : t_(t), nk_(static_cast<int>(t.pk.size())) {
    std::vector<std::string> qpk;
    for (const auto& c : t.pk) qpk.push_back(QuoteIdent(c));
    std::string sql = "SELECT " + ShadowKeyList(t.pk.size(), "m.") + ", m.cl, m.ver, m.hlc, m.site, m.clk, b." +
                      qpk[0] + " IS NOT NULL" + (t.cols.empty() ? "" : ", " + ColumnList(t.cols, "b.")) + " FROM " +
                      t.q_meta + " AS m LEFT JOIN " + t.q_name + " AS b ON " +
                      KeyEquality(t, "b", qpk, "m", ShadowKeyNames(t.pk.size())) + " WHERE m.ver > $1 AND m.ver <= $2";
    Args a;
    a.AddInt8(since);
    a.AddInt8(until);
    RunSql(sql, a);
    rows_ = Rows();
  }

  TableNames Names() const override { return TableNames{t_.name, t_.pk, t_.cols}; }
  size_t RowCountHint() const override { return rows_.size(); }

  bool Next(std::vector<Value>& key, ShadowRow& shadow) override {
    if (next_ >= rows_.size()) return false;
    row_ = next_++;
    bool isnull = false;
    for (int k = 0; k < nk_; ++k) {
      Datum d = rows_.Get(row_, k, &isnull);
      key.push_back(ToValue(t_.pk_types[k], d, isnull));
    }
    shadow = ReadShadowRow(rows_, row_, nk_);
    return true;
  }

  bool ReadBase() override { return rows_.Int(row_, nk_ + 5) != 0; }

  Value Column(uint32_t column) override {
    bool isnull = false;
    Datum d = rows_.Get(row_, nk_ + 6 + static_cast<int>(column), &isnull);
    return ToValue(t_.col_types[column], d, isnull);
  }

 private:
  const TableInfo& t_;
  int nk_;
  Rows rows_;
  uint64_t next_ = 0, row_ = 0;
};

// The collect loop's port on this backend. include_own: whether the calling transaction's
// own (uncommitted) writes count.
class PgCollect : public CollectPort {
 public:
  explicit PgCollect(bool include_own) : include_own_(include_own) {}
  const SiteId& LocalSite() override { return b_.LocalSite(); }
  const SiteId& SiteOf(uint32_t ordinal) override { return b_.SiteOf(ordinal); }
  int64_t Horizon() override { return b_.SafeVersion(include_own_); }

  // Every table's read privilege is checked before any is read; internal tables are read
  // as the extension's owner.
  void ForEachTable(int64_t since, int64_t until, const std::function<void(ChangeCursor&)>& table) override {
    std::vector<TableInfo> tables = b_.LoadTables();
    for (const TableInfo& t : tables)
      if (!t.dropped) CheckAccess(t, Access::kRead);
    // A table deltasync cannot serve any more is left out, by name, so the others still sync.
    for (const TableInfo& t : tables)
      if (!t.dropped && t.Unservable()) WarnBroken(t);
    AsOwner as;
    for (const TableInfo& t : tables) {
      if (t.dropped || t.Unservable()) continue;
      PgChangeCursor cur(t, since, until);
      table(cur);
    }
  }

 private:
  Backend& b_ = Backend::Get();
  bool include_own_;
};

}  // namespace

Payload pg::CollectChanges(int64_t since, const VersionRanges& exclude, bool include_own) {
  // The horizon is computed now; an older transaction snapshot could miss what committed
  // between the two (docs/postgresql.md, "Versions under concurrency").
  // A standby has no writer locks to look at, and its copy of the counter runs ahead.
  if (RecoveryInProgress())
    throw Error(ErrorCode::kInvalidArgument, "changes cannot be read on a standby: read them on the primary");
  if (IsolationUsesXactSnapshot())
    throw Error(ErrorCode::kInvalidArgument,
                "reading changes needs READ COMMITTED isolation: a REPEATABLE READ or SERIALIZABLE snapshot "
                "could miss changes committed after it was taken");
  PgCollect port(include_own);
  return deltasync::CollectChanges(port, since, exclude);
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
