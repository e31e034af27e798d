// Row clocks (common/row_clocks.cpp Decode): the extras blob of a shadow row. Refusals are
// deltasync::Error; what decodes encodes back to extras that decode to the same clocks.
#include <cstring>
#include <optional>

#include "common/row_clocks.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

namespace {
bool SameClocks(const RowClocks& a, const RowClocks& b) {
  if (!(a.Base() == b.Base()) || a.Overrides().size() != b.Overrides().size()) return false;
  for (size_t k = 0; k < a.Overrides().size(); ++k)
    if (a.Overrides()[k].first != b.Overrides()[k].first || !(a.Overrides()[k].second == b.Overrides()[k].second))
      return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The shared clock's hlc and site are integer columns beside the blob; the first bytes pick them.
  uint64_t hlc = 0;
  uint32_t site = 0;
  if (size >= 12) {
    std::memcpy(&hlc, data, 8);
    std::memcpy(&site, data + 8, 4);
    data += 12;
    size -= 12;
  }
  std::optional<RowClocks> rc;
  try {
    rc = RowClocks::Decode(hlc, site, fuzz::AsText(data, size));
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
    return 0;
  }
  FUZZ_CHECK(SameClocks(RowClocks::Decode(hlc, site, rc->EncodeExtras()), *rc));
  for (const auto& [column, clock] : rc->Overrides()) FUZZ_CHECK(rc->Get(column) == clock);
  return 0;
}
