#pragma once
// SPI through the boundary: statements with bound parameters, results read as plain values,
// the role a statement runs as, and plans kept for the life of the backend.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pg_ext/pg_boundary.hpp"

extern "C" {
#include "executor/spi.h"
#include "utils/resowner.h"
}

namespace deltasync {

// PostgreSQL's own definitions of names SQLite's adapter defines too live in deltasync::pg, so
// one binary could link both adapters without a one-definition-rule clash.
namespace pg {
// Double-quotes an identifier (quote_identifier rules: always quoted, quotes doubled).
std::string QuoteIdent(std::string_view name);
}  // namespace pg
using pg::QuoteIdent;

// Runs the statements of its scope as `role`, with SECURITY_LOCAL_USERID_CHANGE (so SET
// ROLE cannot undo it), and with search_path pinned to pg_catalog, pg_temp so that no
// object of the caller's can stand in for a built-in one. Restoring the role is a plain
// assignment, safe on every path; the search_path level is popped on the success path and
// by the (sub)transaction abort otherwise.
class AsRole {
 public:
  explicit AsRole(Oid role, bool pin_search_path = true);
  ~AsRole();
  AsRole(const AsRole&) = delete;
  AsRole& operator=(const AsRole&) = delete;

 private:
  Oid saved_user_;
  int saved_context_;
  int guc_level_ = 0;
  int exceptions_ = 0;
};

// Runs deltasync's own DDL (shadow tables, capture triggers) with session_replication_role =
// replica, so event triggers enabled for origin (users' ones, by default) do not fire for it.
// The setting is restored when the scope ends (by the abort after an error).
class QuietDdl {
 public:
  QuietDdl();
  ~QuietDdl();
  QuietDdl(const QuietDdl&) = delete;
  QuietDdl& operator=(const QuietDdl&) = delete;

 private:
  int guc_level_ = 0;
  int exceptions_ = 0;
};

// Runs its scope as a table's owner for statements that may run that owner's code (a
// domain's CHECK, index expressions, an ENABLE ALWAYS trigger): as PostgreSQL does for
// REFRESH MATERIALIZED VIEW, a security-restricted operation whose settings changes are
// discarded when the scope ends, so nothing of it outlives the statement.
class AsTableOwner {
 public:
  explicit AsTableOwner(Oid owner);
  ~AsTableOwner();
  AsTableOwner(const AsTableOwner&) = delete;
  AsTableOwner& operator=(const AsTableOwner&) = delete;

 private:
  Oid saved_user_;
  int saved_context_;
  int guc_level_ = 0;
  int exceptions_ = 0;
};

// SPI_connect for the scope of one SQL-callable function or trigger. Finish() on the
// success path; after an error the transaction's abort cleans SPI up.
class SpiSession {
 public:
  SpiSession();
  void Finish();
  ~SpiSession() = default;

 private:
  bool finished_ = false;
};

// Parameters of one statement: types fixed at prepare time, values per execution.
struct Args {
  std::vector<Oid> types;
  std::vector<Datum> values;
  std::vector<char> nulls;  // ' ' or 'n', as SPI wants
  void Add(Oid type, Datum v, bool isnull = false) {
    types.push_back(type);
    values.push_back(v);
    nulls.push_back(isnull ? 'n' : ' ');
  }
  void AddInt8(int64_t v);
  void AddInt4(int32_t v);
  void AddText(std::string_view s);  // palloc'd in the current context
  void AddBytea(std::string_view b);
};

// A prepared statement kept across calls (SPI_keepplan). Never freed while cached.
class Plan {
 public:
  Plan() = default;
  void Prepare(const std::string& sql, const std::vector<Oid>& types) { Prepare(sql, types, true); }
  bool Ready() const { return plan_ != nullptr; }
  // keep = false: the plan lives until SPI_finish (for one call's statements).
  void Prepare(const std::string& sql, const std::vector<Oid>& types, bool keep);
  // Executes with args.values/nulls; returns SPI_processed. Result rows stay in SPI_tuptable.
  uint64_t Run(const Args& args, long limit = 0) const;
  void Free();

 private:
  SPIPlanPtr plan_ = nullptr;
};

// A subtransaction for a scope: Commit() releases it; otherwise (an exception) the
// destructor rolls it back. The caller's memory context and resource owner are restored
// either way.
class SubTransaction {
 public:
  SubTransaction();
  void Commit();
  ~SubTransaction();
  SubTransaction(const SubTransaction&) = delete;
  SubTransaction& operator=(const SubTransaction&) = delete;

 private:
  void Restore();
  MemoryContext context_;
  ResourceOwner owner_;
  bool done_ = false;
};

// One-off statement (prepared, run, forgotten). Every statement, here and in Plan::Run, runs
// with a command-counter increment and (in READ COMMITTED) a fresh snapshot: it sees what
// this call wrote before, and what other transactions committed until it started.
uint64_t RunSql(const std::string& sql, const Args& args = {});

// The rows of one statement (0-based row and column). They stay valid until SPI_finish,
// even after later statements, which the Result* shorthands below (last statement) do not.
class Rows {
 public:
  Rows() : tt_(SPI_tuptable), n_(SPI_processed) {}  // the last statement's
  uint64_t size() const { return n_; }
  bool IsNull(uint64_t row, int col) const;
  Datum Get(uint64_t row, int col, bool* isnull) const;
  int64_t Int(uint64_t row, int col, int64_t if_null = 0) const;
  std::string Text(uint64_t row, int col) const;  // text, bytea, name; other types as output text
  Oid Type(int col) const;

 private:
  SPITupleTable* tt_;
  uint64_t n_;
};

inline int64_t ResultInt(uint64_t row, int col, int64_t if_null = 0) { return Rows().Int(row, col, if_null); }
inline std::string ResultText(uint64_t row, int col) { return Rows().Text(row, col); }

// Bytes of a (possibly toasted) text or bytea datum.
std::string_view VarlenaBytes(Datum d);

}  // namespace deltasync
