// `deltasync agent` (issue 13) against a real `deltasync serve`: SQLite files with stored
// schedules converge with no sync call from the application; the hub killed and restarted
// while the sites keep writing loses nothing; SIGTERM stops an agent cleanly and a restart
// resumes. Convergence is waited for with a deadline (a wait, not a timed assertion).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using deltasync::test::UniqueTempPath;
using Clock = std::chrono::steady_clock;

namespace {

// `deltasync agent ARGS...` as a child process, its stderr in a file; always reaped.
class AgentProcess {
 public:
  explicit AgentProcess(std::vector<std::string> args) : args_(std::move(args)), log_path_(UniqueTempPath("agent", ".log")) {
    Start();
  }
  ~AgentProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait(std::chrono::seconds(30));
    }
    std::remove(log_path_.c_str());
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  void Start() {
    std::vector<std::string> argv_s = {DELTASYNC_CLI, "agent"};
    argv_s.insert(argv_s.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) throw std::runtime_error("cannot open " + log_path_);
    const size_t started_before = Starts();
    exited_at_start_ = false;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(log, 2);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(log);
    pid_ = pid;
    // Until it logs its start line its signals are not taken yet (a SIGTERM then kills it
    // with status 15): the test waits for that line, as an operator's unit would for ready.
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Starts() == started_before && Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // it exited at start: Signal reports how
        status_ = status;
        pid_ = -1;
        exited_at_start_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Sends `sig` and waits up to `limit` for the exit; the exit status, or -1 when it did
  // not exit in time (it is then killed).
  int Signal(int sig, std::chrono::milliseconds limit) {
    if (pid_ <= 0) return exited_at_start_ ? status_ : -1;
    ::kill(pid_, sig);
    if (Wait(limit)) return status_;
    ::kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(30));
    return -1;
  }

