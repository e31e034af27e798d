#pragma once
// The compact binary codec of the payload model (docs/protocol.md, "Binary form"). It is a
// second view of the same model as the JSON codec: both carry exactly the same information
// and accept the same set of models.
#include <string>
#include <string_view>

#include "common/payload.hpp"

namespace deltasync {

// The 4 bytes every binary payload starts with; a format version (varint) follows.
inline constexpr std::string_view kBinaryMagic = "DSB1";

// Encodes a model. Throws kInvalidPayload only for a row whose key does not have one
// value per primary-key column (the binary form does not repeat the key's arity per row).
std::string EncodeBinary(const Payload& p);

// Decodes strictly (every length and count checked against the bytes left, no trailing
// bytes), then runs ValidatePayload. Throws deltasync::Error (kInvalidPayload) on any
// input it does not accept.
Payload DecodeBinary(std::string_view bytes);

}  // namespace deltasync
