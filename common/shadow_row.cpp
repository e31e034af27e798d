#include "common/shadow_row.hpp"

#include "common/merge.hpp"

namespace deltasync {

ShadowRow ShadowRowFromStored(int64_t cl, int64_t ver, int64_t hlc, int64_t site, std::string_view clk) {
  ShadowRow r;
  r.cl = cl;
  r.ver = ver;
  if (RowExists(cl)) {
    r.clocks = RowClocks::Decode(static_cast<uint64_t>(hlc), static_cast<uint32_t>(site), clk);
    r.clocks.Resolve(ver, cl);
  }
  return r;
}

std::string ShadowKeyColumn(size_t k) { return "k" + std::to_string(k); }

}  // namespace deltasync
