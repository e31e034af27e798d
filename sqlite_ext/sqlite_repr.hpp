#pragma once
// Column representations on SQLite (docs/types.md "Representations"): where they are stored
// (deltasync_columns), how deltasync_enable sets them, and the converter apply and collect
// use at the boundary — wire (canonical) form in payloads, local form in the base table and
// in the shadow table's keys. A table without representations converts nothing.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/schema_rules.hpp"
#include "common/value_repr.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

// The representations stored for a table, by position of `pk` and `cols` (the names as
// deltasync_tables stores them); `stored` is deltasync_columns' rows as one JSON object
// {"<column>": {"uuid": "hex32"}, ...} (or NULL text).
TableReprs TableReprsFromJson(std::string_view stored, const std::vector<std::string>& pk,
                              const std::vector<std::string>& cols);

// The column policies stored for a table (deltasync_columns' "policy" members), by position of
// `cols`; empty when every column is last-writer-wins.
std::vector<ColumnPolicy> TablePoliciesFromJson(std::string_view stored, const std::vector<std::string>& cols);

// The column_options object of deltasync_status() and deltasync_enable()'s result: per column
// its representation and its policy ({"uuid": "hex32"}, {"policy": "counter"}).
nlohmann::json ColumnOptionsJson(const std::vector<std::string>& pk, const std::vector<std::string>& cols,
                                 const TableReprs& r, const std::vector<ColumnPolicy>& policies);

// Rewrites the table's rows of deltasync_columns from `r` and `policies`, by position of the
// current names.
void SaveTableReprs(sqlite3* db, int64_t table_id, const std::vector<std::string>& pk,
                    const std::vector<std::string>& cols, const TableReprs& r,
                    const std::vector<ColumnPolicy>& policies);

// deltasync_enable's part: resolves the requested columns against the table's, refuses a
// change of representation once rows are stored (unless the shadow table is empty), checks
// every value the table holds in a newly represented column, and saves the result. `known`
// is the stored state of a table enabled before (nullptr for a new one). Returns the
// representations now in force.
TableReprs EnableTableReprs(sqlite3* db, const std::string& table, const std::vector<std::string>& pk,
                            const std::vector<std::string>& cols, const TableInfo* known,
                            const std::vector<ColumnOption>& requested);

// deltasync_enable's part for policies (docs/policies.md): resolves the requested columns,
// refuses a policy a column cannot take (a key column; a counter that is not an INTEGER
// column) and a change of policy once rows are tracked, and saves the result with `reprs`.
// Columns the call does not name keep their policy. Returns the policies now in force.
std::vector<ColumnPolicy> EnableTablePolicies(sqlite3* db, const std::string& table, const std::vector<std::string>& pk,
                                              const std::vector<std::string>& cols, const TableInfo* known,
                                              const std::vector<ColumnOption>& requested, const TableReprs& reprs);

// Removes a table's representations (deltasync_disable).
void DropTableReprs(sqlite3* db, int64_t table_id);

// Converts one table's keys and values between wire and local form. Every call on a table
// without representations returns its argument untouched.
class SqliteRepr {
 public:
  // `as_stored`: convert nothing at all (a reader that only counts).
  explicit SqliteRepr(const TableInfo& t, bool as_stored = false);
  bool AnyKey() const { return any_key_; }

  // The key in local form (a reference to `key` itself, or to storage valid until the next call).
  const std::vector<Value>& KeyToLocal(const std::vector<Value>& key);
  // Non-key column `column`'s value in local form (`v` itself, or storage valid until the
  // next call for that column).
  const Value& ToLocal(uint32_t column, const Value& v) {
    if (!any_) return v;
    return ConvertToLocal(column, v);
  }
  // In place, local to wire; a key part of the type in another spelling throws when
  // `strict`, else makes it return false.
  bool KeyToWire(std::vector<Value>& key, bool strict);
  // In place, local to wire; throws for a value of the type in another spelling.
  void ToWire(uint32_t column, Value& v) {
    if (any_ && t_.reprs.Col(column) != ReprForm::kNone) ToWireOrThrow(t_.reprs.Col(column), v, t_.name, t_.cols[column]);
  }

 private:
  const Value& ConvertToLocal(uint32_t column, const Value& v);

  const TableInfo& t_;
  bool any_ = false;      // some column converts
  bool any_key_ = false;  // some key column converts
  std::vector<Value> key_;   // KeyToLocal's result
  std::vector<Value> cols_;  // ToLocal's results, by column
};

}  // namespace deltasync
