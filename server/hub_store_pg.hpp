#pragma once
// The hub's store on PostgreSQL (libpq): several `deltasync serve` processes share one
// database and serve the same nodes at once (docs/scaling.md).
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/hub_store.hpp"

struct pg_conn;

namespace deltasync::hub {

class PgHubStore : public HubStore {
 public:
  // conninfo: a postgresql:// URI. Creates or upgrades the schema (under an advisory lock,
  // so hubs starting together do not race) and refuses a newer one. pool: connections kept.
  PgHubStore(const std::string& conninfo, size_t pool = 8);
  ~PgHubStore() override;

  const SiteId& hub_id() const override { return hub_id_; }
  std::optional<int64_t> Node(const std::string& name, bool create) override;
  PushResult Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms,
                  size_t max_row_bytes = SIZE_MAX) override;
  PullResult Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                  const std::optional<SiteId>& requester, size_t max_bytes) override;
  nlohmann::json Status(int64_t node, const std::string& name) override;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> NodeCounts() override;
  NodeUsage Usage(int64_t node) override;
  nlohmann::json Checksum(int64_t node, const std::vector<std::string>& tables) override;
  // The frontier and compaction (docs/operations.md).
  bool Contact(int64_t node, const SiteId& site, int64_t pulled, int64_t now_ms) override;
  int64_t Frontier(int64_t node) override;
  CompactResult Compact(int64_t node, int64_t retention_ms, int64_t now_ms, size_t batch) override;
  bool Readmit(int64_t node, const SiteId& site) override;
  void ForgetPushed(int64_t node, const SiteId& site) override;
  int64_t PushedUntil(int64_t node, const SiteId& site) override;
  void NewIdentity() override;
  LinkRecord LoadLink(int64_t node, const std::string& upstream) override;
  void SaveLink(int64_t node, const std::string& upstream, const LinkUpdate& update) override;
  // A session advisory lock on a connection of its own: released when that session ends.
  std::unique_ptr<LinkLease> LeaseLink(int64_t node) override;

  class Conn;  // one pooled connection

 private:
  class Txn;
  class Snapshot;
  // Runs body on a pooled connection; a lost connection or a restarting server is retried
  // (a push is idempotent), and turns into StoreUnavailable when retrying does not help.
  template <typename Body>
  auto WithConn(Body&& body) -> decltype(body(std::declval<Conn&>()));
  std::unique_ptr<Conn> Acquire();
  void Release(std::unique_ptr<Conn> c);
  void DropIdle();
  void RollbackAndRelease(std::unique_ptr<Conn> c);
  // A node's lane in this process: `turn` is held by whoever writes the node here (a push
  // group's leader, a compaction); pushes that arrive while a group commits wait in `queue`
  // and go together in the next group (group commit: one transaction, one lock, one commit).
  struct PendingPush;
  struct NodeLane {
    std::mutex turn;
    std::mutex queue_mu;
    std::condition_variable queue_cv;
    std::vector<PendingPush*> queue;
    bool committing = false;
  };
  NodeLane& Lane(int64_t node);
  std::mutex& NodeMutex(int64_t node) { return Lane(node).turn; }
  // Merges every push of `group` into the node in one transaction (a savepoint each when
  // there are several: a refused push leaves the others whole), commits once, and hands each
  // its result or its error. Never throws.
  void CommitGroup(int64_t node, const std::vector<PendingPush*>& group);
  int64_t NotePushed(Conn& c, int64_t node, const Payload& p);  // in the push's transaction
  int64_t LockNode(Conn& c, int64_t node);
  void CreateSchema(Conn& c);
  using SiteOrds = std::unordered_map<SiteId, uint32_t, SiteIdHash>;
  SiteOrds RegisterSites(Conn& c, const std::vector<SiteId>& sites);
  void LoadSites(Conn& c);
  void CacheSite(uint32_t ord, const SiteId& site);
  SiteId SiteOf(Conn& c, int64_t ord);  // looks up a site another hub registered on a miss
  int64_t KnownSite(Conn& c, const SiteId& site);  // its ordinal, or -1

  std::string conninfo_;
  size_t pool_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  size_t open_ = 0;
  std::map<int64_t, std::unique_ptr<NodeLane>> lanes_;
  std::mutex nodes_mu_;
  std::unordered_map<std::string, int64_t> node_ids_;  // node name -> id, as committed
  std::mutex tables_mu_;
  std::map<std::pair<int64_t, std::string>, std::pair<int64_t, std::string>> table_ids_;  // (node, name) -> (id, pk), committed
  int push_commit_delay_ms_ = 0;  // tests only: DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS
  SiteId hub_id_;
  std::mutex sites_mu_;
  std::vector<std::optional<SiteId>> sites_;  // by ordinal; a gap: not seen committed yet
  SiteOrds site_ords_;                        // and back
  std::mutex contacts_mu_;
  std::set<std::pair<int64_t, SiteId>> known_contacts_;  // contacts this process wrote once (durably)
  std::mutex lease_mu_;
  std::map<int64_t, std::unique_ptr<Conn>> standby_;  // per node: the connection that asks for its link's lock again
};

}  // namespace deltasync::hub
