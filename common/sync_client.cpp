#include "common/sync_client.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <type_traits>

#include "common/compress.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"

namespace deltasync {

namespace {

using Json = nlohmann::json;


std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Anything but 200 is an error naming the URL and what the hub said.
void CheckStatus(const HttpResponse& res, const std::string& url) {
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

// A whole-number option as T. nlohmann's get<T> casts a real to T (undefined behaviour out
// of T's range, as in {"timeout_ms": 1e300}) and wraps a negative number into an unsigned
// T, so only JSON integers within T's range are taken.
template <typename T>
T IntegerOption(const Json& v, const std::string& name) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (std::is_signed_v<T> || i >= 0) return static_cast<T>(i);
  } else {
    throw Error(ErrorCode::kInvalidArgument, "option " + name + " must be a whole number");
  }
  throw Error(ErrorCode::kInvalidArgument, "option " + name + " is out of range");
}


// A header holding a count: digits only, at most 18 of them (fits int64_t); -1 when absent
// or anything else (it then says nothing).
int64_t CountHeader(const HttpResponse& res, const std::string& name) {
  auto h = res.headers.find(name);
  if (h == res.headers.end()) return -1;
  const std::string& f = h->second;
  if (f.empty() || f.size() > 18 || f.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(f);
}

}  // namespace

SyncOptions ParseSyncOptions(std::string_view text) {
  SyncOptions o;
  if (text.empty()) return o;
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "options are not valid JSON");
  }
  if (j.is_null()) return o;
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "options must be a JSON object");
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const Json& v = it.value();
      if (k == "token") o.http.token = v.get<std::string>();
      else if (k == "timeout_ms") o.http.timeout_ms = IntegerOption<long>(v, k);
      else if (k == "connect_timeout_ms") o.http.connect_timeout_ms = IntegerOption<long>(v, k);
      else if (k == "verify_tls") o.http.verify_tls = v.get<bool>();
      else if (k == "ca_file") o.http.ca_file = v.get<std::string>();
      else if (k == "tables") o.tables = v.get<std::vector<std::string>>();
      else if (k == "batch_rows") o.batch_rows = IntegerOption<size_t>(v, k);
      else if (k == "max_page_bytes") o.max_page_bytes = IntegerOption<size_t>(v, k);
      else if (k == "wait_ms") o.wait_ms = IntegerOption<long>(v, k);
      else if (k == "resync") o.resync = v.get<bool>();
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
  if (o.wait_ms < 0) throw Error(ErrorCode::kInvalidArgument, "option wait_ms must not be negative");
  if (o.max_page_bytes < 4096) throw Error(ErrorCode::kInvalidArgument, "option max_page_bytes must be at least 4096");
  o.http.max_response_bytes = o.max_page_bytes;
  return o;
}

PushAnswer ReadPushAnswer(const HttpResponse& res, const std::string& url) {
  CheckStatus(res, url);
  Json ack;
  try {
    ack = Json::parse(res.body);
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kNetwork, url + ": malformed response: not JSON");
  }
  if (!ack.is_object()) throw Error(ErrorCode::kNetwork, url + ": malformed response: not a JSON object");
  PushAnswer out;
  auto seq = ack.find("seq");
  if (seq != ack.end() && seq->is_number_integer()) out.seq = seq->get<int64_t>();
  auto id = ack.find("hub_id");
  if (id != ack.end() && id->is_string()) out.hub_id = id->get<std::string>();
  auto site_until = ack.find("site_until");
  if (site_until != ack.end() && site_until->is_number_integer()) out.site_until = site_until->get<int64_t>();
  return out;
}

// What a pull asks for: the binary codec with zstd, or JSON.
static std::vector<std::pair<std::string, std::string>> PullHeaders(bool binary) {
  if (!binary) return {{"Accept", std::string(kContentTypeJson)}};
  return {{"Accept", std::string(kContentTypeBinary)}, {"Accept-Encoding", std::string(kContentEncodingZstd)}};
}

