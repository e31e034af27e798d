// JSON Web Tokens next to static tokens (issue 11), against a real `deltasync serve` on
// 127.0.0.1: HS256 with a shared secret, RS256 and ES256 with keys the test makes with the
// openssl command and lists in a JWKS file; the claims that name nodes, bind a token to one
// site and make it read-only; every invalid token gets the same 401.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>
#include <jwt/jwt.hpp>

#include <atomic>
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


// The --config file a hub was started with (HubProcess writes it), read from its command line.
std::string ConfigPathOf(const HubProcess& hub) {
  std::string cmdline = ReadFile("/proc/" + std::to_string(hub.pid()) + "/cmdline");
  std::vector<std::string> args;
  for (size_t at = 0; at < cmdline.size();) {
    size_t end = cmdline.find('\0', at);
    if (end == std::string::npos) end = cmdline.size();
    args.push_back(cmdline.substr(at, end - at));
    at = end + 1;
  }
  for (size_t k = 0; k + 1 < args.size(); ++k)
    if (args[k] == "--config") return args[k + 1];
  throw std::runtime_error("the hub has no --config");
}

// Replaces a file whole (a rename), so that a reload never reads half of it.
void Replace(const std::string& path, const std::string& contents) {
  std::ofstream(path + ".new") << contents;
  if (std::rename((path + ".new").c_str(), path.c_str()) != 0) throw std::runtime_error("cannot replace " + path);
}

// Waits (10 s at most) until the hub's log holds `what` `count` times.
bool WaitForLog(const HubProcess& hub, const std::string& what, int count = 1) {
  for (int k = 0; k < 1000; ++k) {
    std::string log = hub.log();
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    if (n >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// One keep-alive TCP connection, written and read by hand: GET /health on it again and again.
class KeepAlive {
 public:
  explicit KeepAlive(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect to the hub");
  }
  ~KeepAlive() { ::close(fd_); }
  // True when /health answered 200 on this same connection.
  bool Health() {
    std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return false;
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      size_t head = got.find("\r\n\r\n");
      size_t cl = got.find("Content-Length: ");
      if (head != std::string::npos && cl != std::string::npos &&
          got.size() >= head + 4 + std::strtoul(got.c_str() + cl + 16, nullptr, 10))
        return got.rfind("HTTP/1.1 200", 0) == 0;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) < 0) return false;
      if (!(p.revents & POLLIN)) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      got.append(buf, static_cast<size_t>(n));
    }
    return false;
  }

 private:
  int fd_ = -1;
};

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

