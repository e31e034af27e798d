// JSON Web Tokens next to static tokens (issue 11), against a real `deltasync serve` on
// 127.0.0.1: HS256 with a shared secret, RS256 and ES256 with keys the test makes with the
// openssl command and lists in a JWKS file; the claims that name nodes, bind a token to one
// site and make it read-only; every invalid token gets the same 401.
#include <gtest/gtest.h>
#include <httplib.h>
#include <jwt/jwt.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using deltasync::test::UniqueTempPath;
using Json = nlohmann::json;

namespace {

constexpr const char* kSecret = "a shared secret of at least 32 bytes, for HS256";
constexpr const char* kSchema = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL); SELECT deltasync_enable('t');";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string B64Url(const std::string& bytes) {
  std::string out = jwt::base64_encode(bytes.data(), bytes.size());
  out.resize(jwt::base64_uri_encode(&out[0], out.size()));
  return out;
}

// A token with exactly this header and these claims, signed by libcpp-jwt's primitives with
// `key` (the HS256 secret, or a PEM private key for RS256 / ES256); "none" leaves it unsigned.
std::string Mint(const Json& header, const Json& claims, const std::string& key) {
  std::string input = B64Url(header.dump()) + "." + B64Url(claims.dump());
  std::string alg = header.value("alg", "");
  jwt::sign_result_t s;
  if (alg == "HS256") s = jwt::HMACSign<jwt::algo::HS256>::sign(key, input);
  else if (alg == "RS256") s = jwt::PEMSign<jwt::algo::RS256>::sign(key, input);
  else if (alg == "ES256") s = jwt::PEMSign<jwt::algo::ES256>::sign(key, input);
  if (s.second) throw std::runtime_error("signing failed: " + s.second.message());
  return input + "." + B64Url(s.first);
}

// Claims that the hub of these tests accepts for `nodes`, valid for ten minutes.
Json Claims(const std::vector<std::string>& nodes = {"shop1"}) {
  return {{"iss", "https://issuer.test"}, {"aud", "deltasync"}, {"exp", Now() + 600},
          {"nbf", Now() - 10},           {"deltasync_nodes", nodes}};
}

std::string Hs256(const Json& claims, const std::string& secret = kSecret) {
  return Mint({{"alg", "HS256"}, {"typ", "JWT"}}, claims, secret);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Shell(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (::pclose(p) != 0) throw std::runtime_error("failed: " + cmd);
  return out;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t k = 0; k + 1 < hex.size(); k += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16)));
  return out;
}

// Key pairs made by the openssl command in a temp dir, and their public halves as JWKs.
struct Keys {
  std::string dir = UniqueTempPath("jwks", "");
  Keys() { Shell("mkdir -p " + dir); }
  ~Keys() { (void)std::system(("rm -rf " + dir).c_str()); }
  std::string Path(const std::string& name) const { return dir + "/" + name; }

  // Makes an RSA key; returns its PEM private key and sets its JWK.
  std::string Rsa(const std::string& name, const std::string& kid, Json& jwk) {
    Shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + Path(name) + " 2>/dev/null");
    std::string mod = Shell("openssl rsa -in " + Path(name) + " -noout -modulus");
    mod = mod.substr(mod.find('=') + 1);
    while (!mod.empty() && (mod.back() == '\n' || mod.back() == '\r')) mod.pop_back();
    jwk = {{"kty", "RSA"}, {"kid", kid}, {"use", "sig"}, {"alg", "RS256"}, {"n", B64Url(FromHex(mod))}, {"e", "AQAB"}};
    return ReadFile(Path(name));
  }
  // Makes a P-256 key; returns its PEM private key and sets its JWK (no kid).
  std::string Ec(const std::string& name, Json& jwk) {
    Shell("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + Path(name) + " 2>/dev/null");
    Shell("openssl pkey -in " + Path(name) + " -pubout -outform DER -out " + Path(name + ".der"));
    std::string der = ReadFile(Path(name + ".der"));
    std::string point = der.substr(der.size() - 65);  // 0x04 || x || y ends the SubjectPublicKeyInfo
    jwk = {{"kty", "EC"}, {"crv", "P-256"}, {"x", B64Url(point.substr(1, 32))}, {"y", B64Url(point.substr(33, 32))}};
    return ReadFile(Path(name));
  }
  std::string WriteJwks(const std::vector<Json>& keys) {
    std::ofstream(Path("jwks.json")) << Json({{"keys", keys}}).dump();
    return Path("jwks.json");
  }
};

