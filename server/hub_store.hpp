#pragma once
// The hub's store: per node, the winning change of every (table, key, column), every row's
// causal length, and a per-node sequence that orders rows for pull cursors. Two
// implementations: the embedded SQLite file (this file's SqliteHubStore) and PostgreSQL
// (hub_store_pg), shared by several hub processes. Merging and page assembly are
// hub_merge's, the same for both; merging uses common/merge, as the extensions do.
#include <condition_variable>
#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/payload.hpp"
#include "common/site_id.hpp"
#include "server/hub_merge.hpp"

struct sqlite3;

namespace deltasync::hub {

// The store cannot be reached right now (a restarting database, a dropped connection that
// retrying did not cure): the hub answers 503 and the client retries later.
class StoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a node holds, for its quotas.
struct NodeUsage {
  uint64_t rows = 0;            // rows, live and deleted
  uint64_t bytes = 0;           // bytes of the rows' keys and of the values held
  std::vector<SiteId> sites;    // distinct sites whose changes it holds, or whose push last wrote a row
};

// What one compaction of a node did (docs/operations.md, "Compaction").
struct CompactResult {
  int64_t frontier = 0;   // the node sequence every active site has applied
  uint64_t sites = 0;     // active sites holding the frontier
  uint64_t retired = 0;   // sites this compaction retired (not seen within the retention)
  uint64_t dropped = 0;   // tombstones dropped
};

// A node's link to its upstream hub (server/hub_upstream), as the store keeps it: the link is
// a site of both hubs, with one site id, and its cursors live beside the node's rows.
struct LinkRecord {
  SiteId site;              // the link's site id, here and on the upstream
  std::string hub_id;       // the upstream store's identity; empty until it first told it
  int64_t push_cursor = 0;  // this node's sequence the upstream has acknowledged up to
  int64_t pull_cursor = 0;  // the upstream node's sequence merged here up to
};
// What SaveLink writes: the fields set.
struct LinkUpdate {
  std::optional<std::string> hub_id;
  std::optional<int64_t> push_cursor, pull_cursor;
};
// Held while this process runs a node's link: another hub process on the same store is
// refused it meanwhile, so no two processes run one link.
class LinkLease {
 public:
  virtual ~LinkLease() = default;
  // False once the lease is lost (the store's session ended): the link must stop.
  virtual bool Held() = 0;
};

class HubStore {
 public:
  virtual ~HubStore() = default;
  // The store's identity: the same for every hub process serving it.
  virtual const SiteId& hub_id() const = 0;
  // Node id, or nullopt when the node does not exist (and create is false).
  virtual std::optional<int64_t> Node(const std::string& name, bool create) = 0;
  // Merges a payload into a node, in one transaction that is durable when this returns.
  // A row that would be larger than max_row_bytes once merged refuses the push (RowTooLarge).
  virtual PushResult Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms,
                          size_t max_row_bytes = SIZE_MAX) = 0;
  // Rows whose sequence is > since, oldest first, whole rows only, at most max_rows rows and
  // about max_bytes of stored rows (a larger row alone: BuildPage); only the listed tables
  // (all when empty); never column changes that `requester` pushed.
  virtual PullResult Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                          const std::optional<SiteId>& requester, size_t max_bytes) = 0;
  virtual nlohmann::json Status(int64_t node, const std::string& name) = 0;
  // Per-node counts for the metrics endpoint: name -> (rows, seq).
  virtual std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> NodeCounts() = 0;
  // What a node holds now, for its quotas (one pass over its rows and values).
  virtual NodeUsage Usage(int64_t node) = 0;
  // deltasync_checksum's document for the node's live rows (server/hub_checksum.cpp): every
  // table it holds, or only `tables` when not empty. Reads a chunk of rows at a time.
  virtual nlohmann::json Checksum(int64_t node, const std::vector<std::string>& tables) = 0;

  // The frontier and compaction (docs/operations.md). A store that does not implement them
  // records no contact and compacts nothing, which is always safe.
  // Records that a site reached a node at now_ms; pulled: the since of a full pull (-1 for a
  // push or a pull of some tables only). Larger values win. True when the site is retired.
  virtual bool Contact(int64_t /*node*/, const SiteId& /*site*/, int64_t /*pulled*/, int64_t /*now_ms*/) { return false; }
  // The smallest pull cursor of the node's active sites (the node's sequence when none).
  virtual int64_t Frontier(int64_t /*node*/) { return 0; }
  // Retires sites not seen for retention_ms (0: never), then drops the node's tombstones at
  // or below the frontier, `batch` rows per transaction.
  virtual CompactResult Compact(int64_t /*node*/, int64_t /*retention_ms*/, int64_t /*now_ms*/, size_t /*batch*/) {
    return {};
  }
  // Lets a retired site sync again (an admin's decision); false when it was not retired.
  virtual bool Readmit(int64_t /*node*/, const SiteId& /*site*/) { return false; }
  // Forgets the highest `until` a site pushed (PushResult::site_until): it re-synchronised
  // (resync=done), so what it pushes from now on is what it has.
  virtual void ForgetPushed(int64_t node, const SiteId& site) = 0;
  // The highest `until` a site pushed to a node (0: none since it was forgotten).
  virtual int64_t PushedUntil(int64_t node, const SiteId& site) = 0;
  // Gives the store a new identity (`deltasync serve --new-hub-id`, after restoring it from
  // a backup): every site then pushes and pulls everything again (docs/operations.md,
  // "Backups"). Every site's place in the frontier goes back to 0.
  virtual void NewIdentity() = 0;

  // The upstream link of a node (server/hub_upstream). The record of the node's link to
  // `upstream` (a hub key: base + "/nodes/" + node), created with a new site id when missing.
  virtual LinkRecord LoadLink(int64_t node, const std::string& upstream) = 0;
  virtual void SaveLink(int64_t node, const std::string& upstream, const LinkUpdate& update) = 0;
  // The right to run the node's link in this process, or nullptr while another process holds it.
  virtual std::unique_ptr<LinkLease> LeaseLink(int64_t node) = 0;
};

