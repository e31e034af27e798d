// The hub HTTP client against an in-process cpp-httplib server on 127.0.0.1: round trips,
// bearer token, status pass-through, timeouts, refused connections, the response size cap,
// cancellation, connection reuse; and the hub URL parser.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/http_client.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::ThrowsDeltasync;
using Clock = std::chrono::steady_clock;

long MillisSince(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

std::string Bytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (char& c : s) {
    seed = seed * 1103515245u + 12345u;
    c = static_cast<char>(seed >> 23);
  }
  return s;
}

// One server for the whole suite: stopping httplib waits for idle keep-alive connections,
// so starting and stopping it per test would cost a keep-alive timeout each time.
class HttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new httplib::Server();
    release_ = false;
    auto& s = *server_;
    // A hub-like server: Nagle off (httplib writes headers and body apart, and a delayed ACK
    // would add 40 ms per response) and no low cap on requests per connection (default 5).
    s.set_tcp_nodelay(true);
    s.set_keep_alive_max_count(1000);
    s.set_keep_alive_timeout(1);
    s.Get("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Reply", "a");
      res.set_header("X-Method", req.method);
      res.set_content("method=" + req.method + " x-test=" + req.get_header_value("X-Test") +
                          " q=" + req.get_param_value("q"),
                      "text/plain");
    });
    s.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Content-Encoding", "zstd");  // passed through untouched
      res.set_header("X-Request-Type", req.get_header_value("Content-Type"));
      res.set_header("X-Method", req.method);
      res.set_content(req.body, "application/octet-stream");
    });
    s.Put("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Method", req.method);
      res.set_content(req.body, "application/octet-stream");
    });
    s.Get("/auth", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.has_header("Authorization") ? req.get_header_value("Authorization") : "<none>",
                      "text/plain");
    });
    s.Get(R"(/status/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      res.status = std::stoi(req.matches[1]);
      if (res.status == 302) res.set_header("Location", "/echo");
      res.set_content("status body", "text/plain");
    });
    s.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      auto start = Clock::now();
      while (!release_ && MillisSince(start) < 3000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      res.set_content("late", "text/plain");
    });
    s.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(size_t{1} << 20, 'x'), "application/octet-stream");
    });
    s.Get("/exact", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(65536, 'y'), "application/octet-stream");
    });
    s.Get("/big-chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/octet-stream", [](size_t offset, httplib::DataSink& sink) {
        if (offset >= (size_t{1} << 20)) {
          sink.done();
          return true;
        }
        std::string chunk(16384, 'z');
        return sink.write(chunk.data(), chunk.size());
      });
    });
    s.Get("/port", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.remote_port), "text/plain");
    });
    port_ = s.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = new std::thread([] { server_->listen_after_bind(); });
  }

  static void TearDownTestSuite() {
    release_ = true;
    // Close this thread's cached keep-alive connection, or stop() waits for it to idle out.
    HttpRequest("GET", Url("/echo"), {{"Connection", "close"}}, "", HttpOptions{});
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
  }

  void TearDown() override { release_ = true; }
  void SetUp() override { release_ = false; }

  static std::string Url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  static httplib::Server* server_;
  static std::thread* thread_;
  static int port_;
  static std::atomic<bool> release_;
};

httplib::Server* HttpClientTest::server_ = nullptr;
std::thread* HttpClientTest::thread_ = nullptr;
int HttpClientTest::port_ = 0;
std::atomic<bool> HttpClientTest::release_{false};

TEST_F(HttpClientTest, GetRoundTripWithHeaders) {
  HttpResponse r = HttpRequest("GET", Url("/echo?q=v%201"), {{"X-Test", "hello"}}, "", HttpOptions{});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "method=GET x-test=hello q=v 1");
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.content_encoding, "");
  EXPECT_EQ(r.headers["x-reply"], "a");
  EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size()));
}

TEST_F(HttpClientTest, PostAndPutRoundTripBinaryBody) {
  // Binary bytes with NULs, large enough that libcurl would otherwise ask "Expect: 100-continue".
  std::string body = Bytes(3 << 20, 7);
  auto start = Clock::now();
  HttpResponse r = HttpRequest("POST", Url("/echo"), {}, body, HttpOptions{});
  EXPECT_LT(MillisSince(start), 900) << "a 100-continue wait would take 1 s";
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["x-method"], "POST");
  EXPECT_TRUE(r.body == body);
  EXPECT_EQ(r.content_type, "application/octet-stream");
  EXPECT_EQ(r.content_encoding, "zstd");
  EXPECT_EQ(r.headers["x-request-type"], "application/octet-stream");

  r = HttpRequest("POST", Url("/echo"), {{"Content-Type", "application/json"}}, "{}", HttpOptions{});
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(r.headers["x-request-type"], "application/json");

  r = HttpRequest("PUT", Url("/echo"), {}, std::string("a\0b", 3), HttpOptions{});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["x-method"], "PUT");
  EXPECT_EQ(r.body, std::string("a\0b", 3));
}

