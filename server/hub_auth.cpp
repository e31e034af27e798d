#include "server/hub_auth.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <jwt/jwt.hpp>

#include "common/error.hpp"
#include "server/hub_server.hpp"

namespace deltasync::hub {

namespace {

using Json = nlohmann::json;

// The claims deltasync reads besides the registered ones (docs/security.md).
constexpr const char* kNodesClaim = "deltasync_nodes";
constexpr const char* kSiteClaim = "deltasync_site";
constexpr const char* kReadOnlyClaim = "deltasync_read_only";

// Longer tokens are refused unread (headers are capped as a whole anyway).
constexpr size_t kMaxJwtBytes = 8192;
// More keys than this in a JWKS file is a mistake, and each costs a verification.
constexpr size_t kMaxJwksKeys = 64;

Error ConfigError(const std::string& message) { return Error(ErrorCode::kInvalidArgument, "config: " + message); }

bool IsBase64Url(const std::string& s) {
  for (char c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return !s.empty() && s.size() % 4 != 1;  // a length of 4k+1 encodes no whole byte
}

// base64url without padding, as JOSE writes it (the library's encoder, made URL-safe).
std::string Base64UrlEncode(const std::string& bytes) {
  std::string out = jwt::base64_encode(bytes.data(), bytes.size());
  out.resize(jwt::base64_uri_encode(&out[0], out.size()));
  return out;
}

// Decodes a base64url field of a JWK; throws ConfigError for anything else. The charset is
// checked first: the library's decoder assumes it.
std::string JwkBytes(const Json& jwk, const char* field, const std::string& where) {
  auto it = jwk.find(field);
  if (it == jwk.end() || !it->is_string())
    throw ConfigError(where + ": \"" + field + "\" must be a base64url string");
  std::string s = it->get<std::string>();
  if (!IsBase64Url(s)) throw ConfigError(where + ": \"" + field + "\" is not base64url");
  return jwt::base64_uri_decode(s.data(), s.size());
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A public key from OpenSSL parameters (RSA n/e or an EC group and point), checked.
Pkey PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld, const std::string& where) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* raw = nullptr;
  bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &raw, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  Pkey key(raw);
  if (ok && key) {
    EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr);
    ok = check && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
  }
  if (!ok || !key) throw ConfigError(where + ": not a valid " + type + " public key");
  return key;
}

struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;
using Bld = std::unique_ptr<OSSL_PARAM_BLD, BldFree>;

Bn BigNum(const std::string& bytes) {
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

Pkey RsaKey(const Json& jwk, const std::string& where) {
  Bn n = BigNum(JwkBytes(jwk, "n", where)), e = BigNum(JwkBytes(jwk, "e", where));
  if (!n || !e) throw ConfigError(where + ": cannot read the RSA key");
  if (BN_num_bits(n.get()) < 2048) throw ConfigError(where + ": RSA keys need at least 2048 bits");
  Bld bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
    throw ConfigError(where + ": cannot build the RSA key");
  return PublicKeyFromParams("RSA", bld.get(), where);
}

Pkey P256Key(const Json& jwk, const std::string& where) {
  if (!jwk.contains("crv") || jwk.at("crv") != "P-256") throw ConfigError(where + ": only the EC curve P-256 (ES256)");
  std::string x = JwkBytes(jwk, "x", where), y = JwkBytes(jwk, "y", where);
  if (x.size() != 32 || y.size() != 32) throw ConfigError(where + ": P-256 coordinates are 32 bytes each");
  std::string point = "\x04" + x + y;  // uncompressed point
  Bld bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
    throw ConfigError(where + ": cannot build the EC key");
  return PublicKeyFromParams("EC", bld.get(), where);
}

std::string PemOf(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (bio && PEM_write_bio_PUBKEY(bio, key) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) pem.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  if (pem.empty()) throw ConfigError("cannot encode a JWKS key");
  return pem;
}

// A JSON number as whole seconds, or nullopt for anything else (claims of the wrong type
// refuse the token).
std::optional<double> Seconds(const Json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// A short SHA-256 fingerprint of a token, naming it for per-token limits without keeping it.
std::string Fingerprint(const std::string& token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(token.data(), token.size(), md, &n, EVP_sha256(), nullptr) != 1) return "?";
  return Base64UrlEncode(std::string(reinterpret_cast<const char*>(md), std::min(n, 16u)));
}

}  // namespace

struct AccessPolicy::Key {
  std::string kid;
  std::string alg;  // "RS256" or "ES256"
  std::string pem;  // the public key as the library takes it
};

JwtConfig JwtConfig::Parse(const Json& j) {
  if (!j.is_object()) throw ConfigError("\"jwt\" must be an object");
  JwtConfig c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    if (k == "leeway_s") {
      if (!v.is_number_unsigned() || v.get<uint64_t>() > 300)
        throw ConfigError("jwt.leeway_s must be an integer from 0 to 300");
      c.leeway_s = v.get<int64_t>();
      continue;
    }
    if (!v.is_string()) throw ConfigError("jwt." + k + " must be a string");
    if (k == "hs256_secret") c.hs256_secret = v.get<std::string>();
    else if (k == "jwks_file") c.jwks_file = v.get<std::string>();
    else if (k == "issuer") c.issuer = v.get<std::string>();
    else if (k == "audience") c.audience = v.get<std::string>();
    else throw ConfigError("unknown key \"jwt." + k + "\"");
  }
  if (!c.hs256_secret.empty() && c.hs256_secret.size() < 32)
    throw ConfigError("jwt.hs256_secret must be at least 32 bytes");
  return c;
}

