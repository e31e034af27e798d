// deltasync_push, deltasync_pull and deltasync_sync: this site against a hub, over HTTP.
//
// Per hub (the URL's base and node) the site keeps two cursors in deltasync_hubs: how far
// its own db_version has been pushed, and how far the hub's sequence has been pulled. A
// pull page is applied and its cursor advanced in one transaction; the versions a pull
// gave to what it applied are remembered (deltasync_hub_echo) so that push never sends a
// hub back what came from it. Any failure raises "deltasync: <url>: <cause>" and leaves
// every cursor where it was, so the next call resumes.
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "common/compress.hpp"
#include "common/hlc.hpp"
#include "common/http_client.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"
#include "sqlite_ext/sqlite_apply.hpp"
#include "sqlite_ext/sqlite_changes.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;

constexpr size_t kMaxPayloadBytes = size_t{1} << 30;  // decoded size a pull page may reach

struct SyncOptions {
  HttpOptions http;
  std::vector<std::string> tables;  // empty: every table
  size_t batch_rows = 1000;
  bool binary = true;  // binary + zstd on the wire; "codec": "json" for debugging
};

SyncOptions ParseOptions(int argc, sqlite3_value** argv) {
  SyncOptions o;
  if (argc < 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) return o;
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, "options must be a JSON object (text)");
  Json j;
  try {
    j = Json::parse(reinterpret_cast<const char*>(sqlite3_value_text(argv[1])));
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "options are not valid JSON");
  }
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "options must be a JSON object");
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const Json& v = it.value();
      if (k == "token") o.http.token = v.get<std::string>();
      else if (k == "timeout_ms") o.http.timeout_ms = v.get<long>();
      else if (k == "connect_timeout_ms") o.http.connect_timeout_ms = v.get<long>();
      else if (k == "verify_tls") o.http.verify_tls = v.get<bool>();
      else if (k == "ca_file") o.http.ca_file = v.get<std::string>();
      else if (k == "tables") o.tables = v.get<std::vector<std::string>>();
      else if (k == "batch_rows") o.batch_rows = v.get<size_t>();
      else if (k == "codec") {
        std::string c = v.get<std::string>();
        if (c != "binary" && c != "json") throw Error(ErrorCode::kInvalidArgument, "option codec must be \"binary\" or \"json\"");
        o.binary = c == "binary";
      } else {
        throw Error(ErrorCode::kInvalidArgument, "unknown option \"" + k + "\"");
      }
    }
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "options: a value has the wrong type");
  }
  if (o.batch_rows == 0) throw Error(ErrorCode::kInvalidArgument, "option batch_rows must be at least 1");
  return o;
}