PullAnswer ReadPullAnswer(const HttpResponse& res, const std::string& url, int64_t cursor, size_t max_page_bytes) {
  CheckStatus(res, url);
  PullAnswer out;
  try {
    out.page = DecodeAny(res.body, res.content_type, res.content_encoding, max_page_bytes);
  } catch (const Error& e) {
    throw Error(ErrorCode::kNetwork, url + ": malformed response: " + e.message(), e.detail(), e.hint());
  }
  if (out.page.since != cursor || out.page.until < cursor)
    throw Error(ErrorCode::kNetwork, url + ": malformed response: page does not continue from the cursor");
  auto more = res.headers.find("deltasync-more");
  out.more = more != res.headers.end() && more->second == "true";
  auto seq = res.headers.find("deltasync-seq");
  if (seq != res.headers.end()) {
    try {
      out.node_seq = std::max<int64_t>(0, std::stoll(seq->second));
    } catch (const std::exception&) {  // progress only: a bad header means "not said"
    }
  }
  out.frontier = CountHeader(res, "deltasync-frontier");
  out.site_until = CountHeader(res, "deltasync-site-until");
  return out;
}

std::string HubKey(const std::string& url) {
  HubUrl u = ParseHubUrl(url);
  return u.base + "/nodes/" + u.node;
}

Json ForgetHub(SyncSite& site, const std::string& url) {
  std::string key = HubKey(url);
  bool forgotten = site.ForgetHub(key);
  return Json{{"hub", key}, {"forgotten", forgotten}};
}

HubLink::HubLink(SyncSite& site, const std::string& url, SyncOptions options)
    : site_(site), url_(ParseHubUrl(url)), key_(url_.base + "/nodes/" + url_.node), opt_(std::move(options)) {
  site_.LoadHub(key_);
}

// Hands the meter's report to the engine; a report that fails does not fail the call.
void HubLink::Report(ProgressMeter& meter) {
  try {
    site_.ReportProgress(meter.progress());
  } catch (const std::exception&) {
  }
}

void HubLink::AdvancePull(ProgressMeter& meter, int64_t done, int64_t expected) {
  if (expected > 0) meter.Expect(static_cast<uint64_t>(expected));
  if (meter.Advance(static_cast<uint64_t>(std::max<int64_t>(0, done)), static_cast<int64_t>(WallClockMillis())))
    Report(meter);
}

// The last report of a call that reported (done, or failed).
void HubLink::Finish(ProgressMeter& meter, bool ok) {
  if (meter.Finish(ok, static_cast<int64_t>(WallClockMillis()))) Report(meter);
}

// A hub answering with another id than before is a different store (replaced, or restored
// from scratch): it may lack what was pushed to its predecessor and its sequence starts
// over, so both cursors go back to 0. Returns true when that happened.
bool HubLink::CheckHubIdentity(const std::string& id) {
  std::string known = site_.LoadHub(key_).hub_id;
  if (known == id) return false;
  site_.SetHubId(key_, id, !known.empty());
  return !known.empty();
}

// Runs one call and records how it ended; recording never hides the call's own error.
template <typename Body>
Json HubLink::Recorded(Body&& body) {
  Json result;
  try {
    result = body();
  } catch (const Error& e) {
    try {
      site_.RecordOutcome(key_, e.what(), static_cast<int64_t>(WallClockMillis()));
    } catch (...) {
    }
    throw;
  }
  // A call that had nothing to ask the hub (an empty push) says nothing about its health.
  if (answered_) site_.RecordOutcome(key_, "", static_cast<int64_t>(WallClockMillis()));
  return result;
}

Json HubLink::Push() {
  return Recorded([&] { return PushAll(); });
}

Json HubLink::Pull() {
  return Recorded([&] { return opt_.resync ? Resync() : PullAll(); });
}

Json HubLink::Sync() {
  return Recorded([&] {
    if (opt_.resync) {  // the hub refuses a retired site's push until the resync is done
      Json pull = Resync();
      return Json{{"pull", pull}, {"push", PushAll()}};
    }
    Json push = PushAll();
    Json pull = PullAll();
    if (reset_) {  // after a pull found a new store, what this site holds goes to it again
      reset_ = false;
      push = PushAll();
    }
    return Json{{"push", push}, {"pull", pull}};
  });
}

Json HubLink::PushAll() {
  Json first = PushOnce();
  if (!reset_) return first;
  reset_ = false;
  return PushOnce();  // everything again, to the hub that lacks it
}

