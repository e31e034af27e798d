#include "common/apply_loop.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "common/utf8.hpp"

namespace deltasync {

namespace {

// Applies the rows of one payload table into one local table through its writer.
class TableApply {
 public:
  TableApply(ApplyPort& port, ApplyTable& table, const TableMapping& map,
             const std::function<const SiteId&(uint32_t)>& site_of)
      : port_(port), table_(table), map_(map), site_of_(site_of), ncols_(table.Names().cols.size()) {}

  // One row: local clocks, decision, base row, clocks, counts.
  void Row(const RowChanges& r, ApplyResult& counts) {
    ShadowRow shadow;  // cl 0, no clocks: this site never saw the row
    table_.ReadShadow(r.key, shadow);
    RowDecision d = DecideRow(shadow.cl, shadow.clocks, r, map_, site_of_);
    const RowMerge& m = d.merge;
    if (!CountRow(d, counts)) return;

    if (m.existed && !m.exists) table_.DeleteRow(r.key);
    // Exactly the winning columns are written. A row this site holds is UPDATEd, so columns
    // that did not change are never needed (NOT NULL columns without a default stay as they
    // are); a row new here is INSERTed, and an UPDATE that finds no base row (metadata ahead
    // of the table) falls back to the insert.
    if (m.exists && (!m.existed || !d.winners.empty())) {
      writes_.clear();
      for (size_t k : d.winners) writes_.push_back(ColumnWrite{map_.columns[r.changes[k].column], &r.changes[k].value});
      if (!m.existed || !table_.UpdateRow(r.key, writes_)) table_.InsertRow(r.key, writes_);
    }

    int64_t ver = port_.NextVersion();
    counts.AddVersion(ver);
    AdoptWinners(shadow.clocks, d, r, map_, ncols_, ver);
    table_.WriteShadow(r.key, m.cl, ver, shadow.clocks);
  }

 private:
  ApplyPort& port_;
  ApplyTable& table_;
  const TableMapping& map_;
  const std::function<const SiteId&(uint32_t)>& site_of_;
  size_t ncols_;
  std::vector<ColumnWrite> writes_;  // reused from row to row
};

// The payload table without the columns `local_cols` lacks (nullopt when it has all of
// them); adds the changes left out to `left_out`.
std::optional<TableChanges> KnownColumnsOnly(const TableChanges& tc, const std::vector<std::string>& local_cols,
                                             uint64_t& left_out) {
  std::vector<int64_t> to(tc.columns.size(), -1);
  bool all = true;
  TableChanges out;
  for (size_t k = 0; k < tc.columns.size(); ++k) {
    bool found = std::any_of(local_cols.begin(), local_cols.end(),
                             [&](const std::string& c) { return EqualsIgnoreAsciiCase(c, tc.columns[k]); });
    if (found) {
      to[k] = static_cast<int64_t>(out.columns.size());
      out.columns.push_back(tc.columns[k]);
    }
    all &= found;
  }
  if (all) return std::nullopt;
  out.name = tc.name;
  out.pk = tc.pk;
  out.rows.reserve(tc.rows.size());
  for (const RowChanges& r : tc.rows) {
    RowChanges kept;
    kept.key = r.key;
    kept.cl = r.cl;
    for (const ColumnChange& c : r.changes) {
      if (to[c.column] < 0) {
        ++left_out;
        continue;
      }
      ColumnChange moved = c;
      moved.column = static_cast<uint32_t>(to[c.column]);
      kept.changes.push_back(std::move(moved));
    }
    out.rows.push_back(std::move(kept));
  }
  return out;
}

}  // namespace

// The ordinal slot of a listed site no change uses: never read.
constexpr uint32_t kUnusedSite = UINT32_MAX;

ApplyResult ApplyPayload(ApplyPort& port, const Payload& p) {
  uint64_t max_hlc = CheckPayloadClock(p, port.MaxClockDriftSetting());
  ApplyResult counts;
  std::vector<std::pair<const TableChanges*, int>> work;
  for (const TableChanges& tc : p.tables) {
    int handle = port.FindTable(tc.name);
    if (handle < 0) counts.untracked += CountChanges(tc);
    else work.emplace_back(&tc, handle);
  }
  port.Atomically([&] {
    // Only sites a change of a tracked table names are registered: a payload may list any
    // number of others (a direct deltasync_apply is not screened as network input is).
    std::vector<uint32_t> site_ords(p.sites.size(), kUnusedSite);
    for (const auto& [tc, handle] : work)
      for (const RowChanges& row : tc->rows)
        for (const ColumnChange& c : row.changes)
          if (c.site < site_ords.size() && site_ords[c.site] == kUnusedSite)
            site_ords[c.site] = port.SiteOrdinal(p.sites[c.site]);
    std::function<const SiteId&(uint32_t)> site_of = [&](uint32_t ord) -> const SiteId& { return port.SiteOf(ord); };
    for (const auto& [tc, handle] : work) {
      std::unique_ptr<ApplyTable> table = port.OpenTable(handle);
      TableNames names = table->Names();
      // Changes of columns this site does not track (a site a migration ahead or behind, a
      // dropped column, an old name of a renamed one) are left out, counted as untracked:
      // the rest of the table and of the payload still applies.
      std::optional<TableChanges> known = KnownColumnsOnly(*tc, names.cols, counts.untracked);
      const TableChanges& use = known ? *known : *tc;
      // Payload names are matched against the local catalog; only local names reach SQL.
      TableMapping map = MapTable(names.name, names.pk, names.cols, use, site_ords);
      TableApply apply(port, *table, map, site_of);
      for (const RowChanges& r : use.rows) apply.Row(r, counts);
    }
    port.ObserveClock(max_hlc);
  });
  return counts;
}

nlohmann::json ApplyResultJson(const ApplyResult& r, int64_t db_version) {
  return {{"applied", r.applied}, {"ignored", r.ignored}, {"untracked", r.untracked}, {"rows", r.rows},
          {"db_version", db_version}};
}

}  // namespace deltasync
