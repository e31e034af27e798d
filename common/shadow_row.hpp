#pragma once
// The shadow row each tracked table keeps per base row, as both engines store it: the key
// columns k0, k1, ... then cl, ver, hlc, site, clk (common/row_clocks.hpp's stored form).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/row_clocks.hpp"

namespace deltasync {

// The columns of a shadow row after its key, in the order ShadowRowFromStored takes them.
inline constexpr const char* kShadowColumns = "cl, ver, hlc, site, clk";

// One shadow row, clocks in explicit form (no "current version" markers). A deleted row
// has no column clocks at all.
struct ShadowRow {
  int64_t cl = 0;
  int64_t ver = 0;
  RowClocks clocks;
};

// The shadow row from its stored columns; throws kInvalidPayload when clk is malformed.
ShadowRow ShadowRowFromStored(int64_t cl, int64_t ver, int64_t hlc, int64_t site, std::string_view clk);

// The name of the shadow table's k-th key column: k0, k1, ...
std::string ShadowKeyColumn(size_t k);

}  // namespace deltasync
