#pragma once
// The wire forms of a payload: content types and encodings (as in HTTP), and one entry
// point that decodes any of them. docs/protocol.md describes both codecs.
#include <cstddef>
#include <string>
#include <string_view>

#include "common/payload.hpp"
#include "common/payload_binary.hpp"

namespace deltasync {

inline constexpr std::string_view kContentTypeJson = "application/json";
inline constexpr std::string_view kContentTypeBinary = "application/vnd.deltasync.payload";
inline constexpr std::string_view kContentEncodingZstd = "zstd";
inline constexpr std::string_view kContentEncodingIdentity = "identity";

// The token of a Content-Type or Content-Encoding value as deltasync compares it, on the hub
// and in the client alike: what comes before any ';' parameter, spaces and tabs trimmed,
// ASCII letters lowercased.
std::string HeaderToken(std::string_view value);

// A Content-Encoding deltasync decodes: none, identity or zstd (read by HeaderToken).
bool IsDecodableEncoding(std::string_view value);

// Decodes a body by its content type (JSON or binary; parameters such as
// "; charset=utf-8" are ignored, the type is compared case-insensitively) and content
// encoding ("" or "identity": as is; "zstd": decompressed first), both read by HeaderToken. The body, after any
// decompression, may be at most max_size bytes. Unknown types and encodings are refused
// with kInvalidPayload: "unsupported content type ...", "unsupported content encoding ...".
Payload DecodeAny(std::string_view body, std::string_view content_type, std::string_view content_encoding,
                  size_t max_size);

}  // namespace deltasync
