#include "server/hub_codec.hpp"

namespace deltasync::hub {

namespace {
std::string MediaType(const std::string& header) {
  std::string t = header.substr(0, header.find(';'));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}
}  // namespace

Payload DecodeRequestBody(std::string_view body, const std::string& content_type, const std::string& content_encoding,
                          size_t) {
  if (!content_encoding.empty() && content_encoding != "identity")
    throw UnsupportedMediaType("unsupported content encoding \"" + content_encoding + "\"");
  std::string type = MediaType(content_type);
  if (type == "application/json") return DecodeJson(body);
  throw UnsupportedMediaType("unsupported content type \"" + type + "\"; send application/json");
}

void EncodeResponseBody(const Payload& p, const std::string&, const std::string&, httplib::Response& res) {
  res.set_content(EncodeJson(p), "application/json");
}

}  // namespace deltasync::hub