  // How many times the log shows the agent's start line (written once its signals are taken).
  size_t Starts() const {
    std::string l = log();
    size_t n = 0;
    for (size_t at = l.find("deltasync agent: "); at != std::string::npos; at = l.find("deltasync agent: ", at + 1)) ++n;
    return n;
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  bool Wait(std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    for (;;) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        status_ = status;
        pid_ = -1;
        return true;
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_at_start_ = false;
};

constexpr const char* kSchema =
    "CREATE TABLE t(id TEXT PRIMARY KEY, site TEXT NOT NULL, n INTEGER NOT NULL); SELECT deltasync_enable('t');";

// A site file as an application holds it: its own connection, a busy timeout, a schedule.
struct SiteFile {
  std::string path = UniqueTempPath("site", ".db");
  std::unique_ptr<Site> db;
  explicit SiteFile(const std::string& url) {
    db = std::make_unique<Site>(path);
    sqlite3_busy_timeout(db->db(), 10000);
    db->Exec("PRAGMA journal_mode=WAL");
    db->Exec(kSchema);
    db->Text("SELECT deltasync_schedule(?1, '{\"interval_ms\": 2000, \"timeout_ms\": 10000}')", {Value::Text(url)});
  }
  ~SiteFile() {
    db.reset();
    for (const char* s : {"", "-wal", "-shm"}) std::remove((path + s).c_str());
  }
  void Write(const std::string& id, const std::string& site, int64_t n) {
    db->Rows("INSERT INTO t(id, site, n) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET n = excluded.n",
             {Value::Text(id), Value::Text(site), Value::Integer(n)});
  }
  std::string Rows() { return db->Text("SELECT group_concat(id || ':' || site || ':' || n, ',') FROM (SELECT * FROM t ORDER BY id)"); }
  int64_t Count() { return db->Int("SELECT count(*) FROM t"); }
};

// Waits (up to `limit`) until every site holds the same rows, `expect_rows` of them.
bool Converged(std::vector<std::unique_ptr<SiteFile>>& sites, int64_t expect_rows, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    bool same = true;
    std::string first = sites[0]->Rows();
    for (auto& s : sites) same = same && s->Count() == expect_rows && s->Rows() == first;
    if (same) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string Logs(const std::vector<std::unique_ptr<AgentProcess>>& agents, const HubProcess& hub) {
  std::string out;
  for (auto& a : agents) out += "--- agent ---\n" + a->log();
  return out + "--- hub ---\n" + hub.log();
}

}  // namespace

// One agent for three files: a write on any file appears on the others, no sync call.
TEST(Agent, WritesAppearOnTheOtherFilesWithNoSyncCall) {
  HubProcess hub;
  std::string url = hub.url("shop");
  std::vector<std::unique_ptr<SiteFile>> sites;
  for (int k = 0; k < 3; ++k) sites.push_back(std::make_unique<SiteFile>(url));
  std::vector<std::unique_ptr<AgentProcess>> agents;
  agents.push_back(std::make_unique<AgentProcess>(
      std::vector<std::string>{"--db", sites[0]->path, "--db", sites[1]->path, "--db", sites[2]->path}));
  int64_t rows = 0;
  for (int round = 0; round < 3; ++round)
    for (int k = 0; k < 3; ++k) {
      sites[k]->Write("r" + std::to_string(round) + "s" + std::to_string(k), "s" + std::to_string(k), round);
      ++rows;
      // Each write is waited for on every file before the next: it travelled on its own.
      ASSERT_TRUE(Converged(sites, rows, std::chrono::seconds(20))) << Logs(agents, hub);
    }
  // An update of a row another file wrote travels too.
  sites[2]->Write("r0s0", "s0", 42);
  ASSERT_TRUE(Converged(sites, rows, std::chrono::seconds(20))) << Logs(agents, hub);
  EXPECT_EQ(sites[1]->db->Int("SELECT n FROM t WHERE id = 'r0s0'"), 42);
  EXPECT_EQ(agents[0]->Signal(SIGTERM, std::chrono::seconds(10)), 0) << Logs(agents, hub);
  EXPECT_NE(agents[0]->log().find("push: pushed="), std::string::npos);
}

// One agent per file; the hub (on a file store) is killed while every site keeps writing,
// then restarted on the same store and port: everything converges, nothing is lost.
TEST(Agent, HubKilledAndRestartedWhileSitesWriteConverges) {
  HubProcess::Options o;
  o.db = "";  // a temp file: the store outlives the kill
  HubProcess hub(o);
  std::string url = hub.url("shop");
  std::vector<std::unique_ptr<SiteFile>> sites;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  for (int k = 0; k < 3; ++k) {
    sites.push_back(std::make_unique<SiteFile>(url));
    agents.push_back(std::make_unique<AgentProcess>(std::vector<std::string>{"--db", sites[k]->path, "--max-backoff-ms", "1000"}));
  }
  std::mt19937 rng(7);
  int64_t rows = 0;
  auto write_some = [&](const std::string& phase, int n) {
    for (int i = 0; i < n; ++i) {
      int k = static_cast<int>(rng() % 3);
      sites[k]->Write(phase + std::to_string(i), "s" + std::to_string(k), static_cast<int64_t>(rng() % 1000));
      ++rows;
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
    }
  };
  write_some("before", 30);
  hub.Kill();
  write_some("down", 60);  // no hub: pushes and long-polls fail and back off
  hub.Restart();
  write_some("after", 30);
  ASSERT_TRUE(Converged(sites, rows, std::chrono::seconds(30))) << Logs(agents, hub);
  bool backed_off = false;
  for (auto& a : agents) backed_off |= a->log().find("failed (") != std::string::npos;
  EXPECT_TRUE(backed_off) << "the agents never saw the hub down";
  for (auto& a : agents) EXPECT_EQ(a->Signal(SIGTERM, std::chrono::seconds(10)), 0) << Logs(agents, hub);
}

// SIGTERM while the agent is busy (its site writing, the others' changes arriving): it exits
// 0 promptly; what was written meanwhile goes out once it runs again, and all converge.
TEST(Agent, SigtermStopsCleanlyAndARestartResumes) {
  HubProcess hub;
  std::string url = hub.url("shop");
  std::vector<std::unique_ptr<SiteFile>> sites;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  for (int k = 0; k < 2; ++k) {
    sites.push_back(std::make_unique<SiteFile>(url));
    agents.push_back(std::make_unique<AgentProcess>(std::vector<std::string>{"--db", sites[k]->path}));
  }
  int64_t rows = 0;
  std::atomic<bool> writing{true};
  // Site 1 keeps writing a large-ish stream, so site 0's agent is pulling when it is stopped.
  std::thread writer([&] {
    for (int i = 0; writing; ++i) {
      sites[1]->db->Exec("BEGIN");
      for (int j = 0; j < 50; ++j) sites[1]->Write("w" + std::to_string(i) + "_" + std::to_string(j), "s1", j);
      sites[1]->db->Exec("COMMIT");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < 20; ++i) sites[0]->Write("a" + std::to_string(i), "s0", i);
  auto t0 = Clock::now();
  int status = agents[0]->Signal(SIGTERM, std::chrono::seconds(10));
  auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  writing = false;
  writer.join();
  EXPECT_EQ(status, 0) << Logs(agents, hub);
  std::printf("agent stopped %lld ms after SIGTERM\n", static_cast<long long>(stop_ms));
  // Written while no agent runs for site 0.
  for (int i = 20; i < 40; ++i) sites[0]->Write("a" + std::to_string(i), "s0", i);
  // The cursors are consistent: a restart resumes and everything converges.
  agents[0]->Start();
  rows = sites[1]->db->Int("SELECT count(*) FROM t WHERE site = 's1'") + 40;
  ASSERT_TRUE(Converged(sites, rows, std::chrono::seconds(30))) << Logs(agents, hub);
  for (auto& a : agents) EXPECT_EQ(a->Signal(SIGTERM, std::chrono::seconds(10)), 0) << Logs(agents, hub);
}

// Bad arguments and a file that cannot be opened are reported, with a non-zero exit.
TEST(Agent, RefusesAMissingFile) {
  AgentProcess a({"--db", "/nonexistent/dir/site.db"});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int status = a.Signal(0, std::chrono::seconds(10));
  ASSERT_NE(status, -1) << a.log();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(a.log().find("cannot open /nonexistent/dir/site.db"), std::string::npos) << a.log();
}

// --url/--token runs one hub for a file with no stored schedule; a schedule stored while an
// agent runs is picked up, and deltasync_unschedule stops it.
TEST(Agent, UrlFlagAndSchedulesChangedWhileRunning) {
  HubProcess::Options o;
  o.auto_create_nodes = false;
  o.config_json = R"({"nodes": {"shop": {"tokens": ["tok-shop"]}}})";
  HubProcess hub(o);
  std::string url = hub.url("shop");
  std::vector<std::unique_ptr<SiteFile>> sites;
  for (int k = 0; k < 2; ++k) sites.push_back(std::make_unique<SiteFile>(url));
  for (auto& s : sites) s->db->Text("SELECT deltasync_unschedule(?1)", {Value::Text(url)});
  std::vector<std::unique_ptr<AgentProcess>> agents;
  // Site 0: the hub from the command line. Site 1: no schedule yet.
  agents.push_back(std::make_unique<AgentProcess>(
      std::vector<std::string>{"--db", sites[0]->path, "--url", url, "--token", "tok-shop"}));
  agents.push_back(std::make_unique<AgentProcess>(std::vector<std::string>{"--db", sites[1]->path, "--rescan-ms", "200"}));
  sites[0]->Write("x", "s0", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sites[1]->Count(), 0) << "a file without a schedule was synced";
  sites[1]->db->Text("SELECT deltasync_schedule(?1, '{\"token\": \"tok-shop\"}')", {Value::Text(url)});
  ASSERT_TRUE(Converged(sites, 1, std::chrono::seconds(20))) << Logs(agents, hub);
  // Unscheduled: site 1 no longer receives.
  sites[1]->db->Text("SELECT deltasync_unschedule(?1)", {Value::Text(url)});
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (agents[1]->log().find("unscheduled") == std::string::npos && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(agents[1]->log().find("unscheduled"), std::string::npos) << agents[1]->log();
  sites[0]->Write("y", "s0", 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sites[1]->Count(), 1);
  EXPECT_EQ(agents[0]->log().find("tok-shop"), std::string::npos) << "the token reached the log";
  for (auto& a : agents) EXPECT_EQ(a->Signal(SIGTERM, std::chrono::seconds(10)), 0) << Logs(agents, hub);
}

// --config FILE (JSON): the files, the hub and its token come from the file (the token then
// never appears in the process list); a flag on the command line wins over the file; a bad
// file is refused with exit status 2 and a message naming the key.
TEST(Agent, ConfigFileGivesFilesHubAndTokenAndFlagsWin) {
  HubProcess::Options o;
  o.auto_create_nodes = false;
  o.config_json = R"({"nodes": {"shop": {"tokens": ["tok-cfg"]}}})";
  HubProcess hub(o);
  std::string url = hub.url("shop");
  std::vector<std::unique_ptr<SiteFile>> sites;
  for (int k = 0; k < 2; ++k) sites.push_back(std::make_unique<SiteFile>(url));
  for (auto& s : sites) s->db->Text("SELECT deltasync_unschedule(?1)", {Value::Text(url)});
  std::string cfg = UniqueTempPath("agent", ".json");
  {
    std::ofstream out(cfg);
    out << nlohmann::json{{"db", {sites[0]->path, sites[1]->path}}, {"url", url}, {"token", "tok-cfg"},
                          {"poll_ms", 20}, {"log_level", "error"}}
               .dump();
  }
  // --log-level info on the command line wins over the file's "error": the start line shows.
  AgentProcess agent({"--config", cfg, "--log-level", "info"});
  ASSERT_EQ(agent.Starts(), 1u) << agent.log();
  sites[0]->Write("a", "s0", 1);
  sites[1]->Write("b", "s1", 2);
  ASSERT_TRUE(Converged(sites, 2, std::chrono::seconds(20))) << agent.log() << hub.log();
  EXPECT_EQ(agent.log().find("tok-cfg"), std::string::npos) << "the token reached the log";
  EXPECT_EQ(agent.Signal(SIGTERM, std::chrono::seconds(10)), 0) << agent.log();

  for (const auto& [body, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"db": "x.db", "tokn": "t"})", "unknown key \"tokn\""},
           {R"({"db": "x.db", "poll_ms": 0})", "\"poll_ms\" must be an integer"},
           {R"({"db": []})", "\"db\" must be"},
           {"not json", "is not a JSON object"}}) {
    {
      std::ofstream out(cfg);
      out << body;
    }
    AgentProcess bad({"--config", cfg});
    int status = bad.Signal(0, std::chrono::seconds(10));
    ASSERT_NE(status, -1) << bad.log();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << body << ": " << bad.log();
    EXPECT_NE(bad.log().find(says), std::string::npos) << body << ": " << bad.log();
  }
  std::remove(cfg.c_str());
}

// sqlite3_interrupt on a connection cancels its long-poll in flight: the pull fails at once
// with a deltasync: error and its cursor stays where it was.
TEST(Agent, InterruptCancelsALongPoll) {
  HubProcess hub;
  std::string url = hub.url("shop");
  SiteFile site(url);
  site.db->Text("SELECT deltasync_pull(?1)", {Value::Text(url)});
  std::string before = site.db->Text("SELECT pull_cursor FROM deltasync_hubs");
  std::thread interrupter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sqlite3_interrupt(site.db->db());
  });
  auto t0 = Clock::now();
  std::string err = site.db->ExecError("SELECT deltasync_pull('" + url + "', '{\"wait_ms\": 20000, \"timeout_ms\": 30000}')");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  interrupter.join();
  EXPECT_FALSE(err.empty());
  EXPECT_LT(ms, 10000) << "the long-poll ran its whole wait";
  EXPECT_EQ(site.db->Text("SELECT pull_cursor FROM deltasync_hubs"), before);
  EXPECT_NE(site.db->Text("SELECT deltasync_status()"), "");  // the connection still works
}

