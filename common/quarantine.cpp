#include "common/quarantine.hpp"

#include <ctime>
#include <map>

#include "common/json_merge.hpp"
#include "common/merge.hpp"
#include "common/utf8.hpp"

namespace deltasync {

namespace {

// The key values of a one-row payload as JSON (the payload's value form).
nlohmann::json KeyJson(const std::string& changes) {
  nlohmann::json p = nlohmann::json::parse(changes, nullptr, false);
  if (p.is_discarded() || !p.contains("tables") || p["tables"].empty() || p["tables"][0]["rows"].empty())
    return nullptr;
  return p["tables"][0]["rows"][0]["key"];
}

// ms since the epoch as ISO 8601 UTC text with milliseconds.
std::string IsoUtc(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

Payload HeldPayload(const TableChanges& tc, const RowChanges& r, const std::vector<SiteId>& sites) {
  Payload p;
  TableChanges t;
  t.name = tc.name;
  t.pk = tc.pk;
  t.columns = tc.columns;
  t.policies = tc.policies;
  RowChanges row;
  row.key = r.key;
  row.cl = r.cl;
  std::map<uint32_t, uint32_t> renumber;  // payload site index -> index in p.sites
  for (const ColumnChange& c : r.changes) {
    auto it = renumber.find(c.site);
    if (it == renumber.end()) {
      it = renumber.emplace(c.site, static_cast<uint32_t>(p.sites.size())).first;
      p.sites.push_back(sites[c.site]);
    }
    ColumnChange moved = c;
    moved.site = it->second;
    row.changes.push_back(std::move(moved));
  }
  t.rows.push_back(std::move(row));
  p.tables.push_back(std::move(t));
  return p;
}

void MergeHeld(Payload& held, const Payload& more) {
  TableChanges& t = held.tables[0];
  RowChanges& row = t.rows[0];
  const TableChanges& mt = more.tables[0];
  const RowChanges& mr = mt.rows[0];
  row.cl = std::max(row.cl, mr.cl);
  for (const ColumnChange& c : mr.changes) {
    const std::string& name = mt.columns[c.column];
    uint32_t col = 0;
    while (col < t.columns.size() && !EqualsIgnoreAsciiCase(t.columns[col], name)) ++col;
    if (col == t.columns.size()) {
      t.columns.push_back(name);
      if (!t.policies.empty() || AnyPolicy(mt.policies)) {
        t.policies.resize(col, ColumnPolicy::kLww);
        t.policies.push_back(PolicyAt(mt.policies, c.column));
      }
    }
    const bool counter = PolicyAt(t.policies, col) == ColumnPolicy::kCounter;  // one change per contributor
    const bool json = PolicyAt(t.policies, col) == ColumnPolicy::kJson;        // one change per member
    uint32_t site = 0;
    const SiteId& origin = more.sites[c.site];
    while (site < held.sites.size() && held.sites[site] != origin) ++site;
    if (site == held.sites.size()) held.sites.push_back(origin);
    ColumnChange moved = c;
    moved.column = col;
    moved.site = site;
    ColumnChange* mine = nullptr;
    for (ColumnChange& h : row.changes)
      if (h.column == col && (!counter || held.sites[h.site] == origin) &&
          (!json || MemberChangePath(h.value.s) == MemberChangePath(c.value.s)))
        mine = &h;
    if (!mine) {
      row.changes.push_back(std::move(moved));
    } else if (CompareClocks(Clock{c.cl, c.hlc, origin}, Clock{mine->cl, mine->hlc, held.sites[mine->site]}) > 0) {
      *mine = std::move(moved);
    }
  }
}

std::string KeyText(const std::vector<Value>& key) {
  Payload p;
  p.tables.push_back(TableChanges{"t", {}, {}, {RowChanges{key, 1, {}}}});
  return KeyJson(EncodeJson(p)).dump();
}

nlohmann::json QuarantineDocument(const std::vector<HeldRow>& rows) {
  nlohmann::json list = nlohmann::json::array();
  for (const HeldRow& h : rows)
    list.push_back({{"table", h.table}, {"key", KeyJson(h.changes)}, {"error", h.error}, {"since", IsoUtc(h.since_ms)}});
  return {{"held", rows.size()}, {"rows", std::move(list)}};
}

}  // namespace deltasync