Quotas Quotas::Parse(const Json& j) {
  if (!j.is_object()) throw ConfigError("quotas must be an object");
  Quotas q;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    if (k == "requests_per_second") {
      if (!v.is_number() || v.get<double>() < 0 || !std::isfinite(v.get<double>()))
        throw ConfigError("quotas.requests_per_second must be a non-negative number");
      q.requests_per_second = v.get<double>();
      continue;
    }
    if (!v.is_number_unsigned()) throw ConfigError("quotas." + k + " must be a non-negative integer");
    if (k == "max_sites") q.max_sites = v.get<uint64_t>();
    else if (k == "max_rows") q.max_rows = v.get<uint64_t>();
    else if (k == "max_stored_bytes") q.max_stored_bytes = v.get<uint64_t>();
    else throw ConfigError("unknown key \"quotas." + k + "\"");
  }
  return q;
}

AccessPolicy::AccessPolicy(const HubConfig& config)
    : default_tokens_(config.default_tokens), admin_token_(config.admin_token),
      auto_create_nodes_(config.auto_create_nodes), jwt_(config.jwt), default_quotas_(config.default_quotas) {
  for (const auto& [name, node] : config.nodes) {
    node_tokens_[name] = node.tokens;
    if (node.quotas) node_quotas_[name] = *node.quotas;
  }
  if (jwt_.jwks_file.empty()) return;
  std::ifstream in(jwt_.jwks_file);
  if (!in) throw ConfigError("cannot read the JWKS file " + jwt_.jwks_file);
  Json set;
  try {
    set = Json::parse(in);
  } catch (const Json::exception& e) {
    throw ConfigError("JWKS file " + jwt_.jwks_file + ": " + e.what());
  }
  if (!set.is_object() || !set.contains("keys") || !set.at("keys").is_array())
    throw ConfigError("JWKS file " + jwt_.jwks_file + ": expected {\"keys\": [...]}");
  const Json& keys = set.at("keys");
  if (keys.size() > kMaxJwksKeys)
    throw ConfigError("JWKS file " + jwt_.jwks_file + ": more than " + std::to_string(kMaxJwksKeys) + " keys");
  for (size_t i = 0; i < keys.size(); ++i) {
    const Json& jwk = keys[i];
    std::string where = "JWKS file " + jwt_.jwks_file + ", key " + std::to_string(i);
    if (!jwk.is_object() || !jwk.contains("kty") || !jwk.at("kty").is_string())
      throw ConfigError(where + ": a key is an object with \"kty\"");
    auto text = [&](const char* f) {
      auto it = jwk.find(f);
      return it != jwk.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    // Keys for encryption, or for algorithms deltasync does not accept, are left out.
    if (!text("use").empty() && text("use") != "sig") continue;
    std::string kty = text("kty"), alg = text("alg");
    Key key{text("kid"), "", ""};
    if (kty == "RSA" && (alg.empty() || alg == "RS256")) {
      key.alg = "RS256";
      key.pem = PemOf(RsaKey(jwk, where).get());
    } else if (kty == "EC" && (alg.empty() || alg == "ES256")) {
      key.alg = "ES256";
      key.pem = PemOf(P256Key(jwk, where).get());
    } else {
      continue;
    }
    keys_.push_back(std::move(key));
  }
  if (keys_.empty()) throw ConfigError("JWKS file " + jwt_.jwks_file + " has no RS256 or ES256 signing key");
}

AccessPolicy::~AccessPolicy() = default;

const Quotas& AccessPolicy::QuotasOf(const std::string& node) const {
  auto it = node_quotas_.find(node);
  return it != node_quotas_.end() ? it->second : default_quotas_;
}

bool AccessPolicy::Admin(const std::string& authorization) const {
  return !admin_token_.empty() && authorization.rfind("Bearer ", 0) == 0 &&
         TokenEquals(authorization.substr(7), admin_token_);
}

std::optional<Grant> AccessPolicy::Authenticate(const std::string& authorization, const std::string& node,
                                                bool open) const {
  const std::vector<std::string>* tokens = nullptr;
  auto it = node_tokens_.find(node);
  if (it != node_tokens_.end()) tokens = &it->second;
  else if (auto_create_nodes_ && ValidNodeName(node)) tokens = &default_tokens_;
  if (!tokens) return std::nullopt;
  if (tokens->empty() && !jwt_.Enabled()) {
    if (!open) return std::nullopt;
    return Grant{false, std::nullopt, "open:" + node};
  }
  if (authorization.rfind("Bearer ", 0) != 0) return std::nullopt;
  std::string token = authorization.substr(7);
  // Every static token is compared, whatever matches: the time taken tells nothing.
  size_t match = tokens->size();
  for (size_t k = 0; k < tokens->size(); ++k)
    if (TokenEquals(token, (*tokens)[k])) match = k;
  if (match < tokens->size()) return Grant{false, std::nullopt, "static:" + node + ":" + std::to_string(match)};
  if (!jwt_.Enabled()) return std::nullopt;
  return VerifyJwt(token, node);
}

std::optional<Grant> AccessPolicy::VerifyJwt(const std::string& token, const std::string& node) const {
  // Shape first: three base64url parts, bounded. The library's decoder assumes its input is
  // base64url, and an unsigned ("none") token has an empty third part.
  if (token.size() > kMaxJwtBytes) return std::nullopt;
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string::npos || token.find('.', dot2 + 1) != std::string::npos) return std::nullopt;
  std::string head = token.substr(0, dot1), body = token.substr(dot1 + 1, dot2 - dot1 - 1),
              sig = token.substr(dot2 + 1);
  if (!IsBase64Url(head) || !IsBase64Url(body) || !IsBase64Url(sig)) return std::nullopt;

  Json header, claims;
  try {
    // Parsing only: the algorithm, signature and claims are checked below, so that an HMAC
    // is compared in constant time and the claims by deltasync's rules.
    std::error_code ec;
    jwt::jwt_object obj =
        jwt::decode(token, jwt::params::algorithms({"HS256", "RS256", "ES256"}), ec, jwt::params::verify(false));
    if (ec) return std::nullopt;
    header = obj.header().create_json_obj();
    claims = obj.payload().create_json_obj();
  } catch (const std::exception&) {
    return std::nullopt;  // a header field of the wrong type, and the like
  }
  if (!header.is_object() || !claims.is_object()) return std::nullopt;
  if (header.contains("crit")) return std::nullopt;  // extensions deltasync does not know
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return std::nullopt;
  std::string alg = alg_it->get<std::string>();
  std::string signing_input = head + "." + body;

  bool verified = false;
  if (alg == "HS256") {
    if (jwt_.hs256_secret.empty()) return std::nullopt;
    auto [mac, ec] = jwt::HMACSign<jwt::algo::HS256>::sign(jwt_.hs256_secret, signing_input);
    verified = !ec && TokenEquals(Base64UrlEncode(mac), sig);
  } else if (alg == "RS256" || alg == "ES256") {
    std::string kid;
    auto kid_it = header.find("kid");
    if (kid_it != header.end()) {
      if (!kid_it->is_string()) return std::nullopt;
      kid = kid_it->get<std::string>();
    }
    for (const Key& key : keys_) {
      if (key.alg != alg || (!kid.empty() && key.kid != kid)) continue;
      jwt::verify_result_t r = alg == "RS256" ? jwt::PEMSign<jwt::algo::RS256>::verify(key.pem, signing_input, sig)
                                              : jwt::PEMSign<jwt::algo::ES256>::verify(key.pem, signing_input, sig);
      if (r.first && !r.second) {
        verified = true;
        break;
      }
    }
  }
  if (!verified) return std::nullopt;

  // Registered claims: exp is required (a credential that never expires is a static token),
  // nbf optional, both with the leeway; iss and aud when the config names them.
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto exp = Seconds(claims, "exp");
  if (!exp || now > *exp + static_cast<double>(jwt_.leeway_s)) return std::nullopt;
  if (claims.contains("nbf")) {
    auto nbf = Seconds(claims, "nbf");
    if (!nbf || now + static_cast<double>(jwt_.leeway_s) < *nbf) return std::nullopt;
  }
  if (!jwt_.issuer.empty()) {
    auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() || iss->get<std::string>() != jwt_.issuer) return std::nullopt;
  }
  if (!jwt_.audience.empty()) {
    auto aud = claims.find("aud");
    if (aud == claims.end()) return std::nullopt;
    bool ok = aud->is_string() && aud->get<std::string>() == jwt_.audience;
    if (aud->is_array())
      for (const Json& a : *aud) ok |= a.is_string() && a.get<std::string>() == jwt_.audience;
    if (!ok) return std::nullopt;
  }

  // deltasync's claims: the nodes (a list; "*" in it grants every node), one site, read-only.
  auto nodes = claims.find(kNodesClaim);
  if (nodes == claims.end() || !nodes->is_array()) return std::nullopt;
  bool granted = false;
  for (const Json& n : *nodes) {
    if (!n.is_string()) return std::nullopt;
    granted |= n.get<std::string>() == node || n.get<std::string>() == "*";
  }
  if (!granted) return std::nullopt;
  Grant grant;
  auto site = claims.find(kSiteClaim);
  if (site != claims.end()) {
    if (!site->is_string()) return std::nullopt;
    try {
      grant.site = SiteId::Parse(site->get<std::string>());
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  auto read_only = claims.find(kReadOnlyClaim);
  if (read_only != claims.end()) {
    if (!read_only->is_boolean()) return std::nullopt;
    grant.read_only = read_only->get<bool>();
  }
  grant.credential = "jwt:" + node + ":" + Fingerprint(token);
  return grant;
}

int RateLimiter::Admit(const std::string& credential, double per_second) {
  if (per_second <= 0) return 0;
  double burst = std::max(1.0, per_second);
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto refill = [&](Bucket& b) {
    b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.at).count() * per_second);
    b.at = now;
  };
  // Credentials are many only when JWTs are minted freely: forget the buckets that are full
  // again (idle for a second or more), which is what a new bucket would be.
  if (buckets_.size() > 100000)
    for (auto it = buckets_.begin(); it != buckets_.end();)
      it = now - it->second.at > std::chrono::seconds(static_cast<int64_t>(burst / per_second) + 1) ? buckets_.erase(it)
                                                                                                  : std::next(it);
  auto [it, fresh] = buckets_.try_emplace(credential, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) refill(b);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return 0;
  }
  return std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / per_second)));
}

