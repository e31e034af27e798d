#include "common/apply_loop.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "common/hlc.hpp"
#include "common/json_column.hpp"
#include "common/key_codec.hpp"
#include "common/merge.hpp"
#include "common/pending_cells.hpp"
#include "common/utf8.hpp"

namespace deltasync {

namespace {

// A payload table split by what this site has: `known` holds the changes of columns it
// tracks, under their local names (nullopt: all of `tc` as it is); `keep` lists the changes
// (row index, change index in `tc`) of columns it does not have (yet), which are kept as
// pending cells; changes of columns it dropped are counted in `dropped` and left out.
struct SplitTable {
  std::optional<TableChanges> known;
  std::vector<std::pair<size_t, size_t>> keep;
};

// Splits `tc` against the local columns; `gone` is read only when a payload column is not
// one of them. Two payload columns landing in one local column (a column's old and new
// name) keep, per row, the newer change by (cl, hlc, site).
SplitTable SplitColumns(const TableChanges& tc, const std::vector<std::string>& local_cols,
                        const std::function<std::vector<GoneColumn>()>& gone_of, const std::vector<SiteId>& sites,
                        uint64_t& dropped) {
  auto local_index = [&](const std::string& name) -> int64_t {
    for (size_t c = 0; c < local_cols.size(); ++c)
      if (EqualsIgnoreAsciiCase(local_cols[c], name)) return static_cast<int64_t>(c);
    return -1;
  };
  constexpr int64_t kKeep = -1, kDrop = -2;
  std::vector<int64_t> to(tc.columns.size(), kKeep);  // payload column -> column of `known`, or kKeep/kDrop
  std::vector<std::string> out_cols;
  std::vector<int64_t> out_of_local;  // local column -> column of `known` (-1: none yet)
  bool all = true;  // every payload column is a local one, in place
  std::optional<std::vector<GoneColumn>> gone;
  for (size_t k = 0; k < tc.columns.size(); ++k) {
    int64_t local = local_index(tc.columns[k]);
    if (local < 0) {
      all = false;
      if (!gone) gone = gone_of();
      std::string now = FollowGoneColumn(tc.columns[k], *gone);
      if (now.empty()) {
        to[k] = kDrop;
        continue;
      }
      local = local_index(now);
      if (local < 0) continue;  // kKeep
    }
    if (out_of_local.size() <= static_cast<size_t>(local)) out_of_local.resize(local + 1, -1);
    if (out_of_local[local] < 0) {
      out_of_local[local] = static_cast<int64_t>(out_cols.size());
      out_cols.push_back(local_cols[local]);
    }
    to[k] = out_of_local[local];
  }
  for (size_t k = 0; all && k < tc.columns.size(); ++k)
    all = to[k] == static_cast<int64_t>(k) && EqualsIgnoreAsciiCase(out_cols[k], tc.columns[k]);
  SplitTable out;
  if (all) return out;
  TableChanges t;
  t.name = tc.name;
  t.pk = tc.pk;
  t.columns = std::move(out_cols);
  if (AnyPolicy(tc.policies)) {  // the policies follow their columns
    t.policies.assign(t.columns.size(), ColumnPolicy::kLww);
    for (size_t k = 0; k < tc.columns.size(); ++k)
      if (to[k] >= 0) t.policies[static_cast<size_t>(to[k])] = tc.policies[k];
    if (!AnyPolicy(t.policies)) t.policies.clear();
  }
  t.rows.reserve(tc.rows.size());
  for (size_t ri = 0; ri < tc.rows.size(); ++ri) {
    const RowChanges& r = tc.rows[ri];
    RowChanges kept;
    kept.key = r.key;
    kept.cl = r.cl;
    for (size_t ci = 0; ci < r.changes.size(); ++ci) {
      const ColumnChange& c = r.changes[ci];
      if (to[c.column] == kDrop) {
        ++dropped;
        continue;
      }
      if (to[c.column] == kKeep) {
        out.keep.emplace_back(ri, ci);
        continue;
      }
      auto dest = static_cast<uint32_t>(to[c.column]);
      // A counter's changes are one per contributor: only one of the same site is the same.
      // A json column's are one per member: only one of the same path is the same.
      const bool counter = PolicyAt(tc.policies, c.column) == ColumnPolicy::kCounter;
      const bool json = PolicyAt(tc.policies, c.column) == ColumnPolicy::kJson;
      auto same = std::find_if(kept.changes.begin(), kept.changes.end(), [&](const ColumnChange& e) {
        return e.column == dest && (!counter || sites[e.site] == sites[c.site]) &&
               (!json || MemberChangePath(e.value.s) == MemberChangePath(c.value.s));
      });
      if (same != kept.changes.end()) {
        if (CompareClocks(Clock{c.cl, c.hlc, sites[c.site]}, Clock{same->cl, same->hlc, sites[same->site]}) > 0) {
          *same = c;
          same->column = dest;
        }
        continue;
      }
      ColumnChange moved = c;
      moved.column = dest;
      kept.changes.push_back(std::move(moved));
    }
    t.rows.push_back(std::move(kept));
  }
  out.known = std::move(t);
  return out;
}

using RowId = std::pair<int, std::string>;  // a table handle and EncodeKey of a row's key

// Thrown inside Atomically to redo the apply: one row at a time (a refusal spoiled the
// engine's transaction), or with more rows set aside from the start (children whose parent
// is not here, found after the rows).
struct Redo {
  bool isolate = false;
  std::map<RowId, std::string> hold;  // row -> why it is held
};

// A held row during one attempt of an apply.
struct HeldEntry {
  HeldRow row;
  Payload payload;  // row.changes decoded, merged with what this apply adds
  int handle = -1;  // -1: its table is not tracked here now (it stays held)
  bool stored = false, dirty = false, released = false;
};

// One attempt of an apply inside the port's Atomically: the payload's rows, then the held
// rows, then the foreign-key check of the children it wrote.
class PageApply {
 public:
  PageApply(ApplyPort& port, const std::vector<ForeignKey>& fks, const std::map<RowId, std::string>& pre_held,
            bool isolate, ApplyResult& counts)
      : port_(port), fks_(fks), pre_held_(pre_held), isolate_(isolate), counts_(counts) {
    site_of_ = [this](uint32_t ord) -> const SiteId& { return port_.SiteOf(ord); };
    for (const ForeignKey& fk : fks_) {
      parents_.insert(fk.parent);
      children_.insert(fk.child);
    }
  }

