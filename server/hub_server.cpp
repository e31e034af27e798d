#include "server/hub_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "common/checksum.hpp"
#include "common/error.hpp"
#include "common/payload.hpp"
#include "common/payload_codec.hpp"
#include "common/version.hpp"
#include "server/hub_codec.hpp"
#include "server/hub_connection.hpp"
#include "server/hub_news.hpp"

namespace deltasync::hub {

namespace {

std::atomic<int> g_log_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<void (*)(const std::string&)> g_log_writer{nullptr};

using Json = nlohmann::json;

// Error answers carry at most this much of a message: an error never echoes a request back.
constexpr size_t kMaxErrorMessage = 300;

void SendError(httplib::Response& res, int status, std::string message) {
  if (message.size() > kMaxErrorMessage) message = message.substr(0, kMaxErrorMessage) + "...";
  res.status = status;
  // Bytes from a request may be invalid UTF-8: replaced, never a failure to answer.
  res.set_content(Json({{"error", message}}).dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

// Printable ASCII only, for log lines: a request's bytes never forge a line or a field.
std::string Printable(const std::string& s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return s.size() > max ? out + "..." : out;
}

// The endpoint label of a request for /metrics: one of a fixed set, whatever the path.
const char* EndpointLabel(const std::string& path) {
  if (path == "/health") return "health";
  if (path == "/metrics") return "metrics";
  if (path.rfind("/nodes/", 0) == 0) {
    std::string last = path.substr(path.rfind('/') + 1);
    for (const char* e : {"push", "pull", "status", "checksum", "compact", "readmit"})
      if (last == e) return e;
  }
  return "other";
}

// Counters for /metrics (Prometheus text format).
class Metrics {
 public:
  void Request(const char* endpoint, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_[std::string(endpoint) + "\",code=\"" + std::to_string(status)]++;
    if (status >= 400) errors_++;
  }
  void ChangesIn(const std::string& node, uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    in_[node] += n;
  }
  void ChangesOut(const std::string& node, uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    out_[node] += n;
  }
  // Per-node series only for the admin: node names are not for anyone who can reach the hub.
  std::string Render(HubStore& store, bool per_node) {
    std::ostringstream os;
    std::lock_guard<std::mutex> lock(mu_);
    os << "# HELP deltasync_requests_total HTTP requests by endpoint and status code.\n"
          "# TYPE deltasync_requests_total counter\n";
    for (auto& [k, v] : requests_) os << "deltasync_requests_total{endpoint=\"" << k << "\"} " << v << "\n";
    os << "# HELP deltasync_errors_total Requests answered with a 4xx or 5xx status.\n"
          "# TYPE deltasync_errors_total counter\ndeltasync_errors_total "
       << errors_ << "\n";
    if (!per_node) {
      uint64_t in = 0, out = 0;
      for (auto& [k, v] : in_) in += v;
      for (auto& [k, v] : out_) out += v;
      os << "# HELP deltasync_changes_in_total Changes received by push.\n# TYPE deltasync_changes_in_total counter\n"
            "deltasync_changes_in_total "
         << in << "\n# HELP deltasync_changes_out_total Changes served by pull.\n"
                  "# TYPE deltasync_changes_out_total counter\ndeltasync_changes_out_total "
         << out << "\n";
      return os.str();
    }
    os << "# HELP deltasync_changes_in_total Changes received by push, per node.\n"
          "# TYPE deltasync_changes_in_total counter\n";
    for (auto& [k, v] : in_) os << "deltasync_changes_in_total{node=\"" << k << "\"} " << v << "\n";
    os << "# HELP deltasync_changes_out_total Changes served by pull, per node.\n"
          "# TYPE deltasync_changes_out_total counter\n";
    for (auto& [k, v] : out_) os << "deltasync_changes_out_total{node=\"" << k << "\"} " << v << "\n";
    os << "# HELP deltasync_node_rows Rows (live and deleted) the hub holds, per node.\n"
          "# TYPE deltasync_node_rows gauge\n";
    auto counts = store.NodeCounts();
    for (auto& [node, c] : counts) os << "deltasync_node_rows{node=\"" << node << "\"} " << c.first << "\n";
    os << "# HELP deltasync_node_seq The node's change sequence.\n# TYPE deltasync_node_seq gauge\n";
    for (auto& [node, c] : counts) os << "deltasync_node_seq{node=\"" << node << "\"} " << c.second << "\n";
    return os.str();
  }

 private:
  std::mutex mu_;
  std::map<std::string, uint64_t> requests_, in_, out_;
  uint64_t errors_ = 0;
};

}  // namespace

bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || (host.rfind("127.", 0) == 0 && host.size() <= 15 &&
                                                  host.find_first_not_of("0123456789.") == std::string::npos);
}

void SetLogLevel(LogLevel level) { g_log_level = static_cast<int>(level); }

void SetLogWriter(void (*writer)(const std::string& line)) { g_log_writer = writer; }

void Log(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) < g_log_level) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::string line = std::string(when) + " " + kNames[static_cast<int>(level)] + " " + message + "\n";
  if (void (*writer)(const std::string&) = g_log_writer.load()) return writer(line);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

bool TokenEquals(const std::string& a, const std::string& b) {
  // Walk the longer length whatever the contents, so timing tells nothing but lengths.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

HubConfig HubConfig::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kInvalidArgument, "cannot read config file " + path);
  HubConfig c;
  try {
    Json j = Json::parse(in);
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const Json& v = it.value();
      if (k == "nodes") {
        for (auto n = v.begin(); n != v.end(); ++n) {
          if (!ValidNodeName(n.key()))
            throw Error(ErrorCode::kInvalidArgument, "config: invalid node name \"" + n.key() + "\"");
          NodeConfig nc;
          if (n.value().contains("tokens")) nc.tokens = n.value().at("tokens").get<std::vector<std::string>>();
          if (n.value().contains("quotas")) nc.quotas = Quotas::Parse(n.value().at("quotas"));
          if (n.value().contains("upstream")) nc.upstream = UpstreamConfig::Parse(n.value().at("upstream"));
          if (n.value().contains("retention_days")) {
            nc.retention_days = n.value().at("retention_days").get<double>();
            if (!(*nc.retention_days >= 0))
              throw Error(ErrorCode::kInvalidArgument, "config: retention_days must not be negative");
          }
          c.nodes[n.key()] = nc;
        }
      } else if (k == "default_tokens") {
        c.default_tokens = v.get<std::vector<std::string>>();
      } else if (k == "default_quotas") {
        c.default_quotas = Quotas::Parse(v);
      } else if (k == "admin_token") {
        c.admin_token = v.get<std::string>();
      } else if (k == "auto_create_nodes") {
        c.auto_create_nodes = v.get<bool>();
      } else if (k == "max_body_bytes") {
        c.max_body_bytes = v.get<size_t>();
      } else if (k == "max_decoded_bytes") {
        c.max_decoded_bytes = v.get<size_t>();
      } else if (k == "max_header_bytes") {
        c.max_header_bytes = v.get<size_t>();
      } else if (k == "header_timeout_ms") {
        c.header_timeout_ms = v.get<int>();
      } else if (k == "max_connections_per_address") {
        c.max_connections_per_address = v.get<size_t>();
      } else if (k == "limit_loopback_connections") {
        c.limit_loopback_connections = v.get<bool>();
      } else if (k == "max_page_bytes") {
        c.max_page_bytes = v.get<size_t>();
      } else if (k == "max_row_bytes") {
        c.max_row_bytes = v.get<size_t>();
      } else if (k == "max_pull_rows") {
        c.max_pull_rows = v.get<size_t>();
      } else if (k == "worker_threads") {
        c.worker_threads = v.get<size_t>();
      } else if (k == "max_wait_ms") {
        c.max_wait_ms = v.get<int64_t>();
      } else if (k == "max_waiters") {
        c.max_waiters = v.get<size_t>();
      } else if (k == "max_waiters_per_node") {
        c.max_waiters_per_node = v.get<size_t>();
      } else if (k == "read_timeout_ms") {
        c.read_timeout_ms = v.get<int>();
      } else if (k == "tls_cert") {
        c.tls_cert = v.get<std::string>();
      } else if (k == "tls_key") {
        c.tls_key = v.get<std::string>();
      } else if (k == "jwt") {
        c.jwt = JwtConfig::Parse(v);
      } else if (k == "default_retention_days") {
        c.default_retention_days = v.get<double>();
        if (!(c.default_retention_days >= 0))
          throw Error(ErrorCode::kInvalidArgument, "config: default_retention_days must not be negative");
      } else if (k == "compact_interval_s") {
        c.compact_interval_s = v.get<int64_t>();
        if (c.compact_interval_s < 0)
          throw Error(ErrorCode::kInvalidArgument, "config: compact_interval_s must not be negative");
      } else if (k == "max_clock_drift_ms") {
        // Bounded, never "off": a clock from far ahead would win every future conflict.
        if (!v.is_number_unsigned())
          throw Error(ErrorCode::kInvalidArgument, "config: max_clock_drift_ms must be a non-negative integer");
        c.max_clock_drift_ms = v.get<uint64_t>();
      } else {
        throw Error(ErrorCode::kInvalidArgument, "config: unknown key \"" + k + "\"");
      }
    }
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, "config file " + path + ": " + e.what());
  }
  if (c.worker_threads < 2 || c.worker_threads > 4096)
    throw Error(ErrorCode::kInvalidArgument, "config: worker_threads must be between 2 and 4096");
  // Waiting pulls hold workers: some must stay free for pushes, or nothing would wake them.
  if (c.max_waiters >= c.worker_threads)
    throw Error(ErrorCode::kInvalidArgument, "config: max_waiters must be less than worker_threads");
  if (c.max_wait_ms < 0) throw Error(ErrorCode::kInvalidArgument, "config: max_wait_ms must not be negative");
  if (c.max_page_bytes == 0 || c.max_row_bytes == 0)
    throw Error(ErrorCode::kInvalidArgument, "config: max_page_bytes and max_row_bytes must be positive");
  if (c.max_row_bytes > c.max_decoded_bytes)
    throw Error(ErrorCode::kInvalidArgument, "config: max_row_bytes must be at most max_decoded_bytes");
  if (c.max_decoded_bytes < c.max_body_bytes)
    throw Error(ErrorCode::kInvalidArgument, "config: max_decoded_bytes must be at least max_body_bytes");
  c.CheckConnectionLimits();
  if (c.tls_cert.empty() != c.tls_key.empty())
    throw Error(ErrorCode::kInvalidArgument, "config: tls_cert and tls_key go together");
  return c;
}

