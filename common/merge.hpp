#pragma once
// The merge rules of SPEC section 3, once, for every engine and the hub.
#include <cstdint>
#include <vector>

#include "common/site_id.hpp"

namespace deltasync {

// A column version in global terms. Versions are ordered by (cl, hlc, site):
// a higher causal length wins (a delete or re-insert seen by the writer), then the later
// hybrid logical clock, then the greater site id as the tie-break.
struct Clock {
  int64_t cl = 0;
  uint64_t hlc = 0;  // 0 = no version at all: loses to every real one
  SiteId site;
};

// <0, 0 or >0 as a is older than, the same as, or newer than b.
int CompareClocks(const Clock& a, const Clock& b);

inline bool RowExists(int64_t cl) { return (cl & 1) == 1; }

// What applying one incoming row does to a local row.
struct RowMerge {
  int64_t cl = 0;               // the merged causal length: max of local and incoming
  bool existed = false;         // the local row was live before
  bool exists = false;          // the row is live after
  bool cl_advanced = false;     // the incoming causal length was news
  std::vector<bool> col_wins;   // per incoming column change: it replaces the local one
  // How apply reports the row: it carries one change per column change (one existence
  // change when it has none), and `applied` of them changed something — the winning
  // column changes, or the existence change alone when only the causal length was news.
  uint64_t changes = 0;
  uint64_t applied = 0;
};

// A column change wins when it was written in the row's current life (its causal length is
// the merged one) and its clock is newer than the local one.
// local_cl: 0 when this site never saw the row. local_cols[k] is the local clock of the
// column that incoming_cols[k] changes (hlc 0 when there is none).
RowMerge MergeRow(int64_t local_cl, int64_t incoming_cl, const std::vector<Clock>& incoming_cols,
                  const std::vector<Clock>& local_cols);

}  // namespace deltasync
