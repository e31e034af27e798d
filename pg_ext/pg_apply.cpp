// deltasync_apply(payload): merges a payload into the tracked tables, all or nothing (one
// subtransaction). The loop and the decisions are common/apply_loop's; this file reads and
// writes PostgreSQL.
//
// While it applies, the tracked tables it touches are locked SHARE ROW EXCLUSIVE (local
// writers wait, readers do not): the shadow rows it reads cannot change under it, so its
// merge decisions stand. Writes run with session_replication_role = replica, as
// PostgreSQL's own logical replication applies: foreign keys between tracked tables do not
// depend on the order rows arrive in, and the application's ordinary triggers do not fire.
#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/apply_loop.hpp"
#include "common/quarantine.hpp"
#include "common/scoped_flag.hpp"
#include "common/utf8.hpp"
#include "pg_ext/pg_apply_page.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_changes.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
}

namespace deltasync {

// deltasync.apply_page_rows: rows of one table a statement of deltasync_apply writes.
int apply_page_rows = 1000;

namespace {

class PgApplyTable;

// What the tables of one apply share to write a page of rows at a time (docs/postgresql.md,
// "Apply"): rows per page (0: one statement per row); whether writes go straight to the
// database (inside a row's own subtransaction, where a refusal must be that row's); and the
// one table whose base-table writes wait, so base tables are written in row order.
struct PageState {
  size_t rows = 0;
  int direct = 0;
  PgApplyTable* base_writer = nullptr;
  std::vector<PgApplyTable*> open;
  void FlushBase();  // the base-table writes that wait
  void FlushAll();   // those, and every table's shadow rows
};

// The statements that write one local table during an apply. Plans are prepared at the
// table's first row, inside the apply's subtransaction and locks.
//
// A page at a time (PageState::rows > 0, a table PageableTable admits): the page's shadow
// rows are read by one statement before its rows; each row's shadow row and base write wait
// in column arrays; a run of rows of one shape (delete, update or insert of the same
// columns) is written by one statement over unnest, and the shadow rows likewise. Anything
// that reads the base table, and every base write that cannot wait, first writes the run.
// A key seen again while its writes wait first writes them too. Statements run in the
// order of the rows, and with only the primary key unique their order within a run does
// not matter: the tables end as one statement per row leaves them.
class PgApplyTable : public ApplyTable {
  enum class RunKind { kDelete, kUpdate, kInsert };
  // A run's shape: its arrays (key, then `cols`) and the columns it writes.
  struct RunShape {
    ColumnArrays arrays;
    std::vector<uint32_t> cols;
  };

 public:
  PgApplyTable(const TableInfo& t, PageState& page) : t_(t), nk_(static_cast<int>(t.pk.size())), page_(page) {
    page_.open.push_back(this);
  }
  ~PgApplyTable() override {
    if (page_.base_writer == this) page_.base_writer = nullptr;
    page_.open.erase(std::remove(page_.open.begin(), page_.open.end(), this), page_.open.end());
  }
  PgApplyTable(const PgApplyTable&) = delete;
  PgApplyTable& operator=(const PgApplyTable&) = delete;

  TableNames Names() const override {
    return TableNames{t_.name, t_.pk, t_.cols, t_.policies.empty() ? nullptr : &t_.policies};
  }

  // Converts the key once for the row's statements, then reads its shadow row (read ahead
  // with the page's, unless written since).
  void ReadShadow(const std::vector<Value>& key, ShadowRow& out) override {
    if (!get_meta_.Ready()) PrepareMeta();
    key_values_ = &key;
    key_ = KeyArgs(key);
    cols_ready_ = false;
    if (paged_) {
      key_bytes_ = KeyBytes(key_, nk_, key_len_, key_byval_);
      auto it = cache_.find(key_bytes_);
      if (it != cache_.end()) {
        shadow_found_ = it->second.has_value();
        if (shadow_found_) out = *it->second;
        return;
      }
      if (shadow_keys_.count(key_bytes_)) FlushShadow();
    }
    shadow_found_ = get_meta_.Run(key_, 1) == 1;
    if (shadow_found_) out = ReadShadowRow(Rows(), 0, 0);
  }

  // One statement for the shadow rows of a page's keys.
  void Prefetch(const std::vector<const std::vector<Value>*>& keys) override {
    if (!get_meta_.Ready()) PrepareMeta();
    in_page_ = paged_;
    if (!paged_ || keys.empty()) return;
    FlushShadow();
    cache_.clear();
    key_arrays_.Clear();
    std::vector<std::string> bytes;
    for (const std::vector<Value>* k : keys) {
      Args a = KeyArgs(*k);
      std::string b = KeyBytes(a, nk_, key_len_, key_byval_);
      if (!cache_.emplace(b, std::nullopt).second) continue;
      key_arrays_.AddRow(a, 0);
      bytes.push_back(std::move(b));
    }
    if (!prefetch_.Ready()) {
      std::string cols, on;
      for (int k = 0; k < nk_; ++k) cols += "a" + std::to_string(k) + ", ";
      std::vector<std::string> vk;
      for (int k = 0; k < nk_; ++k) vk.push_back("a" + std::to_string(k));
      prefetch_.Prepare("SELECT v.o, m.cl, m.ver, m.hlc, m.site, m.clk FROM unnest(" + ParamList(1, nk_) +
                            ") WITH ORDINALITY AS v(" + cols + "o) CROSS JOIN LATERAL (SELECT " + kShadowColumns +
                            " FROM " + t_.q_meta + " AS s WHERE " + KeyEquality(t_, "s", ShadowKeyNames(nk_), "v", vk) +
                            " LIMIT 1) AS m",
                        key_arrays_.ArrayTypes(), false);
    }
    uint64_t n = prefetch_.Run(key_arrays_.Arrays());
    Rows rows;
    for (uint64_t r = 0; r < n; ++r) cache_[bytes[static_cast<size_t>(rows.Int(r, 0) - 1)]] = ReadShadowRow(rows, r, 1);
    SPI_freetuptable(SPI_tuptable);
  }