void HubConfig::CheckConnectionLimits() const {
  if (max_header_bytes < 1024)
    throw Error(ErrorCode::kInvalidArgument, "config: max_header_bytes must be at least 1024");
  if (header_timeout_ms < 100 || header_timeout_ms > 3600000)
    throw Error(ErrorCode::kInvalidArgument, "config: header_timeout_ms must be between 100 and 3600000");
  if (read_timeout_ms < 1) throw Error(ErrorCode::kInvalidArgument, "config: read_timeout_ms must be positive");
}

int64_t HubConfig::RetentionMs(const std::string& node) const {
  auto it = nodes.find(node);
  double days = it != nodes.end() && it->second.retention_days ? *it->second.retention_days : default_retention_days;
  return static_cast<int64_t>(std::min(days, 1e6) * 24 * 3600 * 1000);  // a fraction of a day is allowed (tests)
}

// A retention in days, as a config file would say it.
static std::string FormatDays(int64_t ms) {
  char out[32];
  std::snprintf(out, sizeof out, "%g", static_cast<double>(ms) / (24.0 * 3600 * 1000));
  return out;
}

// The answer to a site its node's retention retired (docs/operations.md).
static void SendRetired(httplib::Response& res, const std::string& node, int64_t retention_ms) {
  SendError(res, 410,
            "deltasync: this site was retired from node \"" + node + "\" (not seen for more than its retention of " +
                FormatDays(retention_ms) + " days): the hub may have dropped deletes it never saw; re-synchronise it (docs/operations.md, \"A site "
                "that comes back\")");
}

