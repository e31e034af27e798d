#pragma once
// Random writes for the convergence property tests (direct exchange in property_test.cpp,
// through a hub in e2e/hub_sync_test.cpp): inserts, INSERT OR REPLACE, UPSERT, updates of
// random columns, deletes, re-inserts and key changes, in and out of transactions and
// savepoints, with values of every storage class, on the schema kRandomWriteSchema creates.
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sqlite_test_util.hpp"

namespace deltasync::test {

inline constexpr const char* kRandomWriteSchema =
    "CREATE TABLE t(k1 INTEGER, k2 TEXT, i INTEGER, r REAL, s TEXT, b BLOB, n, PRIMARY KEY (k1, k2));"
    "CREATE TABLE tags(tag TEXT PRIMARY KEY) WITHOUT ROWID;"
    // As an ORM declares columns: NOT NULL without a default.
    "CREATE TABLE nn(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL, c NOT NULL);"
    "SELECT deltasync_enable('t'); SELECT deltasync_enable('tags'); SELECT deltasync_enable('nn');";

// The queries that compare two sites' tracked tables exactly.
inline constexpr const char* kRandomWriteTables[] = {"SELECT k1, k2, i, r, s, b, n FROM t ORDER BY k1, k2",
                                                 "SELECT tag FROM tags ORDER BY tag",
                                                 "SELECT * FROM nn ORDER BY id"};

// Tables with constraints a concurrent history can break (docs/applications.md,
// "Constraints"): a UNIQUE column, and a child with ON DELETE CASCADE, with foreign keys on.
inline constexpr const char* kConstraintSchema =
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE prod(id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, qty INTEGER NOT NULL);"
    "CREATE TABLE par(id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE kid(id INTEGER PRIMARY KEY, par_id INTEGER NOT NULL REFERENCES par(id) ON DELETE CASCADE, n INTEGER);"
    "SELECT deltasync_enable('prod'), deltasync_enable('par'), deltasync_enable('kid');";
inline constexpr const char* kConstraintTables[] = {"SELECT * FROM prod ORDER BY id", "SELECT * FROM par ORDER BY id",
                                                    "SELECT * FROM kid ORDER BY id"};

class RandomWriter {
 public:
  explicit RandomWriter(std::mt19937_64& rng) : rng_(rng) {}

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  Value RandomValue() {
    switch (Pick(12)) {
      case 0: return Value::Null();
      case 1: return Value::Integer(std::numeric_limits<int64_t>::min());
      case 2: return Value::Integer(std::numeric_limits<int64_t>::max());
      case 3: return Value::Integer(static_cast<int64_t>(Pick(5)));
      case 4: return Value::Real(-0.0);
      case 5: return Value::Real(1.0);
      case 6: return Value::Real(std::numeric_limits<double>::infinity());
      case 7: return Value::Real(0.1 * static_cast<double>(Pick(5)));
      case 8: return Value::Text(std::string("t\0x", 3) + std::to_string(Pick(4)));
      case 9: return Value::Text("ü✓" + std::to_string(Pick(4)));
      case 10: return Value::Blob(std::string("\0\xff", 2) + std::string(Pick(3), '\0'));
      default: return Value::Text("");
    }
  }

  Value NonNullValue() {
    Value v = RandomValue();
    return v.type == ValueType::kNull ? Value::Integer(-1) : v;
  }

  std::vector<Value> RandomKey() {
    static const char* k2[] = {"a", "b", "c"};
    return {Value::Integer(static_cast<int64_t>(Pick(4))), Value::Text(k2[Pick(3)])};
  }

