#include "common/row_apply.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/utf8.hpp"

namespace deltasync {

bool InRanges(const VersionRanges& ranges, int64_t ver) {
  for (const auto& [lo, hi] : ranges)
    if (ver >= lo && ver <= hi) return true;
  return false;
}

TableMapping MapTable(const std::string& table, const std::vector<std::string>& local_pk,
                      const std::vector<std::string>& local_cols, const TableChanges& tc,
                      const std::vector<uint32_t>& site_ords) {
  bool same_pk = tc.pk.size() == local_pk.size();
  for (size_t k = 0; same_pk && k < local_pk.size(); ++k) same_pk = EqualsIgnoreAsciiCase(tc.pk[k], local_pk[k]);
  if (!same_pk)
    throw Error(ErrorCode::kInvalidPayload, "table \"" + table + "\": the payload's primary key does not match the local one");
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
  return m;
}

RowDecision DecideRow(int64_t local_cl, const RowClocks& local, const RowChanges& r, const TableMapping& map,
                      const std::function<const SiteId&(uint32_t)>& site_of) {
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
  clocks.Normalize(ver, d.merge.cl);
}

void CollectRowChanges(RowChanges& r, const RowClocks& clocks, size_t ncols, int64_t since,
                       const VersionRanges& exclude, const std::function<Value(uint32_t)>& value_of,
                       const std::function<uint32_t(uint32_t)>& site_index) {
  for (uint32_t c = 0; c < ncols; ++c) {
    const ColClock& clk = clocks.Get(c);
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