struct Hub::Impl {
  HubConfig config;
  std::unique_ptr<HubStore> store;
  std::unique_ptr<NodeNews> news;  // long-poll pulls wait here
  std::unique_ptr<UpstreamLinks> links;  // nodes kept in sync with an upstream hub; before news and store go
  std::once_flag links_started;
  std::atomic<bool> stopping{false};
  Metrics metrics;
  std::unique_ptr<ConnectionGuard> guard;  // header cap and deadline, connections per address
  std::unique_ptr<httplib::Server> server;
  std::string host;
  mutable std::mutex policy_mu;
  std::shared_ptr<const AccessPolicy> policy;  // swapped whole by Reload; a request keeps the one it took

  RateLimiter rates;       // requests_per_second, per credential
  StorageQuotas storage;   // max_sites, max_rows, max_stored_bytes, per node

  std::mutex compact_mu;   // the automatic compaction's wait (CompactLoop)
  std::condition_variable compact_cv;
  std::thread compactor;

  void WidenBacklog() {
    if (auto* plain = dynamic_cast<GuardedServer*>(server.get())) plain->WidenBacklog();
    if (auto* tls = dynamic_cast<GuardedTlsServer*>(server.get())) tls->WidenBacklog();
  }

  std::shared_ptr<const AccessPolicy> Policy() const {
    std::lock_guard<std::mutex> lock(policy_mu);
    return policy;
  }

