// Value conversion between PostgreSQL datums and the value model (see pg_values.hpp).
#include "pg_ext/pg_values.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "pg_ext/pg_spi.hpp"

extern "C" {
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "utils/fmgroids.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "common/shortest_dec.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
}

namespace deltasync {

namespace {

PgKind KindOf(Oid base) {
  switch (base) {
    case INT2OID: return PgKind::kInt2;
    case INT4OID: return PgKind::kInt4;
    case INT8OID: return PgKind::kInt8;
    case FLOAT4OID: return PgKind::kFloat4;
    case FLOAT8OID: return PgKind::kFloat8;
    case BOOLOID: return PgKind::kBool;
    case BYTEAOID: return PgKind::kBytea;
    case TEXTOID:
    case VARCHAROID:
    case BPCHAROID: return PgKind::kText;
    default: return PgKind::kOther;
  }
}

[[noreturn]] void DoesNotFit(const ColType& t, const std::string& what) {
  throw PgError(ERRCODE_DATATYPE_MISMATCH, ErrorCode::kConstraint, what + " does not fit type " + t.name);
}

// The canonical text of a double (shortest exact form, as float8out with extra_float_digits > 0).
std::string RealText(double d) {
  char buf[64];
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  int n = double_to_shortest_decimal_buf(d, buf);
  return std::string(buf, n);
}

Datum InputText(const ColType& t, const std::string& text) {
  if (text.find('\0') != std::string::npos)
    throw PgError(ERRCODE_UNTRANSLATABLE_CHARACTER, ErrorCode::kConstraint,
                  "text with a NUL byte cannot be stored in PostgreSQL (type " + t.name + ")");
  Datum d = 0;
  PgTry([&] {
    pg_verifymbstr(text.data(), static_cast<int>(text.size()), false);
    d = InputFunctionCall(const_cast<FmgrInfo*>(&t.in), const_cast<char*>(text.c_str()), t.ioparam, t.typmod);
  });
  return d;
}

}  // namespace

ColType MakeColType(Oid type, int32 typmod) {
  ColType t;
  t.type = type;
  t.typmod = typmod;
  PgTry([&] {
    Oid base = getBaseType(type);
    t.domain = base != type;
    t.kind = KindOf(base);
    Oid out_fn = InvalidOid, in_fn = InvalidOid;
    bool varlena = false;
    getTypeOutputInfo(type, &out_fn, &varlena);
    getTypeInputInfo(type, &in_fn, &t.ioparam);
    fmgr_info(out_fn, &t.out);
    fmgr_info(in_fn, &t.in);
    t.builtin_input = !t.domain && get_typtype(type) == TYPTYPE_BASE && in_fn < FirstNormalObjectId && in_fn != F_ARRAY_IN;
    char* name = format_type_with_typemod(type, typmod);
    t.name = name;
    pfree(name);
  });
  return t;
}

Value ToValue(const ColType& t, Datum d, bool isnull) {
  if (isnull) return Value::Null();
  switch (t.kind) {
    case PgKind::kInt2: return Value::Integer(DatumGetInt16(d));
    case PgKind::kInt4: return Value::Integer(DatumGetInt32(d));
    case PgKind::kInt8: return Value::Integer(DatumGetInt64(d));
    case PgKind::kFloat4: return Value::Real(static_cast<double>(DatumGetFloat4(d)));
    case PgKind::kFloat8: return Value::Real(DatumGetFloat8(d));
    case PgKind::kBool: return Value::Integer(DatumGetBool(d) ? 1 : 0);
    case PgKind::kBytea: return Value::Blob(VarlenaBytes(d));
    case PgKind::kText: return Value::Text(VarlenaBytes(d));
    case PgKind::kOther: break;
  }
  std::string out;
  PgTry([&] {
    char* s = OutputFunctionCall(const_cast<FmgrInfo*>(&t.out), d);
    out = s;  // std::string assignment cannot longjmp; a bad_alloc here is caught by the boundary
    pfree(s);
  });
  return Value::Text(out);
}

Datum FromValue(const ColType& t, const Value& v, bool* isnull) {
  *isnull = v.IsNull();
  if (v.IsNull()) return 0;
  if (t.domain) {  // through the domain's input: its constraints are checked
    switch (v.type) {
      case ValueType::kInteger: return InputText(t, std::to_string(v.i));
      case ValueType::kReal: return InputText(t, RealText(v.r));
      case ValueType::kText: return InputText(t, v.s);
      default: break;
    }
    if (t.kind != PgKind::kBytea) DoesNotFit(t, "a blob");
  }
  switch (t.kind) {
    case PgKind::kInt2:
    case PgKind::kInt4:
    case PgKind::kInt8: {
      int64_t i = 0;
      if (v.type == ValueType::kInteger) {
        i = v.i;
      } else if (v.type == ValueType::kReal && std::isfinite(v.r) && std::trunc(v.r) == v.r &&
                 v.r >= -9223372036854775808.0 && v.r < 9223372036854775808.0) {
        i = static_cast<int64_t>(v.r);
      } else if (v.type == ValueType::kText) {
        return InputText(t, v.s);
      } else {
        DoesNotFit(t, v.type == ValueType::kBlob ? "a blob" : "real " + RealText(v.r));
      }
      if (t.kind == PgKind::kInt8) return Int64GetDatum(i);
      if (t.kind == PgKind::kInt4 && i >= std::numeric_limits<int32>::min() && i <= std::numeric_limits<int32>::max())
        return Int32GetDatum(static_cast<int32>(i));
      if (t.kind == PgKind::kInt2 && i >= std::numeric_limits<int16>::min() && i <= std::numeric_limits<int16>::max())
        return Int16GetDatum(static_cast<int16>(i));
      throw PgError(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, ErrorCode::kConstraint,
                    "integer " + std::to_string(i) + " is out of range for type " + t.name);
    }
    case PgKind::kFloat4:
    case PgKind::kFloat8: {
      double r = 0;
      if (v.type == ValueType::kReal) r = v.r;
      else if (v.type == ValueType::kInteger) r = static_cast<double>(v.i);
      else if (v.type == ValueType::kText) return InputText(t, v.s);
      else DoesNotFit(t, "a blob");
      if (t.kind == PgKind::kFloat8) return Float8GetDatum(r);
      float f = static_cast<float>(r);
      if (std::isinf(f) && !std::isinf(r))
        throw PgError(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, ErrorCode::kConstraint,
                      "real " + RealText(r) + " is out of range for type real");
      return Float4GetDatum(f);
    }
    case PgKind::kBool:
      if (v.type == ValueType::kInteger && (v.i == 0 || v.i == 1)) return BoolGetDatum(v.i == 1);
      if (v.type == ValueType::kText) return InputText(t, v.s);
      DoesNotFit(t, v.type == ValueType::kInteger ? "integer " + std::to_string(v.i) : "this value");
    case PgKind::kBytea:
      if (v.type == ValueType::kBlob || v.type == ValueType::kText) {
        Datum d = 0;
        PgTry([&] {
          bytea* b = static_cast<bytea*>(palloc(VARHDRSZ + v.s.size()));
          SET_VARSIZE(b, VARHDRSZ + v.s.size());
          if (!v.s.empty()) memcpy(VARDATA(b), v.s.data(), v.s.size());
          d = PointerGetDatum(b);
        });
        return d;
      }
      DoesNotFit(t, "a number");
    case PgKind::kText:
      if (v.type == ValueType::kText || v.type == ValueType::kBlob) {
        if (t.typmod >= 0 || v.s.find('\0') != std::string::npos) return InputText(t, v.s);
        Datum d = 0;
        PgTry([&] {
          pg_verifymbstr(v.s.data(), static_cast<int>(v.s.size()), false);
          d = PointerGetDatum(cstring_to_text_with_len(v.s.data(), static_cast<int>(v.s.size())));
        });
        return d;
      }
      return InputText(t, v.type == ValueType::kInteger ? std::to_string(v.i) : RealText(v.r));
    case PgKind::kOther:
      break;
  }
  switch (v.type) {
    case ValueType::kInteger: return InputText(t, std::to_string(v.i));
    case ValueType::kReal: return InputText(t, RealText(v.r));
    case ValueType::kText: return InputText(t, v.s);
    default: DoesNotFit(t, "a blob");
  }
}

}  // namespace deltasync
