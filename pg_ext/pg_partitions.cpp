// The members of a tracked table's tree and their capture triggers; what ATTACH, DETACH and
// DROP of a partition do to the tracked rows.
#include "pg_ext/pg_partitions.hpp"

#include "pg_ext/pg_capture.hpp"

extern "C" {
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
}

namespace deltasync {

namespace {

const char* kTriggerNames[] = {"deltasync_capture_ins", "deltasync_capture_del", "deltasync_capture_upd",
                               "deltasync_capture_trunc", "deltasync_capture_bupd"};

int own_trigger_drops = 0;

// Marks the scope in which deltasync drops its own triggers.
struct OwnTriggerDrops {
  OwnTriggerDrops() { ++own_trigger_drops; }
  ~OwnTriggerDrops() { --own_trigger_drops; }
};

std::string RelName(Oid relid) {
  std::string name;
  PgTry([&] {
    const char* n = get_rel_name(relid);
    if (n != nullptr) name = n;
  });
  return name;
}

// Drops those of deltasync's triggers that `m` has.
void DropOwnTriggers(const TreeMember& m) {
  OwnTriggerDrops own;
  for (const char* name : kTriggerNames) {
    Args a;
    a.Add(OIDOID, ObjectIdGetDatum(m.relid));
    a.AddText(name);
    if (RunSql("SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", a) > 0)
      RunSql(std::string("DROP TRIGGER ") + name + " ON " + m.q_name);
  }
}

// The capture triggers of one member. A statement fires only the statement triggers of the
// table it names, whose transition tables hold the rows of every partition below it, so
// each member's triggers capture exactly the statements that name it. TRUNCATE is the
// exception: it fires the triggers of every table it empties, and only a leaf knows its
// rows, which it marks deleted before they go; the tracked table itself marks every row.
void CreateCaptureTriggers(const TreeMember& m, bool tracked) {
  std::string fn = " FOR EACH STATEMENT EXECUTE FUNCTION deltasync.capture()";
  RunSql("CREATE TRIGGER deltasync_capture_ins AFTER INSERT ON " + m.q_name + " REFERENCING NEW TABLE AS deltasync_new" +
         fn);
  RunSql("CREATE TRIGGER deltasync_capture_del AFTER DELETE ON " + m.q_name + " REFERENCING OLD TABLE AS deltasync_old" +
         fn);
  RunSql("CREATE TRIGGER deltasync_capture_upd AFTER UPDATE ON " + m.q_name +
         " REFERENCING OLD TABLE AS deltasync_old NEW TABLE AS deltasync_new" + fn);
  // A partitioned member's UPDATE and MERGE load the module at their start, so its
  // ExecutorFinish hook sees the MERGE end (pg_capture.cpp, FollowMergeMoves).
  if (m.kind == RELKIND_PARTITIONED_TABLE)
    RunSql("CREATE TRIGGER deltasync_capture_bupd BEFORE UPDATE ON " + m.q_name + fn);
  if (tracked)
    RunSql("CREATE TRIGGER deltasync_capture_trunc AFTER TRUNCATE ON " + m.q_name + fn);
  else if (m.kind == RELKIND_RELATION)
    RunSql("CREATE TRIGGER deltasync_capture_trunc BEFORE TRUNCATE ON " + m.q_name + fn);
}

// Whether `relid` is a member (below the root) of a tracked table's tree.
bool IsMember(Oid relid) {
  if (!CatalogHasMembers()) return false;
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  return RunSql("SELECT 1 FROM deltasync.members WHERE relid = $1", a) > 0;
}

}  // namespace

Oid TreeRoot(Oid relid) {
  Oid root = relid;
  PgTry([&] {
    if (!get_rel_relispartition(relid)) return;
    List* up = get_partition_ancestors(relid);
    if (up != NIL) root = llast_oid(up);
  });
  return root;
}

std::string QualifiedName(Oid relid) {
  std::string schema, name;
  PgTry([&] {
    const char* n = get_rel_name(relid);
    char* s = get_namespace_name(get_rel_namespace(relid));
    if (n != nullptr) name = n;
    if (s != nullptr) schema = s;
  });
  return QuoteIdent(schema) + "." + QuoteIdent(name);
}

std::vector<TreeMember> TreeMembers(Oid top) {
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(top));
  RunSql("SELECT t.relid, c.relkind::text, n.nspname, c.relname FROM pg_partition_tree($1) AS t"
         " JOIN pg_class AS c ON c.oid = t.relid JOIN pg_namespace AS n ON n.oid = c.relnamespace"
         " ORDER BY t.level, t.relid",
         a);
  std::vector<TreeMember> out;
  Rows rows;
  for (uint64_t r = 0; r < rows.size(); ++r) {
    TreeMember m;
    m.relid = static_cast<Oid>(rows.Int(r, 0));
    m.kind = rows.Text(r, 1)[0];
    m.q_name = QuoteIdent(rows.Text(r, 2)) + "." + QuoteIdent(rows.Text(r, 3));
    m.leaf = m.kind != RELKIND_PARTITIONED_TABLE;
    out.push_back(std::move(m));
  }
  if (out.empty()) {  // not in a partition tree
    TreeMember m;
    m.relid = top;
    PgTry([&] { m.kind = get_rel_relkind(top); });
    m.q_name = QualifiedName(top);
    m.leaf = true;
    out.push_back(std::move(m));
  }
  return out;
}

