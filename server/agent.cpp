// `deltasync agent` (docs/live-sync.md). Per file and hub, a Link runs two threads, each on
// its own connection with the extension loaded:
//   - the push side reads PRAGMA data_version every poll_ms (it changes when any other
//     connection commits; nothing is scanned) and calls deltasync_push when it moved, when
//     interval_ms passed since the last push, or to retry one that failed;
//   - the pull side long-polls: deltasync_pull with wait_ms, which the hub answers as soon
//     as it holds news for this site.
// So a local commit is pushed while a long-poll waits. Failures are retried with
// exponential backoff and jitter. SIGINT/SIGTERM set a stop flag and sqlite3_interrupt
// every connection until the threads are done: the extension cancels a request in flight
// (should_abort) and a pull page is applied in a savepoint, so a stop mid-sync loses
// nothing and leaves every cursor consistent.
#include "server/agent.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <pthread.h>

#include "common/error.hpp"
#include "common/schedule.hpp"
#include "common/sync_client.hpp"
#include "server/hub_server.hpp"

namespace deltasync::agent {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using hub::Log;
using hub::LogLevel;

// The stop flag, the condition every wait sleeps on, and the connections to interrupt.
struct Stopper {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::set<sqlite3*> open;  // guarded by mu: interrupt never touches a closed handle

  // Sleeps up to `ms`; false when a stop was asked.
  bool Sleep(long ms) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop.load(); });
    return !stop.load();
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
  }
  void InterruptAll() {
    std::lock_guard<std::mutex> lock(mu);
    for (sqlite3* db : open) sqlite3_interrupt(db);
  }
};

Stopper g_stopper;
ProgressView* g_progress = nullptr;  // the progress line (draws nothing off a terminal)

// "in 1234 ms, 5678 rows/s": a finished call's duration (the extension's `ms`, the time it
// worked: a long-poll's wait left out; else as timed here) and its rate in rows.
std::string Timing(const nlohmann::json& r, long measured_ms) {
  int64_t ms = r.value("ms", static_cast<int64_t>(measured_ms));
  int64_t rows = r.value("rows", int64_t{0});
  int64_t rate = ms > 0 ? (rows * 1000 + ms / 2) / ms : 0;
  return " in " + std::to_string(ms) + " ms, " + std::to_string(rate) + " rows/s";
}

// One connection of the agent: the file in WAL mode, a busy timeout, the extension loaded.
class Db {
 public:
  // Throws std::runtime_error with a message for the log.
  Db(const std::string& path, const std::string& extension) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
    if (rc != SQLITE_OK) Fail("cannot open " + path);
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_enable_load_extension(db_, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(db_, extension.c_str(), "sqlite3_deltasync_init", &err) != SQLITE_OK) {
      std::string why = err ? err : "?";
      sqlite3_free(err);
      Fail("cannot load the deltasync extension " + extension + ": " + why);
    }
    sqlite3_enable_load_extension(db_, 0);
    // The application's connections keep writing while the agent reads and writes.
    std::string mode = Text("PRAGMA journal_mode=WAL").value_or("");
    if (mode != "wal") Fail("cannot put " + path + " in WAL mode (journal_mode is \"" + mode + "\")");
    std::lock_guard<std::mutex> lock(g_stopper.mu);
    g_stopper.open.insert(db_);
  }
  ~Db() {
    {
      std::lock_guard<std::mutex> lock(g_stopper.mu);
      g_stopper.open.erase(db_);
    }
    sqlite3_close_v2(db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* handle() const { return db_; }

  // The first column of the first row as text (nullopt for no row or NULL); `error` gets
  // SQLite's message on failure (and nullopt is returned).
  std::optional<std::string> Text(const std::string& sql, const std::vector<std::string>& params = {},
                                  std::string* error = nullptr) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      if (error) *error = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    for (size_t i = 0; i < params.size(); ++i)
      sqlite3_bind_text(st, static_cast<int>(i + 1), params[i].data(), static_cast<int>(params[i].size()),
                        SQLITE_TRANSIENT);
    std::optional<std::string> out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
      out = std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                        static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE && error) *error = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return out;
  }

  // Every row of a query with text columns.
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
      }
      out.push_back(std::move(row));
    }
    std::string why = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    if (!why.empty()) throw std::runtime_error(why);
    return out;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    throw std::runtime_error(what.find(": ") == std::string::npos ? what + ": " + why : what);
  }

  sqlite3* db_ = nullptr;
};

// A schedule as stored (deltasync_schedules) or given by --url.
struct Schedule {
  std::string hub, url, options;  // options: a JSON object, token included
  long interval_ms = 10000;
  bool operator==(const Schedule& o) const {
    return url == o.url && options == o.options && interval_ms == o.interval_ms;
  }
};

