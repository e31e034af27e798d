// The binary payload decoder (common/payload_binary.cpp): it refuses with deltasync::Error
// only, and a model it accepts survives a round trip through both codecs.
#include <optional>

#include "common/payload_binary.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<Payload> p;
  try {
    p = DecodeBinary(fuzz::AsText(data, size));
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
    return 0;
  }
  FUZZ_CHECK(fuzz::SamePayload(DecodeBinary(EncodeBinary(*p)), *p));
  FUZZ_CHECK(fuzz::SamePayload(DecodeJson(EncodeJson(*p)), *p));
  return 0;
}
