#pragma once
// Helpers shared by the SQL-callable functions: arguments in, JSON and text results out.
#include <string>

#include <nlohmann/json.hpp>

#include "common/compaction.hpp"
#include "pg_ext/pg_state.hpp"

namespace deltasync {

// A text argument, required (NULL is refused with "<what> expects ...").
std::string TextArg(FunctionCallInfo fcinfo, int n, const char* what);
// Argument n, a jsonb, as JSON text ("" when absent or NULL).
std::string JsonbArgText(FunctionCallInfo fcinfo, int n);
// A text datum allocated in the function's memory context (call after SPI_finish).
Datum TextResult(const std::string& s);
Datum JsonbResult(const nlohmann::json& j);

namespace pg {
// Defines deltasync.apply_page_rows (pg_apply.cpp), from _PG_init.
void DefineApplySettings();
// deltasync_compact's work (pg_compact.cpp): the tombstones every hub's frontier covers
// become graves. With only_if_due, null unless enough became compactable (after a pull).
nlohmann::json CompactSite(const CompactOptions& options, bool only_if_due);
}  // namespace pg

}  // namespace deltasync