// The schedules stored in the file (none before the first deltasync_schedule).
std::vector<Schedule> ReadSchedules(Db& db) {
  std::vector<Schedule> out;
  if (!db.Text("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'deltasync_schedules'")) return out;
  for (auto& r : db.Rows("SELECT hub, url, options, interval_ms FROM deltasync_schedules ORDER BY hub"))
    out.push_back(Schedule{r[0], r[1], r[2], std::stol(r[3])});
  return out;
}

long MillisSince(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// One file kept in sync with one hub: a push thread and a long-poll thread.
class Link {
 public:
  Link(std::string path, Schedule schedule, const AgentArgs& args)
      : path_(std::move(path)), s_(std::move(schedule)), args_(args) {
    push_ = std::thread([this] { PushLoop(); });
    pull_ = std::thread([this] { PullLoop(); });
  }
  // Stops both threads (their calls are interrupted) and waits for them.
  ~Link() {
    done_ = true;
    while (!finished()) {
      g_stopper.cv.notify_all();
      Interrupt();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    push_.join();
    pull_.join();
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  const Schedule& schedule() const { return s_; }

 private:
  bool stopping() const { return done_ || g_stopper.stop; }
  bool finished() const { return push_finished_ && pull_finished_; }
  void Interrupt() {
    std::lock_guard<std::mutex> lock(g_stopper.mu);
    for (sqlite3* db : live_) sqlite3_interrupt(db);
  }
  // Sleeps up to `ms`, waking early on a stop; false when stopping.
  bool Sleep(long ms) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (!stopping() && Clock::now() < until) {
      long left = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count());
      g_stopper.Sleep(std::min(left, 100L));
    }
    return !stopping();
  }
  std::string Prefix() const { return path_ + " " + s_.hub + " "; }

  // Opens a connection for one side, retrying while the file is busy or missing.
  std::unique_ptr<Db> Open(const char* side) {
    Backoff backoff(args_.max_backoff_ms);
    while (!stopping()) {
      try {
        auto db = std::make_unique<Db>(path_, args_.extension);
        std::lock_guard<std::mutex> lock(g_stopper.mu);
        live_.insert(db->handle());
        return db;
      } catch (const std::exception& e) {
        long wait = backoff.Next();
        Log(LogLevel::kWarn, Prefix() + side + ": " + e.what() + "; retry in " + std::to_string(wait) + " ms");
        Sleep(wait);
      }
    }
    return nullptr;
  }
  void Close(std::unique_ptr<Db>& db) {
    if (!db) return;
    {
      std::lock_guard<std::mutex> lock(g_stopper.mu);
      live_.erase(db->handle());
    }
    db.reset();
  }
  // One call of deltasync_push or deltasync_pull: its JSON result, or nullopt with `error`.
  // On the progress line while it runs.
  std::optional<Json> Call(Db& db, const char* fn, const std::string& options, std::string& error) {
    error.clear();
    uint64_t shown = g_progress->Begin(path_, s_.hub, fn == std::string("deltasync_push") ? "push" : "pull");
    std::optional<std::string> r =
        db.Text(std::string("SELECT ") + fn + "(?1, ?2)", {s_.url, options}, &error);
    g_progress->End(shown);
    if (!error.empty() || !r) {
      if (error.empty()) error = "no result";
      return std::nullopt;
    }
    try {
      return Json::parse(*r);
    } catch (const Json::exception&) {
      error = "unreadable result " + *r;
      return std::nullopt;
    }
  }

  void PushLoop() {
    std::unique_ptr<Db> db = Open("push");
    Backoff backoff(args_.max_backoff_ms);
    std::string last_version;
    bool pending = true;  // the first pass pushes what accumulated while no agent ran
    auto last_push = Clock::now();
    auto retry_at = Clock::now();
    while (db && !stopping()) {
      std::string error;
      std::optional<std::string> v = db->Text("PRAGMA data_version", {}, &error);
      if (v && *v != last_version) {
        last_version = *v;
        pending = true;
      }
      if (MillisSince(last_push) >= s_.interval_ms) pending = true;
      if (pending && Clock::now() >= retry_at) {
        auto t0 = Clock::now();
        std::optional<Json> r = Call(*db, "deltasync_push", s_.options, error);
        if (stopping()) break;
        long ms = MillisSince(t0);
        if (r) {
          pending = false;
          backoff.Reset();
          last_push = Clock::now();
          int64_t pushed = r->value("pushed", int64_t{0});
          Log(pushed > 0 ? LogLevel::kInfo : LogLevel::kDebug,
              Prefix() + "push: pushed=" + std::to_string(pushed) + " rows=" + std::to_string(r->value("rows", int64_t{0})) +
                  " batches=" + std::to_string(r->value("batches", int64_t{0})) + Timing(*r, ms));
        } else {
          long wait = backoff.Next();
          retry_at = Clock::now() + std::chrono::milliseconds(wait);
          Log(LogLevel::kWarn, Prefix() + "push failed (" + std::to_string(backoff.failures()) + " in a row, retry in " +
                                   std::to_string(wait) + " ms): " + error);
        }
      }
      Sleep(args_.poll_ms);
    }
    Close(db);
    push_finished_ = true;
  }

  // The schedule's options for a long-poll (common/schedule).
  std::string PullOptions() const { return LongPollOptions(s_.options, s_.interval_ms, args_.wait_ms); }

  void PullLoop() {
    std::unique_ptr<Db> db = Open("pull");
    Backoff backoff(args_.max_backoff_ms);
    std::string options = PullOptions();
    while (db && !stopping()) {
      std::string error;
      auto t0 = Clock::now();
      std::optional<Json> r = Call(*db, "deltasync_pull", options, error);
      if (stopping()) break;
      long ms = MillisSince(t0);
      if (r) {
        backoff.Reset();
        int64_t pulled = r->value("pulled", int64_t{0});
        Log(pulled > 0 ? LogLevel::kInfo : LogLevel::kDebug,
            Prefix() + "pull: pulled=" + std::to_string(pulled) + " rows=" + std::to_string(r->value("rows", int64_t{0})) +
                " applied=" + std::to_string(r->value("applied", int64_t{0})) +
                " pages=" + std::to_string(r->value("pages", int64_t{0})) + Timing(*r, ms));
      } else {
        long wait = backoff.Next();
        Log(LogLevel::kWarn, Prefix() + "pull failed (" + std::to_string(backoff.failures()) + " in a row, retry in " +
                                 std::to_string(wait) + " ms): " + error);
        Sleep(wait);
      }
    }
    Close(db);
    pull_finished_ = true;
  }

  std::string path_;
  Schedule s_;
  const AgentArgs& args_;
  std::set<sqlite3*> live_;  // this link's connections, guarded by g_stopper.mu
  std::atomic<bool> done_{false}, push_finished_{false}, pull_finished_{false};
  std::thread push_, pull_;
};

// One file: its control connection (which reads the schedules) and a Link per schedule.
struct File {
  std::string path;
  std::unique_ptr<Db> control;
  std::map<std::string, std::unique_ptr<Link>> links;  // by hub
  bool told_none = false;
};

// Starts, replaces and stops the file's links to match `wanted`.
void Reconcile(File& f, const std::vector<Schedule>& wanted, const AgentArgs& args) {
  for (auto it = f.links.begin(); it != f.links.end();) {
    auto w = std::find_if(wanted.begin(), wanted.end(), [&](const Schedule& s) { return s.hub == it->first; });
    if (w != wanted.end() && *w == it->second->schedule()) {
      ++it;
      continue;
    }
    Log(LogLevel::kInfo, f.path + " " + it->first + (w == wanted.end() ? " unscheduled" : " schedule changed"));
    it = f.links.erase(it);
  }
  for (const Schedule& s : wanted) {
    if (f.links.count(s.hub)) continue;
    Log(LogLevel::kInfo, f.path + " " + s.hub + " running: push on commit, long-poll, at least every " +
                             std::to_string(s.interval_ms) + " ms");
    f.links.emplace(s.hub, std::make_unique<Link>(f.path, s, args));
  }
  if (wanted.empty() && !f.told_none)
    Log(LogLevel::kInfo, f.path + ": no schedule stored yet; waiting for deltasync_schedule(url, options)");
  f.told_none = wanted.empty();
}

}  // namespace

