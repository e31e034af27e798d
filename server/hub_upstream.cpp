#include "server/hub_upstream.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/schedule.hpp"
#include "common/sync_client.hpp"
#include "server/hub_server.hpp"

namespace deltasync::hub {

using Json = nlohmann::json;

namespace {

// How long the link's long-poll waits on the upstream unless its options say (the upstream
// caps it at its own max_wait_ms).
constexpr long kDefaultLinkWaitMs = 20000;
// How often the push side looks for news without being told: pushes that other hub
// processes on a shared store took do not notify this one.
constexpr auto kPushRecheck = std::chrono::milliseconds(1000);

int64_t NowMs() { return static_cast<int64_t>(WallClockMillis()); }

// How one direction of a link is doing (under Link::mu).
struct Health {
  int64_t last_success_ms = 0, last_error_ms = 0, failing_since_ms = 0;
  std::string last_error;
  uint64_t errors = 0, changes = 0;
};

}  // namespace

UpstreamConfig UpstreamConfig::Parse(const Json& j) {
  if (!j.is_object())
    throw Error(ErrorCode::kInvalidArgument, "config: upstream must be an object with a url");
  UpstreamConfig c;
  c.sync_options = Json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "url") {
      if (!it.value().is_string())
        throw Error(ErrorCode::kInvalidArgument, "config: upstream url must be a string");
      c.url = it.value().get<std::string>();
    } else if (it.key() == "max_backoff_ms") {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 250)
        throw Error(ErrorCode::kInvalidArgument,
                    "config: upstream max_backoff_ms must be an integer of at least 250");
      c.max_backoff_ms = it.value().get<int64_t>();
    } else if (it.key() == "tables" || it.key() == "resync") {
      throw Error(ErrorCode::kInvalidArgument,
                  "config: upstream option \"" + it.key() + "\" is not available: a link syncs every table");
    } else {
      c.sync_options[it.key()] = it.value();
    }
  }
  if (c.url.empty()) throw Error(ErrorCode::kInvalidArgument, "config: upstream needs a url");
  try {
    ParseHubUrl(c.url);
    ParseSyncOptions(c.sync_options.dump());
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("config: upstream: ") + e.what());
  }
  return c;
}

// One node's link: its settings, its two workers (push up, pull down) while this process
// holds its lease, and how it is doing.
struct UpstreamLinks::Link {
  HubStore& store;
  NodeNews& news;
  uint64_t max_clock_drift_ms;
  size_t max_row_bytes;
  std::string node_name, url, key;
  int64_t node = 0;
  SyncOptions options;
  int64_t max_backoff_ms = 30000;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;            // under mu: the process stops
  std::atomic<bool> halted{false};  // the workers stop (stopping, or the lease was lost)
  uint64_t epoch = 0;               // under mu: grows when the upstream turns out to be a new store
  std::string state = "starting";   // under mu
  SiteId site;                      // under mu once the lease is held
  Health up, down;                  // under mu
  std::thread supervisor;

  Link(HubStore& s, NodeNews& n, uint64_t drift, size_t row_bytes)
      : store(s), news(n), max_clock_drift_ms(drift), max_row_bytes(row_bytes) {}

  bool Halted() const { return halted.load(); }

  // Waits up to ms, or until the workers must stop; false when they must.
  bool Sleep(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return halted.load(); });
    return !halted.load();
  }

  // Records how a call of one direction ended (HubLink's outcome, or a store failure), and
  // logs the turns: the first failure, and the recovery.
  void Record(bool upward, const std::string& error, int64_t at_ms) {
    std::lock_guard<std::mutex> lock(mu);
    Health& h = upward ? up : down;
    const char* dir = upward ? "push" : "pull";
    if (error.empty()) {
      if (h.failing_since_ms != 0)
        Log(LogLevel::kInfo, "upstream " + node_name + ": " + dir + " to " + url + " works again after " +
                                 std::to_string((at_ms - h.failing_since_ms) / 1000) + " s");
      h.last_success_ms = at_ms;
      h.failing_since_ms = 0;
      return;
    }
    if (halted.load()) return;  // a request cancelled by the stop is no failure of the upstream
    if (h.failing_since_ms == 0) {
      h.failing_since_ms = at_ms;
      Log(LogLevel::kWarn, "upstream " + node_name + ": " + dir + " failed, retrying with backoff: " + error);
    } else {
      Log(LogLevel::kDebug, "upstream " + node_name + ": " + dir + " failed again: " + error);
    }
    h.last_error = error;
    h.last_error_ms = at_ms;
    h.errors++;
  }

  void RunUp();
  void RunDown();
  void Supervise();
};

