#include "common/merge.hpp"

#include <algorithm>

namespace deltasync {

int CompareClocks(const Clock& a, const Clock& b) {
  if (a.cl != b.cl) return a.cl < b.cl ? -1 : 1;
  if (a.hlc != b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.site != b.site) return a.site < b.site ? -1 : 1;
  return 0;
}

RowMerge MergeRow(int64_t local_cl, int64_t incoming_cl, const std::vector<Clock>& incoming_cols,
                  const std::vector<Clock>& local_cols) {
  RowMerge m;
  m.existed = RowExists(local_cl);
  m.cl = std::max(local_cl, incoming_cl);
  m.cl_advanced = incoming_cl > local_cl;
  m.exists = RowExists(m.cl);
  m.col_wins.assign(incoming_cols.size(), false);
  uint64_t wins = 0;
  if (m.exists) {  // a deleted row keeps no column values: nothing to win
    for (size_t k = 0; k < incoming_cols.size(); ++k) {
      // A value written in an older life of the row (a lower causal length than the row now
      // has) is stale even where this site holds no value for the column: the delete that
      // ended that life dropped it. Without this, a payload received twice could bring a
      // deleted value back into the re-inserted row.
      m.col_wins[k] = incoming_cols[k].cl >= m.cl && CompareClocks(incoming_cols[k], local_cols[k]) > 0;
      wins += m.col_wins[k] ? 1 : 0;
    }
  }
  m.changes = incoming_cols.empty() ? 1 : incoming_cols.size();
  m.applied = wins + (m.cl_advanced && wins == 0 ? 1 : 0);
  return m;
}

}  // namespace deltasync