// A hub config with static tokens for shop1, JWT verification, and shop2 without static tokens.
std::string Config(const std::string& jwks_file = "", const Json& extra = Json::object()) {
  Json jwt = {{"hs256_secret", kSecret}, {"issuer", "https://issuer.test"}, {"audience", "deltasync"}};
  if (!jwks_file.empty()) jwt["jwks_file"] = jwks_file;
  Json c = {{"nodes", {{"shop1", {{"tokens", {"static1"}}}}, {"shop2", Json::object()}}}, {"jwt", jwt}};
  c.update(extra);
  return c.dump();
}

HubProcess::Options Options(const std::string& config) {
  HubProcess::Options o;
  o.config_json = config;
  o.auto_create_nodes = false;
  return o;
}

struct Answer {
  int status = -1;
  std::string body;
  std::string retry_after;
};

Answer Request(const HubProcess& hub, const std::string& method, const std::string& path, const std::string& token,
               const std::string& body = "") {
  httplib::Client c("127.0.0.1", hub.port());
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  httplib::Result r = method == "POST" ? c.Post(path.c_str(), h, body, "application/json") : c.Get(path.c_str(), h);
  if (!r) return {};
  return {r->status, r->body, r->get_header_value("Retry-After")};
}

std::string Opts(const std::string& token) { return Json({{"timeout_ms", 10000}, {"token", token}}).dump(); }

// deltasync_sync's error text, or "" when it succeeded.
std::string SyncError(Site& s, const std::string& url, const std::string& token, const char* fn = "deltasync_sync") {
  try {
    s.Text(std::string("SELECT ") + fn + "(?1, ?2)", {Value::Text(url), Value::Text(Opts(token))});
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// A site syncs with an HS256 token (made with libcpp-jwt's token object); static tokens keep
// working beside JWTs; shop2 has no static token and needs a JWT, even on loopback.
TEST(HubAuth, SitesSyncWithAnHs256Token) {
  HubProcess hub(Options(Config()));
  jwt::jwt_object obj{jwt::params::algorithm("HS256"), jwt::params::secret(kSecret),
                      jwt::params::payload({{"iss", "https://issuer.test"}, {"aud", "deltasync"}})};
  obj.add_claim("exp", std::chrono::system_clock::now() + std::chrono::minutes(10));
  obj.add_claim("deltasync_nodes", std::vector<std::string>{"shop1", "shop2"});
  std::string token = obj.signature();

  Site a, b, c;
  for (Site* s : {&a, &b, &c}) s->Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'from a')");
  EXPECT_EQ(SyncError(a, hub.url("shop1"), token), "");
  EXPECT_EQ(SyncError(b, hub.url("shop1"), "static1"), "");
  EXPECT_EQ(b.Text("SELECT a FROM t WHERE id = 1"), "from a");
  EXPECT_EQ(SyncError(c, hub.url("shop2"), token), "");
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop2/status", "").status, 401);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop2/status", token).status, 200);
  // The token names shop1 and shop2, nothing else; "*" names every node.
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop3/status", token).status, 401);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop2/status", Hs256(Claims({"*"}))).status, 200);
  EXPECT_EQ(hub.log().find(token), std::string::npos) << "a token reached the log";
}