  // The page's writes that wait.
  void Flush() override {
    in_page_ = false;
    if (page_.base_writer == this) FlushBase();
    FlushShadow();
  }

  void DeleteRow(const std::vector<Value>&) override {
    if (Deferring()) return Defer(RunKind::kDelete);
    if (!delete_.Ready()) {
      std::vector<std::string> qpk;
      for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
      delete_.Prepare("DELETE FROM " + t_.q_name + " WHERE " + KeyParamEquality(t_, qpk, 1), key_.types, false);
    }
    RunAsTableOwner(delete_, key_);
  }

  // One plan per distinct set of columns. Waiting, it reports the row there: an update
  // that finds none becomes the insert when the run is written.
  bool UpdateRow(const std::vector<Value>&, const std::vector<ColumnWrite>& cols) override {
    const Args& a = RowArgs(cols);
    if (Deferring()) {
      Defer(RunKind::kUpdate);
      return true;
    }
    auto it = updates_.find(sig_);
    if (it == updates_.end()) it = updates_.emplace(sig_, PrepareUpdate(cols, a)).first;
    return RunAsTableOwner(it->second, a) > 0;
  }

  void InsertRow(const std::vector<Value>&, const std::vector<ColumnWrite>& cols) override {
    const Args& a = RowArgs(cols);
    if (Deferring()) return Defer(RunKind::kInsert);
    auto it = inserts_.find(sig_);
    if (it == inserts_.end()) it = inserts_.emplace(sig_, PrepareInsert(cols, a)).first;
    RunAsTableOwner(it->second, a);
  }

  // Each column gets its default, as an INSERT without it would.
  void ResetColumns(const std::vector<Value>&, const std::vector<uint32_t>& cols) override {
    std::string set;
    for (uint32_t c : cols) set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[c]) + " = DEFAULT";
    std::vector<std::string> qpk;
    for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
    Plan p;
    p.Prepare("UPDATE " + t_.q_name + " SET " + set + " WHERE " + KeyParamEquality(t_, qpk, 1), key_.types, false);
    RunAsTableOwner(p, key_);
  }

  void WriteShadow(const std::vector<Value>&, int64_t cl, int64_t ver, const RowClocks& clocks) override {
    std::string extras = clocks.EncodeExtras();
    Args put = key_;
    put.AddInt8(cl);
    put.AddInt8(ver);
    put.AddInt8(static_cast<int64_t>(clocks.Base().hlc));
    put.AddInt4(static_cast<int32>(clocks.Base().site));
    if (extras.empty()) put.Add(BYTEAOID, 0, true);
    else put.AddBytea(extras);
    if (paged_) cache_.erase(key_bytes_);
    if (!Deferring()) {
      put_meta_.Run(put);
      return;
    }
    ColumnArrays& wait = shadow_found_ ? shadow_updates_ : shadow_inserts_;
    if (shadow_keys_.count(key_bytes_) || wait.rows() >= page_.rows) FlushShadow();
    wait.AddRow(put, 0);
    shadow_keys_.insert(key_bytes_);
    shadow_found_ = true;
  }

  bool ReadColumns(const std::vector<Value>&, const std::vector<std::string>& cols, std::vector<Value>& out) override {
    // Waiting writes of another table, or of this row, come first.
    if (page_.base_writer && (page_.base_writer != this || run_keys_.count(key_bytes_))) page_.FlushBase();
    std::string sig;
    for (const std::string& c : cols) sig += c + ",";
    auto it = reads_.find(sig);
    if (it == reads_.end()) {
      std::vector<std::string> qpk;
      for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
      std::string list = "1";
      for (const std::string& c : cols) list += ", " + QuoteIdent(c);
      Plan p;
      p.Prepare("SELECT " + list + " FROM " + t_.q_name + " WHERE " + KeyParamEquality(t_, qpk, 1), key_.types, false);
      it = reads_.emplace(sig, std::move(p)).first;
    }
    uint64_t n = 0;
    {
      AsTableOwner as(t_.owner);
      n = it->second.Run(key_, 1);
    }
    out.clear();
    if (n == 0) return false;
    Rows rows;
    for (size_t c = 0; c < cols.size(); ++c) {
      bool isnull = false;
      Datum d = rows.Get(0, static_cast<int>(c + 1), &isnull);
      out.push_back(ToValue(TypeOf(cols[c]), d, isnull));
    }
    return true;
  }