  // What the request's credentials allow on the node (hub_auth), or nothing.
  std::optional<Grant> TokenGrants(const httplib::Request& req, const std::string& node_name) const {
    return Policy()->Authenticate(req.get_header_value("Authorization"), node_name,
                                config.allow_unauthenticated || IsLoopback(host));
  }

  // Resolves the node of a request and checks its credentials; on failure answers and
  // returns 0, else the node id and (when asked) the grant.
  int64_t Authorize(const httplib::Request& req, httplib::Response& res, std::string& node_name,
                    Grant* grant = nullptr) {
    node_name = req.matches[1];
    std::optional<Grant> g = TokenGrants(req, node_name);
    if (!g) {
      SendError(res, 401, "deltasync: unauthorized");  // the same answer for unknown nodes and bad tokens
      return 0;
    }
    if (grant) *grant = *g;
    auto id = store->Node(node_name, /*create=*/true);
    return *id;
  }

  // Runs after the request line and headers are read, before any body byte: refuses what
  // the hub never reads (other methods, chunked or unsized bodies, compressed bodies it would
  // inflate without bound, oversized ones) and unauthenticated pushes, and closes the
  // connection so an unread body is never parsed as a request.
  httplib::Server::HandlerResponse Screen(const httplib::Request& req, httplib::Response& res) {
    HeadRead();  // the head is read whole: from here on, reads are the body's
    auto refuse = [&](int status, const std::string& message) {
      SendError(res, status, message);
      res.set_header("Connection", "close");
      CloseAfterResponse();
      return httplib::Server::HandlerResponse::Handled;
    };
    // max_header_bytes is enforced by the connection's stream, on the bytes as sent
    // (hub_connection): counting req.headers here would also count the REMOTE_ADDR,
    // REMOTE_PORT, LOCAL_ADDR and LOCAL_PORT entries the library adds, and refuse heads
    // up to ~170 bytes under the cap.
    if (req.method != "GET" && req.method != "POST") return refuse(405, "deltasync: method not allowed");
    if (req.has_header("Transfer-Encoding"))
      return refuse(411, "deltasync: chunked request bodies are not accepted; send Content-Length");
    if (req.get_header_value_count("Content-Encoding") > 1 ||
        !IsDecodableEncoding(req.get_header_value("Content-Encoding")))
      return refuse(415, "deltasync: unsupported content encoding; send zstd or identity");
    size_t lengths = req.get_header_value_count("Content-Length");
    if (lengths > 1) return refuse(400, "deltasync: more than one Content-Length header");
    uint64_t length = 0;
    if (lengths == 1) {
      std::string v = req.get_header_value("Content-Length");
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return refuse(400, "deltasync: invalid Content-Length");
      length = std::stoull(v);
    }
    if (req.method == "GET" && length > 0) return refuse(400, "deltasync: a GET request has no body");
    // A node's endpoints: the credentials are checked here for the request rate (and for a
    // push before its body); the handlers check them again for what they answer.
    static const std::regex kNodePath(R"(/nodes/([^/]+)/(push|pull|status|checksum))");
    static const std::regex kAdminPath(R"(/nodes/[^/]+/(compact|sites/[^/]+/readmit))");
    std::smatch m;
    bool node_path = std::regex_match(req.path, m, kNodePath);
    if (req.method == "POST" && !node_path && std::regex_match(req.path, kAdminPath)) {
      // Admin endpoints take no body; the handler checks the admin token.
      if (length > 0) return refuse(413, "deltasync: this endpoint takes no request body");
      return httplib::Server::HandlerResponse::Unhandled;
    }
    std::optional<Grant> grant;
    if (node_path) grant = TokenGrants(req, m[1]);
    if (grant) {
      double rate = Policy()->QuotasOf(m[1]).requests_per_second;
      if (int wait = rates.Admit(grant->credential, rate)) {
        res.set_header("Retry-After", std::to_string(wait));
        char limit[32];
        std::snprintf(limit, sizeof limit, "%g", rate);
        return refuse(429, std::string("deltasync: more than ") + limit +
                               " requests a second with this token; retry in " + std::to_string(wait) + " s");
      }
    }
    if (req.method == "POST") {
      if (lengths == 0) return refuse(411, "deltasync: a POST needs Content-Length");
      if (!node_path || m[2] != "push") return refuse(404, "deltasync: no such endpoint");
      if (!grant) return refuse(401, "deltasync: unauthorized");
      if (grant->read_only) return refuse(403, "deltasync: this token is read-only");
      if (length > config.max_body_bytes)
        return refuse(413, "deltasync: request body larger than " + std::to_string(config.max_body_bytes) + " bytes");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void Routes() {
    httplib::Server& server = *this->server;
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return Screen(req, res); });

    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(Json({{"status", "ok"}, {"version", kVersion}}).dump(), "application/json");
    });

    server.Post(R"(/nodes/([^/]+)/push)", [this](const httplib::Request& req, httplib::Response& res) {
      std::string node_name;
      Grant grant;
      int64_t node = Authorize(req, res, node_name, &grant);
      if (!node) return;
      if (grant.read_only) return SendError(res, 403, "deltasync: this token is read-only");
      try {
        Payload p = DecodeRequestBody(req.body, req.get_header_value("Content-Type"),
                                      req.get_header_value("Content-Encoding"), config.max_decoded_bytes);
        if (grant.site && p.site != *grant.site)
          return SendError(res, 403, "deltasync: this token pushes only as site " + grant.site->ToString());
        if (size_t big = LargestRowBytes(p); big > config.max_row_bytes)
          return SendError(res, 413, "deltasync: a row of " + std::to_string(big) + " bytes is larger than max_row_bytes (" +
                                         std::to_string(config.max_row_bytes) + ")");
        if (store->Contact(node, p.site, -1, static_cast<int64_t>(WallClockMillis())))
          return SendRetired(res, node_name, config.RetentionMs(node_name));
        std::string over = storage.Admit(*store, node, node_name, Policy()->QuotasOf(node_name), p);
        if (!over.empty()) return SendError(res, 507, over);
        PushResult r = store->Push(node, p, config.max_clock_drift_ms, config.max_row_bytes);
        if (r.applied > 0 || r.rows > 0) news->Notify(node);
        metrics.ChangesIn(node_name, r.applied);
        res.set_content(Json({{"applied", r.applied},
                              {"ignored", r.ignored},
                              {"rows", r.rows},
                              {"seq", r.seq},
                              {"site_until", r.site_until},
                              {"hub_id", store->hub_id().ToString()}})
                            .dump(),
                        "application/json");
        Log(LogLevel::kDebug, "push " + node_name + ": " + std::to_string(r.rows) + " rows, seq " + std::to_string(r.seq));
      } catch (const UnsupportedMediaType& e) {
        SendError(res, 415, e.what());
      } catch (const RowTooLarge& e) {
        SendError(res, 413, e.what());
      } catch (const Error& e) {
        int status = e.code() == ErrorCode::kClockDrift ? 422 : e.code() == ErrorCode::kInternal ? 500 : 400;
        if (status == 500) Log(LogLevel::kError, "push " + node_name + ": " + Printable(e.what()));
        SendError(res, status, e.what());
      } catch (const Json::exception& e) {
        // A JSON body the decoder accepted but the model cannot hold (bad UTF-8 and the like).
        SendError(res, 400, std::string("deltasync: malformed payload: ") + e.what());
      }
    });

    server.Get(R"(/nodes/([^/]+)/pull)", [this](const httplib::Request& req, httplib::Response& res) {
      std::string node_name;
      Grant grant;
      int64_t node = Authorize(req, res, node_name, &grant);
      if (!node) return;
      try {
        int64_t since = 0;
        size_t limit = config.max_pull_rows;
        std::vector<std::string> tables;
        std::optional<SiteId> requester;
        if (req.has_param("since")) since = ParseCount(req.get_param_value("since"), "since");
        if (req.has_param("limit"))
          limit = std::min<size_t>(std::max<int64_t>(1, ParseCount(req.get_param_value("limit"), "limit")),
                                   config.max_pull_rows);
        if (req.has_param("site")) requester = SiteId::Parse(req.get_param_value("site"));
        if (grant.site && requester != grant.site)
          return SendError(res, 403, "deltasync: this token pulls only as site " + grant.site->ToString());
        if (req.has_param("tables")) {
          std::stringstream ss(req.get_param_value("tables"));
          for (std::string t; std::getline(ss, t, ',');)
            if (!t.empty()) tables.push_back(t);
        }
        int64_t wait_ms = req.has_param("wait_ms") ? ParseCount(req.get_param_value("wait_ms"), "wait_ms") : 0;
        // resync=1: a site re-reads the node's whole state (docs/operations.md, "A site that
        // comes back"), also what it pushed itself; retired or not, it counts for nothing yet.
        // resync=done: it has, and is back in the frontier from `since` on.
        std::string resync = req.has_param("resync") ? req.get_param_value("resync") : "";
        if (!resync.empty() && (resync != "1" && resync != "done"))
          return SendError(res, 400, "deltasync: query parameter resync must be 1 or done");
        if (!resync.empty() && (!requester || !tables.empty()))
          return SendError(res, 400, "deltasync: a resync pull names its site and no tables");
        if (resync == "1") {
          requester.reset();
        } else {
          if (resync == "done") {
            store->Readmit(node, *requester);
            store->ForgetPushed(node, *requester);  // what it pushes from now on is what it has
          }
          // A full pull says the site applied everything up to `since` (the frontier's input).
          if (requester &&
              store->Contact(node, *requester, tables.empty() ? since : -1, static_cast<int64_t>(WallClockMillis())))
            return SendRetired(res, node_name, config.RetentionMs(node_name));
        }
        PullResult r = PullOrWait(node, since, limit, tables, requester, std::min(wait_ms, config.max_wait_ms));
        metrics.ChangesOut(node_name, r.changes);
        res.set_header("Deltasync-More", r.more ? "true" : "false");
        res.set_header("Deltasync-Frontier", std::to_string(store->Frontier(node)));
        // What the site pushed so far: a site that never reached it was restored or copied.
        if (requester)
          if (int64_t pushed = store->PushedUntil(node, *requester); pushed > 0)
            res.set_header("Deltasync-Site-Until", std::to_string(pushed));
        // The node's sequence as the page was read: what a client shows its progress against.
        res.set_header("Deltasync-Seq", std::to_string(std::max(r.head, r.payload.until)));
        EncodeResponseBody(r.payload, req.get_header_value("Accept"), req.get_header_value("Accept-Encoding"), res);
      } catch (const Error& e) {
        SendError(res, e.code() == ErrorCode::kInternal ? 500 : 400, e.what());
      }
    });

    server.Post(R"(/nodes/([^/]+)/compact)", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Policy()->Admin(req.get_header_value("Authorization"))) return SendError(res, 401, "deltasync: unauthorized");
      std::string node_name = req.matches[1];
      auto node = store->Node(node_name, /*create=*/false);
      if (!node) return SendError(res, 404, "deltasync: no such node");
      CompactResult r = CompactNode(*node, node_name);
      res.set_content(Json({{"node", node_name},
                            {"frontier", r.frontier},
                            {"sites", r.sites},
                            {"retired", r.retired},
                            {"dropped", r.dropped}})
                          .dump(),
                      "application/json");
    });

    server.Post(R"(/nodes/([^/]+)/sites/([^/]+)/readmit)", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Policy()->Admin(req.get_header_value("Authorization"))) return SendError(res, 401, "deltasync: unauthorized");
      std::string node_name = req.matches[1];
      auto node = store->Node(node_name, /*create=*/false);
      if (!node) return SendError(res, 404, "deltasync: no such node");
      try {
        bool readmitted = store->Readmit(*node, SiteId::Parse(std::string(req.matches[2])));
        res.set_content(Json({{"node", node_name}, {"site", std::string(req.matches[2])}, {"readmitted", readmitted}}).dump(),
                        "application/json");
      } catch (const Error& e) {
        SendError(res, 400, e.what());
      }
    });

    server.Get(R"(/nodes/([^/]+)/status)", [this](const httplib::Request& req, httplib::Response& res) {
      std::string node_name;
      int64_t node = Authorize(req, res, node_name);
      if (!node) return;
      Json status = store->Status(node, node_name);
      Json upstream = links->Status(node_name, status.value("seq", int64_t{0}));
      if (!upstream.is_null()) status["upstream"] = upstream;
      res.set_content(status.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    });

    // What deltasync_checksum answers on a site holding the node's rows (hub_checksum.cpp).
    server.Get(R"(/nodes/([^/]+)/checksum)", [this](const httplib::Request& req, httplib::Response& res) {
      std::string node_name;
      int64_t node = Authorize(req, res, node_name);
      if (!node) return;
      try {
        std::vector<std::string> tables;
        if (req.has_param("tables")) tables = SplitTableList(req.get_param_value("tables"));
        res.set_content(store->Checksum(node, tables).dump(-1, ' ', false, Json::error_handler_t::replace),
                        "application/json");
      } catch (const Error& e) {
        SendError(res, e.code() == ErrorCode::kInternal ? 500 : 400, e.what());
      }
    });

    server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      bool admin = false;
      std::shared_ptr<const AccessPolicy> policy = Policy();
      if (policy->HasAdminToken()) {
        if (!policy->Admin(req.get_header_value("Authorization"))) return SendError(res, 401, "deltasync: unauthorized");
        admin = true;
      }
      res.set_content(metrics.Render(*store, admin) + links->Metrics(admin), "text/plain; version=0.0.4");
    });

    server.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      // The head was cut off at its cap or its deadline (hub_connection): the library says 400.
      if (int refusal = HeadRefusal()) {
        res.status = refusal;
        SendError(res, refusal,
                  refusal == 431 ? "deltasync: request headers larger than " + std::to_string(config.max_header_bytes) + " bytes"
                                 : "deltasync: the request's headers did not arrive within " +
                                       std::to_string(config.header_timeout_ms) + " ms");
        res.set_header("Connection", "close");
        return;
      }
      if (res.body.empty()) {
        std::string msg = res.status == 413   ? "deltasync: request body too large"
                          : res.status == 404 ? "deltasync: no such endpoint"
                          : res.status == 415 ? "deltasync: unsupported content encoding; send zstd or identity"
                                              : "deltasync: error";
        SendError(res, res.status, msg);
      }
    });
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const StoreUnavailable& e) {
        // The store is restarting or unreachable: the client keeps its cursors and retries.
        Log(LogLevel::kWarn, e.what());
        res.set_header("Retry-After", "1");
        return SendError(res, 503, "deltasync: the hub's store is unavailable; retry later");
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      Log(LogLevel::kError, Printable(what));
      SendError(res, 500, "deltasync: internal error");
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // Labels come from a fixed set, never from the request: /metrics cannot be forged or grown.
      metrics.Request(EndpointLabel(req.path), res.status);
      Log(LogLevel::kDebug, Printable(req.method, 16) + " " + Printable(req.path) + " " + std::to_string(res.status));
    });
    server.set_payload_max_length(config.max_body_bytes);
    size_t workers = config.worker_threads;
    server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
    server.set_read_timeout(config.read_timeout_ms / 1000, (config.read_timeout_ms % 1000) * 1000);
    // httplib writes headers and body separately: without TCP_NODELAY every response waits
    // for a delayed ACK (~40 ms). Keep connections open so clients can reuse them.
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(1000);
    // An idle keep-alive connection holds a worker until this timeout, and a stop waits for
    // it: keep it short (clients reuse connections within one sync, which is quick).
    server.set_keep_alive_timeout(1);
  }

  // A pull page; with wait_ms, an empty page only after waiting that long for news for the
  // requester (a push it made itself wakes the wait but is no news: it waits on). Over the
  // waiter bounds, the page is answered at once.
  PullResult PullOrWait(int64_t node, int64_t since, size_t limit, const std::vector<std::string>& tables,
                        const std::optional<SiteId>& requester, int64_t wait_ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    uint64_t seen = news->Generation(node);
    PullResult r = store->Pull(node, since, limit, tables, requester, config.max_page_bytes);
    if (wait_ms <= 0 || r.changes > 0 || r.more) return r;
    NodeNews::Slot slot(*news, node);
    if (!slot.Admitted()) return r;
    // Another hub process on a shared PostgreSQL store does not notify this one: pull again
    // at least this often.
    constexpr std::chrono::milliseconds kRecheck(250);
    while (std::chrono::steady_clock::now() < until && !stopping) {
      if (news->Wait(node, seen, until, kRecheck)) seen = news->Generation(node);
      if (stopping) break;
      r = store->Pull(node, since, limit, tables, requester, config.max_page_bytes);
      if (r.changes > 0 || r.more) break;
    }
    return r;
  }

  // Starts the upstream links of the config's nodes, once, when the hub starts serving.
  void StartLinks() {
    std::call_once(links_started, [this] {
      std::map<std::string, UpstreamConfig> upstreams;
      for (const auto& [name, node] : config.nodes)
        if (node.upstream) upstreams[name] = *node.upstream;
      links->Start(upstreams);
    });
  }

  // Compacts one node with its retention (docs/operations.md), 1,000 tombstones a transaction.
  CompactResult CompactNode(int64_t node, const std::string& name) {
    CompactResult r = store->Compact(node, config.RetentionMs(name), static_cast<int64_t>(WallClockMillis()), 1000);
    if (r.dropped > 0 || r.retired > 0)
      Log(LogLevel::kInfo, "compact " + name + ": frontier " + std::to_string(r.frontier) + ", dropped " +
                               std::to_string(r.dropped) + ", retired " + std::to_string(r.retired));
    return r;
  }

  // The automatic compaction: every compact_interval_s, each node in turn, until Stop().
  void CompactLoop() {
    std::unique_lock<std::mutex> lock(compact_mu);
    while (!stopping) {
      compact_cv.wait_for(lock, std::chrono::seconds(config.compact_interval_s), [this] { return stopping.load(); });
      if (stopping) break;
      lock.unlock();
      try {
        for (const auto& [name, counts] : store->NodeCounts())
          if (auto node = store->Node(name, /*create=*/false)) CompactNode(*node, name);
      } catch (const std::exception& e) {
        Log(LogLevel::kWarn, std::string("compaction: ") + Printable(e.what()));
      }
      lock.lock();
    }
  }

  static int64_t ParseCount(const std::string& s, const char* what) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
      throw Error(ErrorCode::kInvalidArgument, std::string("query parameter ") + what + " must be a non-negative integer");
    return std::stoll(s);
  }
};