  // Applies one row of payload table `tc` (its columns known here, mapped by `map`); sets
  // it aside when the engine refuses it. `from` is the held entry being retried, if any.
  // `echo` false: the row's version is not one of this pull's (a kept cell may have come
  // from another hub).
  void ApplyRow(int handle, const TableChanges& tc, const TableMapping& map, const RowChanges& r,
                const std::vector<SiteId>& sites, HeldEntry* from, bool echo = true) {
    if (!pre_held_.empty()) {
      auto it = pre_held_.find(RowId(handle, EncodeKey(r.key)));
      if (it != pre_held_.end()) return HoldRow(handle, tc, r, sites, it->second, from);
    }
    uint64_t applied = counts_.applied, ignored = counts_.ignored, rows = counts_.rows;
    // A held row's retry may fail again, and must not spoil the page's fast path.
    bool wrap = isolate_ || from;
    try {
      if (wrap) port_.RowAtomically([&] { WriteRow(handle, map, r, from == nullptr && echo); });
      else WriteRow(handle, map, r, echo);
    } catch (const RowRefused& e) {
      if (!wrap && port_.RefusalAbortsAtomically()) throw Redo{true, {}};
      counts_.applied = applied;
      counts_.ignored = ignored;
      counts_.rows = rows;
      return HoldRow(handle, tc, r, sites, e.message(), from);
    }
    if (from) from->released = true;
  }

