#pragma once
// The SQL-callable functions of the SQLite extension, and the one boundary wrapper
// every callback runs its body in: no exception ever crosses into SQLite.
#include <memory>
#include <new>
#include <string>

#include <nlohmann/json.hpp>

#include "common/compaction.hpp"
#include "common/pending_cells.hpp"
#include "sqlite_ext/sqlite_conn.hpp"

namespace deltasync {

// Every function's user data is a std::shared_ptr<Conn> owned by that registration.
inline Conn& ConnOf(sqlite3_context* ctx) {
  return **static_cast<std::shared_ptr<Conn>*>(sqlite3_user_data(ctx));
}

template <typename Body>
void Guarded(sqlite3_context* ctx, Body&& body) noexcept {
  try {
    body();
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (const Error& e) {
    sqlite3_result_error(ctx, e.Joined().c_str(), -1);
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, (std::string("deltasync: ") + e.what()).c_str(), -1);
  } catch (...) {
    sqlite3_result_error(ctx, "deltasync: unexpected internal error", -1);
  }
}

inline void ResultText(sqlite3_context* ctx, const std::string& s) {
  sqlite3_result_text64(ctx, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

// A table-name argument: must be non-NULL text.
std::string TableArg(sqlite3_value* v, const char* fn);

// Public API (SPEC section 5).
void FnCompact(sqlite3_context*, int, sqlite3_value**);
// deltasync_compact's work (sqlite_compact.cpp): the tombstones every hub's frontier covers
// become graves. With only_if_due, null unless enough became compactable (after a pull).
nlohmann::json CompactSite(Conn& conn, const CompactOptions& options, bool only_if_due);
void FnVersion(sqlite3_context*, int, sqlite3_value**);
void FnSiteId(sqlite3_context*, int, sqlite3_value**);
void FnId(sqlite3_context*, int, sqlite3_value**);
void FnDbVersion(sqlite3_context*, int, sqlite3_value**);
void FnEnable(sqlite3_context*, int, sqlite3_value**);
// A tracked table whose capture triggers are gone because it was rebuilt the way ORMs change
// SQLite tables (CREATE new, copy, DROP old, RENAME new): its triggers are made again, its
// clocks follow columns that moved or went, keys it lost become deletes, keys it gained are
// backfilled, and every other row keeps its clocks. False when its key changed (only
// disable + enable can follow that).
bool RepairRebuiltTable(Conn& conn, const TableInfo& known);
// A tracked table renamed with ALTER TABLE ... RENAME TO: tracked, its shadow table and its
// triggers under the new name. False when another tracked table has that name.
bool FollowTableRename(Conn& conn, const TableInfo& known, const std::string& new_name);
// A tracked table's RENAME COLUMNs (known.renames): the stored lists take the new names and
// each old name is recorded as renamed, so changes other sites send under it land in the new
// one (common/pending_cells). True when something was written.
bool PersistColumnRenames(Conn& conn, const TableInfo& known);
// The columns of tracked table `table_id` this site dropped or renamed (deltasync_gone_columns).
std::vector<GoneColumn> ReadGoneColumns(sqlite3* db, int64_t table_id);
void FnDisable(sqlite3_context*, int, sqlite3_value**);
void FnChanges(sqlite3_context*, int, sqlite3_value**);
void FnApply(sqlite3_context*, int, sqlite3_value**);
void FnQuarantine(sqlite3_context*, int, sqlite3_value**);
void FnStatus(sqlite3_context*, int, sqlite3_value**);
// deltasync_checksum([table]) (sqlite_checksum.cpp).
void FnChecksum(sqlite3_context*, int, sqlite3_value**);
void FnPush(sqlite3_context*, int, sqlite3_value**);
void FnForget(sqlite3_context*, int, sqlite3_value**);
void FnPull(sqlite3_context*, int, sqlite3_value**);
void FnSync(sqlite3_context*, int, sqlite3_value**);
// The schedules `deltasync agent` runs (sqlite_schedule.cpp).
void FnSchedule(sqlite3_context*, int, sqlite3_value**);
void FnUnschedule(sqlite3_context*, int, sqlite3_value**);

// Called only from the triggers deltasync_enable installs.
void FnCapturing(sqlite3_context*, int, sqlite3_value**);
void FnNullKey(sqlite3_context*, int, sqlite3_value**);
void FnVer(sqlite3_context*, int, sqlite3_value**);
void FnHlc(sqlite3_context*, int, sqlite3_value**);
void FnClkSet(sqlite3_context*, int, sqlite3_value**);
void FnClkJson(sqlite3_context*, int, sqlite3_value**);
void FnJsonCheck(sqlite3_context*, int, sqlite3_value**);
void FnJsonCanon(sqlite3_context*, int, sqlite3_value**);
void FnNe(sqlite3_context*, int, sqlite3_value**);

}  // namespace deltasync
