#pragma once
// The counter policy (SPEC section 3, rule 8; docs/policies.md), once for both engines and
// the hub: a counter column's value is the sum of one contribution per site in the row's
// current life. Each site writes only its own contribution, so merging is a max by
// (cl, hlc) per site; a local write of any kind moves the writer's contribution by
// (new - old). This site's own contribution is not stored: it is the value minus the
// others', so a local write needs no more than a last-writer-wins one.
#include <cstdint>
#include <string>

#include "common/row_clocks.hpp"
#include "common/value.hpp"

namespace deltasync {

// Whether an incoming contribution (written in life `in_cl` at clock `in_hlc`) replaces the
// local one of its site (`local`, nullptr when there is none), once the row's merged causal
// length is `merged_cl`: only a contribution of the row's current life counts, and of two
// from one site the later one.
bool ContributionWins(int64_t merged_cl, const Contribution* local, int64_t in_cl, uint64_t in_hlc);

// The sum of the other sites' contributions to `column` in life `cl`; throws kConstraint
// naming `table` and `column_name` when it leaves 64 bits.
int64_t OthersSum(const RowClocks& clocks, uint32_t column, int64_t cl, const std::string& table,
                  const std::string& column_name);

// a + b or a - b, refused (kConstraint, naming the counter) when it leaves 64 bits.
int64_t CounterAdd(int64_t a, int64_t b, const std::string& table, const std::string& column_name);
int64_t CounterSub(int64_t a, int64_t b, const std::string& table, const std::string& column_name);

// A counter column's stored value as an integer: NULL counts as 0; any other non-integer is
// refused (kConstraint) — a counter holds integers only.
int64_t CounterValue(const Value& v, const std::string& table, const std::string& column_name);

}  // namespace deltasync