  // A page of payload rows [begin, end) of `tc` (ApplyPort::PageRows): their shadow rows are
  // read ahead (but those of rows set aside from the start, which are not applied), the
  // rows applied, the writes the engine deferred done.
  void ApplyPage(int handle, const TableChanges& tc, const TableMapping& map, size_t begin, size_t end,
                 const std::vector<SiteId>& sites) {
    std::vector<const std::vector<Value>*> keys;
    keys.reserve(end - begin);
    for (size_t k = begin; k < end; ++k)
      if (pre_held_.empty() || !pre_held_.count(RowId(handle, EncodeKey(tc.rows[k].key)))) keys.push_back(&tc.rows[k].key);
    Table(handle).Prefetch(keys);
    for (size_t k = begin; k < end; ++k) ApplyRow(handle, tc, map, tc.rows[k], sites, nullptr);
    Flush();
  }

  // Does every table's deferred writes. A refusal among them is one of rows applied without
  // their own subtransaction: the apply is redone one row at a time, as ApplyRow does.
  void Flush() {
    try {
      for (auto& [handle, table] : tables_) table->Flush();
    } catch (const RowRefused&) {
      if (isolate_ || !port_.RefusalAbortsAtomically()) throw;
      throw Redo{true, {}};
    }
  }

  // Retries every held row whose table is tracked; one whose parent row is still missing
  // stays held without a try.
  void RetryHeld(std::vector<HeldEntry>& held) {
    for (size_t k = 0; k < held.size(); ++k) {
      HeldEntry& h = held[k];
      if (h.handle < 0 || h.released) continue;
      std::vector<uint32_t> ords;
      for (const SiteId& s : h.payload.sites) ords.push_back(port_.SiteOrdinal(s));
      ApplyTable& table = Table(h.handle);
      TableNames names = table.Names();
      // Its changes of columns not here are kept as pending cells (they survive its release).
      SplitTable split = SplitAndKeep(h.handle, h.payload.tables[0], h.payload.sites);
      const TableChanges& use = split.known ? *split.known : h.payload.tables[0];
      TableMapping map = MapTable(names.name, names.pk, names.cols, use, ords, names.policies);
      const RowChanges& r = use.rows[0];
      if (std::string why = MissingParent(h.handle, use, r); !why.empty()) {
        h.row.error = why;
        h.dirty = true;
        continue;
      }
      ApplyRow(h.handle, use, map, r, h.payload.sites, &h);
    }
  }

  // Splits payload table `tc` (of local table `handle`) by the columns this site has and
  // keeps the changes of those it does not have (yet) as pending cells.
  SplitTable SplitAndKeep(int handle, const TableChanges& tc, const std::vector<SiteId>& sites) {
    TableNames names = Table(handle).Names();
    SplitTable split = SplitColumns(
        tc, names.cols, [&] { return port_.GoneColumns(handle); }, sites, counts_.untracked);
    for (const auto& [ri, ci] : split.keep) KeepCell(names.name, tc, tc.rows[ri], tc.rows[ri].changes[ci], sites);
    return split;
  }

  // Applies the kept cells of each (table handle, column) in `pending` whose column is
  // tracked here now, by the normal merge rules, and forgets them; forgets those of a column
  // dropped here. The versions they get are not this pull's: they are pushed to every hub.
  void ApplyPending(const std::vector<std::tuple<int, std::string, std::string>>& pending) {
    for (const auto& [handle, table, column] : pending) {
      TableNames names = Table(handle).Names();
      std::string now = FollowGoneColumn(column, port_.GoneColumns(handle));
      bool here = std::any_of(names.cols.begin(), names.cols.end(),
                              [&](const std::string& c) { return EqualsIgnoreAsciiCase(c, now); });
      if (!now.empty() && !here) continue;  // still not here: they stay kept
      if (here) {
        for (const PendingCell& cell : port_.PendingCells(table, column)) {
          Payload one = DecodeJson(cell.change);
          one.tables[0].pk = names.pk;  // the key by position: its columns may have been renamed since
          std::vector<uint32_t> ords;
          for (const SiteId& s : one.sites) ords.push_back(port_.SiteOrdinal(s));
          SplitTable split = SplitAndKeep(handle, one.tables[0], one.sites);
          const TableChanges& use = split.known ? *split.known : one.tables[0];
          TableMapping map = MapTable(names.name, names.pk, names.cols, use, ords, names.policies);
          ApplyRow(handle, use, map, use.rows[0], one.sites, nullptr, false);
          ++counts_.unkept;
        }
      }
      port_.DropPending(table, column);
    }
  }

