#pragma once
// JSON documents of json columns (SPEC section 3, rule 8; docs/policies.md), once for both
// engines and the hub: a strict parser and the canonical text every site stores and sends.
// Canonical text: no whitespace, object keys sorted by their UTF-8 bytes (a key given twice
// keeps its last value, as PostgreSQL's jsonb does), strings with the shortest escapes, and
// numbers written as PostgreSQL's numeric writes them (no exponent, the scale the input
// implies: 1.50 stays 1.50, 1e2 is 100, -0 is 0), so a document that went through a jsonb
// column reads back as the same text.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deltasync {

struct JsonValue {
  enum class Kind : uint8_t { kNull, kFalse, kTrue, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;                                        // a number's canonical digits; a string's UTF-8
  std::vector<JsonValue> items;                            // an array's elements
  std::vector<std::pair<std::string, JsonValue>> members;  // an object's members, sorted by key, unique

  bool IsObject() const { return kind == Kind::kObject; }
  // An object member by key, or nullptr.
  const JsonValue* Find(std::string_view key) const;
};

// The deepest nesting and the longest number (in digits) a json column's document may hold.
inline constexpr int kMaxJsonDepth = 128;
inline constexpr size_t kMaxJsonNumberDigits = 1000;

// Parses one JSON text (RFC 8259, whitespace around it allowed). Returns false and sets
// `error` (a short reason with its byte offset) when it is not valid JSON, nests deeper than
// kMaxJsonDepth, holds a number longer than kMaxJsonNumberDigits, a \u0000 or a lone surrogate.
bool ParseJson(std::string_view text, JsonValue& out, std::string& error);

// The canonical text of a value.
std::string CanonicalJson(const JsonValue& v);
void AppendCanonicalJson(std::string& out, const JsonValue& v);
// The canonical text of one string.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace deltasync
