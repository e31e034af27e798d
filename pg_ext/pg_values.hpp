#pragma once
// PostgreSQL datums <-> the travelling value model (SPEC section 4, docs/types.md):
// int2/int4/int8 and bool -> integer, float4/float8 -> real, bytea -> blob,
// text/varchar/char -> text, every other type -> its canonical text form (the calling SQL
// function pins the settings that make output canonical: TimeZone UTC, ISO dates, ...).
// Applying converts back through the column's type, so a value that does not fit is a
// PostgreSQL input error, which the caller turns into a deltasync error.
#include <string>

#include "common/value.hpp"
#include "pg_ext/pg_boundary.hpp"

namespace deltasync {

enum class PgKind { kInt2, kInt4, kInt8, kFloat4, kFloat8, kBool, kBytea, kText, kOther };

struct ColType {
  Oid type = InvalidOid;  // as declared (may be a domain)
  int32 typmod = -1;
  PgKind kind = PgKind::kOther;  // of the base type
  bool domain = false;           // values go through the domain's input, which checks it
  // The input function is built in and runs no other type's input (not a domain, array,
  // composite, range or enum): no code of a table's owner can run in it.
  bool builtin_input = false;
  FmgrInfo out{};
  FmgrInfo in{};
  Oid ioparam = InvalidOid;
  std::string name;  // format_type_with_typemod, for SQL text and messages
};

ColType MakeColType(Oid type, int32 typmod);

Value ToValue(const ColType& t, Datum d, bool isnull);
// Throws PgError (the input function's SQLSTATE) when the value does not fit the type.
Datum FromValue(const ColType& t, const Value& v, bool* isnull);

}  // namespace deltasync