  // The children this apply wrote whose parent row is not here: a parent deleted here wins
  // (the child is removed as a local change); a parent never seen here holds the child until
  // it arrives (the apply is redone with the child set aside).
  void CheckChildren() {
    Redo redo;
    std::set<std::string> seen;
    for (const auto& [handle, key] : written_) {
      if (!seen.insert(std::to_string(handle) + ":" + EncodeKey(key)).second) continue;
      for (const ForeignKey& fk : fks_) {
        if (fk.child != handle) continue;
        ApplyTable& child = Table(handle);
        ShadowRow shadow;
        child.ReadShadow(key, shadow);
        std::vector<Value> values;
        if (!child.ReadColumns(key, fk.columns, values)) break;  // removed meanwhile
        ParentState state = Parent(fk, values);
        if (state == ParentState::kDeleted) {
          visiting_.clear();
          RemoveChild(fk, key);
          break;
        }
        if (state == ParentState::kMissing) redo.hold[RowId(handle, EncodeKey(key))] = MissingText(fk, values);
      }
    }
    if (!redo.hold.empty()) throw redo;
  }

  // Writes the held rows this attempt changed, drops those that applied; counts what is held.
  void StoreHeld(std::vector<HeldEntry>& held) {
    for (HeldEntry& h : held) {
      if (h.released) {
        if (h.stored) port_.Release(h.row.table, h.row.key);
        ++counts_.released;
        continue;
      }
      ++counts_.held;
      if (h.dirty) {
        h.row.changes = EncodeJson(h.payload);
        port_.Hold(h.row);
      }
    }
  }

  ApplyTable& Table(int handle) {
    auto it = tables_.find(handle);
    if (it == tables_.end()) it = tables_.emplace(handle, port_.OpenTable(handle)).first;
    return *it->second;
  }

  void SetHeld(std::vector<HeldEntry>* held) {
    held_ = held;
    held_index_.clear();
    for (size_t k = 0; k < held->size(); ++k) held_index_.emplace(HeldId((*held)[k].row.table, (*held)[k].row.key), k);
  }

 private:
  enum class ParentState { kPresent, kDeleted, kMissing };

  // A held row's identity: its table, compared ignoring ASCII case as SQLite names are, and
  // its encoded key.
  static std::string HeldId(const std::string& table, const std::string& key) {
    std::string id = table;
    for (char& c : id)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    id.push_back('\0');
    return id + key;
  }

