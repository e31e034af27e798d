// The JSON payload decoder (common/payload_json.cpp). Its fast decoder and its reference
// decoder must agree: whatever the fast one builds, the reference builds the same model
// (or both refuse it once validated). A model either accepts also survives a round trip
// through both codecs (JSON and binary accept the same models).
#include <optional>

#include "common/payload_binary.hpp"
#include "common/payload_json.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = fuzz::AsText(data, size);

  Payload fast;
  const bool fast_took = DecodeJsonFast(text, fast);
  std::optional<Payload> fast_valid;
  if (fast_took) {
    try {
      ValidatePayload(fast);
      fast_valid = std::move(fast);
    } catch (const Error& e) {
      fuzz::CheckRefusal(e);
    }
  }

  std::optional<Payload> ref;
  try {
    ref = DecodeJsonReference(text);
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
  }

  if (fast_took) {
    FUZZ_CHECK(fast_valid.has_value() == ref.has_value());
    if (ref) FUZZ_CHECK(fuzz::SamePayload(*fast_valid, *ref));
  }

  // DecodeJson is the fast decoder with the reference behind it.
  std::optional<Payload> both;
  try {
    both = DecodeJson(text);
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
  }
  FUZZ_CHECK(both.has_value() == ref.has_value());
  if (!ref) return 0;
  FUZZ_CHECK(fuzz::SamePayload(*both, *ref));

  // What the encoder writes, the fast decoder takes outright, as the same model.
  Payload again;
  FUZZ_CHECK(DecodeJsonFast(EncodeJson(*ref), again));
  FUZZ_CHECK(fuzz::SamePayload(again, *ref));
  FUZZ_CHECK(fuzz::SamePayload(DecodeBinary(EncodeBinary(*ref)), *ref));
  return 0;
}