void ApplyConfigFile(const std::string& path, const std::set<std::string>& given, AgentArgs& args,
                     std::string& log_level) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, "agent config " + path + ": " + why);
  };
  std::ifstream in(path);
  if (!in) fail("cannot be read");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("is not a JSON object");
  auto text = [&](const std::string& key, const nlohmann::json& v) {
    if (!v.is_string() || v.get<std::string>().empty()) fail("\"" + key + "\" must be a non-empty string");
    return v.get<std::string>();
  };
  auto ranged = [&](const std::string& key, const nlohmann::json& v, long lo, long hi) {
    if (!v.is_number_integer() || v.get<long long>() < lo || v.get<long long>() > hi)
      fail("\"" + key + "\" must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return v.get<long>();
  };
  for (const auto& [key, v] : j.items()) {
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (key == "db") {
      if (given.count("--db")) continue;
      args.dbs.clear();
      if (v.is_string()) args.dbs.push_back(text(key, v));
      else if (v.is_array() && !v.empty())
        for (const auto& e : v) args.dbs.push_back(text(key, e));
      else fail("\"db\" must be a file name or a non-empty list of them");
      continue;
    }
    static const std::set<std::string> kKnown = {"url", "token", "extension", "wait_ms", "poll_ms",
                                                 "max_backoff_ms", "rescan_ms", "log_level", "progress"};
    if (!kKnown.count(key)) fail("unknown key \"" + key + "\"");
    if (given.count(flag)) continue;  // the command line wins
    if (key == "url") args.url = text(key, v);
    else if (key == "token") args.token = text(key, v);
    else if (key == "extension") args.extension = text(key, v);
    else if (key == "wait_ms") args.wait_ms = ranged(key, v, 100, 600000);
    else if (key == "poll_ms") args.poll_ms = ranged(key, v, 1, 10000);
    else if (key == "max_backoff_ms") args.max_backoff_ms = ranged(key, v, 250, 3600000);
    else if (key == "rescan_ms") args.rescan_ms = ranged(key, v, 100, 3600000);
    else if (key == "progress") {
      std::optional<ProgressMode> mode = ParseProgressMode(text(key, v));
      if (!mode) fail("\"progress\" must be auto, always or never");
      args.progress = *mode;
    } else {
      log_level = text(key, v);
      if (log_level != "debug" && log_level != "info" && log_level != "warn" && log_level != "error")
        fail("\"log_level\" must be debug, info, warn or error");
    }
  }
}

