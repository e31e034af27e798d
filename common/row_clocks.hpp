#pragma once
// The per-row clock record kept in a shadow table: one clock shared by all columns
// (set by an insert or a full-row apply) plus sparse per-column overrides (set by updates).
// This is what keeps shadow storage at one small row per base row.
//
// Storage form: the shared clock's hlc and site are plain integer columns next to the
// row's causal length and version; everything else is the "extras" blob, which is empty
// (stored as NULL) in the common case where the shared clock was written at the row's
// current version and causal length and no column was updated since.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deltasync {

// One column's version on one site. site is the local ordinal of the origin site
// (0 = this site). ver is the local db_version at which this site adopted it. In stored
// form a ver or cl of 0 stands for "the row's current one", which lets triggers write a
// clock and a new row version in one statement without depending on evaluation order.
struct ColClock {
  uint64_t hlc = 0;  // 0: no clock (the column has no value under any version)
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
  const ColClock& Base() const { return base_; }
  const std::vector<std::pair<uint32_t, ColClock>>& Overrides() const { return overrides_; }

  // Stored form <-> explicit form: replaces 0 by the row's version and causal length ...
  void Resolve(int64_t row_ver, int64_t row_cl);
  // ... and back: writes 0 where an entry equals them, so the extras usually vanish.
  void Normalize(int64_t row_ver, int64_t row_cl);

  // The extras blob; empty when only the shared hlc and site carry information.
  std::string EncodeExtras() const;
  // Throws kInvalidPayload when the extras are malformed.
  static RowClocks Decode(uint64_t base_hlc, uint32_t base_site, std::string_view extras);

 private:
  ColClock base_;
  std::vector<std::pair<uint32_t, ColClock>> overrides_;  // sorted by column
};

// A live row's clocks after columns `added` (positions) were added to its table: the value
// the row holds there (the column's default, or NULL) has no version — it loses to any real
// write and merges the same everywhere — so each gets a clock with hlc 0, unless the row
// already has a clock of its own for it.
void MarkAddedColumns(RowClocks& clocks, const std::vector<uint32_t>& added);

}  // namespace deltasync
