#include "common/row_clocks.hpp"

#include <algorithm>

#include "common/varint.hpp"

namespace deltasync {

const ColClock& RowClocks::Get(uint32_t column) const {
  auto it = std::lower_bound(overrides_.begin(), overrides_.end(), column,
                             [](const auto& e, uint32_t c) { return e.first < c; });
  return it != overrides_.end() && it->first == column ? it->second : base_;
}

void RowClocks::Set(uint32_t column, const ColClock& clock) {
  auto it = std::lower_bound(overrides_.begin(), overrides_.end(), column,
                             [](const auto& e, uint32_t c) { return e.first < c; });
  if (it != overrides_.end() && it->first == column) {
    it->second = clock;
  } else {
    overrides_.insert(it, {column, clock});
  }
}

void RowClocks::SetAll(const ColClock& clock) {
  base_ = clock;
  overrides_.clear();
}

void RowClocks::ResolveVersions(int64_t row_ver) {
  if (base_.ver == 0) base_.ver = row_ver;
  for (auto& e : overrides_)
    if (e.second.ver == 0) e.second.ver = row_ver;
}

static void PutClock(std::string& out, const ColClock& c) {
  PutVarint(out, c.hlc);
  PutVarint(out, c.site);
  PutVarint(out, static_cast<uint64_t>(c.ver));
  PutVarint(out, static_cast<uint64_t>(c.cl));
}

static ColClock GetClock(ByteReader& in) {
  ColClock c;
  c.hlc = in.Varint();
  uint64_t site = in.Varint();
  if (site > UINT32_MAX) in.Fail("site ordinal out of range");
  c.site = static_cast<uint32_t>(site);
  c.ver = static_cast<int64_t>(in.Varint());
  c.cl = static_cast<int64_t>(in.Varint());
  return c;
}

// Layout: format byte 1, base clock, override count, then (column, clock) pairs.
std::string RowClocks::Encode() const {
  std::string out;
  out.reserve(16 + overrides_.size() * 16);
  out.push_back(1);
  PutClock(out, base_);
  PutVarint(out, overrides_.size());
  for (const auto& e : overrides_) {
    PutVarint(out, e.first);
    PutClock(out, e.second);
  }
  return out;
}

RowClocks RowClocks::Decode(std::string_view bytes) {
  ByteReader in(bytes, "row clocks");
  if (in.Byte() != 1) in.Fail("unknown format");
  RowClocks rc;
  rc.base_ = GetClock(in);
  uint64_t n = in.Varint();
  if (n > in.Remaining()) in.Fail("bad override count");
  rc.overrides_.reserve(n);
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t col = in.Varint();
    if (col > UINT32_MAX || (!rc.overrides_.empty() && col <= rc.overrides_.back().first))
      in.Fail("overrides out of order");
    rc.overrides_.emplace_back(static_cast<uint32_t>(col), GetClock(in));
  }
  if (!in.AtEnd()) in.Fail("trailing bytes");
  return rc;
}

}  // namespace deltasync
