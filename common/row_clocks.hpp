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

#include "common/hlc.hpp"

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

// Another site's contribution to a counter column (common/counter.hpp). Only that site
// writes its own, so of two versions the one with the greater (cl, hlc) is the latest. This
// site's own contribution is not stored: it is the column's value minus the others'.
struct Contribution {
  uint32_t column = 0;
  uint32_t site = 0;  // the contributor's local ordinal, never 0
  int64_t value = 0;
  uint64_t hlc = 0;
  int64_t ver = 0;  // the local db_version at which this site adopted it (explicit, never 0)
  int64_t cl = 0;   // the row's causal length (its life) when it was written (explicit)
  bool operator==(const Contribution& o) const {
    return column == o.column && site == o.site && value == o.value && hlc == o.hlc && ver == o.ver && cl == o.cl;
  }
};

// A member of a json column (common/json_merge.hpp): its path, whether it shows (its value is
// then the column's document at that path) or was removed, and the clock of the write.
struct MemberClock {
  uint32_t column = 0;
  std::vector<std::string> path;
  bool present = false;
  uint64_t hlc = 0;
  uint32_t site = 0;  // the writer's local ordinal (0 = this site)
  int64_t ver = 0;    // the local db_version at which this site adopted it; stored form: 0 = the row's
  int64_t cl = 0;     // the row's causal length (its life) when it was written (explicit)
  bool operator==(const MemberClock& o) const {
    return column == o.column && path == o.path && present == o.present && hlc == o.hlc && site == o.site &&
           ver == o.ver && cl == o.cl;
  }
};

class RowClocks {
 public:
  RowClocks() = default;
  explicit RowClocks(const ColClock& all) : base_(all) {}

  const ColClock& Get(uint32_t column) const;
  void Set(uint32_t column, const ColClock& clock);
  // Every column written by one clock: the overrides and the contributions are dropped.
  void SetAll(const ColClock& clock);
  const ColClock& Base() const { return base_; }
  const std::vector<std::pair<uint32_t, ColClock>>& Overrides() const { return overrides_; }

  // Counter contributions of other sites, sorted by (column, site).
  const std::vector<Contribution>& Contributions() const { return contributions_; }
  // The contribution of `site` to `column`, or nullptr.
  const Contribution* FindContribution(uint32_t column, uint32_t site) const;
  // Inserts or replaces the contribution of c.site to c.column.
  void PutContribution(const Contribution& c);
  // Drops the contributions written in a life before `cl` (the row was deleted since).
  void DropContributionsBefore(int64_t cl);
  // Replaces every contribution (a column move, a decoded row).
  void SetContributions(std::vector<Contribution> c) { contributions_ = std::move(c); }

  // The members of json columns, sorted by (column, path). A json column without any has one
  // implicitly per leaf of its document, at the column's clock.
  const std::vector<MemberClock>& Members() const { return members_; }
  bool HasMembers(uint32_t column) const;
  // Replaces column `column`'s members (sorted by path).
  void SetMembers(uint32_t column, std::vector<MemberClock> m);
  // Replaces every member (a column move, a decoded row).
  void SetAllMembers(std::vector<MemberClock> m) { members_ = std::move(m); }

  // Column `column`'s value is to be sent again under a new name (RENAME COLUMN: the hub and
  // other sites hold its cells under the old one): its version becomes `ver`, its hlc, site
  // and cl stay, so every receiver merges it as the same write. A column on the shared clock
  // takes the shared clock, and so every column on it, along. Explicit form (Resolve first).
  void Readopt(uint32_t column, int64_t ver);

  // Stored form <-> explicit form: replaces 0 by the row's version and causal length ...
  void Resolve(int64_t row_ver, int64_t row_cl);
  // ... and back: writes 0 where an entry equals them, so the extras usually vanish.
  void Normalize(int64_t row_ver, int64_t row_cl);

  // The extras blob; empty when only the shared hlc and site carry information (format 1,
  // 2 when there are contributions, 3 when there are json members).
  std::string EncodeExtras() const;
  // Throws kInvalidPayload when the extras are malformed.
  static RowClocks Decode(uint64_t base_hlc, uint32_t base_site, std::string_view extras);

 private:
  ColClock base_;
  std::vector<std::pair<uint32_t, ColClock>> overrides_;  // sorted by column
  std::vector<Contribution> contributions_;               // sorted by (column, site)
  std::vector<MemberClock> members_;                      // sorted by (column, path)
};

// A row's clocks after its table's tracked columns moved: the clock (and a counter's
// contributions) of column i go to position to[i]; to[i] < 0, or i past the end: the column
// is gone, and so is what it had. The shared clock stays.
RowClocks RemapColumns(const RowClocks& old, const std::vector<int64_t>& to);

// The smallest real clock's hlc (millisecond 1 of 1970, logical 0: the least a payload
// takes): what ADD COLUMN ... DEFAULT puts in existing rows travels under it (from the
// adding site), so every site gets the value, any real write anywhere wins over it, and two
// sites that declared different defaults tie-break by site id.
inline constexpr uint64_t kAddedValueHlc = uint64_t{1} << kHlcLogicalBits;

// A live row's clocks after columns `added` (positions) were added to its table, unless the
// row already has a clock of its own for a column (a present one). What the row holds there
// was written by no one: a NULL gets no version (hlc 0: not sent, loses to any value); a
// value (the column's default) — the columns listed in `valued`, a subset of `added` — gets
// the clock {kAddedValueHlc, this site, ver, cl}, sent as a change of local version `ver`.
// Explicit form (Resolve first) when `valued` is not empty.
void MarkAddedColumns(RowClocks& clocks, const std::vector<uint32_t>& added, const std::vector<uint32_t>& valued = {},
                      int64_t ver = 0, int64_t cl = 0);

}  // namespace deltasync
