#pragma once
// The real hub, `deltasync serve`, as a child process of a test: started on 127.0.0.1 with a
// free port (learnt from its "listening on 127.0.0.1:PORT" log line), killed or stopped on
// demand, restarted on the same store file and the same port, and always reaped.
//
// The child's stderr is drained by a thread for its whole life (a hub never blocks on a full
// pipe), and kept so that a failure can show the log.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace deltasync::test {

// A fresh, unique path in the test temp directory (the file itself is not left behind).
inline std::string UniqueTempPath(const std::string& stem, const std::string& suffix) {
  static std::atomic<int> counter{0};
  const char* dir = std::getenv("TMPDIR");
  std::string base = dir && *dir ? dir : "/tmp";
  return base + "/deltasync_e2e_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" + stem + suffix;
}

class HubProcess {
 public:
  struct Options {
    std::string db = ":memory:";  // ":memory:", a file path, or "" for a fresh temp file
    std::string config_json;      // written to a temp file and passed as --config when not empty
    bool auto_create_nodes = true;
    std::string log_level = "info";
    std::vector<std::string> extra_args;  // more `deltasync serve` arguments
  };

  explicit HubProcess(Options options) : options_(std::move(options)) {
    // DELTASYNC_TEST_HUB_STORE=postgresql runs every hub on a fresh PostgreSQL database of
    // the cluster the PG* environment names (pg_virtualenv), instead of a SQLite store.
    const char* store = std::getenv("DELTASYNC_TEST_HUB_STORE");
    if (store && std::string(store) == "postgresql" && options_.db.rfind("postgresql://", 0) != 0) {
      pg_db_ = "ds_hub_" + std::to_string(getpid()) + "_" + std::to_string(PgCounter()++);
      if (std::system(("dropdb --if-exists " + pg_db_ + " && createdb " + pg_db_).c_str()) != 0)
        throw std::runtime_error("cannot create the hub's PostgreSQL database " + pg_db_);
      options_.db = "postgresql:///" + pg_db_;
    }
    if (options_.db.empty()) {
      options_.db = UniqueTempPath("hub", ".db");
      owns_db_ = true;
    }
    if (!options_.config_json.empty()) {
      config_path_ = UniqueTempPath("hub_config", ".json");
      std::ofstream out(config_path_);
      out << options_.config_json;
      if (!out) throw std::runtime_error("cannot write " + config_path_);
    }
    Start(0);
  }
  HubProcess() : HubProcess(Options{}) {}

  ~HubProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Reap(std::chrono::seconds(30));
    }
    JoinReader();
    if (!config_path_.empty()) std::remove(config_path_.c_str());
    if (!pg_db_.empty()) (void)std::system(("dropdb --if-exists --force " + pg_db_ + " 2>/dev/null").c_str());
    if (owns_db_)
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((options_.db + suffix).c_str());
  }
  HubProcess(const HubProcess&) = delete;
  HubProcess& operator=(const HubProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // A second hub process on the same store (a PostgreSQL one): several hubs, one database.
  static Options SameStore(const HubProcess& other) {
    Options o = other.options_;
    return o;
  }
  bool running() const { return pid_ > 0; }
  Options& options() { return options_; }  // e.g. extra_args for the next Restart()
  const std::string& db() const { return options_.db; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string url(const std::string& node) const { return base() + "/nodes/" + node; }

  // Everything the hub wrote to stderr so far (across restarts).
  std::string log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  // Sends sig (SIGKILL by default) and reaps the child.
  void Kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (!Reap(std::chrono::seconds(30))) {
      ::kill(pid_, SIGKILL);
      Reap(std::chrono::seconds(30));
    }
    JoinReader();
  }

  // A clean stop: SIGTERM, then wait (SIGKILL after 15 s). Returns the exit status.
  int Stop() {
    if (pid_ <= 0) return last_status_;
    ::kill(pid_, SIGTERM);
    if (!Reap(std::chrono::seconds(15))) {
      ::kill(pid_, SIGKILL);
      Reap(std::chrono::seconds(30));
    }
    JoinReader();
    return last_status_;
  }

  // Starts again (stopping first if it runs) on the same store and the same port, so the
  // URLs the sites know stay valid.
  void Restart() {
    if (pid_ > 0) Stop();
    Start(port_);
  }

  // Only the process's own exit status (as from waitpid) once it has been reaped.
  int last_status() const { return last_status_; }

 private:
  void Start(int port) {
    // A port just given up may take a moment to be free again: retry for up to 20 s.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string why;
      if (StartOnce(port, why)) return;
      if (port == 0 || std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("deltasync serve did not start: " + why + "\n--- hub log ---\n" + log());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("deltasync serve did not start after 100 attempts\n--- hub log ---\n" + log());
  }

  bool StartOnce(int port, std::string& why) {
    std::vector<std::string> args = {DELTASYNC_CLI, "serve", "--db", options_.db, "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--log-level", options_.log_level};
    if (!config_path_.empty()) {
      args.push_back("--config");
      args.push_back(config_path_);
    }
    if (options_.auto_create_nodes) args.push_back("--auto-create-nodes");
    for (const auto& a : options_.extra_args) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      if (devnull >= 0) ::close(devnull);
      throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      // Child: only async-signal-safe calls until exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
      if (getppid() != parent) _exit(127);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
      }
      dup2(fds[1], 2);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(fds[1]);
    if (devnull >= 0) ::close(devnull);
    pid_ = pid;
    {
      std::lock_guard<std::mutex> lock(mu_);
      listening_port_ = -1;
      eof_ = false;
      line_.clear();
    }
    reader_ = std::thread([this, fd = fds[0]] { ReadLoop(fd); });

    // Wait (10 s) for the "listening on" line, or for the child to end.
    std::unique_lock<std::mutex> lock(mu_);
    bool got = cv_.wait_for(lock, std::chrono::seconds(10), [&] { return listening_port_ >= 0 || eof_; });
    int found = listening_port_;
    lock.unlock();
    if (got && found > 0) {
      port_ = found;
      return true;
    }
    why = got ? "it exited before listening" : "no \"listening on\" line within 10 s";
    ::kill(pid_, SIGKILL);
    Reap(std::chrono::seconds(30));
    JoinReader();
    return false;
  }

  void ReadLoop(int fd) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard<std::mutex> lock(mu_);
      log_.append(buf, static_cast<size_t>(n));
      if (log_.size() > (8u << 20)) log_.erase(0, log_.size() - (4u << 20));  // bounded
      line_.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = line_.find('\n')) != std::string::npos) {
        std::string line = line_.substr(0, nl);
        line_.erase(0, nl + 1);
        static const std::string kMark = "listening on 127.0.0.1:";
        size_t at = line.find(kMark);
        if (at != std::string::npos && listening_port_ < 0) {
          listening_port_ = std::atoi(line.c_str() + at + kMark.size());
          cv_.notify_all();
        }
      }
    }
    ::close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  // Waits for the child to end (bounded); true once reaped.
  bool Reap(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return true;
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        last_status_ = status;
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void JoinReader() {
    if (reader_.joinable() && pid_ <= 0) reader_.join();  // EOF comes once the child is gone
  }

  std::string pg_db_;  // the database this hub created, when on PostgreSQL
  static int& PgCounter() {
    static int n = 0;
    return n;
  }
  Options options_;
  bool owns_db_ = false;
  std::string config_path_;
  pid_t pid_ = -1;
  int port_ = 0;
  int last_status_ = 0;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_, line_;
  int listening_port_ = -1;
  bool eof_ = false;
};

}  // namespace deltasync::test
