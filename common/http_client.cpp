#include "common/http_client.hpp"

#include <curl/curl.h>

#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <system_error>

#include "common/error.hpp"
#include "common/version.hpp"

namespace deltasync {
namespace {

// How often a running request checks should_abort even when no byte moves.
constexpr int kPollIntervalMs = 50;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerStr(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t k = 0; k < prefix.size(); ++k)
    if (Lower(s[k]) != Lower(prefix[k])) return false;
  return true;
}

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A URL as it may appear in a message: user info hidden, control bytes escaped, length capped.
std::string UrlForMessage(std::string_view url) {
  std::string u(url);
  size_t scheme_end = u.find("://");
  if (scheme_end != std::string::npos) {
    size_t host_start = scheme_end + 3;
    size_t authority_end = u.find_first_of("/?#", host_start);
    if (authority_end == std::string::npos) authority_end = u.size();
    size_t at = u.rfind('@', authority_end);
    if (at != std::string::npos && at >= host_start) u.replace(host_start, at - host_start, "***");
  }
  constexpr size_t kMax = 300;
  std::string out;
  for (size_t k = 0; k < u.size() && k < kMax; ++k) {
    unsigned char c = static_cast<unsigned char>(u[k]);
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (u.size() > kMax) out += "...";
  return out;
}

[[noreturn]] void ThrowNetwork(const std::string& url, const std::string& cause) {
  throw Error(ErrorCode::kNetwork, UrlForMessage(url) + ": " + cause);
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
      throw Error(ErrorCode::kInternal, std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
  });
}

// One easy handle inside one multi handle: the multi handle owns the connection cache, so
// the keep-alive connection to a hub survives between requests of a thread.
struct CurlHandles {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  CurlHandles() {
    multi = curl_multi_init();
    easy = curl_easy_init();
    if (multi == nullptr || easy == nullptr) {
      Release();
      throw Error(ErrorCode::kInternal, "libcurl could not allocate a handle");
    }
  }
  ~CurlHandles() { Release(); }
  CurlHandles(const CurlHandles&) = delete;
  CurlHandles& operator=(const CurlHandles&) = delete;
  void Release() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
    easy = nullptr;
    multi = nullptr;
  }
};

thread_local std::unique_ptr<CurlHandles> t_cached_handles;

// Takes this thread's cached handles (or makes new ones, e.g. on re-entry from a
// should_abort callback) and gives them back afterwards.
class HandleLease {
 public:
  HandleLease() : handles_(std::move(t_cached_handles)) {
    if (!handles_) handles_ = std::make_unique<CurlHandles>();
  }
  ~HandleLease() {
    // Drop every option (they point at this call's buffers); connections stay cached.
    curl_easy_reset(handles_->easy);
    if (!t_cached_handles) t_cached_handles = std::move(handles_);
  }
  HandleLease(const HandleLease&) = delete;
  HandleLease& operator=(const HandleLease&) = delete;
  CURLM* multi() const { return handles_->multi; }
  CURL* easy() const { return handles_->easy; }

 private:
  std::unique_ptr<CurlHandles> handles_;
};

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

void Append(Slist& list, const std::string& line) {
  curl_slist* next = curl_slist_append(list.get(), line.c_str());
  if (next == nullptr) throw Error(ErrorCode::kInternal, "out of memory building HTTP headers");
  list.release();
  list.reset(next);
}

bool HasLineBreakOrNul(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; }

struct Transfer {
  CURL* easy = nullptr;
  HttpResponse response;
  size_t max_bytes = 0;
  bool sized = false;
  bool too_large = false;
  bool cancelled = false;
  const std::function<bool()>* should_abort = nullptr;
  std::exception_ptr abort_error;

