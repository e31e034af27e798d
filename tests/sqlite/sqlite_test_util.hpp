#pragma once
// Test helpers: a SQLite connection with deltasync.so loaded, and small query helpers.
#include <sqlite3.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/value.hpp"

namespace deltasync::test {

// One site: an in-memory (or file) database with the extension loaded.
class Site {
 public:
  explicit Site(const std::string& path = ":memory:", bool load = true) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open failed");
    if (load) Load();
  }
  ~Site() {
    if (db_) sqlite3_close(db_);
  }
  Site(const Site&) = delete;
  Site& operator=(const Site&) = delete;

  void Load() {
    sqlite3_enable_load_extension(db_, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(db_, DELTASYNC_SQLITE_EXT, "sqlite3_deltasync_init", &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error("load failed: " + msg);
    }
  }

  sqlite3* db() const { return db_; }

  // Runs SQL; throws std::runtime_error with SQLite's message on failure.
  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg);
    }
  }

  // Runs SQL expecting failure; returns the error message ("" if it succeeded).
  std::string ExecError(const std::string& sql) {
    try {
      Exec(sql);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }

  // All rows of a query, each value exact (storage class and bytes).
  std::vector<std::vector<Value>> Rows(const std::string& sql, const std::vector<Value>& params = {}) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    for (size_t k = 0; k < params.size(); ++k) Bind(st, static_cast<int>(k + 1), params[k]);
    std::vector<std::vector<Value>> rows;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<Value> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) row.push_back(Column(st, c));
      rows.push_back(std::move(row));
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    if (!err.empty()) throw std::runtime_error(err);
    return rows;
  }

  // The first column of the first row, as text ("" for none); throws on SQL error.
  std::string Text(const std::string& sql, const std::vector<Value>& params = {}) {
    auto rows = Rows(sql, params);
    if (rows.empty() || rows[0].empty()) return "";
    const Value& v = rows[0][0];
    if (v.type == ValueType::kInteger) return std::to_string(v.i);
    return v.s;
  }
  int64_t Int(const std::string& sql) {
    auto rows = Rows(sql);
    if (rows.empty() || rows[0].empty()) throw std::runtime_error("no row");
    return rows[0][0].i;
  }

  // Payload helpers.
  std::string Changes(int64_t since = 0) {
    return Text("SELECT deltasync_changes(?1)", {Value::Integer(since)});
  }
  std::string Apply(const std::string& payload) {
    return Text("SELECT deltasync_apply(?1)", {Value::Text(payload)});
  }

 private:
  static void Bind(sqlite3_stmt* st, int i, const Value& v) {
    switch (v.type) {
      case ValueType::kNull: sqlite3_bind_null(st, i); break;
      case ValueType::kInteger: sqlite3_bind_int64(st, i, v.i); break;
      case ValueType::kReal: sqlite3_bind_double(st, i, v.r); break;
      case ValueType::kText: sqlite3_bind_text(st, i, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT); break;
      case ValueType::kBlob: sqlite3_bind_blob(st, i, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT); break;
    }
  }
  static Value Column(sqlite3_stmt* st, int c) {
    switch (sqlite3_column_type(st, c)) {
      case SQLITE_INTEGER: return Value::Integer(sqlite3_column_int64(st, c));
      case SQLITE_FLOAT: return Value::Real(sqlite3_column_double(st, c));
      case SQLITE_TEXT:
        return Value::Text(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)),
                                       sqlite3_column_bytes(st, c)));
      case SQLITE_BLOB: {
        const void* p = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        return Value::Blob(std::string(p ? static_cast<const char*>(p) : "", n));
      }
      default: return Value::Null();
    }
  }

  sqlite3* db_ = nullptr;
};

}  // namespace deltasync::test