// Opens the store --db names: postgresql://... or postgres://... (PostgreSQL), else a SQLite
// file (":memory:" for a throwaway one).
std::unique_ptr<HubStore> OpenStore(const std::string& db);

class SqliteHubStore : public HubStore {
 public:
  explicit SqliteHubStore(const std::string& path);
  ~SqliteHubStore() override;
  SqliteHubStore(const SqliteHubStore&) = delete;
  SqliteHubStore& operator=(const SqliteHubStore&) = delete;

  const SiteId& hub_id() const override { return hub_id_; }
  std::optional<int64_t> Node(const std::string& name, bool create) override;
  PushResult Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms,
                  size_t max_row_bytes = SIZE_MAX) override;
  PullResult Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                  const std::optional<SiteId>& requester, size_t max_bytes) override;
  nlohmann::json Status(int64_t node, const std::string& name) override;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> NodeCounts() override;
  NodeUsage Usage(int64_t node) override;
  nlohmann::json Checksum(int64_t node, const std::vector<std::string>& tables) override;  // hub_checksum.cpp
  // hub_compact.cpp
  bool Contact(int64_t node, const SiteId& site, int64_t pulled, int64_t now_ms) override;
  int64_t Frontier(int64_t node) override;
  CompactResult Compact(int64_t node, int64_t retention_ms, int64_t now_ms, size_t batch) override;
  bool Readmit(int64_t node, const SiteId& site) override;
  void ForgetPushed(int64_t node, const SiteId& site) override;
  int64_t PushedUntil(int64_t node, const SiteId& site) override;
  void NewIdentity() override;
  LinkRecord LoadLink(int64_t node, const std::string& upstream) override;
  void SaveLink(int64_t node, const std::string& upstream, const LinkUpdate& update) override;
  std::unique_ptr<LinkLease> LeaseLink(int64_t node) override;

 private:
  class Txn;
  class Snapshot;
  struct PendingPush;
  // Merges every push of `group` in one transaction (a savepoint each: a refused push leaves
  // the others whole), commits once, and hands each its result or its error.
  void CommitGroup(const std::vector<PendingPush*>& group);
  void Upgrade(int64_t from);
  void EnsureContacts();  // hub_compact.cpp
  uint32_t SiteOrdinal(const SiteId& site);
  const SiteId& SiteOf(int64_t ord);

  sqlite3* db_ = nullptr;
  std::mutex mu_;  // one writer (and reader) at a time on the one connection
  // Group commit: pushes that arrive while a group is committing wait here and go together
  // in the next one (one transaction, one fsync); each is acknowledged after that commit.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingPush*> queue_;
  bool committing_ = false;
  SiteId hub_id_;
  std::vector<SiteId> sites_;                                     // by ordinal
  std::unordered_map<SiteId, uint32_t, SiteIdHash> site_ords_;  // and back
  // Each site's contact as stored, or newer and not yet stored (dirty; hub_compact.cpp).
  struct ContactState {
    int64_t pulled = 0, last_seen_ms = 0;
    bool retired = false;
    bool dirty = false;
  };
  int64_t NotePushed(int64_t node, const Payload& p);  // in the push's transaction
  void FlushContacts();
  int64_t GraveCl(int64_t tbl, const std::string& key);  // under mu_
  std::set<int64_t> grave_tables_;  // tables with graves: the others skip the lookup
  int64_t FrontierLocked(int64_t node);
  std::map<std::pair<int64_t, SiteId>, ContactState> contacts_;
};

}  // namespace deltasync::hub