  // One row: local clocks, decision, base row, clocks, counts. A held row's version is not
  // one of the apply's (`echo` false): it may have come from another hub than this pull's,
  // so it is pushed to every hub (where it merges to nothing if it is known).
  void WriteRow(int handle, const TableMapping& map, const RowChanges& r, bool echo) {
    ApplyTable& table = Table(handle);
    ShadowRow shadow;  // cl 0, no clocks: this site never saw the row
    table.ReadShadow(r.key, shadow);
    std::function<Value(uint32_t)> base;  // read only for policies: built only for them
    if (map.policies) base = [&](uint32_t col) { return BaseColumn(table, r.key, col); };
    RowDecision d = DecideRow(shadow.cl, shadow.clocks, r, map, site_of_, map.policies ? &base : nullptr);
    const RowMerge& m = d.merge;
    if (!CountRow(d, counts_)) return;

    if (m.existed && !m.exists) {
      if (parents_.count(handle)) {
        // The delete wins over the rows that reference this one (docs/applications.md):
        // they go first, as local changes, all or nothing with the parent's delete.
        port_.RowAtomically([&] {
          visiting_.clear();
          RemoveChildren(handle, r.key);
          ShadowRow again;
          table.ReadShadow(r.key, again);  // the row's later calls follow a ReadShadow of its key
          table.DeleteRow(r.key);
        });
      } else {
        table.DeleteRow(r.key);
      }
    }
    // Exactly the winning columns are written. A row this site holds is UPDATEd, so columns
    // that did not change are never needed (NOT NULL columns without a default stay as they
    // are); a row new here is INSERTed, and an UPDATE that finds no base row (metadata ahead
    // of the table) falls back to the insert.
    // A counter's sum is written where it may have moved (common/row_apply's CounterWrites).
    // A json column's document is written where its members may have moved (JsonWrites).
    if (map.policies) {
      CounterWrites(counter_writes_, d, shadow.clocks, shadow.cl, r, map, table.Names().cols, table.Names().name, base);
      JsonWrites(json_writes_, d, shadow.cl, map, table.Names().cols.size());
    }
    if (m.exists && (!m.existed || !d.winners.empty() ||
                     (map.policies && (!counter_writes_.empty() || !json_writes_.empty())))) {
      writes_.clear();
      for (size_t k : d.winners) writes_.push_back(ColumnWrite{map.columns[r.changes[k].column], &r.changes[k].value});
      if (map.policies) {
        for (const CounterWrite& w : counter_writes_) writes_.push_back(ColumnWrite{w.column, &w.value});
        for (const JsonWrite& w : json_writes_) writes_.push_back(ColumnWrite{w.column, &w.value});
      }
      if (!m.existed || !table.UpdateRow(r.key, writes_)) table.InsertRow(r.key, writes_);
      if (children_.count(handle)) written_.emplace_back(handle, r.key);
    }

    // A new life of a row this site holds (deleted and inserted again elsewhere) whose
    // changes do not cover every column (the writer lacked some): what the old life left
    // there is reset to the default, without a version, as the writer's row has it.
    std::vector<uint32_t> stale;
    size_t ncols = table.Names().cols.size();
    if (m.existed && m.exists && m.cl_advanced) {
      std::vector<bool> won(ncols, false);
      for (size_t k : d.winners) won[map.columns[r.changes[k].column]] = true;
      for (uint32_t c = 0; c < ncols; ++c) {
        const ColClock& lc = shadow.clocks.Get(c);
        // A counter's new life is the sum of its contributions, written above (CounterWrites).
        // A json column's new life is the document of its members, written above (JsonWrites).
        if (!won[c] && lc.Present() && lc.cl < m.cl && !map.Counter(c) && !map.Json(c)) stale.push_back(c);
      }
      if (!stale.empty()) table.ResetColumns(r.key, stale);
    }

    int64_t ver = port_.NextVersion();
    if (echo) counts_.AddVersion(ver);
    AdoptWinners(shadow.clocks, d, r, map, ncols, ver);
    for (uint32_t c : stale) shadow.clocks.Set(c, ColClock{});
    if (map.policies && m.exists && m.cl_advanced) shadow.clocks.SetAllMembers({});
    for (const JsonWrite& w : json_writes_) StoreMembers(shadow.clocks, w.column, w.members);
    table.WriteShadow(r.key, m.cl, ver, shadow.clocks);
  }

  // Keeps change `c` of row `r` of payload table `tc` as the pending cell of (table, column,
  // key), or merges it into the one kept there: the newer change stays.
  void KeepCell(const std::string& table, const TableChanges& tc, const RowChanges& r, const ColumnChange& c,
                const std::vector<SiteId>& sites) {
    Payload one = CellPayload(tc, r, c, sites);
    one.tables[0].name = table;
    PendingCell cell{table, tc.columns[c.column], EncodeKey(r.key), "", static_cast<int64_t>(WallClockMillis())};
    if (std::optional<PendingCell> old = port_.FindPending(cell.table, cell.column, cell.key)) {
      Payload merged = DecodeJson(old->change);
      MergeHeld(merged, one);
      one = std::move(merged);
      cell.since_ms = old->since_ms;
    }
    cell.change = EncodeJson(one);
    port_.Keep(cell);
    ++counts_.kept;
  }

