#include "common/collect_loop.hpp"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <utility>

#include "common/error.hpp"
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

// Roughly what a row costs on the wire: its values' bytes and a little per value.
size_t RowBytes(const RowChanges& r) {
  size_t n = 16;
  for (const Value& v : r.key) n += 9 + v.s.size();
  for (const ColumnChange& c : r.changes) n += 24 + c.value.s.size();
  return n;
}

}  // namespace

void CollectPort::ForEachTableFrom(int64_t since, int64_t until, const CollectPosition& from,
                                   const std::function<bool(ChangeCursor&)>& table) {
  if (!from.table.empty()) throw Error(ErrorCode::kInternal, "this engine cannot resume a collect at a position");
  bool go_on = true;
  ForEachTable(since, until, [&](ChangeCursor& cur) {
    if (go_on) go_on = table(cur);
  });
}

void CollectInBatches(CollectPort& port, int64_t since, int64_t until, const VersionRanges& exclude,
                      const CollectPosition& from, const BatchLimits& limits,
                      const std::function<bool(Payload&, const CollectPosition&)>& batch) {
  auto fresh = [&] {
    Payload p;
    p.site = port.LocalSite();
    p.since = since;
    p.until = until;
    return p;
  };
  Payload p = fresh();
  std::unique_ptr<SiteIndex> sites = std::make_unique<SiteIndex>(port, p);
  std::function<uint32_t(uint32_t)> site_index = [&](uint32_t ord) { return sites->Of(ord); };
  size_t rows = 0, bytes = 0;
  CollectPosition after;
  bool go_on = true;
  // Hands the batch on and starts the next one.
  auto flush = [&] {
    if (rows == 0) return;
    go_on = batch(p, after);
    p = fresh();
    sites = std::make_unique<SiteIndex>(port, p);
    rows = bytes = 0;
  };
  port.ForEachTableFrom(since, until, from, [&](ChangeCursor& cur) {
    TableNames names = cur.Names();
    const size_t ncols = names.cols.size();
    std::function<Value(uint32_t)> value_of = [&](uint32_t c) { return cur.Column(c); };
    RowChanges r;
    ShadowRow shadow;
    while (go_on && cur.Next(r.key, shadow)) {
      r.cl = shadow.cl;
      if (RowExists(r.cl) && ncols > 0 && cur.ReadBase())
        CollectRowChanges(r, shadow.clocks, ncols, since, exclude, value_of, site_index, names.policies, &names.name,
                          &names.cols);
      if (!(r.changes.empty() && InRanges(exclude, shadow.ver))) {
        const size_t size = RowBytes(r);
        if (rows > 0 && bytes + size > limits.max_bytes) flush();
        if (!go_on) break;
        if (p.tables.empty() || p.tables.back().name != names.name)
          p.tables.push_back(TableChanges{names.name, names.pk, names.cols, {},
                                          names.policies ? *names.policies : std::vector<ColumnPolicy>{}});
        after.table = names.name;
        after.key = cur.LocalKey() ? *cur.LocalKey() : r.key;
        p.tables.back().rows.push_back(std::move(r));
        bytes += size;
        if (++rows >= limits.max_rows) flush();
      }
      r = RowChanges();
    }
    return go_on;
  });
  if (go_on) flush();
}

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
    if (names.policies) tc.policies = *names.policies;
    const size_t ncols = names.cols.size();
    std::function<Value(uint32_t)> value_of = [&](uint32_t c) { return cur.Column(c); };
    RowChanges r;
    ShadowRow shadow;
    while (cur.Next(r.key, shadow)) {
      r.cl = shadow.cl;
      // A live shadow row whose base row is missing carries no column change.
      if (RowExists(r.cl) && ncols > 0 && cur.ReadBase())
        CollectRowChanges(r, shadow.clocks, ncols, since, exclude, value_of, site_index, names.policies, &names.name,
                          &names.cols);
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
