// The measuring half of bench/latency.sh: commits one row at a time on a writer file and
// times how long each takes to be visible on every observer file (kept in sync by
// `deltasync agent`, started by the script). Prints p50/p90/p99/max; fails only when a row
// never arrives (30 s). Usage: deltasync_bench_latency WRITES WRITER_DB OBSERVER_DB...
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Opens a file with a busy timeout; the writer also loads the extension (its triggers need it).
sqlite3* Open(const char* path, bool load) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(1);
  }
  sqlite3_busy_timeout(db, 10000);
  if (load) {
    sqlite3_enable_load_extension(db, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(db, DELTASYNC_SQLITE_EXT, "sqlite3_deltasync_init", &err) != SQLITE_OK) {
      std::fprintf(stderr, "cannot load the extension: %s\n", err ? err : "?");
      std::exit(1);
    }
  }
  return db;
}

// True when the row `id` is in t on `db`.
bool Has(sqlite3* db, const std::string& id) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1 FROM t WHERE id = ?1", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  bool found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

void Report(const char* what, const std::vector<double>& ms) {
  if (ms.empty()) return;
  std::printf("%-26s n=%zu  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n", what, ms.size(), Percentile(ms, 0.5),
              Percentile(ms, 0.9), Percentile(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s WRITES WRITER_DB OBSERVER_DB...\n", argv[0]);
    return 2;
  }
  int writes = std::atoi(argv[1]);
  sqlite3* writer = Open(argv[2], true);
  std::vector<sqlite3*> observers;
  for (int k = 3; k < argc; ++k) observers.push_back(Open(argv[k], false));
  std::vector<std::vector<double>> per(observers.size());
  std::vector<double> all;
  std::mt19937 rng(1);
  for (int i = 0; i < writes; ++i) {
    std::string id = "lat" + std::to_string(i);
    std::string sql = "INSERT INTO t(id, site, n) VALUES ('" + id + "', 'writer', " + std::to_string(i) + ")";
    char* err = nullptr;
    if (sqlite3_exec(writer, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::fprintf(stderr, "insert failed: %s\n", err ? err : "?");
      return 1;
    }
    auto committed = Clock::now();
    std::vector<bool> seen(observers.size(), false);
    size_t left = observers.size();
    while (left > 0) {
      for (size_t k = 0; k < observers.size(); ++k) {
        if (seen[k] || !Has(observers[k], id)) continue;
        seen[k] = true;
        --left;
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - committed).count();
        per[k].push_back(ms);
        all.push_back(ms);
      }
      if (Clock::now() - committed > std::chrono::seconds(30)) {
        std::fprintf(stderr, "row %s did not arrive on every observer within 30 s\n", id.c_str());
        return 1;
      }
      if (left > 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));  // writes are not back to back
  }
  for (size_t k = 0; k < observers.size(); ++k) Report(("commit -> visible on " + std::string(argv[3 + k]).substr(std::string(argv[3 + k]).rfind('/') + 1)).c_str(), per[k]);
  Report("commit -> visible, all", all);
  for (sqlite3* db : observers) sqlite3_close(db);
  sqlite3_close(writer);
  return 0;
}