  // Local column `col` of the base row `key` (NULL when there is no base row): a counter's
  // current value, from which this site's own contribution follows.
  Value BaseColumn(ApplyTable& table, const std::vector<Value>& key, uint32_t col) {
    std::vector<Value> out;
    if (!table.ReadColumns(key, {table.Names().cols[col]}, out) || out.empty()) return Value::Null();
    return out[0];
  }

  // Sets row `r` aside: a new held entry, or merged into the one of its key.
  void HoldRow(int handle, const TableChanges& tc, const RowChanges& r, const std::vector<SiteId>& sites,
               const std::string& why, HeldEntry* from) {
    if (from) {
      from->row.error = why;
      from->dirty = true;
      return;
    }
    ++counts_.quarantined;
    Payload one = HeldPayload(tc, r, sites);
    std::string key = EncodeKey(r.key);
    const std::string& table = Table(handle).Names().name;
    if (auto it = held_index_.find(HeldId(table, key)); it != held_index_.end()) {
      HeldEntry& h = (*held_)[it->second];
      MergeHeld(h.payload, one);
      h.row.error = why;
      h.dirty = true;
      h.released = false;
      return;
    }
    HeldEntry h;
    h.row = HeldRow{table, key, "", why, static_cast<int64_t>(WallClockMillis())};
    h.payload = std::move(one);
    h.payload.tables[0].name = table;
    h.handle = handle;
    h.dirty = true;
    held_index_.emplace(HeldId(table, key), held_->size());
    held_->push_back(std::move(h));
  }

  // Whether the parent of `values` (the child's columns of `fk`) is here, deleted here, or
  // not here (never seen, or itself held).
  ParentState Parent(const ForeignKey& fk, const std::vector<Value>& values) {
    for (const Value& v : values)
      if (v.type == ValueType::kNull) return ParentState::kPresent;  // no reference
    ApplyTable& parent = Table(fk.parent);
    ShadowRow shadow;
    parent.ReadShadow(values, shadow);
    std::vector<Value> none;
    if (parent.ReadColumns(values, {}, none)) return ParentState::kPresent;
    return shadow.cl != 0 && !RowExists(shadow.cl) ? ParentState::kDeleted : ParentState::kMissing;
  }

  std::string MissingText(const ForeignKey& fk, const std::vector<Value>& values) {
    return "foreign key " + fk.name + ": the row " + KeyText(values) + " of table \"" + Table(fk.parent).Names().name +
           "\" is not here";
  }

  // Why held row `r` of `tc` must wait for its parent ("" when it may be tried).
  std::string MissingParent(int handle, const TableChanges& tc, const RowChanges& r) {
    for (const ForeignKey& fk : fks_) {
      if (fk.child != handle) continue;
      ApplyTable& child = Table(handle);
      TableNames names = child.Names();
      std::vector<Value> values;
      std::vector<std::string> from_base;
      std::vector<size_t> slots;
      for (const std::string& col : fk.columns) {
        const Value* found = nullptr;
        for (size_t k = 0; k < names.pk.size(); ++k)
          if (EqualsIgnoreAsciiCase(names.pk[k], col)) found = &r.key[k];
        for (const ColumnChange& c : r.changes)
          if (EqualsIgnoreAsciiCase(tc.columns[c.column], col)) found = &c.value;
        if (!found) {
          slots.push_back(values.size());
          from_base.push_back(col);
        }
        values.push_back(found ? *found : Value::Null());
      }
      if (!from_base.empty()) {
        ShadowRow shadow;
        child.ReadShadow(r.key, shadow);
        std::vector<Value> base;
        if (!child.ReadColumns(r.key, from_base, base)) continue;  // its insert brings them
        for (size_t k = 0; k < slots.size(); ++k) values[slots[k]] = base[k];
      }
      if (Parent(fk, values) == ParentState::kMissing) return MissingText(fk, values);
    }
    return "";
  }

