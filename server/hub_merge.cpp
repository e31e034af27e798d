#include "server/hub_merge.hpp"

#include <algorithm>
#include <map>
#include <unordered_set>
#include <nlohmann/json.hpp>

#include "common/counter.hpp"
#include "common/json_merge.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/key_codec.hpp"

namespace deltasync::hub {

namespace {

// What a row and each of its cells count toward a page's byte budget: the stored bytes of the
// key or value, plus about what the row's and the cell's clocks and ordinals take.
size_t StoredRowOverhead(size_t key_bytes) { return key_bytes + 16; }
size_t StoredCellBytes(size_t value_bytes) { return value_bytes + 24; }
// A value's bytes as stored: text and blob as they are, a number in 8.
size_t ValueBytes(const Value& v) {
  return v.type == ValueType::kText || v.type == ValueType::kBlob ? v.s.size() : 8;
}

Value DecodeStoredValue(std::string_view bytes) {
  ByteReader in(bytes, "stored value");
  Value v = DecodeValue(in);
  if (!in.AtEnd()) in.Fail("trailing bytes");
  return v;
}

// Names the hub relays must be portable identifiers: 1-63 bytes (PostgreSQL's limit), no
// control characters, no quotes, backslashes or semicolons. The hub never puts a name into
// SQL text, but a name built to break out of quoting has no business travelling to sites.
void CheckIdentifier(const std::string& name, const char* what) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\'' || c == '`' || c == '\\' || c == ';') ok = false;
  }
  if (!ok) {
    std::string shown = name.substr(0, 40);
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
    throw Error(ErrorCode::kInvalidPayload, std::string("invalid payload: ") + what + " name \"" + shown +
                                                "\" is not a portable identifier (1-63 bytes, no quotes, backslashes, "
                                                "semicolons or control characters)");
  }
}

void CheckIdentifiers(const Payload& p) {
  for (const TableChanges& t : p.tables) {
    CheckIdentifier(t.name, "table");
    for (const auto& c : t.pk) CheckIdentifier(c, "column");
    for (const auto& c : t.columns) CheckIdentifier(c, "column");
  }
}


// A counter's contributions (common/counter.hpp) are cells of their own, one per contributor:
// named "<column>\x1f<contributor's site id>". A column name never holds a control character
// (CheckIdentifier), so no plain cell can take that name, and the name says the policy.
constexpr char kContributionMark = '\x1f';
std::string ContributionCell(const std::string& column, const SiteId& site) {
  return column + kContributionMark + site.ToString();
}

// A json column's members (common/json_merge.hpp) are cells of their own too, one per path:
// named "<column>\x1e<path as canonical JSON>", each merged by last-writer-wins like any cell.
constexpr char kMemberMark = '\x1e';
std::string MemberCell(const std::string& column, const Value& change) {
  return column + kMemberMark + std::string(MemberChangePath(change.s));
}

// A held cell's column and the policy its name says.
std::pair<std::string_view, ColumnPolicy> CellColumn(std::string_view name) {
  size_t mark = name.find_first_of("\x1e\x1f");
  if (mark == std::string_view::npos) return {name, ColumnPolicy::kLww};
  return {name.substr(0, mark), name[mark] == kContributionMark ? ColumnPolicy::kCounter : ColumnPolicy::kJson};
}

// The refusal of a push or page whose policy for a column disagrees with what the hub holds.
Error PolicyClash(const std::string& table, const std::string& column, ColumnPolicy a, ColumnPolicy b) {
  auto what = [](ColumnPolicy p) {
    return std::string(p == ColumnPolicy::kCounter ? "a counter" : p == ColumnPolicy::kJson ? "a json document"
                                                                                            : "a last-writer-wins value");
  };
  return Error(ErrorCode::kInvalidPayload,
               "table \"" + table + "\": column \"" + column + "\" is held by this hub both as " + what(a) + " and as " +
                   what(b) + "; declare it alike on every site (deltasync_enable's \"columns\" option)");
}

