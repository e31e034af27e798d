#pragma once
// The hub's store on SQLite: per node, the winning change of every (table, key, column),
// every row's causal length, and a per-node sequence that orders rows for pull cursors.
// Merging uses common/merge, the same code the extensions use.
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/payload.hpp"
#include "common/site_id.hpp"

struct sqlite3;

namespace deltasync::hub {

struct PushResult {
  uint64_t applied = 0, ignored = 0, rows = 0;
  int64_t seq = 0;  // the node's sequence after the push
};

struct PullResult {
  Payload payload;  // since/until are node sequences
  bool more = false;
  uint64_t changes = 0;
};

class HubStore {
 public:
  // Opens (creating if needed) the store; ":memory:" for a throwaway one.
  explicit HubStore(const std::string& path);
  ~HubStore();
  HubStore(const HubStore&) = delete;
  HubStore& operator=(const HubStore&) = delete;

  const SiteId& hub_id() const { return hub_id_; }

  // Node id, or nullopt when the node does not exist (and create is false).
  std::optional<int64_t> Node(const std::string& name, bool create);

  // Merges a payload into a node, in one transaction that is durable when this returns.
  PushResult Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms);

  // Rows whose sequence is > since, oldest first, whole rows only, at most max_rows rows;
  // only the listed tables (all when empty); never column changes that originate at
  // `requester`.
  PullResult Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                  const std::optional<SiteId>& requester);

  nlohmann::json Status(int64_t node, const std::string& name);
  // Per-node counts for the metrics endpoint: name -> (rows, seq).
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> NodeCounts();

 private:
  uint32_t SiteOrdinal(const SiteId& site);
  const SiteId& SiteOf(int64_t ord);
  int64_t TableId(int64_t node, const TableChanges& t);

  sqlite3* db_ = nullptr;
  std::mutex mu_;  // one writer (and reader) at a time on the one connection
  SiteId hub_id_;
  std::vector<SiteId> sites_;
};

}  // namespace deltasync::hub
