// deltasync_changes(since): shadow rows by version, joined to the current values they
// stand for; the loop that builds the payload model is common/collect_loop's.
#include <algorithm>

#include "common/collect_loop.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "utils/memutils.h"
#include "utils/portal.h"
}

namespace deltasync {

namespace {

// The changed shadow rows of one table joined to its base rows, read by one statement
// through a cursor, a chunk at a time: each chunk's rows become Values, then its tuples and
// whatever converting them allocated are freed, so memory holds one chunk however many rows
// the table has. Columns: the shadow key, the shadow columns, whether the base row is there,
// the base row's non-key columns.
// Every row with a version above `since` is read, also one whose newest version is above the
// horizon `until`: such a row committed before this snapshot, and its older cells (at or
// below `until`) are due now — the next read starts at `until` and would pass them over
// (a row inserted, then updated by a transaction that committed between the horizon and
// the snapshot, lost its insert's cells that way). Cells above `until` are sent again by
// the next read, which merges to the same state. The caller's own uncommitted versions are
// excluded cell by cell instead (PgCollect::Exclude).
class PgChangeCursor : public ChangeCursor {
 public:
  PgChangeCursor(const TableInfo& t, int64_t since) : t_(t), nk_(static_cast<int>(t.pk.size())) {
    std::vector<std::string> qpk;
    for (const auto& c : t.pk) qpk.push_back(QuoteIdent(c));
    std::string sql = "SELECT " + ShadowKeyList(t.pk.size(), "m.") + ", m.cl, m.ver, m.hlc, m.site, m.clk, b." +
                      qpk[0] + " IS NOT NULL" + (t.cols.empty() ? "" : ", " + ColumnList(t.cols, "b.")) + " FROM " +
                      t.q_meta + " AS m LEFT JOIN " + t.q_name + " AS b ON " +
                      KeyEquality(t, "b", qpk, "m", ShadowKeyNames(t.pk.size())) + " WHERE " + kPgRowVersion + " > $1";
    Args a;
    a.AddInt8(since);
    std::vector<char> nulls = a.nulls;
    nulls.push_back('\0');
    Portal portal = nullptr;
    MemoryContext* cxt = &cxt_;
    PgTry([&] {
      portal = SPI_cursor_open_with_args(nullptr, sql.c_str(), static_cast<int>(a.types.size()), a.types.data(),
                                         a.values.data(), nulls.data(), false, 0);
      *cxt = AllocSetContextCreate(CurrentMemoryContext, "deltasync collect chunk", ALLOCSET_DEFAULT_SIZES);
    });
    portal_ = portal;
  }

  ~PgChangeCursor() override {
    Portal portal = portal_;
    MemoryContext cxt = cxt_;
    try {
      PgTry([&] {
        if (portal) SPI_cursor_close(portal);
        if (cxt) MemoryContextDelete(cxt);
      });
    } catch (...) {
    }
  }
  PgChangeCursor(const PgChangeCursor&) = delete;
  PgChangeCursor& operator=(const PgChangeCursor&) = delete;

  TableNames Names() const override {
    return TableNames{t_.name, t_.pk, t_.cols, t_.policies.empty() ? nullptr : &t_.policies};
  }

  bool Next(std::vector<Value>& key, ShadowRow& shadow) override {
    if (pos_ >= chunk_.size()) {
      if (done_ || !Fill()) return false;
    }
    cur_ = &chunk_[pos_++];
    key = std::move(cur_->key);
    shadow = cur_->shadow;
    return true;
  }

  bool ReadBase() override { return cur_->base; }
  Value Column(uint32_t column) override { return cur_->cols[column]; }

 private:
  using Row = BufferedChange;
  static constexpr long kChunkRows = 1000;