Hub::Hub(HubConfig config, std::unique_ptr<HubStore> store) : impl_(new Impl) {
  impl_->config = std::move(config);
  impl_->store = std::move(store);
  impl_->news = std::make_unique<NodeNews>(impl_->config.max_waiters, impl_->config.max_waiters_per_node);
  impl_->links = std::make_unique<UpstreamLinks>(*impl_->store, *impl_->news, impl_->config.max_clock_drift_ms,
                                                 impl_->config.max_row_bytes);
  impl_->policy = std::make_shared<const AccessPolicy>(impl_->config);
  const HubConfig& c = impl_->config;
  c.CheckConnectionLimits();
  ConnectionLimits limits;
  limits.max_header_bytes = c.max_header_bytes;
  limits.header_timeout_ms = c.header_timeout_ms;
  limits.read_timeout_ms = c.read_timeout_ms;
  limits.max_connections_per_address = c.max_connections_per_address;
  limits.limit_loopback = c.limit_loopback_connections;
  Impl* impl = impl_.get();
  impl_->guard = std::make_unique<ConnectionGuard>(limits, [impl](int status) { impl->metrics.Request("other", status); });
  if (!c.tls_cert.empty()) {
    auto tls = std::make_unique<GuardedTlsServer>(*impl_->guard, c.tls_cert.c_str(), c.tls_key.c_str());
    if (!tls->is_valid())
      throw Error(ErrorCode::kInvalidArgument, "cannot load the TLS certificate " + c.tls_cert + " and key " + c.tls_key);
    impl_->server = std::move(tls);
  } else {
    impl_->server = std::make_unique<GuardedServer>(*impl_->guard);
  }
  impl_->Routes();
  if (impl_->config.compact_interval_s > 0) impl_->compactor = std::thread([this] { impl_->CompactLoop(); });
}

