// SPI helpers: every call into PostgreSQL goes through PgTry.
#include "pg_ext/pg_spi.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
}

namespace deltasync {

std::string pg::QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

AsRole::AsRole(Oid role, bool pin_search_path) : exceptions_(std::uncaught_exceptions()) {
  GetUserIdAndSecContext(&saved_user_, &saved_context_);
  if (pin_search_path) PgTry([&] {
    guc_level_ = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                            0, false);
  });
  SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
}

AsRole::~AsRole() {
  SetUserIdAndSecContext(saved_user_, saved_context_);
  if (guc_level_ != 0 && std::uncaught_exceptions() == exceptions_) AtEOXact_GUC(true, guc_level_);
}

QuietDdl::QuietDdl() : exceptions_(std::uncaught_exceptions()) {
  PgTry([&] {
    guc_level_ = NewGUCNestLevel();
    (void)set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
  });
}

QuietDdl::~QuietDdl() {
  if (guc_level_ != 0 && std::uncaught_exceptions() == exceptions_) AtEOXact_GUC(true, guc_level_);
}

AsTableOwner::AsTableOwner(Oid owner) : exceptions_(std::uncaught_exceptions()) {
  GetUserIdAndSecContext(&saved_user_, &saved_context_);
  PgTry([&] { guc_level_ = NewGUCNestLevel(); });
  SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

AsTableOwner::~AsTableOwner() {
  SetUserIdAndSecContext(saved_user_, saved_context_);
  // false: whatever the owner's code SET is undone (on an error the abort pops the level).
  if (std::uncaught_exceptions() == exceptions_) AtEOXact_GUC(false, guc_level_);
}

SpiSession::SpiSession() {
  int rc = SPI_OK_CONNECT;
  PgTry([&] { rc = SPI_connect(); });
  if (rc != SPI_OK_CONNECT) throw Error(ErrorCode::kInternal, "SPI_connect failed");
}

void SpiSession::Finish() {
  if (finished_) return;
  finished_ = true;
  PgTry([&] { SPI_finish(); });
}

SubTransaction::SubTransaction() : context_(CurrentMemoryContext), owner_(CurrentResourceOwner) {
  PgTry([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(context_);
}

void SubTransaction::Commit() {
  PgTry([] { ReleaseCurrentSubTransaction(); });
  Restore();
  done_ = true;
}

SubTransaction::~SubTransaction() {
  if (done_) return;
  RollbackAndReleaseCurrentSubTransaction();
  Restore();
}

void SubTransaction::Restore() {
  MemoryContextSwitchTo(context_);
  CurrentResourceOwner = owner_;
}

void Args::AddInt8(int64_t v) { Add(INT8OID, Int64GetDatum(v)); }
void Args::AddInt4(int32_t v) { Add(INT4OID, Int32GetDatum(v)); }
void Args::AddText(std::string_view s) {
  Datum d = 0;
  PgTry([&] { d = PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size()))); });
  Add(TEXTOID, d);
}
void Args::AddBytea(std::string_view b) {
  Datum d = 0;
  PgTry([&] {
    bytea* v = static_cast<bytea*>(palloc(VARHDRSZ + b.size()));
    SET_VARSIZE(v, VARHDRSZ + b.size());
    if (!b.empty()) memcpy(VARDATA(v), b.data(), b.size());
    d = PointerGetDatum(v);
  });
  Add(BYTEAOID, d);
}

namespace {
[[noreturn]] void SpiFailed(int rc, const std::string& sql) {
  throw Error(ErrorCode::kInternal, std::string("SPI failed (") + SPI_result_code_string(rc) + ") running: " + sql);
}
}  // namespace

void Plan::Prepare(const std::string& sql, const std::vector<Oid>& types, bool keep) {
  SPIPlanPtr p = nullptr;
  PgTry([&] {
    p = SPI_prepare(sql.c_str(), static_cast<int>(types.size()), const_cast<Oid*>(types.data()));
    if (p && keep) SPI_keepplan(p);
  });
  if (!p) SpiFailed(SPI_result, sql);
  plan_ = p;
}

uint64_t Plan::Run(const Args& args, long limit) const {
  int rc = 0;
  PgTry([&] {
    rc = SPI_execute_plan(plan_, const_cast<Datum*>(args.values.data()), args.nulls.data(), false, limit);
  });
  if (rc < 0) SpiFailed(rc, "a prepared statement");
  return SPI_processed;
}

void Plan::Free() {
  if (!plan_) return;
  SPIPlanPtr p = plan_;
  plan_ = nullptr;
  PgTry([&] { SPI_freeplan(p); });
}

uint64_t RunSql(const std::string& sql, const Args& args) {
  int rc = 0;
  std::vector<char> nulls = args.nulls;
  nulls.push_back('\0');
  PgTry([&] {
    rc = SPI_execute_with_args(sql.c_str(), static_cast<int>(args.types.size()), const_cast<Oid*>(args.types.data()),
                               const_cast<Datum*>(args.values.data()), nulls.data(), false, 0);
  });
  if (rc < 0) SpiFailed(rc, sql);
  return SPI_processed;
}

Datum Rows::Get(uint64_t row, int col, bool* isnull) const {
  if (!tt_ || row >= n_) throw Error(ErrorCode::kInternal, "SPI result row out of range");
  return SPI_getbinval(tt_->vals[row], tt_->tupdesc, col + 1, isnull);
}

bool Rows::IsNull(uint64_t row, int col) const {
  bool isnull = false;
  Get(row, col, &isnull);
  return isnull;
}

Oid Rows::Type(int col) const { return SPI_gettypeid(tt_->tupdesc, col + 1); }

int64_t Rows::Int(uint64_t row, int col, int64_t if_null) const {
  bool isnull = false;
  Datum d = Get(row, col, &isnull);
  if (isnull) return if_null;
  switch (Type(col)) {
    case INT2OID: return DatumGetInt16(d);
    case INT4OID: return DatumGetInt32(d);
    case OIDOID:
    case REGCLASSOID: return DatumGetObjectId(d);
    case BOOLOID: return DatumGetBool(d) ? 1 : 0;
    default: return DatumGetInt64(d);
  }
}

std::string_view VarlenaBytes(Datum d) {
  struct varlena* v = nullptr;
  PgTry([&] { v = pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(d))); });
  return std::string_view(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

std::string Rows::Text(uint64_t row, int col) const {
  bool isnull = false;
  Datum d = Get(row, col, &isnull);
  if (isnull) return {};
  switch (Type(col)) {
    case TEXTOID:
    case BYTEAOID:
    case VARCHAROID:
    case BPCHAROID: return std::string(VarlenaBytes(d));
    case NAMEOID: return NameStr(*DatumGetName(d));
    default: break;
  }
  std::string out;
  PgTry([&] {
    char* s = SPI_getvalue(tt_->vals[row], tt_->tupdesc, col + 1);
    if (s) out = s;
  });
  return out;
}

}  // namespace deltasync