// Refuses a row push whose columns' policies differ from the cells the hub holds for the row.
void CheckRowPolicies(const TableChanges& t, bool counters, const std::unordered_map<std::string, Clock>& held) {
  for (const auto& [name, clock] : held) {
    auto [column, policy] = CellColumn(name);
    if (policy == ColumnPolicy::kLww && !counters) continue;  // a plain cell, a push without policies
    for (size_t k = 0; k < t.columns.size(); ++k)
      if (t.columns[k] == column && PolicyAt(t.policies, k) != policy)
        throw PolicyClash(t.name, t.columns[k], policy, PolicyAt(t.policies, k));
  }
}

// The cell a change of column k of `t` goes to.
std::string CellOf(const TableChanges& t, const ColumnChange& c, const SiteId& site) {
  switch (PolicyAt(t.policies, c.column)) {
    case ColumnPolicy::kCounter: return ContributionCell(t.columns[c.column], site);
    case ColumnPolicy::kJson: return MemberCell(t.columns[c.column], c.value);
    default: return t.columns[c.column];
  }
}

}  // namespace

size_t LargestRowBytes(const Payload& p) {
  size_t largest = 0;
  for (const TableChanges& t : p.tables)
    for (const RowChanges& row : t.rows) {
      size_t key = 0;
      for (const Value& v : row.key) key += ValueBytes(v);
      size_t bytes = StoredRowOverhead(key);
      for (const ColumnChange& c : row.changes) bytes += StoredCellBytes(ValueBytes(c.value));
      largest = std::max(largest, bytes);
    }
  return largest;
}

std::vector<SiteId> SitesToRegister(const Payload& p) {
  std::vector<bool> used(p.sites.size(), false);
  for (const TableChanges& t : p.tables)
    for (const RowChanges& r : t.rows)
      for (const ColumnChange& c : r.changes) used[c.site] = true;
  std::unordered_set<SiteId, SiteIdHash> seen;
  std::vector<SiteId> out;
  for (size_t k = 0; k < p.sites.size(); ++k)
    if (used[k] && seen.insert(p.sites[k]).second) out.push_back(p.sites[k]);
  if (seen.insert(p.site).second) out.push_back(p.site);
  return out;
}

void CheckHeldKey(const TableChanges& t, const std::string& held_pk) {
  std::vector<std::string> held;
  try {
    held = nlohmann::json::parse(held_pk).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kInternal, "hub store: table \"" + t.name + "\" holds an unreadable key " + held_pk);
  }
  std::string why = KeyMismatch(held, {}, t.pk, t.columns);
  if (!why.empty())
    throw Error(ErrorCode::kInvalidPayload, "table \"" + t.name + "\": key columns " + nlohmann::json(t.pk).dump() +
                                                " differ from those this node holds, " + held_pk + " (" + why + ")");
}

void CheckPush(const Payload& p, uint64_t max_clock_drift_ms) {
  CheckIdentifiers(p);
  CheckClockDrift(MaxHlc(p), WallClockMillis(), max_clock_drift_ms);
}

