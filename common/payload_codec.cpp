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

// Printable ASCII only, and short: the header comes from the network.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 100)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 100) out.append("...");
  return out + "\"";
}

}  // namespace

std::string HeaderToken(std::string_view value) {
  std::string t(Trim(value.substr(0, value.find(';'))));
  for (char& c : t)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return t;
}

bool IsDecodableEncoding(std::string_view value) {
  std::string e = HeaderToken(value);
  return e.empty() || e == kContentEncodingIdentity || e == kContentEncodingZstd;
}

Payload DecodeAny(std::string_view body, std::string_view content_type, std::string_view content_encoding,
                  size_t max_size) {
  const std::string type = HeaderToken(content_type);
  const bool json = type == kContentTypeJson;
  const bool binary = type == kContentTypeBinary;
  if (!json && !binary) throw Error(ErrorCode::kInvalidPayload, "unsupported content type " + Quoted(content_type));
  const std::string encoding = HeaderToken(content_encoding);
  std::string decompressed;
  if (encoding == kContentEncodingZstd) {
    decompressed = ZstdDecompress(body, max_size);
    body = decompressed;
  } else if (encoding.empty() || encoding == kContentEncodingIdentity) {
    if (body.size() > max_size)
      throw Error(ErrorCode::kInvalidPayload,
                  "invalid payload: larger than the limit of " + std::to_string(max_size) + " bytes");
  } else {
    throw Error(ErrorCode::kInvalidPayload, "unsupported content encoding " + Quoted(content_encoding));
  }
  Payload p = json ? DecodeJson(body) : DecodeBinary(body);
  DropUnusedSites(p);
  return p;
}

}  // namespace deltasync
