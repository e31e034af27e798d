// The load generator of bench/hub_scale_bench.sh's MODE=load (issue 16): the hub's own ingest,
// without 16-64 sqlite3 processes capturing and encoding beside it. Every push body is built
// and encoded before the clock starts, the way a site sends it (the binary codec, zstd), each
// client its own site id and keys, rows over several tables and columns; then CLIENTS threads
// push their bodies concurrently over keep-alive connections (common/http_client, libcurl) to
// a running `deltasync serve`, and it prints what the hub accepted.
//
//   deltasync_bench_hub_load URL CLIENTS NODES PUSHES ROWS [PID...]
//     URL     http://127.0.0.1:PORT (the hub's base; nodes are load0 .. load<NODES-1>)
//     CLIENTS threads, client c pushes to node load<c % NODES>
//     PUSHES  pushes per client, each of ROWS rows (3 tables, 4 columns: 4 changes a row)
//     PID     processes whose CPU time (with that of their children, e.g. a postmaster's
//             backends) is read from /proc before and after: CPU per 1,000 changes
//
// Prints one line: "changes/s <n> changes <n> seconds <s> cpu_ms_per_1000 <pid:ms>... client_cpu_ms_per_1000 <ms>".
// Fails (exit 1) only when a push is refused or the hub applied fewer changes than sent;
// it never judges a number.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/compress.hpp"
#include "common/hlc.hpp"
#include "common/http_client.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"

namespace {

using deltasync::Payload;
using deltasync::Value;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "deltasync_bench_hub_load: %s\n", why.c_str());
  std::exit(1);
}

constexpr int kTables = 3;
constexpr int kColumns = 4;

// One push of client c: ROWS rows spread over the tables, every column written.
Payload MakePush(const deltasync::SiteId& site, int client, int push, int rows, uint64_t hlc0) {
  Payload p;
  p.site = site;
  p.since = push;
  p.until = push + 1;
  p.sites = {site};
  for (int t = 0; t < kTables; ++t) {
    deltasync::TableChanges tc;
    tc.name = "bench_t" + std::to_string(t);
    tc.pk = {"id"};
    tc.columns = {"name", "qty", "price", "note"};
    p.tables.push_back(std::move(tc));
  }
  uint64_t hlc = hlc0;
  for (int r = 0; r < rows; ++r) {
    deltasync::RowChanges row;
    char key[48];
    std::snprintf(key, sizeof key, "c%03d-p%05d-r%05d", client, push, r);
    row.key = {Value::Text(key)};
    row.cl = 1;
    row.changes.push_back({0, Value::Text("item " + std::to_string(r * 7919 % 100003)), ++hlc, 0, 1});
    row.changes.push_back({1, Value::Integer(r % 97), ++hlc, 0, 1});
    row.changes.push_back({2, Value::Real(0.25 * (r % 4001)), ++hlc, 0, 1});
    row.changes.push_back({3, Value::Text("note of row " + std::to_string(r) + " from client " + std::to_string(client)),
                           ++hlc, 0, 1});
    p.tables[static_cast<size_t>(r % kTables)].rows.push_back(std::move(row));
  }
  return p;
}

// utime + stime of a process, in clock ticks (0 when it is gone).
long long Ticks(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string s;
  std::getline(in, s);
  size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string f;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> f; ++i) {
    if (i == 14) utime = std::atoll(f.c_str());
    if (i == 15) stime = std::atoll(f.c_str());
  }
  return utime + stime;
}

std::string Ppid(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string s;
  std::getline(in, s);
  size_t close = s.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(s.substr(close + 2));
  std::string state, ppid;
  rest >> state >> ppid;
  return ppid;
}

