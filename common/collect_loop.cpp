#include "common/collect_loop.hpp"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "common/merge.hpp"

namespace deltasync {

namespace {

// Maps local site ordinals to indexes in the payload's site list.
class SiteIndex {
 public:
  SiteIndex(CollectPort& port, Payload& p) : port_(port), p_(p) {}
  // The payload's index of local ordinal `ord`, adding the site at its first use.
  uint32_t Of(uint32_t ord) {
    auto it = map_.find(ord);
    if (it != map_.end()) return it->second;
    auto idx = static_cast<uint32_t>(p_.sites.size());
    p_.sites.push_back(port_.SiteOf(ord));
    map_[ord] = idx;
    return idx;
  }

 private:
  CollectPort& port_;
  Payload& p_;
  std::unordered_map<uint32_t, uint32_t> map_;
};

}  // namespace

Payload CollectChanges(CollectPort& port, int64_t since, const VersionRanges& exclude) {
  Payload p;
  p.site = port.LocalSite();
  p.since = since;
  p.until = std::max(since, port.Horizon());  // a cursor from the future stays put
  SiteIndex sites(port, p);
  std::function<uint32_t(uint32_t)> site_index = [&](uint32_t ord) { return sites.Of(ord); };
  port.ForEachTable(since, p.until, [&](ChangeCursor& cur) {
    TableNames names = cur.Names();
    TableChanges tc;
    tc.rows.reserve(cur.RowCountHint());
    tc.name = names.name;
    tc.pk = names.pk;
    tc.columns = names.cols;
    const size_t ncols = names.cols.size();
    std::function<Value(uint32_t)> value_of = [&](uint32_t c) { return cur.Column(c); };
    RowChanges r;
    ShadowRow shadow;
    while (cur.Next(r.key, shadow)) {
      r.cl = shadow.cl;
      // A live shadow row whose base row is missing carries no column change.
      if (RowExists(r.cl) && ncols > 0 && cur.ReadBase())
        CollectRowChanges(r, shadow.clocks, ncols, since, exclude, value_of, site_index);
      // A row whose latest change came from the excluded ranges and that carries no other
      // column change holds nothing the receiver lacks.
      if (!(r.changes.empty() && InRanges(exclude, shadow.ver))) tc.rows.push_back(std::move(r));
      r = RowChanges();
    }
    if (!tc.rows.empty()) p.tables.push_back(std::move(tc));
  });
  return p;
}

}  // namespace deltasync
