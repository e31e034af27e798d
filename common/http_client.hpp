#pragma once
// The HTTP client the engines use to talk to a hub (libcurl underneath).
//
// HttpRequest returns every HTTP status as a response; only transport failures throw:
// Error(kNetwork, "<url>: <cause>"), for example refused connections, timeouts, TLS
// failures, a response over max_response_bytes, or a cancel through should_abort. The
// bearer token never appears in any message.
//
// Each thread keeps one libcurl handle pair, so consecutive requests from a thread to the
// same hub reuse the keep-alive connection. HttpRequest is safe to call from many threads.
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deltasync {

struct HttpOptions {
  std::string token;                // sent as "Authorization: Bearer <token>" when not empty
  long timeout_ms = 30000;          // whole request, connect included; <= 0: no limit
  long connect_timeout_ms = 10000;  // <= 0: libcurl's default
  bool verify_tls = true;           // https: verify the peer certificate and host name
  std::string ca_file;              // https: PEM bundle to verify against instead of the system's
  size_t max_response_bytes = size_t{256} << 20;  // a larger body aborts the transfer
  // Polled at least every ~50 ms while the request runs (and from libcurl's progress
  // callback); returning true cancels the request with Error(kNetwork, "<url>: cancelled").
  // It runs on the calling thread, must not throw through libcurl (exceptions are caught
  // and rethrown after the transfer is torn down) and must never longjmp.
  std::function<bool()> should_abort;
};

struct HttpResponse {
  long status = 0;
  std::string body;  // as received: no Content-Encoding is undone here
  std::string content_type;
  std::string content_encoding;
  std::map<std::string, std::string> headers;  // lowercased names; repeated headers joined by ", "
};

// method: GET, POST, PUT, DELETE, ... ; headers: extra request headers (name, value), which
// may not contain CR or LF. A non-empty body without a Content-Type header is sent as
// application/octet-stream. Redirects are not followed (the 3xx is returned).
HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
                         const HttpOptions& options);

// A hub URL: http(s)://host[:port][/prefix]/nodes/<node>, node 1-64 characters of
// [A-Za-z0-9_.-] (not "." or ".."). base is "scheme://host[:port][/prefix]" without a
// trailing slash; the node's endpoints live under base + "/nodes/" + node. Anything else
// (user info, query, fragment, percent escapes, empty or dot segments, trailing slash)
// throws Error(kInvalidArgument, "invalid hub url \"...\": expected http(s)://host:port/nodes/<node>").
struct HubUrl {
  std::string base;
  std::string node;
};
HubUrl ParseHubUrl(const std::string& url);

}  // namespace deltasync
