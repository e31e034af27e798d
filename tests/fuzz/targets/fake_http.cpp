// The fake HTTP transport of the hub-answer target (fake_http.hpp). It also checks what
// the client sends: every push body decodes as a payload under the headers sent with it.
#include "fake_http.hpp"

#include "common/error.hpp"
#include "common/payload_codec.hpp"
#include "fuzz_util.hpp"

namespace deltasync {

namespace fuzz {
std::deque<HttpResponse>& QueuedAnswers() {
  static std::deque<HttpResponse> answers;
  return answers;
}
}  // namespace fuzz

HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
                         const HttpOptions&) {
  if (method == "POST") {
    std::string type, encoding;
    for (const auto& [name, value] : headers) {
      if (name == "Content-Type") type = value;
      if (name == "Content-Encoding") encoding = value;
    }
    bool decodes = true;
    try {
      DecodeAny(body, type, encoding, size_t{1} << 30);
    } catch (const Error&) {
      decodes = false;
    }
    FUZZ_CHECK(decodes);  // the client sent a push body it cannot read back itself
  }
  auto& answers = fuzz::QueuedAnswers();
  if (answers.empty()) throw Error(ErrorCode::kNetwork, url + ": connection closed (no more answers)");
  HttpResponse res = std::move(answers.front());
  answers.pop_front();
  return res;
}

// The URL is the caller's, not the hub's: any URL names one fixed node here.
HubUrl ParseHubUrl(const std::string&) { return HubUrl{"http://hub.test", "n1"}; }

}  // namespace deltasync