// Every invalid token gets 401 with one and the same body: the caller learns nothing of why.
TEST(HubAuth, InvalidTokensAllGetTheSame401) {
  Keys keys;
  Json jwk, other_jwk;
  std::string rsa = keys.Rsa("rsa.pem", "k1", jwk);
  std::string other_rsa = keys.Rsa("other.pem", "k1", other_jwk);
  HubProcess hub(Options(Config(keys.WriteJwks({jwk}))));
  std::string unknown_node_body = Request(hub, "GET", "/nodes/nosuchnode/status", "static1").body;
  ASSERT_FALSE(unknown_node_body.empty());

  auto with = [](Json c, const char* k, const Json& v) {
    if (v.is_null()) c.erase(k);
    else c[k] = v;
    return c;
  };
  Json good = Claims();
  std::string valid = Hs256(good);
  std::string tampered = valid;
  tampered[tampered.find('.') + 3] ^= 1;  // one bit of the claims changed after signing
  std::vector<std::pair<std::string, std::string>> bad = {
      {"expired", Hs256(with(good, "exp", Now() - 3600))},
      {"not yet valid", Hs256(with(good, "nbf", Now() + 3600))},
      {"no exp", Hs256(with(good, "exp", nullptr))},
      {"exp as text", Hs256(with(good, "exp", std::to_string(Now() + 600)))},
      {"wrong iss", Hs256(with(good, "iss", "https://evil.test"))},
      {"no iss", Hs256(with(good, "iss", nullptr))},
      {"wrong aud", Hs256(with(good, "aud", "other"))},
      {"aud list without ours", Hs256(with(good, "aud", Json::array({"a", "b"})))},
      {"wrong node", Hs256(Claims({"shop9"}))},
      {"no nodes claim", Hs256(with(good, "deltasync_nodes", nullptr))},
      {"nodes as text", Hs256(with(good, "deltasync_nodes", "shop1"))},
      {"bad signature", Hs256(good, "another secret of at least 32 bytes long")},
      {"tampered claims", tampered},
      {"alg none", Mint({{"alg", "none"}, {"typ", "JWT"}}, good, "")},
      {"alg none with a signature", Mint({{"alg", "none"}}, good, "") + "c2ln"},
      {"alg HS512", Mint({{"alg", "HS512"}}, good, "") + "c2ln"},
      // Algorithm confusion: the RSA public key used as an HMAC secret.
      {"HS256 keyed with the public key", Hs256(good, Shell("openssl pkey -in " + keys.Path("rsa.pem") + " -pubout"))},
      {"RS256 by a key not in the JWKS", Mint({{"alg", "RS256"}, {"kid", "k1"}}, good, other_rsa)},
      {"RS256 with an unknown kid", Mint({{"alg", "RS256"}, {"kid", "k2"}}, good, rsa)},
      {"crit header", Mint({{"alg", "HS256"}, {"crit", {"exp"}}}, good, kSecret)},
      {"site not a site id", Hs256(with(good, "deltasync_site", "shop1"))},
      {"read-only not a bool", Hs256(with(good, "deltasync_read_only", "yes"))},
      {"two dots only", ".."},
      {"non-base64 bytes", "e\xff\xfe.e30.c2ln"},
      {"garbage", "not a token"},
  };
  for (const auto& [why, token] : bad) {
    for (const char* path : {"/nodes/shop1/status", "/nodes/shop2/pull?since=0"}) {
      Answer a = Request(hub, "GET", path, token);
      EXPECT_EQ(a.status, 401) << why << " " << path;
      EXPECT_EQ(a.body, unknown_node_body) << why;
    }
    Answer p = Request(hub, "POST", "/nodes/shop1/push", token, "{}");
    EXPECT_EQ(p.status, 401) << why;
    EXPECT_EQ(p.body, unknown_node_body) << why;
  }
  // The valid ones, for contrast: HS256, RS256, and an aud list that holds ours.
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", valid).status, 200);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", Mint({{"alg", "RS256"}, {"kid", "k1"}}, good, rsa)).status, 200);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", Hs256(with(good, "aud", Json::array({"x", "deltasync"})))).status,
            200);
  // Within the leeway (30 s): just expired, or valid in a moment.
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", Hs256(with(good, "exp", Now() - 5))).status, 200);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", Hs256(with(good, "nbf", Now() + 5))).status, 200);
  std::string log = hub.log();
  for (const auto& [why, token] : bad)
    if (token.size() > 8) {
      EXPECT_EQ(log.find(token), std::string::npos) << why << ": a token reached the log";
    }
}

// RS256 and ES256 with public keys from a JWKS file: sites sync with either.
TEST(HubAuth, Rs256AndEs256TokensFromAJwksFile) {
  Keys keys;
  Json rsa_jwk, ec_jwk;
  std::string rsa = keys.Rsa("rsa.pem", "rsa-1", rsa_jwk);
  std::string ec = keys.Ec("ec.pem", ec_jwk);
  // An encryption key and a key for another algorithm are left out, not refused.
  Json enc = rsa_jwk;
  enc["use"] = "enc";
  enc["kid"] = "enc-1";
  HubProcess hub(Options(Config(keys.WriteJwks({enc, rsa_jwk, ec_jwk}))));
  std::string rs_token = Mint({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "rsa-1"}}, Claims(), rsa);
  std::string es_token = Mint({{"alg", "ES256"}, {"typ", "JWT"}}, Claims(), ec);
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'rs256')");
  EXPECT_EQ(SyncError(a, hub.url("shop1"), rs_token), "");
  b.Exec("INSERT INTO t VALUES (2, 'es256')");
  EXPECT_EQ(SyncError(b, hub.url("shop1"), es_token), "");
  EXPECT_EQ(SyncError(a, hub.url("shop1"), rs_token), "");
  EXPECT_EQ(a.Text("SELECT a FROM t WHERE id = 2"), "es256");
  EXPECT_EQ(b.Text("SELECT a FROM t WHERE id = 1"), "rs256");
  // The EC key signs only ES256, the RSA key only RS256.
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", Mint({{"alg", "RS256"}}, Claims(), rsa)).status, 200);
  std::string es_sig = es_token.substr(es_token.rfind('.'));
  std::string head = B64Url(Json({{"alg", "RS256"}}).dump());
  std::string body = es_token.substr(es_token.find('.') + 1, es_token.rfind('.') - es_token.find('.') - 1);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", head + "." + body + es_sig).status, 401);
}