// SIGHUP re-reads the config: a new static token, HS256 secret and JWKS key work, removed
// ones fail; a config that does not load keeps the one in use; connections, and a long sync
// running meanwhile, carry on, in the same process.
TEST(HubAuth, SighupReloadsTokensAndKeysWithoutDroppingConnections) {
  Keys keys;
  Json jwk1, jwk2;
  std::string rsa1 = keys.Rsa("rsa1.pem", "k1", jwk1);
  std::string rsa2 = keys.Rsa("rsa2.pem", "k2", jwk2);
  std::string jwks = keys.WriteJwks({jwk1});
  const std::string secret2 = "the second shared secret, also 32 bytes or more";
  auto config = [&](const std::vector<std::string>& tokens, const std::string& secret) {
    return Json({{"nodes", {{"shop1", {{"tokens", tokens}}}}},
                 {"jwt", {{"hs256_secret", secret}, {"jwks_file", jwks}, {"issuer", "https://issuer.test"},
                          {"audience", "deltasync"}}}})
        .dump();
  };
  HubProcess hub(Options(config({"keep", "old"}, kSecret)));
  pid_t pid = hub.pid();
  std::string path = ConfigPathOf(hub);
  auto status = [&](const std::string& token) { return Request(hub, "GET", "/nodes/shop1/status", token).status; };
  std::string hs1 = Hs256(Claims()), hs2 = Hs256(Claims(), secret2);
  std::string rs1 = Mint({{"alg", "RS256"}, {"kid", "k1"}}, Claims(), rsa1);
  std::string rs2 = Mint({{"alg", "RS256"}, {"kid", "k2"}}, Claims(), rsa2);
  EXPECT_EQ(status("old"), 200);
  EXPECT_EQ(status(hs1), 200);
  EXPECT_EQ(status(rs1), 200);
  EXPECT_EQ(status("new"), 401);
  EXPECT_EQ(status(hs2), 401);
  EXPECT_EQ(status(rs2), 401);

  // A long sync (many small batches) with a token that stays, and a keep-alive connection
  // asking for /health every 50 ms, both across the reload.
  Site big;
  big.Exec(kSchema);
  big.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
           "INSERT INTO t SELECT i, 'row ' || i FROM n");
  std::atomic<bool> sync_done{false};
  std::string sync_error = "not run";
  std::thread sync([&] {
    std::string opts = Json({{"timeout_ms", 30000}, {"token", "keep"}, {"batch_rows", 10}}).dump();
    try {
      big.Text("SELECT deltasync_sync(?1, ?2)", {Value::Text(hub.url("shop1")), Value::Text(opts)});
      sync_error = "";
    } catch (const std::exception& e) {
      sync_error = e.what();
    }
    sync_done = true;
  });
  KeepAlive conn(hub.port());
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, failed{0};
  std::thread poll([&] {
    while (!stop) {
      (conn.Health() ? answered : failed)++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  // Reload once the sync is under way.
  while (!sync_done && Json::parse(Request(hub, "GET", "/nodes/shop1/status", "keep").body)["tables"].empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool sync_running_at_reload = !sync_done;
  Replace(path, config({"keep", "new"}, secret2));
  keys.WriteJwks({jwk2});
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(hub, "SIGHUP: reloaded")) << hub.log();
  EXPECT_EQ(status("old"), 401);
  EXPECT_EQ(status("new"), 200);
  EXPECT_EQ(status(hs1), 401);
  EXPECT_EQ(status(hs2), 200);
  EXPECT_EQ(status(rs1), 401);
  EXPECT_EQ(status(rs2), 200);

  // A config that does not parse, and a JWKS key that cannot be used: warnings, nothing changes.
  Replace(path, R"({"nodes": {"shop1": {"tokens": ["new", "broken-secret-token")");
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(hub, "SIGHUP: cannot reload")) << hub.log();
  Replace(path, config({"keep", "other"}, secret2));
  keys.WriteJwks({{{"kty", "RSA"}, {"n", B64Url(std::string(64, '\x7f'))}, {"e", "AQAB"}}});
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(hub, "SIGHUP: cannot reload", 2)) << hub.log();
  EXPECT_EQ(status("new"), 200);
  EXPECT_EQ(status("other"), 401);
  EXPECT_EQ(status(hs2), 200);
  EXPECT_EQ(status(rs2), 200);
  EXPECT_EQ(hub.log().find("broken-secret-token"), std::string::npos) << hub.log();

  sync.join();
  stop = true;
  poll.join();
  EXPECT_EQ(sync_error, "");
  EXPECT_TRUE(sync_running_at_reload) << "the sync ended before the reload; make it longer";
  EXPECT_EQ(Json::parse(Request(hub, "GET", "/nodes/shop1/status", "keep").body)["tables"][0]["rows"], 3000);
  EXPECT_GT(answered.load(), 3);
  EXPECT_EQ(failed.load(), 0) << "the keep-alive connection was dropped";
  EXPECT_EQ(hub.pid(), pid);
  EXPECT_TRUE(hub.running());
}