Json HubLink::PushOnce() {
  HubRecord h = site_.LoadHub(key_);
  const int64_t since = h.push_cursor;
  // A pass interrupted after some acknowledged batches goes on after the last of them.
  const bool resumed = h.progress.until > since && !h.progress.at.table.empty();
  const int64_t pass_until = resumed ? h.progress.until : 0;
  const CollectPosition from = resumed ? h.progress.at : CollectPosition{};
  uint64_t changes = 0, rows = 0, batches = 0;
  int64_t hub_seq = 0;
  BatchLimits limits;
  limits.max_rows = opt_.batch_rows;
  limits.max_bytes = kPushBatchBytes;
  ProgressMeter meter(key_, "push", static_cast<int64_t>(WallClockMillis()));
  bool counted = false;
  // One batch at a time, in catalog then key order; each acknowledged batch is recorded, and
  // the cursor moves once the pass is done (a batch sent twice is harmless: merging is
  // idempotent).
  int64_t until = 0;
  try {
    until = site_.CollectBatches(
        since, pass_until, from, site_.EchoRanges(key_, since), limits,
        [&](Payload& batch, const CollectPosition& after) {
          PushAnswer ack = Send(batch);
          hub_seq = ack.seq;
          ++batches;
          for (const TableChanges& t : batch.tables) {
            rows += t.rows.size();
            changes += CountChanges(t);
          }
          if (!ack.hub_id.empty() && CheckHubIdentity(ack.hub_id)) {
            reset_ = true;  // a new store: its cursors start over, and so does this pass
            return false;
          }
          CheckNotRestored(ack.site_until);
          site_.PushProgressed(key_, batch.until, after);
          if (meter.Advance(rows, static_cast<int64_t>(WallClockMillis()))) {
            if (!counted) {  // the push is a long one: worth counting what it has to send
              counted = true;
              try {
                meter.Expect(site_.CountRowsToPush(since, batch.until));
              } catch (const std::exception&) {  // progress only: the push goes on without it
              }
            }
            Report(meter);
          }
          return true;
        });
  } catch (...) {
    Finish(meter, false);
    throw;
  }
  Finish(meter, true);
  const int64_t ms = static_cast<int64_t>(WallClockMillis()) - meter.progress().since_ms;
  if (reset_) return {{"pushed", changes}, {"rows", rows}, {"batches", batches}, {"hub_replaced", true}, {"ms", ms}};
  site_.PushDone(key_, until);
  return {{"pushed", changes}, {"rows", rows},       {"batches", batches}, {"cursor", until},
          {"hub_seq", hub_seq}, {"resumed", resumed}, {"ms", ms}};
}

// The node's whole state from sequence 0, every row (also those this site pushed: the hub
// is asked not to leave them out), then what the hub no longer holds removed here, then an
// ordinary pull whose first request tells the hub the site is back.
Json HubLink::Resync() {
  if (!opt_.tables.empty())
    throw Error(ErrorCode::kInvalidArgument, "resync pulls every table; leave out \"tables\"");
  site_.BeginResync();
  uint64_t pages = 0;
  int64_t cursor = 0;
  std::string local = site_.LocalSite().ToString();
  ProgressMeter meter(key_, "pull", static_cast<int64_t>(WallClockMillis()));
  try {
    for (;;) {
      std::string url = url_.base + "/nodes/" + url_.node + "/pull?since=" + std::to_string(cursor) +
                        "&limit=" + std::to_string(opt_.batch_rows) + "&site=" + local + "&resync=1";
      PullAnswer answer =
          ReadPullAnswer(HttpRequest("GET", url, PullHeaders(opt_.binary), {}, opt_.http), url, cursor, opt_.max_page_bytes);
      answered_ = true;
      CheckHubIdentity(answer.page.site.ToString());
      site_.NoteSeen(answer.page);
      site_.ApplyPage(key_, answer.page, true);
      cursor = answer.page.until;
      ++pages;
      AdvancePull(meter, cursor, answer.node_seq);
      if (!answer.more) break;
    }
  } catch (...) {
    Finish(meter, false);
    throw;
  }
  Finish(meter, true);
  uint64_t removed = site_.RemoveUnseen(key_);
  resync_done_ = true;
  Json pull = PullAll();
  pull["resync"] = {{"pages", pages}, {"removed", removed}};
  return pull;
}

