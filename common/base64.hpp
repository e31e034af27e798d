#pragma once
// Standard base64 (RFC 4648, with padding) for bytes inside JSON payloads.
#include <string>
#include <string_view>

namespace deltasync {
std::string Base64Encode(std::string_view bytes);
// Throws kInvalidPayload on any character or length that standard base64 does not allow.
std::string Base64Decode(std::string_view text);
}  // namespace deltasync
