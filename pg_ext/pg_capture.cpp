// deltasync.capture(): one statement-level AFTER trigger per event, reading the statement's
// transition tables (deltasync_old / deltasync_new) in set-based statements, so a captured
// statement costs a few extra statements, not a call per row. It runs as the extension's
// owner with a pinned search_path; it writes only the shadow table.
#include "pg_ext/pg_capture.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <unordered_map>

#include "common/row_clocks.hpp"
#include "common/update_masks.hpp"
#include "pg_ext/pg_partitions.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

namespace deltasync {

std::string ColumnList(const std::vector<std::string>& names, const std::string& prefix) {
  std::string out;
  for (size_t k = 0; k < names.size(); ++k) out += (k ? ", " : "") + prefix + QuoteIdent(names[k]);
  return out;
}

namespace {

std::vector<std::string> Quoted(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) out.push_back(QuoteIdent(n));
  return out;
}

}  // namespace

std::string ShadowUpsertSql(const TableInfo& t, const std::string& source, const std::string& where,
                            bool appears) {
  std::string keys = ShadowKeyList(t.pk.size());
  // In a table with a counter, a key that appears over a live shadow row (a write capture did
  // not see, a partition attached over one) starts a new life: the old life's contributions
  // end, and what the row holds now is this site's contribution (docs/policies.md).
  std::string cl = !appears ? "m.cl + (m.cl & 1)" : AnyPolicy(t.policies) ? "m.cl + 1 + (m.cl & 1)" : "m.cl + 1 - (m.cl & 1)";
  return "INSERT INTO " + t.q_meta + " AS m (" + keys + ", cl, ver, hlc, site, clk) SELECT " +
         ColumnList(t.pk, "s.") + ", " + (appears ? "1" : "2") +
         ", deltasync.next_version(), $1, 0, NULL FROM " + source + " AS s" +
         (where.empty() ? "" : " WHERE " + where) + " ON CONFLICT (" + keys + ") DO UPDATE SET cl = " + cl +
         ", ver = excluded.ver, hlc = excluded.hlc, site = 0, clk = NULL";
}

namespace {

// The statements of one tracked table, built on first use in this backend.
struct CaptureEntry {
  TableInfo table;
  std::string q_member;  // a partition whose triggers these are: its name; else empty
  Plan insert, insert_new, remove, update, key_moved, disappear, appear, truncate;
};

std::unordered_map<Oid, std::unique_ptr<CaptureEntry>>& Cache() {
  static auto* cache = new std::unordered_map<Oid, std::unique_ptr<CaptureEntry>>();
  return *cache;
}
// Entries invalidated while a plan may still be running are freed on the next lookup.
std::vector<std::unique_ptr<CaptureEntry>>& Stale() {
  static auto* stale = new std::vector<std::unique_ptr<CaptureEntry>>();
  return *stale;
}

void FreePlans(CaptureEntry& e) {
  for (Plan* p :
       {&e.insert, &e.insert_new, &e.remove, &e.update, &e.key_moved, &e.disappear, &e.appear, &e.truncate})
    p->Free();
}

CaptureEntry* Lookup(Oid relid) {
  for (auto& e : Stale()) FreePlans(*e);
  Stale().clear();
  auto it = Cache().find(relid);
  if (it != Cache().end()) return it->second.get();
  auto info = Backend::Get().TableByRelid(relid);
  std::string q_member;
  if (!info) {  // a partition: it writes the rows of the tracked table at its tree's root
    Oid root = TreeRoot(relid);
    if (root != relid) info = Backend::Get().TableByRelid(root);
    if (!info) return nullptr;
    q_member = QualifiedName(relid);
  }
  auto entry = std::make_unique<CaptureEntry>();
  entry->table = std::move(*info);
  entry->q_member = std::move(q_member);
  CaptureEntry* raw = entry.get();
  Cache()[relid] = std::move(entry);
  return raw;
}

const std::vector<Oid> kHlcArg = {INT8OID};

// Plans are prepared with the pinned search_path and keep it when PostgreSQL re-plans them,
// so running them needs only the owner's identity. The statement text (and the catalog
// lookups behind it) is built only when the plan is not cached yet.
template <typename Sql>
void Prepare(Plan& p, Sql&& sql) {
  if (p.Ready()) return;
  AsOwner as;
  p.Prepare(sql(), kHlcArg);
}

// Bit k of mask g is set when column kColumnsPerMask*g + k differs between o and n.
std::vector<std::string> MaskExprs(const TableInfo& t) {
  std::vector<std::string> masks;
  for (size_t start = 0; start < t.cols.size(); start += kColumnsPerMask) {
    std::string m;
    for (size_t k = start; k < t.cols.size() && k < start + kColumnsPerMask; ++k) {
      std::string q = QuoteIdent(t.cols[k]);
      std::string ne = "deltasync.ne(o." + q + ", n." + q + ")";
      m +=
          (k == start ? "" : " | ") + (k == start ? ne : "(" + ne + " << " + std::to_string(k - start) + ")");
    }
    masks.push_back("(" + m + ")");
  }
  return masks;
}

// Statements of at least this many rows first try a plain INSERT into the shadow table: it
// costs about half of INSERT ... ON CONFLICT, and a subtransaction per statement is cheap
// next to that many rows.
constexpr uint64_t kBulkRows = 32;

// The capture statements of a large statement run with jit = off (as deltasync's SQL
// functions do): above jit_above_cost PostgreSQL compiles them, which took longer than
// running them (a 60,000-row UPDATE: a quarter of its capture time in LLVM). The setting
// is restored when the scope ends (by the abort after an error).
class NoJit {
 public:
  NoJit() : exceptions_(std::uncaught_exceptions()) {
    PgTry([&] {
      level_ = NewGUCNestLevel();
      (void)set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    });
  }
  ~NoJit() {
    if (level_ != 0 && std::uncaught_exceptions() == exceptions_) AtEOXact_GUC(true, level_);
  }
  NoJit(const NoJit&) = delete;
  NoJit& operator=(const NoJit&) = delete;