// Quotas per node: over requests_per_second with one token, 429 with Retry-After (another
// token has its own budget); over max_rows, max_stored_bytes or max_sites, a push gets 507
// while pulls go on; an auto-created node gets default_quotas.
TEST(HubAuth, QuotasGive429And507) {
  HubProcess hub(Options(Json({{"nodes",
                                {{"rows", {{"tokens", {"t"}}, {"quotas", {{"max_rows", 10}}}}},
                                 {"bytes", {{"tokens", {"t"}}, {"quotas", {{"max_stored_bytes", 3000}}}}},
                                 {"sites", {{"tokens", {"t"}}, {"quotas", {{"max_sites", 2}}}}},
                                 {"rate", {{"tokens", {"t", "t2"}}, {"quotas", {{"requests_per_second", 2}}}}}}},
                               {"default_tokens", {"t"}},
                               {"auto_create_nodes", true},
                               {"default_quotas", {{"max_rows", 3}}}})
                             .dump()));
  auto insert = [](Site& s, int from, int to, size_t bytes = 1) {
    s.Exec("WITH RECURSIVE n(i) AS (SELECT " + std::to_string(from) + " UNION ALL SELECT i + 1 FROM n WHERE i < " +
           std::to_string(to) + ") INSERT INTO t SELECT i, printf('%0" + std::to_string(bytes) + "d', i) FROM n");
  };
  auto push = [&](Site& s, const std::string& node) { return SyncError(s, hub.url(node), "t", "deltasync_push"); };
  auto held_rows = [&](const std::string& node) {
    return Json::parse(Request(hub, "GET", "/nodes/" + node + "/status", "t").body)["tables"][0]["rows"].get<int>();
  };

  // Rows: a node takes pushes until it holds its quota (the push that reaches it goes whole).
  Site a;
  a.Exec(kSchema);
  insert(a, 1, 8);
  EXPECT_EQ(push(a, "rows"), "");
  insert(a, 9, 13);
  EXPECT_EQ(push(a, "rows"), "");
  insert(a, 14, 14);
  EXPECT_NE(push(a, "rows"), "");
  Answer refused = Request(hub, "POST", "/nodes/rows/push", "t", a.Text("SELECT deltasync_changes(12)"));
  EXPECT_EQ(refused.status, 507) << refused.body;
  EXPECT_EQ(refused.body.rfind("{\"error\":\"deltasync: quota exceeded", 0), 0u) << refused.body;
  EXPECT_EQ(held_rows("rows"), 13);
  Site reader;
  reader.Exec(kSchema);
  EXPECT_EQ(SyncError(reader, hub.url("rows"), "t", "deltasync_pull"), "");
  EXPECT_EQ(reader.Text("SELECT count(*) FROM t"), "13");
  // A push larger than the quota on its own, to a fresh node: refused at once.
  Site big;
  big.Exec(kSchema);
  insert(big, 1, 11);
  Answer alone = Request(hub, "POST", "/nodes/rows/push", "t", big.Text("SELECT deltasync_changes(0)"));
  EXPECT_EQ(alone.status, 507);
  EXPECT_NE(alone.body.find("this push alone holds 11 rows"), std::string::npos) << alone.body;

  // An auto-created node has default_quotas (max_rows 3).
  Site f;
  f.Exec(kSchema);
  insert(f, 1, 4);
  EXPECT_NE(push(f, "fresh"), "");
  f.Exec("DELETE FROM t WHERE id = 4");
  Site g;
  g.Exec(kSchema);
  insert(g, 1, 3);
  EXPECT_EQ(push(g, "fresh"), "");
  insert(g, 4, 4);
  EXPECT_NE(push(g, "fresh"), "");
  EXPECT_EQ(held_rows("fresh"), 3);

  // Stored bytes: 1000-byte values against 3000 bytes.
  Site b;
  b.Exec(kSchema);
  insert(b, 1, 2, 1000);
  EXPECT_EQ(push(b, "bytes"), "");
  insert(b, 3, 4, 1000);
  EXPECT_EQ(push(b, "bytes"), "");
  insert(b, 5, 5, 1000);
  EXPECT_NE(push(b, "bytes"), "");
  EXPECT_EQ(Request(hub, "POST", "/nodes/bytes/push", "t", b.Text("SELECT deltasync_changes(4)")).status, 507);
  EXPECT_EQ(held_rows("bytes"), 4);

  // Sites: two sites push; a third is refused; the first two still push.
  Site s1, s2, s3;
  for (Site* s : {&s1, &s2, &s3}) s->Exec(kSchema);
  insert(s1, 1, 1);
  insert(s2, 2, 2);
  insert(s3, 3, 3);
  EXPECT_EQ(push(s1, "sites"), "");
  EXPECT_EQ(push(s2, "sites"), "");
  std::string third = push(s3, "sites");
  EXPECT_NE(third, "");
  Answer sites = Request(hub, "POST", "/nodes/sites/push", "t", s3.Text("SELECT deltasync_changes(0)"));
  EXPECT_EQ(sites.status, 507);
  EXPECT_NE(sites.body.find("max_sites is 2"), std::string::npos) << sites.body;
  insert(s1, 4, 4);
  EXPECT_EQ(push(s1, "sites"), "");
  EXPECT_EQ(held_rows("sites"), 3);

  // Requests per second, per token: a burst of two, then 429 with Retry-After.
  std::vector<Answer> burst;
  for (int k = 0; k < 5; ++k) burst.push_back(Request(hub, "GET", "/nodes/rate/status", "t"));
  EXPECT_EQ(burst[0].status, 200);
  int limited = 0;
  for (const Answer& r : burst) {
    if (r.status != 429) continue;
    ++limited;
    EXPECT_GE(std::atoi(r.retry_after.c_str()), 1) << r.retry_after;
    EXPECT_EQ(r.body.rfind("{\"error\":\"deltasync: ", 0), 0u) << r.body;
  }
  EXPECT_GE(limited, 2);
  EXPECT_EQ(Request(hub, "POST", "/nodes/rate/push", "t", "{}").status, 429);  // before its body
  EXPECT_EQ(Request(hub, "GET", "/nodes/rate/status", "t2").status, 200);      // another token's own budget
  EXPECT_EQ(Request(hub, "GET", "/nodes/rows/status", "t").status, 200);       // another node's
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(Request(hub, "GET", "/nodes/rate/status", "t").status, 200);
}