void RefuseUncoverable(Oid relid, const std::string& name) {
  Oid root = TreeRoot(relid);
  if (root != relid) {
    std::string r = RelName(root);
    throw Error(ErrorCode::kInvalidArgument, "\"" + name + "\" is a partition of \"" + r +
                                                 "\"; track the partitioned table instead (deltasync_enable('" + r +
                                                 "')): it covers every partition, and payloads carry its name");
  }
  Args a;
  a.Add(OIDOID, ObjectIdGetDatum(relid));
  RunSql("SELECT 1 FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhparent"
         " WHERE i.inhrelid = $1 OR (i.inhparent = $1 AND c.relkind <> 'p') LIMIT 1",
         a);
  if (SPI_processed > 0)
    throw Error(ErrorCode::kInvalidArgument,
                "\"" + name + "\" takes part in table inheritance (INHERITS); deltasync cannot track it: a statement "
                "on an inheritance parent fires no trigger of its children, so their rows' changes would escape "
                "capture. Declarative partitioning (PARTITION BY) is supported");
}

void InstallTriggers(const TableInfo& t, Oid top) {
  for (const TreeMember& m : TreeMembers(top)) {
    bool tracked = m.relid == t.relid;
    {
      QuietDdl quiet;
      DropOwnTriggers(m);
      CreateCaptureTriggers(m, tracked);
    }
    if (!tracked) {
      RequireCurrentCatalog("tracking a partitioned table");
      Args a;
      a.Add(OIDOID, ObjectIdGetDatum(m.relid));
      a.AddInt4(t.id);
      RunSql("INSERT INTO deltasync.members(relid, table_id) VALUES ($1, $2)"
             " ON CONFLICT (relid) DO UPDATE SET table_id = excluded.table_id",
             a);
    }
    InvalidateCapture(m.relid);
  }
}

void RemoveTriggers(Oid top) {
  for (const TreeMember& m : TreeMembers(top)) {
    {
      QuietDdl quiet;
      DropOwnTriggers(m);
    }
    if (CatalogHasMembers()) {
      Args a;
      a.Add(OIDOID, ObjectIdGetDatum(m.relid));
      RunSql("DELETE FROM deltasync.members WHERE relid = $1", a);
    }
    InvalidateCapture(m.relid);
  }
}

bool DroppingOwnTriggers() { return own_trigger_drops > 0; }

void FollowAttach(const TableInfo& t, Oid attached, uint64_t hlc) {
  for (const TreeMember& m : TreeMembers(attached)) {
    if (Backend::Get().TableByRelid(m.relid))
      throw Error(ErrorCode::kInvalidArgument, m.q_name + " is tracked on its own; call deltasync_disable('" +
                                                   RelName(m.relid) + "') before attaching it to tracked table \"" +
                                                   t.name + "\", which then covers it");
  }
  InstallTriggers(t, attached);
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  RunSql(ShadowUpsertSql(t, QualifiedName(attached), "", true), a);
}

void FollowDetach(const TableInfo& t, Oid detached, uint64_t hlc) {
  if (!IsMember(detached)) return;
  RemoveTriggers(detached);
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  RunSql(ShadowUpsertSql(t, QualifiedName(detached), "", false), a);
}

uint64_t ReconcileRows(const TableInfo& t, uint64_t hlc) {
  std::vector<std::string> pk;
  for (const auto& c : t.pk) pk.push_back(QuoteIdent(c));
  Args a;
  a.AddInt8(static_cast<int64_t>(hlc));
  return RunSql("UPDATE " + t.q_meta +
                    " AS m SET cl = m.cl + 1, ver = deltasync.next_version(), hlc = $1, site = 0, clk = NULL"
                    " WHERE (m.cl & 1) = 1 AND NOT EXISTS (SELECT 1 FROM " + t.q_name + " AS b WHERE " +
                    KeyEquality(t, "m", ShadowKeyNames(t.pk.size()), "b", pk) + ")",
                a);
}

}  // namespace deltasync