  std::vector<std::vector<Value>> FindRows(const std::vector<std::string>& cols,
                                           const std::vector<Value>& values) override {
    page_.FlushBase();
    Args a;
    std::string sig, where;
    for (size_t k = 0; k < cols.size(); ++k) {
      const ColType& type = TypeOf(cols[k]);
      bool isnull = false;
      Datum d = Convert(type, values[k], cols[k], &isnull);
      a.Add(type.type, d, isnull);
      sig += cols[k] + ",";
      where += (k ? " AND " : "") + QuoteIdent(cols[k]) + " = $" + std::to_string(k + 1);
    }
    auto it = finds_.find(sig);
    if (it == finds_.end()) {
      Plan p;
      p.Prepare("SELECT " + ColumnList(t_.pk, "") + " FROM " + t_.q_name + " WHERE " + where, a.types, false);
      it = finds_.emplace(sig, std::move(p)).first;
    }
    uint64_t n = 0;
    {
      AsTableOwner as(t_.owner);
      n = it->second.Run(a);
    }
    Rows rows;
    std::vector<std::vector<Value>> keys;
    for (uint64_t r = 0; r < n; ++r) {
      std::vector<Value> key;
      for (int k = 0; k < nk_; ++k) {
        bool isnull = false;
        Datum d = rows.Get(r, k, &isnull);
        key.push_back(ToValue(t_.pk_types[k], d, isnull));
      }
      keys.push_back(std::move(key));
    }
    return keys;
  }

  // Writes the run of base-table writes that waits (PageState::FlushBase).
  void FlushBase() {
    if (page_.base_writer == this) page_.base_writer = nullptr;
    if (!run_ || run_->arrays.rows() == 0) return;
    RunShape& shape = *run_;
    ColumnArrays& run = shape.arrays;
    run_ = nullptr;
    run_keys_.clear();
    struct Cleared {
      ColumnArrays& a;
      ~Cleared() { a.Clear(); }
    } cleared{run};
    Args arrays = run.Arrays();
    uint64_t n = RunPage(PagePlan(run_sig_, shape), arrays);
    if (run_kind_ != RunKind::kUpdate || n == run.rows()) return;
    // Rows the update did not find (metadata ahead of the table) are inserted, as
    // UpdateRow's caller does.
    std::vector<bool> found(run.rows(), false);
    Rows rows;
    for (uint64_t r = 0; r < n; ++r) found[static_cast<size_t>(rows.Int(r, 0) - 1)] = true;
    std::vector<size_t> missing;
    for (size_t r = 0; r < found.size(); ++r)
      if (!found[r]) missing.push_back(r);
    std::string insert = "i" + run_sig_.substr(1);
    RunPage(PagePlan(insert, shape), run.Arrays(&missing));
  }

  // Writes the shadow rows that wait: those new here by an INSERT, the others by an UPDATE
  // (the page's read told which; nothing else writes them meanwhile).
  void FlushShadow() {
    shadow_keys_.clear();
    struct Cleared {
      ColumnArrays& a;
      ~Cleared() { a.Clear(); }
    } cleared_inserts{shadow_inserts_}, cleared_updates{shadow_updates_};
    std::string keys = ShadowKeyList(t_.pk.size());
    if (shadow_inserts_.rows() > 0) {
      if (!insert_shadows_.Ready())
        insert_shadows_.Prepare("INSERT INTO " + t_.q_meta + " (" + keys + ", cl, ver, hlc, site, clk) SELECT " +
                                    UnnestList(nk_ + 5),
                                shadow_inserts_.ArrayTypes(), false);
      insert_shadows_.Run(shadow_inserts_.Arrays());
    }
    if (shadow_updates_.rows() > 0) {
      if (!update_shadows_.Ready()) {
        std::string alias;
        std::vector<std::string> vk;
        for (int k = 0; k < nk_ + 5; ++k) alias += (k ? ", a" : "a") + std::to_string(k);
        for (int k = 0; k < nk_; ++k) vk.push_back("a" + std::to_string(k));
        std::string v = "v.a";
        update_shadows_.Prepare("UPDATE " + t_.q_meta + " AS m SET cl = " + v + std::to_string(nk_) + ", ver = " + v +
                                    std::to_string(nk_ + 1) + ", hlc = " + v + std::to_string(nk_ + 2) + ", site = " + v +
                                    std::to_string(nk_ + 3) + ", clk = " + v + std::to_string(nk_ + 4) + " FROM unnest(" +
                                    ParamList(1, nk_ + 5) + ") AS v(" + alias + ") WHERE " +
                                    KeyEquality(t_, "m", ShadowKeyNames(nk_), "v", vk),
                                shadow_updates_.ArrayTypes(), false);
      }
      uint64_t n = update_shadows_.Run(shadow_updates_.Arrays());
      if (n != shadow_updates_.rows())
        throw Error(ErrorCode::kInternal, "apply: " + std::to_string(shadow_updates_.rows() - n) +
                                              " shadow rows of table \"" + t_.name + "\" were not there to update");
    }
  }

 private:
  // Writes wait only for the rows of a page (between Prefetch and Flush), outside a row's
  // own subtransaction: there a caller may need what a write found (UpdateRow's answer).
  bool Deferring() const { return in_page_ && page_.direct == 0; }

