// The boundary between PostgreSQL's longjmp errors and C++ exceptions (see pg_boundary.hpp).
#include "pg_ext/pg_boundary.hpp"

#include <cstdio>

namespace deltasync {

int SqlStateOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return ERRCODE_INVALID_PARAMETER_VALUE;
    case ErrorCode::kInvalidPayload: return ERRCODE_DATA_EXCEPTION;
    case ErrorCode::kClockDrift: return ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
    case ErrorCode::kConstraint: return ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
    case ErrorCode::kNetwork: return ERRCODE_CONNECTION_FAILURE;
    case ErrorCode::kInternal: break;
  }
  return ERRCODE_INTERNAL_ERROR;
}

void RethrowPgError(MemoryContext ctx) {
  int sqlstate = ERRCODE_INTERNAL_ERROR;
  char message[1024] = "unknown PostgreSQL error";
  char detail[1024] = "", hint[1024] = "";
  MemoryContextSwitchTo(ctx);
  ErrorData* e = CopyErrorData();
  FlushErrorState();
  sqlstate = e->sqlerrcode;
  if (e->message) std::snprintf(message, sizeof message, "%s", e->message);
  if (e->detail) std::snprintf(detail, sizeof detail, "%s", e->detail);
  if (e->hint) std::snprintf(hint, sizeof hint, "%s", e->hint);
  FreeErrorData(e);
  // Messages that already carry the prefix (raised by our own code below) keep it once.
  const char* text = std::strncmp(message, "deltasync: ", 11) == 0 ? message + 11 : message;
  ErrorCode code = ErrorCode::kInternal;
  if (ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_DATA_EXCEPTION ||
      ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
    code = ErrorCode::kConstraint;
  throw PgError(sqlstate, code, text, detail, hint);
}

Datum RunBoundary(FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo)) {
  // Filled inside the try, read after every C++ object of the call is gone.
  int sqlstate = 0;
  char message[2048], detail[1024], hint[1024];
  message[0] = detail[0] = hint[0] = '\0';
  Datum result = 0;
  try {
    result = body(fcinfo);
  } catch (const Error& e) {
    const auto* pg = dynamic_cast<const PgError*>(&e);
    sqlstate = pg ? pg->sqlstate() : SqlStateOf(e.code());
    std::snprintf(message, sizeof message, "%s", e.what());
    std::snprintf(detail, sizeof detail, "%s", e.detail().c_str());
    std::snprintf(hint, sizeof hint, "%s", e.hint().c_str());
  } catch (const std::bad_alloc&) {
    sqlstate = ERRCODE_OUT_OF_MEMORY;
    std::snprintf(message, sizeof message, "deltasync: out of memory");
  } catch (const std::exception& e) {
    sqlstate = ERRCODE_INTERNAL_ERROR;
    std::snprintf(message, sizeof message, "deltasync: %s", e.what());
  } catch (...) {
    sqlstate = ERRCODE_INTERNAL_ERROR;
    std::snprintf(message, sizeof message, "deltasync: unexpected internal error");
  }
  if (sqlstate == 0) return result;
  // A cancel or statement_timeout that stopped a transfer is reported as PostgreSQL
  // reports it (SQLSTATE 57014), not as a network error.
  CHECK_FOR_INTERRUPTS();
  ereport(ERROR, (errcode(sqlstate), errmsg("%s", message), detail[0] ? errdetail("%s", detail) : 0,
                  hint[0] ? errhint("%s", hint) : 0));
  return 0;
}

}  // namespace deltasync
