#pragma once
// The client side of the hub protocol, once for every engine: deltasync_push, _pull and
// _sync. An engine supplies a SyncSite (its cursors, echo ranges, change collection and
// page apply, each atomic in its own transaction machinery); HubLink does the HTTP, the
// batching, the paging and the cursor rules (docs/protocol.md, "The hub over HTTP").
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/collect_loop.hpp"
#include "common/compaction.hpp"
#include "common/error.hpp"
#include "common/http_client.hpp"
#include "common/payload.hpp"
#include "common/row_apply.hpp"
#include "common/sync_progress.hpp"

namespace deltasync {

// About how many bytes of values one push batch carries at most (a larger row travels alone):
// well under the hub's default decoded-payload limit.
inline constexpr size_t kPushBatchBytes = size_t{4} << 20;

struct SyncOptions {
  HttpOptions http;
  std::vector<std::string> tables;  // empty: every table
  size_t batch_rows = 1000;
  bool binary = true;  // binary + zstd on the wire; "codec": "json" for debugging
  // A site its hub retired re-synchronises (docs/operations.md, "A site that comes back"):
  // the pull reads the node's whole state, removes what the hub no longer holds, and then
  // the hub takes the site back. "resync": true.
  bool resync = false;
  // A pull page the client accepts from a hub, decompressed ("max_page_bytes"); the body as
  // sent is capped at the same size (HttpOptions::max_response_bytes). A decoded page costs
  // memory a few tens of times its bytes, so this bounds what a hostile hub can make a site hold.
  size_t max_page_bytes = size_t{32} << 20;
  // Long-poll: the first pull page waits up to this long on the hub for news (0: answer at once).
  long wait_ms = 0;
};

// The options argument of push/pull/sync: a JSON object (empty text: the defaults).
// Unknown keys and wrongly typed values are refused with kInvalidArgument.
SyncOptions ParseSyncOptions(std::string_view json);

// What the client takes from a hub's answer to a push: the node sequence after it (0 when
// the hub did not say) and the hub's identity (empty when it did not say).
struct PushAnswer {
  int64_t seq = 0;
  std::string hub_id;
  int64_t site_until = -1;  // the highest `until` this site ever pushed to the node; -1 when not said
};
// Reads a push answer: anything but a 200 with a JSON object as its body is an Error
// (kNetwork) naming the URL; unknown or wrongly typed fields of the object are ignored.
PushAnswer ReadPushAnswer(const HttpResponse& res, const std::string& url);

// One pull page and whether the hub holds more after it (the deltasync-more header).
struct PullAnswer {
  Payload page;
  bool more = false;
  int64_t node_seq = 0;  // the node's sequence as the page was read (Deltasync-Seq; 0 when not said)
  int64_t frontier = -1;  // the Deltasync-Frontier header; -1 when absent or malformed
  int64_t site_until = -1;  // the Deltasync-Site-Until header (as PushAnswer's); -1 when absent
};
// Reads a pull answer for the page after `cursor`: anything but a 200 whose body decodes
// (by its content type and encoding) to a page that continues from the cursor is an Error
// (kNetwork) naming the URL.
PullAnswer ReadPullAnswer(const HttpResponse& res, const std::string& url, int64_t cursor,
                          size_t max_page_bytes = SyncOptions{}.max_page_bytes);

// A push pass that was interrupted: every change up to `until` at or before position `at`
// was acknowledged by the hub. until 0: none.
struct PushProgress {
  int64_t until = 0;
  CollectPosition at;
};

// One hub as a site stores it.
struct HubRecord {
  std::string hub_id;  // empty until the hub first told its identity
  int64_t push_cursor = 0;
  int64_t pull_cursor = 0;
  PushProgress progress;
};

// The engine's side. Every method that writes is atomic on its own.
class SyncSite {
 public:
  virtual ~SyncSite() = default;
  virtual SiteId LocalSite() = 0;
  // The record of hub `key`, created (all zero) when missing.
  virtual HubRecord LoadHub(const std::string& key) = 0;
  // Records the hub's identity; with `reset`, also sets both cursors to 0 and forgets the
  // echo ranges (the hub is a new store).
  virtual void SetHubId(const std::string& key, const std::string& id, bool reset) = 0;
  virtual VersionRanges EchoRanges(const std::string& key, int64_t above) = 0;
  // Every change with db_version > since, leaving out column changes in `exclude`, from
  // position `from` on, in batches (common/collect_loop CollectInBatches) handed to `batch`
  // one at a time; `until` <= since starts a new pass up to the current horizon. Returns
  // the pass's until.
  virtual int64_t CollectBatches(int64_t since, int64_t until, const CollectPosition& from,
                                 const VersionRanges& exclude, const BatchLimits& limits,
                                 const std::function<bool(Payload&, const CollectPosition&)>& batch) = 0;
  // After the hub acknowledged a batch: the pass up to `until` has been sent up to `at`.
  // Durable at once where the engine can (an interrupted push resumes there).
  virtual void PushProgressed(const std::string& key, int64_t until, const CollectPosition& at) = 0;
  // After the hub acknowledged a whole pass up to `until`: the push cursor moves there (never
  // back), the pass's progress and echo ranges at or below it are dropped.
  virtual void PushDone(const std::string& key, int64_t until) = 0;
  // Applies one pull page and, in the same transaction, records the versions it gave as an
  // echo range and, when move_cursor, sets the pull cursor to page.until.
  virtual ApplyResult ApplyPage(const std::string& key, const Payload& page, bool move_cursor) = 0;
  // A page of a full pull (the cursor moves), with what the client knew of the hub's
  // frontier: an engine that compacts records it (common/compaction AdvanceFrontier) in the
  // page's transaction. The default only applies the page.
  virtual ApplyResult ApplyPulledPage(const std::string& key, const Payload& page, const PulledPage& /*facts*/) {
    return ApplyPage(key, page, true);
  }
  // After a full pull: compacts when enough became compactable (CompactionDue). The
  // compaction's result, or null when none ran. The default never compacts.
  virtual nlohmann::json CompactIfDue() { return nullptr; }
  // Records how a call with hub `key` ended, at `at_ms`: `error` empty for a success (the
  // failure streak ends), else the failure's message (the streak grows). Called after the
  // call's own writes were undone; the record must outlive them where the engine can.
  virtual void RecordOutcome(const std::string& key, const std::string& error, int64_t at_ms) = 0;
  // Rows with a version in (since, until] in the tracked tables, as a push pass reads them
  // (0: the engine cannot tell). Asked only once a push has run kProgressAfterMs, so it may
  // scan; what turns out to have nothing to send is counted too.
  virtual uint64_t CountRowsToPush(int64_t /*since*/, int64_t /*until*/) { return 0; }
  // A long call's progress (common/sync_progress.hpp): after kProgressAfterMs, at most every
  // kProgressEveryMs, and once at its end. An exception it throws is ignored.
  virtual void ReportProgress(const SyncProgress& /*progress*/) {}
  // Forgets hub `key`: its record, cursors, echo ranges and health. False when unknown.
  virtual bool ForgetHub(const std::string& key) = 0;
  // Re-synchronisation (docs/operations.md, "A site that comes back"): starts an empty set
  // of keys seen, ...
  virtual void BeginResync() {
    throw Error(ErrorCode::kInvalidArgument, "resync is not available on this engine yet (docs/operations.md)");
  }
  // ... adds the rows of one page to it (applied by ApplyPage as usual), ...
  virtual void NoteSeen(const Payload& /*page*/) {}
  // ... and, after the last page, removes (without recording a change) every live local row
  // the hub did not send whose life had reached hub `key` (its shared clock at or below the
  // push cursor, or applied from that hub): those are rows deleted elsewhere whose tombstone
  // the hub dropped. Rows written only here since (their whole row unsent) stay. Returns
  // how many rows it removed.
  virtual uint64_t RemoveUnseen(const std::string& /*key*/) { return 0; }
  // At least every db_version this site ever gave a change (what a push's `until` can
  // reach): the hub holding a higher `until` from this site means it was restored from an
  // earlier backup or copied (docs/operations.md, "A site restored from a backup").
  // INT64_MAX: the engine does not tell (nothing is checked).
  virtual int64_t VersionCeiling() { return INT64_MAX; }
};

// The name a site keeps hub `url` under: its base + "/nodes/" + node.
std::string HubKey(const std::string& url);

// deltasync_forget(url): {"hub": key, "forgotten": true|false}.
nlohmann::json ForgetHub(SyncSite& site, const std::string& url);

// One hub (its URL's base and node) as seen from one site, for one call.
class HubLink {
 public:
  HubLink(SyncSite& site, const std::string& url, SyncOptions options);
  // Each call records its outcome in the site's hub health (SyncSite::RecordOutcome): any
  // failure, and a success in which the hub answered (an empty push asks it nothing).
  // {pushed, rows, batches, cursor, hub_seq, resumed}: batch by batch, each acknowledged
  // batch recorded as progress; an interrupted push resumes after its last one.
  nlohmann::json Push();
  // {pulled, applied, ignored, untracked, pages, cursor}
  nlohmann::json Pull();
  // {push, pull}: push, pull, and push again if the pull found the hub replaced.
  nlohmann::json Sync();
  // The hub's name in the site's records: base + "/nodes/" + node.
  const std::string& key() const { return key_; }

 private:
  template <typename Body>
  nlohmann::json Recorded(Body&& body);
  nlohmann::json PushAll();
  nlohmann::json PullAll();
  nlohmann::json PushOnce();
  bool CheckHubIdentity(const std::string& id);
  // Refuses to go on when the hub holds a higher `until` of this site than it ever reached.
  void CheckNotRestored(int64_t site_until);
  PushAnswer Send(const Payload& batch);
  void Report(ProgressMeter& meter);
  // A pull's progress after a page: `done` node positions read of `expected` (0: not said).
  void AdvancePull(ProgressMeter& meter, int64_t done, int64_t expected);
  void Finish(ProgressMeter& meter, bool ok);

  SyncSite& site_;
  HubUrl url_;
  std::string key_;
  SyncOptions opt_;
  nlohmann::json Resync();
  bool reset_ = false;  // the hub turned out to be a new store during this call
  bool resync_done_ = false;  // the next pull request tells the hub the resync is complete
  bool answered_ = false;  // the hub answered a request of this call
};

}  // namespace deltasync
