#include "common/payload.hpp"

#include <set>

#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/json_merge.hpp"
#include "common/utf8.hpp"

namespace deltasync {

static Error Invalid(const std::string& what) {
  return Error(ErrorCode::kInvalidPayload, "invalid payload: " + what);
}

std::string KeyMismatch(const std::vector<std::string>& held_pk, const std::vector<std::string>& held_cols,
                        const std::vector<std::string>& incoming_pk, const std::vector<std::string>& incoming_cols) {
  if (held_pk.size() != incoming_pk.size())
    return std::to_string(incoming_pk.size()) + " key column(s) where " + std::to_string(held_pk.size()) + " are held";
  auto among = [](const std::string& name, const std::vector<std::string>& cols) {
    for (const std::string& c : cols)
      if (EqualsIgnoreAsciiCase(c, name)) return true;
    return false;
  };
  for (size_t k = 0; k < held_pk.size(); ++k) {
    if (EqualsIgnoreAsciiCase(held_pk[k], incoming_pk[k])) continue;
    if (among(incoming_pk[k], held_cols))
      return "key column \"" + incoming_pk[k] + "\" is a non-key column here";
    if (among(held_pk[k], incoming_cols))
      return "key column \"" + held_pk[k] + "\" is a non-key column there";
    if (among(incoming_pk[k], held_pk))
      return "key column \"" + incoming_pk[k] + "\" is at another position here";
  }
  return "";
}

void ValidatePayload(const Payload& p) {
  if (p.since < 0 || p.until < p.since) throw Invalid("since/until out of order");
  std::set<std::string> names;
  for (const TableChanges& t : p.tables) {
    if (t.name.empty()) throw Invalid("table with an empty name");
    if (!names.insert(t.name).second) throw Invalid("table \"" + t.name + "\" appears twice");
    if (t.pk.empty()) throw Invalid("table \"" + t.name + "\" has no primary key columns");
    std::set<std::string> cols;
    for (const auto& c : t.pk)
      if (c.empty() || !cols.insert(c).second) throw Invalid("table \"" + t.name + "\": bad key column list");
    for (const auto& c : t.columns)
      if (c.empty() || !cols.insert(c).second) throw Invalid("table \"" + t.name + "\": bad column list");
    // The row (numbered from 1) that last changed each column: one array per table, so a
    // row costs its changes rather than the table's width (a bitmap per row made a wide
    // table with many rows quadratic: seconds per megabyte of payload).
    if (!t.policies.empty() && t.policies.size() != t.columns.size())
      throw Invalid("table \"" + t.name + "\": one policy per column expected");
    bool counters = AnyPolicy(t.policies);
    std::vector<size_t> changed_in(t.columns.size(), 0);
    std::set<std::pair<uint32_t, uint32_t>> contributed;  // (column, site) of a row's counter changes
    std::set<std::pair<uint32_t, std::string>> members;   // (column, path) of a row's json member changes
    size_t row_number = 0;
    for (const RowChanges& r : t.rows) {
      ++row_number;
      if (r.key.size() != t.pk.size()) throw Invalid("table \"" + t.name + "\": key has the wrong arity");
      for (const Value& v : r.key)
        if (v.IsNull()) throw Invalid("table \"" + t.name + "\": NULL in a primary key");
      if (r.cl < 1) throw Invalid("table \"" + t.name + "\": causal length must be >= 1");
      if (r.cl > kMaxCausalLength)
        throw Invalid("table \"" + t.name + "\": causal length " + std::to_string(r.cl) +
                      " is beyond the largest accepted (2^62)");
      if (counters) {
        contributed.clear();
        members.clear();
      }
      for (const ColumnChange& c : r.changes) {
        if (c.column >= t.columns.size()) throw Invalid("table \"" + t.name + "\": column index out of range");
        if (counters && t.policies[c.column] == ColumnPolicy::kCounter) {
          if (!contributed.emplace(c.column, c.site).second)
            throw Invalid("table \"" + t.name + "\": a site contributes twice to a counter in one row");
          if (c.value.type != ValueType::kInteger)
            throw Invalid("table \"" + t.name + "\": a contribution to counter \"" + t.columns[c.column] +
                          "\" is not an integer");
        } else if (counters && t.policies[c.column] == ColumnPolicy::kJson) {
          JsonPath path;
          bool present;
          std::string value, error;
          if (c.value.type != ValueType::kText || !DecodeMemberChange(c.value.s, path, present, value, error))
            throw Invalid("table \"" + t.name + "\": a change of json column \"" + t.columns[c.column] +
                          "\" is not a member change ([path] or [path, value] in canonical JSON)" +
                          (error.empty() ? std::string() : ": " + error));
          if (!members.emplace(c.column, PathText(path)).second)
            throw Invalid("table \"" + t.name + "\": a json member changes twice in one row");
        } else {
          if (changed_in[c.column] == row_number)
            throw Invalid("table \"" + t.name + "\": a column changes twice in one row");
          changed_in[c.column] = row_number;
        }
        if (c.site >= p.sites.size()) throw Invalid("table \"" + t.name + "\": site index out of range");
        if (c.hlc == 0 || HlcMillis(c.hlc) == 0) throw Invalid("table \"" + t.name + "\": missing clock");
        if (c.hlc > kMaxHlc)
          throw Invalid("table \"" + t.name + "\": clock " + std::to_string(c.hlc) +
                        " is beyond the largest accepted (2^62 - 1: milliseconds up to the year 4199)");
        if (c.cl < 1 || (c.cl & 1) == 0 || c.cl > r.cl)
          throw Invalid("table \"" + t.name + "\": a column's causal length must be odd and <= the row's");
      }
    }
  }
}

void DropUnusedSites(Payload& p) {
  constexpr uint32_t kUnused = UINT32_MAX;
  std::vector<uint32_t> renumber(p.sites.size(), kUnused);
  for (const TableChanges& t : p.tables)
    for (const RowChanges& r : t.rows)
      for (const ColumnChange& c : r.changes) renumber[c.site] = 0;
  uint32_t kept = 0;
  for (size_t k = 0; k < p.sites.size(); ++k) {
    if (renumber[k] == kUnused) continue;
    renumber[k] = kept;
    p.sites[kept++] = p.sites[k];
  }
  if (kept == p.sites.size()) return;
  p.sites.resize(kept);
  for (TableChanges& t : p.tables)
    for (RowChanges& r : t.rows)
      for (ColumnChange& c : r.changes) c.site = renumber[c.site];
}

int PayloadVersionOf(const Payload& p) {
  for (const TableChanges& t : p.tables)
    if (AnyPolicy(t.policies)) return kPayloadVersionPolicies;
  return kPayloadVersion;
}

uint64_t MaxHlc(const Payload& p) {
  uint64_t m = 0;
  for (const auto& t : p.tables)
    for (const auto& r : t.rows)
      for (const auto& c : r.changes)
        if (c.hlc > m) m = c.hlc;
  return m;
}

uint64_t CountChanges(const TableChanges& t) {
  uint64_t n = 0;
  for (const auto& r : t.rows) n += r.changes.empty() ? 1 : r.changes.size();
  return n;
}

}  // namespace deltasync