  // Adds the current row's write to the run that waits; another table's run, a run of
  // another shape, a full one, or one with this key is written first.
  void Defer(RunKind kind) {
    if (page_.base_writer && page_.base_writer != this) page_.FlushBase();
    std::string sig = kind == RunKind::kDelete ? "d" : (kind == RunKind::kUpdate ? "u" : "i") + sig_;
    if (run_ && (run_sig_ != sig || run_keys_.count(key_bytes_) || run_->arrays.rows() >= page_.rows)) FlushBase();
    if (!run_) {
      auto it = runs_.find(sig);
      if (it == runs_.end()) {
        std::vector<Oid> types = key_.types;
        if (kind != RunKind::kDelete)
          for (uint32_t c : cols_) types.push_back(t_.col_types[c].type);
        it = runs_.emplace(sig, RunShape{ColumnArrays(types), cols_}).first;
      }
      run_ = &it->second;
      run_sig_ = sig;
      run_kind_ = kind;
    }
    run_->arrays.AddRow(kind == RunKind::kDelete ? key_ : row_, 0);
    run_keys_.insert(key_bytes_);
    page_.base_writer = this;
  }

  // The statement of a run of shape `sig` ("d", or "u"/"i" and the columns' signature).
  const Plan& PagePlan(const std::string& sig, const RunShape& shape) {
    auto it = page_plans_.find(sig);
    if (it != page_plans_.end()) return it->second;
    const std::vector<uint32_t>& cols = shape.cols;
    const ColumnArrays& arrays = shape.arrays;
    std::vector<std::string> qpk, vk;
    for (int k = 0; k < nk_; ++k) {
      qpk.push_back(QuoteIdent(t_.pk[k]));
      vk.push_back("a" + std::to_string(k));
    }
    std::string alias;
    for (size_t k = 0; k < arrays.columns(); ++k) alias += "a" + std::to_string(k) + ", ";
    std::string from = "unnest(" + ParamList(1, arrays.columns()) + ")";
    std::string sql;
    if (sig[0] == 'd') {
      sql = "DELETE FROM " + t_.q_name + " AS x USING " + from + " AS v(" + alias.substr(0, alias.size() - 2) +
            ") WHERE " + KeyEquality(t_, "x", qpk, "v", vk);
    } else if (sig[0] == 'u') {
      std::string set;
      for (size_t c = 0; c < cols.size(); ++c)
        set += (c ? ", " : "") + QuoteIdent(t_.cols[cols[c]]) + " = v.a" + std::to_string(nk_ + c);
      sql = "UPDATE " + t_.q_name + " AS x SET " + set + " FROM " + from + " WITH ORDINALITY AS v(" + alias +
            "o) WHERE " + KeyEquality(t_, "x", qpk, "v", vk) + " RETURNING v.o";
    } else {
      std::string names = ColumnList(t_.pk, ""), set;
      for (uint32_t c : cols) {
        std::string q = QuoteIdent(t_.cols[c]);
        names += ", " + q;
        set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
      }
      sql = "INSERT INTO " + t_.q_name + " (" + names + ") SELECT " + UnnestList(arrays.columns()) + " ON CONFLICT (" +
            ColumnList(t_.pk, "") + ") DO " + (set.empty() ? "NOTHING" : "UPDATE SET " + set);
    }
    Plan p;
    p.Prepare(sql, arrays.ArrayTypes(), false);
    return page_plans_.emplace(sig, std::move(p)).first->second;
  }

  // A run's statement, as the table's owner; a refusal is one of the run's rows (which one
  // does not matter: the apply is redone one row at a time).
  uint64_t RunPage(const Plan& p, const Args& a) {
    const std::vector<Value>* row = key_values_;
    key_values_ = nullptr;
    struct Restore {
      const std::vector<Value>*& to;
      const std::vector<Value>* was;
      ~Restore() { to = was; }
    } restore{key_values_, row};
    uint64_t n = RunAsTableOwner(p, a);
    return n;
  }

  // The type of a key or tracked column by name.
  const ColType& TypeOf(const std::string& col) const {
    for (size_t k = 0; k < t_.pk.size(); ++k)
      if (t_.pk[k] == col) return t_.pk_types[k];
    for (size_t k = 0; k < t_.cols.size(); ++k)
      if (t_.cols[k] == col) return t_.col_types[k];
    throw Error(ErrorCode::kInternal, "table \"" + t_.name + "\" has no tracked column \"" + col + "\"");
  }

  Args KeyArgs(const std::vector<Value>& key) {
    Args a;
    for (int k = 0; k < nk_; ++k) {
      bool isnull = false;
      Datum d = Convert(t_.pk_types[k], key[k], t_.pk[k], &isnull);
      a.Add(t_.pk_types[k].type, d, isnull);
    }
    return a;
  }

  void PrepareMeta() {
    std::vector<Oid> key_types;
    for (const ColType& c : t_.pk_types) key_types.push_back(c.type);
    std::string where = KeyParamEquality(t_, ShadowKeyNames(t_.pk.size()), 1);
    get_meta_.Prepare(std::string("SELECT ") + kShadowColumns + " FROM " + t_.q_meta + " WHERE " + where, key_types, false);
    std::vector<Oid> put_types = key_types;
    for (Oid o : {INT8OID, INT8OID, INT8OID, INT4OID, BYTEAOID}) put_types.push_back(o);
    std::string keys = ShadowKeyList(t_.pk.size()), params;
    for (size_t k = 0; k < put_types.size(); ++k) params += (k ? ", $" : "$") + std::to_string(k + 1);
    put_meta_.Prepare("INSERT INTO " + t_.q_meta + " (" + keys + ", cl, ver, hlc, site, clk) VALUES (" + params +
                          ") ON CONFLICT (" + keys + ") DO UPDATE SET cl = excluded.cl, ver = excluded.ver,"
                          " hlc = excluded.hlc, site = excluded.site, clk = excluded.clk",
                      put_types, false);
    paged_ = page_.rows > 0 && PageableTable(t_);
    if (!paged_) return;
    for (Oid o : key_types) {
      int16 len = 0;
      bool byval = false;
      PgTry([&] { get_typlenbyval(o, &len, &byval); });
      key_len_.push_back(len);
      key_byval_.push_back(byval);
    }
    key_arrays_ = ColumnArrays(key_types);
    shadow_inserts_ = ColumnArrays(put_types);
    shadow_updates_ = ColumnArrays(put_types);
  }

