// A push request's body as the hub decodes it (DecodeRequestBody in server/hub_codec.cpp).
// Input: the Content-Type line, the Content-Encoding line, then the body. An unsupported
// type or encoding is UnsupportedMediaType (HTTP 415), every other refusal a plain
// deltasync::Error (400); a payload the hub accepts comes back the same through each
// response form the hub writes, as the client decodes it.
#include <httplib.h>

#include <optional>
#include <string>

#include "common/payload_codec.hpp"
#include "fuzz_util.hpp"
#include "server/hub_codec.hpp"

using namespace deltasync;

namespace {
constexpr size_t kMaxDecodedBytes = size_t{1} << 20;

// Takes the text up to the next '\n' (or all of it) off the front of `in`.
std::string_view Line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::AsText(data, size);
  const std::string content_type(Line(in));
  const std::string content_encoding(Line(in));
  std::optional<Payload> p;
  try {
    p = hub::DecodeRequestBody(in, content_type, content_encoding, kMaxDecodedBytes);
  } catch (const hub::UnsupportedMediaType& e) {
    fuzz::CheckRefusal(e);
    return 0;
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
    // Only the 415 names an unsupported type or encoding.
    FUZZ_CHECK(std::string_view(e.what()).rfind("deltasync: unsupported content", 0) == std::string_view::npos);
    return 0;
  }
  for (const char* accept : {"application/vnd.deltasync.payload", "application/json", ""}) {
    for (const char* accept_encoding : {"zstd", ""}) {
      httplib::Response res;
      hub::EncodeResponseBody(*p, accept, accept_encoding, res);
      Payload back = DecodeAny(res.body, res.get_header_value("Content-Type"),
                               res.get_header_value("Content-Encoding"), size_t{1} << 30);
      FUZZ_CHECK(fuzz::SamePayload(back, *p));
    }
  }
  return 0;
}