// The store's node as a site of the upstream (common/sync_client's SyncSite): HubLink does
// the HTTP, the paging and the cursor rules; this side reads pages of the node (leaving out
// what the link itself brought down) and merges pages from the upstream into it.
class UpstreamLinks::LinkSite : public SyncSite {
 public:
  LinkSite(Link& link, bool upward) : link_(link), upward_(upward) {}

  SiteId LocalSite() override {
    std::lock_guard<std::mutex> lock(link_.mu);
    return link_.site;
  }
  HubRecord LoadHub(const std::string& /*key*/) override {
    LinkRecord r = link_.store.LoadLink(link_.node, link_.key);
    HubRecord h;
    h.hub_id = r.hub_id;
    h.push_cursor = r.push_cursor;
    h.pull_cursor = r.pull_cursor;
    return h;
  }
  // A new upstream store (replaced, or restored from scratch) lacks what was pushed to its
  // predecessor and numbers its rows anew: both cursors start over.
  void SetHubId(const std::string& /*key*/, const std::string& id, bool reset) override {
    std::lock_guard<std::mutex> lock(link_.mu);
    LinkUpdate u;
    u.hub_id = id;
    if (reset) {
      u.push_cursor = 0;
      u.pull_cursor = 0;
      ++link_.epoch;
      Log(LogLevel::kWarn, "upstream " + link_.node_name + ": " + link_.url + " is a new store (hub id " +
                               id + "): pushing and pulling everything again");
    }
    link_.store.SaveLink(link_.node, link_.key, u);
  }
  // The node's pull filter leaves out what the link pushed into it: nothing to exclude here.
  VersionRanges EchoRanges(const std::string& /*key*/, int64_t /*above*/) override { return {}; }

  // Pages of the node after `since`, without the cells the link brought down (the pull filter
  // by pusher), each a batch; the pass ends at the node's sequence.
  int64_t CollectBatches(int64_t since, int64_t /*until*/, const CollectPosition& /*from*/,
                         const VersionRanges& /*exclude*/, const BatchLimits& limits,
                         const std::function<bool(Payload&, const CollectPosition&)>& batch) override {
    SiteId site;
    {
      std::lock_guard<std::mutex> lock(link_.mu);
      pass_epoch_ = link_.epoch;
      pass_since_ = since;
      pass_saved_ = -1;
      site = link_.site;
    }
    Contact(site, since);
    int64_t cursor = since;
    for (;;) {
      if (link_.Halted()) return cursor;  // what was acknowledged so far counts
      PullResult r = link_.store.Pull(link_.node, cursor, limits.max_rows, {}, site, limits.max_bytes);
      Payload& p = r.payload;
      p.site = site;
      size_t rows = 0;
      for (const TableChanges& t : p.tables) rows += t.rows.size();
      if (rows > 0 && !batch(p, CollectPosition{})) return cursor;  // the upstream is a new store
      cursor = p.until;
      if (!r.more) break;
    }
    return cursor;
  }
  // Pages go in sequence order: once acknowledged, everything up to a page's end is upstream.
  void PushProgressed(const std::string& /*key*/, int64_t until, const CollectPosition& /*at*/) override {
    SavePushCursor(until);
  }
  void PushDone(const std::string& /*key*/, int64_t until) override { SavePushCursor(until); }

  // Merges an upstream page into the node as a push by the link (so the node's pull filter
  // never sends it back up), wakes the node's long-polls, and moves the pull cursor after.
  // Not one transaction: a crash between the two merges the page again, which changes nothing.
  ApplyResult ApplyPage(const std::string& /*key*/, const Payload& page, bool move_cursor) override {
    ApplyResult out;
    size_t rows = 0;
    for (const TableChanges& t : page.tables) rows += t.rows.size();
    if (rows > 0) {
      // The node's row maximum holds for what the upstream sends as for a push: a larger row
      // (or one its merge would make larger) fails the page, which changes nothing.
      if (size_t big = LargestRowBytes(page); big > link_.max_row_bytes)
        throw RowTooLarge("deltasync: the upstream sent a row of " + std::to_string(big) +
                          " bytes, larger than max_row_bytes (" + std::to_string(link_.max_row_bytes) + ")");
      Payload p = page;
      p.site = LocalSite();
      PushResult r = link_.store.Push(link_.node, p, link_.max_clock_drift_ms, link_.max_row_bytes);
      out.applied = r.applied;
      out.ignored = r.ignored;
      out.rows = r.rows;
      if (r.applied > 0 || r.rows > 0) link_.news.Notify(link_.node);
    }
    if (move_cursor && page.until != page.since) {
      LinkUpdate u;
      u.pull_cursor = page.until;
      link_.store.SaveLink(link_.node, link_.key, u);
    }
    return out;
  }
  void RecordOutcome(const std::string& /*key*/, const std::string& error, int64_t at_ms) override {
    link_.Record(upward_, error, at_ms);
  }
  bool ForgetHub(const std::string& /*key*/) override { return false; }

