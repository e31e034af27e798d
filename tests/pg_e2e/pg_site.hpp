#pragma once
// A PostgreSQL site for tests: a fresh database in the cluster pg_virtualenv started (its
// PG* environment), with the deltasync extension, reached through libpq.
#include <libpq-fe.h>

#include <unistd.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltasync::test {

class PgConn {
 public:
  explicit PgConn(const std::string& dbname) {
    conn_ = PQconnectdb(("dbname=" + dbname).c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error("cannot connect to " + dbname + ": " + why);
    }
    Exec("SET client_min_messages = warning");
  }
  ~PgConn() { PQfinish(conn_); }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Rows as text (NULL as "\N"); throws std::runtime_error with the server's message.
  std::vector<std::vector<std::string>> Rows(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> p;
    for (const auto& s : params) p.push_back(s.c_str());
    PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string why = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error(why);
    }
    std::vector<std::vector<std::string>> out;
    for (int i = 0; i < PQntuples(r); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r); ++j) row.push_back(PQgetisnull(r, i, j) ? "\\N" : PQgetvalue(r, i, j));
      out.push_back(std::move(row));
    }
    PQclear(r);
    return out;
  }
  void Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string why = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error(why + " (running: " + sql.substr(0, 200) + ")");
    }
    PQclear(r);
  }
  std::string Text(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto rows = Rows(sql, params);
    if (rows.empty() || rows[0].empty()) throw std::runtime_error("no result: " + sql);
    return rows[0][0];
  }
  PGconn* raw() { return conn_; }

 private:
  PGconn* conn_ = nullptr;
};

// A new database with the extension, dropped again at the end.
class PgSite {
 public:
  PgSite() : name_("ds_t" + std::to_string(getpid()) + "_" + std::to_string(counter()++)) {
    PgConn admin("postgres");
    admin.Exec("DROP DATABASE IF EXISTS " + name_);
    admin.Exec("CREATE DATABASE " + name_);
    conn_ = std::make_unique<PgConn>(name_);
    conn_->Exec("CREATE EXTENSION deltasync");
  }
  ~PgSite() {
    conn_.reset();
    try {
      PgConn admin("postgres");
      admin.Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PgConn& operator*() { return *conn_; }
  PgConn* operator->() { return conn_.get(); }
  const std::string& name() const { return name_; }

 private:
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
  std::string name_;
  std::unique_ptr<PgConn> conn_;
};

}  // namespace deltasync::test