  // Removes (or sets NULL, per the foreign key) the rows referencing row `key` of table
  // `handle`, as local changes, their own children first.
  void RemoveChildren(int handle, const std::vector<Value>& key) {
    for (const ForeignKey& fk : fks_) {
      if (fk.parent != handle) continue;
      for (const std::vector<Value>& child : Table(fk.child).FindRows(fk.columns, key)) {
        if (!visiting_.insert(std::to_string(fk.child) + ":" + EncodeKey(child)).second) continue;
        RemoveChild(fk, child);
      }
    }
  }

  // One child of a deleted parent, as a local change of this site: its clock is newer than
  // every clock of the payload, and its version is not one of the apply's (so it is pushed
  // to every hub, the one the payload came from included).
  void RemoveChild(const ForeignKey& fk, const std::vector<Value>& key) {
    ApplyTable& child = Table(fk.child);
    TableNames names = child.Names();
    std::vector<uint32_t> null_cols;
    bool set_null = fk.set_null;
    for (const std::string& col : fk.columns) {
      uint32_t c = 0;
      while (c < names.cols.size() && !EqualsIgnoreAsciiCase(names.cols[c], col)) ++c;
      if (c == names.cols.size()) set_null = false;  // a key column cannot become NULL
      null_cols.push_back(c);
    }
    if (!set_null && parents_.count(fk.child)) RemoveChildren(fk.child, key);
    ShadowRow shadow;
    child.ReadShadow(key, shadow);
    if (set_null) {
      Value null = Value::Null();
      std::vector<ColumnWrite> writes;
      for (uint32_t c : null_cols) writes.push_back(ColumnWrite{c, &null});
      if (!child.UpdateRow(key, writes)) return;
      int64_t ver = port_.NextVersion();
      uint64_t hlc = port_.LocalHlc();
      for (uint32_t c : null_cols)
        shadow.clocks.Set(c, ColClock{std::max(hlc, shadow.clocks.Get(c).hlc + 1), 0, ver, shadow.cl});
      shadow.clocks.Normalize(ver, shadow.cl);
      child.WriteShadow(key, shadow.cl, ver, shadow.clocks);
    } else {
      child.DeleteRow(key);
      int64_t ver = port_.NextVersion();
      int64_t cl = RowExists(shadow.cl) ? shadow.cl + 1 : std::max<int64_t>(shadow.cl, 2);
      child.WriteShadow(key, cl, ver, RowClocks(ColClock{port_.LocalHlc(), 0, 0, 0}));
    }
    ++counts_.orphans;
  }

