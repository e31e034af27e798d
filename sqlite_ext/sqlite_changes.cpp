// deltasync_changes(since): reads shadow rows by version and the current values they
// stand for; the loop that builds the payload model is common/collect_loop's.
#include <algorithm>
#include <optional>

#include "common/collect_loop.hpp"
#include "common/merge.hpp"
#include "common/payload.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

namespace {

// The changed shadow rows of one table, in key order, joined to its base rows, read in
// chunks: each chunk is one short statement (shadow and base rows from one snapshot), done
// before the rows are handed on, so no read stays open while a push talks to its hub or
// records its progress, and memory holds one chunk.
class SqliteChangeCursor : public ChangeCursor {
 public:
  // Without an index on ver each chunk scans on in key order from the previous one: it keeps
  // every write one b-tree insert cheaper, and a scan is a few ms per 100,000 rows.
  SqliteChangeCursor(Conn& conn, const TableInfo& t, int64_t since, const std::vector<Value>* after, bool as_stored)
      : conn_(conn), t_(t), nk_(static_cast<int>(t.pk.size())), since_(since), repr_(t, as_stored) {
    if (after) {
      last_ = *after;
      seek_ = true;
    }
  }

  TableNames Names() const override {
    return TableNames{t_.name, t_.pk, t_.cols, t_.policies.empty() ? nullptr : &t_.policies};
  }

  bool Next(std::vector<Value>& key, ShadowRow& shadow) override {
    for (;;) {
      if (pos_ >= chunk_.size()) {
        if (done_ || !Fill()) return false;
      }
      cur_ = &chunk_[pos_++];
      key = cur_->key;
      shadow = cur_->shadow;
      // The payload gets the key in wire form; a deleted row keyed in another spelling was
      // never sent (no collect could convert it): its delete concerns no other site.
      if (repr_.AnyKey() && !repr_.KeyToWire(key, RowExists(shadow.cl))) {
        key.clear();
        continue;
      }
      return true;
    }
  }

  const std::vector<Value>* LocalKey() const override { return &cur_->key; }
  bool ReadBase() override { return cur_->base; }
  Value Column(uint32_t column) override {
    Value v = cur_->cols[column];
    repr_.ToWire(column, v);
    return v;
  }

 private:
  using Row = BufferedChange;
  static constexpr int kChunkRows = 512;

  // "m.k0 > ?2" or "(m.k0, m.k1) > (?2, ?3)": after the last key read.
  std::string After() const {
    std::string l, r;
    for (int k = 0; k < nk_; ++k) {
      l += std::string(k ? ", " : "") + "m.k" + std::to_string(k);
      r += std::string(k ? ", " : "") + "?" + std::to_string(k + 2);
    }
    return nk_ == 1 ? l + " > " + r : "(" + l + ") > (" + r + ")";
  }

  Stmt Prepare(bool seek) const {
    std::string keys, on;
    for (int k = 0; k < nk_; ++k) {
      keys += std::string(k ? ", " : "") + "m.k" + std::to_string(k);
      on += std::string(k ? " AND " : "") + "b." + QuoteIdent(t_.pk[k]) + " = m.k" + std::to_string(k);
    }
    std::string sql = "SELECT " + keys + ", m.cl, m.ver, m.hlc, m.site, m.clk, b." + QuoteIdent(t_.pk[0]) + " IS NOT NULL";
    for (const std::string& c : t_.cols) sql += ", b." + QuoteIdent(c);
    sql += " FROM " + t_.q_meta + " AS m LEFT JOIN " + t_.q_name + " AS b ON " + on + " WHERE m.ver > ?1" +
           (seek ? " AND " + After() : "") + " ORDER BY " + keys + " LIMIT " + std::to_string(kChunkRows);
    return Stmt(conn_.db(), sql);
  }

