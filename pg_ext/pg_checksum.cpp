// deltasync_checksum([table]) on PostgreSQL: each tracked table's rows read through an SPI
// cursor a chunk at a time, converted to wire values as a collect converts them (pg_values),
// into common/checksum's digest; memory holds one chunk.
#include <utility>
#include <vector>

#include "common/checksum.hpp"
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_functions.hpp"

extern "C" {
#include "utils/memutils.h"
#include "utils/portal.h"
}

namespace deltasync {

namespace {

constexpr long kChunkRows = 1000;

// The digest of one tracked table's rows, as the caller's snapshot sees them.
TableDigest DigestTable(const TableInfo& t) {
  std::vector<std::string> names = t.pk;
  names.insert(names.end(), t.cols.begin(), t.cols.end());
  std::string sql = "SELECT " + ColumnList(names, "") + " FROM " + t.q_name;
  Portal portal = nullptr;
  MemoryContext cxt = nullptr;
  PgTry([&] {
    portal = SPI_cursor_open_with_args(nullptr, sql.c_str(), 0, nullptr, nullptr, nullptr, true, 0);
    cxt = AllocSetContextCreate(CurrentMemoryContext, "deltasync checksum chunk", ALLOCSET_DEFAULT_SIZES);
  });
  // Closes the cursor and frees the chunk memory however this scope ends.
  struct Closer {
    Portal& portal;
    MemoryContext& cxt;
    ~Closer() {
      Portal p = portal;
      MemoryContext c = cxt;
      try {
        PgTry([&] {
          if (p) SPI_cursor_close(p);
          if (c) MemoryContextDelete(c);
        });
      } catch (...) {
      }
    }
  } closer{portal, cxt};
  const int nk = static_cast<int>(t.pk.size());
  const size_t ncols = t.cols.size();
  TableDigest digest;
  std::vector<Value> key, values(ncols);
  std::vector<DigestColumn> cols;
  for (;;) {
    MemoryContext old = nullptr;
    PgTry([&] {
      SPI_cursor_fetch(portal, true, kChunkRows);
      old = MemoryContextSwitchTo(cxt);
    });
    uint64_t n = 0;
    try {
      Rows rows;
      n = rows.size();
      bool isnull = false;
      for (uint64_t r = 0; r < n; ++r) {
        key.clear();
        for (int k = 0; k < nk; ++k) {
          Datum d = rows.Get(r, k, &isnull);  // before ToValue reads isnull
          key.push_back(ToValue(t.pk_types[k], d, isnull));
        }
        cols.clear();
        for (size_t c = 0; c < ncols; ++c) {
          Datum d = rows.Get(r, nk + static_cast<int>(c), &isnull);
          values[c] = ToValue(t.col_types[c], d, isnull);
          cols.push_back(DigestColumn{t.cols[c], &values[c]});
        }
        digest.AddRow(key, cols);
      }
    } catch (...) {
      MemoryContextSwitchTo(old);
      throw;
    }
    MemoryContextSwitchTo(old);
    SPITupleTable* tt = SPI_tuptable;
    MemoryContext chunk = cxt;
    PgTry([&] {
      SPI_freetuptable(tt);
      MemoryContextReset(chunk);
    });
    if (n < static_cast<uint64_t>(kChunkRows)) break;
  }
  return digest;
}

}  // namespace

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_checksum) {
  bool one = PG_NARGS() > 0 && !PG_ARGISNULL(0);
  std::string requested = one ? TextArg(fcinfo, 0, "deltasync_checksum(table)") : "";
  SpiSession spi;
  RequireCurrentCatalog("deltasync_checksum");
  std::vector<std::pair<std::string, TableDigest>> out;
  {
    std::vector<TableInfo> tables = Backend::Get().LoadTables();
    std::vector<const TableInfo*> chosen;
    for (const TableInfo& t : tables)
      if (!t.dropped && (!one || t.name == requested)) chosen.push_back(&t);
    if (one && chosen.empty())
      throw Error(ErrorCode::kInvalidArgument, "table \"" + requested + "\" is not tracked (deltasync_enable tracks it)");
    // Rows are for roles that may read every table asked about, as deltasync_changes' are.
    for (const TableInfo* t : chosen) CheckAccess(*t, Access::kRead);
    for (const TableInfo* t : chosen) out.emplace_back(t->name, DigestTable(*t));
  }
  nlohmann::json doc = ChecksumDocument(out);
  spi.Finish();
  return JsonbResult(doc);
}