  ApplyPort& port_;
  const std::vector<ForeignKey>& fks_;
  const std::map<RowId, std::string>& pre_held_;
  bool isolate_;
  ApplyResult& counts_;
  std::function<const SiteId&(uint32_t)> site_of_;
  std::set<int> parents_, children_;  // tables at either end of a foreign key
  std::map<int, std::unique_ptr<ApplyTable>> tables_;
  std::vector<HeldEntry>* held_ = nullptr;
  std::unordered_map<std::string, size_t> held_index_;  // HeldId -> index in *held_
  std::vector<std::pair<int, std::vector<Value>>> written_;  // rows of child tables written
  std::set<std::string> visiting_;  // children removed by one parent's delete (cycles stop)
  std::vector<ColumnWrite> writes_;  // reused from row to row
  std::vector<CounterWrite> counter_writes_;  // likewise
  std::vector<JsonWrite> json_writes_;        // likewise
};

}  // namespace

// The ordinal slot of a listed site no change uses: never read.
constexpr uint32_t kUnusedSite = UINT32_MAX;

ApplyResult ApplyPayload(ApplyPort& port, const Payload& p) {
  uint64_t max_hlc = CheckPayloadClock(p, port.MaxClockDriftSetting());
  ApplyResult base;
  std::vector<std::pair<const TableChanges*, int>> work;
  for (const TableChanges& tc : p.tables) {
    int handle = port.FindTable(tc.name);
    if (handle < 0) base.untracked += CountChanges(tc);
    else work.emplace_back(&tc, handle);
  }
  // Rows set aside by earlier applies are retried by this one.
  std::vector<HeldEntry> stored;
  for (HeldRow& row : port.HeldRows()) {
    HeldEntry h;
    h.payload = DecodeJson(row.changes);
    h.handle = port.FindTable(h.payload.tables[0].name);
    h.row = std::move(row);
    h.stored = true;
    stored.push_back(std::move(h));
  }
  // Columns with kept changes, of tables tracked here now: applied once the column is.
  std::vector<std::tuple<int, std::string, std::string>> pending;
  for (auto& [table, column] : port.PendingColumns())
    if (int handle = port.FindTable(table); handle >= 0) pending.emplace_back(handle, table, column);
  std::vector<ForeignKey> fks = port.ForeignKeys();

  std::map<RowId, std::string> pre_held;
  bool isolate = false;
  for (;;) {
    ApplyResult counts = base;
    std::vector<HeldEntry> held = stored;
    try {
      port.Atomically([&] {
        // Local changes this apply makes (foreign-key removals) are newer than its clocks.
        port.ObserveClock(max_hlc);
        // Only sites a change of a tracked table names are registered: a payload may list
        // any number of others (a direct deltasync_apply is not screened as network input is).
        std::vector<uint32_t> site_ords(p.sites.size(), kUnusedSite);
        for (const auto& [tc, handle] : work)
          for (const RowChanges& row : tc->rows)
            for (const ColumnChange& c : row.changes)
              if (c.site < site_ords.size() && site_ords[c.site] == kUnusedSite)
                site_ords[c.site] = port.SiteOrdinal(p.sites[c.site]);
        PageApply apply(port, fks, pre_held, isolate, counts);
        apply.SetHeld(&held);
        apply.ApplyPending(pending);
        const size_t page = port.PageRows();
        for (const auto& [tc, handle] : work) {
          TableNames names = apply.Table(handle).Names();
          // Changes of columns this site does not have (a site a migration behind) are kept
          // as pending cells; an old name of a renamed column lands in the new one; a
          // dropped column's changes are counted as untracked. The rest applies.
          SplitTable split = apply.SplitAndKeep(handle, *tc, p.sites);
          const TableChanges& use = split.known ? *split.known : *tc;
          // Payload names are matched against the local catalog; only local names reach SQL.
          TableMapping map = MapTable(names.name, names.pk, names.cols, use, site_ords, names.policies);
          if (page == 0)
            for (const RowChanges& r : use.rows) apply.ApplyRow(handle, use, map, r, p.sites, nullptr);
          else
            for (size_t k = 0; k < use.rows.size(); k += page)
              apply.ApplyPage(handle, use, map, k, std::min(use.rows.size(), k + page), p.sites);
        }
        apply.RetryHeld(held);
        if (!fks.empty()) apply.CheckChildren();
        apply.StoreHeld(held);
      });
      return counts;
    } catch (const Redo& redo) {
      // Each redo isolates the rows or holds at least one more row, so redos end.
      bool progress = redo.isolate && !isolate;
      if (redo.isolate) isolate = true;
      for (const auto& [row, why] : redo.hold) progress |= pre_held.emplace(row, why).second;
      if (!progress) throw Error(ErrorCode::kInternal, "apply: a redo made no progress");
    }
  }
}

nlohmann::json ApplyResultJson(const ApplyResult& r, int64_t db_version) {
  return {{"applied", r.applied},         {"ignored", r.ignored},   {"untracked", r.untracked},
          {"rows", r.rows},               {"quarantined", r.quarantined}, {"released", r.released},
          {"held", r.held},               {"orphans", r.orphans},   {"kept", r.kept},
          {"unkept", r.unkept},           {"db_version", db_version}};
}

}  // namespace deltasync
