#include "common/payload_codec.hpp"

#include <string>

#include "common/compress.hpp"
#include "common/error.hpp"

namespace deltasync {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k) {
    char x = a[k], y = b[k];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Printable ASCII only, and short: the header comes from the network.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 100)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 100) out.append("...");
  return out + "\"";
}

}  // namespace

Payload DecodeAny(std::string_view body, std::string_view content_type, std::string_view content_encoding,
                  size_t max_size) {
  std::string_view type = Trim(content_type.substr(0, content_type.find(';')));
  const bool json = EqualsIgnoreCase(type, kContentTypeJson);
  const bool binary = EqualsIgnoreCase(type, kContentTypeBinary);
  if (!json && !binary) throw Error(ErrorCode::kInvalidPayload, "unsupported content type " + Quoted(content_type));
  std::string_view encoding = Trim(content_encoding);
  std::string decompressed;
  if (EqualsIgnoreCase(encoding, kContentEncodingZstd)) {
    decompressed = ZstdDecompress(body, max_size);
    body = decompressed;
  } else if (encoding.empty() || EqualsIgnoreCase(encoding, kContentEncodingIdentity)) {
    if (body.size() > max_size)
      throw Error(ErrorCode::kInvalidPayload,
                  "invalid payload: larger than the limit of " + std::to_string(max_size) + " bytes");
  } else {
    throw Error(ErrorCode::kInvalidPayload, "unsupported content encoding " + Quoted(content_encoding));
  }
  return json ? DecodeJson(body) : DecodeBinary(body);
}

}  // namespace deltasync
