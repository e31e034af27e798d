// The key codec (common/key_codec.cpp): refusals are deltasync::Error; a decoded key
// encodes to bytes that decode to the same key, and encoding is canonical from there on.
#include <optional>
#include <vector>

#include "common/key_codec.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<std::vector<Value>> key;
  try {
    key = DecodeKey(fuzz::AsText(data, size));
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
    return 0;
  }
  const std::string bytes = EncodeKey(*key);
  const std::vector<Value> again = DecodeKey(bytes);
  FUZZ_CHECK(again == *key);
  FUZZ_CHECK(EncodeKey(again) == bytes);
  return 0;
}
