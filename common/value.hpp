#pragma once
// A column value as it travels between engines: NULL, int64, IEEE double, UTF-8 text or blob.
#include <cstdint>
#include <string>
#include <string_view>

namespace deltasync {

enum class ValueType : uint8_t { kNull = 0, kInteger = 1, kReal = 2, kText = 3, kBlob = 4 };

struct Value {
  ValueType type = ValueType::kNull;
  int64_t i = 0;
  double r = 0.0;
  std::string s;  // text bytes or blob bytes

  static Value Null() { return Value{}; }
  static Value Integer(int64_t v) { Value x; x.type = ValueType::kInteger; x.i = v; return x; }
  static Value Real(double v) { Value x; x.type = ValueType::kReal; x.r = v; return x; }
  static Value Text(std::string_view v) { Value x; x.type = ValueType::kText; x.s = v; return x; }
  static Value Blob(std::string_view v) { Value x; x.type = ValueType::kBlob; x.s = v; return x; }

  bool IsNull() const { return type == ValueType::kNull; }
};

// Exact equality: same storage class and same bytes (doubles compared bit for bit).
bool operator==(const Value& a, const Value& b);
inline bool operator!=(const Value& a, const Value& b) { return !(a == b); }

// A short human-readable rendering, for error messages and test output.
std::string DebugString(const Value& v);

}  // namespace deltasync