// A JWKS file that cannot be used stops the hub from starting, naming the file.
TEST(HubAuth, AnUnusableJwksFileStopsTheStart) {
  Keys keys;
  Json small = {{"kty", "RSA"}, {"n", B64Url(std::string(64, '\x7f'))}, {"e", "AQAB"}};
  Json off_curve = {{"kty", "EC"}, {"crv", "P-256"}, {"x", B64Url(std::string(32, '\x01'))},
                    {"y", B64Url(std::string(32, '\x02'))}};
  for (const Json& key : {small, off_curve}) {
    std::string jwks = keys.WriteJwks({key});
    EXPECT_THROW(HubProcess hub(Options(Config(jwks))), std::runtime_error) << key.dump();
  }
  EXPECT_THROW(HubProcess hub(Options(Config(keys.Path("missing.json")))), std::runtime_error);
}

// A site-bound token pulls and pushes only as its site (403 otherwise); a read-only token
// pulls and reads status, and any push with it is 403, before its body is read.
TEST(HubAuth, SiteBoundAndReadOnlyTokens) {
  HubProcess hub(Options(Config()));
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  std::string site_a = a.Text("SELECT deltasync_site_id()");
  std::string site_b = b.Text("SELECT deltasync_site_id()");
  Json bound = Claims();
  bound["deltasync_site"] = site_a;
  std::string token_a = Hs256(bound);

  a.Exec("INSERT INTO t VALUES (1, 'a')");
  EXPECT_EQ(SyncError(a, hub.url("shop1"), token_a), "");
  b.Exec("INSERT INTO t VALUES (2, 'b')");
  EXPECT_NE(SyncError(b, hub.url("shop1"), token_a), "");
  EXPECT_NE(SyncError(b, hub.url("shop1"), token_a, "deltasync_pull"), "");
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/pull?since=0&site=" + site_b, token_a).status, 403);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/pull?since=0", token_a).status, 403);
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/pull?since=0&site=" + site_a, token_a).status, 200);
  Answer push = Request(hub, "POST", "/nodes/shop1/push", token_a, b.Text("SELECT deltasync_changes(0)"));
  EXPECT_EQ(push.status, 403);
  EXPECT_EQ(push.body.rfind("{\"error\":\"deltasync: ", 0), 0u) << push.body;
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", token_a).status, 200);
  // Nothing of b's reached the hub.
  EXPECT_EQ(Json::parse(Request(hub, "GET", "/nodes/shop1/status", "static1").body)["tables"][0]["rows"], 1);

  Json ro = Claims();
  ro["deltasync_read_only"] = true;
  std::string reader = Hs256(ro);
  Site r;
  r.Exec(kSchema);
  EXPECT_EQ(SyncError(r, hub.url("shop1"), reader, "deltasync_pull"), "");
  EXPECT_EQ(r.Text("SELECT a FROM t WHERE id = 1"), "a");
  EXPECT_EQ(Request(hub, "GET", "/nodes/shop1/status", reader).status, 200);
  r.Exec("INSERT INTO t VALUES (3, 'r')");
  EXPECT_NE(SyncError(r, hub.url("shop1"), reader, "deltasync_push"), "");
  Answer ro_push = Request(hub, "POST", "/nodes/shop1/push", reader, r.Text("SELECT deltasync_changes(0)"));
  EXPECT_EQ(ro_push.status, 403);
  EXPECT_NE(ro_push.body.find("read-only"), std::string::npos) << ro_push.body;
  EXPECT_EQ(Json::parse(Request(hub, "GET", "/nodes/shop1/status", "static1").body)["tables"][0]["rows"], 1);
}
