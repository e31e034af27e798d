#pragma once
// Request and response bodies of the hub: which codec and compression a client asked for.
#include <httplib.h>

#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/payload.hpp"

namespace deltasync::hub {

// A body in a content type or encoding the hub does not speak (answered with 415).
class UnsupportedMediaType : public Error {
 public:
  explicit UnsupportedMediaType(const std::string& what) : Error(ErrorCode::kInvalidPayload, what) {}
};

Payload DecodeRequestBody(std::string_view body, const std::string& content_type,
                          const std::string& content_encoding, size_t max_decoded_bytes);

void EncodeResponseBody(const Payload& p, const std::string& accept, const std::string& accept_encoding,
                        httplib::Response& res);

}  // namespace deltasync::hub