 private:
  // The link's place in the node's frontier is its push cursor (tombstones it has not pushed
  // up are kept); told when it moves, and at least every 10 s (its last contact).
  void Contact(const SiteId& site, int64_t since) {
    int64_t now = NowMs();
    if (since == contact_since_ && now - contact_ms_ < 10000) return;
    if (link_.store.Contact(link_.node, site, since, now)) {
      // Not seen for longer than the node's retention (the process was down that long):
      // deletes compacted meanwhile may never reach the upstream.
      Log(LogLevel::kWarn,
          "upstream " + link_.node_name +
              ": the link was retired from this node (not seen within its retention); readmitted, "
              "deletes compacted meanwhile may be missing upstream");
      link_.store.Readmit(link_.node, site);
    }
    contact_since_ = since;
    contact_ms_ = now;
  }
  void SavePushCursor(int64_t until) {
    std::lock_guard<std::mutex> lock(link_.mu);
    if (link_.epoch != pass_epoch_) return;  // the cursors started over during this pass
    if (until == pass_since_ || until == pass_saved_)
      return;  // nothing moved: no write (an idle link writes nothing)
    LinkUpdate u;
    u.push_cursor = until;
    link_.store.SaveLink(link_.node, link_.key, u);
    pass_saved_ = until;
  }

  Link& link_;
  bool upward_;
  uint64_t pass_epoch_ = 0;
  int64_t pass_since_ = -1, pass_saved_ = -1;
  int64_t contact_since_ = -1, contact_ms_ = 0;
};

// Pushes up, then waits for the node's news (or kPushRecheck), again and again; backs off
// while the upstream (or the store) fails.
void UpstreamLinks::Link::RunUp() {
  LinkSite site(*this, true);
  SyncOptions opt = options;
  opt.wait_ms = 0;
  Backoff backoff(max_backoff_ms);
  while (!Halted()) {
    uint64_t seen = news.Generation(node);
    try {
      HubLink hub(site, url, opt);
      Json r = hub.Push();
      backoff.Reset();
      if (r.value("pushed", uint64_t{0}) > 0) {
        std::lock_guard<std::mutex> lock(mu);
        up.changes += r["pushed"].get<uint64_t>();
      }
    } catch (const std::exception& e) {
      if (!dynamic_cast<const Error*>(&e)) Record(true, e.what(), NowMs());  // HubLink records its own
      if (!Sleep(backoff.Next())) break;
      continue;
    }
    auto until = std::chrono::steady_clock::now() + kPushRecheck;
    while (!Halted() && std::chrono::steady_clock::now() < until &&
           !news.Wait(node, seen, until, std::chrono::milliseconds(200))) {
    }
  }
}

// Long-polls the upstream and merges what comes, again and again; backs off while it fails.
void UpstreamLinks::Link::RunDown() {
  LinkSite site(*this, false);
  SyncOptions opt = options;
  if (opt.wait_ms <= 0) opt.wait_ms = kDefaultLinkWaitMs;
  Backoff backoff(max_backoff_ms);
  // The first pull after a start or a failure answers at once, so the status soon says
  // whether the upstream is reachable; the next ones long-poll.
  bool probe = true;
  while (!Halted()) {
    try {
      SyncOptions this_pull = opt;
      if (probe) this_pull.wait_ms = 0;
      HubLink hub(site, url, this_pull);
      Json r = hub.Pull();
      backoff.Reset();
      probe = false;
      if (r.value("pulled", uint64_t{0}) > 0) {
        std::lock_guard<std::mutex> lock(mu);
        down.changes += r["pulled"].get<uint64_t>();
      }
    } catch (const std::exception& e) {
      if (!dynamic_cast<const Error*>(&e)) Record(false, e.what(), NowMs());
      probe = true;
      if (!Sleep(backoff.Next())) break;
    }
  }
}