  // Fetches and converts the next chunk; false when there is none.
  bool Fill() {
    chunk_.clear();
    pos_ = 0;
    Portal portal = portal_;
    MemoryContext cxt = cxt_;
    MemoryContext old = nullptr;
    PgTry([&] {
      SPI_cursor_fetch(portal, true, kChunkRows);
      old = MemoryContextSwitchTo(cxt);
    });
    try {
      Rows rows;
      const int ncols = static_cast<int>(t_.cols.size());
      for (uint64_t r = 0; r < rows.size(); ++r) {
        Row row;
        bool isnull = false;
        for (int k = 0; k < nk_; ++k) {
          Datum d = rows.Get(r, k, &isnull);
          row.key.push_back(ToValue(t_.pk_types[k], d, isnull));
        }
        row.shadow = ReadShadowRow(rows, r, nk_);
        row.base = rows.Int(r, nk_ + 5) != 0;
        if (row.base)
          for (int c = 0; c < ncols; ++c) {
            Datum d = rows.Get(r, nk_ + 6 + c, &isnull);
            row.cols.push_back(ToValue(t_.col_types[c], d, isnull));
          }
        chunk_.push_back(std::move(row));
      }
    } catch (...) {
      MemoryContextSwitchTo(old);
      throw;
    }
    MemoryContextSwitchTo(old);
    SPITupleTable* tt = SPI_tuptable;
    PgTry([&] {
      SPI_freetuptable(tt);
      MemoryContextReset(cxt);
    });
    done_ = chunk_.size() < static_cast<size_t>(kChunkRows);
    return !chunk_.empty();
  }

  const TableInfo& t_;
  int nk_;
  Portal portal_ = nullptr;
  MemoryContext cxt_ = nullptr;
  bool done_ = false;
  std::vector<Row> chunk_;
  size_t pos_ = 0;
  Row* cur_ = nullptr;
};

// The collect loop's port on this backend. include_own: whether the calling transaction's
// own (uncommitted) writes count.
class PgCollect : public CollectPort {
 public:
  explicit PgCollect(bool include_own) : include_own_(include_own) {}
  const SiteId& LocalSite() override { return b_.LocalSite(); }
  const SiteId& SiteOf(uint32_t ordinal) override { return b_.SiteOf(ordinal); }
  int64_t Horizon() override { return b_.SafeVersion(include_own_); }
  // What the collect leaves out: `exclude`, and unless the transaction's own writes count,
  // the versions it took (they may still roll back).
  VersionRanges Exclude(const VersionRanges& exclude) const {
    VersionRanges all = exclude;
    if (!include_own_)
      for (const auto& r : b_.OwnVersions()) all.push_back(r);
    return all;
  }

  // Every table's read privilege is checked before any is read; internal tables are read
  // as the extension's owner.
  void ForEachTable(int64_t since, int64_t /*until*/, const std::function<void(ChangeCursor&)>& table) override {
    std::vector<TableInfo> tables = b_.LoadTables();
    for (const TableInfo& t : tables)
      if (!t.dropped) CheckAccess(t, Access::kRead);
    // A table deltasync cannot serve any more is left out, by name, so the others still sync.
    for (const TableInfo& t : tables)
      if (!t.dropped && t.Unservable()) WarnBroken(t);
    AsOwner as;
    for (const TableInfo& t : tables) {
      if (t.dropped || t.Unservable()) continue;
      PgChangeCursor cur(t, since);
      table(cur);
    }
  }

 private:
  Backend& b_ = Backend::Get();
  bool include_own_;
};

}  // namespace

namespace {

// Changes are read on a primary, in READ COMMITTED (docs/postgresql.md, "Versions under
// concurrency").
void CheckCanCollect() {
  // A standby has no writer locks to look at, and its copy of the counter runs ahead.
  if (RecoveryInProgress())
    throw Error(ErrorCode::kInvalidArgument, "changes cannot be read on a standby: read them on the primary");
  if (IsolationUsesXactSnapshot())
    throw Error(ErrorCode::kInvalidArgument,
                "reading changes needs READ COMMITTED isolation: a REPEATABLE READ or SERIALIZABLE snapshot "
                "could miss changes committed after it was taken");
}

}  // namespace

int64_t pg::CollectBatches(int64_t since, int64_t until, const CollectPosition& from, const VersionRanges& exclude,
                           const BatchLimits& limits,
                           const std::function<bool(Payload&, const CollectPosition&)>& batch) {
  CheckCanCollect();
  PgCollect port(/*include_own=*/false);
  if (until <= since) until = std::max(since, port.Horizon());
  deltasync::CollectInBatches(port, since, until, port.Exclude(exclude), from, limits, batch);
  return until;
}

Payload pg::CollectChanges(int64_t since, const VersionRanges& exclude, bool include_own) {
  // The horizon is computed now; an older transaction snapshot could miss what committed
  // between the two.
  CheckCanCollect();
  PgCollect port(include_own);
  return deltasync::CollectChanges(port, since, port.Exclude(exclude));
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
