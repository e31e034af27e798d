// The measuring half of bench/latency.sh. A site is a SQLite file (kept in sync by
// `deltasync agent`) or `pg:DBNAME` (kept in sync by the extension's schedule workers); every
// site holds t(id, site, n), tracked, with a schedule on one hub. Modes:
//   latency WRITES SITE...  one row at a time is committed on each site in turn; the time until
//                           it is visible on every other site is recorded; prints p50/p90/p99/max
//                           per writer and overall; fails only when a row never arrives (30 s)
//   write PREFIX COUNT SITE... commits COUNT rows on each site, one every ~10 ms, round-robin
//   await ROWS LIMIT_S SITE... waits until every site holds ROWS rows; prints how long it took
// Prints numbers, never judges them.
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "deltasync_bench_latency: %s\n", why.c_str());
  std::exit(1);
}

class Site {
 public:
  virtual ~Site() = default;
  virtual void Exec(const std::string& sql) = 0;
  virtual bool Has(const std::string& id) = 0;
  virtual long long Count() = 0;
  std::string name;
};

class SqliteSite : public Site {
 public:
  explicit SqliteSite(const std::string& path) {
    name = path.substr(path.rfind('/') + 1);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) Die("cannot open " + path);
    sqlite3_busy_timeout(db_, 10000);
    // The extension is loaded for its triggers (writes) and functions.
    sqlite3_enable_load_extension(db_, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(db_, DELTASYNC_SQLITE_EXT, "sqlite3_deltasync_init", &err) != SQLITE_OK)
      Die(std::string("cannot load the extension: ") + (err ? err : "?"));
  }
  ~SqliteSite() override { sqlite3_close(db_); }
  void Exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK)
      Die(name + ": " + (err ? err : "?"));
  }
  bool Has(const std::string& id) override {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "SELECT 1 FROM t WHERE id = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
  }
  long long Count() override {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "SELECT count(*) FROM t", -1, &st, nullptr);
    long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
  }

 private:
  sqlite3* db_ = nullptr;
};

class PgSite : public Site {
 public:
  explicit PgSite(const std::string& dbname) {
    name = "pg:" + dbname;
    conn_ = PQconnectdb(("dbname=" + dbname).c_str());
    if (PQstatus(conn_) != CONNECTION_OK) Die("cannot connect to " + dbname + ": " + PQerrorMessage(conn_));
  }
  ~PgSite() override { PQfinish(conn_); }
  void Exec(const std::string& sql) override { PQclear(Run(sql, {})); }
  bool Has(const std::string& id) override {
    PGresult* r = Run("SELECT 1 FROM t WHERE id = $1", {id});
    bool found = PQntuples(r) > 0;
    PQclear(r);
    return found;
  }
  long long Count() override {
    PGresult* r = Run("SELECT count(*) FROM t", {});
    long long n = std::atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
  }

 private:
  PGresult* Run(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> p;
    for (const auto& s : params) p.push_back(s.c_str());
    PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) Die(name + ": " + PQresultErrorMessage(r));
    return r;
  }
  PGconn* conn_ = nullptr;
};

std::vector<std::unique_ptr<Site>> OpenSites(int argc, char** argv, int first) {
  std::vector<std::unique_ptr<Site>> out;
  for (int k = first; k < argc; ++k) {
    std::string a = argv[k];
    if (a.rfind("pg:", 0) == 0) out.push_back(std::make_unique<PgSite>(a.substr(3)));
    else out.push_back(std::make_unique<SqliteSite>(a));
  }
  if (out.size() < 2) Die("at least two sites are needed");
  return out;
}

std::string Insert(const std::string& id, const std::string& site, long long n) {
  return "INSERT INTO t(id, site, n) VALUES ('" + id + "', '" + site + "', " + std::to_string(n) + ")";
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

void Report(const std::string& what, const std::vector<double>& ms) {
  if (ms.empty()) return;
  std::printf("%-34s n=%-5zu p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms  max %7.1f ms\n", what.c_str(), ms.size(),
              Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
}

int Latency(int writes, std::vector<std::unique_ptr<Site>>& sites) {
  std::vector<std::vector<double>> per_writer(sites.size());
  std::vector<double> all;
  std::mt19937 rng(1);
  for (int i = 0; i < writes; ++i) {
    size_t w = static_cast<size_t>(i) % sites.size();
    std::string id = "lat" + std::to_string(i);
    sites[w]->Exec(Insert(id, sites[w]->name, i));
    auto committed = Clock::now();
    std::vector<bool> seen(sites.size(), false);
    seen[w] = true;
    size_t left = sites.size() - 1;
    while (left > 0) {
      for (size_t k = 0; k < sites.size(); ++k) {
        if (seen[k] || !sites[k]->Has(id)) continue;
        seen[k] = true;
        --left;
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - committed).count();
        per_writer[w].push_back(ms);
        all.push_back(ms);
      }
      if (Clock::now() - committed > std::chrono::seconds(30)) Die("row " + id + " did not arrive everywhere within 30 s");
      if (left > 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));  // writes are not back to back
  }
  for (size_t w = 0; w < sites.size(); ++w) Report("commit on " + sites[w]->name + " -> visible", per_writer[w]);
  Report("commit -> visible, all", all);
  return 0;
}

int Write(const std::string& prefix, int count, std::vector<std::unique_ptr<Site>>& sites) {
  for (int i = 0; i < count; ++i)
    for (size_t w = 0; w < sites.size(); ++w) {
      sites[w]->Exec(Insert(prefix + std::to_string(w) + "_" + std::to_string(i), sites[w]->name, i));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  return 0;
}

int Await(long long rows, int limit_s, std::vector<std::unique_ptr<Site>>& sites) {
  auto t0 = Clock::now();
  for (;;) {
    bool all = true;
    for (auto& s : sites) all = all && s->Count() >= rows;
    if (all) break;
    if (Clock::now() - t0 > std::chrono::seconds(limit_s)) {
      for (auto& s : sites) std::fprintf(stderr, "%s holds %lld of %lld rows\n", s->name.c_str(), s->Count(), rows);
      Die("the sites did not converge within " + std::to_string(limit_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("converged: every site holds %lld rows %.0f ms after the hub came back\n", rows,
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "latency" && argc >= 5) {
    auto sites = OpenSites(argc, argv, 3);
    return Latency(std::atoi(argv[2]), sites);
  }
  if (mode == "write" && argc >= 6) {
    auto sites = OpenSites(argc, argv, 4);
    return Write(argv[2], std::atoi(argv[3]), sites);
  }
  if (mode == "await" && argc >= 6) {
    auto sites = OpenSites(argc, argv, 4);
    return Await(std::atoll(argv[2]), std::atoi(argv[3]), sites);
  }
  std::fprintf(stderr,
               "usage: %s latency WRITES SITE SITE...\n"
               "       %s write PREFIX COUNT SITE SITE...\n"
               "       %s await ROWS LIMIT_S SITE SITE...\n"
               "a SITE is a SQLite file or pg:DBNAME\n",
               argv[0], argv[0], argv[0]);
  return 2;
}
