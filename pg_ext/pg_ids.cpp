// deltasync_id(): a row id no other site allocates, usable as a column DEFAULT
// (common/site_id.hpp has the layout). The counter is a sequence: concurrent sessions never
// wait for each other, and a rolled-back transaction only leaves a gap.
#include "common/site_id.hpp"
#include "pg_ext/pg_functions.hpp"

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_id) {
  SpiSession spi;
  Backend& b = Backend::Get();
  int64_t node = b.SettingInt("id_node", -1);
  if (node < 0) node = DefaultIdNode(b.LocalSite());
  int64_t counter = 0;
  {
    AsOwner as;  // the sequence is the extension's; callers need no privilege on it
    RunSql("SELECT nextval('deltasync.id_seq')");
    counter = ResultInt(0, 0);
  }
  int64_t id = ComposeRowId(node, counter);
  spi.Finish();
  PG_RETURN_INT64(id);
}
