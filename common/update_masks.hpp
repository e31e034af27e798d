#pragma once
// The column masks a capture trigger passes for an update, once for both engines: mask g
// has bit k set when non-key column kColumnsPerMask * g + k changed.
#include <cstdint>

#include "common/hlc.hpp"
#include "common/row_clocks.hpp"

namespace deltasync {

// Columns per mask: each mask is one 64-bit SQL integer, kept clear of the sign bit
// (shadow tables and triggers of both engines are built with this width).
inline constexpr uint32_t kColumnsPerMask = 62;

// Gives each column whose bit is set in masks 0..n-1 (mask_at(g) returns mask g) a clock of
// this write at the row's new version (ver 0 and cl 0 in stored form). A local write always
// gets a clock newer than the version it overwrites in the row's current life, even one
// from a faster clock; `clock` observes such a bumped clock.
template <typename MaskAt>
void MarkUpdatedColumns(RowClocks& clocks, int64_t cl, uint64_t now, int n, MaskAt mask_at, HlcClock& clock) {
  for (int g = 0; g < n; ++g) {
    uint64_t mask = mask_at(g);
    for (uint32_t bit = 0; mask != 0; ++bit, mask >>= 1) {
      if (!(mask & 1)) continue;
      uint32_t col = static_cast<uint32_t>(g) * kColumnsPerMask + bit;
      ColClock c;
      c.hlc = now;
      const ColClock& old = clocks.Get(col);
      if (old.cl == cl && old.hlc >= c.hlc) {
        c.hlc = old.hlc + 1;
        clock.Observe(c.hlc);
      }
      clocks.Set(col, c);
    }
  }
}

}  // namespace deltasync