  // The row's key and `cols` as parameters, converted once per row (an UPDATE that finds no
  // row and the INSERT after it share them), with the columns' plan signature in sig_.
  const Args& RowArgs(const std::vector<ColumnWrite>& cols) {
    if (cols_ready_) return row_;
    sig_.clear();
    cols_.clear();
    for (const ColumnWrite& c : cols) {
      sig_ += std::to_string(c.column) + ",";
      cols_.push_back(c.column);
    }
    row_ = key_;
    for (const ColumnWrite& c : cols) {
      bool isnull = false;
      Datum d = Convert(t_.col_types[c.column], *c.value, t_.cols[c.column], &isnull);
      row_.Add(t_.col_types[c.column].type, d, isnull);
    }
    cols_ready_ = true;
    return row_;
  }

  // Input functions run as the table's owner: a domain's CHECK may call the owner's own
  // functions, which must not run with the extension owner's rights.
  // (A built-in input runs none: it needs no change of role.)
  Datum Convert(const ColType& type, const Value& v, const std::string& column, bool* isnull) {
    try {
      if (type.builtin_input) return FromValue(type, v, isnull);
      AsTableOwner as(t_.owner);
      return FromValue(type, v, isnull);
    } catch (const PgError& e) {
      throw PgError(e.sqlstate(), ErrorCode::kConstraint,
                    "cannot apply a change to column \"" + column + "\" of table \"" + t_.name + "\": " + e.message(), e.detail(), e.hint());
    }
  }

  // Base-table statements run as the table's owner (the caller holds its privileges), after
  // the writes that wait. An integrity constraint's refusal (SQLSTATE class 23) sets the row
  // aside, naming its key.
  uint64_t RunAsTableOwner(const Plan& p, const Args& a) {
    if (page_.base_writer) page_.FlushBase();
    AsTableOwner as(t_.owner);
    try {
      return p.Run(a);
    } catch (const PgError& e) {
      std::string what = "cannot apply a change to table \"" + t_.name + "\"";
      if (ERRCODE_TO_CATEGORY(e.sqlstate()) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
        throw RowRefused(what + ", key " + (key_values_ ? KeyText(*key_values_) : "(one of a page of rows)") + ": " +
                         e.message() + (e.detail().empty() ? "" : " (" + e.detail() + ")"));
      throw PgError(e.sqlstate(), ErrorCode::kConstraint, what + ": " + e.message(), e.detail(), e.hint());
    }
  }

  // UPDATE t SET <cols> = $(nk+1).. WHERE <key> = $1..
  Plan PrepareUpdate(const std::vector<ColumnWrite>& cols, const Args& a) const {
    std::vector<std::string> qpk;
    for (const auto& c : t_.pk) qpk.push_back(QuoteIdent(c));
    std::string set;
    int n = nk_;
    for (const ColumnWrite& c : cols)
      set += (set.empty() ? "" : ", ") + QuoteIdent(t_.cols[c.column]) + " = $" + std::to_string(++n);
    Plan p;
    p.Prepare("UPDATE " + t_.q_name + " SET " + set + " WHERE " + KeyParamEquality(t_, qpk, 1), a.types, false);
    return p;
  }

  // INSERT INTO t (<key>, <cols>) VALUES ($1..) ON CONFLICT (<key>) DO UPDATE SET <cols>.
  Plan PrepareInsert(const std::vector<ColumnWrite>& cols, const Args& a) const {
    std::string names = ColumnList(t_.pk, ""), vals, set;
    for (size_t k = 0; k < t_.pk.size(); ++k) vals += (k ? ", $" : "$") + std::to_string(k + 1);
    int n = nk_;
    for (const ColumnWrite& c : cols) {
      std::string q = QuoteIdent(t_.cols[c.column]);
      names += ", " + q;
      vals += ", $" + std::to_string(++n);
      set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
    }
    Plan p;
    p.Prepare("INSERT INTO " + t_.q_name + " (" + names + ") VALUES (" + vals + ") ON CONFLICT (" +
                  ColumnList(t_.pk, "") + ") DO " + (set.empty() ? "NOTHING" : "UPDATE SET " + set),
              a.types, false);
    return p;
  }

  const TableInfo& t_;
  int nk_;
  PageState& page_;
  Plan get_meta_, put_meta_, delete_;
  std::map<std::string, Plan> updates_, inserts_;  // by the columns written
  std::map<std::string, Plan> reads_, finds_;      // by the columns read or matched
  const std::vector<Value>* key_values_ = nullptr;  // the current row's key
  Args key_, row_;     // the current row's key, and key plus written columns
  bool cols_ready_ = false;  // row_, sig_ and cols_ hold the current row's
  std::string sig_;
  std::vector<uint32_t> cols_;
  // A page at a time (PageState::rows > 0 and PageableTable).
  bool paged_ = false;
  bool in_page_ = false;  // between Prefetch and Flush
  std::vector<int16> key_len_;
  std::vector<bool> key_byval_;
  std::string key_bytes_;  // the current row's key (KeyBytes)
  std::unordered_map<std::string, std::optional<ShadowRow>> cache_;  // read ahead, not written since
  bool shadow_found_ = false;  // the current row has a shadow row (ReadShadow)
  Plan prefetch_, insert_shadows_, update_shadows_;
  ColumnArrays key_arrays_;                        // the page's keys
  ColumnArrays shadow_inserts_, shadow_updates_;  // the shadow rows that wait, new and not
  std::unordered_set<std::string> shadow_keys_;  // their keys
  std::map<std::string, RunShape> runs_;         // by shape
  std::map<std::string, Plan> page_plans_;       // likewise
  RunShape* run_ = nullptr;                      // the run that waits, if any
  std::string run_sig_;
  RunKind run_kind_ = RunKind::kInsert;
  std::unordered_set<std::string> run_keys_;  // its keys
};

void PageState::FlushBase() {
  if (base_writer) base_writer->FlushBase();
}

void PageState::FlushAll() {
  FlushBase();
  for (PgApplyTable* t : open) t->FlushShadow();
}

// Apply runs with session_replication_role = replica, a superuser's setting: a table whose
// triggers or rules fire in that mode (ENABLE ALWAYS / ENABLE REPLICA) would run its owner's
// code with foreign keys elsewhere unchecked. Only a superuser may apply into such a table.
void RefuseForeignReplicaCode(const TableInfo& t) {
  bool super = false;
  PgTry([&] { super = superuser(); });
  if (super) return;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(t.relid));
  AsOwner as;
  RunSql("SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgenabled IN ('A', 'R') AND NOT tgisinternal"
         " UNION ALL SELECT 1 FROM pg_rewrite WHERE ev_class = $1 AND ev_enabled IN ('A', 'R') AND rulename <> '_RETURN'",
         a);
  if (SPI_processed > 0)
    throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, ErrorCode::kInvalidArgument,
                  "table \"" + t.name + "\" has triggers or rules enabled ALWAYS or REPLICA; only a superuser may "
                  "apply changes into it (they would run during the apply)");
}