// The site-id flood (issue 11, item 7) against max_sites: a push whose changes carry more
// origins than the quota is refused whole; and quotas follow the config on SIGHUP.
TEST(HubAuth, SiteIdFloodIsRefusedAndQuotasReload) {
  auto config = [](int max_rows) {
    return Json({{"nodes",
                  {{"flood", {{"tokens", {"t"}}, {"quotas", {{"max_sites", 3}}}}},
                   {"grow", {{"tokens", {"t"}}, {"quotas", {{"max_rows", max_rows}}}}}}}})
        .dump();
  };
  HubProcess hub(Options(config(2)));
  Site s;
  s.Exec(kSchema);
  s.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')");
  Json p = Json::parse(s.Text("SELECT deltasync_changes(0)"));
  for (int k = 1; k <= 3; ++k) p["sites"].push_back("00000000-0000-4000-8000-00000000000" + std::to_string(k));
  int origin = 0;
  for (Json& row : p["tables"][0]["rows"]) {
    for (Json& change : row["changes"]) change[3] = origin;
    ++origin;
  }
  Answer flood = Request(hub, "POST", "/nodes/flood/push", "t", p.dump());
  EXPECT_EQ(flood.status, 507) << flood.body;
  EXPECT_NE(flood.body.find("4 sites"), std::string::npos) << flood.body;
  EXPECT_TRUE(Json::parse(Request(hub, "GET", "/nodes/flood/status", "t").body)["tables"].empty());
  EXPECT_EQ(SyncError(s, hub.url("flood"), "t", "deltasync_push"), "");  // its own changes: one site

  Site g;
  g.Exec(kSchema);
  g.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  EXPECT_EQ(SyncError(g, hub.url("grow"), "t", "deltasync_push"), "");
  g.Exec("INSERT INTO t VALUES (3, 'c')");
  EXPECT_NE(SyncError(g, hub.url("grow"), "t", "deltasync_push"), "");
  Replace(ConfigPathOf(hub), config(100));
  ASSERT_EQ(::kill(hub.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(hub, "SIGHUP: reloaded")) << hub.log();
  EXPECT_EQ(SyncError(g, hub.url("grow"), "t", "deltasync_push"), "");
  EXPECT_EQ(Json::parse(Request(hub, "GET", "/nodes/grow/status", "t").body)["tables"][0]["rows"], 3);
}