  void Write(Site& s) {
    static const char* cols[] = {"i", "r", "s", "b", "n"};
    bool txn = Pick(4) == 0;
    if (txn) s.Exec("BEGIN");
    int writes = txn ? 1 + static_cast<int>(Pick(4)) : 1;
    bool savepoint = txn && Pick(3) == 0;
    for (int w = 0; w < writes; ++w) {
      if (savepoint && w == 0) s.Exec("SAVEPOINT sp");
      if (savepoint && w == 1) s.Exec(Pick(2) ? "ROLLBACK TO sp" : "RELEASE sp");
      std::vector<Value> key = RandomKey();
      switch (Pick(12)) {
        case 0:
        case 1: {
          std::vector<Value> p = key;
          for (int c = 0; c < 5; ++c) p.push_back(RandomValue());
          const char* verb = Pick(2) ? "INSERT OR IGNORE" : "INSERT OR REPLACE";
          s.Rows(std::string(verb) + " INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", p);
          break;
        }
        case 2: {
          std::vector<Value> p = key;
          p.push_back(RandomValue());
          p.push_back(RandomValue());
          s.Rows("INSERT INTO t(k1, k2, i, s) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET s = excluded.s", p);
          break;
        }
        case 3:
        case 4: {
          std::string col = cols[Pick(5)], col2 = cols[Pick(5)];
          std::vector<Value> p = {RandomValue(), RandomValue(), key[0], key[1]};
          s.Rows("UPDATE t SET " + col + " = ?1, " + col2 + " = ?2 WHERE k1 = ?3 AND k2 = ?4", p);
          break;
        }
        case 5: s.Rows("DELETE FROM t WHERE k1 = ?1 AND k2 = ?2", key); break;
        case 6: {
          std::vector<Value> p = {Value::Integer(static_cast<int64_t>(Pick(4))), key[0], key[1]};
          s.Rows("UPDATE OR IGNORE t SET k1 = ?1 WHERE k1 = ?2 AND k2 = ?3", p);
          break;
        }
        case 7: s.Rows("INSERT OR IGNORE INTO tags VALUES (?1)", {key[1]}); break;
        case 8: s.Rows("DELETE FROM tags WHERE tag = ?1", {key[1]}); break;
        case 9: {
          std::vector<Value> p = {key[0], NonNullValue(), NonNullValue(), NonNullValue()};
          s.Rows(std::string(Pick(2) ? "INSERT OR REPLACE" : "INSERT OR IGNORE") + " INTO nn VALUES (?1, ?2, ?3, ?4)", p);
          break;
        }
        case 10: {
          const std::string col = Pick(3) == 0 ? nn_a : (Pick(2) ? "b" : "c");
          s.Rows("UPDATE nn SET " + col + " = ?1 WHERE id = ?2", {NonNullValue(), key[0]});
          break;
        }
        default: s.Rows("DELETE FROM nn WHERE id = ?1", {key[0]}); break;
      }
    }
    if (txn) s.Exec(Pick(5) == 0 ? "ROLLBACK" : "COMMIT");
  }

  // One random write on kConstraintSchema. Writes the site's own constraints refuse (a taken
  // sku, a line for an order it does not hold) fail as they would for the application.
  void WriteConstrained(Site& s) {
    static const char* skus[] = {"A", "B", "C"};
    Value id = Value::Integer(static_cast<int64_t>(Pick(5)));
    Value par = Value::Integer(static_cast<int64_t>(Pick(3)));
    Value num = Value::Integer(static_cast<int64_t>(Pick(100)));
    Value sku = Value::Text(skus[Pick(3)]);
    try {
      switch (Pick(10)) {
        case 0: s.Rows("INSERT OR IGNORE INTO prod VALUES (?1, ?2, ?3)", {id, sku, num}); break;
        case 1: s.Rows("UPDATE OR IGNORE prod SET sku = ?2 WHERE id = ?1", {id, sku}); break;
        case 2: s.Rows("UPDATE prod SET qty = ?2 WHERE id = ?1", {id, num}); break;
        case 3: s.Rows("DELETE FROM prod WHERE id = ?1", {id}); break;
        case 4: s.Rows("INSERT OR IGNORE INTO par VALUES (?1, ?2)", {par, sku}); break;
        case 5: s.Rows("DELETE FROM par WHERE id = ?1", {par}); break;  // cascades to its kids
        case 6: s.Rows("UPDATE par SET v = ?2 WHERE id = ?1", {par, sku}); break;
        case 7:
        case 8: s.Rows("INSERT OR IGNORE INTO kid VALUES (?1, ?2, ?3)", {id, par, num}); break;
        default: s.Rows("UPDATE kid SET par_id = ?2 WHERE id = ?1", {id, par}); break;
      }
    } catch (const std::runtime_error&) {
      // FOREIGN KEY constraint failed: the site does not hold that parent.
    }
  }

  // The current name of nn's first column (the property test renames it on every site).
  std::string nn_a = "a";

 private:
  std::mt19937_64& rng_;
};

}  // namespace deltasync::test