// The sequences of a table's integer key columns (serial, identity) move past every key the
// table holds now: ids applied from other sites are never allocated again by a local insert.
// (Two sites still allocate the same next id concurrently: deltasync_id() avoids that.)
void AdvanceKeySequences(const TableInfo& t) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(t.relid));
  RunSql("SELECT quote_ident(a.attname), pg_get_serial_sequence(i.indrelid::regclass::text, a.attname)"
         " FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
         " WHERE i.indrelid = $1 AND i.indisprimary AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
         a);
  std::vector<std::pair<std::string, std::string>> seqs;
  for (uint64_t r = 0; r < SPI_processed; ++r)
    if (!Rows().IsNull(r, 1)) seqs.emplace_back(ResultText(r, 0), ResultText(r, 1));
  for (const auto& [col, seq] : seqs) {
    Args q;
    q.AddText(seq);
    // The sequence's last value is read under its buffer lock (pg_sequence_last_value): a
    // plain SELECT from the sequence may see the value nextval pre-logs 32 increments ahead
    // and skip a setval that is needed (docs/postgresql.md, "Versions under concurrency").
    RunSql("SELECT setval($1::regclass, m) FROM (SELECT max(" + col + ")::bigint AS m FROM " + t.q_name +
               ") AS x WHERE x.m > coalesce(pg_catalog.pg_sequence_last_value($1::regclass),"
               " (SELECT s.seqstart - 1 FROM pg_catalog.pg_sequence AS s WHERE s.seqrelid = $1::regclass))",
           q);
  }
}

// The apply loop's port on this backend.
class PgApply : public ApplyPort {
 public:
  int64_t MaxClockDriftSetting() override {
    return b_.SettingInt("max_clock_drift_ms", static_cast<int64_t>(kDefaultMaxClockDriftMs));
  }

  // Checks the caller may write the table, before anything is written.
  int FindTable(const std::string& name) override {
    if (!loaded_) {
      tables_ = b_.LoadTables();
      loaded_ = true;
    }
    int found = -1;
    for (size_t k = 0; k < tables_.size(); ++k)
      if (EqualsIgnoreAsciiCase(tables_[k].name, name)) found = static_cast<int>(k);
    if (found < 0 || tables_[found].dropped) return -1;
    const TableInfo* t = &tables_[found];
    if (t->Unservable()) throw Error(ErrorCode::kInvalidArgument, BrokenMessage(*t));
    CheckAccess(*t, Access::kWrite);
    RefuseForeignReplicaCode(*t);
    if (std::find(touched_.begin(), touched_.end(), t) == touched_.end()) touched_.push_back(t);
    return found;
  }