PushResult MergePush(PushTxn& txn, const Payload& p, int64_t seq, size_t max_row_bytes) {
  PushResult result;
  // Sites are registered when a change of theirs is stored, the pusher when a row is: a
  // payload listing site ids no change uses (or only changes that lose) registers none.
  std::vector<int64_t> ords(p.sites.size(), -1);
  auto ord_of = [&](uint32_t k) {
    if (ords[k] < 0) ords[k] = txn.SiteOrdinal(p.sites[k]);
    return static_cast<uint32_t>(ords[k]);
  };
  int64_t writer = -1;
  for (const TableChanges& t : p.tables) {
    int64_t tbl = txn.TableId(t);
    std::vector<std::string> keys;
    keys.reserve(t.rows.size());
    for (const RowChanges& r : t.rows) keys.push_back(EncodeKey(r.key));
    txn.Prefetch(tbl, keys);
    const bool counters = AnyPolicy(t.policies);
    std::vector<std::string> names;  // with counters: each change's cell name
    for (size_t ri = 0; ri < t.rows.size(); ++ri) {
      const RowChanges& r = t.rows[ri];
      const std::string& key = keys[ri];
      if (counters) names.assign(r.changes.size(), std::string());
      int64_t local_cl = txn.RowCl(tbl, key);
      const int64_t grave = local_cl == 0 ? txn.GraveCl(tbl, key) : 0;
      if (grave != 0) local_cl = grave;  // a dropped tombstone decides as it did before
      std::unordered_map<std::string, size_t> held_bytes;
      std::unordered_map<std::string, Clock> held = txn.CellClocks(tbl, key, &held_bytes);
      CheckRowPolicies(t, counters, held);
      std::vector<Clock> incoming, local;
      for (size_t k = 0; k < r.changes.size(); ++k) {
        const ColumnChange& c = r.changes[k];
        incoming.push_back(Clock{c.cl, c.hlc, p.sites[c.site]});
        if (counters) names[k] = CellOf(t, c, p.sites[c.site]);
        auto it = held.find(counters ? names[k] : t.columns[c.column]);
        local.push_back(it == held.end() ? Clock{} : it->second);
      }
      RowMerge m = MergeRow(local_cl, r.cl, incoming, local);
      if (counters) {
        // A contribution is decided against the same site's (common/counter), not by last-writer-wins.
        uint64_t wins = 0;
        for (size_t k = 0; k < r.changes.size(); ++k) {
          const ColumnChange& c = r.changes[k];
          if (PolicyAt(t.policies, c.column) == ColumnPolicy::kCounter) {
            Contribution held_one{0, 1, 0, local[k].hlc, 0, local[k].cl};
            m.col_wins[k] = m.exists && ContributionWins(m.cl, local[k].hlc ? &held_one : nullptr, c.cl, c.hlc);
          }
          wins += m.col_wins[k] ? 1 : 0;
        }
        m.applied = wins + (m.cl_advanced && wins == 0 ? 1 : 0);
      }
      result.applied += m.applied;
      result.ignored += m.changes - m.applied;
      result.rows++;
      if (m.applied == 0) {
        // A change older than a dropped tombstone, from a site that never received it (one
        // that joined after the compaction): the tombstone is served again, by no pusher,
        // so that site learns the delete as it would have without compaction.
        if (grave != 0 && r.cl < grave) txn.PutRow(tbl, key, grave, ++seq, kUnknownPusher);
        continue;
      }
      // A delete drops the row's values; so does a new life of a row the node held (its
      // older values can never win again, and would only travel as dead weight).
      const bool drop = !m.exists || (m.cl_advanced && local_cl != 0);
      std::vector<std::string> values(r.changes.size());
      if (drop) held_bytes.clear();
      for (size_t k = 0; k < r.changes.size(); ++k) {
        if (!m.col_wins[k]) continue;
        EncodeValue(r.changes[k].value, values[k]);
        held_bytes[counters ? names[k] : t.columns[r.changes[k].column]] = values[k].size();
      }
      // The row as it will be stored, not only what this push carries: a row whose columns
      // arrive in several pushes must not outgrow what a pull page can carry.
      size_t row_bytes = StoredRowOverhead(key.size());
      for (const auto& [col, bytes] : held_bytes) row_bytes += StoredCellBytes(bytes);
      if (row_bytes > max_row_bytes)
        throw RowTooLarge("table \"" + t.name + "\": a row would be " + std::to_string(row_bytes) +
                          " bytes once merged with what the hub holds, larger than max_row_bytes (" +
                          std::to_string(max_row_bytes) + ")");
      if (writer < 0) writer = txn.SiteOrdinal(p.site);
      ++seq;
      if (drop) txn.DropCells(tbl, key);
      for (size_t k = 0; k < r.changes.size(); ++k) {
        if (!m.col_wins[k]) continue;
        const ColumnChange& c = r.changes[k];
        txn.PutCell(tbl, key, counters ? names[k] : t.columns[c.column], values[k], c.hlc, ord_of(c.site), c.cl, seq, writer);
      }
      txn.PutRow(tbl, key, m.cl, seq, writer);
    }
    txn.Flush();
  }
  result.seq = seq;
  return result;
}