Hub::~Hub() {
  impl_->links->Stop();
  {
    std::lock_guard<std::mutex> lock(impl_->compact_mu);
    impl_->stopping = true;
  }
  impl_->compact_cv.notify_all();
  if (impl_->compactor.joinable()) impl_->compactor.join();
}

bool Hub::Listen(const std::string& host, int port) { return Bind(host, port) && ListenAfterBind(); }

bool Hub::Bind(const std::string& host, int port) {
  impl_->host = host;
  bool ok = impl_->server->bind_to_port(host, port);
  if (ok) impl_->WidenBacklog();
  return ok;
}

int Hub::BindToAnyPort(const std::string& host) {
  impl_->host = host;
  int port = impl_->server->bind_to_any_port(host);
  if (port > 0) impl_->WidenBacklog();
  return port;
}

bool Hub::ListenAfterBind() {
  impl_->StartLinks();
  return impl_->server->listen_after_bind();
}

void Hub::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->compact_mu);
    impl_->stopping = true;
  }
  impl_->compact_cv.notify_all();
  impl_->links->Stop();     // their requests are cancelled, their threads joined
  impl_->news->Shutdown();  // waiting pulls answer now, so the server's workers can finish
  impl_->server->stop();
}

bool Hub::Tls() const { return !impl_->config.tls_cert.empty(); }

void Hub::Reload(const HubConfig& config) {
  auto policy = std::make_shared<const AccessPolicy>(config);
  // Upstream links keep the settings they started with: say so when the file changed them.
  auto upstreams = [](const HubConfig& c) {
    std::map<std::string, std::string> out;
    for (const auto& [name, node] : c.nodes)
      if (node.upstream) out[name] = node.upstream->url + node.upstream->sync_options.dump() +
                                     std::to_string(node.upstream->max_backoff_ms);
    return out;
  };
  if (upstreams(config) != upstreams(impl_->config))
    Log(LogLevel::kWarn, "SIGHUP: upstream settings changed in the config file; they take effect at the next start");
  std::lock_guard<std::mutex> lock(impl_->policy_mu);
  impl_->policy = std::move(policy);
}

}  // namespace deltasync::hub
