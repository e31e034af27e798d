#pragma once
// Who a request is and what it may do: the static bearer tokens of each node, and JSON Web
// Tokens (HS256 with a shared secret, RS256 and ES256 with public keys from a JWKS file)
// whose claims name the nodes they grant and may bind them to one site and to read-only
// use; and each node's quotas, on requests per second per token and on what it stores.
// docs/security.md, "JSON Web Tokens" and "Quotas", says which claims, checks and limits.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/payload.hpp"
#include "common/site_id.hpp"

namespace deltasync::hub {

struct HubConfig;

// The config's "jwt" object. Verification is on when a secret or a JWKS file is given.
struct JwtConfig {
  std::string hs256_secret;  // HS256 tokens are accepted only with this (at least 32 bytes)
  std::string jwks_file;     // RS256 / ES256 public keys, {"keys": [...]}, read at load and on SIGHUP
  std::string issuer;        // the `iss` a token must carry, when set
  std::string audience;      // the `aud` a token must carry (or list), when set
  int64_t leeway_s = 30;     // clock skew allowed on `exp` and `nbf`

  bool Enabled() const { return !hs256_secret.empty() || !jwks_file.empty(); }
  // Reads the "jwt" object of a config; throws Error(kInvalidArgument) naming the problem.
  static JwtConfig Parse(const nlohmann::json& j);
};

// A node's quotas (its "quotas", or the config's "default_quotas"); 0 is no limit.
struct Quotas {
  uint64_t max_sites = 0;         // distinct sites whose changes the node holds
  uint64_t max_rows = 0;          // rows, live and deleted
  uint64_t max_stored_bytes = 0;  // bytes of keys and values
  double requests_per_second = 0; // per token (per credential), with a burst of one second's worth

  bool Storage() const { return max_sites || max_rows || max_stored_bytes; }
  // Reads a "quotas" object; throws Error(kInvalidArgument) naming the problem.
  static Quotas Parse(const nlohmann::json& j);
};

// What a request's credentials allow on one node.
struct Grant {
  bool read_only = false;       // pull and status only
  std::optional<SiteId> site;   // the only site it may pull and push as
  std::string credential;       // which credential it was, for per-token limits; never the token
};

// Everything needed to authenticate requests under one config. Immutable once built, so
// threads share it (and a reload swaps in a new one).
class AccessPolicy {
 public:
  // Reads the JWKS file the config names; throws Error(kInvalidArgument) when it is unusable.
  explicit AccessPolicy(const HubConfig& config);
  ~AccessPolicy();
  AccessPolicy(const AccessPolicy&) = delete;
  AccessPolicy& operator=(const AccessPolicy&) = delete;

  // The grant of an Authorization header value on a node, or nullopt (answered 401). A node
  // that exists in the config or may be auto-created, with no static token and no JWT
  // verification configured, is open when `open` (loopback, or --allow-unauthenticated).
  std::optional<Grant> Authenticate(const std::string& authorization, const std::string& node, bool open) const;
  // True when the config has an admin token and the header carries it.
  bool Admin(const std::string& authorization) const;
  bool HasAdminToken() const { return !admin_token_.empty(); }
  // The node's own quotas, else the defaults.
  const Quotas& QuotasOf(const std::string& node) const;

 private:
  struct Key;  // one public key of the JWKS file, as PEM
  std::optional<Grant> VerifyJwt(const std::string& token, const std::string& node) const;

  std::map<std::string, std::vector<std::string>> node_tokens_;
  std::vector<std::string> default_tokens_;
  std::string admin_token_;
  bool auto_create_nodes_ = false;
  JwtConfig jwt_;
  std::vector<Key> keys_;
  std::map<std::string, Quotas> node_quotas_;
  Quotas default_quotas_;
};

// requests_per_second per credential: a token bucket each, refilled at the rate and holding
// one second's worth. Thread-safe; buckets of idle credentials are dropped as they pile up.
class RateLimiter {
 public:
  // 0 when the request may go now (and is counted), else the seconds to wait (Retry-After).
  int Admit(const std::string& credential, double per_second);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

class HubStore;

// The storage quotas of nodes, checked before a push is merged. What a node holds is read
// from the store (HubStore::Usage) when first needed, every 10 s while pushes come, and again
// before refusing a push when pushes were accepted since; in between, each accepted push
// counts as growth in full.
class StorageQuotas {
 public:
  // Empty when a push of `p` may go ahead (its growth is then counted), else the `deltasync:`
  // error to answer with 507.
  std::string Admit(HubStore& store, int64_t node, const std::string& node_name, const Quotas& q, const Payload& p);

 private:
  struct Held {
    std::mutex mu;
    bool known = false, grown = false;  // read once; pushes accepted since the last read
    std::chrono::steady_clock::time_point at;
    uint64_t rows = 0, bytes = 0;
    std::set<SiteId> sites;
  };
  std::mutex mu_;
  std::map<int64_t, std::shared_ptr<Held>> nodes_;
};

}  // namespace deltasync::hub
