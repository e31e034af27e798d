#pragma once
// The tables a tracked table's capture covers (docs/postgresql.md, "Partitioned tables"): an
// ordinary table, or a partitioned table with every partition below it at any depth. Each
// member carries deltasync's statement triggers, which write the tracked table's one shadow
// table, so a write is captured once whatever table the statement names, and payloads carry
// the tracked table's name. Table inheritance is refused: PostgreSQL fires no trigger of a
// child for a statement on its inheritance parent.
#include <string>
#include <vector>

#include "pg_ext/pg_state.hpp"

namespace deltasync {

// One table of a tracked table's tree: the tracked table itself, or a partition below it.
struct TreeMember {
  Oid relid = InvalidOid;
  std::string q_name;  // schema-qualified, quoted
  char kind = 0;       // pg_class.relkind
  bool leaf = false;
};

// The table whose tracking would cover `relid`: the root of its partition tree, or itself.
Oid TreeRoot(Oid relid);
// `top` and every partition below it, `top` first.
std::vector<TreeMember> TreeMembers(Oid top);
// "schema"."name" of a relation.
std::string QualifiedName(Oid relid);

// Refuses, with a deltasync: error, a table some write path would escape: a partition (its
// partitioned root is what is tracked), a table in an inheritance hierarchy. (A foreign
// table cannot be a partition of a table with a primary key: PostgreSQL refuses it.)
void RefuseUncoverable(Oid relid, const std::string& name);

// Installs deltasync's capture triggers, replacing any it had there, on `top` and every
// partition below it, all writing the shadow table of tracked table `t`.
void InstallTriggers(const TableInfo& t, Oid top);
// Removes deltasync's triggers from `top` and every partition below it.
void RemoveTriggers(Oid top);
// True while deltasync drops its own triggers: the drop event trigger refuses other drops.
bool DroppingOwnTriggers();

// ALTER TABLE ... ATTACH PARTITION `attached` into tracked table `t`'s tree: the new member
// is covered and its rows become rows of `t` (written now by this site). `hlc`: the clock.
void FollowAttach(const TableInfo& t, Oid attached, uint64_t hlc);
// ... DETACH PARTITION: the table is no longer covered and its rows leave `t` (deletes).
void FollowDetach(const TableInfo& t, Oid detached, uint64_t hlc);
// After partitions were dropped: live shadow rows of keys `t` no longer holds become deletes.
uint64_t ReconcileRows(const TableInfo& t, uint64_t hlc);

}  // namespace deltasync
