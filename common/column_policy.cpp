#include "common/column_policy.hpp"

#include "common/error.hpp"

namespace deltasync {

ColumnPolicy ParsePolicy(std::string_view name, const std::string& column) {
  if (name == "lww") return ColumnPolicy::kLww;
  if (name == "counter") return ColumnPolicy::kCounter;
  if (name == "json") return ColumnPolicy::kJson;
  throw Error(ErrorCode::kInvalidArgument, "unknown policy \"" + std::string(name) + "\" for column \"" + column +
                                               "\" (known: lww, counter, json)");
}

const char* PolicyName(ColumnPolicy p) {
  return p == ColumnPolicy::kCounter ? "counter" : p == ColumnPolicy::kJson ? "json" : "lww";
}

bool AnyPolicy(const std::vector<ColumnPolicy>& v) {
  for (ColumnPolicy p : v)
    if (p != ColumnPolicy::kLww) return true;
  return false;
}

void CheckColumnPolicy(const std::string& table, const std::string& column, ColumnPolicy p, bool is_key,
                       bool type_fits, const std::string& type) {
  if (p == ColumnPolicy::kLww) return;
  if (is_key)
    throw Error(ErrorCode::kInvalidArgument, "column \"" + column + "\" of table \"" + table +
                                                 "\" is part of the primary key and cannot be a " + PolicyName(p) +
                                                 " (a key identifies the row on every site)");
  if (p == ColumnPolicy::kJson && !type_fits)
    throw Error(ErrorCode::kInvalidArgument,
                "column \"" + column + "\" of table \"" + table + "\" is declared \"" + type +
                    "\"; a json column must hold JSON text (SQLite: TEXT or JSON, PostgreSQL: json or jsonb)");
  if (p == ColumnPolicy::kCounter && !type_fits)
    throw Error(ErrorCode::kInvalidArgument,
                "column \"" + column + "\" of table \"" + table + "\" is declared " +
                    (type.empty() ? std::string("without a type") : "\"" + type + "\"") +
                    "; a counter must be an integer column (SQLite: INTEGER, PostgreSQL: smallint, integer, bigint)");
}

void CheckPolicyChange(const std::string& table, const std::string& column, ColumnPolicy from, ColumnPolicy to,
                       int64_t rows) {
  if (from == to || rows == 0) return;
  throw Error(ErrorCode::kInvalidArgument,
              "column \"" + column + "\" of table \"" + table + "\" merges as " + PolicyName(from) +
                  "; changing it to " + PolicyName(to) + " would merge the " + std::to_string(rows) +
                  " rows deltasync already tracks two ways across sites. Change a policy only while the table "
                  "tracks no row: deltasync_disable('" + table + "'), empty it on every site, enable it with the new "
                  "policy (docs/policies.md)");
}

void CheckIncomingPolicies(const std::string& table, const std::vector<std::string>& columns,
                           const std::vector<ColumnPolicy>& incoming, const std::vector<ColumnPolicy>& local,
                           const std::vector<uint32_t>& to_local) {
  for (size_t k = 0; k < to_local.size(); ++k) {
    ColumnPolicy in = PolicyAt(incoming, k), here = PolicyAt(local, to_local[k]);
    if (in != here)
      throw Error(ErrorCode::kInvalidPayload,
                  "table \"" + table + "\": column \"" + columns[k] + "\" merges as " + PolicyName(in) +
                      " where the changes come from but as " + PolicyName(here) +
                      " here; declare it alike on every site (deltasync_enable's \"columns\" option)");
  }
}

}  // namespace deltasync