TEST_F(HttpClientTest, BearerTokenSentOnlyWhenSet) {
  HttpOptions o;
  o.token = "s3cret-token";
  EXPECT_EQ(HttpRequest("GET", Url("/auth"), {}, "", o).body, "Bearer s3cret-token");
  EXPECT_EQ(HttpRequest("GET", Url("/auth"), {}, "", HttpOptions{}).body, "<none>");
}

TEST_F(HttpClientTest, StatusCodesAreReturnedNotThrown) {
  for (int code : {401, 404, 500, 503}) {
    HttpResponse r = HttpRequest("GET", Url("/status/" + std::to_string(code)), {}, "", HttpOptions{});
    EXPECT_EQ(r.status, code);
    EXPECT_EQ(r.body, "status body");
  }
  // No redirect is followed.
  HttpResponse r = HttpRequest("GET", Url("/status/302"), {}, "", HttpOptions{});
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.headers["location"], "/echo");
  EXPECT_EQ(HttpRequest("GET", Url("/nowhere"), {}, "", HttpOptions{}).status, 404);
}

TEST_F(HttpClientTest, TimeoutIsANetworkErrorNamingTheUrl) {
  HttpOptions o;
  o.timeout_ms = 300;
  o.token = "s3cret-token";
  std::string url = Url("/slow");
  auto start = Clock::now();
  auto result = ThrowsDeltasync([&] { HttpRequest("GET", url, {}, "", o); }, ErrorCode::kNetwork, url + ": ");
  long elapsed = MillisSince(start);
  EXPECT_TRUE(result);
  EXPECT_NE(std::string(result.message()).find("timed out"), std::string::npos) << result.message();
  EXPECT_EQ(std::string(result.message()).find("s3cret"), std::string::npos);
  EXPECT_GE(elapsed, 250);
  EXPECT_LT(elapsed, 1000);
}

TEST_F(HttpClientTest, ConnectionRefusedIsANetworkErrorNamingUrlAndCause) {
  // A port bound but not listening refuses connections, and nobody else can take it meanwhile.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/nodes/n1/changes";
  HttpOptions o;
  o.token = "s3cret-token";
  auto start = Clock::now();
  auto result = ThrowsDeltasync([&] { HttpRequest("POST", url, {}, "data", o); }, ErrorCode::kNetwork, url + ": ");
  EXPECT_TRUE(result);
  EXPECT_LT(MillisSince(start), 1000);
  std::string msg = result.message();
  EXPECT_NE(msg.find("Connection refused"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("s3cret"), std::string::npos);
  ::close(fd);
}

TEST_F(HttpClientTest, ResponseOverTheCapAborts) {
  HttpOptions o;
  o.max_response_bytes = 65536;
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", Url("/big"), {}, "", o); }, ErrorCode::kNetwork,
                              Url("/big") + ": response larger than 65536 bytes"));
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", Url("/big-chunked"), {}, "", o); }, ErrorCode::kNetwork,
                              Url("/big-chunked") + ": response larger than 65536 bytes"));
  // Exactly at the cap is fine, and without a cap both bodies arrive whole.
  EXPECT_EQ(HttpRequest("GET", Url("/exact"), {}, "", o).body.size(), size_t{65536});
  EXPECT_EQ(HttpRequest("GET", Url("/big"), {}, "", HttpOptions{}).body.size(), size_t{1} << 20);
  EXPECT_EQ(HttpRequest("GET", Url("/big-chunked"), {}, "", HttpOptions{}).body.size(), size_t{1} << 20);
}

TEST_F(HttpClientTest, ShouldAbortCancelsASlowResponse) {
  HttpOptions o;
  auto start = Clock::now();
  o.should_abort = [&] { return MillisSince(start) >= 100; };
  std::string url = Url("/slow");
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", url, {}, "", o); }, ErrorCode::kNetwork, url + ": cancelled"));
  long elapsed = MillisSince(start);
  EXPECT_GE(elapsed, 100);
  EXPECT_LT(elapsed, 300);

  // An exception from the callback comes out as itself, after the transfer is torn down.
  o.should_abort = []() -> bool { throw std::runtime_error("from callback"); };
  try {
    HttpRequest("GET", url, {}, "", o);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "from callback");
  }

  // A callback that never fires changes nothing.
  o.should_abort = [] { return false; };
  EXPECT_EQ(HttpRequest("GET", Url("/echo"), {}, "", o).status, 200);
}

TEST_F(HttpClientTest, ConsecutiveRequestsReuseTheConnection) {
  std::string first = HttpRequest("GET", Url("/port"), {}, "", HttpOptions{}).body;
  for (int k = 0; k < 5; ++k) EXPECT_EQ(HttpRequest("GET", Url("/port"), {}, "", HttpOptions{}).body, first);
}

