#pragma once
// The agent's progress line on a terminal (docs/live-sync.md, "The progress line"): while a
// push or pull of the agent has run a second, one line on stderr shows each such call's rows
// done of rows expected, rate and ETA, redrawn in place with a carriage return and cleared
// when the call ends; log lines are written around it. The numbers are the extension's own
// reports (common/sync_progress, kept in the file's deltasync_sync_progress), read on a
// connection of the view's own. Off a terminal nothing is drawn and nothing is read.
#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/sync_progress.hpp"

namespace deltasync::agent {

// --progress: auto (the default) draws when stderr is a terminal, always and never say so.
enum class ProgressMode { kAuto, kAlways, kNever };
std::optional<ProgressMode> ParseProgressMode(const std::string& text);  // nullopt: not one of them
// Whether to draw: always; never; auto: stderr is a terminal and TERM is not "dumb".
bool ShouldDrawProgress(ProgressMode mode, bool stderr_is_tty, const char* term);

// One call on the line: the file it syncs and its latest report.
struct ShownCall {
  std::string file;
  SyncProgress p;
};

// The line: each call as
//   "shop1.db push shop1 [#######-------------] 35% 400/800 rows, 133 rows/s, ETA 3s"
// ("400/? rows" and no bar nor ETA while expected is unknown; the node is what follows
// "/nodes/" in the hub), joined by " | ", printable ASCII only, cut to width - 1 columns so a
// terminal never wraps it.
std::string ProgressBarLine(const std::vector<ShownCall>& calls, size_t width);

// The line on stderr. With draw false it does nothing at all (no thread, no reads).
class ProgressView {
 public:
  explicit ProgressView(bool draw);
  ~ProgressView();  // clears the line and gives the log back to stderr
  ProgressView(const ProgressView&) = delete;
  ProgressView& operator=(const ProgressView&) = delete;

  // A call of `direction` ("push" or "pull") with `hub` (its key: base + "/nodes/" + node) on
  // the file `path` begins; End removes it from the line (cleared when it was the last).
  uint64_t Begin(const std::string& path, const std::string& hub, const std::string& direction);
  void End(uint64_t id);

  // A log line (with its newline): the progress line is cleared, the line written, the
  // progress line drawn again.
  void WriteLog(const std::string& line);

 private:
  struct Call {
    std::string path, hub, direction;
    int64_t start_ms = 0;               // wall clock: reports older than the call are not its own
    std::optional<SyncProgress> shown;  // its latest report, once there is one
  };
  void Watch();
  std::optional<SyncProgress> Read(const Call& call);
  void Redraw();  // with mu_ held
  void Clear();   // with mu_ held

  const bool draw_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Call> calls_;
  std::map<std::string, sqlite3*> dbs_;  // the view's own connection to each file (watcher only)
  std::string on_screen_;                // what the line shows now ("" when cleared)
  std::thread watcher_;
};

}  // namespace deltasync::agent
