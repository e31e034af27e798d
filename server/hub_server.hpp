#pragma once
// The hub's HTTP face: health, push, pull, node status and Prometheus metrics, with
// per-node bearer tokens (docs/protocol.md lists the endpoints and status codes).
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/hlc.hpp"
#include "server/hub_auth.hpp"
#include "server/hub_merge.hpp"
#include "server/hub_store.hpp"
#include "server/hub_upstream.hpp"

namespace deltasync::hub {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Logs to stderr with a level; callers never pass tokens.
void Log(LogLevel level, const std::string& message);
void SetLogLevel(LogLevel level);
// Where log lines go (each with its newline): stderr unless a writer is set. The agent's
// progress line sets one to clear itself before a line and redraw after it. Set it before any
// thread logs; nullptr goes back to stderr.
void SetLogWriter(void (*writer)(const std::string& line));

struct NodeConfig {
  std::vector<std::string> tokens;  // empty: the node is open (loopback or --allow-unauthenticated only)
  std::optional<Quotas> quotas;     // else default_quotas
  std::optional<double> retention_days;   // else default_retention_days (docs/operations.md)
  std::optional<UpstreamConfig> upstream;  // keep the node in sync with this hub node (hub_upstream)
};

// Limits and settings; docs/security.md lists each with its default and config key.
struct HubConfig {
  std::map<std::string, NodeConfig> nodes;
  std::vector<std::string> default_tokens;  // for nodes created on first use
  Quotas default_quotas;                     // for every node without quotas of its own
  std::string admin_token;                  // guards /metrics when set (per-node series only then)
  bool auto_create_nodes = false;
  bool allow_unauthenticated = false;
  size_t max_body_bytes = 8u << 20;       // a request body, as sent (Content-Length, never chunked)
  size_t max_decoded_bytes = 32u << 20;   // the body once decompressed, checked while decoding
  size_t max_header_bytes = 16u << 10;    // request line and headers together, as sent (a hard cap while reading)
  int header_timeout_ms = 10000;          // a whole request head (and a TLS handshake) must arrive within this
  size_t max_connections_per_address = 16;  // connections served at once per client address (0: no bound)
  bool limit_loopback_connections = false;  // loopback clients are exempt from that bound unless true
  size_t max_pull_rows = 10000;
  // A pull page ends at about this many bytes of stored rows, never inside a row.
  size_t max_page_bytes = kMaxPageBytes;
  // The hard maximum of one pushed row (key and values, as a page counts them): a larger one
  // is refused (413), so that no stored row outgrows what a client accepts in one page
  // (its max_page_bytes, 32 MiB by default).
  size_t max_row_bytes = size_t{16} << 20;
  size_t worker_threads = 64;             // requests served at once (slow clients each hold one)
  int64_t max_wait_ms = 30000;            // the longest a long-poll pull (wait_ms) waits for news
  size_t max_waiters = 32;                // long-poll pulls waiting at once, in all (fewer than workers)
  size_t max_waiters_per_node = 8;        // ... and per node
  int read_timeout_ms = 5000;             // one read of a request's headers or body
  uint64_t max_clock_drift_ms = kDefaultMaxClockDriftMs;
  std::string tls_cert, tls_key;          // PEM files: serve https
  JwtConfig jwt;                          // JSON Web Tokens besides static tokens (hub_auth)
  double default_retention_days = 0;      // sites not seen for this long are retired (0: never)
  int64_t compact_interval_s = 60;        // automatic compaction of every node (0: off)

  // The retention of a node in milliseconds (0: none).
  int64_t RetentionMs(const std::string& node) const;

  // Throws Error(kInvalidArgument) for a header cap, header deadline or read timeout out of range
  // (Load runs it; so does `deltasync serve` after its flags).
  void CheckConnectionLimits() const;

  // Reads a JSON config file; throws Error(kInvalidArgument) naming the problem.
  static HubConfig Load(const std::string& path);
};

// True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& host);

// A node name the hub accepts: 1-64 of [A-Za-z0-9_.-].
bool ValidNodeName(const std::string& n);

// Constant-time comparison: the time taken does not depend on where a and b differ.
bool TokenEquals(const std::string& a, const std::string& b);

class Hub {
 public:
  Hub(HubConfig config, std::unique_ptr<HubStore> store);
  ~Hub();
  // Serves until Stop(); returns false when the address cannot be bound.
  bool Listen(const std::string& host, int port);
  // Binds to host:port (or a free port, returned), then serve with ListenAfterBind().
  bool Bind(const std::string& host, int port);
  int BindToAnyPort(const std::string& host);
  bool ListenAfterBind();
  void Stop();
  bool Tls() const;  // serving https
  // Takes the tokens, JWT keys, admin token and quotas of `config` for every request from now on,
  // without touching connections (SIGHUP); throws, keeping the old ones, when the JWKS file
  // cannot be used. Limits, TLS settings and upstream links stay as they were started.
  void Reload(const HubConfig& config);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync::hub