// Takes the node's lease (retrying while another process holds it), runs both workers while
// it is held, and stops them when it is lost or the process stops.
void UpstreamLinks::Link::Supervise() {
  auto set_state = [&](const char* s) {
    std::lock_guard<std::mutex> lock(mu);
    state = s;
  };
  auto wait = [&](int64_t ms) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping; });
    return !stopping;
  };
  bool said_standby = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) break;
    }
    std::unique_ptr<LinkLease> lease;
    try {
      lease = store.LeaseLink(node);
      if (lease) {
        LinkRecord r = store.LoadLink(node, key);
        std::lock_guard<std::mutex> lock(mu);
        site = r.site;
      }
    } catch (const std::exception& e) {
      set_state("store unavailable");
      Log(LogLevel::kWarn, "upstream " + node_name + ": " + e.what());
      lease.reset();
      if (!wait(1000)) break;
      continue;
    }
    if (!lease) {
      set_state("standby");
      if (!said_standby)
        Log(LogLevel::kInfo,
            "upstream " + node_name + ": another hub process on this store runs the link; standing by");
      said_standby = true;
      if (!wait(1000)) break;
      continue;
    }
    said_standby = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      state = "running";
      halted = stopping;
      Log(LogLevel::kInfo,
          "upstream " + node_name + ": keeping it in sync with " + url + " as site " + site.ToString());
    }
    std::thread upward([this] { RunUp(); });
    std::thread downward([this] { RunDown(); });
    bool held = true;
    for (;;) {
      if (!wait(250)) break;
      if (!(held = lease->Held())) break;
    }
    if (!held)
      Log(LogLevel::kWarn,
          "upstream " + node_name + ": lost the link's lease on the store; stopping it here");
    {
      std::lock_guard<std::mutex> lock(mu);
      halted = true;
    }
    cv.notify_all();
    upward.join();
    downward.join();
    lease.reset();
  }
  set_state("stopped");
}

UpstreamLinks::UpstreamLinks(HubStore& store, NodeNews& news, uint64_t max_clock_drift_ms, size_t max_row_bytes)
    : store_(store), news_(news), max_clock_drift_ms_(max_clock_drift_ms), max_row_bytes_(max_row_bytes) {}

UpstreamLinks::~UpstreamLinks() { Stop(); }

void UpstreamLinks::Start(const std::map<std::string, UpstreamConfig>& links) {
  for (const auto& [name, config] : links) {
    auto link = std::make_unique<Link>(store_, news_, max_clock_drift_ms_, max_row_bytes_);
    link->node_name = name;
    link->url = config.url;
    link->key = HubKey(config.url);
    link->options = ParseSyncOptions(config.sync_options.dump());
    link->max_backoff_ms = config.max_backoff_ms;
    link->node = *store_.Node(name, /*create=*/true);
    Link* l = link.get();
    // A request in flight ends within ~50 ms of the stop (HttpOptions::should_abort).
    link->options.http.should_abort = [l] { return l->Halted(); };
    link->supervisor = std::thread([l] { l->Supervise(); });
    links_.push_back(std::move(link));
  }
}

void UpstreamLinks::Stop() {
  for (auto& l : links_) {
    {
      std::lock_guard<std::mutex> lock(l->mu);
      l->stopping = true;
      l->halted = true;
    }
    l->cv.notify_all();
  }
  for (auto& l : links_)
    if (l->supervisor.joinable()) l->supervisor.join();
}

Json UpstreamLinks::Status(const std::string& node, int64_t node_seq) {
  for (auto& l : links_) {
    if (l->node_name != node) continue;
    LinkRecord r = store_.LoadLink(l->node, l->key);
    std::lock_guard<std::mutex> lock(l->mu);
    const Health &up = l->up, &down = l->down;
    bool running = l->state == "running";
    bool connected =
        running && down.last_success_ms > 0 && down.failing_since_ms == 0 && up.failing_since_ms == 0;
    int64_t failing_since = up.failing_since_ms == 0 ? down.failing_since_ms
                            : down.failing_since_ms == 0
                                ? up.failing_since_ms
                                : std::min(up.failing_since_ms, down.failing_since_ms);
    const Health& last_error = up.last_error_ms >= down.last_error_ms ? up : down;
    auto or_null = [](int64_t v) { return v == 0 ? Json() : Json(v); };
    return {{"url", l->url},
            {"site_id", r.site.ToString()},
            {"upstream_hub_id", r.hub_id.empty() ? Json() : Json(r.hub_id)},
            {"state", running ? (connected            ? "connected"
                                 : failing_since != 0 ? "failing"
                                                      : "connecting")
                              : l->state},
            {"connected", connected},
            {"push_cursor", r.push_cursor},
            {"pull_cursor", r.pull_cursor},
            {"lag", std::max<int64_t>(0, node_seq - r.push_cursor)},
            {"last_success_ms", or_null(std::max(up.last_success_ms, down.last_success_ms))},
            {"last_error", last_error.last_error.empty() ? Json() : Json(last_error.last_error)},
            {"last_error_ms", or_null(last_error.last_error_ms)},
            {"failing_since_ms", or_null(failing_since)},
            {"pushed", up.changes},
            {"pulled", down.changes}};
  }
  return Json();
}

