#pragma once
// The JSON codec of the payload model, one file per part: the encoder (payload_json_encode),
// the fast decoder with the DecodeJson entry point (payload_json_fast) and the reference
// decoder (payload_json_reference). EncodeJson and DecodeJson are declared in payload.hpp;
// the two decoders are declared here, apart, so that a test can check they agree: whatever
// the fast one builds, the reference builds too.
#include <string_view>

#include "common/payload.hpp"

namespace deltasync {

// The value of every JSON payload's "format" member.
inline constexpr std::string_view kJsonFormatName = "deltasync";

// The fast single-pass decoder: true, with `out` built but not yet validated, when it takes
// the text outright; false when it gives the text up for the reference to judge. It never
// throws a refusal of its own.
bool DecodeJsonFast(std::string_view text, Payload& out);

// The reference decoder (a DOM, then field-by-field checks): a validated model, or
// kInvalidPayload with the documented message.
Payload DecodeJsonReference(std::string_view text);

}  // namespace deltasync
