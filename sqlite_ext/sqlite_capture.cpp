// Capture: the scalar functions the per-table triggers call. The triggers themselves are
// plain SQL compiled into the writing statement's program (see sqlite_schema.cpp), so a
// captured row costs one upsert into the shadow table and no extra statement.
#include <cstring>

#include "common/error.hpp"
#include "common/json_column.hpp"
#include "common/row_clocks.hpp"
#include "common/update_masks.hpp"
#include "sqlite_common/sqlite_util.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

// Whether a and b differ in storage class or bytes (deltasync__ne).
bool StorageDiffers(sqlite3_value* a, sqlite3_value* b);

void FnCapturing(sqlite3_context* ctx, int, sqlite3_value**) {
  sqlite3_result_int(ctx, ConnOf(ctx).applying ? 0 : 1);
}

// deltasync__null_key(): only reached through coalesce() when a key column is NULL,
// which SQLite allows in some rowid tables but a row identity across sites cannot be.
void FnNullKey(sqlite3_context* ctx, int, sqlite3_value**) {
  sqlite3_result_error(ctx, "deltasync: a primary key column of a tracked table is NULL", -1);
}

// deltasync__ver(): a fresh db_version for one captured row change.
void FnVer(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { sqlite3_result_int64(ctx, ConnOf(ctx).NextVersion()); });
}

// deltasync__hlc(): the clock of the current transaction's local writes.
void FnHlc(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] { sqlite3_result_int64(ctx, static_cast<int64_t>(ConnOf(ctx).TxnHlc())); });
}

// A shadow row's clocks from the arguments (hlc, site, clk, ...) of a clock function.
static RowClocks ClocksArgs(sqlite3_value** argv) {
  auto blob = static_cast<const char*>(sqlite3_value_blob(argv[2]));
  return RowClocks::Decode(static_cast<uint64_t>(sqlite3_value_int64(argv[0])),
                           static_cast<uint32_t>(sqlite3_value_int64(argv[1])),
                           std::string_view(blob ? blob : "", sqlite3_value_bytes(argv[2])));
}

// The extras blob of `clocks` as the function's result (NULL when there are none).
static void ResultExtras(sqlite3_context* ctx, const RowClocks& clocks) {
  std::string out = clocks.EncodeExtras();
  if (out.empty())
    sqlite3_result_null(ctx);
  else
    sqlite3_result_blob64(ctx, out.data(), out.size(), SQLITE_TRANSIENT);
}

// deltasync__clk_set(hlc, site, clk, cl, ver, mask0, mask1, ...): the extras of a shadow
// row after an update of the columns whose bits are set (kColumnsPerMask columns per mask). A local
// write always gets a clock newer than the version it overwrites, even if that version
// came from a faster clock.
void FnClkSet(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    RowClocks clocks = ClocksArgs(argv);
    int64_t cl = sqlite3_value_int64(argv[3]);
    clocks.Resolve(sqlite3_value_int64(argv[4]), cl);
    MarkUpdatedColumns(clocks, cl, conn.TxnHlc(), argc - 5,
                       [&](int g) { return static_cast<uint64_t>(sqlite3_value_int64(argv[5 + g])); }, conn.clock());
    ResultExtras(ctx, clocks);
  });
}

