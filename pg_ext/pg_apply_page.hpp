#pragma once
// deltasync_apply a page at a time (pg_apply.cpp): the parameters of a run of rows as one
// array per column (a statement takes them apart with unnest), which tables may be written
// so with the same result as one statement per row, and the identity of a key's value.
#include <cstddef>
#include <string>
#include <vector>

#include "pg_ext/pg_spi.hpp"
#include "pg_ext/pg_state.hpp"

namespace deltasync {

// The values of a run of rows, column by column, and the arrays made of them.
class ColumnArrays {
 public:
  ColumnArrays() = default;
  // Element types as declared (a domain's array is the domain's). Throws when one has no
  // array type (PageableTable refuses such tables first).
  explicit ColumnArrays(const std::vector<Oid>& types);
  size_t rows() const { return rows_; }
  size_t columns() const { return elem_.size(); }
  // Appends one row: a.values[first + c] for each column c.
  void AddRow(const Args& a, size_t first);
  // Appends value v to column c (a row is complete when every column has it).
  void Add(size_t c, Datum v, bool isnull);
  void EndRow() { ++rows_; }
  void Clear();
  // The arrays, of all rows or of rows `pick` only, as parameters (of the array types).
  Args Arrays(const std::vector<size_t>* pick = nullptr) const;
  // The array types, for Plan::Prepare.
  std::vector<Oid> ArrayTypes() const { return array_; }

 private:
  std::vector<Oid> elem_, array_;
  std::vector<int16> len_;
  std::vector<bool> byval_;
  std::vector<char> align_;
  std::vector<std::vector<Datum>> values_;
  std::vector<std::vector<bool>> nulls_;
  size_t rows_ = 0;
};

// True when rows of `t` written a run at a time, in row order, end exactly as one statement
// per row would leave them: a plain table (no partitions, no inheritance children, no
// forced row security), no unique or exclusion index but the primary key and no deferrable
// key, no trigger or rule that fires during an apply (ENABLE ALWAYS / REPLICA), key types
// whose equality is equality of their bytes (so a page's keys can be told apart here), and
// an array type for every key and column type. Runs SPI; call inside the apply's locks.
bool PageableTable(const TableInfo& t);

// The bytes of key values (a's first n), equal exactly when PostgreSQL finds the keys equal
// (for the key types PageableTable admits).
std::string KeyBytes(const Args& a, size_t n, const std::vector<int16>& lens, const std::vector<bool>& byvals);

// One "$k" per parameter from `first`, as "unnest($1, $2)" takes them.
std::string ParamList(size_t first, size_t n);

// "unnest($1), unnest($2), ...": the n arrays side by side as the rows of a select list
// (equal lengths: they run in step). Unlike unnest in FROM, they are not first copied into
// a tuplestore.
std::string UnnestList(size_t n);

}  // namespace deltasync
