#pragma once
// Compaction on sites (docs/operations.md, "Compaction on sites"): which deleted rows a site
// may turn into graves, once for every engine. A site learns from each hub's pull answers
// (the Deltasync-Frontier header) how far every active site of that hub's node has pulled;
// it ties that node sequence to its own db_versions through marks, and compacts only the
// tombstones at or below the lowest version every hub covers.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deltasync {

// The version a compacted tombstone (a grave) carries: collected only by a pass from 0 (a
// new hub, a hub with a new identity, deltasync_changes(0)), never by an incremental one.
// With hlc 0, site 0 and no clk it costs SQLite no bytes beyond its key and causal length.
inline constexpr int64_t kGraveVersion = 1;

// After a full pull, compaction runs by itself when at least this many versions became
// compactable since the last compaction (a compaction scans the shadow tables).
inline constexpr int64_t kAutoCompactVersions = 10000;

// What a site keeps of one hub's frontier, with its pull cursor (same transaction).
struct HubFrontier {
  int64_t frontier = -1;  // the latest frontier the hub sent; -1: it never sent one
  // A mark: every local version <= mark_ver had reached the hub, at a node sequence
  // <= mark_seq, when the site read the last page of a full pull that ended at mark_seq.
  // Pending until a frontier >= mark_seq confirms it; 0/0 when there is none.
  int64_t mark_ver = 0;
  int64_t mark_seq = 0;
  // Every local version <= safe_ver has been applied (or superseded by a newer state of its
  // row) by every active site of the hub's node: a mark the frontier confirmed.
  int64_t safe_ver = 0;
};

// What the client knew about one page of a full pull when it read it.
struct PulledPage {
  int64_t frontier = -1;    // the answer's Deltasync-Frontier; -1: none (an older hub)
  bool last = false;        // the hub held nothing after it
  int64_t push_cursor = 0;  // the site's push cursor to this hub before the pull's first request
};

// The record after a full-pull page ending at `until` was applied.
HubFrontier AdvanceFrontier(HubFrontier h, const PulledPage& page, int64_t until);

// One hub as compaction sees it.
struct HubCoverage {
  std::string hub;
  int64_t push_cursor = 0;
  HubFrontier frontier;
};

// deltasync_compact's options: {"direct_up_to": V} says every site that reads this site's
// changes directly (deltasync_changes) has applied them up to db_version V; without hubs,
// that is the only way to compact anything.
struct CompactOptions {
  std::optional<int64_t> direct_up_to;
};
// Unknown keys and wrong types are refused (kInvalidArgument); empty text: the defaults.
CompactOptions ParseCompactOptions(std::string_view json);

// The highest local version whose tombstones may become graves, and which hub (or
// "direct_up_to", or "no hub") holds it there.
struct CompactBound {
  int64_t up_to = 0;
  std::string held_by;
};
CompactBound CompactionBound(const std::vector<HubCoverage>& hubs, const CompactOptions& options);

// Whether a compaction after a pull is worth its scan.
inline bool CompactionDue(int64_t up_to, int64_t compacted_to) {
  return up_to - compacted_to >= kAutoCompactVersions;
}

// deltasync_compact()'s result: {"up_to", "held_by", "graves", "tables": {t: n}}.
nlohmann::json CompactResultJson(const CompactBound& bound, uint64_t graves,
                                 const std::vector<std::pair<std::string, uint64_t>>& tables);

}  // namespace deltasync
