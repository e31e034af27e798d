#pragma once
// A node's upstream link (SPEC section 6; docs/live-sync.md, "Hub upstream"): a node whose
// config names an upstream hub node is kept in sync with it continuously, as a site would
// be. The link is a site of both hubs with one site id of its own: it pushes up what this
// node holds that it did not bring down itself (the node's pull filter, by pusher), and
// long-polls the upstream for what that node holds that it did not push up itself (the
// upstream's filter, by the same id), merging each page into this node by the hub's merge,
// origins kept. Its cursors live in the store; on a shared PostgreSQL store one process runs
// it at a time (HubStore::LeaseLink).
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/hub_news.hpp"
#include "server/hub_store.hpp"

namespace deltasync::hub {

// A node's "upstream" config object: {"url": ..., "token": ..., other deltasync_sync options,
// "max_backoff_ms": ...}.
struct UpstreamConfig {
  std::string url;                 // http(s)://host[:port]/nodes/<node> of the upstream node
  nlohmann::json sync_options;     // the rest, as deltasync_sync options (checked by Parse)
  int64_t max_backoff_ms = 30000;  // the longest wait between retries while the upstream is unreachable

  // Throws Error(kInvalidArgument) naming the problem: no url, an invalid one, an unknown or
  // wrongly typed option, "tables" or "resync" (a link syncs every table).
  static UpstreamConfig Parse(const nlohmann::json& j);
};

// Every upstream link of one hub process.
class UpstreamLinks {
 public:
  // max_row_bytes: the largest row a page may bring (or make by its merge), as for a push.
  UpstreamLinks(HubStore& store, NodeNews& news, uint64_t max_clock_drift_ms, size_t max_row_bytes);
  ~UpstreamLinks();
  UpstreamLinks(const UpstreamLinks&) = delete;
  UpstreamLinks& operator=(const UpstreamLinks&) = delete;

  // Starts one link per entry (node name -> its upstream), creating the nodes.
  void Start(const std::map<std::string, UpstreamConfig>& links);
  // Stops every link: requests in flight are cancelled, threads joined.
  void Stop();
  // The link of a node for its status endpoint (node_seq: the node's sequence now), or null.
  nlohmann::json Status(const std::string& node, int64_t node_seq);
  // Prometheus lines for /metrics: per node (for the admin), else totals only.
  std::string Metrics(bool per_node);

 private:
  struct Link;
  class LinkSite;
  HubStore& store_;
  NodeNews& news_;
  uint64_t max_clock_drift_ms_;
  size_t max_row_bytes_;
  std::vector<std::unique_ptr<Link>> links_;
};

}  // namespace deltasync::hub
