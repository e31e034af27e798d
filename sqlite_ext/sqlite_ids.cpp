// deltasync_id(): a row id no other site allocates, usable as a column DEFAULT
// (common/site_id.hpp has the layout).
#include "common/site_id.hpp"
#include "sqlite_ext/sqlite_functions.hpp"

namespace deltasync {

void FnId(sqlite3_context* ctx, int, sqlite3_value**) {
  Guarded(ctx, [&] {
    Conn& conn = ConnOf(ctx);
    sqlite3* db = conn.db();
    conn.EnsureSchema();
    int64_t node = conn.SettingInt("id_node", -1);
    if (node < 0) node = DefaultIdNode(conn.LocalSite());
    // The counter moves under SQLite's write lock, which the calling statement holds until
    // it ends (a function always runs inside one), so the increment and the read below are
    // one step for every other connection: two never take the same value.
    Exec(db, "INSERT INTO deltasync_settings(name, value) VALUES ('id_counter', 1)"
             " ON CONFLICT(name) DO UPDATE SET value = value + 1");
    int64_t counter = conn.SettingInt("id_counter", 0);
    sqlite3_result_int64(ctx, ComposeRowId(node, counter));
  });
}

}  // namespace deltasync