PullResult BuildPage(PullSource& src, const SiteId& hub_id, int64_t since, size_t max_rows,
                     const std::vector<std::string>& tables, const std::optional<SiteId>& requester,
                     size_t max_bytes) {
  size_t page_bytes = 0;  // what the page's rows weigh, as stored (about their size on the wire)
  PullResult out;
  Payload& p = out.payload;
  p.site = hub_id;
  p.since = since;
  std::map<int64_t, size_t> table_index;  // hub table id -> index in p.tables
  std::map<int64_t, bool> wanted;          // hub table id -> asked for
  std::vector<std::map<std::string, uint32_t>> col_index;
  std::unordered_map<int64_t, uint32_t> site_index;
  int64_t requester_ord = requester ? src.KnownSite(*requester) : -1;
  int64_t until = since;
  std::vector<StoredRow> rows = src.Rows(since, max_rows + 1);
  size_t n = 0;
  for (const StoredRow& row : rows) {
    if (n == max_rows) {
      out.more = true;
      break;
    }
    int64_t until_before = until;
    until = row.seq;
    auto w = wanted.find(row.tbl);
    if (w == wanted.end()) {
      TableChanges t;
      src.Table(row.tbl, t.name, t.pk);
      bool ok = tables.empty() || std::find(tables.begin(), tables.end(), t.name) != tables.end();
      w = wanted.emplace(row.tbl, ok).first;
      if (ok) {
        table_index[row.tbl] = p.tables.size();
        p.tables.push_back(std::move(t));
        col_index.emplace_back();
      }
    }
    if (!w->second) {  // a table the client did not ask for: skipped, cursor moves on
      ++n;
      continue;
    }
    size_t ti = table_index[row.tbl];
    TableChanges& t = p.tables[ti];
    RowChanges r;
    r.key = DecodeKey(row.key);
    r.cl = row.cl;
    size_t row_bytes = StoredRowOverhead(row.key.size());
    // Every cell of the row, not only those newer than `since`: a row moves to the end of the
    // sequence when it changes, so a client at `since` may never have been sent its older
    // cells (they were at seq <= since, but the row had already moved on when it pulled).
    for (const StoredCell& cell : src.Cells(row.tbl, row.key)) {
      // Never a site what it pushed itself. By pusher, not origin: a change that names the
      // requester as its origin but came from another site is news to the requester.
      if (requester_ord >= 0 && cell.pusher == requester_ord) continue;
      ColumnChange c;
      auto [column_view, policy] = CellColumn(cell.col);
      std::string column(column_view);
      auto ci = col_index[ti].find(column);
      if (ci == col_index[ti].end()) {
        ci = col_index[ti].emplace(column, static_cast<uint32_t>(t.columns.size())).first;
        t.columns.push_back(column);
        if (policy != ColumnPolicy::kLww || !t.policies.empty()) t.policies.resize(t.columns.size(), ColumnPolicy::kLww);
        if (policy != ColumnPolicy::kLww) t.policies.back() = policy;
      } else if (PolicyAt(t.policies, ci->second) != policy) {
        throw PolicyClash(t.name, column, PolicyAt(t.policies, ci->second), policy);
      }
      c.column = ci->second;
      c.value = DecodeStoredValue(cell.value);
      c.hlc = cell.hlc;
      auto si = site_index.find(cell.site);
      if (si == site_index.end()) {
        si = site_index.emplace(cell.site, static_cast<uint32_t>(p.sites.size())).first;
        p.sites.push_back(src.SiteOf(cell.site));
      }
      c.site = si->second;
      c.cl = cell.cl;
      r.changes.push_back(std::move(c));
      row_bytes += StoredCellBytes(cell.value.size());
    }
    // A page ends at its byte budget, never inside a row; a row larger than the budget
    // travels alone.
    if (page_bytes > 0 && page_bytes + row_bytes > max_bytes) {
      until = until_before;
      out.more = true;
      break;
    }
    ++n;
    if (r.changes.empty() && requester_ord >= 0 && row.writer == requester_ord) continue;  // nothing it does not know
    page_bytes += row_bytes;
    out.changes += r.changes.empty() ? 1 : r.changes.size();
    t.rows.push_back(std::move(r));
  }
  p.until = until;  // what this page read, never more (see BuildPage in the header)
  return out;
}

}  // namespace deltasync::hub
