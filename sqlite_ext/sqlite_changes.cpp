// deltasync_changes(since): reads shadow rows by version and the current values they
// stand for; the loop that builds the payload model is common/collect_loop's.
#include <optional>

#include "common/collect_loop.hpp"
#include "common/merge.hpp"
#include "common/payload.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"

namespace deltasync {

namespace {

// The changed shadow rows of one table and, by key, its base rows.
class SqliteChangeCursor : public ChangeCursor {
 public:
  // Without an index on ver this is a scan of the shadow table: it keeps every write
  // one b-tree insert cheaper, and a scan is a few ms per 100,000 rows.
  SqliteChangeCursor(Conn& conn, const TableInfo& t, int64_t since, bool as_stored)
      : t_(t), nk_(static_cast<int>(t.pk.size())),
        meta_(conn.db(), "SELECT " + ShadowKeyList(t.pk.size()) + ", " + kShadowColumns + " FROM " + t.q_meta +
                             " WHERE ver > ?1"),
        repr_(t, as_stored) {
    if (!t.cols.empty()) {
      std::string select = "SELECT ", where;
      for (size_t k = 0; k < t.cols.size(); ++k) select += (k ? ", " : "") + QuoteIdent(t.cols[k]);
      for (size_t k = 0; k < t.pk.size(); ++k)
        where += (k ? " AND " : "") + QuoteIdent(t.pk[k]) + " = ?" + std::to_string(k + 1);
      row_.emplace(conn.db(), select + " FROM " + t.q_name + " WHERE " + where);
    }
    meta_.BindInt(1, since);
  }

  TableNames Names() const override { return TableNames{t_.name, t_.pk, t_.cols}; }

  bool Next(std::vector<Value>& key, ShadowRow& shadow) override {
    if (row_) row_->Reset();  // done with the previous row's base row
    while (meta_.Step()) {
      for (int k = 0; k < nk_; ++k) key.push_back(meta_.Val(k));
      key_ = &key;
      shadow = ReadShadowRow(meta_, nk_);
      if (repr_.AnyKey()) {  // the base row is read by the local key; the payload gets the wire one
        local_key_ = key;
        key_ = &local_key_;
        // A deleted row keyed in another spelling was never sent (no collect could convert
        // it): its delete concerns no other site.
        if (!repr_.KeyToWire(key, RowExists(shadow.cl))) {
          key.clear();
          continue;
        }
      }
      return true;
    }
    return false;
  }

  bool ReadBase() override {
    if (!row_) return false;
    for (size_t k = 0; k < key_->size(); ++k) row_->Bind(static_cast<int>(k + 1), (*key_)[k]);
    return row_->Step();
  }

  Value Column(uint32_t column) override {
    Value v = row_->Val(static_cast<int>(column));
    repr_.ToWire(column, v);
    return v;
  }

 private:
  const TableInfo& t_;
  int nk_;
  Stmt meta_;
  std::optional<Stmt> row_;  // none for a table without non-key columns
  const std::vector<Value>* key_ = nullptr;  // the current row's key, in local form
  SqliteRepr repr_;
  std::vector<Value> local_key_;  // for tables whose key has a representation
};

// The collect loop's port on one SQLite connection.
class SqliteCollect : public CollectPort {
 public:
  SqliteCollect(Conn& conn, bool as_stored) : conn_(conn), as_stored_(as_stored) {}
  const SiteId& LocalSite() override { return conn_.LocalSite(); }
  const SiteId& SiteOf(uint32_t ordinal) override { return conn_.SiteOf(ordinal); }
  int64_t Horizon() override { return conn_.CurrentDbVersion(); }

  void ForEachTable(int64_t since, int64_t, const std::function<void(ChangeCursor&)>& table) override {
    for (const TableInfo& t : conn_.LoadTables()) {
      if (t.state == TableState::kDropped) continue;  // a dropped table stops syncing
      t.RequireCaptured();
      SqliteChangeCursor cur(conn_, t, since, as_stored_);
      table(cur);
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