std::string ExtensionPath(const std::string& configured) {
  if (!configured.empty()) return configured;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string dir = ".";
  if (n > 0) {
    std::string exe(buf, static_cast<size_t>(n));
    dir = exe.substr(0, exe.rfind('/'));
  }
  for (const char* rel : {"/../sqlite_ext/deltasync.so", "/../lib/deltasync/deltasync.so"}) {
    std::string p = dir + rel;
    if (::access(p.c_str(), R_OK) == 0) return p;
  }
  return dir + "/../lib/deltasync/deltasync.so";
}

int RunAgent(const AgentArgs& in) {
  AgentArgs args = in;
  if (args.dbs.empty()) {
    std::fprintf(stderr, "deltasync: agent needs at least one --db FILE\n");
    return 2;
  }
  if (!args.token.empty() && args.url.empty()) {
    std::fprintf(stderr, "deltasync: --token goes with --url\n");
    return 2;
  }
  args.extension = ExtensionPath(args.extension);

  // Signals are taken by a dedicated thread: a stop flag, then sqlite3_interrupt on every
  // connection until the links are done (an interrupt that lands between two statements is
  // forgotten by SQLite, so it is repeated).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!finished) Log(LogLevel::kInfo, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
    g_stopper.Stop();
    while (!finished) {
      g_stopper.InterruptAll();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto stop_waiter = [&] {
    finished = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  };

  std::vector<File> files;
  try {
    for (const std::string& path : args.dbs) {
      File f;
      f.path = path;
      f.control = std::make_unique<Db>(path, args.extension);
      files.push_back(std::move(f));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deltasync: agent: %s\n", e.what());
    files.clear();
    stop_waiter();
    return 1;
  }
  // The progress line, on a terminal only unless --progress says otherwise; it must outlive
  // the links, whose calls it shows.
  auto view = std::make_unique<ProgressView>(
      ShouldDrawProgress(args.progress, ::isatty(STDERR_FILENO) == 1, std::getenv("TERM")));
  g_progress = view.get();
  // --url: the hub's key (the URL's base and node), as the extension names it in its records.
  std::string url_hub = args.url;
  if (!args.url.empty()) {
    try {
      url_hub = HubKey(args.url);
    } catch (const std::exception&) {  // the extension says what is wrong with it, call by call
    }
  }
  Log(LogLevel::kInfo, "deltasync agent: " + std::to_string(files.size()) + " file(s), extension " + args.extension);

  while (!g_stopper.stop) {
    for (File& f : files) {
      std::vector<Schedule> wanted;
      if (!args.url.empty()) {
        Json o = Json::object();
        if (!args.token.empty()) o["token"] = args.token;
        wanted.push_back(Schedule{url_hub, args.url, o.dump(), 10000});
      } else {
        try {
          wanted = ReadSchedules(*f.control);
        } catch (const std::exception& e) {
          if (g_stopper.stop) break;
          Log(LogLevel::kWarn, f.path + ": cannot read its schedules: " + e.what());
          continue;  // keep what runs
        }
      }
      Reconcile(f, wanted, args);
    }
    g_stopper.Sleep(args.rescan_ms);
  }
  for (File& f : files) f.links.clear();  // each link waits for its threads
  files.clear();
  view.reset();  // clears the line
  g_progress = nullptr;
  stop_waiter();
  Log(LogLevel::kInfo, "deltasync agent stopped");
  return 0;
}

}  // namespace deltasync::agent