 private:
  int level_ = 0;
  int exceptions_;
};

void OnInsert(CaptureEntry& e, const Args& args, uint64_t rows) {
  const TableInfo& t = e.table;
  if (rows >= kBulkRows) {
    // Most keys a statement inserts are new: insert them plainly, in a subtransaction; if
    // one of them had a shadow row already (a deleted key inserted again), undo that and
    // take the upsert below.
    Prepare(e.insert_new, [&] {
      return "INSERT INTO " + t.q_meta + " (" + ShadowKeyList(t.pk.size()) + ", cl, ver, hlc, site) SELECT " +
             ColumnList(t.pk, "s.") + ", 1, deltasync.next_version(), $1, 0 FROM deltasync_new AS s";
    });
    try {
      SubTransaction sub;
      e.insert_new.Run(args);
      sub.Commit();
      return;
    } catch (const PgError& err) {
      if (err.sqlstate() != ERRCODE_UNIQUE_VIOLATION) throw;
    }
  }
  Prepare(e.insert, [&] { return ShadowUpsertSql(t, "deltasync_new", "", true); });
  e.insert.Run(args);
}

void OnUpdate(CaptureEntry& e, const Args& args) {
  const TableInfo& t = e.table;
  auto on = [&] { return KeyEquality(t, "o", Quoted(t.pk), "n", Quoted(t.pk)); };
  // Old and new rows are paired by key. One statement updates the clocks of the pairs whose
  // columns changed and tells how many new rows found no partner: a key change is a delete
  // of the old key and an insert of the new one.
  if (!t.cols.empty()) {
    Prepare(e.update, [&] {
      std::vector<std::string> masks = MaskExprs(t);
      std::string sel = "SELECT " + ColumnList(t.pk, "n.");
      std::string mask_args, any;
      for (size_t g = 0; g < masks.size(); ++g) {
        sel += ", " + masks[g] + " AS m" + std::to_string(g);
        mask_args += ", d.m" + std::to_string(g);
        any += (g ? " | " : "") + std::string("d.m") + std::to_string(g);
      }
      sel += " FROM deltasync_old AS o JOIN deltasync_new AS n ON " + on();
      return "WITH d AS MATERIALIZED (" + sel + "), u AS (UPDATE " + t.q_meta +
             " AS m SET ver = deltasync.next_version(), clk = deltasync.clk_set(m.hlc, m.site, m.clk, m.cl, "
             "m.ver, $1" +
             mask_args + ") FROM d WHERE " +
             KeyEquality(t, "m", ShadowKeyNames(t.pk.size()), "d", Quoted(t.pk)) + " AND (" + any +
             ") <> 0) SELECT (SELECT count(*) FROM deltasync_new) - (SELECT count(*) FROM d)";
    });
    e.update.Run(args);
  } else {
    Prepare(e.key_moved, [&] {
      return "SELECT (SELECT count(*) FROM deltasync_new) - (SELECT count(*) FROM deltasync_old AS o"
             " JOIN deltasync_new AS n ON " +
             on() + ") + 0 * $1";
    });
    e.key_moved.Run(args);
  }
  if (ResultInt(0, 0) == 0) return;
  Prepare(e.disappear, [&] {
    return ShadowUpsertSql(t, "deltasync_old",
                           "NOT EXISTS (SELECT 1 FROM deltasync_new AS n WHERE " +
                               KeyEquality(t, "s", Quoted(t.pk), "n", Quoted(t.pk)) + ")",
                           false);
  });
  Prepare(e.appear, [&] {
    return ShadowUpsertSql(t, "deltasync_new",
                           "NOT EXISTS (SELECT 1 FROM deltasync_old AS o WHERE " +
                               KeyEquality(t, "s", Quoted(t.pk), "o", Quoted(t.pk)) + ")",
                           true);
  });
  e.disappear.Run(args);
  e.appear.Run(args);
}

// MERGE and rows moving between partitions. PostgreSQL 15 puts the old and new versions of
// a row that a MERGE's UPDATE action moves to another partition into the statement's DELETE
// and INSERT transition tables (a plain UPDATE puts them into its UPDATE ones), but fires
// the AFTER STATEMENT DELETE and INSERT triggers only when the MERGE names a DELETE or an
// INSERT action: without one, the moved rows' old keys stayed live and their new keys were
// never captured. So at the end of such a MERGE, before its AFTER triggers run, this hook
// queues the AFTER STATEMENT DELETE and INSERT events the MERGE did not queue, for
// deltasync's own capture triggers only (the application's triggers fire as PostgreSQL
// decides), over the MERGE's own transition tables: the moved rows become the delete of the
// old key and the insert of the new one, as for an UPDATE. A backend that has not loaded the
// module yet loads it at the MERGE's start, through the BEFORE UPDATE statement trigger
// deltasync_capture_bupd every partitioned member carries, so the hook is in place by the
// end of that MERGE.
//
// The hook runs inside PostgreSQL's executor: it holds no C++ object, and errors raised
// below it leave by PostgreSQL's own longjmp.
ExecutorFinish_hook_type prev_executor_finish = nullptr;

// Whether `tg` is deltasync's capture trigger `name`: the name and the function deltasync.capture.
bool IsOwnTrigger(const Trigger& tg, const char* name) {
  if (strcmp(tg.tgname, name) != 0) return false;
  char* fn = get_func_name(tg.tgfoid);
  bool own = fn != nullptr && strcmp(fn, "capture") == 0;
  if (own) {
    char* schema = get_namespace_name(get_func_namespace(tg.tgfoid));
    own = schema != nullptr && strcmp(schema, "deltasync") == 0;
  }
  return own;
}

// Queues the AFTER STATEMENT event of deltasync's trigger `name` on `root` alone: the
// relation's trigger list is narrowed to that trigger while the event is queued (the event
// names the trigger by OID and runs it from the full list, restored at once).
void QueueOwnStatementEvent(ModifyTableState* mt, const char* name, bool insert) {
  ResultRelInfo* root = mt->rootResultRelInfo;
  TriggerDesc* all = root->ri_TrigDesc;
  Trigger* own = nullptr;
  for (int i = 0; all != nullptr && i < all->numtriggers; ++i)
    if (IsOwnTrigger(all->triggers[i], name)) own = &all->triggers[i];
  if (own == nullptr) return;
  TriggerDesc only;
  memset(&only, 0, sizeof(only));
  only.triggers = own;
  only.numtriggers = 1;
  if (insert) {
    only.trig_insert_after_statement = true;
    only.trig_insert_new_table = true;
  } else {
    only.trig_delete_after_statement = true;
    only.trig_delete_old_table = true;
  }
  root->ri_TrigDesc = &only;
  PG_TRY();
  {
    if (insert) ExecASInsertTriggers(mt->ps.state, root, mt->mt_transition_capture);
    else ExecASDeleteTriggers(mt->ps.state, root, mt->mt_transition_capture);
  }
  PG_FINALLY();
  {
    root->ri_TrigDesc = all;
  }
  PG_END_TRY();
}

void FollowMergeMoves(QueryDesc* qd) {
  if (qd->operation != CMD_MERGE || qd->planstate == nullptr || !IsA(qd->planstate, ModifyTableState)) return;
  if (qd->estate == nullptr || (qd->estate->es_top_eflags & (EXEC_FLAG_SKIP_TRIGGERS | EXEC_FLAG_EXPLAIN_ONLY)))
    return;
  auto* mt = reinterpret_cast<ModifyTableState*>(qd->planstate);
  // Only a MERGE that ran to its end (its own AFTER STATEMENT events are queued), may
  // update rows (only an UPDATE moves them), on a partitioned table, with transition tables.
  if (!mt->mt_done || (mt->mt_merge_subcommands & MERGE_UPDATE) == 0 || mt->mt_transition_capture == nullptr ||
      mt->rootResultRelInfo == nullptr || mt->rootResultRelInfo->ri_RelationDesc == nullptr ||
      mt->rootResultRelInfo->ri_RelationDesc->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
    return;
  if ((mt->mt_merge_subcommands & MERGE_DELETE) == 0 && mt->mt_transition_capture->tcs_delete_old_table)
    QueueOwnStatementEvent(mt, "deltasync_capture_del", false);
  if ((mt->mt_merge_subcommands & MERGE_INSERT) == 0 && mt->mt_transition_capture->tcs_insert_new_table)
    QueueOwnStatementEvent(mt, "deltasync_capture_ins", true);
}

void OnExecutorFinish(QueryDesc* qd) {
  FollowMergeMoves(qd);
  if (prev_executor_finish != nullptr) prev_executor_finish(qd);
  else standard_ExecutorFinish(qd);
}

}  // namespace

void InstallMergeCapture() {
  prev_executor_finish = ExecutorFinish_hook;
  ExecutorFinish_hook = OnExecutorFinish;
}

void InvalidateCapture(Oid relid) {
  auto& cache = Cache();
  for (auto it = cache.begin(); it != cache.end();) {
    if (relid == InvalidOid || it->first == relid || it->second->table.relid == relid) {
      Stale().push_back(std::move(it->second));
      it = cache.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace deltasync

using namespace deltasync;

DELTASYNC_PG_FUNCTION(deltasync_capture) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw Error(ErrorCode::kInvalidArgument, "deltasync.capture() is a trigger function");
  auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  Backend& b = Backend::Get();
  // deltasync_capture_bupd (BEFORE UPDATE, on partitioned members) only loads the module
  // at a statement's start: see FollowMergeMoves.
  if (b.applying || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
      (TRIGGER_FIRED_BEFORE(td->tg_event) && TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
    return PointerGetDatum(nullptr);
  Oid relid = RelationGetRelid(td->tg_relation);
  SpiSession spi;
  PgTry([&] { SPI_register_trigger_data(td); });
  CaptureEntry* e = Lookup(relid);
  if (!e) {  // a trigger left on a table deltasync no longer tracks (e.g. restored from a dump)
    spi.Finish();
    return PointerGetDatum(nullptr);
  }
  if (e->table.dropped)
    throw Error(ErrorCode::kInternal, "tracked table " + std::to_string(relid) + " is gone");
  if (!e->table.broken.empty()) throw Error(ErrorCode::kInvalidArgument, BrokenMessage(e->table));
  uint64_t rows = 0;  // the statement's rows (TRUNCATE: as many as the table may hold)
  PgTry([&] {
    if (td->tg_newtable) rows = static_cast<uint64_t>(tuplestore_tuple_count(td->tg_newtable));
    else if (td->tg_oldtable) rows = static_cast<uint64_t>(tuplestore_tuple_count(td->tg_oldtable));
    else rows = kBulkRows;
  });
  if (rows == 0) {  // nothing changed (e.g. a MERGE that moved no row)
    spi.Finish();
    return PointerGetDatum(nullptr);
  }
  std::optional<NoJit> no_jit;
  if (rows >= kBulkRows) no_jit.emplace();
  uint64_t hlc = b.BeginWrite();
  AsRole as(b.ExtensionOwner(), false);
  Args args;
  args.AddInt8(static_cast<int64_t>(hlc));
  const TableInfo& t = e->table;
  if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
    OnInsert(*e, args, rows);
  } else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
    Prepare(e->remove, [&] { return ShadowUpsertSql(t, "deltasync_old", "", false); });
    e->remove.Run(args);
  } else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
    OnUpdate(*e, args);
  } else if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
    // A partition's trigger fires before its rows go: they become deletes. The tracked
    // table's fires after: every row left is gone.
    Prepare(e->truncate, [&] {
      if (!e->q_member.empty()) return ShadowUpsertSql(t, e->q_member, "", false);
      return "UPDATE " + t.q_meta +
             " SET cl = cl + 1, ver = deltasync.next_version(), hlc = $1, site = 0, clk = NULL"
             " WHERE (cl & 1) = 1";
    });
    e->truncate.Run(args);
  }
  spi.Finish();
  return PointerGetDatum(nullptr);
}

// deltasync.next_version(): the next db_version of the current write (the capture
// statements call it per row; one nextval per block of versions).
DELTASYNC_PG_FUNCTION(deltasync_next_version) {
  Backend& b = Backend::Get();
  b.BeginWrite();
  PG_RETURN_INT64(b.NextVersion());
}

// deltasync.ne(a, b): 1 when a and b differ in their stored bytes (or in being NULL), else
// 0. Unlike IS DISTINCT FROM it tells numeric 1.0 from 1.00 and -0.0 from 0.0, ignores
// collations, and works for types without an equality operator (json, point, ...).
DELTASYNC_PG_FUNCTION(deltasync_ne) {
  bool na = PG_ARGISNULL(0), nb = PG_ARGISNULL(1);
  if (na || nb) PG_RETURN_INT64(na == nb ? 0 : 1);
  Oid type = get_fn_expr_argtype(fcinfo->flinfo, 0);
  int16 len = 0;
  bool byval = false;
  PgTry([&] { get_typlenbyval(type, &len, &byval); });
  Datum a = PG_GETARG_DATUM(0), b = PG_GETARG_DATUM(1);
  bool equal = false;
  if (len == -1) {
    std::string_view x = VarlenaBytes(a), y = VarlenaBytes(b);
    equal = x == y;
  } else {
    PgTry([&] { equal = datumIsEqual(a, b, byval, len); });
  }
  PG_RETURN_INT64(equal ? 0 : 1);
}

namespace {

// The clocks of a shadow row from the arguments (hlc, site, clk) at 0, 1, 2 (clk may be NULL).
RowClocks ClocksArg(FunctionCallInfo fcinfo) {
  std::string extras = PG_ARGISNULL(2) ? std::string() : std::string(VarlenaBytes(PG_GETARG_DATUM(2)));
  return RowClocks::Decode(static_cast<uint64_t>(PG_GETARG_INT64(0)), static_cast<uint32_t>(PG_GETARG_INT32(1)), extras);
}

// The elements of an int4[] argument; a NULL element reads as `null_as`.
std::vector<int64_t> IntArrayArg(FunctionCallInfo fcinfo, int arg, int64_t null_as) {
  Datum* items = nullptr;
  bool* nulls = nullptr;
  int n = 0;
  PgTry([&] {
    ArrayType* arr = PG_GETARG_ARRAYTYPE_P(arg);
    deconstruct_array(arr, INT4OID, 4, true, 'i', &items, &nulls, &n);
  });
  std::vector<int64_t> out(static_cast<size_t>(n), null_as);
  for (int k = 0; k < n; ++k)
    if (!nulls[k]) out[static_cast<size_t>(k)] = DatumGetInt32(items[k]);
  return out;
}

// The extras blob of `clocks` as the function's bytea result (SQL NULL when empty).
Datum ExtrasResult(FunctionCallInfo fcinfo, const RowClocks& clocks) {
  std::string out = clocks.EncodeExtras();
  if (out.empty()) PG_RETURN_NULL();
  bytea* result = nullptr;
  PgTry([&] {
    result = static_cast<bytea*>(palloc(VARHDRSZ + out.size()));
    SET_VARSIZE(result, VARHDRSZ + out.size());
    memcpy(VARDATA(result), out.data(), out.size());
  });
  PG_RETURN_BYTEA_P(result);
}

void RequireArgs(FunctionCallInfo fcinfo, int n, const char* fn) {
  for (int k = 0; k < n; ++k)
    if (k != 2 && PG_ARGISNULL(k)) throw Error(ErrorCode::kInvalidArgument, std::string(fn) + ": NULL argument");
}

}  // namespace

// deltasync.clk_set(hlc, site, clk, cl, ver, now, VARIADIC masks): the extras of a shadow
// row after an update of the columns whose bits are set (kColumnsPerMask per mask). A local write always
// gets a clock newer than the version it overwrites, even one from a faster clock or from
// another backend in the same millisecond.
DELTASYNC_PG_FUNCTION(deltasync_clk_set) {
  RequireArgs(fcinfo, 6, "deltasync.clk_set");
  RowClocks clocks = ClocksArg(fcinfo);
  int64_t cl = PG_GETARG_INT64(3);
  clocks.Resolve(PG_GETARG_INT64(4), cl);
  auto now = static_cast<uint64_t>(PG_GETARG_INT64(5));
  Datum* masks = nullptr;  // per captured row: no copy of the array
  bool* nulls = nullptr;
  int n = 0;
  PgTry([&] {
    ArrayType* arr = PG_GETARG_ARRAYTYPE_P(6);
    deconstruct_array(arr, INT8OID, 8, true, 'd', &masks, &nulls, &n);
  });
  MarkUpdatedColumns(clocks, cl, now, n,
                     [&](int g) { return nulls[g] ? uint64_t{0} : static_cast<uint64_t>(DatumGetInt64(masks[g])); },
                     Backend::Get().clock());
  return ExtrasResult(fcinfo, clocks);
}

// deltasync.clk_remap(hlc, site, clk, to): the extras of a shadow row after its table's
// tracked columns changed: the clock of column i moves to position to[i+1] (-1: the column
// is gone, and so is its clock).
DELTASYNC_PG_FUNCTION(deltasync_clk_remap) {
  if (PG_ARGISNULL(2)) PG_RETURN_NULL();
  RequireArgs(fcinfo, 4, "deltasync.clk_remap");
  RowClocks old = ClocksArg(fcinfo);
  RowClocks moved = RemapColumns(old, IntArrayArg(fcinfo, 3, -1));
  return ExtrasResult(fcinfo, moved);
}

// deltasync.clk_readopt(hlc, site, clk, ver, cl, new_ver, cols): the extras of a live
// shadow row whose columns at positions `cols` were renamed and are sent again under the new
// name with row version new_ver: their versions move, their clocks stay (RowClocks::Readopt).
DELTASYNC_PG_FUNCTION(deltasync_clk_readopt) {
  RequireArgs(fcinfo, 7, "deltasync.clk_readopt");
  RowClocks clocks = ClocksArg(fcinfo);
  int64_t cl = PG_GETARG_INT64(4), new_ver = PG_GETARG_INT64(5);
  clocks.Resolve(PG_GETARG_INT64(3), cl);
  for (int64_t c : IntArrayArg(fcinfo, 6, -1))
    if (c >= 0) clocks.Readopt(static_cast<uint32_t>(c), new_ver);
  clocks.Normalize(new_ver, cl);
  return ExtrasResult(fcinfo, clocks);
}

// deltasync.clk_added(hlc, site, clk, ver, cl, new_ver, cols, valued): the extras of a live
// shadow row after columns were added to its table at positions `cols`: what the row holds
// there was written by no one (common/row_clocks MarkAddedColumns) — no version for a NULL,
// the smallest real clock at row version new_ver for a value (positions `valued`).
DELTASYNC_PG_FUNCTION(deltasync_clk_added) {
  RequireArgs(fcinfo, 8, "deltasync.clk_added");
  RowClocks clocks = ClocksArg(fcinfo);
  int64_t cl = PG_GETARG_INT64(4), new_ver = PG_GETARG_INT64(5);
  clocks.Resolve(PG_GETARG_INT64(3), cl);
  std::vector<uint32_t> added, valued;
  for (int64_t c : IntArrayArg(fcinfo, 6, -1))
    if (c >= 0) added.push_back(static_cast<uint32_t>(c));
  for (int64_t c : IntArrayArg(fcinfo, 7, -1))
    if (c >= 0) valued.push_back(static_cast<uint32_t>(c));
  MarkAddedColumns(clocks, added, valued, new_ver, cl);
  clocks.Normalize(new_ver, cl);
  return ExtrasResult(fcinfo, clocks);
}
