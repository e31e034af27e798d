// A hub's answers as the client reads them (HubLink in common/sync_client.cpp): status,
// error bodies, push acknowledgements, pull pages in either codec and encoding, the
// deltasync-more header, a hub that changes identity. The HTTP transport is fake_http.cpp.
//
// Input: a first line "push", "pull" or "sync" (then " json" for the JSON codec); then
// answers, each a line "<status> <content-type> <content-encoding> <more> <length>" ("-"
// for an absent header, more 0 or 1) followed by <length> bytes of body. A call throws
// deltasync::Error only, whatever the hub answers.
#include <map>
#include <string>

#include "common/sync_client.hpp"
#include "fake_http.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

namespace {

SiteId Site(uint8_t b) {
  SiteId s;
  s.bytes.fill(b);
  return s;
}

// A site with three rows to push and records kept in memory.
class FakeSite : public SyncSite {
 public:
  SiteId LocalSite() override { return Site(1); }
  HubRecord LoadHub(const std::string& key) override { return hubs_[key]; }
  void SetHubId(const std::string& key, const std::string& id, bool reset) override {
    HubRecord& h = hubs_[key];
    h.hub_id = id;
    if (reset) h.push_cursor = h.pull_cursor = 0;
  }
  VersionRanges EchoRanges(const std::string&, int64_t) override { return {}; }
  int64_t CollectBatches(int64_t since, int64_t, const CollectPosition&, const VersionRanges&, const BatchLimits&,
                         const std::function<bool(Payload&, const CollectPosition&)>& batch) override {
    Payload p;
    p.site = LocalSite();
    p.since = since;
    p.until = since + 3;
    p.sites = {LocalSite()};
    TableChanges t{"items", {"id"}, {"name"}, {}};
    for (int k = 0; k < 3; ++k)
      t.rows.push_back(RowChanges{{Value::Integer(k)}, 1, {ColumnChange{0, Value::Text("x"), uint64_t{1} << 40, 0, 1}}});
    p.tables.push_back(std::move(t));
    batch(p, CollectPosition{"items", {Value::Integer(2)}});
    return p.until;
  }
  void PushProgressed(const std::string&, int64_t, const CollectPosition&) override {}
  void PushDone(const std::string& key, int64_t until) override { hubs_[key].push_cursor = until; }
  ApplyResult ApplyPage(const std::string& key, const Payload& page, bool move_cursor) override {
    ValidatePayload(page);  // the client hands on only decoded, validated pages
    if (move_cursor) hubs_[key].pull_cursor = page.until;
    ApplyResult r;
    for (const auto& t : page.tables) r.rows += t.rows.size();
    return r;
  }
  void RecordOutcome(const std::string&, const std::string&, int64_t) override {}
  bool ForgetHub(const std::string&) override { return false; }

 private:
  std::map<std::string, HubRecord> hubs_;
};

std::string_view Line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}

// Splits a line at spaces into at most n words.
std::vector<std::string> Words(std::string_view line) {
  std::vector<std::string> out;
  while (!line.empty()) {
    size_t sp = line.find(' ');
    out.emplace_back(line.substr(0, sp));
    line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
  }
  return out;
}

// Reads the answers after the first line; false when the framing itself is malformed.
bool QueueAnswers(std::string_view in) {
  auto& answers = fuzz::QueuedAnswers();
  answers.clear();
  while (!in.empty()) {
    std::vector<std::string> w = Words(Line(in));
    if (w.size() != 5 || w[0].empty() || w[0].size() > 3 || w[4].empty() || w[4].size() > 7) return false;
    if (w[0].find_first_not_of("0123456789") != std::string::npos ||
        w[4].find_first_not_of("0123456789") != std::string::npos)
      return false;
    size_t length = std::stoul(w[4]);
    if (length > in.size()) return false;
    HttpResponse res;
    res.status = std::stol(w[0]);
    if (w[1] != "-") res.headers["content-type"] = res.content_type = w[1];
    if (w[2] != "-") res.headers["content-encoding"] = res.content_encoding = w[2];
    if (w[3] == "1") res.headers["deltasync-more"] = "true";
    res.body = std::string(in.substr(0, length));
    in.remove_prefix(length);
    answers.push_back(std::move(res));
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::AsText(data, size);
  std::vector<std::string> first = Words(Line(in));
  if (first.empty() || first.size() > 2 || !QueueAnswers(in)) return 0;
  SyncOptions options;
  options.batch_rows = 2;  // two push requests for the three rows
  if (first.size() == 2) {
    if (first[1] != "json") return 0;
    options.binary = false;
  }
  FakeSite site;
  try {
    HubLink link(site, "http://hub.test/nodes/n1", options);
    if (first[0] == "push") {
      link.Push();
    } else if (first[0] == "pull") {
      nlohmann::json r = link.Pull();
      FUZZ_CHECK(r["cursor"].get<int64_t>() == site.LoadHub(link.key()).pull_cursor);
    } else if (first[0] == "sync") {
      link.Sync();
    }
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
  }
  fuzz::QueuedAnswers().clear();
  return 0;
}