// Property: random inserts, updates and deletes of a few shared keys on three agent-driven
// files, with the hub killed and restarted and agents stopped and started at random
// moments, end in identical rows on every file with nothing pending.
TEST(Agent, RandomWritesHubKillsAndAgentRestartsConverge) {
  for (unsigned seed : {11u, 12u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    HubProcess::Options o;
    o.db = "";
    HubProcess hub(o);
    std::string url = hub.url("prop");
    std::vector<std::unique_ptr<SiteFile>> sites;
    std::vector<std::unique_ptr<AgentProcess>> agents;
    for (int k = 0; k < 3; ++k) {
      sites.push_back(std::make_unique<SiteFile>(url));
      agents.push_back(std::make_unique<AgentProcess>(
          std::vector<std::string>{"--db", sites[k]->path, "--max-backoff-ms", "500", "--wait-ms", "2000"}));
    }
    std::vector<bool> agent_up(3, true);
    int hub_kills = 0, agent_stops = 0;
    for (int step = 0; step < 300; ++step) {
      int k = static_cast<int>(rng() % 3);
      std::string id = "k" + std::to_string(rng() % 12);
      int op = static_cast<int>(rng() % 10);
      if (op < 6) {
        sites[k]->Write(id, "s" + std::to_string(k), static_cast<int64_t>(rng() % 1000));
      } else if (op < 8) {
        sites[k]->db->Rows("DELETE FROM t WHERE id = ?1", {Value::Text(id)});
      } else if (op == 8 && rng() % 8 == 0) {
        if (hub.running()) {
          hub.Kill();
          ++hub_kills;
        } else {
          hub.Restart();
        }
      } else if (op == 9 && rng() % 6 == 0) {
        if (agent_up[k]) {
          EXPECT_EQ(agents[k]->Signal(SIGTERM, std::chrono::seconds(10)), 0);
          ++agent_stops;
        } else {
          agents[k]->Start();
        }
        agent_up[k] = !agent_up[k];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 8));
    }
    EXPECT_GT(hub_kills + agent_stops, 0) << "the run had no fault in it";
    std::printf("seed %u: %d hub kills, %d agent stops\n", seed, hub_kills, agent_stops);
    if (!hub.running()) hub.Restart();
    for (int k = 0; k < 3; ++k)
      if (!agent_up[k]) agents[k]->Start();
    auto deadline = Clock::now() + std::chrono::seconds(40);
    bool done = false;
    while (!done && Clock::now() < deadline) {
      done = true;
      std::string first = sites[0]->Rows();
      for (auto& s : sites) {
        std::string st = s->db->Text("SELECT deltasync_status()");
        done = done && s->Rows() == first &&
               s->db->Text("SELECT json_extract(?1, '$.pending_changes')", {Value::Text(st)}) == "0";
      }
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(done) << Logs(agents, hub);
    for (auto& a : agents) EXPECT_EQ(a->Signal(SIGTERM, std::chrono::seconds(10)), 0) << Logs(agents, hub);
  }
}
