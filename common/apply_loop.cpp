#include "common/apply_loop.hpp"

#include <utility>

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

}  // namespace

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
    std::vector<uint32_t> site_ords;
    for (const SiteId& s : p.sites) site_ords.push_back(port.SiteOrdinal(s));
    std::function<const SiteId&(uint32_t)> site_of = [&](uint32_t ord) -> const SiteId& { return port.SiteOf(ord); };
    for (const auto& [tc, handle] : work) {
      std::unique_ptr<ApplyTable> table = port.OpenTable(handle);
      TableNames names = table->Names();
      // Payload names are matched against the local catalog; only local names reach SQL.
      TableMapping map = MapTable(names.name, names.pk, names.cols, *tc, site_ords);
      TableApply apply(port, *table, map, site_of);
      for (const RowChanges& r : tc->rows) apply.Row(r, counts);
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