// The CPU ticks of pid and of its living children (a postmaster: its backends and workers).
long long TreeTicks(const std::string& pid) {
  long long total = Ticks(pid);
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.empty() || name[0] < '0' || name[0] > '9') continue;
      if (Ppid(name) == pid) total += Ticks(name);
    }
    closedir(d);
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) Die("usage: deltasync_bench_hub_load URL CLIENTS NODES PUSHES ROWS [PID...]");
  const std::string base = argv[1];
  const int clients = std::atoi(argv[2]), nodes = std::atoi(argv[3]), pushes = std::atoi(argv[4]),
            rows = std::atoi(argv[5]);
  if (clients < 1 || nodes < 1 || pushes < 1 || rows < 1) Die("CLIENTS, NODES, PUSHES and ROWS must be at least 1");
  std::vector<std::string> pids(argv + 6, argv + argc);

  // Every body, encoded before the clock starts.
  const uint64_t hlc0 = deltasync::HlcFromMillis(deltasync::WallClockMillis());
  // Each client's first body is its warm-up (one row, pushed before the clock starts): the
  // hub then knows its node, tables and site, as it knows a site that syncs every day.
  std::vector<std::vector<std::string>> bodies(static_cast<size_t>(clients));
  std::vector<std::string> warmups(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    deltasync::SiteId site = deltasync::SiteId::Random();
    warmups[static_cast<size_t>(c)] =
        deltasync::ZstdCompress(deltasync::EncodeBinary(MakePush(site, c, pushes, kTables, hlc0 - 1000)));
    for (int k = 0; k < pushes; ++k)
      bodies[static_cast<size_t>(c)].push_back(
          deltasync::ZstdCompress(deltasync::EncodeBinary(MakePush(site, c, k, rows, hlc0 + uint64_t(k) * 8 * rows))));
  }
  const long long per_push = static_cast<long long>(rows) * kColumns;
  const long long expected = per_push * pushes * clients;

  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", std::string(deltasync::kContentTypeBinary)},
      {"Content-Encoding", std::string(deltasync::kContentEncodingZstd)}};
  deltasync::HttpOptions http;
  http.timeout_ms = 600000;

  // Each thread first pushes its warm-up (which also opens its connection), then waits for the start.
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<long long> applied{0};
  std::vector<std::string> errors(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      const std::string url = base + "/nodes/load" + std::to_string(c % nodes) + "/push";
      try {
        deltasync::HttpResponse res = deltasync::HttpRequest("POST", url, headers, warmups[static_cast<size_t>(c)], http);
        if (res.status != 200) throw std::runtime_error("warm-up: HTTP " + std::to_string(res.status) + ": " + res.body);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(c)] = e.what();
      }
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (!errors[static_cast<size_t>(c)].empty()) return;
      try {
        for (const std::string& body : bodies[static_cast<size_t>(c)]) {
          deltasync::HttpResponse res = deltasync::HttpRequest("POST", url, headers, body, http);
          if (res.status != 200) throw std::runtime_error("HTTP " + std::to_string(res.status) + ": " + res.body);
          applied.fetch_add(nlohmann::json::parse(res.body).at("applied").get<long long>());
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(c)] = e.what();
      }
    });
  }
  while (ready.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::vector<long long> before;
  for (const std::string& p : pids) before.push_back(TreeTicks(p));
  rusage ru0{};
  getrusage(RUSAGE_SELF, &ru0);
  const auto t0 = Clock::now();
  go.store(true);
  for (std::thread& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);

  for (int c = 0; c < clients; ++c)
    if (!errors[static_cast<size_t>(c)].empty()) Die("client " + std::to_string(c) + ": " + errors[static_cast<size_t>(c)]);
  if (applied.load() != expected)
    Die("the hub applied " + std::to_string(applied.load()) + " changes, " + std::to_string(expected) + " were sent");

  const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  auto tv_ms = [](const timeval& a, const timeval& b) {
    return (b.tv_sec - a.tv_sec) * 1000.0 + (b.tv_usec - a.tv_usec) / 1000.0;
  };
  const double client_ms = tv_ms(ru0.ru_utime, ru1.ru_utime) + tv_ms(ru0.ru_stime, ru1.ru_stime);
  std::printf("changes/s %.0f changes %lld seconds %.3f cpu_ms_per_1000", static_cast<double>(expected) / secs, expected,
              secs);
  for (size_t i = 0; i < pids.size(); ++i)
    std::printf(" %s:%.2f", pids[i].c_str(),
                static_cast<double>(TreeTicks(pids[i]) - before[i]) * tick_ms * 1000.0 / static_cast<double>(expected));
  std::printf(" client_cpu_ms_per_1000 %.2f\n", client_ms * 1000.0 / static_cast<double>(expected));
  return 0;
}
