#pragma once
// Who a request is and what it may do: the static bearer tokens of each node, and JSON Web
// Tokens (HS256 with a shared secret, RS256 and ES256 with public keys from a JWKS file)
// whose claims name the nodes they grant and may bind them to one site and to read-only
// use. docs/security.md, "JSON Web Tokens", says which claims and checks.
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

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

 private:
  struct Key;  // one public key of the JWKS file, as PEM
  std::optional<Grant> VerifyJwt(const std::string& token, const std::string& node) const;

  std::map<std::string, std::vector<std::string>> node_tokens_;
  std::vector<std::string> default_tokens_;
  std::string admin_token_;
  bool auto_create_nodes_ = false;
  JwtConfig jwt_;
  std::vector<Key> keys_;
};

}  // namespace deltasync::hub
