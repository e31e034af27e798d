#include "common/row_clocks.hpp"

#include <algorithm>

#include "common/varint.hpp"

namespace deltasync {

namespace {

auto FindColumn(std::vector<std::pair<uint32_t, ColClock>>& v, uint32_t column) {
  return std::lower_bound(v.begin(), v.end(), column, [](const auto& e, uint32_t c) { return e.first < c; });
}

void PutClock(std::string& out, const ColClock& c) {
  PutVarint(out, c.hlc);
  PutVarint(out, c.site);
  PutVarint(out, static_cast<uint64_t>(c.ver));
  PutVarint(out, static_cast<uint64_t>(c.cl));
}

ColClock GetClock(ByteReader& in) {
  ColClock c;
  c.hlc = in.Varint();
  uint64_t site = in.Varint();
  if (site > UINT32_MAX) in.Fail("site ordinal out of range");
  c.site = static_cast<uint32_t>(site);
  c.ver = static_cast<int64_t>(in.Varint());
  c.cl = static_cast<int64_t>(in.Varint());
  return c;
}

}  // namespace

const ColClock& RowClocks::Get(uint32_t column) const {
  auto it = std::lower_bound(overrides_.begin(), overrides_.end(), column,
                             [](const auto& e, uint32_t c) { return e.first < c; });
  return it != overrides_.end() && it->first == column ? it->second : base_;
}

void RowClocks::Set(uint32_t column, const ColClock& clock) {
  auto it = FindColumn(overrides_, column);
  if (it != overrides_.end() && it->first == column) {
    it->second = clock;
  } else {
    overrides_.insert(it, {column, clock});
  }
}

void RowClocks::Readopt(uint32_t column, int64_t ver) {
  auto it = FindColumn(overrides_, column);
  ColClock& clock = it != overrides_.end() && it->first == column ? it->second : base_;
  if (clock.Present()) clock.ver = ver;
  for (Contribution& k : contributions_)
    if (k.column == column) k.ver = ver;
  for (MemberClock& m : members_)
    if (m.column == column) m.ver = ver;
}

void RowClocks::SetAll(const ColClock& clock) {
  base_ = clock;
  overrides_.clear();
  contributions_.clear();
  members_.clear();
}

bool RowClocks::HasMembers(uint32_t column) const {
  auto it = std::lower_bound(members_.begin(), members_.end(), column,
                             [](const MemberClock& m, uint32_t c) { return m.column < c; });
  return it != members_.end() && it->column == column;
}

void RowClocks::SetMembers(uint32_t column, std::vector<MemberClock> m) {
  auto lo = std::lower_bound(members_.begin(), members_.end(), column,
                             [](const MemberClock& e, uint32_t c) { return e.column < c; });
  auto hi = std::upper_bound(lo, members_.end(), column, [](uint32_t c, const MemberClock& e) { return c < e.column; });
  auto at = members_.erase(lo, hi);
  for (MemberClock& e : m) e.column = column;
  members_.insert(at, std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
}

namespace {

bool ContributionBefore(const Contribution& e, uint32_t column, uint32_t site) {
  return e.column < column || (e.column == column && e.site < site);
}

}  // namespace

const Contribution* RowClocks::FindContribution(uint32_t column, uint32_t site) const {
  auto it = std::lower_bound(contributions_.begin(), contributions_.end(), std::make_pair(column, site),
                             [](const Contribution& e, const std::pair<uint32_t, uint32_t>& k) {
                               return ContributionBefore(e, k.first, k.second);
                             });
  return it != contributions_.end() && it->column == column && it->site == site ? &*it : nullptr;
}

void RowClocks::PutContribution(const Contribution& c) {
  auto it = std::lower_bound(contributions_.begin(), contributions_.end(), std::make_pair(c.column, c.site),
                             [](const Contribution& e, const std::pair<uint32_t, uint32_t>& k) {
                               return ContributionBefore(e, k.first, k.second);
                             });
  if (it != contributions_.end() && it->column == c.column && it->site == c.site) *it = c;
  else contributions_.insert(it, c);
}

void RowClocks::DropContributionsBefore(int64_t cl) {
  contributions_.erase(std::remove_if(contributions_.begin(), contributions_.end(),
                                      [&](const Contribution& c) { return c.cl < cl; }),
                       contributions_.end());
}

void RowClocks::Resolve(int64_t row_ver, int64_t row_cl) {
  auto fix = [&](ColClock& c) {
    if (c.ver == 0) c.ver = row_ver;
    if (c.cl == 0 && c.hlc != 0) c.cl = row_cl;
  };
  fix(base_);
  for (auto& e : overrides_) fix(e.second);
  for (MemberClock& m : members_)
    if (m.ver == 0) m.ver = row_ver;
}

void RowClocks::Normalize(int64_t row_ver, int64_t row_cl) {
  auto fix = [&](ColClock& c) {
    if (c.ver == row_ver) c.ver = 0;
    if (c.cl == row_cl) c.cl = 0;
  };
  fix(base_);
  for (auto& e : overrides_) fix(e.second);
  for (MemberClock& m : members_)
    if (m.ver == row_ver) m.ver = 0;
}

// Layout: format byte 1, the shared clock's ver and cl, the override count, then
// (column, hlc, site, ver, cl) per override. Format 2 (only when there are contributions)
// goes on with the contribution count, then (column, site, zigzag value, hlc, ver, cl) each.
// Format 3 (only when there are json members) is format 2 followed by the member count, then
// (column, path length, (byte length, bytes) per path key, present, hlc, site, ver, cl) each.
std::string RowClocks::EncodeExtras() const {
  std::string out;
  if (base_.ver == 0 && base_.cl == 0 && overrides_.empty() && contributions_.empty() && members_.empty()) return out;
  out.reserve(8 + overrides_.size() * 16 + contributions_.size() * 24 + members_.size() * 24);
  out.push_back(!members_.empty() ? 3 : contributions_.empty() ? 1 : 2);
  PutVarint(out, static_cast<uint64_t>(base_.ver));
  PutVarint(out, static_cast<uint64_t>(base_.cl));
  PutVarint(out, overrides_.size());
  for (const auto& e : overrides_) {
    PutVarint(out, e.first);
    PutClock(out, e.second);
  }
  if (contributions_.empty() && members_.empty()) return out;
  PutVarint(out, contributions_.size());
  for (const Contribution& c : contributions_) {
    PutVarint(out, c.column);
    PutVarint(out, c.site);
    PutVarint(out, ZigZag(c.value));
    PutVarint(out, c.hlc);
    PutVarint(out, static_cast<uint64_t>(c.ver));
    PutVarint(out, static_cast<uint64_t>(c.cl));
  }
  if (members_.empty()) return out;
  PutVarint(out, members_.size());
  for (const MemberClock& m : members_) {
    PutVarint(out, m.column);
    PutVarint(out, m.path.size());
    for (const std::string& k : m.path) {
      PutVarint(out, k.size());
      out += k;
    }
    out.push_back(m.present ? 1 : 0);
    PutVarint(out, m.hlc);
    PutVarint(out, m.site);
    PutVarint(out, static_cast<uint64_t>(m.ver));
    PutVarint(out, static_cast<uint64_t>(m.cl));
  }
  return out;
}

RowClocks RowClocks::Decode(uint64_t base_hlc, uint32_t base_site, std::string_view extras) {
  RowClocks rc;
  rc.base_.hlc = base_hlc;
  rc.base_.site = base_site;
  if (extras.empty()) return rc;
  ByteReader in(extras, "row clocks");
  uint8_t format = in.Byte();
  if (format < 1 || format > 3) in.Fail("unknown format");
  rc.base_.ver = static_cast<int64_t>(in.Varint());
  rc.base_.cl = static_cast<int64_t>(in.Varint());
  uint64_t n = in.Varint();
  if (n > in.Remaining()) in.Fail("bad override count");
  rc.overrides_.reserve(n);
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t col = in.Varint();
    if (col > UINT32_MAX || (!rc.overrides_.empty() && col <= rc.overrides_.back().first))
      in.Fail("overrides out of order");
    rc.overrides_.emplace_back(static_cast<uint32_t>(col), GetClock(in));
  }
  if (format >= 2) {
    uint64_t m = in.Varint();
    if (m > in.Remaining()) in.Fail("bad contribution count");
    rc.contributions_.reserve(m);
    for (uint64_t k = 0; k < m; ++k) {
      uint64_t col = in.Varint(), site = in.Varint();
      if (col > UINT32_MAX || site == 0 || site > UINT32_MAX) in.Fail("contribution out of range");
      Contribution c;
      c.column = static_cast<uint32_t>(col);
      c.site = static_cast<uint32_t>(site);
      if (!rc.contributions_.empty() && !ContributionBefore(rc.contributions_.back(), c.column, c.site))
        in.Fail("contributions out of order");
      c.value = UnZigZag(in.Varint());
      c.hlc = in.Varint();
      c.ver = static_cast<int64_t>(in.Varint());
      c.cl = static_cast<int64_t>(in.Varint());
      rc.contributions_.push_back(c);
    }
  }
  if (format == 3) {
    uint64_t m = in.Varint();
    if (m > in.Remaining()) in.Fail("bad member count");
    rc.members_.reserve(m);
    for (uint64_t k = 0; k < m; ++k) {
      MemberClock e;
      uint64_t col = in.Varint(), depth = in.Varint();
      if (col > UINT32_MAX || depth == 0 || depth > in.Remaining()) in.Fail("member out of range");
      e.column = static_cast<uint32_t>(col);
      for (uint64_t d = 0; d < depth; ++d) {
        uint64_t len = in.Varint();
        if (len > in.Remaining()) in.Fail("bad member path");
        e.path.push_back(std::string(in.Bytes(static_cast<size_t>(len))));
      }
      uint8_t present = in.Byte();
      if (present > 1) in.Fail("bad member flag");
      e.present = present == 1;
      e.hlc = in.Varint();
      uint64_t site = in.Varint();
      if (site > UINT32_MAX) in.Fail("site ordinal out of range");
      e.site = static_cast<uint32_t>(site);
      e.ver = static_cast<int64_t>(in.Varint());
      e.cl = static_cast<int64_t>(in.Varint());
      if (!rc.members_.empty() && !(rc.members_.back().column < e.column ||
                                    (rc.members_.back().column == e.column && rc.members_.back().path < e.path)))
        in.Fail("members out of order");
      rc.members_.push_back(std::move(e));
    }
  }
  if (!in.AtEnd()) in.Fail("trailing bytes");
  return rc;
}

RowClocks RemapColumns(const RowClocks& old, const std::vector<int64_t>& to) {
  auto dest = [&](uint32_t col) { return col < to.size() ? to[col] : -1; };
  RowClocks moved(old.Base());
  for (const auto& [col, clock] : old.Overrides())
    if (dest(col) >= 0) moved.Set(static_cast<uint32_t>(dest(col)), clock);
  std::vector<Contribution> contributions;
  for (Contribution c : old.Contributions())
    if (dest(c.column) >= 0) {
      c.column = static_cast<uint32_t>(dest(c.column));
      contributions.push_back(c);
    }
  std::sort(contributions.begin(), contributions.end(), [](const Contribution& a, const Contribution& b) {
    return a.column != b.column ? a.column < b.column : a.site < b.site;
  });
  moved.SetContributions(std::move(contributions));
  std::vector<MemberClock> members;
  for (MemberClock m : old.Members())
    if (dest(m.column) >= 0) {
      m.column = static_cast<uint32_t>(dest(m.column));
      members.push_back(std::move(m));
    }
  std::stable_sort(members.begin(), members.end(),
                   [](const MemberClock& a, const MemberClock& b) { return a.column < b.column; });
  moved.SetAllMembers(std::move(members));
  return moved;
}

void MarkAddedColumns(RowClocks& clocks, const std::vector<uint32_t>& added, const std::vector<uint32_t>& valued,
                      int64_t ver, int64_t cl) {
  for (uint32_t c : added) {
    bool own = std::any_of(clocks.Overrides().begin(), clocks.Overrides().end(),
                           [&](const auto& e) { return e.first == c && e.second.Present(); });
    if (own) continue;
    bool value = std::find(valued.begin(), valued.end(), c) != valued.end();
    clocks.Set(c, value ? ColClock{kAddedValueHlc, 0, ver, cl} : ColClock{});
  }
}

}  // namespace deltasync
