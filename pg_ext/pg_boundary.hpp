#pragma once
// The C++/PostgreSQL boundary, in one place.
//
// - DELTASYNC_PG_FUNCTION(name) defines an SQL-callable function: it emits
//   PG_FUNCTION_INFO_V1 and an extern "C" entry that runs the C++ body inside try. Every
//   exception is copied into a plain buffer with its SQLSTATE; only after the C++ scope has
//   closed (no live C++ object left) does the entry call ereport(ERROR).
// - PgTry(f) runs a call into PostgreSQL (SPI, type I/O, catalog lookups) and turns a
//   PostgreSQL error (a longjmp) into a C++ PgError. f is a small lambda that owns no C++
//   object with a destructor, so the longjmp never skips one.
//
// std and common/ headers come first, then PostgreSQL's inside extern "C".
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

// PostgreSQL 15 leaves PGDLLEXPORT empty on ELF; the module is built with hidden
// visibility, so the entry points must say they are exported.
#ifndef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

extern "C" {
#include "postgres.h"
// postgres.h first, always
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/errcodes.h"
}

// port.h turns the printf family into macros for pg_* replacements; C++ code here calls
// the standard library's.
#undef snprintf
#undef vsnprintf
#undef sprintf
#undef vsprintf
#undef fprintf
#undef vfprintf
#undef printf
#undef vprintf

namespace deltasync {

// An error with the SQLSTATE it is raised with: from PostgreSQL (PgTry), or ours.
class PgError : public Error {
 public:
  PgError(int sqlstate, ErrorCode code, const std::string& message, std::string detail = {},
          std::string hint = {})
      : Error(code, message, std::move(detail), std::move(hint)), sqlstate_(sqlstate) {}
  int sqlstate() const { return sqlstate_; }

 private:
  int sqlstate_;
};

// The SQLSTATE each project error class is raised with on PostgreSQL.
int SqlStateOf(ErrorCode code);

// Turns the PostgreSQL error being handled (in PG_CATCH) into a PgError, after copying and
// flushing it. `ctx` is the memory context to copy it into.
[[noreturn]] void RethrowPgError(MemoryContext ctx);

template <typename F>
void PgTry(F&& f) {
  MemoryContext ctx = CurrentMemoryContext;
  bool failed = false;
  std::exception_ptr thrown;
  PG_TRY();
  {
    // A C++ exception must not leave the PG_TRY block: it would skip restoring
    // PostgreSQL's error stack. It is caught here and rethrown after PG_END_TRY.
    try {
      f();
    } catch (...) {
      thrown = std::current_exception();
    }
  }
  PG_CATCH();
  {
    failed = true;
  }
  PG_END_TRY();
  if (failed) RethrowPgError(ctx);
  if (thrown) std::rethrow_exception(thrown);
}

// Runs a function body with the boundary rules above.
Datum RunBoundary(FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo));

}  // namespace deltasync

#define DELTASYNC_PG_FUNCTION(name)                                                          \
  static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo);                        \
  extern "C" {                                                                               \
  PG_FUNCTION_INFO_V1(name);                                                                 \
  PGDLLEXPORT Datum name(PG_FUNCTION_ARGS) { return ::deltasync::RunBoundary(fcinfo, name##_body); } \
  }                                                                                          \
  static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo)
