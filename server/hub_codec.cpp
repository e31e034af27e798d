#include "server/hub_codec.hpp"

#include "common/compress.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"

namespace deltasync::hub {

Payload DecodeRequestBody(std::string_view body, const std::string& content_type, const std::string& content_encoding,
                          size_t max_decoded_bytes) {
  std::string type = HeaderToken(content_type);
  if (type != kContentTypeJson && type != kContentTypeBinary)
    throw UnsupportedMediaType("unsupported content type \"" + type + "\"; send " + std::string(kContentTypeBinary) +
                               " or " + std::string(kContentTypeJson));
  std::string encoding = HeaderToken(content_encoding);
  if (!IsDecodableEncoding(encoding))
    throw UnsupportedMediaType("unsupported content encoding \"" + content_encoding + "\"; send zstd or identity");
  // The encoding as judged here: DecodeAny reading the raw header differently would refuse
  // what passed this check with a 400 rather than the 415 above.
  return DecodeAny(body, type, encoding, max_decoded_bytes);
}

void EncodeResponseBody(const Payload& p, const std::string& accept, const std::string& accept_encoding,
                        httplib::Response& res) {
  bool binary = accept.find(kContentTypeBinary) != std::string::npos;
  std::string body = binary ? EncodeBinary(p) : EncodeJson(p);
  if (accept_encoding.find(kContentEncodingZstd) != std::string::npos) {
    body = ZstdCompress(body);
    res.set_header("Content-Encoding", std::string(kContentEncodingZstd));
  }
  res.set_content(std::move(body), std::string(binary ? kContentTypeBinary : kContentTypeJson));
}

}  // namespace deltasync::hub
