#pragma once
// Column representations (docs/types.md "Representations"): how a SQLite column spells a
// value whose wire form is PostgreSQL's canonical text — a uuid as 32 hex digits or 16 bytes,
// a timestamp as naive UTC text — so an ORM on SQLite finds rows that came from PostgreSQL
// and a key written on both engines stays one row. The conversions are a bijection between
// the local spelling and the canonical one; values that are not of the column's type at all
// pass unchanged both ways, and values of the type in any other spelling are refused (they
// would turn into a second key somewhere).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/value.hpp"

namespace deltasync {

// A column's representation; kNone keeps values as they are (the default).
enum class ReprForm : uint8_t {
  kNone,
  kUuidDashed,         // uuid: 8-4-4-4-12 lowercase hex, the wire form itself (other spellings refused)
  kUuidHex32,          // uuid: 32 lowercase hex digits (Django's UUIDField on SQLite)
  kUuidBlob,           // uuid: its 16 bytes as a blob
  kTimestampNaiveUtc,  // timestamp: YYYY-MM-DD HH:MM:SS[.ffffff] in UTC, fraction only when not zero (Django)
  kTimestampNaiveUtcUs,  // timestamp: YYYY-MM-DD HH:MM:SS.ffffff in UTC, always 6 digits (SQLAlchemy)
  kTimestampIsoUtcMs,  // timestamp: YYYY-MM-DDTHH:MM:SS.mmmZ (JavaScript's toISOString)
};

// The form named `form` of the kind named `kind` ("uuid" or "timestamp"); throws
// kInvalidArgument naming the known ones.
ReprForm ParseReprForm(std::string_view kind, std::string_view form);
// "uuid" or "timestamp" ("" for kNone).
const char* ReprKindName(ReprForm f);
// The form's option name ("hex32", "naive_utc", ...; "" for kNone).
const char* ReprFormName(ReprForm f);
// The local spelling in words, for error messages.
const char* ReprFormDescription(ReprForm f);
// The option object of a column: {"uuid": "hex32"}; an empty object for kNone.
nlohmann::json ReprJson(ReprForm f);

// The representations of one table's columns, by position (missing entries are kNone).
struct TableReprs {
  std::vector<ReprForm> pk, cols;
  bool any = false;  // some column has one: tables without any skip every conversion

  // Sets `any` from the vectors.
  void Refresh();
  ReprForm Pk(size_t k) const { return k < pk.size() ? pk[k] : ReprForm::kNone; }
  ReprForm Col(size_t k) const { return k < cols.size() ? cols[k] : ReprForm::kNone; }
};

// What a conversion found.
enum class ReprOutcome : uint8_t {
  kAsIs,           // not a value of the column's type (NULL, a number, other text): it travels unchanged
  kConverted,      // `out` holds the value in the other spelling
  kOtherSpelling,  // a value of the type, but not in the spelling expected here: refuse it
};

// Local (as the SQLite column stores it) to wire (canonical text).
ReprOutcome LocalToWire(ReprForm f, const Value& local, Value& out);
// Wire to local; kOtherSpelling also for a canonical value the local form cannot hold (a
// timestamp with microseconds into a milliseconds form).
ReprOutcome WireToLocal(ReprForm f, const Value& wire, Value& out);

// LocalToWire in place; throws kInvalidArgument naming the table and column on kOtherSpelling.
void ToWireOrThrow(ReprForm f, Value& v, const std::string& table, const std::string& column);
// WireToLocal into `out` (true) or false when `v` travels as it is; throws kConstraint
// naming the table and column on kOtherSpelling.
bool ToLocalOrThrow(ReprForm f, const Value& v, Value& out, const std::string& table, const std::string& column);

}  // namespace deltasync