Json HubLink::PullAll() {
  uint64_t pulled = 0, rows = 0, applied = 0, ignored = 0, untracked = 0, kept = 0, quarantined = 0, held = 0, pages = 0;
  HubRecord hub = site_.LoadHub(key_);
  int64_t cursor = hub.pull_cursor;
  // What had reached the hub before this pull asked anything (common/compaction marks).
  int64_t pushed_before = hub.push_cursor;
  std::string tables;
  for (const auto& t : opt_.tables) tables += (tables.empty() ? "" : ",") + t;
  std::string local = site_.LocalSite().ToString();
  // Progress in positions of the node's sequence: from the cursor to the node's sequence.
  int64_t start = cursor;
  ProgressMeter meter(key_, "pull", static_cast<int64_t>(WallClockMillis()));
  try {
    for (;;) {
      std::string url = url_.base + "/nodes/" + url_.node + "/pull?since=" + std::to_string(cursor) +
                        "&limit=" + std::to_string(opt_.batch_rows) + "&site=" + local;
      if (!tables.empty()) url += "&tables=" + UrlEncode(tables);
      if (resync_done_) {
        url += "&resync=done";
        resync_done_ = false;
      }
      // Long-poll (wait_ms): only the first page waits for news; the request may take that
      // much longer than timeout_ms.
      HttpOptions http = opt_.http;
      if (opt_.wait_ms > 0 && pages == 0) {
        url += "&wait_ms=" + std::to_string(opt_.wait_ms);
        if (http.timeout_ms > 0) http.timeout_ms += opt_.wait_ms;
      }
      PullAnswer answer =
          ReadPullAnswer(HttpRequest("GET", url, PullHeaders(opt_.binary), {}, http), url, cursor, opt_.max_page_bytes);
      answered_ = true;
      const Payload& page = answer.page;
      if (CheckHubIdentity(page.site.ToString())) {
        reset_ = true;  // a new store: start over from its beginning
        cursor = 0;
        start = 0;
        pushed_before = 0;
        continue;
      }
      CheckNotRestored(answer.site_until);  // before the page is applied
      // A long-poll's wait is no work: a pull that waited is timed from its first page.
      if (pages == 0 && opt_.wait_ms > 0)
        meter = ProgressMeter(key_, "pull", static_cast<int64_t>(WallClockMillis()));
      // The hub skips the rows of tables a subset pull did not ask for while its sequence
      // moves on: only a pull of every table may advance the one stored cursor.
      ApplyResult r = opt_.tables.empty()
                          ? site_.ApplyPulledPage(key_, page, PulledPage{answer.frontier, !answer.more, pushed_before})
                          : site_.ApplyPage(key_, page, false);
      cursor = page.until;
      ++pages;
      for (const auto& t : page.tables) {
        pulled += CountChanges(t);
        rows += t.rows.size();
      }
      applied += r.applied;
      ignored += r.ignored;
      untracked += r.untracked;
      kept += r.kept;
      quarantined += r.quarantined;  // every page, even an empty one, retries the held rows
      held = r.held;
      AdvancePull(meter, cursor - start, answer.node_seq - start);
      if (!answer.more) break;
    }
  } catch (...) {
    Finish(meter, false);
    throw;
  }
  Finish(meter, true);
  // The time the pull worked: from its start, or from its first page after a long-poll's wait.
  const int64_t ms = static_cast<int64_t>(WallClockMillis()) - meter.progress().since_ms;
  Json out = {{"pulled", pulled}, {"rows", rows},   {"applied", applied}, {"ignored", ignored},
              {"untracked", untracked}, {"kept", kept}, {"quarantined", quarantined}, {"held", held},
              {"pages", pages},   {"cursor", cursor}, {"ms", ms}};
  if (opt_.tables.empty()) {
    Json compacted = site_.CompactIfDue();
    if (!compacted.is_null()) out["compacted"] = std::move(compacted);
  }
  return out;
}

// The hub holds changes of this site with versions above any it ever gave: the database was
// restored from an earlier backup or copied, and what it wrote after that backup is on the
// hub only (a pull never sends a site what it pushed itself). Refused until it re-synchronises.
void HubLink::CheckNotRestored(int64_t site_until) {
  if (site_until <= 0) return;
  const int64_t ceiling = site_.VersionCeiling();
  if (site_until <= ceiling) return;
  throw Error(ErrorCode::kInvalidArgument,
              url_.base + "/nodes/" + url_.node + ": the hub holds changes of this site up to version " +
                  std::to_string(site_until) + ", beyond its db_version " + std::to_string(ceiling) +
                  ": this database was restored from an earlier backup or copied, and its writes after that backup "
                  "are on the hub only",
              "", "re-synchronise it: deltasync_sync(url, '{\"resync\": true}') (docs/operations.md, "
                  "\"A site restored from a backup\")");
}

PushAnswer HubLink::Send(const Payload& batch) {
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
  PushAnswer ack = ReadPushAnswer(HttpRequest("POST", url, headers, body, opt_.http), url);
  answered_ = true;
  return ack;
}

}  // namespace deltasync
