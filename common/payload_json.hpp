#pragma once
// The two decoders behind DecodeJson (payload.hpp), apart, so that a test can check they
// agree: whatever the fast one builds, the reference builds too.
#include <string_view>

#include "common/payload.hpp"

namespace deltasync {

// The fast single-pass decoder: true, with `out` built but not yet validated, when it takes
// the text outright; false when it gives the text up for the reference to judge. It never
// throws a refusal of its own.
bool DecodeJsonFast(std::string_view text, Payload& out);

// The reference decoder (a DOM, then field-by-field checks): a validated model, or
// kInvalidPayload with the documented message.
Payload DecodeJsonReference(std::string_view text);

}  // namespace deltasync
