#pragma once
// The per-row clock record kept in a shadow table: one clock shared by all columns
// (set by an insert or a full-row apply) plus sparse per-column overrides (set by updates).
// This is what keeps shadow storage at one small row per base row.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deltasync {

// One column's version on one site. site is the local ordinal of the origin site
// (0 = this site). ver is the local db_version at which this site adopted it; 0 stands
// for "the row's current version", which lets triggers write clocks and the row version
// in one statement without depending on evaluation order.
struct ColClock {
  uint64_t hlc = 0;  // 0: no clock (the column has never been written under any version)
  uint32_t site = 0;
  int64_t ver = 0;
  int64_t cl = 0;  // the row's causal length when the value was written
  bool Present() const { return hlc != 0; }
  bool operator==(const ColClock& o) const {
    return hlc == o.hlc && site == o.site && ver == o.ver && cl == o.cl;
  }
};

class RowClocks {
 public:
  RowClocks() = default;
  explicit RowClocks(const ColClock& all) : base_(all) {}

  const ColClock& Get(uint32_t column) const;
  void Set(uint32_t column, const ColClock& clock);
  void SetAll(const ColClock& clock);
  // Replaces every "current row version" marker (ver 0) by row_ver.
  void ResolveVersions(int64_t row_ver);
  const ColClock& Base() const { return base_; }
  const std::vector<std::pair<uint32_t, ColClock>>& Overrides() const { return overrides_; }

  std::string Encode() const;
  static RowClocks Decode(std::string_view bytes);  // throws kInvalidPayload when malformed

 private:
  ColClock base_;
  std::vector<std::pair<uint32_t, ColClock>> overrides_;  // sorted by column
};

}  // namespace deltasync
