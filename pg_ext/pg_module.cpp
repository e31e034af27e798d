// Module entry: PG_MODULE_MAGIC, the transaction and relcache callbacks that scope the
// per-backend state, and the argument/result helpers of pg_functions.hpp.
#include "pg_ext/pg_capture.hpp"
#include "pg_ext/pg_functions.hpp"
#include "pg_ext/pg_schedule.hpp"

extern "C" {
#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/jsonb.h"

PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace deltasync {

namespace {

// No C++ exception may leave a callback: they only reset plain state.
void OnXact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PREPARE:
      Backend::Get().EndTxn(false);
      OnScheduleXactEnd(event == XACT_EVENT_COMMIT);
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      Backend::Get().EndTxn(true);
      OnScheduleXactEnd(false);
      break;
    default:
      break;
  }
}

void OnSubXact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (event == SUBXACT_EVENT_ABORT_SUB) Backend::Get().ForgetSites();
}

// Only plain state changes here; a failure to allocate must not escape into PostgreSQL.
void OnRelcache(Datum, Oid relid) {
  try {
    InvalidateCapture(relid);
  } catch (...) {
  }
  Backend::Get().OnRelationInvalidated(relid);
}

}  // namespace

std::string TextArg(FunctionCallInfo fcinfo, int n, const char* what) {
  if (PG_NARGS() <= n || PG_ARGISNULL(n)) throw Error(ErrorCode::kInvalidArgument, std::string(what) + " expects text, not NULL");
  return std::string(VarlenaBytes(PG_GETARG_DATUM(n)));
}

std::string JsonbArgText(FunctionCallInfo fcinfo, int n) {
  if (PG_NARGS() <= n || PG_ARGISNULL(n)) return "";
  std::string text;
  PgTry([&] {
    Jsonb* j = PG_GETARG_JSONB_P(n);
    char* s = JsonbToCString(nullptr, &j->root, VARSIZE(j));
    text = s;
    pfree(s);
  });
  return text;
}

Datum TextResult(const std::string& s) {
  Datum d = 0;
  PgTry([&] { d = PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size()))); });
  return d;
}

Datum JsonbResult(const nlohmann::json& j) {
  std::string text = j.dump();
  Datum d = 0;
  PgTry([&] { d = DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str())); });
  return d;
}

}  // namespace deltasync

void _PG_init(void) {
  RegisterXactCallback(deltasync::OnXact, nullptr);
  RegisterSubXactCallback(deltasync::OnSubXact, nullptr);
  CacheRegisterRelcacheCallback(deltasync::OnRelcache, 0);
  deltasync::InstallMergeCapture();
  deltasync::pg::DefineApplySettings();
  if (process_shared_preload_libraries_in_progress) deltasync::RegisterScheduleLauncher();
}
