#include "common/value.hpp"

#include <cstring>
#include <sstream>

namespace deltasync {

bool operator==(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case ValueType::kNull: return true;
    case ValueType::kInteger: return a.i == b.i;
    case ValueType::kReal: return std::memcmp(&a.r, &b.r, sizeof(double)) == 0;
    case ValueType::kText:
    case ValueType::kBlob: return a.s == b.s;
  }
  return false;
}

std::string DebugString(const Value& v) {
  std::ostringstream os;
  switch (v.type) {
    case ValueType::kNull: os << "NULL"; break;
    case ValueType::kInteger: os << v.i; break;
    case ValueType::kReal: os.precision(17); os << v.r << "r"; break;
    case ValueType::kText: os << "'" << v.s.substr(0, 40) << (v.s.size() > 40 ? "...'" : "'"); break;
    case ValueType::kBlob: os << "blob(" << v.s.size() << ")"; break;
  }
  return os.str();
}

}  // namespace deltasync