std::string UrlArg(sqlite3_value* v, const char* fn) {
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    throw Error(ErrorCode::kInvalidArgument, std::string(fn) + "(url) expects the hub URL as text");
  return reinterpret_cast<const char*>(sqlite3_value_text(v));
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

int64_t NowMs() { return static_cast<int64_t>(WallClockMillis()); }

// One hub as this site knows it.
class HubLink {
 public:
  HubLink(Conn& conn, const std::string& url, SyncOptions options)
      : conn_(conn), url_(ParseHubUrl(url)), key_(url_.base + "/nodes/" + url_.node), opt_(std::move(options)) {
    conn_.EnsureSchema();
    Stmt add(conn_.db(), "INSERT OR IGNORE INTO deltasync_hubs(hub) VALUES (?1)");
    add.BindText(1, key_);
    add.Run();
  }

  // A hub answering with another id than before is a different store (replaced, or
  // restored from scratch): it may lack what was pushed to its predecessor and its sequence
  // starts over, so both cursors go back to 0. Returns true when that happened.
  bool CheckHubIdentity(const std::string& id) {
    Stmt get(conn_.db(), "SELECT hub_id FROM deltasync_hubs WHERE hub = ?1");
    get.BindText(1, key_);
    std::string known = get.Step() && !get.IsNull(0) ? std::string(get.Text(0)) : "";
    get.Reset();
    if (known == id) return false;
    Savepoint sp(conn_.db(), "deltasync_hub_id");
    Stmt set(conn_.db(), known.empty() ? "UPDATE deltasync_hubs SET hub_id = ?2 WHERE hub = ?1"
                                       : "UPDATE deltasync_hubs SET hub_id = ?2, push_cursor = 0, pull_cursor = 0 WHERE hub = ?1");
    set.BindText(1, key_);
    set.BindText(2, id);
    set.Run();
    if (!known.empty()) {
      Stmt drop(conn_.db(), "DELETE FROM deltasync_hub_echo WHERE hub = ?1");
      drop.BindText(1, key_);
      drop.Run();
    }
    sp.Release();
    return !known.empty();
  }

  Json Push() {
    Json first = PushOnce();
    if (!reset_) return first;
    reset_ = false;
    return PushOnce();  // everything again, to the hub that lacks it
  }

  Json PushOnce() {
    int64_t since = Cursor("push_cursor");
    VersionRanges echo;
    Stmt r(conn_.db(), "SELECT lo, hi FROM deltasync_hub_echo WHERE hub = ?1 AND hi > ?2");
    r.BindText(1, key_);
    r.BindInt(2, since);
    while (r.Step()) echo.emplace_back(r.Int(0), r.Int(1));
    Payload all = CollectChanges(conn_, since, echo);
    uint64_t changes = 0, rows = 0, batches = 0;
    int64_t hub_seq = 0;
    // Batches of whole rows; the cursor moves only once the hub has acknowledged them all
    // (a batch sent twice is harmless: merging is idempotent).
    Payload batch = Header(all);
    size_t in_batch = 0;
    auto flush = [&] {
      if (in_batch == 0) return;
      Json ack = Send(batch);
      hub_seq = ack.value("seq", int64_t{0});
      if (ack.contains("hub_id") && ack["hub_id"].is_string() && CheckHubIdentity(ack["hub_id"].get<std::string>()))
        reset_ = true;
      ++batches;
      batch = Header(all);
      in_batch = 0;
    };
    for (const TableChanges& t : all.tables) {
      for (const RowChanges& row : t.rows) {
        if (batch.tables.empty() || batch.tables.back().name != t.name)
          batch.tables.push_back(TableChanges{t.name, t.pk, t.columns, {}});
        batch.tables.back().rows.push_back(row);
        changes += row.changes.empty() ? 1 : row.changes.size();
        ++rows;
        if (++in_batch == opt_.batch_rows) flush();
      }
    }
    flush();
    if (reset_) return {{"pushed", changes}, {"rows", rows}, {"batches", batches}, {"hub_replaced", true}};
    Savepoint sp(conn_.db(), "deltasync_push");
    SetCursor("push_cursor", all.until);
    Stmt prune(conn_.db(), "DELETE FROM deltasync_hub_echo WHERE hub = ?1 AND hi <= ?2");
    prune.BindText(1, key_);
    prune.BindInt(2, all.until);
    prune.Run();
    sp.Release();
    return {{"pushed", changes}, {"rows", rows}, {"batches", batches}, {"cursor", all.until}, {"hub_seq", hub_seq}};
  }

  Json Pull() {
    uint64_t pulled = 0, applied = 0, ignored = 0, untracked = 0, pages = 0;
    int64_t cursor = Cursor("pull_cursor");
    std::string tables;
    for (const auto& t : opt_.tables) tables += (tables.empty() ? "" : ",") + t;
    for (;;) {
      std::string url = url_.base + "/nodes/" + url_.node + "/pull?since=" + std::to_string(cursor) +
                        "&limit=" + std::to_string(opt_.batch_rows) + "&site=" + conn_.LocalSite().ToString();
      if (!tables.empty()) url += "&tables=" + UrlEncode(tables);
      std::vector<std::pair<std::string, std::string>> headers;
      if (opt_.binary) {
        headers.emplace_back("Accept", std::string(kContentTypeBinary));
        headers.emplace_back("Accept-Encoding", std::string(kContentEncodingZstd));
      } else {
        headers.emplace_back("Accept", std::string(kContentTypeJson));
      }
      HttpResponse res = HttpRequest("GET", url, headers, {}, opt_.http);
      CheckStatus(res, url);
      Payload page;
      try {
        page = DecodeAny(res.body, res.content_type, res.content_encoding, kMaxPayloadBytes);
      } catch (const Error& e) {
        throw Error(ErrorCode::kNetwork, url + ": malformed response: " + (e.what() + 11));
      }
      if (page.since != cursor || page.until < cursor)
        throw Error(ErrorCode::kNetwork, url + ": malformed response: page does not continue from the cursor");
      if (CheckHubIdentity(page.site.ToString())) {
        reset_ = true;  // a new store: start over from its beginning
        cursor = 0;
        continue;
      }
      // The page and the cursor that records it commit together.
      Savepoint sp(conn_.db(), "deltasync_pull");
      ApplyResult r = ApplyPayload(conn_, page);
      if (r.first_ver != 0) {
        Stmt echo(conn_.db(), "INSERT INTO deltasync_hub_echo(hub, lo, hi) VALUES (?1, ?2, ?3)");
        echo.BindText(1, key_);
        echo.BindInt(2, r.first_ver);
        echo.BindInt(3, r.last_ver);
        echo.Run();
      }
      // The hub skips the rows of tables a subset pull did not ask for while its sequence
      // moves on: only a pull of every table may advance the one stored cursor.
      if (opt_.tables.empty()) SetCursor("pull_cursor", page.until);
      sp.Release();
      cursor = page.until;
      ++pages;
      for (const auto& t : page.tables) pulled += CountChanges(t);
      applied += r.applied;
      ignored += r.ignored;
      untracked += r.untracked;
      auto more = res.headers.find("deltasync-more");
      if (more == res.headers.end() || more->second != "true") break;
    }
    return {{"pulled", pulled}, {"applied", applied}, {"ignored", ignored}, {"untracked", untracked},
            {"pages", pages},   {"cursor", cursor}};
  }

  const std::string& key() const { return key_; }

 private:
  Payload Header(const Payload& all) const {
    Payload p;
    p.site = all.site;
    p.since = all.since;
    p.until = all.until;
    p.sites = all.sites;
    return p;
  }

  Json Send(const Payload& batch) {
    std::string url = url_.base + "/nodes/" + url_.node + "/push";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    if (opt_.binary) {
      body = ZstdCompress(EncodeBinary(batch));
      headers.emplace_back("Content-Type", std::string(kContentTypeBinary));
      headers.emplace_back("Content-Encoding", std::string(kContentEncodingZstd));
    } else {
      body = EncodeJson(batch);
      headers.emplace_back("Content-Type", std::string(kContentTypeJson));
    }
    HttpResponse res = HttpRequest("POST", url, headers, body, opt_.http);
    CheckStatus(res, url);
    try {
      return Json::parse(res.body);
    } catch (const Json::exception&) {
      throw Error(ErrorCode::kNetwork, url + ": malformed response: not JSON");
    }
  }

  // Anything but 200 is an error naming the URL and what the hub said.
  static void CheckStatus(const HttpResponse& res, const std::string& url) {
    if (res.status == 200) return;
    std::string said;
    try {
      said = Json::parse(res.body).value("error", "");
      if (said.rfind("deltasync: ", 0) == 0) said = said.substr(11);
    } catch (const Json::exception&) {
    }
    std::string u = url.substr(0, url.find('?'));
    throw Error(ErrorCode::kNetwork, u + ": hub answered " + std::to_string(res.status) + (said.empty() ? "" : ": " + said));
  }

  int64_t Cursor(const char* column) {
    Stmt s(conn_.db(), std::string("SELECT ") + column + " FROM deltasync_hubs WHERE hub = ?1");
    s.BindText(1, key_);
    return s.Step() ? s.Int(0) : 0;
  }

  void SetCursor(const char* column, int64_t value) {
    Stmt s(conn_.db(), std::string("UPDATE deltasync_hubs SET ") + column + " = ?2, last_sync_ms = ?3 WHERE hub = ?1");
    s.BindText(1, key_);
    s.BindInt(2, value);
    s.BindInt(3, NowMs());
    s.Run();
  }

  Conn& conn_;
  HubUrl url_;
  std::string key_;
  SyncOptions opt_;
  bool reset_ = false;  // the hub turned out to be a new store during this call

 public:
  // After a pull found a new store, what this site holds must be pushed to it again.
  bool TakeReset() {
    bool r = reset_;
    reset_ = false;
    return r;
  }
};

// Runs one network operation, remembering its error (in memory: a failing statement's own
// writes are rolled back with it) for deltasync_status.
template <typename Body>
void RunSync(sqlite3_context* ctx, int argc, sqlite3_value** argv, const char* fn, Body&& body) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    std::string url = UrlArg(argv[0], fn);
    SyncOptions options = ParseOptions(argc, argv);
    HubLink link(conn, url, std::move(options));
    try {
      Json result = body(link);
      conn.RecordHubError(link.key(), "");
      ResultText(ctx, result.dump());
    } catch (const Error& e) {
      conn.RecordHubError(link.key(), e.what());
      throw;
    }
  });
}

}  // namespace

void FnPush(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_push", [](HubLink& l) { return l.Push(); });
}

void FnPull(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_pull", [](HubLink& l) { return l.Pull(); });
}

void FnSync(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RunSync(ctx, argc, argv, "deltasync_sync", [](HubLink& l) {
    Json push = l.Push();
    Json pull = l.Pull();
    if (l.TakeReset()) push = l.Push();
    return Json{{"push", push}, {"pull", pull}};
  });
}

}  // namespace deltasync