  // The foreign keys between tracked tables onto the parent's whole primary key. Both ends
  // are resolved as FindTable does (checked, locked with the others).
  std::vector<ForeignKey> ForeignKeys() override {
    std::vector<ForeignKey> out;
    if (!loaded_) return out;
    std::string relids;
    for (const TableInfo& t : tables_)
      if (!t.dropped) relids += (relids.empty() ? "" : ",") + std::to_string(t.relid);
    if (relids.empty()) return out;
    Args a;
    a.AddText("{" + relids + "}");
    std::vector<std::tuple<std::string, Oid, Oid, std::string, std::string, std::string>> raw;
    {
      AsOwner as;
      RunSql("SELECT c.conname::text, c.conrelid, c.confrelid, c.confdeltype::text,"
             " (SELECT json_agg(a.attname::text ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)"
             "  JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.n)::text,"
             " (SELECT json_agg(a.attname::text ORDER BY k.i) FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i)"
             "  JOIN pg_attribute AS a ON a.attrelid = c.confrelid AND a.attnum = k.n)::text"
             " FROM pg_constraint AS c WHERE c.contype = 'f' AND c.conrelid = ANY ($1::text::oid[])"
             " AND c.confrelid = ANY ($1::text::oid[]) ORDER BY c.conrelid, c.conname",
             a);
      Rows rows;
      for (uint64_t r = 0; r < rows.size(); ++r)
        raw.emplace_back(rows.Text(r, 0), static_cast<Oid>(rows.Int(r, 1)), static_cast<Oid>(rows.Int(r, 2)),
                         rows.Text(r, 3), rows.Text(r, 4), rows.Text(r, 5));
    }
    for (const auto& [name, child_rel, parent_rel, action, from_json, to_json] : raw) {
      int child = -1, parent = -1;
      for (size_t k = 0; k < tables_.size(); ++k) {
        if (tables_[k].dropped) continue;
        if (tables_[k].relid == child_rel) child = static_cast<int>(k);
        if (tables_[k].relid == parent_rel) parent = static_cast<int>(k);
      }
      if (child < 0 || parent < 0) continue;
      std::vector<std::string> from = nlohmann::json::parse(from_json).get<std::vector<std::string>>();
      std::vector<std::string> to = nlohmann::json::parse(to_json).get<std::vector<std::string>>();
      const std::vector<std::string>& pk = tables_[parent].pk;
      if (to.size() != pk.size()) continue;  // not onto the parent's key
      ForeignKey fk;
      fk.child = FindTable(tables_[child].name);
      fk.parent = FindTable(tables_[parent].name);
      for (const std::string& p : pk)
        for (size_t k = 0; k < to.size(); ++k)
          if (to[k] == p) fk.columns.push_back(from[k]);
      if (fk.columns.size() != pk.size() || fk.child < 0 || fk.parent < 0) continue;
      fk.set_null = action == "n";
      std::string cols;
      for (const std::string& c : fk.columns) cols += (cols.empty() ? "" : ", ") + c;
      fk.name = tables_[child].name + "(" + cols + ") -> " + tables_[parent].name + " (" + name + ")";
      out.push_back(std::move(fk));
    }
    return out;
  }

