#pragma once
// Column policies (SPEC section 3, rule 8; docs/policies.md): how a column merges. The
// default is last-writer-wins; a counter column keeps one contribution per site and shows
// their sum. Declared by deltasync_enable, stored per table, carried in every payload so a
// site or hub whose declaration disagrees refuses the changes instead of merging them
// another way.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace deltasync {

enum class ColumnPolicy : uint8_t {
  kLww = 0,      // column-level last-writer-wins (rules 2 and 3)
  kCounter = 1,  // an integer: per-site contributions, value = their sum
  kJson = 2,     // a JSON object: merged member by member (common/json_merge.hpp)
};
inline constexpr ColumnPolicy kLastPolicy = ColumnPolicy::kJson;

// The policy named `name` ("lww", "counter", "json") for column `column`; throws kInvalidArgument
// naming the known ones.
ColumnPolicy ParsePolicy(std::string_view name, const std::string& column);
// "lww", "counter" or "json".
const char* PolicyName(ColumnPolicy p);
// The policy of column k (kLww past the end: a table without policies keeps an empty vector).
inline ColumnPolicy PolicyAt(const std::vector<ColumnPolicy>& v, size_t k) {
  return k < v.size() ? v[k] : ColumnPolicy::kLww;
}
// True when some column has a policy other than kLww.
bool AnyPolicy(const std::vector<ColumnPolicy>& v);

// Refuses (kInvalidArgument) a policy for a column that cannot take it: a key column, a
// counter whose declared type `type` is not an integer type, or a json column whose type
// cannot hold JSON text (`type_fits` is the engine's verdict on the type for the policy).
void CheckColumnPolicy(const std::string& table, const std::string& column, ColumnPolicy p, bool is_key,
                       bool type_fits, const std::string& type);

// Refuses (kInvalidArgument) changing column `column`'s policy from `from` to `to` on a table
// that already tracks `rows` rows: the stored values were merged the old way, and sites that
// switch at different times would merge one change two ways. The same policy, or any change
// while no row is tracked, is safe.
void CheckPolicyChange(const std::string& table, const std::string& column, ColumnPolicy from, ColumnPolicy to,
                       int64_t rows);

// Refuses (kInvalidPayload) a payload table whose declared policy for a column differs from
// the local one: `incoming` by payload column, `local` by local column, `to_local` maps the
// first onto the second.
void CheckIncomingPolicies(const std::string& table, const std::vector<std::string>& columns,
                           const std::vector<ColumnPolicy>& incoming, const std::vector<ColumnPolicy>& local,
                           const std::vector<uint32_t>& to_local);

}  // namespace deltasync