// deltasync__clk_json(hlc, site, clk, cl, ver, n, (column, OLD, NEW) * n, mask0, ...): as
// deltasync__clk_set, in a table with json columns: each of the n json columns' members
// first take the write's diff (common/json_column's CaptureJsonWrite), at the clock the
// write gives the column.
void FnClkJson(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    RowClocks clocks = ClocksArgs(argv);
    int64_t cl = sqlite3_value_int64(argv[3]);
    clocks.Resolve(sqlite3_value_int64(argv[4]), cl);
    int n = static_cast<int>(sqlite3_value_int64(argv[5]));
    int masks = argc - 6 - 3 * n;
    if (n < 0 || masks < 0) throw Error(ErrorCode::kInternal, "deltasync__clk_json: bad arguments");
    SiteOfFn site_of = [&](uint32_t ord) -> const SiteId& { return conn.SiteOf(ord); };
    for (int j = 0; j < n; ++j) {
      sqlite3_value** a = argv + 6 + 3 * j;
      auto col = static_cast<uint32_t>(sqlite3_value_int64(a[0]));
      if (StorageDiffers(a[1], a[2]))
        CaptureJsonWrite(clocks, col, ValueFromSqlite(a[1]), ValueFromSqlite(a[2]), conn.TxnHlc(), cl, site_of);
    }
    MarkUpdatedColumns(clocks, cl, conn.TxnHlc(), masks,
                       [&](int g) { return static_cast<uint64_t>(sqlite3_value_int64(argv[6 + 3 * n + g])); },
                       conn.clock());
    ResultExtras(ctx, clocks);
  });
}

// deltasync__json_check(table, column, value): refuses (the statement stops, nothing
// changed) a value a json column cannot hold: anything but the text of a JSON object.
void FnJsonCheck(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    auto text = [&](int k) {
      const unsigned char* t = sqlite3_value_text(argv[k]);
      return std::string(t ? reinterpret_cast<const char*>(t) : "");
    };
    CheckedDocument(ValueFromSqlite(argv[2]), text(0), text(1));
    sqlite3_result_null(ctx);
  });
}

// deltasync__json_canon(value): the canonical text of a JSON object (common/json_value), which
// every site stores; any other value as it is.
void FnJsonCanon(sqlite3_context* ctx, int, sqlite3_value** argv) {
  Guarded(ctx, [&] {
    if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
      sqlite3_result_value(ctx, argv[0]);
      return;
    }
    JsonValue doc;
    std::string error;
    auto t = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
    if (!ParseJson(std::string_view(t ? t : "", sqlite3_value_bytes(argv[0])), doc, error)) {
      sqlite3_result_value(ctx, argv[0]);
      return;
    }
    std::string out = CanonicalJson(doc);
    sqlite3_result_text64(ctx, out.data(), out.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  });
}

// deltasync__ne(a, b): 1 when a and b differ in storage class or bytes. Unlike SQL's
// IS NOT it tells 1 from 1.0 and ignores the column's collation.
bool StorageDiffers(sqlite3_value* x, sqlite3_value* y) {
  sqlite3_value* argv[2] = {x, y};
  int ta = sqlite3_value_type(argv[0]), tb = sqlite3_value_type(argv[1]);
  int ne = 1;
  if (ta == tb) {
    switch (ta) {
      case SQLITE_NULL: ne = 0; break;
      case SQLITE_INTEGER: ne = sqlite3_value_int64(argv[0]) != sqlite3_value_int64(argv[1]); break;
      case SQLITE_FLOAT: {
        double a = sqlite3_value_double(argv[0]), b = sqlite3_value_double(argv[1]);
        ne = std::memcmp(&a, &b, sizeof a) != 0;
        break;
      }
      default: {
        const void* pa = ta == SQLITE_TEXT ? static_cast<const void*>(sqlite3_value_text(argv[0]))
                                           : sqlite3_value_blob(argv[0]);
        const void* pb = ta == SQLITE_TEXT ? static_cast<const void*>(sqlite3_value_text(argv[1]))
                                           : sqlite3_value_blob(argv[1]);
        int na = sqlite3_value_bytes(argv[0]), nb = sqlite3_value_bytes(argv[1]);
        ne = na != nb || (na > 0 && std::memcmp(pa, pb, na) != 0);
      }
    }
  }
  return ne != 0;
}

void FnNe(sqlite3_context* ctx, int, sqlite3_value** argv) {
  sqlite3_result_int(ctx, StorageDiffers(argv[0], argv[1]) ? 1 : 0);
}

}  // namespace deltasync