std::string UpstreamLinks::Metrics(bool per_node) {
  if (links_.empty()) return "";
  std::map<std::string, int64_t> seqs;
  if (per_node)
    for (const auto& [name, counts] : store_.NodeCounts()) seqs[name] = counts.second;
  std::string connected, success, failing, lag, errors, changes;
  size_t n_connected = 0;
  int64_t now = NowMs();
  for (auto& l : links_) {
    Json s = Status(l->node_name, seqs.count(l->node_name) ? seqs[l->node_name] : 0);
    bool c = s["connected"].get<bool>();
    n_connected += c ? 1 : 0;
    if (!per_node) continue;
    std::string label = "{node=\"" + l->node_name + "\"}";
    connected += "deltasync_upstream_connected" + label + " " + (c ? "1" : "0") + "\n";
    double last = s["last_success_ms"].is_null() ? 0 : s["last_success_ms"].get<double>() / 1000.0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", last);
    success += "deltasync_upstream_last_success_timestamp_seconds" + label + " " + buf + "\n";
    double since = s["failing_since_ms"].is_null()
                       ? 0
                       : static_cast<double>(now - s["failing_since_ms"].get<int64_t>()) / 1000.0;
    std::snprintf(buf, sizeof buf, "%.3f", since);
    failing += "deltasync_upstream_failing_seconds" + label + " " + buf + "\n";
    lag += "deltasync_upstream_lag" + label + " " + std::to_string(s["lag"].get<int64_t>()) + "\n";
    std::lock_guard<std::mutex> lock(l->mu);
    errors += "deltasync_upstream_errors_total" + label + " " +
              std::to_string(l->up.errors + l->down.errors) + "\n";
    changes += "deltasync_upstream_changes_total{node=\"" + l->node_name + "\",direction=\"up\"} " +
               std::to_string(l->up.changes) + "\n";
    changes += "deltasync_upstream_changes_total{node=\"" + l->node_name + "\",direction=\"down\"} " +
               std::to_string(l->down.changes) + "\n";
  }
  std::string out =
      "# HELP deltasync_upstream_links Nodes of this hub kept in sync with an upstream hub.\n"
      "# TYPE deltasync_upstream_links gauge\ndeltasync_upstream_links " +
      std::to_string(links_.size()) +
      "\n# HELP deltasync_upstream_links_connected Upstream links whose last push and pull succeeded.\n"
      "# TYPE deltasync_upstream_links_connected gauge\ndeltasync_upstream_links_connected " +
      std::to_string(n_connected) + "\n";
  if (!per_node) return out;
  return out +
         "# HELP deltasync_upstream_connected 1 while the node's upstream link works in both directions.\n"
         "# TYPE deltasync_upstream_connected gauge\n" +
         connected +
         "# HELP deltasync_upstream_last_success_timestamp_seconds When the link last pushed or pulled "
         "successfully.\n"
         "# TYPE deltasync_upstream_last_success_timestamp_seconds gauge\n" +
         success +
         "# HELP deltasync_upstream_failing_seconds How long the link has been failing (0: it is not).\n"
         "# TYPE deltasync_upstream_failing_seconds gauge\n" +
         failing +
         "# HELP deltasync_upstream_lag Node sequence numbers the upstream has not acknowledged yet.\n"
         "# TYPE deltasync_upstream_lag gauge\n" +
         lag +
         "# HELP deltasync_upstream_errors_total Failed pushes and pulls of the link.\n"
         "# TYPE deltasync_upstream_errors_total counter\n" +
         errors +
         "# HELP deltasync_upstream_changes_total Changes the link pushed up, and pulled down to merge "
         "here.\n"
         "# TYPE deltasync_upstream_changes_total counter\n" +
         changes;
}

}  // namespace deltasync::hub