  bool CheckAbort() {
    if (cancelled) return true;
    if (should_abort == nullptr || !*should_abort) return false;
    try {
      if ((*should_abort)()) cancelled = true;
    } catch (...) {
      abort_error = std::current_exception();
      cancelled = true;
    }
    return cancelled;
  }
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * nmemb;
  std::string& body = t->response.body;
  if (len > t->max_bytes - body.size()) {  // body.size() <= max_bytes always holds
    t->too_large = true;
    return 0;  // anything short of len aborts the transfer
  }
  if (!t->sized) {
    t->sized = true;
    curl_off_t expected = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected) == CURLE_OK && expected > 0 &&
        static_cast<unsigned long long>(expected) <= t->max_bytes) {
      try {
        body.reserve(static_cast<size_t>(expected));
      } catch (...) {
        return 0;
      }
    }
  }
  try {
    body.append(data, len);
  } catch (...) {
    return 0;
  }
  return len;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * nmemb;
  std::string_view line(data, len);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  try {
    if (StartsWithNoCase(line, "HTTP/")) {
      // A new status line (after an interim 1xx response): start over.
      t->response.headers.clear();
      return len;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return len;
    std::string name = LowerStr(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    auto [it, inserted] = t->response.headers.emplace(name, std::string(value));
    if (!inserted) {
      it->second += ", ";
      it->second.append(value.data(), value.size());
    }
  } catch (...) {
    return 0;
  }
  return len;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->CheckAbort() ? 1 : 0;
}

template <typename T>
void SetOpt(CURL* easy, CURLoption option, T value) {
  CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK) throw Error(ErrorCode::kInternal, std::string("curl_easy_setopt failed: ") + curl_easy_strerror(rc));
}

// Removes the easy handle from the multi handle however the transfer ends.
class MultiAttach {
 public:
  MultiAttach(CURLM* multi, CURL* easy) : multi_(multi), easy_(easy) {
    CURLMcode mc = curl_multi_add_handle(multi, easy);
    if (mc != CURLM_OK) throw Error(ErrorCode::kInternal, std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc));
  }
  ~MultiAttach() { curl_multi_remove_handle(multi_, easy_); }
  MultiAttach(const MultiAttach&) = delete;
  MultiAttach& operator=(const MultiAttach&) = delete;

 private:
  CURLM* multi_;
  CURL* easy_;
};

std::string Header(const HttpResponse& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

}  // namespace

HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
                         const HttpOptions& options) {
  // Arguments first: nothing malformed reaches the wire.
  if (method.empty()) throw Error(ErrorCode::kInvalidArgument, "empty HTTP method");
  for (char c : method)
    if (!(IsAlnum(c) || c == '-' || c == '_'))
      throw Error(ErrorCode::kInvalidArgument, "invalid HTTP method for " + UrlForMessage(url));
  if (url.empty() || url.find('\0') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "invalid URL \"" + UrlForMessage(url) + "\"");
  if (HasLineBreakOrNul(options.token))
    throw Error(ErrorCode::kInvalidArgument, "the token for " + UrlForMessage(url) + " contains a line break or NUL");
  if (options.ca_file.find('\0') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "the CA file name contains NUL");

  Slist header_list;
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    if (name.empty() || name.find(':') != std::string::npos || name.find(' ') != std::string::npos ||
        HasLineBreakOrNul(name) || HasLineBreakOrNul(value))
      throw Error(ErrorCode::kInvalidArgument, "invalid HTTP header \"" + UrlForMessage(name) + "\"");
    if (LowerStr(name) == "content-type") has_content_type = true;
    // "Name:" would delete a header in libcurl; "Name;" sends it empty.
    Append(header_list, value.empty() ? name + ";" : name + ": " + value);
  }
  if (!options.token.empty()) Append(header_list, "Authorization: Bearer " + options.token);
  Append(header_list, "Expect:");  // no 100-continue round trip for large bodies
  const bool sends_body = !(method == "GET" || method == "HEAD") || !body.empty();
  if (sends_body && !has_content_type)
    Append(header_list, body.empty() ? "Content-Type:" : "Content-Type: application/octet-stream");

  GlobalInit();
  HandleLease lease;
  CURL* easy = lease.easy();

  Transfer t;
  t.easy = easy;
  t.max_bytes = options.max_response_bytes;
  t.should_abort = &options.should_abort;
  char errbuf[CURL_ERROR_SIZE];
  errbuf[0] = '\0';

  SetOpt(easy, CURLOPT_URL, url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  SetOpt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  SetOpt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  SetOpt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  SetOpt(easy, CURLOPT_NOSIGNAL, 1L);
  SetOpt(easy, CURLOPT_ERRORBUFFER, errbuf);
  SetOpt(easy, CURLOPT_USERAGENT, (std::string("deltasync/") + kVersion).c_str());
  SetOpt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  SetOpt(easy, CURLOPT_TCP_NODELAY, 1L);
  if (options.timeout_ms > 0) SetOpt(easy, CURLOPT_TIMEOUT_MS, options.timeout_ms);
  if (options.connect_timeout_ms > 0) SetOpt(easy, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
  SetOpt(easy, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  SetOpt(easy, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  if (!options.ca_file.empty()) SetOpt(easy, CURLOPT_CAINFO, options.ca_file.c_str());
  constexpr curl_off_t kOffMax = std::numeric_limits<curl_off_t>::max();
  SetOpt(easy, CURLOPT_MAXFILESIZE_LARGE,
         options.max_response_bytes > static_cast<unsigned long long>(kOffMax)
             ? kOffMax
             : static_cast<curl_off_t>(options.max_response_bytes));
  SetOpt(easy, CURLOPT_HTTPHEADER, header_list.get());
  SetOpt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  SetOpt(easy, CURLOPT_WRITEDATA, static_cast<void*>(&t));
  SetOpt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  SetOpt(easy, CURLOPT_HEADERDATA, static_cast<void*>(&t));
  if (options.should_abort) {
    SetOpt(easy, CURLOPT_NOPROGRESS, 0L);
    SetOpt(easy, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    SetOpt(easy, CURLOPT_XFERINFODATA, static_cast<void*>(&t));
  }
  if (method == "HEAD" && body.empty()) {
    SetOpt(easy, CURLOPT_NOBODY, 1L);
  } else if (method == "GET" && body.empty()) {
    SetOpt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    SetOpt(easy, CURLOPT_POST, 1L);
    // Never NULL: a NULL POSTFIELDS makes libcurl read the body from a callback (stdin).
    SetOpt(easy, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    SetOpt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    if (method != "POST") SetOpt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  CURLcode result = CURLE_OK;
  {
    MultiAttach attach(lease.multi(), easy);
    int running = 1;
    for (;;) {
      CURLMcode mc = curl_multi_perform(lease.multi(), &running);
      if (mc != CURLM_OK) ThrowNetwork(url, curl_multi_strerror(mc));
      if (running == 0) break;
      if (t.CheckAbort()) break;
      mc = curl_multi_poll(lease.multi(), nullptr, 0, kPollIntervalMs, nullptr);
      if (mc != CURLM_OK) ThrowNetwork(url, curl_multi_strerror(mc));
    }
    if (running == 0) {
      bool done = false;
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(lease.multi(), &queued)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
          result = msg->data.result;
          done = true;
        }
      }
      if (!done) throw Error(ErrorCode::kInternal, UrlForMessage(url) + ": libcurl reported no result");
    }
  }  // the easy handle leaves the multi handle here; a cancelled transfer's connection is closed

  if (t.abort_error) std::rethrow_exception(t.abort_error);
  if (t.cancelled || result == CURLE_ABORTED_BY_CALLBACK) ThrowNetwork(url, "cancelled");
  if (t.too_large || result == CURLE_FILESIZE_EXCEEDED)
    ThrowNetwork(url, "response larger than " + std::to_string(options.max_response_bytes) + " bytes");
  if (result != CURLE_OK) {
    std::string cause = errbuf;
    while (!cause.empty() && (cause.back() == '\n' || cause.back() == '\r')) cause.pop_back();
    if (cause.empty()) cause = curl_easy_strerror(result);
    // The socket's errno says why a connect failed ("Connection refused", "No route to
    // host"); other failures leave it stale, so it is only read for these.
    long os_errno = 0;
    if ((result == CURLE_COULDNT_CONNECT || result == CURLE_SEND_ERROR || result == CURLE_RECV_ERROR) &&
        curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
      std::string os_text = std::error_code(static_cast<int>(os_errno), std::generic_category()).message();
      if (cause.find(os_text) == std::string::npos) cause += " (" + os_text + ")";
    }
    if (result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL)
      throw Error(ErrorCode::kInvalidArgument, UrlForMessage(url) + ": " + cause);
    ThrowNetwork(url, cause);
  }

  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  t.response.status = status;
  t.response.content_type = Header(t.response, "content-type");
  t.response.content_encoding = Header(t.response, "content-encoding");
  return std::move(t.response);
}

HubUrl ParseHubUrl(const std::string& url) {
  auto fail = [&]() -> HubUrl {
    throw Error(ErrorCode::kInvalidArgument,
                "invalid hub url \"" + UrlForMessage(url) + "\": expected http(s)://host:port/nodes/<node>");
  };
  std::string_view u(url);
  std::string scheme;
  if (StartsWithNoCase(u, "http://")) {
    scheme = "http";
  } else if (StartsWithNoCase(u, "https://")) {
    scheme = "https";
  } else {
    return fail();
  }
  u.remove_prefix(scheme.size() + 3);

  // Authority: host[:port], host a name, an IPv4 address or a bracketed IPv6 address.
  size_t slash = u.find('/');
  if (slash == std::string_view::npos) return fail();
  std::string_view authority = u.substr(0, slash);
  std::string_view path = u.substr(slash);
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return fail();
    for (char c : authority.substr(1, close - 1))
      if (!(IsHex(c) || c == ':' || c == '.')) return fail();
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail();
      port = rest.substr(1);
      if (port.empty()) return fail();
    }
  } else {
    size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (host.empty() || host.front() == '.' || host.front() == '-') return fail();
    for (char c : host)
      if (!(IsAlnum(c) || c == '.' || c == '-' || c == '_')) return fail();
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return fail();
    }
  }
  if (!port.empty()) {
    if (port.size() > 5) return fail();
    long value = 0;
    for (char c : port) {
      if (!IsDigit(c)) return fail();
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return fail();
  }

  // Path: [/prefix]/nodes/<node>, every segment plain (no escapes, dots, query or fragment).
  size_t last = path.rfind('/');
  std::string_view node = path.substr(last + 1);
  std::string_view before = path.substr(0, last);
  constexpr std::string_view kNodes = "/nodes";
  if (before.size() < kNodes.size() || before.substr(before.size() - kNodes.size()) != kNodes) return fail();
  std::string_view prefix = before.substr(0, before.size() - kNodes.size());
  if (node.empty() || node.size() > 64 || node == "." || node == "..") return fail();
  for (char c : node)
    if (!(IsAlnum(c) || c == '_' || c == '.' || c == '-')) return fail();
  if (!prefix.empty()) {
    // prefix is "/seg/seg...": check each segment.
    size_t pos = 0;
    while (pos < prefix.size()) {
      if (prefix[pos] != '/') return fail();
      size_t end = prefix.find('/', pos + 1);
      if (end == std::string_view::npos) end = prefix.size();
      std::string_view seg = prefix.substr(pos + 1, end - pos - 1);
      if (seg.empty() || seg == "." || seg == "..") return fail();
      for (char c : seg)
        if (!(IsAlnum(c) || c == '_' || c == '.' || c == '-' || c == '~')) return fail();
      pos = end;
    }
  }
  HubUrl out;
  out.base = scheme + "://" + std::string(authority) + std::string(prefix);
  out.node = std::string(node);
  return out;
}

}  // namespace deltasync
