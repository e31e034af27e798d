#pragma once
// What the fuzz targets share: a check that aborts (so libFuzzer keeps the input as a
// crash), exact equality of payload models, and the input as text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/error.hpp"
#include "common/payload.hpp"

// Aborts with the failed condition: libFuzzer reports it as a crash and saves the input.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace deltasync::fuzz {

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Every refusal is a deltasync::Error whose message starts with "deltasync: ".
inline void CheckRefusal(const Error& e) {
  FUZZ_CHECK(std::string_view(e.what()).substr(0, 11) == "deltasync: ");
}

inline bool SameRow(const RowChanges& a, const RowChanges& b) {
  if (a.key != b.key || a.cl != b.cl || a.changes.size() != b.changes.size()) return false;
  for (size_t k = 0; k < a.changes.size(); ++k) {
    const ColumnChange& x = a.changes[k];
    const ColumnChange& y = b.changes[k];
    if (x.column != y.column || x.value != y.value || x.hlc != y.hlc || x.site != y.site || x.cl != y.cl) return false;
  }
  return true;
}

// The same model, field by field (reals bit for bit).
inline bool SamePayload(const Payload& a, const Payload& b) {
  if (a.site != b.site || a.since != b.since || a.until != b.until || a.sites != b.sites) return false;
  if (a.tables.size() != b.tables.size()) return false;
  for (size_t t = 0; t < a.tables.size(); ++t) {
    const TableChanges& x = a.tables[t];
    const TableChanges& y = b.tables[t];
    if (x.name != y.name || x.pk != y.pk || x.columns != y.columns || x.rows.size() != y.rows.size()) return false;
    for (size_t r = 0; r < x.rows.size(); ++r)
      if (!SameRow(x.rows[r], y.rows[r])) return false;
  }
  return true;
}

}  // namespace deltasync::fuzz