  std::vector<HeldRow> HeldRows() override {
    AsOwner as;
    RunSql("SELECT tbl, key, changes, error, since_ms FROM deltasync.quarantine ORDER BY since_ms, tbl, key");
    Rows rows;
    std::vector<HeldRow> out;
    for (uint64_t r = 0; r < rows.size(); ++r)
      out.push_back(HeldRow{rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2), rows.Text(r, 3), rows.Int(r, 4)});
    return out;
  }

  // A failed statement aborts the apply's subtransaction: a page with a refused row is
  // redone with one subtransaction per row.
  bool RefusalAbortsAtomically() override { return true; }

  // The writes that wait go first: a refusal inside is this row's.
  void RowAtomically(const std::function<void()>& body) override {
    page_.FlushAll();
    ++page_.direct;
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{page_.direct};
    SubTransaction sub;
    body();
    sub.Commit();
  }

  size_t PageRows() override { return page_.rows; }

  void Hold(const HeldRow& row) override {
    Args a;
    a.AddText(row.table);
    a.AddBytea(row.key);
    a.AddText(row.changes);
    a.AddText(row.error);
    a.AddInt8(row.since_ms);
    RunSql("INSERT INTO deltasync.quarantine (tbl, key, changes, error, since_ms) VALUES ($1, $2, $3, $4, $5)"
           " ON CONFLICT (tbl, key) DO UPDATE SET changes = excluded.changes, error = excluded.error",
           a);
  }

  void Release(const std::string& table, const std::string& key) override {
    Args a;
    a.AddText(table);
    a.AddBytea(key);
    RunSql("DELETE FROM deltasync.quarantine WHERE tbl = $1 AND key = $2", a);
  }

  std::vector<std::pair<std::string, std::string>> PendingColumns() override {
    AsOwner as;
    RunSql("SELECT DISTINCT tbl, col FROM deltasync.pending");
    Rows rows;
    std::vector<std::pair<std::string, std::string>> out;
    for (uint64_t r = 0; r < rows.size(); ++r) out.emplace_back(rows.Text(r, 0), rows.Text(r, 1));
    return out;
  }

  std::vector<PendingCell> PendingCells(const std::string& table, const std::string& column) override {
    Args a;
    a.AddText(table);
    a.AddText(column);
    RunSql("SELECT key, change, since_ms FROM deltasync.pending WHERE tbl = $1 AND col = $2 ORDER BY key", a);
    Rows rows;
    std::vector<PendingCell> out;
    for (uint64_t r = 0; r < rows.size(); ++r)
      out.push_back(PendingCell{table, column, rows.Text(r, 0), rows.Text(r, 1), rows.Int(r, 2)});
    return out;
  }

  std::optional<PendingCell> FindPending(const std::string& table, const std::string& column,
                                         const std::string& key) override {
    Args a;
    a.AddText(table);
    a.AddText(column);
    a.AddBytea(key);
    RunSql("SELECT change, since_ms FROM deltasync.pending WHERE tbl = $1 AND col = $2 AND key = $3", a);
    if (SPI_processed == 0) return std::nullopt;
    Rows rows;
    return PendingCell{table, column, key, rows.Text(0, 0), rows.Int(0, 1)};
  }

  void Keep(const PendingCell& cell) override {
    Args a;
    a.AddText(cell.table);
    a.AddText(cell.column);
    a.AddBytea(cell.key);
    a.AddText(cell.change);
    a.AddInt8(cell.since_ms);
    RunSql("INSERT INTO deltasync.pending (tbl, col, key, change, since_ms) VALUES ($1, $2, $3, $4, $5)"
           " ON CONFLICT (tbl, col, key) DO UPDATE SET change = excluded.change",
           a);
  }

  void DropPending(const std::string& table, const std::string& column) override {
    Args a;
    a.AddText(table);
    a.AddText(column);
    RunSql("DELETE FROM deltasync.pending WHERE tbl = $1 AND col = $2", a);
  }

  std::vector<GoneColumn> GoneColumns(int handle) override {
    Args a;
    a.AddInt4(tables_[handle].id);
    RunSql("SELECT name, coalesce(now_named, '') FROM deltasync.gone_columns WHERE table_id = $1", a);
    Rows rows;
    std::vector<GoneColumn> out;
    for (uint64_t r = 0; r < rows.size(); ++r) out.push_back(GoneColumn{rows.Text(r, 0), rows.Text(r, 1)});
    return out;
  }

  uint64_t LocalHlc() override { return b_.BeginWrite(); }

  // Takes the write state, then, in a subtransaction as the extension's owner with
  // replica role, locks the touched tables in catalog order (no lock-order deadlocks).
  void Atomically(const std::function<void()>& body) override {
    std::sort(touched_.begin(), touched_.end(), [](const TableInfo* x, const TableInfo* y) { return x->id < y->id; });
    b_.BeginWrite();
    // A redo takes the versions this attempt took (where a refusal was found does not change them).
    Backend::VersionMark versions = b_.MarkVersions();
    ScopedFlag applying(b_.applying);
    SubTransaction sub;
    try {
      AsOwner as;
      PgTry([] {
        (void)set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                                true, 0, false);
      });
      for (const TableInfo* t : touched_) {
        RunSql("LOCK TABLE " + t->q_name + " IN SHARE ROW EXCLUSIVE MODE");
        RunSql("LOCK TABLE " + t->q_meta + " IN SHARE ROW EXCLUSIVE MODE");
      }
      body();
      page_.FlushAll();
      for (const TableInfo* t : touched_) AdvanceKeySequences(*t);
    } catch (...) {
      b_.ForgetSites();  // site rows inserted by the body are rolled back with the subtransaction
      b_.RewindVersions(versions);
      throw;
    }
    sub.Commit();
  }

  std::unique_ptr<ApplyTable> OpenTable(int handle) override {
    return std::make_unique<PgApplyTable>(tables_[handle], page_);
  }

  uint32_t SiteOrdinal(const SiteId& site) override { return b_.SiteOrdinal(site); }
  const SiteId& SiteOf(uint32_t ordinal) override { return b_.SiteOf(ordinal); }
  int64_t NextVersion() override { return b_.NextVersion(); }

  void ObserveClock(uint64_t max_hlc) override {
    if (max_hlc == 0) return;
    b_.clock().Observe(max_hlc);
    b_.PersistClock(max_hlc);
    b_.RefreshTxnHlc();
  }

 private:
  Backend& b_ = Backend::Get();
  PageState page_{static_cast<size_t>(apply_page_rows)};
  bool loaded_ = false;
  std::vector<TableInfo> tables_;
  std::vector<const TableInfo*> touched_;
};

}  // namespace

void pg::DefineApplySettings() {
  PgTry([] {
    DefineCustomIntVariable("deltasync.apply_page_rows",
                            "Rows of one table that deltasync_apply reads and writes with one statement.",
                            "0 applies one row at a time, with a statement per row and step.", &apply_page_rows,
                            1000, 0, 1000000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  });
}

ApplyResult pg::ApplyPayload(const Payload& p) {
  PgApply port;
  return deltasync::ApplyPayload(port, p);
}

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_apply) {
  std::string text = TextArg(fcinfo, 0, "deltasync_apply(payload)");
  Payload p = DecodeJson(text);  // fully validated before anything is touched
  SpiSession spi;
  RequireCurrentCatalog("deltasync_apply");  // the quarantine came with 0.2.0
  ApplyResult r = ApplyPayload(p);
  nlohmann::json result = ApplyResultJson(r, Backend::Get().SafeVersion());
  spi.Finish();
  return JsonbResult(result);
}

DELTASYNC_PG_FUNCTION(deltasync_quarantine) {
  SpiSession spi;
  RequireCurrentCatalog("deltasync_quarantine");
  PgApply port;
  nlohmann::json result = QuarantineDocument(port.HeldRows());
  spi.Finish();
  return JsonbResult(result);
}
