#include "common/counter.hpp"

#include "common/error.hpp"

namespace deltasync {

namespace {

Error Overflow(const std::string& table, const std::string& column_name) {
  return Error(ErrorCode::kConstraint, "counter \"" + column_name + "\" of table \"" + table +
                                           "\" would leave the 64-bit integer range; the change is refused");
}

}  // namespace

bool ContributionWins(int64_t merged_cl, const Contribution* local, int64_t in_cl, uint64_t in_hlc) {
  if (in_cl != merged_cl) return false;  // an older life's contribution: the delete discarded it
  if (!local || local->cl < in_cl) return true;
  return local->cl == in_cl && in_hlc > local->hlc;
}

int64_t OthersSum(const RowClocks& clocks, uint32_t column, int64_t cl, const std::string& table,
                  const std::string& column_name) {
  int64_t sum = 0;
  for (const Contribution& c : clocks.Contributions())
    if (c.column == column && c.cl == cl) sum = CounterAdd(sum, c.value, table, column_name);
  return sum;
}

int64_t CounterAdd(int64_t a, int64_t b, const std::string& table, const std::string& column_name) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) throw Overflow(table, column_name);
  return out;
}

int64_t CounterSub(int64_t a, int64_t b, const std::string& table, const std::string& column_name) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) throw Overflow(table, column_name);
  return out;
}

int64_t CounterValue(const Value& v, const std::string& table, const std::string& column_name) {
  if (v.type == ValueType::kNull) return 0;
  if (v.type != ValueType::kInteger)
    throw Error(ErrorCode::kConstraint,
                "counter \"" + column_name + "\" of table \"" + table + "\" holds a value that is not an integer");
  return v.i;
}

}  // namespace deltasync
