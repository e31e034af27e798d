// deltasync_apply a page at a time: column arrays, the tables it applies to, key identity.
#include "pg_ext/pg_apply_page.hpp"

#include <cstring>
#include <memory>

extern "C" {
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
}

namespace deltasync {

ColumnArrays::ColumnArrays(const std::vector<Oid>& types) : elem_(types) {
  for (Oid t : types) {
    Oid arr = InvalidOid;
    int16 len = 0;
    bool byval = false;
    char align = 'i';
    PgTry([&] {
      arr = get_array_type(t);
      get_typlenbyvalalign(t, &len, &byval, &align);
    });
    if (!OidIsValid(arr)) throw Error(ErrorCode::kInternal, "type " + std::to_string(t) + " has no array type");
    array_.push_back(arr);
    len_.push_back(len);
    byval_.push_back(byval);
    align_.push_back(align);
  }
  values_.resize(types.size());
  nulls_.resize(types.size());
}

void ColumnArrays::AddRow(const Args& a, size_t first) {
  for (size_t c = 0; c < elem_.size(); ++c) Add(c, a.values[first + c], a.nulls[first + c] == 'n');
  EndRow();
}

void ColumnArrays::Add(size_t c, Datum v, bool isnull) {
  values_[c].push_back(isnull ? 0 : v);
  nulls_[c].push_back(isnull);
}

void ColumnArrays::Clear() {
  for (auto& v : values_) v.clear();
  for (auto& n : nulls_) n.clear();
  rows_ = 0;
}

Args ColumnArrays::Arrays(const std::vector<size_t>* pick) const {
  Args out;
  size_t n = pick ? pick->size() : rows_;
  std::vector<Datum> values(n);
  std::unique_ptr<bool[]> nulls(new bool[n ? n : 1]);
  for (size_t c = 0; c < elem_.size(); ++c) {
    bool any_null = false;
    for (size_t r = 0; r < n; ++r) {
      size_t from = pick ? (*pick)[r] : r;
      values[r] = values_[c][from];
      nulls[r] = nulls_[c][from];
      any_null |= nulls[r];
    }
    Datum d = 0;
    PgTry([&] {
      int dims[1] = {static_cast<int>(n)};
      int lbs[1] = {1};
      d = PointerGetDatum(construct_md_array(values.data(), any_null ? nulls.get() : nullptr, 1, dims, lbs, elem_[c],
                                             len_[c], byval_[c], align_[c]));
    });
    out.Add(array_[c], d);
  }
  return out;
}

namespace {

// Key types whose equality operator is equality of the value's bytes (text and varchar
// under a deterministic collation).
bool BytewiseKeyType(Oid type, Oid collation) {
  Oid base = InvalidOid;
  PgTry([&] { base = getBaseType(type); });
  switch (base) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case BOOLOID:
    case BYTEAOID:
    case UUIDOID:
    case DATEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return true;
    case TEXTOID:
    case VARCHAROID: {
      if (!OidIsValid(collation) || collation == DEFAULT_COLLATION_OID || collation == C_COLLATION_OID ||
          collation == POSIX_COLLATION_OID)
        return true;
      bool det = false;
      PgTry([&] { det = get_collation_isdeterministic(collation); });
      return det;
    }
    default:
      return false;
  }
}

bool HasArrayType(Oid type) {
  Oid arr = InvalidOid;
  PgTry([&] { arr = get_array_type(type); });
  return OidIsValid(arr);
}

}  // namespace

bool PageableTable(const TableInfo& t) {
  for (size_t k = 0; k < t.pk.size(); ++k) {
    Oid coll = InvalidOid;
    PgTry([&] {
      Oid type = InvalidOid;
      int32 typmod = -1;
      get_atttypetypmodcoll(t.relid, get_attnum(t.relid, t.pk[k].c_str()), &type, &typmod, &coll);
    });
    if (!BytewiseKeyType(t.pk_types[k].type, coll) || !HasArrayType(t.pk_types[k].type)) return false;
  }
  for (const ColType& c : t.col_types)
    if (!HasArrayType(c.type)) return false;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(t.relid));
  AsOwner as;
  RunSql("SELECT 1 FROM pg_class AS c WHERE c.oid = $1 AND c.relkind = 'r' AND NOT c.relhassubclass"
         " AND NOT c.relforcerowsecurity"
         " AND NOT EXISTS (SELECT 1 FROM pg_index AS i WHERE i.indrelid = c.oid AND NOT i.indisprimary"
         "  AND (i.indisunique OR i.indisexclusion))"
         " AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'x')"
         "  AND k.condeferrable)"
         " AND NOT EXISTS (SELECT 1 FROM pg_trigger AS g WHERE g.tgrelid = c.oid AND g.tgenabled IN ('A', 'R'))"
         " AND NOT EXISTS (SELECT 1 FROM pg_rewrite AS w WHERE w.ev_class = c.oid AND w.ev_enabled IN ('A', 'R')"
         "  AND w.rulename <> '_RETURN')",
         a);
  return SPI_processed == 1;
}

std::string KeyBytes(const Args& a, size_t n, const std::vector<int16>& lens, const std::vector<bool>& byvals) {
  std::string out;
  for (size_t k = 0; k < n; ++k) {
    Datum d = a.values[k];
    if (byvals[k]) {
      int64_t v = 0;
      switch (lens[k]) {
        case 1: v = DatumGetChar(d); break;
        case 2: v = DatumGetInt16(d); break;
        case 4: v = DatumGetInt32(d); break;
        default: v = DatumGetInt64(d); break;
      }
      out.append(reinterpret_cast<const char*>(&v), sizeof v);
    } else if (lens[k] > 0) {
      out.append(DatumGetPointer(d), static_cast<size_t>(lens[k]));
    } else {
      std::string_view b = VarlenaBytes(d);
      auto size = static_cast<uint32_t>(b.size());
      out.append(reinterpret_cast<const char*>(&size), sizeof size);
      out.append(b);
    }
  }
  return out;
}

std::string ParamList(size_t first, size_t n) {
  std::string out;
  for (size_t k = 0; k < n; ++k) out += (k ? ", $" : "$") + std::to_string(first + k);
  return out;
}

std::string UnnestList(size_t n) {
  std::string out;
  for (size_t k = 0; k < n; ++k) out += (k ? ", unnest($" : "unnest($") + std::to_string(k + 1) + ")";
  return out;
}

}  // namespace deltasync
