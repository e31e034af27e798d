#include "common/row_apply.hpp"

#include <algorithm>

#include "common/counter.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/json_column.hpp"
#include "common/utf8.hpp"

namespace deltasync {

bool InRanges(const VersionRanges& ranges, int64_t ver) {
  for (const auto& [lo, hi] : ranges)
    if (ver >= lo && ver <= hi) return true;
  return false;
}

TableMapping MapTable(const std::string& table, const std::vector<std::string>& local_pk,
                      const std::vector<std::string>& local_cols, const TableChanges& tc,
                      const std::vector<uint32_t>& site_ords, const std::vector<ColumnPolicy>* local_policies) {
  // By position: a site that renamed a key column still takes rows named by the old name.
  std::string why = KeyMismatch(local_pk, local_cols, tc.pk, tc.columns);
  if (!why.empty())
    throw Error(ErrorCode::kInvalidPayload,
                "table \"" + table + "\": the payload's primary key does not match the local one (" + why + ")");
  TableMapping m;
  m.sites = &site_ords;
  for (const std::string& name : tc.columns) {
    uint32_t found = UINT32_MAX;
    for (uint32_t k = 0; k < local_cols.size(); ++k)
      if (EqualsIgnoreAsciiCase(name, local_cols[k])) found = k;
    if (found == UINT32_MAX)
      throw Error(ErrorCode::kInvalidPayload, "table \"" + table + "\" has no tracked column \"" + name + "\"");
    m.columns.push_back(found);
  }
  static const std::vector<ColumnPolicy> kNone;
  CheckIncomingPolicies(table, tc.columns, tc.policies, local_policies ? *local_policies : kNone, m.columns);
  if (local_policies && AnyPolicy(*local_policies)) m.policies = local_policies;
  return m;
}

namespace {

// The state of json column `col` in decision `d`, read once: the local row's members when it
// lives on in the merged life, none otherwise (a new row, a new life).
JsonColumnState& JsonState(RowDecision& d, uint32_t col, int64_t local_cl, const RowClocks& local,
                           const std::function<const SiteId&(uint32_t)>& site_of,
                           const std::function<Value(uint32_t)>* base) {
  for (JsonColumnState& s : d.json)
    if (s.column == col) return s;
  d.json.push_back(JsonColumnState{col, {}});
  JsonColumnState& s = d.json.back();
  if (d.merge.existed && local_cl == d.merge.cl && base)
    s.local = ColumnMembers(local, col, ColumnDocument((*base)(col)), site_of);
  return s;
}

}  // namespace

RowDecision DecideRow(int64_t local_cl, const RowClocks& local, const RowChanges& r, const TableMapping& map,
                      const std::function<const SiteId&(uint32_t)>& site_of,
                      const std::function<Value(uint32_t)>* base) {
  std::vector<Clock> incoming, current;
  incoming.reserve(r.changes.size());
  current.reserve(r.changes.size());
  for (const ColumnChange& c : r.changes) {
    incoming.push_back(Clock{c.cl, c.hlc, site_of((*map.sites)[c.site])});
    const ColClock& lc = local.Get(map.columns[c.column]);
    current.push_back(lc.Present() ? Clock{lc.cl, lc.hlc, site_of(lc.site)} : Clock{});
  }
  RowDecision d;
  d.merge = MergeRow(local_cl, r.cl, incoming, current);
  if (map.policies) {
    // A counter change is a contribution: decided against the same site's, never by
    // last-writer-wins. This site's own comes back only as an echo: what is here is newer.
    uint64_t wins = 0;
    for (size_t k = 0; k < r.changes.size(); ++k) {
      const ColumnChange& c = r.changes[k];
      uint32_t col = map.columns[c.column];
      if (map.Counter(col)) {
        uint32_t ord = (*map.sites)[c.site];
        d.merge.col_wins[k] = d.merge.exists && ord != 0 &&
                              ContributionWins(d.merge.cl, local.FindContribution(col, ord), c.cl, c.hlc);
        if (d.merge.col_wins[k]) d.contributions.push_back(k);
      } else if (map.Json(col)) {
        // A member is decided against the local member of its path (common/json_merge).
        d.merge.col_wins[k] = false;
        if (d.merge.exists) {
          JsonMember in;
          std::string error;
          DecodeMemberChange(c.value.s, in.path, in.present, in.value, error);  // validated on decode
          in.clock = incoming[k];
          in.site = (*map.sites)[c.site];
          JsonColumnState& state = JsonState(d, col, local_cl, local, site_of, base);
          if (!in.path.empty() && MemberWins(d.merge.cl, FindMember(state.local, in.path), in.clock)) {
            d.merge.col_wins[k] = true;
            d.members.push_back(RowDecision::JsonWin{k, col, std::move(in)});
          }
        }
      } else if (d.merge.col_wins[k]) {
        d.winners.push_back(k);
      }
      wins += d.merge.col_wins[k] ? 1 : 0;
    }
    d.merge.applied = wins + (d.merge.cl_advanced && wins == 0 ? 1 : 0);
    return d;
  }
  for (size_t k = 0; k < d.merge.col_wins.size(); ++k)
    if (d.merge.col_wins[k]) d.winners.push_back(k);
  return d;
}

uint64_t CheckPayloadClock(const Payload& p, int64_t max_drift_setting) {
  uint64_t max_hlc = MaxHlc(p);
  CheckClockDrift(max_hlc, WallClockMillis(), static_cast<uint64_t>(std::max<int64_t>(max_drift_setting, 0)));
  return max_hlc;
}

bool CountRow(const RowDecision& d, ApplyResult& counts) {
  counts.applied += d.merge.applied;
  counts.ignored += d.merge.changes - d.merge.applied;
  counts.rows++;
  return d.merge.applied != 0;
}

void AdoptWinners(RowClocks& clocks, const RowDecision& d, const RowChanges& r, const TableMapping& map,
                  size_t ncols, int64_t ver) {
  const std::vector<uint32_t>& sites = *map.sites;
  if (!d.merge.exists) {
    clocks.SetAll(ColClock{});  // a deleted row keeps no column versions
  } else {
    bool whole_row = d.winners.size() == ncols && !d.winners.empty();
    for (size_t k = 1; whole_row && k < d.winners.size(); ++k) {
      const ColumnChange &a = r.changes[d.winners[0]], &b = r.changes[d.winners[k]];
      whole_row = a.hlc == b.hlc && a.site == b.site && a.cl == b.cl;
    }
    if (whole_row) {
      const ColumnChange& c = r.changes[d.winners[0]];
      clocks.SetAll(ColClock{c.hlc, sites[c.site], ver, c.cl});
    } else {
      for (size_t k : d.winners) {
        const ColumnChange& c = r.changes[k];
        clocks.Set(map.columns[c.column], ColClock{c.hlc, sites[c.site], ver, c.cl});
      }
    }
  }
  if (map.policies && d.merge.exists) {
    if (d.merge.cl_advanced) clocks.DropContributionsBefore(d.merge.cl);
    for (size_t k : d.contributions) {
      const ColumnChange& c = r.changes[k];
      clocks.PutContribution(Contribution{map.columns[c.column], sites[c.site], c.value.i, c.hlc, ver, c.cl});
    }
  }
  clocks.Normalize(ver, d.merge.cl);
}

void CounterWrites(std::vector<CounterWrite>& out, const RowDecision& d, const RowClocks& local, int64_t local_cl,
                   const RowChanges& r, const TableMapping& map, const std::vector<std::string>& cols,
                   const std::string& table, const std::function<Value(uint32_t)>& base) {
  out.clear();
  if (!map.policies || !d.merge.exists) return;
  const bool same_life = d.merge.existed && local_cl == d.merge.cl;
  for (uint32_t col = 0; col < cols.size(); ++col) {
    if (!map.Counter(col)) continue;
    bool moved = !same_life;
    for (size_t k : d.contributions) moved |= map.columns[r.changes[k].column] == col;
    if (!moved) continue;
    const std::string& name = cols[col];
    int64_t own = same_life ? CounterSub(CounterValue(base(col), table, name), OthersSum(local, col, local_cl, table, name),
                                         table, name)
                            : 0;
    // The others after the merge: the winners, and the local ones of sites that sent none.
    int64_t sum = own;
    for (const Contribution& c : local.Contributions()) {
      if (c.column != col || c.cl != d.merge.cl) continue;
      bool replaced = false;
      for (size_t k : d.contributions)
        replaced |= map.columns[r.changes[k].column] == col && (*map.sites)[r.changes[k].site] == c.site;
      if (!replaced) sum = CounterAdd(sum, c.value, table, name);
    }
    for (size_t k : d.contributions)
      if (map.columns[r.changes[k].column] == col) sum = CounterAdd(sum, r.changes[k].value.i, table, name);
    out.push_back(CounterWrite{col, Value::Integer(sum)});
  }
}

void JsonWrites(std::vector<JsonWrite>& out, RowDecision& d, int64_t local_cl, const TableMapping& map, size_t ncols) {
  out.clear();
  if (!map.policies || !d.merge.exists) return;
  const bool same_life = d.merge.existed && local_cl == d.merge.cl;
  for (uint32_t col = 0; col < ncols; ++col) {
    if (!map.Json(col)) continue;
    bool moved = !same_life;
    for (const RowDecision::JsonWin& w : d.members) moved |= w.column == col;
    if (!moved) continue;
    JsonMembers members;
    for (JsonColumnState& s : d.json)
      if (s.column == col) members = std::move(s.local);
    DropMembersBefore(members, d.merge.cl);
    for (RowDecision::JsonWin& w : d.members)
      if (w.column == col) {
        w.member.ver = 0;  // the row's new version
        PutMember(members, std::move(w.member));
      }
    Value doc = Value::Text(CanonicalJson(RenderJson(members)));
    out.push_back(JsonWrite{col, std::move(doc), std::move(members)});
  }
}

namespace {

// The members of json column `c` to send: the stored ones adopted or written after `since`
// in the row's current life, or (none stored) every leaf of the document at the column's
// clock when that is newer than `since`.
void CollectJsonMembers(RowChanges& r, const RowClocks& clocks, uint32_t c, int64_t since, const VersionRanges& exclude,
                        const std::function<Value(uint32_t)>& value_of,
                        const std::function<uint32_t(uint32_t)>& site_index) {
  auto put = [&](const JsonMember& m, uint64_t hlc, uint32_t site, int64_t cl) {
    ColumnChange ch;
    ch.column = c;
    ch.value = Value::Text(EncodeMemberChange(m.path, m.present, m.value));
    ch.hlc = hlc;
    ch.site = site_index(site);
    ch.cl = cl;
    r.changes.push_back(std::move(ch));
  };
  bool wanted = !clocks.HasMembers(c);
  if (wanted) {
    const ColClock& clk = clocks.Get(c);
    wanted = clk.Present() && clk.ver > since && clk.cl <= r.cl && !InRanges(exclude, clk.ver);
  } else {
    for (const MemberClock& m : clocks.Members())
      wanted |= m.column == c && m.cl == r.cl && m.ver > since && !InRanges(exclude, m.ver);
  }
  if (!wanted) return;
  JsonValue doc = ColumnDocument(value_of(c));
  static const SiteId kAny;
  JsonMembers members = ColumnMembers(clocks, c, doc, [](uint32_t) -> const SiteId& { return kAny; });
  for (const JsonMember& m : members)
    if (m.clock.hlc != 0 && m.clock.cl == r.cl && m.ver > since && !InRanges(exclude, m.ver))
      put(m, m.clock.hlc, m.site, m.clock.cl);
}

}  // namespace

void CollectRowChanges(RowChanges& r, const RowClocks& clocks, size_t ncols, int64_t since,
                       const VersionRanges& exclude, const std::function<Value(uint32_t)>& value_of,
                       const std::function<uint32_t(uint32_t)>& site_index, const std::vector<ColumnPolicy>* policies,
                       const std::string* table, const std::vector<std::string>* cols) {
  for (uint32_t c = 0; c < ncols; ++c) {
    const ColClock& clk = clocks.Get(c);
    if (policies && PolicyAt(*policies, c) == ColumnPolicy::kCounter) {
      static const std::string kNoName;
      const std::string& tname = table ? *table : kNoName;
      const std::string& cname = cols && c < cols->size() ? (*cols)[c] : kNoName;
      // This site's own contribution: written here (site 0) in the row's current life.
      if (clk.Present() && clk.site == 0 && clk.cl == r.cl && clk.ver > since && !InRanges(exclude, clk.ver)) {
        ColumnChange ch;
        ch.column = c;
        ch.value = Value::Integer(
            CounterSub(CounterValue(value_of(c), tname, cname), OthersSum(clocks, c, r.cl, tname, cname), tname, cname));
        ch.hlc = clk.hlc;
        ch.site = site_index(0);
        ch.cl = clk.cl;
        r.changes.push_back(std::move(ch));
      }
      for (const Contribution& k : clocks.Contributions()) {
        if (k.column != c || k.cl != r.cl || k.ver <= since || InRanges(exclude, k.ver)) continue;
        ColumnChange ch;
        ch.column = c;
        ch.value = Value::Integer(k.value);
        ch.hlc = k.hlc;
        ch.site = site_index(k.site);
        ch.cl = k.cl;
        r.changes.push_back(std::move(ch));
      }
      continue;
    }
    if (policies && PolicyAt(*policies, c) == ColumnPolicy::kJson) {
      CollectJsonMembers(r, clocks, c, since, exclude, value_of, site_index);
      continue;
    }
    if (!clk.Present() || clk.ver <= since || clk.cl > r.cl || InRanges(exclude, clk.ver)) continue;
    ColumnChange ch;
    ch.column = c;
    ch.value = value_of(c);
    ch.hlc = clk.hlc;
    ch.site = site_index(clk.site);
    ch.cl = clk.cl;
    r.changes.push_back(std::move(ch));
  }
}

}  // namespace deltasync