namespace {

// What a value may take in the store, near enough for a quota.
uint64_t ValueBytes(const Value& v) {
  return v.type == ValueType::kText || v.type == ValueType::kBlob ? v.s.size() + 1 : v.IsNull() ? 1 : 9;
}

}  // namespace

std::string StorageQuotas::Admit(HubStore& store, int64_t node, const std::string& node_name, const Quotas& q,
                                 const Payload& p) {
  if (!q.Storage()) return "";
  // What the push may add, counting every row and value as new.
  uint64_t rows = 0, bytes = 0;
  std::set<SiteId> used = {p.site};
  for (const TableChanges& t : p.tables) {
    rows += t.rows.size();
    for (const RowChanges& r : t.rows) {
      for (const Value& k : r.key) bytes += ValueBytes(k);
      for (const ColumnChange& c : r.changes) {
        bytes += ValueBytes(c.value);
        if (c.site < p.sites.size()) used.insert(p.sites[c.site]);
      }
    }
  }
  const std::string of = "node \"" + node_name + "\"";
  auto alone = [&](const char* what, uint64_t n, uint64_t quota) {
    return "deltasync: quota exceeded: this push alone holds " + std::to_string(n) + " " + what + ", more than " + of +
           " may hold (" + std::to_string(quota) + ")";
  };
  if (q.max_rows && rows > q.max_rows) return alone("rows", rows, q.max_rows);
  if (q.max_stored_bytes && bytes > q.max_stored_bytes) return alone("bytes", bytes, q.max_stored_bytes);
  if (q.max_sites && used.size() > q.max_sites) return alone("sites", used.size(), q.max_sites);

  std::shared_ptr<Held> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<Held>& h = nodes_[node];
    if (!h) h = std::make_shared<Held>();
    held = h;
  }
  std::lock_guard<std::mutex> lock(held->mu);  // pushes to one node are admitted one at a time
  auto now = std::chrono::steady_clock::now();
  auto read = [&] {
    NodeUsage u = store.Usage(node);
    held->rows = u.rows;
    held->bytes = u.bytes;
    held->sites = std::set<SiteId>(u.sites.begin(), u.sites.end());
    held->at = now;
    held->known = true;
    held->grown = false;
  };
  // Rows and bytes: refused once the node holds its quota (so a node passes it by at most
  // one push). Sites: refused when the push would bring in more than the quota allows.
  auto over = [&]() -> std::string {
    if (q.max_rows && held->rows >= q.max_rows)
      return "deltasync: quota exceeded: " + of + " holds " + std::to_string(held->rows) + " rows, its max_rows is " +
             std::to_string(q.max_rows);
    if (q.max_stored_bytes && held->bytes >= q.max_stored_bytes)
      return "deltasync: quota exceeded: " + of + " holds " + std::to_string(held->bytes) +
             " bytes, its max_stored_bytes is " + std::to_string(q.max_stored_bytes);
    size_t sites = held->sites.size();
    for (const SiteId& s : used) sites += held->sites.count(s) ? 0 : 1;
    if (q.max_sites && sites > q.max_sites)
      return "deltasync: quota exceeded: this push would bring " + of + " to " + std::to_string(sites) +
             " sites, its max_sites is " + std::to_string(q.max_sites);
    return "";
  };
  if (!held->known || now - held->at > std::chrono::seconds(10)) read();
  std::string why = over();
  if (!why.empty() && held->grown) {
    read();  // what was counted as growth may have been updates: refuse on what is held
    why = over();
  }
  if (!why.empty()) return why;
  held->rows += rows;
  held->bytes += bytes;
  held->sites.insert(used.begin(), used.end());
  held->grown = true;
  return "";
}

}  // namespace deltasync::hub