TEST_F(HttpClientTest, ParallelThreads) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 10; ++k) {
        std::string body = "t" + std::to_string(t) + "k" + std::to_string(k);
        HttpResponse r = HttpRequest("POST", Url("/echo"), {}, body, HttpOptions{});
        if (r.status == 200 && r.body == body) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(HttpClientTest, RefusesHeaderInjectionWithoutEchoingTheToken) {
  HttpOptions o;
  o.token = "s3cret\r\nX-Evil: 1";
  auto result = ThrowsDeltasync([&] { HttpRequest("GET", Url("/auth"), {}, "", o); }, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(result);
  EXPECT_EQ(std::string(result.message()).find("s3cret"), std::string::npos) << result.message();
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", Url("/echo"), {{"X-Test", "a\nb"}}, "", HttpOptions{}); },
                              ErrorCode::kInvalidArgument));
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", Url("/echo"), {{"X:Test", "a"}}, "", HttpOptions{}); },
                              ErrorCode::kInvalidArgument));
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GE T", Url("/echo"), {}, "", HttpOptions{}); },
                              ErrorCode::kInvalidArgument));
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", "ftp://127.0.0.1/x", {}, "", HttpOptions{}); },
                              ErrorCode::kInvalidArgument));
}

TEST_F(HttpClientTest, HttpsToAPlainServerIsANetworkError) {
  // TLS is attempted (and fails) rather than silently downgraded.
  std::string url = "https://127.0.0.1:" + std::to_string(port_) + "/echo";
  EXPECT_TRUE(ThrowsDeltasync([&] { HttpRequest("GET", url, {}, "", HttpOptions{}); }, ErrorCode::kNetwork, url + ": "));
}

TEST(HubUrl, Accepts) {
  struct Case {
    const char* url;
    const char* base;
    const char* node;
  };
  const Case cases[] = {
      {"http://127.0.0.1:8080/nodes/shop1", "http://127.0.0.1:8080", "shop1"},
      {"https://hub.example.com/nodes/a", "https://hub.example.com", "a"},
      {"HTTP://Hub:1/nodes/A-b_c.9", "http://Hub:1", "A-b_c.9"},
      {"https://hub.example.com:8443/api/v1/nodes/n", "https://hub.example.com:8443/api/v1", "n"},
      {"http://[::1]:8080/nodes/x", "http://[::1]:8080", "x"},
      {"http://h/nodes/nodes/x", "http://h/nodes", "x"},
      {"http://h:65535/nodes/..x", "http://h:65535", "..x"},
  };
  for (const auto& c : cases) {
    HubUrl h = ParseHubUrl(c.url);
    EXPECT_EQ(h.base, c.base) << c.url;
    EXPECT_EQ(h.node, c.node) << c.url;
  }
  std::string longest(64, 'n');
  EXPECT_EQ(ParseHubUrl("http://h/nodes/" + longest).node, longest);
}

TEST(HubUrl, Refuses) {
  const std::string refused[] = {
      "",
      "127.0.0.1:8080/nodes/a",
      "ftp://h/nodes/a",
      "http:/h/nodes/a",
      "http:///nodes/a",
      "http://h",
      "http://h/",
      "http://h/nodes",
      "http://h/nodes/",
      "http://h/nodes/a/",
      "http://h/node/a",
      "http://h/nodes/a/../b",
      "http://h/nodes/a b",
      "http://h/nodes/a%2fb",
      "http://h/nodes/a?x=1",
      "http://h/nodes/a#frag",
      "http://h/nodes/.",
      "http://h/nodes/..",
      "http://h/nodes/a\nb",
      std::string("http://h/nodes/a\0b", 18),
      "http://h/nodes/" + std::string(65, 'n'),
      "http://h/nodes/caf\xc3\xa9",
      "http://user:pw@h/nodes/a",
      "http://h:/nodes/a",
      "http://h:0/nodes/a",
      "http://h:65536/nodes/a",
      "http://h:80a/nodes/a",
      "http://h:123456/nodes/a",
      "http://h h/nodes/a",
      "http://-h/nodes/a",
      "http://[]/nodes/a",
      "http://[::1/nodes/a",
      "http://[::1]x/nodes/a",
      "http://h//nodes/a",
      "http://h/x/../nodes/a",
      "http://h/./nodes/a",
      "http://h/p%20/nodes/a",
      "http://h\\@evil/nodes/a",
  };
  for (const auto& url : refused) {
    EXPECT_TRUE(ThrowsDeltasync([&] { ParseHubUrl(url); }, ErrorCode::kInvalidArgument, "invalid hub url \""))
        << "accepted: " << url;
  }
  EXPECT_TRUE(ThrowsDeltasync([] { ParseHubUrl("http://h/nodes/a b"); }, ErrorCode::kInvalidArgument,
                              "invalid hub url \"http://h/nodes/a b\": expected http(s)://host:port/nodes/<node>"));
  // Control bytes are escaped and user info hidden in the message.
  EXPECT_TRUE(ThrowsDeltasync([] { ParseHubUrl("http://h/nodes/a\nb"); }, ErrorCode::kInvalidArgument, "a\\x0ab"));
  auto hidden = ThrowsDeltasync([] { ParseHubUrl("http://user:pw@h/nodes/a"); }, ErrorCode::kInvalidArgument, "***@h");
  EXPECT_TRUE(hidden);
  EXPECT_EQ(std::string(hidden.message()).find("pw"), std::string::npos);
}

}  // namespace
}  // namespace deltasync