  // Reads the next chunk after the last key; false when there is none.
  bool Fill() {
    chunk_.clear();
    pos_ = 0;
    Stmt& q = seek_ ? (seek_q_ ? *seek_q_ : seek_q_.emplace(Prepare(true))) : (first_q_ ? *first_q_ : first_q_.emplace(Prepare(false)));
    q.BindInt(1, since_);
    if (seek_)
      for (int k = 0; k < nk_; ++k) q.Bind(k + 2, last_[k]);
    const int ncols = static_cast<int>(t_.cols.size());
    while (q.Step()) {
      Row r;
      for (int k = 0; k < nk_; ++k) r.key.push_back(q.Val(k));
      r.shadow = ReadShadowRow(q, nk_);
      r.base = q.Int(nk_ + 5) != 0;
      if (r.base)
        for (int c = 0; c < ncols; ++c) r.cols.push_back(q.Val(nk_ + 6 + c));
      chunk_.push_back(std::move(r));
    }
    q.Reset();
    done_ = chunk_.size() < static_cast<size_t>(kChunkRows);
    if (!chunk_.empty()) {
      last_ = chunk_.back().key;
      seek_ = true;
    }
    return !chunk_.empty();
  }

  Conn& conn_;
  const TableInfo& t_;
  int nk_;
  int64_t since_;
  SqliteRepr repr_;
  std::optional<Stmt> first_q_, seek_q_;
  bool seek_ = false, done_ = false;
  std::vector<Value> last_;  // the last key read (bound while a chunk is read)
  std::vector<Row> chunk_;
  size_t pos_ = 0;
  Row* cur_ = nullptr;
};

// The collect loop's port on one SQLite connection.
class SqliteCollect : public CollectPort {
 public:
  SqliteCollect(Conn& conn, bool as_stored) : conn_(conn), as_stored_(as_stored) {}
  const SiteId& LocalSite() override { return conn_.LocalSite(); }
  const SiteId& SiteOf(uint32_t ordinal) override { return conn_.SiteOf(ordinal); }
  int64_t Horizon() override { return conn_.SafeVersion(); }

  void ForEachTable(int64_t since, int64_t, const std::function<void(ChangeCursor&)>& table) override {
    for (const TableInfo& t : conn_.LoadTables()) {
      if (t.state == TableState::kDropped) continue;  // a dropped table stops syncing
      t.RequireCaptured();
      SqliteChangeCursor cur(conn_, t, since, nullptr, as_stored_);
      table(cur);
    }
  }

  // A position in a table no longer tracked (or renamed) starts over: sending again is
  // harmless, skipping is not.
  void ForEachTableFrom(int64_t since, int64_t, const CollectPosition& from,
                        const std::function<bool(ChangeCursor&)>& table) override {
    std::vector<TableInfo> tables = conn_.LoadTables();
    size_t first = 0;
    bool seek = false;
    if (!from.table.empty()) {
      for (size_t k = 0; k < tables.size(); ++k)
        if (tables[k].state != TableState::kDropped && tables[k].name == from.table && tables[k].pk.size() == from.key.size()) {
          first = k;
          seek = true;
        }
    }
    for (size_t k = first; k < tables.size(); ++k) {
      const TableInfo& t = tables[k];
      if (t.state == TableState::kDropped) continue;
      t.RequireCaptured();
      SqliteChangeCursor cur(conn_, t, since, seek && k == first ? &from.key : nullptr, as_stored_);
      if (!table(cur)) return;
    }
  }

 private:
  Conn& conn_;
  bool as_stored_;
};

}  // namespace

Payload sqlite::CollectChanges(Conn& conn, int64_t since, const VersionRanges& exclude, bool as_stored) {
  SqliteCollect port(conn, as_stored);
  return deltasync::CollectChanges(port, since, exclude);
}

int64_t sqlite::CollectBatches(Conn& conn, int64_t since, int64_t until, const CollectPosition& from,
                               const VersionRanges& exclude, const BatchLimits& limits,
                               const std::function<bool(Payload&, const CollectPosition&)>& batch) {
  SqliteCollect port(conn, /*as_stored=*/false);
  if (until <= since) until = std::max(since, port.Horizon());
  deltasync::CollectInBatches(port, since, until, exclude, from, limits, batch);
  return until;
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
