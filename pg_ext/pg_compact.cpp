// deltasync_compact([options]) on PostgreSQL: turns tombstones that no longer decide anything
// into graves (docs/operations.md, "Compaction on sites"), with the rules of SQLite: the bound
// comes from each hub's frontier record (common/compaction, deltasync.hub_frontier).
//
// A grave is the tombstone's shadow row with its key and causal length kept and ver, hlc,
// site and clk NULL. PostgreSQL's columns are fixed-width, but a NULL is a bit in the row's
// null bitmap (which a tombstone already has, its clk being NULL), so a grave is the smallest
// row with that key: moving graves to a table of their own (key, cl) costs exactly as much
// (measured, docs/operations.md), and keeping them here leaves capture, apply and DDL as they
// are. Readers take a NULL version as kGraveVersion (kPgRowVersion, ReadShadowRow): a grave
// is still collected by a pass from 0, never by an incremental one.
//
// One UPDATE per tracked table in the caller's transaction (a function cannot commit). It
// takes ROW EXCLUSIVE on the shadow table, as writers do; an apply (SHARE ROW EXCLUSIVE) waits
// for it. A writer re-inserting a key being buried waits for that row only, and a row that
// changed meanwhile is re-checked and left alone (its version moved).
#include <nlohmann/json.hpp>

#include "common/compaction.hpp"
#include "pg_ext/pg_functions.hpp"

namespace deltasync {

namespace pg {

static_assert(kGraveVersion == 1, "kPgRowVersion reads a grave's NULL version as 1");

namespace {

std::vector<HubCoverage> LoadCoverage() {
  std::vector<HubCoverage> out;
  RunSql("SELECT h.hub, h.push_cursor, coalesce(f.frontier, -1), coalesce(f.mark_ver, 0), coalesce(f.mark_seq, 0),"
         " coalesce(f.safe_ver, 0) FROM deltasync.hubs AS h LEFT JOIN deltasync.hub_frontier AS f ON f.hub = h.hub"
         " ORDER BY h.hub");
  Rows rows;
  for (uint64_t r = 0; r < rows.size(); ++r) {
    HubCoverage c;
    c.hub = rows.Text(r, 0);
    c.push_cursor = rows.Int(r, 1);
    c.frontier = HubFrontier{rows.Int(r, 2), rows.Int(r, 3), rows.Int(r, 4), rows.Int(r, 5)};
    out.push_back(std::move(c));
  }
  return out;
}

// The tombstones of one table with a version in (kGraveVersion, up_to] become graves.
uint64_t CompactTable(const TableInfo& t, int64_t up_to) {
  Args a;
  a.AddInt8(up_to);
  return RunSql("UPDATE " + t.q_meta +
                    " SET ver = NULL, hlc = NULL, site = NULL, clk = NULL"
                    " WHERE (cl & 1) = 0 AND ver > " + std::to_string(kGraveVersion) + " AND ver <= $1",
                a);
}

}  // namespace

nlohmann::json CompactSite(const CompactOptions& options, bool only_if_due) {
  AsOwner as;
  CompactBound bound = CompactionBound(LoadCoverage(), options);
  const int64_t compacted_to = Backend::Get().SettingInt("compacted_to", 0);
  if (only_if_due && !CompactionDue(bound.up_to, compacted_to)) return nullptr;
  uint64_t graves = 0;
  std::vector<std::pair<std::string, uint64_t>> tables;
  if (bound.up_to > kGraveVersion) {
    for (const TableInfo& t : Backend::Get().LoadTables()) {
      if (t.State() != TableState::kTracked) continue;
      uint64_t g = CompactTable(t, bound.up_to);
      graves += g;
      tables.emplace_back(t.name, g);
    }
    if (bound.up_to > compacted_to) {
      Args s;
      s.AddText(std::to_string(bound.up_to));
      RunSql("INSERT INTO deltasync.settings (name, value) VALUES ('compacted_to', $1)"
             " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
             s);
    }
  }
  return CompactResultJson(bound, graves, tables);
}

}  // namespace pg

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_compact) {
  CompactOptions options = ParseCompactOptions(JsonbArgText(fcinfo, 0));
  SpiSession spi;
  RequireCurrentCatalog("deltasync_compact");
  nlohmann::json result = pg::CompactSite(options, false);
  spi.Finish();
  return JsonbResult(result);
}
