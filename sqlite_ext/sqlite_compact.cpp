// deltasync_compact([options]) on SQLite: turns tombstones that no longer decide anything into
// graves (docs/operations.md, "Compaction on sites"). A grave is the tombstone's shadow row with
// its causal length kept and its clock gone: ver = 1 (kGraveVersion), hlc = 0, site = 0, clk
// NULL, which SQLite stores in no bytes, so a grave costs its key and causal length only. The
// bound comes from each hub's frontier record (common/compaction); the tables are walked in
// key order, 1,000 tombstones per savepoint, so a writer waits for one batch at most.
#include <nlohmann/json.hpp>

#include "common/compaction.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

namespace {

constexpr int kBatch = 1000;

std::vector<HubCoverage> LoadCoverage(sqlite3* db) {
  std::vector<HubCoverage> out;
  Stmt s(db,
         "SELECT h.hub, h.push_cursor, coalesce(f.frontier, -1), coalesce(f.mark_ver, 0),"
         " coalesce(f.mark_seq, 0), coalesce(f.safe_ver, 0)"
         " FROM deltasync_hubs h LEFT JOIN deltasync_hub_frontier f ON f.hub = h.hub ORDER BY h.hub");
  while (s.Step()) {
    HubCoverage c;
    c.hub = std::string(s.Text(0));
    c.push_cursor = s.Int(1);
    c.frontier = HubFrontier{s.Int(2), s.Int(3), s.Int(4), s.Int(5)};
    out.push_back(std::move(c));
  }
  return out;
}

// "(k0, k1, ...)" and "(?a, ?a+1, ...)" for row-value comparisons in key order.
std::string KeyTuple(size_t n) { return "(" + ShadowKeyList(n) + ")"; }
std::string ParamTuple(size_t n, int first) {
  std::string out = "(";
  for (size_t k = 0; k < n; ++k) out += (k ? ", ?" : "?") + std::to_string(first + static_cast<int>(k));
  return out + ")";
}

// The tombstones of one table with a version in (1, up_to], in batches. Returns how many.
uint64_t CompactTable(Conn& conn, const TableInfo& t, int64_t up_to) {
  sqlite3* db = conn.db();
  const size_t n = t.pk.size();
  const std::string cond = "(cl & 1) = 0 AND ver > " + std::to_string(kGraveVersion) + " AND ver <= ?1";
  const std::string after = " AND " + KeyTuple(n) + " > " + ParamTuple(n, 2);
  const std::string bury = "UPDATE " + t.q_meta + " SET ver = " + std::to_string(kGraveVersion) +
                           ", hlc = 0, site = 0, clk = NULL WHERE " + cond;
  uint64_t graves = 0;
  std::vector<Value> last;  // the last key of the previous batch; empty: from the start
  for (;;) {
    Savepoint sp(db, "deltasync_compact");
    // The key of the batch's last tombstone, or none when fewer than a batch remain.
    Stmt edge(db, "SELECT " + ShadowKeyList(n) + " FROM " + t.q_meta + " WHERE " + cond +
                      (last.empty() ? "" : after) + " ORDER BY " + ShadowKeyList(n) + " LIMIT 1 OFFSET " +
                      std::to_string(kBatch - 1));
    edge.BindInt(1, up_to);
    for (size_t k = 0; k < last.size(); ++k) edge.Bind(static_cast<int>(k + 2), last[k]);
    std::vector<Value> upto;
    if (edge.Step())
      for (size_t k = 0; k < n; ++k) upto.push_back(edge.Val(static_cast<int>(k)));
    edge.Reset();
    const int upto_first = 2 + static_cast<int>(last.size());
    Stmt put(db, bury + (last.empty() ? "" : after) +
                     (upto.empty() ? "" : " AND " + KeyTuple(n) + " <= " + ParamTuple(n, upto_first)));
    put.BindInt(1, up_to);
    for (size_t k = 0; k < last.size(); ++k) put.Bind(static_cast<int>(k + 2), last[k]);
    for (size_t k = 0; k < upto.size(); ++k) put.Bind(upto_first + static_cast<int>(k), upto[k]);
    put.Run();
    graves += static_cast<uint64_t>(sqlite3_changes(db));
    sp.Release();
    if (upto.empty()) return graves;
    last = std::move(upto);
  }
}

}  // namespace

nlohmann::json CompactSite(Conn& conn, const CompactOptions& options, bool only_if_due) {
  conn.EnsureSchema();
  CompactBound bound = CompactionBound(LoadCoverage(conn.db()), options);
  const int64_t compacted_to = conn.SettingInt("compacted_to", 0);
  if (only_if_due && !CompactionDue(bound.up_to, compacted_to)) return nullptr;
  uint64_t graves = 0;
  std::vector<std::pair<std::string, uint64_t>> tables;
  if (bound.up_to > kGraveVersion) {
    for (const TableInfo& t : conn.LoadTables()) {
      if (t.state != TableState::kTracked) continue;
      uint64_t g = CompactTable(conn, t, bound.up_to);
      graves += g;
      tables.emplace_back(t.name, g);
    }
    if (bound.up_to > compacted_to) conn.SetSetting("compacted_to", bound.up_to);
  }
  return CompactResultJson(bound, graves, tables);
}

void FnCompact(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    CompactOptions options;
    if (argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
      if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
        throw Error(ErrorCode::kInvalidArgument, "deltasync_compact(options) expects a JSON object (text)");
      options = ParseCompactOptions(std::string_view(
          reinterpret_cast<const char*>(sqlite3_value_text(argv[0])), sqlite3_value_bytes(argv[0])));
    }
    ResultText(ctx, CompactSite(ConnOf(ctx), options, false).dump());
  });
}

}  // namespace deltasync
