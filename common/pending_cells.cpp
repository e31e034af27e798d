#include "common/pending_cells.hpp"

#include "common/quarantine.hpp"
#include "common/utf8.hpp"

namespace deltasync {

std::string FollowGoneColumn(const std::string& name, const std::vector<GoneColumn>& gone) {
  std::string now = name;
  // Each step follows one rename; more steps than entries would mean a cycle (a name
  // renamed away and back), which ends at the name the site has now.
  for (size_t steps = 0; steps <= gone.size(); ++steps) {
    const GoneColumn* next = nullptr;
    for (const GoneColumn& g : gone)
      if (EqualsIgnoreAsciiCase(g.name, now)) next = &g;
    if (next == nullptr) return now;
    if (next->now_named.empty()) return "";
    now = next->now_named;
  }
  return now;
}

Payload CellPayload(const TableChanges& tc, const RowChanges& r, const ColumnChange& c,
                    const std::vector<SiteId>& sites) {
  TableChanges one;
  one.name = tc.name;
  one.pk = tc.pk;
  one.columns = {tc.columns[c.column]};
  if (PolicyAt(tc.policies, c.column) != ColumnPolicy::kLww) one.policies = {tc.policies[c.column]};
  RowChanges row;
  row.key = r.key;
  row.cl = r.cl;
  ColumnChange moved = c;
  moved.column = 0;
  row.changes.push_back(std::move(moved));
  return HeldPayload(one, row, sites);
}

}  // namespace deltasync
